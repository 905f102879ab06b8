//! The desired state: the tenants that the input asks for.
//!
//! A tenant is a login role and the databases it owns (`<role>_db` unless the
//! config file says otherwise), with what the config asks for inside them;
//! readers and writers are login roles with privileges in a tenant's
//! databases. Values here are already validated by [`crate::input::users_file`],
//! [`crate::input::users_dir`] and [`crate::input::config`]; nothing here talks to a server.

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
    /// The first of `databases`: `<role>_db` without a config.
    pub database: String,
    pub origin: Origin,
    /// At least one; the first is `database`.
    pub databases: Vec<DatabaseSpec>,
    /// The role's CONNECTION LIMIT, when the config sets one.
    pub connection_limit: Option<i32>,
    /// `ALTER ROLE ... SET name = value`, in config order.
    pub settings: Vec<RoleSetting>,
    /// Readers and writers of this tenant's databases, in config order.
    pub members: Vec<(String, Access)>,
}

impl Tenant {
    pub fn database_name(role: &str) -> String {
        format!("{role}_db")
    }

    /// A tenant as a users-file line gives it: one database, defaults.
    pub fn with_defaults(role: String, password: Password, origin: Origin) -> Tenant {
        let database = Tenant::database_name(&role);
        Tenant {
            databases: vec![DatabaseSpec::named(database.clone())],
            database,
            role,
            password,
            origin,
            connection_limit: None,
            settings: Vec::new(),
            members: Vec::new(),
        }
    }
}

/// One database of a tenant, with what lives inside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatabaseSpec {
    pub name: String,
    pub extensions: Vec<ExtensionSpec>,
    /// Schemas created in it, owned by the tenant.
    pub schemas: Vec<String>,
    pub connection_limit: Option<i32>,
    /// Creation-time options: used by CREATE DATABASE, compared (never
    /// changed) afterwards. The template cannot be read back from the catalog.
    pub template: Option<String>,
    pub encoding: Option<String>,
    pub locale: Option<String>,
}

impl DatabaseSpec {
    pub fn named(name: String) -> Self {
        DatabaseSpec {
            name,
            ..DatabaseSpec::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionSpec {
    pub name: String,
    pub schema: Option<String>,
    pub version: Option<String>,
}

/// A role setting's value, sent as one literal or, for a list setting such
/// as `search_path`, as a list of literals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingValue {
    One(String),
    List(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSetting {
    pub name: String,
    pub value: SettingValue,
}

/// What a reader or writer may do in a tenant's databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// SELECT on tables, SELECT on sequences.
    Reader,
    /// SELECT, INSERT, UPDATE, DELETE on tables; USAGE, SELECT on sequences.
    Writer,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Reader => "reader",
            Access::Writer => "writer",
        }
    }
}

/// A reader's or writer's login role. It owns nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub role: String,
    pub password: Password,
    pub origin: Origin,
}

/// All tenants of one input, in file order, then the readers and writers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub tenants: Vec<Tenant>,
    pub members: Vec<Member>,
}

impl Desired {
    /// Every login role: tenants, then readers and writers.
    pub fn roles(&self) -> Vec<String> {
        self.logins().map(|(r, _)| r.to_owned()).collect()
    }
    /// Every database of every tenant.
    pub fn databases(&self) -> Vec<String> {
        self.tenants
            .iter()
            .flat_map(|t| t.databases.iter().map(|d| d.name.clone()))
            .collect()
    }
    /// (role, password) of every login role, tenants first.
    pub fn logins(&self) -> impl Iterator<Item = (&str, &Password)> + '_ {
        self.tenants
            .iter()
            .map(|t| (t.role.as_str(), &t.password))
            .chain(self.members.iter().map(|m| (m.role.as_str(), &m.password)))
    }
    pub fn password_of(&self, role: &str) -> Option<&Password> {
        self.logins().find(|(r, _)| *r == role).map(|(_, p)| p)
    }
    /// Whether any tenant needs state inside its databases read.
    pub fn has_database_features(&self) -> bool {
        self.tenants.iter().any(Tenant::has_database_features)
    }
}

impl Tenant {
    /// Extensions, schemas or members: state inside its databases, which
    /// costs one short connection per database to read.
    pub fn has_database_features(&self) -> bool {
        !self.members.is_empty()
            || self
                .databases
                .iter()
                .any(|d| !d.extensions.is_empty() || !d.schemas.is_empty())
    }
}
