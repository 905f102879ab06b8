//! Snapshots of what people read: `--help`, input errors, `plan` and `status`.
//! A change to any of them shows up as a snapshot diff in review.

use crate::support::cli::{run, UsersFile};
use crate::support::pgtenant::Pgtenant;
use crate::support::server::PgServer;

/// Drops the timestamp that starts every text log line and replaces the
/// temporary path, so snapshots are stable.
fn normalize(stderr: &str, users: &UsersFile) -> String {
    stderr
        .lines()
        .map(|l| l.split_once(' ').map(|(_, rest)| rest).unwrap_or(l))
        .map(|l| l.replace(&users.path().display().to_string(), "USERS"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn help(args: &[&str]) -> String {
    let out = Pgtenant::bare().args(args).run();
    assert_eq!(out.code, 0);
    out.stdout
}

#[test]
fn help_text() {
    insta::assert_snapshot!("help", help(&["--help"]));
    insta::assert_snapshot!("help_plan", help(&["plan", "--help"]));
}

#[test]
fn usage_error_exits_2() {
    let out = Pgtenant::bare().args(["plan", "--output", "yaml"]).run();
    assert_eq!(out.code, 2);
    let out = Pgtenant::bare().args(["frobnicate"]).run();
    assert_eq!(out.code, 2);
}

#[test]
fn invalid_users_file_messages() {
    let users = UsersFile::new(
        "# tenants\nkeycloak:pw\nno colon here\n:orphan\npg_monitor:x\nkeycloak:again\nMixedCase:pw\n",
    );
    let out = crate::support::cli::run_raw(
        &["plan"],
        &[
            ("DBUSERS", users.path().to_str().unwrap()),
            ("PGPASSWORD", "unused"),
        ],
    );
    out.assert_code(2);
    insta::assert_snapshot!(normalize(&out.stderr, &users));
}

#[test]
fn plan_and_status_text() {
    let server = PgServer::start();
    let users = UsersFile::new(include_str!("../../examples/db_users.secret"));
    let plan = run(&server, users.path(), &["plan"]);
    plan.assert_code(0);
    // 14 and older also hand schema public to the tenant.
    let name = if server.major() <= 14 {
        "plan_fresh_pg13_14"
    } else {
        "plan_fresh"
    };
    insta::assert_snapshot!(name, plan.stdout);
    run(&server, users.path(), &["apply"]).assert_code(0);
    server.query("ALTER ROLE dolibarr PASSWORD 'changed-by-hand'");
    server.query("ALTER DATABASE keycloak_db OWNER TO postgres");
    let plan = run(&server, users.path(), &["plan"]);
    insta::assert_snapshot!("plan_drift", plan.stdout);
    let status = run(&server, users.path(), &["status"]);
    insta::assert_snapshot!("status_drift", status.stdout);
    let status = run(&server, users.path(), &["status", "--output", "json"]);
    insta::assert_snapshot!("status_drift_json", status.stdout);
}

/// The JSON contracts (`docs/schema/`) with a tenant in every state: in
/// sync, drifted, missing, refused. Snapshots pin the documents; the run
/// helper validates each against its schema.
#[test]
fn json_contracts_cover_every_state() {
    let server = PgServer::start();
    let users = UsersFile::new("keycloak:kc-pw\ndolibarr:dl-pw\n");
    run(&server, users.path(), &["apply"]).assert_code(0);
    server.query("ALTER ROLE dolibarr NOLOGIN PASSWORD 'changed-by-hand'");
    server.query("ALTER DATABASE dolibarr_db OWNER TO postgres");
    server.query("CREATE ROLE boss SUPERUSER");
    users.write("keycloak:kc-pw\ndolibarr:dl-pw\nboss:b-pw\nghost:g-pw\n");
    let suffix = if server.major() <= 14 { "_pg13_14" } else { "" };
    let plan = run(&server, users.path(), &["plan", "-o", "json"]);
    plan.assert_code(1);
    insta::assert_snapshot!(format!("plan_every_state_json{suffix}"), plan.stdout);
    let status = run(&server, users.path(), &["status", "-o", "json"]);
    status.assert_code(0);
    insta::assert_snapshot!("status_every_state_json", status.stdout);
    let status = run(&server, users.path(), &["status"]);
    insta::assert_snapshot!("status_every_state", status.stdout);
    // JSON logs of an apply that creates, updates, refuses: every event
    // about a tenant names it.
    let out = run(
        &server,
        users.path(),
        &["--log-format", "json", "--log-level", "debug", "apply"],
    );
    out.assert_code(1);
    let events: Vec<serde_json::Value> = out
        .stderr
        .lines()
        .map(|l| crate::support::schema::assert_valid("log", l))
        .collect();
    for (tenant, needle) in [
        ("boss", "refusing to manage role"),
        ("ghost", "created role"),
        ("ghost", "created database"),
        ("dolibarr", "enabled login"),
        ("dolibarr", "changed owner of database"),
    ] {
        assert!(
            events
                .iter()
                .any(|e| e["tenant"] == tenant && e["message"].as_str().unwrap().contains(needle)),
            "no {needle:?} event with tenant {tenant:?} in\n{}",
            out.stderr
        );
    }
}

/// A warning about the whole users file (its mode) has a `file` and no
/// `line` in a JSON log: no placeholder `"line": 0`.
#[test]
fn json_log_has_no_placeholder_line() {
    use std::os::unix::fs::PermissionsExt;
    let users = UsersFile::new("app:pw\n");
    std::fs::set_permissions(users.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = crate::support::cli::run_raw(
        &["--log-format", "json", "plan"],
        &[
            ("DBUSERS", users.path().to_str().unwrap()),
            ("PGHOST", "127.0.0.1"),
            ("PGPORT", "1"),
            ("PGPASSWORD", "unused"),
        ],
    );
    out.assert_code(1);
    let warning = out
        .stderr
        .lines()
        .map(|l| crate::support::schema::assert_valid("log", l))
        .find(|e| e["level"] == "WARN")
        .unwrap_or_else(|| panic!("no warning in\n{}", out.stderr));
    assert_eq!(warning["file"], users.path().to_str().unwrap());
    assert!(warning.get("line").is_none(), "{warning}");
}
