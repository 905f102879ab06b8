//! Concurrent pgtenant runs against one server: the advisory lock serializes
//! them, so however many run at once, each tenant is made exactly once, every
//! run succeeds, and none reports an error that only a race could cause.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

use crate::support::child::{spawn_pgtenant, wait_with_timeout};
use crate::support::cli::{run, UsersFile};
use crate::support::server::PgServer;

/// Errors a race between two unserialized runs would produce.
const RACE_ERRORS: &[&str] = &[
    "already exists",
    "tuple concurrently updated",
    "tuple concurrently deleted",
    "deadlock detected",
    "could not serialize",
    "duplicate key",
    "ERROR",
];

/// A session of the test's own holding pgtenant's advisory lock, so runs
/// started meanwhile queue up behind it and then race for it together.
pub struct LockHolder {
    release: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LockHolder {
    pub fn take(server: &PgServer) -> Self {
        let mut config = tokio_postgres::Config::new();
        config
            .host(server.host())
            .port(server.port())
            .user(server.superuser())
            .password(server.superuser_password())
            .dbname("postgres")
            .application_name("pgtenant-test-lock-holder");
        let (locked_tx, locked_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let (client, connection) = config.connect(NoTls).await.expect("lock holder login");
                let connection = tokio::spawn(connection);
                client
                    .execute(
                        "SELECT pg_advisory_lock($1)",
                        &[&pgtenant::server::db::ADVISORY_LOCK_KEY],
                    )
                    .await
                    .expect("take the advisory lock");
                locked_tx.send(()).expect("report the lock");
                let _ = tokio::task::spawn_blocking(move || release_rx.recv()).await;
                drop(client);
                let _ = connection.await;
            });
        });
        locked_rx.recv().expect("lock holder took the lock");
        LockHolder {
            release: Some(release_tx),
            thread: Some(thread),
        }
    }

    /// Ends the session, which releases the lock.
    pub fn release(&mut self) {
        if let Some(tx) = self.release.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        self.release();
    }
}

