//! What a role's stored secret (`pg_authid.rolpassword`) says about the
//! desired password, and the verifier to send when it has to change.
//!
//! This module owns the decision "in sync / differs / md5 upgrade / unknown /
//! missing" and the md5 verifier format. Passwords reach the server only as
//! verifiers computed here (SCRAM via [`crate::reconcile::scram`]), never in clear text,
//! and an existing secret is checked with its own salt, never re-salted, so a
//! no-op run stays a no-op.
//!
//! Nothing here prints a password or a verifier: `Debug` of [`StoredSecret`]
//! is redacted and the checks return plain enums.

use std::fmt;

use md5::{Digest, Md5};

use crate::reconcile::scram::{ct_eq, ScramVerifier};

/// The server's `password_encryption`: the kind of verifier to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PasswordEncryption {
    ScramSha256,
    Md5,
}

impl PasswordEncryption {
    /// Parses `current_setting('password_encryption')`. `on` is the legacy
    /// spelling of `md5` (still accepted by the server up to today).
    pub fn from_setting(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("scram-sha-256") {
            Some(Self::ScramSha256)
        } else if s.eq_ignore_ascii_case("md5") || s.eq_ignore_ascii_case("on") {
            Some(Self::Md5)
        } else {
            None
        }
    }

    /// The setting's canonical value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ScramSha256 => "scram-sha-256",
            Self::Md5 => "md5",
        }
    }
}

impl fmt::Display for PasswordEncryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed `rolpassword`.
#[derive(Clone, PartialEq, Eq)]
pub enum StoredSecret {
    Scram(ScramVerifier),
    /// The MD5 digest of `password || role name`.
    Md5([u8; 16]),
    /// Anything else (malformed, or a format this tool does not know): never
    /// taken as matching.
    Other,
}

impl fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // ScramVerifier's Debug is itself redacted.
            Self::Scram(v) => f.debug_tuple("Scram").field(v).finish(),
            Self::Md5(_) => f.write_str("Md5(<redacted>)"),
            Self::Other => f.write_str("Other"),
        }
    }
}

/// Parses a stored secret: a SCRAM-SHA-256 verifier, or `md5` followed by 32
/// lowercase hex digits (as PostgreSQL writes it); anything else is
/// [`StoredSecret::Other`].
pub fn parse_stored(s: &str) -> StoredSecret {
    if let Ok(v) = ScramVerifier::parse(s) {
        return StoredSecret::Scram(v);
    }
    match s.strip_prefix("md5").and_then(decode_lower_hex_16) {
        Some(digest) => StoredSecret::Md5(digest),
        None => StoredSecret::Other,
    }
}

/// How a role's stored password compares with the desired one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PasswordCheck {
    /// The stored secret was made from the desired password, in the wanted
    /// format (or as SCRAM, which is never downgraded).
    InSync,
    /// The stored secret was made from another password, or cannot be read
    /// as either format.
    Differs,
    /// An md5 secret of the desired password while the server wants
    /// SCRAM-SHA-256: replace it once, and it is in sync from then on.
    Upgrade,
    /// The admin cannot read `pg_authid` (not a superuser): the password is
    /// always set.
    Unknown,
    /// The role has no password.
    Missing,
}

impl PasswordCheck {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InSync => "in sync",
            Self::Differs => "differs",
            Self::Upgrade => "md5 upgrade",
            Self::Unknown => "unknown",
            Self::Missing => "missing",
        }
    }

    /// Whether the password has to be (re)set.
    pub fn needs_set(self) -> bool {
        self != Self::InSync
    }
}

impl fmt::Display for PasswordCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compares the stored secret of `role` with the desired `password`.
///
/// `stored` is `rolpassword` (`None` for SQL NULL); `catalog_readable` is
/// whether the admin could read it at all (a non-superuser reads NULL for
/// every role, which must not be mistaken for "no password").
pub fn check(
    stored: Option<&str>,
    catalog_readable: bool,
    role: &str,
    password: &str,
    wanted: PasswordEncryption,
) -> PasswordCheck {
    if !catalog_readable {
        return PasswordCheck::Unknown;
    }
    let Some(stored) = stored else {
        return PasswordCheck::Missing;
    };
    match parse_stored(stored) {
        StoredSecret::Scram(v) if v.matches(password) => PasswordCheck::InSync,
        StoredSecret::Scram(_) => PasswordCheck::Differs,
        StoredSecret::Md5(digest) => {
            if !ct_eq(&md5_digest(password, role), &digest) {
                PasswordCheck::Differs
            } else if wanted == PasswordEncryption::Md5 {
                PasswordCheck::InSync
            } else {
                PasswordCheck::Upgrade
            }
        }
        StoredSecret::Other => PasswordCheck::Differs,
    }
}

