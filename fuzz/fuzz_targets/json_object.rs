//! The claims' JSON decoder (`json::Object`, a flat list of nodes over the
//! decoded text) on any bytes: never panics, accepts exactly what
//! serde_json reads as one JSON object, and reads back the same values.
#![no_main]

use jitsi_prosody_security_fuzz as f;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let ours = f::json_object(data);
    let reference = match serde_json::from_slice::<Value>(data) {
        Ok(v @ Value::Object(_)) => Some(v),
        _ => None,
    };
    assert_eq!(ours, reference, "input {:?}", String::from_utf8_lossy(data));
});
