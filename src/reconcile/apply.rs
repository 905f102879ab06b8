//! The apply step: turns the plan's steps into SQL on the server, tenant by
//! tenant. One tenant's failure is recorded and the others go on.

use std::collections::HashMap;

use tokio_postgres::Client;
use tracing::{error, info};

use crate::input::conninfo::ConnSettings;
use crate::input::desired::Desired;
use crate::reconcile::check::CheckCache;
use crate::reconcile::password;
use crate::reconcile::plan::{Action, PasswordReason, Plan, Step};
use crate::server::catalog::ServerInfo;
use crate::server::db::{self, DbError};
use crate::server::sql::{self, quote_ident, Statement};

/// What happened to one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    /// Its role or database was created.
    Created,
    Updated,
    /// pgtenant refused to manage it (see [`crate::reconcile::plan::Conflict`]).
    Refused(String),
    Failed(String),
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        matches!(
            self,
            Outcome::Unchanged | Outcome::Created | Outcome::Updated
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantOutcome {
    pub tenant: String,
    pub outcome: Outcome,
}

/// Applies `plan`. Returns one outcome per tenant of `desired`, in order,
/// unless the connection was lost, which ends the run early with an error.
pub async fn apply(
    client: &Client,
    settings: &ConnSettings,
    server: &ServerInfo,
    desired: &Desired,
    plan: &Plan,
    mut cache: Option<&mut CheckCache>,
) -> Result<Vec<TenantOutcome>, DbError> {
    let verifiers = make_verifiers(desired, plan, server)?;
    let mut outcomes = Vec::with_capacity(desired.tenants.len());
    for tenant in &desired.tenants {
        let role = &tenant.role;
        if let Some(conflict) = plan.conflicts.iter().find(|c| &c.tenant == role) {
            error!(role = %role, "refusing to manage role {}: {}", quote_ident(role), conflict.reason);
            outcomes.push(TenantOutcome {
                tenant: role.clone(),
                outcome: Outcome::Refused(conflict.reason.clone()),
            });
            continue;
        }
        let mut outcome = Outcome::Unchanged;
        'changes: for change in plan.changes_for(role) {
            for step in &change.steps {
                if let Err(e) = run_step(client, settings, server, step, &verifiers).await {
                    if e.is_connection_lost() {
                        return Err(e);
                    }
                    error!(role = %role, error = %e, "tenant {} failed: {e}", quote_ident(role));
                    outcome = Outcome::Failed(e.to_string());
                    break 'changes;
                }
                // The server stores the verifier as sent: the next resync
                // finds it and needs no key derivation to trust it.
                if let (Some(c), Some(v)) = (cache.as_deref_mut(), set_verifier(step, &verifiers)) {
                    c.remember(role, v, tenant.password.expose());
                }
            }
            outcome = match (change.action, &outcome) {
                (Action::Create, _) => Outcome::Created,
                (Action::Update, Outcome::Unchanged) => Outcome::Updated,
                (_, other) => other.clone(),
            };
        }
        outcomes.push(TenantOutcome {
            tenant: role.clone(),
            outcome,
        });
    }
    Ok(outcomes)
}

/// The verifier a successful `step` stored, if it set a password.
fn set_verifier<'a>(step: &Step, verifiers: &'a HashMap<String, String>) -> Option<&'a str> {
    match step {
        Step::CreateRole { role }
        | Step::AlterRole {
            role,
            password: Some(_),
            ..
        } => verifiers.get(role).map(String::as_str),
        _ => None,
    }
}

/// Computes a fresh verifier for every role whose password is set, using both
/// cores: SCRAM's key derivation is deliberately slow.
fn make_verifiers(
    desired: &Desired,
    plan: &Plan,
    server: &ServerInfo,
) -> Result<HashMap<String, String>, DbError> {
    let wanted: Vec<(&str, &str)> = plan
        .changes
        .iter()
        .flat_map(|c| c.steps.iter())
        .filter_map(|step| match step {
            Step::CreateRole { role }
            | Step::AlterRole {
                role,
                password: Some(_),
                ..
            } => Some(role.as_str()),
            _ => None,
        })
        .filter_map(|role| {
            desired
                .tenants
                .iter()
                .find(|t| t.role == role)
                .map(|t| (role, t.password.expose()))
        })
        .collect();
    let encryption = server.password_encryption;
    let iterations = server.scram_iterations_or_default();
    let results = crate::reconcile::parallel::map(&wanted, |(role, password)| {
        password::new_verifier(password, role, encryption, iterations)
    });
    wanted
        .iter()
        .zip(results)
        .map(|((role, _), v)| {
            v.map(|v| ((*role).to_owned(), v))
                .map_err(|e| DbError::Unsupported(format!("failed to generate a random salt: {e}")))
        })
        .collect()
}

