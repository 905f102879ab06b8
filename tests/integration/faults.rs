//! Crash safety: the server dies (SIGKILL of the postmaster, or a fast
//! shutdown) at random points while `pgtenant apply` provisions 200 tenants.
//! After each fault the server is started again and pgtenant run again; the
//! end state must be exactly the desired one, whatever was half done.
//!
//! A fault point is a delay after pgtenant starts: a random fraction (0 to
//! 1.1, from a seeded generator) of the expected length of the apply, which
//! is measured on the machine at hand, so that the same seed hits the same
//! stages of the apply on a fast and on a slow machine. The seed, each
//! fraction and each delay are printed (shown on failure, or always with
//! `--nocapture`); to replay a run or to run longer:
//!
//! ```text
//! PGTENANT_FAULT_SEED=1234 cargo test --test integration faults -- --nocapture
//! PGTENANT_FAULT_RUNS=200 cargo test --test integration faults -- --nocapture
//! PGTENANT_FAULT_SCRAM=1 cargo test --test integration faults -- --nocapture
//! ```
//!
//! The server stores md5 verifiers unless `PGTENANT_FAULT_SCRAM=1`: with
//! SCRAM, checking 200 passwords after each fault costs seconds of PBKDF2 in
//! a debug build, three times the suite's budget over 20 faults; what a
//! fault can interrupt (statements, their order, their transactions) is the
//! same either way.
//!
//! One server serves every run (restarted after each fault), so the suite
//! pays for one initdb. Each run first damages the previous end state in the
//! ways an apply has to repair (tenants dropped whole, passwords rotated in
//! the users file, owners and PUBLIC privileges changed by hand, login taken
//! away), so that the interrupted apply has work spread over all 200 tenants:
//! role and database creation, password changes, owner and ACL fixes.

use std::io::Read;
use std::time::{Duration, Instant};

use crate::support::child::{spawn_pgtenant, wait_with_timeout};
use crate::support::cli::{run, UsersFile};
use crate::support::pgtenant::Pgtenant;
use crate::support::server::PgServer;

const TENANTS: usize = 200;
const DEFAULT_RUNS: usize = 20;
/// Per run: tenants dropped whole (role and database), passwords rotated,
/// databases handed to another owner, databases opened to PUBLIC again, roles
/// made NOLOGIN.
const DROPPED: usize = 10;
const ROTATED: usize = 20;
const REOWNED: usize = 8;
const REGRANTED: usize = 8;
const NOLOGIN: usize = 4;
/// How long pgtenant may take to notice a dead server and exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// SplitMix64: tiny, seedable, good enough to pick fault points.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// `k` distinct indices out of `0..n`.
    pub fn sample(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut all: Vec<usize> = (0..n).collect();
        for i in 0..k.min(n) {
            let j = i + self.below((n - i) as u64) as usize;
            all.swap(i, j);
        }
        all.truncate(k.min(n));
        all
    }
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let parsed = match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => value.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={value:?} is not a number")))
}

fn fresh_seed() -> u64 {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    u64::from_le_bytes(bytes)
}

fn role(i: usize) -> String {
    format!("fault{i:03}")
}

fn password(i: usize, generation: u32) -> String {
    format!("Fault-{i:03}-gen{generation}-x")
}

fn users_content(generations: &[u32]) -> String {
    generations
        .iter()
        .enumerate()
        .map(|(i, g)| format!("{}:{}\n", role(i), password(i, *g)))
        .collect()
}

/// After a SIGKILL of the postmaster its backends live on for a moment and
/// keep the shared memory segment attached; a new postmaster refuses to start
/// until they are gone. Waits for that (the segment id is in postmaster.pid).
fn wait_for_orphans(server: &PgServer) {
    let pid_file =
        std::fs::read_to_string(server.data_dir().join("postmaster.pid")).unwrap_or_default();
    let Some(shmid) = pid_file
        .lines()
        .nth(6)
        .and_then(|l| l.split_whitespace().nth(1))
        .map(str::to_owned)
    else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let table = std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default();
        // Columns: key shmid perms size cpid lpid nattch ...
        let attached = table.lines().skip(1).any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.get(1) == Some(&shmid.as_str()) && cols.get(6).is_some_and(|n| *n != "0")
        });
        if !attached {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Kill,
    FastShutdown,
}

