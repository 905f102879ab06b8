//! The first apply over several sessions (`--jobs`): how many sessions a run
//! opens, that a nearly full server is still provisioned (on the admin session
//! alone), and which `CREATE DATABASE` strategy is sent. Each test takes a few
//! seconds: a handful of tenants on one throwaway server.
//!
//! Interruptions of the parallel path (SIGKILL, fast shutdown) are covered by
//! `faults`, which runs with the default `--jobs`.

use crate::support::cli::{run, UsersFile};
use crate::support::server::PgServer;

fn users(n: usize) -> UsersFile {
    UsersFile::new(
        (0..n)
            .map(|i| format!("par{i}:secret-{i}\n"))
            .collect::<String>(),
    )
}

/// Sessions pgtenant opened to the maintenance database since `from` (a byte
/// offset in the server log); `log_connections` must be on.
fn admin_sessions_since(server: &PgServer, from: usize) -> usize {
    server.log()[from..]
        .lines()
        .filter(|l| {
            l.contains("connection authorized:")
                && l.contains("database=postgres")
                && l.contains("application_name=pgtenant")
        })
        .count()
}

fn tenant_databases(server: &PgServer) -> usize {
    server.query("SELECT count(*) FROM pg_catalog.pg_database WHERE datname LIKE 'par%\\_db'")[0][0]
        .as_deref()
        .and_then(|s| s.parse().ok())
        .expect("a count")
}

#[test]
fn first_apply_works_over_jobs_sessions_and_noop_over_one() {
    let server = PgServer::builder().conf("log_connections", "on").start();
    let file = users(8);

    let mark = server.log().len();
    let r = run(&server, file.path(), &["apply", "--jobs", "3"]);
    r.assert_code(0);
    assert!(r.stderr.contains("applying over 3 sessions"), "{r:#?}");
    assert!(r.stderr.contains("8 tenants: 8 created"), "{r:#?}");
    assert_eq!(admin_sessions_since(&server, mark), 3);
    assert_eq!(tenant_databases(&server), 8);

    // Nothing to do: no extra session is opened.
    let mark = server.log().len();
    let r = run(&server, file.path(), &["apply", "--jobs", "3"]);
    r.assert_code(0);
    assert!(
        r.stderr.contains("0 created, 0 updated, 8 unchanged"),
        "{r:#?}"
    );
    assert!(!r.stderr.contains("applying over"), "{r:#?}");
    assert_eq!(admin_sessions_since(&server, mark), 1);
}

#[test]
fn jobs_1_applies_on_the_admin_session_alone() {
    let server = PgServer::builder().conf("log_connections", "on").start();
    let file = users(5);
    let mark = server.log().len();
    let r = run(&server, file.path(), &["apply", "--jobs", "1"]);
    r.assert_code(0);
    assert!(r.stderr.contains("5 tenants: 5 created"), "{r:#?}");
    assert!(!r.stderr.contains("applying over"), "{r:#?}");
    assert_eq!(admin_sessions_since(&server, mark), 1);
    assert_eq!(tenant_databases(&server), 5);
}

#[test]
fn nearly_full_server_is_provisioned_on_one_session() {
    // 6 slots, 3 reserved for superusers, 1 taken by pgtenant's admin
    // session: the 2 left are kept for others, so nothing is spared.
    let server = PgServer::builder()
        .conf("max_connections", "6")
        .conf("superuser_reserved_connections", "3")
        .conf("log_connections", "on")
        .start();
    let file = users(6);
    let mark = server.log().len();
    let r = run(&server, file.path(), &["apply", "--jobs", "8"]);
    r.assert_code(0);
    assert!(
        r.stderr.contains(
            "applying over 1 session instead of 6: the server has few free connection slots"
        ),
        "{r:#?}"
    );
    assert!(r.stderr.contains("6 tenants: 6 created"), "{r:#?}");
    assert_eq!(admin_sessions_since(&server, mark), 1);
    assert_eq!(tenant_databases(&server), 6);
}

#[test]
fn jobs_out_of_range_is_a_usage_error() {
    let server = PgServer::start();
    let file = users(1);
    for bad in ["0", "65", "many"] {
        let r = run(&server, file.path(), &["apply", "--jobs", bad]);
        r.assert_code(2);
        assert!(
            r.stderr.contains("expected a number from 1 to 64"),
            "{r:#?}"
        );
    }
    assert_eq!(tenant_databases(&server), 0);
}

fn exists(server: &PgServer, sql: &str) -> bool {
    server.query(&format!("SELECT EXISTS ({sql})"))[0][0].as_deref() == Some("t")
}

