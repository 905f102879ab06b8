//! `pgtenant run`: the long-running sidecar mode.
//!
//! This module owns the loop and its state: wait for the server, apply,
//! then keep the server in line with the input. It re-reads the input when
//! a watched file changes, re-applies at every resync to correct drift,
//! goes back to waiting when the server goes away, and stops on SIGTERM or
//! SIGINT in any state. In the spirit of a Kubernetes controller: one
//! reconcile function, an error policy (backoff, readiness), and a metrics
//! context, all reading one state that the HTTP side ([`crate::sidecar::health`])
//! shares.
//!
//! ```text
//!            +---------+  up   +----------+  done   +------+
//!  start --> | waiting | ----> | applying | ------> | idle | -- change, resync,
//!            +---------+       +----------+         +------+    retry --> applying
//!                 ^   lost connection |      lost session |
//!                 +-------------------+-------------------+
//! ```
//!
//! Stopping drops whatever future is running: a statement in flight is
//! abandoned with its connection, and the server rolls back its open
//! transaction. Every step of an apply is idempotent and the plan is
//! recomputed from the catalog each time, so a tenant left half-created
//! (role without database) is completed by the next run.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn};

use crate::duration;
use crate::input::conninfo::ConnSettings;
use crate::input::desired::Desired;
use crate::input::{self, LoadError};
use crate::reconcile::apply::Outcome;
use crate::reconcile::{self, check::CheckCache};
use crate::settings::{RunSettings, Settings};
use crate::sidecar::decide::{
    backoff, decide, probe_again_now, Applied, Event, Reload, Step, FAILURE_BACKOFF_MIN,
};
use crate::sidecar::error::SidecarError;
use crate::sidecar::health::{self, Probe};
use crate::sidecar::metrics::{Metrics, ReconcileResult};
use crate::sidecar::shutdown::Shutdown;
use crate::sidecar::wait::{self, Session, Waiter};
use crate::sidecar::watch::Watcher;

/// After the first event, re-read once no event came for this long...
const SETTLE_QUIET: Duration = Duration::from_millis(200);
/// ...or this long after the first event, whichever is first: together with
/// the apply itself this keeps "applied within 1 s of a change".
const SETTLE_MAX: Duration = Duration::from_millis(500);
/// What `/readyz` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Last {
    /// No apply finished since start or since the server came back.
    Pending(String),
    Succeeded,
    Failed(String),
}

/// The state shared between the loop and the HTTP side.
pub struct Shared {
    status: Mutex<Status>,
    metrics: Metrics,
}

struct Status {
    /// The last read of the input was invalid: why, as one line.
    input_error: Option<String>,
    last: Last,
}

impl Shared {
    fn new() -> Self {
        Shared {
            status: Mutex::new(Status {
                input_error: None,
                last: Last::Pending("waiting for postgres".to_owned()),
            }),
            metrics: Metrics::new(),
        }
    }

    fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

impl Probe for Shared {
    fn ready(&self) -> Result<(), String> {
        let status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = &status.input_error {
            return Err(format!("input invalid: {e}"));
        }
        match &status.last {
            Last::Succeeded => Ok(()),
            Last::Pending(why) => Err(format!("not yet applied: {why}")),
            Last::Failed(why) => Err(format!("last apply failed: {why}")),
        }
    }

    fn metrics(&self) -> String {
        self.metrics.encode()
    }
}

struct Daemon<'a> {
    settings: &'a Settings,
    opts: &'a RunSettings,
    shared: Arc<Shared>,
    watcher: Watcher,
    /// The input in force: the last valid one. `desired` is `None` until a
    /// valid users file was read.
    conn: ConnSettings,
    /// The credential files of the connection at start.
    started_watching: Vec<PathBuf>,
    desired: Option<Desired>,
    cache: CheckCache,
    last_failed: bool,
    failure_backoff: Duration,
}

