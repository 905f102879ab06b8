//! Connection strings and connection errors as libpq users know them:
//! `-d`/`PGDATABASE` as `key=value` conninfo or `postgresql://` URI, psql's
//! hints naming where the password came from (never the value), and usage
//! errors from clap. Each test is one or two short runs (seconds).

use crate::support::cli::{run_raw, UsersFile};
use crate::support::server::PgServer;

fn users() -> UsersFile {
    UsersFile::new("app:app-pw\n")
}

#[test]
fn dbname_accepts_conninfo_and_uri() {
    let server = PgServer::start();
    let users = users();
    let path = users.path().to_str().unwrap();
    let user = "postgres";
    let password = server.superuser_password().to_owned();
    let port = server.port().to_string();
    // conninfo: its settings first; PGPASSWORD fills in where it is silent;
    // PGHOST/PGPORT point nowhere and are overridden by the string.
    let conninfo = format!("host=127.0.0.1 port={port} user={user} dbname=postgres");
    let out = run_raw(
        &["-d", &conninfo, "plan"],
        &[
            ("DBUSERS", path),
            ("PGHOST", "192.0.2.1"),
            ("PGPORT", "1"),
            ("PGPASSWORD", &password),
        ],
    );
    out.assert_code(0);
    assert!(out.stdout.contains("+ role \"app\""), "{}", out.stdout);
    // URI with the password in it, as PGDATABASE.
    let encoded: String = password.bytes().map(|b| format!("%{b:02X}")).collect();
    let uri = format!("postgresql://{user}:{encoded}@127.0.0.1:{port}/postgres?sslmode=disable");
    let out = run_raw(&["apply"], &[("DBUSERS", path), ("PGDATABASE", &uri)]);
    out.assert_code(0);
    assert!(!out.stderr.contains(&password));
    server
        .try_connect("app", "app-pw", "app_db")
        .expect("provisioned through the URI");
}

#[test]
fn connection_errors_carry_psql_hints_and_the_password_source() {
    let server = PgServer::start();
    let users = users();
    let path = users.path().to_str().unwrap();
    let port = server.port().to_string();
    let base = [
        ("DBUSERS", path),
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", port.as_str()),
        ("PGUSER", "postgres"),
    ];

    let wrong = "Wrong-Pw-7f3a";
    let mut env = base.to_vec();
    env.push(("PGPASSWORD", wrong));
    let out = run_raw(&["plan"], &env);
    out.assert_code(1);
    assert!(
        out.stderr.contains("password authentication failed")
            && out.stderr.contains("; the password came from PGPASSWORD"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(wrong));

    let out = run_raw(&["plan"], &base);
    out.assert_code(1);
    assert!(
        out.stderr.contains(
            "no password was given: set PGPASSWORD, PGPASSFILE or POSTGRES_PASSWORD[_FILE], or add it to ~/.pgpass"
        ),
        "{}",
        out.stderr
    );

    let uri = format!("postgresql://postgres:{wrong}@127.0.0.1:{port}/postgres");
    let out = run_raw(&["plan", "-d", &uri], &[("DBUSERS", path)]);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("; the password came from the --dbname connection string"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(wrong));

    let out = run_raw(
        &["plan"],
        &[
            ("DBUSERS", path),
            ("PGHOST", "127.0.0.1"),
            ("PGPORT", "1"),
            ("PGPASSWORD", "x"),
        ],
    );
    out.assert_code(1);
    assert!(
        out.stderr.contains(
            "connection refused; is the server running on that host and accepting TCP/IP connections?"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn usage_errors_look_like_clap() {
    let out = run_raw(&["-p", "abc", "plan"], &[]);
    out.assert_code(2);
    assert!(
        out.stderr.starts_with(
            "error: invalid value 'abc' for '--port <PORT>': expected a number from 1 to 65535"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("For more information, try '--help'."),
        "{}",
        out.stderr
    );
    // A bad connection string is an input error (exit 2) that does not echo it.
    let out = run_raw(&["-d", "host=db password='s3cret", "plan"], &[]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("invalid connection string in --dbname: unterminated quoted string"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("s3cret"));
}
