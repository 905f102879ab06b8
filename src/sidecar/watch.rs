//! Watching the input files (the users file and the admin credential files)
//! for changes, event-driven (inotify), without polling.
//!
//! This module owns which directories are watched and which events count.
//! It watches the directory that holds each file, never the file itself:
//! Kubernetes updates a Secret or ConfigMap volume by writing a new
//! `..<timestamp>` directory and renaming a `..data` symlink onto it, so a
//! watch on the file (or on the directory it resolves to) is lost at the
//! first swap, while the parent directory sees the rename of `..data`. The
//! same watch sees an in-place edit (modify, close-write) and a file
//! replaced by rename (`mv`, editors). When a file is a symlink, the
//! directory it resolves to is watched as well, so editing the target of a
//! plain symlink also counts.
//!
//! Events only say "look again": the caller waits for a quiet moment
//! ([`Watcher::settle`]), then re-reads everything and compares.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecursiveMode, Watcher as _};
use tokio::sync::Notify;
use tracing::{debug, warn};

/// The name Kubernetes swaps on a Secret or ConfigMap update.
const KUBERNETES_DATA: &str = "..data";

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("failed to start watching files: {0}")]
    Start(#[source] notify::Error),
}

pub struct Watcher {
    inner: notify::RecommendedWatcher,
    signal: Arc<Notify>,
    /// File names whose events count, shared with the event handler.
    names: Arc<Mutex<HashSet<OsString>>>,
    dirs: HashSet<PathBuf>,
}

impl Watcher {
    pub fn new() -> Result<Self, WatchError> {
        let signal = Arc::new(Notify::new());
        let names: Arc<Mutex<HashSet<OsString>>> = Arc::default();
        let (s, n) = (signal.clone(), names.clone());
        let inner = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let wake = match res {
                Ok(event) => {
                    let names = n.lock().unwrap_or_else(|e| e.into_inner());
                    relevant(&event, &names)
                }
                // A lost or overflowed queue: look again, to be safe.
                Err(_) => true,
            };
            if wake {
                // Stores a permit when nobody waits: no event is lost, and
                // a burst costs one wake-up, not a queue.
                s.notify_one();
            }
        })
        .map_err(WatchError::Start)?;
        Ok(Watcher {
            inner,
            signal,
            names,
            dirs: HashSet::new(),
        })
    }

    /// Makes the watched set exactly the directories of `files` (and of
    /// what they resolve to). Idempotent; a directory that cannot be watched
    /// (does not exist yet) is logged and tried again at the next call.
    pub fn watch_files(&mut self, files: &[PathBuf]) {
        let mut dirs = HashSet::new();
        let mut names = HashSet::new();
        names.insert(OsString::from(KUBERNETES_DATA));
        for file in files {
            for path in [Some(file.clone()), std::fs::canonicalize(file).ok()]
                .into_iter()
                .flatten()
            {
                if let (Some(dir), Some(name)) = (parent(&path), path.file_name()) {
                    dirs.insert(dir);
                    names.insert(name.to_owned());
                }
            }
        }
        *self.names.lock().unwrap_or_else(|e| e.into_inner()) = names;
        for gone in self.dirs.difference(&dirs).cloned().collect::<Vec<_>>() {
            // Fails when the kernel already dropped it (directory removed).
            let _ = self.inner.unwatch(&gone);
            self.dirs.remove(&gone);
        }
        for dir in dirs {
            if self.dirs.contains(&dir) {
                continue;
            }
            match self.inner.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    debug!(dir = %dir.display(), "watching {}", dir.display());
                    self.dirs.insert(dir);
                }
                Err(e) => {
                    warn!(dir = %dir.display(), error = %e,
                        "cannot watch {}: {e}; changes there are picked up at the next resync",
                        dir.display());
                }
            }
        }
    }

    #[cfg(test)]
    pub fn watched_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.dirs.iter().cloned().collect();
        dirs.sort();
        dirs
    }

    /// Resolves at the next relevant event (or at once if one came since the
    /// last call). Cancel-safe.
    pub async fn changed(&self) {
        self.signal.notified().await;
    }

    /// After an event: waits until `quiet` passes with no further event, or
    /// `max` since the call, so a burst (a Kubernetes swap is several
    /// events; an editor's save is several writes) is read once, complete.
    pub async fn settle(&self, quiet: Duration, max: Duration) {
        let deadline = tokio::time::Instant::now() + max;
        loop {
            let until = (tokio::time::Instant::now() + quiet).min(deadline);
            tokio::select! {
                _ = self.signal.notified() => {
                    if tokio::time::Instant::now() >= deadline {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(until) => return,
            }
        }
    }
}

fn parent(path: &Path) -> Option<PathBuf> {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Some(PathBuf::from(".")),
        Some(p) => Some(p.to_owned()),
        None => None,
    }
}

/// Whether an event may have changed a watched file's content. Opens and
/// reads (including pgtenant's own) do not; anything that writes, creates,
/// removes, renames or changes attributes of a watched name does.
fn relevant(event: &notify::Event, names: &HashSet<OsString>) -> bool {
    let writes = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    };
    writes
        && event
            .paths
            .iter()
            .any(|p| p.file_name().is_some_and(|n| names.contains(n)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind, RenameMode};

    fn event(kind: EventKind, paths: &[&str]) -> notify::Event {
        let mut e = notify::Event::new(kind);
        for p in paths {
            e = e.add_path(PathBuf::from(p));
        }
        e
    }

    #[test]
    fn which_events_count() {
        let names: HashSet<OsString> = ["db_users.secret", KUBERNETES_DATA]
            .into_iter()
            .map(OsString::from)
            .collect();
        let modify = EventKind::Modify(ModifyKind::Any);
        assert!(relevant(&event(modify, &["/s/db_users.secret"]), &names));
        assert!(relevant(
            &event(
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
                &["/s/..data_tmp", "/s/..data"]
            ),
            &names
        ));
        assert!(relevant(
            &event(
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                &["/s/db_users.secret"]
            ),
            &names
        ));
        // pgtenant's own reads.
        assert!(!relevant(
            &event(
                EventKind::Access(AccessKind::Open(AccessMode::Any)),
                &["/s/db_users.secret"]
            ),
            &names
        ));
        assert!(!relevant(
            &event(
                EventKind::Access(AccessKind::Close(AccessMode::Read)),
                &["/s/db_users.secret"]
            ),
            &names
        ));
        // Another file in the same directory.
        assert!(!relevant(
            &event(EventKind::Create(CreateKind::File), &["/s/other"]),
            &names
        ));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn sees_an_edit_and_settles() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("db_users.secret");
        std::fs::write(&file, "a:b\n").unwrap();
        let mut w = Watcher::new().unwrap();
        w.watch_files(std::slice::from_ref(&file));
        assert!(w.watched_dirs().contains(&dir.path().to_owned()));
        std::fs::write(&file, "a:c\n").unwrap();
        tokio::time::timeout(Duration::from_secs(10), w.changed())
            .await
            .expect("an edit is seen");
        w.settle(Duration::from_millis(50), Duration::from_secs(1))
            .await;
        // A read alone is not a change.
        let _ = std::fs::read(&file).unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(300), w.changed())
                .await
                .is_err(),
            "a read woke the watcher"
        );
    }
}
