//! The admin connection settings: where the server is and how to log in.
//!
//! This module owns resolving them from the command-line flags and the
//! environment, with libpq's meaning for the `PG*` variables and the official
//! `postgres` Docker image's conventions for `POSTGRES_*`, and turning the
//! result into a `tokio_postgres::Config`. It is hand-written because
//! tokio-postgres reads no environment at all.
//!
//! Precedence for each setting: command-line flag, then the `PG*` variable,
//! then the image's `POSTGRES_*` variable (user and password only), then a
//! default. A source is only consulted when every source before it gave
//! nothing, so a variable or file that a higher source makes irrelevant is
//! never read and cannot fail the run. As libpq does for most of its variables, an empty
//! value (flag or variable) counts as unset.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::input::env::Env;
use crate::input::pgpass::{self, Lookup, PgpassError};
pub use crate::input::secret::Password;
use crate::input::secret_file::{self, SecretFileError, Source};

/// libpq's default port.
pub const DEFAULT_PORT: u16 = 5432;
/// libpq itself defaults to the Unix socket in its compiled-in directory. We
/// default to TCP on `localhost` instead: pgtenant mostly runs in a container
/// or a sidecar, where the server is reached over the network, and the socket
/// directory differs between builds (`/tmp`, `/var/run/postgresql`).
pub const DEFAULT_HOST: &str = "localhost";
/// The official image's default superuser (libpq would use the OS user name).
pub const DEFAULT_USER: &str = "postgres";
/// The maintenance database, which every cluster has (libpq would default to
/// the user name, which for a tenant-provisioning superuser rarely exists).
pub const DEFAULT_DBNAME: &str = "postgres";
pub const DEFAULT_APPLICATION_NAME: &str = "pgtenant";
/// libpq waits forever by default. A sidecar or an init container that hangs
/// on a black-holed address never reports anything; failing after a bounded
/// wait lets the caller retry or surface the problem.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// libpq's `sslmode`; [`crate::server::tls`] gives each its meaning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    /// The libpq name, e.g. `verify-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid sslmode {0:?}: expected disable, allow, prefer, require, verify-ca or verify-full"
)]
pub struct ParseSslModeError(pub String);

/// libpq's names, compared exactly (libpq uses `strcmp`, so `Require` is
/// invalid). There is no fallback: a typo must not weaken the connection.
impl FromStr for SslMode {
    type Err = ParseSslModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return Err(ParseSslModeError(s.to_owned())),
        })
    }
}

/// The server's address: libpq treats a host starting with `/` as the
/// directory of a Unix socket, anything else as a name or an IP address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    Tcp(String),
    Socket(PathBuf),
}

impl Host {
    /// The host as text, as libpq matches it against the password file.
    fn as_text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Host::Tcp(name) => name.as_str().into(),
            Host::Socket(dir) => dir.to_string_lossy(),
        }
    }
}

/// Connection values given on the command line only; the environment is
/// looked at by [`resolve`].
#[derive(Clone, Debug, Default)]
pub struct ConnFlags {
    pub host: Option<String>,
    pub port: Option<String>,
    pub user: Option<String>,
    pub dbname: Option<String>,
}

/// The resolved, validated admin connection settings. Compared with `==`
/// (password included) to tell whether a re-read changed them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnSettings {
    pub host: Host,
    pub port: u16,
    pub user: String,
    pub password: Option<Password>,
    /// Where the password came from, for messages such as "password
    /// authentication failed (password from /root/.pgpass)": `PGPASSWORD`,
    /// `PGPASSFILE=/path`, `/root/.pgpass`, `POSTGRES_PASSWORD`,
    /// `POSTGRES_PASSWORD_FILE=/run/secrets/x`. Never the value.
    pub password_source: Option<String>,
    pub dbname: String,
    /// `None`: wait as long as the OS does.
    pub connect_timeout: Option<Duration>,
    pub application_name: String,
    pub sslmode: SslMode,
    /// `PGSSLROOTCERT`, else libpq's default `~/.postgresql/root.crt` (HOME
    /// from the environment; `None` without HOME or with `sslmode=disable`).
    /// The special value `system` (libpq 16: use the system's trusted roots)
    /// is kept as the path `system` for the TLS code to recognise.
    pub sslrootcert: Option<PathBuf>,
    /// Whether `sslrootcert` was given by `PGSSLROOTCERT` (it must then
    /// exist) rather than being the optional default file.
    pub sslrootcert_explicit: bool,
    /// `SSL_CERT_FILE`, read only for `PGSSLROOTCERT=system`: the system
    /// bundle to use instead of the distribution's usual path, as OpenSSL
    /// (and so libpq) honours it.
    pub ssl_cert_file: Option<PathBuf>,
    /// Files the credentials were read from (`POSTGRES_USER_FILE`,
    /// `POSTGRES_PASSWORD_FILE`, the password file), so that a long-running
    /// mode can watch them and re-resolve when a secret is rotated.
    pub watched_files: Vec<PathBuf>,
    /// Warnings that libpq would print to stderr (a password file that was
    /// ignored or could not be read). Resolution has no side effects, so they
    /// are handed to the caller to log.
    pub warnings: Vec<String>,
}

