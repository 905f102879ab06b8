//! Behaviour that differs between PostgreSQL majors. Each test asserts the
//! right result for the major it runs on (`PGTENANT_TEST_PG`); none is skipped.

use crate::support::cli::{run, UsersFile};
use crate::support::server::PgServer;

fn one(server: &PgServer, db: &str, sql: &str) -> Option<String> {
    server
        .query_db(db, sql)
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next().flatten())
}

#[test]
fn schema_public_belongs_to_the_tenant_on_every_major() {
    let server = PgServer::start();
    let users = UsersFile::new("alice:alice-pw\nbob:bob-pw\n");
    run(&server, users.path(), &["apply"]).assert_code(0);
    let owner = one(
        &server,
        "alice_db",
        "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'public'",
    );
    let public_create = one(
        &server,
        "alice_db",
        "SELECT has_schema_privilege('public', 'public', 'CREATE')::text",
    );
    if server.major() <= 14 {
        // pgtenant hands schema public to the tenant and revokes PUBLIC's CREATE.
        assert_eq!(owner.as_deref(), Some("alice"), "major {}", server.major());
    } else {
        // 15 and newer: the database owner owns it through pg_database_owner.
        assert_eq!(
            owner.as_deref(),
            Some("pg_database_owner"),
            "major {}",
            server.major()
        );
    }
    assert_eq!(public_create.as_deref(), Some("false"));

    // Even with CONNECT granted by hand, another tenant cannot create objects
    // in alice's schema public: the same guarantee on every major.
    server.query("GRANT CONNECT ON DATABASE alice_db TO bob");
    let err = server
        .exec_as(
            "bob",
            "bob-pw",
            "alice_db",
            "CREATE TABLE public.intruder (id int)",
        )
        .expect_err("bob cannot create in alice's schema public");
    assert!(err.contains("permission denied"), "{err}");
    server
        .exec_as(
            "alice",
            "alice-pw",
            "alice_db",
            "CREATE TABLE public.mine (id int)",
        )
        .expect("alice can");
}

#[test]
fn old_majors_repair_schema_public_by_hand_changes() {
    let server = PgServer::start();
    let users = UsersFile::new("app:pw\n");
    run(&server, users.path(), &["apply"]).assert_code(0);
    server.query_db("app_db", "GRANT CREATE ON SCHEMA public TO PUBLIC");
    let plan = run(&server, users.path(), &["plan", "--exit-code"]);
    if server.major() <= 14 {
        plan.assert_code(3);
        assert!(
            plan.stdout
                .contains("revoke CREATE on schema public from PUBLIC"),
            "{}",
            plan.stdout
        );
        run(&server, users.path(), &["apply"]).assert_code(0);
        assert_eq!(
            one(
                &server,
                "app_db",
                "SELECT has_schema_privilege('public', 'public', 'CREATE')::text"
            )
            .as_deref(),
            Some("false")
        );
    } else {
        // 15 and newer: pgtenant reads no per-database schema state; a grant
        // made by hand inside the tenant's database is the tenant's business.
        plan.assert_code(0);
    }
}

fn stored_secret(server: &PgServer, role: &str) -> String {
    one(
        server,
        "postgres",
        &format!("SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'"),
    )
    .expect("a stored secret")
}

#[test]
fn md5_servers_get_md5_and_an_upgrade_replaces_it_once() {
    let server = PgServer::builder()
        .conf("password_encryption", "md5")
        // The md5 method accepts both md5 and SCRAM secrets.
        .hba_line("host all all 127.0.0.1/32 md5")
        .start();
    let users = UsersFile::new("legacy:old-school\n");
    run(&server, users.path(), &["apply"]).assert_code(0);
    let secret = stored_secret(&server, "legacy");
    assert!(secret.starts_with("md5"), "server asked for md5");
    server
        .try_connect("legacy", "old-school", "legacy_db")
        .expect("md5 login");
    run(&server, users.path(), &["plan", "--exit-code"]).assert_code(0);

    server.query("ALTER SYSTEM SET password_encryption = 'scram-sha-256'");
    server.query("SELECT pg_reload_conf()");
    let plan = run(&server, users.path(), &["plan", "--exit-code"]);
    plan.assert_code(3);
    assert!(
        plan.stdout.contains("password (md5 to scram-sha-256)"),
        "{}",
        plan.stdout
    );
    run(&server, users.path(), &["apply"]).assert_code(0);
    let secret = stored_secret(&server, "legacy");
    assert!(secret.starts_with("SCRAM-SHA-256$"));
    server
        .try_connect("legacy", "old-school", "legacy_db")
        .expect("scram login");
    run(&server, users.path(), &["plan", "--exit-code"]).assert_code(0);
    assert_eq!(stored_secret(&server, "legacy"), secret, "upgraded once");
}

#[test]
fn scram_iterations_follow_the_server() {
    let major = PgServer::start().major();
    let server = if major >= 16 {
        PgServer::builder().conf("scram_iterations", "8192").start()
    } else {
        PgServer::start()
    };
    let users = UsersFile::new("iter:pw\n");
    run(&server, users.path(), &["apply"]).assert_code(0);
    let secret = stored_secret(&server, "iter");
    let expected = if major >= 16 { "8192" } else { "4096" };
    assert!(
        secret.starts_with(&format!("SCRAM-SHA-256${expected}:")),
        "major {major}: {}",
        secret
            .split('$')
            .nth(1)
            .unwrap_or("")
            .split(':')
            .next()
            .unwrap_or("")
    );
    server
        .try_connect("iter", "pw", "iter_db")
        .expect("logs in");
    run(&server, users.path(), &["plan", "--exit-code"]).assert_code(0);
}
