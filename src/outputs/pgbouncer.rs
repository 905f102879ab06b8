//! PgBouncer in front of the server, with no plaintext password anywhere.
//!
//! This module owns two things:
//!
//! * **The auth file** (`--pgbouncer-auth-file`): one `"name" "secret"` line
//!   per managed login role, the secret copied from the server's
//!   `pg_authid.rolpassword`, never computed here. With SCRAM, PgBouncer can
//!   log in to the server on a client's behalf only when its verifier is
//!   exactly the server's (same salt and iterations), which a copy is and a
//!   recomputation would not be. Plus one line for the admin console's user
//!   (a PgBouncer-only user that the server does not know): its verifier is
//!   computed here from `PGTENANT_PGBOUNCER_PASSWORD_FILE`, and the line
//!   already in the file is kept while it still verifies against that
//!   password, so that restarts do not rewrite the file. The file is
//!   replaced atomically, and only when its content or mode changes.
//! * **The reload** (`--pgbouncer-admin CONNINFO`): PgBouncer does not notice
//!   a replaced auth file; `RELOAD` on its admin console makes it read it.
//!   The connection is tokio-postgres' (the console speaks the protocol), its
//!   conninfo parsed by tokio-postgres' own parser (key=value or URI).

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::Client;

use crate::input::conninfo::Password;
use crate::outputs::atomic_file;
use crate::reconcile::scram::{ScramVerifier, DEFAULT_ITERATIONS};
use crate::server::db::DbError;

/// The variable naming the file with the console user's password.
pub const PASSWORD_FILE_VAR: &str = "PGTENANT_PGBOUNCER_PASSWORD_FILE";
/// Bounds a reload: connect, authenticate, `RELOAD`.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PgbouncerError {
    #[error("pgbouncer auth file {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// tokio-postgres' parse errors never quote the string.
    #[error("invalid --pgbouncer-admin connection string: {0}")]
    Conninfo(String),
    #[error("--pgbouncer-admin holds a password, which would sit in the process's arguments; put it in {PASSWORD_FILE_VAR}'s file instead")]
    PasswordInConninfo,
    #[error("--pgbouncer-admin names no user")]
    NoUser,
    #[error(
        "--pgbouncer-admin needs {PASSWORD_FILE_VAR}, the file with the console user's password"
    )]
    NoPasswordFile,
    #[error("{PASSWORD_FILE_VAR}: {0}")]
    PasswordFile(String),
    #[error("the pgbouncer console user {0:?} is also a tenant of the input; give the console its own user")]
    ConsoleIsTenant(String),
    #[error(
        "the admin user cannot read pg_authid (not a superuser): the pgbouncer auth file needs \
         the stored verifiers; use auth_query instead (docs/pgbouncer.md)"
    )]
    CannotReadSecrets,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The admin console: where it is and who logs in.
#[derive(Clone)]
pub struct Console {
    config: tokio_postgres::Config,
    pub user: String,
    password: Password,
    /// `host:port` for messages.
    pub endpoint: String,
}

impl fmt::Debug for Console {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Console")
            .field("user", &self.user)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Console {
    /// Parses `conninfo` (libpq key=value or URI, as tokio-postgres reads
    /// them) and takes the password from `password`, the content of
    /// [`PASSWORD_FILE_VAR`]'s file. A password inside the conninfo is an
    /// error: it would sit in argv.
    pub fn new(conninfo: &str, password: Password) -> Result<Self, PgbouncerError> {
        let mut config = tokio_postgres::Config::from_str(conninfo)
            .map_err(|e| PgbouncerError::Conninfo(e.to_string()))?;
        if config.get_password().is_some() {
            return Err(PgbouncerError::PasswordInConninfo);
        }
        let user = config
            .get_user()
            .map(str::to_owned)
            .ok_or(PgbouncerError::NoUser)?;
        if config.get_dbname().is_none() {
            config.dbname("pgbouncer");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.password(password.expose());
        config.application_name("pgtenant");
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_owned(),
        };
        let port = config.get_ports().first().copied().unwrap_or(6432);
        if config.get_hosts().is_empty() {
            config.host("localhost");
        }
        if config.get_ports().is_empty() {
            config.port(6432);
        }
        Ok(Console {
            config,
            user,
            password,
            endpoint: format!("{host}:{port}"),
        })
    }

    /// Reads the password file named by [`PASSWORD_FILE_VAR`].
    pub fn password_from_file(path: &Path) -> Result<Password, PgbouncerError> {
        crate::input::secret_file::read_secret_file(path)
            .map(Password::new)
            .map_err(|e| PgbouncerError::PasswordFile(e.to_string()))
    }

    /// `RELOAD` on the console, bounded by a timeout. The error is one
    /// lowercase line without secrets.
    pub async fn reload(&self) -> Result<(), String> {
        let run = async {
            let (client, connection) = self
                .config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| crate::server::db::describe(&e))?;
            let conn = tokio::spawn(connection);
            let result = client
                .simple_query("RELOAD")
                .await
                .map(|_| ())
                .map_err(|e| crate::server::db::describe(&e));
            drop(client);
            let _ = conn.await;
            result
        };
        match tokio::time::timeout(RELOAD_TIMEOUT, run).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} s", RELOAD_TIMEOUT.as_secs())),
        }
    }

    /// The console user's auth-file secret: `existing` when it still
    /// verifies against the password, else a new SCRAM verifier.
    fn secret(&self, existing: Option<&str>) -> Result<String, PgbouncerError> {
        if let Some(s) = existing {
            if ScramVerifier::parse(s).is_ok_and(|v| v.matches(self.password.expose())) {
                return Ok(s.to_owned());
            }
        }
        ScramVerifier::generate(self.password.expose(), DEFAULT_ITERATIONS)
            .map(|v| v.to_string())
            .map_err(|e| PgbouncerError::PasswordFile(format!("no randomness for a salt: {e}")))
    }
}

