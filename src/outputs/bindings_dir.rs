//! `--bindings-dir DIR`: one directory per application holding its
//! servicebinding.io entries as files (`DIR/keycloak/uri`,
//! `DIR/keycloak/password`, ...), for Compose and VMs, where an application
//! mounts its own subdirectory read-only.
//!
//! Each application's directory stays the same directory (a bind mount of
//! it keeps working) and its content is swapped atomically as the kubelet
//! does for Secret volumes: the entries are written into a new hidden
//! directory `..<time>`, a symlink `..data` is renamed to point at it, and
//! every entry `x` is a symlink to `..data/x`. A reader sees all old or all
//! new entries, never a mix. An application whose entries are already as
//! wanted is not touched.
//!
//! Directories of applications that the input no longer has are deleted;
//! only directories that carry the `..data` link (made by pgtenant) are, and
//! only in a DIR that pgtenant marked as its own (`.pgtenant-bindings`), so a
//! mistyped `--bindings-dir /etc` deletes nothing.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::outputs::atomic_file;
use crate::outputs::credentials::Binding;

const MARKER: &str = ".pgtenant-bindings";
const DATA: &str = "..data";

#[derive(Debug, thiserror::Error)]
pub enum BindingsError {
    #[error("bindings directory {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "bindings directory {} is not empty and was not made by pgtenant (no {MARKER}); \
         refusing to manage it",
        .0.display()
    )]
    Foreign(PathBuf),
    #[error("{0:?} cannot be a directory name (empty, starts with '.', or holds '/'); its bindings were not written")]
    BadName(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BindingsError + '_ {
    move |source| BindingsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What one write did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Written {
    pub updated: Vec<String>,
    pub removed: Vec<String>,
    /// Applications whose bindings could not be written, with why.
    pub failed: Vec<(String, String)>,
}

/// The directory mode that goes with a file mode: `x` wherever `r` is.
pub fn dir_mode(file_mode: u32) -> u32 {
    file_mode | ((file_mode & 0o444) >> 2)
}

/// Writes the bindings of `bindings` under `root`. `keep` names applications
/// of the input whose directory must be left as it is (their apply failed);
/// every other directory not in `bindings` is removed.
pub fn write(
    root: &Path,
    bindings: &[Binding],
    keep: &[String],
    file_mode: u32,
) -> Result<Written, BindingsError> {
    let dmode = dir_mode(file_mode);
    prepare_root(root, dmode)?;
    let mut written = Written::default();
    let mut wanted: BTreeSet<&str> = keep.iter().map(String::as_str).collect();
    for b in bindings {
        wanted.insert(&b.name);
        if b.name.is_empty() || b.name.starts_with('.') || b.name.contains('/') {
            written.failed.push((
                b.name.clone(),
                BindingsError::BadName(b.name.clone()).to_string(),
            ));
            continue;
        }
        match write_app(&root.join(&b.name), b, file_mode, dmode) {
            Ok(true) => written.updated.push(b.name.clone()),
            Ok(false) => {}
            Err(e) => written.failed.push((b.name.clone(), e.to_string())),
        }
    }
    for entry in fs::read_dir(root).map_err(io_err(root))? {
        let entry = entry.map_err(io_err(root))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || wanted.contains(name.as_str()) {
            continue;
        }
        let path = entry.path();
        let ours = fs::symlink_metadata(path.join(DATA))
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false);
        if ours {
            fs::remove_dir_all(&path).map_err(io_err(&path))?;
            written.removed.push(name);
        }
    }
    Ok(written)
}

fn prepare_root(root: &Path, dmode: u32) -> Result<(), BindingsError> {
    match fs::read_dir(root) {
        Ok(mut entries) => {
            if !root.join(MARKER).exists() && entries.next().is_some() {
                return Err(BindingsError::Foreign(root.to_owned()));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(dmode)
                .create(root)
                .map_err(io_err(root))?;
            fs::set_permissions(root, fs::Permissions::from_mode(dmode)).map_err(io_err(root))?;
        }
        Err(e) => return Err(io_err(root)(e)),
    }
    if !root.join(MARKER).exists() {
        atomic_file::replace(
            &root.join(MARKER),
            b"Managed by pgtenant --bindings-dir: directories of applications no longer in the input are deleted.\n",
            0o644 & dmode,
        )
        .map_err(io_err(root))?;
    }
    Ok(())
}

/// Writes one application's entries; `false` when they were already as wanted.
fn write_app(dir: &Path, b: &Binding, file_mode: u32, dmode: u32) -> Result<bool, BindingsError> {
    let entries = b.entries();
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(io_err(dir)(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a directory",
            )))
        }
        Err(_) => {
            fs::DirBuilder::new()
                .mode(dmode)
                .create(dir)
                .map_err(io_err(dir))?;
        }
    }
    // The mode may have been asked differently since the last write.
    fs::set_permissions(dir, fs::Permissions::from_mode(dmode)).map_err(io_err(dir))?;
    let data = dir.join(DATA);
    let current = fs::read_link(&data).ok();
    if let Some(target) = &current {
        if same_content(&dir.join(target), &entries, file_mode) && links_ok(dir, &entries) {
            return Ok(false);
        }
    }
    // `..<pid>.<time>.<random>`: hidden, and never a valid application entry.
    let version = atomic_file::temp_name(dir, "");
    fs::DirBuilder::new()
        .mode(dmode)
        .create(&version)
        .map_err(io_err(&version))?;
    fs::set_permissions(&version, fs::Permissions::from_mode(dmode)).map_err(io_err(&version))?;
    for (key, value) in &entries {
        let path = version.join(key);
        atomic_file::create_new(&path, value.as_bytes(), file_mode).map_err(io_err(&path))?;
    }
    atomic_file::sync_dir(&version).map_err(io_err(&version))?;
    let version_name = version.file_name().unwrap_or_default().to_owned();
    let tmp_link = dir.join("..data_tmp");
    let _ = fs::remove_file(&tmp_link);
    symlink(&version_name, &tmp_link).map_err(io_err(&tmp_link))?;
    fs::rename(&tmp_link, &data).map_err(io_err(&data))?;
    // The entry links, made once; stale ones (an entry that no longer
    // applies, such as sslmode) removed.
    let keys: BTreeSet<&str> = entries.iter().map(|(k, _)| *k).collect();
    for key in &keys {
        let link = dir.join(key);
        let target = Path::new(DATA).join(key);
        if fs::read_link(&link).ok().as_deref() != Some(target.as_path()) {
            let _ = fs::remove_file(&link);
            symlink(&target, &link).map_err(io_err(&link))?;
        }
    }
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with("..")
            && name != DATA
            && Some(entry.file_name()) != Some(version_name.clone())
        {
            let _ = fs::remove_dir_all(&path);
        } else if !name.starts_with('.') && !keys.contains(name.as_str()) {
            let _ = fs::remove_file(&path);
        }
    }
    atomic_file::sync_dir(dir).map_err(io_err(dir))?;
    Ok(true)
}