#[test]
fn one_tenant_failing_leaves_the_others_applied() {
    let server = PgServer::start();
    let file = users(6);
    run(&server, file.path(), &["apply"]).assert_code(0);
    // Work for several tenants: two dropped whole, one whose password
    // changes and whose database is gone.
    for stmt in [
        "DROP DATABASE par1_db",
        "DROP ROLE par1",
        "DROP DATABASE par5_db",
        "DROP ROLE par5",
        "DROP DATABASE par3_db",
    ] {
        server.query(stmt);
    }
    let text = std::fs::read_to_string(file.path()).expect("read users file");
    file.write(text.replace("par3:secret-3", "par3:rotated-3"));
    // pgtenant's sessions give up on a lock after one second (`--lock-timeout`,
    // which every session sets over any role default); a transaction of the
    // test holds par3's row of pg_authid, so ALTER ROLE par3 fails.
    std::thread::scope(|scope| {
        let holder = scope.spawn(|| {
            server.query(
                "BEGIN; SELECT 1 FROM pg_catalog.pg_authid WHERE rolname = 'par3' FOR UPDATE; \
                 SELECT pg_catalog.pg_sleep(4); COMMIT",
            )
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !exists(
            &server,
            "SELECT FROM pg_catalog.pg_stat_activity WHERE wait_event = 'PgSleep'",
        ) {
            assert!(
                std::time::Instant::now() < deadline,
                "the lock holder never slept"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let r = run(
            &server,
            file.path(),
            &["apply", "--jobs", "4", "--lock-timeout", "1s"],
        );
        r.assert_code(1);
        assert!(r.stderr.contains("lock timeout"), "{r:#?}");
        assert!(
            r.stderr
                .contains("6 tenants: 2 created, 0 updated, 3 unchanged, 1 failed"),
            "{r:#?}"
        );
        holder.join().expect("lock holder");
    });
    assert!(exists(
        &server,
        "SELECT FROM pg_catalog.pg_database WHERE datname = 'par1_db'"
    ));
    assert!(exists(
        &server,
        "SELECT FROM pg_catalog.pg_database WHERE datname = 'par5_db'"
    ));
    // The failed tenant's database waits for its role.
    assert!(!exists(
        &server,
        "SELECT FROM pg_catalog.pg_database WHERE datname = 'par3_db'"
    ));
    server
        .try_connect("par3", "secret-3", "postgres")
        .expect("par3 keeps its old password");

    let r = run(&server, file.path(), &["apply", "--jobs", "4"]);
    r.assert_code(0);
    assert!(
        r.stderr.contains("1 created, 0 updated, 5 unchanged"),
        "{r:#?}"
    );
    server
        .try_connect("par3", "rotated-3", "par3_db")
        .expect("par3 logs in to its database with the new password");
}

/// Every session of the pool runs with issue 13's session settings (set in
/// `server::db::connect`), `lock_timeout` among them: with the row of every
/// role to change locked by another transaction, each of the three sessions
/// takes one tenant and gives up on it within `--lock-timeout`. A session
/// without the timeout would wait for the holder and then succeed.
#[test]
fn every_session_gives_up_on_a_lock_within_the_timeout() {
    let server = PgServer::start();
    let file = users(3);
    run(&server, file.path(), &["apply"]).assert_code(0);
    let text = std::fs::read_to_string(file.path()).expect("read users file");
    file.write(text.replace("secret-", "rotated-"));
    std::thread::scope(|scope| {
        let holder = scope.spawn(|| {
            server.query(
                "BEGIN; SELECT 1 FROM pg_catalog.pg_authid WHERE rolname LIKE 'par%' FOR UPDATE; \
                 SELECT pg_catalog.pg_sleep(8); COMMIT",
            )
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !exists(
            &server,
            "SELECT FROM pg_catalog.pg_stat_activity WHERE wait_event = 'PgSleep'",
        ) {
            assert!(
                std::time::Instant::now() < deadline,
                "the lock holder never slept"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let r = run(
            &server,
            file.path(),
            &["apply", "--jobs", "3", "--lock-timeout", "1s"],
        );
        r.assert_code(1);
        assert!(r.stderr.contains("applying over 3 sessions"), "{r:#?}");
        assert!(
            r.stderr
                .contains("3 tenants: 0 created, 0 updated, 0 unchanged, 3 failed"),
            "{r:#?}"
        );
        assert_eq!(r.stderr.matches("lock timeout").count(), 3, "{r:#?}");
        holder.join().expect("lock holder");
    });
    for i in 0..3 {
        server
            .try_connect(&format!("par{i}"), &format!("secret-{i}"), "postgres")
            .expect("every tenant keeps its old password");
    }
}

/// The `CREATE DATABASE` statements pgtenant sent since `from`.
fn create_database_statements(server: &PgServer, from: usize) -> Vec<String> {
    server.log()[from..]
        .lines()
        .filter_map(|l| l.split_once("statement: CREATE DATABASE "))
        .map(|(_, stmt)| stmt.to_owned())
        .collect()
}

#[test]
fn create_strategy_follows_fsync_unless_told() {
    // The fixture runs with fsync = off; this one is durable.
    for (fsync, args, want) in [
        ("off", &[][..], Some("STRATEGY = FILE_COPY")),
        ("on", &[][..], None),
        (
            "off",
            &["--create-strategy", "wal-log"][..],
            Some("STRATEGY = WAL_LOG"),
        ),
        (
            "on",
            &["--create-strategy", "file-copy"][..],
            Some("STRATEGY = FILE_COPY"),
        ),
    ] {
        let server = PgServer::builder()
            .conf("fsync", fsync)
            .conf("log_statement", "ddl")
            .start();
        let file = users(2);
        let mark = server.log().len();
        let mut all = vec!["apply"];
        all.extend_from_slice(args);
        let r = run(&server, file.path(), &all);
        r.assert_code(0);
        let statements = create_database_statements(&server, mark);
        assert_eq!(statements.len(), 2, "{statements:?}");
        for stmt in &statements {
            match want {
                // Before 15 there is no STRATEGY clause to send.
                Some(clause) if server.major() >= 15 => {
                    assert!(stmt.ends_with(clause), "fsync={fsync} {args:?}: {stmt}")
                }
                _ => assert!(!stmt.contains("STRATEGY"), "fsync={fsync} {args:?}: {stmt}"),
            }
        }
        let explicit = !args.is_empty();
        assert_eq!(
            r.stderr
                .contains("--create-strategy is ignored: PostgreSQL"),
            explicit && server.major() < 15,
            "{r:#?}"
        );
    }
}
