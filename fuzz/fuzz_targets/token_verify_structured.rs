//! `Verifier::verify` on tokens built from fuzzed parts, so that the fuzzer
//! gets past the base64 layer (and, with the right key, past the signature):
//! header and payload are JSON text or objects of known claims, base64url
//! encoded; the signature is made with the right key, a wrong one, the RSA
//! public key as an HMAC secret (HS/RS confusion), or is fuzzed bytes.
//!
//! Oracle: RS256 never verifies (nothing here is RSA-signed); HS256 verifies
//! only tokens signed with the right key whose header and claims pass.
#![no_main]

use arbitrary::Arbitrary;
use jitsi_prosody_security_fuzz as f;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use f::json::{Json, Key};
use serde_json::Value;

#[derive(Arbitrary, Debug)]
struct Input {
    header: Segment,
    payload: Segment,
    signature: Signature,
    rs256: bool,
    /// Seconds added to `NOW`.
    clock: i32,
    decoration: Decoration,
}

#[derive(Arbitrary, Debug)]
enum Segment {
    /// Any bytes (JSON text or not).
    Raw(Vec<u8>),
    /// A JSON object of known claim names and small values.
    Object(Vec<(Key, Json)>),
}

#[derive(Arbitrary, Debug)]
enum Signature {
    RightKey,
    WrongKey,
    PublicKeyAsSecret,
    Bytes(Vec<u8>),
    Text(String),
}

#[derive(Arbitrary, Debug)]
enum Decoration {
    None,
    /// `=` padding after the payload segment.
    PaddedPayload,
    LeadingSpace,
    TrailingNewline,
    ExtraSegment,
}

impl Segment {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Segment::Raw(b) => b.clone(),
            Segment::Object(fields) => f::json::object(fields).to_string().into_bytes(),
        }
    }
}

fn hmac(message: &str, secret: &[u8]) -> String {
    jsonwebtoken::crypto::sign(message.as_bytes(), &EncodingKey::from_secret(secret), Algorithm::HS256)
        .expect("HS256 signing works")
}

fuzz_target!(|input: Input| {
    let header = input.header.bytes();
    let payload = input.payload.bytes();
    let mut message = format!("{}.{}", f::b64(&header), f::b64(&payload));
    if matches!(input.decoration, Decoration::PaddedPayload) {
        message.push_str("==");
    }
    let signature = match &input.signature {
        Signature::RightKey => hmac(&message, f::SECRET),
        Signature::WrongKey => hmac(&message, b"not-the-secret"),
        Signature::PublicKeyAsSecret => hmac(&message, f::RSA_PUB),
        Signature::Bytes(b) => f::b64(b),
        Signature::Text(s) => s.clone(),
    };
    let mut token = format!("{message}.{signature}");
    match input.decoration {
        Decoration::LeadingSpace => token.insert(0, ' '),
        Decoration::TrailingNewline => token.push('\n'),
        Decoration::ExtraSegment => token.push_str(".e30"),
        Decoration::None | Decoration::PaddedPayload => {}
    }
    let now = (f::NOW as i64 + i64::from(input.clock)) as u64;
    let v = if input.rs256 { f::rs256() } else { f::hs256() };
    if let Ok(claims) = v.verify(token.as_bytes(), now) {
        assert!(!input.rs256, "RS256 verified a token nobody RSA-signed: {token}");
        assert!(matches!(input.signature, Signature::RightKey), "verified with a forged signature: {token}");
        f::assert_verified_token_is_acceptable(v, token.as_bytes(), &claims, now);
        let parsed: Value = serde_json::from_slice(&payload).expect("verified payload is JSON");
        assert_eq!(Value::Object(claims), parsed, "claims differ from the signed payload");
    }
    let _ = f::peek(token.as_bytes());
});
