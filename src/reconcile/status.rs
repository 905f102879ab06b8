//! `status`: one row per tenant of the input, read from the catalog. The
//! successor of the article's `\l` listing.
//!
//! A tenant's state comes from the same plan that `apply` would carry out,
//! so `status` and `plan` can never disagree about what is in sync.

use serde::Serialize;

use crate::input::desired::Desired;
use crate::reconcile::password::PasswordCheck;
use crate::reconcile::plan::{self, Attribute, Change, PasswordReason, Plan};
use crate::server::catalog::Observed;

/// Whether an object exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Present,
    Missing,
}

/// A tenant as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantState {
    /// `apply` would change nothing.
    InSync,
    /// Some of it exists, and `apply` would change something.
    Drifted,
    /// Neither its role nor its database exists.
    Missing,
    /// pgtenant refuses to manage it (see `reason`).
    Refused,
    /// Everything else is in sync, but the admin cannot read stored
    /// passwords (not a superuser), so whether the password is cannot be told.
    Unknown,
}

impl TenantState {
    /// For people: `in sync`.
    pub fn as_text(self) -> &'static str {
        match self {
            TenantState::InSync => "in sync",
            TenantState::Drifted => "drifted",
            TenantState::Missing => "missing",
            TenantState::Refused => "refused",
            TenantState::Unknown => "unknown",
        }
    }
}

/// The state of a stored password against the input's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordState {
    InSync,
    Differs,
    Md5Upgrade,
    /// The admin cannot read stored secrets.
    Unknown,
    /// The stored verifier asks for more iterations than pgtenant checks.
    Excessive,
    /// The role has no password.
    Missing,
}

impl From<PasswordCheck> for PasswordState {
    fn from(check: PasswordCheck) -> Self {
        match check {
            PasswordCheck::InSync => PasswordState::InSync,
            PasswordCheck::Differs => PasswordState::Differs,
            PasswordCheck::Upgrade => PasswordState::Md5Upgrade,
            PasswordCheck::Unknown => PasswordState::Unknown,
            PasswordCheck::Missing => PasswordState::Missing,
            PasswordCheck::Excessive => PasswordState::Excessive,
        }
    }
}

impl PasswordState {
    /// For people: `in sync`, `md5 upgrade`.
    pub fn as_text(self) -> &'static str {
        match self {
            PasswordState::InSync => "in sync",
            PasswordState::Differs => "differs",
            PasswordState::Md5Upgrade => "md5 upgrade",
            PasswordState::Unknown => "unknown",
            PasswordState::Missing => "missing",
            PasswordState::Excessive => "excessive iterations",
        }
    }
}

/// The tenant's role. `null` (`None`) where a value does not apply: the role
/// is missing, or refused (its password is not pgtenant's business).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleStatus {
    pub name: String,
    pub state: Presence,
    /// The role can log in: LOGIN, not expired (`VALID UNTIL`), and a
    /// connection limit other than 0.
    pub login: Option<bool>,
    pub password: Option<PasswordState>,
}

/// One of the tenant's databases; `null` where it is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatabaseStatus {
    pub name: String,
    pub state: Presence,
    pub owner: Option<String>,
    /// PUBLIC (so every other tenant) can neither connect to nor create
    /// temporary tables in the database, nor (14 and older) create objects in
    /// its schema public.
    pub isolated: Option<bool>,
    /// The database accepts the tenant's connections (`datallowconn`, and a
    /// connection limit other than 0).
    pub connectable: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub tenant: String,
    pub state: TenantState,
    /// Why the tenant is refused; null otherwise.
    pub reason: Option<String>,
    pub role: RoleStatus,
    pub databases: Vec<DatabaseStatus>,
}

/// One row per tenant of the input, with every database of it, from the
/// same plan that `apply` carries out (so `status` and `plan` agree).
/// `checks` holds the tenants' checks first (then the readers' and
/// writers', which the config's object rows report).
pub fn rows(
    desired: &Desired,
    observed: &Observed,
    checks: &[PasswordCheck],
    plan: &Plan,
) -> Vec<Row> {
    let schema_fix = observed.server.needs_public_schema_fix();
    desired
        .tenants
        .iter()
        .zip(checks)
        .map(|(t, check)| {
            let role = observed.roles.get(&t.role);
            let conflict = plan
                .conflicts
                .iter()
                .find(|c| c.tenant == t.role && c.blocking);
            let any_db = t
                .databases
                .iter()
                .any(|d| observed.databases.contains_key(&d.name));
            let state = if conflict.is_some() {
                TenantState::Refused
            } else if role.is_none() && !any_db {
                TenantState::Missing
            } else {
                let mut changes = plan.changes_for(&t.role).peekable();
                if changes.peek().is_none() {
                    TenantState::InSync
                } else if changes.all(only_unreadable_password) {
                    TenantState::Unknown
                } else {
                    TenantState::Drifted
                }
            };
            Row {
                tenant: t.role.clone(),
                state,
                reason: conflict.map(|c| c.message.clone()),
                role: RoleStatus {
                    name: t.role.clone(),
                    state: if role.is_some() {
                        Presence::Present
                    } else {
                        Presence::Missing
                    },
                    login: role.map(|r| {
                        r.can_login && !r.expired && !plan::blocks_login(r.connection_limit)
                    }),
                    password: role
                        .filter(|_| conflict.is_none())
                        .map(|_| PasswordState::from(*check)),
                },
                databases: t
                    .databases
                    .iter()
                    .map(|spec| {
                        let db = observed.databases.get(&spec.name);
                        DatabaseStatus {
                            name: spec.name.clone(),
                            state: if db.is_some() {
                                Presence::Present
                            } else {
                                Presence::Missing
                            },
                            owner: db.map(|d| d.owner.clone()),
                            isolated: db.map(|d| plan::is_isolated(d, &t.role, schema_fix)),
                            connectable: db.map(|d| {
                                d.allow_connections && !plan::blocks_login(d.connection_limit)
                            }),
                        }
                    })
                    .collect(),
            }
        })
        .collect()
}

/// A change that only sets a password because stored ones cannot be read.
fn only_unreadable_password(change: &Change) -> bool {
    change
        .attributes
        .iter()
        .all(|a| a.attribute == Attribute::Password && a.reason == Some(PasswordReason::Unknown))
}

/// Counts of tenants by state, as `status -o json` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub tenants: usize,
    pub in_sync: usize,
    pub drifted: usize,
    pub missing: usize,
    pub refused: usize,
    pub unknown: usize,
}

pub fn counts(rows: &[Row]) -> Counts {
    let mut c = Counts {
        tenants: rows.len(),
        ..Counts::default()
    };
    for r in rows {
        match r.state {
            TenantState::InSync => c.in_sync += 1,
            TenantState::Drifted => c.drifted += 1,
            TenantState::Missing => c.missing += 1,
            TenantState::Refused => c.refused += 1,
            TenantState::Unknown => c.unknown += 1,
        }
    }
    c
}
