//! The performance benchmark (issue 2): prints figures, asserts nothing.
//!
//! For each N (default 10, 100, 1000) it makes N tenants `tenantNNNNN` with
//! random 24-character passwords and measures, each on a throwaway server of
//! the integration fixture (`tests/integration/support/server.rs`, Debian's
//! PostgreSQL by default), a fresh server for every first apply:
//!
//! * `pgtenant apply` of the release binary: the first apply and a no-op
//!   apply on the same server, wall time and peak RSS (`wait4` ru_maxrss);
//! * the article's `wait-for-postgres.sh` + `init-user-db.sh`
//!   (`bench/article/`, host and port substituted) on the same users file:
//!   the first run and a second run on the same server;
//! * one `psql -X -q -f file` session executing the statements pgtenant's
//!   first apply runs (CREATE ROLE ... LOGIN PASSWORD '<verifier>', CREATE
//!   DATABASE ... OWNER, REVOKE CONNECT, TEMPORARY ... FROM PUBLIC), with
//!   verifiers computed beforehand;
//! * the floor of a no-op apply: N `ScramVerifier::matches` in this process,
//!   on one thread and on every core (`pgtenant::reconcile::parallel::map`).
//!
//! Each measurement is repeated up to `--reps` times (default 3) while its
//! accumulated time stays under `--budget` seconds (default 20); the median is
//! reported. Run it with `scripts/bench [N...]`.

#[path = "../tests/integration/support/server.rs"]
mod server;

use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pgtenant::reconcile::scram::{ScramVerifier, DEFAULT_ITERATIONS};
use pgtenant::server::sql;
use server::PgServer;

const USAGE: &str = "usage: bench [--bin PATH] [--reps R] [--budget SECONDS] [N...]";
const MIB: f64 = 1024.0 * 1024.0;

/// The targets of issue 2, checked (not asserted) on the largest N.
const NOOP_OVER_FLOOR_MAX: f64 = 1.5;
const SPEEDUP_OVER_ARTICLE_MIN: f64 = 20.0;
const FIRST_OVER_PSQL_MAX: f64 = 1.2;
const PEAK_RSS_MAX_MIB: f64 = 16.0;

struct Args {
    bin: PathBuf,
    reps: usize,
    budget: Duration,
    sizes: Vec<usize>,
}

fn parse_args() -> Args {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut args = Args {
        bin: root.join("target/release/pgtenant"),
        reps: 3,
        budget: Duration::from_secs(20),
        sizes: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    let fail = |msg: String| -> ! {
        eprintln!("bench: {msg}\n{USAGE}");
        std::process::exit(2)
    };
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .unwrap_or_else(|| fail(format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--bin" => args.bin = PathBuf::from(value("--bin")),
            "--reps" => {
                args.reps = value("--reps")
                    .parse()
                    .ok()
                    .filter(|&r| r >= 1)
                    .unwrap_or_else(|| fail("--reps: expected a number >= 1".into()))
            }
            "--budget" => {
                args.budget = Duration::from_secs_f64(
                    value("--budget")
                        .parse()
                        .unwrap_or_else(|_| fail("--budget: expected seconds".into())),
                )
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            n => args.sizes.push(
                n.parse()
                    .ok()
                    .filter(|&n| n >= 1)
                    .unwrap_or_else(|| fail(format!("unexpected argument {n:?}"))),
            ),
        }
    }
    if args.sizes.is_empty() {
        args.sizes = vec![10, 100, 1000];
    }
    // Absolute: the clients run in another working directory.
    args.bin = fs::canonicalize(&args.bin).unwrap_or_else(|_| {
        fail(format!(
            "{} not found; build it with `cargo build --release`",
            args.bin.display()
        ))
    });
    args
}

/// One timed run of a child process.
#[derive(Debug, Clone, Copy)]
struct Sample {
    secs: f64,
    /// User plus system CPU time of the child itself.
    cpu_secs: f64,
    /// Peak resident set size of the child itself (not its own children).
    max_rss_bytes: u64,
}

/// The median of the samples and how many there were.
#[derive(Debug, Clone, Copy)]
struct Measured {
    secs: f64,
    cpu_secs: f64,
    max_rss_bytes: u64,
    runs: usize,
}

fn summarize(samples: &[Sample]) -> Measured {
    Measured {
        secs: median(samples.iter().map(|s| s.secs).collect()),
        cpu_secs: median(samples.iter().map(|s| s.cpu_secs).collect()),
        max_rss_bytes: samples.iter().map(|s| s.max_rss_bytes).max().unwrap_or(0),
        runs: samples.len(),
    }
}

/// Runs `f` up to `reps` times, stopping early once the measured time adds
/// up to `budget` (always at least once).
fn repeat(reps: usize, budget: Duration, mut f: impl FnMut() -> Sample) -> Measured {
    let mut samples = Vec::new();
    let mut spent = 0.0;
    while samples.len() < reps && (samples.is_empty() || spent < budget.as_secs_f64()) {
        let s = f();
        spent += s.secs;
        samples.push(s);
    }
    summarize(&samples)
}

/// Spawns `cmd` with stdout and stderr to `log`, waits with `wait4` and
/// returns its wall time and peak RSS. Panics (with the log's tail) unless it
/// exits 0.
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
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::Interrupted,
            "{what}: wait4: {e}"
        );
    }
    let secs = started.elapsed().as_secs_f64();
    drop(child);
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !ok {
        let text = fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "{what} failed (wait status {status:#x}); last lines of {}:\n{}",
            log.display(),
            tail.join("\n")
        );
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Sample {
        secs,
        cpu_secs: tv(usage.ru_utime) + tv(usage.ru_stime),
        // ru_maxrss is in KiB on Linux.
        max_rss_bytes: u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024,
    }
}

