//! Stopping on SIGTERM or SIGINT, for `run` and `wait` alike.

use std::future::Future;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing::info;

/// SIGTERM or SIGINT, whichever comes first. Installed before anything
/// else, so that a signal is never handled by the default action (which
/// would kill the process with no clean exit code).
pub struct Shutdown {
    term: Signal,
    int: Signal,
    received: bool,
}

impl Shutdown {
    pub fn new() -> std::io::Result<Self> {
        Ok(Shutdown {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            received: false,
        })
    }

    /// Resolves when a signal came (at once if one already did). Cancel-safe.
    pub async fn wait(&mut self) {
        if self.received {
            return;
        }
        let name = tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        };
        info!(signal = name, "received {name}, stopping");
        self.received = true;
    }

    /// Runs `fut` unless a signal comes first; `None` then, and `fut` is
    /// dropped where it stands.
    pub async fn guard<F: Future>(&mut self, fut: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            _ = self.wait() => None,
            out = fut => Some(out),
        }
    }
}
