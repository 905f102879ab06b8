//! Input: flags, environment and files, read and validated before anything
//! touches the server.

pub mod conninfo;
pub mod desired;
pub mod env;
pub(crate) mod pgpass;
pub(crate) mod secret_file;
pub mod users_file;
