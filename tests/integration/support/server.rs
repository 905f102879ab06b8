//! Throwaway PostgreSQL servers for the integration tests.
//!
//! Owns everything about a test server's life: choosing the binaries
//! (`PGTENANT_TEST_PG=<major>` picks a build fetched by
//! `scripts/fetch-postgres`, otherwise this machine's Debian PostgreSQL),
//! `initdb` into a fresh temporary directory with SCRAM authentication and a
//! random superuser password, starting `postgres` as a direct child of the
//! test process, waiting until it accepts logins, blocking helpers to query it
//! and to prove who can log in, stop/kill/restart, and cleanup on drop.
//!
//! Each test starts its own server; many run in parallel under cargo's test
//! threads, so nothing here is shared between servers but the list of ports
//! already handed out.
//!
//! Layout of a server's temporary directory (kept short: it is also the Unix
//! socket directory, and socket paths are limited to about 100 bytes):
//!
//! ```text
//! /tmp/pgtXXXXXX/            socket dir, owned by the user PostgreSQL runs as
//!     data/                  PGDATA
//!     server.log             the postmaster's stdout and stderr
//!     .s.PGSQL.<port>        the Unix socket
//! ```

// Each test module uses its own subset of the fixture.
#![allow(dead_code)]

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio_postgres::{NoTls, SimpleQueryMessage};

/// The pins `scripts/fetch-postgres` installs from, the one list of the
/// majors `PGTENANT_TEST_PG` may name.
const POSTGRES_VERSIONS: &str = include_str!("../../../scripts/postgres-versions");
const HOST: &str = "127.0.0.1";
const SUPERUSER: &str = "postgres";
/// Generous: under parallel tests on two cores, initdb plus a first start can
/// take several seconds.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long Drop waits for a fast shutdown before SIGKILL.
const DROP_GRACE: Duration = Duration::from_secs(5);
/// How long `stop()` waits; a test asking for a clean stop wants one.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const START_ATTEMPTS: u32 = 5;
const APPLICATION_NAME: &str = "pgtenant-test-fixture";

/// Server settings written for every server, before the test's own (a later
/// line wins in postgresql.conf, so tests can override any of these).
const DEFAULT_CONF: &[(&str, &str)] = &[
    ("listen_addresses", HOST),
    ("max_connections", "100"),
    // Many servers run at once; keep each small.
    ("shared_buffers", "32MB"),
    // Surviving an OS crash is pointless for a throwaway server and costs
    // seconds. Commits are still written to the kernel before they return, so
    // `kill()` (a process crash) loses nothing committed; hence
    // synchronous_commit and full_page_writes stay on.
    ("fsync", "off"),
    // The postmaster's stderr goes to server.log; a collector would take it away.
    ("logging_collector", "off"),
    ("log_line_prefix", "%m [%p] %q%u@%d "),
    // 13 still defaults to md5; every major should store SCRAM verifiers.
    ("password_encryption", "scram-sha-256"),
];

/// Settings for a server to be started with [`PgServerBuilder::start`].
#[derive(Debug, Default, Clone)]
pub struct PgServerBuilder {
    conf: Vec<(String, String)>,
    hba: Vec<String>,
}

impl PgServerBuilder {
    /// Sets a postgresql.conf parameter, after (so over) the fixture's own.
    /// The value is written quoted, which PostgreSQL accepts for every type.
    pub fn conf(mut self, name: &str, value: &str) -> Self {
        self.conf.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds a pg_hba.conf line before the fixture's defaults (the first
    /// matching line wins), e.g. `host all md5_user 127.0.0.1/32 md5`.
    pub fn hba_line(mut self, line: &str) -> Self {
        self.hba.push(line.to_owned());
        self
    }

    pub fn start(self) -> PgServer {
        PgServer::create(self)
    }
}

/// A running (or stopped) throwaway server. Dropping it stops the server and
/// removes its directory.
pub struct PgServer {
    child: Option<Child>,
    port: u16,
    password: String,
    major: u32,
    bin_dir: PathBuf,
    owner: Option<Owner>,
    data_dir: PathBuf,
    log_path: PathBuf,
    /// Removed when dropped, which happens after `Drop::drop` has stopped the
    /// server.
    dir: tempfile::TempDir,
}

impl PgServer {
    /// A server with the fixture's defaults.
    pub fn start() -> PgServer {
        PgServer::builder().start()
    }

    pub fn builder() -> PgServerBuilder {
        PgServerBuilder::default()
    }