/// Why the settings could not be resolved. Messages name the flag, variable
/// or file at fault and never contain a password.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("{var} is not valid utf-8")]
    NotUtf8 { var: String },
    #[error("{origin} names several hosts ({value:?}); pgtenant connects to exactly one")]
    HostList { origin: String, value: String },
    #[error("{origin} names an abstract unix socket ({value:?}), which is not supported")]
    AbstractSocket { origin: String, value: String },
    #[error("invalid port {value:?} in {origin}: expected a number from 1 to 65535")]
    InvalidPort { origin: String, value: String },
    /// The value is left out on purpose: a URI may carry a password.
    #[error("{origin} is a connection uri, which is not supported; give the host, port, user and database separately")]
    ConnectionUri { origin: String },
    /// A `*_FILE` secret that is empty (or only newlines): almost surely a
    /// secret that was not populated, and no server accepts an empty user
    /// name or password.
    #[error("{origin} is empty")]
    EmptySecret { origin: String },
    #[error("invalid PGCONNECT_TIMEOUT {value:?}: expected a whole number of seconds")]
    InvalidConnectTimeout { value: String },
    #[error("invalid PGSSLMODE {value:?}: expected disable, allow, prefer, require, verify-ca or verify-full")]
    InvalidSslMode { value: String },
    /// libpq 16 refuses the same combination.
    #[error("PGSSLMODE={mode} may not be used with PGSSLROOTCERT=system; use verify-full")]
    WeakSslModeWithSystemRoots { mode: SslMode },
    #[error(transparent)]
    SecretFile(#[from] SecretFileError),
    #[error(transparent)]
    Pgpass(#[from] PgpassError),
}

/// Resolves the admin connection settings from the command-line flags and
/// the environment; see the module documentation for the precedence.
pub fn resolve(flags: &ConnFlags, env: &Env) -> Result<ConnSettings, ConnError> {
    let mut watched_files = Vec::new();
    let mut warnings = Vec::new();

    let host = match setting(&flags.host, "--host", env, "PGHOST")? {
        Some((value, origin)) => parse_host(value, origin)?,
        None => Host::Tcp(DEFAULT_HOST.to_owned()),
    };

    let port = match setting(&flags.port, "--port", env, "PGPORT")? {
        Some((value, origin)) => parse_port(value, origin)?,
        None => DEFAULT_PORT,
    };

    let user = match setting(&flags.user, "--username", env, "PGUSER")? {
        Some((value, _)) => value.to_owned(),
        None => match secret_file::file_env(env, "POSTGRES_USER")? {
            Some((value, source)) => {
                from_secret(&value, &source, &mut watched_files)?;
                value
            }
            None => DEFAULT_USER.to_owned(),
        },
    };

    let dbname = match setting(&flags.dbname, "--dbname", env, "PGDATABASE")? {
        Some((value, origin)) => {
            // libpq expands a URI given as the database name on the command
            // line; we do not, and a URI taken as a database name would fail
            // later with a confusing "database does not exist".
            if value.starts_with("postgresql://") || value.starts_with("postgres://") {
                return Err(ConnError::ConnectionUri {
                    origin: origin.to_owned(),
                });
            }
            value.to_owned()
        }
        None => DEFAULT_DBNAME.to_owned(),
    };

    let (password, password_source) = match resolve_password(
        env,
        &host,
        port,
        &dbname,
        &user,
        &mut watched_files,
        &mut warnings,
    )? {
        Some((password, source)) => (Some(password), Some(source)),
        None => (None, None),
    };

    let connect_timeout = match var(env, "PGCONNECT_TIMEOUT")? {
        Some(value) => parse_connect_timeout(value)?,
        None => Some(DEFAULT_CONNECT_TIMEOUT),
    };

    let application_name = var(env, "PGAPPNAME")?
        .unwrap_or(DEFAULT_APPLICATION_NAME)
        .to_owned();

    let explicit_sslmode = match var(env, "PGSSLMODE")? {
        Some(value) => Some(
            value
                .parse::<SslMode>()
                .map_err(|_| ConnError::InvalidSslMode {
                    value: value.to_owned(),
                })?,
        ),
        None => None,
    };
    let mut sslrootcert = var(env, "PGSSLROOTCERT")?.map(PathBuf::from);
    let sslrootcert_explicit = sslrootcert.is_some();
    // libpq 16: with the system's roots only full verification makes sense
    // (any CA-signed certificate would otherwise do), so it becomes the
    // default and anything weaker is refused.
    let sslmode = if sslrootcert.as_deref() == Some(Path::new("system")) {
        match explicit_sslmode {
            None | Some(SslMode::VerifyFull) => SslMode::VerifyFull,
            Some(mode) => return Err(ConnError::WeakSslModeWithSystemRoots { mode }),
        }
    } else {
        explicit_sslmode.unwrap_or_default()
    };
    let ssl_cert_file = if sslrootcert.as_deref() == Some(Path::new("system")) {
        var(env, "SSL_CERT_FILE")?.map(PathBuf::from)
    } else {
        None
    };
    if sslrootcert.is_none() && sslmode != SslMode::Disable {
        // libpq's default; whether it exists is for the TLS code to find out
        // when (and if) a handshake needs it.
        // Read as bytes: a HOME that is not UTF-8 is still a directory.
        sslrootcert = env
            .get_os("HOME")
            .filter(|home| !home.is_empty())
            .map(|home| Path::new(home).join(".postgresql/root.crt"));
    }

    Ok(ConnSettings {
        host,
        port,
        user,
        password,
        password_source,
        dbname,
        connect_timeout,
        application_name,
        sslmode,
        sslrootcert,
        sslrootcert_explicit,
        ssl_cert_file,
        watched_files,
        warnings,
    })
}

/// The password and where it came from, trying in order:
///
/// 1. `PGPASSWORD`;
/// 2. the password file named by `PGPASSFILE`;
/// 3. the image's `POSTGRES_PASSWORD` / `POSTGRES_PASSWORD_FILE`;
/// 4. `~/.pgpass`, only when `PGPASSFILE` is unset (as in libpq, where
///    `PGPASSFILE` replaces the default location).
///
/// Explicit settings beat the implicit default file: `~/.pgpass` is there
/// whether or not anyone meant it for this connection (a developer's home, a
/// base image), while every other source was set on purpose for this run.
fn resolve_password(
    env: &Env,
    host: &Host,
    port: u16,
    dbname: &str,
    user: &str,
    watched_files: &mut Vec<PathBuf>,
    warnings: &mut Vec<String>,
) -> Result<Option<(Password, String)>, ConnError> {
    if let Some(value) = var(env, "PGPASSWORD")? {
        return Ok(Some((Password::new(value), "PGPASSWORD".to_owned())));
    }
    let host = host.as_text();

    let passfile = var(env, "PGPASSFILE")?.map(PathBuf::from);
    if let Some(path) = &passfile {
        // Named explicitly, so a file that exists but cannot be read is an
        // error (libpq would skip it silently and fail authentication later).
        let lookup = pgpass::lookup(path, &host, port, dbname, user)?;
        if let Some(password) = from_pgpass(lookup, path, watched_files, warnings) {
            let source = format!("PGPASSFILE={}", path.display());
            return Ok(Some((password, source)));
        }
    }

    if let Some((value, source)) = secret_file::file_env(env, "POSTGRES_PASSWORD")? {
        from_secret(&value, &source, watched_files)?;
        return Ok(Some((Password::new(value), source.to_string())));
    }

    if passfile.is_some() {
        return Ok(None);
    }
    // libpq falls back to the password database when HOME is unset; we do
    // not: a process without HOME has no home password file to speak of.
    let Some(home) = var(env, "HOME")? else {
        return Ok(None);
    };
    let path = Path::new(home).join(".pgpass");
    match pgpass::lookup(&path, &host, port, dbname, user) {
        Ok(lookup) => Ok(from_pgpass(lookup, &path, watched_files, warnings)
            .map(|password| (password, path.display().to_string()))),
        // Nobody asked for this file: a run that may not need a password at
        // all must not fail because of it, so warn like libpq would ignore.
        Err(e) => {
            warnings.push(e.to_string());
            Ok(None)
        }
    }
}

fn from_pgpass(
    lookup: Lookup,
    path: &Path,
    watched_files: &mut Vec<PathBuf>,
    warnings: &mut Vec<String>,
) -> Option<Password> {
    match lookup {
        Lookup::Found(password) => {
            watched_files.push(path.to_owned());
            Some(password)
        }
        Lookup::NotFound => None,
        Lookup::Ignored(reason) => {
            warnings.push(reason.to_string());
            None
        }
    }
}

/// Records a `file_env` value's file for watching, and refuses an empty file.
/// The content is otherwise used exactly as `read_secret_file` returned it.
fn from_secret(
    value: &str,
    source: &Source,
    watched_files: &mut Vec<PathBuf>,
) -> Result<(), ConnError> {
    if let Some(path) = source.path() {
        if value.is_empty() {
            return Err(ConnError::EmptySecret {
                origin: source.to_string(),
            });
        }
        watched_files.push(path.to_owned());
    }
    Ok(())
}

/// The flag if given and non-empty, else the variable; with the name of
/// whichever supplied the value, for error messages.
fn setting<'a>(
    flag: &'a Option<String>,
    flag_name: &'static str,
    env: &'a Env,
    var_name: &'static str,
) -> Result<Option<(&'a str, &'static str)>, ConnError> {
    if let Some(value) = flag.as_deref().filter(|v| !v.is_empty()) {
        return Ok(Some((value, flag_name)));
    }
    Ok(var(env, var_name)?.map(|value| (value, var_name)))
}

