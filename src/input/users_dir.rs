//! The users directory: `--users`/`DBUSERS` naming a directory, with one
//! regular file per user holding its password (trailing newlines removed).
//! This is what a Kubernetes Secret with one key per user looks like when
//! mounted (`kubectl create secret generic db-users --from-literal=keycloak=...`).
//!
//! A mounted Secret is a directory of symlinks `name -> ..data/name`, where
//! `..data` is itself a symlink to a `..<timestamp>` directory that the
//! kubelet replaces by renaming a new `..data` over the old one. Reading the
//! files one by one through their top-level links could mix two versions
//! of the Secret. So when `..data` exists, it is resolved once and every
//! file is read inside the directory it points to, and the read is retried
//! when `..data` moved meanwhile: the result is one consistent snapshot.
//!
//! Names starting with `.` are skipped (the kubelet's own entries, editors'
//! temporary files); so is anything that is not a regular file. Names and
//! passwords follow the users file's rules ([`crate::input::users_file`]).

use std::path::{Path, PathBuf};

use crate::input::desired::{Desired, Origin, Password, Tenant};
use crate::input::secret_file::{self, ReadCause, SecretFileError};
use crate::input::users_file::{validate_role, InputError, LineError, Parsed, Problem, Warning};

/// A Secret has at most a few hundred keys; more files than this is a wrong
/// directory.
pub const MAX_FILES: usize = 10_000;

const KUBERNETES_DATA: &str = "..data";

/// How often a snapshot is retried when the kubelet swaps `..data` during
/// the read.
const ATTEMPTS: usize = 5;

