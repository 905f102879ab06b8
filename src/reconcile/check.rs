//! The in-memory cache of password checks that already matched, shared by
//! the reconcile pass (which reads it) and apply (which fills it).

use std::collections::HashSet;

use sha2::{Digest, Sha256};

/// Remembers, in memory only, which (role, stored secret, password) triples
/// were already found to match, so a resync in which nothing changed does not
/// recompute SCRAM keys. Only digests are kept.
#[derive(Default)]
pub struct CheckCache {
    pub(super) in_sync: HashSet<[u8; 32]>,
}

impl CheckCache {
    pub(super) fn key(role: &str, stored: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [role, stored, password] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().into()
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
    }
}
