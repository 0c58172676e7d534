//! Decisions, as pure functions: they take plain inputs gathered by the Lua
//! shim and return the actions the shim applies.

pub mod owner;
pub mod security;

/// Rooms jicofo creates for health checks; no policy ever touches them.
pub const HEALTHCHECK_PREFIX: &str = "__jicofo-health-check";

/// True for jicofo's health-check rooms.
pub fn is_healthcheck(room_node: &str) -> bool {
    room_node.starts_with(HEALTHCHECK_PREFIX)
}

/// Does a token's `room` claim cover the MUC room `room_node`? `*` covers
/// every room; otherwise the claim must name the room (ignoring case), with
/// or without Jitsi's `[tenant]` prefix. No claim covers every room: it can
/// only be absent when the admin set `asap_require_room_claim = false`.
pub fn claim_covers_room(claim: Option<&str>, room_node: &str) -> bool {
    let Some(claim) = claim else { return true };
    if claim == "*" || claim.eq_ignore_ascii_case(room_node) {
        return true;
    }
    match room_node.strip_prefix('[').and_then(|r| r.split_once(']')) {
        Some((_tenant, room)) => claim.eq_ignore_ascii_case(room),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_covers_room_cases() {
        let cases = [
            (Some("*"), "abc", true),
            (Some("abc"), "abc", true),
            (Some("ABC"), "abc", true),
            (Some("abc"), "[tenant]abc", true),
            (Some("abd"), "abc", false),
            (Some("abc"), "abcd", false),
            (Some("tenant"), "[tenant]abc", false),
            (None, "abc", true),
        ];
        for (claim, node, want) in cases {
            assert_eq!(claim_covers_room(claim, node), want, "{claim:?} {node}");
        }
    }

    #[test]
    fn healthcheck_rooms_are_recognised() {
        assert!(is_healthcheck("__jicofo-health-check-1234"));
        assert!(!is_healthcheck("room__jicofo-health-check"));
    }
}
