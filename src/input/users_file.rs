//! The users file: the article's `user:password` format, parsed and validated
//! as a whole before anything touches the server.
//!
//! Format (drop-in compatible with the article's `db_users.secret`):
//! - UTF-8; a leading byte-order mark is ignored; LF or CRLF line endings; a
//!   last line without a newline counts. A CR anywhere else is an error: a
//!   file saved with old Mac line endings (CR only) would otherwise be one
//!   line whose password swallows every following line.
//! - Blank lines and lines whose first non-blank character is `#` are ignored.
//! - `user:password`: the user is the text before the first `:`, with
//!   surrounding blanks removed; the password is everything after the first
//!   `:`, verbatim, except the CR of a CRLF ending. No escape processing.
//!
//! Every problem is reported with `file:line`; messages never contain any
//! part of the line that failed (a pasted password, or `-f
//! /proc/self/environ`, would otherwise end up in logs and on `/readyz`).
//! Names with Unicode format characters (category Cf: zero-width and
//! bidirectional controls) are errors: they make two different names look
//! the same, or reorder what a terminal shows.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::input::desired::{Desired, Origin, Password, Tenant};

/// PostgreSQL's NAMEDATALEN - 1: longer identifiers are silently truncated by
/// the server, so two long names could end up as the same role.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// A realistic users file is a few KiB to a few hundred KiB; anything larger
/// is a mistake (a wrong path, a device) and must fail clearly rather than
/// exhaust the sidecar's 8 MiB of memory.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The most tenants one input may hold: memory grows with the number of
/// tenants (about 1.5 KiB each at the peak of an apply), and this keeps a
/// full apply inside the sidecar's 8 MiB.
pub const MAX_TENANTS: usize = 2000;

/// Invalid lines reported one by one; more are counted, not listed, so that
/// a file of garbage costs bounded memory and log volume.
pub const MAX_REPORTED_ERRORS: usize = 20;

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
    #[error("users file {} has more than {limit} users", path.display())]
    TooManyTenants { path: PathBuf, limit: usize },
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

/// What is wrong with one line. No variant carries any text of the line:
/// a line that failed to parse may be a pasted password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("line is not valid UTF-8")]
    NotUtf8,
    #[error("expected user:password, found no ':'")]
    MissingColon,
    #[error("carriage return (CR) inside the line; line endings must be LF or CRLF")]
    LoneCarriageReturn,
    #[error("empty user name")]
    EmptyUser,
    #[error("empty password")]
    EmptyPassword,
    #[error("password contains a NUL byte, which no PostgreSQL client can send")]
    NulInPassword,
    #[error("user name is {len} bytes long; PostgreSQL truncates names to 63 bytes")]
    RoleTooLong { len: usize },
    #[error("database name would be {len} bytes long; PostgreSQL truncates names to 63 bytes (user names may be at most 60 bytes)")]
    DatabaseTooLong { len: usize },
    #[error("user name contains a control character")]
    ControlCharacter,
    #[error("user name contains the invisible or bidirectional formatting character U+{0:04X}")]
    FormatCharacter(u32),
    #[error("user name is reserved: names starting with \"pg_\" belong to PostgreSQL")]
    ReservedPrefix,
    #[error("user name is reserved ({0:?})")]
    ReservedName(&'static str),
    #[error("user name is the admin user pgtenant connects as")]
    AdminUser,
    #[error("duplicate user (first defined on line {first_line})")]
    Duplicate { first_line: usize },
    #[error("user differs only in letter case from the user on line {first_line}")]
    CaseDuplicate { first_line: usize },
    /// In a users directory: the other file's name (a user name, never a
    /// password).
    #[error(
        "user differs only in letter case from user {other:?} (another file of the directory)"
    )]
    CaseDuplicateFile { other: String },
    #[error("{0} more invalid lines not shown")]
    More(usize),
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

