//! The plan for what the config file adds to a tenant: role settings and
//! connection limits, creation-time options, extensions, schemas, and the
//! privileges of readers and writers. Pure, like [`crate::reconcile::plan`], which
//! calls it and turns its items into changes; every rule converges on its
//! own and nothing is ever dropped or revoked.

use std::collections::HashSet;

use crate::input::desired::{Access, DatabaseSpec, ExtensionSpec, SettingValue, Tenant};
use crate::reconcile::change::{
    text, Attribute, AttributeChange, Conflict, ConflictReason, Object, Value,
};
use crate::server::catalog::{MemberState, Observed, ObservedDatabase};
use crate::server::sql::quote_ident;

/// One operation the config adds; [`crate::reconcile::apply_config`] turns each into
/// SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigStep {
    /// `CREATE DATABASE` with the config's creation-time options.
    CreateDatabaseWith {
        database: String,
        owner: String,
        template: Option<String>,
        encoding: Option<String>,
        locale: Option<String>,
        connection_limit: Option<i32>,
    },
    DatabaseConnectionLimit {
        database: String,
        limit: i32,
    },
    RoleConnectionLimit {
        role: String,
        limit: i32,
    },
    SetRoleSetting {
        role: String,
        name: String,
        value: SettingValue,
    },
    GrantConnect {
        database: String,
        role: String,
    },
    /// Inside the database, as the tenant.
    CreateSchema {
        database: String,
        schema: String,
        owner: String,
    },
    AlterSchemaOwner {
        database: String,
        schema: String,
        owner: String,
    },
    /// `owner`: the tenant, which a non-superuser admin runs it as.
    CreateExtension {
        database: String,
        owner: String,
        extension: ExtensionSpec,
    },
    UpdateExtension {
        database: String,
        owner: String,
        name: String,
        version: String,
    },
    /// Inside the database, as the tenant: a reader's or writer's
    /// privileges on the tenant's schemas, tables and sequences, and the
    /// tenant's default privileges for it.
    GrantMember(Box<MemberGrant>),
}

/// The kinds of object the config adds rows for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Extension,
    Schema,
    Grant,
    Setting,
}

/// One changed object: a row of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub kind: Kind,
    pub name: String,
    pub create: bool,
    pub attributes: Vec<AttributeChange>,
    pub tenant: String,
    pub database: Option<String>,
    pub steps: Vec<ConfigStep>,
}

/// What a reader or writer is granted in one database, as the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberGrant {
    pub database: String,
    pub tenant: String,
    pub member: String,
    pub access: Access,
    /// Schemas to grant USAGE on.
    pub usage: Vec<String>,
    /// Schemas whose tables (and sequences) get the privileges.
    pub tables: Vec<String>,
    pub sequences: Vec<String>,
    /// Default privileges to add, per kind (`None`: already there).
    pub default_tables: Option<Vec<&'static str>>,
    pub default_sequences: Option<Vec<&'static str>>,
    pub default_schemas: bool,
}

impl Access {
    pub fn table_privileges(self) -> &'static [&'static str] {
        match self {
            Access::Reader => &["SELECT"],
            Access::Writer => &["SELECT", "INSERT", "UPDATE", "DELETE"],
        }
    }
    pub fn sequence_privileges(self) -> &'static [&'static str] {
        match self {
            Access::Reader => &["SELECT"],
            Access::Writer => &["SELECT", "USAGE"],
        }
    }
}

/// The extensions of a tenant the server cannot install: the first one's
/// name, and one message for all.
pub fn unavailable_extensions(tenant: &Tenant, observed: &Observed) -> Option<(String, String)> {
    let mut missing = Vec::new();
    let mut first = None;
    for db in &tenant.databases {
        for e in &db.extensions {
            let before = missing.len();
            match observed.available_extensions.get(&e.name) {
                None => missing.push(format!(
                    "extension {} (database {})",
                    quote_ident(&e.name),
                    quote_ident(&db.name)
                )),
                Some(versions) => {
                    if let Some(v) = &e.version {
                        if !versions.contains(v) {
                            missing.push(format!(
                                "extension {} version {v:?} (database {}; available: {})",
                                quote_ident(&e.name),
                                quote_ident(&db.name),
                                versions.join(", ")
                            ));
                        }
                    }
                }
            }
            if missing.len() > before && first.is_none() {
                first = Some(e.name.clone());
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    Some((
        first.unwrap_or_default(),
        format!(
            "tenant {}: the server does not have {} (pg_available_extensions); nothing of this \
             tenant is changed",
            quote_ident(&tenant.role),
            missing.join(", ")
        ),
    ))
}

/// Splits a stored list setting (`a, "b c"`) into its items.
fn parse_list(stored: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut chars = stored.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let mut item = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        item.push('"');
                    } else {
                        break;
                    }
                } else {
                    item.push(c);
                }
            }
            while chars.peek().is_some_and(|c| *c != ',') {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                item.push(c);
                chars.next();
            }
            item = item.trim_end().to_owned();
        }
        items.push(item);
        if chars.next().is_none() {
            return items;
        }
    }
}

