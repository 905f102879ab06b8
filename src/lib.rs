//! pgtenant: declarative, idempotent provisioning of tenant roles and databases
//! on a shared PostgreSQL server.
//!
//! Data flows one way, and each stage is its own folder:
//!
//! ```text
//! users file, flags, env  -> settings + desired   (input/, settings)
//! server catalog          -> observed             (server/)
//! plan(desired, observed) -> Vec<Change>          (reconcile/plan; pure)
//! apply(changes)          -> SQL on the server    (reconcile/apply, server/sql)
//! run, wait               -> the sidecar loop     (sidecar/)
//! ```

pub mod build_info;
pub mod cli;
pub mod commands;
pub(crate) mod completions;
pub(crate) mod duration;
pub(crate) mod error;
pub mod exit;
pub mod input;
pub(crate) mod logging;
pub mod reconcile;
pub(crate) mod render;
pub mod server;
pub(crate) mod settings;
pub(crate) mod sidecar;
