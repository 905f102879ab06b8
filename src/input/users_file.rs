//! The users file: the article's `user:password` format, parsed and validated
//! as a whole before anything touches the server.
//!
//! Format (drop-in compatible with the article's `db_users.secret`):
//! - UTF-8; a leading byte-order mark is ignored; LF or CRLF line endings; a
//!   last line without a newline counts.
//! - Blank lines and lines whose first non-blank character is `#` are ignored.
//! - `user:password`: the user is the text before the first `:`, with
//!   surrounding blanks removed; the password is everything after the first
//!   `:`, verbatim, except the CR of a CRLF ending. No escape processing.
//!
//! Every problem is reported with `file:line`; messages never contain a
//! password.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::input::desired::{Desired, Origin, Password, Tenant};

/// PostgreSQL's NAMEDATALEN - 1: longer identifiers are silently truncated by
/// the server, so two long names could end up as the same role.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// A users file is a few KiB; anything this large is a mistake (a wrong path,
/// a device), and must fail clearly rather than exhaust the container's memory.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Role names PostgreSQL reserves or that belong to the server itself. Compared
/// case-insensitively: the article's unquoted SQL folded names to lower case,
/// so `Postgres` in an old file meant `postgres`.
const RESERVED_NAMES: &[&str] = &[
    "public",
    "none",
    "postgres",
    "template0",
    "template1",
    "current_user",
    "current_role",
    "session_user",
];

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("failed to read users file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("users file {} is not a regular file", path.display())]
    NotRegularFile { path: PathBuf },
    #[error("users file {} is larger than {limit} bytes", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{}", display_lines(.0))]
    Invalid(Vec<LineError>),
}

fn display_lines(errors: &[LineError]) -> String {
    let mut out = String::new();
    for (i, e) in errors.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&e.to_string());
    }
    out
}

/// One invalid line. `Display` gives `file:line: problem`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub origin: Origin,
    pub problem: Problem,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.problem)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("line is not valid UTF-8")]
    NotUtf8,
    #[error("expected user:password, found no ':'")]
    MissingColon,
    #[error("empty user name")]
    EmptyUser,
    #[error("empty password for user {0:?}")]
    EmptyPassword(String),
    #[error("password for user {0:?} contains a NUL byte, which no PostgreSQL client can send")]
    NulInPassword(String),
    #[error("user name {name:?} is {len} bytes long; PostgreSQL truncates names to 63 bytes")]
    RoleTooLong { name: String, len: usize },
    #[error("database name {name:?} is {len} bytes long; PostgreSQL truncates names to 63 bytes (user names may be at most 60 bytes)")]
    DatabaseTooLong { name: String, len: usize },
    #[error("user name {0:?} contains a control character")]
    ControlCharacter(String),
    #[error("user name {0:?} is reserved: names starting with \"pg_\" belong to PostgreSQL")]
    ReservedPrefix(String),
    #[error("user name {0:?} is reserved")]
    ReservedName(String),
    #[error("user name {0:?} is the admin user pgtenant connects as")]
    AdminUser(String),
    #[error("duplicate user {name:?} (first defined on line {first_line})")]
    Duplicate { name: String, first_line: usize },
    #[error("user {name:?} differs only in letter case from {other:?} on line {first_line}")]
    CaseDuplicate {
        name: String,
        other: String,
        first_line: usize,
    },
}

/// Something worth telling the user that does not stop the run. Line 0 means
/// the whole file (its permissions, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub origin: Origin,
    pub message: String,
}

/// `file:line: message`, or `file: message` for a warning about the whole
/// file (line 0).
impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.origin.line == 0 {
            write!(f, "{}: {}", self.origin.file.display(), self.message)
        } else {
            write!(f, "{}: {}", self.origin, self.message)
        }
    }
}

/// The result of a successful parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub desired: Desired,
    pub warnings: Vec<Warning>,
}

