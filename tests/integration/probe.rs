//! `pgtenant probe URL`, the Compose healthcheck of the scratch image: against
//! pgtenant's own HTTP server, and against hostile peers (silent, garbage,
//! endless), each of which must end in a bounded time with exit 1.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::cli::run_raw;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A peer on loopback that does `answer` with each connection, in a thread.
fn peer(answer: fn(std::net::TcpStream)) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || answer(s));
        }
    });
    format!("http://{addr}")
}

fn read_head(s: &mut std::net::TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
        head.push(b[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn probe_follows_pgtenants_own_health_routes() {
    // `run` waiting for a server that is not there: alive, not ready.
    let port = free_port();
    let users = crate::support::cli::UsersFile::new("kate:kate-1\n");
    let _run = Killed(
        Command::new(assert_cmd::cargo::cargo_bin("pgtenant"))
            .env_clear()
            .args([
                "run",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--port",
                "1",
            ])
            .env("PGPASSWORD", "x")
            .env("DBUSERS", users.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while run_raw(&["probe", &format!("{base}/healthz")], &[]).code != 0 {
        assert!(Instant::now() < deadline, "/healthz never answered 2xx");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = run_raw(&["probe", &format!("{base}/readyz")], &[]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("HTTP 503: not yet applied"), // with the reason
        "{}",
        out.stderr
    );
    let out = run_raw(&["probe", &format!("{base}/nope")], &[]);
    out.assert_code(1);
    assert!(out.stderr.contains("HTTP 404"), "{}", out.stderr);
    assert!(run_raw(&["probe", &format!("{base}/healthz")], &[])
        .stderr
        .is_empty());
}

#[test]
fn probe_is_bounded_against_hostile_peers() {
    // Never answers: the timeout ends it.
    let silent = peer(|s| {
        std::thread::sleep(Duration::from_secs(60));
        drop(s)
    });
    let started = Instant::now();
    let out = run_raw(
        &["probe", "--timeout", "500ms", &format!("{silent}/readyz")],
        &[],
    );
    out.assert_code(1);
    assert!(
        out.stderr.contains("no answer within 500ms"),
        "{}",
        out.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // Not HTTP. The request is read first: closing a socket with unread
    // data sends a reset, which may reach the probe before the banner.
    let garbage = peer(|mut s| {
        read_head(&mut s);
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
    });
    let out = run_raw(&["probe", &format!("{garbage}/")], &[]);
    out.assert_code(1);
    assert!(out.stderr.contains("not HTTP/1.x"), "{}", out.stderr);

    // A 2xx head followed by an endless body: only the head matters, and the
    // read stops at 8 KiB.
    let endless = peer(|mut s| {
        let head = read_head(&mut s);
        assert!(
            head.starts_with("GET /readyz?verbose HTTP/1.1\r\n"),
            "{head}"
        );
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\n");
        let chunk = [b'x'; 4096];
        while s.write_all(&chunk).is_ok() {}
    });
    let started = Instant::now();
    run_raw(&["probe", &format!("{endless}/readyz?verbose")], &[]).assert_code(0);
    assert!(started.elapsed() < Duration::from_secs(10));

    // Nothing listens; a URL it cannot probe is a usage error.
    let out = run_raw(
        &["probe", &format!("http://127.0.0.1:{}/", free_port())],
        &[],
    );
    out.assert_code(1);
    assert!(out.stderr.contains("connection refused"), "{}", out.stderr);
    run_raw(&["probe", "https://127.0.0.1/"], &[]).assert_code(2);
}
