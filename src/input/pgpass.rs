//! The libpq password file (`~/.pgpass`, or the file named by `PGPASSFILE`).
//!
//! This module owns finding a password in such a file with libpq's rules:
//! `hostname:port:database:username:password` lines, a field that is exactly
//! `*` matches anything, `\` escapes the next character (so `\:` and `\\`),
//! lines starting with `#` are comments, and the first matching line wins.
//! On Unix a file that is not a regular file, or that the group or others may
//! access, is ignored with a warning, as libpq does: the warning is returned
//! for the caller to log.
//!
//! Deciding whether the password file is consulted at all (and which one) is
//! the caller's business (`conninfo`).

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::input::secret::Password;
use crate::input::secret_file::describe_io;

/// The outcome of a lookup.
#[derive(Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The password of the first matching line, de-escaped. It may be empty
    /// (a line ending in `:`), as libpq allows.
    Found(Password),
    /// No such file, or no line matches.
    NotFound,
    /// The file exists but libpq would not use it; no password was read.
    Ignored(IgnoreReason),
}

// The password must never reach a log through `{:?}`.
impl fmt::Debug for Lookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lookup::Found(_) => f.write_str("Found(***)"),
            Lookup::NotFound => f.write_str("NotFound"),
            Lookup::Ignored(reason) => f.debug_tuple("Ignored").field(reason).finish(),
        }
    }
}

/// Why a password file was ignored. The messages follow libpq's warnings.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreReason {
    #[error("password file {} is not a plain file", path.display())]
    NotPlainFile { path: PathBuf },
    #[error(
        "password file {} has group or world access ({mode:04o}); permissions should be u=rw (0600) or less",
        path.display()
    )]
    GroupOrWorldAccess { path: PathBuf, mode: u32 },
}

#[derive(Debug, thiserror::Error)]
pub enum PgpassError {
    /// The file exists but could not be examined or read. libpq skips such a
    /// file silently; we report it and let the caller decide how much it
    /// matters (an explicit `PGPASSFILE` versus the implicit `~/.pgpass`).
    #[error("failed to read {}: {cause}", path.display())]
    Read { path: PathBuf, cause: String },
    /// The matching line's password is not UTF-8. Other lines may hold any
    /// bytes: like libpq we compare bytes and only decode the password used.
    #[error("failed to read {}: the password on line {line} is not valid utf-8", path.display())]
    PasswordNotUtf8 { path: PathBuf, line: usize },
}

/// Looks up the password for a connection in the password file at `path`.
///
/// `host` is the host as given (a name, an address, or a Unix socket
/// directory starting with `/`); for a socket directory an entry for
/// `localhost` matches too. libpq restricts that to its compiled-in default
/// socket directory, which differs between builds (`/tmp` upstream,
/// `/var/run/postgresql` on Debian and in the official image); any socket
/// directory is accepted here so that the same file works with both. The
/// port is matched as the text of the number (`5432`), so an entry written
/// `05432` does not match, as in libpq when the port is given as `5432`.
pub fn lookup(
    path: &Path,
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
) -> Result<Lookup, PgpassError> {
    let read_error = |e: &std::io::Error| PgpassError::Read {
        path: path.to_owned(),
        cause: describe_io(e),
    };
    // Like libpq, check with stat (following symbolic links, so a mounted
    // Kubernetes secret is judged by its target) before opening: a FIFO or a
    // device must not be opened at all.
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Lookup::NotFound),
        Err(e) => return Err(read_error(&e)),
    };
    if !meta.is_file() {
        return Ok(Lookup::Ignored(IgnoreReason::NotPlainFile {
            path: path.to_owned(),
        }));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Ok(Lookup::Ignored(IgnoreReason::GroupOrWorldAccess {
                path: path.to_owned(),
                mode,
            }));
        }
    }
    let file = match File::open(path) {
        Ok(file) => file,
        // Removed between the two calls: it is simply not there.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Lookup::NotFound),
        Err(e) => return Err(read_error(&e)),
    };

    let port = port.to_string();
    let tokens: [&[u8]; 4] = [
        host.as_bytes(),
        port.as_bytes(),
        dbname.as_bytes(),
        user.as_bytes(),
    ];
    let socket = host.starts_with('/');

    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    let mut line_no = 0;
    loop {
        buf.clear();
        if reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| read_error(&e))?
            == 0
        {
            return Ok(Lookup::NotFound);
        }
        line_no += 1;
        // libpq: comments are lines whose first byte is '#', and all trailing
        // CR and LF bytes are stripped, so CRLF files work.
        if buf.first() == Some(&b'#') {
            continue;
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        if buf.is_empty() {
            continue;
        }
        let Some(password) = match_line(&buf, &tokens, socket) else {
            continue;
        };
        return String::from_utf8(password)
            .map(|p| Lookup::Found(Password::new(p)))
            .map_err(|_| PgpassError::PasswordNotUtf8 {
                path: path.to_owned(),
                line: line_no,
            });
    }
}

