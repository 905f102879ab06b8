//! Secrets read from files, the way the official `postgres` Docker image reads
//! them.
//!
//! This module owns two things: reading one secret file (`$(< file)` in the
//! image's entrypoint) and the image's `file_env` convention, where `VAR` or
//! `VAR_FILE` supplies a value. Both must behave exactly like the image,
//! because the server's superuser password was set by that entrypoint from the
//! same file: any difference in trimming and pgtenant would present a password
//! that is not the one the server has.
//!
//! Errors name the file and the cause, never the content.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::input::env::Env;

/// The largest secret file read, in bytes. Secrets are short; anything bigger
/// is a wrong path (a log file, a device) and is refused without being read
/// whole.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("failed to read {}: {cause}", path.display())]
    Read { path: PathBuf, cause: ReadCause },
    #[error("both {var} and {file_var} are set (but are exclusive)")]
    Exclusive { var: String, file_var: String },
    #[error("{var} is not valid utf-8")]
    VarNotUtf8 { var: String },
}

/// Why a secret file could not be used. Never carries any of its content.
#[derive(Debug, thiserror::Error)]
pub enum ReadCause {
    /// Opening or reading failed; the kind lets a watcher tell a file that is
    /// not there yet from one it may not read.
    #[error("{message}")]
    Io {
        kind: io::ErrorKind,
        message: String,
    },
    #[error("larger than {} KiB", MAX_SECRET_FILE_BYTES / 1024)]
    TooLarge,
    #[error("not valid utf-8")]
    NotUtf8,
    /// The shell drops NUL bytes (with a warning) and libpq would cut the
    /// password at the first one; either way the result is not what the file
    /// says, so refuse it.
    #[error("contains a nul byte")]
    NulByte,
}

/// Where a value given through the `file_env` convention came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The variable itself, e.g. `POSTGRES_PASSWORD`.
    Var(String),
    /// The file named by `<var>_FILE`, e.g. `POSTGRES_PASSWORD_FILE`.
    File { var: String, path: PathBuf },
}

impl Source {
    /// The file the value was read from, for callers that watch it.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Source::Var(_) => None,
            Source::File { path, .. } => Some(path),
        }
    }
}

/// `POSTGRES_PASSWORD` or `POSTGRES_PASSWORD_FILE=/run/secrets/x`: names the
/// origin, never the value.
impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Var(var) => f.write_str(var),
            Source::File { var, path } => write!(f, "{var}={}", path.display()),
        }
    }
}

/// Reads a secret file as the image's entrypoint does with `$(< file)`: the
/// content with every trailing `\n` removed and nothing else changed. In
/// particular a trailing `\r` (a file saved with CRLF line endings) stays part
/// of the value, as it does in the shell; leading and trailing spaces stay
/// too.
pub fn read_secret_file(path: &Path) -> Result<String, SecretFileError> {
    let fail = |cause| SecretFileError::Read {
        path: path.to_owned(),
        cause,
    };
    let file = File::open(path).map_err(|e| fail(io_cause(&e)))?;
    // Read one byte past the limit to tell "exactly at the limit" from "over".
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(io_cause(&e)))?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(fail(ReadCause::TooLarge));
    }
    if bytes.contains(&0) {
        return Err(fail(ReadCause::NulByte));
    }
    let len = bytes.iter().rposition(|&b| b != b'\n').map_or(0, |i| i + 1);
    bytes.truncate(len);
    String::from_utf8(bytes).map_err(|_| fail(ReadCause::NotUtf8))
}

