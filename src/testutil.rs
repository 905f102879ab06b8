//! Helpers for unit tests only: files with given content and mode, and the
//! facts of a server with a superuser admin.

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

/// A server of `version_num` (150000 for 15) as a superuser admin sees it,
/// with SCRAM and fsync on.
pub(crate) fn server_info(version_num: u32) -> crate::server::catalog::ServerInfo {
    crate::server::catalog::ServerInfo {
        version_num,
        password_encryption: crate::reconcile::password::PasswordEncryption::ScramSha256,
        scram_iterations: None,
        in_recovery: false,
        admin: "postgres".into(),
        admin_is_superuser: true,
        admin_can_create_roles: true,
        can_read_passwords: true,
        has_pg_stat_statements: false,
        fsync: true,
    }
}
