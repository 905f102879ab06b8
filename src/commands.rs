//! The commands, wired together: settings, input, reconcile, output. `main`
//! only parses the command line and maps the result to an exit code.

use std::io::Write;

use tracing::{info, warn};

use crate::cli::{Cli, Command};
use crate::error::Error;
use crate::input::desired::Desired;
use crate::input::env::Env;
use crate::render::{self, Format};
use crate::settings::{self, CommandSettings, Settings};
use crate::{
    completions, exit, input::users_file, logging, reconcile, reconcile::status, sidecar::daemon,
    sidecar::probe, sidecar::wait,
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
    let settings = settings::resolve(cli, &env)?;
    for w in &settings.conn.warnings {
        warn!("{w}");
    }
    // The long-running commands read their input themselves (`wait` needs
    // none; `run` keeps going on an invalid one and reads it again on change).
    match &settings.command {
        CommandSettings::Run(run) => {
            return Ok(runtime()?.block_on(daemon::run(&settings, run)));
        }
        CommandSettings::Wait { timeout } => {
            return Ok(runtime()?.block_on(wait::command(&settings.conn, *timeout)));
        }
        _ => {}
    }
    let desired = load_input(&settings)?;
    runtime()?.block_on(dispatch(&settings, &desired))
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}

/// Reads and validates the whole users file before anything touches the
/// server.
pub fn load_input(settings: &Settings) -> Result<Desired, Error> {
    let parsed = users_file::load(&settings.users_file, &settings.conn.user)?;
    for w in &parsed.warnings {
        warn!(file = %w.origin.file.display(), line = w.origin.line, "{w}");
    }
    Ok(parsed.desired)
}

async fn dispatch(settings: &Settings, desired: &Desired) -> Result<i32, Error> {
    match settings.command {
        CommandSettings::Apply => {
            let report = reconcile::apply(&settings.conn, desired, settings.options, None).await?;
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
            let (plan, _) = reconcile::plan(&settings.conn, desired, settings.options).await?;
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
            let (client, server) = reconcile::open(&settings.conn).await?;
            let (observed, checks) =
                reconcile::observe(&client, &settings.conn, server, desired, None).await?;
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
