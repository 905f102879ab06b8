//! What `apply` and `run` write besides the server, after each apply: the
//! bindings directory ([`crate::bindings_dir`]) and PgBouncer's auth file
//! with its reload ([`crate::pgbouncer`]).
//!
//! This module owns when they are written and what happens when that
//! fails: a failed write is logged and counted and does not fail the apply
//! (the server is as the input asks); a failed reload is logged, counted,
//! and retried with a backoff until it succeeds.

use std::path::PathBuf;
use std::time::Duration;

use tracing::{debug, error, info, warn};

pub mod atomic_file;
pub mod bindings_dir;
pub mod credentials;
pub mod pgbouncer;

/// Where outcomes are counted (`/metrics` in `run`): the sidecar implements
/// it, so that this module does not depend on the sidecar.
pub trait Recorder {
    fn pgbouncer_reload(&self, success: bool);
    /// `output` is `bindings` or `pgbouncer_auth_file`.
    fn output_error(&self, output: &'static str);
}

type Metrics = dyn Recorder;

use crate::input::conninfo::{ConnSettings, Host, Password, SslMode};
use crate::input::desired::Desired;
use crate::reconcile::apply::TenantOutcome;
use crate::server::db;
use credentials::Address;
use pgbouncer::{Console, PgbouncerError};

/// First delay before a failed reload is tried again; doubled up to
/// [`RELOAD_RETRY_MAX`].
const RELOAD_RETRY_MIN: Duration = Duration::from_secs(1);
const RELOAD_RETRY_MAX: Duration = Duration::from_secs(60);

/// `--bindings-dir` and its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingsSettings {
    pub dir: PathBuf,
    /// `--bindings-host`, `--bindings-port`: default to the server pgtenant
    /// connects to.
    pub host: Option<String>,
    pub port: Option<u16>,
    pub sslmode: Option<SslMode>,
    pub file_mode: u32,
}

/// `--pgbouncer-auth-file`, `--pgbouncer-admin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgbouncerSettings {
    pub auth_file: PathBuf,
    pub mode: u32,
    /// The console's conninfo and the file with its password.
    pub admin: Option<(String, PathBuf)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputSettings {
    pub bindings: Option<BindingsSettings>,
    pub pgbouncer: Option<PgbouncerSettings>,
}

impl OutputSettings {
    pub fn is_empty(&self) -> bool {
        self.bindings.is_none() && self.pgbouncer.is_none()
    }

    /// Checks what can be checked before anything runs: the console's
    /// conninfo and password file.
    pub fn validate(&self) -> Result<(), PgbouncerError> {
        if let Some(p) = &self.pgbouncer {
            console(p)?;
        }
        Ok(())
    }
}

fn console(p: &PgbouncerSettings) -> Result<Option<Console>, PgbouncerError> {
    match &p.admin {
        None => Ok(None),
        Some((_, file)) if file.as_os_str().is_empty() => Err(PgbouncerError::NoPasswordFile),
        Some((conninfo, file)) => {
            let password = Console::password_from_file(file)?;
            Console::new(conninfo, password).map(Some)
        }
    }
}

/// The state of the outputs across applies.
pub struct Outputs {
    settings: OutputSettings,
    /// The console passwords to try: the current one, then the one that
    /// last worked (PgBouncer knows the old one until the reload that
    /// teaches it the new one).
    last_good_console: Option<Password>,
    reload_pending: bool,
    retry_delay: Duration,
    retry_at: Option<tokio::time::Instant>,
}

impl Outputs {
    pub fn new(settings: OutputSettings) -> Self {
        Outputs {
            settings,
            last_good_console: None,
            reload_pending: false,
            retry_delay: RELOAD_RETRY_MIN,
            retry_at: None,
        }
    }

    /// Before the server is reachable: make sure the auth file exists and
    /// holds the console user's line, so that a PgBouncer starting now knows
    /// its console user. Tenants' lines already in the file are kept.
    pub fn prepare(&mut self, metrics: Option<&Metrics>) {
        let Some(p) = self.settings.pgbouncer.clone() else {
            return;
        };
        let result = console(&p).and_then(|c| {
            let kept = pgbouncer::existing_secrets(&p.auth_file, c.as_ref());
            let text = pgbouncer::content(&p.auth_file, c.as_ref(), &kept)?;
            pgbouncer::sync(&p.auth_file, &text, p.mode)
        });
        self.after_auth_file_write(&p, result, metrics);
    }

    fn after_auth_file_write(
        &mut self,
        p: &PgbouncerSettings,
        result: Result<bool, PgbouncerError>,
        metrics: Option<&Metrics>,
    ) {
        match result {
            Ok(true) => {
                info!(file = %p.auth_file.display(), "wrote the pgbouncer auth file {}", p.auth_file.display());
                if p.admin.is_some() {
                    self.reload_pending = true;
                    self.retry_delay = RELOAD_RETRY_MIN;
                    self.retry_at = None;
                }
            }
            Ok(false) => debug!("pgbouncer auth file unchanged"),
            Err(e) => {
                error!(file = %p.auth_file.display(), "failed to write the pgbouncer auth file: {e}");
                if let Some(m) = metrics {
                    m.output_error("pgbouncer_auth_file");
                }
            }
        }
    }

