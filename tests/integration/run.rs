//! `pgtenant run` (the sidecar mode) and `pgtenant wait` against real
//! servers: waiting, watching Kubernetes-style Secret swaps and plain edits,
//! invalid updates, server restarts, drift correction, signals, and the
//! health endpoints. Each test runs the real binary as a child process and
//! reads its log; "eventually" conditions are polled with generous
//! deadlines, so a loaded two-core machine slows them down but does not fail
//! them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::child::{eventually, Sidecar, EVENTUALLY};
use crate::support::cli::run_raw;
use crate::support::one;
use crate::support::pgtenant::Pgtenant;
use crate::support::server::PgServer;

fn borrow(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

/// One HTTP/1.1 GET; the status and the body.
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the health endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read the answer");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// `GET /metrics` with an `Accept` header: the content type and the body.
fn scrape(addr: SocketAddr, accept: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the health endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: test\r\nAccept: {accept}\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read the answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .expect("a content type")
        .to_owned();
    (content_type, body.to_owned())
}

/// Runs Debian's promtool (package `prometheus`, installed by scripts/test)
/// with `input` on stdin; its exit code and output.
fn promtool(args: &[&str], input: &str) -> (i32, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn logs_in(server: &PgServer, user: &str, password: &str) -> bool {
    server
        .try_connect(user, password, &format!("{user}_db"))
        .is_ok()
}

/// A Secret volume as the kubelet lays it out:
///
/// ```text
/// dir/..2024_01_01_00_00_00.000000001/<files>
/// dir/..data -> ..2024_...
/// dir/<name> -> ..data/<name>
/// ```
///
/// and updates it: a new timestamped directory, a `..data_tmp` symlink to
/// it renamed over `..data`, the old directory removed.
struct SecretVolume {
    dir: tempfile::TempDir,
    generation: u32,
    current: Option<PathBuf>,
}

impl SecretVolume {
    fn new(files: &[(&str, &str)]) -> SecretVolume {
        let mut v = SecretVolume {
            dir: tempfile::tempdir().unwrap(),
            generation: 0,
            current: None,
        };
        v.update(files);
        for (name, _) in files {
            symlink(Path::new("..data").join(name), v.dir.path().join(name)).unwrap();
        }
        v
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn update(&mut self, files: &[(&str, &str)]) {
        self.generation += 1;
        let ts = format!(
            "..2024_01_01_00_00_{:02}.{:09}",
            self.generation, self.generation
        );
        let new = self.dir.path().join(&ts);
        std::fs::create_dir(&new).unwrap();
        for (name, content) in files {
            std::fs::write(new.join(name), content).unwrap();
        }
        let tmp = self.dir.path().join("..data_tmp");
        symlink(&ts, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("..data")).unwrap();
        if let Some(old) = self.current.replace(new) {
            std::fs::remove_dir_all(old).unwrap();
        }
    }
}

#[test]
fn run_waits_for_the_server_then_provisions() {
    let mut server = PgServer::start();
    server.stop();
    let users = crate::support::cli::UsersFile::new("alice:alice-pw\nbob:bob-pw\n");
    let mut run = Sidecar::run(&server, users.path(), &["--listen", "127.0.0.1:0"]);
    let addr = run.http_addr();
    run.wait_log(&format!(
        "waiting for postgres at 127.0.0.1:{}: connection refused",
        server.port()
    ));
    assert_eq!(http(addr, "GET", "/healthz").0, 200);
    let (code, body) = http(addr, "GET", "/readyz");
    assert_eq!(code, 503);
    assert!(
        body.starts_with("not yet applied: waiting for postgres"),
        "{body}"
    );

    server.start_again();
    let up = Instant::now();
    eventually("both tenants log in", || {
        logs_in(&server, "alice", "alice-pw") && logs_in(&server, "bob", "bob-pw")
    });
    let provisioned = up.elapsed();
    println!("server accepting connections -> tenants provisioned: {provisioned:?}");
    run.wait_log("postgres is up after ");
    run.wait_log("2 tenants: 2 created, 0 updated, 0 unchanged");
    eventually("ready", || {
        http(addr, "GET", "/readyz") == (200, "ok\n".into())
    });
    // A line per state (refused, then starting up), not one per attempt.
    assert_eq!(
        run.count("INFO waiting for postgres at"),
        1,
        "{}",
        run.log()
    );
    assert!(run.count("waiting for postgres at") <= 3, "{}", run.log());
    run.assert_stops_quickly(libc::SIGTERM, "SIGTERM while idle");
}

#[test]
fn kubernetes_secret_swaps_apply_and_keep_the_watch() {
    let server = PgServer::start();
    let admin = [
        ("pg_admin_user.secret", server.superuser().to_owned() + "\n"),
        (
            "pg_admin_password.secret",
            server.superuser_password().to_owned() + "\n",
        ),
    ];
    let files = |users: &str| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = admin
            .iter()
            .map(|(n, c)| (n.to_string(), c.clone()))
            .collect();
        v.push(("db_users.secret".into(), users.into()));
        v
    };
    let mut secret = SecretVolume::new(&borrow(&files("keycloak:K3cl0@kPassssaPk@0lc3K\n")));
    // The article's layout: admin credentials from *_FILE, users from the Secret.
    let env: Vec<(String, String)> = vec![
        ("PGHOST".into(), server.host().into()),
        ("PGPORT".into(), server.port().to_string()),
        (
            "POSTGRES_USER_FILE".into(),
            secret.path("pg_admin_user.secret").display().to_string(),
        ),
        (
            "POSTGRES_PASSWORD_FILE".into(),
            secret
                .path("pg_admin_password.secret")
                .display()
                .to_string(),
        ),
        (
            "DBUSERS".into(),
            secret.path("db_users.secret").display().to_string(),
        ),
    ];
    let mut run = Pgtenant::bare().envs(env).args(["run"]).sidecar();
    eventually("keycloak", || {
        logs_in(&server, "keycloak", "K3cl0@kPassssaPk@0lc3K")
    });
    run.wait_log("1 tenant: 1 created");

    let steps = [
        // A new tenant.
        "keycloak:K3cl0@kPassssaPk@0lc3K\ndolibarr:D0l1p@ssss@p1l0D\n",
        // A changed password.
        "keycloak:new-keycloak-pw\ndolibarr:D0l1p@ssss@p1l0D\n",
        // Another new tenant and another change.
        "keycloak:new-keycloak-pw\ndolibarr:dolibarr-2\ngitea:gitea-pw\n",
        // And back: the watch is still there after many swaps.
        "keycloak:K3cl0@kPassssaPk@0lc3K\ndolibarr:dolibarr-2\ngitea:gitea-pw\n",
    ];
    for (i, users) in steps.iter().enumerate() {
        let reads = run.count("INFO read ");
        let swapped = Instant::now();
        secret.update(&borrow(&files(users)));
        eventually(&format!("swap {} read", i + 1), || {
            run.count("INFO read ") > reads
        });
        let read = swapped.elapsed();
        assert!(
            read < Duration::from_secs(5),
            "swap {} read after {read:?}",
            i + 1
        );
        eventually(&format!("swap {} applied", i + 1), || {
            users.lines().all(|l| {
                let (u, p) = l.split_once(':').unwrap();
                logs_in(&server, u, p)
            })
        });
        println!(
            "swap {}: re-read after {read:?}, applied (tenants log in) after {:?}",
            i + 1,
            swapped.elapsed()
        );
    }
    assert!(!logs_in(&server, "keycloak", "new-keycloak-pw"));
    run.assert_running();
    run.assert_stops_quickly(libc::SIGINT, "SIGINT while idle");
}

#[test]
fn in_place_edit_and_rename_over_apply() {
    let server = PgServer::start();
    let users = crate::support::cli::UsersFile::new("carol:carol-1\n");
    let mut run = Sidecar::run(&server, users.path(), &[]);
    eventually("carol", || logs_in(&server, "carol", "carol-1"));

    // In place: truncate and write the same inode.
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(users.path())
            .unwrap();
        f.write_all(b"carol:carol-2\n").unwrap();
    }
    eventually("in-place edit applied", || {
        logs_in(&server, "carol", "carol-2")
    });

    // Rename over, as `mv` and many editors save.
    let tmp = users.dir().join(".db_users.secret.swp");
    std::fs::write(&tmp, "carol:carol-3\ndave:dave-1\n").unwrap();
    std::fs::rename(&tmp, users.path()).unwrap();
    eventually("rename-over applied", || {
        logs_in(&server, "carol", "carol-3") && logs_in(&server, "dave", "dave-1")
    });
    run.assert_running();
}

/// Readiness means "can serve traffic": once the tenants exist, an input
/// that turns invalid is an alert (log, metrics, /readyz?verbose), not an
/// outage of the shared PostgreSQL. The pod stays Ready.
#[test]
fn invalid_update_keeps_the_last_state_and_stays_ready() {
    let server = PgServer::start();
    let users = crate::support::cli::UsersFile::new("erin:erin-1\n");
    let mut run = Sidecar::run(&server, users.path(), &["--listen", "127.0.0.1:0"]);
    let addr = run.http_addr();
    // Not ready before the first apply has succeeded... (or already ready:
    // the first apply of one tenant may beat this request)
    eventually("ready", || http(addr, "GET", "/readyz").0 == 200);

    users.write("erin:erin-2\nthis line has no colon\nfrank:frank-1\n");
    let where_ = format!(
        "{}:2: expected user:password, found no ':'",
        users.path().display()
    );
    run.wait_log(&where_);
    assert_eq!(http(addr, "GET", "/readyz"), (200, "ok\n".into()));
    let (code, body) = http(addr, "GET", "/readyz?verbose");
    assert_eq!(code, 200);
    assert!(
        body.contains(&format!(
            "[-]input failed: {where_}; the last valid input stays in force\n"
        )) && body.starts_with("[+]applied ok: last success ")
            && body.ends_with("[+]last_apply ok\nreadyz check passed\n"),
        "{body}"
    );
    let (_, metrics) = http(addr, "GET", "/metrics");
    assert!(metrics.contains("pgtenant_input_valid 0"), "{metrics}");
    // Nothing of the invalid file was applied; the old state stays.
    std::thread::sleep(Duration::from_millis(500));
    assert!(logs_in(&server, "erin", "erin-1"));
    assert_eq!(
        one(
            &server,
            "SELECT count(*) FROM pg_roles WHERE rolname = 'frank'"
        )
        .as_deref(),
        Some("0")
    );
    assert!(!run.log().contains("erin-2"), "a password reached the log");
    assert!(!body.contains("erin-2"), "a password reached /readyz");
    run.assert_running();

    users.write("erin:erin-2\nfrank:frank-1\n");
    eventually("the fix applied", || {
        logs_in(&server, "erin", "erin-2") && logs_in(&server, "frank", "frank-1")
    });
    eventually("verbose all green", || {
        let (code, body) = http(addr, "GET", "/readyz?verbose");
        code == 200 && !body.contains("[-]")
    });
    run.assert_running();
}

/// Before the first successful apply, /readyz is 503 with the reason:
/// applications must not connect before their database exists.
#[test]
fn not_ready_before_the_first_apply() {
    let users = crate::support::cli::UsersFile::new("nora:nora-1\n");
    let mut run = Pgtenant::bare()
        .envs([
            ("PGHOST", "127.0.0.1"),
            ("PGPORT", "1"),
            ("PGPASSWORD", "unused"),
        ])
        .users(users.path())
        .args(["run", "--listen", "127.0.0.1:0"])
        .sidecar();
    let addr = run.http_addr();
    eventually("503 while waiting for postgres", || {
        let (code, body) = http(addr, "GET", "/readyz");
        code == 503 && body.starts_with("not yet applied: waiting for postgres at 127.0.0.1:1")
    });
    let (code, body) = http(addr, "GET", "/readyz?verbose");
    assert_eq!(code, 503);
    assert!(
        body.starts_with("[-]applied failed: no apply has succeeded yet\n[+]input ok\n")
            && body.ends_with("readyz check failed\n"),
        "{body}"
    );
    run.assert_running();
}

#[test]
fn server_restart_while_idle_reconverges() {
    let mut server = PgServer::start();
    let users = crate::support::cli::UsersFile::new("gina:gina-1\n");
    // A resync far away: only the reconnect can restore what is dropped.
    let mut run = Sidecar::run(&server, users.path(), &["--resync-interval", "1h"]);
    eventually("gina", || logs_in(&server, "gina", "gina-1"));
    run.wait_log("1 tenant: 1 created");
    server.query("DROP DATABASE gina_db");
    server.query("DROP ROLE gina");
    server.restart();
    run.wait_log("lost the connection to postgres");
    eventually("gina restored after the restart", || {
        logs_in(&server, "gina", "gina-1")
    });
    run.assert_running();
}

#[test]
fn server_restart_during_an_apply_reconverges() {
    let mut server = PgServer::start();
    let users: String = (0..40).map(|i| format!("t{i:02}:pw-{i}\n")).collect();
    let users = crate::support::cli::UsersFile::new(users);
    let mut run = Sidecar::run(&server, users.path(), &["--resync-interval", "1h"]);
    run.wait_log(r#"created database "t01_db""#);
    server.kill();
    // Backends in the middle of a CREATE DATABASE outlive their postmaster
    // for a moment; a new one cannot start until they are gone.
    crate::faults::wait_for_orphans(&server);
    server.start_again();
    eventually("all 40 tenants after the restart", || {
        one(
            &server,
            "SELECT count(*) FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba \
             WHERE d.datname = r.rolname || '_db' AND r.rolname ~ '^t[0-9]+$'",
        )
        .as_deref()
            == Some("40")
    });
    assert!(logs_in(&server, "t39", "pw-39") && logs_in(&server, "t00", "pw-0"));
    run.wait_log("40 tenants:");
    run.assert_running();
}

#[test]
fn drift_is_corrected_at_the_next_resync() {
    let server = PgServer::start();
    let users = crate::support::cli::UsersFile::new("hank:hank-1\nivy:ivy-1\n");
    // JSON logs: checked against docs/schema/log.schema.json when dropped.
    let mut run = Sidecar::run(
        &server,
        users.path(),
        &[
            "--resync-interval",
            "1s",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ],
    );
    let addr = run.http_addr();
    eventually("provisioned", || {
        logs_in(&server, "hank", "hank-1") && logs_in(&server, "ivy", "ivy-1")
    });
    // A role dropped by hand, a password changed by hand, an owner changed.
    for sql in [
        "DROP DATABASE hank_db",
        "DROP ROLE hank",
        "ALTER ROLE ivy PASSWORD 'by-hand'",
        "ALTER DATABASE ivy_db OWNER TO postgres",
    ] {
        server.query(sql);
    }
    eventually("hank restored", || logs_in(&server, "hank", "hank-1"));
    eventually("ivy's password restored", || {
        logs_in(&server, "ivy", "ivy-1")
    });
    eventually("ivy_db's owner restored", || {
        one(
            &server,
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'ivy_db'",
        )
        .as_deref()
            == Some("ivy")
    });
    // The four objects put back are counted as drift corrections (the
    // first apply is not drift).
    eventually("drift corrections counted", || {
        http(addr, "GET", "/metrics").1.lines().any(|l| {
            l.strip_prefix("pgtenant_drift_corrections_total ")
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|n| n >= 3)
        })
    });
    assert!(run.log().contains("corrected drift"), "{}", run.log());
    run.assert_running();
}

#[test]
fn sigterm_while_waiting_exits_zero_at_once() {
    let mut server = PgServer::start();
    server.stop();
    let users = crate::support::cli::UsersFile::new("jack:jack-1\n");
    let mut run = Sidecar::run(&server, users.path(), &[]);
    run.wait_log("waiting for postgres at");
    // Mid-backoff and mid-attempt alike: let the backoff reach its cap.
    std::thread::sleep(Duration::from_millis(1500));
    run.assert_stops_quickly(libc::SIGTERM, "SIGTERM while waiting");
}

#[test]
fn sigterm_during_an_apply_exits_zero_at_once_and_the_next_run_converges() {
    let server = PgServer::start();
    let users: String = (0..60).map(|i| format!("u{i:02}:pw-{i}\n")).collect();
    let users = crate::support::cli::UsersFile::new(users);
    let mut run = Sidecar::run(&server, users.path(), &[]);
    run.wait_log(r#"created role "u02""#);
    run.assert_stops_quickly(libc::SIGTERM, "SIGTERM during an apply");
    assert!(
        !run.log().contains("60 tenants:"),
        "the apply had already finished:\n{}",
        run.log()
    );
    // Whatever was left half-done, the next run converges.
    let out = crate::support::cli::run(&server, users.path(), &["apply"]);
    out.assert_code(0);
    assert!(logs_in(&server, "u59", "pw-59") && logs_in(&server, "u00", "pw-0"));
}

#[test]
fn health_ready_and_metrics_endpoints() {
    let server = PgServer::start();
    let users = crate::support::cli::UsersFile::new("kate:kate-1\nleo:leo-1\n");
    let mut run = Sidecar::run(
        &server,
        users.path(),
        &["--listen", "127.0.0.1:0", "--resync-interval", "1s"],
    );
    let addr = run.http_addr();
    eventually("ready", || {
        http(addr, "GET", "/readyz") == (200, "ok\n".into())
    });
    assert_eq!(http(addr, "GET", "/healthz"), (200, "ok\n".into()));
    assert_eq!(http(addr, "HEAD", "/healthz"), (200, String::new()));
    assert_eq!(http(addr, "GET", "/nope").0, 404);
    assert_eq!(http(addr, "POST", "/readyz").0, 405);
    // Wait for at least one idle resync after the first apply.
    eventually("two successful reconciles", || {
        http(addr, "GET", "/metrics").1.lines().any(|l| {
            l.starts_with("pgtenant_reconciles_total{result=\"success\"}")
                && !l.ends_with(" 1")
                && !l.ends_with(" 0")
        })
    });
    let (code, metrics) = http(addr, "GET", "/metrics");
    assert_eq!(code, 200);
    for needle in [
        "# TYPE pgtenant_reconciles_total counter",
        "pgtenant_reconciles_total{result=\"failure\"} 0",
        "# TYPE pgtenant_reconcile_duration_seconds histogram",
        "pgtenant_reconcile_duration_seconds_bucket{le=\"+Inf\"}",
        "pgtenant_tenants{state=\"in_sync\"} 2",
        "pgtenant_tenants{state=\"failed\"} 0",
        "pgtenant_input_valid 1",
        "pgtenant_postgres_up 1",
    ] {
        assert!(metrics.contains(needle), "no {needle:?} in\n{metrics}");
    }
    let last_success: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("pgtenant_last_success_timestamp_seconds "))
        .expect("last success")
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - last_success).abs() < 120.0,
        "{last_success} vs {now}"
    );
    assert!(!metrics.contains("kate-1") && !run.log().contains("kate-1"));

    // Both expositions, negotiated as Prometheus does, pass Prometheus' own
    // checks: the classic text format `promtool check metrics` (its linter,
    // which reads only that format), OpenMetrics promtool's OpenMetrics
    // parser (`tsdb create-blocks-from openmetrics`, which needs a timestamp
    // on every sample) with the same series.
    let (classic_type, classic) = scrape(addr, "*/*");
    assert_eq!(classic_type, "text/plain; version=0.0.4; charset=utf-8");
    let (code, lint) = promtool(&["check", "metrics"], &classic);
    assert_eq!((code, lint.as_str()), (0, ""), "{classic}");
    for needle in [
        "# TYPE pgtenant_reconciles_total counter",
        "pgtenant_build_info{version=\"",
        "pgtenant_resync_interval_seconds 1.0",
        "pgtenant_drift_corrections_total 0",
        "# TYPE process_cpu_seconds_total counter",
        "process_resident_memory_bytes ",
        "process_open_fds ",
    ] {
        assert!(classic.contains(needle), "no {needle:?} in\n{classic}");
    }
    assert!(!classic.contains("# EOF"));
    let (om_type, om) = scrape(
        addr,
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
         version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    );
    assert_eq!(
        om_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    let stamped: String = om
        .lines()
        .map(|l| {
            if l.starts_with('#') {
                format!("{l}\n")
            } else {
                format!("{l} 1700000000\n")
            }
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics.om");
    std::fs::write(&file, &stamped).unwrap();
    let (code, out) = promtool(
        &[
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            file.to_str().unwrap(),
            dir.path().join("blocks").to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(code, 0, "{out}\n{om}");
    let samples = classic.lines().filter(|l| !l.starts_with('#')).count();
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().nth(4) == Some(&samples.to_string())),
        "promtool read another number of samples than the classic format has ({samples}):\n{out}"
    );

    // An oversized request head is refused, and the server goes on.
    let mut s = TcpStream::connect(addr).unwrap();
    let _ = write!(
        s,
        "GET /healthz HTTP/1.1\r\nX: {}\r\n\r\n",
        "a".repeat(16 * 1024)
    );
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 431") || answer.is_empty(),
        "{answer}"
    );
    assert_eq!(http(addr, "GET", "/healthz").0, 200);

    // Failing: the server refuses a tenant (an existing superuser role).
    // Still ready: the others are in force; the failure is in the detail.
    server.query("CREATE ROLE mallory SUPERUSER LOGIN");
    users.write("kate:kate-1\nleo:leo-1\nmallory:m-1\n");
    eventually("the failed apply in the detail", || {
        let (code, body) = http(addr, "GET", "/readyz?verbose");
        code == 200 && body.contains("[-]last_apply failed: 1 of 3 tenants failed")
    });
    assert_eq!(http(addr, "GET", "/readyz"), (200, "ok\n".into()));
    let (_, metrics) = http(addr, "GET", "/metrics");
    assert!(
        metrics.contains("pgtenant_tenants{state=\"refused\"} 1"),
        "{metrics}"
    );
    run.assert_running();
}

#[test]
fn wait_exits_zero_when_up_and_one_on_timeout() {
    let mut server = PgServer::start();
    let env = server.admin_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = run_raw(&["wait", "--timeout", "30s"], &env);
    out.assert_code(0);
    assert!(
        out.stderr.contains("postgres is up after"),
        "{}",
        out.stderr
    );

    server.stop();
    let started = Instant::now();
    let out = run_raw(&["wait", "--timeout", "1s"], &env);
    out.assert_code(1);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(out.stderr.contains("connection refused"), "{}", out.stderr);
    assert!(out.stderr.contains("is not up after 1s"), "{}", out.stderr);

    // A wrong password is a real error, logged as such.
    let mut bad = env.clone();
    bad.retain(|(k, _)| *k != "PGPASSWORD");
    bad.push(("PGPASSWORD", "wrong"));
    server.start_again();
    let out = run_raw(&["wait", "--timeout", "2s"], &bad);
    out.assert_code(1);
    assert!(
        out.stderr.contains("cannot log in to postgres"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("28P01"), "{}", out.stderr);

    // `wait` started before the server: exits 0 once it is up.
    server.stop();
    let mut waiting = Pgtenant::bare()
        .envs(server.admin_env())
        .args(["wait", "--timeout", "60s"])
        .sidecar();
    waiting.wait_log("waiting for postgres at");
    server.start_again();
    let deadline = Instant::now() + EVENTUALLY;
    let status = loop {
        if let Some(s) = waiting.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "wait did not return:\n{}",
            waiting.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{}", waiting.log());
}

// Trust, part two, in the long-running mode (issue 13): a child module, so
// that it uses the sidecar helpers above.
#[path = "trust_run.rs"]
mod trust_run;
