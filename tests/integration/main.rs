//! The integration test binary: one crate, so the support code is compiled
//! once and cargo runs every module's tests in parallel in one process.

mod apply;
mod fixture;
mod output;
mod privilege;
mod run;
mod support;
mod tls;
mod versions;
