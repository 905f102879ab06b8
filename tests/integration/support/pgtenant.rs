//! The one way the tests run the real `pgtenant` binary:
//!
//! ```ignore
//! let out = Pgtenant::new(&server).users(users.path()).args(["plan"]).run();
//! assert_eq!(out.code, 0);
//! ```
//!
//! The child starts with an empty environment: only the server's admin
//! credentials (`new`), the users file (`users`, as `DBUSERS`) and what the
//! test adds (`env`) reach it. `run` waits and returns the exit code, both
//! streams and the JSON log events; `spawn` and `sidecar` return a running
//! child whose output is drained from the start (a child that logs more than
//! a pipe holds and that nobody reads blocks on write, possibly while holding
//! the advisory lock).

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::child::{Sidecar, Spawned};
use super::server::PgServer;

#[derive(Clone, Default)]
pub struct Pgtenant {
    env: Vec<(OsString, OsString)>,
    args: Vec<OsString>,
}

impl Pgtenant {
    /// With the server's admin credentials in `PG*` variables.
    pub fn new(server: &PgServer) -> Self {
        Pgtenant::bare().envs(server.admin_env())
    }

    /// With nothing in the environment.
    pub fn bare() -> Self {
        Pgtenant::default()
    }

    /// The users file, as `DBUSERS`.
    pub fn users(self, path: &Path) -> Self {
        self.env("DBUSERS", path)
    }

    pub fn env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    pub fn envs<K: Into<OsString>, V: Into<OsString>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    pub fn args<S: Into<OsString>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("pgtenant"));
        cmd.env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(&self.args)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs to the end.
    pub fn run(&self) -> Run {
        Run::from(self.command().output().expect("run pgtenant"))
    }

    /// Starts it, both streams drained by threads.
    pub fn spawn(&self) -> Spawned {
        self.command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pgtenant")
            .into()
    }

    /// Starts a long-running command (`run`, `wait`), its log collected line
    /// by line as it comes.
    pub fn sidecar(&self) -> Sidecar {
        let mut cmd = self.command();
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        Sidecar::spawn(cmd)
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

    /// The log events of a `--log-format json` run: every stderr line that is
    /// a JSON object.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(serde_json::Value::is_object)
            .collect()
    }
}
