//! `ScramVerifier::parse` on arbitrary text: never panics; what parses
//! round-trips through `Display` byte for byte (the parser is strict, so the
//! canonical form is the only one accepted). With a small iteration count, `matches` and SASLprep run too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgtenant::reconcile::scram::{saslprep, ScramVerifier};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line is the verifier, the rest a candidate password.
    let (verifier, password) = text.split_once('\n').unwrap_or((text, ""));
    match ScramVerifier::parse(verifier) {
        Ok(v) => {
            assert_eq!(v.to_string(), verifier, "parse/Display round trip");
            assert!(v.iterations >= 1 && v.iterations <= i32::MAX as u32);
            assert!(!v.salt.is_empty());
            // Debug never shows the keys.
            let debug = format!("{v:?}");
            assert!(!debug.contains(verifier.rsplit(':').next().unwrap_or_default()));
            // Bounded work: the key derivation costs `iterations` HMACs.
            if v.iterations <= 64 {
                let _ = v.matches(password);
                let again = ScramVerifier::compute(password, &v.salt, v.iterations);
                assert!(again.matches(password));
            }
        }
        // The error type carries no data: its messages cannot quote the input.
        Err(_) => {}
    }
    let _ = saslprep(password);
});
