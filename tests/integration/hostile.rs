//! Hostile users files: names and passwords built to break quoting (SQL
//! injection, quotes, backslashes, dollar quotes), encodings (NUL, invalid
//! UTF-8, multi-byte names across PostgreSQL's 63-byte limit) and reserved
//! names. Every entry is either provisioned exactly as written (the role's
//! name in the catalog equals the input byte for byte, and the tenant logs in
//! with exactly that password) or rejected with `file:line` and exit code 2,
//! and which of the two is decided here, not by whatever happens.
//!
//! With `log_statement = 'all'`, the server's log then shows that every
//! statement of pgtenant's sessions is one of pgtenant's own statement shapes,
//! with the names quoted as pgtenant quotes them: no injected statement ever
//! runs, and the canary role and table are still there.

use crate::support::cli::{run, UsersFile};
use crate::support::server::PgServer;

/// Names and passwords pgtenant must provision exactly as written.
pub fn accepted() -> Vec<(String, String)> {
    let pairs: &[(&str, &str)] = &[
        ("inj1", "'; DROP ROLE canary; --"),
        ("inj2", "$$; DROP TABLE public.canary_table; $$"),
        ("inj3", "\\'; DROP ROLE canary; --"),
        ("inj4", "E'\\\\x27; DROP ROLE canary; --"),
        ("x'; DROP ROLE canary; --", "name-injection-1"),
        ("\"; DROP ROLE canary; --", "name-injection-2"),
        ("a\"b\"\"c", "double quotes in a name"),
        ("back\\slash\\", "back\\slash\\"),
        ("$$dollar$$", "$tag$ body $tag$"),
        ("semi;colon", "semi;colon"),
        ("Robert'); DROP TABLE canary_table;--", "bobby tables"),
        ("  padded  name ", "name blanks trimmed at both ends"),
        ("all", "a role called all"),
        ("PG_upper", "only pg_ in lower case is reserved"),
        ("日本語ユーザー", "пароль-密码-🔑"),
        ("quote", "it's"),
        ("pct", "%s %n %x {0} ${HOME} $(id) `id`"),
        ("ctl", "tab\there bell\u{7} esc\u{1b}[31m"),
        ("spaces", "   "),
        ("nfkc", "\u{212b}\u{fb01}\u{2168}"),
        ("long", &"p".repeat(1000)),
        // 60 bytes: the longest name whose database name fits in 63.
        (
            "sixty_bytes_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "pw60",
        ),
        // 30 two-byte letters: 60 bytes, database name 63.
        ("éééééééééééééééééééééééééééééé", "pw-multibyte-60"),
        // 20 three-byte letters: 60 bytes.
        ("日日日日日日日日日日日日日日日日日日日日", "pw-cjk-60"),
    ];
    pairs
        .iter()
        .map(|(u, p)| ((*u).to_owned(), (*p).to_owned()))
        .collect()
}

