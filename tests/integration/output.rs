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
