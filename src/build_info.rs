//! What this binary is: version, the commit it was built from and its target
//! (set by `build.rs`). Shown by `--version`; for `pgtenant_build_info`.

/// The crate version, from Cargo.toml.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The full git commit hash, or "unknown" for a build without git metadata
/// (set `PGTENANT_GIT_COMMIT` when building from a tree without `.git`).
pub const COMMIT: &str = env!("PGTENANT_GIT_COMMIT");
/// The target triple the binary was compiled for.
pub const TARGET: &str = env!("PGTENANT_TARGET");
/// `--version`: `0.1.0 (commit 0123456789ab, x86_64-unknown-linux-gnu)`.
pub const LONG_VERSION: &str = env!("PGTENANT_LONG_VERSION");
