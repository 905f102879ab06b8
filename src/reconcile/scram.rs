//! SCRAM-SHA-256 verifiers exactly as PostgreSQL stores them in
//! `pg_authid.rolpassword` (RFC 5802 / RFC 7677, PostgreSQL's
//! `src/common/scram-common.c` and `src/common/saslprep.c`).
//!
//! This module owns three things:
//!
//! * the text format `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`
//!   ([`ScramVerifier::parse`] and `Display`);
//! * computing a verifier from a password ourselves ([`ScramVerifier::compute`],
//!   [`ScramVerifier::generate`]), so a clear-text password never reaches the
//!   server, its logs or `pg_stat_statements`;
//! * checking a stored verifier against the desired password without
//!   re-salting ([`ScramVerifier::matches`]), so a no-op run changes nothing.
//!
//! A verifier is a secret (it is enough to impersonate the server to a client,
//! and to brute-force the password offline): `Debug` redacts it and no error
//! message quotes it. `Display` is the deliberate exception, because it *is*
//! the serialisation that has to go into `ALTER ROLE ... PASSWORD '...'`.

use std::borrow::Cow;
use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// PostgreSQL's `SCRAM_DEFAULT_ITERATIONS` (and the default of
/// `scram_iterations` on 16 and newer).
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// PostgreSQL's `SCRAM_DEFAULT_SALT_LEN`.
pub const SALT_LEN: usize = 16;

const KEY_LEN: usize = 32;
const PREFIX: &str = "SCRAM-SHA-256$";

/// PostgreSQL keeps the iteration count in a C `int`; larger values would not
/// round-trip through the server.
const MAX_ITERATIONS: u32 = i32::MAX as u32;

type HmacSha256 = Hmac<Sha256>;

/// A parsed or computed SCRAM-SHA-256 verifier.
///
/// `PartialEq` is an ordinary (not constant-time) comparison meant for tests
/// and bookkeeping; password checks go through [`ScramVerifier::matches`].
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; KEY_LEN],
    pub server_key: [u8; KEY_LEN],
}

/// Why a stored secret is not a well-formed SCRAM-SHA-256 verifier.
///
/// The messages never contain the input: it is a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScramParseError {
    #[error("not a SCRAM-SHA-256 verifier")]
    NotScram,
    #[error("malformed SCRAM-SHA-256 verifier")]
    Malformed,
    #[error("invalid iteration count in SCRAM-SHA-256 verifier")]
    Iterations,
    #[error("invalid salt in SCRAM-SHA-256 verifier")]
    Salt,
    #[error("invalid stored key in SCRAM-SHA-256 verifier")]
    StoredKey,
    #[error("invalid server key in SCRAM-SHA-256 verifier")]
    ServerKey,
}

impl ScramVerifier {
    /// Parses `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
    ///
    /// Strict: the iteration count is plain decimal digits without a sign or
    /// leading zero, between 1 and `i32::MAX`; salt and keys are standard
    /// base64 with canonical padding (as PostgreSQL writes them); the salt is
    /// not empty and both keys are exactly 32 bytes. Whatever PostgreSQL
    /// itself writes parses, and `parse(s)?.to_string() == s` for it.
    pub fn parse(s: &str) -> Result<Self, ScramParseError> {
        let rest = s.strip_prefix(PREFIX).ok_or(ScramParseError::NotScram)?;
        let (params, keys) = rest.split_once('$').ok_or(ScramParseError::Malformed)?;
        let (iterations, salt) = params.split_once(':').ok_or(ScramParseError::Malformed)?;
        let (stored_key, server_key) = keys.split_once(':').ok_or(ScramParseError::Malformed)?;

        let iterations = parse_iterations(iterations).ok_or(ScramParseError::Iterations)?;
        let salt = BASE64
            .decode(salt)
            .ok()
            .filter(|salt| !salt.is_empty())
            .ok_or(ScramParseError::Salt)?;
        let stored_key = decode_key(stored_key).ok_or(ScramParseError::StoredKey)?;
        let server_key = decode_key(server_key).ok_or(ScramParseError::ServerKey)?;
        Ok(Self {
            iterations,
            salt,
            stored_key,
            server_key,
        })
    }

