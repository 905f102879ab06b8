//! The config file (`--config`, `PGTENANT_CONFIG`): the structure of the
//! tenants — several databases, extensions, schemas, creation-time options,
//! role settings, connection limits, readers and writers — never passwords.
//!
//! This module owns the format (version 1, YAML), its validation with
//! `file:line:column` for every problem, its JSON Schema
//! ([`SCHEMA`], printed by `pgtenant config-schema`), and the merge of the
//! config with the users file or directory into one [`Desired`]. The YAML
//! tree and its bounds are in [`crate::input::yaml`].
//!
//! Every problem of the file is collected before any is reported, so a user
//! fixes the file in one go, and nothing reaches the server unless the whole
//! input is valid.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::input::desired::{
    Access, DatabaseSpec, Desired, ExtensionSpec, Member, Origin, Password, RoleSetting,
    SettingValue, Tenant,
};
use crate::input::users_file::{self, Parsed, MAX_IDENTIFIER_BYTES};
use crate::input::yaml::{self, Key, Node, Pos, Value};

/// A config file describes a server's tenants in a few KiB; a larger one is
/// a wrong path, and is refused before it is read whole.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The JSON Schema of the format, for editors (`pgtenant config-schema`).
/// A unit test keeps its keys in step with the parser's.
pub const SCHEMA: &str = include_str!("../../docs/schema/config-v1.schema.json");

// The keys the parser accepts, per object: the schema test reads these.
pub const TOP_KEYS: &[&str] = &["version", "tenants"];
pub const TENANT_KEYS: &[&str] = &[
    "password_file",
    "connection_limit",
    "settings",
    "databases",
    "readers",
    "writers",
];
pub const DATABASE_KEYS: &[&str] = &[
    "name",
    "extensions",
    "schemas",
    "connection_limit",
    "template",
    "encoding",
    "locale",
];
pub const EXTENSION_KEYS: &[&str] = &["name", "schema", "version"];
pub const MEMBER_KEYS: &[&str] = &["name", "password_file"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {} is not a regular file", path.display())]
    NotRegularFile { path: PathBuf },
    #[error("config file {} is larger than {limit} bytes", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{}", display_problems(.0))]
    Invalid(Vec<Problem>),
}

fn display_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// One problem of the config: `file:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.pos, self.message)
    }
}

/// A file named by `password_file`, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordFile {
    pub path: PathBuf,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberConfig {
    pub name: String,
    pub pos: Pos,
    pub password_file: Option<PasswordFile>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantConfig {
    pub name: String,
    pub pos: Pos,
    pub password_file: Option<PasswordFile>,
    pub connection_limit: Option<i32>,
    pub settings: Vec<RoleSetting>,
    /// `None`: `[<name>_db]`.
    pub databases: Option<(Pos, Vec<(Pos, DatabaseSpec)>)>,
    pub readers: Vec<MemberConfig>,
    pub writers: Vec<MemberConfig>,
}

/// A parsed, well-formed config (its cross-checks happen in [`merge`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    pub path: PathBuf,
    pub tenants: Vec<TenantConfig>,
}

/// Reads and parses the config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    // The same care as for the users file: no FIFO, no device, bounded.
    match users_file::read_bounded_limit(path, MAX_CONFIG_BYTES) {
        Ok(bytes) => parse(path, &bytes),
        Err(users_file::InputError::Read { source, .. }) => Err(read_err(source)),
        Err(users_file::InputError::NotRegularFile { .. }) => Err(ConfigError::NotRegularFile {
            path: path.to_owned(),
        }),
        Err(_) => Err(ConfigError::TooLarge {
            path: path.to_owned(),
            limit: MAX_CONFIG_BYTES,
        }),
    }
}

/// Parses the content of a config file.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Config, ConfigError> {
    let mut w = Walk {
        file: path.to_owned(),
        problems: Vec::new(),
    };
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let before = &bytes[..e.valid_up_to()];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
            w.err(Pos { line, column }, "the file is not valid UTF-8".into());
            return Err(ConfigError::Invalid(w.problems));
        }
    };
    let root = match yaml::parse(text) {
        Ok(root) => root,
        Err(e) => {
            w.err(e.pos, e.message);
            return Err(ConfigError::Invalid(w.problems));
        }
    };
    let config = w.config(root.as_ref());
    if w.problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid(w.problems))
    }
}

struct Walk {
    file: PathBuf,
    problems: Vec<Problem>,
}

