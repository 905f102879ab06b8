//! Files that readers must only ever see whole: a new file is written
//! beside the target with its final mode, flushed to disk, and renamed over
//! it (rename(2) is atomic within a directory), then the directory is
//! flushed so the rename survives a crash.
//!
//! Used for PgBouncer's auth file and for the bindings directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A name in `dir` that no other writer picks: pid, time and randomness.
pub fn temp_name(dir: &Path, stem: &str) -> PathBuf {
    let mut rnd = [0u8; 6];
    let _ = getrandom::fill(&mut rnd);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let suffix: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!(".{stem}.{}.{nanos}.{suffix}", std::process::id()))
}

/// Creates `path` (which must not exist) with `mode` and `content`, flushed.
pub fn create_new(path: &Path, content: &[u8], mode: u32) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    // The umask may have taken bits away from `mode`.
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    f.write_all(content)?;
    f.sync_all()
}

/// Flushes a directory's entries (a rename or a new file in it).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `path` with `content` atomically, with `mode`. Readers see the
/// old file or the new one, never a part.
pub fn replace(path: &Path, content: &[u8], mode: u32) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_owned());
    let tmp = temp_name(dir, &stem);
    if let Err(e) = create_new(&tmp, content, mode) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_sets_mode_and_content_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("userlist.txt");
        replace(&path, b"one\n", 0o600).unwrap();
        replace(&path, b"two\n", 0o640).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two\n");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }
}
