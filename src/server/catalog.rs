//! The observed state: what the server's catalog says about the tenants of the
//! input, read in a fixed number of queries whatever the number of tenants.
//!
//! All names are schema-qualified and the session runs with an empty
//! `search_path` (see [`crate::server::db`]), so no object a tenant creates can shadow
//! a catalog function.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use futures_util::TryStreamExt;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};

use crate::reconcile::password::PasswordEncryption;
use crate::server::by_name::{ByName, Named};
use crate::server::db::{self, DbError};
use crate::server::pool;

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
    /// Whether the admin has CREATEROLE: without it (and without SUPERUSER)
    /// no password can be set, so no verifier is ever sent.
    pub admin_can_create_roles: bool,
    /// Whether the admin can read `pg_authid.rolpassword`; without it the
    /// password state is unknown and passwords are always set.
    pub can_read_passwords: bool,
    /// Whether `pg_stat_statements` is loaded, so its utility tracking must be
    /// switched off around statements that carry a verifier. Read through
    /// `pg_settings`, which hides the (superuser-only) setting from other
    /// admins rather than failing: they cannot change logging settings anyway.
    pub has_pg_stat_statements: bool,
    /// The server's `fsync`: it decides which `CREATE DATABASE` strategy is
    /// faster (see [`crate::server::strategy`]).
    pub fsync: bool,
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
    pub create_role: bool,
    /// The roles this role is a direct member of (any membership at all
    /// disqualifies it from being a tenant); at most a few, sorted.
    pub member_of: Vec<String>,
    /// Whether the role carries pgtenant's marker (see [`TENANT_MARKER`]).
    pub marked: bool,
    /// `VALID UNTIL` is set and already past: the role cannot log in.
    pub expired: bool,
    /// `rolconnlimit`: -1 for none.
    pub connection_limit: i32,
    /// Whether the admin may set this role's password: SUPERUSER, or
    /// CREATEROLE (and, on 16 and newer, ADMIN OPTION on the role).
    pub admin_may_alter: bool,
    /// The stored secret (`SCRAM-SHA-256$...` or `md5...`), when the admin can
    /// read it. A secret: never printed.
    /// Shared with the password checks, which run on other threads.
    pub password: Option<Arc<str>>,
    /// `ALTER ROLE ... SET` settings for all databases, as `name=value`.
    pub settings: Vec<String>,
}

impl fmt::Debug for ObservedRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObservedRole")
            .field("name", &self.name)
            .field("can_login", &self.can_login)
            .field("superuser", &self.superuser)
            .field("replication", &self.replication)
            .field("bypass_rls", &self.bypass_rls)
            .field("create_role", &self.create_role)
            .field("member_of", &self.member_of)
            .field("marked", &self.marked)
            .field("expired", &self.expired)
            .field("connection_limit", &self.connection_limit)
            .field("admin_may_alter", &self.admin_may_alter)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("settings", &self.settings)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedDatabase {
    pub name: String,
    pub owner: String,
    pub public_connect: bool,
    pub public_temporary: bool,
    /// `datallowconn`: false means nobody can connect to it.
    pub allow_connections: bool,
    /// `datconnlimit`: -1 for none.
    pub connection_limit: i32,
    /// When the owner is not the tenant: whether the database holds objects
    /// owned by someone else than the tenant, read over a short connection
    /// into it (see [`foreign_objects`]). `None` when not looked at.
    pub foreign_objects: Option<ForeignObjects>,
    /// Schema `public` inside the database, read only where the server needs
    /// the fix (14 and older) and the database exists. `None` otherwise, or
    /// when the schema was dropped.
    pub public_schema: Option<SchemaState>,
    /// Shared by every database with the same one (nearly all of them).
    pub locale: Arc<DbLocale>,
    /// Roles granted CONNECT on it explicitly (PUBLIC excluded).
    pub connect: Vec<String>,
    /// The state inside it that the config asks for: read only for the
    /// databases of tenants with extensions, schemas, readers or writers.
    /// Boxed: most databases have none, and the state is kept for each.
    pub inside: Option<Box<Inside>>,
}

