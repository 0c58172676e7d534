//! Room ownership from Matrix power levels (README "Room owners from Matrix
//! power levels"): owners, and admins, are exactly server admins and users
//! whose Matrix login proved enough power *in the Matrix room this Jitsi
//! room stands for*. `admin` gives the moderator role as `owner` does, so
//! the same rule holds for both.

use serde::{Deserialize, Serialize};

use super::is_healthcheck;
use crate::matrix::room::name_for_room_id;

/// One XMPP session of the user in question.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SessionClaim {
    /// The session's full JID (to name it in a [`FlagChange`]).
    #[serde(default)]
    pub jid: Option<String>,
    /// `session.matrix_user_id`: the Matrix user the login verified.
    #[serde(default)]
    pub user_id: Option<String>,
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

/// The affiliations that only the Matrix rule (or a server admin) may hold.
fn is_privileged_affiliation(affiliation: &str) -> bool {
    matches!(affiliation, "owner" | "admin")
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
        (None, None) => JoinDecision { set_affiliation: Some("member"), why: "no Matrix power in this room" },
        (None, Some(a)) if is_privileged_affiliation(a) => {
            JoinDecision { set_affiliation: Some("member"), why: "no Matrix power in this room" }
        }
        (None, Some(_)) => JoinDecision { set_affiliation: None, why: "keeps its affiliation" },
    }
}

/// May `affiliation` be granted to this user (`muc-pre-set-affiliation`)?
/// Only owner and admin grants are ever refused.
pub fn allow_grant(input: &OwnerInput, affiliation: &str) -> bool {
    !is_privileged_affiliation(affiliation) || is_healthcheck(&input.room_node) || privileged(input).is_some()
}

/// One session whose `auth_matrix_user_verification_is_owner` changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlagChange {
    pub jid: String,
    pub is_owner: bool,
}

/// What a Matrix power change means for a user: the sessions whose owner
/// flag changes, and the affiliation to set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PowerChange {
    pub flags: Vec<FlagChange>,
    pub set_affiliation: Option<&'static str>,
    pub why: &'static str,
}

/// The live resync found that Matrix user `user_id` should (`owner`) or
/// should not be owner of `matrix_room`. Only the sessions verified as that
/// user for that room get their flag rewritten (a session of the same
/// account verified for another room, or as someone else, keeps its own);
/// then the affiliation follows the same rule as on join.
pub fn on_power_change(input: &OwnerInput, matrix_room: &str, user_id: &str, owner: bool) -> PowerChange {
    let mut after = input.clone();
    let mut flags = Vec::new();
    for s in &mut after.sessions {
        let same = s.room_id.as_deref() == Some(matrix_room) && s.user_id.as_deref() == Some(user_id);
        if same && s.is_owner != owner {
            s.is_owner = owner;
            if let Some(jid) = &s.jid {
                flags.push(FlagChange { jid: jid.clone(), is_owner: owner });
            }
        }
    }
    let decision = on_join(&after);
    PowerChange { flags, set_affiliation: decision.set_affiliation, why: decision.why }
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
            sessions: vec![SessionClaim { is_owner, room_id: Some(verified_for.into()), ..Default::default() }],
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
            ("unprivileged, admin (admin is like owner)", input(ROOM_A, false, ROOM_A, Some("admin")), Some("member")),
            ("privileged, admin", input(ROOM_A, true, ROOM_A, Some("admin")), Some("owner")),
            ("unprivileged, outcast", input(ROOM_A, false, ROOM_A, Some("outcast")), None),
            ("owner of A joins B as admin", input(ROOM_B, true, ROOM_A, Some("admin")), Some("member")),
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
    fn allow_grant_refuses_unprivileged_owners_and_admins() {
        let cases = [
            (input(ROOM_A, false, ROOM_A, None), "owner", false),
            (input(ROOM_A, false, ROOM_A, None), "member", true),
            (input(ROOM_A, false, ROOM_A, None), "admin", false),
            (input(ROOM_A, false, ROOM_A, None), "outcast", true),
            (input(ROOM_A, true, ROOM_A, None), "admin", true),
            (input(ROOM_B, true, ROOM_A, None), "admin", false),
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
        assert!(allow_grant(&admin, "admin"), "server admins keep both");
        let health = OwnerInput { room_node: "__jicofo-health-check-1".into(), ..Default::default() };
        assert!(allow_grant(&health, "admin"));
    }

    fn session(jid: &str, user: &str, room: &str, is_owner: bool) -> SessionClaim {
        SessionClaim { jid: Some(jid.into()), user_id: Some(user.into()), room_id: Some(room.into()), is_owner }
    }

    #[test]
    fn on_power_change_table() {
        let room_a = name_for_room_id(ROOM_A);
        let with = |sessions: Vec<SessionClaim>, affiliation: Option<&str>, is_admin: bool| OwnerInput {
            room_node: room_a.clone(),
            is_admin,
            sessions,
            affiliation: affiliation.map(str::to_string),
        };
        let flag = |jid: &str, is_owner: bool| FlagChange { jid: jid.into(), is_owner };
        let cases = [
            (
                "power drops: flag off, owner -> member",
                with(vec![session("u@h/1", "@u:x", ROOM_A, true)], Some("owner"), false),
                false,
                vec![flag("u@h/1", false)],
                Some("member"),
            ),
            (
                "power drops: admin by the Matrix rule -> member",
                with(vec![session("u@h/1", "@u:x", ROOM_A, true)], Some("admin"), false),
                false,
                vec![flag("u@h/1", false)],
                Some("member"),
            ),
            (
                "power rises: flag on, member -> owner",
                with(vec![session("u@h/1", "@u:x", ROOM_A, false)], Some("member"), false),
                true,
                vec![flag("u@h/1", true)],
                Some("owner"),
            ),
            (
                "no change: nothing to do",
                with(vec![session("u@h/1", "@u:x", ROOM_A, true)], Some("owner"), false),
                true,
                vec![],
                None,
            ),
            (
                "a session for another room keeps its flag; the drop still demotes",
                with(vec![session("u@h/1", "@u:x", ROOM_A, true), session("u@h/2", "@u:x", ROOM_B, true)], Some("owner"), false),
                false,
                vec![flag("u@h/1", false)],
                Some("member"),
            ),
            (
                "a session verified as another Matrix user keeps its flag (and its ownership)",
                with(vec![session("u@h/1", "@u:x", ROOM_A, true), session("u@h/2", "@v:x", ROOM_A, true)], Some("owner"), false),
                false,
                vec![flag("u@h/1", false)],
                None,
            ),
            (
                "server admins keep owner whatever their power",
                with(vec![session("u@h/1", "@u:x", ROOM_A, true)], Some("owner"), true),
                false,
                vec![flag("u@h/1", false)],
                None,
            ),
        ];
        for (name, i, owner, flags, affiliation) in cases {
            let got = on_power_change(&i, ROOM_A, "@u:x", owner);
            assert_eq!(got.flags, flags, "{name}");
            assert_eq!(got.set_affiliation, affiliation, "{name}");
        }
    }
}
