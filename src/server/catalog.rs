//! The observed state: what the server's catalog says about the tenants of the
//! input, read in a fixed number of queries whatever the number of tenants.
//!
//! All names are schema-qualified and the session runs with an empty
//! `search_path` (see [`crate::server::db`]), so no object a tenant creates can shadow
//! a catalog function.

use std::collections::HashMap;
use std::fmt;

use tokio_postgres::Client;

use crate::reconcile::password::PasswordEncryption;
use crate::server::db::{self, DbError};

/// Facts about the server and the admin role that shape the SQL pgtenant sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// `server_version_num`, e.g. 150018.
    pub version_num: u32,
    pub password_encryption: PasswordEncryption,
    /// `scram_iterations` where the server reports one (16 and newer).
    pub scram_iterations: Option<u32>,
    pub in_recovery: bool,
    pub admin: String,
    pub admin_is_superuser: bool,
    /// Whether the admin can read `pg_authid.rolpassword`; without it the
    /// password state is unknown and passwords are always set.
    pub can_read_passwords: bool,
    /// Whether `pg_stat_statements` is loaded, so its utility tracking must be
    /// switched off around statements that carry a verifier. Read through
    /// `pg_settings`, which hides the (superuser-only) setting from other
    /// admins rather than failing: they cannot change logging settings anyway.
    pub has_pg_stat_statements: bool,
}

impl ServerInfo {
    pub fn major(&self) -> u32 {
        self.version_num / 10000
    }

    /// PostgreSQL 15 made `pg_database_owner` the owner of schema `public` in
    /// new databases and dropped PUBLIC's CREATE on it; older servers need it
    /// done by hand in each tenant database.
    pub fn needs_public_schema_fix(&self) -> bool {
        self.version_num < 150000
    }

