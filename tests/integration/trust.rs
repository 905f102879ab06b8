//! Trust, part two: what a users file may take (the adoption policy for
//! existing roles, the ownership rule for existing databases), tenants that
//! cannot log in, verifiers that cost too much to check, and an admin that
//! may not do what a line asks. Each test reproduces an attack or a defect
//! against a real server and checks that nothing is taken, nothing leaks,
//! and the article's own layout still migrates. Not version-sensitive
//! except where noted (role memberships and ADMIN OPTION differ on 16+).

use std::time::{Duration, Instant};

use crate::support::cli::{run, run_env, UsersFile};
use crate::support::one;
use crate::support::server::PgServer;

#[track_caller]
fn assert_has(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "missing {needle:?} in\n{haystack}"
    );
}

/// Every attribute of the roles that a refused line must leave alone.
fn roles_snapshot(server: &PgServer) -> Vec<Vec<Option<String>>> {
    server.query(
        "SELECT rolname, rolcanlogin::text, rolpassword IS NULL, rolsuper::text,
                (SELECT string_agg(roleid::regrole::text, ',' ORDER BY 1)
                   FROM pg_auth_members WHERE member = a.oid)
           FROM pg_authid a WHERE rolname NOT LIKE 'pg\\_%' ORDER BY 1",
    )
}

#[test]
fn privileged_roles_are_not_taken_over_by_a_users_file_line() {
    let server = PgServer::start();
    // pg_read_all_data is new in 14; on 13 another predefined role stands in.
    let all_data = if server.major() >= 14 {
        "pg_read_all_data"
    } else {
        "pg_read_all_stats"
    };
    server.query(&format!(
        "CREATE ROLE admin_member NOLOGIN; GRANT postgres TO admin_member;
         CREATE ROLE shell_member NOLOGIN; GRANT pg_execute_server_program TO shell_member;
         CREATE ROLE reader_member NOLOGIN; GRANT pg_read_server_files TO reader_member;
         CREATE ROLE writer_member LOGIN; GRANT pg_write_server_files TO writer_member;
         CREATE ROLE all_data LOGIN; GRANT {all_data} TO all_data;
         CREATE ROLE creator LOGIN CREATEROLE;
         CREATE ROLE group_role NOLOGIN;
         CREATE ROLE article LOGIN PASSWORD 'old-article-pw'"
    ));
    let names = [
        "admin_member",
        "shell_member",
        "reader_member",
        "writer_member",
        "all_data",
        "creator",
        "group_role",
    ];
    let mut content: String = names.iter().map(|n| format!("{n}:take-{n}\n")).collect();
    content.push_str("article:new-article-pw\n");
    let users = UsersFile::new(&content);
    let before = roles_snapshot(&server);

    let plan = run(&server, users.path(), &["plan"]);
    plan.assert_code(1);
    for name in &names {
        assert_has(&plan.stdout, &format!("! role \"{name}\""));
        assert!(
            !plan.stdout.contains(&format!("~ role \"{name}\"")),
            "{}",
            plan.stdout
        );
    }
    assert_has(
        &plan.stdout,
        r#"! role "admin_member" is a member of "postgres"; a tenant role must be a member of no role"#,
    );
    assert_has(
        &plan.stdout,
        r#"! role "creator" exists with CREATEROLE; pgtenant manages only plain login roles"#,
    );
    assert_has(
        &plan.stdout,
        r#"! role "group_role" exists with NOLOGIN and was not created by pgtenant"#,
    );
    // The article's own roles (plain LOGIN) are still adopted silently.
    assert_has(&plan.stdout, r#"~ role "article": password"#);

    let status = run(&server, users.path(), &["status", "-o", "json"]);
    status.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    for row in doc["tenants"].as_array().unwrap() {
        let refused = row["reason"].is_string();
        assert_eq!(refused, row["state"] == "refused", "{row}");
        assert_eq!(refused, row["tenant"] != "article", "{row}");
    }

    let apply = run(&server, users.path(), &["apply"]);
    apply.assert_code(1);
    assert_has(&apply.stderr, "refusing to manage role \"shell_member\"");
    assert_has(
        &apply.stderr,
        "8 tenants: 1 created, 0 updated, 0 unchanged, 7 failed",
    );
    // Nothing of the refused roles changed; no database was made for them.
    let after: Vec<_> = roles_snapshot(&server)
        .into_iter()
        .filter(|r| r[0].as_deref() != Some("article"))
        .collect();
    let before: Vec<_> = before
        .into_iter()
        .filter(|r| r[0].as_deref() != Some("article"))
        .collect();
    assert_eq!(after, before);
    for name in &names {
        assert!(server
            .try_connect(name, &format!("take-{name}"), "postgres")
            .is_err());
        assert_eq!(
            one(
                &server,
                &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}_db'")
            )
            .as_deref(),
            Some("0")
        );
    }
    server
        .try_connect("article", "new-article-pw", "article_db")
        .expect("the article's role is adopted");
}

