//! A throwaway PgBouncer (Debian's `pgbouncer` package) in front of a test
//! server: its own temporary directory, a free port on 127.0.0.1,
//! the configuration that the deployment examples ship (`auth_type =
//! scram-sha-256`, the auth file that pgtenant writes, no password anywhere).
//!
//! PgBouncer refuses to run as root: then it runs as the `postgres` system
//! user (else `nobody`), and its directory is setgid to that user's group,
//! so that an auth file written by root with mode 0640 is readable by it:
//! the `fsGroup` arrangement of a shared Kubernetes `emptyDir`.

#![allow(dead_code)]

use std::ffi::CString;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN_USER: &str = "pgbouncer_admin";

const SHIPPED_INI: &str =
    include_str!("../../../deploy/kubernetes/examples/pgbouncer/pgbouncer.ini");

pub struct PgBouncer {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

/// The binary: `PGTENANT_TEST_PGBOUNCER`, else Debian's path.
fn binary() -> PathBuf {
    std::env::var_os("PGTENANT_TEST_PGBOUNCER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/pgbouncer"))
}

/// The PgBouncer tests run once, on the default server (Debian's): their
/// subject is PgBouncer and the auth file, not the server's major.
pub fn skip_on_matrix() -> bool {
    if std::env::var_os("PGTENANT_TEST_PG").is_some() {
        eprintln!("PgBouncer tests run only on the default server (PGTENANT_TEST_PG is set)");
        return true;
    }
    assert!(
        binary().exists(),
        "{} is missing: install PgBouncer (apt-get install pgbouncer) or set PGTENANT_TEST_PGBOUNCER",
        binary().display()
    );
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// (uid, gid) PgBouncer runs as when the tests run as root.
fn owner() -> Option<(u32, u32)> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    for name in ["postgres", "nobody"] {
        let c = CString::new(name).unwrap();
        // SAFETY: getpwnam_r writes only into `pwd` and `buf`, both alive
        // and sized as passed.
        unsafe {
            let mut pwd: libc::passwd = std::mem::zeroed();
            let mut buf = vec![0 as libc::c_char; 16 * 1024];
            let mut result: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwnam_r(
                c.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            );
            if rc == 0 && !result.is_null() {
                return Some((pwd.pw_uid, pwd.pw_gid));
            }
        }
    }
    Some((65534, 65534))
}

impl PgBouncer {
    /// A directory for the auth file (and PgBouncer's configuration), made
    /// before PgBouncer starts so that pgtenant can write into it first.
    pub fn prepare() -> PgBouncer {
        let dir = tempfile::Builder::new()
            .prefix("pgb")
            .tempdir_in("/tmp")
            .unwrap();
        if let Some((_, gid)) = owner() {
            chown(dir.path(), None, Some(gid)).unwrap();
            // setgid: files made in it belong to PgBouncer's group.
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o2750)).unwrap();
        }
        PgBouncer {
            dir,
            port: free_port(),
            child: None,
        }
    }

    pub fn auth_file(&self) -> PathBuf {
        self.dir.path().join("userlist.txt")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The console conninfo for `--pgbouncer-admin`.
    pub fn admin_conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user={ADMIN_USER} dbname=pgbouncer",
            self.port
        )
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("pgbouncer.ini")
    }

    /// Starts PgBouncer in front of the server at `pg_port`; waits until it
    /// accepts connections.
    pub fn start(&mut self, pg_port: u16) {
        // The configuration that the deployment examples ship, with only
        // the addresses and the auth file's path replaced.
        let mut ini = SHIPPED_INI.to_owned();
        for (from, to) in [
            (
                "* = host=127.0.0.1 port=5432".to_owned(),
                format!("* = host=127.0.0.1 port={pg_port}"),
            ),
            (
                "listen_addr = 0.0.0.0".to_owned(),
                "listen_addr = 127.0.0.1".to_owned(),
            ),
            (
                "listen_port = 6432".to_owned(),
                format!("listen_port = {}", self.port),
            ),
            (
                "auth_file = /run/pgbouncer-auth/userlist.txt".to_owned(),
                format!("auth_file = {}", self.auth_file().display()),
            ),
        ] {
            assert!(
                ini.contains(&from),
                "{from:?} not in the shipped pgbouncer.ini"
            );
            ini = ini.replace(&from, &to);
        }
        assert!(ini.contains(&format!("admin_users = {ADMIN_USER}\n")));
        assert!(ini.contains("auth_type = scram-sha-256\n"));
        fs::write(self.config_path(), ini).unwrap();
        fs::set_permissions(self.config_path(), fs::Permissions::from_mode(0o640)).unwrap();
        let log = fs::File::create(self.dir.path().join("pgbouncer.log")).unwrap();
        let mut cmd = Command::new(binary());
        cmd.arg(self.config_path())
            .env_clear()
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some((uid, gid)) = owner() {
            cmd.uid(uid).gid(gid);
        }
        self.child = Some(cmd.spawn().expect("start pgbouncer"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("pgbouncer exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not listen:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }

    /// Logs in through PgBouncer with libpq (psql) and runs
    /// `SELECT current_user || '|' || current_database()`; its output or
    /// psql's error. Credentials go in the environment, never argv.
    pub fn query_as(&self, user: &str, password: &str, db: &str) -> Result<String, String> {
        let out = Command::new("psql")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", user)
            .env("PGPASSWORD", password)
            .env("PGDATABASE", db)
            .env("PGCONNECT_TIMEOUT", "10")
            .args([
                "-X",
                "-At",
                "-c",
                "SELECT current_user || '|' || current_database()",
            ])
            .output()
            .expect("run psql");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- pgbouncer log ---\n{}", self.log());
        }
    }
}
