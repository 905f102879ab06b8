//! What `plan` and `status` print on stdout, as text for people or JSON for
//! scripts. The JSON documents are a versioned contract: described by
//! `docs/schema/plan.schema.json` and `docs/schema/status.schema.json`,
//! documented in `docs/json.md`, pinned by snapshot tests, and every one
//! the test suite prints is validated against its schema.

use serde::Serialize;

use crate::reconcile::plan::{
    Action, Attribute, AttributeChange, Change, PasswordReason, Plan, Value,
};
use crate::reconcile::status::{counts, Counts, Presence, Row};
use crate::server::sql::quote_ident;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// The version of the JSON documents `plan -o json` and `status -o json`
/// print (their `format_version`), described by `docs/schema/*.schema.json`.
/// It changes only when a field changes meaning or goes away; new fields and
/// new enum values keep it.
pub const FORMAT_VERSION: u32 = 1;

/// `+ role "keycloak" (login, password)`, `~ role "dolibarr": password`.
pub fn change_line(change: &Change) -> String {
    let object = serde_json::to_value(change.object)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let name = quote_ident(&change.name);
    let details = details(&change.attributes).join(", ");
    match change.action {
        Action::Create => format!("+ {object} {name} ({details})"),
        Action::Update => format!("~ {object} {name}: {details}"),
    }
}

/// The attributes of a change as people read them: `owner "a" (was "b")`,
/// `revoke CONNECT, TEMPORARY from PUBLIC`.
fn details(attributes: &[AttributeChange]) -> Vec<String> {
    let shown = |v: &Option<Value>| match v {
        Some(Value::Text(s)) => quote_ident(s),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Int(i)) => i.to_string(),
        None => "null".to_owned(),
    };
    let was = |a: &AttributeChange| match &a.from {
        Some(_) => format!(" (was {})", shown(&a.from)),
        None => String::new(),
    };
    let mut out = Vec::new();
    let mut revoked: Vec<&str> = Vec::new();
    for a in attributes {
        if !matches!(
            a.attribute,
            Attribute::PublicConnect | Attribute::PublicTemporary
        ) && !revoked.is_empty()
        {
            out.push(format!("revoke {} from PUBLIC", revoked.join(", ")));
            revoked.clear();
        }
        match a.attribute {
            Attribute::Login => out.push("login".to_owned()),
            Attribute::Password => out.push(
                match a.reason {
                    Some(PasswordReason::Missing) => "password (none set)",
                    Some(PasswordReason::Upgrade) => "password (md5 to scram-sha-256)",
                    Some(PasswordReason::Unknown) => "password (cannot read stored secrets)",
                    Some(PasswordReason::Excessive) => {
                        "password (stored verifier has an excessive iteration count)"
                    }
                    Some(PasswordReason::New | PasswordReason::Differs) | None => "password",
                }
                .to_owned(),
            ),
            Attribute::ValidUntil => out.push("valid until infinity (expired)".to_owned()),
            Attribute::ConnectionLimit => {
                out.push(format!("connection limit {}{}", shown(&a.to), was(a)))
            }
            Attribute::AllowConnections => out.push("allow connections".to_owned()),
            Attribute::Owner => out.push(format!("owner {}{}", shown(&a.to), was(a))),
            Attribute::PublicConnect => revoked.push("CONNECT"),
            Attribute::PublicTemporary => revoked.push("TEMPORARY"),
            Attribute::PublicSchemaOwner => {
                out.push(format!("schema public owner {}{}", shown(&a.to), was(a)))
            }
            Attribute::PublicSchemaCreate => {
                out.push("revoke CREATE on schema public from PUBLIC".to_owned())
            }
        }
    }
    if !revoked.is_empty() {
        out.push(format!("revoke {} from PUBLIC", revoked.join(", ")));
    }
    out
}

pub fn plan_text(plan: &Plan, tenants: usize) -> String {
    let mut out = String::new();
    for change in &plan.changes {
        out.push_str(&change_line(change));
        out.push('\n');
    }
    for conflict in &plan.conflicts {
        out.push_str(&format!("! {}\n", conflict.message));
    }
    if plan.changes.is_empty() {
        out.push_str(&format!(
            "No changes: {tenants} tenant{} in sync.\n",
            if tenants == 1 { "" } else { "s" }
        ));
    } else {
        let s = plan_summary(plan, tenants);
        out.push_str(&format!(
            "Plan: {} to create, {} to update.\n",
            s.create, s.update
        ));
    }
    out
}

/// Counts of `plan -o json`: tenants in the input, changes by action,
/// refused tenants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PlanSummary {
    pub tenants: usize,
    pub create: usize,
    pub update: usize,
    pub conflicts: usize,
}

pub fn plan_summary(plan: &Plan, tenants: usize) -> PlanSummary {
    let create = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Create)
        .count();
    PlanSummary {
        tenants,
        create,
        update: plan.changes.len() - create,
        conflicts: plan.conflicts.len(),
    }
}

#[derive(Serialize)]
struct PlanJson<'a> {
    format_version: u32,
    in_sync: bool,
    summary: PlanSummary,
    changes: &'a [Change],
    conflicts: &'a [crate::reconcile::plan::Conflict],
}

pub fn plan_json(plan: &Plan, tenants: usize) -> String {
    let doc = PlanJson {
        format_version: FORMAT_VERSION,
        in_sync: plan.is_empty(),
        summary: plan_summary(plan, tenants),
        changes: &plan.changes,
        conflicts: &plan.conflicts,
    };
    let mut s = serde_json::to_string_pretty(&doc).expect("plan serializes");
    s.push('\n');
    s
}

pub fn status_text(rows: &[Row]) -> String {
    let header = [
        "ROLE", "LOGIN", "DATABASE", "OWNER", "PASSWORD", "ISOLATED", "STATE",
    ];
    let mut table: Vec<[String; 7]> = Vec::new();
    for r in rows {
        let login = match (r.role.state, r.role.login) {
            (Presence::Present, Some(true)) => "yes",
            (Presence::Present, _) => "no",
            (Presence::Missing, _) => "missing",
        };
        let password = r.role.password.map_or("-", |p| p.as_text());
        for db in &r.databases {
            table.push([
                quote_ident(&r.tenant),
                login.to_owned(),
                if db.state == Presence::Present && db.connectable == Some(false) {
                    format!("{} (no connections)", quote_ident(&db.name))
                } else if db.state == Presence::Present {
                    quote_ident(&db.name)
                } else {
                    format!("{} (missing)", quote_ident(&db.name))
                },
                db.owner.as_deref().map(quote_ident).unwrap_or("-".into()),
                password.to_owned(),
                match db.isolated {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "-",
                }
                .to_owned(),
                r.state.as_text().to_owned(),
            ]);
        }
    }
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
    for r in rows {
        if let Some(reason) = &r.reason {
            out.push_str(&format!("! {reason}\n"));
        }
    }
    out
}

#[derive(Serialize)]
struct StatusJson<'a> {
    format_version: u32,
    summary: Counts,
    tenants: &'a [Row],
}

pub fn status_json(rows: &[Row]) -> String {
    let doc = StatusJson {
        format_version: FORMAT_VERSION,
        summary: counts(rows),
        tenants: rows,
    };
    let mut s = serde_json::to_string_pretty(&doc).expect("serializes");
    s.push('\n');
    s
}
