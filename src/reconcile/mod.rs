//! One reconcile: connect, read the catalog, plan, and (for `apply`) change
//! what differs. The commands `apply`, `plan` and `status` and the long-running
//! mode all go through here.

pub(crate) mod apply;
pub(crate) mod apply_config;
pub(crate) mod change;
pub(crate) mod check;
pub mod parallel;
pub(crate) mod password;
pub(crate) mod plan;
pub(crate) mod plan_config;
pub mod scram;
pub(crate) mod status;
pub(crate) mod status_config;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_postgres::Client;
use tracing::{info, warn};

use crate::input::conninfo::ConnSettings;
use crate::input::desired::{Desired, Password};
use crate::reconcile::apply::{ApplyOptions, Outcome, TenantOutcome};
use crate::reconcile::check::{digest, CheckCache};
use crate::reconcile::password::PasswordCheck;
use crate::reconcile::plan::{Options, Plan};
use crate::server::catalog::{self, Observed, ServerInfo};
use crate::server::db::{self, DbError};

/// The result of checking every tenant's password.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checks {
    pub checks: Vec<PasswordCheck>,
    /// Roles whose password was in sync (or set by pgtenant) at the last
    /// run and was changed since by someone else, while the input kept it.
    pub overwritten: Vec<String>,
}

/// Checks every tenant's password against its stored secret, on all cores
/// and off the async runtime (so that health answers and signals are served
/// during any amount of hashing), skipping the checks the cache already
/// vouches for.
pub async fn check_passwords(
    desired: &Desired,
    observed: &Observed,
    cache: Option<&mut CheckCache>,
) -> Checks {
    let server = &observed.server;
    let inputs: Vec<(String, Option<String>, Password)> = desired
        .logins()
        .map(|(role, password)| {
            let stored = observed.roles.get(role).and_then(|r| r.password.clone());
            (role.to_owned(), stored, password.clone())
        })
        .collect();
    let cached: Vec<bool> = inputs
        .iter()
        .map(|(role, stored, pw)| match (&cache, stored) {
            (Some(c), Some(s)) => c.in_sync.contains(&CheckCache::key(role, s, pw.expose())),
            _ => false,
        })
        .collect();
    let work: Vec<(usize, String, Option<String>, Password)> = inputs
        .iter()
        .enumerate()
        .filter(|(i, _)| !cached[*i])
        .map(|(i, (r, s, p))| (i, r.clone(), s.clone(), p.clone()))
        .collect();
    let readable = server.can_read_passwords;
    let encryption = server.password_encryption;
    let cap = password::max_checked_iterations(server.scram_iterations_or_default());
    let results = tokio::task::spawn_blocking(move || {
        crate::reconcile::parallel::map(&work, |(i, role, stored, pw)| {
            let check = password::check(
                stored.as_deref(),
                readable,
                role,
                pw.expose(),
                encryption,
                cap,
            );
            (*i, check)
        })
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let mut checks = vec![PasswordCheck::InSync; inputs.len()];
    for (i, check) in results {
        checks[i] = check;
    }
    let mut overwritten = Vec::new();
    // Keep exactly the pairs in sync now: the cache stays as large as the
    // input however often passwords change.
    if let Some(c) = cache {
        let mut last = HashMap::with_capacity(inputs.len());
        for ((role, stored, pw), check) in inputs.iter().zip(&checks) {
            let Some(stored) = stored else { continue };
            let pw_digest = digest(&[role, pw.expose()]);
            let stored_digest = digest(&[role, stored]);
            match c.last.get(role) {
                Some((p, s)) if *p == pw_digest && *s != stored_digest && check.needs_set() => {
                    overwritten.push(role.clone());
                }
                _ => {}
            }
            if *check == PasswordCheck::InSync {
                last.insert(role.clone(), (pw_digest, stored_digest));
            }
        }
        c.in_sync = inputs
            .iter()
            .zip(&checks)
            .filter_map(|((role, stored, pw), check)| match (stored, check) {
                (Some(stored), PasswordCheck::InSync) => {
                    Some(CheckCache::key(role, stored, pw.expose()))
                }
                _ => None,
            })
            .collect();
        c.last = last;
    }
    Checks {
        checks,
        overwritten,
    }
}

/// An admin session with the server's facts, refusing a standby.
pub async fn open(settings: &ConnSettings) -> Result<(Client, ServerInfo), DbError> {
    let client = db::connect(settings, None).await?;
    let server = catalog::server_info(&client).await?;
    if server.in_recovery {
        return Err(DbError::Standby(settings.endpoint()));
    }
    Ok((client, server))
}

/// Reads the observed state and checks passwords. `jobs` bounds the short
/// sessions into tenant databases, as `--jobs` bounds an apply's sessions
/// (see [`crate::server::pool::short_sessions`]).
pub async fn observe(
    client: &Client,
    settings: &ConnSettings,
    server: ServerInfo,
    desired: &Desired,
    jobs: usize,
    cache: Option<&mut CheckCache>,
) -> Result<(Observed, Checks), DbError> {
    let mut observed =
        catalog::observe(client, server, &desired.roles(), &desired.databases()).await?;
    crate::server::catalog_inside::available_extensions(client, desired, &mut observed).await?;
    // Schema `public` on 14 and older, and what the config asks for inside
    // the databases: one short connection per database that needs it.
    crate::server::catalog_inside::observe(client, settings, jobs, desired, &mut observed).await?;
    // The ownership rule holds for every database of every tenant.
    let pairs: Vec<(String, String)> = desired
        .tenants
        .iter()
        .flat_map(|t| t.databases.iter().map(|d| (d.name.clone(), t.role.clone())))
        .collect();
    catalog::observe_foreign_objects(client, settings, jobs, &mut observed, &pairs).await?;
    let checks = check_passwords(desired, &observed, cache).await;
    Ok((observed, checks))
}

/// The plan `apply` would carry out now.
pub async fn plan(
    settings: &ConnSettings,
    desired: &Desired,
    options: Options,
) -> Result<(Plan, ServerInfo), DbError> {
    let (client, server) = open(settings).await?;
    let (observed, checks) = observe(
        &client,
        settings,
        server.clone(),
        desired,
        crate::server::pool::DEFAULT_JOBS,
        None,
    )
    .await?;
    Ok((
        plan::plan(desired, &observed, &checks.checks, options),
        server,
    ))
}

/// The result of one `apply`.
#[derive(Debug, Clone)]
pub struct Report {
    pub outcomes: Vec<TenantOutcome>,
    pub elapsed: Duration,
    /// Roles whose password someone else changed since the last run (see
    /// [`CheckCache`]); only known with a cache, i.e. in `run`.
    pub overwritten: Vec<String>,
    /// Objects created or altered, counting only tenants that succeeded.
    pub changes: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub tenants: usize,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub failed: usize,
}

impl Report {
    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            tenants: self.outcomes.len(),
            ..Summary::default()
        };
        for o in &self.outcomes {
            match o.outcome {
                Outcome::Created => s.created += 1,
                Outcome::Updated => s.updated += 1,
                Outcome::Unchanged => s.unchanged += 1,
                Outcome::Refused(_) | Outcome::Failed(_) => s.failed += 1,
            }
        }
        s
    }

    pub fn is_success(&self) -> bool {
        self.outcomes.iter().all(|o| o.outcome.is_ok())
    }

    /// Logs the one-line summary: `3 tenants: 1 created, 1 updated, 1 unchanged (42 ms)`.
    pub fn log_summary(&self) {
        let s = self.summary();
        let ms = self.elapsed.as_millis() as u64;
        let mut text = format!(
            "{} tenant{}: {} created, {} updated, {} unchanged",
            s.tenants,
            if s.tenants == 1 { "" } else { "s" },
            s.created,
            s.updated,
            s.unchanged
        );
        if s.failed > 0 {
            text.push_str(&format!(", {} failed", s.failed));
        }
        text.push_str(&format!(" ({ms} ms)"));
        // tracing fixes an event's level at its call site: one macro, two sites.
        macro_rules! summary {
            ($level:ident) => {
                $level!(
                    tenants = s.tenants,
                    created = s.created,
                    updated = s.updated,
                    unchanged = s.unchanged,
                    failed = s.failed,
                    duration_ms = ms,
                    "{text}"
                )
            };
        }
        if s.failed > 0 {
            summary!(warn);
        } else {
            summary!(info);
        }
    }
}

