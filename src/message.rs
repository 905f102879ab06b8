//! How pgtenant's messages read: lowercase fragments, in the words of the
//! usual C library messages rather than Rust's `... (os error 13)` form.
//! One helper, used wherever an OS or driver error becomes part of a message.

/// `"Permission denied (os error 13)"` -> `"permission denied"`: drops the
/// errno suffix (it adds nothing for people) and lowercases the first letter.
pub(crate) fn os_cause(text: &str) -> String {
    let text = match text.find(" (os error ") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::os_cause;

    #[test]
    fn strips_the_errno_and_lowercases() {
        assert_eq!(
            os_cause("Permission denied (os error 13)"),
            "permission denied"
        );
        assert_eq!(os_cause("Connection refused"), "connection refused");
        assert_eq!(os_cause("already lower (os error 5)"), "already lower");
        assert_eq!(os_cause(""), "");
    }
}
