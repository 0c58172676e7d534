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

/// Jitsi's `[tenant]room` node split into its tenant (if any) and room.
pub fn split_tenant(room_node: &str) -> (Option<&str>, &str) {
    match room_node.strip_prefix('[').and_then(|r| r.split_once(']')) {
        Some((tenant, room)) => (Some(tenant), room),
        None => (None, room_node),
    }
}

/// Is the MUC room `room_node` the room a token is for (CONTRACT 5, 9)?
///
/// - No `room` claim: no room (it can only be absent when the admin set
///   `asap_require_room_claim = false`, and then it grants nothing).
/// - A `[tenant]room` node: the token's tenant (`context.tenant`, else
///   `sub`) must be that tenant, ignoring case; a tenant of `*` (as Jitsi
///   allows in `sub`) is any tenant.
/// - Then the claim must be `*` or name the room (without its prefix, or
///   the whole node), ignoring case.
pub fn claim_covers_room(claim: Option<&str>, tenant: Option<&str>, room_node: &str) -> bool {
    let Some(claim) = claim else { return false };
    let (room_tenant, room) = split_tenant(room_node);
    if let Some(room_tenant) = room_tenant {
        if !tenant.is_some_and(|t| t == "*" || t.eq_ignore_ascii_case(room_tenant)) {
            return false;
        }
    }
    claim == "*" || claim.eq_ignore_ascii_case(room) || claim.eq_ignore_ascii_case(room_node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_covers_room_cases() {
        let cases = [
            (Some("*"), None, "abc", true),
            (Some("abc"), None, "abc", true),
            (Some("ABC"), None, "abc", true),
            (Some("abd"), None, "abc", false),
            (Some("abc"), None, "abcd", false),
            (None, None, "abc", false),
            (None, Some("t1"), "[t1]abc", false),
            // Tenants: the token's tenant must be the room's.
            (Some("abc"), Some("t1"), "[t1]abc", true),
            (Some("abc"), Some("T1"), "[t1]abc", true),
            (Some("abc"), Some("t1"), "[t2]abc", false),
            (Some("abc"), None, "[t2]abc", false),
            (Some("*"), Some("t1"), "[t1]xyz", true),
            (Some("*"), Some("t1"), "[t2]xyz", false),
            (Some("*"), Some("*"), "[t2]xyz", true),
            (Some("[t1]abc"), Some("t1"), "[t1]abc", true),
            (Some("[t1]abc"), Some("t2"), "[t1]abc", false),
            (Some("tenant"), Some("tenant"), "[tenant]abc", false),
        ];
        for (claim, tenant, node, want) in cases {
            assert_eq!(claim_covers_room(claim, tenant, node), want, "{claim:?} {tenant:?} {node}");
        }
    }

    #[test]
    fn healthcheck_rooms_are_recognised() {
        assert!(is_healthcheck("__jicofo-health-check-1234"));
        assert!(!is_healthcheck("room__jicofo-health-check"));
    }
}