/// Runs until SIGTERM or SIGINT. `conn` is the admin connection resolved at
/// start (it must resolve); the whole input is loaded again right after the
/// files are watched.
pub async fn run(
    settings: &Settings,
    conn: ConnSettings,
    opts: &RunSettings,
) -> Result<(), SidecarError> {
    // First, so that a signal during start-up already stops cleanly.
    let mut shutdown = Shutdown::new().map_err(SidecarError::Signals)?;
    let shared = Arc::new(Shared::new());
    let _http = match opts.listen {
        None => None,
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                let local = listener.local_addr().map_or(addr, |a| a);
                info!(listen = %local, "serving /healthz, /readyz and /metrics on http://{local}");
                Some(AbortOnDrop(tokio::spawn(health::serve(
                    listener,
                    shared.clone() as Arc<dyn Probe>,
                ))))
            }
            Err(source) => return Err(SidecarError::Listen { addr, source }),
        },
    };
    let watcher = Watcher::new()?;
    let mut daemon = Daemon {
        settings,
        opts,
        shared,
        watcher,
        started_watching: conn.watched_files.clone(),
        conn,
        desired: None,
        cache: CheckCache::default(),
        last_failed: false,
        failure_backoff: FAILURE_BACKOFF_MIN,
    };
    daemon.watch(&daemon.conn.clone());
    let users_file = &settings.sources.users_file;
    info!(
        users = %users_file.display(),
        resync_interval = %duration::format(opts.resync_interval),
        "watching {} for changes; resync every {}",
        users_file.display(),
        duration::format(opts.resync_interval)
    );
    daemon.reload();
    daemon.main_loop(&mut shutdown).await;
    info!("stopped");
    Ok(())
}

/// Aborts the HTTP task when `run` returns.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What ended an idle wait.
enum Wake {
    Stop,
    Lost(String),
    FilesChanged,
    Due,
}