/// The de-escaped password if the line's first four fields match `tokens`
/// (host, port, database, user).
fn match_line(line: &[u8], tokens: &[&[u8]; 4], socket: bool) -> Option<Vec<u8>> {
    let mut rest = line;
    for (i, token) in tokens.iter().enumerate() {
        // A field that is not terminated by an unescaped ':' cannot match:
        // a line with fewer than five fields is skipped.
        let (raw, value, after) = field(rest)?;
        let matches = raw == b"*" || value == *token || (i == 0 && socket && value == b"localhost");
        if !matches {
            return None;
        }
        rest = after;
    }
    // The password runs to the next unescaped ':' or the end of the line;
    // anything after it is ignored, as in libpq.
    Some(match field(rest) {
        Some((_, value, _)) => value,
        None => unescape(rest),
    })
}

/// Splits off one ':'-terminated field: its raw bytes (to recognize the `*`
/// wildcard, which `\*` escapes), its de-escaped value, and the rest after
/// the ':'. `None` if no unescaped ':' follows.
fn field(s: &[u8]) -> Option<(&[u8], Vec<u8>, &[u8])> {
    let mut value = Vec::new();
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'\\' if i + 1 < s.len() => {
                value.push(s[i + 1]);
                i += 2;
            }
            b':' => return Some((&s[..i], value, &s[i + 1..])),
            b => {
                value.push(b);
                i += 1;
            }
        }
    }
    None
}

