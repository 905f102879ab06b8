//! Connection details for applications: what `pgtenant credentials` prints
//! and what `--bindings-dir` writes, in every format an application reads.
//!
//! This module owns the [`Binding`] (one login role, its password, one
//! database, and the address applications use) and its encodings: a libpq
//! URI, a JDBC URL, a pgpass line, shell/Compose `env` lines, JSON, and a
//! Kubernetes `Secret` of type `servicebinding.io/postgresql`. All of them
//! are pure functions of the input: no server is needed.
//!
//! The quoting is hand-written because each target has its own rules and no
//! crate implements the intersection of two of them (a line that a POSIX
//! shell and Docker Compose's `env_file` parser both read as the same value):
//!
//! * URI parts are percent-encoded byte by byte outside RFC 3986's
//!   unreserved set, which libpq and PgJDBC decode back exactly (and which
//!   leaves nothing for a shell, YAML or `+`-as-space decoders to misread);
//! * `env` values are single-quoted when that means the same to both readers,
//!   else double-quoted with `\\`, `\"` and `\$` escapes, else refused (see
//!   [`env_quote`]).
//!
//! Passwords leave pgtenant only through these functions, and only on the
//! paths whose purpose is to hand them out (SECURITY.md).

use std::fmt::Write as _;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Serialize;

use crate::input::conninfo::SslMode;
use crate::input::desired::{Desired, Password};

/// The `provider` entry of a binding.
pub const PROVIDER: &str = "pgtenant";
/// The `type` entry of a binding (servicebinding.io's well-known value).
pub const TYPE: &str = "postgresql";
/// The default name of the Kubernetes Secret, `{name}` being the application.
pub const DEFAULT_SECRET_NAME: &str = "{name}-postgres";

/// Where applications reach the server: rarely the address pgtenant itself
/// uses (`localhost` in a sidecar).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// A host name, an IP address, or the directory of a Unix socket
    /// (starting with `/`).
    pub host: String,
    pub port: u16,
    /// Written only when given: libpq's default is `prefer`.
    pub sslmode: Option<SslMode>,
}

/// What one application needs to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The application: the name of its directory and of its Secret.
    pub name: String,
    pub username: String,
    pub password: Password,
    pub database: String,
    pub address: Address,
}

/// Why credentials cannot be produced. Messages name the application, never
/// a password.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{name:?} is not a user of the input")]
    UnknownName { name: String },
    #[error(
        "-o env prints the variables of one application, and the input has {count}; \
         name one: pgtenant credentials -o env NAME"
    )]
    EnvNeedsOneName { count: usize },
    #[error(
        "the password of {name:?} holds a backtick together with a single quote or a \
         trailing backslash: no quoting means the same to a shell and to Compose's \
         env_file; use -o json or -o uri"
    )]
    EnvUnquotable { name: String },
    #[error(
        "{secret:?} (for {name:?}) is not a valid Kubernetes object name: lower-case \
         letters, digits, '-' and '.', at most 253; choose one with --secret-name"
    )]
    InvalidSecretName { name: String, secret: String },
    #[error("--namespace {0:?} is not a valid Kubernetes namespace: lower-case letters, digits and '-', at most 63")]
    InvalidNamespace(String),
}

/// One binding per tenant of the input, in input order; with `names`, only
/// those (each must exist), in the order given.
pub fn bindings(
    desired: &Desired,
    address: &Address,
    names: &[String],
) -> Result<Vec<Binding>, CredentialsError> {
    let all: Vec<Binding> = desired
        .tenants
        .iter()
        .map(|t| Binding {
            name: t.role.clone(),
            username: t.role.clone(),
            password: t.password.clone(),
            database: t.database.clone(),
            address: address.clone(),
        })
        .collect();
    if names.is_empty() {
        return Ok(all);
    }
    names
        .iter()
        .map(|n| {
            all.iter()
                .find(|b| &b.name == n)
                .cloned()
                .ok_or_else(|| CredentialsError::UnknownName { name: n.clone() })
        })
        .collect()
}

/// Percent-encodes every byte outside RFC 3986's unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

impl Address {
    /// The authority's host: an IPv6 address in brackets, a socket directory
    /// percent-encoded (libpq reads `postgresql://%2Fvar%2Frun%2Fpostgresql/db`).
    fn uri_host(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('/') {
            format!("[{}]", self.host)
        } else {
            percent_encode(&self.host)
        }
    }

    fn is_socket(&self) -> bool {
        self.host.starts_with('/')
    }
}

