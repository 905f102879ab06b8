//! Carries out the config file's steps (see [`crate::plan_config`]): role
//! settings and connection limits on the admin session; extensions, schemas
//! and grants inside a tenant database, over one short connection per
//! database that the caller keeps for the tenant's other steps there.
//!
//! Grants and default privileges run as the tenant (`SET LOCAL ROLE` in the
//! implicit transaction of one query string): the tenant owns what is
//! granted, so the grantor is the tenant, and `ALTER DEFAULT PRIVILEGES`
//! needs no more than the tenant's own rights.

use std::collections::HashMap;

use tokio_postgres::Client;
use tracing::info;

use crate::apply::{ensure_can_set_role, execute, revoke_as_owner};
use crate::catalog::ServerInfo;
use crate::conninfo::ConnSettings;
use crate::db::{self, DbError};
use crate::desired::SettingValue;
use crate::plan::Step;
use crate::sql::{self, quote_ident, Statement};

/// The session into `database`, opened on first use.
async fn session<'a>(
    settings: &ConnSettings,
    inside: &'a mut HashMap<String, Client>,
    database: &str,
) -> Result<&'a Client, DbError> {
    if !inside.contains_key(database) {
        let client = db::connect(settings, Some(database)).await?;
        inside.insert(database.to_owned(), client);
    }
    Ok(&inside[database])
}

/// Runs `stmt` as `role` on `client` (the admin made able to first).
async fn as_role(
    admin: &Client,
    client: &Client,
    server: &ServerInfo,
    role: &str,
    stmt: &Statement,
    operation: &str,
    object: &str,
) -> Result<(), DbError> {
    ensure_can_set_role(admin, server, role).await?;
    execute(client, server, &sql::as_role(role, stmt), operation, object).await
}