/// Before each timed run: write back what earlier runs left dirty (a first
/// apply of 1000 tenants leaves gigabytes with fsync off, and removing a
/// server's directory frees as much), so that no run pays for another's I/O.
fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::thread::sleep(Duration::from_millis(300));
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

/// A clean environment for a client: nothing from ours but PATH and HOME,
/// then the server's superuser login.
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

/// How many tenant roles and databases the server has.
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

#[track_caller]
fn expect_tenants(server: &PgServer, n: usize, what: &str) {
    assert_eq!(
        count_tenants(server),
        (n, n),
        "{what}: tenants on the server"
    );
}

struct Workload<'a> {
    n: usize,
    users: &'a [(String, String)],
    users_file: &'a Path,
    dir: &'a Path,
    bin: &'a Path,
    article: &'a Path,
}

impl Workload<'_> {
    fn pgtenant_apply(&self, server: &PgServer, log: &str) -> Sample {
        settle();
        let log = self.dir.join(log);
        let mut cmd = client_command(self.bin, server);
        cmd.env("DBUSERS", self.users_file).arg("apply");
        run_timed("pgtenant apply", &mut cmd, &log)
    }

    /// The article's sidecar minus its `sleep infinity`: wait for the
    /// server, then provision.
    fn article_run(&self, server: &PgServer, log: &str) -> Sample {
        settle();
        let started = Instant::now();
        let (mut rss, mut cpu_secs) = (0, 0.0);
        for script in ["wait-for-postgres.sh", "init-user-db.sh"] {
            // bash rather than the shebang's sh: Debian's dash has no
            // `set -o pipefail` (the article runs them under Alpine's ash).
            let mut cmd = client_command(Path::new("bash"), server);
            // The scripts name host, port and user themselves; the password
            // comes from POSTGRES_PASSWORD as in the article.
            for var in ["PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"] {
                cmd.env_remove(var);
            }
            cmd.env("BENCH_PGHOST", server.host())
                .env("BENCH_PGPORT", server.port().to_string())
                .env("POSTGRES_USER", server.superuser())
                .env("POSTGRES_PASSWORD", server.superuser_password())
                .env("DBUSERS", self.users_file)
                .arg(self.article.join(script));
            let s = run_timed(
                script,
                &mut cmd,
                &self.dir.join(format!("{log}.{script}.log")),
            );
            rss = rss.max(s.max_rss_bytes);
            cpu_secs += s.cpu_secs;
        }
        Sample {
            secs: started.elapsed().as_secs_f64(),
            cpu_secs,
            max_rss_bytes: rss,
        }
    }

    fn psql_session(&self, server: &PgServer, file: &Path) -> Sample {
        settle();
        let mut cmd = client_command(Path::new("psql"), server);
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(file);
        run_timed("psql -f", &mut cmd, &self.dir.join("psql.log"))
    }

    /// The statements of pgtenant's first apply, verifiers precomputed.
    fn write_sql(&self) -> PathBuf {
        let mut text = String::new();
        for (user, password) in self.users {
            let verifier = ScramVerifier::generate(password, DEFAULT_ITERATIONS)
                .expect("random salt")
                .to_string();
            let database = format!("{user}_db");
            for stmt in [
                sql::create_role(user, &verifier),
                sql::create_database(&database, user),
                sql::revoke_database_from_public(&database, &["CONNECT", "TEMPORARY"]),
            ] {
                writeln!(text, "{};", stmt.text()).expect("write to a String");
            }
        }
        let path = self.dir.join("first-apply.sql");
        fs::write(&path, text).expect("write first-apply.sql");
        path
    }
}

