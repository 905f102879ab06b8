//! Configuration, phase two: the raw command line and a snapshot of the
//! environment become one validated, immutable [`Settings`]. Nothing reads the
//! environment after this.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{Cli, Command, CredentialsFormat, LogFormat, LogLevel, OutputArgs};
use crate::input::conninfo::{self, ConnError, ConnFlags, ConnSettings, SslMode};
use crate::input::env::Env;
use crate::outputs::{BindingsSettings, OutputSettings, PgbouncerSettings};
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
    Apply(OutputSettings),
    Credentials(CredentialsSettings),
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
        Command::Apply { outputs: o } => CommandSettings::Apply(outputs(o, env)),
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
        } => CommandSettings::Run(RunSettings {
            resync_interval,
            listen,
            outputs: outputs(o, env),
        }),
        Command::Wait { timeout } => CommandSettings::Wait { timeout },
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
