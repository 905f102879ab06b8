//! The command line as typed: raw flags, before validation. [`crate::settings`]
//! turns these and the environment into one validated value.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::input::conninfo::SslMode;
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
    #[arg(long, short = 'p', global = true, value_name = "PORT", value_parser = port_flag)]
    pub port: Option<String>,

    /// Admin user [default: $PGUSER, $POSTGRES_USER[_FILE], postgres]
    #[arg(long, short = 'U', global = true, value_name = "USER")]
    pub username: Option<String>,

    /// Maintenance database, or a libpq connection string (key=value or
    /// postgresql:// URI) [default: $PGDATABASE, postgres]
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

/// `pgtenant credentials -o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CredentialsFormat {
    Uri,
    Env,
    Json,
    Kubernetes,
}

/// What `apply` and `run` write besides the server, after each apply.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Write each application's servicebinding.io entries (uri, password,
    /// ...) as files under DIR/<application>/, atomically; directories of
    /// applications no longer in the input are removed.
    #[arg(long, env = "PGTENANT_BINDINGS_DIR", value_name = "DIR")]
    pub bindings_dir: Option<PathBuf>,
    /// Host written into the bindings [default: the server pgtenant connects to].
    #[arg(long, env = "PGTENANT_BINDINGS_HOST", value_name = "HOST")]
    pub bindings_host: Option<String>,
    /// Port written into the bindings [default: the server's].
    #[arg(long, env = "PGTENANT_BINDINGS_PORT", value_name = "PORT")]
    pub bindings_port: Option<u16>,
    /// sslmode written into the bindings [default: none].
    #[arg(long, env = "PGTENANT_BINDINGS_SSLMODE", value_name = "MODE")]
    pub bindings_sslmode: Option<SslMode>,
    /// Mode of the binding files (directories get x where r is).
    #[arg(long, env = "PGTENANT_BINDINGS_MODE", value_name = "MODE", default_value = "0600",
          value_parser = parse_mode)]
    pub bindings_mode: u32,
    /// Write PgBouncer's auth_file: one line per tenant with its SCRAM
    /// verifier from pg_authid (never a password), replaced atomically when
    /// it changes.
    #[arg(long, env = "PGTENANT_PGBOUNCER_AUTH_FILE", value_name = "FILE")]
    pub pgbouncer_auth_file: Option<PathBuf>,
    /// Mode of the auth file (0640 to share it with a PgBouncer of the same group).
    #[arg(long, env = "PGTENANT_PGBOUNCER_AUTH_FILE_MODE", value_name = "MODE",
          default_value = "0600", value_parser = parse_mode)]
    pub pgbouncer_auth_file_mode: u32,
    /// PgBouncer's admin console (libpq key=value or URI, no password), told to
    /// RELOAD whenever the auth file changes; the password is read from the file
    /// named by $PGTENANT_PGBOUNCER_PASSWORD_FILE.
    #[arg(
        long,
        env = "PGTENANT_PGBOUNCER_ADMIN",
        value_name = "CONNINFO",
        requires = "pgbouncer_auth_file"
    )]
    pub pgbouncer_admin: Option<String>,
}

/// An octal file mode such as 0600 or 640, at most 0777.
fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777 && *m & 0o600 == 0o600)
        .ok_or_else(|| format!("invalid mode {s:?}: expected octal such as 0600 or 0640, readable and writable by the owner"))
}

/// How `apply` and `run` spread their work (docs/performance.md).
#[derive(Debug, Clone, Copy, Args)]
pub struct ApplyArgs {
    /// Sessions an apply works over at once, the admin session included, within the server's free connection slots (docs/performance.md)
    #[arg(long, short = 'j', env = "PGTENANT_JOBS", value_name = "N",
          default_value_t = crate::server::pool::DEFAULT_JOBS,
          value_parser = parse_jobs)]
    pub jobs: usize,

    /// CREATE DATABASE strategy on PostgreSQL 15 and newer; auto: file-copy if the server runs with fsync = off, its default (wal-log) otherwise
    #[arg(
        long,
        value_enum,
        env = "PGTENANT_CREATE_STRATEGY",
        value_name = "STRATEGY",
        default_value = "auto"
    )]
    pub create_strategy: crate::server::strategy::StrategyChoice,

    /// Tenants reconciled per pass: each pass reads, plans and applies this many, which bounds the memory of an apply that creates many (docs/performance.md)
    #[arg(long, env = "PGTENANT_BATCH_SIZE", value_name = "N",
          default_value_t = crate::reconcile::apply::DEFAULT_BATCH,
          value_parser = parse_batch)]
    pub batch_size: usize,
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
    Apply {
        #[command(flatten)]
        outputs: OutputArgs,
        #[command(flatten)]
        apply: ApplyArgs,
    },
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
        #[command(flatten)]
        outputs: OutputArgs,
        #[command(flatten)]
        apply: ApplyArgs,
    },
    /// Print each application's connection details, password included, from
    /// the input files alone (no server).
    ///
    /// --host and --port give the address applications use [default: the
    /// server pgtenant connects to]. Passwords are printed on stdout only.
    Credentials {
        /// Only these applications, in this order [default: every tenant].
        #[arg(value_name = "NAME")]
        names: Vec<String>,
        /// uri: one libpq URI per line; env: shell and Compose env_file lines
        /// of one application; json; kubernetes: a servicebinding.io Secret
        /// per application.
        #[arg(long, short = 'o', value_enum, default_value = "uri")]
        output: CredentialsFormat,
        /// sslmode that applications use (disable, require, verify-full, ...)
        /// [default: none written, libpq's prefer].
        #[arg(long, value_name = "MODE")]
        sslmode: Option<SslMode>,
        /// -o kubernetes: the Secrets' namespace [default: none written].
        #[arg(long, value_name = "NAMESPACE")]
        namespace: Option<String>,
        /// -o kubernetes: the Secrets' name, {name} being the application.
        #[arg(long, value_name = "TEMPLATE", default_value = crate::outputs::credentials::DEFAULT_SECRET_NAME)]
        secret_name: String,
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

/// `--port`: a usage error at parse time, like any other bad flag value. An
/// empty value is allowed (it counts as unset, as in libpq).
fn port_flag(value: &str) -> Result<String, String> {
    let number = value.trim().strip_prefix('+').unwrap_or(value.trim());
    if value.is_empty() || number.parse::<u16>().is_ok_and(|p| p != 0) {
        Ok(value.to_owned())
    } else {
        Err("expected a number from 1 to 65535".to_owned())
    }
}

/// `--batch-size`: 1 to the users file's limit.
fn parse_batch(s: &str) -> Result<usize, String> {
    one_to(s, crate::input::users_file::MAX_TENANTS)
}

/// `--jobs`: 1 to [`crate::server::pool::MAX_JOBS`].
fn parse_jobs(s: &str) -> Result<usize, String> {
    one_to(s, crate::server::pool::MAX_JOBS)
}

fn one_to(s: &str, max: usize) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected a number from 1 to {max}")),
    }
}
