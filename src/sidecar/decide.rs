//! The decisions of `pgtenant run`, apart from any I/O: what the loop does
//! after an apply, a file change, a resync tick or a lost connection, and how
//! long it backs off after a failure. [`crate::sidecar::daemon`] gathers the
//! events and carries the steps out; the rules live here, with their tests.

use std::time::Duration;

/// Retry delay after a failed apply, doubled up to the resync interval (and
/// at most [`FAILURE_BACKOFF_MAX`]).
pub(crate) const FAILURE_BACKOFF_MIN: Duration = Duration::from_secs(5);
pub(crate) const FAILURE_BACKOFF_MAX: Duration = Duration::from_secs(300);

/// How a re-read of the input turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reload {
    Unchanged,
    Changed { credentials: bool },
    Invalid,
}

/// How one reconcile ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    Done,
    Failed,
    /// The server went away; wait for it again.
    Lost,
}

/// What happened, while connected to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// An apply of the input in force ended.
    Applied(Applied),
    /// A watched file changed (and settled); the input was read again.
    FilesChanged(Reload),
    /// The resync interval is over. `has_input`: a valid input is in force.
    ResyncDue { has_input: bool },
    /// The admin session ended (server restarted, network dropped).
    ConnectionLost,
}

/// What the loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Apply the input in force now.
    Apply,
    /// Nothing to do until the next event; the next resync stays as it was.
    Idle,
    /// Apply again after the resync interval.
    ResyncLater,
    /// Apply again after the failure backoff ([`backoff`]).
    RetryLater,
    /// No valid input yet: read it again (a directory that could not be
    /// watched is retried this way), apply if it is valid now, and look again
    /// after the resync interval.
    ReloadAndApply,
    /// Go back to waiting for the server.
    WaitForServer,
}

/// The rules. `last_failed`: the last apply did not succeed, so even an
/// unchanged input is applied again when a file changes (the change may be
/// what the failure needed, such as a fixed credential file).
pub(crate) fn decide(event: Event, last_failed: bool) -> Step {
    match event {
        Event::Applied(Applied::Done) => Step::ResyncLater,
        Event::Applied(Applied::Failed) => Step::RetryLater,
        Event::Applied(Applied::Lost) | Event::ConnectionLost => Step::WaitForServer,
        Event::FilesChanged(Reload::Changed { .. }) => Step::Apply,
        Event::FilesChanged(Reload::Unchanged) if last_failed => Step::Apply,
        Event::FilesChanged(Reload::Unchanged | Reload::Invalid) => Step::Idle,
        Event::ResyncDue { has_input: true } => Step::Apply,
        Event::ResyncDue { has_input: false } => Step::ReloadAndApply,
    }
}

/// The wait before retrying a failed apply, and the one after that:
/// doubling from [`FAILURE_BACKOFF_MIN`], capped by the resync interval and
/// [`FAILURE_BACKOFF_MAX`]. A success starts again from the minimum.
pub(crate) fn backoff(current: Duration, resync_interval: Duration) -> (Duration, Duration) {
    let cap = FAILURE_BACKOFF_MAX.min(resync_interval);
    (current.min(cap), (current * 2).min(cap))
}

/// While waiting for the server: a file change that brought new admin
/// credentials ends a long backoff earned with the old ones.
pub(crate) fn probe_again_now(reload: Reload) -> bool {
    matches!(reload, Reload::Changed { credentials: true })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_an_apply() {
        assert_eq!(
            decide(Event::Applied(Applied::Done), false),
            Step::ResyncLater
        );
        assert_eq!(
            decide(Event::Applied(Applied::Failed), true),
            Step::RetryLater
        );
        assert_eq!(
            decide(Event::Applied(Applied::Lost), true),
            Step::WaitForServer
        );
    }

    #[test]
    fn on_a_file_change() {
        let changed = Event::FilesChanged(Reload::Changed { credentials: false });
        assert_eq!(decide(changed, false), Step::Apply);
        let unchanged = Event::FilesChanged(Reload::Unchanged);
        assert_eq!(decide(unchanged, false), Step::Idle);
        // The change may be what the failed apply needed.
        assert_eq!(decide(unchanged, true), Step::Apply);
        // An invalid input keeps the one in force, even after a failure.
        assert_eq!(
            decide(Event::FilesChanged(Reload::Invalid), true),
            Step::Idle
        );
        assert_eq!(
            decide(Event::FilesChanged(Reload::Invalid), false),
            Step::Idle
        );
    }

    #[test]
    fn on_a_resync_tick() {
        assert_eq!(
            decide(Event::ResyncDue { has_input: true }, false),
            Step::Apply
        );
        assert_eq!(
            decide(Event::ResyncDue { has_input: true }, true),
            Step::Apply
        );
        assert_eq!(
            decide(Event::ResyncDue { has_input: false }, false),
            Step::ReloadAndApply
        );
    }

    #[test]
    fn on_a_lost_connection() {
        assert_eq!(decide(Event::ConnectionLost, false), Step::WaitForServer);
        assert_eq!(decide(Event::ConnectionLost, true), Step::WaitForServer);
    }

    #[test]
    fn failure_backoff_doubles_up_to_its_caps() {
        let hour = Duration::from_secs(3600);
        let mut current = FAILURE_BACKOFF_MIN;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let (wait, next) = backoff(current, hour);
            waits.push(wait.as_secs());
            current = next;
        }
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300]);
        // Never longer than the resync interval.
        let minute = Duration::from_secs(60);
        assert_eq!(
            backoff(Duration::from_secs(40), minute),
            (Duration::from_secs(40), minute)
        );
        assert_eq!(backoff(minute, minute), (minute, minute));
    }

    #[test]
    fn new_credentials_end_the_waiting_backoff() {
        assert!(probe_again_now(Reload::Changed { credentials: true }));
        assert!(!probe_again_now(Reload::Changed { credentials: false }));
        assert!(!probe_again_now(Reload::Unchanged));
        assert!(!probe_again_now(Reload::Invalid));
    }
}