fn same_content(version: &Path, entries: &[(&'static str, String)], file_mode: u32) -> bool {
    let Ok(names) = fs::read_dir(version) else {
        return false;
    };
    if names.count() != entries.len() {
        return false;
    }
    entries.iter().all(|(key, value)| {
        let path = version.join(key);
        let mode_ok = fs::metadata(&path)
            .map(|m| m.permissions().mode() & 0o7777 == file_mode)
            .unwrap_or(false);
        mode_ok
            && fs::read(&path)
                .map(|c| c == value.as_bytes())
                .unwrap_or(false)
    })
}

fn links_ok(dir: &Path, entries: &[(&'static str, String)]) -> bool {
    entries.iter().all(|(key, _)| {
        fs::read_link(dir.join(key)).ok().as_deref() == Some(Path::new(DATA).join(key).as_path())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::desired::Password;
    use crate::outputs::credentials::Address;

    fn b(name: &str, pw: &str) -> Binding {
        Binding {
            name: name.to_owned(),
            username: name.to_owned(),
            password: Password::new(pw),
            database: format!("{name}_db"),
            address: Address {
                host: "db".to_owned(),
                port: 5432,
                sslmode: None,
            },
        }
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn writes_swaps_and_removes_stale() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("bindings");
        let w = write(&root, &[b("app", "one"), b("other", "x")], &[], 0o600).unwrap();
        assert_eq!(w.updated, ["app", "other"]);
        assert_eq!(
            fs::read_to_string(root.join("app/password")).unwrap(),
            "one"
        );
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("app")), 0o700);
        assert_eq!(mode(&root.join("app/password")), 0o600);
        // Unchanged: not rewritten.
        let target = fs::read_link(root.join("app/..data")).unwrap();
        let w = write(&root, &[b("app", "one"), b("other", "x")], &[], 0o600).unwrap();
        assert!(w.updated.is_empty());
        assert_eq!(fs::read_link(root.join("app/..data")).unwrap(), target);
        // Changed password, "other" gone: swapped, and removed.
        let w = write(&root, &[b("app", "two")], &[], 0o600).unwrap();
        assert_eq!(w.updated, ["app"]);
        assert_eq!(w.removed, ["other"]);
        assert_eq!(
            fs::read_to_string(root.join("app/password")).unwrap(),
            "two"
        );
        assert!(!root.join("other").exists());
        // Only one version directory is left behind.
        let versions = fs::read_dir(root.join("app"))
            .unwrap()
            .filter(|e| {
                let n = e.as_ref().unwrap().file_name();
                let n = n.to_string_lossy();
                n.starts_with("..") && n != DATA
            })
            .count();
        assert_eq!(versions, 1);
        // A kept application (its apply failed) is not removed.
        let w = write(&root, &[], &["app".to_owned()], 0o600).unwrap();
        assert!(w.removed.is_empty());
        // Group-readable on request.
        write(&root, &[b("app", "two")], &[], 0o640).unwrap();
        assert_eq!(mode(&root.join("app/..data/password")), 0o640);
        assert_eq!(mode(&root.join("app")), 0o750);
    }

    #[test]
    fn foreign_directory_and_bad_names_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("precious"), "x").unwrap();
        assert!(matches!(
            write(tmp.path(), &[b("app", "p")], &[], 0o600),
            Err(BindingsError::Foreign(_))
        ));
        assert!(tmp.path().join("precious").exists());
        let root = tmp.path().join("b");
        let w = write(
            &root,
            &[b("a/b", "p"), b(".hidden", "p"), b("ok", "p")],
            &[],
            0o600,
        )
        .unwrap();
        assert_eq!(w.updated, ["ok"]);
        assert_eq!(w.failed.len(), 2);
        // A directory without ..data is not ours: never removed.
        fs::create_dir(root.join("mine")).unwrap();
        write(&root, &[], &[], 0o600).unwrap();
        assert!(root.join("mine").exists());
        assert!(!root.join("ok").exists());
    }
}
