//! The top-level error: one variant per layer, each mapped to a documented
//! exit code (see [`crate::exit`]).

use crate::exit;
use crate::input::conninfo::ConnError;
use crate::input::users_file::InputError;
use crate::server::db::DbError;
use crate::sidecar::error::SidecarError;

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
    #[error(transparent)]
    Sidecar(#[from] SidecarError),
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
            Error::Sidecar(SidecarError::NotUp { endpoint, .. }) => {
                tracing::error!(endpoint = %endpoint, "{self}")
            }
            // The signal that stopped it was logged when it came.
            Error::Sidecar(SidecarError::Stopped) => {}
            other => tracing::error!("{other}"),
        }
    }

    /// Whether `main` prints the error on stderr when logging is filtered
    /// out (`--log-level off`): the reason a command failed must show. `wait`
    /// ends quietly then, as a probe run by a script should.
    pub fn echo_when_unlogged(&self) -> bool {
        !matches!(
            self,
            Error::Sidecar(SidecarError::NotUp { .. } | SidecarError::Stopped)
        )
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Settings(_) | Error::Input(_) => exit::INVALID_INPUT,
            Error::Db(_) | Error::TenantsFailed { .. } | Error::Runtime(_) | Error::Sidecar(_) => {
                exit::FAILURE
            }
        }
    }
}
