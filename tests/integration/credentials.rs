//! Credentials out: every tenant of the hostile-passwords corpus logs in
//! with what `pgtenant credentials -o uri` printed (through libpq: psql),
//! with the `-o env` lines loaded by a POSIX shell, and with the files of
//! `--bindings-dir`. The JSON and Kubernetes forms carry the same values.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use base64::Engine as _;

use crate::hostile::accepted;
use crate::support::cli::{run, run_raw, UsersFile};
use crate::support::server::PgServer;

/// libpq's client: Debian's psql (the fetched majors ship no client).
fn psql() -> Command {
    let mut cmd = Command::new("psql");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PGCONNECT_TIMEOUT", "10")
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1"]);
    cmd
}

/// `SELECT current_user, current_database()` as the shell or psql printed it.
fn who(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const WHO: &str = "SELECT current_user || '|' || current_database()";

fn expected(name: &str) -> String {
    format!("{name}|{name}_db\n")
}

#[derive(serde::Deserialize)]
struct Doc {
    format_version: u32,
    credentials: Vec<Cred>,
}

#[derive(serde::Deserialize)]
struct Cred {
    name: String,
    username: String,
    password: String,
    database: String,
    host: String,
    port: u16,
    uri: String,
}

#[test]
fn every_hostile_password_logs_in_with_the_printed_uri_env_and_bindings() {
    let server = PgServer::start();
    let tenants = accepted();
    let content: String = tenants.iter().map(|(u, p)| format!("{u}:{p}\n")).collect();
    let users = UsersFile::new(&content);
    let bindings = users.dir().join("bindings");
    run(
        &server,
        users.path(),
        &["apply", "--bindings-dir", bindings.to_str().unwrap()],
    )
    .assert_code(0);

    // -o json: every tenant, the password exactly as in the input.
    let out = run(&server, users.path(), &["credentials", "-o", "json"]);
    out.assert_code(0);
    let doc: Doc = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc.format_version, 1);
    assert_eq!(doc.credentials.len(), tenants.len());
    for ((user, password), c) in tenants.iter().zip(&doc.credentials) {
        let name = user.trim_matches([' ', '\t']);
        assert_eq!((c.name.as_str(), c.username.as_str()), (name, name));
        assert_eq!(&c.password, password);
        assert_eq!(c.database, format!("{name}_db"));
        assert_eq!((c.host.as_str(), c.port), (server.host(), server.port()));
    }

    // -o uri: one line per tenant, each logs in through libpq.
    let out = run(&server, users.path(), &["credentials", "-o", "uri"]);
    out.assert_code(0);
    let uris: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(uris.len(), tenants.len());
    for (c, uri) in doc.credentials.iter().zip(&uris) {
        assert_eq!(&c.uri, uri);
        let got = who(psql().args([*uri, "-c", WHO]).output().unwrap(), uri);
        assert_eq!(got, expected(&c.name), "uri of {:?}", c.name);
    }
    // A wrong password in the same URI is refused: the URI is what logs in.
    let wrong = uris[0].replacen('@', "x@", 1);
    assert!(!psql()
        .args([&wrong, "-c", WHO])
        .output()
        .unwrap()
        .status
        .success());

    // -o env NAME, loaded by a POSIX shell: the PG* variables, and DATABASE_URL.
    let env_file = users.dir().join("app.env");
    for c in &doc.credentials {
        let out = run(
            &server,
            users.path(),
            &["credentials", "-o", "env", &c.name],
        );
        out.assert_code(0);
        std::fs::write(&env_file, &out.stdout).unwrap();
        for script in [
            format!(
                "set -a; . '{}'; exec psql -X -At -c \"$1\"",
                env_file.display()
            ),
            format!(
                ". '{}'; exec psql -X -At -c \"$1\" \"$DATABASE_URL\"",
                env_file.display()
            ),
        ] {
            let got = who(
                Command::new("sh")
                    .env_clear()
                    .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                    .args(["-c", &script, "sh", WHO])
                    .output()
                    .unwrap(),
                &c.name,
            );
            assert_eq!(
                got,
                expected(&c.name),
                "env of {:?}: {}",
                c.name,
                out.stdout
            );
        }
    }

    // --bindings-dir: DIR/<name>/uri and the separate entries, 0700/0600.
    assert_eq!(mode(&bindings), 0o700);
    for c in &doc.credentials {
        let dir = bindings.join(&c.name);
        assert_eq!(mode(&dir), 0o700, "{dir:?}");
        assert_eq!(mode(&dir.join("password")), 0o600);
        let read = |key: &str| std::fs::read_to_string(dir.join(key)).unwrap();
        assert_eq!(read("password"), c.password);
        assert_eq!(read("type"), "postgresql");
        let got = who(
            psql().args([&read("uri"), "-c", WHO]).output().unwrap(),
            &c.name,
        );
        assert_eq!(got, expected(&c.name));
        // The separate entries: exactly the login's parts.
        server
            .try_connect(&read("username"), &read("password"), &read("database"))
            .unwrap_or_else(|e| panic!("entries of {:?}: {e}", c.name));
        assert_eq!(
            (read("host"), read("port")),
            (server.host().to_owned(), server.port().to_string())
        );
        // The pgpass entry is a working libpq password file (checked where
        // its escapes matter: a ':' or '\\' in the name or the password).
        if !(c.name.contains([':', '\\']) || c.password.contains([':', '\\'])) {
            continue;
        }
        let pgpass = users.dir().join("pgpass");
        std::fs::write(&pgpass, read("pgpass")).unwrap();
        std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
        let got = who(
            psql()
                .env("PGPASSFILE", &pgpass)
                .env("PGHOST", read("host"))
                .env("PGPORT", read("port"))
                .env("PGUSER", read("username"))
                .env("PGDATABASE", read("database"))
                .args(["-c", WHO])
                .output()
                .unwrap(),
            &c.name,
        );
        assert_eq!(got, expected(&c.name));
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn credentials_need_no_server_and_name_unknown_users() {
    // No server at all: a port nothing listens on.
    let users = UsersFile::new("keycloak:kc-pass\ndolibarr:it's $ecret\n");
    let env = [
        ("DBUSERS", users.path().to_str().unwrap()),
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", "1"),
    ];
    let out = run_raw(
        &[
            "credentials",
            "--host",
            "postgres.tyr.svc",
            "--sslmode",
            "require",
        ],
        &env,
    );
    out.assert_code(0);
    assert_eq!(
        out.stdout,
        "postgresql://keycloak:kc-pass@postgres.tyr.svc:1/keycloak_db?sslmode=require\n\
         postgresql://dolibarr:it%27s%20%24ecret@postgres.tyr.svc:1/dolibarr_db?sslmode=require\n"
    );
    assert!(!out.stderr.contains("kc-pass"), "{}", out.stderr);

    let out = run_raw(&["credentials", "nobody"], &env);
    out.assert_code(2);
    assert!(
        out.stderr.contains("\"nobody\" is not a user of the input"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());

    // -o env is one application's.
    let out = run_raw(&["credentials", "-o", "env"], &env);
    out.assert_code(2);
    assert!(out.stderr.contains("name one"), "{}", out.stderr);

    // An invalid users file: exit 2, nothing printed.
    let bad = UsersFile::new("keycloak:pw\nno colon\n");
    let out = run_raw(
        &["credentials"],
        &[
            ("DBUSERS", bad.path().to_str().unwrap()),
            ("PGPASSWORD", "x"),
        ],
    );
    out.assert_code(2);
    assert!(out.stdout.is_empty());
}

#[test]
fn kubernetes_secrets_carry_the_servicebinding_entries() {
    let users = UsersFile::new("keycloak:kc-pass\ndolibarr:it's $ecret\n");
    let out = run_raw(
        &[
            "credentials",
            "-o",
            "kubernetes",
            "--namespace",
            "tyr",
            "--host",
            "postgres.tyr.svc",
        ],
        &[("DBUSERS", users.path().to_str().unwrap())],
    );
    out.assert_code(0);
    assert!(!out.stdout.contains("kc-pass"), "passwords only in base64");
    let docs: Vec<&str> = out
        .stdout
        .split("---\n")
        .filter(|d| !d.is_empty())
        .collect();
    assert_eq!(docs.len(), 2);
    let entry = |doc: &str, key: &str| -> String {
        let line = doc
            .lines()
            .find(|l| l.starts_with(&format!("  {key}: ")))
            .unwrap_or_else(|| panic!("no {key} in {doc}"));
        let b64 = line.split_once(": ").unwrap().1;
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    };
    assert!(docs[1].contains("  name: \"dolibarr-postgres\"\n  namespace: \"tyr\"\n"));
    assert_eq!(entry(docs[1], "password"), "it's $ecret");
    assert_eq!(entry(docs[1], "type"), "postgresql");
    assert_eq!(entry(docs[1], "host"), "postgres.tyr.svc");
    assert_eq!(
        entry(docs[1], "jdbc-uri"),
        "jdbc:postgresql://postgres.tyr.svc:5432/dolibarr_db?user=dolibarr&password=it%27s%20%24ecret"
    );
    insta::assert_snapshot!("credentials_kubernetes", out.stdout);
}

/// Every `$ pgtenant ...` of a `console` block in docs/credentials.md, run
/// against the example Secret's users file: its stdout is what the doc shows.
#[test]
fn docs_examples_are_real_output() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/credentials.md")).unwrap();
    let users = root.join("deploy/kubernetes/examples/secret/db_users.secret");
    let mut examples: Vec<(String, String)> = Vec::new();
    let mut in_console = false;
    for line in doc.lines() {
        // "```console run": scripts/check-docs runs them as well.
        if line.starts_with("```console") {
            in_console = true;
        } else if line == "```" {
            in_console = false;
        } else if in_console {
            if let Some(cmd) = line.strip_prefix("$ ") {
                examples.push((cmd.to_owned(), String::new()));
            } else if let Some((_, out)) = examples.last_mut() {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    assert!(examples.len() >= 3, "{examples:?}");
    for (cmd, shown) in &examples {
        let args: Vec<&str> = cmd
            .strip_prefix("pgtenant ")
            .unwrap_or_else(|| panic!("not a pgtenant command: {cmd}"))
            .split_whitespace()
            .collect();
        let out = run_raw(&args, &[("DBUSERS", users.to_str().unwrap())]);
        out.assert_code(0);
        assert_eq!(&out.stdout, shown, "docs/credentials.md: $ {cmd}");
    }
}
