//! Room ownership from Matrix power levels (CONTRACT section 7): owners
//! are exactly server admins and users whose Matrix login proved enough
//! power *in the Matrix room this Jitsi room stands for*.

use serde::{Deserialize, Serialize};

use super::is_healthcheck;
use crate::room::name_for_room_id;

/// One XMPP session of the user in question.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SessionClaim {
    /// `session.auth_matrix_user_verification_is_owner`.
    #[serde(default)]
    pub is_owner: bool,
    /// `session.jitsi_meet_context_matrix.room_id`: the room UVS checked.
    #[serde(default)]
    pub room_id: Option<String>,
}

/// What the shim knows about a user and a room.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OwnerInput {
    pub room_node: String,
    #[serde(default)]
    pub is_admin: bool,
    /// The user's sessions (one on join; all of the bare jid's on a grant).
    #[serde(default)]
    pub sessions: Vec<SessionClaim>,
    /// Current affiliation in the room (nil when none).
    #[serde(default)]
    pub affiliation: Option<String>,
}

/// The affiliation to set when a user joins, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JoinDecision {
    pub set_affiliation: Option<&'static str>,
    pub why: &'static str,
}

fn privileged(input: &OwnerInput) -> Option<&'static str> {
    if input.is_admin {
        return Some("server admin");
    }
    let node = input.room_node.to_ascii_lowercase();
    input
        .sessions
        .iter()
        .any(|s| s.is_owner && s.room_id.as_deref().is_some_and(|id| name_for_room_id(id) == node))
        .then_some("Matrix power level in this room")
}

/// Decide the affiliation of a user who just joined.
pub fn on_join(input: &OwnerInput) -> JoinDecision {
    if is_healthcheck(&input.room_node) {
        return JoinDecision { set_affiliation: None, why: "healthcheck room" };
    }
    let current = input.affiliation.as_deref();
    match (privileged(input), current) {
        (Some(_), Some("owner")) => JoinDecision { set_affiliation: None, why: "already owner" },
        (Some(why), _) => JoinDecision { set_affiliation: Some("owner"), why },
        (None, None | Some("owner")) => {
            JoinDecision { set_affiliation: Some("member"), why: "no Matrix power in this room" }
        }
        (None, Some(_)) => JoinDecision { set_affiliation: None, why: "keeps its affiliation" },
    }
}

/// May `affiliation` be granted to this user (`muc-pre-set-affiliation`)?
/// Only owner grants are ever refused.
pub fn allow_grant(input: &OwnerInput, affiliation: &str) -> bool {
    affiliation != "owner" || is_healthcheck(&input.room_node) || privileged(input).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM_A: &str = "!a:matrix.org";
    const ROOM_B: &str = "!b:matrix.org";

    fn input(room: &str, is_owner: bool, verified_for: &str, affiliation: Option<&str>) -> OwnerInput {
        OwnerInput {
            room_node: name_for_room_id(room),
            is_admin: false,
            sessions: vec![SessionClaim { is_owner, room_id: Some(verified_for.into()) }],
            affiliation: affiliation.map(str::to_string),
        }
    }

    #[test]
    fn on_join_table() {
        let cases = [
            ("privileged, no affiliation", input(ROOM_A, true, ROOM_A, None), Some("owner")),
            ("privileged, member", input(ROOM_A, true, ROOM_A, Some("member")), Some("owner")),
            ("privileged, owner", input(ROOM_A, true, ROOM_A, Some("owner")), None),
            ("unprivileged creator (owner)", input(ROOM_A, false, ROOM_A, Some("owner")), Some("member")),
            ("unprivileged, none", input(ROOM_A, false, ROOM_A, None), Some("member")),
            ("unprivileged, member", input(ROOM_A, false, ROOM_A, Some("member")), None),
            ("unprivileged, admin", input(ROOM_A, false, ROOM_A, Some("admin")), None),
            ("owner of A joins B", input(ROOM_B, true, ROOM_A, None), Some("member")),
            ("owner of A joins B as owner", input(ROOM_B, true, ROOM_A, Some("owner")), Some("member")),
        ];
        for (name, i, want) in cases {
            assert_eq!(on_join(&i).set_affiliation, want, "{name}");
        }
    }

    #[test]
    fn on_join_admins_and_healthchecks() {
        let mut admin = input(ROOM_A, false, ROOM_B, None);
        admin.is_admin = true;
        assert_eq!(on_join(&admin).set_affiliation, Some("owner"));
        let mut health = input(ROOM_A, false, ROOM_A, Some("owner"));
        health.room_node = "__jicofo-health-check-x".into();
        assert_eq!(on_join(&health), JoinDecision { set_affiliation: None, why: "healthcheck room" });
        // Upper-case room nodes still match the verified room.
        let mut upper = input(ROOM_A, true, ROOM_A, None);
        upper.room_node = upper.room_node.to_uppercase();
        assert_eq!(on_join(&upper).set_affiliation, Some("owner"));
    }

    #[test]
    fn allow_grant_only_refuses_unprivileged_owners() {
        let cases = [
            (input(ROOM_A, false, ROOM_A, None), "owner", false),
            (input(ROOM_A, false, ROOM_A, None), "member", true),
            (input(ROOM_A, false, ROOM_A, None), "admin", true),
            (input(ROOM_A, false, ROOM_A, None), "none", true),
            (input(ROOM_A, true, ROOM_A, None), "owner", true),
            (input(ROOM_B, true, ROOM_A, None), "owner", false),
            (OwnerInput { room_node: name_for_room_id(ROOM_A), ..Default::default() }, "owner", false),
        ];
        for (i, aff, want) in cases {
            assert_eq!(allow_grant(&i, aff), want, "{aff} {:?}", i.sessions);
        }
        let mut admin = OwnerInput { room_node: "x".into(), ..Default::default() };
        admin.is_admin = true;
        assert!(allow_grant(&admin, "owner"));
    }
}
