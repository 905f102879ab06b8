//! The one type that holds a secret in clear text: a tenant's password, the
//! admin's password, a password found in a password file.
//!
//! Its `Debug` is redacted, so that settings and tenants can be logged and a
//! stray `{:?}` cannot leak it; the value is only reachable through
//! [`Password::expose`], which makes every place that reads it easy to find.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(value: impl Into<String>) -> Self {
        Password(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let p = Password::new("s3cret");
        assert_eq!(format!("{p:?}"), "Password(***)");
        assert_eq!(format!("{:?}", Some(p.clone())), "Some(Password(***))");
        assert_eq!(p.expose(), "s3cret");
    }
}
