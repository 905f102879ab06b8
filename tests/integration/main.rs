//! The integration test binary: one crate, so the support code is compiled
//! once and cargo runs every module's tests in parallel in one process.

mod apply;
mod concurrency;
mod config;
mod connect;
mod credentials;
mod faults;
mod files;
mod fixture;
mod hostile;
mod output;
mod parallel;
mod pgbouncer;
mod privilege;
mod probe;
mod run;
mod secrecy;
mod support;
mod tls;
mod trust;
mod versions;
