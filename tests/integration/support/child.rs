//! Running children: a `pgtenant` whose output is drained from the start
//! ([`Spawned`]), and a long-running `pgtenant run`/`wait` whose log is
//! collected line by line ([`Sidecar`]). Both are started by
//! [`super::pgtenant::Pgtenant`].

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::pgtenant::Pgtenant;
use super::server::PgServer;

/// How long a sidecar's log may take to show a line on a loaded machine.
pub const EVENTUALLY: Duration = Duration::from_secs(30);

/// Waits until `cond` holds, for at most [`EVENTUALLY`]; fails naming `what`.
#[track_caller]
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + EVENTUALLY;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "not after {EVENTUALLY:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The bound for stopping, with slack on CI's loaded machine.
pub fn stop_bound() -> Duration {
    if std::env::var_os("CI").is_some() {
        Duration::from_millis(1500)
    } else {
        Duration::from_secs(1)
    }
}

/// A running pgtenant whose output is drained by threads from the start: a
/// child that logs more than a pipe holds (200 tenants on 14 and older) and
/// that nobody reads would block on write while holding the advisory lock,
/// and every other run would wait behind it.
pub struct Spawned {
    pub child: Child,
    stdout: Option<std::thread::JoinHandle<Vec<u8>>>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

fn drain<R: std::io::Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

impl From<Child> for Spawned {
    fn from(mut child: Child) -> Self {
        let stdout = Some(drain(child.stdout.take()));
        let stderr = Some(drain(child.stderr.take()));
        Spawned {
            child,
            stdout,
            stderr,
        }
    }
}

impl std::ops::Deref for Spawned {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.child
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

/// `pgtenant ARGS` as a child process, so the test can act while it runs.
pub fn spawn_pgtenant(server: &PgServer, users: &Path, args: &[&str]) -> Spawned {
    Pgtenant::new(server).users(users).args(args).spawn()
}

/// Waits for the child (killing it after `timeout`); exit code and stderr.
pub fn wait_with_timeout(child: impl Into<Spawned>, timeout: Duration) -> (Option<i32>, String) {
    let mut spawned = child.into();
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = spawned.child.try_wait().expect("poll pgtenant") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = spawned.child.kill();
            let _ = spawned.child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if let Some(out) = spawned.stdout.take() {
        let _ = out.join();
    }
    let stderr = spawned
        .stderr
        .take()
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    match status {
        Some(status) => (status.code(), stderr),
        None => panic!("pgtenant did not exit within {timeout:?}; stderr:\n{stderr}"),
    }
}

/// A running `pgtenant run` (or `wait`) child with its log collected.
pub struct Sidecar {
    pub child: Child,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Sidecar {
    /// Starts `cmd` (its stderr piped) and collects its log.
    pub fn spawn(mut cmd: Command) -> Sidecar {
        let mut child = cmd.spawn().expect("spawn pgtenant");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Sidecar {
            child,
            log,
            reader: Some(reader),
        }
    }

    /// `pgtenant run ARGS` with the server's admin credentials in PG*.
    pub fn run(server: &PgServer, users: &Path, args: &[&str]) -> Sidecar {
        Pgtenant::new(server)
            .users(users)
            .args(["run"])
            .args(args)
            .sidecar()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The collected log, shared: for closures that outlive a borrow.
    pub fn log_handle(&self) -> Arc<Mutex<String>> {
        self.log.clone()
    }

    /// Waits for the log reader to see the end of the child's stderr.
    pub fn join_reader(&mut self) {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }

    #[track_caller]
    pub fn wait_log(&mut self, needle: &str) {
        let deadline = Instant::now() + EVENTUALLY;
        while !self.log().contains(needle) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "pgtenant exited ({status}) before logging {needle:?}:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log after {EVENTUALLY:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many times `needle` was logged.
    pub fn count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    #[track_caller]
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("pgtenant exited ({status}):\n{}", self.log());
        }
    }

    /// The address of `--listen 127.0.0.1:0`, from the log.
    pub fn http_addr(&mut self) -> SocketAddr {
        self.wait_log("/metrics on http://");
        let log = self.log();
        let at = log.find("/metrics on http://").unwrap() + "/metrics on http://".len();
        // Text logs end the address with a space, JSON logs with a quote.
        log[at..]
            .split(|c: char| c.is_whitespace() || c == '"')
            .next()
            .unwrap()
            .parse()
            .expect("a socket address")
    }

    /// Sends `signal`; the time until the process exited, and its code.
    pub fn stop_with(&mut self, signal: libc::c_int) -> (Duration, i32) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        let sent = Instant::now();
        // SAFETY: signals our own unreaped child, so the pid is not reused.
        unsafe { libc::kill(pid, signal) };
        let deadline = sent + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("poll pgtenant") {
                let elapsed = sent.elapsed();
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return (elapsed, status.code().unwrap_or(-1));
            }
            assert!(
                Instant::now() < deadline,
                "pgtenant ignored the signal:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[track_caller]
    pub fn assert_stops_quickly(&mut self, signal: libc::c_int, what: &str) -> Duration {
        let (elapsed, code) = self.stop_with(signal);
        println!("{what}: exited {code} {elapsed:?} after the signal");
        assert_eq!(code, 0, "exit code after {what}:\n{}", self.log());
        assert!(
            elapsed < stop_bound(),
            "{what}: took {elapsed:?} to stop:\n{}",
            self.log()
        );
        elapsed
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- pgtenant log ---\n{}", self.log());
        } else {
            // A JSON log (--log-format json) must match docs/schema/log.schema.json.
            super::schema::check_log(&self.log());
        }
    }
}