/// Waits until `n` sessions wait for an advisory lock.
pub fn wait_for_lock_waiters(server: &PgServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = server
            .query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted");
        let waiting: usize = rows[0][0].as_deref().unwrap().parse().unwrap();
        if waiting >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {waiting} of {n} runs queued on the advisory lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `(created, updated, unchanged)` from the summary line.
fn summary(stderr: &str) -> (usize, usize, usize) {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains(" tenants: ") || l.contains(" tenant: "))
        .unwrap_or_else(|| panic!("no summary in:\n{stderr}"));
    let number_before = |word: &str| -> usize {
        let end = line
            .find(word)
            .unwrap_or_else(|| panic!("{word} in {line}"));
        line[..end]
            .trim_end()
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (
        number_before(" created"),
        number_before(" updated"),
        number_before(" unchanged"),
    )
}

fn assert_no_race_errors(stderr: &str, who: &str) {
    for needle in RACE_ERRORS {
        assert!(
            !stderr.contains(needle),
            "{who}: stderr mentions {needle:?}:\n{stderr}"
        );
    }
}

/// Every tenant of `names` is whole: login role with a SCRAM verifier, its
/// database owned by it, PUBLIC without CONNECT and TEMPORARY.
fn assert_tenants(server: &PgServer, names: &[String]) {
    let list = names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(",");
    let rows = server.query(&format!(
        "SELECT count(*) FROM pg_authid r
           JOIN pg_database d ON d.datname = r.rolname || '_db' AND d.datdba = r.oid
          WHERE r.rolname IN ({list}) AND r.rolcanlogin
            AND r.rolpassword LIKE 'SCRAM-SHA-256$%'
            AND NOT has_database_privilege('public', d.oid, 'CONNECT')
            AND NOT has_database_privilege('public', d.oid, 'TEMPORARY')"
    ));
    assert_eq!(rows, vec![vec![Some(names.len().to_string())]]);
}

#[test]
fn eight_concurrent_applies_of_one_file_all_succeed() {
    let server = PgServer::start();
    let names: Vec<String> = (0..200).map(|i| format!("conc{i:03}")).collect();
    let content: String = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{n}:Conc-pw-{i}\n"))
        .collect();
    let users = UsersFile::new(&content);

    // All eight queue up behind the test's lock, then race for it at once.
    let mut holder = LockHolder::take(&server);
    let children: Vec<_> = (0..8)
        .map(|_| spawn_pgtenant(&server, users.path(), &["apply"]))
        .collect();
    wait_for_lock_waiters(&server, 8);
    holder.release();

    let mut created = 0;
    for (i, child) in children.into_iter().enumerate() {
        let (code, stderr) = wait_with_timeout(child, Duration::from_secs(600));
        assert_eq!(code, Some(0), "run {i}:\n{stderr}");
        assert_no_race_errors(&stderr, &format!("run {i}"));
        let (c, u, unchanged) = summary(&stderr);
        assert_eq!(u, 0, "run {i}: nothing to update:\n{stderr}");
        assert_eq!(c + unchanged, 200, "run {i}:\n{stderr}");
        created += c;
    }
    assert_eq!(created, 200, "each tenant is created by exactly one run");
    run(&server, users.path(), &["plan", "--exit-code"]).assert_code(0);
    assert_tenants(&server, &names);
    for i in [0, 77, 199] {
        server
            .try_connect(
                &names[i],
                &format!("Conc-pw-{i}"),
                &format!("{}_db", names[i]),
            )
            .expect("tenant logs in");
    }
}

#[test]
fn two_runs_on_different_files_are_serialized() {
    let server = PgServer::builder()
        .conf("log_statement", "all")
        .conf("log_line_prefix", "%m [%p] %q%u@%d app=%a ")
        .start();
    let a: Vec<String> = (0..40).map(|i| format!("left{i:02}")).collect();
    let b: Vec<String> = (0..40).map(|i| format!("right{i:02}")).collect();
    // One tenant in both files, with the same password: whichever run comes
    // second finds it made and leaves it.
    let file = |names: &[String]| -> String {
        names
            .iter()
            .map(|n| format!("{n}:{n}-pw\n"))
            .chain(std::iter::once("shared:shared-pw\n".to_owned()))
            .collect()
    };
    let users_a = UsersFile::new(file(&a));
    let users_b = UsersFile::new(file(&b));

    let mut holder = LockHolder::take(&server);
    let child_a = spawn_pgtenant(&server, users_a.path(), &["apply"]);
    let child_b = spawn_pgtenant(&server, users_b.path(), &["apply"]);
    wait_for_lock_waiters(&server, 2);
    // Both are past their start and neither has changed anything.
    assert_eq!(
        server.query(
            "SELECT count(*) FROM pg_roles WHERE rolname ~ '^(left|right)' OR rolname = 'shared'"
        ),
        vec![vec![Some("0".to_owned())]]
    );
    holder.release();

    let (code_a, err_a) = wait_with_timeout(child_a, Duration::from_secs(300));
    let (code_b, err_b) = wait_with_timeout(child_b, Duration::from_secs(300));
    assert_eq!(code_a, Some(0), "{err_a}");
    assert_eq!(code_b, Some(0), "{err_b}");
    assert_no_race_errors(&err_a, "run A");
    assert_no_race_errors(&err_b, "run B");
    let (ca, ua, _) = summary(&err_a);
    let (cb, ub, _) = summary(&err_b);
    assert_eq!((ua, ub), (0, 0));
    assert_eq!(ca + cb, 81, "each tenant created once:\n{err_a}\n{err_b}");

    run(&server, users_a.path(), &["plan", "--exit-code"]).assert_code(0);
    run(&server, users_b.path(), &["plan", "--exit-code"]).assert_code(0);
    let mut all = a.clone();
    all.extend(b.iter().cloned());
    all.push("shared".to_owned());
    assert_tenants(&server, &all);

    // The server's own record: the statements of the two admin sessions do
    // not interleave. Every CREATE DATABASE of one run comes before every one
    // of the other.
    let log = server.log();
    let mut pids: Vec<String> = Vec::new();
    for line in log.lines() {
        if line.contains("app=pgtenant ") && line.contains("statement: CREATE DATABASE") {
            let pid = line
                .split('[')
                .nth(1)
                .and_then(|s| s.split(']').next())
                .unwrap()
                .to_owned();
            if pids.last() != Some(&pid) {
                pids.push(pid);
            }
        }
    }
    assert_eq!(
        pids.len(),
        2,
        "CREATE DATABASE statements interleave between sessions {pids:?}"
    );
}
