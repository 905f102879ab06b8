//! A snapshot of the process environment, taken once at start-up.
//!
//! Configuration is resolved in two phases: raw flags and this snapshot go in,
//! one validated settings value comes out. Nothing reads `std::env` after that,
//! and tests can resolve settings from a hand-made environment.

use std::collections::BTreeMap;
use std::ffi::OsString;

/// Environment variables by name. Values that are not UTF-8 are kept as they are
/// so that a caller can report them instead of silently dropping them.
#[derive(Clone, Default)]
pub struct Env {
    vars: BTreeMap<OsString, OsString>,
}

impl Env {
    /// Takes a snapshot of the real process environment.
    pub fn from_process() -> Self {
        Self::from_pairs(std::env::vars_os())
    }

    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The raw value, if the variable is set (even to an empty string).
    pub fn get_os(&self, name: &str) -> Option<&OsString> {
        self.vars.get(std::ffi::OsStr::new(name))
    }

    /// The value as UTF-8; `Err(())` when it is set but not valid UTF-8.
    #[allow(clippy::result_unit_err)]
    pub fn get(&self, name: &str) -> Result<Option<&str>, ()> {
        match self.get_os(name) {
            None => Ok(None),
            Some(v) => v.to_str().map(Some).ok_or(()),
        }
    }

    /// Like [`Env::get`], but an empty value counts as unset, as libpq treats most
    /// of its variables.
    #[allow(clippy::result_unit_err)]
    pub fn get_nonempty(&self, name: &str) -> Result<Option<&str>, ()> {
        Ok(self.get(name)?.filter(|v| !v.is_empty()))
    }
}

// Values may be secrets (PGPASSWORD, POSTGRES_PASSWORD): never print them.
impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.vars.keys()).finish()
    }
}
