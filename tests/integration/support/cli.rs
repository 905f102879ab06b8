//! Runs the real `pgtenant` binary against a test server, with a clean
//! environment: only what a test passes in reaches it.

use std::path::{Path, PathBuf};
use std::process::Output;

use super::server::PgServer;

/// A users file in its own temporary directory.
pub struct UsersFile {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl UsersFile {
    pub fn new(content: impl AsRef<[u8]>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("db_users.secret");
        std::fs::write(&path, content).expect("write users file");
        // A secret file readable by everyone earns a warning; keep test
        // output free of it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .expect("chmod users file");
        UsersFile { dir, path }
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    pub fn write(&self, content: impl AsRef<[u8]>) {
        std::fs::write(&self.path, content).expect("write users file");
    }
}

/// The result of one run, with its streams as text.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code; {self:#?}");
        self
    }
}

pub fn binary() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("pgtenant").expect("binary is built");
    cmd.env_clear();
    cmd
}

/// `pgtenant ARGS` with the server's admin credentials in PG* variables and
/// the users file in DBUSERS.
pub fn run(server: &PgServer, users: &Path, args: &[&str]) -> Run {
    run_env(server, users, args, &[])
}

pub fn run_env(server: &PgServer, users: &Path, args: &[&str], extra: &[(&str, &str)]) -> Run {
    let mut cmd = binary();
    for (k, v) in server.admin_env() {
        cmd.env(k, v);
    }
    cmd.env("DBUSERS", users);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.args(args);
    let run = Run::from(cmd.output().expect("run pgtenant"));
    super::schema::check_run(args, extra, &run.stdout, &run.stderr);
    run
}

/// Runs with exactly the given environment (no admin credentials added).
pub fn run_raw(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = binary();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args);
    let run = Run::from(cmd.output().expect("run pgtenant"));
    super::schema::check_run(args, env, &run.stdout, &run.stderr);
    run
}
