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

/// The role attributes an `ALTER ROLE` sets besides the password.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoleFixes {
    pub login: bool,
    /// `VALID UNTIL 'infinity'`.
    pub valid_until: bool,
    /// `CONNECTION LIMIT -1`.
    pub connection_limit: bool,
}

/// `ALTER ROLE ... [LOGIN] [VALID UNTIL 'infinity'] [CONNECTION LIMIT -1]
/// [PASSWORD '...']`; at least one of them is set.
pub fn alter_role(role: &str, fixes: RoleFixes, verifier: Option<&str>) -> Statement {
    let mut text = format!("ALTER ROLE {}", quote_ident(role));
    if fixes.login {
        text.push_str(" LOGIN");
    }
    if fixes.valid_until {
        text.push_str(" VALID UNTIL 'infinity'");
    }
    if fixes.connection_limit {
        text.push_str(" CONNECTION LIMIT -1");
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

/// Marks a role as created by pgtenant (see `catalog::TENANT_MARKER`).
pub fn mark_role(role: &str, marker: &str) -> Statement {
    Statement::public(format!(
        "COMMENT ON ROLE {} IS {}",
        quote_ident(role),
        quote_literal(marker)
    ))
}

/// `ALTER DATABASE ... WITH [ALLOW_CONNECTIONS true] [CONNECTION LIMIT -1]`.
pub fn alter_database_connections(
    database: &str,
    allow_connections: bool,
    connection_limit: bool,
) -> Statement {
    let mut text = format!("ALTER DATABASE {} WITH", quote_ident(database));
    if allow_connections {
        text.push_str(" ALLOW_CONNECTIONS true");
    }
    if connection_limit {
        text.push_str(" CONNECTION LIMIT -1");
    }
    Statement::public(text)
}

/// `CREATE DATABASE ... OWNER ...`, with a `STRATEGY` clause (15 and newer)
/// when one is given; see [`crate::server::strategy`].
pub fn create_database(
    database: &str,
    owner: &str,
    strategy: Option<crate::server::strategy::Strategy>,
) -> Statement {
    create_database_with(database, owner, None, None, None, None, strategy)
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

/// `CREATE DATABASE` with the config's creation-time options.
pub fn create_database_with(
    database: &str,
    owner: &str,
    template: Option<&str>,
    encoding: Option<&str>,
    locale: Option<&str>,
    connection_limit: Option<i32>,
    strategy: Option<crate::server::strategy::Strategy>,
) -> Statement {
    let mut text = format!(
        "CREATE DATABASE {} OWNER {}",
        quote_ident(database),
        quote_ident(owner)
    );
    if let Some(t) = template {
        text.push_str(&format!(" TEMPLATE {}", quote_ident(t)));
    }
    if let Some(e) = encoding {
        text.push_str(&format!(" ENCODING {}", quote_literal(e)));
    }
    if let Some(l) = locale {
        text.push_str(&format!(" LOCALE {}", quote_literal(l)));
    }
    if let Some(n) = connection_limit {
        text.push_str(&format!(" CONNECTION LIMIT {n}"));
    }
    if let Some(s) = strategy {
        text.push_str(" STRATEGY = ");
        text.push_str(s.keyword());
    }
    Statement::public(text)
}

pub fn alter_database_connection_limit(database: &str, limit: i32) -> Statement {
    Statement::public(format!(
        "ALTER DATABASE {} CONNECTION LIMIT {limit}",
        quote_ident(database)
    ))
}

pub fn alter_role_connection_limit(role: &str, limit: i32) -> Statement {
    Statement::public(format!(
        "ALTER ROLE {} CONNECTION LIMIT {limit}",
        quote_ident(role)
    ))
}

/// A parameter name as `SET` takes it: each dotted part quoted.
fn quote_setting_name(name: &str) -> String {
    name.split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

/// `ALTER ROLE r SET name TO 'v'` or, for a list, `TO 'a', 'b'`.
pub fn alter_role_set(role: &str, name: &str, values: &[&str]) -> Statement {
    let values: Vec<String> = values.iter().map(|v| quote_literal(v)).collect();
    Statement::public(format!(
        "ALTER ROLE {} SET {} TO {}",
        quote_ident(role),
        quote_setting_name(name),
        values.join(", ")
    ))
}

pub fn grant_connect(database: &str, role: &str) -> Statement {
    Statement::public(format!(
        "GRANT CONNECT ON DATABASE {} TO {}",
        quote_ident(database),
        quote_ident(role)
    ))
}

/// Run as the tenant, so that it owns the schema.
pub fn create_schema(schema: &str) -> Statement {
    Statement::public(format!(
        "CREATE SCHEMA IF NOT EXISTS {}",
        quote_ident(schema)
    ))
}

pub fn alter_schema_owner(schema: &str, owner: &str) -> Statement {
    Statement::public(format!(
        "ALTER SCHEMA {} OWNER TO {}",
        quote_ident(schema),
        quote_ident(owner)
    ))
}

/// Without a schema, the extension goes where its control file says or,
/// when it says nothing, into `public`: the session's `search_path` is
/// empty, so it is set for this transaction only.
pub fn create_extension(name: &str, schema: Option<&str>, version: Option<&str>) -> Statement {
    let mut text = String::new();
    if schema.is_none() {
        text.push_str("SET LOCAL search_path TO public; ");
    }
    text.push_str(&format!(
        "CREATE EXTENSION IF NOT EXISTS {}",
        quote_ident(name)
    ));
    if let Some(s) = schema {
        text.push_str(&format!(" SCHEMA {}", quote_ident(s)));
    }
    if let Some(v) = version {
        text.push_str(&format!(" VERSION {}", quote_literal(v)));
    }
    Statement::public(text)
}

pub fn update_extension(name: &str, version: &str) -> Statement {
    Statement::public(format!(
        "ALTER EXTENSION {} UPDATE TO {}",
        quote_ident(name),
        quote_literal(version)
    ))
}

fn idents(names: &[String]) -> String {
    names
        .iter()
        .map(|n| quote_ident(n))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn grant_schema_usage(schemas: &[String], role: &str) -> Statement {
    Statement::public(format!(
        "GRANT USAGE ON SCHEMA {} TO {}",
        idents(schemas),
        quote_ident(role)
    ))
}

/// `GRANT <privileges> ON ALL TABLES|SEQUENCES IN SCHEMA ... TO role`.
pub fn grant_on_all(privileges: &[&str], kind: &str, schemas: &[String], role: &str) -> Statement {
    Statement::public(format!(
        "GRANT {} ON ALL {kind} IN SCHEMA {} TO {}",
        privileges.join(", "),
        idents(schemas),
        quote_ident(role)
    ))
}

/// `ALTER DEFAULT PRIVILEGES FOR ROLE owner GRANT <privileges> ON
/// TABLES|SEQUENCES|SCHEMAS TO role`.
pub fn grant_default(owner: &str, privileges: &[&str], kind: &str, role: &str) -> Statement {
    Statement::public(format!(
        "ALTER DEFAULT PRIVILEGES FOR ROLE {} GRANT {} ON {kind} TO {}",
        quote_ident(owner),
        privileges.join(", "),
        quote_ident(role)
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
    fn create_database_with_and_without_a_strategy() {
        use crate::server::strategy::Strategy;
        assert_eq!(
            create_database("d", "o", None).text(),
            r#"CREATE DATABASE "d" OWNER "o""#
        );
        assert_eq!(
            create_database("d", "o", Some(Strategy::FileCopy)).text(),
            r#"CREATE DATABASE "d" OWNER "o" STRATEGY = FILE_COPY"#
        );
        assert_eq!(
            create_database_with(
                "d",
                "o",
                Some("template0"),
                None,
                None,
                None,
                Some(Strategy::WalLog)
            )
            .text(),
            r#"CREATE DATABASE "d" OWNER "o" TEMPLATE "template0" STRATEGY = WAL_LOG"#
        );
    }

    #[test]
    fn config_statements() {
        assert_eq!(
            create_database_with(
                "s",
                "o",
                Some("template0"),
                Some("UTF8"),
                Some("C"),
                Some(5),
                None
            )
            .text(),
            r#"CREATE DATABASE "s" OWNER "o" TEMPLATE "template0" ENCODING 'UTF8' LOCALE 'C' CONNECTION LIMIT 5"#
        );
        assert_eq!(
            alter_role_set("r", "auto_explain.log_min_duration", &["1s"]).text(),
            r#"ALTER ROLE "r" SET "auto_explain"."log_min_duration" TO '1s'"#
        );
        assert_eq!(
            alter_role_set("r", "search_path", &["$user", "it's"]).text(),
            r#"ALTER ROLE "r" SET "search_path" TO '$user', 'it''s'"#
        );
        assert_eq!(
            grant_on_all(&["SELECT"], "TABLES", &["a".into(), "b".into()], "g").text(),
            r#"GRANT SELECT ON ALL TABLES IN SCHEMA "a", "b" TO "g""#
        );
        assert_eq!(
            create_extension("pg_trgm", Some("x"), Some("1.6")).text(),
            r#"CREATE EXTENSION IF NOT EXISTS "pg_trgm" SCHEMA "x" VERSION '1.6'"#
        );
    }

    #[test]
    fn secret_statements_hide_their_text() {
        let s = create_role("r", "SCRAM-SHA-256$4096:c2FsdA==$x:y");
        assert!(s.is_secret());
        assert!(!format!("{s:?}").contains("SCRAM"));
        let login = RoleFixes {
            login: true,
            ..RoleFixes::default()
        };
        assert!(!alter_role("r", login, None).is_secret());
        assert!(alter_role("r", RoleFixes::default(), Some("v")).is_secret());
        assert_eq!(
            alter_role("r", login, None).text(),
            r#"ALTER ROLE "r" LOGIN"#
        );
        let all = RoleFixes {
            login: true,
            valid_until: true,
            connection_limit: true,
        };
        assert_eq!(
            alter_role("r", all, None).text(),
            r#"ALTER ROLE "r" LOGIN VALID UNTIL 'infinity' CONNECTION LIMIT -1"#
        );
        assert_eq!(
            alter_database_connections("d", true, true).text(),
            r#"ALTER DATABASE "d" WITH ALLOW_CONNECTIONS true CONNECTION LIMIT -1"#
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
