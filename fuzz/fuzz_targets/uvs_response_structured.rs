//! The UVS decision on bodies built as JSON from the names the code looks
//! at (`results`, `user`, `power_levels`...) and small values of any type:
//! the shapes byte mutations of `uvs_response` rarely reach (an array where
//! an object belongs, a string level, a null). Same oracle.
#![no_main]

use arbitrary::Arbitrary;
use jitsi_prosody_security_fuzz as f;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    /// `None`: 200.
    status: Option<u16>,
    verify_membership: bool,
    body: Body,
}

#[derive(Arbitrary, Debug)]
enum Body {
    Object(Vec<(f::json::Key, f::json::Json)>),
    Any(f::json::Json),
}

fuzz_target!(|input: Input| {
    let status = input.status.unwrap_or(200);
    let body = match &input.body {
        Body::Object(fields) => f::json::object(fields),
        Body::Any(json) => json.value(),
    }
    .to_string()
    .into_bytes();
    let verdict = f::classify(status, &body, input.verify_membership);
    f::assert_uvs_verdict_follows_from_body(status, &body, input.verify_membership, &verdict);
});
