//! pgtenant: declarative, idempotent provisioning of tenant roles and databases
//! on a shared PostgreSQL server.
//!
//! Data flows one way, and each step is its own module:
//!
//! ```text
//! users file, flags, env  -> settings + desired   (settings, users_file, desired)
//! server catalog          -> observed             (catalog)
//! plan(desired, observed) -> Vec<Change>          (plan; pure)
//! apply(changes)          -> SQL on the server    (apply, sql)
//! ```

pub mod apply;
pub mod build_info;
pub mod catalog;
pub mod cli;
pub mod completions;
pub mod conninfo;
pub mod daemon;
pub mod db;
pub mod desired;
pub mod duration;
pub mod env;
pub mod error;
pub mod exit;
pub mod health;
pub mod logging;
pub mod metrics;
pub mod parallel;
pub mod password;
pub mod pgpass;
pub mod plan;
pub mod probe;
pub mod reconcile;
pub mod render;
pub mod run;
pub mod scram;
pub mod secret_file;
pub mod settings;
pub mod sql;
pub mod status;
pub mod tls;
pub mod users_file;
pub mod wait;
pub mod watch;
