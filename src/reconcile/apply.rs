//! The apply step: turns the plan's steps into SQL on the server, roles
//! first, then databases, each phase spread over a few sessions
//! ([`crate::server::pool`]). One tenant's failure is recorded and the others go on.

use std::collections::HashMap;

use tokio_postgres::Client;
use tracing::{error, info, warn};

use crate::input::conninfo::ConnSettings;
use crate::input::desired::Desired;
use crate::reconcile::apply_config::Runner;
use crate::reconcile::password;
use crate::reconcile::plan::{Action, Change, Object, PasswordReason, Plan, Step};
use crate::reconcile::CheckCache;
use crate::server::catalog::{ServerInfo, TENANT_MARKER};
use crate::server::db::{self, DbError};
use crate::server::pool::Sessions;
use crate::server::sql::{self, quote_ident, Statement};
use crate::server::strategy::{Strategy, StrategyChoice};

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
    /// Which of two outcomes of one role stands: a failure or refusal (the
    /// first one, on a tie), then a creation, then an update, then nothing.
    pub(crate) fn precedence(&self) -> u8 {
        match self {
            Outcome::Unchanged => 0,
            Outcome::Updated => 1,
            Outcome::Created => 2,
            Outcome::Refused(_) | Outcome::Failed(_) => 3,
        }
    }

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
    /// For a failure: which kind, as the metrics label it.
    pub failure: Option<FailureKind>,
}

/// Why a tenant failed, for metrics and alerts: a timeout means another
/// session (often the tenant itself) held a lock or the server was slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    LockTimeout,
    StatementTimeout,
    Other,
}

impl FailureKind {
    pub fn of(e: &DbError) -> Self {
        match e.sqlstate() {
            Some("55P03") => FailureKind::LockTimeout,
            Some("57014") => FailureKind::StatementTimeout,
            _ => FailureKind::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::LockTimeout => "lock_timeout",
            FailureKind::StatementTimeout => "statement_timeout",
            FailureKind::Other => "other",
        }
    }

    pub const ALL: [FailureKind; 3] = [
        FailureKind::LockTimeout,
        FailureKind::StatementTimeout,
        FailureKind::Other,
    ];
}

/// How an apply spreads its work: `--jobs`, `--create-strategy` and
/// `--batch-size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Sessions working at once, the admin session included (at least 1).
    pub jobs: usize,
    pub strategy: StrategyChoice,
    /// Tenants per pass (see [`crate::reconcile::apply`]), at least 1.
    pub batch: usize,
}

/// `--batch-size`'s default. An apply's memory grows with the tenants one
/// pass creates (its plan holds about 1 KB per new tenant, plus the fresh
/// verifiers): measured under an 8 MiB memory limit, a first apply of 1,000
/// new tenants in one pass peaked at 6.1 MiB RSS, and one of 2,000 was
/// killed by the OOM killer. Passes of 500 keep it bounded, for one more
/// catalog read per 500 tenants (docs/performance.md, Memory).
pub const DEFAULT_BATCH: usize = 500;

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            jobs: crate::server::pool::DEFAULT_JOBS,
            strategy: StrategyChoice::Auto,
            batch: DEFAULT_BATCH,
        }
    }
}

/// What running one change of one tenant came to.
struct ChangeResult {
    tenant: usize,
    action: Action,
    /// Why it failed, and which kind of failure; the tenant's later
    /// changes are skipped.
    failed: Option<(String, FailureKind)>,
    /// It stored this tenant's fresh verifier.
    set_verifier: bool,
}

/// What every change of one apply shares.
struct Context<'a> {
    settings: &'a ConnSettings,
    server: &'a ServerInfo,
    verifiers: &'a HashMap<String, String>,
    strategy: Option<Strategy>,
}

