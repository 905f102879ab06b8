//! pgtenant: declarative, idempotent provisioning of tenant roles and databases
//! on a shared PostgreSQL server. The library serves the binary, the fuzz
//! targets and the benchmark; its internals are `pub(crate)`.
//!
//! # The map
//!
//! Data flows one way, and each stage is a folder (ARCHITECTURE.md has the
//! invariants):
//!
//! ```text
//! flags, env, users file, credential files -> Input { conn, desired }  input/  (input::load)
//! server catalog                           -> Observed                 server/ (server::catalog)
//! plan(desired, observed)                  -> Plan                     reconcile/plan (pure)
//! apply(plan)                              -> SQL on the server        reconcile/apply, server/sql
//! after apply: credentials for applications -> files, PgBouncer     outputs/
//! run, wait                                -> the loop over the above  sidecar/
//! ```
//!
//! - [`input`]: everything read from outside, validated as a whole before the
//!   first connection. [`input::load`] is the one loader; nothing else reads
//!   the environment (a snapshot taken in `main`). Secrets live in
//!   [`input::secret::Password`] only.
//! - [`server`]: talking to PostgreSQL. Connections, the advisory lock, TLS,
//!   the catalog, and every statement's text with all quoting
//!   ([`server::sql`]). Driver errors are classified once, when our error is
//!   built ([`server::error::ErrorKind`]).
//! - [`reconcile`]: one pass of desired x observed -> plan -> apply, the
//!   password checks (SCRAM and md5 verifiers, never re-salted) and `status`.
//! - `outputs`: what applications and PgBouncer get: `pgtenant credentials`'
//!   formats, `--bindings-dir`, PgBouncer's auth file (verifiers copied from
//!   `pg_authid`) and its reload.
//! - `sidecar`: `pgtenant run` and `pgtenant wait`; the loop's decisions are a
//!   pure function (`sidecar::decide`); health, metrics, file watching, and
//!   `pgtenant probe` (the HTTP client of a healthcheck).
//! - At the top: the command line (`cli`, `settings`), what the binary is
//!   ([`build_info`], for `--version`), shell completions (`completions`),
//!   the dispatch
//!   ([`commands`], which with `main` alone picks exit codes), errors and
//!   exit codes (`error`, [`exit`]), logging, rendering for people and JSON,
//!   durations, and how messages are worded (`message`).
//!
//! # Where to change what
//!
//! | to add...          | change |
//! |--------------------|--------|
//! | a role property    | `input/desired.rs`, its source in `input/`, `server/catalog.rs`, `reconcile/plan.rs`, `server/sql.rs`, `reconcile/apply.rs`, `render.rs` |
//! | an input format    | a new file in `input/`, called from `input::load`; its files in `Input::watched` |
//! | a SQL statement    | `server/sql.rs` (the text and its quoting), called from `reconcile/apply.rs` |
//! | a metric           | `sidecar/metrics.rs`, recorded in `sidecar/daemon.rs`; `docs/monitoring.md` |
//! | a command          | `cli.rs`, `settings.rs`, `commands.rs`, the help snapshot, `docs/reference.md` |

pub mod build_info;
pub mod cli;
pub mod commands;
pub(crate) mod completions;
pub(crate) mod duration;
pub(crate) mod error;
pub mod exit;
pub mod input;
pub(crate) mod logging;
pub(crate) mod message;
pub(crate) mod outputs;
pub mod reconcile;
pub(crate) mod render;
pub mod server;
pub(crate) mod settings;
pub(crate) mod sidecar;
#[cfg(test)]
pub(crate) mod testutil;