/// `pg_encoding_to_char(encoding)`, `datcollate`, `datctype` of a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbLocale {
    pub encoding: String,
    pub collate: String,
    pub ctype: String,
}

/// What a look inside a database found about objects that are not the
/// tenant's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForeignObjects {
    None,
    /// One owner of such an object (the first found), by name.
    OwnedBy(String),
    /// The database could not be inspected (no connection): treated as
    /// holding foreign objects.
    Unknown(String),
}

/// The comment pgtenant puts on the roles it creates, so that it can tell
/// them later from roles someone else made (`COMMENT ON ROLE` needs
/// CREATEROLE, so a tenant cannot put it on a role itself).
pub const TENANT_MARKER: &str = "managed by pgtenant";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaState {
    pub owner: String,
    pub public_create: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub server: ServerInfo,
    pub roles: ByName<ObservedRole>,
    pub databases: ByName<ObservedDatabase>,
    /// Extension name -> the versions the server can install, for the
    /// extensions the input names (none read without any).
    pub available_extensions: HashMap<String, Vec<String>>,
}

const SERVER_INFO: &str = "\
SELECT pg_catalog.current_setting('server_version_num')::pg_catalog.int4,
       pg_catalog.current_setting('password_encryption'),
       pg_catalog.current_setting('scram_iterations', true),
       pg_catalog.pg_is_in_recovery(),
       r.rolname::pg_catalog.text,
       r.rolsuper,
       r.rolcreaterole,
       pg_catalog.has_table_privilege('pg_catalog.pg_authid', 'SELECT'),
       EXISTS (SELECT FROM pg_catalog.pg_settings s
                WHERE s.name OPERATOR(pg_catalog.=) 'shared_preload_libraries'
                  AND s.setting OPERATOR(pg_catalog.~) 'pg_stat_statements'),
       pg_catalog.current_setting('fsync')::pg_catalog.bool
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
        admin_can_create_roles: row.get(6),
        can_read_passwords: row.get(7),
        has_pg_stat_statements: row.get(8),
        fsync: row.get(9),
    })
}

// One query for every attribute the adoption policy and the plan need. The
// memberships are capped: any at all disqualifies the role.
const ROLES: &str = "\
SELECT a.rolname::pg_catalog.text, a.rolcanlogin, a.rolsuper, a.rolreplication, a.rolbypassrls,
       a.rolcreaterole,
       ARRAY(SELECT g.rolname::pg_catalog.text
               FROM pg_catalog.pg_auth_members m
               JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) m.roleid
              WHERE m.member OPERATOR(pg_catalog.=) a.oid
              ORDER BY 1 LIMIT 5),
       pg_catalog.shobj_description(a.oid, 'pg_authid') IS NOT DISTINCT FROM $2::pg_catalog.text,
       a.rolvaliduntil IS NOT NULL AND a.rolvaliduntil OPERATOR(pg_catalog.<=) pg_catalog.now(),
       a.rolconnlimit,
       CASE WHEN $3::pg_catalog.bool THEN true
            WHEN $4::pg_catalog.bool THEN pg_catalog.pg_has_role(CURRENT_USER, a.oid, 'USAGE WITH ADMIN OPTION')
            ELSE false END,
       __PASSWORD__,
       COALESCE((SELECT s.setconfig FROM pg_catalog.pg_db_role_setting s
                  WHERE s.setrole OPERATOR(pg_catalog.=) a.oid AND s.setdatabase OPERATOR(pg_catalog.=) 0),
                '{}')::pg_catalog.text[]
  FROM __TABLE__ a
 WHERE a.rolname::pg_catalog.text OPERATOR(pg_catalog.=) ANY($1::pg_catalog.text[])
 ORDER BY a.rolname::pg_catalog.text COLLATE \"C\"";

