//! The plan: the difference between the desired and the observed state, as a
//! list of changes. Pure: no I/O, so every rule is unit-tested here.
//!
//! Each property of a tenant converges on its own, and a property that is
//! already right produces nothing: a second run with the same input plans
//! nothing.

use serde::Serialize;

use crate::input::desired::{Desired, Tenant};
use crate::reconcile::password::PasswordCheck;
use crate::server::catalog::{Observed, ObservedDatabase};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordReason {
    /// The stored secret does not match the desired password.
    Differs,
    /// The role has no password.
    Missing,
    /// An md5 secret on a server that asks for SCRAM: replaced once.
    Upgrade,
    /// The admin cannot read stored secrets, so it sets the password always.
    Unknown,
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
    pub object: Object,
    pub name: String,
    pub action: Action,
    pub details: Vec<String>,
    /// The tenant's role, which every change belongs to.
    pub tenant: String,
    #[serde(skip)]
    pub steps: Vec<Step>,
}

/// A tenant that pgtenant refuses to manage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub tenant: String,
    pub reason: String,
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
        if let Some(reason) = refusal(tenant, observed) {
            plan.conflicts.push(Conflict {
                tenant: tenant.role.clone(),
                reason,
            });
            continue;
        }
        plan_role(tenant, observed, *check, &mut plan.changes);
        plan_database(tenant, observed, options, &mut plan.changes);
    }
    plan
}

/// An existing role with powers beyond a tenant's is never taken over by a
/// line in a users file: that would hand a superuser's password to whoever
/// can edit the Secret.
fn refusal(tenant: &Tenant, observed: &Observed) -> Option<String> {
    let role = observed.roles.get(&tenant.role)?;
    let mut powers = Vec::new();
    if role.superuser {
        powers.push("SUPERUSER");
    }
    if role.replication {
        powers.push("REPLICATION");
    }
    if role.bypass_rls {
        powers.push("BYPASSRLS");
    }
    if powers.is_empty() {
        return None;
    }
    Some(format!(
        "role {} exists with {}; pgtenant manages only ordinary login roles",
        quote_ident(&tenant.role),
        powers.join(", ")
    ))
}

fn plan_role(tenant: &Tenant, observed: &Observed, check: PasswordCheck, out: &mut Vec<Change>) {
    let role = &tenant.role;
    let Some(existing) = observed.roles.get(role) else {
        out.push(Change {
            object: Object::Role,
            name: role.clone(),
            action: Action::Create,
            details: vec!["login".into(), "password".into()],
            tenant: role.clone(),
            steps: vec![Step::CreateRole { role: role.clone() }],
        });
        return;
    };
    let login = !existing.can_login;
    let password = match check {
        PasswordCheck::InSync => None,
        PasswordCheck::Differs => Some(PasswordReason::Differs),
        PasswordCheck::Missing => Some(PasswordReason::Missing),
        PasswordCheck::Upgrade => Some(PasswordReason::Upgrade),
        PasswordCheck::Unknown => Some(PasswordReason::Unknown),
    };
    if !login && password.is_none() {
        return;
    }
    let mut details = Vec::new();
    if login {
        details.push("login".to_owned());
    }
    if let Some(reason) = password {
        details.push(
            match reason {
                PasswordReason::Differs => "password",
                PasswordReason::Missing => "password (none set)",
                PasswordReason::Upgrade => "password (md5 to scram-sha-256)",
                PasswordReason::Unknown => "password (cannot read stored secrets)",
            }
            .to_owned(),
        );
    }
    out.push(Change {
        object: Object::Role,
        name: role.clone(),
        action: Action::Update,
        details,
        tenant: role.clone(),
        steps: vec![Step::AlterRole {
            role: role.clone(),
            login,
            password,
        }],
    });
}

