//! On-demand lobby and password (docs/design.md, "Lobby, password, owners"): a token's
//! `context.room` turns the lobby on or off and sets or clears the password;
//! `context.user.security_bypass` skips both.
//!
//! One deliberate change from the original plugin: a token carrying
//! `context.room.lobby` or `context.room.password` is authoritative for the
//! room, so its holder passes the current lobby and password like a bypass
//! user (otherwise a lobby-off token could never reach a locked room).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{is_healthcheck, proof_refusal, Proof, Scope};

/// What the shim knows about a joining occupant and the room.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct JoinInput {
    /// Node part of the room's jid.
    pub room_node: String,
    /// Where the room lives (for the tenant rule).
    #[serde(default)]
    pub scope: Scope,
    /// What the session proved at login.
    #[serde(default)]
    pub proof: Proof,
    /// `session.jitsi_meet_context_room`.
    #[serde(default)]
    pub context_room: Option<Value>,
    /// `session.jitsi_meet_context_user`.
    #[serde(default)]
    pub context_user: Option<Value>,
    /// `room._data.lobbyroom ~= nil`.
    #[serde(default)]
    pub lobby_enabled: bool,
    /// The room's current password, if any.
    #[serde(default)]
    pub password: Option<String>,
    /// The joiner's current affiliation (nil when none).
    #[serde(default)]
    pub affiliation: Option<String>,
    /// Now, seconds since the epoch (grants lapse with the token).
    #[serde(default)]
    pub now: f64,
}

/// Actions for `muc-occupant-pre-join` (priority -2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PreJoinPlan {
    /// Put this password into the join stanza's MUC `<password/>`.
    pub inject_password: Option<String>,
    /// Make the joiner a `member` with role `participant`.
    pub grant_member: bool,
    /// Why nothing (or what) was done, for a debug log line.
    pub why: &'static str,
}

/// Lobby change for `muc-occupant-joined`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LobbyChange {
    Create,
    Destroy,
}

/// Actions for `muc-occupant-joined`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JoinedPlan {
    pub lobby: Option<LobbyChange>,
    /// Set the room password to this; `""` clears it.
    pub set_password: Option<String>,
    pub why: &'static str,
}

/// The token's wishes for the room, read leniently: a `lobby` that is not a
/// boolean or a `password` that is not a string is ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RoomWishes {
    lobby: Option<bool>,
    password: Option<String>,
}

