//! Trust, part two, under `pgtenant run`: a watch that survives its
//! directory, health answers that no flood of idle connections and no amount
//! of hashing can starve, a locked tenant that fails alone and is retried
//! visibly, and a second writer that is warned about. Not version-sensitive.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::{eventually, http, logs_in, Sidecar};
use crate::support::cli::UsersFile;
use crate::support::server::PgServer;
use crate::trust::Session;

/// One kubelet-style probe: connect, GET, and the whole answer within 1 s.
fn probe(addr: std::net::SocketAddr, path: &str) -> Result<u16, String> {
    let started = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .map_err(|e| format!("connect: {e}"))?;
    let left = Duration::from_secs(1).saturating_sub(started.elapsed());
    s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
        .unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: probe\r\n\r\n").map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text)
        .map_err(|e| format!("read after {:?}: {e}", started.elapsed()))?;
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status in {text:?}"))
}

fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Raises the soft limit on open files to the hard one; the number of
/// descriptors available.
fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a valid struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    lim.rlim_cur
}

#[test]
fn health_answers_probes_through_two_thousand_idle_connections() {
    let server = PgServer::start();
    let users = UsersFile::new("probe:pw\n");
    let mut sidecar = Sidecar::run(&server, users.path(), &["--listen", "127.0.0.1:0"]);
    let addr = sidecar.http_addr();
    sidecar.wait_log("1 tenant: 1 created");
    let wanted = 2000usize;
    let count = wanted.min(raise_fd_limit().saturating_sub(200) as usize);
    let started = Instant::now();
    let mut idle = Vec::with_capacity(count);
    for _ in 0..count {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connection {} refused: {e}", idle.len()),
        }
    }
    eprintln!(
        "{} idle connections opened in {:?}",
        idle.len(),
        started.elapsed()
    );
    assert_eq!(idle.len(), wanted, "fd limit too low for the test");
    let mut slowest = Duration::ZERO;
    for i in 0..30 {
        let path = if i % 2 == 0 { "/healthz" } else { "/readyz" };
        let started = Instant::now();
        let status = probe(addr, path).unwrap_or_else(|e| panic!("probe {i} failed: {e}"));
        slowest = slowest.max(started.elapsed());
        assert_eq!(status, 200, "probe {i} {path}");
    }
    let pid = sidecar.child.id();
    let rss = proc_status(pid, "VmRSS:").unwrap_or(0);
    let hwm = proc_status(pid, "VmHWM:").unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    eprintln!(
        "30 probes through {} idle connections: slowest {slowest:?}; pgtenant RSS {rss} KiB, \
         peak {hwm} KiB, {fds} fds (debug build)",
        idle.len()
    );
    // The server holds at most MAX_CONNECTIONS of them.
    assert!(fds < 64 + 32, "{fds} descriptors open");
    drop(idle);
    sidecar.assert_running();
}

/// The users file's directory is deleted and created again (a volume
/// remount, a config-management tool). With a resync of an hour, only the
/// watch can see it.
#[test]
fn the_watch_survives_its_directory_being_deleted_and_recreated() {
    let server = PgServer::start();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("secrets");
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("db_users.secret");
    let write = |content: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&file, content).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    write("first:pw-1\n");
    let mut sidecar = Sidecar::run(
        &server,
        &file,
        &["--resync-interval", "1h", "--listen", "127.0.0.1:0"],
    );
    let addr = sidecar.http_addr();
    sidecar.wait_log("1 tenant: 1 created");
    for round in 0..2 {
        std::fs::remove_dir_all(&dir).unwrap();
        std::thread::sleep(Duration::from_millis(400));
        std::fs::create_dir(&dir).unwrap();
        let user = format!("again{round}");
        write(&format!("first:pw-1\n{user}:pw-{round}\n"));
        eventually(
            &format!("{user} provisioned after the directory came back"),
            || logs_in(&server, &user, &format!("pw-{round}")),
        );
        eventually("the last apply is green again", || {
            http(addr, "GET", "/readyz?verbose")
                .1
                .contains("[+]last_apply ok")
        });
    }
    // And a plain edit is still seen.
    write("first:pw-2\nagain0:pw-0\nagain1:pw-1\n");
    eventually("an edit after the re-creation is applied", || {
        logs_in(&server, "first", "pw-2")
    });
}