// PUBLIC is grantee 0 in aclexplode; a NULL ACL means the built-in default,
// which gives PUBLIC CONNECT and TEMPORARY.
const DATABASES: &str = "\
SELECT d.datname::pg_catalog.text, o.rolname::pg_catalog.text,
       EXISTS (SELECT FROM pg_catalog.aclexplode(COALESCE(d.datacl, pg_catalog.acldefault('d', d.datdba))) x
                WHERE x.grantee OPERATOR(pg_catalog.=) 0 AND x.privilege_type OPERATOR(pg_catalog.=) 'CONNECT'),
       EXISTS (SELECT FROM pg_catalog.aclexplode(COALESCE(d.datacl, pg_catalog.acldefault('d', d.datdba))) x
                WHERE x.grantee OPERATOR(pg_catalog.=) 0 AND x.privilege_type OPERATOR(pg_catalog.=) 'TEMPORARY'),
       d.datallowconn, d.datconnlimit,
       pg_catalog.pg_encoding_to_char(d.encoding)::pg_catalog.text, d.datcollate::pg_catalog.text,
       d.datctype::pg_catalog.text,
       ARRAY(SELECT r.rolname::pg_catalog.text
               FROM pg_catalog.aclexplode(COALESCE(d.datacl, pg_catalog.acldefault('d', d.datdba))) x
               JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) x.grantee
              WHERE x.privilege_type OPERATOR(pg_catalog.=) 'CONNECT'
              ORDER BY 1)
  FROM pg_catalog.pg_database d
  JOIN pg_catalog.pg_roles o ON o.oid OPERATOR(pg_catalog.=) d.datdba
 WHERE d.datname::pg_catalog.text OPERATOR(pg_catalog.=) ANY($1::pg_catalog.text[])
 ORDER BY d.datname::pg_catalog.text COLLATE \"C\"";

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
    roles: &[&str],
    databases: &[&str],
) -> Result<Observed, DbError> {
    let (table, password) = if server.can_read_passwords {
        ("pg_catalog.pg_authid", "a.rolpassword")
    } else {
        ("pg_catalog.pg_roles", "NULL::pg_catalog.text")
    };
    let role_query = ROLES
        .replace("__TABLE__", table)
        .replace("__PASSWORD__", password);
    // On 15 and older CREATEROLE may alter every role that is not a
    // superuser (those are refused anyway); 16 and newer also ask for ADMIN
    // OPTION on the role.
    let may_alter_all =
        server.admin_is_superuser || (server.admin_can_create_roles && server.major() < 16);
    let needs_admin_option =
        !server.admin_is_superuser && server.admin_can_create_roles && server.major() >= 16;
    // Rows are turned into state as they arrive, not buffered first: at
    // 1,000 tenants the buffered rows were a large part of a run's heap.
    let mut observed_roles = Vec::with_capacity(roles.len());
    for_each_row(
        client,
        &role_query,
        &[&roles, &TENANT_MARKER, &may_alter_all, &needs_admin_option],
        "read roles",
        |row| {
            observed_roles.push(ObservedRole {
                name: row.get(0),
                can_login: row.get(1),
                superuser: row.get(2),
                replication: row.get(3),
                bypass_rls: row.get(4),
                create_role: row.get(5),
                member_of: row.get(6),
                marked: row.get(7),
                expired: row.get(8),
                connection_limit: row.get(9),
                admin_may_alter: row.get(10),
                password: row.get::<_, Option<&str>>(11).map(Arc::from),
                settings: row.get(12),
            })
        },
    )
    .await?;
    let mut observed_databases = Vec::with_capacity(databases.len());
    let mut locales: Vec<Arc<DbLocale>> = Vec::new();
    for_each_row(client, DATABASES, &[&databases], "read databases", |row| {
        let (encoding, collate, ctype): (&str, &str, &str) = (row.get(6), row.get(7), row.get(8));
        let locale = match locales
            .iter()
            .find(|l| l.encoding == encoding && l.collate == collate && l.ctype == ctype)
        {
            Some(l) => l.clone(),
            // A server has a handful of distinct ones; a tenant's choice
            // (config `locale:`) adds one at most.
            None => {
                let l = Arc::new(DbLocale {
                    encoding: encoding.into(),
                    collate: collate.into(),
                    ctype: ctype.into(),
                });
                locales.push(l.clone());
                l
            }
        };
        observed_databases.push(ObservedDatabase {
            name: row.get(0),
            owner: row.get(1),
            public_connect: row.get(2),
            public_temporary: row.get(3),
            allow_connections: row.get(4),
            connection_limit: row.get(5),
            foreign_objects: None,
            public_schema: None,
            locale,
            connect: row.get(9),
            inside: None,
        })
    })
    .await?;
    // Sized for every name asked about; give back the room of those that do
    // not exist yet (all of them, on a first apply).
    observed_roles.shrink_to_fit();
    observed_databases.shrink_to_fit();
    let roles = observed_roles.into_iter().collect();
    let databases = observed_databases.into_iter().collect();
    Ok(Observed {
        server,
        roles,
        databases,
        available_extensions: HashMap::new(),
    })
}

