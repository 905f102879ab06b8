//! Waiting for the server: one probe (connect, then a query), the
//! classification of its failure as "not yet" or as a real error, the
//! backoff between probes, and the log lines, which report changes of state
//! rather than every attempt. `pgtenant wait` is this step alone; `pgtenant
//! run` goes through it at start and after losing the server.
//!
//! A successful probe leaves an open, idle [`Session`]: the long-running
//! mode keeps it to learn at once that the server went away (a restart
//! terminates it), without polling.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_postgres::Client;
use tracing::{error, info};

use crate::duration;
use crate::input::conninfo::ConnSettings;
use crate::server::db;
use crate::server::error::{io_error, ErrorKind};
use crate::sidecar::error::SidecarError;
use crate::sidecar::shutdown::Shutdown;

/// First delay after a "not yet"; doubled up to [`NOT_YET_MAX`].
pub const NOT_YET_MIN: Duration = Duration::from_millis(100);
pub const NOT_YET_MAX: Duration = Duration::from_secs(2);
/// First delay after a real error (authentication, missing database);
/// doubled up to [`REAL_ERROR_MAX`]. Long: retrying faster changes nothing
/// and would spam the server's log with failed logins.
pub const REAL_ERROR_MIN: Duration = Duration::from_secs(5);
pub const REAL_ERROR_MAX: Duration = Duration::from_secs(60);
/// While still waiting, one reminder this often.
pub const REMINDER: Duration = Duration::from_secs(30);

/// Why a probe failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    /// The server is not there yet, starting up or shutting down: retry soon.
    NotYet(String),
    /// The server answered and refused (wrong password, no such database,
    /// TLS required...): log loudly, retry slowly.
    Real(String),
}

impl ProbeError {
    pub fn reason(&self) -> &str {
        match self {
            ProbeError::NotYet(r) | ProbeError::Real(r) => r,
        }
    }
}

/// Classifies a driver error from connecting or from the probe query: the
/// kind was decided by [`ErrorKind::of`]; only the reason is worded here.
pub fn classify(e: &tokio_postgres::Error) -> ProbeError {
    let kind = ErrorKind::of(e);
    let reason = if e.code().is_none() && !e.is_closed() && kind == ErrorKind::Transient {
        io_reason(e).unwrap_or_else(|| db::describe(e))
    } else {
        db::describe(e)
    };
    if kind.is_transient() {
        ProbeError::NotYet(reason)
    } else {
        // Authentication, a missing database, TLS, configuration, protocol.
        ProbeError::Real(reason)
    }
}

/// "connection refused" rather than "Connection refused (os error 111)".
fn io_reason(e: &tokio_postgres::Error) -> Option<String> {
    io_error(e).map(|io| {
        use std::io::ErrorKind::*;
        match io.kind() {
            ConnectionRefused => "connection refused".to_owned(),
            ConnectionReset => "connection reset".to_owned(),
            NotFound => "no such socket".to_owned(),
            TimedOut => "timed out".to_owned(),
            UnexpectedEof => "connection closed".to_owned(),
            _ => {
                let text = crate::message::os_cause(&io.to_string());
                if text.is_empty() {
                    "i/o error".to_owned()
                } else {
                    text
                }
            }
        }
    })
}

/// An open, idle admin session. [`Session::closed`] resolves when the server
/// ends it (shutdown, restart, `pg_terminate_backend`) or the network drops.
pub struct Session {
    _client: Client,
    connection: JoinHandle<Result<(), tokio_postgres::Error>>,
}

