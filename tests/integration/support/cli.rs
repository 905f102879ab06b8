//! Users files, and the short forms of [`Pgtenant`] most tests use: run the
//! real binary against a test server with a clean environment.

use std::path::{Path, PathBuf};

use super::pgtenant::Pgtenant;
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

pub use super::pgtenant::Run;

/// `pgtenant ARGS` with the server's admin credentials in PG* variables and
/// the users file in DBUSERS.
pub fn run(server: &PgServer, users: &Path, args: &[&str]) -> Run {
    run_env(server, users, args, &[])
}

pub fn run_env(server: &PgServer, users: &Path, args: &[&str], extra: &[(&str, &str)]) -> Run {
    Pgtenant::new(server)
        .users(users)
        .envs(extra.iter().copied())
        .args(args)
        .run()
}

/// Runs with exactly the given environment (no admin credentials added).
pub fn run_raw(args: &[&str], env: &[(&str, &str)]) -> Run {
    Pgtenant::bare().envs(env.iter().copied()).args(args).run()
}