    /// Computes the verifier of `password` for a given salt and iteration
    /// count, as PostgreSQL's `scram_build_secret` does: SASLprep first (see
    /// [`saslprep`]), then
    ///
    /// ```text
    /// SaltedPassword = Hi(prepared, salt, iterations)
    /// StoredKey      = SHA-256(HMAC(SaltedPassword, "Client Key"))
    /// ServerKey      = HMAC(SaltedPassword, "Server Key")
    /// ```
    ///
    /// Deterministic. PostgreSQL only accepts iteration counts from 1 to
    /// `i32::MAX`; a count outside that range is clamped into it (and the
    /// clamped value is the one recorded), so the result always parses back.
    pub fn compute(password: &str, salt: &[u8], iterations: u32) -> Self {
        let iterations = iterations.clamp(1, MAX_ITERATIONS);
        let prepared = saslprep(password);
        let salted = hi(&prepared, salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        Self {
            iterations,
            salt: salt.to_vec(),
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        }
    }

    /// Computes a verifier with a fresh random salt of [`SALT_LEN`] bytes from
    /// the operating system, as PostgreSQL does for `PASSWORD '<clear text>'`.
    pub fn generate(password: &str, iterations: u32) -> Result<Self, getrandom::Error> {
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt)?;
        Ok(Self::compute(password, &salt, iterations))
    }

    /// Whether `password` is the password this verifier was made from.
    ///
    /// Recomputes with the stored salt and iteration count (never a new salt,
    /// so an unchanged password is recognised as such) and compares both keys
    /// in constant time.
    pub fn matches(&self, password: &str) -> bool {
        let candidate = Self::compute(password, &self.salt, self.iterations);
        // `&`, not `&&`: both comparisons always run.
        ct_eq(&candidate.stored_key, &self.stored_key)
            & ct_eq(&candidate.server_key, &self.server_key)
    }
}

impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only the public parameters: the keys (and with them the salt that
        // makes them useful to an offline attack) stay out of logs.
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .field("salt_len", &self.salt.len())
            .field("stored_key", &"<redacted>")
            .field("server_key", &"<redacted>")
            .finish()
    }
}

/// The verifier in PostgreSQL's own text format. This is the secret itself:
/// use it only to build the `PASSWORD` literal sent to the server.
impl fmt::Display for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}{}:{}${}:{}",
            self.iterations,
            BASE64.encode(&self.salt),
            BASE64.encode(self.stored_key),
            BASE64.encode(self.server_key),
        )
    }
}

/// Plain decimal as PostgreSQL prints it with `%d`: no sign, no whitespace,
/// no leading zero.
fn parse_iterations(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.starts_with('0') {
        return None;
    }
    s.parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_ITERATIONS).contains(n))
}

fn decode_key(s: &str) -> Option<[u8; KEY_LEN]> {
    BASE64.decode(s).ok()?.try_into().ok()
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; KEY_LEN] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// `Hi()` of RFC 5802: PBKDF2-HMAC-SHA-256 with a single 32-byte block.
///
/// Performance note: this dominates a no-op run, which checks every tenant's
/// stored verifier (1000 verifiers × 4096 iterations). Keying HMAC hashes the
/// key into the inner and outer pad states; that work depends only on the
/// password, so it is done once here and the keyed state is cloned for each
/// iteration (a copy of two SHA-256 states). Each iteration then costs exactly
/// two SHA-256 compressions instead of four, roughly halving the time.
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; KEY_LEN] {
    let keyed = HmacSha256::new_from_slice(password).expect("HMAC accepts keys of any length");

    // U1 = HMAC(password, salt || INT(1))
    let mut mac = keyed.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u: [u8; KEY_LEN] = mac.finalize().into_bytes().into();
    let mut result = u;

    // Ui = HMAC(password, Ui-1); result = U1 ^ U2 ^ ... ^ Ui
    for _ in 1..iterations {
        let mut mac = keyed.clone();
        mac.update(&u);
        u = mac.finalize().into_bytes().into();
        for (r, x) in result.iter_mut().zip(u) {
            *r ^= x;
        }
    }
    result
}

