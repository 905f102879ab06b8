//! How the config file's steps (see [`crate::reconcile::plan_config`]) run: which
//! statements, on which session, as which role. [`crate::reconcile::apply`] carries
//! them out.
//!
//! - Role settings and connection limits: the admin session.
//! - Database ACLs and connection limits: the admin session, as the
//!   database's owner when the admin is no superuser (as for the REVOKEs).
//! - Extensions, schemas and grants: one short session into the database,
//!   opened on first use and kept for the tenant's other steps there.
//!   Grants, default privileges and new schemas run as the tenant (`SET
//!   LOCAL ROLE` in the implicit transaction of one query string): the
//!   tenant owns what is granted, so it is the grantor, and `ALTER DEFAULT
//!   PRIVILEGES FOR ROLE` needs no more than its own rights. A superuser
//!   admin creates extensions itself; any other admin does it as the tenant,
//!   which owns the database and so may create trusted extensions.

use crate::input::desired::SettingValue;
use crate::reconcile::plan_config::ConfigStep;
use crate::server::catalog::ServerInfo;
use crate::server::sql::{self, quote_ident, Statement};

/// Where a statement runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runner {
    Admin,
    /// The admin session, as the owner of `database` unless the admin is a
    /// superuser.
    AdminAsOwner {
        database: String,
    },
    /// A session into `database`, as `role` when given.
    Inside {
        database: String,
        role: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct Exec {
    pub runner: Runner,
    pub stmt: Statement,
    /// For error messages: "create schema" ...
    pub operation: &'static str,
    pub object: String,
    /// The admin must be able to `SET ROLE` to this role first.
    pub set_role: Option<String>,
}

/// The statements of one step, and the log line once they ran.
#[derive(Debug, Clone)]
pub struct Planned {
    pub execs: Vec<Exec>,
    pub action: &'static str,
    pub message: String,
}

fn exec(runner: Runner, stmt: Statement, operation: &'static str, object: &str) -> Exec {
    Exec {
        runner,
        stmt,
        operation,
        object: object.to_owned(),
        set_role: None,
    }
}

fn admin_or_owner(server: &ServerInfo, database: &str) -> Runner {
    if server.admin_is_superuser {
        Runner::Admin
    } else {
        Runner::AdminAsOwner {
            database: database.to_owned(),
        }
    }
}

fn inside(database: &str, role: Option<&str>) -> Runner {
    Runner::Inside {
        database: database.to_owned(),
        role: role.map(str::to_owned),
    }
}

pub fn plan(
    step: &ConfigStep,
    server: &ServerInfo,
    strategy: Option<crate::server::strategy::Strategy>,
) -> Planned {
    let q = |s: &str| quote_ident(s);
    match step {
        ConfigStep::CreateDatabaseWith {
            database,
            owner,
            template,
            encoding,
            locale,
            connection_limit,
        } => {
            let stmt = sql::create_database_with(
                database,
                owner,
                template.as_deref(),
                encoding.as_deref(),
                locale.as_deref(),
                *connection_limit,
                strategy,
            );
            let mut e = exec(Runner::Admin, stmt, "create database", database);
            e.set_role = Some(owner.clone());
            Planned {
                execs: vec![e],
                action: "create_database",
                message: format!("created database {} owned by {}", q(database), q(owner)),
            }
        }
        ConfigStep::DatabaseConnectionLimit { database, limit } => Planned {
            execs: vec![exec(
                admin_or_owner(server, database),
                sql::alter_database_connection_limit(database, *limit),
                "set connection limit of database",
                database,
            )],
            action: "database_connection_limit",
            message: format!(
                "set connection limit of database {} to {limit}",
                q(database)
            ),
        },
        ConfigStep::RoleConnectionLimit { role, limit } => Planned {
            execs: vec![exec(
                Runner::Admin,
                sql::alter_role_connection_limit(role, *limit),
                "set connection limit of role",
                role,
            )],
            action: "role_connection_limit",
            message: format!("set connection limit of role {} to {limit}", q(role)),
        },
        ConfigStep::SetRoleSetting { role, name, value } => {
            let values: Vec<&str> = match value {
                SettingValue::One(v) => vec![v.as_str()],
                SettingValue::List(items) => items.iter().map(String::as_str).collect(),
            };
            Planned {
                execs: vec![exec(
                    Runner::Admin,
                    sql::alter_role_set(role, name, &values),
                    "set a setting of role",
                    role,
                )],
                action: "role_setting",
                message: format!("set {name} = {} for role {}", values.join(", "), q(role)),
            }
        }
        ConfigStep::GrantConnect { database, role } => Planned {
            execs: vec![exec(
                admin_or_owner(server, database),
                sql::grant_connect(database, role),
                "grant CONNECT on database",
                database,
            )],
            action: "grant_connect",
            message: format!("granted CONNECT on database {} to {}", q(database), q(role)),
        },
        ConfigStep::CreateSchema {
            database,
            schema,
            owner,
        } => {
            let mut e = exec(
                inside(database, Some(owner)),
                sql::create_schema(schema),
                "create schema",
                schema,
            );
            e.set_role = Some(owner.clone());
            Planned {
                execs: vec![e],
                action: "create_schema",
                message: format!(
                    "created schema {} in database {} owned by {}",
                    q(schema),
                    q(database),
                    q(owner)
                ),
            }
        }
        ConfigStep::AlterSchemaOwner {
            database,
            schema,
            owner,
        } => {
            let mut e = exec(
                inside(database, None),
                sql::alter_schema_owner(schema, owner),
                "change owner of schema",
                schema,
            );
            e.set_role = Some(owner.clone());
            Planned {
                execs: vec![e],
                action: "alter_schema_owner",
                message: format!(
                    "gave schema {} in database {} back to {}",
                    q(schema),
                    q(database),
                    q(owner)
                ),
            }
        }
        ConfigStep::CreateExtension {
            database,
            owner,
            extension,
        } => {
            let stmt = sql::create_extension(
                &extension.name,
                extension.schema.as_deref(),
                extension.version.as_deref(),
            );
            Planned {
                execs: vec![extension_exec(
                    server,
                    database,
                    owner,
                    stmt,
                    "create extension",
                    &extension.name,
                )],
                action: "create_extension",
                message: format!(
                    "created extension {} in database {}",
                    q(&extension.name),
                    q(database)
                ),
            }
        }
        ConfigStep::UpdateExtension {
            database,
            owner,
            name,
            version,
        } => Planned {
            execs: vec![extension_exec(
                server,
                database,
                owner,
                sql::update_extension(name, version),
                "update extension",
                name,
            )],
            action: "update_extension",
            message: format!(
                "updated extension {} in database {} to version {version}",
                q(name),
                q(database)
            ),
        },
        ConfigStep::GrantMember(g) => {
            let mut stmts = Vec::new();
            if !g.usage.is_empty() {
                stmts.push(sql::grant_schema_usage(&g.usage, &g.member));
            }
            if !g.tables.is_empty() {
                stmts.push(sql::grant_on_all(
                    g.access.table_privileges(),
                    "TABLES",
                    &g.tables,
                    &g.member,
                ));
            }
            if !g.sequences.is_empty() {
                stmts.push(sql::grant_on_all(
                    g.access.sequence_privileges(),
                    "SEQUENCES",
                    &g.sequences,
                    &g.member,
                ));
            }
            if let Some(p) = &g.default_tables {
                stmts.push(sql::grant_default(&g.tenant, p, "TABLES", &g.member));
            }
            if let Some(p) = &g.default_sequences {
                stmts.push(sql::grant_default(&g.tenant, p, "SEQUENCES", &g.member));
            }
            if g.default_schemas {
                stmts.push(sql::grant_default(
                    &g.tenant,
                    &["USAGE"],
                    "SCHEMAS",
                    &g.member,
                ));
            }
            let execs = stmts
                .into_iter()
                .map(|stmt| {
                    let mut e = exec(
                        inside(&g.database, Some(&g.tenant)),
                        stmt,
                        "grant privileges to",
                        &g.member,
                    );
                    e.set_role = Some(g.tenant.clone());
                    e
                })
                .collect();
            Planned {
                execs,
                action: "grant_member",
                message: format!(
                    "granted {} {} privileges on {} in database {}",
                    q(&g.member),
                    g.access.as_str(),
                    q(&g.tenant),
                    q(&g.database)
                ),
            }
        }
    }
}

fn extension_exec(
    server: &ServerInfo,
    database: &str,
    owner: &str,
    stmt: Statement,
    operation: &'static str,
    name: &str,
) -> Exec {
    if server.admin_is_superuser {
        return exec(inside(database, None), stmt, operation, name);
    }
    let mut e = exec(inside(database, Some(owner)), stmt, operation, name);
    e.set_role = Some(owner.to_owned());
    e
}