impl Binding {
    /// `postgresql://user:password@host:port/database[?sslmode=...]`.
    pub fn uri(&self) -> String {
        let mut uri = format!(
            "postgresql://{}:{}@{}:{}/{}",
            percent_encode(&self.username),
            percent_encode(self.password.expose()),
            self.address.uri_host(),
            self.address.port,
            percent_encode(&self.database),
        );
        if let Some(mode) = self.address.sslmode {
            let _ = write!(uri, "?sslmode={mode}");
        }
        uri
    }

    /// PgJDBC's URL, credentials as parameters (which PgJDBC URL-decodes).
    /// `None` for a Unix socket, which JDBC cannot reach.
    pub fn jdbc_uri(&self) -> Option<String> {
        if self.address.is_socket() {
            return None;
        }
        let mut uri = format!(
            "jdbc:postgresql://{}:{}/{}?user={}&password={}",
            self.address.uri_host(),
            self.address.port,
            percent_encode(&self.database),
            percent_encode(&self.username),
            percent_encode(self.password.expose()),
        );
        if let Some(mode) = self.address.sslmode {
            let _ = write!(uri, "&sslmode={mode}");
        }
        Some(uri)
    }

    /// One line of a libpq password file (`host:port:database:user:password`,
    /// `:` and `\` escaped), with its newline.
    pub fn pgpass(&self) -> String {
        let esc = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
        format!(
            "{}:{}:{}:{}:{}\n",
            esc(&self.address.host),
            self.address.port,
            esc(&self.database),
            esc(&self.username),
            esc(self.password.expose())
        )
    }

    /// servicebinding.io's entries: the well-known `type`, `provider`,
    /// `host`, `port`, `database`, `username`, `password`, `uri`, and
    /// `jdbc-uri`, `pgpass`, `sslmode` (read by Spring Cloud Bindings) when
    /// they apply. Sorted by key.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        let mut e = vec![
            ("database", self.database.clone()),
            ("host", self.address.host.clone()),
        ];
        if let Some(jdbc) = self.jdbc_uri() {
            e.push(("jdbc-uri", jdbc));
        }
        e.extend([
            ("password", self.password.expose().to_owned()),
            ("pgpass", self.pgpass()),
            ("port", self.address.port.to_string()),
            ("provider", PROVIDER.to_owned()),
        ]);
        if let Some(mode) = self.address.sslmode {
            e.push(("sslmode", mode.to_string()));
        }
        e.extend([
            ("type", TYPE.to_owned()),
            ("uri", self.uri()),
            ("username", self.username.clone()),
        ]);
        e
    }
}

/// `-o uri`: one URI per line.
pub fn render_uri(bindings: &[Binding]) -> String {
    bindings.iter().map(|b| b.uri() + "\n").collect()
}

/// Quotes `value` so that a POSIX shell (`. ./app.env`, `set -a`) and
/// Docker Compose's `env_file` (compose-go's dotenv parser) both read it
/// back exactly; `None` when no quoting does.
///
/// * Single quotes: literal for the shell; literal for Compose too, except
///   that Compose reads `\'` as a quote and so a trailing odd run of
///   backslashes would escape the closing quote. Used when the value has no
///   `'` and does not end in an odd number of backslashes.
/// * Double quotes, escaping `\`, `"` and `$` with a backslash: both read
///   these three escapes the same way (Compose turns `\$` into `$$`, its own
///   escape for `$`, and `\\` into `\`; every other backslash sequence would
///   differ, so none is written). A backtick cannot be written: the shell
///   needs `` \` `` and Compose keeps the backslash. Used for the rest,
///   when there is no backtick.
pub fn env_quote(value: &str) -> Option<String> {
    let trailing_backslashes = value.bytes().rev().take_while(|&b| b == b'\\').count();
    if !value.contains('\'') && trailing_backslashes % 2 == 0 {
        return Some(format!("'{value}'"));
    }
    if value.contains('`') {
        return None;
    }
    let mut out = String::with_capacity(value.len() + 8);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Some(out)
}

/// `-o env`: the libpq variables and `DATABASE_URL` of one application.
pub fn render_env(b: &Binding) -> Result<String, CredentialsError> {
    let mut vars = vec![
        ("PGHOST", b.address.host.clone()),
        ("PGPORT", b.address.port.to_string()),
        ("PGDATABASE", b.database.clone()),
        ("PGUSER", b.username.clone()),
        ("PGPASSWORD", b.password.expose().to_owned()),
    ];
    if let Some(mode) = b.address.sslmode {
        vars.push(("PGSSLMODE", mode.to_string()));
    }
    vars.push(("DATABASE_URL", b.uri()));
    let mut out = String::new();
    for (key, value) in vars {
        let quoted = env_quote(&value).ok_or_else(|| CredentialsError::EnvUnquotable {
            name: b.name.clone(),
        })?;
        let _ = writeln!(out, "{key}={quoted}");
    }
    Ok(out)
}

