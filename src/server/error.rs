//! Driver errors, decided once: what an error means ([`ErrorKind`], by
//! SQLSTATE and by the kind of failure, never by message text) and how it
//! reads (one lowercase line with the server's message and SQLSTATE, never
//! statement text). Every `tokio_postgres::Error` pgtenant keeps goes through
//! here when our own error is built; nobody looks at it again.

use std::fmt;

/// What a driver error means to whoever got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not yet, or gone for now: the server is starting up, shutting down,
    /// in recovery or full, or the connection failed or closed on the way.
    /// Waiting and trying again can help.
    Transient,
    /// The server reported a connection exception (SQLSTATE class 08).
    ConnectionException,
    /// The server refused the login (SQLSTATE class 28).
    Authentication,
    /// The database does not exist (3D000).
    MissingDatabase,
    /// TLS could not be set up or the handshake failed: a rejected
    /// certificate does not go away by waiting.
    Tls,
    /// Anything else: a statement that failed, a driver configuration error
    /// (`password missing`), a protocol error.
    Other,
}

/// SQLSTATEs that mean "not yet": cannot_connect_now (starting up, shutting
/// down, in recovery), admin_shutdown, crash_shutdown, too_many_connections.
pub const TRANSIENT_SQLSTATES: [&str; 4] = ["57P03", "57P01", "57P02", "53300"];

impl ErrorKind {
    /// Classifies a driver error from connecting or from a statement.
    pub fn of(e: &tokio_postgres::Error) -> Self {
        if let Some(code) = e.code() {
            return Self::of_sqlstate(code.code());
        }
        if e.is_closed() {
            return ErrorKind::Transient;
        }
        if tls_error(e).is_some() {
            return ErrorKind::Tls;
        }
        // The driver's connect and I/O failures carry the socket's error:
        // refused, reset, no such socket, timed out, closed mid-message.
        if io_error(e).is_some() {
            return ErrorKind::Transient;
        }
        ErrorKind::Other
    }

    pub fn of_sqlstate(code: &str) -> Self {
        if TRANSIENT_SQLSTATES.contains(&code) {
            ErrorKind::Transient
        } else if code.starts_with("08") {
            ErrorKind::ConnectionException
        } else if code.starts_with("28") {
            ErrorKind::Authentication
        } else if code == "3D000" {
            ErrorKind::MissingDatabase
        } else {
            ErrorKind::Other
        }
    }

    /// Worth another probe soon (`pgtenant wait`, the sidecar's waiting).
    pub fn is_transient(self) -> bool {
        self == ErrorKind::Transient
    }

    /// On an established session: the session is gone (server restarted
    /// or shut down, network dropped), as opposed to a statement that
    /// failed on a healthy session.
    pub fn is_connection_lost(self) -> bool {
        matches!(self, ErrorKind::Transient | ErrorKind::ConnectionException)
    }
}

/// Why TLS failed; the text is what follows "failed to connect to HOST:PORT: ".
#[derive(Debug, Clone)]
pub enum TlsError {
    /// The configuration: a root certificate file missing or unreadable.
    Setup(String),
    /// The handshake: the certificate was rejected, the server sent an alert.
    Handshake(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Setup(m) | TlsError::Handshake(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for TlsError {}

/// Our TLS connector's error, when that is what failed.
pub(crate) fn tls_error(e: &tokio_postgres::Error) -> Option<&TlsError> {
    std::error::Error::source(e)?.downcast_ref::<TlsError>()
}

/// The socket's error behind a driver error, if any.
pub(crate) fn io_error(e: &tokio_postgres::Error) -> Option<&std::io::Error> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = s.source();
    }
    None
}

/// A one-line, lowercase description of a driver error. Server errors carry
/// their own message and SQLSTATE; they never contain statement text.
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            s.push_str(": ");
            s.push_str(detail);
        }
        return s;
    }
    if e.is_closed() {
        return "connection closed".to_owned();
    }
    // The driver's own text is "error connecting to server: Connection refused
    // (os error 111)"; keep only the cause.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    if text.starts_with("SQLSTATE") {
        return text;
    }
    crate::message::os_cause(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates() {
        for code in TRANSIENT_SQLSTATES {
            assert_eq!(ErrorKind::of_sqlstate(code), ErrorKind::Transient);
            assert!(ErrorKind::of_sqlstate(code).is_connection_lost());
        }
        assert_eq!(ErrorKind::of_sqlstate("28P01"), ErrorKind::Authentication);
        assert_eq!(ErrorKind::of_sqlstate("28000"), ErrorKind::Authentication);
        assert_eq!(ErrorKind::of_sqlstate("3D000"), ErrorKind::MissingDatabase);
        assert_eq!(
            ErrorKind::of_sqlstate("08006"),
            ErrorKind::ConnectionException
        );
        assert!(ErrorKind::of_sqlstate("08006").is_connection_lost());
        assert!(!ErrorKind::of_sqlstate("08006").is_transient());
        for code in ["42501", "42P04", "57014", "XX000"] {
            assert_eq!(ErrorKind::of_sqlstate(code), ErrorKind::Other);
            assert!(!ErrorKind::of_sqlstate(code).is_connection_lost());
        }
    }
}