impl Session {
    /// Resolves with a reason when the session is gone. Cancel-safe.
    pub async fn closed(&mut self) -> String {
        match (&mut self.connection).await {
            Ok(Ok(())) => "connection closed".to_owned(),
            Ok(Err(e)) => classify(&e).reason().to_owned(),
            Err(_) => "connection task ended".to_owned(),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// One probe: connect and run a query. The session is kept on success.
pub async fn probe(settings: &ConnSettings) -> Result<Session, ProbeError> {
    // The same connector as every other session: sslmode means the same.
    let (client, connection) = crate::server::tls::connect(settings, settings.pg_config())
        .await
        .map_err(|e| classify(&e))?;
    let connection = tokio::spawn(connection);
    client
        .batch_execute("SELECT 1")
        .await
        .map_err(|e| classify(&e))?;
    // The session is kept idle on purpose; a server-side idle timeout (14+)
    // would end it and look like a restart. Older servers lack the setting.
    let _ = client.batch_execute("SET idle_session_timeout = 0").await;
    Ok(Session {
        _client: client,
        connection,
    })
}

/// The waiting state: backoff and what was last logged.
pub struct Waiter {
    endpoint: String,
    started: Instant,
    backoff: Duration,
    last: Option<ProbeError>,
    last_log: Option<Instant>,
}

impl Waiter {
    pub fn new(endpoint: String) -> Self {
        Waiter {
            endpoint,
            started: Instant::now(),
            backoff: Duration::ZERO,
            last: None,
            last_log: None,
        }
    }

    /// Records a failed probe, logs if the state changed or a reminder is
    /// due, and returns the delay before the next probe.
    pub fn failed(&mut self, err: ProbeError) -> Duration {
        let now = Instant::now();
        let changed = self.last.as_ref() != Some(&err);
        let reminder = self
            .last_log
            .map_or(true, |at| now.duration_since(at) >= REMINDER);
        if changed || reminder {
            let waited = duration::seconds(now.duration_since(self.started));
            let first = self.last_log.is_none();
            match &err {
                ProbeError::NotYet(r) if first => {
                    info!(endpoint = %self.endpoint, reason = %r, "waiting for postgres at {}: {r}", self.endpoint)
                }
                ProbeError::NotYet(r) => {
                    info!(endpoint = %self.endpoint, reason = %r, "still waiting for postgres at {} after {waited}: {r}", self.endpoint)
                }
                ProbeError::Real(r) => {
                    error!(endpoint = %self.endpoint, reason = %r, "cannot log in to postgres at {}: {r}; retrying", self.endpoint)
                }
            }
            self.last_log = Some(now);
        }
        let (min, max) = match err {
            ProbeError::NotYet(_) => (NOT_YET_MIN, NOT_YET_MAX),
            ProbeError::Real(_) => (REAL_ERROR_MIN, REAL_ERROR_MAX),
        };
        // A change of kind restarts the backoff at that kind's own pace.
        let same_kind = matches!(
            (&self.last, &err),
            (Some(ProbeError::NotYet(_)), ProbeError::NotYet(_))
                | (Some(ProbeError::Real(_)), ProbeError::Real(_))
        );
        self.backoff = if same_kind {
            (self.backoff * 2).clamp(min, max)
        } else {
            min
        };
        self.last = Some(err);
        self.backoff
    }

    /// The credentials changed: the next probe should not wait out a long
    /// backoff earned with the old ones.
    #[cfg(test)]
    pub fn reset_backoff(&mut self) {
        self.backoff = Duration::ZERO;
        self.last = None;
    }

    /// The last failure, for readiness.
    pub fn last_error(&self) -> Option<&ProbeError> {
        self.last.as_ref()
    }

    /// Logs `postgres is up after 3.2 s`.
    pub fn up(&self) {
        let after = duration::seconds(self.started.elapsed());
        info!(endpoint = %self.endpoint, "postgres is up after {after}");
    }
}

/// `pgtenant wait [--timeout D]`: `Ok` once the server is up; an error on
/// timeout or when stopped by a signal first.
pub async fn command(
    settings: &ConnSettings,
    timeout: Option<Duration>,
) -> Result<(), SidecarError> {
    let mut shutdown = Shutdown::new().map_err(SidecarError::Signals)?;
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut waiter = Waiter::new(settings.endpoint());
    let expired = || async move {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    loop {
        let result = tokio::select! {
            biased;
            _ = shutdown.wait() => return Err(SidecarError::Stopped),
            _ = expired() => None,
            r = probe(settings) => Some(r),
        };
        let delay = match result {
            Some(Ok(_session)) => {
                waiter.up();
                return Ok(());
            }
            Some(Err(e)) => waiter.failed(e),
            None => Duration::MAX,
        };
        let timed_out = tokio::select! {
            biased;
            _ = shutdown.wait() => return Err(SidecarError::Stopped),
            _ = expired() => true,
            _ = tokio::time::sleep(delay.min(Duration::from_secs(3600))) => false,
        };
        if timed_out || delay == Duration::MAX {
            let waited = duration::format(timeout.unwrap_or_default());
            let reason = waiter
                .last_error()
                .map_or("no answer".to_owned(), |e| e.reason().to_owned());
            return Err(SidecarError::NotUp {
                endpoint: settings.endpoint(),
                waited,
                reason,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_and_restarts_on_a_change_of_kind() {
        let mut w = Waiter::new("localhost:5432".into());
        let not_yet = || ProbeError::NotYet("connection refused".into());
        let delays: Vec<Duration> = (0..7).map(|_| w.failed(not_yet())).collect();
        assert_eq!(delays[0], NOT_YET_MIN);
        assert_eq!(delays[1], NOT_YET_MIN * 2);
        assert_eq!(*delays.last().unwrap(), NOT_YET_MAX);
        assert_eq!(
            w.failed(ProbeError::Real("password authentication failed".into())),
            REAL_ERROR_MIN
        );
        assert_eq!(
            w.failed(ProbeError::Real("password authentication failed".into())),
            REAL_ERROR_MIN * 2
        );
        for _ in 0..10 {
            w.failed(ProbeError::Real("x".into()));
        }
        assert_eq!(w.failed(ProbeError::Real("x".into())), REAL_ERROR_MAX);
        assert_eq!(w.failed(not_yet()), NOT_YET_MIN);
        w.reset_backoff();
        assert!(w.last_error().is_none());
    }

    #[test]
    fn not_yet_states() {
        for code in ["57P03", "57P01", "57P02", "53300"] {
            assert!(ErrorKind::of_sqlstate(code).is_transient());
        }
        for code in ["28P01", "28000", "3D000", "42501"] {
            assert!(!ErrorKind::of_sqlstate(code).is_transient());
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn refused_is_not_yet() {
        use tokio_postgres::NoTls;
        // A port nothing listens on: bind, learn the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = tokio_postgres::Config::new()
            .host("127.0.0.1")
            .port(port)
            .user("x")
            .connect(NoTls)
            .await
            .err()
            .expect("nothing listens");
        assert_eq!(
            classify(&e),
            ProbeError::NotYet("connection refused".into())
        );
    }
}
