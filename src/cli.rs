//! The command line as typed: raw flags, before validation. [`crate::settings`]
//! turns these and the environment into one validated value.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::render::Format;

/// The article's path: the Secret is mounted at /run/secrets/postgres.
pub const DEFAULT_USERS_FILE: &str = "/run/secrets/postgres/db_users.secret";

#[derive(Debug, Parser)]
#[command(
    name = "pgtenant",
    version = crate::build_info::LONG_VERSION,
    about = "Provision the tenants of a shared PostgreSQL server: for each user:password \
             line a login role and a database <user>_db it owns, declaratively and idempotently.",
    after_help = "Connection: flags, then the libpq variables PGHOST, PGPORT, PGUSER, PGPASSWORD, \
                  PGPASSFILE, PGDATABASE, PGCONNECT_TIMEOUT, PGAPPNAME, PGSSLMODE, PGSSLROOTCERT, \
                  then the postgres image's POSTGRES_USER[_FILE] and POSTGRES_PASSWORD[_FILE], then ~/.pgpass.\n\
                  Exit codes: 0 success, 1 runtime failure, 2 invalid input or usage (nothing changed), \
                  3 changes pending (plan --exit-code)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The users file: one user:password per line.
    #[arg(long, short = 'f', global = true, env = "DBUSERS", value_name = "FILE",
          default_value = DEFAULT_USERS_FILE)]
    pub users: PathBuf,

    /// Server host name, or a directory for a Unix socket [default: $PGHOST, localhost]
    #[arg(long, global = true, value_name = "HOST")]
    pub host: Option<String>,

    /// Server port [default: $PGPORT, 5432]
    #[arg(long, short = 'p', global = true, value_name = "PORT")]
    pub port: Option<String>,

    /// Admin user [default: $PGUSER, $POSTGRES_USER[_FILE], postgres]
    #[arg(long, short = 'U', global = true, value_name = "USER")]
    pub username: Option<String>,

    /// Maintenance database to connect to [default: $PGDATABASE, postgres]
    #[arg(long, short = 'd', global = true, value_name = "DBNAME")]
    pub dbname: Option<String>,

    /// Leave PUBLIC's CONNECT and TEMPORARY on tenant databases (and, on 14 and
    /// older, schema public) as they are.
    #[arg(long, global = true)]
    pub no_isolation: bool,

    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "PGTENANT_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// Least severe log level shown.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "PGTENANT_LOG_LEVEL",
        default_value = "info"
    )]
    pub log_level: LogLevel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Reconcile once: create or fix what differs, then exit.
    Apply,
    /// Print what `apply` would change, and change nothing.
    Plan {
        /// Exit 3 when changes are pending, 0 when everything is in sync.
        #[arg(long)]
        exit_code: bool,
        /// Output format on stdout.
        #[arg(long, short = 'o', value_enum, default_value = "text")]
        output: Format,
    },
    /// One row per tenant: role, database, owner, password, isolation.
    Status {
        /// Output format on stdout.
        #[arg(long, short = 'o', value_enum, default_value = "text")]
        output: Format,
    },
    /// Sidecar mode: wait for the server, apply, then re-apply on every change
    /// of the users file or the admin credential files and at every resync,
    /// until SIGTERM or SIGINT.
    Run {
        /// How often to re-apply to correct drift (500ms, 30s, 5m, 1h).
        #[arg(long, value_name = "DURATION", default_value = "5m",
              value_parser = crate::duration::parse_nonzero)]
        resync_interval: Duration,
        /// Serve /healthz, /readyz and /metrics over HTTP on this address,
        /// e.g. 0.0.0.0:9187 [default: off].
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Wait until the server accepts connections and answers a query: exit 0
    /// when it does, 1 on timeout.
    Wait {
        /// Give up after this long (500ms, 30s, 5m) [default: wait forever].
        #[arg(long, value_name = "DURATION", value_parser = crate::duration::parse)]
        timeout: Option<Duration>,
    },
    /// GET an http:// URL: exit 0 on a 2xx answer, 1 otherwise (a health check
    /// for images without curl, e.g. http://127.0.0.1:8080/readyz).
    Probe {
        /// The URL to GET: http://HOST[:PORT][/PATH].
        url: String,
        /// Give up after this long (500ms, 5s, 1m).
        #[arg(long, value_name = "DURATION", default_value = "5s",
              value_parser = crate::duration::parse_nonzero)]
        timeout: Duration,
    },
    /// Print a completion script for a shell, generated from this command line.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: CompletionShell,
    },
}

/// The shells `pgtenant completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}