    pub fn host(&self) -> &str {
        HOST
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Directory holding the Unix socket, usable as a `host`.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn superuser(&self) -> &str {
        SUPERUSER
    }

    pub fn superuser_password(&self) -> &str {
        &self.password
    }

    /// Major version the server reports (`server_version_num / 10000`).
    pub fn major(&self) -> u32 {
        self.major
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Directory of the `postgres` and `initdb` binaries in use.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Everything the server has logged so far, over all its starts.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// Postmaster's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// libpq variables for running a client (such as the real binary) as the
    /// superuser over TCP.
    pub fn admin_env(&self) -> Vec<(String, String)> {
        [
            ("PGHOST", HOST.to_owned()),
            ("PGPORT", self.port.to_string()),
            ("PGUSER", SUPERUSER.to_owned()),
            ("PGPASSWORD", self.password.clone()),
            ("PGDATABASE", "postgres".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Runs `sql` (simple query protocol, so several statements are fine) as
    /// the superuser on database `postgres`; the rows of all statements, as
    /// text. Panics on error.
    #[track_caller]
    pub fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.query_db("postgres", sql)
    }

    /// [`query`](Self::query) on another database.
    #[track_caller]
    pub fn query_db(&self, db: &str, sql: &str) -> Vec<Vec<Option<String>>> {
        self.try_query_db(db, sql)
            .unwrap_or_else(|e| panic!("query on database {db:?} failed: {e}\nSQL: {sql}"))
    }

    /// [`query_db`](Self::query_db) that returns the error instead.
    pub fn try_query_db(&self, db: &str, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        self.exec_as(SUPERUSER, &self.password, db, sql)
    }

    /// Logs in over TCP as `user` and runs `sql` (simple query protocol);
    /// the rows, or the login's or the statement's error as text. For proving
    /// what a tenant may do in its database.
    pub fn exec_as(
        &self,
        user: &str,
        password: &str,
        db: &str,
        sql: &str,
    ) -> Result<Vec<Vec<Option<String>>>, String> {
        let login = self.login(user, password, db);
        blocking(|rt| rt.block_on(login.simple_query(sql)))
    }

    /// One login attempt over TCP (password authentication as configured in
    /// pg_hba.conf) followed by `SELECT 1`; the server's refusal as text.
    pub fn try_connect(&self, user: &str, password: &str, db: &str) -> Result<(), String> {
        let login = self.login(user, password, db);
        blocking(|rt| rt.block_on(login.simple_query("SELECT 1"))).map(drop)
    }

    /// Fast shutdown (SIGINT) and wait for the postmaster to exit.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            let status = shut_down(child, STOP_TIMEOUT);
            assert!(
                status.success(),
                "postgres did not shut down cleanly ({status});\n{}",
                log_tail(&self.log(), 40)
            );
        }
    }

    /// SIGKILL the postmaster, as a crash would; the next start recovers.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the stopped or killed server again, on the same data directory
    /// and port.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "server is already running");
        self.launch(false);
    }

    /// `stop()` then `start_again()`.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    fn create(builder: PgServerBuilder) -> PgServer {
        let bin_dir = bin_dir().to_owned();
        let owner = owner();
        let dir = tempfile::Builder::new()
            .prefix("pgt")
            .tempdir_in(temp_base(owner.is_some()))
            .expect("create the server's temporary directory");
        let data_dir = dir.path().join("data");
        let log_path = dir.path().join("server.log");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
            .expect("chmod the server's temporary directory");
        give_to(owner, dir.path());

        let password = random_password();
        initdb(&bin_dir, owner, dir.path(), &data_dir, &password);
        write_conf(&data_dir, dir.path(), &builder.conf);
        write_hba(&data_dir, &builder.hba);
        File::create(&log_path).expect("create server.log");
        give_to(owner, &log_path);

        let mut server = PgServer {
            child: None,
            port: pick_port(),
            password,
            major: 0,
            bin_dir,
            owner,
            data_dir,
            log_path,
            dir,
        };
        server.launch(true);
        if let Some(wanted) = wanted_major() {
            assert_eq!(
                server.major,
                wanted,
                "PGTENANT_TEST_PG={wanted} but {} runs PostgreSQL {}",
                server.bin_dir.display(),
                server.major
            );
        }
        server
    }