#[test]
fn roles_pgtenant_created_carry_its_marker_and_get_login_back() {
    let server = PgServer::start();
    let users = UsersFile::new("marked:pw-marked\n");
    run(&server, users.path(), &["apply"]).assert_code(0);
    assert_eq!(
        one(
            &server,
            "SELECT shobj_description('marked'::regrole, 'pg_authid')"
        )
        .as_deref(),
        Some("managed by pgtenant")
    );
    // Someone takes LOGIN away: the role is pgtenant's, so it is repaired.
    server.query("ALTER ROLE marked NOLOGIN");
    let plan = run(&server, users.path(), &["plan"]);
    plan.assert_code(0);
    assert_has(&plan.stdout, r#"~ role "marked": login"#);
    run(&server, users.path(), &["apply"]).assert_code(0);
    server
        .try_connect("marked", "pw-marked", "marked_db")
        .expect("login is back");
}

/// The article's layout: the admin made `<user>_db` (empty) and the user;
/// the tenant's own database whose owner drifted; and two databases that
/// belong to someone else and hold their data.
#[test]
fn databases_are_not_taken_from_owners_with_data_in_them() {
    let server = PgServer::start();
    // One statement per call: CREATE DATABASE cannot share a query string.
    for sql in [
        "CREATE ROLE other LOGIN PASSWORD 'other-pw'",
        "CREATE DATABASE billing_db OWNER other",
        "CREATE ROLE article LOGIN PASSWORD 'x'",
        "CREATE DATABASE article_db",
        "CREATE DATABASE boss_db",
    ] {
        server.query(sql);
    }
    server
        .exec_as(
            "other",
            "other-pw",
            "billing_db",
            "CREATE TABLE invoices (id int)",
        )
        .unwrap();
    server.query_db("boss_db", "CREATE TABLE secrets (v text)");
    // A tenant whose own database was given away by hand later: its tables
    // are its own, so the database is put back.
    let users = UsersFile::new("drifted:pw-drifted\n");
    run(&server, users.path(), &["apply"]).assert_code(0);
    server
        .exec_as(
            "drifted",
            "pw-drifted",
            "drifted_db",
            "CREATE TABLE mine (v int)",
        )
        .unwrap();
    server.query("ALTER DATABASE drifted_db OWNER TO other");

    users.write("billing:pw-billing\nboss:pw-boss\narticle:pw-article\ndrifted:pw-drifted\n");
    let acl = |db: &str| {
        one(
            &server,
            &format!(
                "SELECT pg_get_userbyid(datdba) || ' ' || coalesce(datacl::text, 'default') \
                   FROM pg_database WHERE datname = '{db}'"
            ),
        )
    };
    let billing_before = acl("billing_db");
    let boss_before = acl("boss_db");

    let plan = run(&server, users.path(), &["plan"]);
    plan.assert_code(1);
    assert_has(
        &plan.stdout,
        r#"! database "billing_db" is owned by "other" and holds objects owned by "other"; pgtenant gives a database to its tenant only when nothing in it belongs to another role: if it is "billing"'s, give it yourself (ALTER DATABASE "billing_db" OWNER TO "billing"), else remove the line or pick another user name"#,
    );
    assert_has(
        &plan.stdout,
        r#"! database "boss_db" is owned by "postgres" and holds objects owned by "postgres""#,
    );
    assert_has(
        &plan.stdout,
        r#"~ database "article_db": owner "article" (was "postgres")"#,
    );
    assert_has(
        &plan.stdout,
        r#"~ database "drifted_db": owner "drifted" (was "other")"#,
    );
    assert!(
        !plan.stdout.contains(r#"role "billing""#),
        "{}",
        plan.stdout
    );

    let apply = run(&server, users.path(), &["apply"]);
    apply.assert_code(1);
    assert_eq!(acl("billing_db"), billing_before);
    assert_eq!(acl("boss_db"), boss_before);
    for role in ["billing", "boss"] {
        assert_eq!(
            one(
                &server,
                &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{role}'")
            )
            .as_deref(),
            Some("0"),
            "a refused tenant's role is not created"
        );
    }
    // The other application still reaches its data.
    server
        .exec_as(
            "other",
            "other-pw",
            "billing_db",
            "SELECT count(*) FROM invoices",
        )
        .expect("the owner keeps its database");
    // The article's migration still works; the drifted owner is put back.
    assert_eq!(
        acl("article_db").unwrap().split(' ').next(),
        Some("article")
    );
    assert_eq!(
        acl("drifted_db").unwrap().split(' ').next(),
        Some("drifted")
    );
    server
        .try_connect("article", "pw-article", "article_db")
        .expect("article logs in");
}

/// Version-sensitive only in that `VALID UNTIL` and limits behave the same on
/// 13-18; run on every major by the suite.
#[test]
fn tenants_that_cannot_log_in_are_not_reported_in_sync() {
    let server = PgServer::start();
    let users = UsersFile::new("expired:pw-e\nzero:pw-z\nclosed:pw-c\n");
    run(&server, users.path(), &["apply"]).assert_code(0);
    server.query(
        "ALTER ROLE expired VALID UNTIL '2000-01-01';
         ALTER ROLE zero CONNECTION LIMIT 0;
         ALTER DATABASE closed_db ALLOW_CONNECTIONS false",
    );
    assert!(server.try_connect("expired", "pw-e", "expired_db").is_err());
    assert!(server.try_connect("zero", "pw-z", "zero_db").is_err());
    assert!(server.try_connect("closed", "pw-c", "closed_db").is_err());

    let status = run(&server, users.path(), &["status"]);
    status.assert_code(0);
    let row = |name: &str| -> Vec<String> {
        status
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("\"{name}\"")))
            .unwrap()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(row("expired")[1], "no");
    assert_eq!(row("zero")[1], "no");
    assert_has(&status.stdout, r#""closed_db" (no connections)"#);

    let plan = run(&server, users.path(), &["plan", "--exit-code"]);
    plan.assert_code(3);
    assert_has(
        &plan.stdout,
        r#"~ role "expired": valid until infinity (expired)"#,
    );
    assert_has(
        &plan.stdout,
        r#"~ role "zero": connection limit -1 (was 0)"#,
    );
    assert_has(&plan.stdout, r#"~ database "closed_db": allow connections"#);

    run(&server, users.path(), &["apply"]).assert_code(0);
    server.try_connect("expired", "pw-e", "expired_db").unwrap();
    server.try_connect("zero", "pw-z", "zero_db").unwrap();
    server.try_connect("closed", "pw-c", "closed_db").unwrap();
    run(&server, users.path(), &["plan", "--exit-code"]).assert_code(0);
}

/// A tenant sets its own verifier with 200 million iterations: checking it
/// would take minutes of CPU at every run. It is not checked (the command
/// returns at once) and the password is reset.
#[test]
fn an_absurd_iteration_count_costs_no_hashing() {
    let server = PgServer::start();
    let users = UsersFile::new("greedy:pw-greedy\n");
    run(&server, users.path(), &["apply"]).assert_code(0);
    let absurd = "SCRAM-SHA-256$200000000:c2FsdHNhbHRzYWx0c2FsdA==$\
                  dGhpc2lzbm90YXJlYWxzdG9yZWRrZXlhdGFsbDEyMzQ=:\
                  dGhpc2lzbm90YXJlYWxzZXJ2ZXJrZXlhdGFsbDEyMzQ=";
    // The tenant can do this itself (`ALTER ROLE greedy PASSWORD '...'`),
    // but the server then spends the 200 million iterations in the tenant's
    // own session; the catalog update gives the same state at once.
    server.query(&format!(
        "UPDATE pg_authid SET rolpassword = '{absurd}' WHERE rolname = 'greedy'"
    ));
    assert!(one(
        &server,
        "SELECT rolpassword FROM pg_authid WHERE rolname = 'greedy'"
    )
    .unwrap()
    .starts_with("SCRAM-SHA-256$200000000:"));

    // Generous: checking would take minutes; not checking takes milliseconds.
    let bound = Duration::from_secs(20);
    let started = Instant::now();
    let status = run(&server, users.path(), &["status"]);
    status.assert_code(0);
    assert!(
        started.elapsed() < bound,
        "status took {:?}",
        started.elapsed()
    );
    assert_has(&status.stdout, "excessive iterations");
    let started = Instant::now();
    let apply = run(&server, users.path(), &["apply"]);
    apply.assert_code(0);
    assert!(
        started.elapsed() < bound,
        "apply took {:?}",
        started.elapsed()
    );
    assert_has(&apply.stderr, "excessive iteration count");
    server
        .try_connect("greedy", "pw-greedy", "greedy_db")
        .expect("the password is reset");
    run(&server, users.path(), &["plan", "--exit-code"]).assert_code(0);
}

/// A non-superuser admin without CREATEROLE: the line cannot be applied, so
/// no statement carrying a verifier is sent at all (the server would log the
/// refused statement with its text).
#[test]
fn an_admin_without_createrole_sends_no_verifier() {
    let server = PgServer::builder()
        .conf("log_min_error_statement", "error")
        .start();
    server.query("CREATE ROLE weak LOGIN CREATEDB PASSWORD 'weak-pw'");
    let users = UsersFile::new("newcomer:pw-newcomer\n");
    let env = [("PGUSER", "weak"), ("PGPASSWORD", "weak-pw")];
    let plan = run_env(&server, users.path(), &["plan"], &env);
    plan.assert_code(1);
    assert_has(
        &plan.stdout,
        r#"! the admin role "weak" has neither SUPERUSER nor CREATEROLE, so it cannot create role "newcomer""#,
    );
    let apply = run_env(&server, users.path(), &["apply"], &env);
    apply.assert_code(1);
    let log = server.log();
    assert!(!log.contains("SCRAM-SHA-256$"), "{log}");
    assert!(!log.contains("CREATE ROLE"), "{log}");
}

/// A session of its own, on its own thread and runtime, for what a test must
/// keep open while pgtenant runs: a tenant's open transaction, a monitoring
/// role polling `pg_stat_activity`.
pub(crate) struct Session {
    tx: std::sync::mpsc::Sender<Request>,
}

/// A statement for the session's thread, and where to send its rows.
type Request = (String, std::sync::mpsc::Sender<Result<Vec<String>, String>>);

impl Session {
    pub(crate) fn open(server: &PgServer, user: &str, password: &str, db: &str) -> Session {
        let mut config = tokio_postgres::Config::new();
        config
            .host(server.host())
            .port(server.port())
            .user(user)
            .password(password)
            .dbname(db)
            .connect_timeout(Duration::from_secs(5));
        let (tx, rx) = std::sync::mpsc::channel::<Request>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (client, connection) = match config.connect(tokio_postgres::NoTls).await {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                tokio::spawn(connection);
                let _ = ready_tx.send(Ok(()));
                while let Ok((sql, reply)) = rx.recv() {
                    let result = client
                        .simple_query(&sql)
                        .await
                        .map(|messages| {
                            messages
                                .into_iter()
                                .filter_map(|m| match m {
                                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                                        Some(r.get(0).unwrap_or("").to_owned())
                                    }
                                    _ => None,
                                })
                                .collect()
                        })
                        .map_err(|e| e.to_string());
                    let _ = reply.send(result);
                }
            });
        });
        ready_rx
            .recv()
            .unwrap()
            .unwrap_or_else(|e| panic!("login as {user} failed: {e}"));
        Session { tx }
    }

    /// The first column of every row.
    #[track_caller]
    pub(crate) fn query(&self, sql: &str) -> Vec<String> {
        let (reply, rx) = std::sync::mpsc::channel();
        self.tx.send((sql.to_owned(), reply)).unwrap();
        rx.recv().unwrap().unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

/// Runs the real binary, killing it at `deadline` (a hang must fail the test,
/// not stall the suite); the exit code (None when killed) and stderr.
fn run_bounded(
    server: &PgServer,
    users: &std::path::Path,
    args: &[&str],
    deadline: Duration,
) -> (Option<i32>, String, Duration) {
    use std::io::Read;
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("pgtenant"));
    cmd.env_clear()
        .args(args)
        .env("DBUSERS", users)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (k, v) in server.admin_env() {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    (code, reader.join().unwrap(), elapsed)
}

/// A tenant holds a lock on its own role (`BEGIN; ALTER ROLE me ...` left
/// open). pgtenant fails that tenant within `--lock-timeout` and applies the
/// others; before, `apply` waited forever.
#[test]
fn a_tenant_holding_a_lock_fails_alone_within_the_timeout() {
    let server = PgServer::start();
    let users = UsersFile::new("locked:pw-1\nfree:pw-1\n");
    run(&server, users.path(), &["apply"]).assert_code(0);
    let tenant = Session::open(&server, "locked", "pw-1", "locked_db");
    tenant.query("BEGIN");
    tenant.query("ALTER ROLE locked PASSWORD 'mine'");
    users.write("locked:pw-2\nfree:pw-2\n");
    let (code, stderr, elapsed) = run_bounded(
        &server,
        users.path(),
        &["apply", "--lock-timeout", "1s"],
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert_has(
        &stderr,
        r#"tenant "locked" failed: failed to alter role "locked": canceling statement due to lock timeout (SQLSTATE 55P03)"#,
    );
    assert_has(
        &stderr,
        "2 tenants: 0 created, 1 updated, 0 unchanged, 1 failed",
    );
    eprintln!("apply with a locked tenant took {elapsed:?}");
    server
        .try_connect("free", "pw-2", "free_db")
        .expect("the other tenant is applied");
    tenant.query("COMMIT");
    // The documented defaults, spelled out (docs/adoption.md).
    run(
        &server,
        users.path(),
        &["apply", "--lock-timeout", "5s", "--statement-timeout", "2m"],
    )
    .assert_code(0);
    server
        .try_connect("locked", "pw-2", "locked_db")
        .expect("applied once the lock is gone");
}

/// A monitoring role (`pg_monitor`, what exporters run as) polls
/// `pg_stat_activity` in a tight loop while pgtenant creates 200 tenants and
/// then rotates all 200 passwords; it never sees a verifier, nor does
/// `pg_stat_statements` or the server log. Before, it saw 199 of 200.
#[test]
fn a_monitoring_role_never_sees_a_verifier() {
    let server = PgServer::builder()
        .conf("shared_preload_libraries", "pg_stat_statements")
        .conf("log_statement", "all")
        .conf("log_min_duration_statement", "0")
        .start();
    server.query(
        "CREATE EXTENSION pg_stat_statements;
         CREATE ROLE watcher LOGIN PASSWORD 'watch-pw' IN ROLE pg_monitor",
    );
    let file = |round: usize| -> String {
        (0..200)
            .map(|i| format!("t{i}:round-{round}-pw-{i}\n"))
            .collect()
    };
    let users = UsersFile::new(file(1));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        let watcher = Session::open(&server, "watcher", "watch-pw", "postgres");
        std::thread::spawn(move || {
            let (mut polls, mut seen) = (0usize, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for q in watcher.query(
                    "SELECT coalesce(query, '') FROM pg_stat_activity \
                      WHERE pid <> pg_backend_pid()",
                ) {
                    if q.contains("SCRAM-SHA-256$") || q.contains("PASSWORD") {
                        seen.push(q);
                    }
                }
                polls += 1;
            }
            let statements = watcher.query("SELECT query FROM pg_stat_statements");
            (polls, seen, statements)
        })
    };
    let started = Instant::now();
    run(&server, users.path(), &["apply"]).assert_code(0);
    eprintln!("creating 200 tenants took {:?}", started.elapsed());
    users.write(file(2));
    let started = Instant::now();
    let rotate = run(&server, users.path(), &["apply"]);
    eprintln!("rotating 200 passwords took {:?}", started.elapsed());
    rotate.assert_code(0);
    assert_has(
        &rotate.stderr,
        "200 tenants: 0 created, 200 updated, 0 unchanged",
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (polls, seen, statements) = poller.join().unwrap();
    eprintln!("{polls} polls of pg_stat_activity during 400 password statements");
    assert!(polls > 20, "the poller barely ran: {polls} polls");
    assert!(
        seen.is_empty(),
        "{} verifiers seen, e.g. {:?}",
        seen.len(),
        seen[0]
    );
    let leaked: Vec<&String> = statements
        .iter()
        .filter(|q| {
            q.contains("SCRAM-SHA-256$") || (q.contains("PASSWORD") && !q.contains("watcher"))
        })
        .collect();
    assert!(leaked.is_empty(), "pg_stat_statements: {leaked:?}");
    let log = server.log();
    assert!(
        !log.contains("SCRAM-SHA-256$"),
        "the server log holds a verifier"
    );
    server
        .try_connect("t199", "round-2-pw-199", "t199_db")
        .unwrap();
}
