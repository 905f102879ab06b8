//! A non-superuser admin: `LOGIN CREATEROLE CREATEDB` and nothing else
//! (plus, on 14 and older, ownership of schema public in template1); see
//! docs/non-superuser-admin.md. Runs on whatever
//! major `PGTENANT_TEST_PG` selects.

use crate::support::cli::{run_env, Run, UsersFile};
use crate::support::one;
use crate::support::server::PgServer;

const ADMIN: &str = "tenant_admin";
const ADMIN_PASSWORD: &str = "admin-Pw-7";

/// A server with the non-superuser admin; `template_prep`: on 14 and older,
/// give it schema public of template1 (the documented one-time setup).
fn server_with_admin(template_prep: bool) -> PgServer {
    let server = PgServer::start();
    server.query(&format!(
        "CREATE ROLE {ADMIN} LOGIN CREATEROLE CREATEDB PASSWORD '{ADMIN_PASSWORD}'"
    ));
    if template_prep && server.major() < 15 {
        server.query_db(
            "template1",
            &format!("ALTER SCHEMA public OWNER TO {ADMIN}"),
        );
    }
    server
}

fn as_admin(server: &PgServer, users: &UsersFile, args: &[&str]) -> Run {
    run_env(
        server,
        users.path(),
        args,
        &[("PGUSER", ADMIN), ("PGPASSWORD", ADMIN_PASSWORD)],
    )
}

#[track_caller]
fn assert_has(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "missing {needle:?} in\n{haystack}"
    );
}

