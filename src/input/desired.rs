//! The desired state: the tenants that the input asks for.
//!
//! A tenant is a login role and the database `<role>_db` it owns. Values here
//! are already validated by [`crate::input::users_file`]; nothing in this module talks
//! to a server.

use std::fmt;
use std::path::PathBuf;

pub use crate::input::secret::Password;

/// Where a tenant was declared, for messages that point at the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// The role name, exactly as written (identifiers are always quoted).
    pub role: String,
    pub password: Password,
    /// Always `<role>_db`.
    pub database: String,
    pub origin: Origin,
}

impl Tenant {
    pub fn database_name(role: &str) -> String {
        format!("{role}_db")
    }
}

/// All tenants of one input, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub tenants: Vec<Tenant>,
}

impl Desired {
    pub fn roles(&self) -> Vec<String> {
        self.tenants.iter().map(|t| t.role.clone()).collect()
    }
    pub fn databases(&self) -> Vec<String> {
        self.tenants.iter().map(|t| t.database.clone()).collect()
    }
}