/// The image's `file_env VAR`: the value of `VAR`, or the content of the file
/// named by `VAR_FILE`; `None` when neither is set. As in the image's shell
/// (`[ "${VAR:-}" ]`), an empty variable counts as unset, and setting both is
/// an error rather than one silently winning.
pub fn file_env(env: &Env, var: &str) -> Result<Option<(String, Source)>, SecretFileError> {
    let file_var = format!("{var}_FILE");
    let value = nonempty(env, var)?;
    let file = nonempty(env, &file_var)?;
    match (value, file) {
        (Some(_), Some(_)) => Err(SecretFileError::Exclusive {
            var: var.to_owned(),
            file_var,
        }),
        (Some(value), None) => Ok(Some((value.to_owned(), Source::Var(var.to_owned())))),
        (None, Some(path)) => {
            let path = PathBuf::from(path);
            let value = read_secret_file(&path)?;
            if let Some(message) = permission_warning(&path) {
                tracing::warn!(file = %path.display(), "{file_var}={}: {message}", path.display());
            }
            Ok(Some((
                value,
                Source::File {
                    var: file_var,
                    path,
                },
            )))
        }
        (None, None) => Ok(None),
    }
}

/// Whether a secret file's permissions deserve a warning, and which; `None`
/// when they are fine or cannot be read. Never a reason to refuse the file.
///
/// The rule (SECURITY.md, "File permissions"), on the file a symlink chain
/// ends at:
///
/// * writable by others (`o+w`): always a warning. Whoever can write the
///   users file decides which roles exist and what their passwords are.
/// * inside a secret mount, nothing else is. A Kubernetes Secret volume is
///   `0644` by default (`defaultMode`), group-readable or -writable with
///   `fsGroup`, mounted read-only and private to the pod; Docker and Compose
///   secrets under `/run/secrets` are `0444`. The operator cannot do better
///   than these defaults, so warning about them would only teach people to
///   ignore the warning.
/// * elsewhere: readable by others (`o+r`) or writable by the group (`g+w`).
///   Group-readable alone (`0640`, a deliberate group) is fine.
///
/// A secret mount is a directory holding the `..data` symlink that the
/// kubelet's atomic writer maintains (the file's own directory, or its parent
/// when the path names the timestamped `..2024_...` directory directly), or
/// a path under `/run/secrets` or `/var/run/secrets`.
pub fn permission_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    if mode & 0o002 != 0 {
        return Some(format!(
            "writable by every user of the machine (mode {mode:04o}): whoever can write it \
             controls what pgtenant provisions; make it 0600 or 0640"
        ));
    }
    if is_secret_mount(path) {
        return None;
    }
    if mode & 0o004 != 0 {
        return Some(format!(
            "readable by every user of the machine (mode {mode:04o}); make it 0600 or 0640 \
             (files in a Kubernetes Secret volume or under /run/secrets are exempt)"
        ));
    }
    if mode & 0o020 != 0 {
        return Some(format!(
            "writable by its group (mode {mode:04o}); make it 0600 or 0640"
        ));
    }
    None
}

/// A Kubernetes Secret/ConfigMap/projected volume, or a Docker secret.
fn is_secret_mount(path: &Path) -> bool {
    if path.starts_with("/run/secrets") || path.starts_with("/var/run/secrets") {
        return true;
    }
    let has_data_link = |dir: &Path| {
        std::fs::symlink_metadata(dir.join("..data")).is_ok_and(|m| m.file_type().is_symlink())
    };
    let Some(dir) = path.parent() else {
        return false;
    };
    if has_data_link(dir) {
        return true;
    }
    // The path names the timestamped directory itself: `<mount>/..2024_.../file`.
    dir.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(".."))
        && dir.parent().is_some_and(has_data_link)
}

fn nonempty<'a>(env: &'a Env, var: &str) -> Result<Option<&'a str>, SecretFileError> {
    env.get_nonempty(var)
        .map_err(|()| SecretFileError::VarNotUtf8 {
            var: var.to_owned(),
        })
}

fn io_cause(e: &io::Error) -> ReadCause {
    ReadCause::Io {
        kind: e.kind(),
        message: describe_io(e),
    }
}

