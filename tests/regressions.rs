//! Bugs found by the property tests (tests/properties.rs) and the fuzzers
//! (fuzz/), one test each, named by the behaviour they pin. Each stays here
//! after its fix so the bug cannot come back.
//!
//! The calls into the crate go through the helpers in the first section
//! only: when a path or a signature moves, fix it there.

use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// The crate's API, in one place
// ---------------------------------------------------------------------------

/// The UVS decision as (code, is_owner): code is `ok`, `not_in_room`,
/// `invalid_token` or `invalid_response`.
fn classify(status: u16, body: &[u8], verify_membership: bool) -> (&'static str, bool) {
    let outcome = jitsi_security::matrix::verify::uvs::classify(status, body, verify_membership);
    (outcome.code(), outcome.is_owner())
}

fn classify_json(body: &Value) -> (&'static str, bool) {
    classify(200, body.to_string().as_bytes(), true)
}

// ---------------------------------------------------------------------------
// UVS answers
// ---------------------------------------------------------------------------

/// Found by proptest (`classify_fails_when_results_is_not_an_object`,
/// minimal input `results = []`). serde's derived `Deserialize` for a struct
/// also accepts a JSON array (fields in order), so `"results": [true, true]`
/// reads as `{"user": true, "room_membership": true}` and verifies, although
/// `UvsResponse::parse` documents "results must be an object of booleans".
/// Fail closed: anything but an object is a bad body.
#[test]
fn classify_refuses_results_that_is_an_array() {
    for results in [json!([true, true]), json!([true]), json!([])] {
        let body = json!({"results": results, "user_id": "@u:x"});
        assert_eq!(classify_json(&body).0, "invalid_response", "results {results}");
    }
}

/// Same cause, one level down: `power_levels` given as an array
/// `[room, user]` is read as `{"room": ..., "user": ...}` and makes the user
/// an owner, where a malformed `power_levels` must count as absent (not owner).
#[test]
fn classify_treats_power_levels_array_as_absent() {
    for pl in [json!([null, 100]), json!([{"state_default": 0}, 0])] {
        let body = json!({
            "results": {"user": true, "room_membership": true},
            "user_id": "@u:x",
            "power_levels": pl,
        });
        assert_eq!(classify_json(&body), ("ok", false), "power_levels {pl}");
    }
}