    /// Starts the postmaster and waits until the superuser can log in.
    /// Retries what a parallel test run can cause: the port taken between
    /// picking and binding it (a fresh server then moves to another port), or
    /// a killed predecessor's shared memory and lock still being released.
    fn launch(&mut self, may_move: bool) {
        let mut last = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let log_start = fs::metadata(&self.log_path).map(|m| m.len()).unwrap_or(0);
            let mut child = self.spawn_postgres();
            match self.wait_ready(&mut child) {
                Ok(version_num) => {
                    self.major = version_num / 10000;
                    self.child = Some(child);
                    return;
                }
                Err(Failure::Exited(status)) => {
                    let log = read_from(&self.log_path, log_start);
                    let port_taken = log.contains("Address already in use");
                    let transient = port_taken
                        || log.contains("pre-existing shared memory block")
                        || log.contains("lock file") && log.contains("already exists");
                    last = format!("postgres exited ({status}):\n{}", log_tail(&log, 40));
                    if !transient {
                        break;
                    }
                    if port_taken && may_move {
                        self.port = pick_port();
                    } else {
                        std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
                    }
                }
                Err(Failure::Timeout(error)) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = format!(
                        "postgres did not accept a login within {READY_TIMEOUT:?} \
                         (last error: {error}):\n{}",
                        log_tail(&read_from(&self.log_path, log_start), 40)
                    );
                    break;
                }
            }
        }
        panic!(
            "could not start PostgreSQL from {} on port {} (data {}): {last}",
            self.bin_dir.display(),
            self.port,
            self.data_dir.display()
        );
    }

    fn spawn_postgres(&self) -> Child {
        let log = OpenOptions::new()
            .append(true)
            .open(&self.log_path)
            .expect("open server.log");
        let log2 = log.try_clone().expect("dup server.log");
        let mut cmd = pg_command(&self.bin_dir, "postgres", self.owner, self.dir.path());
        // The port on the command line rather than in postgresql.conf: a
        // fresh server that loses its port to a race simply retries on
        // another one.
        cmd.arg("-D")
            .arg(&self.data_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .stdout(log)
            .stderr(log2);
        cmd.spawn()
            .unwrap_or_else(|e| panic!("spawn {}/postgres: {e}", self.bin_dir.display()))
    }

    /// Polls until a real login succeeds: a TCP connect alone can succeed
    /// while the server still answers "the database system is starting up".
    fn wait_ready(&self, child: &mut Child) -> Result<u32, Failure> {
        let login = self.login(SUPERUSER, &self.password, "postgres");
        blocking(|rt| {
            let deadline = Instant::now() + READY_TIMEOUT;
            loop {
                if let Some(status) = child.try_wait().expect("poll postgres") {
                    return Err(Failure::Exited(status));
                }
                let sql = "SELECT current_setting('server_version_num')";
                let last_error = match rt.block_on(login.simple_query(sql)) {
                    Ok(rows) => {
                        let num = rows.first().and_then(|r| r.first().cloned().flatten());
                        return Ok(num
                            .and_then(|n| n.parse().ok())
                            .expect("server_version_num is a number"));
                    }
                    Err(e) => e,
                };
                if Instant::now() > deadline {
                    return Err(Failure::Timeout(last_error));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    }

    fn login(&self, user: &str, password: &str, db: &str) -> Login {
        let mut config = tokio_postgres::Config::new();
        config
            .host(HOST)
            .port(self.port)
            .user(user)
            .password(password)
            .dbname(db)
            .application_name(APPLICATION_NAME)
            .connect_timeout(Duration::from_secs(5));
        Login(config)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            shut_down(child, DROP_GRACE);
        }
        // A failing test wants to know what the server saw.
        if std::thread::panicking() {
            eprintln!(
                "--- PostgreSQL log ({}) ---\n{}",
                self.log_path.display(),
                log_tail(&self.log(), 60)
            );
        }
    }
}

enum Failure {
    Exited(ExitStatus),
    Timeout(String),
}

/// Connection settings for one blocking login, built outside the runtime so
/// the work can move to a helper thread.
struct Login(tokio_postgres::Config);

impl Login {
    async fn simple_query(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        let (client, connection) = self.0.connect(NoTls).await.map_err(|e| describe(&e))?;
        let connection = tokio::spawn(connection);
        let result = client.simple_query(sql).await.map_err(|e| describe(&e));
        // Waiting for the connection task to end sends Terminate, so the
        // backend is gone before, say, a DROP DATABASE the test runs next.
        drop(client);
        let _ = connection.await;
        Ok(result?
            .into_iter()
            .filter_map(|message| match message {
                SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_owned))
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    }
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        ),
        None => e.to_string(),
    }
}

/// Runs `f` with a fresh current-thread runtime. Tests may be async
/// themselves, and a runtime cannot block inside another, so then the work
/// moves to a scoped thread.
fn blocking<T: Send>(f: impl FnOnce(&tokio::runtime::Runtime) -> T + Send) -> T {
    let run = || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("build a tokio runtime");
        f(&rt)
    };
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| {
            s.spawn(run)
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    } else {
        run()
    }
}

/// SIGINT (fast shutdown: abort transactions, checkpoint, exit), then SIGKILL
/// if the postmaster is still there after `grace`.
fn shut_down(mut child: Child, grace: Duration) -> ExitStatus {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: plain syscall on the pid of a child we have not reaped yet, so
    // it cannot have been reused by another process.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let deadline = Instant::now() + grace;
    loop {
        if let Some(status) = child.try_wait().expect("poll postgres") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return child.wait().expect("reap postgres");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// User and group PostgreSQL runs as.
#[derive(Debug, Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
}

/// PostgreSQL refuses to run as root, and CI runs as root: then initdb and
/// postgres run as the `postgres` system user, else `nobody`. `None` means
/// the current user.
fn owner() -> Option<Owner> {
    static OWNER: OnceLock<Option<Owner>> = OnceLock::new();
    *OWNER.get_or_init(|| {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        Some(
            lookup_user("postgres")
                .or_else(|| lookup_user("nobody"))
                .unwrap_or(Owner {
                    uid: 65534,
                    gid: 65534,
                }),
        )
    })
}

fn lookup_user(name: &str) -> Option<Owner> {
    let name = CString::new(name).ok()?;
    // SAFETY: getpwnam_r writes only into `pwd` and `buf`, both alive and
    // sized as passed; `result` is null or points at `pwd`.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        (rc == 0 && !result.is_null()).then_some(Owner {
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        })
    }
}

