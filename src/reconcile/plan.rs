//! The plan: the difference between the desired and the observed state, as a
//! list of changes. Pure: no I/O, so every rule is unit-tested here.
//!
//! Each property of a tenant converges on its own, and a property that is
//! already right produces nothing: a second run with the same input plans
//! nothing.

use serde::Serialize;

use crate::input::desired::{Desired, Tenant};
use crate::reconcile::password::PasswordCheck;
use crate::server::catalog::{ForeignObjects, Observed, ObservedDatabase, TENANT_MARKER};
use crate::server::sql::quote_ident;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Object {
    Role,
    Database,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
}

/// Why a password is (re)set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordReason {
    /// The role is created: it gets its first password.
    New,
    /// The stored secret does not match the desired password.
    Differs,
    /// The role has no password.
    Missing,
    /// An md5 secret on a server that asks for SCRAM: replaced once.
    #[serde(rename = "md5_upgrade")]
    Upgrade,
    /// The admin cannot read stored secrets, so it sets the password always.
    Unknown,
    /// The stored verifier asks for more key-derivation work than any
    /// verifier pgtenant makes: it is not checked, it is replaced.
    Excessive,
}

/// An attribute of an object that a change sets. The JSON names are part of
/// the plan's contract (`docs/schema/plan.schema.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Attribute {
    /// The role may log in.
    Login,
    /// The role's password (its value never appears: `from`/`to` are null).
    Password,
    /// The role's `VALID UNTIL` (an expired role cannot log in).
    ValidUntil,
    /// The role's or database's connection limit (0 blocks every login).
    ConnectionLimit,
    /// The database accepts connections (`datallowconn`).
    AllowConnections,
    /// The database's owner.
    Owner,
    /// PUBLIC holds CONNECT on the database.
    PublicConnect,
    /// PUBLIC holds TEMPORARY on the database.
    PublicTemporary,
    /// The owner of schema `public` in the database (14 and older).
    PublicSchemaOwner,
    /// PUBLIC holds CREATE on schema `public` in the database (14 and older).
    PublicSchemaCreate,
}

/// A value before or after a change: `null` in JSON where the object does not
/// exist yet or where the value is a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Text(String),
}

/// One attribute set by a change: `from` what the catalog holds `to` what the
/// input asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttributeChange {
    pub attribute: Attribute,
    pub from: Option<Value>,
    pub to: Option<Value>,
    /// Why a password is set; null for every other attribute.
    pub reason: Option<PasswordReason>,
}

impl AttributeChange {
    fn new(attribute: Attribute, from: Option<Value>, to: Value) -> Self {
        AttributeChange {
            attribute,
            from,
            to: Some(to),
            reason: None,
        }
    }

    fn password(reason: PasswordReason) -> Self {
        AttributeChange {
            attribute: Attribute::Password,
            from: None,
            to: None,
            reason: Some(reason),
        }
    }
}

fn text(s: &str) -> Option<Value> {
    Some(Value::Text(s.to_owned()))
}

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
}

/// One changed object, as people and scripts read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The tenant's role, which every change belongs to.
    pub tenant: String,
    pub object: Object,
    pub name: String,
    pub action: Action,
    /// What the change sets, in the order the text output lists it.
    pub attributes: Vec<AttributeChange>,
    #[serde(skip)]
    pub steps: Vec<Step>,
}

/// Why pgtenant refuses a tenant, as a stable code for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictReason {
    /// An existing role with SUPERUSER, CREATEROLE, REPLICATION or BYPASSRLS.
    PrivilegedRole,
    /// An existing role that is a member of another role.
    RoleMembership,
    /// An existing role without LOGIN that pgtenant did not create.
    UnmarkedNologin,
    /// An existing database owned by another role, holding objects of
    /// another role (or that could not be looked into).
    ForeignDatabase,
    /// The admin may not create or alter the tenant's role.
    AdminPrivilege,
}

impl ConflictReason {
    /// The JSON value, also used as a log field.
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictReason::PrivilegedRole => "privileged_role",
            ConflictReason::RoleMembership => "role_membership",
            ConflictReason::UnmarkedNologin => "unmarked_nologin",
            ConflictReason::ForeignDatabase => "foreign_database",
            ConflictReason::AdminPrivilege => "admin_privilege",
        }
    }
}

/// A tenant that pgtenant refuses to manage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub tenant: String,
    /// The object that stands in the way.
    pub object: Object,
    pub name: String,
    pub reason: ConflictReason,
    /// One line for people.
    pub message: String,
}

impl Conflict {
    fn role(tenant: &Tenant, reason: ConflictReason, message: String) -> Self {
        Conflict {
            tenant: tenant.role.clone(),
            object: Object::Role,
            name: tenant.role.clone(),
            reason,
            message,
        }
    }
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
    assert_eq!(desired.tenants.len(), passwords.len());
    let mut plan = Plan::default();
    for (tenant, check) in desired.tenants.iter().zip(passwords) {
        if let Some(conflict) =
            conflict(tenant, observed).or_else(|| admin_lacks_privilege(tenant, observed, *check))
        {
            plan.conflicts.push(conflict);
            continue;
        }
        plan_role(tenant, observed, *check, &mut plan.changes);
        plan_database(tenant, observed, options, &mut plan.changes);
    }
    plan
}

/// Why pgtenant refuses to manage `tenant`, if it does: the adoption
/// policy for its role, then the ownership rule for its database.
pub fn conflict(tenant: &Tenant, observed: &Observed) -> Option<Conflict> {
    refusal(tenant, observed).or_else(|| database_refusal(tenant, observed))
}

