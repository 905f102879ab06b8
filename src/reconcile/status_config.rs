//! `status` for what the config file adds: one row per desired object
//! (reader or writer role, role setting, connection limit, extension,
//! schema, grant, creation-time option) with its state, derived from the
//! plan (pure): an object the plan would create is `missing`, one it would
//! change `differs`, one a conflict names `conflict`, any other `in sync`.

use serde::Serialize;

use crate::input::desired::Desired;
use crate::reconcile::plan::{Action, Object, Plan};
use crate::server::sql::quote_ident;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectRow {
    pub object: Object,
    pub name: String,
    /// The tenant it belongs to (a reader or writer is its own).
    pub tenant: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// `in sync`, `missing`, `differs` or `conflict`.
    pub state: &'static str,
    /// What differs, as `plan` says it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

fn state_of(
    plan: &Plan,
    object: Object,
    name: &str,
    tenant: &str,
    database: Option<&str>,
) -> (&'static str, Vec<String>) {
    let change = plan.changes.iter().find(|c| {
        c.object == object
            && c.name == name
            && c.tenant == tenant
            && c.database.as_deref() == database
    });
    match change {
        Some(c) if c.action == Action::Create => ("missing", c.details.clone()),
        Some(c) => ("differs", c.details.clone()),
        None => ("in sync", Vec::new()),
    }
}

/// The rows of every object the config asks for, in config order.
pub fn objects(desired: &Desired, plan: &Plan) -> Vec<ObjectRow> {
    let mut rows = Vec::new();
    let mut push = |object, name: &str, tenant: &str, database: Option<&str>| {
        let (state, details) = if plan
            .conflicts
            .iter()
            .any(|c| c.tenant == tenant && c.blocking)
        {
            ("conflict", Vec::new())
        } else {
            state_of(plan, object, name, tenant, database)
        };
        rows.push(ObjectRow {
            object,
            name: name.to_owned(),
            tenant: tenant.to_owned(),
            database: database.map(str::to_owned),
            state,
            details,
        });
    };
    for m in &desired.members {
        push(Object::Role, &m.role, &m.role, None);
    }
    for t in &desired.tenants {
        for s in &t.settings {
            push(Object::Setting, &s.name, &t.role, None);
        }
        for db in &t.databases {
            for s in &db.schemas {
                push(Object::Schema, s, &t.role, Some(&db.name));
            }
            for e in &db.extensions {
                push(Object::Extension, &e.name, &t.role, Some(&db.name));
            }
            for (m, _) in &t.members {
                push(Object::Grant, m, &t.role, Some(&db.name));
            }
        }
    }
    // Conflicts that leave one object as it is (creation-time options, an
    // extension's schema): a row each.
    for c in plan.conflicts.iter().filter(|c| !c.blocking) {
        rows.push(ObjectRow {
            object: Object::Database,
            name: c.tenant.clone(),
            tenant: c.tenant.clone(),
            database: None,
            state: "conflict",
            details: vec![c.reason.clone()],
        });
    }
    rows
}

/// The text form: one line per object, after the tenants' table.
pub fn objects_text(rows: &[ObjectRow]) -> String {
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
            r.state
        );
        if !r.details.is_empty() {
            line.push_str(&format!(" ({})", r.details.join(", ")));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