/// Reads and parses the users file at `path`. `admin_user` is the role pgtenant
/// connects as: a tenant may not take it over.
pub fn load(path: &Path, admin_user: &str) -> Result<Parsed, InputError> {
    let bytes = read_bounded(path)?;
    let mut parsed = parse(path, &bytes, admin_user)?;
    if let Some(message) = crate::input::secret_file::permission_warning(path) {
        // Line 0: the warning is about the whole file.
        parsed.warnings.insert(
            0,
            Warning {
                origin: Origin {
                    file: path.to_owned(),
                    line: 0,
                },
                message,
            },
        );
    }
    Ok(parsed)
}

/// Reads a regular file (or a symlink to one, as in a Kubernetes Secret
/// volume), refusing anything else and anything larger than [`MAX_FILE_BYTES`].
pub fn read_bounded(path: &Path) -> Result<Vec<u8>, InputError> {
    let read_err = |source| InputError::Read {
        path: path.to_owned(),
        source,
    };
    // Checked before opening too: opening a FIFO blocks until a writer
    // comes, so `pgtenant -f /some/fifo` would hang instead of failing.
    if !std::fs::metadata(path).map_err(read_err)?.is_file() {
        return Err(InputError::NotRegularFile {
            path: path.to_owned(),
        });
    }
    let file = std::fs::File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(InputError::NotRegularFile {
            path: path.to_owned(),
        });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(InputError::TooLarge {
            path: path.to_owned(),
            limit: MAX_FILE_BYTES,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow between stat and read; never read more than the bound.
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(InputError::TooLarge {
            path: path.to_owned(),
            limit: MAX_FILE_BYTES,
        });
    }
    Ok(bytes)
}

/// Parses and validates the whole content. All problems are collected, so a
/// user fixes the file in one go.
pub fn parse(path: &Path, bytes: &[u8], admin_user: &str) -> Result<Parsed, InputError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut tenants: Vec<Tenant> = Vec::new();
    // Lower-cased name -> index in `tenants`, to find duplicates in one pass.
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();

    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    // A trailing newline ends the last line; it does not start an empty one.
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }

    for (index, raw) in lines.into_iter().enumerate() {
        let origin = Origin {
            file: path.to_owned(),
            line: index + 1,
        };
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = match std::str::from_utf8(raw) {
            Ok(line) => line,
            Err(_) => {
                errors.push(LineError {
                    origin,
                    problem: Problem::NotUtf8,
                });
                continue;
            }
        };
        let trimmed = line.trim_start_matches(is_blank);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match parse_line(line, admin_user) {
            Err(problem) => errors.push(LineError { origin, problem }),
            Ok((role, password)) => {
                let lower = role.to_lowercase();
                if let Some(&i) = seen.get(&lower) {
                    let first = &tenants[i];
                    let problem = if first.role == role {
                        Problem::Duplicate {
                            name: role,
                            first_line: first.origin.line,
                        }
                    } else {
                        Problem::CaseDuplicate {
                            name: role,
                            other: first.role.clone(),
                            first_line: first.origin.line,
                        }
                    };
                    errors.push(LineError { origin, problem });
                    continue;
                }
                seen.insert(lower, tenants.len());
                if role.chars().any(|c| c.is_uppercase()) {
                    warnings.push(Warning {
                        origin: origin.clone(),
                        message: format!(
                            "user name {role:?} has upper-case letters; it is kept exactly as written \
                             (the article's scripts folded it to {:?})",
                            role.to_lowercase()
                        ),
                    });
                }
                tenants.push(Tenant {
                    database: Tenant::database_name(&role),
                    role,
                    password: Password::new(password),
                    origin,
                });
            }
        }
    }

    if errors.is_empty() {
        Ok(Parsed {
            desired: Desired { tenants },
            warnings,
        })
    } else {
        Err(InputError::Invalid(errors))
    }
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn parse_line(line: &str, admin_user: &str) -> Result<(String, String), Problem> {
    let (user, password) = line.split_once(':').ok_or(Problem::MissingColon)?;
    let user = user.trim_matches(is_blank);
    validate_role(user, admin_user)?;
    if password.is_empty() {
        return Err(Problem::EmptyPassword(user.to_owned()));
    }
    if password.contains('\0') {
        return Err(Problem::NulInPassword(user.to_owned()));
    }
    Ok((user.to_owned(), password.to_owned()))
}

