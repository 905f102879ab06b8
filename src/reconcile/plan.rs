//! The plan: the difference between the desired and the observed state, as a
//! list of changes. Pure: no I/O, so every rule is unit-tested here.
//!
//! Each property of a tenant converges on its own, and a property that is
//! already right produces nothing: a second run with the same input plans
//! nothing.

use serde::Serialize;

use crate::reconcile::change::text;
pub use crate::reconcile::change::{
    Action, Attribute, AttributeChange, Conflict, ConflictReason, Object, PasswordReason, Value,
};

use crate::input::desired::{Desired, Tenant};
use crate::reconcile::password::PasswordCheck;
use crate::server::catalog::{ForeignObjects, Observed, ObservedDatabase, TENANT_MARKER};
use crate::server::sql::quote_ident;

/// One operation on the server. The apply step turns each into SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    CreateRole {
        role: String,
    },
    AlterRole {
        role: String,
        login: bool,
        password: Option<PasswordReason>,
        /// `VALID UNTIL 'infinity'`: the role's validity has run out.
        valid_until: bool,
        /// `CONNECTION LIMIT -1`: the limit is 0, so nobody can log in.
        connection_limit: bool,
    },
    CreateDatabase {
        database: String,
        owner: String,
    },
    AlterDatabaseOwner {
        database: String,
        owner: String,
    },
    RevokeDatabase {
        database: String,
        connect: bool,
        temporary: bool,
    },
    /// `ALTER DATABASE ... ALLOW_CONNECTIONS true` and/or `CONNECTION LIMIT
    /// -1`: the tenant could not connect to its database.
    AlterDatabaseConnections {
        database: String,
        allow_connections: bool,
        connection_limit: bool,
    },
    /// PostgreSQL 14 and older: inside the tenant database.
    PublicSchema {
        database: String,
        owner: Option<String>,
        revoke_create: bool,
    },
    /// What the config file adds (see [`crate::reconcile::plan_config`]).
    /// Boxed: the largest variant by far, and most plans have none, while
    /// every step of a first apply of N tenants would pay for its size.
    Config(Box<crate::reconcile::plan_config::ConfigStep>),
}

impl Step {
    pub(crate) fn config(step: crate::reconcile::plan_config::ConfigStep) -> Step {
        Step::Config(Box::new(step))
    }
}

/// One changed object, as people and scripts read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The tenant's role, which every change belongs to (a reader or writer
    /// is its own).
    pub tenant: String,
    pub object: Object,
    pub name: String,
    /// The database an extension, schema or grant lives in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    pub action: Action,
    /// What the change sets, in the order the text output lists it.
    pub attributes: Vec<AttributeChange>,
    #[serde(skip)]
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub conflicts: Vec<Conflict>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.conflicts.is_empty()
    }

    pub fn changes_for<'a>(&'a self, tenant: &'a str) -> impl Iterator<Item = &'a Change> + 'a {
        self.changes.iter().filter(move |c| c.tenant == tenant)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub isolation: bool,
}

/// Computes the plan. `passwords[i]` is the check of `desired.tenants[i]`'s
/// password against its stored secret (ignored when the role is missing).
pub fn plan(
    desired: &Desired,
    observed: &Observed,
    passwords: &[PasswordCheck],
    options: Options,
) -> Plan {
    assert_eq!(
        desired.tenants.len() + desired.members.len(),
        passwords.len()
    );
    let (tenant_checks, member_checks) = passwords.split_at(desired.tenants.len());
    let mut plan = Plan::default();
    // Readers and writers first: their roles must exist before a tenant
    // grants them anything. The adoption policy holds for them as for
    // tenants: they are login roles whose passwords come from the input.
    let mut refused_members = std::collections::HashSet::new();
    for (member, check) in desired.members.iter().zip(member_checks) {
        if let Some(conflict) = refusal(&member.role, observed)
            .or_else(|| admin_lacks_privilege(&member.role, None, observed, *check))
        {
            refused_members.insert(member.role.clone());
            plan.conflicts.push(conflict);
            continue;
        }
        plan_role(&member.role, None, observed, *check, &mut plan.changes);
    }
    for (tenant, check) in desired.tenants.iter().zip(tenant_checks) {
        if let Some(conflict) = conflict(tenant, observed)
            .or_else(|| admin_lacks_privilege(&tenant.role, Some(tenant), observed, *check))
        {
            plan.conflicts.push(conflict);
            continue;
        }
        // Checked before anything of the tenant is planned: an extension
        // the server lacks fails the tenant with nothing changed.
        if let Some((name, message)) =
            crate::reconcile::plan_config::unavailable_extensions(tenant, observed)
        {
            plan.conflicts.push(Conflict {
                tenant: tenant.role.clone(),
                object: Object::Extension,
                name,
                reason: ConflictReason::ExtensionUnavailable,
                message,
                blocking: true,
                first: true,
            });
            continue;
        }
        plan_role(
            &tenant.role,
            tenant.connection_limit,
            observed,
            *check,
            &mut plan.changes,
        );
        let (limit, settings) = crate::reconcile::plan_config::plan_role_extras(tenant, observed);
        if let Some((attribute, step)) = limit {
            // A role being created or changed gets it in the same row.
            match plan
                .changes
                .iter_mut()
                .find(|c| c.object == Object::Role && c.name == tenant.role)
            {
                Some(change) => {
                    change.attributes.push(attribute);
                    change.steps.push(Step::config(step));
                }
                None => plan.changes.push(Change {
                    tenant: tenant.role.clone(),
                    object: Object::Role,
                    name: tenant.role.clone(),
                    database: None,
                    action: Action::Update,
                    attributes: vec![attribute],
                    steps: vec![Step::config(step)],
                }),
            }
        }
        add_config(&mut plan, settings, Vec::new());
        for db in &tenant.databases {
            plan_database(tenant, db, observed, options, &refused_members, &mut plan);
            let (items, conflicts) =
                crate::reconcile::plan_config::plan_inside(tenant, db, observed, &refused_members);
            add_config(&mut plan, items, conflicts);
        }
    }
    plan
}

