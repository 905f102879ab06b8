//! The in-memory cache of password checks that already matched, shared by
//! the reconcile pass (which reads it) and apply (which fills it).

use std::collections::{HashMap, HashSet};

use sha2::{Digest, Sha256};

/// Remembers, in memory only, which (role, stored secret, password) triples
/// were already found to match, so a resync in which nothing changed does not
/// recompute SCRAM keys. Only digests are kept.
///
/// It also remembers, per role, the digest of the password and of the
/// stored secret last found in sync: when the next run finds the same
/// password but another secret that does not match it, someone else
/// changed the password under pgtenant (a second sidecar with another
/// users file, a person), which is worth a warning and a metric.
///
/// An apply works in passes of `--batch-size` tenants: between
/// [`CheckCache::start`] and [`CheckCache::finish`] the checks read what the
/// previous apply left and each pass adds what it found, so that the cache
/// ends up holding exactly the pairs in sync now, across all passes.
#[derive(Default)]
pub struct CheckCache {
    pub(super) in_sync: HashSet<[u8; 32]>,
    pub(super) last: HashMap<String, ([u8; 32], [u8; 32])>,
    /// What the previous apply left, while an apply runs.
    previous: Option<Box<Previous>>,
}

type Previous = (HashSet<[u8; 32]>, HashMap<String, ([u8; 32], [u8; 32])>);

pub(super) fn digest(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

impl CheckCache {
    pub(super) fn key(role: &str, stored: &str, password: &str) -> [u8; 32] {
        digest(&[role, stored, password])
    }
    pub fn len(&self) -> usize {
        self.in_sync.len()
    }
    pub fn is_empty(&self) -> bool {
        self.in_sync.is_empty()
    }
    /// An apply begins: what is known so far is read, not extended.
    pub(super) fn start(&mut self) {
        let previous = (
            std::mem::take(&mut self.in_sync),
            std::mem::take(&mut self.last),
        );
        self.previous = Some(Box::new(previous));
    }

    /// The apply ended: forget what it did not find again.
    pub(super) fn finish(&mut self) {
        self.previous = None;
    }

    /// The apply failed part way: keep both what it found and what was
    /// known before (every entry is a pair that did match).
    pub(super) fn abandon(&mut self) {
        if let Some(previous) = self.previous.take() {
            let (in_sync, last) = *previous;
            self.in_sync.extend(in_sync);
            for (role, digests) in last {
                self.last.entry(role).or_insert(digests);
            }
        }
    }

    /// Whether the triple of `key` was found in sync before this apply.
    pub(super) fn was_in_sync(&self, key: &[u8; 32]) -> bool {
        match &self.previous {
            Some(previous) => previous.0.contains(key),
            None => self.in_sync.contains(key),
        }
    }

    /// The (password, stored secret) digests last found in sync for `role`
    /// before this apply.
    pub(super) fn last_in_sync(&self, role: &str) -> Option<&([u8; 32], [u8; 32])> {
        match &self.previous {
            Some(previous) => previous.1.get(role),
            None => self.last.get(role),
        }
    }

    /// Keeps what one pass found. Outside an apply (no [`CheckCache::start`])
    /// it replaces everything.
    pub(super) fn record(
        &mut self,
        in_sync: impl IntoIterator<Item = [u8; 32]>,
        last: HashMap<String, ([u8; 32], [u8; 32])>,
    ) {
        if self.previous.is_none() {
            self.in_sync.clear();
            self.last.clear();
        }
        self.in_sync.extend(in_sync);
        self.last.extend(last);
    }

    /// Records that `stored` is a verifier of `password` for `role`: apply
    /// just set it, so the next resync need not derive it again.
    pub fn remember(&mut self, role: &str, stored: &str, password: &str) {
        self.in_sync.insert(Self::key(role, stored, password));
        self.last.insert(
            role.to_owned(),
            (digest(&[role, password]), digest(&[role, stored])),
        );
    }
}
