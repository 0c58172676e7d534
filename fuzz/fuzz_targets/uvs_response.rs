//! The UVS decision (`classify(status, body, verify_membership)`) on any
//! body: never panics, and the verdict follows from the body as the
//! contract says (see the oracle in src/lib.rs).
//!
//! Input layout: byte 0 picks the status (< 0xf0: 200, else bytes 1..3 as a
//! big-endian status) and, in its low bit, verify_membership; the rest is
//! the body.
#![no_main]

use jitsi_prosody_security_fuzz as f;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let verify_membership = first & 1 == 1;
    let (status, body) = if first < 0xf0 {
        (200, rest)
    } else if rest.len() >= 2 {
        (u16::from_be_bytes([rest[0], rest[1]]), &rest[2..])
    } else {
        return;
    };
    let verdict = f::classify(status, body, verify_membership);
    f::assert_uvs_verdict_follows_from_body(status, body, verify_membership, &verdict);
});