/// Adds what [`crate::reconcile::plan_config`] planned.
fn add_config(
    plan: &mut Plan,
    items: Vec<crate::reconcile::plan_config::Item>,
    conflicts: Vec<Conflict>,
) {
    use crate::reconcile::plan_config::Kind;
    for item in items {
        plan.changes.push(Change {
            tenant: item.tenant,
            object: match item.kind {
                Kind::Extension => Object::Extension,
                Kind::Schema => Object::Schema,
                Kind::Grant => Object::Grant,
                Kind::Setting => Object::Setting,
            },
            name: item.name,
            database: item.database,
            action: if item.create {
                Action::Create
            } else {
                Action::Update
            },
            attributes: item.attributes,
            steps: item.steps.into_iter().map(Step::config).collect(),
        });
    }
    plan.conflicts.extend(conflicts);
}

/// Why pgtenant refuses to manage `tenant`, if it does: the adoption
/// policy for its role, then the ownership rule for its database.
/// Every database of the tenant is held to the rule.
pub fn conflict(tenant: &Tenant, observed: &Observed) -> Option<Conflict> {
    refusal(&tenant.role, observed).or_else(|| {
        tenant
            .databases
            .iter()
            .find_map(|db| database_refusal(tenant, &db.name, observed))
    })
}

/// The adoption policy: an existing role is managed only if it is a plain
/// tenant. It has none of SUPERUSER, CREATEROLE, REPLICATION and BYPASSRLS,
/// it is a member of no role (membership in the admin, in
/// `pg_execute_server_program` or in another application's group would
/// hand their powers to whoever can edit the users file), and it can
/// already log in (a role of the article's scripts) or carries pgtenant's
/// marker (a role pgtenant created, whose LOGIN was taken away). Anything
/// else is a conflict: nothing of the tenant is changed.
/// Readers and writers are held to the same policy.
fn refusal(role_name: &str, observed: &Observed) -> Option<Conflict> {
    let role = observed.roles.get(role_name)?;
    let name = quote_ident(role_name);
    let mut powers = Vec::new();
    if role.superuser {
        powers.push("SUPERUSER");
    }
    if role.create_role {
        powers.push("CREATEROLE");
    }
    if role.replication {
        powers.push("REPLICATION");
    }
    if role.bypass_rls {
        powers.push("BYPASSRLS");
    }
    if !powers.is_empty() {
        return Some(Conflict::role(
            role_name,
            ConflictReason::PrivilegedRole,
            format!(
                "role {name} exists with {}; pgtenant manages only plain login roles: \
                 remove the line, or pick another user name",
                powers.join(", ")
            ),
        ));
    }
    if !role.member_of.is_empty() {
        let groups: Vec<String> = role.member_of.iter().map(|g| quote_ident(g)).collect();
        return Some(Conflict::role(
            role_name,
            ConflictReason::RoleMembership,
            format!(
                "role {name} is a member of {}; a tenant role must be a member of no role, \
                 since its password would give whatever they can do: revoke the membership \
                 (REVOKE {} FROM {name}) or remove the line",
                groups.join(", "),
                groups[0]
            ),
        ));
    }
    if !role.can_login && !role.marked {
        return Some(Conflict::role(
            role_name,
            ConflictReason::UnmarkedNologin,
            format!(
                "role {name} exists with NOLOGIN and was not created by pgtenant; giving it a \
                 password and LOGIN would let the users file log in as it: if it is this \
                 tenant's, mark it (COMMENT ON ROLE {name} IS {}), else remove the line",
                crate::server::sql::quote_literal(TENANT_MARKER)
            ),
        ));
    }
    None
}

/// No database is taken from its owner with data in it: an existing
/// database owned by another role goes to the tenant only when it holds no
/// object owned by anyone but the tenant. The article's empty databases
/// made by the admin are still handed over, and a database of the tenant's
/// own whose owner drifted is still put back.
fn database_refusal(tenant: &Tenant, database: &str, observed: &Observed) -> Option<Conflict> {
    let db = observed.databases.get(database)?;
    if db.owner == tenant.role {
        return None;
    }
    let db_name = database;
    let database = quote_ident(database);
    let owner = quote_ident(&db.owner);
    let role = quote_ident(&tenant.role);
    let why = match &db.foreign_objects {
        Some(ForeignObjects::None) => return None,
        Some(ForeignObjects::OwnedBy(other)) => {
            format!("holds objects owned by {}", quote_ident(other))
        }
        Some(ForeignObjects::Unknown(e)) => format!("could not be looked into ({e})"),
        None => "was not looked into".to_owned(),
    };
    Some(Conflict {
        tenant: tenant.role.clone(),
        object: Object::Database,
        name: db_name.to_owned(),
        reason: ConflictReason::ForeignDatabase,
        message: format!(
            "database {database} is owned by {owner} and {why}; pgtenant gives a database to \
             its tenant only when nothing in it belongs to another role: if it is {role}'s, \
             give it yourself (ALTER DATABASE {database} OWNER TO {role}), else remove the line \
             or pick another user name"
        ),
        blocking: true,
        first: false,
    })
}

/// A non-superuser admin that may not create or alter the tenant's role
/// would send the statement (and its verifier) only to have it refused, and
/// the server logs a refused statement with its text. So the tenant is a
/// conflict and nothing is sent.
/// `tenant` is `None` for a reader or writer.
fn admin_lacks_privilege(
    role_name: &str,
    tenant: Option<&Tenant>,
    observed: &Observed,
    check: PasswordCheck,
) -> Option<Conflict> {
    let server = &observed.server;
    if server.admin_is_superuser {
        return None;
    }
    let admin = quote_ident(&server.admin);
    let name = quote_ident(role_name);
    match observed.roles.get(role_name) {
        None if !server.admin_can_create_roles => Some(Conflict::role(
            role_name,
            ConflictReason::AdminPrivilege,
            format!(
                "the admin role {admin} has neither SUPERUSER nor CREATEROLE, so it cannot \
                 create role {name} (nothing was sent): grant it CREATEROLE \
                 (ALTER ROLE {admin} CREATEROLE) or connect as a superuser"
            ),
        )),
        None => None,
        Some(role) => {
            let configured_limit = tenant.and_then(|t| t.connection_limit);
            let config_changes = tenant.is_some_and(|t| {
                let (limit, settings) =
                    crate::reconcile::plan_config::plan_role_extras(t, observed);
                limit.is_some() || !settings.is_empty()
            });
            let needs_alter = check.needs_set()
                || !role.can_login
                || role.expired
                || (configured_limit.is_none() && blocks_login(role.connection_limit))
                || config_changes;
            (needs_alter && !role.admin_may_alter).then(|| {
                Conflict::role(
                    role_name,
                    ConflictReason::AdminPrivilege,
                    format!(
                        "the admin role {admin} may not alter role {name} (nothing was sent): \
                         it needs CREATEROLE, and on PostgreSQL 16 and newer ADMIN OPTION on \
                         the role (as a superuser: GRANT {name} TO {admin} WITH ADMIN OPTION)"
                    ),
                )
            })
        }
    }
}

