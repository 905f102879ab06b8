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
#[derive(Default)]
pub struct CheckCache {
    pub(super) in_sync: HashSet<[u8; 32]>,
    pub(super) last: HashMap<String, ([u8; 32], [u8; 32])>,
}

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
