//! One reconcile: connect, read the catalog, plan, and (for `apply`) change
//! what differs. The commands `apply`, `plan` and `status` and the long-running
//! mode all go through here.

pub(crate) mod apply;
pub(crate) mod check;
pub mod parallel;
pub(crate) mod password;
pub(crate) mod plan;
pub mod scram;
pub(crate) mod status;

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_postgres::Client;
use tracing::{info, warn};

use crate::input::conninfo::ConnSettings;
use crate::input::desired::Desired;
use crate::reconcile::apply::{Outcome, TenantOutcome};
use crate::reconcile::check::CheckCache;
use crate::reconcile::password::PasswordCheck;
use crate::reconcile::plan::{Options, Plan};
use crate::server::catalog::{self, Observed, ServerInfo};
use crate::server::db::{self, DbError};

/// Checks every tenant's password against its stored secret, on all cores,
/// skipping the checks the cache already vouches for.
pub fn check_passwords(
    desired: &Desired,
    observed: &Observed,
    cache: Option<&mut CheckCache>,
) -> Vec<PasswordCheck> {
    let server = &observed.server;
    let inputs: Vec<(&str, Option<&str>, &str)> = desired
        .tenants
        .iter()
        .map(|t| {
            let stored = observed
                .roles
                .get(&t.role)
                .and_then(|r| r.password.as_deref());
            (t.role.as_str(), stored, t.password.expose())
        })
        .collect();
    let cached: Vec<bool> = inputs
        .iter()
        .map(|(role, stored, pw)| match (&cache, stored) {
            (Some(c), Some(s)) => c.in_sync.contains(&CheckCache::key(role, s, pw)),
            _ => false,
        })
        .collect();
    let work: Vec<usize> = (0..inputs.len()).filter(|&i| !cached[i]).collect();
    let results = crate::reconcile::parallel::map(&work, |&i| {
        let (role, stored, pw) = inputs[i];
        password::check(
            stored,
            server.can_read_passwords,
            role,
            pw,
            server.password_encryption,
        )
    });
    let mut checks = vec![PasswordCheck::InSync; inputs.len()];
    for (i, check) in work.into_iter().zip(results) {
        checks[i] = check;
    }
    // Keep exactly the pairs in sync now: the cache stays as large as the
    // input however often passwords change.
    if let Some(c) = cache {
        c.in_sync = inputs
            .iter()
            .zip(&checks)
            .filter_map(|((role, stored, pw), check)| match (stored, check) {
                (Some(stored), PasswordCheck::InSync) => Some(CheckCache::key(role, stored, pw)),
                _ => None,
            })
            .collect();
    }
    checks
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

/// Reads the observed state and checks passwords.
pub async fn observe(
    client: &Client,
    settings: &ConnSettings,
    server: ServerInfo,
    desired: &Desired,
    cache: Option<&mut CheckCache>,
) -> Result<(Observed, Vec<PasswordCheck>), DbError> {
    let mut observed =
        catalog::observe(client, server, &desired.roles(), &desired.databases()).await?;
    catalog::observe_public_schemas(settings, &mut observed).await?;
    let checks = check_passwords(desired, &observed, cache);
    Ok((observed, checks))
}

/// The plan `apply` would carry out now.
pub async fn plan(
    settings: &ConnSettings,
    desired: &Desired,
    options: Options,
) -> Result<(Plan, ServerInfo), DbError> {
    let (client, server) = open(settings).await?;
    let (observed, checks) = observe(&client, settings, server.clone(), desired, None).await?;
    Ok((plan::plan(desired, &observed, &checks, options), server))
}

/// The result of one `apply`.
#[derive(Debug, Clone)]
pub struct Report {
    pub outcomes: Vec<TenantOutcome>,
    pub elapsed: Duration,
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
        cache.as_deref_mut(),
    )
    .await?;
    let plan = plan::plan(desired, &observed, &checks, options);
    let outcomes = apply::apply(&client, settings, &server, desired, &plan, cache).await?;
    Ok(Report {
        outcomes,
        elapsed: started.elapsed(),
    })
}