#[test]
fn non_superuser_admin_provisions_and_isolates_tenants() {
    let server = server_with_admin(true);
    let users = UsersFile::new("alpha:pw-alpha\nbeta:pw-beta\n");

    // Plan first: the admin cannot read pg_authid, and says so.
    let plan = as_admin(&server, &users, &["plan"]);
    plan.assert_code(0);
    assert_has(&plan.stdout, r#"+ role "alpha" (login, password)"#);

    let out = as_admin(&server, &users, &["apply"]);
    out.assert_code(0);
    for line in [
        r#"created role "alpha""#,
        r#"granted role "alpha" to the admin "tenant_admin""#,
        r#"created database "alpha_db" owned by "alpha""#,
        r#"revoked CONNECT, TEMPORARY on database "alpha_db" from PUBLIC"#,
        "2 tenants: 2 created, 0 updated, 0 unchanged",
    ] {
        assert_has(&out.stderr, line);
    }

    // Owned by the tenant, isolated from the other tenant.
    assert_eq!(
        one(
            &server,
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'alpha_db'"
        )
        .as_deref(),
        Some("alpha")
    );
    server
        .try_connect("alpha", "pw-alpha", "alpha_db")
        .expect("alpha logs in to its database");
    let refused = server
        .try_connect("beta", "pw-beta", "alpha_db")
        .expect_err("beta cannot reach alpha_db");
    assert_has(&refused, "permission denied for database");
    assert_eq!(
        one(
            &server,
            "SELECT has_database_privilege('beta', 'alpha_db', 'CONNECT')::text \
                 || has_database_privilege('beta', 'alpha_db', 'TEMPORARY')::text"
        )
        .as_deref(),
        Some("falsefalse")
    );
    if server.major() < 15 {
        let schema = server.query_db(
            "alpha_db",
            "SELECT nspowner::regrole::text, \
                    has_schema_privilege('beta', oid, 'CREATE')::text \
               FROM pg_namespace WHERE nspname = 'public'",
        );
        assert_eq!(
            schema,
            vec![vec![Some("alpha".to_owned()), Some("false".to_owned())]]
        );
    }
    if server.major() >= 16 {
        // The admin's own grant: SET to give the role a database, no
        // inheritance of the tenant's privileges.
        let grants = server.query(
            "SELECT m.admin_option::text, m.inherit_option::text, m.set_option::text
               FROM pg_auth_members m
              WHERE m.roleid = 'alpha'::regrole AND m.member = 'tenant_admin'::regrole
              ORDER BY m.grantor = 'tenant_admin'::regrole",
        );
        let t = |v: &str| Some(v.to_owned());
        assert_eq!(
            grants,
            vec![
                // From CREATE ROLE (16+: the creator gets ADMIN OPTION).
                vec![t("true"), t("false"), t("false")],
                // Granted by pgtenant.
                vec![t("false"), t("false"), t("true")],
            ]
        );
    }

    // Stored secrets are not readable: the plan always sets passwords, and
    // status cannot tell.
    let plan = as_admin(&server, &users, &["plan"]);
    plan.assert_code(0);
    assert_has(
        &plan.stdout,
        r#"~ role "alpha": password (cannot read stored secrets)"#,
    );
    let status = as_admin(&server, &users, &["status"]);
    status.assert_code(0);
    let alpha: Vec<&str> = status
        .stdout
        .lines()
        .find(|l| l.starts_with("\"alpha\""))
        .expect("a row for alpha")
        .split_whitespace()
        .collect();
    assert_eq!(
        alpha,
        [
            "\"alpha\"",
            "yes",
            "\"alpha_db\"",
            "\"alpha\"",
            "unknown",
            "yes",
            "unknown"
        ]
    );
    let json = as_admin(&server, &users, &["status", "-o", "json"]);
    let doc = crate::support::schema::assert_valid("status", &json.stdout);
    assert_eq!(doc["summary"]["unknown"], 2, "{doc}");

    // A second run, with a rotated password: converges, and the new
    // password works.
    users.write("alpha:pw-alpha-2\nbeta:pw-beta\n");
    let again = as_admin(&server, &users, &["apply"]);
    again.assert_code(0);
    assert_has(
        &again.stderr,
        "2 tenants: 0 created, 2 updated, 0 unchanged",
    );
    server
        .try_connect("alpha", "pw-alpha-2", "alpha_db")
        .expect("the rotated password works");

    // The quiet-logging settings are superuser-only and were not tried.
    let log = server.log();
    assert!(!log.contains("permission denied to set parameter"), "{log}");
}

/// On 14 and older, schema public of a new database is the template's,
/// owned by the bootstrap superuser: without the one-time setup the tenant's
/// schema cannot be fixed, and the error says what to do.
#[test]
fn old_servers_without_template_setup_fail_clearly() {
    let server = server_with_admin(false);
    if server.major() >= 15 {
        return;
    }
    let users = UsersFile::new("alpha:pw-alpha\n");
    let out = as_admin(&server, &users, &["apply"]);
    out.assert_code(1);
    assert_has(
        &out.stderr,
        r#"failed to change owner of schema public in "alpha_db": must be owner of schema public (SQLSTATE 42501); on PostgreSQL 14 and older a non-superuser admin must own schema public in template1 (as a superuser, once: ALTER SCHEMA public OWNER TO "tenant_admin" in database template1)"#,
    );
}

/// A tenant role that exists already and that the admin did not create: on
/// 15 and older CREATEROLE manages it; on 16 and newer the admin needs ADMIN
/// OPTION on it, and without it the tenant is refused before anything (no
/// verifier) is sent.
#[test]
fn existing_role_created_by_someone_else() {
    let server = server_with_admin(true);
    server.query("CREATE ROLE gamma LOGIN PASSWORD 'old'");
    let users = UsersFile::new("gamma:pw-gamma\n");
    let out = as_admin(&server, &users, &["apply"]);
    if server.major() < 16 {
        out.assert_code(0);
        server
            .try_connect("gamma", "pw-gamma", "gamma_db")
            .expect("gamma logs in to its database");
        return;
    }
    out.assert_code(1);
    assert_has(
        &out.stderr,
        r#"refusing to manage role "gamma": the admin role "tenant_admin" may not alter role "gamma" (nothing was sent)"#,
    );
    assert!(!server.log().contains("SCRAM-SHA-256$"));
    // The documented remedy: a superuser grants ADMIN OPTION once.
    server.query(&format!("GRANT gamma TO {ADMIN} WITH ADMIN OPTION"));
    as_admin(&server, &users, &["apply"]).assert_code(0);
    server
        .try_connect("gamma", "pw-gamma", "gamma_db")
        .expect("gamma logs in to its database");
}