/// Runs `query` and hands each row to `each` as it arrives.
async fn for_each_row(
    client: &Client,
    query: &str,
    params: &[&(dyn ToSql + Sync)],
    what: &'static str,
    mut each: impl FnMut(Row),
) -> Result<(), DbError> {
    let rows = client
        .query_raw(query, params.iter().copied())
        .await
        .map_err(|e| DbError::query(what, e))?;
    let mut rows = std::pin::pin!(rows);
    while let Some(row) = rows.try_next().await.map_err(|e| DbError::query(what, e))? {
        each(row);
    }
    Ok(())
}

impl Named for ObservedRole {
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for ObservedDatabase {
    fn name(&self) -> &str {
        &self.name
    }
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

/// What the config asks for inside one database, as the server has it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inside {
    /// Extension name -> (installed version, its schema), for the desired ones.
    pub extensions: HashMap<String, (String, String)>,
    /// Schema name -> owner, for the desired ones.
    pub schemas: HashMap<String, String>,
    /// The tenant's schemas (owned by it, by `pg_database_owner` when it owns
    /// the database, and `public`), with whether they hold tables and
    /// sequences the tenant owns.
    pub tenant_schemas: Vec<TenantSchema>,
    /// Readers and writers that exist, by role.
    pub members: HashMap<String, MemberState>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSchema {
    pub name: String,
    pub has_tables: bool,
    pub has_sequences: bool,
}

/// What a reader or writer lacks, or holds, in one database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberState {
    /// Tenant schemas without USAGE.
    pub missing_usage: Vec<String>,
    /// Tenant schemas holding a tenant table it lacks a privilege on.
    pub missing_tables: Vec<String>,
    /// Same for sequences.
    pub missing_sequences: Vec<String>,
    /// Default privileges of the tenant for it: on tables, sequences, schemas.
    pub default_tables: Vec<String>,
    pub default_sequences: Vec<String>,
    pub default_schemas: Vec<String>,
}

// The first owner, other than the tenant, of an object created in the
// database (OIDs from FirstNormalObjectId on: the objects initdb made, such
// as schema public, are below). Every catalog of per-database objects that
// have an owner is looked at; `LIMIT 1` stops at the first one found, so the
// cost is bounded by what is there, not by what the tenant's own objects
// number (and by the session's statement_timeout).
const FOREIGN_OBJECT: &str = "\
SELECT pg_catalog.pg_get_userbyid(x.o)::pg_catalog.text FROM (
          SELECT relowner AS o FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.>=) 16384
