//! The first-apply benchmark (issue 14): prints figures, asserts nothing.
//!
//! For N tenants (default 200) with random passwords it measures, in the same
//! run and each on a fresh throwaway server of the integration fixture
//! (`tests/integration/support/server.rs`; Debian's PostgreSQL unless
//! `PGTENANT_TEST_PG` is set):
//!
//! * `pgtenant apply` of the release binary, with its default `--jobs` and
//!   `--create-strategy` (plus any `--variant "ARGS"`);
//! * one `psql -X -q -f file` session running the statements a first apply
//!   runs: `CREATE ROLE ... LOGIN PASSWORD '<verifier>'`, `CREATE DATABASE ...
//!   OWNER ...`, `REVOKE CONNECT, TEMPORARY ... FROM PUBLIC`, verifiers
//!   computed beforehand (`--psql-file-copy` adds the same file with `STRATEGY
//!   = FILE_COPY`, on 15 and newer);
//!
//! once on a durable server (`fsync = on`, `synchronous_commit = on`) and once
//! with `fsync = off` (`--modes` picks). The clients of one repetition run in
//! an order that alternates between repetitions, so that a drift of the
//! machine's load does not favour one of them; each run starts after a
//! `sync`. It prints, per mode, the median, minimum and maximum of each
//! client, the ratio of the medians, and the median of the ratios within one
//! repetition (the least noisy figure on a shared machine).
//!
//! `--noop N --old-bin PATH` instead compares two binaries on one server
//! holding N tenants (provisioned by the new binary, whose first apply's time
//! and peak RSS it prints): the no-op apply's wall time, CPU time and peak
//! RSS, alternating the binaries.
//!
//! Run it with `scripts/bench-first-apply [ARGS]`.

#[path = "../tests/integration/support/server.rs"]
mod server;

use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pgtenant::reconcile::scram::{ScramVerifier, DEFAULT_ITERATIONS};
use pgtenant::server::sql;
use pgtenant::server::strategy::Strategy;
use server::PgServer;

const USAGE: &str = "usage: bench_first_apply [--bin PATH] [--reps R] [--tenants N] \
    [--modes durable,fsync-off] [--variant \"PGTENANT ARGS\"]... [--psql-file-copy]\n       \
    bench_first_apply --noop N --old-bin PATH [--bin PATH] [--reps R]";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Durable,
    FsyncOff,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Durable => "durable (fsync = on, synchronous_commit = on)",
            Mode::FsyncOff => "fsync = off",
        }
    }
    fn server(self) -> PgServer {
        let b = PgServer::builder();
        match self {
            Mode::Durable => b.conf("fsync", "on").conf("synchronous_commit", "on"),
            Mode::FsyncOff => b.conf("fsync", "off"),
        }
        .start()
    }
}

struct Args {
    bin: PathBuf,
    old_bin: Option<PathBuf>,
    reps: usize,
    tenants: usize,
    noop: Option<usize>,
    modes: Vec<Mode>,
    variants: Vec<Vec<String>>,
    psql_file_copy: bool,
}

fn parse_args() -> Args {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut args = Args {
        bin: root.join("target/release/pgtenant"),
        old_bin: None,
        reps: 3,
        tenants: 200,
        noop: None,
        modes: vec![Mode::Durable, Mode::FsyncOff],
        variants: Vec::new(),
        psql_file_copy: false,
    };
    let mut it = std::env::args().skip(1);
    let fail = |msg: String| -> ! {
        eprintln!("bench_first_apply: {msg}\n{USAGE}");
        std::process::exit(2)
    };
    let number = |name: &str, v: String| -> usize {
        v.parse()
            .ok()
            .filter(|&n| n >= 1)
            .unwrap_or_else(|| fail(format!("{name}: expected a number >= 1")))
    };
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .unwrap_or_else(|| fail(format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--bin" => args.bin = PathBuf::from(value("--bin")),
            "--old-bin" => args.old_bin = Some(PathBuf::from(value("--old-bin"))),
            "--reps" => args.reps = number("--reps", value("--reps")),
            "--tenants" => args.tenants = number("--tenants", value("--tenants")),
            "--noop" => args.noop = Some(number("--noop", value("--noop"))),
            "--modes" => {
                args.modes = value("--modes")
                    .split(',')
                    .map(|m| match m {
                        "durable" => Mode::Durable,
                        "fsync-off" => Mode::FsyncOff,
                        other => fail(format!("--modes: unknown mode {other:?}")),
                    })
                    .collect()
            }
            "--variant" => args.variants.push(
                value("--variant")
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
            ),
            "--psql-file-copy" => args.psql_file_copy = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            other => fail(format!("unexpected argument {other:?}")),
        }
    }
    for bin in std::iter::once(&mut args.bin).chain(args.old_bin.as_mut()) {
        *bin = fs::canonicalize(&*bin).unwrap_or_else(|_| {
            fail(format!(
                "{} not found; build it with `cargo build --release`",
                bin.display()
            ))
        });
    }
    if args.noop.is_some() && args.old_bin.is_none() {
        fail("--noop needs --old-bin".into());
    }
    args
}

