//! `token::peek` on any bytes: never panics, and whatever it accepts has a
//! JSON object header whose `typ`, when present, is JWT.
#![no_main]

use jitsi_prosody_security_fuzz as f;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if f::peek(data).is_ok() {
        let header = f::header_of(data).expect("peeked token has a JSON object header");
        if let Some(t) = header.get("typ").filter(|t| !t.is_null()) {
            assert!(t.as_str().is_some_and(|t| t.eq_ignore_ascii_case("JWT")), "typ {t} accepted");
        }
    }
});