/// A variable's value, empty meaning unset; not UTF-8 is an error naming it.
fn var<'a>(env: &'a Env, name: &str) -> Result<Option<&'a str>, ConnError> {
    env.get_nonempty(name).map_err(|()| ConnError::NotUtf8 {
        var: name.to_owned(),
    })
}

/// One host only. libpq accepts a comma-separated list and tries each in
/// turn; pgtenant changes a server's state and must know which server that
/// is, so a list is refused rather than silently taken as one odd name.
fn parse_host(value: &str, origin: &str) -> Result<Host, ConnError> {
    if value.contains(',') {
        return Err(ConnError::HostList {
            origin: origin.to_owned(),
            value: value.to_owned(),
        });
    }
    // libpq 14 reads a leading '@' as a Linux abstract socket; tokio-postgres
    // cannot connect to one, and as a host name it could never resolve.
    if value.starts_with('@') {
        return Err(ConnError::AbstractSocket {
            origin: origin.to_owned(),
            value: value.to_owned(),
        });
    }
    Ok(if value.starts_with('/') {
        Host::Socket(PathBuf::from(value))
    } else {
        Host::Tcp(value.to_owned())
    })
}

fn parse_port(value: &str, origin: &str) -> Result<u16, ConnError> {
    parse_libpq_int(value)
        .and_then(|n| u16::try_from(n).ok())
        .filter(|&n| n != 0)
        .ok_or_else(|| ConnError::InvalidPort {
            origin: origin.to_owned(),
            value: value.to_owned(),
        })
}

/// libpq's rules: 0 or negative means no timeout, and 1 second becomes 2
/// because libpq's rounding could otherwise give up almost at once.
fn parse_connect_timeout(value: &str) -> Result<Option<Duration>, ConnError> {
    let seconds = parse_libpq_int(value).ok_or_else(|| ConnError::InvalidConnectTimeout {
        value: value.to_owned(),
    })?;
    Ok(match seconds {
        ..=0 => None,
        1 => Some(Duration::from_secs(2)),
        n => Some(Duration::from_secs(n.unsigned_abs().into())),
    })
}

