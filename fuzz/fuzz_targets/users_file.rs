//! `users_file::parse` on arbitrary bytes: never panics, and whatever it
//! returns obeys the documented contract (valid tenants, or errors pointing at
//! lines inside the input, none quoting a password).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pgtenant::input::users_file::{self, InputError};

/// `data` with the password part (after the first ':') of every UTF-8 line
/// replaced: each character by 'Q', NULs kept (they are an error of their own).
fn mask_passwords(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        let (body, cr) = match line.strip_suffix(b"\r") {
            Some(body) => (body, true),
            None => (line, false),
        };
        match std::str::from_utf8(body)
            .ok()
            .and_then(|l| l.split_once(':'))
        {
            Some((user, password)) => {
                out.extend_from_slice(user.as_bytes());
                out.push(b':');
                out.extend(
                    password
                        .chars()
                        .map(|c| if c == '\0' { b'\0' } else { b'Q' }),
                );
            }
            None => out.extend_from_slice(body),
        }
        if cr {
            out.push(b'\r');
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let line_count = data.split(|&b| b == b'\n').count();
    match users_file::parse(Path::new("f"), data, "admin") {
        Ok(parsed) => {
            for t in &parsed.desired.tenants {
                assert!(users_file::validate_role(&t.role, "admin").is_ok());
                assert_eq!(t.database, format!("{}_db", t.role));
                assert!(t.database.len() <= users_file::MAX_IDENTIFIER_BYTES);
                let password = t.password.expose();
                assert!(!password.is_empty());
                assert!(!password.contains('\0'));
                assert!(t.origin.line >= 1 && t.origin.line <= line_count);
            }
            for w in &parsed.warnings {
                assert!(w.origin.line >= 1 && w.origin.line <= line_count);
            }
        }
        Err(InputError::Invalid(errors)) => {
            assert!(!errors.is_empty());
            for e in &errors {
                assert!(e.origin.line >= 1 && e.origin.line <= line_count);
            }
            // Messages never depend on a password: with every password
            // replaced by another of the same shape (same length in chars,
            // NULs kept), the errors read exactly the same.
            let masked = mask_passwords(data);
            match users_file::parse(Path::new("f"), &masked, "admin") {
                Err(InputError::Invalid(again)) => {
                    let a: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    let b: Vec<String> = again.iter().map(ToString::to_string).collect();
                    assert_eq!(a, b, "an error message depends on a password");
                }
                other => panic!("masking passwords changed the outcome: {other:?}"),
            }
        }
        Err(other) => panic!("parse returned a non-parse error: {other}"),
    }
});