#[derive(Serialize)]
struct JsonDoc<'a> {
    format_version: u32,
    credentials: Vec<JsonBinding<'a>>,
}

#[derive(Serialize)]
struct JsonBinding<'a> {
    name: &'a str,
    host: &'a str,
    port: u16,
    database: &'a str,
    username: &'a str,
    password: &'a str,
    sslmode: Option<&'static str>,
    uri: String,
    jdbc_uri: Option<String>,
}

/// `-o json`: `{"format_version": 1, "credentials": [...]}`.
pub fn render_json(bindings: &[Binding]) -> String {
    let doc = JsonDoc {
        format_version: 1,
        credentials: bindings
            .iter()
            .map(|b| JsonBinding {
                name: &b.name,
                host: &b.address.host,
                port: b.address.port,
                database: &b.database,
                username: &b.username,
                password: b.password.expose(),
                sslmode: b.address.sslmode.map(SslMode::as_str),
                uri: b.uri(),
                jdbc_uri: b.jdbc_uri(),
            })
            .collect(),
    };
    let mut s = serde_json::to_string_pretty(&doc).expect("credentials serialize");
    s.push('\n');
    s
}

/// Kubernetes' DNS-1123 subdomain (object names).
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Kubernetes' DNS-1123 label (namespaces).
fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && !s.contains('.') && is_dns_subdomain(s)
}

