//! Connections to the server: the admin session and the short sessions into
//! tenant databases, and how their errors are described.

use std::future::Future;

use tokio::task::JoinSet;
use tokio_postgres::Client;

use crate::input::conninfo::{ConnSettings, Host};
pub use crate::server::error::describe;
use crate::server::error::ErrorKind;

/// The key of the session-level advisory lock that serializes pgtenant runs
/// against one server: the bytes of "pgtenant".
pub const ADVISORY_LOCK_KEY: i64 = 0x7067_7465_6e61_6e74;

/// How long pgtenant waits for another pgtenant run (the advisory lock)
/// before it gives up. Any role that can connect to the maintenance
/// database can take that lock too; this bounds what it can stall.
pub const ADVISORY_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// A duration as a PostgreSQL setting value in milliseconds (at least 1:
/// 0 would mean "no timeout").
fn millis(d: std::time::Duration) -> String {
    d.as_millis().clamp(1, i32::MAX as u128).to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("failed to connect to {endpoint}: {message}")]
    Connect {
        endpoint: String,
        message: String,
        kind: ErrorKind,
        sqlstate: Option<String>,
    },
    #[error("failed to {operation}: {message}")]
    Query {
        operation: String,
        message: String,
        kind: ErrorKind,
        sqlstate: Option<String>,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("server at {0} is a standby (in recovery); run pgtenant against the primary")]
    Standby(String),
}

impl DbError {
    pub fn query(operation: impl Into<String>, e: tokio_postgres::Error) -> Self {
        DbError::Query {
            operation: operation.into(),
            message: describe(&e),
            kind: ErrorKind::of(&e),
            sqlstate: e.code().map(|c| c.code().to_owned()),
        }
    }

    /// The SQLSTATE the server gave, if any.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            DbError::Connect { sqlstate, .. } | DbError::Query { sqlstate, .. } => {
                sqlstate.as_deref()
            }
            _ => None,
        }
    }

    /// The connection itself is gone (server restarted or shut down), as
    /// opposed to a statement that failed on a healthy session.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            DbError::Connect { .. } => true,
            DbError::Query { kind, .. } => kind.is_connection_lost(),
            _ => false,
        }
    }
}

fn connect_error(settings: &ConnSettings, dbname: &str, e: tokio_postgres::Error) -> DbError {
    let sqlstate = e.code().map(|c| c.code().to_owned());
    let message = describe(&e);
    let kind = ErrorKind::of(&e);
    let message = match connect_hint(settings, kind, &e) {
        Some(hint) => format!("{message}; {hint}"),
        None => message,
    };
    let endpoint = if dbname == settings.dbname {
        settings.endpoint()
    } else {
        format!("{} (database {dbname:?})", settings.endpoint())
    };
    DbError::Connect {
        endpoint,
        message,
        kind,
        sqlstate,
    }
}

