//! PgBouncer in front of the server with the auth file that pgtenant
//! writes from `pg_authid` (Debian's PgBouncer, `auth_type = scram-sha-256`,
//! no plaintext anywhere): tenants log in through it, a password changed
//! under `run` works at once through the same PgBouncer process and the
//! old one stops working, wrong passwords are refused, failed reloads are
//! retried and counted.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::support::child::{eventually, Sidecar};
use crate::support::cli::UsersFile;
use crate::support::pgbouncer::{skip_on_matrix, PgBouncer, ADMIN_USER};
use crate::support::pgtenant::Pgtenant;
use crate::support::server::PgServer;

/// `pgtenant run ARGS` with the console's password file, through the
/// suite's one builder.
fn sidecar(
    server: &PgServer,
    users: &UsersFile,
    env: &[(&str, String)],
    args: &[String],
) -> Sidecar {
    Pgtenant::new(server)
        .users(users.path())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(["run"])
        .args(args)
        .sidecar()
}

fn metrics(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

const TENANTS: &[(&str, &str)] = &[
    ("alpha", "alpha-pass"),
    ("quo\"te", "it's a \"pass\" \\ $x"),
    ("日本語", "пароль 🔑"),
];

#[test]
fn tenants_log_in_through_pgbouncer_and_a_rotation_needs_no_restart() {
    if skip_on_matrix() {
        return;
    }
    let server = PgServer::start();
    let content: String = TENANTS.iter().map(|(u, p)| format!("{u}:{p}\n")).collect();
    let users = UsersFile::new(&content);
    let mut pgb = PgBouncer::prepare();
    let console_pw = users.dir().join("pgbouncer-password");
    std::fs::write(&console_pw, "console-secret\n").unwrap();
    std::fs::set_permissions(&console_pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--pgbouncer-auth-file",
        pgb.auth_file().to_str().unwrap(),
        "--pgbouncer-auth-file-mode",
        "0640",
        "--pgbouncer-admin",
        &pgb.admin_conninfo(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let env = [(
        "PGTENANT_PGBOUNCER_PASSWORD_FILE",
        console_pw.display().to_string(),
    )];
    let mut run = sidecar(&server, &users, &env, &args);
    let addr = run.http_addr();

    // PgBouncer is not running yet: the reload fails, is logged, counted,
    // and retried.
    run.wait_log("pgbouncer reload failed");
    run.wait_log("3 tenants: 3 created");
    let m = metrics(addr);
    assert!(sample(&m, "pgtenant_pgbouncer_reloads_total{result=\"failure\"}") >= 1);
    assert_eq!(
        sample(&m, "pgtenant_pgbouncer_reloads_total{result=\"success\"}"),
        0
    );

    pgb.start(server.port());
    run.wait_log("reloaded its auth file");
    let m = metrics(addr);
    assert!(sample(&m, "pgtenant_pgbouncer_reloads_total{result=\"success\"}") >= 1);

    // Each tenant logs in through PgBouncer and queries its database;
    // PgBouncer logs in to the server for it with the verifier alone.
    for (user, password) in TENANTS {
        assert_eq!(
            pgb.query_as(user, password, &format!("{user}_db")),
            Ok(format!("{user}|{user}_db")),
            "{user:?} through pgbouncer"
        );
        let wrong = pgb.query_as(user, "wrong-password", &format!("{user}_db"));
        assert!(
            wrong
                .as_ref()
                .is_err_and(|e| e.contains("SASL authentication failed")),
            "{user:?} with a wrong password: {wrong:?}"
        );
    }

    // The auth file: no password, the server's verifiers byte for byte,
    // the mode asked for, nothing in PgBouncer's config either.
    let auth = std::fs::read_to_string(pgb.auth_file()).unwrap();
    let ini = std::fs::read_to_string(pgb.config_path()).unwrap();
    for (_, password) in TENANTS {
        assert!(!auth.contains(password) && !ini.contains(password));
    }
    assert!(!auth.contains("console-secret"));
    for row in server.query(
        "SELECT '\"' || replace(rolname, '\"', '\"\"') || '\" \"' || rolpassword || '\"' \
         FROM pg_authid WHERE rolname IN ('alpha', 'quo\"te', '日本語')",
    ) {
        let line = row[0].clone().unwrap();
        assert!(line.contains("SCRAM-SHA-256$"), "{line}");
        assert!(auth.lines().any(|l| l == line), "{line} not in\n{auth}");
    }
    assert!(auth
        .lines()
        .any(|l| l.starts_with(&format!("\"{ADMIN_USER}\" \"SCRAM-SHA-256$"))));
    assert_eq!(
        std::fs::metadata(pgb.auth_file())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o640
    );

    // A password change in the users file: the new password works through
    // the same PgBouncer process, the old one no longer does.
    let pid = pgb.pid();
    let reloads = sample(
        &metrics(addr),
        "pgtenant_pgbouncer_reloads_total{result=\"success\"}",
    );
    users.write(content.replace("alpha:alpha-pass", "alpha:alpha-new"));
    let changed = Instant::now();
    eventually("the new password works through pgbouncer", || {
        pgb.query_as("alpha", "alpha-new", "alpha_db").is_ok()
    });
    eprintln!(
        "rotation usable through pgbouncer after {:?}",
        changed.elapsed()
    );
    assert!(pgb.query_as("alpha", "alpha-pass", "alpha_db").is_err());
    assert!(pgb.is_running());
    assert_eq!(pgb.pid(), pid, "pgbouncer was never restarted");
    assert_eq!(
        sample(
            &metrics(addr),
            "pgtenant_pgbouncer_reloads_total{result=\"success\"}"
        ),
        reloads + 1
    );
    // The other tenants were not disturbed.
    assert_eq!(
        pgb.query_as("日本語", "пароль 🔑", "日本語_db"),
        Ok("日本語|日本語_db".to_owned())
    );

    // A restart of pgtenant rewrites nothing: the console user's line still
    // verifies, the tenants' verifiers are unchanged.
    let before = std::fs::read(pgb.auth_file()).unwrap();
    let mtime = std::fs::metadata(pgb.auth_file())
        .unwrap()
        .modified()
        .unwrap();
    drop(run);
    let mut run = sidecar(&server, &users, &env, &args);
    run.wait_log("watching");
    // One resync pass: the apply and the auth file check have run once
    // the sidecar is ready.
    let addr = run.http_addr();
    eventually("ready", || {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut t = String::new();
        s.read_to_string(&mut t).unwrap();
        t.starts_with("HTTP/1.1 200")
    });
    assert_eq!(std::fs::read(pgb.auth_file()).unwrap(), before);
    assert_eq!(
        std::fs::metadata(pgb.auth_file())
            .unwrap()
            .modified()
            .unwrap(),
        mtime
    );
    assert!(
        !run.log().contains("wrote the pgbouncer auth file"),
        "{}",
        run.log()
    );
}