impl Walk {
    fn err(&mut self, pos: Pos, message: String) {
        self.problems.push(Problem {
            file: self.file.clone(),
            pos,
            message,
        });
    }

    /// The entries of a mapping; unknown keys are problems. Null is empty.
    fn map<'n>(&mut self, node: &'n Node, what: &str, keys: &[&str]) -> &'n [(Key, Node)] {
        match &node.value {
            Value::Map(entries) => {
                for (k, _) in entries {
                    if !keys.contains(&k.text.as_str()) {
                        self.err(
                            k.pos,
                            format!(
                                "unknown key {:?} in {what}; expected one of: {}",
                                k.text,
                                keys.join(", ")
                            ),
                        );
                    }
                }
                entries
            }
            _ if node.is_null() => &[],
            _ => {
                self.err(
                    node.pos,
                    format!("{what}: expected a mapping, found {}", node.kind()),
                );
                &[]
            }
        }
    }

    fn list<'n>(&mut self, node: &'n Node, what: &str) -> &'n [Node] {
        match &node.value {
            Value::Seq(items) => items,
            _ => {
                self.err(
                    node.pos,
                    format!("{what}: expected a list, found {}", node.kind()),
                );
                &[]
            }
        }
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.value {
            Value::Scalar { text, .. } if !node.is_null() => {
                if text.contains('\0') {
                    self.err(node.pos, format!("{what}: contains a NUL character"));
                    return None;
                }
                Some(text.clone())
            }
            _ => {
                self.err(
                    node.pos,
                    format!("{what}: expected a string, found {}", node.kind()),
                );
                None
            }
        }
    }

    /// A name sent to the server as an identifier.
    fn name(&mut self, node: &Node, what: &str) -> Option<String> {
        let name = self.string(node, what)?;
        match identifier_problem(&name) {
            Some(p) => {
                self.err(node.pos, format!("{what} {name:?} {p}"));
                None
            }
            None => Some(name),
        }
    }

    fn connection_limit(&mut self, node: &Node, what: &str) -> Option<i32> {
        let parsed = match &node.value {
            Value::Scalar { text, plain: true } => text.parse::<i32>().ok(),
            _ => None,
        };
        match parsed {
            Some(n) if n >= -1 => Some(n),
            _ => {
                self.err(
                    node.pos,
                    format!(
                        "{what}: expected a whole number, -1 (no limit) or more, found {}",
                        describe(node)
                    ),
                );
                None
            }
        }
    }

    fn password_file(&mut self, node: &Node, what: &str) -> Option<PasswordFile> {
        let path = self.string(node, what)?;
        if path.is_empty() {
            self.err(node.pos, format!("{what}: empty path"));
            return None;
        }
        Some(PasswordFile {
            path: PathBuf::from(path),
            pos: node.pos,
        })
    }

    fn config(&mut self, root: Option<&Node>) -> Config {
        let mut config = Config {
            path: self.file.clone(),
            tenants: Vec::new(),
        };
        let Some(root) = root else {
            return config;
        };
        for (k, v) in self.map(root, "the config file", TOP_KEYS) {
            match k.text.as_str() {
                "version" => {
                    let ok = matches!(&v.value, Value::Scalar { text, .. } if text == "1");
                    if !ok {
                        self.err(
                            v.pos,
                            format!(
                                "unknown version {}: this pgtenant reads version 1",
                                describe(v)
                            ),
                        );
                    }
                }
                "tenants" => match &v.value {
                    Value::Map(entries) => {
                        for (name, spec) in entries {
                            if let Some(t) = self.tenant(name, spec) {
                                config.tenants.push(t);
                            }
                        }
                    }
                    _ if v.is_null() => {}
                    _ => self.err(
                        v.pos,
                        format!("tenants: expected a mapping, found {}", v.kind()),
                    ),
                },
                _ => {}
            }
        }
        config
    }

    fn tenant(&mut self, key: &Key, node: &Node) -> Option<TenantConfig> {
        let name_ok = match identifier_problem(&key.text) {
            Some(p) => {
                self.err(key.pos, format!("tenant {:?} {p}", key.text));
                false
            }
            None => true,
        };
        let mut t = TenantConfig {
            name: key.text.clone(),
            pos: key.pos,
            password_file: None,
            connection_limit: None,
            settings: Vec::new(),
            databases: None,
            readers: Vec::new(),
            writers: Vec::new(),
        };
        let what = format!("tenant {:?}", key.text);
        for (k, v) in self.map(node, &what, TENANT_KEYS) {
            match k.text.as_str() {
                "password_file" => t.password_file = self.password_file(v, "password_file"),
                "connection_limit" => {
                    t.connection_limit = self.connection_limit(v, "connection_limit")
                }
                "settings" => t.settings = self.settings(v),
                "databases" => {
                    let mut dbs = Vec::new();
                    let items = self.list(v, "databases");
                    if items.is_empty() && matches!(v.value, Value::Seq(_)) {
                        self.err(
                            v.pos,
                            "databases: a tenant needs at least one database".into(),
                        );
                    }
                    for item in items {
                        if let Some(db) = self.database(item) {
                            dbs.push((item.pos, db));
                        }
                    }
                    t.databases = Some((v.pos, dbs));
                }
                "readers" => t.readers = self.members(v, "readers"),
                "writers" => t.writers = self.members(v, "writers"),
                _ => {}
            }
        }
        name_ok.then_some(t)
    }

    fn settings(&mut self, node: &Node) -> Vec<RoleSetting> {
        let mut out = Vec::new();
        let Value::Map(entries) = &node.value else {
            if !node.is_null() {
                self.err(
                    node.pos,
                    format!("settings: expected a mapping, found {}", node.kind()),
                );
            }
            return out;
        };
        for (k, v) in entries {
            if !is_setting_name(&k.text) {
                self.err(
                    k.pos,
                    format!("setting name {:?} is not a valid parameter name", k.text),
                );
                continue;
            }
            let what = format!("setting {:?}", k.text);
            let value = match &v.value {
                Value::Seq(items) if !items.is_empty() => {
                    let mut list = Vec::new();
                    for item in items {
                        if let Some(s) = self.string(item, &what) {
                            list.push(s);
                        }
                    }
                    SettingValue::List(list)
                }
                Value::Scalar { .. } if !v.is_null() => match self.string(v, &what) {
                    Some(s) => SettingValue::One(s),
                    None => continue,
                },
                _ => {
                    self.err(
                        v.pos,
                        format!(
                            "{what}: expected a value or a list of values, found {}",
                            v.kind()
                        ),
                    );
                    continue;
                }
            };
            out.push(RoleSetting {
                name: k.text.clone(),
                value,
            });
        }
        out
    }

    fn database(&mut self, node: &Node) -> Option<DatabaseSpec> {
        if let Value::Scalar { .. } = node.value {
            return self.name(node, "database").map(DatabaseSpec::named);
        }
        let entries = self.map(node, "a database", DATABASE_KEYS);
        if !matches!(node.value, Value::Map(_)) {
            return None;
        }
        let mut db = DatabaseSpec::default();
        let mut name = None;
        let mut seen_ext: HashMap<String, Pos> = HashMap::new();
        let mut seen_schema: HashMap<String, Pos> = HashMap::new();
        for (k, v) in entries {
            match k.text.as_str() {
                "name" => name = self.name(v, "database"),
                "extensions" => {
                    for item in self.list(v, "extensions") {
                        if let Some(e) = self.extension(item) {
                            if let Some(first) = seen_ext.insert(e.name.clone(), item.pos) {
                                self.err(
                                    item.pos,
                                    format!(
                                        "extension {:?} listed twice (first at line {} column {})",
                                        e.name, first.line, first.column
                                    ),
                                );
                                continue;
                            }
                            db.extensions.push(e);
                        }
                    }
                }
                "schemas" => {
                    for item in self.list(v, "schemas") {
                        if let Some(s) = self.schema(item) {
                            if let Some(first) = seen_schema.insert(s.clone(), item.pos) {
                                self.err(
                                    item.pos,
                                    format!(
                                        "schema {s:?} listed twice (first at line {} column {})",
                                        first.line, first.column
                                    ),
                                );
                                continue;
                            }
                            db.schemas.push(s);
                        }
                    }
                }
                "connection_limit" => {
                    db.connection_limit = self.connection_limit(v, "connection_limit")
                }
                "template" => db.template = self.name(v, "template"),
                "encoding" => db.encoding = self.option(v, "encoding"),
                "locale" => db.locale = self.option(v, "locale"),
                _ => {}
            }
        }
        match name {
            Some(n) => {
                db.name = n;
                Some(db)
            }
            None => {
                if !entries.iter().any(|(k, _)| k.text == "name") {
                    self.err(node.pos, "a database needs a name".into());
                }
                None
            }
        }
    }

    /// An encoding or locale name: letters, digits and `._@-`.
    fn option(&mut self, node: &Node, what: &str) -> Option<String> {
        let s = self.string(node, what)?;
        let ok = !s.is_empty()
            && s.len() <= MAX_IDENTIFIER_BYTES
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
        if !ok {
            self.err(node.pos, format!("{what} {s:?} is not a valid {what} name"));
            return None;
        }
        Some(s)
    }

    fn schema(&mut self, node: &Node) -> Option<String> {
        let s = self.name(node, "schema")?;
        if s.starts_with("pg_") || s == "information_schema" || s == "public" {
            self.err(
                node.pos,
                format!("schema {s:?} is reserved (public exists in every database; pg_* and information_schema belong to PostgreSQL)"),
            );
            return None;
        }
        Some(s)
    }

    fn extension(&mut self, node: &Node) -> Option<ExtensionSpec> {
        if let Value::Scalar { .. } = node.value {
            return self.name(node, "extension").map(|name| ExtensionSpec {
                name,
                schema: None,
                version: None,
            });
        }
        let entries = self.map(node, "an extension", EXTENSION_KEYS);
        if !matches!(node.value, Value::Map(_)) {
            return None;
        }
        let (mut name, mut schema, mut version) = (None, None, None);
        for (k, v) in entries {
            match k.text.as_str() {
                "name" => name = self.name(v, "extension"),
                "schema" => schema = self.name(v, "schema"),
                "version" => version = self.string(v, "version"),
                _ => {}
            }
        }
        if name.is_none() && !entries.iter().any(|(k, _)| k.text == "name") {
            self.err(node.pos, "an extension needs a name".into());
        }
        Some(ExtensionSpec {
            name: name?,
            schema,
            version,
        })
    }

    fn members(&mut self, node: &Node, what: &str) -> Vec<MemberConfig> {
        let mut out = Vec::new();
        for item in self.list(node, what) {
            if let Value::Scalar { .. } = item.value {
                if let Some(name) = self.name(item, "role") {
                    out.push(MemberConfig {
                        name,
                        pos: item.pos,
                        password_file: None,
                    });
                }
                continue;
            }
            let entries = self.map(item, "a reader or writer", MEMBER_KEYS);
            if !matches!(item.value, Value::Map(_)) {
                continue;
            }
            let (mut name, mut password_file) = (None, None);
            for (k, v) in entries {
                match k.text.as_str() {
                    "name" => name = self.name(v, "role"),
                    "password_file" => password_file = self.password_file(v, "password_file"),
                    _ => {}
                }
            }
            if !entries.iter().any(|(k, _)| k.text == "name") {
                self.err(item.pos, format!("an entry of {what} needs a name"));
            }
            if let Some(name) = name {
                out.push(MemberConfig {
                    name,
                    pos: item.pos,
                    password_file,
                });
            }
        }
        out
    }
}

