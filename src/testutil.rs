//! Helpers for unit tests only: files with given content and mode.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A temporary file holding `content`, with permissions `mode`.
pub(crate) fn temp_file(content: &[u8], mode: u32) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(content).unwrap();
    f.flush().unwrap();
    chmod(f.path(), mode);
    f
}

pub(crate) fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