/// The md5 verifier PostgreSQL stores: `"md5"` followed by the lowercase hex
/// MD5 of the password's bytes followed by the role name's bytes (no
/// SASLprep: PostgreSQL applies it only for SCRAM).
pub fn md5_verifier(password: &str, role: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(35);
    out.push_str("md5");
    for byte in md5_digest(password, role) {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

/// A fresh verifier of `password` for `role` in the wanted format: SCRAM with
/// a new random salt and `iterations`, or md5 (which has no salt but the role
/// name, and ignores `iterations`).
pub fn new_verifier(
    password: &str,
    role: &str,
    wanted: PasswordEncryption,
    iterations: u32,
) -> Result<String, getrandom::Error> {
    match wanted {
        PasswordEncryption::ScramSha256 => {
            Ok(ScramVerifier::generate(password, iterations)?.to_string())
        }
        PasswordEncryption::Md5 => Ok(md5_verifier(password, role)),
    }
}

fn md5_digest(password: &str, role: &str) -> [u8; 16] {
    let mut hasher = Md5::new();
    hasher.update(password.as_bytes());
    hasher.update(role.as_bytes());
    hasher.finalize().into()
}

/// Exactly 32 lowercase hex digits, as PostgreSQL writes them.
fn decode_lower_hex_16(s: &str) -> Option<[u8; 16]> {
    fn nibble(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    if bytes.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::scram::DEFAULT_ITERATIONS;
    use PasswordCheck::*;
    use PasswordEncryption::{Md5 as WantMd5, ScramSha256 as WantScram};

    /// Made by PostgreSQL 15.18: `SET password_encryption = 'md5'; CREATE
    /// ROLE ... PASSWORD '...'`, read back from `pg_authid`.
    const PG15_MD5: &[(&str, &str, &str)] = &[
        ("m_tenant", "secret", "md536d63bad437d0010705a46c48af52973"),
        (
            "m_Quoted",
            "it's \"q\"\\$: x",
            "md595a169cf2a538e04d9a1d17f42c4b93d",
        ),
    ];

    /// Made by PostgreSQL 15.18 with `password_encryption = 'scram-sha-256'`
    /// for the password "secret".
    const PG15_SCRAM_SECRET: &str = "SCRAM-SHA-256$4096:6zAlkLlE5Hx6Z4jIp5N6Zw==$x4X1nn79Xv1FkQkUNOjpoqltPZ78h87gZMwrbkV+2sY=:MYYcEBLQU8nevDKjBljXjfiMt10PlpTOPzQrZgaKsmE=";

    #[test]
    fn md5_verifier_is_postgresqls() {
        for (role, password, stored) in PG15_MD5 {
            assert_eq!(md5_verifier(password, role), *stored, "{role}");
            assert_eq!(check(Some(stored), true, role, password, WantMd5), InSync);
            assert_eq!(
                check(Some(stored), true, role, password, WantScram),
                Upgrade
            );
            assert_eq!(check(Some(stored), true, role, "wrong", WantMd5), Differs);
            assert_eq!(check(Some(stored), true, role, "wrong", WantScram), Differs);
        }
    }

    #[test]
    fn md5_is_salted_with_the_exact_role_name() {
        let (_, password, stored) = PG15_MD5[1];
        assert_eq!(
            check(Some(stored), true, "m_quoted", password, WantMd5),
            Differs
        );
        assert_eq!(
            check(Some(stored), true, "\"m_Quoted\"", password, WantMd5),
            Differs
        );
    }

    #[test]
    fn scram_secret_checks() {
        let s = Some(PG15_SCRAM_SECRET);
        assert_eq!(check(s, true, "v_ascii", "secret", WantScram), InSync);
        // any role name: SCRAM is not salted with it
        assert_eq!(check(s, true, "someone", "secret", WantScram), InSync);
        // never downgraded to md5
        assert_eq!(check(s, true, "v_ascii", "secret", WantMd5), InSync);
        assert_eq!(check(s, true, "v_ascii", "Secret", WantScram), Differs);
        assert_eq!(check(s, true, "v_ascii", "Secret", WantMd5), Differs);
    }

    #[test]
    fn unreadable_missing_and_other() {
        let s = Some(PG15_SCRAM_SECRET);
        assert_eq!(check(s, false, "a", "secret", WantScram), Unknown);
        assert_eq!(check(None, false, "a", "secret", WantScram), Unknown);
        assert_eq!(check(None, true, "a", "secret", WantScram), Missing);
        for other in [
            "",
            "secret",
            "md5",
            "MD536D63BAD437D0010705A46C48AF52973",
            "SCRAM-SHA-256$0:x$y:z",
        ] {
            assert_eq!(
                check(Some(other), true, "m_tenant", "secret", WantMd5),
                Differs,
                "{other:?}"
            );
        }
    }

    #[test]
    fn parse_stored_formats() {
        assert!(matches!(
            parse_stored(PG15_SCRAM_SECRET),
            StoredSecret::Scram(_)
        ));
        let StoredSecret::Md5(digest) = parse_stored(PG15_MD5[0].2) else {
            panic!("md5 secret not recognised");
        };
        assert_eq!(digest[0], 0x36);
        assert_eq!(digest[15], 0x73);
        for other in [
            "",
            "md5",
            "md536d63bad437d0010705a46c48af5297",   // 31 digits
            "md536d63bad437d0010705a46c48af529733", // 33 digits
            "md536D63BAD437D0010705A46C48AF52973",  // uppercase
            "md536d63bad437d0010705a46c48af5297g",
            " md536d63bad437d0010705a46c48af52973",
            "secret",
            "SCRAM-SHA-256$4096:",
        ] {
            assert_eq!(parse_stored(other), StoredSecret::Other, "{other:?}");
        }
    }

    #[test]
    fn new_verifiers_check_in_sync() {
        let scram = new_verifier("pw\u{AD}", "r", WantScram, 64).unwrap();
        assert!(scram.starts_with("SCRAM-SHA-256$64:"));
        assert_eq!(
            check(Some(&scram), true, "r", "pw\u{AD}", WantScram),
            InSync
        );
        assert_eq!(check(Some(&scram), true, "r", "pw", WantScram), InSync);
        assert_eq!(check(Some(&scram), true, "r", "pw2", WantScram), Differs);
        // salted afresh every time
        assert_ne!(scram, new_verifier("pw\u{AD}", "r", WantScram, 64).unwrap());

        let md5 = new_verifier("pw", "r", WantMd5, DEFAULT_ITERATIONS).unwrap();
        assert_eq!(md5, md5_verifier("pw", "r"));
        assert_eq!(check(Some(&md5), true, "r", "pw", WantMd5), InSync);
        assert_eq!(check(Some(&md5), true, "r", "pw", WantScram), Upgrade);
    }

    #[test]
    fn encryption_setting() {
        assert_eq!(
            PasswordEncryption::from_setting("scram-sha-256"),
            Some(WantScram)
        );
        assert_eq!(PasswordEncryption::from_setting("md5"), Some(WantMd5));
        assert_eq!(PasswordEncryption::from_setting("on"), Some(WantMd5));
        assert_eq!(PasswordEncryption::from_setting("off"), None);
        assert_eq!(PasswordEncryption::from_setting("plain"), None);
        assert_eq!(PasswordEncryption::from_setting(""), None);
        for e in [WantScram, WantMd5] {
            assert_eq!(PasswordEncryption::from_setting(e.as_str()), Some(e));
            assert_eq!(e.to_string(), e.as_str());
        }
    }

    #[test]
    fn check_labels() {
        let all = [InSync, Differs, Upgrade, Unknown, Missing];
        let labels: Vec<_> = all.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            labels,
            ["in sync", "differs", "md5 upgrade", "unknown", "missing"]
        );
        assert!(!InSync.needs_set());
        assert!(all[1..].iter().all(|c| c.needs_set()));
    }

    #[test]
    fn debug_redacts_secrets() {
        let md5 = parse_stored(PG15_MD5[0].2);
        let scram = parse_stored(PG15_SCRAM_SECRET);
        let shown = format!("{md5:?} {scram:?} {md5:#?} {scram:#?}");
        assert!(!shown.contains("36d63bad"), "{shown}");
        assert!(!shown.contains("54, 214"), "{shown}"); // 0x36, 0xd6 as decimal bytes
        assert!(!shown.contains("x4X1nn79"), "{shown}");
        assert!(shown.contains("redacted"));
    }
}