/// `60`, `"60"`, a list: for messages.
fn describe(node: &Node) -> String {
    match &node.value {
        Value::Scalar { text, .. } if !node.is_null() => format!("{text:?}"),
        _ => node.kind().to_owned(),
    }
}

/// Why a name cannot be an identifier, or `None`.
fn identifier_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".into());
    }
    if name.chars().any(char::is_control) {
        return Some("contains a control character".into());
    }
    // As for user names: invisible and bidirectional-override characters
    // would make a name print as another.
    if let Some(c) = name.chars().find(|&c| users_file::is_format_character(c)) {
        return Some(format!(
            "contains the invisible or bidirectional formatting character U+{:04X}",
            u32::from(c)
        ));
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Some(format!(
            "is {} bytes long; PostgreSQL truncates names to 63 bytes",
            name.len()
        ));
    }
    None
}

/// `statement_timeout`, `auto_explain.log_min_duration`: what `SET` takes
/// as a parameter name.
fn is_setting_name(name: &str) -> bool {
    let part = |p: &str| {
        let mut chars = p.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let parts: Vec<&str> = name.split('.').collect();
    name.len() <= MAX_IDENTIFIER_BYTES && parts.len() <= 2 && parts.iter().all(|p| part(p))
}

/// Database names the server or pgtenant itself relies on.
const RESERVED_DATABASES: &[&str] = &["postgres", "template0", "template1"];

/// The result of merging the users input and the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    pub desired: Desired,
    /// Every `password_file`, to watch.
    pub password_files: Vec<PathBuf>,
}

