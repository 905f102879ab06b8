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
    version,
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
    /// The users file (one user:password per line), or a directory with one
    /// file per user holding its password.
    #[arg(long, short = 'f', global = true, env = "DBUSERS", value_name = "FILE",
          default_value = DEFAULT_USERS_FILE)]
    pub users: PathBuf,

    /// The config file (YAML): several databases, extensions, schemas,
    /// locale, readers and writers, role settings; see docs/config.md
    /// [default: none]
    #[arg(long, global = true, env = "PGTENANT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

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

    /// Longest wait for a lock held by another session (a tenant's open
    /// transaction on its own role or database): that tenant fails, the
    /// others go on, and `run` retries it (500ms, 5s, 1m).
    #[arg(long, global = true, value_name = "DURATION", env = "PGTENANT_LOCK_TIMEOUT",
          default_value = "5s", value_parser = crate::duration::parse_nonzero)]
    pub lock_timeout: Duration,

    /// Longest any one statement of pgtenant may run (30s, 2m).
    #[arg(long, global = true, value_name = "DURATION", env = "PGTENANT_STATEMENT_TIMEOUT",
          default_value = "2m", value_parser = crate::duration::parse_nonzero)]
    pub statement_timeout: Duration,

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
    /// Print the JSON Schema of the config file (for editors) and exit.
    ConfigSchema,
    /// Wait until the server accepts connections and answers a query: exit 0
    /// when it does, 1 on timeout.
    Wait {
        /// Give up after this long (500ms, 30s, 5m) [default: wait forever].
        #[arg(long, value_name = "DURATION", value_parser = crate::duration::parse)]
        timeout: Option<Duration>,
    },
}
