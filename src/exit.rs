//! Process exit codes: the documented contract between pgtenant and whatever
//! runs it (a shell, a Kubernetes Job, a CI step).

/// Everything went as asked; for `plan --exit-code`, nothing is pending.
pub const SUCCESS: i32 = 0;
/// A runtime failure: the server was unreachable or refused a statement for
/// some tenant (the other tenants were still applied), or it is a standby.
pub const FAILURE: i32 = 1;
/// Invalid input or usage: bad flags, a bad users file, conflicting
/// variables. Nothing was changed on the server.
pub const INVALID_INPUT: i32 = 2;
/// `plan --exit-code` only: changes are pending.
pub const CHANGES_PENDING: i32 = 3;