/// The rules a role name must follow before it is sent to the server.
pub fn validate_role(user: &str, admin_user: &str) -> Result<(), Problem> {
    let name = || user.to_owned();
    if user.is_empty() {
        return Err(Problem::EmptyUser);
    }
    if user.chars().any(char::is_control) {
        return Err(Problem::ControlCharacter(name()));
    }
    if user.len() > MAX_IDENTIFIER_BYTES {
        return Err(Problem::RoleTooLong {
            name: name(),
            len: user.len(),
        });
    }
    let database = Tenant::database_name(user);
    if database.len() > MAX_IDENTIFIER_BYTES {
        return Err(Problem::DatabaseTooLong {
            name: database.clone(),
            len: database.len(),
        });
    }
    if user.starts_with("pg_") {
        return Err(Problem::ReservedPrefix(name()));
    }
    if RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(user)) {
        return Err(Problem::ReservedName(name()));
    }
    if user == admin_user {
        return Err(Problem::AdminUser(name()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Parsed {
        parse(Path::new("users"), text.as_bytes(), "admin").expect("valid input")
    }

    fn problems(text: &[u8]) -> Vec<(usize, Problem)> {
        match parse(Path::new("users"), text, "admin") {
            Err(InputError::Invalid(errors)) => errors
                .into_iter()
                .map(|e| (e.origin.line, e.problem))
                .collect(),
            other => panic!("expected invalid input, got {other:?}"),
        }
    }

    fn pairs(p: &Parsed) -> Vec<(&str, &str, &str)> {
        p.desired
            .tenants
            .iter()
            .map(|t| (t.role.as_str(), t.password.expose(), t.database.as_str()))
            .collect()
    }

    #[test]
    fn article_example() {
        let p = ok("some_user:h1sp@ssw0rd\nother_user:h1Str0n9sp@ssw0rd\n");
        assert_eq!(
            pairs(&p),
            [
                ("some_user", "h1sp@ssw0rd", "some_user_db"),
                ("other_user", "h1Str0n9sp@ssw0rd", "other_user_db")
            ]
        );
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn last_line_without_newline_counts() {
        let p = ok("a:1\nb:2");
        assert_eq!(pairs(&p).len(), 2);
        assert_eq!(pairs(&p)[1], ("b", "2", "b_db"));
    }

    #[test]
    fn bom_crlf_blank_and_comments() {
        let p = ok("\u{feff}# header\r\n\r\n   \t\r\n  # indented comment\r\n a :x y \r\n");
        assert_eq!(pairs(&p), [("a", "x y ", "a_db")]);
        assert_eq!(p.desired.tenants[0].origin.line, 5);
    }

    #[test]
    fn password_is_verbatim() {
        let p = ok("u:p:a's \"q\" \\n $x é\n");
        assert_eq!(pairs(&p)[0].1, "p:a's \"q\" \\n $x é");
    }

    #[test]
    fn lone_cr_inside_password_is_kept() {
        let p = ok("u:a\rb\n");
        assert_eq!(pairs(&p)[0].1, "a\rb");
    }

    #[test]
    fn upper_case_is_kept_with_a_warning() {
        let p = ok("KeyCloak:pw\n");
        assert_eq!(pairs(&p)[0].0, "KeyCloak");
        assert_eq!(pairs(&p)[0].2, "KeyCloak_db");
        assert_eq!(p.warnings.len(), 1);
        assert!(p.warnings[0].to_string().starts_with("users:1: "));
    }

    #[test]
    fn names_with_dash_and_digits() {
        let p = ok("my-app2:pw\n");
        assert_eq!(pairs(&p)[0], ("my-app2", "pw", "my-app2_db"));
    }

    #[test]
    fn every_kind_of_invalid_line() {
        let long60 = "a".repeat(60);
        let long61 = "b".repeat(61);
        let long64 = "c".repeat(64);
        let text = format!(
            "nocolon\n:pw\nu:\npg_x:pw\npublic:pw\nPostgres:pw\nadmin:pw\nbell\u{7}:pw\n\
             {long60}:pw\n{long61}:pw\n{long64}:pw\ndup:pw\ndup:pw2\nDup:pw\nnul:a\0b\n"
        );
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"bad\xff:pw\n");
        let got = problems(&bytes);
        let lines: Vec<usize> = got.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 13, 14, 15, 16]);
        assert_eq!(got[0].1, Problem::MissingColon);
        assert_eq!(got[1].1, Problem::EmptyUser);
        assert_eq!(got[2].1, Problem::EmptyPassword("u".into()));
        assert!(matches!(got[3].1, Problem::ReservedPrefix(_)));
        assert!(matches!(got[4].1, Problem::ReservedName(_)));
        assert!(matches!(got[5].1, Problem::ReservedName(_)));
        assert!(matches!(got[6].1, Problem::AdminUser(_)));
        assert!(matches!(got[7].1, Problem::ControlCharacter(_)));
        assert!(matches!(got[8].1, Problem::DatabaseTooLong { len: 64, .. }));
        assert!(matches!(got[9].1, Problem::RoleTooLong { len: 64, .. }));
        assert!(matches!(
            got[10].1,
            Problem::Duplicate { first_line: 12, .. }
        ));
        assert!(matches!(
            got[11].1,
            Problem::CaseDuplicate { first_line: 12, .. }
        ));
        assert!(matches!(got[12].1, Problem::NulInPassword(_)));
        assert_eq!(got[13].1, Problem::NotUtf8);
    }

    #[test]
    fn multibyte_names_are_measured_in_bytes() {
        // 30 two-byte letters: 60 bytes, and 63 for the database name.
        let ok_name = "é".repeat(30);
        assert_eq!(ok(&format!("{ok_name}:pw")).desired.tenants.len(), 1);
        let too_long = format!("{ok_name}x");
        assert!(matches!(
            problems(format!("{too_long}:pw").as_bytes())[0].1,
            Problem::DatabaseTooLong { len: 64, .. }
        ));
    }

    #[test]
    fn errors_never_contain_passwords() {
        let secret = "s3cr3t-Pa55";
        let text = format!("pg_a:{secret}\nx:{secret}\nx:{secret}\nadmin:{secret}\nn:a\0{secret}");
        let err = parse(Path::new("f"), text.as_bytes(), "admin").unwrap_err();
        assert!(!err.to_string().contains(secret), "{err}");
        assert!(!format!("{err:?}").contains(secret));
    }

    #[test]
    fn error_display_points_at_file_and_line() {
        let err = parse(
            Path::new("/run/secrets/db_users.secret"),
            b"a:1\nbroken\n",
            "admin",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/run/secrets/db_users.secret:2: expected user:password, found no ':'"
        );
    }

    #[test]
    fn load_warns_about_a_world_readable_file_but_reads_it() {
        use crate::testutil::chmod;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, "a:b\n").unwrap();
        chmod(&path, 0o644);
        let p = load(&path, "admin").unwrap();
        assert_eq!(p.desired.tenants.len(), 1);
        assert_eq!(p.warnings.len(), 1);
        let text = p.warnings[0].to_string();
        assert!(
            text.starts_with(&format!("{}: readable by every user", path.display())),
            "{text}"
        );
        chmod(&path, 0o600);
        assert!(load(&path, "admin").unwrap().warnings.is_empty());
    }

    #[test]
    fn empty_file_is_no_tenants() {
        assert!(ok("").desired.tenants.is_empty());
        assert!(ok("\n# nothing\n").desired.tenants.is_empty());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// Any bytes either parse into valid tenants or fail with line numbers
        /// inside the input; never a panic.
        #[test]
        fn any_bytes_parse_or_point_at_a_line(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let line_count = bytes.split(|&b| b == b'\n').count();
            match parse(Path::new("f"), &bytes, "admin") {
                Ok(p) => {
                    for t in &p.desired.tenants {
                        proptest::prop_assert!(validate_role(&t.role, "admin").is_ok());
                        proptest::prop_assert!(!t.password.expose().is_empty());
                        proptest::prop_assert!(t.origin.line >= 1 && t.origin.line <= line_count);
                    }
                }
                Err(InputError::Invalid(errors)) => {
                    proptest::prop_assert!(!errors.is_empty());
                    for e in errors {
                        proptest::prop_assert!(e.origin.line >= 1 && e.origin.line <= line_count);
                    }
                }
                Err(other) => proptest::prop_assert!(false, "unexpected error {other}"),
            }
        }
    }
}