fn plan_database(tenant: &Tenant, observed: &Observed, options: Options, out: &mut Vec<Change>) {
    let role = &tenant.role;
    let database = &tenant.database;
    let schema_fix = observed.server.needs_public_schema_fix();
    let owner_detail = || format!("owner {}", quote_ident(role));

    let Some(existing) = observed.databases.get(database) else {
        let mut details = vec![owner_detail()];
        let mut steps = vec![Step::CreateDatabase {
            database: database.clone(),
            owner: role.clone(),
        }];
        if options.isolation {
            details.push("revoke CONNECT, TEMPORARY from PUBLIC".to_owned());
            steps.push(Step::RevokeDatabase {
                database: database.clone(),
                connect: true,
                temporary: true,
            });
            if schema_fix {
                details.push(format!("schema public owner {}", quote_ident(role)));
                details.push("revoke CREATE on schema public from PUBLIC".to_owned());
                steps.push(Step::PublicSchema {
                    database: database.clone(),
                    owner: Some(role.clone()),
                    revoke_create: true,
                });
            }
        }
        out.push(Change {
            object: Object::Database,
            name: database.clone(),
            action: Action::Create,
            details,
            tenant: role.clone(),
            steps,
        });
        return;
    };

    let mut details = Vec::new();
    let mut steps = Vec::new();
    if existing.owner != *role {
        details.push(format!(
            "owner {} (was {})",
            quote_ident(role),
            quote_ident(&existing.owner)
        ));
        steps.push(Step::AlterDatabaseOwner {
            database: database.clone(),
            owner: role.clone(),
        });
    }
    if options.isolation {
        isolate_existing(existing, role, schema_fix, &mut details, &mut steps);
    }
    if !steps.is_empty() {
        out.push(Change {
            object: Object::Database,
            name: database.clone(),
            action: Action::Update,
            details,
            tenant: role.clone(),
            steps,
        });
    }
}

fn isolate_existing(
    db: &ObservedDatabase,
    role: &str,
    schema_fix: bool,
    details: &mut Vec<String>,
    steps: &mut Vec<Step>,
) {
    if db.public_connect || db.public_temporary {
        let privileges: Vec<&str> = [
            (db.public_connect, "CONNECT"),
            (db.public_temporary, "TEMPORARY"),
        ]
        .into_iter()
        .filter_map(|(has, name)| has.then_some(name))
        .collect();
        details.push(format!("revoke {} from PUBLIC", privileges.join(", ")));
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
        details.push(format!(
            "schema public owner {} (was {})",
            quote_ident(owner),
            quote_ident(&schema.owner)
        ));
    }
    if schema.public_create {
        details.push("revoke CREATE on schema public from PUBLIC".to_owned());
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
    let mut details = Vec::new();
    let mut steps = Vec::new();
    isolate_existing(db, role, schema_fix, &mut details, &mut steps);
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
            can_read_passwords: true,
            has_pg_stat_statements: false,
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
            password: Some("SCRAM-SHA-256$...".into()),
        }
    }

    fn database(name: &str, owner: &str) -> ObservedDatabase {
        ObservedDatabase {
            name: name.into(),
            owner: owner.into(),
            public_connect: false,
            public_temporary: false,
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
        assert!(p.conflicts[0].reason.contains("SUPERUSER"));
        assert!(p.changes.iter().all(|c| c.tenant == "ok"));
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
        insta::assert_snapshot!(crate::render::plan_json(&p));
    }

    /// Carries out a plan on a model of the catalog, as the server would.
    fn simulate(observed: &mut Observed, plan: &Plan) {
        let old = observed.server.needs_public_schema_fix();
        for step in plan.changes.iter().flat_map(|c| &c.steps) {
            match step {
                Step::CreateRole { role: name } => {
                    observed.roles.insert(name.clone(), role(name));
                }
                Step::AlterRole { role, login, .. } => {
                    let r = observed.roles.get_mut(role).unwrap();
                    r.can_login |= *login;
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
            simulate(&mut o, &first);
            // Every password that was set now matches.
            let after = vec![PasswordCheck::InSync; d.tenants.len()];
            let second = plan(&d, &o, &after, options);
            proptest::prop_assert!(second.changes.is_empty(), "{:?}", second.changes);
            proptest::prop_assert_eq!(second.conflicts, first.conflicts);
        }
    }
}
