//! The commands, wired together: settings, input, reconcile, output. This
//! and `main` are the only places that pick an exit code.

use std::io::Write;

use tracing::info;

use crate::cli::Cli;
use crate::error::Error;
use crate::input::env::Env;
use crate::input::{self, Input, LoadError};
use crate::render::{self, Format};
use crate::settings::{self, CommandSettings, Settings};
use crate::{exit, logging, reconcile, reconcile::status, sidecar::daemon, sidecar::wait};

/// Runs one command to completion and returns the exit code it earned.
pub fn run(cli: Cli, env: Env) -> Result<i32, Error> {
    logging::init(cli.global.log_format, cli.global.log_level);
    // Needs neither a server nor an input.
    if let crate::cli::Command::ConfigSchema = cli.command {
        print(crate::input::config::SCHEMA);
        return Ok(exit::SUCCESS);
    }
    let settings = settings::resolve(cli, env);
    // The long-running commands read their input themselves (`wait` needs
    // none; `run` keeps going on an invalid one and reads it again on change),
    // but the admin connection must resolve before they start.
    match &settings.command {
        CommandSettings::Run(run) => {
            let conn = connection(&settings)?;
            block_on(daemon::run(&settings, conn, run))??;
            return Ok(exit::SUCCESS);
        }
        CommandSettings::Wait { timeout } => {
            let conn = connection(&settings)?;
            block_on(wait::command(&conn, *timeout))??;
            return Ok(exit::SUCCESS);
        }
        _ => {}
    }
    let input = load_input(&settings)?;
    block_on(dispatch(&settings, &input))?
}

/// Runs `fut` to completion, then drops the runtime without waiting for
/// work abandoned on its blocking threads: a stop (SIGTERM) in the middle
/// of hashing passwords must not wait for the hashing to finish.
fn block_on<F: std::future::Future>(fut: F) -> Result<F::Output, Error> {
    let rt = runtime()?;
    let out = rt.block_on(fut);
    rt.shutdown_background();
    Ok(out)
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
            let rows = status::rows(desired, &observed, &checks.checks);
            let plan =
                crate::reconcile::plan::plan(desired, &observed, &checks.checks, settings.options);
            let objects = crate::reconcile::status_config::objects(desired, &plan);
            print(&match output {
                Format::Text => {
                    render::status_text(&rows)
                        + &crate::reconcile::status_config::objects_text(&objects)
                }
                Format::Json => render::status_json_with(&rows, &objects),
            });
            Ok(exit::SUCCESS)
        }
        CommandSettings::Run(_) | CommandSettings::Wait { .. } | CommandSettings::ConfigSchema => {
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
