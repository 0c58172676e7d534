//! A user's standing in a Matrix room, read from the room's state events
//! (as Synapse's admin API `GET /_synapse/admin/v1/rooms/{id}/state`
//! returns them): membership, power level, and the room-version-12 rule
//! that the room's creators have unlimited power.
//!
//! Written here rather than taken from ruma: we read three event types and
//! four fields, and ruma's event and power-level types would add a large
//! dependency tree (and its own strictness about malformed old rooms, which
//! we want to treat leniently and fail closed).

use std::collections::HashMap;

use serde_json::Value;

use super::DEFAULT_STATE_DEFAULT;

/// What the room's state says about one user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standing {
    /// `content.membership` of the user's `m.room.member`, if any.
    pub membership: Option<String>,
    /// `users[user]`, else `users_default` (0 when absent).
    pub power_level: i64,
    /// `state_default` (50 when absent).
    pub state_default: i64,
    /// A creator of a room whose version gives creators unlimited power.
    pub creator: bool,
}

impl Standing {
    pub fn joined(&self) -> bool {
        self.membership.as_deref() == Some("join")
    }

    /// Owner rule: creators of v12+ rooms, else `power >= state_default`.
    pub fn is_owner(&self) -> bool {
        self.creator || self.power_level >= self.state_default
    }
}

/// Power levels are integers, but rooms before version 10 may hold them as
/// strings ("50"); accept integral numbers and numeric strings, refuse the rest.
pub fn power_from_value(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

/// Room versions in which the creators have unlimited power: 12 and
/// later (MSC4289, "hydra"), including the unstable hydra identifiers.
pub fn creators_privileged(room_version: &str) -> bool {
    room_version.parse::<u32>().is_ok_and(|v| v >= 12) || room_version.contains("hydra")
}

fn state_event<'a>(events: &'a [Value], kind: &str, state_key: &str) -> Option<&'a Value> {
    events.iter().find(|e| {
        e.get("type").and_then(Value::as_str) == Some(kind)
            && e.get("state_key").and_then(Value::as_str) == Some(state_key)
    })
}

/// The creators of a room: the sender of `m.room.create` and its
/// `content.additional_creators`, when the room version privileges them.
pub fn privileged_creators(events: &[Value]) -> Vec<String> {
    let Some(create) = state_event(events, "m.room.create", "") else { return Vec::new() };
    let content = create.get("content");
    let version = content.and_then(|c| c.get("room_version")).and_then(Value::as_str).unwrap_or("1");
    if !creators_privileged(version) {
        return Vec::new();
    }
    let mut creators: Vec<String> = create.get("sender").and_then(Value::as_str).map(str::to_string).into_iter().collect();
    if let Some(Value::Array(extra)) = content.and_then(|c| c.get("additional_creators")) {
        creators.extend(extra.iter().filter_map(Value::as_str).map(str::to_string));
    }
    creators
}

/// A room's state, indexed once, for the standing of many users (a
/// resync of a 1,000-member room reads one state and asks for each).
pub struct RoomView<'a> {
    members: HashMap<&'a str, &'a str>,
    levels: Option<&'a Value>,
    users_default: i64,
    state_default: i64,
    creators: Vec<String>,
}

impl<'a> RoomView<'a> {
    pub fn new(events: &'a [Value]) -> Self {
        let mut members = HashMap::new();
        for e in events {
            if e.get("type").and_then(Value::as_str) != Some("m.room.member") {
                continue;
            }
            let key = e.get("state_key").and_then(Value::as_str);
            let membership = e.get("content").and_then(|c| c.get("membership")).and_then(Value::as_str);
            if let (Some(key), Some(membership)) = (key, membership) {
                members.insert(key, membership);
            }
        }
        let levels = state_event(events, "m.room.power_levels", "").and_then(|e| e.get("content"));
        let level = |key: &str, default: i64| levels.and_then(|l| l.get(key)).and_then(power_from_value).unwrap_or(default);
        RoomView {
            members,
            levels,
            users_default: level("users_default", 0),
            state_default: level("state_default", DEFAULT_STATE_DEFAULT),
            creators: privileged_creators(events),
        }
    }

