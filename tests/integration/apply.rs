//! `apply`, `plan` and `status` against a real server: the foundation's
//! behaviour end to end.

use crate::support::cli::{run, run_env, run_raw, UsersFile};
use crate::support::one;
use crate::support::pgtenant::Pgtenant;
use crate::support::server::PgServer;

const ARTICLE_USERS: &str = include_str!("../../examples/db_users.secret");

/// Verifiers, owners and ACLs of the given tenants, for byte-for-byte
/// comparisons between runs.
fn catalog_state(server: &PgServer) -> Vec<Vec<Option<String>>> {
    let mut rows = server.query(
        "SELECT a.rolname, a.rolcanlogin::text, a.rolpassword, d.datname, o.rolname, d.datacl::text
           FROM pg_authid a
           LEFT JOIN pg_database d ON d.datname = a.rolname || '_db'
           LEFT JOIN pg_roles o ON o.oid = d.datdba
          WHERE a.rolname NOT LIKE 'pg\\_%' AND a.rolname <> 'postgres'
          ORDER BY 1",
    );
    if server.major() < 15 {
        for row in &mut rows {
            if let Some(Some(db)) = row.get(3) {
                let db = db.clone();
                let schema = server.query_db(
                    &db,
                    "SELECT nspowner::regrole::text, nspacl::text FROM pg_namespace WHERE nspname = 'public'",
                );
                row.extend(schema.into_iter().flatten());
            }
        }
    }
    rows
}

#[test]
fn article_example_provisions_both_tenants() {
    let server = PgServer::start();
    let users = UsersFile::new(ARTICLE_USERS);
    let out = run(&server, users.path(), &["apply"]);
    out.assert_code(0);
    for line in [
        r#"created role "keycloak""#,
        r#"created database "keycloak_db" owned by "keycloak""#,
        r#"revoked CONNECT, TEMPORARY on database "keycloak_db" from PUBLIC"#,
        r#"created role "dolibarr""#,
        "2 tenants: 2 created, 0 updated, 0 unchanged",
    ] {
        assert!(
            out.stderr.contains(line),
            "missing {line:?} in\n{}",
            out.stderr
        );
    }
    server
        .try_connect("keycloak", "K3cl0@kPassssaPk@0lc3K", "keycloak_db")
        .expect("keycloak logs in to its database");
    server
        .try_connect("dolibarr", "D0l1p@ssss@p1l0D", "dolibarr_db")
        .expect("dolibarr logs in to its database");
    assert_eq!(
        one(
            &server,
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'keycloak_db'"
        )
        .as_deref(),
        Some("keycloak")
    );

    let status = run(&server, users.path(), &["status"]);
    status.assert_code(0);
    assert!(status.stdout.starts_with("ROLE"), "{}", status.stdout);
    let keycloak = status
        .stdout
        .lines()
        .find(|l| l.starts_with("\"keycloak\""))
        .unwrap();
    let cells: Vec<&str> = keycloak.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "\"keycloak\"",
            "yes",
            "\"keycloak_db\"",
            "\"keycloak\"",
            "in",
            "sync",
            "yes"
        ]
    );
}

#[test]
fn second_run_changes_nothing() {
    let server = PgServer::start();
    let users = UsersFile::new("alpha:pw-1\nbeta:pw-2\nGamma-3:pw 3\n");
    run(&server, users.path(), &["apply"]).assert_code(0);
    let before = catalog_state(&server);
    assert_eq!(before.len(), 3);

    let out = run(&server, users.path(), &["apply"]);
    out.assert_code(0);
    assert!(
        out.stderr
            .contains("3 tenants: 0 created, 0 updated, 3 unchanged"),
        "{}",
        out.stderr
    );
    let plan = run(&server, users.path(), &["plan", "--exit-code"]);
    plan.assert_code(0);
    assert_eq!(plan.stdout, "No changes: 3 tenants in sync.\n");
    assert_eq!(
        catalog_state(&server),
        before,
        "no verifier, owner or ACL may change"
    );
}