/// psql's hints, for the failures people meet first: where the password
/// came from (never the value), what to set when there was none, and whether
/// the server is listening at all. Decided from the error's kind and its
/// socket error, never from message text.
fn connect_hint(
    settings: &ConnSettings,
    kind: ErrorKind,
    e: &tokio_postgres::Error,
) -> Option<String> {
    let no_password = "no password was given: set PGPASSWORD, PGPASSFILE or \
                       POSTGRES_PASSWORD[_FILE], or add it to ~/.pgpass";
    match kind {
        // The server refused the password: say whose it was.
        ErrorKind::Authentication
            if e.code() == Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD) =>
        {
            Some(match &settings.password_source {
                Some(source) => format!("the password came from {source}"),
                None => no_password.to_owned(),
            })
        }
        ErrorKind::MissingDatabase => Some(
            "pgtenant connects to the maintenance database named by --dbname or \
             PGDATABASE (default postgres)"
                .to_owned(),
        ),
        // The driver refuses to log in without a password when the server
        // asks for one ("password missing", a configuration error).
        ErrorKind::Other if e.code().is_none() && settings.password.is_none() => {
            Some(no_password.to_owned())
        }
        ErrorKind::Transient => {
            let io = crate::server::error::io_error(e)?.kind();
            let listening = matches!(
                io,
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
            );
            match (&settings.host, listening) {
                (Host::Tcp(_), true) => Some(
                    "is the server running on that host and accepting TCP/IP connections?"
                        .to_owned(),
                ),
                (Host::Socket(_), true) => Some(
                    "is the server running locally and accepting connections on that socket?"
                        .to_owned(),
                ),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Opens a session to `dbname` (the maintenance database when `None`) and
/// prepares it: empty `search_path`, standard-conforming strings.
pub async fn connect(settings: &ConnSettings, dbname: Option<&str>) -> Result<Client, DbError> {
    let mut config = settings.pg_config();
    let dbname = dbname.unwrap_or(&settings.dbname).to_owned();
    config.dbname(&dbname);
    let (client, connection) = crate::server::tls::connect(settings, config)
        .await
        .map_err(|e| connect_error(settings, &dbname, e))?;
    tokio::spawn(async move {
        // Errors surface on the client's next call; nothing to do here.
        let _ = connection.await;
    });
    client
        .batch_execute(&format!(
            "SELECT pg_catalog.set_config('search_path', '', false), \
                    pg_catalog.set_config('standard_conforming_strings', 'on', false), \
                    pg_catalog.set_config('lock_timeout', '{}', false), \
                    pg_catalog.set_config('statement_timeout', '{}', false)",
            millis(settings.timeouts.lock),
            millis(settings.timeouts.statement),
        ))
        .await
        .map_err(|e| DbError::query("prepare session", e))?;
    Ok(client)
}

/// Takes the session-level advisory lock, waiting for any other pgtenant run
/// against the same server to finish, for at most [`ADVISORY_LOCK_WAIT`]
/// (the session's `lock_timeout` is for tenants' locks, far shorter). The
/// lock outlives the transaction that takes it.
pub async fn lock(client: &Client) -> Result<(), DbError> {
    let wait = millis(ADVISORY_LOCK_WAIT);
    let sql = format!(
        "BEGIN; SET LOCAL lock_timeout = {wait}; SET LOCAL statement_timeout = {wait}; \
         SELECT pg_catalog.pg_advisory_lock({ADVISORY_LOCK_KEY}); COMMIT"
    );
    if let Err(e) = client.batch_execute(&sql).await {
        let _ = client.batch_execute("ROLLBACK").await;
        let mut err = DbError::query("take the advisory lock", e);
        if let DbError::Query {
            message, sqlstate, ..
        } = &mut err
        {
            if matches!(sqlstate.as_deref(), Some("55P03" | "57014")) {
                message.push_str(&format!(
                    "; another session held pgtenant's advisory lock for {}: see \
                     pg_locks (locktype 'advisory', objid {}) for who",
                    crate::duration::format(ADVISORY_LOCK_WAIT),
                    ADVISORY_LOCK_KEY & 0xffff_ffff
                ));
            }
        }
        return Err(err);
    }
    Ok(())
}

/// Runs `f` on a short session into each database (with the database's
/// name), at most `concurrency` (at least 1) at a time; the caller bounds it
/// by the server's free slots ([`crate::server::pool::short_sessions`]).
/// Results come back in no particular order, each with its database name.
pub async fn for_each_database<F, Fut, T>(
    settings: &ConnSettings,
    databases: Vec<String>,
    concurrency: usize,
    f: F,
) -> Vec<(String, Result<T, DbError>)>
where
    F: Fn(Client, String) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<T, DbError>> + Send + 'static,
    T: Send + 'static,
{
    let items = databases.into_iter().map(|d| (d.clone(), d)).collect();
    for_each_database_with(settings, items, concurrency, f).await
}

/// [`for_each_database`] with a value of its own for each database.
pub async fn for_each_database_with<W, F, Fut, T>(
    settings: &ConnSettings,
    databases: Vec<(String, W)>,
    concurrency: usize,
    f: F,
) -> Vec<(String, Result<T, DbError>)>
where
    W: Send + 'static,
    F: Fn(Client, W) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<T, DbError>> + Send + 'static,
    T: Send + 'static,
{
    let mut out = Vec::with_capacity(databases.len());
    let mut set = JoinSet::new();
    let mut pending = databases.into_iter();
    loop {
        while set.len() < concurrency.max(1) {
            let Some((name, want)) = pending.next() else {
                break;
            };
            let settings = settings.clone();
            let f = f.clone();
            set.spawn(async move {
                let result = match connect(&settings, Some(&name)).await {
                    Ok(client) => f(client, want).await,
                    Err(e) => Err(e),
                };
                (name, result)
            });
        }
        match set.join_next().await {
            Some(Ok(item)) => out.push(item),
            Some(Err(join)) => std::panic::resume_unwind(join.into_panic()),
            None => break,
        }
    }
    out
}
