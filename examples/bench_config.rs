//! What the config file's per-database state costs a no-op apply (issue 10):
//! prints figures, asserts nothing.
//!
//! Two throwaway servers of the integration fixture, in one run:
//! * N tenants from a users file alone (no config);
//! * the same N tenants with a config giving each one extension (`pg_trgm`),
//!   one schema and one reader (N more login roles).
//!
//! Each is applied once, then the no-op `pgtenant apply` of the release
//! binary is timed `--reps` times (default 5) on each, alternating, and the
//! medians are printed side by side with the connections each no-op opened
//! (counted in the server log, `log_connections = on`).
//!
//!     cargo build --release && cargo run --release --example bench_config [-- N]

#[path = "../tests/integration/support/server.rs"]
mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use server::PgServer;

fn apply(bin: &Path, server: &PgServer, users: &Path, config: Option<&Path>) -> f64 {
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .arg("apply")
        .env("DBUSERS", users)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in server.admin_env() {
        cmd.env(k, v);
    }
    if let Some(c) = config {
        cmd.env("PGTENANT_CONFIG", c);
    }
    let start = Instant::now();
    let out = cmd.output().expect("run pgtenant");
    let took = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn connections(server: &PgServer) -> usize {
    server.log().matches("connection authorized").count()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("N"))
        .unwrap_or(100);
    let reps = 5;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin: PathBuf = root.join("target/release/pgtenant");
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    let mut lines = String::new();
    let mut config = String::from("version: 1\ntenants:\n");
    for i in 0..n {
        lines.push_str(&format!("t{i:05}:pw-t{i:05}-x\nr{i:05}:pw-r{i:05}-x\n"));
        config.push_str(&format!(
            "  t{i:05}:\n    databases:\n      - name: t{i:05}_db\n        extensions: [pg_trgm]\n        schemas: [app]\n    readers: [r{i:05}]\n"
        ));
    }
    let plain_users = dir.path().join("plain");
    std::fs::write(&users, &lines).unwrap();
    std::fs::write(
        &plain_users,
        lines
            .lines()
            .filter(|l| l.starts_with('t'))
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let config_path = dir.path().join("pgtenant.yaml");
    std::fs::write(&config_path, &config).unwrap();

    let plain = PgServer::builder().conf("log_connections", "on").start();
    let full = PgServer::builder().conf("log_connections", "on").start();
    let first_plain = apply(&bin, &plain, &plain_users, None);
    let first_full = apply(&bin, &full, &users, Some(&config_path));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let (mut sa, mut sb) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let before = connections(&plain);
        a.push(apply(&bin, &plain, &plain_users, None));
        sa.push(connections(&plain) - before);
        let before = connections(&full);
        b.push(apply(&bin, &full, &users, Some(&config_path)));
        sb.push(connections(&full) - before);
    }
    let show = |s: &[usize]| s.iter().max().copied().unwrap_or(0).to_string();
    println!(
        "PostgreSQL {}, {n} tenants, release binary, median of {reps} no-op applies",
        plain.major()
    );
    println!("| input | first apply | no-op apply (wall) | connections per no-op |");
    println!("|---|---|---|---|");
    println!(
        "| users file only | {first_plain:.2} s | {:.3} s | {} |",
        median(a),
        show(&sa)
    );
    println!(
        "| + config: 1 extension, 1 schema, 1 reader each | {first_full:.2} s | {:.3} s | {} |",
        median(b),
        show(&sb)
    );
}