/// `-o kubernetes`: one `Secret` per application, as a YAML stream. Every
/// value is base64 under `data`, so no password meets YAML's quoting; names
/// are written as JSON strings, which YAML reads as they are.
pub fn render_kubernetes(
    bindings: &[Binding],
    secret_name: &str,
    namespace: Option<&str>,
) -> Result<String, CredentialsError> {
    if let Some(ns) = namespace {
        if !is_dns_label(ns) {
            return Err(CredentialsError::InvalidNamespace(ns.to_owned()));
        }
    }
    let q = |s: &str| serde_json::to_string(s).expect("a string serializes");
    let mut out = String::new();
    for b in bindings {
        let name = secret_name.replace("{name}", &b.name);
        if !is_dns_subdomain(&name) {
            return Err(CredentialsError::InvalidSecretName {
                name: b.name.clone(),
                secret: name,
            });
        }
        out.push_str("---\napiVersion: v1\nkind: Secret\nmetadata:\n");
        let _ = writeln!(out, "  name: {}", q(&name));
        if let Some(ns) = namespace {
            let _ = writeln!(out, "  namespace: {}", q(ns));
        }
        out.push_str("  labels:\n    app.kubernetes.io/managed-by: pgtenant\n");
        let _ = writeln!(out, "type: {}", q("servicebinding.io/postgresql"));
        out.push_str("data:\n");
        for (key, value) in b.entries() {
            let _ = writeln!(out, "  {key}: {}", BASE64.encode(value));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn binding(user: &str, password: &str, host: &str, sslmode: Option<SslMode>) -> Binding {
        Binding {
            name: user.to_owned(),
            username: user.to_owned(),
            password: Password::new(password),
            database: format!("{user}_db"),
            address: Address {
                host: host.to_owned(),
                port: 5432,
                sslmode,
            },
        }
    }

    fn percent_decode(s: &str) -> Vec<u8> {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        out
    }

    #[test]
    fn uri_encodes_every_reserved_character() {
        let b = binding(
            "a@b",
            "p@ss/w:rd?#[]%+ é",
            "db.example",
            Some(SslMode::Require),
        );
        assert_eq!(
            b.uri(),
            "postgresql://a%40b:p%40ss%2Fw%3Ard%3F%23%5B%5D%25%2B%20%C3%A9@db.example:5432/a%40b_db?sslmode=require"
        );
        assert_eq!(
            binding("u", "p", "::1", None).uri(),
            "postgresql://u:p@[::1]:5432/u_db"
        );
        assert_eq!(
            binding("u", "p", "/var/run/postgresql", None).uri(),
            "postgresql://u:p@%2Fvar%2Frun%2Fpostgresql:5432/u_db"
        );
        assert_eq!(binding("u", "p", "/tmp", None).jdbc_uri(), None);
        assert_eq!(
            binding("u", "a+b&c=d", "h", Some(SslMode::VerifyFull))
                .jdbc_uri()
                .unwrap(),
            "jdbc:postgresql://h:5432/u_db?user=u&password=a%2Bb%26c%3Dd&sslmode=verify-full"
        );
    }

    #[test]
    fn pgpass_escapes_colon_and_backslash() {
        assert_eq!(
            binding("u:1", "a:b\\c", "h", None).pgpass(),
            "h:5432:u\\:1_db:u\\:1:a\\:b\\\\c\n"
        );
    }

    #[test]
    fn env_quoting_choices() {
        assert_eq!(env_quote("plain $HOME `id`").unwrap(), "'plain $HOME `id`'");
        assert_eq!(env_quote("it's").unwrap(), "\"it's\"");
        assert_eq!(env_quote("a\\\\").unwrap(), "'a\\\\'");
        assert_eq!(env_quote("a\\").unwrap(), "\"a\\\\\"");
        assert_eq!(env_quote("$x\"\\").unwrap(), "\"\\$x\\\"\\\\\"");
        assert_eq!(env_quote("'$\"\\n").unwrap(), "\"'\\$\\\"\\\\n\"");
        assert_eq!(env_quote("'`"), None);
        assert_eq!(env_quote("`\\"), None);
    }

    #[test]
    fn env_needs_quoting_for_every_value() {
        let text = render_env(&binding("quote", "it's", "db", Some(SslMode::Require))).unwrap();
        assert_eq!(
            text,
            "PGHOST='db'\nPGPORT='5432'\nPGDATABASE='quote_db'\nPGUSER='quote'\n\
             PGPASSWORD=\"it's\"\nPGSSLMODE='require'\n\
             DATABASE_URL='postgresql://quote:it%27s@db:5432/quote_db?sslmode=require'\n"
        );
        let err = render_env(&binding("x", "'`", "db", None)).unwrap_err();
        assert!(!err.to_string().contains("'`"), "{err}");
    }

    #[test]
    fn kubernetes_secret_shape() {
        let b = binding("keycloak", "s3cret", "postgres.tyr.svc", None);
        let yaml = render_kubernetes(&[b], DEFAULT_SECRET_NAME, Some("tyr")).unwrap();
        assert!(yaml.starts_with(
            "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: \"keycloak-postgres\"\n  namespace: \"tyr\"\n"
        ));
        assert!(yaml.contains("type: \"servicebinding.io/postgresql\"\ndata:\n"));
        assert!(yaml.contains(&format!("  password: {}\n", BASE64.encode("s3cret"))));
        assert!(yaml.contains(&format!("  type: {}\n", BASE64.encode("postgresql"))));
        assert!(!yaml.contains("s3cret"));
        for key in [
            "type", "provider", "host", "port", "database", "username", "password", "uri",
            "jdbc-uri", "pgpass",
        ] {
            assert!(yaml.contains(&format!("\n  {key}: ")), "{key} missing");
        }
        let bad = binding("Upper_Case", "pw", "h", None);
        assert!(matches!(
            render_kubernetes(&[bad], DEFAULT_SECRET_NAME, None),
            Err(CredentialsError::InvalidSecretName { .. })
        ));
        assert!(matches!(
            render_kubernetes(&[], DEFAULT_SECRET_NAME, Some("a.b")),
            Err(CredentialsError::InvalidNamespace(_))
        ));
    }

    /// Reads a value back as a POSIX shell does, for the two forms
    /// [`env_quote`] writes.
    fn shell_unquote(q: &str) -> String {
        if let Some(inner) = q.strip_prefix('\'') {
            return inner.strip_suffix('\'').unwrap().to_owned();
        }
        let inner = q.strip_prefix('"').unwrap().strip_suffix('"').unwrap();
        let mut out = String::new();
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\\' && matches!(chars.peek(), Some('\\' | '"' | '$' | '`' | '\n')) {
                out.push(chars.next().unwrap());
            } else {
                out.push(c);
            }
        }
        out
    }

    proptest! {
        #[test]
        fn uri_parts_round_trip(s in "\\PC*") {
            let decoded = percent_decode(&percent_encode(&s));
            prop_assert_eq!(decoded, s.as_bytes().to_vec());
            prop_assert!(percent_encode(&s)
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
        }

        #[test]
        fn env_quote_round_trips_through_a_shell_reading(s in "[ -~\t\u{e9}]*") {
            if let Some(q) = env_quote(&s) {
                prop_assert_eq!(shell_unquote(&q), s);
            } else {
                prop_assert!(s.contains('`'));
            }
        }
    }
}