/// Whether a stored `name=value` matches what the config asks for. The
/// server stores a list setting's items quoted where needed.
fn setting_matches(stored: &str, value: &SettingValue) -> bool {
    match value {
        SettingValue::One(v) => stored == v || parse_list(stored) == [v.clone()],
        SettingValue::List(items) => parse_list(stored) == *items,
    }
}

fn setting_text(value: &SettingValue) -> String {
    match value {
        SettingValue::One(v) => v.clone(),
        SettingValue::List(items) => items.join(", "),
    }
}

/// The role's connection limit (a detail and a step for the role's row)
/// and its settings (a row each).
#[allow(clippy::type_complexity)]
pub fn plan_role_extras(
    tenant: &Tenant,
    observed: &Observed,
) -> (Option<(AttributeChange, ConfigStep)>, Vec<Item>) {
    let role = &tenant.role;
    let existing = observed.roles.get(role);
    let mut limit_change = None;
    if let Some(limit) = tenant.connection_limit {
        let was = existing.map(|r| r.connection_limit);
        if was != Some(limit) {
            let attribute = AttributeChange::new(
                Attribute::ConnectionLimit,
                was.map(|w| Value::Int(w.into())),
                Value::Int(limit.into()),
            );
            limit_change = Some((
                attribute,
                ConfigStep::RoleConnectionLimit {
                    role: role.clone(),
                    limit,
                },
            ));
        }
    }
    let mut out = Vec::new();
    for setting in &tenant.settings {
        let stored = existing.and_then(|r| {
            r.settings.iter().find_map(|s| {
                let (name, value) = s.split_once('=')?;
                name.eq_ignore_ascii_case(&setting.name).then_some(value)
            })
        });
        if stored.is_some_and(|s| setting_matches(s, &setting.value)) {
            continue;
        }
        let attributes = vec![
            AttributeChange::new(Attribute::Role, None, Value::Text(role.clone())),
            AttributeChange::new(
                Attribute::Value,
                stored.and_then(text),
                Value::Text(setting_text(&setting.value)),
            ),
        ];
        out.push(Item {
            kind: Kind::Setting,
            name: setting.name.clone(),
            create: stored.is_none(),
            attributes,
            tenant: role.clone(),
            database: None,
            steps: vec![ConfigStep::SetRoleSetting {
                role: role.clone(),
                name: setting.name.clone(),
                value: setting.value.clone(),
            }],
        });
    }
    (limit_change, out)
}

/// The step that creates a database, with its options in `attributes`.
/// `None`: no option, the plain `CREATE DATABASE` of a users-file line.
pub fn create_database(
    tenant: &Tenant,
    spec: &DatabaseSpec,
    attributes: &mut Vec<AttributeChange>,
) -> Option<ConfigStep> {
    let plain = spec.template.is_none()
        && spec.encoding.is_none()
        && spec.locale.is_none()
        && spec.connection_limit.is_none();
    if plain {
        return None;
    }
    if let Some(t) = &spec.template {
        attributes.push(AttributeChange::new(
            Attribute::Template,
            None,
            Value::Text(t.clone()),
        ));
    }
    if let Some(e) = &spec.encoding {
        attributes.push(AttributeChange::new(
            Attribute::Encoding,
            None,
            Value::Text(e.clone()),
        ));
    }
    if let Some(l) = &spec.locale {
        attributes.push(AttributeChange::new(
            Attribute::Locale,
            None,
            Value::Text(l.clone()),
        ));
    }
    if let Some(n) = spec.connection_limit {
        attributes.push(AttributeChange::new(
            Attribute::ConnectionLimit,
            None,
            Value::Int(n.into()),
        ));
    }
    Some(ConfigStep::CreateDatabaseWith {
        database: spec.name.clone(),
        owner: tenant.role.clone(),
        template: spec.template.clone(),
        encoding: spec.encoding.clone(),
        locale: spec.locale.clone(),
        connection_limit: spec.connection_limit,
    })
}