/// libpq's `parse_int_param`: `strtol` in base 10 (leading whitespace and a
/// sign allowed), only whitespace after the digits, and the result must fit
/// in a C `int`.
fn parse_libpq_int(value: &str) -> Option<i32> {
    // C's isspace in the "C" locale.
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r');
    let trimmed = value.trim_matches(is_space);
    let digits = trimmed.strip_prefix(['+', '-']).unwrap_or(trimmed);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    trimmed.parse::<i32>().ok()
}

impl ConnSettings {
    /// A tokio-postgres configuration for these settings.
    ///
    /// tokio-postgres knows only three TLS modes. `allow` becomes `prefer`
    /// and `verify-ca` / `verify-full` become `require`: certificate
    /// verification and the order of attempts are [`crate::server::tls::connect`]'s
    /// job, which sets the mode of each attempt itself.
    pub fn pg_config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        match &self.host {
            Host::Tcp(name) => {
                config.host(name);
            }
            #[cfg(unix)]
            Host::Socket(dir) => {
                config.host_path(dir);
            }
            #[cfg(not(unix))]
            Host::Socket(dir) => {
                config.host(dir.to_string_lossy());
            }
        }
        config
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name(&self.application_name)
            .ssl_mode(match self.sslmode {
                SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                    tokio_postgres::config::SslMode::Require
                }
            });
        if let Some(password) = &self.password {
            config.password(password.expose());
        }
        if let Some(timeout) = self.connect_timeout {
            config.connect_timeout(timeout);
        }
        config
    }

    /// The server's address for messages: `db.example:5432`,
    /// `[::1]:5432`, `/var/run/postgresql:5432`.
    pub fn endpoint(&self) -> String {
        match &self.host {
            Host::Tcp(name) if name.contains(':') => format!("[{name}]:{}", self.port),
            Host::Tcp(name) => format!("{name}:{}", self.port),
            Host::Socket(dir) => format!("{}:{}", dir.display(), self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().map(|(k, v)| (*k, *v)))
    }

    fn no_flags() -> ConnFlags {
        ConnFlags::default()
    }

    fn ok(pairs: &[(&str, &str)]) -> ConnSettings {
        resolve(&no_flags(), &env(pairs)).unwrap()
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        resolve(&no_flags(), &env(pairs)).unwrap_err().to_string()
    }

    fn file_with(content: &[u8], mode: u32) -> tempfile::NamedTempFile {
        crate::testutil::temp_file(content, mode)
    }

    fn path_str(f: &tempfile::NamedTempFile) -> &str {
        f.path().to_str().unwrap()
    }

    /// A home directory holding a `.pgpass` with `content`.
    fn home_with_pgpass(content: &str, mode: u32) -> tempfile::TempDir {
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join(".pgpass");
        std::fs::write(&path, content).unwrap();
        crate::testutil::chmod(&path, mode);
        home
    }

    fn password(s: &ConnSettings) -> Option<&str> {
        s.password.as_ref().map(Password::expose)
    }

    #[test]
    fn defaults() {
        let s = ok(&[]);
        assert_eq!(s.host, Host::Tcp("localhost".into()));
        assert_eq!(s.port, 5432);
        assert_eq!(s.user, "postgres");
        assert!(s.password.is_none());
        assert_eq!(s.password_source, None);
        assert_eq!(s.dbname, "postgres");
        assert_eq!(s.connect_timeout, Some(Duration::from_secs(10)));
        assert_eq!(s.application_name, "pgtenant");
        assert_eq!(s.sslmode, SslMode::Prefer);
        assert_eq!(s.sslrootcert, None);
        assert!(s.watched_files.is_empty());
        assert!(s.warnings.is_empty());
    }

    #[test]
    fn empty_values_count_as_unset() {
        let flags = ConnFlags {
            host: Some(String::new()),
            port: Some(String::new()),
            user: Some(String::new()),
            dbname: Some(String::new()),
        };
        let e = env(&[
            ("PGHOST", ""),
            ("PGPORT", ""),
            ("PGUSER", ""),
            ("PGDATABASE", ""),
            ("PGPASSWORD", ""),
            ("PGPASSFILE", ""),
            ("POSTGRES_USER", ""),
            ("POSTGRES_PASSWORD", ""),
            ("PGCONNECT_TIMEOUT", ""),
            ("PGAPPNAME", ""),
            ("PGSSLMODE", ""),
            ("PGSSLROOTCERT", ""),
            ("HOME", ""),
        ]);
        let s = resolve(&flags, &e).unwrap();
        assert_eq!(s.host, Host::Tcp("localhost".into()));
        assert_eq!(s.port, 5432);
        assert_eq!(s.user, "postgres");
        assert!(s.password.is_none());
        assert_eq!(s.dbname, "postgres");
        assert_eq!(s.connect_timeout, Some(Duration::from_secs(10)));
        assert_eq!(s.application_name, "pgtenant");
        assert_eq!(s.sslmode, SslMode::Prefer);
        assert_eq!(s.sslrootcert, None);
    }

    // ---- host ----

    #[test]
    fn host_flag_beats_pghost() {
        let flags = ConnFlags {
            host: Some("flag.example".into()),
            ..ConnFlags::default()
        };
        let s = resolve(&flags, &env(&[("PGHOST", "env.example")])).unwrap();
        assert_eq!(s.host, Host::Tcp("flag.example".into()));
    }

    #[test]
    fn host_from_pghost() {
        assert_eq!(
            ok(&[("PGHOST", "10.0.0.5")]).host,
            Host::Tcp("10.0.0.5".into())
        );
    }

    #[test]
    fn host_starting_with_slash_is_a_socket_directory() {
        let s = ok(&[("PGHOST", "/var/run/postgresql")]);
        assert_eq!(s.host, Host::Socket("/var/run/postgresql".into()));
        assert_eq!(s.endpoint(), "/var/run/postgresql:5432");
    }

    #[test]
    fn host_list_is_refused() {
        assert_eq!(
            err(&[("PGHOST", "a.example,b.example")]),
            "PGHOST names several hosts (\"a.example,b.example\"); pgtenant connects to exactly one"
        );
        let flags = ConnFlags {
            host: Some("a,b".into()),
            ..ConnFlags::default()
        };
        let e = resolve(&flags, &env(&[])).unwrap_err();
        assert!(matches!(e, ConnError::HostList { ref origin, .. } if origin == "--host"));
    }

    #[test]
    fn abstract_socket_is_refused() {
        assert_eq!(
            err(&[("PGHOST", "@pg")]),
            "PGHOST names an abstract unix socket (\"@pg\"), which is not supported"
        );
    }

    // ---- port ----

    #[test]
    fn port_flag_beats_pgport() {
        let flags = ConnFlags {
            port: Some("6000".into()),
            ..ConnFlags::default()
        };
        let s = resolve(&flags, &env(&[("PGPORT", "7000")])).unwrap();
        assert_eq!(s.port, 6000);
    }

    #[test]
    fn port_from_pgport_with_libpq_parsing() {
        assert_eq!(ok(&[("PGPORT", "7000")]).port, 7000);
        assert_eq!(ok(&[("PGPORT", " 7000 ")]).port, 7000);
        assert_eq!(ok(&[("PGPORT", "+7000")]).port, 7000);
        assert_eq!(ok(&[("PGPORT", "07000")]).port, 7000);
        assert_eq!(ok(&[("PGPORT", "1")]).port, 1);
        assert_eq!(ok(&[("PGPORT", "65535")]).port, 65535);
    }

    #[test]
    fn invalid_port_names_the_variable() {
        for bad in [
            "abc",
            "0",
            "-1",
            "65536",
            "5432,5433",
            "54 32",
            "5432x",
            "1e3",
            "99999999999",
        ] {
            assert_eq!(
                err(&[("PGPORT", bad)]),
                format!("invalid port {bad:?} in PGPORT: expected a number from 1 to 65535")
            );
        }
        let flags = ConnFlags {
            port: Some("http".into()),
            ..ConnFlags::default()
        };
        assert_eq!(
            resolve(&flags, &env(&[])).unwrap_err().to_string(),
            "invalid port \"http\" in --port: expected a number from 1 to 65535"
        );
    }

    // ---- user ----

    #[test]
    fn user_precedence() {
        let flags = ConnFlags {
            user: Some("flag_user".into()),
            ..ConnFlags::default()
        };
        let all = env(&[("PGUSER", "pg_user"), ("POSTGRES_USER", "image_user")]);
        assert_eq!(resolve(&flags, &all).unwrap().user, "flag_user");
        assert_eq!(resolve(&no_flags(), &all).unwrap().user, "pg_user");
        assert_eq!(ok(&[("POSTGRES_USER", "image_user")]).user, "image_user");
        assert_eq!(ok(&[]).user, "postgres");
    }

    #[test]
    fn user_from_file_is_watched() {
        let f = file_with(b"admin\n", 0o644);
        let s = ok(&[("POSTGRES_USER_FILE", path_str(&f))]);
        assert_eq!(s.user, "admin");
        assert_eq!(s.watched_files, vec![f.path().to_owned()]);
    }

    #[test]
    fn user_file_not_read_when_pguser_is_set() {
        let s = ok(&[
            ("PGUSER", "pg_user"),
            ("POSTGRES_USER_FILE", "/nonexistent/pgtenant/user"),
        ]);
        assert_eq!(s.user, "pg_user");
        assert!(s.watched_files.is_empty());
    }

    #[test]
    fn user_and_user_file_are_exclusive() {
        assert_eq!(
            err(&[
                ("POSTGRES_USER", "a"),
                ("POSTGRES_USER_FILE", "/run/secrets/u")
            ]),
            "both POSTGRES_USER and POSTGRES_USER_FILE are set (but are exclusive)"
        );
    }

    #[test]
    fn empty_user_file_is_an_error() {
        let f = file_with(b"\n", 0o644);
        assert_eq!(
            err(&[("POSTGRES_USER_FILE", path_str(&f))]),
            format!("POSTGRES_USER_FILE={} is empty", f.path().display())
        );
    }

    #[test]
    fn unreadable_user_file_is_an_error() {
        assert_eq!(
            err(&[("POSTGRES_USER_FILE", "/nonexistent/pgtenant/user")]),
            "failed to read /nonexistent/pgtenant/user: no such file or directory"
        );
    }

    // ---- dbname ----

    #[test]
    fn dbname_precedence() {
        let flags = ConnFlags {
            dbname: Some("flag_db".into()),
            ..ConnFlags::default()
        };
        let e = env(&[("PGDATABASE", "env_db"), ("POSTGRES_DB", "image_db")]);
        assert_eq!(resolve(&flags, &e).unwrap().dbname, "flag_db");
        assert_eq!(resolve(&no_flags(), &e).unwrap().dbname, "env_db");
        // POSTGRES_DB is the image's database to create, not the maintenance
        // database: it is not used.
        assert_eq!(ok(&[("POSTGRES_DB", "image_db")]).dbname, "postgres");
    }

    #[test]
    fn connection_uri_is_refused_without_echoing_it() {
        let flags = ConnFlags {
            dbname: Some("postgresql://admin:hunter2@db/postgres".into()),
            ..ConnFlags::default()
        };
        let msg = resolve(&flags, &env(&[])).unwrap_err().to_string();
        assert_eq!(
            msg,
            "--dbname is a connection uri, which is not supported; give the host, port, user and database separately"
        );
        assert!(!msg.contains("hunter2"));
        let msg = err(&[("PGDATABASE", "postgres://u:hunter2@h/d")]);
        assert!(msg.starts_with("PGDATABASE is a connection uri"), "{msg}");
    }

    // ---- password ----

    #[test]
    fn pgpassword_beats_everything() {
        let passfile = file_with(b"*:*:*:*:from-passfile\n", 0o600);
        let home = home_with_pgpass("*:*:*:*:from-home\n", 0o600);
        let s = ok(&[
            ("PGPASSWORD", "from-env"),
            ("PGPASSFILE", path_str(&passfile)),
            ("POSTGRES_PASSWORD", "from-image"),
            ("HOME", home.path().to_str().unwrap()),
        ]);
        assert_eq!(password(&s), Some("from-env"));
        assert_eq!(s.password_source.as_deref(), Some("PGPASSWORD"));
        assert!(s.watched_files.is_empty());
    }

    #[test]
    fn pgpassfile_beats_postgres_password() {
        let passfile = file_with(b"*:*:*:*:from-passfile\n", 0o600);
        let s = ok(&[
            ("PGPASSFILE", path_str(&passfile)),
            ("POSTGRES_PASSWORD", "from-image"),
        ]);
        assert_eq!(password(&s), Some("from-passfile"));
        assert_eq!(
            s.password_source,
            Some(format!("PGPASSFILE={}", passfile.path().display()))
        );
        assert_eq!(s.watched_files, vec![passfile.path().to_owned()]);
    }

    #[test]
    fn pgpassfile_without_match_falls_through_to_postgres_password() {
        let passfile = file_with(b"other:*:*:*:nope\n", 0o600);
        let s = ok(&[
            ("PGPASSFILE", path_str(&passfile)),
            ("POSTGRES_PASSWORD", "from-image"),
        ]);
        assert_eq!(password(&s), Some("from-image"));
        assert_eq!(s.password_source.as_deref(), Some("POSTGRES_PASSWORD"));
        assert!(s.watched_files.is_empty());
    }

    #[test]
    fn missing_pgpassfile_is_not_found() {
        let s = ok(&[
            ("PGPASSFILE", "/nonexistent/pgtenant/pgpass"),
            ("POSTGRES_PASSWORD", "from-image"),
        ]);
        assert_eq!(password(&s), Some("from-image"));
        assert!(s.warnings.is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn insecure_pgpassfile_is_ignored_with_a_warning() {
        let passfile = file_with(b"*:*:*:*:from-passfile\n", 0o644);
        let s = ok(&[
            ("PGPASSFILE", path_str(&passfile)),
            ("POSTGRES_PASSWORD", "from-image"),
        ]);
        assert_eq!(password(&s), Some("from-image"));
        assert_eq!(
            s.warnings,
            vec![format!(
                "password file {} has group or world access (0644); permissions should be u=rw (0600) or less",
                passfile.path().display()
            )]
        );
    }

    #[test]
    fn pgpassfile_that_cannot_be_read_is_an_error() {
        // A path through a regular file fails with ENOTDIR even for root.
        let f = file_with(b"", 0o600);
        let bad = format!("{}/pgpass", path_str(&f));
        assert_eq!(
            err(&[("PGPASSFILE", &bad), ("POSTGRES_PASSWORD", "from-image")]),
            format!("failed to read {bad}: not a directory")
        );
    }

    #[test]
    fn pgpassfile_replaces_home_pgpass() {
        let home = home_with_pgpass("*:*:*:*:from-home\n", 0o600);
        let s = ok(&[
            ("PGPASSFILE", "/nonexistent/pgtenant/pgpass"),
            ("HOME", home.path().to_str().unwrap()),
        ]);
        assert!(s.password.is_none());
    }

    #[test]
    fn postgres_password_beats_home_pgpass() {
        let home = home_with_pgpass("*:*:*:*:from-home\n", 0o600);
        let s = ok(&[
            ("POSTGRES_PASSWORD", "from-image"),
            ("HOME", home.path().to_str().unwrap()),
        ]);
        assert_eq!(password(&s), Some("from-image"));
        assert_eq!(s.password_source.as_deref(), Some("POSTGRES_PASSWORD"));
    }

    #[test]
    fn postgres_password_file_is_used_exactly_and_watched() {
        // A CRLF secret keeps its '\r', as the image's `$(< file)` keeps it.
        let f = file_with(b" s3cret\r\n\n", 0o644);
        let s = ok(&[("POSTGRES_PASSWORD_FILE", path_str(&f))]);
        assert_eq!(password(&s), Some(" s3cret\r"));
        assert_eq!(
            s.password_source,
            Some(format!("POSTGRES_PASSWORD_FILE={}", f.path().display()))
        );
        assert_eq!(s.watched_files, vec![f.path().to_owned()]);
    }

    #[test]
    fn password_and_password_file_are_exclusive() {
        assert_eq!(
            err(&[
                ("POSTGRES_PASSWORD", "hunter2"),
                ("POSTGRES_PASSWORD_FILE", "/run/secrets/x")
            ]),
            "both POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE are set (but are exclusive)"
        );
    }

    #[test]
    fn empty_password_file_is_an_error() {
        let f = file_with(b"", 0o644);
        assert_eq!(
            err(&[("POSTGRES_PASSWORD_FILE", path_str(&f))]),
            format!("POSTGRES_PASSWORD_FILE={} is empty", f.path().display())
        );
    }

    #[test]
    fn home_pgpass_is_the_last_resort() {
        let home = home_with_pgpass("*:*:*:*:from-home\n", 0o600);
        let s = ok(&[("HOME", home.path().to_str().unwrap())]);
        let path = home.path().join(".pgpass");
        assert_eq!(password(&s), Some("from-home"));
        assert_eq!(s.password_source, Some(path.display().to_string()));
        assert_eq!(s.watched_files, vec![path]);
    }

    #[cfg(unix)]
    #[test]
    fn insecure_home_pgpass_is_ignored_with_a_warning() {
        let home = home_with_pgpass("*:*:*:*:from-home\n", 0o604);
        let s = ok(&[("HOME", home.path().to_str().unwrap())]);
        assert!(s.password.is_none());
        assert_eq!(s.warnings.len(), 1);
        assert!(
            s.warnings[0].contains("has group or world access"),
            "{:?}",
            s.warnings
        );
    }

    #[test]
    fn unreadable_home_pgpass_is_only_a_warning() {
        let f = file_with(b"", 0o600);
        let s = ok(&[("HOME", path_str(&f))]);
        assert!(s.password.is_none());
        assert_eq!(
            s.warnings,
            vec![format!(
                "failed to read {}/.pgpass: not a directory",
                f.path().display()
            )]
        );
    }

    #[test]
    fn pgpass_is_matched_with_the_resolved_settings() {
        let home = home_with_pgpass(
            "db.example:6000:app:admin:tcp\nlocalhost:5432:postgres:svc:socket\n",
            0o600,
        );
        let home = home.path().to_str().unwrap();
        let s = ok(&[
            ("HOME", home),
            ("PGHOST", "db.example"),
            ("PGPORT", "6000"),
            ("PGDATABASE", "app"),
            ("POSTGRES_USER", "admin"),
        ]);
        assert_eq!(password(&s), Some("tcp"));
        // A socket directory matches a `localhost` entry.
        let s = ok(&[
            ("HOME", home),
            ("PGHOST", "/var/run/postgresql"),
            ("PGUSER", "svc"),
        ]);
        assert_eq!(password(&s), Some("socket"));
        let s = ok(&[("HOME", home), ("PGUSER", "nobody")]);
        assert!(s.password.is_none());
    }

    // ---- connect_timeout ----

    #[test]
    fn connect_timeout_libpq_semantics() {
        let t = |v: &str| ok(&[("PGCONNECT_TIMEOUT", v)]).connect_timeout;
        assert_eq!(t("30"), Some(Duration::from_secs(30)));
        assert_eq!(t(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(t("2"), Some(Duration::from_secs(2)));
        assert_eq!(t("1"), Some(Duration::from_secs(2)));
        assert_eq!(t("0"), None);
        assert_eq!(t("-5"), None);
        assert_eq!(ok(&[]).connect_timeout, Some(Duration::from_secs(10)));
    }

    #[test]
    fn invalid_connect_timeout() {
        for bad in ["abc", "1.5", "10s", "99999999999"] {
            assert_eq!(
                err(&[("PGCONNECT_TIMEOUT", bad)]),
                format!("invalid PGCONNECT_TIMEOUT {bad:?}: expected a whole number of seconds")
            );
        }
    }

    // ---- application_name ----

    #[test]
    fn application_name_from_pgappname() {
        assert_eq!(ok(&[("PGAPPNAME", "my-job")]).application_name, "my-job");
    }

    // ---- sslmode ----

    #[test]
    fn sslmode_names() {
        for (name, mode) in [
            ("disable", SslMode::Disable),
            ("allow", SslMode::Allow),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
            ("verify-ca", SslMode::VerifyCa),
            ("verify-full", SslMode::VerifyFull),
        ] {
            assert_eq!(name.parse::<SslMode>().unwrap(), mode);
            assert_eq!(mode.to_string(), name);
            assert_eq!(ok(&[("PGSSLMODE", name)]).sslmode, mode);
        }
        assert_eq!(SslMode::default(), SslMode::Prefer);
    }

    #[test]
    fn unknown_sslmode_is_an_error_not_a_fallback() {
        for bad in ["Require", "verify_full", "on", "true"] {
            assert!(bad.parse::<SslMode>().is_err());
            assert_eq!(
                err(&[("PGSSLMODE", bad)]),
                format!(
                    "invalid PGSSLMODE {bad:?}: expected disable, allow, prefer, require, verify-ca or verify-full"
                )
            );
        }
    }

    #[test]
    fn sslrootcert_path() {
        let s = ok(&[
            ("PGSSLROOTCERT", "/etc/ssl/ca.pem"),
            ("PGSSLMODE", "verify-ca"),
        ]);
        assert_eq!(s.sslrootcert, Some(PathBuf::from("/etc/ssl/ca.pem")));
        assert!(s.sslrootcert_explicit);
        assert_eq!(s.sslmode, SslMode::VerifyCa);
    }

    #[test]
    fn sslrootcert_defaults_to_home_root_crt() {
        let s = ok(&[("HOME", "/home/app")]);
        assert_eq!(
            s.sslrootcert,
            Some(PathBuf::from("/home/app/.postgresql/root.crt"))
        );
        assert!(!s.sslrootcert_explicit);
        // Without HOME there is no default; with disable it is not looked at.
        assert_eq!(ok(&[]).sslrootcert, None);
        let s = ok(&[("HOME", "/home/app"), ("PGSSLMODE", "disable")]);
        assert_eq!(s.sslrootcert, None);
        // PGSSLROOTCERT wins over the default.
        let s = ok(&[("HOME", "/home/app"), ("PGSSLROOTCERT", "/ca.pem")]);
        assert_eq!(s.sslrootcert, Some(PathBuf::from("/ca.pem")));
    }

    #[test]
    fn ssl_cert_file_only_for_system_roots() {
        let s = ok(&[("PGSSLROOTCERT", "system"), ("SSL_CERT_FILE", "/b.pem")]);
        assert_eq!(s.ssl_cert_file, Some(PathBuf::from("/b.pem")));
        let s = ok(&[("PGSSLROOTCERT", "/ca.pem"), ("SSL_CERT_FILE", "/b.pem")]);
        assert_eq!(s.ssl_cert_file, None);
    }

    #[test]
    fn sslrootcert_system_implies_verify_full() {
        assert_eq!(
            ok(&[("PGSSLROOTCERT", "system")]).sslmode,
            SslMode::VerifyFull
        );
        let s = ok(&[("PGSSLROOTCERT", "system"), ("PGSSLMODE", "verify-full")]);
        assert_eq!(s.sslmode, SslMode::VerifyFull);
        assert_eq!(
            err(&[("PGSSLROOTCERT", "system"), ("PGSSLMODE", "require")]),
            "PGSSLMODE=require may not be used with PGSSLROOTCERT=system; use verify-full"
        );
    }

    // ---- not UTF-8 ----

    #[cfg(unix)]
    #[test]
    fn non_utf8_variables_are_errors_naming_them() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        for name in [
            "PGHOST",
            "PGPORT",
            "PGUSER",
            "PGDATABASE",
            "PGPASSWORD",
            "PGPASSFILE",
            "POSTGRES_USER",
            "POSTGRES_PASSWORD_FILE",
            "HOME",
            "PGCONNECT_TIMEOUT",
            "PGAPPNAME",
            "PGSSLMODE",
            "PGSSLROOTCERT",
        ] {
            let e =
                Env::from_pairs([(OsString::from(name), OsString::from_vec(b"x\xff".to_vec()))]);
            let msg = resolve(&no_flags(), &e).unwrap_err().to_string();
            assert_eq!(msg, format!("{name} is not valid utf-8"));
        }
    }

    // ---- secrecy ----

    #[test]
    fn debug_never_shows_the_password() {
        let s = ok(&[("PGPASSWORD", "hunter2")]);
        assert_eq!(
            format!("{:?}", s.password.as_ref().unwrap()),
            "Password(***)"
        );
        let debug = format!("{s:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!format!("{:?}", s.pg_config()).contains("hunter2"));
    }

    // ---- tokio-postgres config and endpoint ----

    #[test]
    fn pg_config_tcp() {
        let s = ok(&[
            ("PGHOST", "db.example"),
            ("PGPORT", "6000"),
            ("PGUSER", "admin"),
            ("PGPASSWORD", "pw"),
            ("PGDATABASE", "maint"),
            ("PGAPPNAME", "job"),
            ("PGCONNECT_TIMEOUT", "5"),
            ("PGSSLMODE", "disable"),
        ]);
        let c = s.pg_config();
        assert_eq!(
            c.get_hosts(),
            &[tokio_postgres::config::Host::Tcp("db.example".into())]
        );
        assert_eq!(c.get_ports(), &[6000]);
        assert_eq!(c.get_user(), Some("admin"));
        assert_eq!(c.get_password(), Some(&b"pw"[..]));
        assert_eq!(c.get_dbname(), Some("maint"));
        assert_eq!(c.get_application_name(), Some("job"));
        assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(5)));
        assert_eq!(c.get_ssl_mode(), tokio_postgres::config::SslMode::Disable);
        assert_eq!(s.endpoint(), "db.example:6000");
    }

    #[cfg(unix)]
    #[test]
    fn pg_config_socket_without_password_or_timeout() {
        let s = ok(&[
            ("PGHOST", "/var/run/postgresql"),
            ("PGCONNECT_TIMEOUT", "0"),
        ]);
        let c = s.pg_config();
        assert_eq!(
            c.get_hosts(),
            &[tokio_postgres::config::Host::Unix(
                "/var/run/postgresql".into()
            )]
        );
        assert_eq!(c.get_password(), None);
        assert_eq!(c.get_connect_timeout(), None);
        assert_eq!(c.get_ssl_mode(), tokio_postgres::config::SslMode::Prefer);
    }

    #[test]
    fn pg_config_ssl_mode_mapping() {
        use tokio_postgres::config::SslMode as Tp;
        for (name, expected) in [
            ("disable", Tp::Disable),
            ("allow", Tp::Prefer),
            ("prefer", Tp::Prefer),
            ("require", Tp::Require),
            ("verify-ca", Tp::Require),
            ("verify-full", Tp::Require),
        ] {
            assert_eq!(
                ok(&[("PGSSLMODE", name)]).pg_config().get_ssl_mode(),
                expected
            );
        }
    }

    #[test]
    fn endpoint_forms() {
        assert_eq!(ok(&[("PGHOST", "127.0.0.1")]).endpoint(), "127.0.0.1:5432");
        assert_eq!(ok(&[("PGHOST", "::1")]).endpoint(), "[::1]:5432");
        assert_eq!(ok(&[]).endpoint(), "localhost:5432");
    }
}