/// Reconciles once: lock, read, plan, apply. Holding the advisory lock from
/// before the catalog is read until the end means that a concurrent run sees
/// this run's result and plans nothing for it.
pub async fn apply(
    settings: &ConnSettings,
    desired: &Desired,
    options: Options,
    apply_options: ApplyOptions,
    mut cache: Option<&mut CheckCache>,
) -> Result<Report, DbError> {
    let started = Instant::now();
    let (client, server) = open(settings).await?;
    db::lock(&client).await?;
    let (observed, checks) = observe(
        &client,
        settings,
        server.clone(),
        desired,
        apply_options.jobs,
        cache.as_deref_mut(),
    )
    .await?;
    let plan = plan::plan(desired, &observed, &checks.checks, options);
    let outcomes = apply::apply(
        &client,
        settings,
        &server,
        desired,
        &plan,
        apply_options,
        cache,
    )
    .await?;
    let changed: HashSet<&str> = outcomes
        .iter()
        .filter(|o| matches!(o.outcome, Outcome::Created | Outcome::Updated))
        .map(|o| o.tenant.as_str())
        .collect();
    let changes = plan
        .changes
        .iter()
        .filter(|c| changed.contains(c.tenant.as_str()))
        .count();
    Ok(Report {
        outcomes,
        elapsed: started.elapsed(),
        overwritten: checks.overwritten,
        changes,
    })
}