/// A short lowercase cause such as `permission denied`, in the words of the
/// usual C library messages rather than Rust's `(os error 13)` form.
pub(crate) fn describe_io(e: &io::Error) -> String {
    // An OS error displays as the C library's strerror text plus
    // " (os error N)"; keep the text, lowercased like the rest of our messages.
    let text = crate::message::os_cause(&e.to_string());
    if text.is_empty() {
        "unknown error".to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(content: &[u8]) -> tempfile::NamedTempFile {
        crate::testutil::temp_file(content, 0o600)
    }

    fn read(content: &[u8]) -> Result<String, SecretFileError> {
        let f = file_with(content);
        read_secret_file(f.path())
    }

    #[test]
    fn strips_all_trailing_newlines_only() {
        assert_eq!(read(b"s3cret").unwrap(), "s3cret");
        assert_eq!(read(b"s3cret\n").unwrap(), "s3cret");
        assert_eq!(read(b"s3cret\n\n\n").unwrap(), "s3cret");
        assert_eq!(read(b"  s3 cret \t\n").unwrap(), "  s3 cret \t");
        assert_eq!(read(b"a\nb\n").unwrap(), "a\nb");
        assert_eq!(read(b"").unwrap(), "");
        assert_eq!(read(b"\n\n").unwrap(), "");
    }

    #[test]
    fn keeps_carriage_return_like_the_shell() {
        assert_eq!(read(b"s3cret\r\n").unwrap(), "s3cret\r");
        assert_eq!(read(b"s3cret\n\r").unwrap(), "s3cret\n\r");
    }

    #[test]
    fn size_limit() {
        let at_limit = vec![b'x'; MAX_SECRET_FILE_BYTES as usize];
        assert_eq!(read(&at_limit).unwrap().len(), at_limit.len());
        let over = vec![b'x'; MAX_SECRET_FILE_BYTES as usize + 1];
        let f = file_with(&over);
        let err = read_secret_file(f.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("failed to read {}: larger than 64 KiB", f.path().display())
        );
    }

    #[test]
    fn not_utf8_names_path_not_content() {
        let f = file_with(b"pa\xffss\n");
        let err = read_secret_file(f.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("failed to read {}: not valid utf-8", f.path().display())
        );
    }

    #[test]
    fn nul_byte_is_refused() {
        let f = file_with(b"pass\0word");
        let err = read_secret_file(f.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("failed to read {}: contains a nul byte", f.path().display())
        );
    }

    #[test]
    fn missing_file_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = read_secret_file(&missing).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "failed to read {}: no such file or directory",
                missing.display()
            )
        );
        assert!(matches!(
            err,
            SecretFileError::Read {
                cause: ReadCause::Io {
                    kind: io::ErrorKind::NotFound,
                    ..
                },
                ..
            }
        ));
        let err = read_secret_file(dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("failed to read {}: is a directory", dir.path().display())
        );
    }

    #[test]
    fn describe_io_words() {
        let e = io::Error::from_raw_os_error(13);
        assert_eq!(describe_io(&e), "permission denied");
        let e = io::Error::from_raw_os_error(5);
        assert_eq!(describe_io(&e), "input/output error");
    }

    use crate::testutil::chmod;

    #[test]
    fn permission_rule_outside_secret_mounts() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "pw").unwrap();
        for mode in [0o600, 0o400, 0o640, 0o440, 0o700] {
            chmod(&file, mode);
            assert_eq!(permission_warning(&file), None, "mode {mode:o}");
        }
        for (mode, words) in [
            (0o644, "readable by every user"),
            (0o604, "readable by every user"),
            (0o444, "readable by every user"),
            (0o660, "writable by its group"),
            (0o666, "writable by every user"),
            (0o602, "writable by every user"),
        ] {
            chmod(&file, mode);
            let w = permission_warning(&file).unwrap_or_else(|| panic!("mode {mode:o}"));
            assert!(w.contains(words), "{mode:o}: {w}");
            assert!(w.contains(&format!("{mode:04o}")), "{w}");
        }
        assert_eq!(permission_warning(&dir.path().join("missing")), None);
    }

    #[test]
    fn kubernetes_secret_volume_defaults_are_fine() {
        // The kubelet's layout: <mount>/..2024_01_01_00_00_00.1/<key>,
        // <mount>/..data -> ..2024_..., <mount>/<key> -> ..data/<key>.
        let mount = tempfile::tempdir().unwrap();
        let stamped = mount.path().join("..2024_01_01_00_00_00.1");
        std::fs::create_dir(&stamped).unwrap();
        std::fs::write(stamped.join("db_users.secret"), "a:b\n").unwrap();
        std::os::unix::fs::symlink("..2024_01_01_00_00_00.1", mount.path().join("..data")).unwrap();
        let key = mount.path().join("db_users.secret");
        std::os::unix::fs::symlink("..data/db_users.secret", &key).unwrap();
        for mode in [0o644, 0o444, 0o640, 0o660, 0o600] {
            chmod(&stamped.join("db_users.secret"), mode);
            assert_eq!(permission_warning(&key), None, "mode {mode:o}");
            assert_eq!(permission_warning(&stamped.join("db_users.secret")), None);
        }
        chmod(&stamped.join("db_users.secret"), 0o666);
        assert!(permission_warning(&key)
            .unwrap()
            .contains("writable by every user"));
        // A lookalike without the ..data link is not a secret mount.
        let plain = tempfile::tempdir().unwrap();
        let f = plain.path().join("db_users.secret");
        std::fs::write(&f, "a:b\n").unwrap();
        chmod(&f, 0o644);
        assert!(permission_warning(&f).is_some());
    }

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().map(|(k, v)| (*k, *v)))
    }

    #[test]
    fn file_env_neither() {
        assert_eq!(file_env(&env(&[]), "POSTGRES_PASSWORD").unwrap(), None);
        // Empty counts as unset, as `[ "${VAR:-}" ]` does.
        let e = env(&[("POSTGRES_PASSWORD", ""), ("POSTGRES_PASSWORD_FILE", "")]);
        assert_eq!(file_env(&e, "POSTGRES_PASSWORD").unwrap(), None);
    }

    #[test]
    fn file_env_var() {
        let e = env(&[
            ("POSTGRES_PASSWORD", "pw\n"),
            ("POSTGRES_PASSWORD_FILE", ""),
        ]);
        let (value, source) = file_env(&e, "POSTGRES_PASSWORD").unwrap().unwrap();
        // A variable's value is taken as it is: only file content is trimmed.
        assert_eq!(value, "pw\n");
        assert_eq!(source, Source::Var("POSTGRES_PASSWORD".into()));
        assert_eq!(source.to_string(), "POSTGRES_PASSWORD");
        assert_eq!(source.path(), None);
    }

    #[test]
    fn file_env_file() {
        let f = file_with(b"from-file\n");
        let path = f.path().to_str().unwrap();
        let e = env(&[("POSTGRES_PASSWORD", ""), ("POSTGRES_PASSWORD_FILE", path)]);
        let (value, source) = file_env(&e, "POSTGRES_PASSWORD").unwrap().unwrap();
        assert_eq!(value, "from-file");
        assert_eq!(source.to_string(), format!("POSTGRES_PASSWORD_FILE={path}"));
        assert_eq!(source.path(), Some(f.path()));
    }

    #[test]
    fn file_env_both_is_an_error() {
        let e = env(&[
            ("POSTGRES_PASSWORD", "pw"),
            ("POSTGRES_PASSWORD_FILE", "/run/secrets/x"),
        ]);
        let err = file_env(&e, "POSTGRES_PASSWORD").unwrap_err();
        assert_eq!(
            err.to_string(),
            "both POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE are set (but are exclusive)"
        );
    }

    #[test]
    fn file_env_unreadable_file() {
        let e = env(&[("POSTGRES_USER_FILE", "/nonexistent/pgtenant/user")]);
        let err = file_env(&e, "POSTGRES_USER").unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to read /nonexistent/pgtenant/user: no such file or directory"
        );
    }

    #[cfg(unix)]
    #[test]
    fn file_env_not_utf8_var() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let e = Env::from_pairs([(
            OsString::from("POSTGRES_PASSWORD_FILE"),
            OsString::from_vec(b"/run/\xff".to_vec()),
        )]);
        let err = file_env(&e, "POSTGRES_PASSWORD").unwrap_err();
        assert_eq!(err.to_string(), "POSTGRES_PASSWORD_FILE is not valid utf-8");
    }
}