/// The damage done before a run: SQL on the server and new passwords.
fn damage(server: &PgServer, rng: &mut Rng, generations: &mut [u32]) -> Vec<usize> {
    let dropped = rng.sample(TENANTS, DROPPED);
    for &i in &dropped {
        // DROP DATABASE cannot share a query string with other statements.
        server.query(&format!(
            "DROP DATABASE IF EXISTS \"{}_db\" WITH (FORCE)",
            role(i)
        ));
    }
    let rotated = rng.sample(TENANTS, ROTATED);
    for &i in &rotated {
        generations[i] += 1;
    }
    let mut sql = String::new();
    for &i in &dropped {
        sql.push_str(&format!("DROP ROLE IF EXISTS \"{}\";\n", role(i)));
    }
    for i in rng.sample(TENANTS, REOWNED) {
        sql.push_str(&format!(
            "ALTER DATABASE \"{}_db\" OWNER TO postgres;\n",
            role(i)
        ));
    }
    for i in rng.sample(TENANTS, REGRANTED) {
        sql.push_str(&format!(
            "GRANT CONNECT, TEMPORARY ON DATABASE \"{}_db\" TO PUBLIC;\n",
            role(i)
        ));
    }
    for i in rng.sample(TENANTS, NOLOGIN) {
        sql.push_str(&format!("ALTER ROLE \"{}\" NOLOGIN;\n", role(i)));
    }
    // Some of these may name a tenant dropped above: skip those.
    let sql = sql
        .lines()
        .map(|stmt| {
            format!(
                "DO $$ BEGIN EXECUTE {}; EXCEPTION WHEN undefined_object OR invalid_catalog_name THEN NULL; END $$;",
                quote_literal(stmt.trim_end_matches(';'))
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    if !sql.is_empty() {
        server.query(&sql);
    }
    rotated
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The end state equals the desired one: pgtenant plans nothing, the catalog
/// shows every tenant whole (login role with a SCRAM verifier, database owned
/// by it, PUBLIC without CONNECT and TEMPORARY, nothing extra), and a sample
/// of tenants log in with their current passwords.
fn assert_desired_state(
    server: &PgServer,
    users: &UsersFile,
    generations: &[u32],
    sample: &[usize],
    verifier_prefix: &str,
    context: &str,
) {
    let plan = run(server, users.path(), &["plan", "--exit-code"]);
    assert_eq!(
        plan.code, 0,
        "{context}: plan after recovery is not empty:\n{}\n{}",
        plan.stdout, plan.stderr
    );
    let rows = server.query(&format!(
        "SELECT r.rolname, r.rolcanlogin::text, r.rolsuper::text,
                starts_with(a.rolpassword, '{verifier_prefix}')::text,
                d.datname, pg_catalog.pg_get_userbyid(d.datdba),
                has_database_privilege('public', d.oid, 'CONNECT')::text,
                has_database_privilege('public', d.oid, 'TEMPORARY')::text,
                has_database_privilege(r.oid, d.oid, 'CONNECT')::text,
                d.datallowconn::text, (d.datconnlimit >= -1)::text
           FROM pg_roles r
           JOIN pg_authid a ON a.oid = r.oid
           LEFT JOIN pg_database d ON d.datname = r.rolname || '_db'
          WHERE r.rolname LIKE 'fault%'
          ORDER BY r.rolname"
    ));
    assert_eq!(rows.len(), TENANTS, "{context}: tenant roles");
    for (i, row) in rows.iter().enumerate() {
        let r = role(i);
        let expected: Vec<Option<String>> = [
            r.as_str(),
            "true",
            "false",
            "true",
            &format!("{r}_db"),
            r.as_str(),
            "false",
            "false",
            "true",
            "true",
            "true",
        ]
        .iter()
        .map(|s| Some((*s).to_owned()))
        .collect();
        assert_eq!(row, &expected, "{context}: tenant {r}");
    }
    let databases = server.query("SELECT count(*) FROM pg_database WHERE datname LIKE 'fault%'");
    assert_eq!(
        databases,
        vec![vec![Some(TENANTS.to_string())]],
        "{context}: no stray or half-made database"
    );
    for &i in sample {
        let r = role(i);
        server
            .try_connect(&r, &password(i, generations[i]), &format!("{r}_db"))
            .unwrap_or_else(|e| panic!("{context}: {r} cannot log in: {e}"));
    }
}

fn summary_line(stderr: &str) -> &str {
    stderr
        .lines()
        .rev()
        .find(|l| l.contains(" tenants: "))
        .unwrap_or("")
}

#[test]
fn apply_converges_after_the_server_dies_at_random_points() {
    let seed = env_number("PGTENANT_FAULT_SEED").unwrap_or_else(fresh_seed);
    let runs = env_number("PGTENANT_FAULT_RUNS").map_or(DEFAULT_RUNS, |n| n as usize);
    eprintln!(
        "faults: PGTENANT_FAULT_SEED={seed} PGTENANT_FAULT_RUNS={runs} \
         (set both to replay this sequence)"
    );
    let mut rng = Rng::new(seed);
    let scram = std::env::var("PGTENANT_FAULT_SCRAM").is_ok_and(|v| v == "1");
    let mut server = if scram {
        PgServer::start()
    } else {
        // md5 verifiers: checking 200 passwords costs microseconds instead of
        // seconds (PBKDF2 in a debug build), which keeps 20 faults within
        // the suite's budget. The statements, their order and their
        // transactions are the same as with SCRAM; PGTENANT_FAULT_SCRAM=1
        // runs the same test with SCRAM verifiers.
        PgServer::builder()
            .conf("password_encryption", "md5")
            .hba_line("host all all 127.0.0.1/32 md5")
            .start()
    };
    let verifier_prefix = if scram { "SCRAM-SHA-256$" } else { "md5" };
    let mut generations = vec![0u32; TENANTS];
    let users = UsersFile::new(users_content(&generations));

    // The first fault hits a fresh apply of all 200 tenants. Its window is
    // estimated from a warm-up apply of 10 other tenants, scaled to 200.
    let warm: String = (0..10).map(|i| format!("warm{i}:warm-pw-{i}\n")).collect();
    let warm = UsersFile::new(warm);
    let started = Instant::now();
    run(&server, warm.path(), &["apply"]).assert_code(0);
    let mut window = started.elapsed().mul_f64(TENANTS as f64 / 10.0);
    eprintln!(
        "faults: fresh-apply fault window {:.3} s",
        window.as_secs_f64()
    );

    let mut log = Vec::new();
    let mut completed = 0;
    for n in 0..runs {
        let rotated = if n == 0 {
            Vec::new()
        } else {
            let rotated = damage(&server, &mut rng, &mut generations);
            users.write(users_content(&generations));
            rotated
        };
        let fault = if rng.below(2) == 0 {
            Fault::Kill
        } else {
            Fault::FastShutdown
        };
        // A point in the apply, as a fraction of its expected length (up to
        // 110%: a fault after the end must be harmless too).
        let fraction = rng.below(1100) as f64 / 1000.0;
        let delay = window.mul_f64(fraction);
        let context = format!("run {n} (seed {seed}): {fault:?} at {fraction:.3} = {delay:?}");

        let mut child = spawn_pgtenant(&server, users.path(), &["apply"]);
        let t0 = Instant::now();
        let mut exited_first = false;
        while t0.elapsed() < delay {
            if child.try_wait().expect("poll pgtenant").is_some() {
                exited_first = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if !exited_first {
            match fault {
                Fault::Kill => {
                    server.kill();
                    wait_for_orphans(&server);
                }
                Fault::FastShutdown => server.stop(),
            }
        }
        let (code, stderr) = wait_with_timeout(child, EXIT_TIMEOUT);
        let elapsed = t0.elapsed();
        assert!(
            code == Some(0) || code == Some(1),
            "{context}: pgtenant must exit 0 or 1, not {code:?}:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{context}: panic:\n{stderr}");
        if code == Some(0) {
            completed += 1;
        }
        if !server.is_running() {
            server.start_again();
        }

        let t_recovery = Instant::now();
        let recovery = run(&server, users.path(), &["apply"]);
        let recovery_took = t_recovery.elapsed();
        assert_eq!(
            recovery.code, 0,
            "{context}: the apply after the fault failed:\n{}",
            recovery.stderr
        );
        let mut sample: Vec<usize> = rng.sample(TENANTS, 3);
        sample.extend(rotated.iter().take(2));
        assert_desired_state(
            &server,
            &users,
            &generations,
            &sample,
            verifier_prefix,
            &context,
        );
        log.push(format!(
            "run {n}: {fault:?} at {fraction:.3} of {:.3} s = {:.3} s (pgtenant exit {code:?} after {:.3} s{}); then: {}",
            window.as_secs_f64(),
            delay.as_secs_f64(),
            elapsed.as_secs_f64(),
            if exited_first {
                ", before the fault"
            } else {
                ""
            },
            summary_line(&recovery.stderr)
        ));
        eprintln!("faults: {}", log.last().unwrap());
        if n == 0 {
            // From now on the applies repair the damage of `damage`: measure
            // one, uninterrupted, for the fault window.
            let rotated = damage(&server, &mut rng, &mut generations);
            users.write(users_content(&generations));
            let t = Instant::now();
            run(&server, users.path(), &["apply"]).assert_code(0);
            window = t.elapsed();
            assert_desired_state(
                &server,
                &users,
                &generations,
                &rotated[..2],
                verifier_prefix,
                "calibration",
            );
        } else if exited_first {
            // The machine got faster: an uninterrupted apply, measured.
            window = elapsed;
        } else if recovery_took > window {
            // Slower: the recovery alone took longer than the window.
            window = recovery_took;
        }
    }
    eprintln!("faults: seed {seed}, {runs} runs, {completed} finished before their fault");
}

/// `pgtenant run`, the long-running mode, through the same kind of faults:
/// the process must survive every one of them (it reconnects by itself) and
/// converge again after each, without being restarted.
#[test]
fn run_mode_survives_every_fault_and_converges() {
    const RUN_TENANTS: usize = 40;
    let seed = env_number("PGTENANT_FAULT_SEED").unwrap_or_else(fresh_seed);
    let faults = env_number("PGTENANT_FAULT_RUNS").map_or(5, |n| (n as usize / 4).max(5));
    eprintln!("faults (run mode): PGTENANT_FAULT_SEED={seed}, {faults} faults");
    let mut rng = Rng::new(seed ^ 0x5255_4e5f_4d4f_4445);
    let mut server = PgServer::start();
    let name = |i: usize| format!("runf{i:02}");
    let pw = |i: usize, g: u32| format!("Runf-{i:02}-gen{g}");
    let mut generations = vec![0u32; RUN_TENANTS];
    let content = |g: &[u32]| -> String {
        (0..RUN_TENANTS)
            .map(|i| format!("{}:{}\n", name(i), pw(i, g[i])))
            .collect()
    };
    let users = UsersFile::new(content(&generations));

    let mut sidecar = Pgtenant::new(&server)
        .users(users.path())
        .args(["run", "--resync-interval", "1s"])
        .sidecar();
    let log = sidecar.log_handle();

    // Converged: every tenant whole, the changed ones log in with their new
    // password, and a separate `plan --exit-code` finds nothing to do.
    let converge = |server: &PgServer, generations: &[u32], changed: &[usize], context: &str| {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let whole = server.query(
                "SELECT count(*) FROM pg_roles r JOIN pg_database d
                    ON d.datname = r.rolname || '_db' AND d.datdba = r.oid
                 WHERE r.rolname LIKE 'runf%' AND r.rolcanlogin
                   AND NOT has_database_privilege('public', d.oid, 'CONNECT')",
            );
            let logins = changed.iter().all(|&i| {
                server
                    .try_connect(&name(i), &pw(i, generations[i]), &format!("{}_db", name(i)))
                    .is_ok()
            });
            if whole == vec![vec![Some(RUN_TENANTS.to_string())]]
                && logins
                && run(server, users.path(), &["plan", "--exit-code"]).code == 0
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{context}: pgtenant run did not converge; its log:\n{}",
                log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    converge(&server, &generations, &[0, RUN_TENANTS - 1], "start");
    // Damage: drop some tenants whole, rotate some passwords (the file
    // changes, so `run` re-applies at once).
    let damage = |server: &PgServer, rng: &mut Rng, generations: &mut [u32]| -> Vec<usize> {
        // Under pgtenant's advisory lock, or `run` recreates a database
        // between its DROP and its role's.
        let _lock = crate::concurrency::LockHolder::take(server);
        for i in rng.sample(RUN_TENANTS, 3) {
            server.query(&format!(
                "DROP DATABASE IF EXISTS \"{}_db\" WITH (FORCE)",
                name(i)
            ));
            server.query(&format!("DROP ROLE IF EXISTS \"{}\"", name(i)));
        }
        let rotated = rng.sample(RUN_TENANTS, 4);
        for &i in &rotated {
            generations[i] += 1;
        }
        users.write(content(generations));
        rotated
    };
    // The fault window: how long `run` takes to repair one round of damage.
    let t = Instant::now();
    let rotated = damage(&server, &mut rng, &mut generations);
    converge(&server, &generations, &rotated, "calibration");
    let window = t.elapsed();

    for n in 0..faults {
        let rotated = damage(&server, &mut rng, &mut generations);
        let fault = if rng.below(2) == 0 {
            Fault::Kill
        } else {
            Fault::FastShutdown
        };
        let fraction = rng.below(1000) as f64 / 1000.0;
        let delay = window.mul_f64(fraction);
        let context = format!("run-mode fault {n} (seed {seed}): {fault:?} after {delay:?}");
        eprintln!("faults (run mode): {context}");
        std::thread::sleep(delay);
        match fault {
            Fault::Kill => {
                server.kill();
                wait_for_orphans(&server);
            }
            Fault::FastShutdown => server.stop(),
        }
        // Down for a moment: `run` must wait and retry, not exit.
        std::thread::sleep(Duration::from_millis(rng.below(1500)));
        assert!(
            sidecar.child.try_wait().unwrap().is_none(),
            "{context}: pgtenant run exited; its log:\n{}",
            log.lock().unwrap()
        );
        server.start_again();
        converge(&server, &generations, &rotated, &context);
        assert!(
            sidecar.child.try_wait().unwrap().is_none(),
            "{context}: pgtenant run exited"
        );
    }
    // SIGTERM: a clean exit.
    // SAFETY: signalling our own child, not yet reaped.
    unsafe { libc::kill(sidecar.child.id() as libc::pid_t, libc::SIGTERM) };
    let status = sidecar.child.wait().unwrap();
    sidecar.join_reader();
    let log = log.lock().unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}
