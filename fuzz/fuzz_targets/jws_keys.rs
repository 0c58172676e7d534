//! Public key parsing (hand-written PEM and DER reading in `jws`): PEM
//! text, DER wrapped in a PEM block (so the fuzzer gets past base64), and
//! JWK JSON, each then used to check a fuzzed signature. Never panics; a
//! key is only ever RS256 or ES256.
//!
//! Input layout: byte 0 picks the form (mod 4: PEM text, DER as `PUBLIC KEY`,
//! DER as `RSA PUBLIC KEY`, JWK JSON); bytes 1..3 (big-endian) are where the
//! key ends; the rest is split in half into message and signature.
#![no_main]

use data_encoding::BASE64;
use jitsi_prosody_security_fuzz as f;
use libfuzzer_sys::fuzz_target;

fn pem(label: &str, der: &[u8]) -> Vec<u8> {
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", BASE64.encode(der)).into_bytes()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let form = data[0] % 4;
    let rest = &data[3..];
    let key_len = (usize::from(u16::from_be_bytes([data[1], data[2]]))).min(rest.len());
    let (key, tail) = rest.split_at(key_len);
    let (message, sig) = tail.split_at(tail.len() / 2);
    let alg = match form {
        0 => f::public_key_from_pem(key, message, sig),
        1 => f::public_key_from_pem(&pem("PUBLIC KEY", key), message, sig),
        2 => f::public_key_from_pem(&pem("RSA PUBLIC KEY", key), message, sig),
        _ => match serde_json::from_slice(key) {
            Ok(jwk) => f::public_key_from_jwk(&jwk, message, sig),
            Err(_) => None,
        },
    };
    assert!(matches!(alg, None | Some("RS256") | Some("ES256")), "{alg:?}");
});
