//! Talking to PostgreSQL: connections, the advisory lock, TLS, reading the
//! catalog, and the text of every statement.

pub(crate) mod by_name;
pub(crate) mod catalog;
pub(crate) mod catalog_inside;
pub mod db;
pub mod error;
pub(crate) mod pool;
pub mod sql;
pub mod strategy;
pub mod tls;