/// Verifiers of the users' passwords, for the floor of a no-op apply.
fn floor_pairs(users: &[(String, String)]) -> Vec<(ScramVerifier, &str)> {
    users
        .iter()
        .map(|(_, p)| {
            let v = ScramVerifier::generate(p, DEFAULT_ITERATIONS).expect("random salt");
            (v, p.as_str())
        })
        .collect()
}

/// The floor of a no-op apply: one `matches` per tenant, in this process, on
/// one thread or on every core (as pgtenant does, `pgtenant::reconcile::parallel::map`).
/// Returns (wall, CPU) seconds: on a machine shared with other work, CPU time
/// is the figure that other processes do not inflate.
fn scram_floor(pairs: &[(ScramVerifier, &str)], all_cores: bool) -> (f64, f64) {
    let cpu_started = process_cpu_secs();
    let started = Instant::now();
    let ok = if all_cores {
        pgtenant::reconcile::parallel::map(pairs, |(v, p)| std::hint::black_box(v).matches(p))
            .into_iter()
            .filter(|&m| m)
            .count()
    } else {
        pairs
            .iter()
            .filter(|(v, p)| std::hint::black_box(v).matches(p))
            .count()
    };
    assert_eq!(ok, pairs.len());
    (
        started.elapsed().as_secs_f64(),
        process_cpu_secs() - cpu_started,
    )
}