/// Constant-time equality of two secrets of public length: the time taken
/// does not depend on where (or whether) they differ.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

/// The bytes PostgreSQL feeds to `Hi()` for `password`, with exactly libpq's
/// and the backend's `pg_saslprep` semantics, including its fallback:
///
/// * pure-ASCII input is used unchanged, with no processing at all (even
///   control characters, which SASLprep would prohibit, are kept);
/// * otherwise SASLprep (RFC 4013) is applied, and if it fails (prohibited
///   character, bidirectional rule) or maps everything to nothing, the raw
///   bytes are used instead: PostgreSQL never refuses a password.
///
/// PostgreSQL deviates from RFC 3454 in one respect, which is reproduced here
/// because the verifier must be PostgreSQL's: it checks prohibited characters
/// and the bidirectional rules on the *mapped input*, before NFKC, whereas
/// RFC 3454 (and the `stringprep` crate) check the normalised output. The two
/// disagree for a few strings, e.g. `"é\u{340}"` (U+0340 is prohibited but
/// normalises to the allowed U+0300: PostgreSQL uses the raw bytes) and
/// `"a\u{2135}"` (U+2135 ALEF SYMBOL is left-to-right but normalises to a
/// Hebrew letter: PostgreSQL normalises to `"aא"`).
///
/// Known residual difference: the bidirectional classes come from the
/// `stringprep` crate's current Unicode data, while PostgreSQL uses the
/// Unicode 3.2 tables of RFC 3454. They agree except for the rare characters
/// whose bidirectional class Unicode has changed since 3.2.
pub fn saslprep(password: &str) -> Cow<'_, [u8]> {
    if password.is_ascii() {
        return Cow::Borrowed(password.as_bytes());
    }
    match pg_saslprep(password) {
        Some(prepared) => Cow::Owned(prepared.into_bytes()),
        None => Cow::Borrowed(password.as_bytes()),
    }
}

/// PostgreSQL's `pg_saslprep` on non-ASCII input; `None` where it returns
/// `SASLPREP_PROHIBITED`.
fn pg_saslprep(input: &str) -> Option<String> {
    use stringprep::tables;

    // 1. Map: non-ASCII spaces (C.1.2) to SPACE, B.1 to nothing. C.1.2 is
    //    tested first, so U+200B (in both tables) becomes a space.
    let mapped: String = input
        .chars()
        .filter_map(|c| {
            if tables::non_ascii_space_character(c) {
                Some(' ')
            } else if tables::commonly_mapped_to_nothing(c) {
                None
            } else {
                Some(c)
            }
        })
        .collect();
    // "don't allow empty password"
    if mapped.is_empty() {
        return None;
    }

    // 3. Prohibit and 4. bidi, on the mapped input as PostgreSQL does.
    let prohibited = |c: char| {
        tables::non_ascii_space_character(c)
            || tables::ascii_control_character(c)
            || tables::non_ascii_control_character(c)
            || tables::private_use(c)
            || tables::non_character_code_point(c)
            || tables::surrogate_code(c)
            || tables::inappropriate_for_plain_text(c)
            || tables::inappropriate_for_canonical_representation(c)
            || tables::change_display_properties_or_deprecated(c)
            || tables::tagging_character(c)
            || tables::unassigned_code_point(c)
    };
    if mapped.chars().any(prohibited) || violates_bidi_rule(&mapped) {
        return None;
    }

    // 2. Normalise (NFKC).
    nfkc(&mapped)
}

/// RFC 3454 section 6, rules 2 and 3.
fn violates_bidi_rule(s: &str) -> bool {
    use stringprep::tables::{bidi_l, bidi_r_or_al};

    if !s.chars().any(bidi_r_or_al) {
        return false;
    }
    let first = s.chars().next().is_some_and(bidi_r_or_al);
    let last = s.chars().next_back().is_some_and(bidi_r_or_al);
    s.chars().any(bidi_l) || !first || !last
}

