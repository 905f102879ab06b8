//! Configuration, phase two: the raw command line and a snapshot of the
//! environment become one immutable [`Settings`]: what the command is, and
//! where its input comes from ([`Sources`], which only [`crate::input::load`]
//! reads). Nothing reads the process environment after `main`.

use std::net::SocketAddr;
use std::time::Duration;

use std::path::PathBuf;

use crate::cli::{Cli, Command, CredentialsFormat, OutputArgs};
use crate::input::conninfo::{ConnFlags, SslMode};
use crate::input::env::Env;
use crate::input::Sources;
use crate::outputs::{BindingsSettings, OutputSettings, PgbouncerSettings};
use crate::reconcile::apply::ApplyOptions;
use crate::reconcile::plan::Options;
use crate::render::Format;

#[derive(Debug, Clone)]
pub struct Settings {
    pub sources: Sources,
    pub options: Options,
    pub apply: ApplyOptions,
    pub command: CommandSettings,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandSettings {
    Apply(OutputSettings),
    Credentials(CredentialsSettings),
    Plan { exit_code: bool, output: Format },
    Status { output: Format },
    Run(RunSettings),
    Wait { timeout: Option<Duration> },
    ConfigSchema,
}

/// `pgtenant run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSettings {
    pub resync_interval: Duration,
    pub listen: Option<SocketAddr>,
    pub outputs: OutputSettings,
}

/// `pgtenant credentials`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialsSettings {
    pub names: Vec<String>,
    pub output: CredentialsFormat,
    pub sslmode: Option<SslMode>,
    pub namespace: Option<String>,
    pub secret_name: String,
}

fn outputs(args: OutputArgs, env: &Env) -> OutputSettings {
    let admin = args.pgbouncer_admin.map(|conninfo| {
        let file = env
            .get_os(crate::outputs::pgbouncer::PASSWORD_FILE_VAR)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_default();
        (conninfo, file)
    });
    OutputSettings {
        bindings: args.bindings_dir.map(|dir| BindingsSettings {
            dir,
            host: args.bindings_host,
            port: args.bindings_port,
            sslmode: args.bindings_sslmode,
            file_mode: args.bindings_mode,
        }),
        pgbouncer: args.pgbouncer_auth_file.map(|auth_file| PgbouncerSettings {
            auth_file,
            mode: args.pgbouncer_auth_file_mode,
            admin,
        }),
    }
}

pub fn resolve(cli: Cli, env: Env) -> Settings {
    let g = cli.global;
    let flags = ConnFlags {
        host: g.host,
        port: g.port,
        user: g.username,
        dbname: g.dbname,
    };
    let apply = match &cli.command {
        Command::Apply { apply, .. } | Command::Run { apply, .. } => ApplyOptions {
            jobs: apply.jobs,
            strategy: apply.create_strategy,
            batch: apply.batch_size,
        },
        _ => ApplyOptions::default(),
    };
    let command = match cli.command {
        Command::Apply { outputs: o, .. } => CommandSettings::Apply(outputs(o, &env)),
        Command::Credentials {
            names,
            output,
            sslmode,
            namespace,
            secret_name,
        } => CommandSettings::Credentials(CredentialsSettings {
            names,
            output,
            sslmode,
            namespace,
            secret_name,
        }),
        Command::Plan { exit_code, output } => CommandSettings::Plan { exit_code, output },
        Command::Status { output } => CommandSettings::Status { output },
        Command::Run {
            resync_interval,
            listen,
            outputs: o,
            ..
        } => CommandSettings::Run(RunSettings {
            resync_interval,
            listen,
            outputs: outputs(o, &env),
        }),
        Command::Wait { timeout } => CommandSettings::Wait { timeout },
        Command::ConfigSchema => CommandSettings::ConfigSchema,
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
            timeouts: crate::input::conninfo::SessionTimeouts {
                lock: g.lock_timeout,
                statement: g.statement_timeout,
            },
            config: g.config,
        },
        options: Options {
            isolation: !g.no_isolation,
        },
        apply,
        command,
    }
}
