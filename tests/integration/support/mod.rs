//! Helpers shared by the integration tests.

pub mod cli;
pub mod pgbouncer;
pub mod server;

/// The first column of the first row of a query as the superuser, if any.
pub fn one(server: &server::PgServer, sql: &str) -> Option<String> {
    server
        .query(sql)
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next().flatten())
}
