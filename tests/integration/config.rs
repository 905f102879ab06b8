//! The config file (`--config`) and the users directory against real
//! servers: the realistic example applied and re-applied byte for byte,
//! readers and writers as an attacker would try them, drift put back,
//! invalid configs changing nothing, and `run` following a kubelet swap.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::one;
use crate::support::pgtenant::{Pgtenant, Run};
use crate::support::server::PgServer;

/// `pgtenant ARGS` with exactly this environment.
fn run_raw(args: &[&str], env: &[(&str, &str)]) -> Run {
    Pgtenant::bare()
        .envs(env.iter().copied())
        .args(args.iter().copied())
        .run()
}

const EXAMPLE: &str = include_str!("../../examples/pgtenant.yaml");
const EXAMPLE_USERS: &str = include_str!("../../examples/pgtenant.users");

/// A config file and a users file in one temporary directory.
struct Input {
    dir: tempfile::TempDir,
}

impl Input {
    fn new(config: &str, users: &str) -> Input {
        let dir = tempfile::tempdir().unwrap();
        let input = Input { dir };
        input.write("pgtenant.yaml", config);
        input.write("db_users.secret", users);
        input
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn write(&self, name: &str, content: &str) {
        use std::os::unix::fs::PermissionsExt;
        let p = self.path(name);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    /// `pgtenant ARGS` with this input.
    fn run(&self, server: &PgServer, args: &[&str]) -> Run {
        Pgtenant::new(server)
            .users(&self.path("db_users.secret"))
            .env("PGTENANT_CONFIG", self.path("pgtenant.yaml"))
            .args(args.iter().copied())
            .run()
    }
}

/// Everything the config manages, as text, for byte-for-byte comparisons:
/// roles (verifiers, limits, settings), databases (owner, ACL, encoding,
/// locale, limit), and in each tenant database its extensions, schemas,
/// default privileges and table ACLs.
fn catalog(server: &PgServer) -> String {
    let mut out = String::new();
    let rows = |r: Vec<Vec<Option<String>>>| {
        r.into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|c| c.unwrap_or_else(|| "NULL".into()))
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    out += &rows(server.query(
        "SELECT a.rolname, a.rolcanlogin::text, a.rolpassword, a.rolconnlimit::text,
                (SELECT s.setconfig::text FROM pg_db_role_setting s WHERE s.setrole = a.oid AND s.setdatabase = 0)
           FROM pg_authid a WHERE a.rolname !~ '^pg_' AND a.rolname <> 'postgres' ORDER BY 1",
    ));
    let dbs = server.query(
        "SELECT datname FROM pg_database WHERE datname NOT IN ('postgres', 'template0', 'template1') ORDER BY 1",
    );
    out += "\n";
    out += &rows(server.query(
        "SELECT d.datname, pg_get_userbyid(d.datdba), d.datacl::text, pg_encoding_to_char(d.encoding),
                d.datcollate, d.datctype, d.datconnlimit::text
           FROM pg_database d WHERE d.datname NOT IN ('postgres', 'template0', 'template1') ORDER BY 1",
    ));
    for db in dbs
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
    {
        out += &format!("\n-- {db}\n");
        out += &rows(server.query_db(
            &db,
            "SELECT 'ext', e.extname::text, e.extversion, e.extnamespace::regnamespace::text FROM pg_extension e
             UNION ALL
             SELECT 'nsp', n.nspname::text, pg_get_userbyid(n.nspowner)::text, n.nspacl::text FROM pg_namespace n
              WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
             UNION ALL
             SELECT 'def', pg_get_userbyid(a.defaclrole)::text, a.defaclobjtype::text, a.defaclacl::text FROM pg_default_acl a
             UNION ALL
             SELECT 'rel', c.oid::regclass::text, pg_get_userbyid(c.relowner)::text, c.relacl::text FROM pg_class c
              WHERE c.relnamespace::regnamespace::text !~ '^(pg_|information_schema)' AND c.relkind IN ('r', 'S', 'v')
             ORDER BY 1, 2, 3, 4",
        ));
    }
    out
}

/// Runs `ARGS` (an apply) again: every one of `roles` is reported
/// unchanged, and the catalog is left byte for byte as it was.
fn assert_second_apply_changes_nothing(
    input: &Input,
    server: &PgServer,
    args: &[&str],
    roles: usize,
) {
    let before = catalog(server);
    let again = input.run(server, args);
    again.assert_code(0);
    let summary = format!("{roles} tenants: 0 created, 0 updated, {roles} unchanged");
    assert!(again.stderr.contains(&summary), "{}", again.stderr);
    assert_eq!(
        catalog(server),
        before,
        "a second apply changed the catalog"
    );
}

fn pw(user: &str) -> &'static str {
    EXAMPLE_USERS
        .lines()
        .find_map(|l| {
            let (u, p) = l.split_once(':')?;
            (u == user).then_some(p)
        })
        .unwrap_or_else(|| panic!("no {user} in the example users file"))
}

#[test]
fn example_applies_then_a_second_run_changes_nothing() {
    let server = PgServer::start();
    let input = Input::new(EXAMPLE, EXAMPLE_USERS);
    // Every object kind the config adds, in the plan's JSON contract (the
    // builder validates it against docs/schema/plan.schema.json).
    let plan = input.run(&server, &["plan", "-o", "json"]);
    plan.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    for kind in [
        "role",
        "database",
        "extension",
        "schema",
        "grant",
        "setting",
    ] {
        assert!(
            doc["changes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["object"] == kind),
            "no {kind} in\n{}",
            plan.stdout
        );
    }
    let first = input.run(&server, &["apply"]);
    first.assert_code(0);
    for line in [
        r#"created extension "pg_trgm" in database "gitlabhq_production""#,
        r#"created schema "gitlab_partitions_static" in database "gitlabhq_production" owned by "gitlab""#,
        r#"granted "grafana" reader privileges on "gitlab" in database "gitlabhq_production""#,
        r#"created database "synapse" owned by "synapse""#,
        r#"created database "harbor_notary_signer" owned by "harbor""#,
    ] {
        assert!(
            first.stderr.contains(line),
            "no {line:?} in\n{}",
            first.stderr
        );
    }
    // The applications' documented requirements.
    assert_eq!(
        server.query_db(
            "gitlabhq_production",
            "SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension WHERE extname <> 'plpgsql'"
        )[0][0]
            .as_deref(),
        Some("btree_gist,pg_trgm")
    );
    assert_eq!(
        server.query(
            "SELECT pg_encoding_to_char(encoding) || ' ' || datcollate || ' ' || datctype FROM pg_database WHERE datname = 'synapse'"
        )[0][0]
            .as_deref(),
        Some("UTF8 C C")
    );
    assert_eq!(
        one(
            &server,
            "SELECT rolconnlimit::text FROM pg_roles WHERE rolname = 'gitlab'"
        )
        .as_deref(),
        Some("60")
    );
    assert_eq!(
        one(
            &server,
            "SELECT datconnlimit::text FROM pg_database WHERE datname = 'gitlabhq_production'"
        )
        .as_deref(),
        Some("80")
    );
    let timeout = server
        .exec_as(
            "gitlab",
            pw("gitlab"),
            "gitlabhq_production",
            "SHOW statement_timeout",
        )
        .unwrap();
    assert_eq!(timeout[0][0].as_deref(), Some("1min"));
    for db in ["harbor_db", "harbor_notary_server", "harbor_notary_signer"] {
        server.try_connect("harbor", pw("harbor"), db).unwrap();
    }
    server
        .try_connect("grafana", pw("grafana"), "gitlabhq_production")
        .unwrap();

    let plan = input.run(&server, &["plan", "--exit-code"]);
    plan.assert_code(0);
    assert_eq!(plan.stdout, "No changes: 4 tenants in sync.\n");
    assert_second_apply_changes_nothing(&input, &server, &["apply"], 6);

    let status = input.run(&server, &["status"]);
    status.assert_code(0);
    assert!(
        status
            .stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [
                    "\"harbor\"",
                    "yes",
                    "\"harbor_notary_server\"",
                    "\"harbor\"",
                    "in",
                    "sync",
                    "yes",
                    "in",
                    "sync"
                ]),
        "{}",
        status.stdout
    );
    assert!(!status.stdout.contains("missing"), "{}", status.stdout);
    assert!(
        status.stdout.lines().any(|l| l.starts_with("extension")
            && l.contains("\"pg_trgm\"")
            && l.ends_with("in sync")),
        "{}",
        status.stdout
    );
    let json = input.run(&server, &["status", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let objects = v["objects"].as_array().unwrap();
    assert!(
        objects.iter().all(|o| o["state"] == "in_sync"),
        "{}",
        json.stdout
    );
    assert!(objects
        .iter()
        .any(|o| o["object"] == "grant" && o["name"] == "grafana"));
}

/// `--batch-size 1`: each tenant goes in its own pass, with the readers and
/// writers it names (grafana, made a reader of two tenants here, comes in two
/// passes).
/// The result is the one a single pass gives: the whole plan is empty after
/// it, every role is reported once, and a second batched run changes nothing.
#[test]
fn passes_of_one_tenant_converge_as_one_pass_does() {
    let server = PgServer::start();
    let synapse = "      - {name: synapse, template: template0, encoding: UTF8, locale: C}\n";
    assert!(EXAMPLE.contains(synapse));
    let config = EXAMPLE.replace(synapse, &format!("{synapse}    readers: [grafana]\n"));
    let input = Input::new(&config, EXAMPLE_USERS);
    let first = input.run(&server, &["apply", "--batch-size", "1"]);
    first.assert_code(0);
    assert!(
        first
            .stderr
            .contains("6 tenants: 6 created, 0 updated, 0 unchanged"),
        "{}",
        first.stderr
    );
    let plan = input.run(&server, &["plan", "--exit-code"]);
    plan.assert_code(0);
    assert_eq!(plan.stdout, "No changes: 4 tenants in sync.\n");
    for db in ["gitlabhq_production", "synapse"] {
        server.try_connect("grafana", pw("grafana"), db).unwrap();
    }
    assert_second_apply_changes_nothing(&input, &server, &["apply", "--batch-size", "1"], 6);
    input
        .run(&server, &["apply", "--batch-size", "0"])
        .assert_code(2);
}

#[test]
fn readers_read_writers_write_and_neither_reaches_further() {
    let server = PgServer::start();
    let input = Input::new(EXAMPLE, EXAMPLE_USERS);
    input.run(&server, &["apply"]).assert_code(0);
    let db = "gitlabhq_production";
    // Tables the tenant creates after the grants, in public and in its schema.
    server
        .exec_as(
            "gitlab",
            pw("gitlab"),
            db,
            "CREATE TABLE public.issues (id serial PRIMARY KEY, title text);
             CREATE TABLE gitlab_partitions_static.events (id bigserial, at timestamptz DEFAULT now());
             INSERT INTO public.issues (title) VALUES ('first');",
        )
        .unwrap();
    let grafana = |sql: &str| server.exec_as("grafana", pw("grafana"), db, sql);
    assert_eq!(
        grafana("SELECT title FROM public.issues").unwrap()[0][0].as_deref(),
        Some("first")
    );
    grafana("SELECT count(*) FROM gitlab_partitions_static.events").unwrap();
    for denied in [
        "INSERT INTO public.issues (title) VALUES ('x')",
        "UPDATE public.issues SET title = 'x'",
        "DELETE FROM public.issues",
        "CREATE TABLE public.mine (x int)",
        "CREATE TABLE gitlab_partitions_static.mine (x int)",
        "DROP TABLE public.issues",
    ] {
        let e = grafana(denied).expect_err(denied);
        assert!(
            e.contains("permission denied") || e.contains("must be owner"),
            "{denied}: {e}"
        );
    }
    // Another tenant's database, and the maintenance database's tenant list.
    let e = server
        .try_connect("grafana", pw("grafana"), "harbor_db")
        .unwrap_err();
    assert!(e.contains("permission denied"), "{e}");

    let sidekiq = |sql: &str| server.exec_as("gitlab_sidekiq", pw("gitlab_sidekiq"), db, sql);
    sidekiq(
        "INSERT INTO public.issues (title) VALUES ('from sidekiq');
         UPDATE public.issues SET title = 'edited' WHERE title = 'first';
         INSERT INTO gitlab_partitions_static.events DEFAULT VALUES;
         DELETE FROM gitlab_partitions_static.events;",
    )
    .unwrap();
    for denied in [
        "CREATE TABLE public.mine (x int)",
        "CREATE TABLE gitlab_partitions_dynamic.mine (x int)",
        "DROP TABLE public.issues",
        "TRUNCATE public.issues",
        "ALTER TABLE public.issues ADD COLUMN y int",
    ] {
        let e = sidekiq(denied).expect_err(denied);
        assert!(
            e.contains("permission denied") || e.contains("must be owner"),
            "{denied}: {e}"
        );
    }
    assert!(server
        .try_connect("gitlab_sidekiq", pw("gitlab_sidekiq"), "synapse")
        .is_err());
    // A table that existed before a reader was added gets its privileges
    // too (GRANT ... ON ALL TABLES), and the plan stays empty afterwards.
    let more = EXAMPLE.replace("readers: [grafana]", "readers: [grafana, metabase]");
    let input2 = Input::new(&more, &format!("{EXAMPLE_USERS}metabase:M3t@b@se\n"));
    let plan = input2.run(&server, &["plan"]);
    assert!(
        plan.stdout.contains(r#"+ grant "metabase" in database "gitlabhq_production" (reader of "gitlab", USAGE on schema "gitlab_partitions_dynamic", "gitlab_partitions_static", "public", SELECT on tables in "gitlab_partitions_static", "public", SELECT on sequences in "gitlab_partitions_static", "public", default privileges on tables, sequences, schemas)"#),
        "{}",
        plan.stdout
    );
    input2.run(&server, &["apply"]).assert_code(0);
    assert_eq!(
        server
            .exec_as(
                "metabase",
                "M3t@b@se",
                db,
                "SELECT count(*) FROM public.issues"
            )
            .unwrap()[0][0]
            .as_deref(),
        Some("2")
    );
    input2.run(&server, &["plan", "--exit-code"]).assert_code(0);
}

#[test]
fn drift_is_put_back() {
    let server = PgServer::start();
    let input = Input::new(EXAMPLE, EXAMPLE_USERS);
    input.run(&server, &["apply"]).assert_code(0);
    let before = catalog(&server);
    let db = "gitlabhq_production";
    server.query_db(
        db,
        "DROP EXTENSION pg_trgm;
         ALTER SCHEMA gitlab_partitions_dynamic OWNER TO postgres;
         ALTER DEFAULT PRIVILEGES FOR ROLE gitlab REVOKE SELECT ON TABLES FROM grafana;",
    );
    for sql in [
        "ALTER ROLE gitlab RESET statement_timeout",
        "ALTER ROLE gitlab CONNECTION LIMIT 1000",
        "REVOKE CONNECT ON DATABASE gitlabhq_production FROM grafana",
        "ALTER DATABASE synapse CONNECTION LIMIT 3",
    ] {
        server.query(sql);
    }
    let plan = input.run(&server, &["plan"]);
    plan.assert_code(0);
    insta::assert_snapshot!(plan.stdout, @r#"
    ~ role "gitlab": connection limit 60 (was 1000)
    + setting "statement_timeout" (role "gitlab", 60s)
    ~ database "gitlabhq_production": grant CONNECT to "grafana"
    ~ schema "gitlab_partitions_dynamic" in database "gitlabhq_production": owner "gitlab" (was "postgres")
    + extension "pg_trgm" in database "gitlabhq_production" (default version)
    ~ grant "grafana" in database "gitlabhq_production": reader of "gitlab", default privileges on tables
    Plan: 2 to create, 4 to update.
    "#);
    input.run(&server, &["apply"]).assert_code(0);
    input.run(&server, &["plan", "--exit-code"]).assert_code(0);
    // synapse's limit is not in the config: left as changed by hand.
    assert_eq!(
        one(
            &server,
            "SELECT datconnlimit::text FROM pg_database WHERE datname = 'synapse'"
        )
        .as_deref(),
        Some("3")
    );
    server.query("ALTER DATABASE synapse CONNECTION LIMIT -1");
    // Put back, not byte for byte: an ACL or a setting list re-made holds
    // the same items in another order.
    assert_eq!(sorted_arrays(&catalog(&server)), sorted_arrays(&before));
}

/// `{b,a}` -> `{a,b}` everywhere in `text`.
fn sorted_arrays(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find('}') else { break };
        let mut items: Vec<&str> = rest[i + 1..i + j].split(',').collect();
        items.sort();
        out.push_str(&format!("{{{}}}", items.join(",")));
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn extension_versions_and_unavailable_extensions() {
    let server = PgServer::start();
    let newest = one(
        &server,
        "SELECT default_version FROM pg_available_extensions WHERE name = 'pg_trgm'",
    )
    .unwrap();
    let config = format!(
        "tenants:\n  app:\n    databases:\n      - name: app_db\n        extensions: [{{name: pg_trgm, version: \"{newest}\"}}]\n  broken:\n    databases:\n      - name: broken_db\n        extensions: [pg_trgm, no_such_extension]\n"
    );
    let input = Input::new(&config, "app:a\nbroken:b\n");
    // An older version installed by hand: updated, not re-created.
    server.query("CREATE ROLE app LOGIN");
    server.query("CREATE DATABASE app_db OWNER app");
    server.query_db("app_db", "CREATE EXTENSION pg_trgm VERSION '1.3'");
    let plan = input.run(&server, &["plan"]);
    plan.assert_code(1);
    let first = plan.stdout.lines().next().unwrap();
    assert_eq!(
        first,
        r#"! tenant "broken": the server does not have extension "no_such_extension" (database "broken_db") (pg_available_extensions); nothing of this tenant is changed"#
    );
    assert!(
        plan.stdout.contains(&format!(
            r#"~ extension "pg_trgm" in database "app_db": version {newest} (was 1.3)"#
        )),
        "{}",
        plan.stdout
    );
    let out = input.run(&server, &["apply"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("1 of 2 tenants failed") || out.stderr.contains("1 failed"),
        "{}",
        out.stderr
    );
    assert_eq!(
        server.query_db(
            "app_db",
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_trgm'"
        )[0][0]
            .as_deref(),
        Some(newest.as_str())
    );
    // Nothing of the broken tenant exists.
    assert_eq!(
        one(
            &server,
            "SELECT count(*)::text FROM pg_roles WHERE rolname = 'broken'"
        )
        .as_deref(),
        Some("0")
    );
    assert_eq!(
        one(
            &server,
            "SELECT count(*)::text FROM pg_database WHERE datname = 'broken_db'"
        )
        .as_deref(),
        Some("0")
    );
}

/// The trust rules of `docs/adoption.md` hold for every database the config
/// gives a tenant, not only the first, and for readers and writers: a second
/// database that another application owns (with its data) makes the tenant a
/// conflict with nothing changed; a second database closed by hand is opened
/// up again (what is inside it is looked at by the next pass); an expired
/// reader gets its login back; a privileged role is never made a reader.
#[test]
fn trust_rules_hold_for_every_configured_database_and_member() {
    let server = PgServer::start();
    for sql in [
        "CREATE ROLE other LOGIN PASSWORD 'other-pw'",
        "CREATE DATABASE shop_orders OWNER other",
        "CREATE ROLE boss SUPERUSER NOLOGIN",
    ] {
        server.query(sql);
    }
    server
        .exec_as(
            "other",
            "other-pw",
            "shop_orders",
            "CREATE TABLE orders (id int)",
        )
        .unwrap();
    let config = "tenants:\n  shop:\n    databases: [shop_db, shop_orders]\n  crm:\n    databases:\n      - crm_db\n      - name: crm_reports\n        extensions: [pg_trgm]\n    readers: [analyst, boss]\n";
    let input = Input::new(
        config,
        "shop:pw-shop\ncrm:pw-crm\nanalyst:pw-analyst\nboss:pw-boss\n",
    );
    let acl = || {
        one(
            &server,
            "SELECT pg_get_userbyid(datdba) || ' ' || coalesce(datacl::text, 'default') \
               FROM pg_database WHERE datname = 'shop_orders'",
        )
    };
    let before = acl();

    let plan = input.run(&server, &["plan"]);
    plan.assert_code(1);
    assert!(
        plan.stdout.contains(
            r#"! database "shop_orders" is owned by "other" and holds objects owned by "other""#
        ),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains(r#"! role "boss" exists with SUPERUSER"#),
        "{}",
        plan.stdout
    );
    for untouched in [r#"role "shop""#, r#"database "shop_db""#, r#"grant "boss""#] {
        assert!(
            !plan.stdout.contains(&format!("+ {untouched}"))
                && !plan.stdout.contains(&format!("~ {untouched}")),
            "{untouched}: {}",
            plan.stdout
        );
    }
    input.run(&server, &["apply"]).assert_code(1);
    assert_eq!(acl(), before);
    assert_eq!(
        one(
            &server,
            "SELECT count(*)::text FROM pg_database WHERE datname = 'shop_db'"
        )
        .as_deref(),
        Some("0"),
        "nothing of a refused tenant is created"
    );
    server
        .exec_as("other", "other-pw", "shop_orders", "SELECT * FROM orders")
        .expect("the owner keeps its database");
    server
        .try_connect("analyst", "pw-analyst", "crm_reports")
        .expect("the reader reaches the tenant's second database");

    // Closed by hand: the second database, and the reader.
    server.query_db("crm_reports", "DROP EXTENSION pg_trgm");
    for sql in [
        "ALTER DATABASE crm_reports ALLOW_CONNECTIONS false",
        "ALTER DATABASE crm_reports CONNECTION LIMIT 0",
        "ALTER ROLE analyst VALID UNTIL '2000-01-01'",
    ] {
        server.query(sql);
    }
    assert!(server
        .try_connect("analyst", "pw-analyst", "crm_db")
        .is_err());
    let plan = input.run(&server, &["plan"]);
    for line in [
        r#"~ role "analyst": valid until infinity (expired)"#,
        r#"~ database "crm_reports": allow connections, connection limit -1 (was 0)"#,
    ] {
        assert!(plan.stdout.contains(line), "{line}: {}", plan.stdout);
    }
    assert!(
        !plan.stdout.contains(r#"extension "pg_trgm""#),
        "a closed database is not looked into: {}",
        plan.stdout
    );
    input.run(&server, &["apply"]).assert_code(1);
    server
        .try_connect("analyst", "pw-analyst", "crm_reports")
        .expect("opened up again");
    // The next pass looks inside and puts the extension back.
    let plan = input.run(&server, &["plan"]);
    assert!(
        plan.stdout
            .contains(r#"+ extension "pg_trgm" in database "crm_reports""#),
        "{}",
        plan.stdout
    );
    input.run(&server, &["apply"]).assert_code(1);
    let plan = input.run(&server, &["plan"]);
    let changes: Vec<&str> = plan
        .stdout
        .lines()
        .filter(|l| l.starts_with("+ ") || l.starts_with("~ "))
        .collect();
    assert!(changes.is_empty(), "{}", plan.stdout);
}

#[test]
fn creation_time_options_that_differ_are_a_conflict_never_a_recreation() {
    let server = PgServer::start();
    server.query("CREATE ROLE synapse LOGIN");
    server.query(
        "CREATE DATABASE synapse OWNER synapse TEMPLATE template0 ENCODING 'SQL_ASCII' LOCALE 'C'",
    );
    server.query_db("synapse", "CREATE TABLE keep (x int)");
    let input = Input::new(
        "tenants:\n  synapse:\n    databases:\n      - {name: synapse, template: template0, encoding: UTF8, locale: C, connection_limit: 20}\n",
        "synapse:pw\n",
    );
    let plan = input.run(&server, &["plan"]);
    plan.assert_code(1);
    // On 14 and older the tenant is also given schema public.
    let schema_public = if server.major() <= 14 {
        r#", schema public owner "synapse" (was "postgres"), revoke CREATE on schema public from PUBLIC"#
    } else {
        ""
    };
    assert_eq!(
        plan.stdout,
        format!(
            r#"~ role "synapse": password (none set)
~ database "synapse": revoke CONNECT, TEMPORARY from PUBLIC{schema_public}, connection limit 20 (was -1)
! database "synapse" was created with encoding SQL_ASCII (config: UTF8); creation-time options are never changed (pgtenant does not re-create a database)
Plan: 0 to create, 2 to update.
"#
        )
    );
    let out = input.run(&server, &["apply"]);
    out.assert_code(1);
    // The rest was applied; the database and its data are still there.
    assert_eq!(
        one(
            &server,
            "SELECT datconnlimit::text FROM pg_database WHERE datname = 'synapse'"
        )
        .as_deref(),
        Some("20")
    );
    server.query_db("synapse", "SELECT * FROM keep");
    let status = input.run(&server, &["status", "-o", "json"]);
    assert!(
        status.stdout.contains("\"state\": \"conflict\""),
        "{}",
        status.stdout
    );
}

/// Each invalid config: its message with `file:line:column`, exit 2, and
/// not one role created.
#[test]
fn invalid_configs_change_nothing() {
    let server = PgServer::start();
    let cases = [
        ("version: 2\ntenants:\n  a: {}\n", "a:1\n"),
        ("tenants:\n  a:\n    databses: [x]\n", "a:1\n"),
        ("tenants:\n  a: {}\n  a: {}\n", "a:1\n"),
        ("tenants:\n  a:\n    connection_limit: many\n", "a:1\n"),
        ("tenants:\n  a:\n    databases: [shared]\n  b:\n    databases: [shared]\n", "a:1\nb:2\n"),
        ("tenants:\n  a:\n    readers: [b]\n  b: {}\n", "a:1\nb:2\n"),
        ("tenants:\n  a: {}\n  nopw: {}\n", "a:1\n"),
        ("tenants:\n  a:\n    databases: [\"x\\u0001y\", template1]\n", "a:1\n"),
        ("tenants:\n  a:\n    databases: [unclosed\n", "a:1\n"),
        (
            "x0: &x0 [a, a, a, a, a, a, a, a, a, a]\nx1: &x1 [*x0, *x0, *x0, *x0, *x0, *x0, *x0, *x0, *x0, *x0]\nx2: &x2 [*x1, *x1, *x1, *x1, *x1, *x1, *x1, *x1, *x1, *x1]\nx3: &x3 [*x2, *x2, *x2, *x2, *x2, *x2, *x2, *x2, *x2, *x2]\nx4: &x4 [*x3, *x3, *x3, *x3, *x3, *x3, *x3, *x3, *x3, *x3]\nx5: [*x4, *x4, *x4, *x4, *x4, *x4, *x4, *x4, *x4, *x4]\n",
            "a:1\n",
        ),
    ];
    let mut report = String::new();
    for (config, users) in cases {
        let input = Input::new(config, users);
        let out = input.run(&server, &["apply"]);
        out.assert_code(2);
        let dir = input.dir.path().display().to_string();
        report.push_str(&format!("{config:?}\n"));
        for line in out.stderr.lines() {
            // Without the timestamp.
            let line = line.split_once(' ').map_or(line, |(_, rest)| rest);
            report.push_str(&format!("  {}\n", line.replace(&dir, "DIR")));
        }
    }
    insta::assert_snapshot!(report);
    assert_eq!(
        one(
            &server,
            "SELECT count(*)::text FROM pg_roles WHERE rolname IN ('a', 'b')"
        )
        .as_deref(),
        Some("0")
    );
}

#[test]
fn config_schema_is_printed_and_valid_json() {
    let out = run_raw(&["config-schema"], &[]);
    out.assert_code(0);
    assert_eq!(
        out.stdout,
        include_str!("../../docs/schema/config-v1.schema.json")
    );
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["title"], "pgtenant config file, version 1");
}

/// A mounted Secret with one key per user, as the kubelet lays it out.
struct Volume {
    dir: tempfile::TempDir,
    generation: u32,
}

impl Volume {
    fn new(keys: &[(&str, &str)]) -> Volume {
        let mut v = Volume {
            dir: tempfile::tempdir().unwrap(),
            generation: 0,
        };
        v.swap(keys);
        v
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    /// A new timestamped directory, `..data` renamed onto it, the links of
    /// the keys made, the old directory removed.
    fn swap(&mut self, keys: &[(&str, &str)]) {
        self.generation += 1;
        let ts = format!("..2026_12_01_00_00_{:02}.000", self.generation);
        let dir = self.path().join(&ts);
        std::fs::create_dir(&dir).unwrap();
        for (k, v) in keys {
            std::fs::write(dir.join(k), v).unwrap();
        }
        let old = std::fs::read_link(self.path().join("..data")).ok();
        symlink(&ts, self.path().join("..data_tmp")).unwrap();
        std::fs::rename(self.path().join("..data_tmp"), self.path().join("..data")).unwrap();
        for (k, _) in keys {
            let link = self.path().join(k);
            if std::fs::symlink_metadata(&link).is_err() {
                symlink(Path::new("..data").join(k), link).unwrap();
            }
        }
        if let Some(old) = old {
            std::fs::remove_dir_all(self.path().join(old)).unwrap();
        }
    }
}

fn logs_in(server: &PgServer, user: &str, password: &str, db: &str) -> bool {
    server.try_connect(user, password, db).is_ok()
}

#[track_caller]
fn eventually(what: &str, log: &Arc<Mutex<String>>, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not {what} after 30 s; log:\n{}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

#[test]
fn users_directory_with_kubelet_swaps_under_run() {
    let server = PgServer::start();
    let mut users = Volume::new(&[("alice", "alice-1\n"), ("grafana", "graf-1\n")]);
    // The config is a ConfigMap volume too; a tenant's password comes from
    // its own Secret file.
    let mut config = Volume::new(&[(
        "pgtenant.yaml",
        "tenants:\n  alice:\n    readers: [grafana]\n",
    )]);
    let bob_secret = Volume::new(&[("password", "bob-1\n")]);
    let config_path = config.path().join("pgtenant.yaml");
    let run = Pgtenant::new(&server)
        .users(users.path())
        .env("PGTENANT_CONFIG", &config_path)
        .args(["run"])
        .sidecar();
    let log = run.log_handle();
    eventually("alice and grafana", &log, || {
        logs_in(&server, "alice", "alice-1", "alice_db")
            && logs_in(&server, "grafana", "graf-1", "alice_db")
    });
    // A key added and a password changed, in one swap.
    users.swap(&[
        ("alice", "alice-2\n"),
        ("grafana", "graf-1\n"),
        ("carol", "carol-1"),
    ]);
    let took = eventually("the user swap applied", &log, || {
        logs_in(&server, "alice", "alice-2", "alice_db")
            && logs_in(&server, "carol", "carol-1", "carol_db")
    });
    println!("users ..data swap applied after {took:?}");
    // The ConfigMap swaps: a new tenant whose password is a password_file.
    let bob_file = bob_secret.path().join("password");
    config.swap(&[(
        "pgtenant.yaml",
        &format!(
            "tenants:\n  alice:\n    readers: [grafana]\n  bob:\n    password_file: {}\n    databases: [bob_one, bob_two]\n",
            bob_file.display()
        ),
    )]);
    let took = eventually("the config swap applied", &log, || {
        logs_in(&server, "bob", "bob-1", "bob_two")
    });
    println!("config ..data swap applied after {took:?}");
    // The password_file's own Secret swaps.
    let mut bob_secret = bob_secret;
    bob_secret.swap(&[("password", "bob-2\n")]);
    let took = eventually("the password_file swap applied", &log, || {
        logs_in(&server, "bob", "bob-2", "bob_one")
    });
    println!("password_file ..data swap applied after {took:?}");
    let log = run.log();
    assert!(!log.contains("bob-2") && !log.contains("alice-2"), "{log}");
}

#[test]
fn users_directory_one_shot() {
    let server = PgServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keycloak"), "K3y\n").unwrap();
    std::fs::write(dir.path().join(".hidden"), "x").unwrap();
    let mut env = server.admin_env();
    env.push(("DBUSERS".into(), dir.path().display().to_string()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    run_raw(&["apply"], &env).assert_code(0);
    assert!(logs_in(&server, "keycloak", "K3y", "keycloak_db"));
    assert_eq!(
        one(
            &server,
            "SELECT count(*)::text FROM pg_roles WHERE rolname = '.hidden'"
        )
        .as_deref(),
        Some("0")
    );
}

/// The commands docs/config.md shows, as shown (the test runs in the
/// repository's root).
#[test]
fn the_documented_commands_work() {
    let server = PgServer::start();
    let env = server.admin_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let args = |cmd: &str| -> Vec<String> {
        [
            "--config",
            "examples/pgtenant.yaml",
            "--users",
            "examples/pgtenant.users",
            cmd,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let run = |cmd: &str| {
        let a = args(cmd);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        run_raw(&a, &env)
    };
    let plan = run("plan");
    plan.assert_code(0);
    assert!(
        plan.stdout
            .contains(r#"+ extension "btree_gist" in database "gitlabhq_production""#),
        "{}",
        plan.stdout
    );
    run("apply").assert_code(0);
    let status = run("status");
    status.assert_code(0);
    assert!(status.stdout.contains("OBJECT"), "{}", status.stdout);
    let docs = include_str!("../../docs/config.md");
    for line in [
        "pgtenant --config examples/pgtenant.yaml --users ~/pgtenant.users plan",
        "pgtenant --config examples/pgtenant.yaml --users ~/pgtenant.users apply",
        "pgtenant --config examples/pgtenant.yaml --users ~/pgtenant.users status",
        "pgtenant config-schema > pgtenant-config.schema.json",
    ] {
        assert!(
            docs.contains(line),
            "docs/config.md no longer shows {line:?}"
        );
    }
    // `config-schema` is run by config_schema_is_printed_and_valid_json.
}