fn give_to(owner: Option<Owner>, path: &Path) {
    if let Some(o) = owner {
        chown(path, Some(o.uid), Some(o.gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    }
}

/// Where temporary directories go: somewhere short (socket path limit) and,
/// when PostgreSQL runs as another user, reachable by it — `$TMPDIR` may be
/// under a private home.
fn temp_base(other_user: bool) -> PathBuf {
    let tmp = std::env::temp_dir();
    if other_user || tmp.as_os_str().len() > 40 {
        PathBuf::from("/tmp")
    } else {
        tmp
    }
}

/// A command for one of the server binaries, with an environment that does
/// not depend on the test's: PG* variables (PGPORT, PGDATA, ...) would change
/// defaults, and a locale missing on the machine makes postgres complain.
fn pg_command(bin_dir: &Path, program: &str, owner: Option<Owner>, cwd: &Path) -> Command {
    let mut cmd = Command::new(bin_dir.join(program));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    cmd.env("LC_ALL", "C").env("LANG", "C");
    // The test's working directory may not be readable by `owner`.
    cmd.current_dir(cwd).stdin(Stdio::null());
    if let Some(o) = owner {
        cmd.uid(o.uid).gid(o.gid);
    }
    cmd
}

fn initdb(bin_dir: &Path, owner: Option<Owner>, dir: &Path, data_dir: &Path, password: &str) {
    let pwfile = dir.join("pwfile");
    {
        let mut f = File::create(&pwfile).expect("create pwfile");
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .expect("chmod pwfile");
        writeln!(f, "{password}").expect("write pwfile");
    }
    give_to(owner, &pwfile);
    let output = pg_command(bin_dir, "initdb", owner, dir)
        .arg("-D")
        .arg(data_dir)
        .args([
            "--auth=scram-sha-256",
            "--username",
            SUPERUSER,
            "--encoding=UTF8",
            "--locale=C",
            // The data is thrown away; syncing it costs most of initdb's time.
            "--no-sync",
        ])
        .arg(format!("--pwfile={}", pwfile.display()))
        .output();
    let _ = fs::remove_file(&pwfile);
    let output = output
        .unwrap_or_else(|e| panic!("run {}/initdb: {e}{}", bin_dir.display(), owner_hint(owner)));
    assert!(
        output.status.success(),
        "initdb failed ({}){}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        owner_hint(owner),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn owner_hint(owner: Option<Owner>) -> String {
    match owner {
        Some(o) => format!(
            " (running as uid {} gid {}: the binaries and their directories must be \
             readable and executable by that user; scripts/fetch-postgres makes its cache so)",
            o.uid, o.gid
        ),
        None => String::new(),
    }
}

fn write_conf(data_dir: &Path, socket_dir: &Path, extra: &[(String, String)]) {
    let socket_dir = socket_dir.to_str().expect("socket dir is UTF-8");
    let mut conf = String::from("\n# Added by the pgtenant test fixture; later lines win.\n");
    let settings = DEFAULT_CONF
        .iter()
        .map(|&(k, v)| (k, v))
        .chain([("unix_socket_directories", socket_dir)])
        .chain(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    for (name, value) in settings {
        conf.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
    }
    // Appending keeps the file's owner (the server's user) as it is.
    let mut f = OpenOptions::new()
        .append(true)
        .open(data_dir.join("postgresql.conf"))
        .expect("open postgresql.conf");
    f.write_all(conf.as_bytes()).expect("write postgresql.conf");
}

fn write_hba(data_dir: &Path, extra: &[String]) {
    let mut hba = String::from("# Written by the pgtenant test fixture; the first match wins.\n");
    for line in extra {
        hba.push_str(line);
        hba.push('\n');
    }
    hba.push_str("local all all scram-sha-256\n");
    hba.push_str(&format!("host all all {HOST}/32 scram-sha-256\n"));
    // fs::write truncates the existing file, keeping its owner.
    fs::write(data_dir.join("pg_hba.conf"), hba).expect("write pg_hba.conf");
}

/// A port free right now. Binding port 0 asks the kernel; the set keeps this
/// process from handing the same port to two servers (one may be stopped
/// for a restart, its port released but still its own).
fn pick_port() -> u16 {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let port = TcpListener::bind((HOST, 0))
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if handed_out.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 24];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

fn read_from(path: &Path, offset: u64) -> String {
    let mut text = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.seek(SeekFrom::Start(offset));
        let _ = f.read_to_end(&mut text);
    }
    String::from_utf8_lossy(&text).into_owned()
}

fn log_tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The major asked for with `PGTENANT_TEST_PG`, if any.
fn wanted_major() -> Option<u32> {
    let value = std::env::var("PGTENANT_TEST_PG").ok()?;
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let known: Vec<u32> = POSTGRES_VERSIONS
        .lines()
        .filter_map(|line| line.split_whitespace().next()?.parse().ok())
        .collect();
    match value.parse() {
        Ok(major) if known.contains(&major) => Some(major),
        _ => panic!(
            "PGTENANT_TEST_PG={value:?}: expected one of {known:?} (scripts/postgres-versions)"
        ),
    }
}

/// The cache `scripts/fetch-postgres` fills; keep the default in step with it.
fn pg_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("PGTENANT_PG_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    // Root's tests run PostgreSQL as an unprivileged user, which cannot
    // reach into /root; the script installs outside it then.
    if owner().is_some() {
        return PathBuf::from("/var/cache/pgtenant/postgres");
    }
    let home = std::env::var_os("HOME").expect("HOME is set");
    Path::new(&home).join(".cache/pgtenant/postgres")
}

/// Directory holding `initdb` and `postgres`, resolved once per test run.
fn bin_dir() -> &'static Path {
    static BIN_DIR: OnceLock<PathBuf> = OnceLock::new();
    BIN_DIR.get_or_init(|| match wanted_major() {
        Some(major) => {
            let dir = pg_cache().join(major.to_string()).join("bin");
            assert!(
                has_server(&dir),
                "PGTENANT_TEST_PG={major}: no PostgreSQL {major} in {}; \
                 run `scripts/fetch-postgres {major}` first",
                dir.display()
            );
            dir
        }
        None => system_bin_dir().unwrap_or_else(|| {
            panic!(
                "no PostgreSQL server binaries found (looked in /usr/lib/postgresql/*/bin, \
                 `pg_config --bindir` and PATH); install them (Debian: apt-get install \
                 postgresql) or set PGTENANT_TEST_PG and run scripts/fetch-postgres"
            )
        }),
    })
}

fn has_server(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}

/// This machine's own PostgreSQL: Debian's newest major, else whatever
/// `pg_config` or PATH points at.
fn system_bin_dir() -> Option<PathBuf> {
    let mut debian: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            has_server(&bin).then_some((major, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return Some(bin);
    }
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(bin) = from_pg_config.filter(|b| has_server(b)) {
        return Some(bin);
    }
    // PATH may hold symlinks (e.g. /usr/local/bin/initdb); the real directory
    // is where `postgres` sits beside it.
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("initdb"))
        .find(|initdb| initdb.is_file())
        .and_then(|initdb| fs::canonicalize(initdb).ok())
        .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
        .filter(|bin| has_server(bin))
}