/// Applies `plan`. Returns one outcome per tenant of `desired`, in order,
/// unless the connection was lost, which ends the run early with an error.
///
/// The work runs in phases, each spread over the sessions of
/// [`Sessions`]: every tenant's role first (its database needs its owner),
/// then its database (created, owner, PUBLIC's privileges). A tenant whose
/// role failed is skipped in the next phase; the others go on. Per-database
/// work that needs a database to exist belongs in a later phase over the same
/// sessions.
pub async fn apply(
    client: &Client,
    settings: &ConnSettings,
    server: &ServerInfo,
    desired: &Desired,
    plan: &Plan,
    options: ApplyOptions,
    mut cache: Option<&mut CheckCache>,
) -> Result<Vec<TenantOutcome>, DbError> {
    let verifiers = make_verifiers(desired, plan, server).await?;
    // The units of work: readers and writers first (a tenant's grants name
    // them), then the tenants. Outcomes come back in this order.
    let units: Vec<(&String, &crate::input::desired::Password)> = desired
        .members
        .iter()
        .map(|m| (&m.role, &m.password))
        .chain(desired.tenants.iter().map(|t| (&t.role, &t.password)))
        .collect();
    let mut outcomes = vec![Outcome::Unchanged; units.len()];
    let mut failures: Vec<Option<FailureKind>> = vec![None; units.len()];
    // Phase 1: each unit's role and its settings, in plan order on one
    // session. Phase 2: each database (they are independent). Phase 3: what
    // goes inside each database (schemas, then extensions, then grants, in
    // plan order on one session and one connection into the database).
    let (mut roles, mut databases) = (Vec::new(), Vec::new());
    let mut inside: Vec<(usize, Vec<&Change>)> = Vec::new();
    for (i, (role, _)) in units.iter().enumerate() {
        let role = *role;
        if let Some(conflict) = plan
            .conflicts
            .iter()
            .find(|c| &c.tenant == role && c.blocking)
        {
            error!(tenant = %role, reason = conflict.reason.as_str(), "refusing to manage role {}: {}", quote_ident(role), conflict.message);
            outcomes[i] = Outcome::Refused(conflict.message.clone());
            continue;
        }
        let mut own_roles = Vec::new();
        for change in plan.changes_for(role) {
            match change.object {
                Object::Role | Object::Setting => own_roles.push(change),
                Object::Database => databases.push((i, vec![change])),
                Object::Extension | Object::Schema | Object::Grant => {
                    match inside
                        .iter_mut()
                        .find(|(j, changes)| *j == i && changes[0].database == change.database)
                    {
                        Some((_, changes)) => changes.push(change),
                        None => inside.push((i, vec![change])),
                    }
                }
            }
        }
        if !own_roles.is_empty() {
            roles.push((i, own_roles));
        }
    }

    let strategy = crate::server::strategy::resolve(options.strategy, server.major(), server.fsync);
    if options.strategy != StrategyChoice::Auto && server.major() < 15 && !databases.is_empty() {
        warn!(
            "--create-strategy is ignored: PostgreSQL {} has no choice of strategy",
            server.major()
        );
    }
    let context = Context {
        settings,
        server,
        verifiers: &verifiers,
        strategy,
    };
    let work = roles.len().max(databases.len()).max(inside.len());
    let sessions = Sessions::open(client, settings, options.jobs, work).await?;

    let results = sessions
        .map(roles, |client, (i, changes)| {
            run_changes(client, &context, i, changes)
        })
        .await?;
    for r in &results {
        if let (Some(c), true, None) = (cache.as_deref_mut(), r.set_verifier, &r.failed) {
            let (role, password) = units[r.tenant];
            if let Some(v) = verifiers.get(role) {
                // The server stores the verifier as sent: the next resync
                // finds it and needs no key derivation to trust it.
                c.remember(role, v, password.expose());
            }
        }
    }
    record(&mut outcomes, &mut failures, results);

    for phase in [databases, inside] {
        let phase: Vec<_> = phase
            .into_iter()
            .filter(|(i, _)| !matches!(outcomes[*i], Outcome::Failed(_)))
            .collect();
        let results = sessions
            .map(phase, |client, (i, changes)| {
                run_changes(client, &context, i, changes)
            })
            .await?;
        record(&mut outcomes, &mut failures, results);
    }

    Ok(units
        .iter()
        .zip(outcomes.into_iter().zip(failures))
        .map(|((role, _), (mut outcome, failure))| {
            // A conflict that leaves one object as it is: the rest was
            // applied, and the tenant still counts as not done.
            let left = plan
                .conflicts
                .iter()
                .find(|c| &c.tenant == *role && !c.blocking);
            if let (Some(conflict), true) = (left, outcome.is_ok()) {
                error!(tenant = %role, reason = conflict.reason.as_str(), "tenant {}: {}", quote_ident(role), conflict.message);
                outcome = Outcome::Refused(conflict.message.clone());
            }
            TenantOutcome {
                tenant: (*role).clone(),
                outcome,
                failure,
            }
        })
        .collect())
}