    /// After an apply that ran (`outcomes` of every tenant): writes the
    /// bindings of the tenants that are as the input asks, the auth file
    /// from `pg_authid`, and reloads PgBouncer when the file changed.
    /// Returns false when something failed (already logged).
    pub async fn after_apply(
        &mut self,
        conn: &ConnSettings,
        desired: &Desired,
        outcomes: &[TenantOutcome],
        metrics: Option<&Metrics>,
    ) -> bool {
        let mut ok = true;
        if let Some(b) = &self.settings.bindings {
            ok &= write_bindings(b, conn, desired, outcomes, metrics);
        }
        if let Some(p) = self.settings.pgbouncer.clone() {
            let result = auth_file_content(&p, conn, desired).await;
            let result = result.and_then(|text| pgbouncer::sync(&p.auth_file, &text, p.mode));
            ok &= result.is_ok();
            self.after_auth_file_write(&p, result, metrics);
        }
        if self.reload_pending {
            ok &= self.reload(metrics).await;
        }
        ok
    }

    /// When a failed reload is due again; never when none is owed.
    pub async fn retry_due(&self) {
        match (self.reload_pending, self.retry_at) {
            (true, Some(at)) => tokio::time::sleep_until(at).await,
            (true, None) => {}
            _ => std::future::pending().await,
        }
    }

    /// One reload attempt; on failure the next one is scheduled.
    pub async fn reload(&mut self, metrics: Option<&Metrics>) -> bool {
        let Some(p) = self.settings.pgbouncer.clone() else {
            return true;
        };
        let current = match console(&p) {
            Ok(Some(c)) => c,
            Ok(None) => {
                self.reload_pending = false;
                return true;
            }
            Err(e) => return self.reload_failed(&e.to_string(), metrics),
        };
        let mut result = current.reload().await;
        if result.is_err() {
            if let Some((conninfo, _)) = &p.admin {
                if let Some(old) = self.last_good_console.clone() {
                    if let Ok(previous) = Console::new(conninfo, old) {
                        if previous.reload().await.is_ok() {
                            result = Ok(());
                        }
                    }
                }
            }
        }
        match result {
            Ok(()) => {
                info!(endpoint = %current.endpoint, "pgbouncer at {} reloaded its auth file", current.endpoint);
                if let Some(m) = metrics {
                    m.pgbouncer_reload(true);
                }
                self.last_good_console = console_password(&p);
                self.reload_pending = false;
                self.retry_delay = RELOAD_RETRY_MIN;
                self.retry_at = None;
                true
            }
            Err(e) => {
                let why = format!("pgbouncer at {}: {e}", current.endpoint);
                self.reload_failed(&why, metrics)
            }
        }
    }

    fn reload_failed(&mut self, why: &str, metrics: Option<&Metrics>) -> bool {
        let delay = self.retry_delay;
        warn!(
            retry_in_s = delay.as_secs(),
            "pgbouncer reload failed ({why}); retrying in {} s",
            delay.as_secs()
        );
        if let Some(m) = metrics {
            m.pgbouncer_reload(false);
        }
        self.reload_pending = true;
        self.retry_at = Some(tokio::time::Instant::now() + delay);
        self.retry_delay = (delay * 2).min(RELOAD_RETRY_MAX);
        false
    }

    pub fn reload_pending(&self) -> bool {
        self.reload_pending
    }
}

fn console_password(p: &PgbouncerSettings) -> Option<Password> {
    p.admin
        .as_ref()
        .and_then(|(_, file)| Console::password_from_file(file).ok())
}

/// The address applications are given: the flags, else the server that
/// pgtenant itself connects to.
pub fn bindings_address(b: &BindingsSettings, conn: &ConnSettings) -> Address {
    Address {
        host: b.host.clone().unwrap_or_else(|| match &conn.host {
            Host::Tcp(name) => name.clone(),
            Host::Socket(dir) => dir.display().to_string(),
        }),
        port: b.port.unwrap_or(conn.port),
        sslmode: b.sslmode,
    }
}

fn write_bindings(
    b: &BindingsSettings,
    conn: &ConnSettings,
    desired: &Desired,
    outcomes: &[TenantOutcome],
    metrics: Option<&Metrics>,
) -> bool {
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.outcome.is_ok())
        .map(|o| o.tenant.clone())
        .collect();
    let all = match credentials::bindings(desired, &bindings_address(b, conn), &[]) {
        Ok(all) => all,
        Err(e) => {
            error!("bindings: {e}");
            return false;
        }
    };
    let ready: Vec<_> = all
        .into_iter()
        .filter(|b| !failed.contains(&b.name))
        .collect();
    match bindings_dir::write(&b.dir, &ready, &failed, b.file_mode) {
        Ok(w) => {
            for name in &w.updated {
                info!(application = %name, "wrote the bindings of {name:?} in {}", b.dir.display());
            }
            for name in &w.removed {
                info!(application = %name, "removed the bindings of {name:?} (no longer in the input)");
            }
            for (name, why) in &w.failed {
                error!(application = %name, "bindings of {name:?}: {why}");
                if let Some(m) = metrics {
                    m.output_error("bindings");
                }
            }
            w.failed.is_empty()
        }
        Err(e) => {
            error!("{e}");
            if let Some(m) = metrics {
                m.output_error("bindings");
            }
            false
        }
    }
}

async fn auth_file_content(
    p: &PgbouncerSettings,
    conn: &ConnSettings,
    desired: &Desired,
) -> Result<String, PgbouncerError> {
    let console = console(p)?;
    let client = db::connect(conn, None).await?;
    let secrets = pgbouncer::read_secrets(&client, &desired.roles()).await?;
    pgbouncer::content(&p.auth_file, console.as_ref(), &secrets)
}
