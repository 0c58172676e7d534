//! A user's standing in a Matrix room, read from the room's state events
//! (as Synapse's admin API `GET /_synapse/admin/v1/rooms/{id}/state`
//! returns them): membership, power level, and the room-version-12 rule
//! that the room's creators have unlimited power.
//!
//! A room's state is reduced once to [`RoomFacts`]: every member's
//! membership, the power levels and the privileged creators, and nothing
//! else. [`RoomFacts::parse`] reads a state body straight into that
//! reduction (other event types' contents, display names, avatars... are
//! skipped by the parser, never held), so a room kept for a few seconds by
//! the direct mode costs its member list, not its (up to 32 MiB) body.
//!
//! Written here rather than taken from ruma: we read three event types and
//! four fields, and ruma's event and power-level types would add a large
//! dependency tree (and its own strictness about malformed old rooms, which
//! we want to treat leniently and fail closed).

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
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

/// One state event, reduced while parsing to the fields a standing needs.
/// Any JSON value parses: a field of another type is absent, never an error.
#[derive(Default)]
struct SlimEvent {
    kind: Option<String>,
    state_key: Option<String>,
    sender: Option<String>,
    content: SlimContent,
}

/// The content fields of `m.room.member`, `m.room.power_levels` and
/// `m.room.create` that a standing needs (of any event: the type may come
/// after the content in the JSON object).
#[derive(Default)]
struct SlimContent {
    membership: Option<String>,
    room_version: Option<String>,
    additional_creators: Option<Value>,
    users: Option<Value>,
    users_default: Option<Value>,
    state_default: Option<Value>,
}

/// A JSON object read field by field into `Self`; any other JSON value
/// reads as `Self::default()`.
trait SlimObject: Default {
    fn field<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>;
}

impl SlimObject for SlimEvent {
    fn field<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "type" => self.kind = map.next_value::<Lenient<Str>>()?.0 .0,
            "state_key" => self.state_key = map.next_value::<Lenient<Str>>()?.0 .0,
            "sender" => self.sender = map.next_value::<Lenient<Str>>()?.0 .0,
            "content" => self.content = map.next_value::<Lenient<SlimContent>>()?.0,
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

impl SlimObject for SlimContent {
    fn field<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "membership" => self.membership = map.next_value::<Lenient<Str>>()?.0 .0,
            "room_version" => self.room_version = map.next_value::<Lenient<Str>>()?.0 .0,
            "additional_creators" => self.additional_creators = Some(map.next_value()?),
            "users" => self.users = Some(map.next_value()?),
            "users_default" => self.users_default = Some(map.next_value()?),
            "state_default" => self.state_default = Some(map.next_value()?),
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// A JSON string (`Some`), or `None` for any other value.
#[derive(Default)]
struct Str(Option<String>);

/// Reads `T` leniently: see [`SlimObject`]; for [`Str`], a string.
struct Lenient<T>(T);

macro_rules! other_values_are_default {
    () => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Lenient(Default::default()))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Lenient(Default::default()))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Lenient(Default::default()))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Lenient(Default::default()))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Lenient(Default::default()))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Lenient(Default::default()))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Lenient(Default::default()))
        }
    };
}

impl<'de, T: SlimObject> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: SlimObject> Visitor<'de> for V<T> {
            type Value = Lenient<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = T::default();
                while let Some(key) = map.next_key::<String>()? {
                    out.field(&key, &mut map)?;
                }
                Ok(Lenient(out))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Lenient(T::default()))
            }
            other_values_are_default!();
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<'de> Deserialize<'de> for Lenient<Str> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Lenient<Str>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Lenient(Str(Some(s.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
                Ok(Lenient(Str(Some(s))))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Lenient(Str(None)))
            }
            other_values_are_default!();
        }
        d.deserialize_any(V)
    }
}

/// The admin API's answer: `{"state": [events]}` (other fields skipped).
#[derive(serde::Deserialize)]
struct StateBody {
    state: Vec<Lenient<SlimEvent>>,
}