impl Warning {
    /// Logs the warning with its file, and its line unless it is about the
    /// whole file (no placeholder line 0 in JSON logs).
    pub fn log(&self) {
        let file = self.origin.file.display();
        if self.origin.line == 0 {
            tracing::warn!(file = %file, "{self}");
        } else {
            tracing::warn!(file = %file, line = self.origin.line, "{self}");
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
    read_bounded_limit(path, MAX_FILE_BYTES)
}

/// [`read_bounded`] with another bound.
pub fn read_bounded_limit(path: &Path, limit: u64) -> Result<Vec<u8>, InputError> {
    let read_err = |source| InputError::Read {
        path: path.to_owned(),
        source,
    };
    // Opened non-blocking: opening a FIFO would otherwise block until a
    // writer comes, so `pgtenant -f /some/fifo` would hang instead of failing.
    let file = match crate::input::secret_file::open_regular(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            return Err(InputError::NotRegularFile {
                path: path.to_owned(),
            })
        }
        Err(e) => return Err(read_err(e)),
    };
    let meta = file.metadata().map_err(read_err)?;
    if meta.len() > limit {
        return Err(InputError::TooLarge {
            path: path.to_owned(),
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow between stat and read; never read more than the bound.
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > limit {
        return Err(InputError::TooLarge {
            path: path.to_owned(),
            limit,
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
    // Invalid lines beyond the first MAX_REPORTED_ERRORS are only counted.
    let mut dropped = 0usize;
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
        if raw.contains(&b'\r') {
            report(
                &mut errors,
                &mut dropped,
                LineError {
                    origin,
                    problem: Problem::LoneCarriageReturn,
                },
            );
            continue;
        }
        let line = match std::str::from_utf8(raw) {
            Ok(line) => line,
            Err(_) => {
                report(
                    &mut errors,
                    &mut dropped,
                    LineError {
                        origin,
                        problem: Problem::NotUtf8,
                    },
                );
                continue;
            }
        };
        let trimmed = line.trim_start_matches(is_blank);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match parse_line(line, admin_user) {
            Err(problem) => report(&mut errors, &mut dropped, LineError { origin, problem }),
            Ok((role, password)) => {
                let lower = role.to_lowercase();
                if let Some(&i) = seen.get(&lower) {
                    let first = &tenants[i];
                    let problem = if first.role == role {
                        Problem::Duplicate {
                            first_line: first.origin.line,
                        }
                    } else {
                        Problem::CaseDuplicate {
                            first_line: first.origin.line,
                        }
                    };
                    report(&mut errors, &mut dropped, LineError { origin, problem });
                    continue;
                }
                if tenants.len() == MAX_TENANTS {
                    return Err(InputError::TooManyTenants {
                        path: path.to_owned(),
                        limit: MAX_TENANTS,
                    });
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
                tenants.push(Tenant::with_defaults(role, Password::new(password), origin));
            }
        }
    }

    if dropped > 0 {
        let line = errors.last().map_or(0, |e: &LineError| e.origin.line);
        errors.push(LineError {
            origin: Origin {
                file: path.to_owned(),
                line,
            },
            problem: Problem::More(dropped),
        });
    }
    if errors.is_empty() {
        Ok(Parsed {
            desired: Desired {
                tenants,
                members: Vec::new(),
            },
            warnings,
        })
    } else {
        Err(InputError::Invalid(errors))
    }
}

fn report(errors: &mut Vec<LineError>, dropped: &mut usize, error: LineError) {
    if errors.len() < MAX_REPORTED_ERRORS {
        errors.push(error);
    } else {
        *dropped += 1;
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
        return Err(Problem::EmptyPassword);
    }
    if password.contains('\0') {
        return Err(Problem::NulInPassword);
    }
    Ok((user.to_owned(), password.to_owned()))
}

/// The rules a role name must follow before it is sent to the server.
pub fn validate_role(user: &str, admin_user: &str) -> Result<(), Problem> {
    if user.is_empty() {
        return Err(Problem::EmptyUser);
    }
    if user.chars().any(char::is_control) {
        return Err(Problem::ControlCharacter);
    }
    if let Some(c) = user.chars().find(|&c| is_format_character(c)) {
        return Err(Problem::FormatCharacter(u32::from(c)));
    }
    if user.len() > MAX_IDENTIFIER_BYTES {
        return Err(Problem::RoleTooLong { len: user.len() });
    }
    let database = Tenant::database_name(user);
    if database.len() > MAX_IDENTIFIER_BYTES {
        return Err(Problem::DatabaseTooLong {
            len: database.len(),
        });
    }
    if user.starts_with("pg_") {
        return Err(Problem::ReservedPrefix);
    }
    if let Some(reserved) = RESERVED_NAMES.iter().find(|r| r.eq_ignore_ascii_case(user)) {
        return Err(Problem::ReservedName(reserved));
    }
    if user == admin_user {
        return Err(Problem::AdminUser);
    }
    Ok(())
}

/// Unicode general category Cf (format characters), Unicode 16.0
/// (`DerivedGeneralCategory.txt`). Written out because it is 21 ranges and
/// no crate this binary already depends on exposes general categories.
const FORMAT_CHARACTERS: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Whether `c` is a Unicode format character (category Cf): zero-width
/// spaces and joiners, bidirectional overrides and isolates, the BOM.
pub fn is_format_character(c: char) -> bool {
    let c = u32::from(c);
    FORMAT_CHARACTERS
        .iter()
        .any(|&(lo, hi)| (lo..=hi).contains(&c))
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
    fn a_cr_that_does_not_end_a_line_is_an_error() {
        assert_eq!(problems(b"u:a\rb\n"), [(1, Problem::LoneCarriageReturn)]);
        // Old Mac line endings: one line that would swallow the others.
        assert_eq!(
            problems(b"a:1\rb:2\rc:3\r"),
            [(1, Problem::LoneCarriageReturn)]
        );
        assert_eq!(
            pairs(&ok("u:a\r\nv:b\r\n")),
            [("u", "a", "u_db"), ("v", "b", "v_db")]
        );
    }

    #[test]
    fn format_characters_in_names_are_errors() {
        for (name, code) in [
            ("zero\u{200B}width", 0x200B),
            ("admin\u{202E}nimda", 0x202E),
            ("soft\u{AD}hyphen", 0xAD),
            ("tag\u{E0041}", 0xE0041),
            ("bom\u{FEFF}", 0xFEFF),
        ] {
            assert_eq!(
                problems(format!("{name}:pw\n").as_bytes()),
                [(1, Problem::FormatCharacter(code))]
            );
        }
        assert!(is_format_character('\u{2066}'));
        assert!(!is_format_character('é'));
        assert!(!is_format_character('日'));
    }

    #[test]
    fn errors_never_contain_the_failed_line() {
        // A pasted password, and what `-f /proc/self/environ` would give.
        let lines: &[&[u8]] = &[
            b"Sup3rS3cretPastedPassword",
            b"PGPASSWORD=Sup3rS3cretPastedPassword\0PATH=/usr/bin:/bin",
            b"Sup3rS3cretPastedPassword\x01:x",
            b"pg_Sup3rS3cretPastedPassword:x",
            b"Sup3rS3cretPastedPassword\xe2\x80\x8b:x",
            b"Sup3rS3cretPastedPassword\rsecond",
            b"Sup3rS3cretPastedPassword:",
        ];
        for line in lines {
            let err = parse(Path::new("f"), line, "admin").unwrap_err();
            assert!(!err.to_string().contains("Sup3rS3cret"), "{err}");
            assert!(!format!("{err:?}").contains("Sup3rS3cret"), "{err:?}");
        }
    }

    #[test]
    fn garbage_costs_bounded_memory() {
        let garbage = "no colon here\n".repeat(10_000);
        let Err(InputError::Invalid(errors)) = parse(Path::new("f"), garbage.as_bytes(), "a")
        else {
            panic!("garbage parsed")
        };
        assert_eq!(errors.len(), MAX_REPORTED_ERRORS + 1);
        assert_eq!(
            errors.last().unwrap().problem,
            Problem::More(10_000 - MAX_REPORTED_ERRORS)
        );
        let many: String = (0..=MAX_TENANTS).map(|i| format!("u{i}:p\n")).collect();
        assert!(matches!(
            parse(Path::new("f"), many.as_bytes(), "a"),
            Err(InputError::TooManyTenants { .. })
        ));
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
        assert_eq!(got[2].1, Problem::EmptyPassword);
        assert_eq!(got[3].1, Problem::ReservedPrefix);
        assert_eq!(got[4].1, Problem::ReservedName("public"));
        assert_eq!(got[5].1, Problem::ReservedName("postgres"));
        assert_eq!(got[6].1, Problem::AdminUser);
        assert_eq!(got[7].1, Problem::ControlCharacter);
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
        assert_eq!(got[12].1, Problem::NulInPassword);
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
