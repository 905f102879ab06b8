//! Secrecy: no tenant password, no admin password and no SCRAM verifier
//! appears anywhere pgtenant's work leaves a trace: the server log (with every
//! statement, every error's statement and every connection logged), pgtenant's
//! stderr and stdout at every log level and in both formats, the command line
//! and environment of the running process (when the passwords come from
//! files), and the messages of failed statements and failed logins.

use std::time::Duration;

use crate::concurrency::{wait_for_lock_waiters, LockHolder};
use crate::support::child::wait_with_timeout;
use crate::support::cli::{run_env, run_raw, UsersFile};
use crate::support::pgtenant::Pgtenant;
use crate::support::server::PgServer;

/// Distinctive passwords: long enough that a match is no coincidence, with
/// characters that quoting would change (so an escaped copy is caught too,
/// by the escaped needles below).
const TENANT_PASSWORDS: &[(&str, &str)] = &[
    ("sec_a", "Sekr1t-Alpha-7f3a9c"),
    ("sec_b", "Sekr1t-Bravo-'quoted'-2b8e"),
    ("sec_c", "Sekr1t-Charlie-\\back\\slash-91d0"),
    ("sec_d", "Sekr1t-Delta-ünïcödé-44c1"),
];
const ROTATED: &[(&str, &str)] = &[
    ("sec_a", "Sekr1t-Echo-5e6f7a"),
    ("sec_b", "Sekr1t-Foxtrot-$$-8c9d"),
    ("sec_c", "Sekr1t-Golf-\"dq\"-0a1b"),
    ("sec_d", "Sekr1t-Hotel-日本-2c3d"),
];
const ADMIN_PASSWORD: &str = "Adm1n-Secret-Whisky-6d2f";
const WRONG_ADMIN_PASSWORD: &str = "Adm1n-Wrong-Yankee-7e3a";

fn file_of(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(u, p)| format!("{u}:{p}\n")).collect()
}

/// The forms a password could leak in: as is, and as SQL or JSON would
/// escape it.
fn needles() -> Vec<String> {
    let mut out = Vec::new();
    for (_, p) in TENANT_PASSWORDS.iter().chain(ROTATED) {
        out.push((*p).to_owned());
        out.push(p.replace('\'', "''"));
        out.push(p.replace('\\', "\\\\"));
        out.push(p.replace('"', "\\\""));
        // A distinctive middle part survives any escaping of the rest.
        out.push(p.split('-').nth(1).unwrap().to_owned() + "-");
    }
    // Every tenant password of this module has this in it.
    out.push("Sekr1t".to_owned());
    out.push("Adm1n-".to_owned());
    out.push(ADMIN_PASSWORD.to_owned());
    out.push(WRONG_ADMIN_PASSWORD.to_owned());
    out.sort();
    out.dedup();
    out
}

#[track_caller]
fn assert_clean(haystack: &str, where_: &str, extra: &[String]) {
    for needle in needles().iter().chain(extra) {
        assert!(
            !haystack.contains(needle.as_str()),
            "secret {needle:?} found in {where_}"
        );
    }
}