/// `UTF8`, `utf-8` and `Utf8` are one encoding.
fn same_encoding(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect::<String>()
            .to_uppercase()
    };
    norm(a) == norm(b)
}

/// An existing database: its connection limit converges; creation-time
/// options that differ are a conflict (returned), never a re-creation.
pub fn database_extras(
    spec: &DatabaseSpec,
    existing: &ObservedDatabase,
    attributes: &mut Vec<AttributeChange>,
    steps: &mut Vec<ConfigStep>,
) -> Option<String> {
    if let Some(limit) = spec.connection_limit {
        if existing.connection_limit != limit {
            attributes.push(AttributeChange::new(
                Attribute::ConnectionLimit,
                Some(Value::Int(existing.connection_limit.into())),
                Value::Int(limit.into()),
            ));
            steps.push(ConfigStep::DatabaseConnectionLimit {
                database: spec.name.clone(),
                limit,
            });
        }
    }
    let mut differs = Vec::new();
    if let Some(e) = &spec.encoding {
        if !same_encoding(e, &existing.locale.encoding) {
            differs.push(format!(
                "encoding {} (config: {e})",
                existing.locale.encoding
            ));
        }
    }
    if let Some(l) = &spec.locale {
        if existing.locale.collate != *l || existing.locale.ctype != *l {
            differs.push(format!(
                "LC_COLLATE {} and LC_CTYPE {} (config: locale {l})",
                existing.locale.collate, existing.locale.ctype
            ));
        }
    }
    (!differs.is_empty()).then(|| {
        format!(
            "database {} was created with {}; creation-time options are never changed \
             (pgtenant does not re-create a database)",
            quote_ident(&spec.name),
            differs.join(", ")
        )
    })
}

/// CONNECT on the database for each reader and writer that lacks it.
pub fn grant_connect(
    tenant: &Tenant,
    spec: &DatabaseSpec,
    existing: Option<&ObservedDatabase>,
    refused: &HashSet<String>,
    attributes: &mut Vec<AttributeChange>,
    steps: &mut Vec<ConfigStep>,
) {
    for (member, _) in &tenant.members {
        if refused.contains(member) || existing.is_some_and(|d| d.connect.contains(member)) {
            continue;
        }
        attributes.push(AttributeChange::new(
            Attribute::ConnectGrant,
            None,
            Value::Text(member.clone()),
        ));
        steps.push(ConfigStep::GrantConnect {
            database: spec.name.clone(),
            role: member.clone(),
        });
    }
}