/// Merges the users (file or directory) and the config into the desired
/// state, checking everything that spans both: passwords, tenants vs
/// readers and writers, databases claimed twice.
pub fn merge(
    users: Parsed,
    users_path: &Path,
    config: &Config,
    admin_user: &str,
) -> Result<Merged, ConfigError> {
    let mut w = Walk {
        file: config.path.clone(),
        problems: Vec::new(),
    };
    let mut password_files = Vec::new();
    let configured: HashMap<&str, &TenantConfig> = config
        .tenants
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    // Readers and writers: role -> (first position, password file).
    let mut member_order: Vec<&MemberConfig> = Vec::new();
    let mut member_first: HashMap<&str, &MemberConfig> = HashMap::new();
    for t in &config.tenants {
        if let Err(p) = users_file::validate_role(&t.name, admin_user) {
            w.err(t.pos, p.to_string());
        }
        let mut mine: HashMap<&str, (Access, Pos)> = HashMap::new();
        for (access, list) in [(Access::Reader, &t.readers), (Access::Writer, &t.writers)] {
            for m in list {
                if let Some((other, pos)) = mine.get(m.name.as_str()) {
                    w.err(
                        m.pos,
                        format!(
                            "{:?} is already a {} of tenant {:?} (line {} column {})",
                            m.name,
                            other.as_str(),
                            t.name,
                            pos.line,
                            pos.column
                        ),
                    );
                    continue;
                }
                mine.insert(&m.name, (access, m.pos));
                if let Some(other) = configured.get(m.name.as_str()) {
                    w.err(
                        m.pos,
                        format!(
                            "{:?} is a tenant (line {} column {}); a reader or writer cannot be one",
                            m.name, other.pos.line, other.pos.column
                        ),
                    );
                    continue;
                }
                if let Err(p) = users_file::validate_role(&m.name, admin_user) {
                    w.err(m.pos, p.to_string());
                    continue;
                }
                match member_first.get(m.name.as_str()) {
                    None => {
                        member_first.insert(&m.name, m);
                        member_order.push(m);
                    }
                    Some(first) => {
                        if m.password_file.is_some() && first.password_file != m.password_file {
                            w.err(
                                m.pos,
                                format!(
                                    "{:?} has a different password_file at line {} column {}; give it once",
                                    m.name, first.pos.line, first.pos.column
                                ),
                            );
                        }
                    }
                }
            }
        }
    }
    // Passwords from the users input, by name.
    let mut lines: HashMap<String, (Password, Origin)> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for t in users.desired.tenants {
        order.push(t.role.clone());
        lines.insert(t.role, (t.password, t.origin));
    }
    let mut read_password =
        |w: &mut Walk, name: &str, file: &Option<PasswordFile>| -> Option<(Password, Origin)> {
            let line = lines.get(name).cloned();
            match (line, file) {
                (Some(_), Some(f)) => {
                    w.err(
                        f.pos,
                        format!(
                            "{name:?} has a line in {} and a password_file; give one",
                            users_path.display()
                        ),
                    );
                    None
                }
                (Some(line), None) => Some(line),
                (None, Some(f)) => {
                    password_files.push(f.path.clone());
                    match crate::input::secret_file::read_secret_file(&f.path) {
                        Ok(p) if p.is_empty() => {
                            w.err(
                                f.pos,
                                format!("password_file {} is empty", f.path.display()),
                            );
                            None
                        }
                        Ok(p) => Some((
                            Password::new(p),
                            Origin {
                                file: config.path.clone(),
                                line: f.pos.line,
                            },
                        )),
                        Err(e) => {
                            w.err(f.pos, e.to_string());
                            None
                        }
                    }
                }
                (None, None) => None,
            }
        };
    let mut tenants = Vec::new();
    let mut members = Vec::new();
    // Tenants: the users input's order, then the config's own.
    let mut names: Vec<&str> = order
        .iter()
        .map(String::as_str)
        .filter(|n| !member_first.contains_key(n))
        .collect();
    for t in &config.tenants {
        if !lines.contains_key(&t.name) {
            names.push(&t.name);
        }
    }
    for name in names {
        let spec = configured.get(name).copied();
        let file = spec.and_then(|s| s.password_file.clone());
        let Some((password, origin)) = read_password(&mut w, name, &file) else {
            if let Some(s) = spec {
                if s.password_file.is_none() {
                    w.err(
                        s.pos,
                        format!(
                            "no password for tenant {name:?}: no line in {} and no password_file",
                            users_path.display()
                        ),
                    );
                }
            }
            continue;
        };
        let mut tenant = Tenant::with_defaults(name.to_owned(), password, origin);
        if let Some(s) = spec {
            if let Some((_, dbs)) = &s.databases {
                if !dbs.is_empty() {
                    tenant.databases = dbs.iter().map(|(_, d)| d.clone()).collect();
                    tenant.database = tenant.databases[0].name.clone();
                }
            }
            tenant.connection_limit = s.connection_limit;
            tenant.settings = s.settings.clone();
            tenant.members = s
                .readers
                .iter()
                .map(|m| (m.name.clone(), Access::Reader))
                .chain(s.writers.iter().map(|m| (m.name.clone(), Access::Writer)))
                .collect();
        }
        tenants.push(tenant);
    }
    for m in member_order {
        let Some((password, origin)) = read_password(&mut w, &m.name, &m.password_file) else {
            if m.password_file.is_none() {
                w.err(
                    m.pos,
                    format!(
                        "no password for {:?}: no line in {} and no password_file",
                        m.name,
                        users_path.display()
                    ),
                );
            }
            continue;
        };
        members.push(Member {
            role: m.name.clone(),
            password,
            origin,
        });
    }
    check_databases(&mut w, &tenants, config);
    check_case(&mut w, &tenants, &members, config);
    if !w.problems.is_empty() {
        w.problems.sort_by_key(|p| p.pos);
        return Err(ConfigError::Invalid(w.problems));
    }
    Ok(Merged {
        desired: Desired { tenants, members },
        password_files,
    })
}