fn wishes(input: &JoinInput) -> RoomWishes {
    let room = input.context_room.as_ref();
    RoomWishes {
        lobby: room.and_then(|r| r.get("lobby")).and_then(Value::as_bool),
        password: room
            .and_then(|r| r.get("password"))
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

fn security_bypass(input: &JoinInput) -> bool {
    input
        .context_user
        .as_ref()
        .and_then(|u| u.get("security_bypass"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Why a join is out of this policy's scope, if it is.
fn out_of_scope(input: &JoinInput) -> Option<&'static str> {
    if is_healthcheck(&input.room_node) {
        return Some("healthcheck room");
    }
    if !input.proof.has_token {
        return Some("session has no token");
    }
    if proof_refusal(&input.scope, &input.proof, &input.room_node).is_some() {
        return Some("token is not for this room (room claim or tenant)");
    }
    if !input.proof.grants_live(input.now) {
        return Some("the token has expired: its grants lapsed");
    }
    None
}

/// Decide what happens before the join is checked against lobby and password.
pub fn pre_join(input: &JoinInput) -> PreJoinPlan {
    if let Some(why) = out_of_scope(input) {
        return PreJoinPlan { why, ..Default::default() };
    }
    let w = wishes(input);
    let why = if security_bypass(input) {
        "security_bypass user"
    } else if w.lobby.is_some() || w.password.is_some() {
        "token carries room settings"
    } else {
        return PreJoinPlan { why: "no bypass and no room settings", ..Default::default() };
    };
    PreJoinPlan {
        inject_password: input.password.clone().filter(|p| !p.is_empty()),
        grant_member: input.affiliation.is_none(),
        why,
    }
}

/// Decide what changes once the occupant has joined.
pub fn joined(input: &JoinInput) -> JoinedPlan {
    if let Some(why) = out_of_scope(input) {
        return JoinedPlan { why, ..Default::default() };
    }
    let w = wishes(input);
    let lobby = match (w.lobby, input.lobby_enabled) {
        (Some(true), false) => Some(LobbyChange::Create),
        (Some(false), true) => Some(LobbyChange::Destroy),
        _ => None,
    };
    let set_password = w.password.filter(|p| Some(p) != input.password.as_ref() && !(p.is_empty() && input.password.is_none()));
    let why = if lobby.is_none() && set_password.is_none() { "room already as the token wants" } else { "token room settings" };
    JoinedPlan { lobby, set_password, why }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(context_room: Value, context_user: Value) -> JoinInput {
        JoinInput {
            room_node: "room1".into(),
            scope: Scope { home_domains: vec!["meet.example.com".into()], domain_verification: true },
            proof: Proof {
                has_token: true,
                token_room: Some("room1".into()),
                token_domain: Some("meet.example.com".into()),
                ..Default::default()
            },
            now: 1000.0,
            context_room: Some(context_room),
            context_user: Some(context_user),
            ..Default::default()
        }
    }

    #[test]
    fn joined_lobby_and_password_table() {
        struct Case {
            name: &'static str,
            room: Value,
            lobby_enabled: bool,
            password: Option<&'static str>,
            want_lobby: Option<LobbyChange>,
            want_password: Option<&'static str>,
        }
        let cases = [
            Case { name: "lobby on, none yet", room: json!({"lobby": true}), lobby_enabled: false, password: None,
                   want_lobby: Some(LobbyChange::Create), want_password: None },
            Case { name: "lobby on, already", room: json!({"lobby": true}), lobby_enabled: true, password: None,
                   want_lobby: None, want_password: None },
            Case { name: "lobby off, present", room: json!({"lobby": false}), lobby_enabled: true, password: None,
                   want_lobby: Some(LobbyChange::Destroy), want_password: None },
            Case { name: "lobby off, absent", room: json!({"lobby": false}), lobby_enabled: false, password: None,
                   want_lobby: None, want_password: None },
            Case { name: "lobby not a bool", room: json!({"lobby": "true"}), lobby_enabled: false, password: None,
                   want_lobby: None, want_password: None },
            Case { name: "set password", room: json!({"password": "pw"}), lobby_enabled: false, password: None,
                   want_lobby: None, want_password: Some("pw") },
            Case { name: "same password", room: json!({"password": "pw"}), lobby_enabled: false, password: Some("pw"),
                   want_lobby: None, want_password: None },
            Case { name: "clear password", room: json!({"password": ""}), lobby_enabled: false, password: Some("pw"),
                   want_lobby: None, want_password: Some("") },
            Case { name: "clear absent password", room: json!({"password": ""}), lobby_enabled: false, password: None,
                   want_lobby: None, want_password: None },
            Case { name: "password not a string", room: json!({"password": 5}), lobby_enabled: false, password: None,
                   want_lobby: None, want_password: None },
            Case { name: "both", room: json!({"lobby": true, "password": "x"}), lobby_enabled: false, password: None,
                   want_lobby: Some(LobbyChange::Create), want_password: Some("x") },
        ];
        for c in cases {
            let mut i = input(c.room, json!({}));
            i.lobby_enabled = c.lobby_enabled;
            i.password = c.password.map(str::to_string);
            let plan = joined(&i);
            assert_eq!(plan.lobby, c.want_lobby, "{}", c.name);
            assert_eq!(plan.set_password.as_deref(), c.want_password, "{}", c.name);
        }
    }

    #[test]
    fn out_of_scope_joins_change_nothing() {
        let base = input(json!({"lobby": true, "password": "x"}), json!({"security_bypass": true}));
        let with = |f: &dyn Fn(&mut JoinInput)| {
            let mut i = base.clone();
            f(&mut i);
            i
        };
        let why_room = "token is not for this room (room claim or tenant)";
        let cases = [
            (with(&|i| i.proof.has_token = false), "session has no token"),
            (with(&|i| i.room_node = "__jicofo-health-check-abc".into()), "healthcheck room"),
            (with(&|i| i.room_node = "room2".into()), why_room),
            (with(&|i| i.proof.token_room = None), why_room),
            (with(&|i| {
                i.proof.token_tenant = Some("t1".into());
                i.room_node = "[t2]room1".into();
            }), why_room),
            (with(&|i| {
                i.proof.token_domain = Some("t1".into());
                i.room_node = "[t2]room1".into();
            }), why_room),
            // A token of another tenant has no say in a room without a tenant.
            (with(&|i| {
                i.proof.token_room = Some("*".into());
                i.proof.token_domain = Some("t1".into());
            }), why_room),
            // A Matrix login's grants hold only in its own Matrix room.
            (with(&|i| i.proof.matrix_room_id = Some("!other:example.org".into())), why_room),
            (with(&|i| i.proof.grants_until = Some(1000.0)), "the token has expired: its grants lapsed"),
        ];
        for (i, why) in cases {
            let mut i = i;
            i.password = Some("secret".into());
            assert_eq!(pre_join(&i), PreJoinPlan { why, ..Default::default() }, "{why}");
            assert_eq!(joined(&i), JoinedPlan { why, ..Default::default() }, "{why}");
        }
    }

    #[test]
    fn pre_join_bypass_and_authoritative_tokens_pass_locks() {
        let cases = [
            ("bypass", json!({}), json!({"security_bypass": true}), true),
            ("bypass not a bool", json!({}), json!({"security_bypass": "yes"}), false),
            ("lobby setting", json!({"lobby": false}), json!({}), true),
            ("password setting", json!({"password": "new"}), json!({}), true),
            ("plain token", json!({}), json!({"name": "x"}), false),
        ];
        for (name, room, user, passes) in cases {
            let mut i = input(room, user);
            i.password = Some("secret".into());
            let plan = pre_join(&i);
            assert_eq!(plan.grant_member, passes, "{name}");
            assert_eq!(plan.inject_password.as_deref(), passes.then_some("secret"), "{name}");
        }
    }

    #[test]
    fn non_string_session_fields_count_as_absent() {
        let i: JoinInput = serde_json::from_value(json!({
            "room_node": "room1", "proof": {"has_token": true, "token_room": 5, "token_domain": {"x": 1},
            "grants_until": "soon"},
            "context_user": {"security_bypass": true}
        }))
        .unwrap();
        assert_eq!((i.proof.token_room, i.proof.token_domain, i.proof.grants_until), (None, None, None));
    }

    #[test]
    fn tenant_tokens_act_in_their_own_tenant() {
        let mut i = input(json!({"password": "pw"}), json!({"security_bypass": true}));
        i.room_node = "[t1]room1".into();
        i.proof.token_domain = Some("t1".into());
        assert!(pre_join(&i).grant_member, "sub as tenant");
        assert_eq!(joined(&i).set_password.as_deref(), Some("pw"));
        i.proof.token_tenant = Some("t2".into());
        assert!(!pre_join(&i).grant_member, "context.tenant wins over sub");
        assert_eq!(joined(&i).set_password, None);
    }

    #[test]
    fn pre_join_keeps_existing_affiliations() {
        for aff in ["owner", "admin", "member", "outcast"] {
            let mut i = input(json!({}), json!({"security_bypass": true}));
            i.affiliation = Some(aff.into());
            assert!(!pre_join(&i).grant_member, "{aff}");
        }
        let i = input(json!({}), json!({"security_bypass": true}));
        let plan = pre_join(&i);
        assert!(plan.grant_member);
        assert_eq!(plan.inject_password, None, "no password to inject");
    }
}
