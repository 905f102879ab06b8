//! The desired state from the input files: the users file or directory,
//! then the config file when one is given. Called by [`crate::input::load`].

use std::path::{Path, PathBuf};

use crate::input::config::{self, ConfigError};
use crate::input::desired::Desired;
use crate::input::users_dir;
use crate::input::users_file::{self, InputError, Warning};

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error(transparent)]
    Users(#[from] InputError),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A valid input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub desired: Desired,
    pub warnings: Vec<Warning>,
    /// The files whose change means "read again": the config's
    /// `password_file`s (the users path and the config are known already).
    pub password_files: Vec<PathBuf>,
}

/// Reads and validates the whole input before anything touches the server.
pub fn load(users: &Path, config: Option<&Path>, admin_user: &str) -> Result<Loaded, FilesError> {
    // A directory is one file per user; anything else goes through the
    // users file's checks (regular file, bounded).
    let parsed = if std::fs::metadata(users).is_ok_and(|m| m.is_dir()) {
        users_dir::load(users, admin_user)?
    } else {
        users_file::load(users, admin_user)?
    };
    let Some(config_path) = config else {
        return Ok(Loaded {
            desired: parsed.desired,
            warnings: parsed.warnings,
            password_files: Vec::new(),
        });
    };
    let cfg = config::load(config_path)?;
    let warnings = parsed.warnings.clone();
    let merged = config::merge(parsed, users, &cfg, admin_user)?;
    Ok(Loaded {
        desired: merged.desired,
        warnings,
        password_files: merged.password_files,
    })
}
