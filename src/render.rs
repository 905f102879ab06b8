//! What `plan` and `status` print on stdout, as text for people or JSON for
//! scripts. The JSON documents are a versioned contract: described by
//! `docs/schema/plan.schema.json` and `docs/schema/status.schema.json`,
//! documented in `docs/json.md`, pinned by snapshot tests, and every one
//! the test suite prints is validated against its schema.

use serde::Serialize;

use crate::input::desired::Access;
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
    let mut name = quote_ident(&change.name);
    if let Some(db) = &change.database {
        name.push_str(&format!(" in database {}", quote_ident(db)));
    }
    let details = details(&change.tenant, &change.attributes).join(", ");
    match change.action {
        Action::Create => format!("+ {object} {name} ({details})"),
        Action::Update => format!("~ {object} {name}: {details}"),
    }
}

/// The attributes of a change of `tenant` as people read them:
/// `owner "a" (was "b")`, `revoke CONNECT, TEMPORARY from PUBLIC`.
pub fn details(tenant: &str, attributes: &[AttributeChange]) -> Vec<String> {
    // Names are quoted as identifiers; values (versions, encodings,
    // settings) are shown as they are.
    let shown = |v: &Option<Value>| match v {
        Some(Value::Text(s)) => quote_ident(s),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Int(i)) => i.to_string(),
        Some(Value::List(items)) => items
            .iter()
            .map(|i| quote_ident(i))
            .collect::<Vec<_>>()
            .join(", "),
        None => "null".to_owned(),
    };
    let raw = |v: &Option<Value>| match v {
        Some(Value::Text(s)) => s.clone(),
        other => shown(other),
    };
    let was = |a: &AttributeChange| match &a.from {
        Some(_) => format!(" (was {})", shown(&a.from)),
        None => String::new(),
    };
    let was_raw = |a: &AttributeChange| match &a.from {
        Some(_) => format!(" (was {})", raw(&a.from)),
        None => String::new(),
    };
    let access = attributes
        .iter()
        .find(|a| a.attribute == Attribute::Access)
        .map(|a| match &a.to {
            Some(Value::Text(t)) if t == Access::Writer.as_str() => Access::Writer,
            _ => Access::Reader,
        })
        .unwrap_or(Access::Reader);
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
            Attribute::Template => out.push(format!("template {}", shown(&a.to))),
            Attribute::Encoding => out.push(format!("encoding {}", raw(&a.to))),
            Attribute::Locale => out.push(format!("locale {}", raw(&a.to))),
            Attribute::ConnectGrant => out.push(format!("grant CONNECT to {}", shown(&a.to))),
            Attribute::Version => out.push(match &a.to {
                None => "default version".to_owned(),
                to => format!("version {}{}", raw(to), was_raw(a)),
            }),
            Attribute::Schema => out.push(format!("schema {}", shown(&a.to))),
            Attribute::Role => out.push(format!("role {}", shown(&a.to))),
            Attribute::Value => out.push(format!("{}{}", raw(&a.to), was_raw(a))),
            Attribute::Access => out.push(format!("{} of {}", raw(&a.to), quote_ident(tenant))),
            Attribute::SchemaUsage => out.push(format!("USAGE on schema {}", shown(&a.to))),
            Attribute::TablePrivileges => out.push(format!(
                "{} on tables in {}",
                access.table_privileges().join(", "),
                shown(&a.to)
            )),
            Attribute::SequencePrivileges => out.push(format!(
                "{} on sequences in {}",
                access.sequence_privileges().join(", "),
                shown(&a.to)
            )),
            Attribute::DefaultPrivileges => out.push(format!(
                "default privileges on {}",
                match &a.to {
                    Some(Value::List(kinds)) => kinds.join(", "),
                    other => raw(other),
                }
            )),
        }
    }
    if !revoked.is_empty() {
        out.push(format!("revoke {} from PUBLIC", revoked.join(", ")));
    }
    out
}

pub fn plan_text(plan: &Plan, tenants: usize) -> String {
    let mut out = String::new();
    // What the server lacks comes first: it stops a whole tenant.
    for conflict in plan.conflicts.iter().filter(|c| c.first) {
        out.push_str(&format!("! {}\n", conflict.message));
    }
    for change in &plan.changes {
        out.push_str(&change_line(change));
        out.push('\n');
    }
    for conflict in plan.conflicts.iter().filter(|c| !c.first) {
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
    /// What the config file adds; absent without one.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    objects: &'a [crate::reconcile::status_config::ObjectRow],
}

pub fn status_json(rows: &[Row], objects: &[crate::reconcile::status_config::ObjectRow]) -> String {
    let doc = StatusJson {
        format_version: FORMAT_VERSION,
        summary: counts(rows),
        tenants: rows,
        objects,
    };
    let mut s = serde_json::to_string_pretty(&doc).expect("serializes");
    s.push('\n');
    s
}

/// `status`'s text for what the config file adds: one line per object, after
/// the tenants' table.
pub fn objects_text(rows: &[crate::reconcile::status_config::ObjectRow]) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        return out;
    }
    out.push_str(
        "\nOBJECT     NAME                         TENANT          DATABASE             STATE\n",
    );
    for r in rows {
        let object = serde_json::to_value(r.object)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let mut line = format!(
            "{object:<10} {:<28} {:<15} {:<20} {}",
            quote_ident(&r.name),
            quote_ident(&r.tenant),
            r.database.as_deref().map(quote_ident).unwrap_or("-".into()),
            r.state.as_text()
        );
        let mut details = details(&r.tenant, &r.attributes);
        if let Some(message) = &r.message {
            details.push(message.clone());
        }
        if !details.is_empty() {
            line.push_str(&format!(" ({})", details.join(", ")));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
