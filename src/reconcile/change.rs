//! The vocabulary of a plan, as people and scripts read it: the kinds of
//! object, the attributes a change sets with their values before and after,
//! and the conflicts with their stable reason codes. These are the JSON
//! contract of `plan -o json` (`docs/schema/plan.schema.json`); they live
//! apart from `plan.rs` so that `plan_config.rs`, which `plan.rs` calls, can
//! use them without an import cycle.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Object {
    Role,
    Database,
    Extension,
    Schema,
    /// A reader's or writer's privileges in one database.
    Grant,
    /// A role setting (`ALTER ROLE ... SET`).
    Setting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
}

/// Why a password is (re)set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordReason {
    /// The role is created: it gets its first password.
    New,
    /// The stored secret does not match the desired password.
    Differs,
    /// The role has no password.
    Missing,
    /// An md5 secret on a server that asks for SCRAM: replaced once.
    #[serde(rename = "md5_upgrade")]
    Upgrade,
    /// The admin cannot read stored secrets, so it sets the password always.
    Unknown,
    /// The stored verifier asks for more key-derivation work than any
    /// verifier pgtenant makes: it is not checked, it is replaced.
    Excessive,
}

/// An attribute of an object that a change sets. The JSON names are part of
/// the plan's contract (`docs/schema/plan.schema.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Attribute {
    /// The role may log in.
    Login,
    /// The role's password (its value never appears: `from`/`to` are null).
    Password,
    /// The role's `VALID UNTIL` (an expired role cannot log in).
    ValidUntil,
    /// The role's or database's connection limit (0 blocks every login).
    ConnectionLimit,
    /// The database accepts connections (`datallowconn`).
    AllowConnections,
    /// The database's owner.
    Owner,
    /// PUBLIC holds CONNECT on the database.
    PublicConnect,
    /// PUBLIC holds TEMPORARY on the database.
    PublicTemporary,
    /// The owner of schema `public` in the database (14 and older).
    PublicSchemaOwner,
    /// PUBLIC holds CREATE on schema `public` in the database (14 and older).
    PublicSchemaCreate,
    /// The database's template, at creation (config).
    Template,
    /// The database's encoding, at creation (config).
    Encoding,
    /// The database's locale (LC_COLLATE and LC_CTYPE), at creation (config).
    Locale,
    /// A reader or writer granted CONNECT on the database (config).
    ConnectGrant,
    /// An extension's version; `to` null: the server's default version.
    Version,
    /// The schema an extension goes into.
    Schema,
    /// The role a setting is set for.
    Role,
    /// A role setting's value.
    Value,
    /// A member's access to the tenant: `reader` or `writer`.
    Access,
    /// Schemas of the tenant the member gets USAGE on.
    SchemaUsage,
    /// Schemas whose tables the member gets its access's privileges on
    /// (reader: SELECT; writer: SELECT, INSERT, UPDATE, DELETE).
    TablePrivileges,
    /// Schemas whose sequences the member gets its access's privileges on
    /// (reader: SELECT; writer: SELECT, USAGE).
    SequencePrivileges,
    /// Kinds of object (tables, sequences, schemas) the tenant's default
    /// privileges will grant the member on.
    DefaultPrivileges,
}

/// A value before or after a change: `null` in JSON where the object does not
/// exist yet or where the value is a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Text(String),
    List(Vec<String>),
}

/// One attribute set by a change: `from` what the catalog holds `to` what the
/// input asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttributeChange {
    pub attribute: Attribute,
    pub from: Option<Value>,
    pub to: Option<Value>,
    /// Why a password is set; null for every other attribute.
    pub reason: Option<PasswordReason>,
}

impl AttributeChange {
    pub(crate) fn new(attribute: Attribute, from: Option<Value>, to: Value) -> Self {
        AttributeChange {
            attribute,
            from,
            to: Some(to),
            reason: None,
        }
    }

    pub(crate) fn password(reason: PasswordReason) -> Self {
        AttributeChange {
            attribute: Attribute::Password,
            from: None,
            to: None,
            reason: Some(reason),
        }
    }
}

pub(crate) fn text(s: &str) -> Option<Value> {
    Some(Value::Text(s.to_owned()))
}

/// Why pgtenant refuses a tenant or leaves one of its objects alone, as a
/// stable code for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictReason {
    /// An existing role with SUPERUSER, CREATEROLE, REPLICATION or BYPASSRLS.
    PrivilegedRole,
    /// An existing role that is a member of another role.
    RoleMembership,
    /// An existing role without LOGIN that pgtenant did not create.
    UnmarkedNologin,
    /// An existing database owned by another role, holding objects of
    /// another role (or that could not be looked into).
    ForeignDatabase,
    /// The admin may not create or alter the tenant's role.
    AdminPrivilege,
    /// The server cannot install an extension (or that version) the config
    /// asks for: nothing of the tenant is changed.
    ExtensionUnavailable,
    /// An existing database was created with another encoding or locale
    /// than the config's: never re-created; the rest of the tenant goes on.
    CreationOptions,
    /// An extension is installed in another schema than the config's: never
    /// moved; the rest of the tenant goes on.
    ExtensionSchema,
}

impl ConflictReason {
    /// The JSON value, also used as a log field.
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictReason::PrivilegedRole => "privileged_role",
            ConflictReason::RoleMembership => "role_membership",
            ConflictReason::UnmarkedNologin => "unmarked_nologin",
            ConflictReason::ForeignDatabase => "foreign_database",
            ConflictReason::AdminPrivilege => "admin_privilege",
            ConflictReason::ExtensionUnavailable => "extension_unavailable",
            ConflictReason::CreationOptions => "creation_options",
            ConflictReason::ExtensionSchema => "extension_schema",
        }
    }
}

/// A tenant that pgtenant refuses to manage, or one object of it left as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub tenant: String,
    /// The object that stands in the way.
    pub object: Object,
    pub name: String,
    pub reason: ConflictReason,
    /// One line for people.
    pub message: String,
    /// Whether nothing of the tenant is changed (a refused role, an
    /// extension the server lacks), as opposed to one object left as it is.
    #[serde(skip)]
    pub blocking: bool,
    /// Shown before the changes: the server lacks something.
    #[serde(skip)]
    pub first: bool,
}

impl Conflict {
    /// A conflict about role `role` that blocks its whole tenant.
    pub(crate) fn role(role: &str, reason: ConflictReason, message: String) -> Self {
        Conflict {
            tenant: role.to_owned(),
            object: Object::Role,
            name: role.to_owned(),
            reason,
            message,
            blocking: true,
            first: false,
        }
    }
}
