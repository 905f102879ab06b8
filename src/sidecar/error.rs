//! How `run` and `wait` end other than by success. Mapped to exit codes by
//! [`crate::error::Error`], like every other error.

use std::net::SocketAddr;

use crate::sidecar::watch::WatchError;

#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    #[error("failed to install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error("failed to listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Watch(#[from] WatchError),
    /// `wait --timeout` ran out.
    #[error("postgres at {endpoint} is not up after {waited}: {reason}")]
    NotUp {
        endpoint: String,
        waited: String,
        reason: String,
    },
    /// `wait` was stopped by a signal before the server came up; the signal
    /// was already logged.
    #[error("stopped before postgres was up")]
    Stopped,
}