/// Where the config mentions a tenant's database (or the tenant itself for
/// its default `<name>_db`).
fn database_pos(config: &Config, tenant: &str, index: usize) -> Pos {
    config
        .tenants
        .iter()
        .find(|t| t.name == tenant)
        .map(|t| match &t.databases {
            Some((_, dbs)) => dbs.get(index).map_or(t.pos, |(p, _)| *p),
            None => t.pos,
        })
        .unwrap_or_default()
}

fn check_databases(w: &mut Walk, tenants: &[Tenant], config: &Config) {
    let mut claimed: HashMap<String, (&str, &str)> = HashMap::new();
    for t in tenants {
        for (i, db) in t.databases.iter().enumerate() {
            let pos = database_pos(config, &t.role, i);
            if RESERVED_DATABASES
                .iter()
                .any(|r| r.eq_ignore_ascii_case(&db.name))
            {
                w.err(pos, format!("database name {:?} is reserved", db.name));
            }
            let key = db.name.to_lowercase();
            if let Some((owner, first)) = claimed.get(&key) {
                let same = if *first == db.name {
                    String::new()
                } else {
                    format!(" (as {first:?}: names that differ only in case are refused)")
                };
                w.err(
                    pos,
                    format!(
                        "database {:?} is claimed by tenant {owner:?} too{same}",
                        db.name
                    ),
                );
                continue;
            }
            claimed.insert(key, (&t.role, &db.name));
        }
    }
}