    pub fn scram_iterations_or_default(&self) -> u32 {
        self.scram_iterations
            .unwrap_or(crate::reconcile::scram::DEFAULT_ITERATIONS)
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct ObservedRole {
    pub name: String,
    pub can_login: bool,
    pub superuser: bool,
    pub replication: bool,
    pub bypass_rls: bool,
    /// The stored secret (`SCRAM-SHA-256$...` or `md5...`), when the admin can
    /// read it. A secret: never printed.
    pub password: Option<String>,
}

impl fmt::Debug for ObservedRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObservedRole")
            .field("name", &self.name)
            .field("can_login", &self.can_login)
            .field("superuser", &self.superuser)
            .field("replication", &self.replication)
            .field("bypass_rls", &self.bypass_rls)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedDatabase {
    pub name: String,
    pub owner: String,
    pub public_connect: bool,
    pub public_temporary: bool,
    /// Schema `public` inside the database, read only where the server needs
    /// the fix (14 and older) and the database exists. `None` otherwise, or
    /// when the schema was dropped.
    pub public_schema: Option<SchemaState>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaState {
    pub owner: String,
    pub public_create: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub server: ServerInfo,
    pub roles: HashMap<String, ObservedRole>,
    pub databases: HashMap<String, ObservedDatabase>,
}

const SERVER_INFO: &str = "\
SELECT pg_catalog.current_setting('server_version_num')::pg_catalog.int4,
       pg_catalog.current_setting('password_encryption'),
       pg_catalog.current_setting('scram_iterations', true),
       pg_catalog.pg_is_in_recovery(),
       r.rolname::pg_catalog.text,
       r.rolsuper,
       pg_catalog.has_table_privilege('pg_catalog.pg_authid', 'SELECT'),
       EXISTS (SELECT FROM pg_catalog.pg_settings s
                WHERE s.name OPERATOR(pg_catalog.=) 'shared_preload_libraries'
                  AND s.setting OPERATOR(pg_catalog.~) 'pg_stat_statements')
  FROM pg_catalog.pg_roles r
 WHERE r.rolname = CURRENT_USER";

pub async fn server_info(client: &Client) -> Result<ServerInfo, DbError> {
    let row = client
        .query_one(SERVER_INFO, &[])
        .await
        .map_err(|e| DbError::query("read server settings", e))?;
    let encryption: String = row.get(1);
    let password_encryption = PasswordEncryption::from_setting(&encryption).ok_or_else(|| {
        DbError::Unsupported(format!(
            "server has password_encryption = {encryption:?}; expected scram-sha-256 or md5"
        ))
    })?;
    let iterations: Option<String> = row.get(2);
    let scram_iterations = match iterations.as_deref() {
        None | Some("") => None,
        Some(s) => Some(s.parse::<u32>().map_err(|_| {
            DbError::Unsupported(format!("server reports scram_iterations = {s:?}"))
        })?),
    };
    let version: i32 = row.get(0);
    Ok(ServerInfo {
        version_num: version as u32,
        password_encryption,
        scram_iterations,
        in_recovery: row.get(3),
        admin: row.get(4),
        admin_is_superuser: row.get(5),
        can_read_passwords: row.get(6),
        has_pg_stat_statements: row.get(7),
    })
}

const ROLES_WITH_PASSWORDS: &str = "\
SELECT a.rolname::pg_catalog.text, a.rolcanlogin, a.rolsuper, a.rolreplication, a.rolbypassrls,
       a.rolpassword
  FROM pg_catalog.pg_authid a
 WHERE a.rolname::pg_catalog.text OPERATOR(pg_catalog.=) ANY($1::pg_catalog.text[])";

const ROLES_WITHOUT_PASSWORDS: &str = "\
SELECT a.rolname::pg_catalog.text, a.rolcanlogin, a.rolsuper, a.rolreplication, a.rolbypassrls,
       NULL::pg_catalog.text
  FROM pg_catalog.pg_roles a
 WHERE a.rolname::pg_catalog.text OPERATOR(pg_catalog.=) ANY($1::pg_catalog.text[])";

// PUBLIC is grantee 0 in aclexplode; a NULL ACL means the built-in default,
// which gives PUBLIC CONNECT and TEMPORARY.
const DATABASES: &str = "\
SELECT d.datname::pg_catalog.text, o.rolname::pg_catalog.text,
       EXISTS (SELECT FROM pg_catalog.aclexplode(COALESCE(d.datacl, pg_catalog.acldefault('d', d.datdba))) x
                WHERE x.grantee OPERATOR(pg_catalog.=) 0 AND x.privilege_type OPERATOR(pg_catalog.=) 'CONNECT'),
       EXISTS (SELECT FROM pg_catalog.aclexplode(COALESCE(d.datacl, pg_catalog.acldefault('d', d.datdba))) x
                WHERE x.grantee OPERATOR(pg_catalog.=) 0 AND x.privilege_type OPERATOR(pg_catalog.=) 'TEMPORARY')
  FROM pg_catalog.pg_database d
  JOIN pg_catalog.pg_roles o ON o.oid OPERATOR(pg_catalog.=) d.datdba
 WHERE d.datname::pg_catalog.text OPERATOR(pg_catalog.=) ANY($1::pg_catalog.text[])";

const PUBLIC_SCHEMA: &str = "\
SELECT o.rolname::pg_catalog.text,
       EXISTS (SELECT FROM pg_catalog.aclexplode(COALESCE(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) x
                WHERE x.grantee OPERATOR(pg_catalog.=) 0 AND x.privilege_type OPERATOR(pg_catalog.=) 'CREATE')
  FROM pg_catalog.pg_namespace n
  JOIN pg_catalog.pg_roles o ON o.oid OPERATOR(pg_catalog.=) n.nspowner
 WHERE n.nspname OPERATOR(pg_catalog.=) 'public'";

/// Reads the roles and databases named in the input: two queries.
pub async fn observe(
    client: &Client,
    server: ServerInfo,
    roles: &[String],
    databases: &[String],
) -> Result<Observed, DbError> {
    let role_query = if server.can_read_passwords {
        ROLES_WITH_PASSWORDS
    } else {
        ROLES_WITHOUT_PASSWORDS
    };
    let role_rows = client
        .query(role_query, &[&roles])
        .await
        .map_err(|e| DbError::query("read roles", e))?;
    let roles = role_rows
        .into_iter()
        .map(|row| {
            let role = ObservedRole {
                name: row.get(0),
                can_login: row.get(1),
                superuser: row.get(2),
                replication: row.get(3),
                bypass_rls: row.get(4),
                password: row.get(5),
            };
            (role.name.clone(), role)
        })
        .collect();
    let db_rows = client
        .query(DATABASES, &[&databases])
        .await
        .map_err(|e| DbError::query("read databases", e))?;
    let databases = db_rows
        .into_iter()
        .map(|row| {
            let db = ObservedDatabase {
                name: row.get(0),
                owner: row.get(1),
                public_connect: row.get(2),
                public_temporary: row.get(3),
                public_schema: None,
            };
            (db.name.clone(), db)
        })
        .collect();
    Ok(Observed {
        server,
        roles,
        databases,
    })
}

/// Reads schema `public` of one database over a short connection into it.
pub async fn public_schema(client: &Client) -> Result<Option<SchemaState>, DbError> {
    let row = client
        .query_opt(PUBLIC_SCHEMA, &[])
        .await
        .map_err(|e| DbError::query("read schema public", e))?;
    Ok(row.map(|row| SchemaState {
        owner: row.get(0),
        public_create: row.get(1),
    }))
}

/// On servers that need the schema fix, reads schema `public` of every
/// existing tenant database (one short connection each, a few at a time).
pub async fn observe_public_schemas(
    settings: &crate::input::conninfo::ConnSettings,
    observed: &mut Observed,
) -> Result<(), DbError> {
    if !observed.server.needs_public_schema_fix() {
        return Ok(());
    }
    let names: Vec<String> = observed.databases.keys().cloned().collect();
    let results = db::for_each_database(settings, names, |client| async move {
        public_schema(&client).await
    })
    .await;
    for (name, result) in results {
        let state = result?;
        if let Some(db) = observed.databases.get_mut(&name) {
            db.public_schema = state;
        }
    }
    Ok(())
}
