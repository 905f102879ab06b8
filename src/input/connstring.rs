//! libpq connection strings given as the database name (`-d`, `PGDATABASE`):
//! `key=value` conninfo strings and `postgresql://` URIs, parsed with
//! libpq's rules (`conninfo_parse` and `conninfo_uri_parse` in libpq's
//! `fe-connect.c`) into the settings they name.
//!
//! Hand-written because tokio-postgres' own parser differs from libpq where
//! it matters here: it accepts keys libpq refuses, knows no `service` or
//! `passfile`, and would hand pgtenant a `Config` it cannot read the
//! settings back from to apply its precedence and validation. Values are
//! kept as text; [`crate::input::conninfo`] validates them as it does flags
//! and variables, naming the string as their origin. A password in a
//! string is never part of an error message.

use std::fmt;

/// What a connection string sets. `None`: the string is silent.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnString {
    pub host: Option<String>,
    pub port: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub dbname: Option<String>,
    pub passfile: Option<String>,
    pub connect_timeout: Option<String>,
    pub application_name: Option<String>,
    pub sslmode: Option<String>,
    pub sslrootcert: Option<String>,
}

impl fmt::Debug for ConnString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnString")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("dbname", &self.dbname)
            .field("passfile", &self.passfile)
            .field("connect_timeout", &self.connect_timeout)
            .field("application_name", &self.application_name)
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .finish()
    }
}

/// Why a connection string was refused. Never contains a value (a string
/// may hold a password); keys are safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnStringError {
    #[error("missing \"=\" after {0:?}")]
    MissingEquals(String),
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    #[error("invalid connection option {0:?}")]
    UnknownOption(String),
    #[error("connection option {0:?} is not supported by pgtenant")]
    UnsupportedOption(String),
    #[error("invalid percent-encoded token")]
    BadPercentEncoding,
    #[error("invalid URI query parameter")]
    BadQueryParameter,
    #[error("unterminated IPv6 host address (missing \"]\")")]
    UnterminatedIpv6,
    #[error("unexpected character after the host address")]
    BadHostEnd,
}

/// Whether libpq would expand `value`, given as a database name, as a
/// connection string: a URI by its prefix, or a conninfo string by an `=`.
pub fn is_conn_string(value: &str) -> bool {
    uri_rest(value).is_some() || value.contains('=')
}

fn uri_rest(value: &str) -> Option<&str> {
    value
        .strip_prefix("postgresql://")
        .or_else(|| value.strip_prefix("postgres://"))
}

/// Parses a conninfo string or URI.
pub fn parse(value: &str) -> Result<ConnString, ConnStringError> {
    let pairs = match uri_rest(value) {
        Some(rest) => parse_uri(rest)?,
        None => parse_conninfo(value)?,
    };
    let mut out = ConnString::default();
    for (key, value) in pairs {
        // libpq: an empty value is as good as unset for these settings.
        let value = Some(value).filter(|v| !v.is_empty());
        let slot = match key.as_str() {
            "host" => &mut out.host,
            "port" => &mut out.port,
            "user" => &mut out.user,
            "password" => &mut out.password,
            "dbname" => &mut out.dbname,
            "passfile" => &mut out.passfile,
            "connect_timeout" => &mut out.connect_timeout,
            "application_name" => &mut out.application_name,
            "sslmode" => &mut out.sslmode,
            "sslrootcert" => &mut out.sslrootcert,
            // A default for application_name; pgtenant has its own.
            "fallback_application_name" => continue,
            k if LIBPQ_OPTIONS.contains(&k) => {
                return Err(ConnStringError::UnsupportedOption(key));
            }
            _ => return Err(ConnStringError::UnknownOption(key)),
        };
        // Later settings win, as in libpq.
        *slot = value;
    }
    Ok(out)
}

/// The other options libpq 18 knows: refused by name, so a typo and an
/// unsupported option get different messages.
const LIBPQ_OPTIONS: &[&str] = &[
    "hostaddr",
    "service",
    "channel_binding",
    "options",
    "client_encoding",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslnegotiation",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslkeylogfile",
    "sslpassword",
    "sslcertmode",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "require_auth",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "min_protocol_version",
    "max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "target_session_attrs",
    "load_balance_hosts",
    "scram_client_key",
    "scram_server_key",
    "oauth_issuer",
    "oauth_client_id",
    "oauth_client_secret",
    "oauth_scope",
];