/// A room's state reduced to what standings need: every member's
/// membership, the power levels, the privileged creators. Owned and
/// compact; built once per state read, then asked for many users (a login
/// storm, or a resync of a 1,000-member room).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomFacts {
    members: HashMap<Box<str>, Box<str>>,
    /// `users` of `m.room.power_levels`, only the usable values.
    powers: HashMap<Box<str>, i64>,
    users_default: i64,
    state_default: i64,
    creators: Vec<String>,
}

/// The name resync and the benchmarks use for [`RoomFacts`].
pub type RoomView = RoomFacts;

impl RoomFacts {
    /// Reduce state events already parsed as JSON values.
    pub fn new(events: &[Value]) -> Self {
        Self::reduce(events.iter().map(|e| Lenient::<SlimEvent>::deserialize(e).map(|l| l.0).unwrap_or_default()))
    }

    /// Parse an admin API state body (`{"state": [...]}`) straight into
    /// its reduction. `Err` says why the body cannot be used (never the body).
    pub fn parse(body: &[u8]) -> Result<Self, &'static str> {
        let parsed: StateBody = serde_json::from_slice(body).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => "has no state list",
            _ => "is not valid JSON",
        })?;
        Ok(Self::reduce(parsed.state.into_iter().map(|l| l.0)))
    }

    /// The rules, over events in state order: the first `m.room.create`
    /// and `m.room.power_levels` (state key `""`) count; a member's last
    /// `m.room.member` counts.
    fn reduce(events: impl Iterator<Item = SlimEvent>) -> Self {
        let mut members = HashMap::new();
        let mut levels: Option<SlimContent> = None;
        let mut create: Option<SlimEvent> = None;
        for e in events {
            match (e.kind.as_deref(), e.state_key.as_deref()) {
                (Some("m.room.member"), Some(key)) => {
                    if let Some(m) = e.content.membership.as_deref() {
                        members.insert(Box::from(key), Box::from(m));
                    }
                }
                (Some("m.room.power_levels"), Some("")) if levels.is_none() => levels = Some(e.content),
                (Some("m.room.create"), Some("")) if create.is_none() => create = Some(e),
                _ => {}
            }
        }
        let level = |v: Option<&Value>, default: i64| v.and_then(power_from_value).unwrap_or(default);
        let (mut powers, mut users_default, mut state_default) = (HashMap::new(), 0, DEFAULT_STATE_DEFAULT);
        if let Some(l) = &levels {
            if let Some(Value::Object(users)) = &l.users {
                powers = users.iter().filter_map(|(u, v)| Some((Box::from(u.as_str()), power_from_value(v)?))).collect();
            }
            users_default = level(l.users_default.as_ref(), 0);
            state_default = level(l.state_default.as_ref(), DEFAULT_STATE_DEFAULT);
        }
        RoomFacts { members, powers, users_default, state_default, creators: create.map(privileged_creators).unwrap_or_default() }
    }

    /// The standing of `user_id` in this room.
    pub fn standing(&self, user_id: &str) -> Standing {
        Standing {
            membership: self.members.get(user_id).map(|m| m.to_string()),
            power_level: self.powers.get(user_id).copied().unwrap_or(self.users_default),
            state_default: self.state_default,
            creator: self.creators.iter().any(|c| c == user_id),
        }
    }

    /// Whether `user_id` is joined (what a login asks first).
    pub fn joined(&self, user_id: &str) -> bool {
        self.members.get(user_id).is_some_and(|m| &**m == "join")
    }

    /// Members listed (any membership), for sizing.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }
}

/// The creators of a room: the sender of `m.room.create` and its
/// `content.additional_creators`, when the room version privileges them.
fn privileged_creators(create: SlimEvent) -> Vec<String> {
    let version = create.content.room_version.as_deref().unwrap_or("1");
    if !creators_privileged(version) {
        return Vec::new();
    }
    let mut creators: Vec<String> = create.sender.into_iter().collect();
    if let Some(Value::Array(extra)) = &create.content.additional_creators {
        creators.extend(extra.iter().filter_map(Value::as_str).map(str::to_string));
    }
    creators
}

