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
use std::sync::Arc;
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

/// What one password check reads.
struct CheckInput {
    role: String,
    stored: Option<Arc<str>>,
    password: Password,
}

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
    // One copy of what the hashing threads read, shared with them: the
    // verifiers themselves are shared with the observed state.
    let inputs: Arc<[CheckInput]> = desired
        .logins()
        .map(|(role, password)| CheckInput {
            role: role.to_owned(),
            stored: observed.roles.get(role).and_then(|r| r.password.clone()),
            password: password.clone(),
        })
        .collect();
    let work: Vec<usize> = (0..inputs.len())
        .filter(|&i| {
            let input = &inputs[i];
            match (&cache, &input.stored) {
                (Some(c), Some(s)) => {
                    !c.was_in_sync(&CheckCache::key(&input.role, s, input.password.expose()))
                }
                _ => true,
            }
        })
        .collect();
    let mut checks = vec![PasswordCheck::InSync; inputs.len()];
    // Nothing to hash (an idle resync, all in the cache): no thread at all.
    if !work.is_empty() {
        let readable = server.can_read_passwords;
        let encryption = server.password_encryption;
        let cap = password::max_checked_iterations(server.scram_iterations_or_default());
        let shared = Arc::clone(&inputs);
        let results = tokio::task::spawn_blocking(move || {
            crate::reconcile::parallel::map(&work, |&i| {
                let input = &shared[i];
                let check = password::check(
                    input.stored.as_deref(),
                    readable,
                    &input.role,
                    input.password.expose(),
                    encryption,
                    cap,
                );
                (i, check)
            })
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        for (i, check) in results {
            checks[i] = check;
        }
    }
    let mut overwritten = Vec::new();
    // Keep exactly the pairs in sync now (over all the passes of an apply):
    // the cache stays as large as the input however often passwords change.
    if let Some(c) = cache {
        let mut last = HashMap::with_capacity(inputs.len());
        for (input, check) in inputs.iter().zip(&checks) {
            let (role, pw) = (&input.role, &input.password);
            let Some(stored) = input.stored.as_deref() else {
                continue;
            };
            let pw_digest = digest(&[role, pw.expose()]);
            let stored_digest = digest(&[role, stored]);
            match c.last_in_sync(role) {
                Some((p, s)) if *p == pw_digest && *s != stored_digest && check.needs_set() => {
                    overwritten.push(role.clone());
                }
                _ => {}
            }
            if *check == PasswordCheck::InSync {
                last.insert(role.clone(), (pw_digest, stored_digest));
            }
        }
        let in_sync =
            inputs
                .iter()
                .zip(&checks)
                .filter_map(|(input, check)| match (&input.stored, check) {
                    (Some(stored), PasswordCheck::InSync) => Some(CheckCache::key(
                        &input.role,
                        stored,
                        input.password.expose(),
                    )),
                    _ => None,
                });
        c.record(in_sync, last);
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
    let pairs: Vec<(&str, &str)> = desired
        .tenants
        .iter()
        .flat_map(|t| {
            t.databases
                .iter()
                .map(|d| (d.name.as_str(), t.role.as_str()))
        })
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
///
/// The tenants go in passes of `--batch-size` (see [`Desired::batches`]):
/// each pass reads the catalog for its own tenants, plans and applies them,
/// so that memory follows the size of a pass, not of the input; an input
/// that fits in one pass goes as a whole.
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
    if let Some(c) = cache.as_deref_mut() {
        c.start();
    }
    let passes = apply_passes(
        &client,
        settings,
        &server,
        desired,
        options,
        apply_options,
        cache.as_deref_mut(),
    )
    .await;
    if let Some(c) = cache {
        match passes {
            Ok(_) => c.finish(),
            Err(_) => c.abandon(),
        }
    }
    let (outcomes, overwritten, changes) = passes?;
    Ok(Report {
        outcomes,
        elapsed: started.elapsed(),
        overwritten,
        changes,
    })
}

/// The passes of [`apply`]: outcomes (one per role, in input order: a
/// reader or writer that several passes include is reported once), roles
/// whose password someone else changed, and the number of changes made.
async fn apply_passes(
    client: &Client,
    settings: &ConnSettings,
    server: &ServerInfo,
    desired: &Desired,
    options: Options,
    apply_options: ApplyOptions,
    mut cache: Option<&mut CheckCache>,
) -> Result<(Vec<TenantOutcome>, Vec<String>, usize), DbError> {
    let mut outcomes: Vec<TenantOutcome> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut overwritten: Vec<String> = Vec::new();
    let mut changes = 0;
    for part in desired.batches(apply_options.batch) {
        let (observed, checks) = observe(
            client,
            settings,
            server.clone(),
            &part,
            apply_options.jobs,
            cache.as_deref_mut(),
        )
        .await?;
        let plan = plan::plan(&part, &observed, &checks.checks, options);
        // The catalog as read is not needed past the plan: give its memory
        // back before the apply's sessions and statements take theirs.
        drop(observed);
        let part_outcomes = apply::apply(
            client,
            settings,
            server,
            &part,
            &plan,
            apply_options,
            cache.as_deref_mut(),
        )
        .await?;
        let changed: HashSet<&str> = part_outcomes
            .iter()
            .filter(|o| matches!(o.outcome, Outcome::Created | Outcome::Updated))
            .map(|o| o.tenant.as_str())
            .collect();
        changes += plan
            .changes
            .iter()
            .filter(|c| changed.contains(c.tenant.as_str()))
            .count();
        for role in checks.overwritten {
            if !overwritten.contains(&role) {
                overwritten.push(role);
            }
        }
        for o in part_outcomes {
            match seen.get(&o.tenant) {
                Some(&i) => merge_outcome(&mut outcomes[i], o),
                None => {
                    seen.insert(o.tenant.clone(), outcomes.len());
                    outcomes.push(o);
                }
            }
        }
    }
    Ok((outcomes, overwritten, changes))
}

/// One role's outcomes from two passes, by [`Outcome::precedence`], as
/// the phases of one pass fold theirs.
fn merge_outcome(into: &mut TenantOutcome, more: TenantOutcome) {
    if more.outcome.precedence() > into.outcome.precedence() {
        *into = more;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(outcome: Outcome) -> TenantOutcome {
        TenantOutcome {
            tenant: "reader".into(),
            outcome,
            failure: None,
        }
    }

    #[test]
    fn a_role_in_two_passes_keeps_its_strongest_outcome() {
        let cases = [
            (Outcome::Created, Outcome::Unchanged, Outcome::Created),
            (Outcome::Unchanged, Outcome::Updated, Outcome::Updated),
            (Outcome::Updated, Outcome::Created, Outcome::Created),
            (
                Outcome::Failed("a".into()),
                Outcome::Failed("b".into()),
                Outcome::Failed("a".into()),
            ),
            (
                Outcome::Created,
                Outcome::Refused("r".into()),
                Outcome::Refused("r".into()),
            ),
        ];
        for (first, second, merged) in cases {
            let mut o = outcome(first);
            merge_outcome(&mut o, outcome(second));
            assert_eq!(o.outcome, merged);
        }
    }
}