/// `"name"` with `"` doubled, as PgBouncer reads a field.
fn quote(field: &str) -> String {
    format!("\"{}\"", field.replace('"', "\"\""))
}

/// Renders the auth file: one line per (name, secret), in the order given.
pub fn render(lines: &[(String, String)]) -> String {
    // PgBouncer takes `;` for a comment, and nothing else that is not a
    // quoted field.
    let mut out = String::from("; Written by pgtenant from pg_authid; do not edit.\n");
    for (name, secret) in lines {
        out.push_str(&quote(name));
        out.push(' ');
        out.push_str(&quote(secret));
        out.push('\n');
    }
    out
}

/// Reads the (name, secret) pairs back from an auth file's text: the first
/// two quoted fields of every line that has them.
pub fn parse(text: &str) -> Vec<(String, String)> {
    fn field(s: &str) -> Option<(String, &str)> {
        let s = s.trim_start_matches([' ', '\t']);
        let mut rest = s.strip_prefix('"')?;
        let mut out = String::new();
        loop {
            let i = rest.find('"')?;
            out.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            match rest.strip_prefix('"') {
                Some(r) => {
                    out.push('"');
                    rest = r;
                }
                None => return Some((out, rest)),
            }
        }
    }
    text.lines()
        .filter_map(|line| {
            let (name, rest) = field(line)?;
            let (secret, _) = field(rest)?;
            Some((name, secret))
        })
        .collect()
}