/// The connection limit (of a role or a database) under which a tenant
/// cannot log in. A limit the config file sets takes precedence: it is
/// converged as configured, even to 0.
pub fn blocks_login(connection_limit: i32) -> bool {
    connection_limit == 0
}

/// `configured_limit`: the role's connection limit from the config, which
/// [`crate::reconcile::plan_config`] converges; without one a limit of 0 is
/// put back to none.
fn plan_role(
    role: &str,
    configured_limit: Option<i32>,
    observed: &Observed,
    check: PasswordCheck,
    out: &mut Vec<Change>,
) {
    let role = &role.to_owned();
    let Some(existing) = observed.roles.get(role) else {
        out.push(Change {
            tenant: role.clone(),
            object: Object::Role,
            name: role.clone(),
            database: None,
            action: Action::Create,
            attributes: vec![
                AttributeChange::new(Attribute::Login, None, Value::Bool(true)),
                AttributeChange::password(PasswordReason::New),
            ],
            steps: vec![Step::CreateRole { role: role.clone() }],
        });
        return;
    };
    let login = !existing.can_login;
    let valid_until = existing.expired;
    let connection_limit = configured_limit.is_none() && blocks_login(existing.connection_limit);
    let password = match check {
        PasswordCheck::InSync => None,
        PasswordCheck::Differs => Some(PasswordReason::Differs),
        PasswordCheck::Missing => Some(PasswordReason::Missing),
        PasswordCheck::Upgrade => Some(PasswordReason::Upgrade),
        PasswordCheck::Unknown => Some(PasswordReason::Unknown),
        PasswordCheck::Excessive => Some(PasswordReason::Excessive),
    };
    if !login && password.is_none() && !valid_until && !connection_limit {
        return;
    }
    let mut attributes = Vec::new();
    if login {
        attributes.push(AttributeChange::new(
            Attribute::Login,
            Some(Value::Bool(false)),
            Value::Bool(true),
        ));
    }
    if valid_until {
        attributes.push(AttributeChange::new(
            Attribute::ValidUntil,
            text("expired"),
            Value::Text("infinity".to_owned()),
        ));
    }
    if connection_limit {
        attributes.push(AttributeChange::new(
            Attribute::ConnectionLimit,
            Some(Value::Int(existing.connection_limit.into())),
            Value::Int(-1),
        ));
    }
    if let Some(reason) = password {
        attributes.push(AttributeChange::password(reason));
    }
    out.push(Change {
        tenant: role.clone(),
        object: Object::Role,
        name: role.clone(),
        database: None,
        action: Action::Update,
        attributes,
        steps: vec![Step::AlterRole {
            role: role.clone(),
            login,
            password,
            valid_until,
            connection_limit,
        }],
    });
}

fn plan_database(
    tenant: &Tenant,
    spec: &crate::input::desired::DatabaseSpec,
    observed: &Observed,
    options: Options,
    refused_members: &std::collections::HashSet<String>,
    plan: &mut Plan,
) {
    let role = &tenant.role;
    let database = &spec.name;
    let schema_fix = observed.server.needs_public_schema_fix();

    let Some(existing) = observed.databases.get(database) else {
        let mut attributes = vec![AttributeChange::new(
            Attribute::Owner,
            None,
            Value::Text(role.clone()),
        )];
        let mut steps =
            vec![
                match crate::reconcile::plan_config::create_database(tenant, spec, &mut attributes)
                {
                    Some(step) => Step::config(step),
                    None => Step::CreateDatabase {
                        database: database.clone(),
                        owner: role.clone(),
                    },
                },
            ];
        if options.isolation {
            attributes.push(AttributeChange::new(
                Attribute::PublicConnect,
                None,
                Value::Bool(false),
            ));
            attributes.push(AttributeChange::new(
                Attribute::PublicTemporary,
                None,
                Value::Bool(false),
            ));
            steps.push(Step::RevokeDatabase {
                database: database.clone(),
                connect: true,
                temporary: true,
            });
            if schema_fix {
                attributes.push(AttributeChange::new(
                    Attribute::PublicSchemaOwner,
                    None,
                    Value::Text(role.clone()),
                ));
                attributes.push(AttributeChange::new(
                    Attribute::PublicSchemaCreate,
                    None,
                    Value::Bool(false),
                ));
                steps.push(Step::PublicSchema {
                    database: database.clone(),
                    owner: Some(role.clone()),
                    revoke_create: true,
                });
            }
        }
        let mut config_steps = Vec::new();
        crate::reconcile::plan_config::grant_connect(
            tenant,
            spec,
            None,
            refused_members,
            &mut attributes,
            &mut config_steps,
        );
        steps.extend(config_steps.into_iter().map(Step::config));
        plan.changes.push(Change {
            tenant: role.clone(),
            object: Object::Database,
            name: database.clone(),
            database: None,
            action: Action::Create,
            attributes,
            steps,
        });
        return;
    };

    let mut attributes = Vec::new();
    let mut steps = Vec::new();
    if existing.owner != *role {
        attributes.push(AttributeChange::new(
            Attribute::Owner,
            text(&existing.owner),
            Value::Text(role.clone()),
        ));
        steps.push(Step::AlterDatabaseOwner {
            database: database.clone(),
            owner: role.clone(),
        });
    }
    // Every database of the tenant must let it in. A connection limit the
    // config sets is converged by `plan_config` instead, as configured.
    let allow_connections = !existing.allow_connections;
    let connection_limit =
        spec.connection_limit.is_none() && blocks_login(existing.connection_limit);
    if allow_connections || connection_limit {
        if allow_connections {
            attributes.push(AttributeChange::new(
                Attribute::AllowConnections,
                Some(Value::Bool(false)),
                Value::Bool(true),
            ));
        }
        if connection_limit {
            attributes.push(AttributeChange::new(
                Attribute::ConnectionLimit,
                Some(Value::Int(existing.connection_limit.into())),
                Value::Int(-1),
            ));
        }
        steps.push(Step::AlterDatabaseConnections {
            database: database.clone(),
            allow_connections,
            connection_limit,
        });
    }
    if options.isolation {
        isolate_existing(existing, role, schema_fix, &mut attributes, &mut steps);
    }
    let mut config_steps = Vec::new();
    let conflict = crate::reconcile::plan_config::database_extras(
        spec,
        existing,
        &mut attributes,
        &mut config_steps,
    );
    if let Some(message) = conflict {
        plan.conflicts.push(Conflict {
            tenant: role.clone(),
            object: Object::Database,
            name: database.clone(),
            reason: ConflictReason::CreationOptions,
            message,
            blocking: false,
            first: false,
        });
    }
    crate::reconcile::plan_config::grant_connect(
        tenant,
        spec,
        Some(existing),
        refused_members,
        &mut attributes,
        &mut config_steps,
    );
    steps.extend(config_steps.into_iter().map(Step::config));
    if !steps.is_empty() {
        plan.changes.push(Change {
            tenant: role.clone(),
            object: Object::Database,
            name: database.clone(),
            database: None,
            action: Action::Update,
            attributes,
            steps,
        });
    }
}