/// Folds the results of one phase into the tenants' outcomes: a failure
/// sticks, with its kind; otherwise a creation beats an update beats nothing.
fn record(
    outcomes: &mut [Outcome],
    failures: &mut [Option<FailureKind>],
    results: Vec<ChangeResult>,
) {
    for r in results {
        let (new, kind) = match (r.failed, r.action) {
            (Some((why, kind)), _) => (Outcome::Failed(why), Some(kind)),
            (None, Action::Create) => (Outcome::Created, None),
            (None, Action::Update) => (Outcome::Updated, None),
        };
        if new.precedence() > outcomes[r.tenant].precedence() {
            outcomes[r.tenant] = new;
            if kind.is_some() {
                failures[r.tenant] = kind;
            }
        }
    }
}

/// Runs the steps of `changes` (one unit's, one phase's) in order, stopping
/// at the first that fails. `Err` only when the admin's or a pool session is
/// lost; a lost connection into a tenant database is that tenant's failure.
async fn run_changes(
    client: &Client,
    context: &Context<'_>,
    unit: usize,
    changes: Vec<&Change>,
) -> Result<ChangeResult, DbError> {
    let mut result = ChangeResult {
        tenant: unit,
        action: if changes.iter().any(|c| c.action == Action::Create) {
            Action::Create
        } else {
            Action::Update
        },
        failed: None,
        set_verifier: false,
    };
    // One short connection per database this unit changes inside.
    let mut inside: HashMap<String, Client> = HashMap::new();
    'changes: for change in changes {
        for step in &change.steps {
            if let Err(e) = run_step(client, context, &change.tenant, step, &mut inside).await {
                if e.is_connection_lost() && !is_inside(step) {
                    return Err(e);
                }
                let role = &change.tenant;
                error!(tenant = %role, error = %e, "tenant {} failed: {e}", quote_ident(role));
                result.failed = Some((e.to_string(), FailureKind::of(&e)));
                break 'changes;
            }
            result.set_verifier |= set_verifier(step, context.verifiers).is_some();
        }
    }
    Ok(result)
}