impl Daemon<'_> {
    async fn main_loop(&mut self, shutdown: &mut Shutdown) {
        loop {
            let Some(mut session) = self.wait_for_server(shutdown).await else {
                return;
            };
            self.shared.metrics.set_postgres_up(true);
            let mut apply_now = true;
            let mut due = tokio::time::Instant::now() + self.opts.resync_interval;
            loop {
                if apply_now && self.desired.is_some() {
                    apply_now = false;
                    let Some(applied) = shutdown.guard(self.reconcile()).await else {
                        return;
                    };
                    let wait = match decide(Event::Applied(applied), self.last_failed) {
                        Step::RetryLater => self.next_failure_backoff(),
                        Step::WaitForServer => break,
                        _ => self.opts.resync_interval,
                    };
                    due = tokio::time::Instant::now() + wait;
                }
                let wake = tokio::select! {
                    biased;
                    _ = shutdown.wait() => Wake::Stop,
                    reason = session.closed() => Wake::Lost(reason),
                    _ = self.watcher.changed() => Wake::FilesChanged,
                    _ = tokio::time::sleep_until(due) => Wake::Due,
                };
                let event = match wake {
                    Wake::Stop => return,
                    Wake::Lost(reason) => {
                        warn!(endpoint = %self.conn.endpoint(), reason = %reason,
                            "lost the connection to postgres at {}: {reason}", self.conn.endpoint());
                        self.shared.update(|s| {
                            s.last =
                                Last::Pending(format!("lost the connection to postgres: {reason}"))
                        });
                        Event::ConnectionLost
                    }
                    Wake::FilesChanged => {
                        if shutdown
                            .guard(self.watcher.settle(SETTLE_QUIET, SETTLE_MAX))
                            .await
                            .is_none()
                        {
                            return;
                        }
                        Event::FilesChanged(self.reload())
                    }
                    Wake::Due => {
                        debug!("resync");
                        Event::ResyncDue {
                            has_input: self.desired.is_some(),
                        }
                    }
                };
                match decide(event, self.last_failed) {
                    Step::Apply => apply_now = true,
                    Step::ReloadAndApply => {
                        apply_now = true;
                        self.reload();
                        due = tokio::time::Instant::now() + self.opts.resync_interval;
                    }
                    Step::WaitForServer => break,
                    Step::Idle | Step::ResyncLater | Step::RetryLater => {}
                }
            }
            self.shared.metrics.set_postgres_up(false);
        }
    }

    /// Probes until the server is up; `None` when stopped first. File
    /// changes are still read meanwhile: new admin credentials end a long
    /// backoff earned with the old ones.
    async fn wait_for_server(&mut self, shutdown: &mut Shutdown) -> Option<Session> {
        let mut waiter = Waiter::new(self.conn.endpoint());
        loop {
            match shutdown.guard(wait::probe(&self.conn)).await? {
                Ok(session) => {
                    waiter.up();
                    return Some(session);
                }
                Err(e) => {
                    let why = format!(
                        "waiting for postgres at {}: {}",
                        self.conn.endpoint(),
                        e.reason()
                    );
                    self.shared.update(|s| s.last = Last::Pending(why));
                    let until = tokio::time::Instant::now() + waiter.failed(e);
                    loop {
                        let changed = tokio::select! {
                            biased;
                            _ = shutdown.wait() => return None,
                            _ = tokio::time::sleep_until(until) => false,
                            _ = self.watcher.changed() => true,
                        };
                        if !changed {
                            break;
                        }
                        shutdown
                            .guard(self.watcher.settle(SETTLE_QUIET, SETTLE_MAX))
                            .await?;
                        if probe_again_now(self.reload()) {
                            waiter = Waiter::new(self.conn.endpoint());
                            break;
                        }
                    }
                }
            }
        }
    }

    fn next_failure_backoff(&mut self) -> Duration {
        let (wait, next) = backoff(self.failure_backoff, self.opts.resync_interval);
        self.failure_backoff = next;
        wait
    }

    /// One apply of the input in force, recorded in the status and metrics.
    async fn reconcile(&mut self) -> Applied {
        let Some(desired) = &self.desired else {
            return Applied::Done;
        };
        let started = Instant::now();
        let result = reconcile::apply(
            &self.conn,
            desired,
            self.settings.options,
            Some(&mut self.cache),
        )
        .await;
        let elapsed = started.elapsed();
        let metrics = &self.shared.metrics;
        match result {
            Ok(report) => {
                let s = report.summary();
                let refused = report
                    .outcomes
                    .iter()
                    .filter(|o| matches!(o.outcome, Outcome::Refused(_)))
                    .count();
                if report.is_success() {
                    // A resync that changed nothing is not news.
                    if s.created + s.updated > 0 || self.last_failed {
                        report.log_summary();
                    } else {
                        debug!(
                            tenants = s.tenants,
                            duration_ms = elapsed.as_millis() as u64,
                            cached_checks = self.cache.len(),
                            "{} tenants in sync",
                            s.tenants
                        );
                    }
                    metrics.record_reconcile(ReconcileResult::Success, elapsed, Some(s), refused);
                    self.shared.update(|st| st.last = Last::Succeeded);
                    self.last_failed = false;
                    self.failure_backoff = FAILURE_BACKOFF_MIN;
                    Applied::Done
                } else {
                    report.log_summary();
                    metrics.record_reconcile(ReconcileResult::Failure, elapsed, Some(s), refused);
                    let why = format!("{} of {} tenants failed", s.failed, s.tenants);
                    self.shared.update(|st| st.last = Last::Failed(why));
                    self.last_failed = true;
                    Applied::Failed
                }
            }
            Err(e) if e.is_connection_lost() => {
                warn!(error = %e, "apply interrupted: {e}");
                metrics.record_reconcile(ReconcileResult::Error, elapsed, None, 0);
                self.shared
                    .update(|st| st.last = Last::Pending(format!("apply interrupted: {e}")));
                self.last_failed = true;
                Applied::Lost
            }
            Err(e) => {
                error!(error = %e, "apply failed: {e}");
                metrics.record_reconcile(ReconcileResult::Error, elapsed, None, 0);
                self.shared
                    .update(|st| st.last = Last::Failed(e.to_string()));
                self.last_failed = true;
                Applied::Failed
            }
        }
    }

    /// Re-reads the admin credentials and the users file. A valid input
    /// that differs from the one in force replaces it; an invalid one is
    /// logged with `file:line` and leaves the one in force alone.
    fn reload(&mut self) -> Reload {
        let input = match input::load(&self.settings.sources) {
            Ok(input) => input,
            Err(LoadError::Conn(e)) => {
                return self.invalid(&format!("admin connection settings: {e}"))
            }
            Err(LoadError::Users { error, conn }) => {
                self.watch(&conn);
                return self.invalid(&error.to_string());
            }
        };
        self.watch(&input.conn);
        let was_invalid = self
            .shared
            .status
            .lock()
            .map(|s| s.input_error.is_some())
            .unwrap_or(false);
        self.shared.update(|s| s.input_error = None);
        self.shared.metrics.set_input_valid(true);
        let credentials = input.conn != self.conn;
        let users = self.desired.as_ref() != Some(&input.desired);
        if !credentials && !users {
            if was_invalid {
                info!("input is valid again, and the same as the one in force");
            }
            return Reload::Unchanged;
        }
        for w in &input.warnings {
            w.log();
        }
        let tenants = input.desired.tenants.len();
        if credentials && self.desired.is_some() {
            info!(endpoint = %input.conn.endpoint(), "admin connection settings changed");
        }
        if users {
            info!(
                tenants,
                "read {}: {tenants} tenant{}",
                self.settings.sources.users_file.display(),
                if tenants == 1 { "" } else { "s" }
            );
        }
        self.conn = input.conn;
        self.desired = Some(input.desired);
        Reload::Changed { credentials }
    }

    fn invalid(&mut self, message: &str) -> Reload {
        for line in message.lines() {
            error!("{line}");
        }
        let kept = if self.desired.is_some() {
            "the input in force stays in force"
        } else {
            "nothing is applied"
        };
        warn!("invalid input: {kept} until a valid change");
        let count = message.lines().count();
        let first = message.lines().next().unwrap_or("invalid").to_owned();
        let summary = if count > 1 {
            format!("{first} (and {} more)", count - 1)
        } else {
            first
        };
        self.shared.update(|s| s.input_error = Some(summary));
        self.shared.metrics.set_input_valid(false);
        Reload::Invalid
    }

    /// Watches the users file and the credential files of `conn`.
    fn watch(&mut self, conn: &ConnSettings) {
        let mut files = input::watched_files(&self.settings.sources.users_file, conn);
        // The files the process started with stay watched: a credential
        // file that failed to resolve is not in `conn` but may be fixed.
        files.extend(self.started_watching.iter().cloned());
        self.watcher.watch_files(&files);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_reasons() {
        let shared = Shared::new();
        assert_eq!(
            shared.ready(),
            Err("not yet applied: waiting for postgres".to_owned())
        );
        shared.update(|s| s.last = Last::Succeeded);
        assert_eq!(shared.ready(), Ok(()));
        shared.update(|s| s.input_error = Some("/x:2: empty user name".into()));
        assert_eq!(
            shared.ready(),
            Err("input invalid: /x:2: empty user name".to_owned())
        );
        shared.update(|s| {
            s.input_error = None;
            s.last = Last::Failed("1 of 2 tenants failed".into());
        });
        assert_eq!(
            shared.ready(),
            Err("last apply failed: 1 of 2 tenants failed".to_owned())
        );
    }

    #[test]
    fn settings_comparison_sees_a_password_change() {
        let env =
            |pw: &str| crate::input::env::Env::from_pairs([("PGPASSWORD", pw), ("PGHOST", "db")]);
        use crate::input::conninfo;
        let flags = conninfo::ConnFlags::default();
        let a = conninfo::resolve(&flags, &env("one")).unwrap();
        let b = conninfo::resolve(&flags, &env("two")).unwrap();
        assert_eq!(a, a.clone());
        assert_ne!(a, b);
    }
}