fn isolate_existing(
    db: &ObservedDatabase,
    role: &str,
    schema_fix: bool,
    attributes: &mut Vec<AttributeChange>,
    steps: &mut Vec<Step>,
) {
    if db.public_connect || db.public_temporary {
        for (has, attribute) in [
            (db.public_connect, Attribute::PublicConnect),
            (db.public_temporary, Attribute::PublicTemporary),
        ] {
            if has {
                attributes.push(AttributeChange::new(
                    attribute,
                    Some(Value::Bool(true)),
                    Value::Bool(false),
                ));
            }
        }
        steps.push(Step::RevokeDatabase {
            database: db.name.clone(),
            connect: db.public_connect,
            temporary: db.public_temporary,
        });
    }
    if !schema_fix {
        return;
    }
    let Some(schema) = &db.public_schema else {
        return;
    };
    let owner = (schema.owner != role).then(|| role.to_owned());
    if let Some(owner) = &owner {
        attributes.push(AttributeChange::new(
            Attribute::PublicSchemaOwner,
            text(&schema.owner),
            Value::Text(owner.clone()),
        ));
    }
    if schema.public_create {
        attributes.push(AttributeChange::new(
            Attribute::PublicSchemaCreate,
            Some(Value::Bool(true)),
            Value::Bool(false),
        ));
    }
    if owner.is_some() || schema.public_create {
        steps.push(Step::PublicSchema {
            database: db.name.clone(),
            owner,
            revoke_create: schema.public_create,
        });
    }
}

