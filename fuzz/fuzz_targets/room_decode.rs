//! Room names <-> Matrix room ids on fuzzed names and ids:
//! - `room_id_for_name` accepts a name only when it is the canonical
//!   (lower-cased) encoding of the id it returns;
//! - `check_room(name, id)` agrees with `room_id_for_name(name) == id`;
//! - `name_for_room_id` -> `room_id_for_name` gives the id back, in any case.
#![no_main]

use arbitrary::Arbitrary;
use jitsi_prosody_security_fuzz as f;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    name: &'a str,
    room_id: &'a str,
    /// Which letters of the encoded name to upper-case.
    case_mask: u64,
}

fn mixed_case(s: &str, mask: u64) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| if (mask >> (i % 64)) & 1 == 1 { c.to_ascii_uppercase() } else { c })
        .collect()
}

fuzz_target!(|input: Input| {
    let decoded = f::room_id_for_name(input.name);
    if let Ok(id) = &decoded {
        assert_eq!(f::name_for_room_id(id), input.name.to_ascii_lowercase(), "non-canonical name accepted");
    }
    let want = decoded.as_deref() == Ok(input.room_id);
    assert_eq!(f::check_room(input.name, input.room_id).is_ok(), want, "check_room disagrees");

    if !input.room_id.is_empty() {
        let name = f::name_for_room_id(input.room_id);
        assert_eq!(name, name.to_ascii_lowercase());
        for n in [name.clone(), mixed_case(&name, input.case_mask)] {
            assert_eq!(f::room_id_for_name(&n).as_deref(), Ok(input.room_id), "round trip of {n}");
            assert!(f::check_room(&n, input.room_id).is_ok());
        }
    }
});
