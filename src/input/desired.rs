//! The desired state: the tenants that the input asks for.
//!
//! A tenant is a login role and the databases it owns (`<role>_db` unless the
//! config file says otherwise), with what the config asks for inside them;
//! readers and writers are login roles with privileges in a tenant's
//! databases. Values here are already validated by [`crate::input::users_file`],
//! [`crate::input::users_dir`] and [`crate::input::config`]; nothing here talks to a server.

use std::borrow::Cow;
use std::collections::HashSet;
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
    pub fn roles(&self) -> Vec<&str> {
        self.logins().map(|(r, _)| r).collect()
    }
    /// Every database of every tenant.
    pub fn databases(&self) -> Vec<&str> {
        self.tenants
            .iter()
            .flat_map(|t| t.databases.iter().map(|d| d.name.as_str()))
            .collect()
    }
    /// The input in passes of at most `size` tenants (at least 1), each with
    /// the readers and writers its tenants name; the first pass also takes
    /// those that no tenant names. The whole input, borrowed, when it fits in
    /// one pass. Each pass is made when it is reached, so that only one is
    /// held at a time.
    pub fn batches(&self, size: usize) -> impl Iterator<Item = Cow<'_, Desired>> + '_ {
        let size = size.max(1);
        let several = self.tenants.len() > size;
        let single = (!several).then_some(Cow::Borrowed(self));
        // Readers and writers some tenant names; only needed for passes.
        let named: HashSet<&str> = if several {
            self.tenants
                .iter()
                .flat_map(|t| t.members.iter().map(|(role, _)| role.as_str()))
                .collect()
        } else {
            HashSet::new()
        };
        let passes = self
            .tenants
            .chunks(size)
            .enumerate()
            .filter(move |_| several)
            .map(move |(i, chunk)| {
                let wanted: HashSet<&str> = chunk
                    .iter()
                    .flat_map(|t| t.members.iter().map(|(role, _)| role.as_str()))
                    .collect();
                let members = self
                    .members
                    .iter()
                    .filter(|m| {
                        wanted.contains(m.role.as_str())
                            || (i == 0 && !named.contains(m.role.as_str()))
                    })
                    .cloned()
                    .collect();
                Cow::Owned(Desired {
                    tenants: chunk.to_vec(),
                    members,
                })
            });
        single.into_iter().chain(passes)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin {
            file: PathBuf::from("users"),
            line: 1,
        }
    }

    fn desired(tenants: usize, members: &[(&str, &[usize])]) -> Desired {
        let mut d = Desired::default();
        for i in 0..tenants {
            d.tenants.push(Tenant::with_defaults(
                format!("t{i}"),
                Password::new("p"),
                origin(),
            ));
        }
        for (role, of) in members {
            for &i in *of {
                d.tenants[i].members.push(((*role).into(), Access::Reader));
            }
            d.members.push(Member {
                role: (*role).into(),
                password: Password::new("p"),
                origin: origin(),
            });
        }
        d
    }

    fn shape(d: &Desired, size: usize) -> Vec<(Vec<String>, Vec<String>)> {
        d.batches(size)
            .map(|b| {
                (
                    b.tenants.iter().map(|t| t.role.clone()).collect(),
                    b.members.iter().map(|m| m.role.clone()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn an_input_that_fits_goes_whole_and_borrowed() {
        let d = desired(3, &[("r", &[1])]);
        let passes: Vec<_> = d.batches(3).collect();
        assert_eq!(passes.len(), 1);
        assert!(matches!(passes[0], Cow::Borrowed(_)));
        assert_eq!(Desired::default().batches(500).count(), 1);
    }

    #[test]
    fn passes_take_the_members_their_tenants_name() {
        // r: named by t0 and t3; w: by t2; loose: by nobody.
        let d = desired(5, &[("r", &[0, 3]), ("w", &[2]), ("loose", &[])]);
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            shape(&d, 2),
            vec![
                (s(&["t0", "t1"]), s(&["r", "loose"])),
                (s(&["t2", "t3"]), s(&["r", "w"])),
                (s(&["t4"]), s(&[])),
            ]
        );
        // Every tenant exactly once, whatever the size; 0 counts as 1.
        for size in [0, 1, 2, 4, 5, 9] {
            let names: Vec<String> = shape(&d, size).into_iter().flat_map(|(t, _)| t).collect();
            assert_eq!(names, s(&["t0", "t1", "t2", "t3", "t4"]), "size {size}");
        }
    }
}