/// One timed run of a child process.
#[derive(Debug, Clone, Copy)]
struct Sample {
    secs: f64,
    cpu_secs: f64,
    max_rss_bytes: u64,
}

/// Spawns `cmd` with its output to `log`, waits with `wait4`; panics (with
/// the log's tail) unless it exits 0.
fn run_timed(what: &str, cmd: &mut Command, log: &Path) -> Sample {
    let out = File::create(log).expect("create log");
    let err = out.try_clone().expect("dup log");
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let started = Instant::now();
    let child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: spawn: {e}"));
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waits for our own unreaped child; both pointers are valid
        // for writes. `child` is never waited on by std afterwards.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "{what}: {e}");
    }
    let secs = started.elapsed().as_secs_f64();
    drop(child);
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let text = fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!("{what} failed ({status:#x}):\n{}", tail.join("\n"));
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Sample {
        secs,
        cpu_secs: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_bytes: u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024,
    }
}

/// Writes back what earlier runs left dirty, so no run pays for another's I/O.
fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::thread::sleep(Duration::from_millis(500));
}

fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("random bytes");
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

fn client_command(program: &Path, server: &PgServer) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear().env("LC_ALL", "C").env("LANG", "C");
    for key in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    cmd.envs(server.admin_env())
        .current_dir(std::env::temp_dir());
    cmd
}

fn count_tenants(server: &PgServer) -> (usize, usize) {
    let rows = server.query(
        "SELECT (SELECT count(*) FROM pg_catalog.pg_roles WHERE rolname LIKE 'tenant%'), \
                (SELECT count(*) FROM pg_catalog.pg_database WHERE datname LIKE 'tenant%\\_db')",
    );
    let get = |i: usize| -> usize {
        rows[0][i]
            .as_deref()
            .and_then(|s| s.parse().ok())
            .expect("a count")
    };
    (get(0), get(1))
}

/// The statements of pgtenant's first apply, verifiers precomputed.
fn write_sql(users: &[(String, String)], strategy: Option<Strategy>, path: &Path) {
    let mut text = String::new();
    for (user, password) in users {
        let verifier = ScramVerifier::generate(password, DEFAULT_ITERATIONS)
            .expect("random salt")
            .to_string();
        let database = format!("{user}_db");
        for stmt in [
            sql::create_role(user, &verifier),
            sql::create_database(&database, user, strategy),
            sql::revoke_database_from_public(&database, &["CONNECT", "TEMPORARY"]),
        ] {
            writeln!(text, "{};", stmt.text()).expect("write to a String");
        }
    }
    fs::write(path, text).expect("write the SQL file");
}

/// A client under test: a label and how to run it on a server.
enum Client {
    Pgtenant { bin: PathBuf, args: Vec<String> },
    Psql { file: PathBuf },
}

impl Client {
    fn label(&self) -> String {
        match self {
            Client::Pgtenant { args, .. } if args.is_empty() => "pgtenant apply".into(),
            Client::Pgtenant { args, .. } => format!("pgtenant apply {}", args.join(" ")),
            Client::Psql { file } => format!(
                "psql, 1 session ({})",
                file.file_stem().unwrap_or_default().to_string_lossy()
            ),
        }
    }