/// The stored secrets of `roles` that may log in, from `pg_authid`. Roles
/// without a password are left out (PgBouncer could not log them in).
pub async fn read_secrets(
    client: &Client,
    roles: &[&str],
) -> Result<Vec<(String, String)>, PgbouncerError> {
    let readable: bool = client
        .query_one(
            "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| DbError::query("check access to pg_authid", e))?
        .get(0);
    if !readable {
        return Err(PgbouncerError::CannotReadSecrets);
    }
    let rows = client
        .query(
            "SELECT rolname::text, rolpassword FROM pg_catalog.pg_authid \
             WHERE rolname = ANY($1) AND rolcanlogin AND rolpassword IS NOT NULL",
            &[&roles],
        )
        .await
        .map_err(|e| DbError::query("read the stored verifiers", e))?;
    let mut secrets: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    // Input order: a stable file whatever order the catalog returns.
    secrets.sort_by_key(|(name, _)| roles.iter().position(|r| r == name));
    Ok(secrets)
}

/// The auth file to write: the console user's line first, then `secrets`.
pub fn content(
    path: &Path,
    console: Option<&Console>,
    secrets: &[(String, String)],
) -> Result<String, PgbouncerError> {
    let mut lines = Vec::with_capacity(secrets.len() + 1);
    if let Some(c) = console {
        if secrets.iter().any(|(n, _)| n == &c.user) {
            return Err(PgbouncerError::ConsoleIsTenant(c.user.clone()));
        }
        let existing = fs::read_to_string(path).ok().and_then(|t| {
            parse(&t)
                .into_iter()
                .find(|(n, _)| n == &c.user)
                .map(|(_, s)| s)
        });
        lines.push((c.user.clone(), c.secret(existing.as_deref())?));
    }
    lines.extend(secrets.iter().cloned());
    Ok(render(&lines))
}

/// The secrets of an existing auth file other than the console user's:
/// kept as they are when pgtenant starts before the server is reachable.
pub fn existing_secrets(path: &Path, console: Option<&Console>) -> Vec<(String, String)> {
    let Ok(text) = fs::read_to_string(path) else {
        return Vec::new();
    };
    parse(&text)
        .into_iter()
        .filter(|(n, _)| !matches!(console, Some(c) if &c.user == n))
        .collect()
}

/// Writes `content` to `path` with `mode` unless the file already has both;
/// `true` when it was (re)written.
pub fn sync(path: &Path, content: &str, mode: u32) -> Result<bool, PgbouncerError> {
    let io_err = |source| PgbouncerError::Io {
        path: path.to_owned(),
        source,
    };
    if let (Ok(old), Ok(meta)) = (fs::read(path), fs::metadata(path)) {
        if old == content.as_bytes() && meta.permissions().mode() & 0o7777 == mode {
            return Ok(false);
        }
    }
    atomic_file::replace(path, content.as_bytes(), mode).map_err(io_err)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_round_trips() {
        let lines = vec![
            (
                "a\"b\"\"c".to_owned(),
                "SCRAM-SHA-256$4096:c2FsdA==$a:b".to_owned(),
            ),
            ("日本".to_owned(), "md5abc".to_owned()),
            ("x'; DROP ROLE y; --".to_owned(), "md5def".to_owned()),
        ];
        let text = render(&lines);
        assert!(text.contains("\"a\"\"b\"\"\"\"c\" \"SCRAM-SHA-256$4096:c2FsdA==$a:b\"\n"));
        assert_eq!(parse(&text), lines);
    }

    #[test]
    fn console_line_is_kept_while_it_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("userlist.txt");
        let console = Console::new(
            "host=127.0.0.1 port=6432 user=pgbouncer_admin dbname=pgbouncer",
            Password::new("console-pw"),
        )
        .unwrap();
        assert_eq!(console.endpoint, "127.0.0.1:6432");
        let tenants = vec![("app".to_owned(), "SCRAM-SHA-256$x".to_owned())];
        let first = content(&path, Some(&console), &tenants).unwrap();
        assert!(!first.contains("console-pw"));
        assert!(sync(&path, &first, 0o600).unwrap());
        assert!(
            !sync(&path, &first, 0o600).unwrap(),
            "unchanged: not rewritten"
        );
        // Same password: the same line (no new salt), so the same file.
        assert_eq!(content(&path, Some(&console), &tenants).unwrap(), first);
        // New password: a new verifier that verifies it.
        let rotated = Console::new(
            "postgresql://pgbouncer_admin@127.0.0.1:6432/pgbouncer",
            Password::new("new-pw"),
        )
        .unwrap();
        let second = content(&path, Some(&rotated), &tenants).unwrap();
        assert_ne!(second, first);
        let (_, secret) = parse(&second).into_iter().next().unwrap();
        assert!(ScramVerifier::parse(&secret).unwrap().matches("new-pw"));
        assert_eq!(existing_secrets(&path, Some(&console)), tenants);
        // Mode change alone rewrites.
        assert!(sync(&path, &first, 0o640).unwrap());
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        // The console user may not be a tenant.
        let clash = vec![("pgbouncer_admin".to_owned(), "md5x".to_owned())];
        assert!(matches!(
            content(&path, Some(&console), &clash),
            Err(PgbouncerError::ConsoleIsTenant(_))
        ));
    }

    /// Readers racing rewrites only ever see a whole old or a whole new
    /// file: never empty, never a mix.
    #[test]
    fn readers_racing_a_rewrite_see_old_or_new() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("userlist.txt");
        let line = |c: char| {
            format!(
                "\"{}\" \"SCRAM-SHA-256$4096:x\"\n",
                c.to_string().repeat(60)
            )
        };
        let a: String = (0..2000).map(|_| line('a')).collect();
        let b: String = (0..3000).map(|_| line('b')).collect();
        sync(&path, &a, 0o600).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let mut reads = 0u32;
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            let got = fs::read_to_string(&path).unwrap();
                            assert!(got == a || got == b, "a torn read of {} bytes", got.len());
                            reads += 1;
                        }
                        reads
                    })
                })
                .collect();
            for i in 0..200 {
                sync(&path, if i % 2 == 0 { &b } else { &a }, 0o600).unwrap();
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            for r in readers {
                assert!(r.join().unwrap() > 0);
            }
        });
    }

    #[test]
    fn conninfo_errors_do_not_echo_it() {
        let err = Console::new("host=x port=notaport password=hunter2", Password::new("p"))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(matches!(
            Console::new("host=x", Password::new("p")),
            Err(PgbouncerError::NoUser)
        ));
        let err = Console::new("host=x user=a password=hunter2", Password::new("p")).unwrap_err();
        assert!(matches!(err, PgbouncerError::PasswordInConninfo));
        assert!(!err.to_string().contains("hunter2"));
    }
}