/// De-escapes an unterminated last field. A lone trailing backslash stays, as
/// libpq copies it.
fn unescape(s: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' && i + 1 < s.len() {
            i += 1;
        }
        value.push(s[i]);
        i += 1;
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pgpass(content: &[u8]) -> tempfile::NamedTempFile {
        crate::testutil::temp_file(content, 0o600)
    }

    fn find(content: &str, host: &str, port: u16, db: &str, user: &str) -> Lookup {
        let f = pgpass(content.as_bytes());
        lookup(f.path(), host, port, db, user).unwrap()
    }

    fn found(p: &str) -> Lookup {
        Lookup::Found(Password::new(p))
    }

    #[test]
    fn exact_match() {
        let c = "db.example:5432:postgres:admin:s3cret\n";
        assert_eq!(
            find(c, "db.example", 5432, "postgres", "admin"),
            found("s3cret")
        );
        assert_eq!(
            find(c, "db.example", 5433, "postgres", "admin"),
            Lookup::NotFound
        );
        assert_eq!(
            find(c, "other", 5432, "postgres", "admin"),
            Lookup::NotFound
        );
        assert_eq!(
            find(c, "db.example", 5432, "app", "admin"),
            Lookup::NotFound
        );
        assert_eq!(
            find(c, "db.example", 5432, "postgres", "root"),
            Lookup::NotFound
        );
    }

    #[test]
    fn matching_is_case_sensitive() {
        let c = "DB:5432:postgres:admin:pw\n";
        assert_eq!(find(c, "db", 5432, "postgres", "admin"), Lookup::NotFound);
    }

    #[test]
    fn wildcards_in_each_field() {
        assert_eq!(
            find("*:5432:postgres:admin:a\n", "h", 5432, "postgres", "admin"),
            found("a")
        );
        assert_eq!(
            find("h:*:postgres:admin:b\n", "h", 6000, "postgres", "admin"),
            found("b")
        );
        assert_eq!(
            find("h:5432:*:admin:c\n", "h", 5432, "any", "admin"),
            found("c")
        );
        assert_eq!(
            find("h:5432:postgres:*:d\n", "h", 5432, "postgres", "x"),
            found("d")
        );
        assert_eq!(find("*:*:*:*:e\n", "h", 1, "d", "u"), found("e"));
    }

    #[test]
    fn star_is_a_wildcard_only_as_a_whole_field() {
        assert_eq!(
            find("db*:5432:*:*:pw\n", "db1", 5432, "d", "u"),
            Lookup::NotFound
        );
        // An escaped star is a literal star.
        assert_eq!(
            find("\\*:5432:*:*:pw\n", "h", 5432, "d", "u"),
            Lookup::NotFound
        );
        assert_eq!(find("\\*:5432:*:*:pw\n", "*", 5432, "d", "u"), found("pw"));
    }

    #[test]
    fn escapes() {
        // `\:` in a field and `\\` / `\:` in the password.
        let c = "h:5432:my\\:db:u:pa\\:ss\\\\word\n";
        assert_eq!(find(c, "h", 5432, "my:db", "u"), found("pa:ss\\word"));
        // Any escaped character is itself.
        assert_eq!(
            find("h:5432:d:u:\\a\\b\n", "h", 5432, "d", "u"),
            found("ab")
        );
        // A lone trailing backslash stays.
        assert_eq!(
            find("h:5432:d:u:pw\\\n", "h", 5432, "d", "u"),
            found("pw\\")
        );
    }

    #[test]
    fn password_ends_at_unescaped_colon() {
        let c = "h:5432:d:u:pw:extra:fields\n";
        assert_eq!(find(c, "h", 5432, "d", "u"), found("pw"));
    }

    #[test]
    fn empty_password() {
        assert_eq!(find("h:5432:d:u:\n", "h", 5432, "d", "u"), found(""));
    }

    #[test]
    fn short_lines_never_match() {
        assert_eq!(find("h:5432:d:u\n", "h", 5432, "d", "u"), Lookup::NotFound);
        assert_eq!(find("*:*:*\n", "h", 5432, "d", "u"), Lookup::NotFound);
    }

    #[test]
    fn comments_blank_lines_and_first_match_wins() {
        let c = "# *:*:*:*:commented\n\n   \nh:5432:d:u:first\n*:*:*:*:second\n";
        assert_eq!(find(c, "h", 5432, "d", "u"), found("first"));
        assert_eq!(find(c, "x", 5432, "d", "u"), found("second"));
        // Only a '#' in the first column starts a comment.
        let c = " #h:5432:d:u:x\n";
        assert_eq!(find(c, " #h", 5432, "d", "u"), found("x"));
    }

    #[test]
    fn crlf_and_missing_final_newline() {
        assert_eq!(find("h:5432:d:u:pw\r\n", "h", 5432, "d", "u"), found("pw"));
        assert_eq!(find("h:5432:d:u:pw", "h", 5432, "d", "u"), found("pw"));
    }

    #[test]
    fn unix_socket_matches_localhost_or_the_directory() {
        let c = "localhost:5432:*:u:local\n";
        assert_eq!(
            find(c, "/var/run/postgresql", 5432, "d", "u"),
            found("local")
        );
        assert_eq!(find(c, "/tmp", 5432, "d", "u"), found("local"));
        assert_eq!(find(c, "localhost", 5432, "d", "u"), found("local"));
        assert_eq!(find(c, "127.0.0.1", 5432, "d", "u"), Lookup::NotFound);
        let c = "/run/pg:5432:*:u:dir\n";
        assert_eq!(find(c, "/run/pg", 5432, "d", "u"), found("dir"));
        assert_eq!(find(c, "/tmp", 5432, "d", "u"), Lookup::NotFound);
    }

    #[test]
    fn port_is_matched_as_text() {
        assert_eq!(
            find("h:05432:d:u:pw\n", "h", 5432, "d", "u"),
            Lookup::NotFound
        );
    }

    #[test]
    fn missing_file_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let got = lookup(&dir.path().join("pgpass"), "h", 5432, "d", "u").unwrap();
        assert_eq!(got, Lookup::NotFound);
    }

    #[test]
    fn directory_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let got = lookup(dir.path(), "h", 5432, "d", "u").unwrap();
        assert_eq!(
            got,
            Lookup::Ignored(IgnoreReason::NotPlainFile {
                path: dir.path().to_owned()
            })
        );
        let Lookup::Ignored(reason) = got else {
            unreachable!()
        };
        assert_eq!(
            reason.to_string(),
            format!("password file {} is not a plain file", dir.path().display())
        );
    }

    #[cfg(unix)]
    #[test]
    fn group_or_world_access_is_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let f = pgpass(b"*:*:*:*:pw\n");
        for mode in [0o644, 0o640, 0o604, 0o610, 0o601, 0o660] {
            std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).unwrap();
            let got = lookup(f.path(), "h", 5432, "d", "u").unwrap();
            assert_eq!(
                got,
                Lookup::Ignored(IgnoreReason::GroupOrWorldAccess {
                    path: f.path().to_owned(),
                    mode
                }),
                "mode {mode:o}"
            );
        }
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o640)).unwrap();
        let Lookup::Ignored(reason) = lookup(f.path(), "h", 5432, "d", "u").unwrap() else {
            panic!("not ignored")
        };
        assert_eq!(
            reason.to_string(),
            format!(
                "password file {} has group or world access (0640); permissions should be u=rw (0600) or less",
                f.path().display()
            )
        );
        for mode in [0o600, 0o400, 0o700] {
            std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(lookup(f.path(), "h", 5432, "d", "u").unwrap(), found("pw"));
        }
    }

    #[cfg(unix)]
    #[test]
    fn symlink_is_judged_by_its_target() {
        let f = pgpass(b"*:*:*:*:pw\n");
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("pgpass");
        std::os::unix::fs::symlink(f.path(), &link).unwrap();
        assert_eq!(lookup(&link, "h", 5432, "d", "u").unwrap(), found("pw"));
    }

    #[test]
    fn bytes_outside_the_password_need_not_be_utf8() {
        let f = pgpass(b"h\xff:*:*:*:x\n*:*:*:*:pw\n");
        assert_eq!(lookup(f.path(), "h", 5432, "d", "u").unwrap(), found("pw"));
    }

    #[test]
    fn non_utf8_password_is_an_error_without_content() {
        let f = pgpass(b"# comment\n*:*:*:*:p\xffw\n");
        let err = lookup(f.path(), "h", 5432, "d", "u").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "failed to read {}: the password on line 2 is not valid utf-8",
                f.path().display()
            )
        );
    }

    #[test]
    fn debug_redacts_the_password() {
        assert_eq!(format!("{:?}", found("s3cret")), "Found(***)");
    }
}