/// Whether a tenant's database denies other tenants, as `status` reports it.
pub fn is_isolated(db: &ObservedDatabase, role: &str, schema_fix: bool) -> bool {
    let mut attributes = Vec::new();
    let mut steps = Vec::new();
    isolate_existing(db, role, schema_fix, &mut attributes, &mut steps);
    steps.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::desired::{Origin, Password};
    use crate::server::catalog::{ObservedRole, SchemaState, ServerInfo};
    use std::collections::HashMap;

    fn server(version_num: u32) -> ServerInfo {
        crate::testutil::server_info(version_num)
    }

    fn desired(roles: &[&str]) -> Desired {
        Desired {
            tenants: roles
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    Tenant::with_defaults(
                        r.to_string(),
                        Password::new("pw"),
                        Origin {
                            file: "users".into(),
                            line: i + 1,
                        },
                    )
                })
                .collect(),
            members: Vec::new(),
        }
    }

    fn role(name: &str) -> ObservedRole {
        ObservedRole {
            name: name.into(),
            can_login: true,
            superuser: false,
            replication: false,
            bypass_rls: false,
            create_role: false,
            member_of: vec![],
            marked: false,
            expired: false,
            connection_limit: -1,
            admin_may_alter: true,
            password: Some("SCRAM-SHA-256$...".into()),
            settings: Vec::new(),
        }
    }

    fn database(name: &str, owner: &str) -> ObservedDatabase {
        ObservedDatabase {
            name: name.into(),
            owner: owner.into(),
            public_connect: false,
            public_temporary: false,
            allow_connections: true,
            connection_limit: -1,
            foreign_objects: (owner != name.trim_end_matches("_db"))
                .then_some(ForeignObjects::None),
            public_schema: None,
            locale: std::sync::Arc::new(crate::server::catalog::DbLocale {
                encoding: "UTF8".into(),
                collate: "C".into(),
                ctype: "C".into(),
            }),
            connect: Vec::new(),
            inside: None,
        }
    }

    fn observed(version: u32, roles: Vec<ObservedRole>, dbs: Vec<ObservedDatabase>) -> Observed {
        Observed {
            server: server(version),
            roles: roles.into_iter().collect(),
            databases: dbs.into_iter().collect(),
            available_extensions: HashMap::new(),
        }
    }

    const ISOLATED: Options = Options { isolation: true };

    fn lines(plan: &Plan) -> Vec<String> {
        plan.changes
            .iter()
            .map(crate::render::change_line)
            .collect()
    }

    #[test]
    fn everything_missing_creates_role_and_database() {
        let d = desired(&["keycloak"]);
        let p = plan(
            &d,
            &observed(150000, vec![], vec![]),
            &[PasswordCheck::Missing],
            ISOLATED,
        );
        insta::assert_snapshot!(crate::render::plan_text(&p, 1), @r#"
        + role "keycloak" (login, password)
        + database "keycloak_db" (owner "keycloak", revoke CONNECT, TEMPORARY from PUBLIC)
        Plan: 2 to create, 0 to update.
        "#);
        assert_eq!(p.changes[1].steps.len(), 2);
    }

    #[test]
    fn in_sync_tenant_plans_nothing() {
        let d = desired(&["a"]);
        let o = observed(150000, vec![role("a")], vec![database("a_db", "a")]);
        let p = plan(&d, &o, &[PasswordCheck::InSync], ISOLATED);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(
            crate::render::plan_text(&p, 1),
            "No changes: 1 tenant in sync.\n"
        );
    }

    #[test]
    fn each_property_converges_on_its_own() {
        let d = desired(&["a", "b", "c", "d"]);
        let mut nologin = role("b");
        nologin.can_login = false;
        nologin.marked = true;
        let mut open_db = database("c_db", "c");
        open_db.public_connect = true;
        let o = observed(
            160000,
            vec![role("a"), nologin, role("c"), role("d")],
            vec![
                database("a_db", "a"),
                database("b_db", "b"),
                open_db,
                database("d_db", "someone"),
            ],
        );
        let checks = [
            PasswordCheck::Differs,
            PasswordCheck::InSync,
            PasswordCheck::Upgrade,
            PasswordCheck::Unknown,
        ];
        let p = plan(&d, &o, &checks, ISOLATED);
        insta::assert_snapshot!(lines(&p).join("\n"), @r#"
        ~ role "a": password
        ~ role "b": login
        ~ role "c": password (md5 to scram-sha-256)
        ~ database "c_db": revoke CONNECT from PUBLIC
        ~ role "d": password (cannot read stored secrets)
        ~ database "d_db": owner "d" (was "someone")
        "#);
    }

    #[test]
    fn role_created_by_hand_without_database() {
        let d = desired(&["a"]);
        let o = observed(150000, vec![role("a")], vec![]);
        let p = plan(&d, &o, &[PasswordCheck::InSync], ISOLATED);
        assert_eq!(
            lines(&p),
            [r#"+ database "a_db" (owner "a", revoke CONNECT, TEMPORARY from PUBLIC)"#]
        );
    }

    #[test]
    fn no_isolation_leaves_acls_alone() {
        let d = desired(&["a"]);
        let mut db = database("a_db", "a");
        db.public_connect = true;
        db.public_temporary = true;
        let p = plan(
            &d,
            &observed(150000, vec![role("a")], vec![db]),
            &[PasswordCheck::InSync],
            Options { isolation: false },
        );
        assert!(p.is_empty());
        let p = plan(
            &d,
            &observed(150000, vec![], vec![]),
            &[PasswordCheck::Missing],
            Options { isolation: false },
        );
        assert_eq!(p.changes[1].steps.len(), 1);
    }

    #[test]
    fn old_servers_fix_schema_public() {
        let d = desired(&["a", "b"]);
        let mut db = database("a_db", "a");
        db.public_schema = Some(SchemaState {
            owner: "postgres".into(),
            public_create: true,
        });
        let mut fixed = database("b_db", "b");
        fixed.public_schema = Some(SchemaState {
            owner: "b".into(),
            public_create: false,
        });
        let o = observed(140005, vec![role("a"), role("b")], vec![db, fixed]);
        let p = plan(
            &d,
            &o,
            &[PasswordCheck::InSync, PasswordCheck::InSync],
            ISOLATED,
        );
        insta::assert_snapshot!(lines(&p).join("\n"), @r#"~ database "a_db": schema public owner "a" (was "postgres"), revoke CREATE on schema public from PUBLIC"#);
        let p = plan(
            &desired(&["n"]),
            &observed(130000, vec![], vec![]),
            &[PasswordCheck::Missing],
            ISOLATED,
        );
        assert!(p.changes[1].steps.iter().any(|s| matches!(
            s,
            Step::PublicSchema {
                revoke_create: true,
                ..
            }
        )));
        // 15 and newer: the database owner owns schema public already.
        let p = plan(
            &desired(&["n"]),
            &observed(150000, vec![], vec![]),
            &[PasswordCheck::Missing],
            ISOLATED,
        );
        assert!(!p.changes[1]
            .steps
            .iter()
            .any(|s| matches!(s, Step::PublicSchema { .. })));
    }

    #[test]
    fn privileged_roles_are_refused() {
        let d = desired(&["boss", "ok"]);
        let mut boss = role("boss");
        boss.superuser = true;
        let o = observed(150000, vec![boss], vec![]);
        let p = plan(
            &d,
            &o,
            &[PasswordCheck::Differs, PasswordCheck::Missing],
            ISOLATED,
        );
        assert_eq!(p.conflicts.len(), 1);
        assert!(p.conflicts[0].message.contains("SUPERUSER"));
        assert_eq!(p.conflicts[0].reason, ConflictReason::PrivilegedRole);
        assert!(p.changes.iter().all(|c| c.tenant == "ok"));
    }

    #[test]
    fn adoption_policy() {
        let names = [
            "su", "cr", "repl", "rls", "member", "nologin", "marked", "plain",
        ];
        let d = desired(&names);
        let mut roles: Vec<ObservedRole> = names.iter().map(|n| role(n)).collect();
        roles[0].superuser = true;
        roles[1].create_role = true;
        roles[2].replication = true;
        roles[3].bypass_rls = true;
        roles[4].member_of = vec!["admin".into(), "pg_execute_server_program".into()];
        roles[5].can_login = false;
        roles[6].can_login = false;
        roles[6].marked = true;
        let o = observed(150000, roles, vec![]);
        let p = plan(&d, &o, &[PasswordCheck::Differs; 8], ISOLATED);
        let refused: Vec<&str> = p.conflicts.iter().map(|c| c.tenant.as_str()).collect();
        assert_eq!(refused, ["su", "cr", "repl", "rls", "member", "nologin"]);
        let reasons: Vec<&str> = p.conflicts.iter().map(|c| c.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "privileged_role",
                "privileged_role",
                "privileged_role",
                "privileged_role",
                "role_membership",
                "unmarked_nologin"
            ]
        );
        insta::assert_snapshot!(
            p.conflicts.iter().map(|c| c.message.as_str()).collect::<Vec<_>>().join("\n"),
            @r#"
        role "su" exists with SUPERUSER; pgtenant manages only plain login roles: remove the line, or pick another user name
        role "cr" exists with CREATEROLE; pgtenant manages only plain login roles: remove the line, or pick another user name
        role "repl" exists with REPLICATION; pgtenant manages only plain login roles: remove the line, or pick another user name
        role "rls" exists with BYPASSRLS; pgtenant manages only plain login roles: remove the line, or pick another user name
        role "member" is a member of "admin", "pg_execute_server_program"; a tenant role must be a member of no role, since its password would give whatever they can do: revoke the membership (REVOKE "admin" FROM "member") or remove the line
        role "nologin" exists with NOLOGIN and was not created by pgtenant; giving it a password and LOGIN would let the users file log in as it: if it is this tenant's, mark it (COMMENT ON ROLE "nologin" IS 'managed by pgtenant'), else remove the line
        "#
        );
        // Nothing of a refused tenant is planned.
        let changed: Vec<&str> = p.changes.iter().map(|c| c.tenant.as_str()).collect();
        assert!(
            changed.iter().all(|t| *t == "marked" || *t == "plain"),
            "{changed:?}"
        );
        assert!(lines(&p).contains(&r#"~ role "marked": login, password"#.to_owned()));
    }

    #[test]
    fn databases_with_foreign_objects_are_not_taken() {
        let d = desired(&["billing", "empty", "drifted", "unknown"]);
        let mut billing = database("billing_db", "other");
        billing.foreign_objects = Some(ForeignObjects::OwnedBy("other".into()));
        let empty = database("empty_db", "postgres");
        let drifted = database("drifted_db", "someone");
        let mut unknown = database("unknown_db", "someone");
        unknown.foreign_objects = Some(ForeignObjects::Unknown("connection refused".into()));
        let o = observed(150000, vec![], vec![billing, empty, drifted, unknown]);
        let p = plan(&d, &o, &[PasswordCheck::Missing; 4], ISOLATED);
        let refused: Vec<&str> = p.conflicts.iter().map(|c| c.tenant.as_str()).collect();
        assert_eq!(refused, ["billing", "unknown"]);
        assert_eq!(p.conflicts[0].reason, ConflictReason::ForeignDatabase);
        assert_eq!(p.conflicts[0].object, Object::Database);
        assert_eq!(p.conflicts[0].name, "billing_db");
        assert_eq!(
            p.conflicts[0].message,
            "database \"billing_db\" is owned by \"other\" and holds objects owned by \"other\"; \
             pgtenant gives a database to its tenant only when nothing in it belongs to another \
             role: if it is \"billing\"'s, give it yourself (ALTER DATABASE \"billing_db\" OWNER \
             TO \"billing\"), else remove the line or pick another user name"
        );
        assert!(lines(&p)
            .contains(&r#"~ database "empty_db": owner "empty" (was "postgres")"#.to_owned()));
        assert!(lines(&p)
            .contains(&r#"~ database "drifted_db": owner "drifted" (was "someone")"#.to_owned()));
        // Not looked into (a bug elsewhere) is refused too.
        let mut blind = database("billing_db", "other");
        blind.foreign_objects = None;
        let p = plan(
            &desired(&["billing"]),
            &observed(150000, vec![], vec![blind]),
            &[PasswordCheck::Missing],
            ISOLATED,
        );
        assert_eq!(p.conflicts.len(), 1);
    }

    #[test]
    fn tenants_that_cannot_log_in_are_repaired() {
        let d = desired(&["expired", "zero", "closed"]);
        let mut expired = role("expired");
        expired.expired = true;
        let mut zero = role("zero");
        zero.connection_limit = 0;
        let mut closed = database("closed_db", "closed");
        closed.allow_connections = false;
        closed.connection_limit = 0;
        let o = observed(
            150000,
            vec![expired, zero, role("closed")],
            vec![
                database("expired_db", "expired"),
                database("zero_db", "zero"),
                closed,
            ],
        );
        let p = plan(&d, &o, &[PasswordCheck::InSync; 3], ISOLATED);
        insta::assert_snapshot!(lines(&p).join("\n"), @r#"
        ~ role "expired": valid until infinity (expired)
        ~ role "zero": connection limit -1 (was 0)
        ~ database "closed_db": allow connections, connection limit -1 (was 0)
        "#);
        // A limit that lets the tenant in is left alone.
        let mut five = role("zero");
        five.connection_limit = 5;
        let o = observed(150000, vec![five], vec![database("zero_db", "zero")]);
        assert!(plan(&desired(&["zero"]), &o, &[PasswordCheck::InSync], ISOLATED).is_empty());
    }

    #[test]
    fn a_non_superuser_admin_sends_nothing_it_may_not() {
        let d = desired(&["new", "old", "fine"]);
        let mut server_info = server(160000);
        server_info.admin_is_superuser = false;
        server_info.admin_can_create_roles = false;
        server_info.admin = "mgr".into();
        let mut old = role("old");
        old.admin_may_alter = false;
        let mut fine = role("fine");
        fine.admin_may_alter = false;
        let o = Observed {
            server: server_info,
            roles: [old, fine].into_iter().collect(),
            databases: Default::default(),
            available_extensions: HashMap::new(),
        };
        let p = plan(
            &d,
            &o,
            &[
                PasswordCheck::Missing,
                PasswordCheck::Unknown,
                PasswordCheck::InSync,
            ],
            ISOLATED,
        );
        let refused: Vec<&str> = p.conflicts.iter().map(|c| c.tenant.as_str()).collect();
        assert_eq!(refused, ["new", "old"]);
        assert!(p.conflicts[0]
            .message
            .contains("neither SUPERUSER nor CREATEROLE"));
        assert!(p.conflicts[1].message.contains("WITH ADMIN OPTION"));
        assert!(p
            .conflicts
            .iter()
            .all(|c| c.reason == ConflictReason::AdminPrivilege));
        assert!(p.changes.iter().all(|c| c.tenant == "fine"));
    }

    #[test]
    fn plan_json_shape() {
        let d = desired(&["a"]);
        let p = plan(
            &d,
            &observed(150000, vec![], vec![]),
            &[PasswordCheck::Missing],
            ISOLATED,
        );
        insta::assert_snapshot!(crate::render::plan_json(&p, 1));
    }

    fn plan_schema() -> &'static jsonschema::Validator {
        static SCHEMA: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
        SCHEMA.get_or_init(|| {
            let text = include_str!("../../docs/schema/plan.schema.json");
            jsonschema::draft202012::new(&serde_json::from_str(text).unwrap()).unwrap()
        })
    }

    /// Carries out a plan on a model of the catalog, as the server would.
    fn simulate(observed: &mut Observed, plan: &Plan) {
        let old = observed.server.needs_public_schema_fix();
        for step in plan.changes.iter().flat_map(|c| &c.steps) {
            match step {
                Step::CreateRole { role: name } => {
                    observed.roles.insert(role(name));
                }
                Step::AlterRole {
                    role,
                    login,
                    valid_until,
                    connection_limit,
                    ..
                } => {
                    let r = observed.roles.get_mut(role).unwrap();
                    r.can_login |= *login;
                    r.expired &= !valid_until;
                    if *connection_limit {
                        r.connection_limit = -1;
                    }
                }
                Step::AlterDatabaseConnections {
                    database,
                    allow_connections,
                    connection_limit,
                } => {
                    let db = observed.databases.get_mut(database).unwrap();
                    db.allow_connections |= allow_connections;
                    if *connection_limit {
                        db.connection_limit = -1;
                    }
                }
                Step::CreateDatabase {
                    database: name,
                    owner,
                } => {
                    let mut db = database(name, owner);
                    db.public_connect = true;
                    db.public_temporary = true;
                    db.public_schema = old.then(|| SchemaState {
                        owner: "postgres".into(),
                        public_create: true,
                    });
                    observed.databases.insert(db);
                }
                Step::AlterDatabaseOwner { database, owner } => {
                    observed.databases.get_mut(database).unwrap().owner = owner.clone();
                }
                Step::RevokeDatabase {
                    database,
                    connect,
                    temporary,
                } => {
                    let db = observed.databases.get_mut(database).unwrap();
                    db.public_connect &= !connect;
                    db.public_temporary &= !temporary;
                }
                Step::PublicSchema {
                    database,
                    owner,
                    revoke_create,
                } => {
                    let schema = observed
                        .databases
                        .get_mut(database)
                        .unwrap()
                        .public_schema
                        .as_mut()
                        .unwrap();
                    if let Some(owner) = owner {
                        schema.owner = owner.clone();
                    }
                    schema.public_create &= !revoke_create;
                }
                other => unreachable!("no config in these tests: {other:?}"),
            }
        }
    }

    /// (role: (login, superuser)), password check, (database: (owned, PUBLIC
    /// CONNECT, PUBLIC TEMPORARY, schema public: (owned, PUBLIC CREATE))).
    type TenantState = (
        Option<(bool, bool)>,
        u8,
        Option<(bool, bool, bool, Option<(bool, bool)>)>,
    );

    fn arb_tenant_state() -> impl proptest::strategy::Strategy<Value = TenantState> {
        use proptest::prelude::*;
        (
            proptest::option::of((any::<bool>(), proptest::bool::weighted(0.1))),
            0u8..5,
            proptest::option::of((
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                proptest::option::of((any::<bool>(), any::<bool>())),
            )),
        )
    }

    proptest::proptest! {
        /// The law the whole tool rests on: once a plan is carried out, the
        /// next plan has no changes (only the same refusals).
        #[test]
        fn plan_after_apply_is_empty(
            states in proptest::collection::vec(arb_tenant_state(), 0..8),
            major in 13u32..=18,
            isolation in proptest::prelude::any::<bool>(),
        ) {
            let names: Vec<String> = (0..states.len()).map(|i| format!("t{i}")).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let d = desired(&refs);
            let mut roles = Vec::new();
            let mut dbs = Vec::new();
            let mut checks = Vec::new();
            for (name, (r, check, db)) in names.iter().zip(&states) {
                if let Some((login, superuser)) = r {
                    let mut o = role(name);
                    o.can_login = *login;
                    o.superuser = *superuser;
                    // Reuse the password draw for the login-blocking
                    // attributes, so the strategy stays small.
                    o.expired = *check == 1;
                    o.connection_limit = if *check == 2 { 0 } else { -1 };
                    o.marked = !*login && *check != 3;
                    roles.push(o);
                }
                checks.push(match check {
                    0 => PasswordCheck::InSync,
                    1 => PasswordCheck::Differs,
                    2 => PasswordCheck::Missing,
                    3 => PasswordCheck::Upgrade,
                    _ => PasswordCheck::Differs,
                });
                if let Some((own, connect, temporary, schema)) = db {
                    let mut o = database(&format!("{name}_db"), if *own { name } else { "postgres" });
                    o.public_connect = *connect;
                    o.public_temporary = *temporary;
                    o.allow_connections = !(*connect && *temporary);
                    o.connection_limit = if *own && *connect { 0 } else { -1 };
                    o.public_schema = (major < 15)
                        .then(|| schema.map(|(own, create)| SchemaState {
                            owner: if own { name.clone() } else { "postgres".into() },
                            public_create: create,
                        }))
                        .flatten();
                    dbs.push(o);
                }
            }
            let mut o = observed(major * 10000, roles, dbs);
            let options = Options { isolation };
            let first = plan(&d, &o, &checks, options);
            // Whatever the plan, its JSON is what the published schema says.
            let json: serde_json::Value =
                serde_json::from_str(&crate::render::plan_json(&first, d.tenants.len())).unwrap();
            let errors: Vec<String> =
                plan_schema().iter_errors(&json).map(|e| e.to_string()).collect();
            proptest::prop_assert!(errors.is_empty(), "{:?}\n{}", errors, json);
            simulate(&mut o, &first);
            // Every password that was set now matches.
            let after = vec![PasswordCheck::InSync; d.tenants.len()];
            let second = plan(&d, &o, &after, options);
            proptest::prop_assert!(second.changes.is_empty(), "{:?}", second.changes);
            proptest::prop_assert_eq!(second.conflicts, first.conflicts);
        }
    }

    /// A tenant with the databases `names` (the config's `databases:`).
    fn with_databases(role: &str, names: &[&str]) -> Desired {
        let mut d = desired(&[role]);
        d.tenants[0].databases = names
            .iter()
            .map(|n| crate::input::desired::DatabaseSpec::named(n.to_string()))
            .collect();
        d.tenants[0].database = names[0].to_string();
        d
    }

    #[test]
    fn the_ownership_rule_holds_for_every_database_of_a_tenant() {
        let d = with_databases("harbor", &["harbor_db", "harbor_notary"]);
        let mine = database("harbor_db", "harbor");
        let mut theirs = database("harbor_notary", "billing");
        theirs.foreign_objects = Some(ForeignObjects::OwnedBy("billing".into()));
        let o = observed(150000, vec![role("harbor")], vec![mine, theirs.clone()]);
        let p = plan(&d, &o, &[PasswordCheck::InSync], ISOLATED);
        assert_eq!(p.conflicts.len(), 1);
        assert!(p.conflicts[0].blocking);
        assert!(
            p.conflicts[0]
                .message
                .contains("database \"harbor_notary\""),
            "{}",
            p.conflicts[0].message
        );
        assert!(p.changes.is_empty(), "{:?}", lines(&p));
        // Empty (nothing of another role in it): handed over.
        theirs.foreign_objects = Some(ForeignObjects::None);
        let o = observed(
            150000,
            vec![role("harbor")],
            vec![database("harbor_db", "harbor"), theirs],
        );
        let p = plan(&d, &o, &[PasswordCheck::InSync], ISOLATED);
        assert!(p.conflicts.is_empty());
        assert_eq!(
            lines(&p),
            [r#"~ database "harbor_notary": owner "harbor" (was "billing")"#]
        );
    }

    #[test]
    fn every_database_of_a_tenant_is_opened_up() {
        let d = with_databases("gitlab", &["gitlab_db", "gitlab_ci"]);
        let mut ci = database("gitlab_ci", "gitlab");
        ci.allow_connections = false;
        ci.connection_limit = 0;
        let o = observed(
            150000,
            vec![role("gitlab")],
            vec![database("gitlab_db", "gitlab"), ci],
        );
        let p = plan(&d, &o, &[PasswordCheck::InSync], ISOLATED);
        assert_eq!(
            lines(&p),
            [r#"~ database "gitlab_ci": allow connections, connection limit -1 (was 0)"#]
        );
        assert_eq!(
            p.changes[0].steps,
            [Step::AlterDatabaseConnections {
                database: "gitlab_ci".into(),
                allow_connections: true,
                connection_limit: true,
            }]
        );
    }

    #[test]
    fn a_configured_connection_limit_takes_precedence() {
        let mut d = with_databases("app", &["app_db", "app_two"]);
        d.tenants[0].connection_limit = Some(0);
        d.tenants[0].databases[0].connection_limit = Some(0);
        d.tenants[0].databases[1].connection_limit = Some(5);
        let mut r = role("app");
        r.connection_limit = 0;
        let mut one = database("app_db", "app");
        one.connection_limit = 0;
        let mut two = database("app_two", "app");
        two.connection_limit = 0;
        let o = observed(150000, vec![r], vec![one, two]);
        let p = plan(&d, &o, &[PasswordCheck::InSync], ISOLATED);
        // 0 as configured stays; 5 is set, by the config's step alone.
        assert_eq!(
            lines(&p),
            [r#"~ database "app_two": connection limit 5 (was 0)"#]
        );
        assert!(!p.changes[0]
            .steps
            .iter()
            .any(|s| matches!(s, Step::AlterDatabaseConnections { .. })));
        // Without a configured limit, 0 is put back to none.
        let mut d = with_databases("app", &["app_db"]);
        d.tenants[0].connection_limit = None;
        let mut r = role("app");
        r.connection_limit = 0;
        let o = observed(150000, vec![r], vec![database("app_db", "app")]);
        let p = plan(&d, &o, &[PasswordCheck::InSync], ISOLATED);
        assert_eq!(lines(&p), [r#"~ role "app": connection limit -1 (was 0)"#]);
    }

    #[test]
    fn readers_and_writers_follow_the_adoption_policy() {
        let mut d = desired(&["app"]);
        for (name, access) in [
            ("grafana", crate::input::desired::Access::Reader),
            ("group", crate::input::desired::Access::Reader),
            ("expired", crate::input::desired::Access::Writer),
        ] {
            d.tenants[0].members.push((name.into(), access));
            d.members.push(crate::input::desired::Member {
                role: name.into(),
                password: Password::new("pw"),
                origin: Origin {
                    file: "config".into(),
                    line: 1,
                },
            });
        }
        let mut admin_member = role("grafana");
        admin_member.member_of = vec!["postgres".into()];
        let mut group = role("group");
        group.can_login = false;
        let mut expired = role("expired");
        expired.expired = true;
        let o = observed(
            150000,
            vec![role("app"), admin_member, group, expired],
            vec![database("app_db", "app")],
        );
        let p = plan(&d, &o, &[PasswordCheck::InSync; 4], ISOLATED);
        let refused: Vec<&str> = p.conflicts.iter().map(|c| c.tenant.as_str()).collect();
        assert_eq!(refused, ["grafana", "group"]);
        let l = lines(&p);
        assert!(
            l.contains(&r#"~ role "expired": valid until infinity (expired)"#.to_owned()),
            "{l:?}"
        );
        // Nothing is granted to a refused reader.
        assert!(
            !p.changes
                .iter()
                .any(|c| crate::render::change_line(c).contains("grafana")),
            "{l:?}"
        );
    }
}