UNION ALL SELECT nspowner FROM pg_catalog.pg_namespace WHERE oid OPERATOR(pg_catalog.>=) 16384
UNION ALL SELECT proowner FROM pg_catalog.pg_proc WHERE oid OPERATOR(pg_catalog.>=) 16384
UNION ALL SELECT typowner FROM pg_catalog.pg_type WHERE oid OPERATOR(pg_catalog.>=) 16384
UNION ALL SELECT extowner FROM pg_catalog.pg_extension WHERE oid OPERATOR(pg_catalog.>=) 16384
UNION ALL SELECT collowner FROM pg_catalog.pg_collation WHERE oid OPERATOR(pg_catalog.>=) 16384
UNION ALL SELECT conowner FROM pg_catalog.pg_conversion WHERE oid OPERATOR(pg_catalog.>=) 16384
UNION ALL SELECT oprowner FROM pg_catalog.pg_operator WHERE oid OPERATOR(pg_catalog.>=) 16384
UNION ALL SELECT opcowner FROM pg_catalog.pg_opclass WHERE oid OPERATOR(pg_catalog.>=) 16384
UNION ALL SELECT opfowner FROM pg_catalog.pg_opfamily WHERE oid OPERATOR(pg_catalog.>=) 16384
UNION ALL SELECT cfgowner FROM pg_catalog.pg_ts_config WHERE oid OPERATOR(pg_catalog.>=) 16384
UNION ALL SELECT dictowner FROM pg_catalog.pg_ts_dict WHERE oid OPERATOR(pg_catalog.>=) 16384
UNION ALL SELECT lanowner FROM pg_catalog.pg_language WHERE oid OPERATOR(pg_catalog.>=) 16384
UNION ALL SELECT fdwowner FROM pg_catalog.pg_foreign_data_wrapper WHERE oid OPERATOR(pg_catalog.>=) 16384
UNION ALL SELECT srvowner FROM pg_catalog.pg_foreign_server WHERE oid OPERATOR(pg_catalog.>=) 16384
UNION ALL SELECT evtowner FROM pg_catalog.pg_event_trigger WHERE oid OPERATOR(pg_catalog.>=) 16384
UNION ALL SELECT pubowner FROM pg_catalog.pg_publication WHERE oid OPERATOR(pg_catalog.>=) 16384
UNION ALL SELECT stxowner FROM pg_catalog.pg_statistic_ext WHERE oid OPERATOR(pg_catalog.>=) 16384
UNION ALL SELECT lomowner FROM pg_catalog.pg_largeobject_metadata WHERE oid OPERATOR(pg_catalog.>=) 16384
) x
 WHERE x.o IS DISTINCT FROM (SELECT r.oid FROM pg_catalog.pg_roles r
                              WHERE r.rolname::pg_catalog.text OPERATOR(pg_catalog.=) $1::pg_catalog.text)
 LIMIT 1";

/// For each existing tenant database whose owner is not its tenant, looks
/// inside it (one short connection each, a few at a time:
/// [`pool::short_sessions`] of `jobs`) for an object owned by someone else:
/// ownership of such a database never moves (see `plan`). Databases owned by
/// their tenant cost nothing.
pub async fn observe_foreign_objects(
    admin: &Client,
    settings: &crate::input::conninfo::ConnSettings,
    jobs: usize,
    observed: &mut Observed,
    tenant_databases: &[(&str, &str)],
) -> Result<(), DbError> {
    let owners: HashMap<String, String> = tenant_databases
        .iter()
        .filter(|(db, role)| observed.databases.get(db).is_some_and(|d| d.owner != *role))
        .map(|&(db, role)| (db.to_owned(), role.to_owned()))
        .collect();
    if owners.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = owners.keys().cloned().collect();
    let concurrency = pool::short_sessions(admin, jobs, names.len()).await?;
    let owners = std::sync::Arc::new(owners);
    let results = db::for_each_database(settings, names, concurrency, {
        let owners = owners.clone();
        move |client, name: String| {
            let owners = owners.clone();
            async move {
                let role = owners.get(&name).cloned().unwrap_or_default();
                let row = client
                    .query_opt(FOREIGN_OBJECT, &[&role])
                    .await
                    .map_err(|e| DbError::query("look for objects of other roles", e))?;
                Ok(match row {
                    Some(row) => ForeignObjects::OwnedBy(row.get(0)),
                    None => ForeignObjects::None,
                })
            }
        }
    })
    .await;
    for (name, result) in results {
        let found = match result {
            Ok(found) => found,
            Err(e) if e.is_connection_lost() && !matches!(e, DbError::Connect { .. }) => {
                return Err(e)
            }
            Err(e) => ForeignObjects::Unknown(e.to_string()),
        };
        if let Some(db) = observed.databases.get_mut(&name) {
            db.foreign_objects = Some(found);
        }
    }
    Ok(())
}