/// Salt and keys of every stored verifier of the tenants (each part long and
/// random enough to be a needle on its own).
fn verifier_parts(server: &PgServer) -> Vec<String> {
    server
        .query("SELECT rolpassword FROM pg_authid WHERE rolname LIKE 'sec\\_%'")
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .flat_map(|v| {
            v.split(['$', ':'])
                .filter(|part| part.len() >= 16)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

struct Setup {
    server: PgServer,
    dir: UsersFile,
    admin_user_file: String,
    admin_password_file: String,
}

impl Setup {
    /// pgtenant's environment: the admin's name and password from files, as
    /// in the article's deployment, the tenants from the users file.
    fn env<'a>(&'a self, users: &'a str, password_file: &'a str) -> Vec<(&'a str, String)> {
        vec![
            ("PGHOST", self.server.host().to_owned()),
            ("PGPORT", self.server.port().to_string()),
            ("POSTGRES_USER_FILE", self.admin_user_file.clone()),
            ("POSTGRES_PASSWORD_FILE", password_file.to_owned()),
            ("DBUSERS", users.to_owned()),
        ]
    }

    fn run(&self, users: &str, args: &[&str]) -> crate::support::cli::Run {
        let env = self.env(users, &self.admin_password_file);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run_raw(args, &env)
    }
}

fn setup() -> Setup {
    let server = PgServer::builder()
        .conf("log_statement", "all")
        .conf("log_min_error_statement", "debug5")
        .conf("log_min_duration_statement", "0")
        .conf("log_connections", "on")
        .conf("log_disconnections", "on")
        .conf("log_line_prefix", "%m [%p] %q%u@%d app=%a ")
        .start();
    // The admin pgtenant uses: a superuser of its own, whose password only
    // the file below holds.
    // The statement is logged: give it a verifier, never the password.
    let verifier =
        pgtenant::reconcile::scram::ScramVerifier::generate(ADMIN_PASSWORD, 4096).unwrap();
    server.query(&format!(
        "CREATE ROLE secadmin LOGIN SUPERUSER PASSWORD '{verifier}'"
    ));
    let dir = UsersFile::new(file_of(TENANT_PASSWORDS));
    let admin_user_file = dir.dir().join("pg_admin_user.secret");
    let admin_password_file = dir.dir().join("pg_admin_password.secret");
    std::fs::write(&admin_user_file, "secadmin\n").unwrap();
    std::fs::write(&admin_password_file, format!("{ADMIN_PASSWORD}\n")).unwrap();
    Setup {
        server,
        admin_user_file: admin_user_file.to_str().unwrap().to_owned(),
        admin_password_file: admin_password_file.to_str().unwrap().to_owned(),
        dir,
    }
}

#[test]
fn passwords_and_verifiers_never_leak() {
    let s = setup();
    let users = s.dir.path().to_str().unwrap().to_owned();
    let mut outputs = Vec::new();

    // Create, at the most verbose level, in both formats; then every command.
    let first = s.run(&users, &["--log-level", "trace", "apply"]);
    first.assert_code(0);
    outputs.push(("apply (text, trace)", first));
    let mut verifiers = verifier_parts(&s.server);
    for format in ["text", "json"] {
        for cmd in [
            &["apply"][..],
            &["plan"],
            &["plan", "-o", "json"],
            &["status"],
            &["status", "-o", "json"],
        ] {
            for level in ["trace", "debug", "info"] {
                let mut args = vec!["--log-level", level, "--log-format", format];
                args.extend_from_slice(cmd);
                let out = s.run(&users, &args);
                out.assert_code(0);
                outputs.push(("command", out));
            }
        }
    }
    // Rotate every password (the ALTER ROLE path), in both formats.
    s.dir.write(file_of(ROTATED));
    let out = s.run(
        &users,
        &["--log-level", "trace", "--log-format", "json", "apply"],
    );
    out.assert_code(0);
    assert!(out.stderr.contains("update_password"), "{}", out.stderr);
    // With --log-format json every line on stderr is one JSON event.
    assert_eq!(
        out.events().len(),
        out.stderr.lines().count(),
        "{}",
        out.stderr
    );
    outputs.push(("rotate (json, trace)", out));
    verifiers.extend(verifier_parts(&s.server));
    for (user, password) in ROTATED {
        s.server
            .try_connect(user, password, &format!("{user}_db"))
            .expect("rotated password works");
    }
    s.dir.write(file_of(TENANT_PASSWORDS));
    let out = s.run(&users, &["--log-level", "trace", "apply"]);
    out.assert_code(0);
    outputs.push(("rotate back (text, trace)", out));

    // Failed statements. The admin's transactions are read-only: every write
    // fails on the server, with the statement (a verifier for CREATE ROLE and
    // ALTER ROLE) in the server's error report unless pgtenant keeps it out.
    s.server
        .query("ALTER ROLE secadmin SET default_transaction_read_only = on");
    let failing =
        UsersFile::new("sec_new:Sekr1t-India-newrole-3f4e\nsec_a:Sekr1t-Juliet-changed-5a6b\n");
    let failing_path = failing.path().to_str().unwrap();
    for format in ["text", "json"] {
        let out = s.run(
            failing_path,
            &["--log-level", "trace", "--log-format", format, "apply"],
        );
        out.assert_code(1);
        assert!(
            out.stderr.contains("read-only transaction"),
            "{}",
            out.stderr
        );
        outputs.push(("failed statements", out));
    }
    s.server
        .query("ALTER ROLE secadmin RESET default_transaction_read_only");
    // A name collision: the tenant's database exists, owned by someone else.
    s.server.query("CREATE DATABASE sec_e_db");
    let collide = UsersFile::new(format!(
        "{}sec_e:Sekr1t-Kilo-collide-7c8d\n",
        file_of(TENANT_PASSWORDS)
    ));
    let out = s.run(
        collide.path().to_str().unwrap(),
        &["--log-level", "trace", "apply"],
    );
    out.assert_code(0);
    outputs.push(("collision", out));
    // An invalid users file, full of passwords.
    let invalid = UsersFile::new(
        "sec_a:Sekr1t-Alpha-7f3a9c\nsec_a:Sekr1t-Bravo-'quoted'-2b8e\npg_x:Sekr1t-Echo-5e6f7a\n\
         sec_z:Sekr1t-Golf-\"dq\"-0a1b\0\nsecadmin:Sekr1t-Delta-ünïcödé-44c1\n",
    );
    for format in ["text", "json"] {
        let out = s.run(
            invalid.path().to_str().unwrap(),
            &["--log-level", "trace", "--log-format", format, "apply"],
        );
        out.assert_code(2);
        outputs.push(("invalid users file", out));
    }
    // A wrong admin password, from a file.
    let wrong = s.dir.dir().join("wrong_password");
    std::fs::write(&wrong, format!("{WRONG_ADMIN_PASSWORD}\n")).unwrap();
    let env = s.env(&users, wrong.to_str().unwrap());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for format in ["text", "json"] {
        let out = run_raw(
            &["--log-level", "trace", "--log-format", format, "apply"],
            &env,
        );
        out.assert_code(1);
        assert!(
            out.stderr.contains("password authentication failed"),
            "{}",
            out.stderr
        );
        outputs.push(("wrong admin password", out));
    }
    // The same, as PGPASSWORD (the variable itself is the caller's choice;
    // the message must still not repeat it).
    let out = run_env(
        &s.server,
        s.dir.path(),
        &["--log-level", "trace", "apply"],
        &[("PGPASSWORD", WRONG_ADMIN_PASSWORD)],
    );
    out.assert_code(1);
    outputs.push(("wrong PGPASSWORD", out));

    verifiers.extend(verifier_parts(&s.server));
    assert!(verifiers.len() >= 24, "salts and keys of two generations");
    for (what, out) in &outputs {
        assert_clean(
            &out.stderr,
            &format!("pgtenant stderr ({what})"),
            &verifiers,
        );
        assert_clean(
            &out.stdout,
            &format!("pgtenant stdout ({what})"),
            &verifiers,
        );
    }

    let log = s.server.log();
    assert!(
        log.contains("connection authorized"),
        "log_connections is on"
    );
    assert!(
        log.contains("read-only transaction"),
        "the failures are in the log"
    );
    assert!(
        log.contains("statement: CREATE DATABASE"),
        "log_statement is on"
    );
    assert_clean(&log, "the server log", &verifiers);
}

#[test]
fn process_command_line_and_environment_hold_no_secret() {
    let s = setup();
    let users = s.dir.path().to_str().unwrap().to_owned();
    let env = s.env(&users, &s.admin_password_file);
    // pgtenant waits for the advisory lock held here: it stays alive, with
    // everything read, while the test looks at it.
    let mut holder = LockHolder::take(&s.server);
    let child = Pgtenant::bare()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(["--log-level", "trace", "apply"])
        .spawn();
    wait_for_lock_waiters(&s.server, 1);
    let pid = child.id();
    let mut seen = 0;
    for name in ["cmdline", "environ"] {
        let bytes = std::fs::read(format!("/proc/{pid}/{name}")).expect("read /proc");
        let text = String::from_utf8_lossy(&bytes).replace('\0', "\n");
        assert!(!text.is_empty(), "/proc/{pid}/{name} is empty");
        assert_clean(&text, &format!("/proc/{pid}/{name}"), &[]);
        seen += text.lines().count();
    }
    assert!(seen >= 5, "cmdline and environ were read");
    holder.release();
    let (code, stderr) = wait_with_timeout(child, Duration::from_secs(120));
    assert_eq!(code, Some(0), "{stderr}");
    assert_clean(&stderr, "pgtenant stderr", &verifier_parts(&s.server));
    assert_clean(
        &s.server.log(),
        "the server log",
        &verifier_parts(&s.server),
    );
}
