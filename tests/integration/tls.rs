//! TLS to the server: `PGSSLMODE` and `PGSSLROOTCERT` with libpq's meaning,
//! against real servers with certificates made here (rcgen).
//!
//! Each server gets `ssl = on` with a certificate signed by a CA of the test,
//! and an admin role `tlsadmin` that may log in only over TLS (`hostssl`,
//! and `hostnossl ... reject`): a successful run as `tlsadmin` proves the
//! session was encrypted. The fixture itself keeps logging in as `postgres`
//! in the clear.

use std::fs;
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::support::cli::{run_raw, Run, UsersFile};
use crate::support::server::PgServer;

const ADMIN: &str = "tlsadmin";
const ADMIN_PASSWORD: &str = "tls-admin-Pw-1";

/// A CA: its certificate (PEM) and what it takes to sign with it.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn new_ca(name: &str) -> Ca {
    let key = KeyPair::generate().expect("generate a CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).expect("self-sign the CA");
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A server certificate for `names` (DNS names or IP addresses), signed by
/// `ca`: (certificate PEM, key PEM).
fn server_cert(ca: &Ca, names: &[&str]) -> (String, String) {
    let key = KeyPair::generate().expect("generate a server key");
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names).expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "pgtenant test server");
    let cert = params
        .signed_by(&key, &ca.issuer)
        .expect("sign the server cert");
    (cert.pem(), key.serialize_pem())
}

/// A running server with TLS on, and the client side's files.
struct TlsServer {
    server: PgServer,
    /// The CA that signed the server's certificate.
    ca_file: PathBuf,
    /// Another CA, which did not.
    wrong_ca_file: PathBuf,
    /// An empty HOME for the client (no ~/.postgresql/root.crt).
    home: tempfile::TempDir,
    users: UsersFile,
}

impl TlsServer {
    /// A server whose certificate is valid for `names`.
    fn start(names: &[&str]) -> TlsServer {
        let server = PgServer::builder()
            .hba_line(&format!("hostssl all {ADMIN} 127.0.0.1/32 scram-sha-256"))
            .hba_line(&format!("hostnossl all {ADMIN} 127.0.0.1/32 reject"))
            .start();
        server.query(&format!(
            "CREATE ROLE {ADMIN} LOGIN SUPERUSER PASSWORD '{ADMIN_PASSWORD}'"
        ));
        let ca = new_ca("pgtenant test ca");
        let (cert, key) = server_cert(&ca, names);
        enable_ssl(&server, &cert, &key);

        let home = tempfile::tempdir().expect("client home");
        let ca_file = home.path().join("ca.crt");
        fs::write(&ca_file, &ca.pem).expect("write ca.crt");
        let wrong_ca_file = home.path().join("wrong-ca.crt");
        fs::write(&wrong_ca_file, new_ca("another ca").pem).expect("write wrong-ca.crt");
        TlsServer {
            server,
            ca_file,
            wrong_ca_file,
            home,
            users: UsersFile::new("tenant1:tenant-pw-1\n"),
        }
    }

    /// `pgtenant ARGS` as `tlsadmin` at `host`, with exactly `extra` on top
    /// of the connection variables (PGSSLMODE, PGSSLROOTCERT...).
    fn run(&self, host: &str, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let port = self.server.port().to_string();
        let mut env: Vec<(&str, &str)> = vec![
            ("PGHOST", host),
            ("PGPORT", &port),
            ("PGUSER", ADMIN),
            ("PGPASSWORD", ADMIN_PASSWORD),
            ("PGDATABASE", "postgres"),
            ("HOME", self.home.path().to_str().unwrap()),
            ("DBUSERS", self.users.path().to_str().unwrap()),
        ];
        env.extend_from_slice(extra);
        run_raw(args, &env)
    }

    fn ca(&self) -> &str {
        self.ca_file.to_str().unwrap()
    }

    fn wrong_ca(&self) -> &str {
        self.wrong_ca_file.to_str().unwrap()
    }

    /// Puts `pem` where libpq looks by default: ~/.postgresql/root.crt.
    fn install_default_root(&self, pem_file: &Path) {
        let dir = self.home.path().join(".postgresql");
        fs::create_dir_all(&dir).unwrap();
        fs::copy(pem_file, dir.join("root.crt")).unwrap();
    }
}