/// Schemas, extensions and grants inside one database of the tenant.
pub fn plan_inside(
    tenant: &Tenant,
    spec: &DatabaseSpec,
    observed: &Observed,
    refused: &HashSet<String>,
) -> (Vec<Item>, Vec<Conflict>) {
    let mut items = Vec::new();
    let mut conflicts = Vec::new();
    if !tenant.has_database_features() {
        return (items, conflicts);
    }
    let role = &tenant.role;
    let db = &spec.name;
    let existing = observed.databases.get(db);
    // A database nobody may connect to could not be looked into: it is
    // opened up first (see `plan`), and what it holds is planned by the
    // next pass.
    if existing.is_some_and(|d| !d.allow_connections) {
        return (items, conflicts);
    }
    // A database that does not exist yet holds nothing.
    let inside = existing.and_then(|d| d.inside.clone()).unwrap_or_default();
    let change = |kind, name: &str, create, attributes, steps| Item {
        kind,
        name: name.to_owned(),
        create,
        attributes,
        tenant: role.clone(),
        database: Some(db.clone()),
        steps,
    };
    // Schemas first: extensions may go into them, members get USAGE on them
    // (on the new ones explicitly: the catalog could not say).
    let mut new_schemas = Vec::new();
    for schema in &spec.schemas {
        match inside.schemas.get(schema) {
            None => {
                new_schemas.push(schema.clone());
                items.push(change(
                    Kind::Schema,
                    schema,
                    true,
                    vec![AttributeChange::new(
                        Attribute::Owner,
                        None,
                        Value::Text(role.clone()),
                    )],
                    vec![ConfigStep::CreateSchema {
                        database: db.clone(),
                        schema: schema.clone(),
                        owner: role.clone(),
                    }],
                ));
            }
            Some(owner) if owner != role => {
                items.push(change(
                    Kind::Schema,
                    schema,
                    false,
                    vec![AttributeChange::new(
                        Attribute::Owner,
                        text(owner),
                        Value::Text(role.clone()),
                    )],
                    vec![ConfigStep::AlterSchemaOwner {
                        database: db.clone(),
                        schema: schema.clone(),
                        owner: role.clone(),
                    }],
                ));
            }
            Some(_) => {}
        }
    }
    for ext in &spec.extensions {
        match inside.extensions.get(&ext.name) {
            None => {
                let mut attributes = vec![AttributeChange {
                    attribute: Attribute::Version,
                    from: None,
                    to: ext.version.clone().map(Value::Text),
                    reason: None,
                }];
                if let Some(s) = &ext.schema {
                    attributes.push(AttributeChange::new(
                        Attribute::Schema,
                        None,
                        Value::Text(s.clone()),
                    ));
                }
                items.push(change(
                    Kind::Extension,
                    &ext.name,
                    true,
                    attributes,
                    vec![ConfigStep::CreateExtension {
                        database: db.clone(),
                        owner: role.clone(),
                        extension: ext.clone(),
                    }],
                ));
            }
            Some((version, schema)) => {
                if let Some(v) = &ext.version {
                    if v != version {
                        items.push(change(
                            Kind::Extension,
                            &ext.name,
                            false,
                            vec![AttributeChange::new(
                                Attribute::Version,
                                text(version),
                                Value::Text(v.clone()),
                            )],
                            vec![ConfigStep::UpdateExtension {
                                database: db.clone(),
                                owner: role.clone(),
                                name: ext.name.clone(),
                                version: v.clone(),
                            }],
                        ));
                    }
                }
                if let Some(s) = &ext.schema {
                    if s != schema {
                        conflicts.push(Conflict {
                            tenant: role.clone(),
                            object: Object::Extension,
                            name: ext.name.clone(),
                            reason: ConflictReason::ExtensionSchema,
                            blocking: false,
                            first: false,
                            message: format!(
                                "extension {} in database {} is in schema {}, the config asks for {}; \
                                 pgtenant does not move extensions",
                                quote_ident(&ext.name),
                                quote_ident(db),
                                quote_ident(schema),
                                quote_ident(s)
                            ),
                        });
                    }
                }
            }
        }
    }
    for (member, access) in &tenant.members {
        if refused.contains(member) {
            continue;
        }
        let state = inside.members.get(member);
        let grant = member_grant(
            db,
            role,
            member,
            *access,
            state,
            &inside.tenant_schemas,
            &new_schemas,
        );
        let Some((grant, attributes)) = grant else {
            continue;
        };
        let action = state.is_none();
        items.push(change(
            Kind::Grant,
            member,
            action,
            attributes,
            vec![ConfigStep::GrantMember(Box::new(grant))],
        ));
    }
    (items, conflicts)
}