/// The standing of `user_id` in a room whose state is `events`.
pub fn standing(events: &[Value], user_id: &str) -> Standing {
    RoomFacts::new(events).standing(user_id)
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

    #[test]
    fn parsing_a_body_gives_the_same_facts_as_reducing_parsed_events() {
        let levels = json!({"users": {"@creator:x": 100, "@mod:x": "50", "@odd:x": [1]}, "users_default": 3, "state_default": 40});
        for version in ["11", "12"] {
            let events = room(version, levels.clone());
            let body = json!({"state": events}).to_string();
            let parsed = RoomFacts::parse(body.as_bytes()).unwrap();
            assert_eq!(parsed, RoomFacts::new(&events), "v{version}");
            for user in ["@creator:x", "@co:x", "@mod:x", "@guest:x", "@gone:x", "@bad:x", "@odd:x", "@stranger:x"] {
                assert_eq!(parsed.standing(user), standing(&events, user), "v{version} {user}");
                assert_eq!(parsed.joined(user), parsed.standing(user).joined(), "{user}");
            }
        }
    }

    #[test]
    fn parsing_skips_what_it_does_not_need_and_tolerates_odd_values() {
        // Fields of unexpected types, non-object events and contents, other
        // event types with big contents, and keys in any order.
        let body = br#"{"state": [
            17, "x", null, [1, 2],
            {"content": {"membership": "join", "displayname": {"deep": [1, {"x": 2}]}}, "state_key": "@a:x", "type": "m.room.member"},
            {"type": "m.room.member", "state_key": "@b:x", "content": {"membership": 5}},
            {"type": "m.room.member", "state_key": 9, "content": {"membership": "join"}},
            {"type": "m.room.member", "state_key": "@c:x", "content": "join"},
            {"type": ["m.room.member"], "state_key": "@d:x", "content": {"membership": "join"}},
            {"type": "m.custom", "state_key": "", "content": {"users": {"@a:x": 100}, "blob": "zzzzzzzzzzzz"}},
            {"type": "m.room.power_levels", "state_key": "", "content": {"users": {"@a:x": 60}, "state_default": "55"}},
            {"type": "m.room.power_levels", "state_key": "", "content": {"users": {"@a:x": 0}}},
            {"type": "m.room.create", "state_key": "", "sender": 4, "content": {"room_version": 12, "additional_creators": "@a:x"}}
        ], "other": {"ignored": true}}"#;
        let facts = RoomFacts::parse(body).unwrap();
        assert!(facts.joined("@a:x"));
        for user in ["@b:x", "@c:x", "@d:x"] {
            assert!(!facts.joined(user), "{user}");
        }
        let a = facts.standing("@a:x");
        assert_eq!((a.power_level, a.state_default, a.creator, a.is_owner()), (60, 55, false, true), "first power levels count; v'12' as a number is not a version");
        assert_eq!(facts.member_count(), 1);
    }

    #[test]
    fn unusable_bodies_are_refused_with_a_reason() {
        for (body, why) in [
            (&b"<html>"[..], "is not valid JSON"),
            (b"{\"state\": [", "is not valid JSON"),
            (b"", "is not valid JSON"),
            (b"{}", "has no state list"),
            (b"{\"state\": {}}", "has no state list"),
            (b"[]", "has no state list"),
            (b"null", "has no state list"),
        ] {
            assert_eq!(RoomFacts::parse(body), Err(why), "{}", String::from_utf8_lossy(body));
        }
        assert_eq!(RoomFacts::parse(br#"{"state": []}"#), Ok(RoomFacts { state_default: DEFAULT_STATE_DEFAULT, ..RoomFacts::default() }));
    }
}
