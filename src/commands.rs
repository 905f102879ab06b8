//! The commands, wired together: settings, input, reconcile, output. This
//! and `main` are the only places that pick an exit code.

use std::io::Write;

use tracing::info;

use crate::cli::{Cli, Command, CredentialsFormat};
use crate::error::Error;
use crate::input::conninfo::Host;
use crate::input::desired::Desired;
use crate::input::env::Env;
use crate::input::{self, Input, LoadError};
use crate::outputs::credentials::{self, Address, CredentialsError};
use crate::outputs::{OutputSettings, Outputs};
use crate::render::{self, Format};
use crate::settings::{self, CommandSettings, CredentialsSettings, Settings};
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
            run.outputs.validate().map_err(Error::PgbouncerSettings)?;
            let conn = connection(&settings)?;
            block_on(daemon::run(&settings, conn, run))??;
            return Ok(exit::SUCCESS);
        }
        CommandSettings::Wait { timeout } => {
            let conn = connection(&settings)?;
            block_on(wait::command(&conn, *timeout))??;
            return Ok(exit::SUCCESS);
        }
        CommandSettings::Apply(outputs) => {
            outputs.validate().map_err(Error::PgbouncerSettings)?;
        }
        _ => {}
    }
    let input = load_input(&settings)?;
    if let CommandSettings::Credentials(c) = &settings.command {
        // From the input alone: no server, no runtime.
        print(&credentials(&input, c)?);
        return Ok(exit::SUCCESS);
    }
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
        CommandSettings::Apply(ref outputs) => {
            let report =
                reconcile::apply(conn, desired, settings.options, settings.apply, None).await?;
            report.log_summary();
            if !outputs.is_empty() {
                written(outputs, conn, desired, &report.outcomes).await?;
            }
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
                Format::Json => render::plan_json(&plan, desired.tenants.len()),
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
            let (observed, checks) = reconcile::observe(
                &client,
                conn,
                server,
                desired,
                crate::server::pool::DEFAULT_JOBS,
                None,
            )
            .await?;
            let plan =
                crate::reconcile::plan::plan(desired, &observed, &checks.checks, settings.options);
            let rows = status::rows(desired, &observed, &checks.checks, &plan);
            let objects = crate::reconcile::status_config::objects(desired, &plan);
            print(&match output {
                Format::Text => render::status_text(&rows) + &render::objects_text(&objects),
                Format::Json => render::status_json(&rows, &objects),
            });
            Ok(exit::SUCCESS)
        }
        CommandSettings::Run(_)
        | CommandSettings::Wait { .. }
        | CommandSettings::Credentials(_)
        | CommandSettings::ConfigSchema => {
            unreachable!("long-running commands are dispatched by run()")
        }
    }
}

/// `apply`'s bindings and PgBouncer auth file; a failed reload is tried
/// again twice before `apply` gives up (exit 1).
async fn written(
    outputs: &OutputSettings,
    conn: &crate::input::conninfo::ConnSettings,
    desired: &Desired,
    outcomes: &[crate::reconcile::apply::TenantOutcome],
) -> Result<(), Error> {
    let mut out = Outputs::new(outputs.clone());
    let mut ok = out.after_apply(conn, desired, outcomes, None).await;
    for _ in 0..2 {
        if !out.reload_pending() {
            break;
        }
        out.retry_due().await;
        ok = out.reload(None).await;
    }
    if ok {
        Ok(())
    } else {
        Err(Error::Outputs(
            "the server was applied, but writing the bindings or the pgbouncer auth file, or reloading pgbouncer, failed".to_owned(),
        ))
    }
}

/// `pgtenant credentials`: the input's tenants in the asked format.
fn credentials(input: &Input, c: &CredentialsSettings) -> Result<String, Error> {
    let (conn, desired) = (&input.conn, &input.desired);
    let address = Address {
        host: match &conn.host {
            Host::Tcp(name) => name.clone(),
            Host::Socket(dir) => dir.display().to_string(),
        },
        port: conn.port,
        sslmode: c.sslmode,
    };
    let bindings = credentials::bindings(desired, &address, &c.names)?;
    Ok(match c.output {
        CredentialsFormat::Uri => credentials::render_uri(&bindings),
        CredentialsFormat::Json => credentials::render_json(&bindings),
        CredentialsFormat::Env => match bindings.as_slice() {
            [one] => credentials::render_env(one)?,
            other => {
                return Err(CredentialsError::EnvNeedsOneName { count: other.len() }.into());
            }
        },
        CredentialsFormat::Kubernetes => {
            credentials::render_kubernetes(&bindings, &c.secret_name, c.namespace.as_deref())?
        }
    })
}

fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`pgtenant plan | head`) is not an error worth a panic.
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
