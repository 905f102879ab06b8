//! How driver errors are described: one lowercase line, with the server's
//! message and SQLSTATE, never statement text.

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
    // "Connection refused (os error 111)": the errno adds nothing for people.
    if let Some(i) = text.find(" (os error ") {
        text.truncate(i);
    }
    lowercase_first(&text)
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if !s.starts_with("SQLSTATE") => c.to_lowercase().chain(chars).collect(),
        _ => s.to_owned(),
    }
}