async fn run_step(
    client: &Client,
    settings: &ConnSettings,
    server: &ServerInfo,
    step: &Step,
    verifiers: &HashMap<String, String>,
) -> Result<(), DbError> {
    let verifier = |role: &str| verifiers.get(role).map(String::as_str).unwrap_or_default();
    match step {
        Step::CreateRole { role } => {
            let stmt = sql::create_role(role, verifier(role));
            execute(client, server, &stmt, "create role", role).await?;
            info!(role = %role, action = "create_role", "created role {}", quote_ident(role));
        }
        Step::AlterRole {
            role,
            login,
            password,
        } => {
            let v = password.map(|_| verifier(role));
            let stmt = sql::alter_role(role, *login, v);
            execute(client, server, &stmt, "alter role", role).await?;
            if *login {
                info!(role = %role, action = "enable_login", "enabled login for role {}", quote_ident(role));
            }
            if let Some(reason) = password {
                let why = match reason {
                    PasswordReason::Differs => "",
                    PasswordReason::Missing => " (none was set)",
                    PasswordReason::Upgrade => " (md5 upgraded to scram-sha-256)",
                    PasswordReason::Unknown => " (stored secrets are not readable)",
                };
                info!(role = %role, action = "update_password", "updated password of role {}{why}", quote_ident(role));
            }
        }
        Step::CreateDatabase { database, owner } => {
            ensure_can_set_role(client, server, owner).await?;
            let stmt = sql::create_database(database, owner);
            execute(client, server, &stmt, "create database", database).await?;
            info!(database = %database, owner = %owner, action = "create_database",
                "created database {} owned by {}", quote_ident(database), quote_ident(owner));
        }
        Step::AlterDatabaseOwner { database, owner } => {
            ensure_can_set_role(client, server, owner).await?;
            let stmt = sql::alter_database_owner(database, owner);
            execute(client, server, &stmt, "change owner of database", database).await?;
            info!(database = %database, owner = %owner, action = "alter_database_owner",
                "changed owner of database {} to {}", quote_ident(database), quote_ident(owner));
        }
        Step::RevokeDatabase {
            database,
            connect,
            temporary,
        } => {
            let privileges: Vec<&str> = [(*connect, "CONNECT"), (*temporary, "TEMPORARY")]
                .into_iter()
                .filter_map(|(on, p)| on.then_some(p))
                .collect();
            let stmt = sql::revoke_database_from_public(database, &privileges);
            if server.admin_is_superuser {
                execute(
                    client,
                    server,
                    &stmt,
                    "revoke privileges on database",
                    database,
                )
                .await?;
            } else {
                revoke_as_owner(client, server, database, &stmt).await?;
            }
            info!(database = %database, action = "revoke_public",
                "revoked {} on database {} from PUBLIC", privileges.join(", "), quote_ident(database));
        }
        Step::PublicSchema {
            database,
            owner,
            revoke_create,
        } => {
            let tenant_db = db::connect(settings, Some(database)).await?;
            if let Some(owner) = owner {
                let stmt = sql::alter_public_schema_owner(owner);
                execute(
                    &tenant_db,
                    server,
                    &stmt,
                    "change owner of schema public in",
                    database,
                )
                .await
                .map_err(|e| schema_hint(server, e))?;
                info!(database = %database, owner = %owner, action = "alter_schema_owner",
                    "made {} owner of schema public in database {}", quote_ident(owner), quote_ident(database));
            }
            if *revoke_create {
                let stmt = sql::revoke_create_on_public_schema();
                execute(
                    &tenant_db,
                    server,
                    &stmt,
                    "revoke CREATE on schema public in",
                    database,
                )
                .await?;
                info!(database = %database, action = "revoke_schema_create",
                    "revoked CREATE on schema public in database {} from PUBLIC", quote_ident(database));
            }
        }
    }
    Ok(())
}

