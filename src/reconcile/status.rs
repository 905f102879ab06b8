//! `status`: one row per tenant of the input, read from the catalog. The
//! successor of the article's `\l` listing.

use serde::Serialize;

use crate::input::desired::Desired;
use crate::reconcile::password::PasswordCheck;
use crate::reconcile::plan;
use crate::server::catalog::Observed;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    Present,
    Missing,
}

impl Presence {
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Present => "present",
            Presence::Missing => "missing",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub role: String,
    pub role_state: Presence,
    pub login: bool,
    pub database: String,
    pub database_state: Presence,
    /// The database's owner, when it exists.
    pub owner: Option<String>,
    /// `in sync`, `differs`, `md5 upgrade`, `unknown`, `missing`, or `none`
    /// when the role does not exist.
    pub password: &'static str,
    /// PUBLIC (so every other tenant) can neither connect to nor create
    /// temporary tables in the database, nor (14 and older) create objects in
    /// its schema public.
    pub isolated: bool,
}

pub fn rows(desired: &Desired, observed: &Observed, checks: &[PasswordCheck]) -> Vec<Row> {
    let schema_fix = observed.server.needs_public_schema_fix();
    desired
        .tenants
        .iter()
        .zip(checks)
        .map(|(t, check)| {
            let role = observed.roles.get(&t.role);
            let db = observed.databases.get(&t.database);
            Row {
                role: t.role.clone(),
                role_state: if role.is_some() {
                    Presence::Present
                } else {
                    Presence::Missing
                },
                login: role.is_some_and(|r| r.can_login),
                database: t.database.clone(),
                database_state: if db.is_some() {
                    Presence::Present
                } else {
                    Presence::Missing
                },
                owner: db.map(|d| d.owner.clone()),
                password: if role.is_some() {
                    check.as_str()
                } else {
                    "none"
                },
                isolated: db.is_some_and(|d| plan::is_isolated(d, &t.role, schema_fix)),
            }
        })
        .collect()
}