/// CPU time of this process, all threads.
fn process_cpu_secs() -> f64 {
    // SAFETY: an all-zero timespec is valid; clock_gettime writes into it.
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid clock id and pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime");
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Stopped servers whose directories wait to be removed.
struct Graveyard(Vec<PgServer>);

impl Graveyard {
    fn bury(&mut self, server: Option<PgServer>) {
        if let Some(mut s) = server {
            s.stop();
            self.0.push(s);
        }
    }
}

impl Drop for Graveyard {
    fn drop(&mut self) {
        self.0.clear();
        settle();
        std::thread::sleep(Duration::from_secs(3));
    }
}

struct Row {
    n: usize,
    first: Measured,
    noop: Measured,
    article_first: Measured,
    article_second: Measured,
    psql: Measured,
    floor_single: f64,
    floor_parallel: f64,
    floor_cpu: f64,
}

impl Row {
    fn peak_rss_mib(&self) -> f64 {
        self.first.max_rss_bytes.max(self.noop.max_rss_bytes) as f64 / MIB
    }
}

fn bench_one(args: &Args, article: &Path, n: usize) -> Row {
    let dir = tempfile::Builder::new()
        .prefix("pgtenant-bench")
        .tempdir()
        .expect("temporary directory");
    let users: Vec<(String, String)> = (1..=n)
        .map(|i| (format!("tenant{i:05}"), random_password()))
        .collect();
    let users_file = dir.path().join("db_users.secret");
    let mut text = String::new();
    for (u, p) in &users {
        writeln!(text, "{u}:{p}").expect("write to a String");
    }
    fs::write(&users_file, text).expect("write the users file");
    let work = Workload {
        n,
        users: &users,
        users_file: &users_file,
        dir: dir.path(),
        bin: &args.bin,
        article,
    };
    let note = |what: &str, m: &Measured| {
        eprintln!(
            "  N={n:>5} {what:<28} {:>9.3} s  (median of {}, CPU {:.3} s, peak RSS {:.1} MiB)",
            m.secs,
            m.runs,
            m.cpu_secs,
            m.max_rss_bytes as f64 / MIB
        );
    };

    // Used servers are stopped but their directories (gigabytes at N = 1000)
    // are removed only after the last measurement of this N: removing them
    // slows this machine's disk for a while, which would fall on whichever
    // run came next.
    let mut graveyard = Graveyard(Vec::new());

    // pgtenant: first apply on a fresh server each time; no-op on the last.
    let mut server = None;
    let first = repeat(args.reps, args.budget, || {
        let s = PgServer::start();
        let sample = work.pgtenant_apply(&s, "pgtenant-first.log");
        expect_tenants(&s, work.n, "pgtenant first apply");
        graveyard.bury(server.replace(s));
        sample
    });
    note("pgtenant first apply", &first);
    let s = server.take().expect("a server");
    // The floor is measured right before each no-op apply, so both see the
    // same load on the machine.
    let pairs = floor_pairs(&users);
    let (mut floor_single, mut floor_parallel, mut floor_cpu) =
        (Vec::new(), Vec::new(), Vec::new());
    let noop = repeat(args.reps.max(3), args.budget, || {
        settle();
        floor_single.push(scram_floor(&pairs, false).0);
        let (wall, cpu) = scram_floor(&pairs, true);
        floor_parallel.push(wall);
        floor_cpu.push(cpu);
        let sample = work.pgtenant_apply(&s, "pgtenant-noop.log");
        let log = fs::read_to_string(dir.path().join("pgtenant-noop.log")).unwrap_or_default();
        let want = format!("0 created, 0 updated, {n} unchanged");
        assert!(log.contains(&want), "no-op apply changed something:\n{log}");
        sample
    });
    note("pgtenant no-op apply", &noop);
    let (floor_single, floor_parallel) = (median(floor_single), median(floor_parallel));
    let floor_cpu = median(floor_cpu);
    eprintln!(
        "  N={n:>5} SCRAM floor: {floor_single:.3} s on 1 thread, {floor_parallel:.3} s on all cores \
         (CPU {floor_cpu:.3} s)"
    );
    graveyard.bury(Some(s));

    // The article's scripts: first run on a fresh server, second on the same.
    let mut server = None;
    let article_first = repeat(args.reps, args.budget, || {
        let s = PgServer::start();
        let sample = work.article_run(&s, "article-first");
        expect_tenants(&s, work.n, "article first run");
        graveyard.bury(server.replace(s));
        sample
    });
    note("article first run", &article_first);
    let s = server.take().expect("a server");
    let article_second = repeat(args.reps, args.budget, || {
        let sample = work.article_run(&s, "article-second");
        expect_tenants(&s, work.n, "article second run");
        sample
    });
    note("article second run", &article_second);
    graveyard.bury(Some(s));

    // One psql session running the first apply's statements.
    let sql_file = work.write_sql();
    let psql = repeat(args.reps, args.budget, || {
        let s = PgServer::start();
        let sample = work.psql_session(&s, &sql_file);
        expect_tenants(&s, work.n, "psql session");
        graveyard.bury(Some(s));
        sample
    });
    note("psql session (same SQL)", &psql);
    drop(graveyard);

    Row {
        n,
        first,
        noop,
        article_first,
        article_second,
        psql,
        floor_single,
        floor_parallel,
        floor_cpu,
    }
}

fn secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let psql = Command::new("psql")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("{cores} cores ({cpu}); {psql}")
}