/// A non-superuser admin (`CREATEROLE CREATEDB`) may only make a role the
/// owner of a database when it can `SET ROLE` to it: membership on 15 and
/// older, membership with the SET option on 16 and newer. It grants itself
/// that membership when it lacks it: always possible on 15 and older
/// (CREATEROLE administers every non-superuser role), on 16 and newer for
/// the roles it created (it holds ADMIN OPTION on them) or was given ADMIN
/// OPTION on. On 16 and newer the membership does not inherit the tenant's
/// privileges. A superuser needs nothing.
async fn ensure_can_set_role(
    client: &Client,
    server: &ServerInfo,
    role: &str,
) -> Result<(), DbError> {
    if server.admin_is_superuser {
        return Ok(());
    }
    // 16 and newer can grant SET without inheriting the tenant's privileges.
    let set_only = server.major() >= 16;
    let mode = if set_only { "SET" } else { "MEMBER" };
    let grant = sql::grant_role_to_admin(role, set_only);
    let what = || format!("make the admin a member of role {}", quote_ident(role));
    let can: bool = client
        .query_one(
            "SELECT pg_catalog.pg_has_role(CURRENT_USER, $1::pg_catalog.text::pg_catalog.name, $2)",
            &[&role, &mode],
        )
        .await
        .map_err(|e| DbError::query(what(), e))?
        .get(0);
    if !can {
        client
            .batch_execute(grant.text())
            .await
            .map_err(|e| DbError::query(what(), e))?;
        info!(role = %role, action = "grant_membership",
            "granted role {} to the admin {}, which a non-superuser admin needs to give it a database",
            quote_ident(role), quote_ident(&server.admin));
    }
    Ok(())
}

/// A non-superuser admin that does not own the database revokes as its
/// owner: `REVOKE` by anyone else names them as grantor, and on 16 and newer
/// (no inherited privileges) would only warn "no privileges could be
/// revoked" and change nothing. `SET LOCAL` in the implicit transaction of
/// one query string ends with it, also on error.
async fn revoke_as_owner(
    client: &Client,
    server: &ServerInfo,
    database: &str,
    stmt: &Statement,
) -> Result<(), DbError> {
    let what = || format!("revoke privileges on database {}", quote_ident(database));
    let owner: String = client
        .query_one(
            "SELECT pg_catalog.pg_get_userbyid(d.datdba)::pg_catalog.text FROM pg_catalog.pg_database d \
              WHERE d.datname OPERATOR(pg_catalog.=) $1::pg_catalog.text::pg_catalog.name",
            &[&database],
        )
        .await
        .map_err(|e| DbError::query(what(), e))?
        .get(0);
    ensure_can_set_role(client, server, &owner).await?;
    client
        .batch_execute(sql::as_role(&owner, stmt).text())
        .await
        .map_err(|e| DbError::query(what(), e))
}

/// On 14 and older, schema public of a new database belongs to whoever owns
/// it in the template (the bootstrap superuser unless changed): a
/// non-superuser admin can only hand it to the tenant if it owns it there.
fn schema_hint(server: &ServerInfo, e: DbError) -> DbError {
    match e {
        DbError::Query {
            operation,
            message,
            kind,
            sqlstate,
        } if !server.admin_is_superuser && sqlstate.as_deref() == Some("42501") => DbError::Query {
            operation,
            message: format!(
                "{message}; on PostgreSQL 14 and older a non-superuser admin must own schema \
                 public in template1 (as a superuser, once: ALTER SCHEMA public OWNER TO {} in \
                 database template1)",
                quote_ident(&server.admin)
            ),
            kind,
            sqlstate,
        },
        other => other,
    }
}

/// Settings that keep a statement's text out of the server log and
/// `pg_stat_statements`, for the length of one transaction. Only a superuser
/// may set them; for anyone else the statement runs as it is (documented).
const QUIET: &str = "BEGIN; \
    SET LOCAL log_statement = 'none'; \
    SET LOCAL log_min_error_statement = 'panic'; \
    SET LOCAL log_min_duration_statement = -1; \
    SET LOCAL log_min_duration_sample = -1; \
    SET LOCAL log_transaction_sample_rate = 0; \
    SET LOCAL debug_print_parse = off; \
    SET LOCAL debug_print_rewritten = off; \
    SET LOCAL debug_print_plan = off";

async fn execute(
    client: &Client,
    server: &ServerInfo,
    stmt: &Statement,
    operation: &str,
    object: &str,
) -> Result<(), DbError> {
    let what = || format!("{operation} {}", quote_ident(object));
    if !(stmt.is_secret() && server.admin_is_superuser) {
        return client
            .batch_execute(stmt.text())
            .await
            .map_err(|e| DbError::query(what(), e));
    }
    // Each part is its own round trip: the server logs a query string when it
    // receives it, so the settings must be in force before the secret arrives.
    let mut quiet = QUIET.to_owned();
    if server.has_pg_stat_statements {
        quiet.push_str("; SET LOCAL pg_stat_statements.track_utility = off");
    }
    client
        .batch_execute(&quiet)
        .await
        .map_err(|e| DbError::query(what(), e))?;
    match client.batch_execute(stmt.text()).await {
        Ok(()) => client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| DbError::query(what(), e)),
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(DbError::query(what(), e))
        }
    }
}
