//! The commands, wired together: settings, input, reconcile, output. This
//! and `main` are the only places that pick an exit code.

use std::io::Write;

use tracing::info;

use crate::cli::{Cli, Command};
use crate::error::Error;
use crate::input::env::Env;
use crate::input::{self, Input, LoadError};
use crate::render::{self, Format};
use crate::settings::{self, CommandSettings, Settings};
use crate::{
    completions, exit, logging, reconcile, reconcile::status, sidecar::daemon, sidecar::probe,
    sidecar::wait,
};

/// Runs one command to completion and returns the exit code it earned.
pub fn run(cli: Cli, env: Env) -> Result<i32, Error> {
    // Utility commands need no settings, no input and no server.
    match &cli.command {
        Command::Probe { url, timeout } => {
            return Ok(runtime()?.block_on(probe::command(url, *timeout)));
        }
        Command::Completions { shell } => {
            completions::write(*shell, &mut std::io::stdout().lock());
            return Ok(exit::SUCCESS);
        }
        _ => {}
    }
    logging::init(cli.global.log_format, cli.global.log_level);
    let settings = settings::resolve(cli, env);
    // The long-running commands read their input themselves (`wait` needs
    // none; `run` keeps going on an invalid one and reads it again on change),
    // but the admin connection must resolve before they start.
    match &settings.command {
        CommandSettings::Run(run) => {
            let conn = connection(&settings)?;
            runtime()?.block_on(daemon::run(&settings, conn, run))?;
            return Ok(exit::SUCCESS);
        }
        CommandSettings::Wait { timeout } => {
            let conn = connection(&settings)?;
            runtime()?.block_on(wait::command(&conn, *timeout))?;
            return Ok(exit::SUCCESS);
        }
        _ => {}
    }
    let input = load_input(&settings)?;
    runtime()?.block_on(dispatch(&settings, &input))
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}

/// The admin connection alone, its warnings logged.
fn connection(settings: &Settings) -> Result<input::conninfo::ConnSettings, Error> {
    let conn = input::connection(&settings.sources)?;
    input::conn_warnings(&conn).for_each(|w| w.log());
    Ok(conn)
}

/// Reads and validates the whole input before anything touches the server;
/// logs its warnings.
fn load_input(settings: &Settings) -> Result<Input, Error> {
    match input::load(&settings.sources) {
        Ok(input) => {
            input.warnings.iter().for_each(input::Warning::log);
            Ok(input)
        }
        Err(LoadError::Conn(e)) => Err(e.into()),
        Err(LoadError::Users { error, conn }) => {
            input::conn_warnings(&conn).for_each(|w| w.log());
            Err(error.into())
        }
    }
}

async fn dispatch(settings: &Settings, input: &Input) -> Result<i32, Error> {
    let (conn, desired) = (&input.conn, &input.desired);
    match settings.command {
        CommandSettings::Apply => {
            let report = reconcile::apply(conn, desired, settings.options, None).await?;
            report.log_summary();
            let s = report.summary();
            if s.failed > 0 {
                return Err(Error::TenantsFailed {
                    failed: s.failed,
                    total: s.tenants,
                });
            }
            Ok(exit::SUCCESS)
        }
        CommandSettings::Plan { exit_code, output } => {
            let (plan, _) = reconcile::plan(conn, desired, settings.options).await?;
            let text = match output {
                Format::Text => render::plan_text(&plan, desired.tenants.len()),
                Format::Json => render::plan_json(&plan),
            };
            print(&text);
            if !plan.conflicts.is_empty() {
                return Err(Error::TenantsFailed {
                    failed: plan.conflicts.len(),
                    total: desired.tenants.len(),
                });
            }
            if exit_code && !plan.changes.is_empty() {
                info!(changes = plan.changes.len(), "changes pending");
                return Ok(exit::CHANGES_PENDING);
            }
            Ok(exit::SUCCESS)
        }
        CommandSettings::Status { output } => {
            let (client, server) = reconcile::open(conn).await?;
            let (observed, checks) =
                reconcile::observe(&client, conn, server, desired, None).await?;
            let rows = status::rows(desired, &observed, &checks);
            print(&match output {
                Format::Text => render::status_text(&rows),
                Format::Json => render::status_json(&rows),
            });
            Ok(exit::SUCCESS)
        }
        CommandSettings::Run(_) | CommandSettings::Wait { .. } => {
            unreachable!("long-running commands are dispatched by run()")
        }
    }
}

fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`pgtenant plan | head`) is not an error worth a panic.
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
