//! Every SQL statement pgtenant sends that carries a name or a secret is built
//! here, and quoting lives here only.
//!
//! Utility statements (`CREATE ROLE`, `CREATE DATABASE`, ...) cannot take bind
//! parameters, so names and verifiers are quoted: identifiers always, whatever
//! their case, and literals in the escape-string form whenever they hold a
//! backslash, so the result does not depend on `standard_conforming_strings`.

use std::fmt;

/// Quotes an identifier: `a"b` becomes `"a""b"`. Always quoted, so a name is
/// kept exactly as written (the article's scripts folded it to lower case).
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Quotes a string literal as PostgreSQL's own `quote_literal` does.
pub fn quote_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 3);
    if value.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// One statement. A statement that carries a verifier is marked secret: its
/// `Debug` hides the text and the caller must turn statement logging off for
/// it.
#[derive(Clone, PartialEq, Eq)]
pub struct Statement {
    text: String,
    secret: bool,
}

impl Statement {
    fn public(text: String) -> Self {
        Statement {
            text,
            secret: false,
        }
    }
    fn secret(text: String) -> Self {
        Statement { text, secret: true }
    }
    pub fn text(&self) -> &str {
        &self.text
    }
    pub fn is_secret(&self) -> bool {
        self.secret
    }
}

impl fmt::Debug for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            f.write_str("Statement(<contains a password verifier>)")
        } else {
            write!(f, "Statement({:?})", self.text)
        }
    }
}

pub fn create_role(role: &str, verifier: &str) -> Statement {
    Statement::secret(format!(
        "CREATE ROLE {} LOGIN PASSWORD {}",
        quote_ident(role),
        quote_literal(verifier)
    ))
}

/// `ALTER ROLE ... [LOGIN] [PASSWORD '...']`; at least one of the two is set.
pub fn alter_role(role: &str, login: bool, verifier: Option<&str>) -> Statement {
    let mut text = format!("ALTER ROLE {}", quote_ident(role));
    if login {
        text.push_str(" LOGIN");
    }
    match verifier {
        Some(v) => {
            text.push_str(" PASSWORD ");
            text.push_str(&quote_literal(v));
            Statement::secret(text)
        }
        None => Statement::public(text),
    }
}

pub fn create_database(database: &str, owner: &str) -> Statement {
    Statement::public(format!(
        "CREATE DATABASE {} OWNER {}",
        quote_ident(database),
        quote_ident(owner)
    ))
}

pub fn alter_database_owner(database: &str, owner: &str) -> Statement {
    Statement::public(format!(
        "ALTER DATABASE {} OWNER TO {}",
        quote_ident(database),
        quote_ident(owner)
    ))
}

/// Revokes what PUBLIC has by default on a database: without CONNECT a tenant
/// cannot reach another tenant's database, without TEMPORARY it cannot use it
/// for temporary tables.
pub fn revoke_database_from_public(database: &str, privileges: &[&str]) -> Statement {
    Statement::public(format!(
        "REVOKE {} ON DATABASE {} FROM PUBLIC",
        privileges.join(", "),
        quote_ident(database)
    ))
}

/// Run inside the tenant's database (PostgreSQL 14 and older only).
pub fn alter_public_schema_owner(owner: &str) -> Statement {
    Statement::public(format!(
        "ALTER SCHEMA public OWNER TO {}",
        quote_ident(owner)
    ))
}

/// Run inside the tenant's database (PostgreSQL 14 and older only).
pub fn revoke_create_on_public_schema() -> Statement {
    Statement::public("REVOKE CREATE ON SCHEMA public FROM PUBLIC".to_owned())
}

/// Makes the (non-superuser) admin a member of a tenant role, which it needs
/// to give the role a database. With `set_only` (16 and newer) the admin may
/// `SET ROLE` to it but does not inherit its privileges.
pub fn grant_role_to_admin(role: &str, set_only: bool) -> Statement {
    let mut text = format!("GRANT {} TO CURRENT_USER", quote_ident(role));
    if set_only {
        text.push_str(" WITH INHERIT FALSE, SET TRUE");
    }
    Statement::public(text)
}

/// Runs `stmt` as `role`, in the implicit transaction of one query string, so
/// the role switch ends with it, also on error. Only for public statements.
pub fn as_role(role: &str, stmt: &Statement) -> Statement {
    assert!(!stmt.is_secret(), "secret statements run on their own");
    Statement::public(format!(
        "SET LOCAL ROLE {}; {}",
        quote_ident(role),
        stmt.text()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reads back a quoted identifier as the server's lexer would.
    fn unquote_ident(q: &str) -> Option<String> {
        let inner = q.strip_prefix('"')?.strip_suffix('"')?;
        let mut out = String::new();
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '"' && chars.next() != Some('"') {
                return None;
            }
            out.push(c);
        }
        Some(out)
    }

    /// Reads back a literal under either value of standard_conforming_strings
    /// for the escape form, and with it on for the plain form.
    fn unquote_literal(q: &str) -> Option<String> {
        let (escape, rest) = match q.strip_prefix('E') {
            Some(rest) => (true, rest),
            None => (false, q),
        };
        let inner = rest.strip_prefix('\'')?.strip_suffix('\'')?;
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\'' => {
                    if chars.next() != Some('\'') {
                        return None;
                    }
                    out.push('\'');
                }
                '\\' if escape => out.push(chars.next()?),
                c => out.push(c),
            }
        }
        Some(out)
    }

    #[test]
    fn examples() {
        assert_eq!(quote_ident("keycloak"), r#""keycloak""#);
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(quote_ident("Up-Case"), r#""Up-Case""#);
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal(r"a\b"), r"E'a\\b'");
    }

    #[test]
    fn secret_statements_hide_their_text() {
        let s = create_role("r", "SCRAM-SHA-256$4096:c2FsdA==$x:y");
        assert!(s.is_secret());
        assert!(!format!("{s:?}").contains("SCRAM"));
        assert!(!alter_role("r", true, None).is_secret());
        assert!(alter_role("r", false, Some("v")).is_secret());
        assert_eq!(
            alter_role("r", true, None).text(),
            r#"ALTER ROLE "r" LOGIN"#
        );
    }

    proptest! {
        #[test]
        fn ident_round_trips(s in "\\PC*") {
            prop_assert_eq!(unquote_ident(&quote_ident(&s)), Some(s));
        }

        #[test]
        fn literal_round_trips(s in "\\PC*") {
            prop_assert_eq!(unquote_literal(&quote_literal(&s)), Some(s));
        }
    }
}