#[test]
fn password_change_is_applied_once() {
    let server = PgServer::start();
    let users = UsersFile::new("app:old-password\n");
    run(&server, users.path(), &["apply"]).assert_code(0);
    users.write("app:new-password\n");
    let plan = run(&server, users.path(), &["plan", "--exit-code"]);
    plan.assert_code(3);
    assert_eq!(
        plan.stdout,
        "~ role \"app\": password\nPlan: 0 to create, 1 to update.\n"
    );
    let out = run(&server, users.path(), &["apply"]);
    out.assert_code(0);
    assert!(
        out.stderr.contains(r#"updated password of role "app""#),
        "{}",
        out.stderr
    );
    server
        .try_connect("app", "new-password", "app_db")
        .expect("new password works");
    assert!(server.try_connect("app", "old-password", "app_db").is_err());
    run(&server, users.path(), &["plan", "--exit-code"]).assert_code(0);
}

#[test]
fn owner_changed_by_hand_is_restored() {
    let server = PgServer::start();
    let users = UsersFile::new("app:pw\n");
    run(&server, users.path(), &["apply"]).assert_code(0);
    server.query("ALTER DATABASE app_db OWNER TO postgres");
    let plan = run(&server, users.path(), &["plan"]);
    assert!(
        plan.stdout
            .contains(r#"~ database "app_db": owner "app" (was "postgres")"#),
        "{}",
        plan.stdout
    );
    run(&server, users.path(), &["apply"]).assert_code(0);
    assert_eq!(
        one(
            &server,
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app_db'"
        )
        .as_deref(),
        Some("app")
    );
    run(&server, users.path(), &["plan", "--exit-code"]).assert_code(0);
}

#[test]
fn role_created_by_hand_gets_its_database() {
    let server = PgServer::start();
    server.query("CREATE ROLE handmade NOLOGIN");
    let users = UsersFile::new("handmade:pw\n");
    let plan = run(&server, users.path(), &["plan"]);
    assert!(
        plan.stdout
            .contains("~ role \"handmade\": login, password (none set)"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("+ database \"handmade_db\""),
        "{}",
        plan.stdout
    );
    run(&server, users.path(), &["apply"]).assert_code(0);
    server
        .try_connect("handmade", "pw", "handmade_db")
        .expect("logs in");
}

#[test]
fn hostile_passwords_log_in_exactly() {
    let server = PgServer::start();
    let passwords = [
        ("quote", "it's"),
        ("dquote", "say \"hi\""),
        ("backslash", r"c:\path\n\"),
        ("dollar", "$$ dollar $1 $tag$"),
        ("colon", "a:b:c"),
        ("spaces", "  leading and trailing  "),
        ("unicode", "pässwörd-日本語-ß"),
        ("sqlinj", "x'; DROP ROLE postgres; --"),
    ];
    let content: String = passwords
        .iter()
        .map(|(u, p)| format!("{u}:{p}\n"))
        .collect();
    let users = UsersFile::new(content);
    run(&server, users.path(), &["apply"]).assert_code(0);
    for (user, password) in passwords {
        server
            .try_connect(user, password, &format!("{user}_db"))
            .unwrap_or_else(|e| panic!("{user} cannot log in: {e}"));
        assert!(server
            .try_connect(user, "wrong", &format!("{user}_db"))
            .is_err());
    }
    run(&server, users.path(), &["plan", "--exit-code"]).assert_code(0);
}

#[test]
fn names_with_dash_upper_case_and_digits() {
    let server = PgServer::start();
    let users = UsersFile::new("my-app:pw1\nMyApp:pw2\napp2024:pw3\n");
    let out = run(&server, users.path(), &["apply"]);
    out.assert_code(0);
    assert!(
        out.stderr.contains("upper-case"),
        "a warning names the upper-case user: {}",
        out.stderr
    );
    server
        .try_connect("my-app", "pw1", "my-app_db")
        .expect("dash");
    server
        .try_connect("MyApp", "pw2", "MyApp_db")
        .expect("upper case kept");
    server
        .try_connect("app2024", "pw3", "app2024_db")
        .expect("digits");
    assert_eq!(
        one(
            &server,
            "SELECT count(*) FROM pg_roles WHERE rolname = 'myapp'"
        )
        .as_deref(),
        Some("0")
    );
}

#[test]
fn invalid_input_changes_nothing() {
    let server = PgServer::start();
    let cases: &[(&[u8], &str)] = &[
        (b"ok:pw\nbroken\n", ":2: expected user:password"),
        (b"ok:pw\n:pw\n", ":2: empty user name"),
        (b"ok:pw\nu:\n", ":2: empty password"),
        (b"ok:pw\npg_x:pw\n", ":2: user name \"pg_x\" is reserved"),
        (
            b"ok:pw\npublic:pw\n",
            ":2: user name \"public\" is reserved",
        ),
        (
            b"ok:pw\npostgres:pw\n",
            ":2: user name \"postgres\" is reserved",
        ),
        (
            b"ok:pw\ntemplate1:pw\n",
            ":2: user name \"template1\" is reserved",
        ),
        (
            b"ok:pw\nok:pw2\n",
            ":2: duplicate user \"ok\" (first defined on line 1)",
        ),
        (
            b"ok:pw\nb\x07ell:pw\n",
            ":2: user name \"b\\u{7}ell\" contains a control character",
        ),
        (b"ok:pw\nbad\xff:pw\n", ":2: line is not valid UTF-8"),
    ];
    let long = format!("ok:pw\n{}:pw\n", "x".repeat(61));
    let mut all: Vec<(Vec<u8>, String)> = cases
        .iter()
        .map(|(c, e)| (c.to_vec(), e.to_string()))
        .collect();
    all.push((long.into_bytes(), ":2: database name".into()));
    for (content, expected) in all {
        let users = UsersFile::new(&content);
        for cmd in ["apply", "plan", "status"] {
            let out = run(&server, users.path(), &[cmd]);
            out.assert_code(2);
            let located = format!("{}{expected}", users.path().display());
            assert!(
                out.stderr.contains(&located),
                "{cmd}: expected {located:?} in\n{}",
                out.stderr
            );
        }
    }
    // The valid line `ok` was never applied.
    assert_eq!(
        one(
            &server,
            "SELECT count(*) FROM pg_roles WHERE rolname = 'ok'"
        )
        .as_deref(),
        Some("0")
    );
    assert_eq!(
        one(
            &server,
            "SELECT count(*) FROM pg_database WHERE datname = 'ok_db'"
        )
        .as_deref(),
        Some("0")
    );
}

#[test]
fn admin_user_cannot_be_a_tenant() {
    let server = PgServer::start();
    server.query("CREATE ROLE boss LOGIN SUPERUSER PASSWORD 'boss-pw'");
    let users = UsersFile::new("boss:x\n");
    let out = run_env(
        &server,
        users.path(),
        &["apply"],
        &[("PGUSER", "boss"), ("PGPASSWORD", "boss-pw")],
    );
    out.assert_code(2);
    assert!(out.stderr.contains("is the admin user"), "{}", out.stderr);
}

#[test]
fn existing_superuser_is_never_taken_over() {
    let server = PgServer::start();
    server.query("CREATE ROLE other_admin LOGIN SUPERUSER PASSWORD 'keep-me'");
    let users = UsersFile::new("other_admin:stolen\nfine:pw\n");
    let out = run(&server, users.path(), &["apply"]);
    out.assert_code(1);
    assert!(out.stderr.contains("SUPERUSER"), "{}", out.stderr);
    server
        .try_connect("other_admin", "keep-me", "postgres")
        .expect("password untouched");
    server
        .try_connect("fine", "pw", "fine_db")
        .expect("the other tenant is applied");
}

#[test]
fn tenants_are_isolated_from_each_other() {
    let server = PgServer::start();
    let users = UsersFile::new("alice:alice-pw\nbob:bob-pw\n");
    run(&server, users.path(), &["apply"]).assert_code(0);
    server
        .exec_as(
            "alice",
            "alice-pw",
            "alice_db",
            "CREATE TABLE public.notes (id int); INSERT INTO public.notes VALUES (1)",
        )
        .expect("alice creates a table in public of her database");
    let err = server
        .try_connect("bob", "bob-pw", "alice_db")
        .expect_err("bob cannot connect to alice_db");
    assert!(err.contains("permission denied"), "{err}");
    let err = server.try_connect("alice", "alice-pw", "postgres");
    // The maintenance database keeps PostgreSQL's defaults: pgtenant only
    // manages tenant databases.
    assert!(err.is_ok());
    let status = run(&server, users.path(), &["status", "--output", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    for t in doc["tenants"].as_array().unwrap() {
        assert_eq!(t["isolated"], true, "{t}");
    }
}

#[test]
fn no_isolation_keeps_public_access() {
    let server = PgServer::start();
    let users = UsersFile::new("alice:alice-pw\nbob:bob-pw\n");
    run(&server, users.path(), &["apply", "--no-isolation"]).assert_code(0);
    server
        .try_connect("bob", "bob-pw", "alice_db")
        .expect("PUBLIC keeps CONNECT");
    let plan = run(&server, users.path(), &["plan"]);
    assert!(
        plan.stdout
            .contains("revoke CONNECT, TEMPORARY from PUBLIC"),
        "{}",
        plan.stdout
    );
}

#[test]
fn plaintext_password_never_reaches_the_server_log() {
    let server = PgServer::builder()
        .conf("log_statement", "all")
        .conf("log_min_error_statement", "debug5")
        .conf("log_min_duration_statement", "0")
        .start();
    let secret_a = "Zx9-unique-plaintext-Alpha";
    let secret_b = "Zx9-unique-plaintext-Beta";
    let users = UsersFile::new(format!("sa:{secret_a}\nsb:{secret_b}\n"));
    run(&server, users.path(), &["apply"]).assert_code(0);
    users.write(format!("sa:{secret_b}\nsb:{secret_a}\n"));
    run(&server, users.path(), &["apply"]).assert_code(0);
    server
        .try_connect("sa", secret_b, "sa_db")
        .expect("changed password works");
    let verifiers: Vec<String> = server
        .query("SELECT rolpassword FROM pg_authid WHERE rolname IN ('sa', 'sb')")
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect();
    assert_eq!(verifiers.len(), 2);
    let log = server.log();
    assert!(
        log.contains("CREATE DATABASE"),
        "statement logging is on: {log}"
    );
    for needle in [secret_a, secret_b] {
        assert!(
            !log.contains(needle),
            "plaintext password in the server log"
        );
    }
    for v in &verifiers {
        let salt_and_keys = v.split('$').nth(2).unwrap();
        assert!(!log.contains(salt_and_keys), "verifier in the server log");
    }
}

#[test]
fn plan_json_lists_changes() {
    let server = PgServer::start();
    let users = UsersFile::new("app:pw\n");
    let out = run(
        &server,
        users.path(),
        &["plan", "--output", "json", "--exit-code"],
    );
    out.assert_code(3);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let changes = doc["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0]["object"], "role");
    assert_eq!(changes[0]["name"], "app");
    assert_eq!(changes[0]["action"], "create");
    assert_eq!(
        changes[0]["details"],
        serde_json::json!(["login", "password"])
    );
    assert_eq!(changes[1]["object"], "database");
    assert_eq!(changes[1]["name"], "app_db");
    // plan changes nothing.
    assert_eq!(
        one(
            &server,
            "SELECT count(*) FROM pg_roles WHERE rolname = 'app'"
        )
        .as_deref(),
        Some("0")
    );
}

#[test]
fn article_deployment_environment_works_unchanged() {
    let server = PgServer::start();
    let secrets = UsersFile::new(ARTICLE_USERS);
    let user_file = secrets.dir().join("pg_admin_user.secret");
    let password_file = secrets.dir().join("pg_admin_password.secret");
    std::fs::write(&user_file, format!("{}\n", server.superuser())).unwrap();
    std::fs::write(&password_file, format!("{}\n", server.superuser_password())).unwrap();
    let port = server.port().to_string();
    let out = run_raw(
        &["apply"],
        &[
            ("POSTGRES_USER_FILE", user_file.to_str().unwrap()),
            ("POSTGRES_PASSWORD_FILE", password_file.to_str().unwrap()),
            ("DBUSERS", secrets.path().to_str().unwrap()),
            ("PGPORT", &port),
        ],
    );
    out.assert_code(0);
    server
        .try_connect("keycloak", "K3cl0@kPassssaPk@0lc3K", "keycloak_db")
        .expect("logs in");
}

#[test]
fn variable_and_file_twin_both_set_is_an_error() {
    let users = UsersFile::new("a:b\n");
    let pw = users.dir().join("pw");
    std::fs::write(&pw, "x\n").unwrap();
    let out = run_raw(
        &["plan"],
        &[
            ("POSTGRES_PASSWORD", "x"),
            ("POSTGRES_PASSWORD_FILE", pw.to_str().unwrap()),
            ("DBUSERS", users.path().to_str().unwrap()),
        ],
    );
    out.assert_code(2);
    assert!(
        out.stderr.contains("POSTGRES_PASSWORD_FILE"),
        "{}",
        out.stderr
    );
}

#[test]
fn unreachable_server_exits_1() {
    let users = UsersFile::new("a:b\n");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let out = run_raw(
        &["apply"],
        &[
            ("PGHOST", "127.0.0.1"),
            ("PGPORT", &port),
            ("PGPASSWORD", "x"),
            ("DBUSERS", users.path().to_str().unwrap()),
        ],
    );
    out.assert_code(1);
    assert!(
        out.stderr
            .contains(&format!("failed to connect to 127.0.0.1:{port}")),
        "{}",
        out.stderr
    );
}

#[test]
fn concurrent_runs_do_not_collide() {
    let server = PgServer::start();
    let content: String = (0..30).map(|i| format!("t{i}:pw{i}\n")).collect();
    let users = UsersFile::new(content);
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let cmd = Pgtenant::new(&server).users(users.path()).args(["apply"]);
            std::thread::spawn(move || cmd.run())
        })
        .collect();
    for h in handles {
        let out = h.join().unwrap();
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    run(&server, users.path(), &["plan", "--exit-code"]).assert_code(0);
}

#[test]
fn standby_is_refused() {
    let mut server = PgServer::start();
    let users = UsersFile::new("app:pw\n");
    server.stop();
    // A standby without a primary to stream from: it comes up read-only, in
    // recovery, as soon as it is consistent.
    std::fs::write(server.data_dir().join("standby.signal"), "").unwrap();
    server.start_again();
    assert_eq!(
        one(&server, "SELECT pg_is_in_recovery()::text").as_deref(),
        Some("true")
    );
    let out = run(&server, users.path(), &["apply"]);
    out.assert_code(1);
    assert!(out.stderr.contains("is a standby"), "{}", out.stderr);
}

/// Statements the server logged since `from` (a byte offset in its log).
fn statements_since(server: &PgServer, from: usize) -> usize {
    server.log()[from..]
        .lines()
        .filter(|l| l.contains("LOG:  statement:") || l.contains("LOG:  execute"))
        .count()
}

#[test]
fn catalog_is_read_in_a_fixed_number_of_queries() {
    let server = PgServer::builder().conf("log_statement", "all").start();
    let few = UsersFile::new("a1:pw\na2:pw\n");
    let many: String = (0..40).map(|i| format!("b{i}:pw{i}\n")).collect();
    let many = UsersFile::new(many);
    run(&server, few.path(), &["apply"]).assert_code(0);
    run(&server, many.path(), &["apply"]).assert_code(0);

    let mark = server.log().len();
    run(&server, few.path(), &["apply"]).assert_code(0);
    let for_few = statements_since(&server, mark);
    let mark = server.log().len();
    run(&server, many.path(), &["apply"]).assert_code(0);
    let for_many = statements_since(&server, mark);
    assert!(for_few > 0);
    if server.major() >= 15 {
        assert_eq!(
            for_few, for_many,
            "a no-op run costs the same for 2 and 40 tenants"
        );
    } else {
        // 14 and older read schema public over one short session per tenant
        // database; the admin session's own queries stay fixed.
        assert!(for_many > for_few);
    }
}
