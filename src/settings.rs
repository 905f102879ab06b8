//! Configuration, phase two: the raw command line and a snapshot of the
//! environment become one validated, immutable [`Settings`]. Nothing reads the
//! environment after this.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{Cli, Command, LogFormat, LogLevel};
use crate::input::conninfo::{self, ConnError, ConnFlags, ConnSettings};
use crate::input::env::Env;
use crate::reconcile::plan::Options;
use crate::render::Format;

#[derive(Debug, Clone)]
pub struct Settings {
    pub conn: ConnSettings,
    pub users_file: PathBuf,
    pub options: Options,
    pub log_format: LogFormat,
    pub log_level: LogLevel,
    pub command: CommandSettings,
    /// The connection flags and the environment snapshot `conn` was resolved
    /// from, kept so that `run` can resolve again when a credential file
    /// changes. The environment itself is never read again.
    pub flags: ConnFlags,
    pub env: Env,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandSettings {
    Apply,
    Plan { exit_code: bool, output: Format },
    Status { output: Format },
    Run(RunSettings),
    Wait { timeout: Option<Duration> },
}

/// `pgtenant run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSettings {
    pub resync_interval: Duration,
    pub listen: Option<SocketAddr>,
}

pub fn resolve(cli: Cli, env: &Env) -> Result<Settings, ConnError> {
    let g = cli.global;
    let flags = ConnFlags {
        host: g.host,
        port: g.port,
        user: g.username,
        dbname: g.dbname,
    };
    let conn = conninfo::resolve(&flags, env)?;
    let command = match cli.command {
        Command::Apply => CommandSettings::Apply,
        Command::Plan { exit_code, output } => CommandSettings::Plan { exit_code, output },
        Command::Status { output } => CommandSettings::Status { output },
        Command::Run {
            resync_interval,
            listen,
        } => CommandSettings::Run(RunSettings {
            resync_interval,
            listen,
        }),
        Command::Wait { timeout } => CommandSettings::Wait { timeout },
        // Need no connection settings; `run::run` answers them before this.
        Command::Probe { .. } | Command::Completions { .. } => {
            unreachable!("utility commands are handled before settings")
        }
    };
    Ok(Settings {
        conn,
        users_file: g.users,
        options: Options {
            isolation: !g.no_isolation,
        },
        log_format: g.log_format,
        log_level: g.log_level,
        command,
        flags,
        env: env.clone(),
    })
}