/// `key = value ...`: whitespace around `=` allowed; a value is either
/// single-quoted (`\'` and `\\` escape) or runs to the next whitespace
/// (backslash escapes the next character).
fn parse_conninfo(s: &str) -> Result<Vec<(String, String)>, ConnStringError> {
    let mut pairs = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(ConnStringError::MissingEquals(key));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(ConnStringError::UnterminatedQuote),
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(ConnStringError::UnterminatedQuote),
                    },
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(escaped) = chars.next() {
                        value.push(escaped);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// `[user[:password]@][host][:port][/dbname][?key=value&...]`, after the
/// scheme; every part percent-decoded.
fn parse_uri(rest: &str) -> Result<Vec<(String, String)>, ConnStringError> {
    let mut pairs = Vec::new();
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match main.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (main, None),
    };
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            pairs.push(("user".to_owned(), decode(user)?));
            if let Some(p) = password {
                pairs.push(("password".to_owned(), decode(p)?));
            }
            hostport
        }
        None => authority,
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or(ConnStringError::UnterminatedIpv6)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(ConnStringError::BadHostEnd)?),
        };
        (host.to_owned(), port)
    } else {
        match hostport.rsplit_once(':') {
            // A comma means a host list, refused later with its own message.
            Some((h, p)) if !p.contains(',') => (decode(h)?, Some(p)),
            _ => (decode(hostport)?, None),
        }
    };
    pairs.push(("host".to_owned(), host));
    if let Some(p) = port {
        pairs.push(("port".to_owned(), decode(p)?));
    }
    if let Some(db) = path {
        pairs.push(("dbname".to_owned(), decode(db)?));
    }
    for param in query.into_iter().flat_map(|q| q.split('&')) {
        if param.is_empty() {
            continue;
        }
        let (k, v) = param
            .split_once('=')
            .ok_or(ConnStringError::BadQueryParameter)?;
        let (k, v) = (decode(k)?, decode(v)?);
        // libpq's JDBC-compatible spelling.
        if k == "ssl" && v == "true" {
            pairs.push(("sslmode".to_owned(), "require".to_owned()));
        } else {
            pairs.push((k, v));
        }
    }
    Ok(pairs)
}

/// Percent-decoding; `%00` is refused as libpq does.
fn decode(s: &str) -> Result<String, ConnStringError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .filter(|&b| b != 0)
                .ok_or(ConnStringError::BadPercentEncoding)?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ConnStringError::BadPercentEncoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_connection_strings_as_libpq_does() {
        assert!(is_conn_string("host=db dbname=app"));
        assert!(is_conn_string("postgresql://db/app"));
        assert!(is_conn_string("postgres://db"));
        assert!(!is_conn_string("app_db"));
        assert!(!is_conn_string("postgresql:/x"));
    }

    #[test]
    fn parses_conninfo_with_quotes_and_escapes() {
        let c = parse(
            "host = db.example  port=6432 dbname='my app' user=ad\\ min \
             password='it\\'s \\\\ secret' sslmode=verify-full application_name=",
        )
        .unwrap();
        assert_eq!(c.host.as_deref(), Some("db.example"));
        assert_eq!(c.port.as_deref(), Some("6432"));
        assert_eq!(c.dbname.as_deref(), Some("my app"));
        assert_eq!(c.user.as_deref(), Some("ad min"));
        assert_eq!(c.password.as_deref(), Some("it's \\ secret"));
        assert_eq!(c.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(c.application_name, None);
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn refuses_bad_conninfo_without_echoing_values() {
        assert_eq!(
            parse("host=db password"),
            Err(ConnStringError::MissingEquals("password".into()))
        );
        assert_eq!(
            parse("password='open"),
            Err(ConnStringError::UnterminatedQuote)
        );
        assert_eq!(
            parse("hots=db"),
            Err(ConnStringError::UnknownOption("hots".into()))
        );
        assert_eq!(
            parse("sslcert=/x"),
            Err(ConnStringError::UnsupportedOption("sslcert".into()))
        );
    }

    #[test]
    fn parses_uris() {
        let c = parse("postgresql://ad%40min:p%3Ass@db.example:6432/my%20db?sslmode=require&connect_timeout=5")
            .unwrap();
        assert_eq!(c.user.as_deref(), Some("ad@min"));
        assert_eq!(c.password.as_deref(), Some("p:ss"));
        assert_eq!(c.host.as_deref(), Some("db.example"));
        assert_eq!(c.port.as_deref(), Some("6432"));
        assert_eq!(c.dbname.as_deref(), Some("my db"));
        assert_eq!(c.sslmode.as_deref(), Some("require"));
        assert_eq!(c.connect_timeout.as_deref(), Some("5"));

        let c = parse("postgres://[::1]:5433").unwrap();
        assert_eq!(
            (c.host.as_deref(), c.port.as_deref()),
            (Some("::1"), Some("5433"))
        );
        let c = parse("postgresql://%2Fvar%2Frun%2Fpostgresql/app").unwrap();
        assert_eq!(c.host.as_deref(), Some("/var/run/postgresql"));
        let c = parse("postgresql:///app?host=/tmp&ssl=true").unwrap();
        assert_eq!(c.host.as_deref(), Some("/tmp"));
        assert_eq!(c.sslmode.as_deref(), Some("require"));
        assert_eq!(c.dbname.as_deref(), Some("app"));
        let c = parse("postgresql://").unwrap();
        assert_eq!(c, ConnString::default());
        assert_eq!(
            parse("postgresql://db/app?nope=1"),
            Err(ConnStringError::UnknownOption("nope".into()))
        );
        assert_eq!(
            parse("postgresql://db/%zz"),
            Err(ConnStringError::BadPercentEncoding)
        );
        assert_eq!(
            parse("postgresql://[::1/app"),
            Err(ConnStringError::UnterminatedIpv6)
        );
    }

    proptest::proptest! {
        /// Any value survives conninfo quoting and URI percent-encoding.
        #[test]
        fn quoting_round_trips(value in "[^\\x00]{1,40}") {
            let quoted = format!("user='{}'", value.replace('\\', "\\\\").replace('\'', "\\'"));
            proptest::prop_assert_eq!(parse(&quoted).unwrap().user, Some(value.clone()));
            let encoded: String = value.bytes().map(|b| format!("%{b:02X}")).collect();
            let uri = format!("postgresql://{encoded}@db");
            proptest::prop_assert_eq!(parse(&uri).unwrap().user, Some(value));
        }
    }
}
