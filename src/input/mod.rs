//! Input: flags, environment and files, read and validated before anything
//! touches the server.

pub(crate) mod config;
pub mod conninfo;
pub mod desired;
pub mod env;
pub(crate) mod load;
pub(crate) mod pgpass;
pub(crate) mod secret_file;
pub(crate) mod users_dir;
pub mod users_file;
pub(crate) mod yaml;
