//! What `plan` and `status` print on stdout, as text for people or JSON for
//! scripts. The JSON shapes are documented in docs/reference.md and pinned by
//! snapshot tests.

use serde::Serialize;

use crate::reconcile::plan::{Action, Change, Plan};
use crate::reconcile::status::Row;
use crate::server::sql::quote_ident;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// `+ role "keycloak" (login, password)`, `~ role "dolibarr": password`.
pub fn change_line(change: &Change) -> String {
    let object = serde_json::to_value(change.object)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let name = quote_ident(&change.name);
    let details = change.details.join(", ");
    match change.action {
        Action::Create => format!("+ {object} {name} ({details})"),
        Action::Update => format!("~ {object} {name}: {details}"),
    }
}

pub fn plan_text(plan: &Plan, tenants: usize) -> String {
    let mut out = String::new();
    for change in &plan.changes {
        out.push_str(&change_line(change));
        out.push('\n');
    }
    for conflict in &plan.conflicts {
        out.push_str(&format!("! {}\n", conflict.reason));
    }
    if plan.changes.is_empty() {
        out.push_str(&format!(
            "No changes: {tenants} tenant{} in sync.\n",
            if tenants == 1 { "" } else { "s" }
        ));
    } else {
        let creates = plan
            .changes
            .iter()
            .filter(|c| c.action == Action::Create)
            .count();
        let updates = plan.changes.len() - creates;
        out.push_str(&format!(
            "Plan: {creates} to create, {updates} to update.\n"
        ));
    }
    out
}

#[derive(Serialize)]
struct PlanJson<'a> {
    changes: &'a [Change],
    conflicts: &'a [crate::reconcile::plan::Conflict],
    in_sync: bool,
}

pub fn plan_json(plan: &Plan) -> String {
    let doc = PlanJson {
        changes: &plan.changes,
        conflicts: &plan.conflicts,
        in_sync: plan.is_empty(),
    };
    let mut s = serde_json::to_string_pretty(&doc).expect("plan serializes");
    s.push('\n');
    s
}

pub fn status_text(rows: &[Row]) -> String {
    let header = ["ROLE", "LOGIN", "DATABASE", "OWNER", "PASSWORD", "ISOLATED"];
    let table: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                quote_ident(&r.role),
                match (r.role_state.as_str(), r.login) {
                    ("present", true) => "yes".to_owned(),
                    ("present", false) => "no".to_owned(),
                    _ => "missing".to_owned(),
                },
                if r.database_state == crate::reconcile::status::Presence::Present {
                    quote_ident(&r.database)
                } else {
                    format!("{} (missing)", quote_ident(&r.database))
                },
                r.owner.as_deref().map(quote_ident).unwrap_or("-".into()),
                r.password.to_owned(),
                if r.isolated { "yes" } else { "no" }.to_owned(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: &[&str]| {
        let mut line = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(w - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    push_row(&header);
    for row in &table {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        push_row(&cells);
    }
    if rows.is_empty() {
        out.push_str("(no tenants in the input)\n");
    }
    out
}

#[derive(Serialize)]
struct StatusJson<'a> {
    tenants: &'a [Row],
}

pub fn status_json(rows: &[Row]) -> String {
    let mut s = serde_json::to_string_pretty(&StatusJson { tenants: rows }).expect("serializes");
    s.push('\n');
    s
}