pub async fn run_step(
    client: &Client,
    settings: &ConnSettings,
    server: &ServerInfo,
    step: &Step,
    inside: &mut HashMap<String, Client>,
) -> Result<(), DbError> {
    match step {
        Step::CreateDatabaseWith {
            database,
            owner,
            template,
            encoding,
            locale,
            connection_limit,
        } => {
            ensure_can_set_role(client, server, owner).await?;
            let stmt = sql::create_database_with(
                database,
                owner,
                template.as_deref(),
                encoding.as_deref(),
                locale.as_deref(),
                *connection_limit,
            );
            execute(client, server, &stmt, "create database", database).await?;
            info!(database = %database, owner = %owner, action = "create_database",
                "created database {} owned by {}", quote_ident(database), quote_ident(owner));
        }
        Step::DatabaseConnectionLimit { database, limit } => {
            let stmt = sql::alter_database_connection_limit(database, *limit);
            if server.admin_is_superuser {
                execute(client, server, &stmt, "set connection limit of database", database)
                    .await?;
            } else {
                revoke_as_owner(client, server, database, &stmt).await?;
            }
            info!(database = %database, limit = *limit, action = "database_connection_limit",
                "set connection limit of database {} to {limit}", quote_ident(database));
        }
        Step::RoleConnectionLimit { role, limit } => {
            let stmt = sql::alter_role_connection_limit(role, *limit);
            execute(client, server, &stmt, "set connection limit of role", role).await?;
            info!(role = %role, limit = *limit, action = "role_connection_limit",
                "set connection limit of role {} to {limit}", quote_ident(role));
        }
        Step::SetRoleSetting { role, name, value } => {
            let values: Vec<&str> = match value {
                SettingValue::One(v) => vec![v.as_str()],
                SettingValue::List(items) => items.iter().map(String::as_str).collect(),
            };
            let stmt = sql::alter_role_set(role, name, &values);
            execute(client, server, &stmt, "set a setting of role", role).await?;
            info!(role = %role, setting = %name, action = "role_setting",
                "set {name} = {} for role {}", values.join(", "), quote_ident(role));
        }
        Step::GrantConnect { database, role } => {
            let stmt = sql::grant_connect(database, role);
            if server.admin_is_superuser {
                execute(client, server, &stmt, "grant CONNECT on database", database).await?;
            } else {
                revoke_as_owner(client, server, database, &stmt).await?;
            }
            info!(database = %database, role = %role, action = "grant_connect",
                "granted CONNECT on database {} to {}", quote_ident(database), quote_ident(role));
        }
        Step::CreateSchema {
            database,
            schema,
            owner,
        } => {
            let c = session(settings, inside, database).await?;
            // As the tenant, which owns the database: it owns the schema.
            as_role(client, c, server, owner, &sql::create_schema(schema), "create schema", schema)
                .await?;
            info!(database = %database, schema = %schema, owner = %owner, action = "create_schema",
                "created schema {} in database {} owned by {}",
                quote_ident(schema), quote_ident(database), quote_ident(owner));
        }
        Step::AlterSchemaOwner {
            database,
            schema,
            owner,
        } => {
            let c = session(settings, inside, database).await?;
            ensure_can_set_role(client, server, owner).await?;
            let stmt = sql::alter_schema_owner(schema, owner);
            execute(c, server, &stmt, "change owner of schema", schema).await?;
            info!(database = %database, schema = %schema, owner = %owner, action = "alter_schema_owner",
                "gave schema {} in database {} back to {}",
                quote_ident(schema), quote_ident(database), quote_ident(owner));
        }
        Step::CreateExtension {
            database,
            extension,
        } => {
            let c = session(settings, inside, database).await?;
            let stmt = sql::create_extension(
                &extension.name,
                extension.schema.as_deref(),
                extension.version.as_deref(),
            );
            run_extension(client, c, server, database, &stmt, "create extension", &extension.name)
                .await?;
            info!(database = %database, extension = %extension.name, action = "create_extension",
                "created extension {} in database {}", quote_ident(&extension.name), quote_ident(database));
        }
        Step::UpdateExtension {
            database,
            name,
            version,
        } => {
            let c = session(settings, inside, database).await?;
            let stmt = sql::update_extension(name, version);
            run_extension(client, c, server, database, &stmt, "update extension", name).await?;
            info!(database = %database, extension = %name, version = %version, action = "update_extension",
                "updated extension {} in database {} to version {version}",
                quote_ident(name), quote_ident(database));
        }
        Step::GrantMember(g) => {
            let c = session(settings, inside, &g.database).await?;
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
                stmts.push(sql::grant_default(&g.tenant, &["USAGE"], "SCHEMAS", &g.member));
            }
            for stmt in &stmts {
                as_role(client, c, server, &g.tenant, stmt, "grant privileges to", &g.member)
                    .await?;
            }
            info!(database = %g.database, role = %g.member, tenant = %g.tenant, action = "grant_member",
                "granted {} {} privileges in database {}",
                quote_ident(&g.member), g.access.as_str(), quote_ident(&g.database));
        }
        other => unreachable!("not a config step: {other:?}"),
    }
    Ok(())
}

/// A superuser admin creates and updates extensions itself; any other admin
/// does it as the tenant, which owns the database and so may create trusted
/// extensions (13 and newer).
async fn run_extension(
    admin: &Client,
    client: &Client,
    server: &ServerInfo,
    database: &str,
    stmt: &Statement,
    operation: &str,
    name: &str,
) -> Result<(), DbError> {
    if server.admin_is_superuser {
        return execute(client, server, stmt, operation, name).await;
    }
    let owner: String = admin
        .query_one(
            "SELECT pg_catalog.pg_get_userbyid(d.datdba)::pg_catalog.text FROM pg_catalog.pg_database d \
              WHERE d.datname OPERATOR(pg_catalog.=) $1::pg_catalog.text::pg_catalog.name",
            &[&database],
        )
        .await
        .map_err(|e| DbError::query(format!("{operation} {}", quote_ident(name)), e))?
        .get(0);
    as_role(admin, client, server, &owner, stmt, operation, name).await
}
