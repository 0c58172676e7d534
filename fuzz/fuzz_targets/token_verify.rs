//! `Verifier::verify` (HS256 and RS256, built once) on any bytes: never
//! panics, and anything it accepts deserved it (see the oracle in src/lib.rs).
#![no_main]

use jitsi_prosody_security_fuzz as f;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for v in [f::hs256(), f::rs256()] {
        if let Ok(claims) = v.verify(data, f::NOW) {
            f::assert_verified_token_is_acceptable(v, data, &claims, f::NOW);
        }
    }
});