    /// One run on a fresh server; the sample and, for pgtenant, how many
    /// sessions it worked over.
    fn run(&self, mode: Mode, users_file: &Path, dir: &Path, n: usize) -> (Sample, Option<usize>) {
        let server = mode.server();
        settle();
        let log = dir.join("client.log");
        let (sample, sessions) = match self {
            Client::Pgtenant { bin, args } => {
                let mut cmd = client_command(bin, &server);
                cmd.env("DBUSERS", users_file).arg("apply").args(args);
                let s = run_timed("pgtenant apply", &mut cmd, &log);
                let text = fs::read_to_string(&log).unwrap_or_default();
                (s, Some(sessions_from_log(&text)))
            }
            Client::Psql { file } => {
                let mut cmd = client_command(Path::new("psql"), &server);
                cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
                    .arg(file);
                (run_timed("psql -f", &mut cmd, &log), None)
            }
        };
        assert_eq!(count_tenants(&server), (n, n), "{}", self.label());
        drop(server);
        (sample, sessions)
    }
}

/// "applying over 4 sessions" in pgtenant's log; 1 when it did not say.
fn sessions_from_log(text: &str) -> usize {
    text.lines()
        .filter_map(|l| l.split_once("applying over ").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .next_back()
        .unwrap_or(1)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn min_max(v: &[f64]) -> (f64, f64) {
    (
        v.iter().copied().fold(f64::INFINITY, f64::min),
        v.iter().copied().fold(0.0, f64::max),
    )
}

fn version() -> (String, u32) {
    let s = PgServer::start();
    let v = s.query("SELECT pg_catalog.version()")[0][0]
        .clone()
        .unwrap_or_default();
    let v = v.split(" on ").next().unwrap_or(&v).to_owned();
    (v, s.major())
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!("{cores} cores, load average {}", load.join(" "))
}

fn users_file(n: usize, dir: &Path) -> (Vec<(String, String)>, PathBuf) {
    let users: Vec<(String, String)> = (1..=n)
        .map(|i| (format!("tenant{i:05}"), random_password()))
        .collect();
    let path = dir.join("db_users.secret");
    let mut text = String::new();
    for (u, p) in &users {
        writeln!(text, "{u}:{p}").expect("write to a String");
    }
    fs::write(&path, text).expect("write the users file");
    (users, path)
}

fn first_apply(args: &Args) {
    let (version, major) = version();
    let dir = tempfile::Builder::new()
        .prefix("pgtenant-bench-first")
        .tempdir()
        .expect("temporary directory");
    let n = args.tenants;
    let (users, users_path) = users_file(n, dir.path());
    let plain = dir.path().join("plain.sql");
    write_sql(&users, None, &plain);
    let mut clients = vec![
        Client::Pgtenant {
            bin: args.bin.clone(),
            args: Vec::new(),
        },
        Client::Psql { file: plain },
    ];
    if args.psql_file_copy && major >= 15 {
        let file = dir.path().join("file_copy.sql");
        write_sql(&users, Some(Strategy::FileCopy), &file);
        clients.push(Client::Psql { file });
    }
    for v in &args.variants {
        clients.push(Client::Pgtenant {
            bin: args.bin.clone(),
            args: v.clone(),
        });
    }
    eprintln!(
        "bench: {version}; {n} tenants; {} reps; {}",
        args.reps,
        machine()
    );
    let started = Instant::now();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "first apply of {n} tenants, each run on a fresh server; {version}; {}; {} reps\n",
        machine(),
        args.reps
    );
    for &mode in &args.modes {
        // times[client][rep]
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); clients.len()];
        let mut sessions: Vec<Option<usize>> = vec![None; clients.len()];
        for rep in 0..args.reps {
            let order: Vec<usize> = if rep % 2 == 0 {
                (0..clients.len()).collect()
            } else {
                (0..clients.len()).rev().collect()
            };
            for i in order {
                let (s, k) = clients[i].run(mode, &users_path, dir.path(), n);
                eprintln!(
                    "  {} rep {rep}: {:<50} {:>7.2} s{}",
                    mode.name(),
                    clients[i].label(),
                    s.secs,
                    k.map(|k| format!(" over {k} sessions")).unwrap_or_default()
                );
                times[i].push(s.secs);
                sessions[i] = sessions[i].max(k);
            }
        }
        let psql = median(times[1].clone());
        let _ = writeln!(out, "{}:\n", mode.name());
        let _ = writeln!(
            out,
            "| client | sessions | median | min – max | ÷ psql (medians) | ÷ psql (median of paired runs) |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
        for (i, c) in clients.iter().enumerate() {
            let m = median(times[i].clone());
            let (lo, hi) = min_max(&times[i]);
            let paired = median(times[i].iter().zip(&times[1]).map(|(a, b)| a / b).collect());
            let _ = writeln!(
                out,
                "| {} | {} | {m:.2} s | {lo:.2} – {hi:.2} s | {:.2}× | {paired:.2}× |",
                c.label(),
                sessions[i].map_or("1".into(), |k| k.to_string()),
                m / psql,
            );
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "bench took {:.0} s", started.elapsed().as_secs_f64());
    println!("{out}");
}

fn noop(args: &Args, n: usize) {
    let old = args.old_bin.clone().expect("checked");
    let (version, _) = version();
    let dir = tempfile::Builder::new()
        .prefix("pgtenant-bench-noop")
        .tempdir()
        .expect("temporary directory");
    let (_, users_path) = users_file(n, dir.path());
    eprintln!("bench: {version}; no-op of {n} tenants; {}", machine());
    let bins = [("before", old), ("after", args.bin.clone())];
    let apply = |bin: &Path, server: &PgServer, log: &str| {
        settle();
        let mut cmd = client_command(bin, server);
        cmd.env("DBUSERS", &users_path).arg("apply");
        run_timed("pgtenant apply", &mut cmd, &dir.path().join(log))
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{n} tenants, fsync = off; {version}; {}; {} reps\n",
        machine(),
        args.reps
    );
    let _ = writeln!(
        out,
        "| binary | no-op wall (median, min – max) | no-op CPU (median) | no-op peak RSS |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|");
    // The first apply by the new binary (the old one's first apply of N
    // tenants can take minutes: one database after another); then no-op
    // applies of both binaries on that server, alternating.
    let server = Mode::FsyncOff.server();
    let first = apply(&bins[1].1, &server, "first.log");
    assert_eq!(count_tenants(&server), (n, n));
    eprintln!("  after first apply: {:.2} s", first.secs);
    let mut noops: Vec<Vec<Sample>> = vec![Vec::new(), Vec::new()];
    for rep in 0..args.reps.max(3) {
        for k in [rep % 2, 1 - rep % 2] {
            let s = apply(&bins[k].1, &server, "noop.log");
            let log = fs::read_to_string(dir.path().join("noop.log")).unwrap_or_default();
            assert!(
                log.contains(&format!("0 created, 0 updated, {n} unchanged")),
                "{log}"
            );
            eprintln!("  {} no-op: {:.3} s", bins[k].0, s.secs);
            noops[k].push(s);
        }
    }
    const MIB: f64 = 1024.0 * 1024.0;
    for (k, (name, _)) in bins.iter().enumerate() {
        let walls: Vec<f64> = noops[k].iter().map(|s| s.secs).collect();
        let (lo, hi) = min_max(&walls);
        let cpu = median(noops[k].iter().map(|s| s.cpu_secs).collect());
        let rss = noops[k].iter().map(|s| s.max_rss_bytes).max().unwrap_or(0);
        let _ = writeln!(
            out,
            "| {name} | {:.3} s ({lo:.3} – {hi:.3}) | {cpu:.3} s | {:.1} MiB |",
            median(walls.clone()),
            rss as f64 / MIB
        );
    }
    let _ = writeln!(
        out,
        "\nfirst apply of {n} tenants by the after binary: {:.2} s, peak RSS {:.1} MiB",
        first.secs,
        first.max_rss_bytes as f64 / MIB
    );
    println!("{out}");
}

fn main() {
    let args = parse_args();
    match args.noop {
        Some(n) => noop(&args, n),
        None => first_apply(&args),
    }
}
