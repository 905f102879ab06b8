//! File safety: what pgtenant does with a users file (or an admin password
//! file) that is not an ordinary, private, small file. It refuses anything
//! but a regular file or a symlink to one, without hanging on a FIFO or
//! reading a device; it refuses a huge file before reading it; it warns about
//! permissions that let other users read or change a secret (SECURITY.md,
//! "File permissions"), and never about a Kubernetes Secret volume's
//! defaults.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::cli::{run_raw, Run, UsersFile};

/// `pgtenant plan` with no server behind it: input problems are found (and
/// reported with exit 2) before any connection is tried. A port nobody
/// listens on makes a run that gets that far fail fast with exit 1.
fn plan(users: &Path) -> Run {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    run_raw(
        &["plan"],
        &[
            ("PGHOST", "127.0.0.1"),
            ("PGPORT", &port),
            ("PGPASSWORD", "x"),
            ("DBUSERS", users.to_str().unwrap()),
        ],
    )
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_directory_is_read_as_one_file_per_user() {
    // See config.rs for the users directory itself. An empty one is valid
    // input: the run gets as far as the (absent) server.
    let dir = tempfile::tempdir().unwrap();
    let out = plan(dir.path());
    out.assert_code(1);
    assert!(out.stderr.contains("failed to connect"), "{}", out.stderr);
}

#[test]
fn a_fifo_is_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("db_users.secret");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    // No writer ever opens the FIFO: opening it for reading would block
    // forever. A watchdog opens it for writing after a while, so that a
    // regression fails this test instead of hanging the suite.
    let watchdog_path = fifo.clone();
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(20));
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&watchdog_path);
    });
    let started = Instant::now();
    let out = plan(&fifo);
    let took = started.elapsed();
    out.assert_code(2);
    assert!(
        out.stderr.contains("is not a regular file"),
        "{}",
        out.stderr
    );
    assert!(took < Duration::from_secs(10), "took {took:?}: it blocked");
    // A symlink to the FIFO is no better.
    let link = dir.path().join("link");
    symlink(&fifo, &link).unwrap();
    plan(&link).assert_code(2);
    drop(watchdog);
}

#[test]
fn devices_are_refused() {
    for device in ["/dev/zero", "/dev/urandom", "/dev/null"] {
        let out = plan(Path::new(device));
        out.assert_code(2);
        assert!(
            out.stderr.contains("is not a regular file"),
            "{device}: {}",
            out.stderr
        );
    }
}

#[test]
fn a_huge_file_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db_users.secret");
    // 1 GiB, sparse: costs no disk, and would cost 1 GiB of memory to read.
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(1 << 30).unwrap();
    drop(f);
    let started = Instant::now();
    let out = plan(&path);
    out.assert_code(2);
    assert!(
        out.stderr.contains("is larger than 1048576 bytes"),
        "{}",
        out.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // Just over the limit, reached through a symlink: refused the same way.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(1024 * 1024 + 1).unwrap();
    drop(f);
    let link = dir.path().join("link");
    symlink(&path, &link).unwrap();
    plan(&link).assert_code(2);
}

#[test]
fn a_missing_file_is_an_input_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = plan(&dir.path().join("nope"));
    out.assert_code(2);
    assert!(
        out.stderr.contains("no such file") || out.stderr.contains("No such file"),
        "{}",
        out.stderr
    );
}

/// Builds the kubelet's Secret volume layout in `mount`:
/// `..2024_.../<key>` (the file), `..data -> ..2024_...`, `<key> -> ..data/<key>`.
fn kubernetes_secret_volume(mount: &Path, files: &[(&str, &str)], mode: u32) {
    let stamped = mount.join("..2024_05_01_12_00_00.123456789");
    std::fs::create_dir(&stamped).unwrap();
    for (key, content) in files {
        std::fs::write(stamped.join(key), content).unwrap();
        chmod(&stamped.join(key), mode);
        symlink(format!("..data/{key}"), mount.join(key)).unwrap();
    }
    symlink("..2024_05_01_12_00_00.123456789", mount.join("..data")).unwrap();
}

fn permission_warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("readable by every user") || l.contains("writable by"))
        .collect()
}

#[test]
fn kubernetes_secret_volume_defaults_do_not_warn() {
    let mount = tempfile::tempdir().unwrap();
    kubernetes_secret_volume(
        mount.path(),
        &[
            ("db_users.secret", "app:pw\n"),
            ("pg_admin_password.secret", "admin-pw\n"),
        ],
        0o644,
    );
    let out = run_raw(
        &["plan"],
        &[
            ("PGHOST", "127.0.0.1"),
            ("PGPORT", "1"),
            (
                "DBUSERS",
                mount.path().join("db_users.secret").to_str().unwrap(),
            ),
            (
                "POSTGRES_PASSWORD_FILE",
                mount
                    .path()
                    .join("pg_admin_password.secret")
                    .to_str()
                    .unwrap(),
            ),
        ],
    );
    // Input is fine; the run fails only at the connection.
    out.assert_code(1);
    assert!(
        permission_warnings(&out.stderr).is_empty(),
        "{}",
        out.stderr
    );
}

#[test]
fn group_or_world_access_outside_secret_volumes_warns_but_works() {
    let users = UsersFile::new("app:pw\n");
    let admin_pw = users.dir().join("pg_admin_password.secret");
    std::fs::write(&admin_pw, "admin-pw\n").unwrap();
    let run = |users_mode: u32, pw_mode: u32| {
        chmod(users.path(), users_mode);
        chmod(&admin_pw, pw_mode);
        run_raw(
            &["plan"],
            &[
                ("PGHOST", "127.0.0.1"),
                ("PGPORT", "1"),
                ("DBUSERS", users.path().to_str().unwrap()),
                ("POSTGRES_PASSWORD_FILE", admin_pw.to_str().unwrap()),
            ],
        )
    };
    // Private, or shared with a group on purpose: quiet.
    for (u, p) in [(0o600, 0o600), (0o640, 0o440), (0o400, 0o400)] {
        let out = run(u, p);
        out.assert_code(1);
        assert!(
            permission_warnings(&out.stderr).is_empty(),
            "{u:o}/{p:o}: {}",
            out.stderr
        );
    }
    // World-readable: one warning per file, naming it and its mode; the run
    // goes on (exit 1 only because no server listens).
    let out = run(0o644, 0o604);
    out.assert_code(1);
    let warnings = permission_warnings(&out.stderr);
    assert_eq!(warnings.len(), 2, "{}", out.stderr);
    assert!(out.stderr.contains(&format!(
        "{}: readable by every user of the machine (mode 0644)",
        users.path().display()
    )));
    assert!(out.stderr.contains(&format!(
        "POSTGRES_PASSWORD_FILE={}: readable by every user of the machine (mode 0604)",
        admin_pw.display()
    )));
    // World- or group-writable.
    let out = run(0o666, 0o620);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("writable by every user of the machine (mode 0666)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("writable by its group (mode 0620)"),
        "{}",
        out.stderr
    );
    // The warnings never quote the content.
    assert!(!out.stderr.contains("admin-pw"));
}