/// The adoption policy: an existing role is managed only if it is a plain
/// tenant. It has none of SUPERUSER, CREATEROLE, REPLICATION and BYPASSRLS,
/// it is a member of no role (membership in the admin, in
/// `pg_execute_server_program` or in another application's group would
/// hand their powers to whoever can edit the users file), and it can
/// already log in (a role of the article's scripts) or carries pgtenant's
/// marker (a role pgtenant created, whose LOGIN was taken away). Anything
/// else is a conflict: nothing of the tenant is changed.
fn refusal(tenant: &Tenant, observed: &Observed) -> Option<Conflict> {
    let role = observed.roles.get(&tenant.role)?;
    let name = quote_ident(&tenant.role);
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
            tenant,
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
            tenant,
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
            tenant,
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
fn database_refusal(tenant: &Tenant, observed: &Observed) -> Option<Conflict> {
    let db = observed.databases.get(&tenant.database)?;
    if db.owner == tenant.role {
        return None;
    }
    let database = quote_ident(&tenant.database);
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
        name: tenant.database.clone(),
        reason: ConflictReason::ForeignDatabase,
        message: format!(
            "database {database} is owned by {owner} and {why}; pgtenant gives a database to \
             its tenant only when nothing in it belongs to another role: if it is {role}'s, \
             give it yourself (ALTER DATABASE {database} OWNER TO {role}), else remove the line \
             or pick another user name"
        ),
    })
}

/// A non-superuser admin that may not create or alter the tenant's role
/// would send the statement (and its verifier) only to have it refused, and
/// the server logs a refused statement with its text. So the tenant is a
/// conflict and nothing is sent.
fn admin_lacks_privilege(
    tenant: &Tenant,
    observed: &Observed,
    check: PasswordCheck,
) -> Option<Conflict> {
    let server = &observed.server;
    if server.admin_is_superuser {
        return None;
    }
    let admin = quote_ident(&server.admin);
    let name = quote_ident(&tenant.role);
    match observed.roles.get(&tenant.role) {
        None if !server.admin_can_create_roles => Some(Conflict::role(
            tenant,
            ConflictReason::AdminPrivilege,
            format!(
                "the admin role {admin} has neither SUPERUSER nor CREATEROLE, so it cannot \
                 create role {name} (nothing was sent): grant it CREATEROLE \
                 (ALTER ROLE {admin} CREATEROLE) or connect as a superuser"
            ),
        )),
        None => None,
        Some(role) => {
            let needs_alter = check.needs_set()
                || !role.can_login
                || role.expired
                || blocks_login(role.connection_limit);
            (needs_alter && !role.admin_may_alter).then(|| {
                Conflict::role(
                    tenant,
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

/// The role connection limit under which a tenant cannot log in. A
/// configured limit (tenant-spec config) takes precedence where it exists.
pub fn blocks_login(connection_limit: i32) -> bool {
    connection_limit == 0
}

fn plan_role(tenant: &Tenant, observed: &Observed, check: PasswordCheck, out: &mut Vec<Change>) {
    let role = &tenant.role;
    let Some(existing) = observed.roles.get(role) else {
        out.push(Change {
            tenant: role.clone(),
            object: Object::Role,
            name: role.clone(),
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
    let connection_limit = blocks_login(existing.connection_limit);
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

fn plan_database(tenant: &Tenant, observed: &Observed, options: Options, out: &mut Vec<Change>) {
    let role = &tenant.role;
    let database = &tenant.database;
    let schema_fix = observed.server.needs_public_schema_fix();
    let Some(existing) = observed.databases.get(database) else {
        let mut attributes = vec![AttributeChange::new(
            Attribute::Owner,
            None,
            Value::Text(role.clone()),
        )];
        let mut steps = vec![Step::CreateDatabase {
            database: database.clone(),
            owner: role.clone(),
        }];
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
        out.push(Change {
            tenant: role.clone(),
            object: Object::Database,
            name: database.clone(),
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
    let allow_connections = !existing.allow_connections;
    let connection_limit = blocks_login(existing.connection_limit);
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
    if !steps.is_empty() {
        out.push(Change {
            tenant: role.clone(),
            object: Object::Database,
            name: database.clone(),
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
    use crate::reconcile::password::PasswordEncryption;
    use crate::server::catalog::{ObservedRole, SchemaState, ServerInfo};
    use std::collections::HashMap;

    fn server(version_num: u32) -> ServerInfo {
        ServerInfo {
            version_num,
            password_encryption: PasswordEncryption::ScramSha256,
            scram_iterations: None,
            in_recovery: false,
            admin: "postgres".into(),
            admin_is_superuser: true,
            admin_can_create_roles: true,
            can_read_passwords: true,
            has_pg_stat_statements: false,
            fsync: true,
        }
    }

    fn desired(roles: &[&str]) -> Desired {
        Desired {
            tenants: roles
                .iter()
                .enumerate()
                .map(|(i, r)| Tenant {
                    role: r.to_string(),
                    password: Password::new("pw"),
                    database: Tenant::database_name(r),
                    origin: Origin {
                        file: "users".into(),
                        line: i + 1,
                    },
                })
                .collect(),
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
        }
    }

    fn observed(version: u32, roles: Vec<ObservedRole>, dbs: Vec<ObservedDatabase>) -> Observed {
        Observed {
            server: server(version),
            roles: roles.into_iter().map(|r| (r.name.clone(), r)).collect(),
            databases: dbs
                .into_iter()
                .map(|d| (d.name.clone(), d))
                .collect::<HashMap<_, _>>(),
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
            roles: [("old".to_owned(), old), ("fine".to_owned(), fine)].into(),
            databases: HashMap::new(),
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
                    observed.roles.insert(name.clone(), role(name));
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
                    observed.databases.insert(name.clone(), db);
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
}