/// Lines pgtenant must refuse, each with the message it must give.
fn rejected() -> Vec<(Vec<u8>, &'static str)> {
    let mut cases: Vec<(Vec<u8>, &'static str)> = vec![
        (b"nul:a\0b".to_vec(), "contains a NUL byte"),
        (b"nul\0name:pw".to_vec(), "contains a control character"),
        (b"bad\xffname:pw".to_vec(), "line is not valid UTF-8"),
        (b"badpw:p\xc3\x28w".to_vec(), "line is not valid UTF-8"),
        (b"esc\x1b[31m:pw".to_vec(), "contains a control character"),
        (b"postgres:pw".to_vec(), "is reserved"),
        (b"public:pw".to_vec(), "is reserved"),
        (b"PUBLIC:pw".to_vec(), "is reserved"),
        (b"none:pw".to_vec(), "is reserved"),
        (b"Template0:pw".to_vec(), "is reserved"),
        (b"current_user:pw".to_vec(), "is reserved"),
        (b"SESSION_USER:pw".to_vec(), "is reserved"),
        (b"current_role:pw".to_vec(), "is reserved"),
        (b"pg_signal_backend:pw".to_vec(), "belong to PostgreSQL"),
        (
            b"pg_x'; DROP ROLE canary; --:pw".to_vec(),
            "belong to PostgreSQL",
        ),
        (b":pw".to_vec(), "empty user name"),
        (b"nopw:".to_vec(), "empty password"),
        (b"no colon at all".to_vec(), "found no ':'"),
        (
            b"cr:mid\rdle".to_vec(),
            "carriage return (CR) inside the line",
        ),
        (
            "zero\u{200b}width:pw".as_bytes().to_vec(),
            "formatting character U+200B",
        ),
        (
            "bidi\u{202e}override:pw".as_bytes().to_vec(),
            "formatting character U+202E",
        ),
    ];
    // 61, 63 and 64 bytes: the database name (`<name>_db`) would not fit.
    for len in [61, 63] {
        cases.push((
            format!("{}:pw", "n".repeat(len)).into_bytes(),
            "database name",
        ));
    }
    cases.push((
        format!("{}:pw", "m".repeat(64)).into_bytes(),
        "64 bytes long",
    ));
    // Multi-byte names across the limits: 31 two-byte letters are 62 bytes
    // (database 65); 21 three-byte letters are 63 bytes; 22 are 66 bytes
    // (the role itself is too long).
    cases.push((
        format!("{}:pw", "é".repeat(31)).into_bytes(),
        "database name",
    ));
    cases.push((
        format!("{}:pw", "日".repeat(21)).into_bytes(),
        "database name",
    ));
    cases.push((
        format!("{}:pw", "日".repeat(22)).into_bytes(),
        "66 bytes long",
    ));
    // A two-byte letter straddling byte 63.
    cases.push((
        format!("{}é:pw", "a".repeat(62)).into_bytes(),
        "64 bytes long",
    ));
    cases
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The statement of one server log entry, for entries of pgtenant's sessions:
/// `(prefix line, statement text)`. Continuation lines (tab-indented, the
/// rest of a multi-line statement) belong to the entry before.
fn pgtenant_statements(log: &str) -> Vec<String> {
    let mut entries: Vec<String> = Vec::new();
    for line in log.lines() {
        if line.starts_with('\t') || line.is_empty() {
            if let Some(last) = entries.last_mut() {
                last.push('\n');
                last.push_str(line.trim_start_matches('\t'));
            }
            continue;
        }
        entries.push(line.to_owned());
    }
    entries
        .into_iter()
        .filter(|e| e.contains(" app=pgtenant "))
        .filter_map(|e| {
            let (_, rest) = e.split_once("LOG:  ")?;
            let text = rest.strip_prefix("statement: ").or_else(|| {
                rest.split_once(": ")
                    .filter(|(k, _)| k.starts_with("execute"))
                    .map(|(_, t)| t)
            })?;
            Some(text.to_owned())
        })
        .collect()
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[test]
fn hostile_names_and_passwords_are_provisioned_exactly_or_rejected() {
    let server = PgServer::builder()
        .conf("log_statement", "all")
        .conf("log_line_prefix", "%m [%p] %q%u@%d app=%a ")
        .start();
    server.query(
        "CREATE ROLE canary NOLOGIN; CREATE TABLE public.canary_table (x int); \
         INSERT INTO public.canary_table VALUES (42)",
    );

    // Rejections first: each line on its own, with a valid line before it,
    // so the file:line is the second line and nothing gets applied.
    for (line, message) in rejected() {
        let mut content = b"fine:pw\n".to_vec();
        content.extend_from_slice(&line);
        content.push(b'\n');
        let users = UsersFile::new(&content);
        for cmd in ["apply", "plan"] {
            let out = run(&server, users.path(), &[cmd]);
            let shown = String::from_utf8_lossy(&line).into_owned();
            assert_eq!(out.code, 2, "{cmd} {shown:?}: {out:#?}");
            let located = format!("{}:2: ", users.path().display());
            assert!(
                out.stderr.contains(&located) && out.stderr.contains(message),
                "{cmd} {shown:?}: expected {located}...{message} in\n{}",
                out.stderr
            );
        }
    }
    assert_eq!(
        server.query("SELECT count(*) FROM pg_roles WHERE rolname = 'fine'"),
        vec![vec![Some("0".to_owned())]],
        "a rejected file changes nothing"
    );

    // The accepted corpus in one file.
    let tenants = accepted();
    let content: String = tenants.iter().map(|(u, p)| format!("{u}:{p}\n")).collect();
    let users = UsersFile::new(&content);
    let out = run(&server, users.path(), &["apply"]);
    out.assert_code(0);
    run(&server, users.path(), &["plan", "--exit-code"]).assert_code(0);

    // The names are the input, byte for byte (blanks around a name are not
    // part of it: documented trimming).
    let roles: Vec<String> = server
        .query("SELECT encode(convert_to(rolname::text, 'UTF8'), 'hex') FROM pg_roles")
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect();
    let databases: Vec<(String, String)> = server
        .query(
            "SELECT encode(convert_to(datname::text, 'UTF8'), 'hex'),
                    encode(convert_to(pg_get_userbyid(datdba)::text, 'UTF8'), 'hex')
               FROM pg_database",
        )
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
        .collect();
    for (user, password) in &tenants {
        let name = user.trim_matches([' ', '\t']);
        assert!(
            roles.contains(&hex(name.as_bytes())),
            "role {name:?} not in pg_roles byte for byte"
        );
        let db = format!("{name}_db");
        assert!(
            databases.contains(&(hex(db.as_bytes()), hex(name.as_bytes()))),
            "database {db:?} owned by {name:?} missing"
        );
        server
            .try_connect(name, password, &db)
            .unwrap_or_else(|e| panic!("{name:?} cannot log in with its password: {e}"));
        assert!(
            server
                .try_connect(name, &format!("{password}x"), &db)
                .is_err(),
            "{name:?} logs in with a wrong password"
        );
    }

    // Nothing was injected: the canary role and table are there, untouched.
    assert_eq!(
        server.query(
            "SELECT (SELECT count(*) FROM pg_roles WHERE rolname = 'canary'), \
                    (SELECT x FROM public.canary_table)"
        ),
        vec![vec![Some("1".to_owned()), Some("42".to_owned())]]
    );

    // Every statement of pgtenant's sessions, as the server logged it, is one
    // of pgtenant's shapes. DDL carrying a name must be exactly what
    // pgtenant's quoting makes of a name in the file.
    let mut ddl: Vec<String> = Vec::new();
    // The fixture runs with fsync = off: on 15 and newer pgtenant asks for
    // FILE_COPY (docs/performance.md).
    let strategy = if server.major() >= 15 {
        " STRATEGY = FILE_COPY"
    } else {
        ""
    };
    for (user, _) in &tenants {
        let name = user.trim_matches([' ', '\t']);
        let db = format!("{name}_db");
        ddl.push(format!(
            "CREATE DATABASE {} OWNER {}{strategy}",
            quote_ident(&db),
            quote_ident(name)
        ));
        ddl.push(format!(
            "REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC",
            quote_ident(&db)
        ));
        ddl.push(format!(
            "ALTER SCHEMA public OWNER TO {}",
            quote_ident(name)
        ));
        ddl.push(format!("ALTER ROLE {} LOGIN", quote_ident(name)));
    }
    ddl.push("REVOKE CREATE ON SCHEMA public FROM PUBLIC".to_owned());
    let statements = pgtenant_statements(&server.log());
    assert!(
        statements.iter().any(|s| s.starts_with("CREATE DATABASE")),
        "statement logging is on and attributed to pgtenant: {statements:#?}"
    );
    for s in &statements {
        if ddl.contains(s) {
            continue;
        }
        // Otherwise one of pgtenant's constant statements: catalog reads,
        // session set-up, the advisory lock, the transaction that keeps a
        // verifier out of the log. None carries a name from the input.
        let constant_shape = [
            "SELECT ",
            "WITH ",
            "BEGIN; SET LOCAL track_activities = off; SET LOCAL log_statement = 'none';",
            "BEGIN; SET LOCAL lock_timeout = ",
            "SET ",
            "SHOW ",
        ]
        .iter()
        .any(|p| s.starts_with(p))
            || s == "COMMIT"
            || s == "ROLLBACK";
        assert!(
            constant_shape,
            "a statement that is not one of pgtenant's: {s:?}"
        );
        for marker in ["canary", "DROP", "$$", "--", "inj", "Robert"] {
            assert!(
                !s.contains(marker),
                "{marker:?} in a constant statement: {s:?}"
            );
        }
    }
    for line in server.log().lines() {
        assert!(
            !line.contains("statement: DROP") && !line.contains("statement: ALTER ROLE canary"),
            "an injected statement ran: {line}"
        );
    }
}
