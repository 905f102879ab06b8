//! Talking to PostgreSQL: connections, the advisory lock, TLS, reading the
//! catalog, and the text of every statement.

pub(crate) mod catalog;
pub mod db;
pub mod error;
pub mod sql;
pub mod tls;