fn report(rows: &[Row], server_version: &str) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "machine: {}; server: {server_version}", machine());
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "| N | pgtenant first apply | pgtenant no-op (CPU) | article first run | article second run \
         | psql session | SCRAM floor 1 thread / all cores (CPU) | article first ÷ pgtenant first \
         | article second ÷ pgtenant no-op | pgtenant first ÷ psql | no-op ÷ floor, wall (CPU) \
         | peak RSS |"
    );
    let _ = writeln!(
        w,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let _ = writeln!(
            w,
            "| {} | {} | {} ({}) | {} | {} | {} | {} / {} ({}) | {:.1}× | {:.1}× | {:.2}× | {:.2}× ({:.2}×) | {:.1} MiB |",
            r.n,
            secs(r.first.secs),
            secs(r.noop.secs),
            secs(r.noop.cpu_secs),
            secs(r.article_first.secs),
            secs(r.article_second.secs),
            secs(r.psql.secs),
            secs(r.floor_single),
            secs(r.floor_parallel),
            secs(r.floor_cpu),
            r.article_first.secs / r.first.secs,
            r.article_second.secs / r.noop.secs,
            r.first.secs / r.psql.secs,
            r.noop.secs / r.floor_parallel,
            r.noop.cpu_secs / r.floor_cpu,
            r.peak_rss_mib(),
        );
    }
    let runs: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "N={}: {}/{}/{}/{}/{}",
                r.n,
                r.first.runs,
                r.noop.runs,
                r.article_first.runs,
                r.article_second.runs,
                r.psql.runs
            )
        })
        .collect();
    let _ = writeln!(
        w,
        "\nMedians; runs per cell (first/no-op/article first/article second/psql): {}.",
        runs.join(", ")
    );
    if let Some(r) = rows.iter().max_by_key(|r| r.n) {
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        let _ = writeln!(w, "\nTargets at N = {}:", r.n);
        let noop_floor = r.noop.secs / r.floor_parallel;
        let _ = writeln!(
            w,
            "- no-op apply within {NOOP_OVER_FLOOR_MAX}× of {} SCRAM checks on all cores: \
             {noop_floor:.2}× ({} vs {}) — {}; in CPU time {} vs {} ({:.2}×)",
            r.n,
            secs(r.noop.secs),
            secs(r.floor_parallel),
            verdict(noop_floor <= NOOP_OVER_FLOOR_MAX),
            secs(r.noop.cpu_secs),
            secs(r.floor_cpu),
            r.noop.cpu_secs / r.floor_cpu
        );
        let first_x = r.article_first.secs / r.first.secs;
        let second_x = r.article_second.secs / r.noop.secs;
        let _ = writeln!(
            w,
            "- at least {SPEEDUP_OVER_ARTICLE_MIN}× faster than the article's scripts: \
             first apply {first_x:.1}× — {}; no-op {second_x:.1}× — {}",
            verdict(first_x >= SPEEDUP_OVER_ARTICLE_MIN),
            verdict(second_x >= SPEEDUP_OVER_ARTICLE_MIN)
        );
        let psql_x = r.first.secs / r.psql.secs;
        let _ = writeln!(
            w,
            "- first apply within {FIRST_OVER_PSQL_MAX}× of one psql session: {psql_x:.2}× — {}",
            verdict(psql_x <= FIRST_OVER_PSQL_MAX)
        );
        let rss = r.peak_rss_mib();
        let _ = writeln!(
            w,
            "- peak RSS at most {PEAK_RSS_MAX_MIB} MiB: {rss:.1} MiB — {}",
            verdict(rss <= PEAK_RSS_MAX_MIB)
        );
    }
    out
}

fn main() {
    let args = parse_args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The article's scripts with only `--host localhost --port 5432` changed,
    // per server: written once per run with the port as a shell variable.
    let article_dir = tempfile::Builder::new()
        .prefix("pgtenant-article")
        .tempdir()
        .expect("temporary directory");
    for script in ["wait-for-postgres.sh", "init-user-db.sh"] {
        let text = fs::read_to_string(root.join("bench/article").join(script))
            .unwrap_or_else(|e| panic!("read bench/article/{script}: {e}"));
        let from = "--host localhost --port 5432";
        assert_eq!(text.matches(from).count(), 1, "{script}: one {from:?}");
        let text = text.replace(from, "--host \"$BENCH_PGHOST\" --port \"$BENCH_PGPORT\"");
        fs::write(article_dir.path().join(script), text).expect("write article script");
    }

    let started = Instant::now();
    let version = {
        let s = PgServer::start();
        s.query("SELECT pg_catalog.version()")[0][0]
            .clone()
            .unwrap_or_default()
    };
    let version = version.split(" on ").next().unwrap_or(&version).to_owned();
    eprintln!("bench: {version}; binary {}", args.bin.display());
    let mut rows = Vec::new();
    for &n in &args.sizes {
        rows.push(bench_one(&args, article_dir.path(), n));
    }
    println!("{}", report(&rows, &version));
    eprintln!("bench: done in {:.0} s", started.elapsed().as_secs_f64());
}
