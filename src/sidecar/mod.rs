//! The long-running commands `run` and `wait`: the loop and its state,
//! shutdown, watching the input, and the HTTP side (health, metrics, and
//! `probe`, the client a healthcheck runs).

pub(crate) mod daemon;
pub(crate) mod decide;
pub(crate) mod error;
pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod probe;
pub(crate) mod process_metrics;
pub(crate) mod shutdown;
pub(crate) mod wait;
pub(crate) mod watch;