/// Tenants and members that differ only in case are refused, as in the
/// users file.
fn check_case(w: &mut Walk, tenants: &[Tenant], members: &[Member], config: &Config) {
    let mut seen: HashSet<String> = HashSet::new();
    let mut first: HashMap<String, String> = HashMap::new();
    for name in tenants
        .iter()
        .map(|t| &t.role)
        .chain(members.iter().map(|m| &m.role))
    {
        let lower = name.to_lowercase();
        if !seen.insert(lower.clone()) {
            let other = first.get(&lower).cloned().unwrap_or_default();
            let pos = config
                .tenants
                .iter()
                .find_map(|t| {
                    (t.name == *name).then_some(t.pos).or_else(|| {
                        t.readers
                            .iter()
                            .chain(&t.writers)
                            .find(|m| m.name == *name)
                            .map(|m| m.pos)
                    })
                })
                .unwrap_or_default();
            w.err(
                pos,
                format!("{name:?} differs only in letter case from {other:?}"),
            );
        } else {
            first.insert(lower, name.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> String {
        match parse(Path::new("pgtenant.yaml"), text.as_bytes()) {
            Err(ConfigError::Invalid(p)) => display_problems(&p),
            other => panic!("expected problems, got {other:?}"),
        }
    }

    fn merged(users: &str, text: &str) -> Result<Merged, String> {
        let config =
            parse(Path::new("pgtenant.yaml"), text.as_bytes()).map_err(|e| e.to_string())?;
        let users = users_file::parse(Path::new("users"), users.as_bytes(), "admin").unwrap();
        merge(users, Path::new("users"), &config, "admin").map_err(|e| e.to_string())
    }

    const EXAMPLE: &str = include_str!("../../examples/pgtenant.yaml");

    #[test]
    fn the_example_parses() {
        let c = parse(Path::new("examples/pgtenant.yaml"), EXAMPLE.as_bytes()).unwrap();
        let names: Vec<&str> = c.tenants.iter().map(|t| t.name.as_str()).collect();
        assert!(names.contains(&"gitlab") && names.contains(&"synapse"));
    }

    #[test]
    fn the_issue_example_parses_and_merges() {
        let text = r#"
version: 1
tenants:
  keycloak: {}
  harbor:
    databases: [harbor_db, harbor_notary_server, harbor_notary_signer]
  gitlab:
    connection_limit: 60
    settings:
      statement_timeout: 60s
      search_path: [gitlab, public]
    databases:
      - name: gitlab_db
        extensions: [pg_trgm, {name: btree_gist, version: "1.7"}]
        schemas: [gitlab]
        connection_limit: 80
    readers: [grafana]
    writers: [gitlab_sidekiq]
  synapse:
    databases:
      - {name: synapse, template: template0, encoding: UTF8, locale: C}
"#;
        let users =
            "keycloak:a\nharbor:b\ngitlab:c\ngrafana:d\ngitlab_sidekiq:e\nsynapse:f\nplain:g\n";
        let m = merged(users, text).unwrap();
        let d = &m.desired;
        let roles: Vec<&str> = d.tenants.iter().map(|t| t.role.as_str()).collect();
        assert_eq!(roles, ["keycloak", "harbor", "gitlab", "synapse", "plain"]);
        assert_eq!(
            d.members
                .iter()
                .map(|m| m.role.as_str())
                .collect::<Vec<_>>(),
            ["grafana", "gitlab_sidekiq"]
        );
        let gitlab = &d.tenants[2];
        assert_eq!(gitlab.connection_limit, Some(60));
        assert_eq!(
            gitlab.databases[0].extensions[1].version.as_deref(),
            Some("1.7")
        );
        assert_eq!(gitlab.databases[0].connection_limit, Some(80));
        assert_eq!(
            gitlab.settings[1].value,
            SettingValue::List(vec!["gitlab".into(), "public".into()])
        );
        assert_eq!(
            gitlab.members,
            [
                ("grafana".to_owned(), Access::Reader),
                ("gitlab_sidekiq".to_owned(), Access::Writer)
            ]
        );
        assert_eq!(d.tenants[1].databases.len(), 3);
        assert_eq!(d.tenants[3].databases[0].locale.as_deref(), Some("C"));
        assert_eq!(d.tenants[4].database, "plain_db");
    }

    #[test]
    fn every_kind_of_problem_has_a_position() {
        insta::assert_snapshot!(problems("version: 2\ntenants:\n  a:\n    databse: [x]\n    connection_limit: lots\n    databases:\n      - name: b\n        extensions: [{name: e, colour: red}]\n      - 42x: 1\n    settings:\n      \"bad name\": 1\n      ok: {a: 1}\n    readers: grafana\n"), @r#"
        pgtenant.yaml:1:10: unknown version "2": this pgtenant reads version 1
        pgtenant.yaml:4:5: unknown key "databse" in tenant "a"; expected one of: password_file, connection_limit, settings, databases, readers, writers
        pgtenant.yaml:5:23: connection_limit: expected a whole number, -1 (no limit) or more, found "lots"
        pgtenant.yaml:8:32: unknown key "colour" in an extension; expected one of: name, schema, version
        pgtenant.yaml:9:9: unknown key "42x" in a database; expected one of: name, extensions, schemas, connection_limit, template, encoding, locale
        pgtenant.yaml:9:9: a database needs a name
        pgtenant.yaml:11:7: setting name "bad name" is not a valid parameter name
        pgtenant.yaml:12:11: setting "ok": expected a value or a list of values, found a mapping
        pgtenant.yaml:13:14: readers: expected a list, found a scalar
        "#);
        insta::assert_snapshot!(problems("tenants:\n  a: {}\n  a: {}\n"), @r#"pgtenant.yaml:3:3: duplicate key "a" (first at line 2 column 3)"#);
        insta::assert_snapshot!(problems("tenants: [a, b]\n"), @"pgtenant.yaml:1:10: tenants: expected a mapping, found a list");
    }

    #[test]
    fn format_characters_in_names_are_refused() {
        let text = "tenants:\n  a:\n    databases:\n      - name: \"a\\u202Eb\"\n        schemas: [\"s\\u200Bt\"]\n";
        let p = problems(text);
        assert!(p.contains("U+202E"), "{p}");
        assert!(p.contains("U+200B"), "{p}");
        assert!(
            !p.contains('\u{202E}') && !p.contains('\u{200B}'),
            "printed raw: {p}"
        );
    }

    #[test]
    fn cross_checks() {
        let text = "tenants:\n  a:\n    databases: [shared, postgres]\n  b:\n    databases: [Shared]\n    readers: [a, r]\n    writers: [r]\n  c: {}\n";
        insta::assert_snapshot!(merged("a:1\nb:2\nr:3\n", text).unwrap_err(), @r#"
        pgtenant.yaml:3:25: database name "postgres" is reserved
        pgtenant.yaml:5:17: database "Shared" is claimed by tenant "a" too (as "shared": names that differ only in case are refused)
        pgtenant.yaml:6:15: "a" is a tenant (line 2 column 3); a reader or writer cannot be one
        pgtenant.yaml:7:15: "r" is already a reader of tenant "b" (line 6 column 18)
        pgtenant.yaml:8:3: no password for tenant "c": no line in users and no password_file
        "#);
    }

    #[test]
    fn a_member_line_is_not_a_tenant() {
        let m = merged(
            "a:1\ngrafana:2\n",
            "tenants:\n  a:\n    readers: [grafana]\n",
        )
        .unwrap();
        assert_eq!(m.desired.tenants.len(), 1);
        assert_eq!(m.desired.members[0].role, "grafana");
        assert_eq!(m.desired.members[0].password.expose(), "2");
    }

    #[test]
    fn password_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret\n\n").unwrap();
        let text = format!(
            "tenants:\n  s:\n    password_file: {}\n    readers: [{{name: r, password_file: {}}}]\n",
            f.display(),
            f.display()
        );
        let m = merged("", &text).unwrap();
        assert_eq!(m.desired.tenants[0].password.expose(), "s3cret");
        assert_eq!(m.desired.members[0].password.expose(), "s3cret");
        assert_eq!(m.password_files.len(), 2);
        let missing = "tenants:\n  s:\n    password_file: /nonexistent/pw\n";
        let e = merged("", missing).unwrap_err();
        assert!(
            e.starts_with("pgtenant.yaml:3:20: failed to read /nonexistent/pw"),
            "{e}"
        );
        assert!(!e.contains("s3cret"));
    }

    #[test]
    fn empty_config_is_the_users_file() {
        let m = merged("a:1\n", "").unwrap();
        assert_eq!(m.desired.tenants.len(), 1);
        let m = merged("a:1\n", "version: 1\ntenants:\n").unwrap();
        assert_eq!(m.desired.tenants[0].databases.len(), 1);
    }

    #[test]
    fn schema_keys_match_the_parser() {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).expect("valid JSON");
        let keys = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v["properties"]
                .as_object()
                .expect("properties")
                .keys()
                .cloned()
                .collect();
            k.sort();
            assert_eq!(v["additionalProperties"], serde_json::Value::Bool(false));
            k
        };
        let sorted = |k: &[&str]| {
            let mut k: Vec<String> = k.iter().map(|s| s.to_string()).collect();
            k.sort();
            k
        };
        let defs = &schema["$defs"];
        assert_eq!(keys(&schema), sorted(TOP_KEYS));
        assert_eq!(keys(&defs["tenant"]), sorted(TENANT_KEYS));
        assert_eq!(keys(&defs["databaseObject"]), sorted(DATABASE_KEYS));
        assert_eq!(keys(&defs["extensionObject"]), sorted(EXTENSION_KEYS));
        assert_eq!(keys(&defs["memberObject"]), sorted(MEMBER_KEYS));
    }
}
