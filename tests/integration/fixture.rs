//! Smoke tests of the server fixture itself, so that a failure elsewhere is
//! not a fixture problem in disguise. Run them against every supported major
//! with `PGTENANT_TEST_PG=<major> cargo test --test integration fixture`.

use crate::support::server::PgServer;

fn one(server: &PgServer, sql: &str) -> Option<String> {
    server
        .query(sql)
        .into_iter()
        .next()
        .and_then(|row| row.into_iter().next().flatten())
}

#[test]
fn starts_and_superuser_can_query() {
    let server = PgServer::start();
    assert_eq!(
        server.query("SELECT 1, NULL::text"),
        vec![vec![Some("1".to_owned()), None]]
    );
    assert_eq!(
        one(&server, "SELECT current_user").as_deref(),
        Some("postgres")
    );
    let version_num: u32 = one(&server, "SHOW server_version_num")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(server.major(), version_num / 10000);
    assert!(server.major() >= 13, "major {}", server.major());
    assert_eq!(one(&server, "SHOW port"), Some(server.port().to_string()));
    assert_eq!(
        one(&server, "SHOW listen_addresses").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        one(&server, "SHOW password_encryption").as_deref(),
        Some("scram-sha-256")
    );
    assert_eq!(
        one(&server, "SHOW server_encoding").as_deref(),
        Some("UTF8")
    );
    assert!(server.data_dir().join("PG_VERSION").is_file());
    // Several statements in one call: rows of all of them.
    assert_eq!(server.query("SELECT 1; SELECT 2").len(), 2);
    assert_eq!(one(&server, "CREATE DATABASE other").as_deref(), None);
    assert_eq!(
        server.query_db("other", "SELECT current_database()"),
        vec![vec![Some("other".to_owned())]]
    );
}

#[test]
fn scram_refuses_a_wrong_password() {
    let server = PgServer::start();
    server
        .try_connect("postgres", server.superuser_password(), "postgres")
        .expect("the right password logs in");
    let err = server
        .try_connect("postgres", "not-the-password", "postgres")
        .unwrap_err();
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(err.contains("28P01"), "{err}");

    server.query("CREATE ROLE tenant LOGIN PASSWORD 'tenant-secret'");
    let verifier = one(
        &server,
        "SELECT rolpassword FROM pg_authid WHERE rolname = 'tenant'",
    )
    .unwrap();
    assert!(verifier.starts_with("SCRAM-SHA-256$"), "{verifier}");
    server
        .try_connect("tenant", "tenant-secret", "postgres")
        .expect("tenant logs in");
    assert!(server.try_connect("tenant", "wrong", "postgres").is_err());
    assert_eq!(
        server.exec_as("tenant", "tenant-secret", "postgres", "SELECT current_user"),
        Ok(vec![vec![Some("tenant".to_owned())]])
    );
    let err = server
        .exec_as(
            "tenant",
            "tenant-secret",
            "postgres",
            "SELECT * FROM pg_authid",
        )
        .unwrap_err();
    assert!(err.contains("42501"), "{err}");
    let err = server
        .try_connect("tenant", "tenant-secret", "no_such_db")
        .unwrap_err();
    assert!(err.contains("3D000"), "{err}");
}

#[test]
fn builder_settings_and_log() {
    let server = PgServer::builder()
        .conf("log_statement", "all")
        .conf("cluster_name", "it's quoted")
        .hba_line("host all trusting 127.0.0.1/32 trust")
        .start();
    assert_eq!(one(&server, "SHOW log_statement").as_deref(), Some("all"));
    assert_eq!(
        one(&server, "SHOW cluster_name").as_deref(),
        Some("it's quoted")
    );
    server.query("SELECT 'fixture-log-marker'");
    let log = server.log();
    assert!(log.contains("fixture-log-marker"), "{log}");
    assert!(
        log.contains("database system is ready to accept connections"),
        "{log}"
    );

    // The test's hba line comes before the defaults, so it wins.
    server.query("CREATE ROLE trusting LOGIN");
    server
        .try_connect("trusting", "anything", "postgres")
        .expect("trust ignores the password");
}

#[test]
fn admin_env_names_the_superuser_connection() {
    let server = PgServer::start();
    let env = server.admin_env();
    let get = |k: &str| {
        env.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("PGHOST"), Some(server.host()));
    assert_eq!(get("PGPORT"), Some(server.port().to_string().as_str()));
    assert_eq!(get("PGUSER"), Some(server.superuser()));
    assert_eq!(get("PGPASSWORD"), Some(server.superuser_password()));
    assert_eq!(get("PGDATABASE"), Some("postgres"));
}

#[tokio::test(flavor = "current_thread")]
async fn unix_socket_and_async_callers() {
    // Blocking helpers must work from inside a runtime too.
    let server = PgServer::start();
    assert_eq!(server.query("SELECT 1").len(), 1);

    let socket = server
        .socket_dir()
        .join(format!(".s.PGSQL.{}", server.port()));
    assert!(socket.to_str().unwrap().len() < 100, "{}", socket.display());
    let (client, connection) = tokio_postgres::Config::new()
        .host_path(server.socket_dir())
        .port(server.port())
        .user(server.superuser())
        .password(server.superuser_password())
        .dbname("postgres")
        .connect(tokio_postgres::NoTls)
        .await
        .expect("log in over the Unix socket");
    let connection = tokio::spawn(connection);
    let rows = client
        .simple_query("SELECT inet_client_addr() IS NULL")
        .await
        .unwrap();
    let over_socket = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    });
    assert_eq!(over_socket.as_deref(), Some("t"));
    drop(client);
    connection.await.unwrap().unwrap();
}

#[test]
fn restart_keeps_data_and_port() {
    let mut server = PgServer::start();
    let port = server.port();
    server.query("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before restart')");
    server.restart();
    assert_eq!(server.port(), port);
    assert_eq!(
        one(&server, "SELECT v FROM kept").as_deref(),
        Some("before restart")
    );

    server.stop();
    assert!(!server.is_running());
    assert!(server
        .try_connect("postgres", server.superuser_password(), "postgres")
        .is_err());
    server.start_again();
    assert_eq!(
        one(&server, "SELECT count(*) FROM kept").as_deref(),
        Some("1")
    );
}

#[test]
fn kill_then_start_again_recovers() {
    let mut server = PgServer::start();
    server.query("CREATE TABLE crash (v int); INSERT INTO crash VALUES (42)");
    server.kill();
    server.start_again();
    assert_eq!(one(&server, "SELECT v FROM crash").as_deref(), Some("42"));
    assert!(
        server.log().contains("not properly shut down"),
        "{}",
        server.log()
    );
}

#[test]
fn drop_stops_the_server_and_removes_its_directory() {
    let server = PgServer::start();
    let pid = server.pid().expect("running") as libc::pid_t;
    let dir = server.socket_dir().to_owned();
    drop(server);
    assert!(!dir.exists(), "{} still exists", dir.display());
    // SAFETY: signal 0 only checks whether the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    assert!(!alive, "postmaster {pid} still runs");
}

#[test]
fn servers_in_parallel_are_independent() {
    let servers: Vec<PgServer> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3).map(|_| s.spawn(PgServer::start)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ports: Vec<u16> = servers.iter().map(PgServer::port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 3);
    for (i, server) in servers.iter().enumerate() {
        server.query(&format!("CREATE TABLE only_{i} ()"));
    }
    for (i, server) in servers.iter().enumerate() {
        let tables = server.query("SELECT relname FROM pg_class WHERE relname LIKE 'only\\_%'");
        assert_eq!(tables, vec![vec![Some(format!("only_{i}"))]]);
    }
}
