//! Which `CREATE DATABASE ... STRATEGY` pgtenant asks for (PostgreSQL 15 and
//! newer), and why it depends on the server's `fsync`.
//!
//! PostgreSQL 15 added two ways of copying the template:
//!
//! * `WAL_LOG` (the server's default) writes the template's blocks into the
//!   WAL, page by page. On a durable server it costs one WAL flush of a few
//!   megabytes per database, and several sessions share those flushes.
//! * `FILE_COPY` (the only way before 15) copies the files and asks for a
//!   checkpoint before and after. On a durable server the checkpoints fsync
//!   everything dirty: measured here, slower than `WAL_LOG`. With `fsync =
//!   off` a checkpoint writes to the kernel only and the copy is a plain file
//!   copy, while `WAL_LOG` still pushes every page through the WAL: there
//!   `FILE_COPY` is several times faster.
//!
//! So `auto` (the default) asks for `FILE_COPY` when the server runs with
//! `fsync = off` (throwaway and CI servers, and bulk loads) and leaves the
//! server's default otherwise. The figures behind this are in
//! docs/performance.md (`scripts/bench-first-apply`); `--create-strategy`
//! overrides it. Before 15 there is no choice: the clause is left out.

use clap::ValueEnum;

/// `--create-strategy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum StrategyChoice {
    // FILE_COPY on a server with fsync = off, the server's default (WAL_LOG)
    // otherwise. (Plain comments: doc comments here would turn `--help` into
    // the long form.)
    #[default]
    Auto,
    WalLog,
    FileCopy,
}

/// A strategy clause of `CREATE DATABASE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    WalLog,
    FileCopy,
}

impl Strategy {
    pub fn keyword(self) -> &'static str {
        match self {
            Strategy::WalLog => "WAL_LOG",
            Strategy::FileCopy => "FILE_COPY",
        }
    }
}

/// The clause to send, if any, for a server of `major` version whose `fsync`
/// is `fsync`. `None` leaves the server's default.
pub fn resolve(choice: StrategyChoice, major: u32, fsync: bool) -> Option<Strategy> {
    if major < 15 {
        return None;
    }
    match choice {
        StrategyChoice::Auto if fsync => None,
        StrategyChoice::Auto => Some(Strategy::FileCopy),
        StrategyChoice::WalLog => Some(Strategy::WalLog),
        StrategyChoice::FileCopy => Some(Strategy::FileCopy),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_follows_fsync_on_15_and_newer() {
        assert_eq!(resolve(StrategyChoice::Auto, 15, true), None);
        assert_eq!(
            resolve(StrategyChoice::Auto, 15, false),
            Some(Strategy::FileCopy)
        );
        assert_eq!(
            resolve(StrategyChoice::Auto, 18, false),
            Some(Strategy::FileCopy)
        );
    }

    #[test]
    fn explicit_choice_wins_and_is_dropped_before_15() {
        assert_eq!(
            resolve(StrategyChoice::WalLog, 16, false),
            Some(Strategy::WalLog)
        );
        assert_eq!(
            resolve(StrategyChoice::FileCopy, 16, true),
            Some(Strategy::FileCopy)
        );
        for choice in [
            StrategyChoice::Auto,
            StrategyChoice::WalLog,
            StrategyChoice::FileCopy,
        ] {
            assert_eq!(resolve(choice, 14, false), None);
            assert_eq!(resolve(choice, 13, true), None);
        }
    }
}