/// Reads the directory at `path` as one snapshot.
pub fn load(path: &Path, admin_user: &str) -> Result<Parsed, InputError> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        match snapshot(path, admin_user) {
            Ok(parsed) => return Ok(parsed),
            Err(Retry::Again(e)) => last = Some(e),
            Err(Retry::Fail(e)) => return Err(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Err(last.expect("at least one attempt"))
}

enum Retry {
    /// `..data` moved during the read: read again.
    Again(InputError),
    Fail(InputError),
}

fn io_err(path: &Path, source: std::io::Error) -> InputError {
    InputError::Read {
        path: path.to_owned(),
        source,
    }
}

/// Where the files are: the target of `..data`, or the directory itself.
fn data_dir(path: &Path) -> Result<Option<PathBuf>, std::io::Error> {
    let link = path.join(KUBERNETES_DATA);
    match std::fs::read_link(&link) {
        Ok(target) => Ok(Some(path.join(target))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        // Not a symlink: a plain directory that happens to have the name.
        Err(e) if e.raw_os_error() == Some(libc_einval()) => Ok(None),
        Err(e) => Err(e),
    }
}

fn libc_einval() -> i32 {
    22
}

fn snapshot(path: &Path, admin_user: &str) -> Result<Parsed, Retry> {
    let data = data_dir(path).map_err(|e| Retry::Fail(io_err(path, e)))?;
    let dir = data.clone().unwrap_or_else(|| path.to_owned());
    let moved = || data_dir(path).ok().flatten() != data;
    let entries = std::fs::read_dir(&dir).map_err(|e| {
        if data.is_some() && moved() {
            Retry::Again(io_err(path, e))
        } else {
            Retry::Fail(io_err(path, e))
        }
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Retry::Fail(io_err(path, e)))?;
        names.push(entry.file_name());
        if names.len() > MAX_FILES {
            return Err(Retry::Fail(InputError::TooLarge {
                path: path.to_owned(),
                limit: MAX_FILES as u64,
            }));
        }
    }
    names.sort();
    let mut tenants: Vec<Tenant> = Vec::new();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut seen: std::collections::HashMap<String, String> = Default::default();
    for name in names {
        // The user-facing path: the key as the user sees it in the mount.
        let shown = path.join(&name);
        let origin = Origin {
            file: shown.clone(),
            line: 1,
        };
        let Some(user) = name.to_str() else {
            errors.push(LineError {
                origin,
                problem: Problem::NotUtf8,
            });
            continue;
        };
        if user.starts_with('.') {
            continue;
        }
        let file = dir.join(&name);
        // Not a regular file (a directory, a FIFO, a dangling link): skipped,
        // never opened.
        match std::fs::metadata(&file) {
            Ok(m) if m.is_file() => {}
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if data.is_some() && moved() {
                    return Err(Retry::Again(io_err(&file, e)));
                }
                continue;
            }
            Err(e) => return Err(Retry::Fail(io_err(&shown, e))),
        }
        if let Err(problem) = validate_role(user, admin_user) {
            errors.push(LineError { origin, problem });
            continue;
        }
        let password = match secret_file::read_secret_file(&file) {
            Ok(p) => p,
            Err(SecretFileError::Read {
                cause: ReadCause::Io { kind, .. },
                ..
            }) if kind == std::io::ErrorKind::NotFound && data.is_some() && moved() => {
                return Err(Retry::Again(io_err(
                    &shown,
                    std::io::Error::from(std::io::ErrorKind::NotFound),
                )));
            }
            Err(SecretFileError::Read {
                cause: ReadCause::NulByte,
                ..
            }) => {
                errors.push(LineError {
                    origin,
                    problem: Problem::NulInPassword,
                });
                continue;
            }
            Err(SecretFileError::Read {
                cause: ReadCause::NotUtf8,
                ..
            }) => {
                errors.push(LineError {
                    origin,
                    problem: Problem::NotUtf8,
                });
                continue;
            }
            Err(e) => {
                return Err(Retry::Fail(io_err(
                    &shown,
                    std::io::Error::other(e.to_string()),
                )))
            }
        };
        if password.is_empty() {
            errors.push(LineError {
                origin,
                problem: Problem::EmptyPassword,
            });
            continue;
        }
        let lower = user.to_lowercase();
        if let Some(other) = seen.get(&lower) {
            errors.push(LineError {
                origin,
                problem: Problem::CaseDuplicateFile {
                    other: other.clone(),
                },
            });
            continue;
        }
        seen.insert(lower, user.to_owned());
        if user.chars().any(char::is_uppercase) {
            warnings.push(Warning {
                origin: origin.clone(),
                message: format!(
                    "user name {user:?} has upper-case letters; it is kept exactly as written"
                ),
            });
        }
        tenants.push(Tenant::with_defaults(
            user.to_owned(),
            Password::new(password),
            origin,
        ));
    }
    // A swap during the read: the files may be from two versions.
    if data.is_some() && moved() {
        return Err(Retry::Again(io_err(
            path,
            std::io::Error::other("..data changed during the read"),
        )));
    }
    if !errors.is_empty() {
        return Err(Retry::Fail(InputError::Invalid(errors)));
    }
    Ok(Parsed {
        desired: Desired {
            tenants,
            members: Vec::new(),
        },
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn roles(p: &Parsed) -> Vec<(String, String)> {
        p.desired
            .tenants
            .iter()
            .map(|t| (t.role.clone(), t.password.expose().to_owned()))
            .collect()
    }

    #[test]
    fn plain_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keycloak"), "pw1\n").unwrap();
        std::fs::write(dir.path().join("dolibarr"), "pw2").unwrap();
        std::fs::write(dir.path().join(".hidden"), "x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let p = load(dir.path(), "admin").unwrap();
        assert_eq!(
            roles(&p),
            [
                ("dolibarr".to_owned(), "pw2".to_owned()),
                ("keycloak".to_owned(), "pw1".to_owned())
            ]
        );
    }

    /// The kubelet's layout: keys are links into `..data`, which links to a
    /// timestamped directory.
    fn kubelet(dir: &Path, version: &str, keys: &[(&str, &str)]) {
        let ts = dir.join(format!("..{version}"));
        std::fs::create_dir(&ts).unwrap();
        for (k, v) in keys {
            std::fs::write(ts.join(k), v).unwrap();
        }
        let tmp = dir.join("..data_tmp");
        symlink(format!("..{version}"), &tmp).unwrap();
        std::fs::rename(&tmp, dir.join("..data")).unwrap();
        for (k, _) in keys {
            let link = dir.join(k);
            if std::fs::symlink_metadata(&link).is_err() {
                symlink(format!("..data/{k}"), &link).unwrap();
            }
        }
    }

    #[test]
    fn kubernetes_layout_is_one_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        kubelet(dir.path(), "v1", &[("a", "one"), ("b", "two")]);
        let p = load(dir.path(), "admin").unwrap();
        assert_eq!(
            roles(&p),
            [
                ("a".to_owned(), "one".to_owned()),
                ("b".to_owned(), "two".to_owned())
            ]
        );
        assert_eq!(p.desired.tenants[0].origin.file, dir.path().join("a"));
        // A new version with one key fewer: the top-level link `b` dangles
        // but is not read; only the snapshot counts.
        kubelet(dir.path(), "v2", &[("a", "three")]);
        let p = load(dir.path(), "admin").unwrap();
        assert_eq!(roles(&p), [("a".to_owned(), "three".to_owned())]);
    }

    #[test]
    fn problems_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pg_bad"), "x").unwrap();
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let e = load(dir.path(), "admin").unwrap_err().to_string();
        assert!(e.contains("/empty:1: empty password"), "{e}");
        assert!(e.contains("/pg_bad:1: user name is reserved"), "{e}");
    }
}