/// NFKC of a string that already passed PostgreSQL's checks.
///
/// The `stringprep` crate does not expose NFKC on its own (and
/// `unicode-normalization` is not a direct dependency). Its `saslprep`, given
/// an already mapped string, maps nothing further and returns the NFKC form,
/// unless its checks on the *normalised* text fail; after PostgreSQL's checks
/// passed, only the bidi rule can still fail there (e.g. `"\u{627}\u{FE70}"`
/// normalises to a string ending in a combining mark). For those, `x520prep`
/// without case folding is NFKC too on such input: its mapping is a no-op on
/// a string free of controls and non-ASCII spaces, and its only remaining
/// check, "must not start with a combining mark", is defused by a leading
/// SPACE, which never composes or reorders with what follows.
fn nfkc(mapped: &str) -> Option<String> {
    if let Ok(normalized) = stringprep::saslprep(mapped) {
        return Some(normalized.into_owned());
    }
    let spaced = format!(" {mapped}");
    let normalized = stringprep::x520prep(&spaced, false).ok()?;
    normalized.strip_prefix(' ').map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Verifiers made by PostgreSQL 15.18 itself (`password_encryption =
    /// 'scram-sha-256'`, `CREATE ROLE ... PASSWORD '...'`, read back from
    /// `pg_authid`), with the password each was made from.
    const PG15_VECTORS: &[(&str, &str)] = &[
        // ASCII
        (
            "secret",
            "SCRAM-SHA-256$4096:6zAlkLlE5Hx6Z4jIp5N6Zw==$x4X1nn79Xv1FkQkUNOjpoqltPZ78h87gZMwrbkV+2sY=:MYYcEBLQU8nevDKjBljXjfiMt10PlpTOPzQrZgaKsmE=",
        ),
        // quotes, backslash, dollar, colon, space
        (
            "it's \"q\"\\$: x",
            "SCRAM-SHA-256$4096:o4CcbT/metmpD9B7UHInFw==$b4m1g0USrNKGlXXLliFkPUEAhtnKvYTy1m7Zqh8TRNI=:3qox5AVmxUHczczSRBy9g53XcLl0/Fwd9Djwc2GKW3k=",
        ),
        // soft hyphen: mapped to nothing
        (
            "pass\u{AD}word",
            "SCRAM-SHA-256$4096:r8HqGF9gHwOrIhbL8xBE5w==$wl/RcRpgZlK0SubuoVzNBNNgah6vwx0i9XXdNq42Nbc=:yMeqj8jICakgUFxRIsoRihYsppAWh7+1RPlenbxZZWE=",
        ),
        // no-break space: mapped to SPACE
        (
            "pass\u{A0}word",
            "SCRAM-SHA-256$4096:gpzsMormu7vK7AXmjzHCXg==$8MeFngjmiBV/R+PUkA54t2coFPSBCgW7APBFRe7tbCI=:VaHsaLkORvwUN4FqCH9biyCOpD1KlgGjjvjUSZne9qM=",
        ),
        // full-width letters: NFKC to "pass"
        (
            "\u{FF50}\u{FF41}\u{FF53}\u{FF53}",
            "SCRAM-SHA-256$4096:/M6GJNBmy0qztqq8r+XBOg==$uZTTCZLSZgfYWwgIYOTxZh5zZoKL/IGll00kS6uWYLQ=:AdoSod57vmYrsYgVeV3G8hG9lxgXmX4ilh+Cz3zP9G0=",
        ),
        // non-ASCII with a prohibited control: SASLprep fails, raw bytes used
        (
            "\u{E9}\u{7}",
            "SCRAM-SHA-256$4096:Sb6C5PHEekkh6SEU0sslnw==$Lkt5FHjeABgFVYl0/M/jfhv0ZfGHwrwee/uHZ4Y+a9s=:rMI8O6eFb9uZcZySYWg8r9pCYaclmHEQKf9mHlTLKxY=",
        ),
        // pure ASCII with a control: no processing at all
        (
            "ab\u{7}",
            "SCRAM-SHA-256$4096:92ZnkCbE8fI0PLi7zmnz/Q==$4GxK1qejWG7ChgqRIcYc5l2Z8lYl+ddV2mixWOuLYO0=:qEVWh/8JmvpQx5GZcshDV2gj4oKV5K9x/OcICkbmI00=",
        ),
        // bidi checked before NFKC: PostgreSQL normalises to "aא"
        (
            "a\u{2135}",
            "SCRAM-SHA-256$4096:6a7W3fhB56h/zAV53a0UTQ==$1zZ+7ucZsxJHRZwT+WYua0Bl+ITXWSeuMzjTA1NmHI4=:Kq8Gty7ZlGulPddsvPBzHtXsNquUXMFsgzvdPSWgW5U=",
        ),
        // prohibited checked before NFKC: PostgreSQL uses the raw bytes
        (
            "\u{E9}\u{340}",
            "SCRAM-SHA-256$4096:WluRYPaBEN7gdZp92BLQEA==$qEbNkBr9du72FNWcd1/erQ7sif5supz/RlQCOtiOJLw=:sH9PhU0I2mfs7o/uOLN/ff/DAONiLK8pjbfB90P151s=",
        ),
        // NFKC output ends in a combining mark; PostgreSQL still normalises
        (
            "\u{627}\u{FE70}",
            "SCRAM-SHA-256$4096:1ftBNPgtPlYrRDDyam74qw==$Z5bnj7YFklgUmPHs+QqtNuk4D+6viU3kxUz2uinRUb4=:Q4cbaApRqOX084VjOVxbjDyD46EFrC4v9SIJab+U/z4=",
        ),
        // NFKC output starts with a combining mark and holds a Hebrew letter
        (
            "\u{301}\u{2135}",
            "SCRAM-SHA-256$4096:BxGQ9WpsIWsMSI/tvu1J9A==$aay8oAwUj4vH5soc7ByJLmi5pcht/RJfY4lJSrUJcM8=:8HbK4r/8mLKEYBVeQQu/x0ErF4M1ON8ttmY211TZlcc=",
        ),
    ];

    #[test]
    fn postgresql_made_verifiers_match_their_password_only() {
        for (i, (password, stored)) in PG15_VECTORS.iter().enumerate() {
            let v = ScramVerifier::parse(stored).expect("PostgreSQL's verifier parses");
            assert_eq!(v.iterations, 4096, "vector {i}");
            assert_eq!(v.salt.len(), SALT_LEN, "vector {i}");
            assert_eq!(&v.to_string(), stored, "vector {i} round-trips");
            assert!(v.matches(password), "vector {i} matches its password");
            assert!(!v.matches("wrong"), "vector {i} rejects a wrong password");
            // Same salt and count reproduce PostgreSQL's verifier bit for bit.
            assert_eq!(
                ScramVerifier::compute(password, &v.salt, v.iterations),
                v,
                "vector {i}"
            );
        }
    }

    #[test]
    fn saslprep_equivalents_match_postgresql_verifiers() {
        let by_password = |p: &str| {
            let stored = PG15_VECTORS.iter().find(|(q, _)| *q == p).unwrap().1;
            ScramVerifier::parse(stored).unwrap()
        };
        assert!(by_password("pass\u{AD}word").matches("password"));
        assert!(by_password("pass\u{A0}word").matches("pass word"));
        assert!(by_password("pass\u{A0}word").matches("pass\u{3000}word"));
        assert!(!by_password("pass\u{A0}word").matches("password"));
        assert!(by_password("\u{FF50}\u{FF41}\u{FF53}\u{FF53}").matches("pass"));
        assert!(by_password("a\u{2135}").matches("a\u{5D0}"));
        // raw bytes: the NFKC form is *not* what PostgreSQL hashed
        assert!(!by_password("\u{E9}\u{340}").matches("\u{E9}\u{300}"));
        assert!(by_password("\u{627}\u{FE70}").matches("\u{627} \u{64B}"));
        assert!(by_password("\u{301}\u{2135}").matches("\u{301}\u{5D0}"));
    }

    #[test]
    fn saslprep_follows_pg_saslprep() {
        let prep = |p: &str| saslprep(p).into_owned();
        // ASCII: untouched, controls included
        assert_eq!(prep("secret"), b"secret");
        assert_eq!(prep("ab\u{7}\t"), b"ab\x07\t");
        assert!(matches!(saslprep("secret"), Cow::Borrowed(_)));
        // mapping and normalisation
        assert_eq!(prep("pass\u{AD}word"), b"password");
        assert_eq!(prep("pass\u{A0}word"), b"pass word");
        assert_eq!(prep("a\u{200B}b\u{FEFF}"), b"a b");
        assert_eq!(prep("I\u{2168}"), b"IIX");
        assert_eq!(prep("e\u{301}"), "\u{E9}".as_bytes());
        // failures fall back to the raw bytes
        assert_eq!(prep("\u{E9}\u{7}"), "\u{E9}\u{7}".as_bytes());
        assert_eq!(prep("\u{AD}"), "\u{AD}".as_bytes());
        assert_eq!(prep("\u{AD}\u{FE0F}"), "\u{AD}\u{FE0F}".as_bytes());
        assert_eq!(prep("\u{5D0}a\u{5D1}"), "\u{5D0}a\u{5D1}".as_bytes());
        assert_eq!(prep("\u{5D0}1"), "\u{5D0}1".as_bytes());
        assert_eq!(prep("\u{E000}x"), "\u{E000}x".as_bytes());
        // PostgreSQL checks before NFKC
        assert_eq!(prep("\u{E9}\u{340}"), "\u{E9}\u{340}".as_bytes());
        assert_eq!(prep("a\u{2135}"), "a\u{5D0}".as_bytes());
        assert_eq!(prep("\u{627}\u{FE70}"), "\u{627} \u{64B}".as_bytes());
        // ... and its NFKC output may start with a combining mark
        assert_eq!(prep("\u{301}\u{2135}"), "\u{301}\u{5D0}".as_bytes());
        assert_eq!(prep("\u{301}\u{FE70}x"), "\u{301}\u{FE70}x".as_bytes());
    }

    #[test]
    fn rfc7677_test_vector() {
        // RFC 7677 section 3: user "user", password "pencil", 4096 iterations.
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = ScramVerifier::compute("pencil", &salt, 4096);
        let salted = hi(b"pencil", &salt, 4096);
        let client_key = hmac(&salted, b"Client Key");
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
                            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                            s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
                            c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let signature = hmac(&v.stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(
            BASE64.encode(proof),
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let server_signature = hmac(&v.server_key, auth_message.as_bytes());
        assert_eq!(
            BASE64.encode(server_signature),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn other_iteration_counts() {
        // PostgreSQL 15 cannot make these (`scram_iterations` is 16+), so this
        // module made them with fixed salts; PostgreSQL 15.18 stored them as
        // pre-hashed passwords and then let libpq log in through
        // scram-sha-256 authentication with exactly the passwords below (and
        // refused "wrong" / "pass"), so they are verifiers PostgreSQL accepts.
        let vectors = [
            (
                "secret",
                10000,
                "SCRAM-SHA-256$10000:cGd0ZW5hbnQtaXRlcnMtMQ==$MG7SmWNkNddHWXVnrssfc9uzVB/7VatJnTBYf9Bd/Yg=:tPeNY5h1u7geDmZCZtyNqxGatH0MIel81Jcc1SESZXc=",
            ),
            (
                "p\u{E4}ss\u{AD}",
                5000,
                "SCRAM-SHA-256$5000:cGd0ZW5hbnQtaXRlcnMtMg==$xAZ5XFe4NeM6AXOprAF7azcEKIuFQgnlPnekOqxLQ8Q=:pBGN4bIbqQ7ZaUT3rGfPD1vTiepf3kUzEbho9AlMH6g=",
            ),
        ];
        for (password, iterations, stored) in vectors {
            let v = ScramVerifier::parse(stored).unwrap();
            assert_eq!(v.iterations, iterations);
            assert_eq!(v.to_string(), stored);
            assert!(v.matches(password));
            assert!(!v.matches("wrong"));
            assert_eq!(ScramVerifier::compute(password, &v.salt, iterations), v);
        }
        let v = ScramVerifier::parse(vectors[1].2).unwrap();
        assert!(v.matches("p\u{E4}ss"));
        assert!(!v.matches("pass"));
        // the iteration count is part of the verifier
        let one = ScramVerifier::compute("secret", b"pgtenant-iters-1", 1);
        assert_eq!(one.iterations, 1);
        assert!(one.matches("secret"));
        assert_ne!(
            one.stored_key,
            ScramVerifier::parse(vectors[0].2).unwrap().stored_key
        );
    }

    #[test]
    fn compute_clamps_iterations_into_postgresql_range() {
        let zero = ScramVerifier::compute("x", b"salt", 0);
        assert_eq!(zero, ScramVerifier::compute("x", b"salt", 1));
        assert!(ScramVerifier::parse(&zero.to_string()).is_ok());
    }

    #[test]
    fn generate_uses_a_fresh_salt() {
        let a = ScramVerifier::generate("secret", 16).unwrap();
        let b = ScramVerifier::generate("secret", 16).unwrap();
        assert_eq!(a.salt.len(), SALT_LEN);
        assert_ne!(a.salt, b.salt);
        assert!(a.matches("secret") && b.matches("secret"));
        assert!(!a.matches("Secret"));
    }

    #[test]
    fn parse_is_strict() {
        let good = PG15_VECTORS[0].1;
        assert!(ScramVerifier::parse(good).is_ok());
        let (head, keys) = good.rsplit_once('$').unwrap();
        let (stored, server) = keys.split_once(':').unwrap();
        let salt = "6zAlkLlE5Hx6Z4jIp5N6Zw==";
        let bad: &[(&str, ScramParseError)] = &[
            ("", ScramParseError::NotScram),
            (
                "md5d4e8e0b5ee4f0d4b4f1e2d41a8c2a6e0",
                ScramParseError::NotScram,
            ),
            ("scram-sha-256$4096:", ScramParseError::NotScram),
            ("SCRAM-SHA-256$", ScramParseError::Malformed),
            ("SCRAM-SHA-256$4096:abc", ScramParseError::Malformed),
            ("SCRAM-SHA-256$4096$a:b", ScramParseError::Malformed),
        ];
        for (input, want) in bad {
            assert_eq!(ScramVerifier::parse(input), Err(*want), "{input:?}");
        }
        for iterations in [
            "0",
            "-1",
            "+4096",
            "04096",
            " 4096",
            "4096 ",
            "2147483648",
            "x",
            "",
        ] {
            let input = format!("SCRAM-SHA-256${iterations}:{salt}${stored}:{server}");
            assert_eq!(
                ScramVerifier::parse(&input),
                Err(ScramParseError::Iterations),
                "{input:?}"
            );
        }
        let max = format!("SCRAM-SHA-256$2147483647:{salt}${stored}:{server}");
        assert_eq!(ScramVerifier::parse(&max).unwrap().iterations, 2147483647);
        for bad_salt in [
            "",
            "6zAlkLlE5Hx6Z4jIp5N6Zw",
            "6zAlkLlE5Hx6Z4jIp5N6Zw=",
            "6zAlkLlE5Hx6Z4jIp5N6Zx==",
            "6zAl-LlE5Hx6Z4jIp5N6Zw==",
        ] {
            let input = format!("SCRAM-SHA-256$4096:{bad_salt}${stored}:{server}");
            assert_eq!(
                ScramVerifier::parse(&input),
                Err(ScramParseError::Salt),
                "{input:?}"
            );
        }
        let short = BASE64.encode([0u8; 31]);
        let long = BASE64.encode([0u8; 33]);
        let unpadded = stored.trim_end_matches('=');
        for bad_key in [short.as_str(), long.as_str(), unpadded, "", "!"] {
            let input = format!("{head}${bad_key}:{server}");
            assert_eq!(
                ScramVerifier::parse(&input),
                Err(ScramParseError::StoredKey),
                "{input:?}"
            );
            let input = format!("{head}${stored}:{bad_key}");
            assert_eq!(
                ScramVerifier::parse(&input),
                Err(ScramParseError::ServerKey),
                "{input:?}"
            );
        }
        // trailing garbage lands in the server key
        let input = format!("{good}$");
        assert_eq!(
            ScramVerifier::parse(&input),
            Err(ScramParseError::ServerKey)
        );
        let input = format!("{good}:x");
        assert_eq!(
            ScramVerifier::parse(&input),
            Err(ScramParseError::ServerKey)
        );
    }

    #[test]
    fn nothing_secret_is_printed_by_debug_or_errors() {
        let stored = PG15_VECTORS[0].1;
        let v = ScramVerifier::parse(stored).unwrap();
        let debug = format!("{v:?} {v:#?}");
        let (_, keys) = stored.rsplit_once('$').unwrap();
        for part in keys.split(':').chain(["6zAlkLlE5Hx6Z4jIp5N6Zw=="]) {
            assert!(!debug.contains(part), "{debug}");
        }
        assert!(!debug.contains(&format!("{:?}", v.stored_key)));
        assert!(debug.contains("redacted"));

        let broken = stored.replace("sY=", "sY");
        let err = ScramVerifier::parse(&broken).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("x4X1nn79"), "{shown}");
        assert!(!shown.contains("MYYcEBLQ"), "{shown}");
    }

    #[test]
    fn ct_eq_compares_whole_slices() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }

    fn verifier() -> impl Strategy<Value = ScramVerifier> {
        (
            1..=MAX_ITERATIONS,
            proptest::collection::vec(any::<u8>(), 1..40),
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
        )
            .prop_map(|(iterations, salt, stored_key, server_key)| ScramVerifier {
                iterations,
                salt,
                stored_key,
                server_key,
            })
    }

    proptest! {
        // Each case of the last two costs a few Hi() computations.
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn parse_inverts_display(v in verifier()) {
            prop_assert_eq!(ScramVerifier::parse(&v.to_string()), Ok(v));
        }

        #[test]
        fn computed_verifier_matches_its_password(
            password in any::<String>(),
            salt in proptest::collection::vec(any::<u8>(), 1..32),
            iterations in 1u32..64,
        ) {
            let v = ScramVerifier::compute(&password, &salt, iterations);
            prop_assert!(v.matches(&password));
            prop_assert_eq!(ScramVerifier::parse(&v.to_string()), Ok(v));
        }

        #[test]
        fn computed_verifier_rejects_other_passwords(
            password in any::<String>(),
            other in any::<String>(),
            salt in proptest::collection::vec(any::<u8>(), 1..32),
            iterations in 1u32..64,
        ) {
            prop_assume!(saslprep(&password) != saslprep(&other));
            let v = ScramVerifier::compute(&password, &salt, iterations);
            prop_assert!(!v.matches(&other));
        }
    }

    /// `cargo test --release --lib scram::tests::bench_1000_checks -- --ignored --nocapture`
    #[test]
    #[ignore = "timing measurement, run explicitly in release mode"]
    fn bench_1000_checks() {
        let verifiers: Vec<ScramVerifier> = (0..1000u32)
            .map(|i| {
                ScramVerifier::compute(
                    &format!("password-{i}"),
                    &i.to_be_bytes(),
                    DEFAULT_ITERATIONS,
                )
            })
            .collect();
        let start = std::time::Instant::now();
        let matched = verifiers
            .iter()
            .enumerate()
            .filter(|(i, v)| v.matches(&format!("password-{i}")))
            .count();
        let elapsed = start.elapsed();
        assert_eq!(matched, 1000);
        eprintln!("1000 matches() at {DEFAULT_ITERATIONS} iterations: {elapsed:?}");
    }
}
