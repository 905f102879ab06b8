//! Helpers shared by the integration tests: the throwaway server
//! (`server`), the one builder that runs the real binary (`pgtenant`), the
//! children it starts (`child`), and users files (`cli`).

pub mod child;
pub mod cli;
pub mod pgtenant;
pub mod server;

/// The first column of the first row of a query as the superuser, if any.
pub fn one(server: &server::PgServer, sql: &str) -> Option<String> {
    server
        .query(sql)
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next().flatten())
}
