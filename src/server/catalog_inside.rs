//! The observed state inside tenant databases: extensions, schemas, and the
//! privileges of readers and writers, read over one short connection per
//! database that has such state (several at a time), and none for the
//! others. Also schema `public` on 14 and older, over the same connection.
//!
//! A server without a config (or a config without extensions, schemas,
//! readers or writers) opens no connection here on 15 and newer: the cost
//! of a no-op stays what it was.

use tokio_postgres::Client;

use crate::input::conninfo::ConnSettings;
use crate::input::desired::{Access, Desired};
use crate::server::catalog::{self, Inside, MemberState, Observed, TenantSchema};
use crate::server::db::{self, DbError};

const EXTENSIONS: &str = "\
SELECT e.extname::pg_catalog.text, e.extversion, n.nspname::pg_catalog.text
  FROM pg_catalog.pg_extension e
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
 WHERE e.extname::pg_catalog.text OPERATOR(pg_catalog.=) ANY($1::pg_catalog.text[])";

const SCHEMAS: &str = "\
SELECT n.nspname::pg_catalog.text, o.rolname::pg_catalog.text
  FROM pg_catalog.pg_namespace n
  JOIN pg_catalog.pg_roles o ON o.oid OPERATOR(pg_catalog.=) n.nspowner
 WHERE n.nspname::pg_catalog.text OPERATOR(pg_catalog.=) ANY($1::pg_catalog.text[])";