    /// The standing of `user_id` in this room.
    pub fn standing(&self, user_id: &str) -> Standing {
        let power_level = self
            .levels
            .and_then(|l| l.get("users"))
            .and_then(|u| u.get(user_id))
            .and_then(power_from_value)
            .unwrap_or(self.users_default);
        Standing {
            membership: self.members.get(user_id).map(|m| m.to_string()),
            power_level,
            state_default: self.state_default,
            creator: self.creators.iter().any(|c| c == user_id),
        }
    }
}

/// The standing of `user_id` in a room whose state is `events`.
pub fn standing(events: &[Value], user_id: &str) -> Standing {
    RoomView::new(events).standing(user_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(kind: &str, key: &str, sender: &str, content: Value) -> Value {
        json!({"type": kind, "state_key": key, "sender": sender, "content": content})
    }

    fn room(version: &str, levels: Value) -> Vec<Value> {
        vec![
            ev("m.room.create", "", "@creator:x", json!({"room_version": version, "additional_creators": ["@co:x"]})),
            ev("m.room.power_levels", "", "@creator:x", levels),
            ev("m.room.member", "@creator:x", "@creator:x", json!({"membership": "join"})),
            ev("m.room.member", "@co:x", "@co:x", json!({"membership": "join"})),
            ev("m.room.member", "@mod:x", "@mod:x", json!({"membership": "join"})),
            ev("m.room.member", "@guest:x", "@guest:x", json!({"membership": "join"})),
            ev("m.room.member", "@gone:x", "@gone:x", json!({"membership": "leave"})),
            ev("m.room.member", "@bad:x", "@mod:x", json!({"membership": "ban"})),
        ]
    }

    #[test]
    fn standing_table() {
        let levels = json!({"users": {"@creator:x": 100, "@mod:x": 50}, "users_default": 0});
        // (room version, user, joined, power, creator, owner)
        let cases = [
            ("11", "@creator:x", true, 100, false, true),
            ("11", "@co:x", true, 0, false, false),
            ("11", "@mod:x", true, 50, false, true),
            ("11", "@guest:x", true, 0, false, false),
            ("11", "@gone:x", false, 0, false, false),
            ("11", "@bad:x", false, 0, false, false),
            ("11", "@stranger:x", false, 0, false, false),
            ("12", "@creator:x", true, 100, true, true),
            ("12", "@co:x", true, 0, true, true),
            ("12", "@guest:x", true, 0, false, false),
            ("org.matrix.hydra.11", "@co:x", true, 0, true, true),
        ];
        for (version, user, joined, power, creator, owner) in cases {
            let s = standing(&room(version, levels.clone()), user);
            assert_eq!(
                (s.joined(), s.power_level, s.creator, s.is_owner()),
                (joined, power, creator, owner),
                "v{version} {user}"
            );
        }
    }

    #[test]
    fn power_levels_defaults_and_lenient_values() {
        let cases = [
            (json!({}), 0, 50),
            (json!({"users_default": 10, "state_default": 20}), 10, 20),
            (json!({"users": {"@guest:x": "75"}, "state_default": "60"}), 75, 60),
            (json!({"users": {"@guest:x": 50.0}}), 50, 50),
            (json!({"users": {"@guest:x": "lots"}, "users_default": 5}), 5, 50),
            (json!({"users": {"@guest:x": 1e300}}), 0, 50),
        ];
        for (levels, power, sd) in cases {
            let s = standing(&room("11", levels.clone()), "@guest:x");
            assert_eq!((s.power_level, s.state_default), (power, sd), "{levels}");
        }
        // No power levels event at all: the spec's defaults.
        let s = standing(&[ev("m.room.member", "@a:x", "@a:x", json!({"membership": "join"}))], "@a:x");
        assert_eq!((s.joined(), s.power_level, s.state_default, s.is_owner()), (true, 0, 50, false));
    }

    #[test]
    fn room_versions_that_privilege_creators() {
        for (v, want) in [("1", false), ("11", false), ("12", true), ("13", true), ("org.matrix.hydra.11", true), ("x", false)] {
            assert_eq!(creators_privileged(v), want, "{v}");
        }
    }
}
