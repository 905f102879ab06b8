//! The top-level error: one variant per layer, each mapped to a documented
//! exit code (see [`crate::exit`]).

use crate::exit;
use crate::input::conninfo::ConnError;
use crate::input::users_file::InputError;
use crate::server::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Settings(#[from] ConnError),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{failed} of {total} tenants failed")]
    TenantsFailed { failed: usize, total: usize },
    #[error("failed to start the runtime: {0}")]
    Runtime(std::io::Error),
}

impl Error {
    /// Logs the error for people: an invalid users file gets one line per
    /// problem, each with its `file:line`, then a summary.
    pub fn log(&self) {
        match self {
            Error::Input(InputError::Invalid(lines)) => {
                for line in lines {
                    tracing::error!(
                        file = %line.origin.file.display(),
                        line = line.origin.line,
                        "{line}"
                    );
                }
                tracing::error!(
                    "{} problem{} in the users file; nothing was changed",
                    lines.len(),
                    if lines.len() == 1 { "" } else { "s" }
                );
            }
            other => tracing::error!("{other}"),
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Settings(_) | Error::Input(_) => exit::INVALID_INPUT,
            Error::Db(_) | Error::TenantsFailed { .. } | Error::Runtime(_) => exit::FAILURE,
        }
    }
}