fn member_grant(
    db: &str,
    tenant: &str,
    member: &str,
    access: Access,
    state: Option<&MemberState>,
    tenant_schemas: &[crate::server::catalog::TenantSchema],
    new_schemas: &[String],
) -> Option<(MemberGrant, Vec<AttributeChange>)> {
    let fresh = MemberState::default();
    let (mut usage, tables, sequences, st) = match state {
        Some(s) => (
            s.missing_usage.clone(),
            s.missing_tables.clone(),
            s.missing_sequences.clone(),
            s,
        ),
        // The role does not exist yet: it lacks everything.
        None => (
            tenant_schemas.iter().map(|s| s.name.clone()).collect(),
            tenant_schemas
                .iter()
                .filter(|s| s.has_tables)
                .map(|s| s.name.clone())
                .collect(),
            tenant_schemas
                .iter()
                .filter(|s| s.has_sequences)
                .map(|s| s.name.clone())
                .collect(),
            &fresh,
        ),
    };
    for s in new_schemas {
        if !usage.contains(s) {
            usage.push(s.clone());
        }
    }
    usage.sort();
    let lacking = |held: &[String], wanted: &'static [&'static str]| {
        (!wanted.iter().all(|w| held.iter().any(|h| h == w))).then(|| wanted.to_vec())
    };
    let default_tables = lacking(&st.default_tables, access.table_privileges());
    let default_sequences = lacking(&st.default_sequences, access.sequence_privileges());
    let default_schemas = lacking(&st.default_schemas, &["USAGE"]).is_some();
    let mut attributes = vec![AttributeChange::new(
        Attribute::Access,
        None,
        Value::Text(access.as_str().to_owned()),
    )];
    let list = |a, v: &[String]| AttributeChange::new(a, None, Value::List(v.to_vec()));
    if !usage.is_empty() {
        attributes.push(list(Attribute::SchemaUsage, &usage));
    }
    if !tables.is_empty() {
        attributes.push(list(Attribute::TablePrivileges, &tables));
    }
    if !sequences.is_empty() {
        attributes.push(list(Attribute::SequencePrivileges, &sequences));
    }
    let mut defaults = Vec::new();
    if default_tables.is_some() {
        defaults.push("tables".to_owned());
    }
    if default_sequences.is_some() {
        defaults.push("sequences".to_owned());
    }
    if default_schemas {
        defaults.push("schemas".to_owned());
    }
    if !defaults.is_empty() {
        attributes.push(list(Attribute::DefaultPrivileges, &defaults));
    }
    if attributes.len() == 1 {
        return None;
    }
    Some((
        MemberGrant {
            database: db.to_owned(),
            tenant: tenant.to_owned(),
            member: member.to_owned(),
            access,
            usage,
            tables,
            sequences,
            default_tables,
            default_sequences,
            default_schemas,
        },
        attributes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::input::desired::{Origin, Password};

    fn tenant() -> Tenant {
        let mut t = Tenant::with_defaults(
            "app".into(),
            Password::new("pw"),
            Origin {
                file: "users".into(),
                line: 1,
            },
        );
        t.databases[0].extensions.push(ExtensionSpec {
            name: "pg_trgm".into(),
            schema: None,
            version: None,
        });
        t.databases[0].schemas.push("app".into());
        t.members.push(("grafana".into(), Access::Reader));
        t
    }

    fn summary(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| {
                format!(
                    "{:?} {} {}: {}",
                    i.kind,
                    i.name,
                    i.create,
                    crate::render::details(&i.tenant, &i.attributes).join(", ")
                )
            })
            .collect()
    }

    #[test]
    fn a_new_database_gets_everything_in_order() {
        let t = tenant();
        let observed = crate::server::catalog::Observed {
            server: crate::testutil::server_info(160000),
            roles: Default::default(),
            databases: Default::default(),
            available_extensions: Default::default(),
        };
        let (items, conflicts) = plan_inside(&t, &t.databases[0], &observed, &HashSet::new());
        assert!(conflicts.is_empty());
        assert_eq!(
            summary(&items),
            [
                "Schema app true: owner \"app\"",
                "Extension pg_trgm true: default version",
                "Grant grafana true: reader of \"app\", USAGE on schema \"app\", default privileges on tables, sequences, schemas",
            ]
        );
        // The extension is unavailable: the whole tenant is stopped.
        assert!(unavailable_extensions(&t, &observed).is_some());
        let mut observed = observed;
        observed
            .available_extensions
            .insert("pg_trgm".into(), vec!["1.6".into()]);
        assert!(unavailable_extensions(&t, &observed).is_none());
        let mut pinned = t.clone();
        pinned.databases[0].extensions[0].version = Some("9.9".into());
        let (name, message) = unavailable_extensions(&pinned, &observed).unwrap();
        assert_eq!(name, "pg_trgm");
        assert!(message.contains("version \"9.9\""));
    }

    #[test]
    fn a_member_with_everything_plans_nothing() {
        let state = MemberState {
            default_tables: vec!["SELECT".into()],
            default_sequences: vec!["SELECT".into()],
            default_schemas: vec!["USAGE".into()],
            ..MemberState::default()
        };
        assert!(member_grant("d", "t", "m", Access::Reader, Some(&state), &[], &[]).is_none());
        // A writer needs more than a reader's defaults.
        let (g, _) = member_grant("d", "t", "m", Access::Writer, Some(&state), &[], &[]).unwrap();
        assert_eq!(
            g.default_tables,
            Some(vec!["SELECT", "INSERT", "UPDATE", "DELETE"])
        );
        assert!(!g.default_schemas);
    }

    #[test]
    fn stored_lists() {
        assert_eq!(parse_list("gitlab, public"), ["gitlab", "public"]);
        assert_eq!(parse_list("\"$user\", public"), ["$user", "public"]);
        assert_eq!(parse_list("\"a\"\"b, c\""), ["a\"b, c"]);
        assert!(setting_matches("60s", &SettingValue::One("60s".into())));
        assert!(setting_matches(
            "\"gitlab, public\"",
            &SettingValue::One("gitlab, public".into())
        ));
        assert!(setting_matches(
            "\"$user\", public",
            &SettingValue::List(vec!["$user".into(), "public".into()])
        ));
        assert!(!setting_matches("30s", &SettingValue::One("60s".into())));
    }
}
