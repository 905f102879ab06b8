//! `status` for what the config file adds: one row per desired object
//! (reader or writer role, role setting, connection limit, extension,
//! schema, grant, creation-time option) with its state, derived from the
//! plan (pure): an object the plan would create is `missing`, one it would
//! change `differs`, one a conflict names `conflict`, any other `in sync`.

use serde::Serialize;

use crate::input::desired::Desired;
use crate::reconcile::plan::{Action, AttributeChange, Object, Plan};

/// The state of one object the config asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectState {
    InSync,
    Missing,
    Differs,
    Conflict,
}

impl ObjectState {
    /// For people: `in sync`.
    pub fn as_text(self) -> &'static str {
        match self {
            ObjectState::InSync => "in sync",
            ObjectState::Missing => "missing",
            ObjectState::Differs => "differs",
            ObjectState::Conflict => "conflict",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectRow {
    pub object: Object,
    pub name: String,
    /// The tenant it belongs to (a reader or writer is its own).
    pub tenant: String,
    /// The database an extension, schema or grant lives in; null otherwise.
    pub database: Option<String>,
    pub state: ObjectState,
    /// What `apply` would set, as in `plan -o json`; empty when in sync.
    pub attributes: Vec<AttributeChange>,
    /// Why it is left as it is, for a conflict; null otherwise.
    pub message: Option<String>,
}

fn state_of(
    plan: &Plan,
    object: Object,
    name: &str,
    tenant: &str,
    database: Option<&str>,
) -> (ObjectState, Vec<AttributeChange>) {
    let change = plan.changes.iter().find(|c| {
        c.object == object
            && c.name == name
            && c.tenant == tenant
            && c.database.as_deref() == database
    });
    match change {
        Some(c) if c.action == Action::Create => (ObjectState::Missing, c.attributes.clone()),
        Some(c) => (ObjectState::Differs, c.attributes.clone()),
        None => (ObjectState::InSync, Vec::new()),
    }
}

/// The rows of every object the config asks for, in config order.
pub fn objects(desired: &Desired, plan: &Plan) -> Vec<ObjectRow> {
    let mut rows = Vec::new();
    let mut push = |object, name: &str, tenant: &str, database: Option<&str>| {
        let blocking = plan
            .conflicts
            .iter()
            .find(|c| c.tenant == tenant && c.blocking);
        let (state, attributes) = match blocking {
            Some(_) => (ObjectState::Conflict, Vec::new()),
            None => state_of(plan, object, name, tenant, database),
        };
        rows.push(ObjectRow {
            object,
            name: name.to_owned(),
            tenant: tenant.to_owned(),
            database: database.map(str::to_owned),
            state,
            attributes,
            message: blocking.map(|c| c.message.clone()),
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
            object: c.object,
            name: c.name.clone(),
            tenant: c.tenant.clone(),
            database: None,
            state: ObjectState::Conflict,
            attributes: Vec::new(),
            message: Some(c.message.clone()),
        });
    }
    rows
}