/// Steps that run over a connection into a tenant database: losing it is
/// that tenant's failure, not the admin session's.
fn is_inside(step: &Step) -> bool {
    use crate::reconcile::plan_config::ConfigStep;
    match step {
        Step::Config(step) => matches!(
            **step,
            ConfigStep::CreateSchema { .. }
                | ConfigStep::AlterSchemaOwner { .. }
                | ConfigStep::CreateExtension { .. }
                | ConfigStep::UpdateExtension { .. }
                | ConfigStep::GrantMember(_)
        ),
        _ => false,
    }
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
/// cores (SCRAM's key derivation is deliberately slow), off the async
/// runtime so that health answers and signals are served meanwhile.
async fn make_verifiers(
    desired: &Desired,
    plan: &Plan,
    server: &ServerInfo,
) -> Result<HashMap<String, String>, DbError> {
    let wanted: Vec<(String, crate::input::desired::Password)> = plan
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
                .password_of(role)
                .map(|p| (role.to_owned(), p.clone()))
        })
        .collect();
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let encryption = server.password_encryption;
    let iterations = server.scram_iterations_or_default();
    let results = tokio::task::spawn_blocking(move || {
        let verifiers = crate::reconcile::parallel::map(&wanted, |(role, password)| {
            password::new_verifier(password.expose(), role, encryption, iterations)
        });
        wanted
            .into_iter()
            .map(|(role, _)| role)
            .zip(verifiers)
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    results
        .into_iter()
        .map(|(role, v)| {
            v.map(|v| (role, v))
                .map_err(|e| DbError::Unsupported(format!("failed to generate a random salt: {e}")))
        })
        .collect()
}

async fn run_step(
    client: &Client,
    context: &Context<'_>,
    tenant: &str,
    step: &Step,
    inside: &mut HashMap<String, Client>,
) -> Result<(), DbError> {
    let Context {
        settings,
        server,
        verifiers,
        strategy,
    } = *context;
    let verifier = |role: &str| verifiers.get(role).map(String::as_str).unwrap_or_default();
    match step {
        Step::Config(step) => {
            let planned = crate::reconcile::apply_config::plan(step, server, strategy);
            for e in &planned.execs {
                if let Some(role) = &e.set_role {
                    ensure_can_set_role(client, server, role).await?;
                }
                match &e.runner {
                    Runner::Admin => {
                        execute(client, server, &e.stmt, e.operation, &e.object).await?
                    }
                    Runner::AdminAsOwner { database } => {
                        as_owner(client, server, database, &e.stmt, e.operation).await?
                    }
                    Runner::Inside { database, role } => {
                        if !inside.contains_key(database) {
                            let session = db::connect(settings, Some(database)).await?;
                            inside.insert(database.clone(), session);
                        }
                        let stmt = match role {
                            Some(role) => sql::as_role(role, &e.stmt),
                            None => e.stmt.clone(),
                        };
                        execute(&inside[database], server, &stmt, e.operation, &e.object).await?;
                    }
                }
            }
            info!(tenant = %tenant, action = planned.action, "{}", planned.message);
        }
        Step::CreateRole { role } => {
            let stmt = sql::create_role(role, verifier(role));
            // The marker goes in with the role, in the same transaction
            // where the admin can make one (superuser).
            let mark = sql::mark_role(role, TENANT_MARKER);
            execute_with(client, server, &stmt, Some(&mark), "create role", role).await?;
            info!(tenant = %tenant, role = %role, action = "create_role", "created role {}", quote_ident(role));
        }
        Step::AlterRole {
            role,
            login,
            password,
            valid_until,
            connection_limit,
        } => {
            let v = password.map(|_| verifier(role));
            let fixes = sql::RoleFixes {
                login: *login,
                valid_until: *valid_until,
                connection_limit: *connection_limit,
            };
            let stmt = sql::alter_role(role, fixes, v);
            execute(client, server, &stmt, "alter role", role).await?;
            if *login {
                info!(tenant = %tenant, role = %role, action = "enable_login", "enabled login for role {}", quote_ident(role));
            }
            if *valid_until {
                info!(tenant = %tenant, role = %role, action = "reset_valid_until",
                    "role {} had expired: set VALID UNTIL 'infinity'", quote_ident(role));
            }
            if *connection_limit {
                info!(tenant = %tenant, role = %role, action = "reset_connection_limit",
                    "role {} had connection limit 0: set it to -1 (none)", quote_ident(role));
            }
            if let Some(reason) = password {
                let why = match reason {
                    PasswordReason::New | PasswordReason::Differs => "",
                    PasswordReason::Missing => " (none was set)",
                    PasswordReason::Upgrade => " (md5 upgraded to scram-sha-256)",
                    PasswordReason::Unknown => " (stored secrets are not readable)",
                    PasswordReason::Excessive => {
                        " (the stored verifier had an excessive iteration count; not checked)"
                    }
                };
                info!(tenant = %tenant, role = %role, action = "update_password", "updated password of role {}{why}", quote_ident(role));
            }
        }
        Step::CreateDatabase { database, owner } => {
            ensure_can_set_role(client, server, owner).await?;
            let stmt = sql::create_database(database, owner, strategy);
            execute(client, server, &stmt, "create database", database).await?;
            info!(tenant = %tenant, database = %database, owner = %owner, action = "create_database",
                "created database {} owned by {}", quote_ident(database), quote_ident(owner));
        }
        Step::AlterDatabaseOwner { database, owner } => {
            ensure_can_set_role(client, server, owner).await?;
            let stmt = sql::alter_database_owner(database, owner);
            execute(client, server, &stmt, "change owner of database", database).await?;
            info!(tenant = %tenant, database = %database, owner = %owner, action = "alter_database_owner",
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
                as_owner(
                    client,
                    server,
                    database,
                    &stmt,
                    "revoke privileges on database",
                )
                .await?;
            }
            info!(tenant = %tenant, database = %database, action = "revoke_public",
                "revoked {} on database {} from PUBLIC", privileges.join(", "), quote_ident(database));
        }
        Step::AlterDatabaseConnections {
            database,
            allow_connections,
            connection_limit,
        } => {
            let stmt =
                sql::alter_database_connections(database, *allow_connections, *connection_limit);
            let what = "allow connections to database";
            if server.admin_is_superuser {
                execute(client, server, &stmt, what, database).await?;
            } else {
                as_owner(client, server, database, &stmt, what).await?;
            }
            info!(tenant = %tenant, database = %database, action = "allow_connections",
                "database {} accepts connections again", quote_ident(database));
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
                info!(tenant = %tenant, database = %database, owner = %owner, action = "alter_schema_owner",
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
                info!(tenant = %tenant, database = %database, action = "revoke_schema_create",
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
        info!(tenant = %role, role = %role, action = "grant_membership",
            "granted role {} to the admin {}, which a non-superuser admin needs to give it a database",
            quote_ident(role), quote_ident(&server.admin));
    }
    Ok(())
}

/// A non-superuser admin that does not own the database runs `stmt` as its
/// owner: `REVOKE` by anyone else names them as grantor, and on 16 and
/// newer (no inherited privileges) would only warn "no privileges could be
/// revoked" and change nothing; `ALTER DATABASE` needs ownership. `SET
/// LOCAL` in the implicit transaction of one query string ends with it,
/// also on error.
async fn as_owner(
    client: &Client,
    server: &ServerInfo,
    database: &str,
    stmt: &Statement,
    operation: &str,
) -> Result<(), DbError> {
    let what = || format!("{operation} {}", quote_ident(database));
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

/// Settings that keep a statement's text out of the server log,
/// `pg_stat_statements` and `pg_stat_activity`, for the length of one
/// transaction. Only a superuser may set them; for anyone else the
/// statement runs as it is (documented in SECURITY.md).
///
/// `track_activities = off` makes the server blank the session's entry in
/// `pg_stat_activity` (state `disabled`, no query) before the secret
/// statement arrives, and keeps it blank until `COMMIT` has run: neither the
/// statement nor the `COMMIT` is ever the session's visible query.
const QUIET: &str = "BEGIN; \
    SET LOCAL track_activities = off; \
    SET LOCAL log_statement = 'none'; \
    SET LOCAL log_min_error_statement = 'panic'; \
    SET LOCAL log_min_duration_statement = -1; \
    SET LOCAL log_min_duration_sample = -1; \
    SET LOCAL log_transaction_sample_rate = 0; \
    SET LOCAL debug_print_parse = off; \
    SET LOCAL debug_print_rewritten = off; \
    SET LOCAL debug_print_plan = off";

/// Sent after a secret statement when the admin cannot hide it: the
/// session's last query (shown by `pg_stat_activity` while idle) is this,
/// not the verifier.
const OVERWRITE_LAST_QUERY: &str = "SELECT NULL";

async fn execute(
    client: &Client,
    server: &ServerInfo,
    stmt: &Statement,
    operation: &str,
    object: &str,
) -> Result<(), DbError> {
    execute_with(client, server, stmt, None, operation, object).await
}

/// Runs `stmt`, then `then` (a public statement) in the same transaction
/// when the admin can hide the secret.
async fn execute_with(
    client: &Client,
    server: &ServerInfo,
    stmt: &Statement,
    then: Option<&Statement>,
    operation: &str,
    object: &str,
) -> Result<(), DbError> {
    let what = || format!("{operation} {}", quote_ident(object));
    if !(stmt.is_secret() && server.admin_is_superuser) {
        client
            .batch_execute(stmt.text())
            .await
            .map_err(|e| DbError::query(what(), e))?;
        if let Some(then) = then {
            client
                .batch_execute(then.text())
                .await
                .map_err(|e| DbError::query(what(), e))?;
        } else if stmt.is_secret() {
            client
                .batch_execute(OVERWRITE_LAST_QUERY)
                .await
                .map_err(|e| DbError::query(what(), e))?;
        }
        return Ok(());
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
    let mut result = client.batch_execute(stmt.text()).await;
    if let (Ok(()), Some(then)) = (&result, then) {
        result = client.batch_execute(then.text()).await;
    }
    match result {
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