/// Checking many stored verifiers costs seconds of CPU; meanwhile health
/// answers within a probe's second and SIGTERM stops the process at once.
#[test]
fn hashing_never_blocks_health_or_sigterm() {
    let server = PgServer::start();
    // One verifier of another password with 100,000 iterations (the most
    // that is still checked), stored on 1,000 roles: checking them all costs
    // 100 million iterations, several seconds on two cores.
    let slow = pgtenant::reconcile::scram::ScramVerifier::compute(
        "not-the-password",
        b"0123456789abcdef",
        100_000,
    )
    .to_string();
    // Made without a password, then given the slow verifier in one update
    // of the catalog: 1,000 CREATE ROLE ... PASSWORD statements are slow.
    let mut sql = String::new();
    let mut content = String::new();
    for i in 0..1000 {
        sql.push_str(&format!("CREATE ROLE h{i} LOGIN;"));
        content.push_str(&format!("h{i}:pw-{i}\n"));
    }
    let t = Instant::now();
    server.query(&sql);
    server.query(&format!(
        "UPDATE pg_authid SET rolpassword = '{slow}' WHERE rolname ~ '^h[0-9]+$'"
    ));
    eprintln!("1000 roles made in {:?}", t.elapsed());
    let users = UsersFile::new(content);
    let mut sidecar = Sidecar::run(&server, users.path(), &["--listen", "127.0.0.1:0"]);
    let addr = sidecar.http_addr();
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut probes = 0;
    while started.elapsed() < Duration::from_secs(2) {
        let t = Instant::now();
        let status = probe(addr, "/healthz").unwrap_or_else(|e| panic!("probe failed: {e}"));
        assert_eq!(status, 200);
        slowest = slowest.max(t.elapsed());
        probes += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let hashing = !sidecar.log().contains("1000 tenants:");
    eprintln!("{probes} probes while hashing (still hashing: {hashing}): slowest {slowest:?}");
    sidecar.assert_stops_quickly(libc::SIGTERM, "SIGTERM while hashing");
    eprintln!("test body done after {:?}", started.elapsed());
}

/// A tenant holds a lock on its own role under `run`: that tenant fails
/// within the lock timeout, the other is applied, /readyz?verbose names the
/// tenant and the reason (readiness itself stays: the server serves the
/// other tenants), the metrics count it, and it is applied once the lock is
/// gone.
#[test]
fn a_locked_tenant_is_visible_and_retried_under_run() {
    let server = PgServer::start();
    let users = UsersFile::new("locked:pw-1\nfree:pw-1\n");
    let mut sidecar = Sidecar::run(
        &server,
        users.path(),
        &["--listen", "127.0.0.1:0", "--lock-timeout", "500ms"],
    );
    let addr = sidecar.http_addr();
    sidecar.wait_log("2 tenants: 2 created");
    let tenant = Session::open(&server, "locked", "pw-1", "locked_db");
    tenant.query("BEGIN");
    tenant.query("ALTER ROLE locked PASSWORD 'mine'");
    users.write("locked:pw-2\nfree:pw-2\n");
    sidecar.wait_log("canceling statement due to lock timeout");
    eventually("the other tenant is applied", || {
        logs_in(&server, "free", "pw-2")
    });
    let (status, body) = http(addr, "GET", "/readyz?verbose");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("[-]last_apply failed"), "{body}");
    assert!(body.contains("\"locked\": failed to alter role"), "{body}");
    assert!(body.contains("lock timeout"), "{body}");
    let (_, metrics) = http(addr, "GET", "/metrics");
    assert!(
        metrics.contains("pgtenant_tenant_failures_total{reason=\"lock_timeout\"} 1"),
        "{metrics}"
    );
    tenant.query("COMMIT");
    // Retried after the failure backoff (5 s).
    eventually("the locked tenant is applied once the lock is gone", || {
        logs_in(&server, "locked", "pw-2")
    });
    eventually("the last apply is green again", || {
        http(addr, "GET", "/readyz?verbose")
            .1
            .contains("[+]last_apply ok")
    });
}

/// Another writer (a second sidecar with another users file) changes a
/// password pgtenant set: pgtenant puts it back, and says so, each time.
#[test]
fn a_second_writer_is_warned_about_and_counted() {
    let server = PgServer::start();
    let users = UsersFile::new("shared:pw-mine\n");
    let mut sidecar = Sidecar::run(
        &server,
        users.path(),
        &["--listen", "127.0.0.1:0", "--resync-interval", "500ms"],
    );
    let addr = sidecar.http_addr();
    sidecar.wait_log("1 tenant: 1 created");
    server.query("ALTER ROLE shared PASSWORD 'pw-theirs'");
    sidecar.wait_log("was changed by someone else");
    eventually("put back", || logs_in(&server, "shared", "pw-mine"));
    let (_, metrics) = http(addr, "GET", "/metrics");
    assert!(
        metrics.contains("pgtenant_password_overwrites_total 1"),
        "{metrics}"
    );
    // A change of the input is not another writer.
    let before = sidecar.count("was changed by someone else");
    users.write("shared:pw-new\n");
    eventually("the new password is applied", || {
        logs_in(&server, "shared", "pw-new")
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(sidecar.count("was changed by someone else"), before);
}
