//! Connections to the server: the admin session and the short sessions into
//! tenant databases, and how their errors are described.

use std::future::Future;

use tokio::task::JoinSet;
use tokio_postgres::Client;

use crate::input::conninfo::ConnSettings;
pub use crate::server::error::describe;
use crate::server::error::ErrorKind;

/// The key of the session-level advisory lock that serializes pgtenant runs
/// against one server: the bytes of "pgtenant".
pub const ADVISORY_LOCK_KEY: i64 = 0x7067_7465_6e61_6e74;

/// How many short connections into tenant databases may be open at once.
const DATABASE_CONCURRENCY: usize = 4;

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
        .batch_execute(
            "SELECT pg_catalog.set_config('search_path', '', false), \
                    pg_catalog.set_config('standard_conforming_strings', 'on', false)",
        )
        .await
        .map_err(|e| DbError::query("prepare session", e))?;
    Ok(client)
}

/// Takes the session-level advisory lock, waiting for any other pgtenant run
/// against the same server to finish.
pub async fn lock(client: &Client) -> Result<(), DbError> {
    client
        .execute(
            "SELECT pg_catalog.pg_advisory_lock($1)",
            &[&ADVISORY_LOCK_KEY],
        )
        .await
        .map_err(|e| DbError::query("take the advisory lock", e))?;
    Ok(())
}

/// Runs `f` on a short session into each database, a few at a time. Results
/// come back in no particular order, each with its database name.
pub async fn for_each_database<F, Fut, T>(
    settings: &ConnSettings,
    databases: Vec<String>,
    f: F,
) -> Vec<(String, Result<T, DbError>)>
where
    F: Fn(Client) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<T, DbError>> + Send + 'static,
    T: Send + 'static,
{
    let mut out = Vec::with_capacity(databases.len());
    let mut set = JoinSet::new();
    let mut pending = databases.into_iter();
    loop {
        while set.len() < DATABASE_CONCURRENCY {
            let Some(name) = pending.next() else { break };
            let settings = settings.clone();
            let f = f.clone();
            set.spawn(async move {
                let result = match connect(&settings, Some(&name)).await {
                    Ok(client) => f(client).await,
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
