//! Configuration, phase two: the raw command line and a snapshot of the
//! environment become one immutable [`Settings`]: what the command is, and
//! where its input comes from ([`Sources`], which only [`crate::input::load`]
//! reads). Nothing reads the process environment after `main`.

use std::net::SocketAddr;
use std::time::Duration;

use crate::cli::{Cli, Command};
use crate::input::conninfo::ConnFlags;
use crate::input::env::Env;
use crate::input::Sources;
use crate::reconcile::plan::Options;
use crate::render::Format;

#[derive(Debug, Clone)]
pub struct Settings {
    pub sources: Sources,
    pub options: Options,
    pub command: CommandSettings,
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

pub fn resolve(cli: Cli, env: Env) -> Settings {
    let g = cli.global;
    let flags = ConnFlags {
        host: g.host,
        port: g.port,
        user: g.username,
        dbname: g.dbname,
    };
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
    Settings {
        sources: Sources {
            flags,
            env,
            users_file: g.users,
        },
        options: Options {
            isolation: !g.no_isolation,
        },
        command,
    }
}