/// Writes the certificate and key into the data directory, owned by the
/// user the server runs as (the fixture's `postgres`/`nobody` under root; the
/// data directory's owner in any case), the key 0600 as PostgreSQL demands,
/// then turns TLS on with a reload and waits until new sessions see it.
fn enable_ssl(server: &PgServer, cert: &str, key: &str) {
    let data = server.data_dir();
    let meta = fs::metadata(data).expect("stat the data directory");
    let cert_path = data.join("server.crt");
    let key_path = data.join("server.key");
    fs::write(&cert_path, cert).unwrap();
    fs::write(&key_path, key).unwrap();
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();
    for path in [&cert_path, &key_path] {
        chown(path, Some(meta.uid()), Some(meta.gid())).expect("chown the TLS files");
    }
    // ALTER SYSTEM refuses to run in a (multi-statement) transaction block.
    for (name, value) in [
        ("ssl_cert_file", cert_path.to_str().unwrap()),
        ("ssl_key_file", key_path.to_str().unwrap()),
        ("ssl", "on"),
    ] {
        server.query(&format!("ALTER SYSTEM SET {name} = '{value}'"));
    }
    server.query("SELECT pg_reload_conf()");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let on = server.query("SHOW ssl")[0][0].as_deref() == Some("on");
        if on {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "ssl did not turn on after a reload:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How the server words a plain session in its refusals: "SSL off" on 13.
fn no_encryption(server: &PgServer) -> &'static str {
    if server.major() < 14 {
        "SSL off"
    } else {
        "no encryption"
    }
}

#[track_caller]
fn assert_has(run: &Run, needle: &str) {
    assert!(
        run.stderr.contains(needle),
        "missing {needle:?} in stderr; {run:#?}"
    );
}

#[test]
fn verify_full_checks_the_chain_and_the_host_name() {
    let s = TlsServer::start(&["localhost"]);
    let port = s.server.port();

    // The right CA and the certificate's name.
    let ok = s.run(
        "localhost",
        &["apply"],
        &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", s.ca())],
    );
    ok.assert_code(0);
    assert_has(&ok, r#"created role "tenant1""#);

    // Another CA: the chain does not verify.
    let wrong_ca = s.run(
        "localhost",
        &["status"],
        &[
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", s.wrong_ca()),
        ],
    );
    wrong_ca.assert_code(1);
    assert_has(
        &wrong_ca,
        &format!(
            "failed to connect to localhost:{port}: certificate verify failed: the server's \
             certificate is not signed by a certificate authority of the root certificate file {}",
            s.wrong_ca()
        ),
    );

    // The right CA, but the certificate has no SAN for 127.0.0.1.
    let wrong_name = s.run(
        "127.0.0.1",
        &["status"],
        &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", s.ca())],
    );
    wrong_name.assert_code(1);
    assert_has(
        &wrong_name,
        &format!(
            "failed to connect to 127.0.0.1:{port}: certificate verify failed: certificate not \
             valid for name \"127.0.0.1\""
        ),
    );

    // verify-ca checks the chain only: the same connection succeeds...
    s.run(
        "127.0.0.1",
        &["status"],
        &[("PGSSLMODE", "verify-ca"), ("PGSSLROOTCERT", s.ca())],
    )
    .assert_code(0);
    // ...but not with another CA.
    let r = s.run(
        "127.0.0.1",
        &["status"],
        &[("PGSSLMODE", "verify-ca"), ("PGSSLROOTCERT", s.wrong_ca())],
    );
    r.assert_code(1);
    assert_has(
        &r,
        "certificate verify failed: the server's certificate is not signed",
    );

    // No root certificate at all: verify-* cannot verify and says so,
    // naming libpq's default file, before sending anything.
    let r = s.run("localhost", &["status"], &[("PGSSLMODE", "verify-full")]);
    r.assert_code(1);
    assert_has(
        &r,
        &format!(
            "failed to connect to localhost:{port}: root certificate file {}/.postgresql/root.crt \
             does not exist",
            s.home.path().display()
        ),
    );
    // The default file is used when present.
    s.install_default_root(&s.ca_file);
    s.run("localhost", &["status"], &[("PGSSLMODE", "verify-full")])
        .assert_code(0);
}

#[test]
fn verify_full_fails_for_a_certificate_of_another_host() {
    let s = TlsServer::start(&["db.example.com"]);
    let r = s.run(
        "localhost",
        &["plan"],
        &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", s.ca())],
    );
    r.assert_code(1);
    assert_has(
        &r,
        &format!(
            "failed to connect to localhost:{}: certificate verify failed: certificate not valid \
             for name \"localhost\"; certificate is only valid for ",
            s.server.port()
        ),
    );
}

#[test]
fn require_encrypts_without_checking_the_certificate_unless_a_root_file_exists() {
    // A certificate for another name, from a CA the client does not know.
    let s = TlsServer::start(&["db.example.com"]);
    // tlsadmin may log in over TLS only, so success proves encryption.
    let r = s.run("127.0.0.1", &["apply"], &[("PGSSLMODE", "require")]);
    r.assert_code(0);
    assert_has(&r, r#"created role "tenant1""#);

    // As libpq: with a root certificate file, require is verify-ca. The
    // default file, from another CA: refused.
    s.install_default_root(&s.wrong_ca_file);
    let r = s.run("127.0.0.1", &["status"], &[("PGSSLMODE", "require")]);
    r.assert_code(1);
    assert_has(
        &r,
        "certificate verify failed: the server's certificate is not signed",
    );
    // The right CA: the chain verifies, and the host name is not checked.
    s.run(
        "127.0.0.1",
        &["status"],
        &[("PGSSLMODE", "require"), ("PGSSLROOTCERT", s.ca())],
    )
    .assert_code(0);
    // A root certificate file that is named must exist: no silent downgrade.
    let r = s.run(
        "127.0.0.1",
        &["status"],
        &[
            ("PGSSLMODE", "require"),
            ("PGSSLROOTCERT", "/nonexistent/ca.crt"),
        ],
    );
    r.assert_code(1);
    assert_has(
        &r,
        "root certificate file /nonexistent/ca.crt (PGSSLROOTCERT) does not exist",
    );
}

#[test]
fn disable_against_a_tls_only_server_fails_clearly() {
    let s = TlsServer::start(&["localhost"]);
    let r = s.run("127.0.0.1", &["status"], &[("PGSSLMODE", "disable")]);
    r.assert_code(1);
    assert_has(
        &r,
        &format!(
            "failed to connect to 127.0.0.1:{}: pg_hba.conf rejects connection for host \
             \"127.0.0.1\", user \"{ADMIN}\", database \"postgres\", {} (SQLSTATE 28000)",
            s.server.port(),
            no_encryption(&s.server)
        ),
    );
}

#[test]
fn prefer_and_allow_reach_a_tls_only_server() {
    let s = TlsServer::start(&["localhost"]);
    // prefer (the default): TLS first.
    s.run("127.0.0.1", &["apply"], &[]).assert_code(0);
    // allow: plain first; the server refuses it, then TLS.
    let r = s.run("127.0.0.1", &["status"], &[("PGSSLMODE", "allow")]);
    r.assert_code(0);
    assert_has(&r, "without tls failed (pg_hba.conf rejects connection");
    assert_has(&r, "retrying over tls, as PGSSLMODE=allow allows");

    // prefer with a root certificate that rejects the server's: libpq falls
    // back to a plain session, which this server refuses; both are told.
    s.install_default_root(&s.wrong_ca_file);
    let r = s.run("127.0.0.1", &["status"], &[("PGSSLMODE", "prefer")]);
    r.assert_code(1);
    assert_has(&r, "over tls failed (certificate verify failed");
    assert_has(
        &r,
        &format!("{} (SQLSTATE 28000)", no_encryption(&s.server)),
    );
}

/// Through the library, on one session: `pg_stat_ssl` says whether it is
/// encrypted, and SCRAM channel binding (`tls-server-end-point`) works when
/// required by the client.
#[tokio::test(flavor = "current_thread")]
async fn sessions_are_encrypted_as_the_mode_says_with_channel_binding() {
    let s = TlsServer::start(&["localhost"]);
    let port = s.server.port().to_string();
    let encrypted = |mode: &'static str, user: &'static str, password: String| {
        let port = port.clone();
        async move {
            let env = pgtenant::input::env::Env::from_pairs([
                ("PGHOST", "127.0.0.1".to_owned()),
                ("PGPORT", port),
                ("PGUSER", user.to_owned()),
                ("PGPASSWORD", password),
                ("PGSSLMODE", mode.to_owned()),
            ]);
            let settings = pgtenant::input::conninfo::resolve(
                &pgtenant::input::conninfo::ConnFlags::default(),
                &env,
            )
            .expect("resolve");
            let mut config = settings.pg_config();
            if mode != "disable" && mode != "allow" {
                config.channel_binding(tokio_postgres::config::ChannelBinding::Require);
            }
            let (client, connection) = pgtenant::server::tls::connect(&settings, config)
                .await
                .unwrap_or_else(|e| panic!("{mode}: {}", pgtenant::server::db::describe(&e)));
            tokio::spawn(connection);
            let row = client
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .await
                .expect("pg_stat_ssl");
            row.get::<_, bool>(0)
        }
    };
    let su = s.server.superuser_password().to_owned();
    // postgres may log in either way: the mode decides.
    assert!(!encrypted("disable", "postgres", su.clone()).await);
    assert!(!encrypted("allow", "postgres", su.clone()).await);
    assert!(encrypted("prefer", "postgres", su.clone()).await);
    assert!(encrypted("require", "postgres", su).await);
    assert!(encrypted("allow", ADMIN, ADMIN_PASSWORD.to_owned()).await);
}

#[test]
fn unix_socket_ignores_sslmode_as_libpq_does() {
    let s = TlsServer::start(&["localhost"]);
    let socket = s.server.socket_dir().to_str().unwrap().to_owned();
    // tlsadmin has no `local` restriction; verify-full without any root
    // certificate would fail over TCP, but a socket never uses TLS.
    s.run(&socket, &["status"], &[("PGSSLMODE", "verify-full")])
        .assert_code(0);
}