/// The tenant's schemas: owned by it, or by `pg_database_owner` (15 and
/// newer: `public`) in a database it owns, `public` itself, and the schemas
/// the config names ($2) whoever owns them now.
const TENANT_SCHEMAS_CTE: &str = "\
WITH t AS (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname::pg_catalog.text OPERATOR(pg_catalog.=) $1),
     s AS (SELECT n.oid, n.nspname::pg_catalog.text AS name
             FROM pg_catalog.pg_namespace n
            WHERE n.nspname OPERATOR(pg_catalog.=) 'public'
               OR n.nspname::pg_catalog.text OPERATOR(pg_catalog.=) ANY($2::pg_catalog.text[])
               OR n.nspowner OPERATOR(pg_catalog.=) (SELECT t.oid FROM t)
               OR (n.nspowner OPERATOR(pg_catalog.=) (SELECT r.oid FROM pg_catalog.pg_roles r
                                                        WHERE r.rolname OPERATOR(pg_catalog.=) 'pg_database_owner')
                   AND (SELECT d.datdba FROM pg_catalog.pg_database d
                         WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
                       OPERATOR(pg_catalog.=) (SELECT t.oid FROM t)))";

fn tenant_schemas_query() -> String {
    format!(
        "{TENANT_SCHEMAS_CTE}
SELECT s.name,
       EXISTS (SELECT FROM pg_catalog.pg_class c
                WHERE c.relnamespace OPERATOR(pg_catalog.=) s.oid
                  AND c.relowner OPERATOR(pg_catalog.=) (SELECT t.oid FROM t)
                  AND c.relkind OPERATOR(pg_catalog.=) ANY ('{{r,p,v,m,f}}'::pg_catalog.char[])),
       EXISTS (SELECT FROM pg_catalog.pg_class c
                WHERE c.relnamespace OPERATOR(pg_catalog.=) s.oid
                  AND c.relowner OPERATOR(pg_catalog.=) (SELECT t.oid FROM t)
                  AND c.relkind OPERATOR(pg_catalog.=) 'S')
  FROM s ORDER BY 1"
    )
}

fn members_query() -> String {
    // has_*_privilege with a list is true when ANY is held: each privilege
    // is asked on its own.
    format!(
        "{TENANT_SCHEMAS_CTE}
SELECT m.name,
       ARRAY(SELECT s.name FROM s
              WHERE NOT pg_catalog.has_schema_privilege(m.name::pg_catalog.name, s.oid, 'USAGE')
              ORDER BY 1),
       ARRAY(SELECT DISTINCT s.name FROM s
               JOIN pg_catalog.pg_class c ON c.relnamespace OPERATOR(pg_catalog.=) s.oid
              WHERE c.relowner OPERATOR(pg_catalog.=) (SELECT t.oid FROM t)
                AND c.relkind OPERATOR(pg_catalog.=) ANY ('{{r,p,v,m,f}}'::pg_catalog.char[])
                AND NOT (pg_catalog.has_table_privilege(m.name::pg_catalog.name, c.oid, 'SELECT')
                         AND (m.kind OPERATOR(pg_catalog.=) 'reader'
                              OR (pg_catalog.has_table_privilege(m.name::pg_catalog.name, c.oid, 'INSERT')
                                  AND pg_catalog.has_table_privilege(m.name::pg_catalog.name, c.oid, 'UPDATE')
                                  AND pg_catalog.has_table_privilege(m.name::pg_catalog.name, c.oid, 'DELETE'))))
              ORDER BY 1),
       ARRAY(SELECT DISTINCT s.name FROM s
               JOIN pg_catalog.pg_class c ON c.relnamespace OPERATOR(pg_catalog.=) s.oid
              WHERE c.relowner OPERATOR(pg_catalog.=) (SELECT t.oid FROM t)
                AND c.relkind OPERATOR(pg_catalog.=) 'S'
                AND NOT (pg_catalog.has_sequence_privilege(m.name::pg_catalog.name, c.oid, 'SELECT')
                         AND (m.kind OPERATOR(pg_catalog.=) 'reader'
                              OR pg_catalog.has_sequence_privilege(m.name::pg_catalog.name, c.oid, 'USAGE')))
              ORDER BY 1),
       ARRAY(SELECT x.privilege_type::pg_catalog.text FROM pg_catalog.pg_default_acl a,
                    pg_catalog.aclexplode(a.defaclacl) x
              WHERE a.defaclrole OPERATOR(pg_catalog.=) (SELECT t.oid FROM t)
                AND a.defaclnamespace OPERATOR(pg_catalog.=) 0
                AND a.defaclobjtype OPERATOR(pg_catalog.=) 'r'
                AND x.grantee OPERATOR(pg_catalog.=) r.oid ORDER BY 1),
       ARRAY(SELECT x.privilege_type::pg_catalog.text FROM pg_catalog.pg_default_acl a,
                    pg_catalog.aclexplode(a.defaclacl) x
              WHERE a.defaclrole OPERATOR(pg_catalog.=) (SELECT t.oid FROM t)
                AND a.defaclnamespace OPERATOR(pg_catalog.=) 0
                AND a.defaclobjtype OPERATOR(pg_catalog.=) 'S'
                AND x.grantee OPERATOR(pg_catalog.=) r.oid ORDER BY 1),
       ARRAY(SELECT x.privilege_type::pg_catalog.text FROM pg_catalog.pg_default_acl a,
                    pg_catalog.aclexplode(a.defaclacl) x
              WHERE a.defaclrole OPERATOR(pg_catalog.=) (SELECT t.oid FROM t)
                AND a.defaclnamespace OPERATOR(pg_catalog.=) 0
                AND a.defaclobjtype OPERATOR(pg_catalog.=) 'n'
                AND x.grantee OPERATOR(pg_catalog.=) r.oid ORDER BY 1)
  FROM ROWS FROM (pg_catalog.unnest($3::pg_catalog.text[]), pg_catalog.unnest($4::pg_catalog.text[])) AS m(name, kind)
  JOIN pg_catalog.pg_roles r ON r.rolname::pg_catalog.text OPERATOR(pg_catalog.=) m.name"
    )
}

const AVAILABLE: &str = "\
SELECT v.name::pg_catalog.text, pg_catalog.array_agg(v.version::pg_catalog.text ORDER BY v.version)
  FROM pg_catalog.pg_available_extension_versions v
 WHERE v.name::pg_catalog.text OPERATOR(pg_catalog.=) ANY($1::pg_catalog.text[])
 GROUP BY v.name";

/// What to read in one database.
#[derive(Debug, Clone, Default)]
struct Want {
    public_schema: bool,
    tenant: String,
    extensions: Vec<String>,
    schemas: Vec<String>,
    /// (role, "reader"/"writer") of the members that exist.
    members: Vec<(String, String)>,
    inside: bool,
}

async fn read(
    client: Client,
    want: Want,
) -> Result<(Option<catalog::SchemaState>, Option<Inside>), DbError> {
    let public = if want.public_schema {
        catalog::public_schema(&client).await?
    } else {
        None
    };
    if !want.inside {
        return Ok((public, None));
    }
    let mut inside = Inside::default();
    if !want.extensions.is_empty() {
        for row in client
            .query(EXTENSIONS, &[&want.extensions])
            .await
            .map_err(|e| DbError::query("read extensions", e))?
        {
            inside
                .extensions
                .insert(row.get(0), (row.get(1), row.get(2)));
        }
    }
    if !want.schemas.is_empty() {
        for row in client
            .query(SCHEMAS, &[&want.schemas])
            .await
            .map_err(|e| DbError::query("read schemas", e))?
        {
            inside.schemas.insert(row.get(0), row.get(1));
        }
    }
    for row in client
        .query(&tenant_schemas_query(), &[&want.tenant, &want.schemas])
        .await
        .map_err(|e| DbError::query("read the tenant's schemas", e))?
    {
        inside.tenant_schemas.push(TenantSchema {
            name: row.get(0),
            has_tables: row.get(1),
            has_sequences: row.get(2),
        });
    }
    if !want.members.is_empty() {
        let names: Vec<&str> = want.members.iter().map(|(n, _)| n.as_str()).collect();
        let kinds: Vec<&str> = want.members.iter().map(|(_, k)| k.as_str()).collect();
        for row in client
            .query(
                &members_query(),
                &[&want.tenant, &want.schemas, &names, &kinds],
            )
            .await
            .map_err(|e| DbError::query("read privileges of readers and writers", e))?
        {
            inside.members.insert(
                row.get(0),
                MemberState {
                    missing_usage: row.get(1),
                    missing_tables: row.get(2),
                    missing_sequences: row.get(3),
                    default_tables: row.get(4),
                    default_sequences: row.get(5),
                    default_schemas: row.get(6),
                },
            );
        }
    }
    Ok((public, Some(inside)))
}

/// Reads the extensions the server can install, when the input names any.
pub async fn available_extensions(
    client: &Client,
    desired: &Desired,
    observed: &mut Observed,
) -> Result<(), DbError> {
    let mut names: Vec<String> = desired
        .tenants
        .iter()
        .flat_map(|t| &t.databases)
        .flat_map(|d| d.extensions.iter().map(|e| e.name.clone()))
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    names.sort();
    names.dedup();
    for row in client
        .query(AVAILABLE, &[&names])
        .await
        .map_err(|e| DbError::query("read available extensions", e))?
    {
        observed.available_extensions.insert(row.get(0), row.get(1));
    }
    Ok(())
}

/// Reads the state inside every existing database that needs it: one short
/// connection each, a few at a time ([`crate::server::pool::short_sessions`]
/// of `jobs`, within the server's free connection slots).
pub async fn observe(
    admin: &Client,
    settings: &ConnSettings,
    jobs: usize,
    desired: &Desired,
    observed: &mut Observed,
) -> Result<(), DbError> {
    let schema_fix = observed.server.needs_public_schema_fix();
    let mut wants: Vec<(String, Want)> = Vec::new();
    for t in &desired.tenants {
        let features = t.has_database_features();
        if !features && !schema_fix {
            continue;
        }
        let members: Vec<(String, String)> = t
            .members
            .iter()
            .filter(|(m, _)| observed.roles.contains_key(m))
            .map(|(m, a)| (m.clone(), Access::as_str(*a).to_owned()))
            .collect();
        for db in &t.databases {
            // A database nobody may connect to is opened up first (see
            // `plan`); what it holds is read by the next pass.
            if !observed
                .databases
                .get(&db.name)
                .is_some_and(|d| d.allow_connections)
            {
                continue;
            }
            wants.push((
                db.name.clone(),
                Want {
                    public_schema: schema_fix,
                    tenant: t.role.clone(),
                    extensions: db.extensions.iter().map(|e| e.name.clone()).collect(),
                    schemas: db.schemas.clone(),
                    members: members.clone(),
                    inside: features,
                },
            ));
        }
    }
    if wants.is_empty() {
        return Ok(());
    }
    let concurrency = crate::server::pool::short_sessions(admin, jobs, wants.len()).await?;
    let results = db::for_each_database_with(settings, wants, concurrency, read).await;
    for (name, result) in results {
        let (public, inside) = result?;
        if let Some(db) = observed.databases.get_mut(&name) {
            db.public_schema = public;
            db.inside = inside.map(Box::new);
        }
    }
    Ok(())
}
