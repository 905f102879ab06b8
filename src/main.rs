//! The `pgtenant` binary: parse the command line, run, map the outcome to a
//! documented exit code. Everything else lives in the library.

use clap::Parser;
use pgtenant::{cli::Cli, commands, exit, input::env::Env};

fn main() {
    let cli = Cli::parse();
    let code = match commands::run(cli, Env::from_process()) {
        Ok(code) => code,
        Err(e) => {
            e.log();
            // Logging may be filtered out (--log-level); the reason must still show.
            if e.echo_when_unlogged() && !tracing::enabled!(tracing::Level::ERROR) {
                eprintln!("pgtenant: {e}");
            }
            e.exit_code()
        }
    };
    debug_assert!([
        exit::SUCCESS,
        exit::FAILURE,
        exit::INVALID_INPUT,
        exit::CHANGES_PENDING
    ]
    .contains(&code));
    std::process::exit(code);
}
