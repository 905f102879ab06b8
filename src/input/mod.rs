//! Input: flags, environment and files, read and validated before anything
//! touches the server.
//!
//! [`load`] is the one loader: it turns a snapshot of the connection flags,
//! the environment and the path of the users file ([`Sources`]) into a
//! validated, immutable [`Input`]. The one-shot commands call it once; `run`
//! calls it at start and on every change of a watched file. It logs nothing:
//! warnings come back in the `Input` for the caller to log, and nothing
//! below it reads the process environment.

use std::fmt;
use std::path::PathBuf;

pub mod conninfo;
pub mod desired;
pub mod env;
pub(crate) mod pgpass;
pub mod secret;
pub(crate) mod secret_file;
pub mod users_file;

use conninfo::{ConnError, ConnFlags, ConnSettings};
use desired::Desired;
use env::Env;
use users_file::InputError;

/// Everything the input is read from, taken once at start: the connection
/// flags, a snapshot of the environment, and the users file's path. Files
/// named here are read again at every [`load`].
#[derive(Debug, Clone)]
pub struct Sources {
    pub flags: ConnFlags,
    pub env: Env,
    pub users_file: PathBuf,
}

/// A validated input.
#[derive(Debug, Clone)]
pub struct Input {
    pub conn: ConnSettings,
    pub desired: Desired,
    /// In the order found: the connection's first, then the users file's.
    pub warnings: Vec<Warning>,
    /// The files to watch for changes: the users file and every credential
    /// file the connection settings were read from.
    pub watched: Vec<PathBuf>,
}

/// Something worth telling, that does not stop the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// From resolving the connection (a password file that was ignored).
    Conn(String),
    /// From the users file, with its `file:line`.
    Users(users_file::Warning),
}

impl Warning {
    /// Logs it; users-file warnings carry `file` and `line` fields.
    pub fn log(&self) {
        match self {
            Warning::Conn(w) => tracing::warn!("{w}"),
            Warning::Users(w) => {
                tracing::warn!(file = %w.origin.file.display(), line = w.origin.line, "{w}")
            }
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::Conn(w) => f.write_str(w),
            Warning::Users(w) => w.fmt(f),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The connection settings could not be resolved.
    #[error(transparent)]
    Conn(#[from] ConnError),
    /// The connection settings are fine (here they are, with their warnings
    /// and files to watch), but the users file is not.
    #[error("{error}")]
    Users {
        #[source]
        error: InputError,
        conn: Box<ConnSettings>,
    },
}

/// Resolves the admin connection settings alone (`wait` needs no users
/// file; `run` must have them before it starts).
pub fn connection(sources: &Sources) -> Result<ConnSettings, ConnError> {
    conninfo::resolve(&sources.flags, &sources.env)
}

/// Reads and validates the whole input: the connection settings, then the
/// users file (whose tenants may not take over the admin role).
pub fn load(sources: &Sources) -> Result<Input, LoadError> {
    let conn = connection(sources)?;
    let parsed = match users_file::load(&sources.users_file, &conn.user) {
        Ok(p) => p,
        Err(error) => {
            return Err(LoadError::Users {
                error,
                conn: Box::new(conn),
            })
        }
    };
    let warnings = conn_warnings(&conn)
        .chain(parsed.warnings.into_iter().map(Warning::Users))
        .collect();
    let watched = watched_files(&sources.users_file, &conn);
    Ok(Input {
        conn,
        desired: parsed.desired,
        warnings,
        watched,
    })
}

/// The warnings of resolving the connection.
pub fn conn_warnings(conn: &ConnSettings) -> impl Iterator<Item = Warning> + '_ {
    conn.warnings.iter().cloned().map(Warning::Conn)
}

/// The users file, then the credential files of `conn`.
pub fn watched_files(users_file: &std::path::Path, conn: &ConnSettings) -> Vec<PathBuf> {
    let mut files = vec![users_file.to_owned()];
    files.extend(conn.watched_files.iter().cloned());
    files
}
