//! The only place that imports mlua: turns Lua values into the plain Rust
//! structs of the pure modules once, at the boundary, and results back.
//! Decides nothing: every rule lives in `standard`, `matrix`, `policy`,
//! `runtime` or `options`; this folder must not grow a rule of its own.
//! Expected failures return `nil, text, condition, code` to Lua; Lua errors
//! are only raised for programming mistakes (wrong argument types).

use mlua::prelude::*;
use mlua::serde::{DeserializeOptions, SerializeOptions};

use crate::error::Error;

mod admin;
mod auth;
mod door;
mod options;
mod owner;
mod prosody;
mod resync;
mod security;
mod session;
mod token;

/// The one conversion of a crate error into Lua values:
/// `nil, reason text, SASL condition, log reason code`.
pub(crate) fn refusal(lua: &Lua, e: &Error) -> LuaResult<LuaMultiValue> {
    (LuaNil, e.to_string(), e.sasl_condition(), e.reason_code()).into_lua_multi(lua)
}

/// Rust value -> plain Lua table (JSON null becomes nil, not a sentinel).
pub(crate) fn to_lua<T: serde::Serialize + ?Sized>(lua: &Lua, v: &T) -> LuaResult<LuaValue> {
    lua.to_value_with(
        v,
        SerializeOptions::new().serialize_none_to_null(false).serialize_unit_to_null(false),
    )
}

/// JSON (claims) -> Lua, directly: faster than going through serde, and
/// JSON null becomes nil.
pub(crate) fn json_to_lua(lua: &Lua, v: &serde_json::Value) -> LuaResult<LuaValue> {
    use serde_json::Value;
    Ok(match v {
        Value::Null => LuaNil,
        Value::Bool(b) => LuaValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => LuaValue::Integer(i),
            None => LuaValue::Number(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => LuaValue::String(lua.create_string(s)?),
        Value::Array(a) => {
            let t = lua.create_table_with_capacity(a.len(), 0)?;
            for (i, x) in a.iter().enumerate() {
                t.raw_set(i + 1, json_to_lua(lua, x)?)?;
            }
            LuaValue::Table(t)
        }
        Value::Object(o) => LuaValue::Table(object_to_lua(lua, o)?),
    })
}

pub(crate) fn object_to_lua(lua: &Lua, o: &serde_json::Map<String, serde_json::Value>) -> LuaResult<LuaTable> {
    let t = lua.create_table_with_capacity(0, o.len())?;
    for (k, x) in o {
        t.raw_set(k.as_str(), json_to_lua(lua, x)?)?;
    }
    Ok(t)
}

/// The names a login's tables are keyed by, as Lua strings made once per
/// verifier or authenticator and pushed by index: a login does not hash
/// them again (Lua hashes every short string it is handed; callgrind:
/// 3% of a login). At `i + 1` the name of `SESSION_FIELDS[i]`, then the
/// names below.
pub(crate) struct Names(LuaTable);

const NAME_GRANTS_UNTIL: i64 = crate::standard::token::SESSION_FIELDS.len() as i64 + 1;
const NAME_FIELDS: i64 = NAME_GRANTS_UNTIL + 1;
const NAME_CLAIMS: i64 = NAME_GRANTS_UNTIL + 2;
const NAME_ID: i64 = NAME_GRANTS_UNTIL + 3;

impl Names {
    pub(crate) fn new(lua: &Lua) -> LuaResult<Names> {
        let fields = crate::standard::token::SESSION_FIELDS.iter().map(|(name, _)| *name);
        let others = [crate::standard::token::GRANTS_UNTIL_FIELD, "fields", "claims", "id"];
        Ok(Names(lua.create_sequence_from(fields.chain(others))?))
    }
}

/// Verified claims -> (session fields, claims) as Lua tables, converting
/// the claims once: the fields are the values of
/// [`crate::standard::token::session_field_sources`] (the description
/// [`crate::standard::token::session_fields`] is built from), found by position while
/// the claims are converted, so they share the claims' subtables.
pub(crate) fn claims_and_fields(lua: &Lua, names: &Names, claims: &crate::standard::token::Claims) -> LuaResult<(LuaTable, LuaTable)> {
    let sources = FieldSources::of(claims);
    // SAFETY: see `push_claims_and_fields`; the names table (index 1) is
    // then removed, which leaves exactly the two tables.
    unsafe {
        lua.exec_raw::<(LuaTable, LuaTable)>(&names.0, |state| {
            push_claims_and_fields(state, 1, claims, &sources);
            mlua::ffi::lua_rotate(state, 1, -1);
            mlua::ffi::lua_settop(state, -2);
        })
    }
}

/// A standard login's answer `{ fields = <session fields>, claims = <claims> }`,
/// with [`crate::standard::token::GRANTS_UNTIL_FIELD`] among the fields when given:
/// built in one protected call (every login goes through here).
pub(crate) fn login_result(lua: &Lua, names: &Names, claims: &crate::standard::token::Claims, grants_until: Option<f64>) -> LuaResult<LuaTable> {
    use mlua::ffi;
    let sources = FieldSources::of(claims);
    // SAFETY: as `claims_and_fields`; the two tables go into a third, the
    // only value left once the names table (index 1) is removed.
    unsafe {
        lua.exec_raw::<LuaTable>(&names.0, |state| {
            if ffi::lua_checkstack(state, 6) == 0 {
                // Nothing left: the conversion to a table fails (never the
                // names table taken for an answer).
                ffi::lua_settop(state, 0);
                return;
            }
            ffi::lua_createtable(state, 0, 2);
            let result = ffi::lua_gettop(state);
            push_claims_and_fields(state, 1, claims, &sources);
            if let Some(until) = grants_until {
                ffi::lua_rawgeti(state, 1, NAME_GRANTS_UNTIL);
                ffi::lua_pushnumber(state, until);
                ffi::lua_rawset(state, result + 1);
            }
            // result.claims = <top>, then result.fields = <the one below>.
            for name in [NAME_CLAIMS, NAME_FIELDS] {
                ffi::lua_rawgeti(state, 1, name);
                ffi::lua_rotate(state, -2, 1);
                ffi::lua_rawset(state, result);
            }
            ffi::lua_rotate(state, 1, -1);
            ffi::lua_settop(state, -2);
        })
    }
}

/// One session field: its name's index in [`Names`], the position of the
/// claim it is made from and whether it is the `user_id` fallback
/// (`{ id = claim }`).
type FieldSource = (i64, usize, bool);

/// The session fields of some claims (at most one per name: no allocation).
struct FieldSources {
    list: [FieldSource; crate::standard::token::SESSION_FIELDS.len()],
    len: usize,
}

impl FieldSources {
    fn of(claims: &crate::standard::token::Claims) -> FieldSources {
        let mut s = FieldSources { list: [(0, usize::MAX, false); crate::standard::token::SESSION_FIELDS.len()], len: 0 };
        for (field, source) in crate::standard::token::session_field_sources(claims) {
            // session_field_sources gives each field at most once.
            if let Some(slot) = s.list.get_mut(s.len) {
                *slot = (field as i64 + 1, source.claim().position(), matches!(source, crate::standard::token::FieldSource::UserId(_)));
                s.len += 1;
            }
        }
        s
    }

    fn as_slice(&self) -> &[FieldSource] {
        &self.list[..self.len]
    }
}

/// Push `s` (any bytes, no terminator needed).
unsafe fn push_str(state: *mut mlua::ffi::lua_State, s: &str) {
    mlua::ffi::lua_pushlstring(state, s.as_ptr().cast(), s.len());
}

/// Push a fields table, then the claims as a table; while converting, each
/// claim that a session field is made from is stored in the fields table
/// too (the same Lua value). `names`: stack index of the [`Names`] table.
///
/// SAFETY: call inside a protected call (`exec_raw`). A Lua error (out of
/// memory) unwinds through here: nothing here owns memory that would need
/// dropping. Every push is balanced; the stack grows by the two tables.
unsafe fn push_claims_and_fields(state: *mut mlua::ffi::lua_State, names: std::os::raw::c_int, claims: &crate::standard::token::Claims, sources: &FieldSources) {
    use crate::standard::json::{Kind, Val};
    use mlua::ffi;
    use std::os::raw::c_int;

    struct Fields<'a> {
        /// Absolute index of the fields table.
        table: c_int,
        /// Absolute index of the names table.
        names: c_int,
        sources: &'a [FieldSource],
    }

    impl Fields<'_> {
        /// The value just pushed (at -1) is `v`: store it as every field
        /// made from `v`.
        unsafe fn found(&self, state: *mut ffi::lua_State, v: Val<'_>) {
            for &(field, claim, user_id) in self.sources {
                if claim != v.position() {
                    continue;
                }
                ffi::lua_rawgeti(state, self.names, field);
                if user_id {
                    ffi::lua_createtable(state, 0, 1);
                    ffi::lua_rawgeti(state, self.names, NAME_ID);
                    ffi::lua_pushvalue(state, -4);
                    ffi::lua_rawset(state, -3);
                } else {
                    ffi::lua_pushvalue(state, -2);
                }
                ffi::lua_rawset(state, self.table);
            }
        }
    }

    /// Push `v`; fields are only made from values at depth <= 2 (claims,
    /// then `context`'s members).
    unsafe fn push(state: *mut ffi::lua_State, v: Val<'_>, fields: &Fields<'_>, depth: u32) {
        match v.kind() {
            Kind::Null => ffi::lua_pushnil(state),
            Kind::Bool(b) => ffi::lua_pushboolean(state, b as c_int),
            Kind::Int(i) => ffi::lua_pushinteger(state, i),
            Kind::UInt(u) => ffi::lua_pushnumber(state, u as f64),
            Kind::Float(f) => ffi::lua_pushnumber(state, f),
            Kind::Str(s) => push_str(state, s),
            Kind::Array => {
                ffi::lua_createtable(state, v.len().min(1 << 20) as c_int, 0);
                if ffi::lua_checkstack(state, 4) == 0 {
                    return;
                }
                for (i, x) in v.items().enumerate() {
                    push(state, x, fields, depth + 1);
                    ffi::lua_rawseti(state, -2, (i + 1) as ffi::lua_Integer);
                }
            }
            Kind::Object => push_object(state, v, fields, depth),
        }
        if depth <= 2 {
            fields.found(state, v);
        }
    }

    unsafe fn push_object(state: *mut ffi::lua_State, o: Val<'_>, fields: &Fields<'_>, depth: u32) {
        ffi::lua_createtable(state, 0, o.len().min(1 << 20) as c_int);
        if ffi::lua_checkstack(state, 6) == 0 {
            return;
        }
        for (k, x) in o.members() {
            push_str(state, k);
            push(state, x, fields, depth + 1);
            ffi::lua_rawset(state, -3);
        }
    }

    if ffi::lua_checkstack(state, 8) == 0 {
        return;
    }
    ffi::lua_createtable(state, 0, sources.len as c_int);
    let fields = Fields { table: ffi::lua_gettop(state), names, sources: sources.as_slice() };
    push_object(state, claims.root(), &fields, 0);
}

/// Lua table -> Rust struct; functions and userdata inside are skipped.
pub(crate) fn from_lua<T: serde::de::DeserializeOwned>(lua: &Lua, v: LuaValue) -> LuaResult<T> {
    lua.from_value_with(v, DeserializeOptions::new().deny_unsupported_types(false))
}

/// Build the table `require "jitsi_security"` returns.
pub fn exports(lua: &Lua) -> LuaResult<LuaTable> {
    let t = lua.create_table()?;
    t.set("version", env!("CARGO_PKG_VERSION"))?;
    token::register(lua, &t)?;
    admin::register(lua, &t)?;
    auth::register(lua, &t)?;
    door::register(lua, &t)?;
    options::register(lua, &t)?;
    owner::register(lua, &t)?;
    prosody::register(lua, &t)?;
    resync::register(lua, &t)?;
    security::register(lua, &t)?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    //! The Lua tables of a login agree with `token::session_fields`, field
    //! by field, for claims of every shape (run with `--features vendored`).

    use super::*;
    use serde_json::{json, Value};

    fn entries(t: &LuaTable) -> usize {
        t.pairs::<LuaValue, LuaValue>().count()
    }

    /// Same data: objects and arrays are tables (JSON null is no entry).
    fn same(lv: &LuaValue, jv: &Value) -> bool {
        match (lv, jv) {
            (LuaValue::Nil, Value::Null) => true,
            (LuaValue::Boolean(a), Value::Bool(b)) => a == b,
            (LuaValue::Integer(i), Value::Number(n)) => n.as_i64() == Some(*i),
            (LuaValue::Number(f), Value::Number(n)) => n.as_i64().is_none() && n.as_f64() == Some(*f),
            (LuaValue::String(s), Value::String(t)) => *s.as_bytes() == *t.as_bytes(),
            (LuaValue::Table(t), Value::Array(a)) => {
                entries(t) == a.iter().filter(|x| !x.is_null()).count()
                    && a.iter().enumerate().all(|(i, x)| same(&t.raw_get::<LuaValue>(i + 1).unwrap(), x))
            }
            (LuaValue::Table(t), Value::Object(o)) => {
                entries(t) == o.values().filter(|x| !x.is_null()).count()
                    && o.iter().all(|(k, x)| same(&t.raw_get::<LuaValue>(k.as_str()).unwrap(), x))
            }
            _ => false,
        }
    }

    /// The Lua value at `path` in `t`.
    fn at(t: &LuaTable, path: &[&str]) -> LuaValue {
        let mut v = LuaValue::Table(t.clone());
        for key in path {
            v = match v {
                LuaValue::Table(t) => t.raw_get(*key).unwrap(),
                _ => LuaNil,
            };
        }
        v
    }

    fn claim_sets() -> Vec<(&'static str, Value)> {
        vec![
            ("every field", json!({"iss": "app", "aud": "jitsi", "sub": "meet.example.com", "room": "r1", "exp": 1_700_000_060,
                "context": {"user": {"name": "A", "email": "a@example.com", "id": "u1", "moderator": "true"},
                            "group": "g1", "features": {"recording": true, "livestreaming": false},
                            "room": {"lobby": true, "password": "p"}, "tenant": "t1"}})),
            ("nothing", json!({})),
            ("no context, user_id: the fallback", json!({"iss": "app", "user_id": "u-42", "room": "r"})),
            ("user_id and context: context wins", json!({"user_id": "u-42", "context": {"user": {"name": "A"}}})),
            ("user_id and an empty context: no user", json!({"user_id": "u-42", "context": {}})),
            ("user_id and context null: no fallback", json!({"user_id": "u-42", "context": null})),
            ("user_id null", json!({"user_id": null, "room": "r"})),
            ("user_id an object", json!({"user_id": {"a": [1, 2], "b": {"c": "d"}}})),
            ("user_id a number", json!({"user_id": 42})),
            ("context a string", json!({"room": "r", "context": "x"})),
            ("context an array", json!({"room": "r", "context": [{"user": {"name": "A"}}, 2]})),
            ("context a number", json!({"context": 5, "user_id": "u"})),
            ("members null, false, 0, empty", json!({"room": null, "sub": false, "iss": 0,
                "context": {"user": null, "group": 0, "features": [], "room": {}, "tenant": ""}})),
            ("user a string, features an array", json!({"context": {"user": "just a name", "features": ["a", "b", null, "d"]}})),
            ("user deep", json!({"context": {"user": {"a": {"b": {"c": {"d": [[[{"e": "f"}]]]}}}}}})),
            ("room, sub and iss of other types", json!({"room": ["a"], "sub": {"tenant": "x"}, "iss": 12.5})),
            ("unicode", json!({"room": "café-日本-🎉", "context": {"user": {"name": "Zoë 🦊", "ключ": "значение", "": "empty key",
                "a\u{0}b": "nul inside"}, "tenant": "ü"}})),
            ("numbers", json!({"exp": u64::MAX, "nbf": -5, "iat": 1.5, "x": 1e300,
                "context": {"room": {"n": i64::MIN, "m": u64::MAX, "f": -0.0}, "group": 9_007_199_254_740_993_i64}})),
            ("matrix context", json!({"iss": "issuer", "room": "*", "context": {"matrix": {"token": "t", "room_id": "!a:b"},
                "user": {"name": "M", "avatar": "mxc://x"}}})),
            ("claims named like fields", json!({"jitsi_meet_room": "not a field source", "user": {"name": "top-level user"},
                "group": "top", "tenant": "top", "context": {"context": {"user": "nested"}}})),
        ]
    }

    #[test]
    fn lua_fields_agree_with_session_fields() {
        let lua = Lua::new();
        for (name, claims) in claim_sets() {
            let map = claims.as_object().unwrap().clone();
            let claims = crate::standard::token::Claims::from_map(&map);
            let want = crate::standard::token::session_fields(&claims);
            let names = Names::new(&lua).unwrap();
            let (fields, lua_claims) = claims_and_fields(&lua, &names, &claims).unwrap();
            assert!(same(&LuaValue::Table(lua_claims.clone()), &Value::Object(map.clone())), "{name}: claims");
            assert_eq!(entries(&fields), want.len(), "{name}: number of fields");
            for (field, value) in &want {
                assert!(same(&fields.raw_get::<LuaValue>(field.as_str()).unwrap(), value), "{name}: {field}");
            }
            // Fields made from a claim are the claims' own tables.
            for (field, path) in crate::standard::token::SESSION_FIELDS {
                if let (LuaValue::Table(f), LuaValue::Table(c)) = (fields.raw_get::<LuaValue>(*field).unwrap(), at(&lua_claims, path)) {
                    assert_eq!(f.to_pointer(), c.to_pointer(), "{name}: {field} shares the claims' table");
                }
            }
            // A login's answer: the same fields, and when the grants lapse.
            for grants in [None, Some(1_700_000_090.0)] {
                let result = login_result(&lua, &names, &claims, grants).unwrap();
                assert_eq!(entries(&result), 2, "{name}: fields and claims");
                let f: LuaTable = result.raw_get("fields").unwrap();
                let mut want = want.clone();
                if let Some(until) = grants {
                    want.insert(crate::standard::token::GRANTS_UNTIL_FIELD.into(), json!(until));
                }
                assert!(same(&LuaValue::Table(f), &Value::Object(want)), "{name}: login fields");
                let c: LuaTable = result.raw_get("claims").unwrap();
                assert!(same(&LuaValue::Table(c), &Value::Object(map.clone())), "{name}: login claims");
            }
        }
    }

    #[test]
    fn a_name_given_twice_counts_once_the_last_in_fields_and_claims() {
        let lua = Lua::new();
        let claims = crate::standard::token::Claims::parse_str(
            r#"{"room":"a","context":{"user":{"name":"x"}},"room":"b","context":{"user":{"name":"y"}}}"#,
        )
        .unwrap();
        let (fields, lua_claims) = claims_and_fields(&lua, &Names::new(&lua).unwrap(), &claims).unwrap();
        assert_eq!(lua_claims.raw_get::<String>("room").unwrap(), "b");
        assert_eq!(fields.raw_get::<String>("jitsi_meet_room").unwrap(), "b");
        let user: LuaTable = fields.raw_get("jitsi_meet_context_user").unwrap();
        assert_eq!(user.raw_get::<String>("name").unwrap(), "y");
        let claims_user = at(&lua_claims, &["context", "user"]);
        assert_eq!(LuaValue::Table(user).to_pointer(), claims_user.to_pointer(), "the claims' own table");
        assert_eq!(crate::standard::token::session_fields(&claims)["jitsi_meet_room"], json!("b"));
    }

    #[test]
    fn the_fallback_is_a_table_of_the_user_id() {
        let lua = Lua::new();
        let claims = crate::standard::token::Claims::parse_str(r#"{"user_id": {"k": "v"}}"#).unwrap();
        let claims = &claims;
        let (fields, lua_claims) = claims_and_fields(&lua, &Names::new(&lua).unwrap(), claims).unwrap();
        let user: LuaTable = fields.raw_get("jitsi_meet_context_user").unwrap();
        let id: LuaTable = user.raw_get("id").unwrap();
        let claim: LuaTable = lua_claims.raw_get("user_id").unwrap();
        assert_eq!(id.to_pointer(), claim.to_pointer());
        assert_eq!(crate::standard::token::session_fields(claims)["jitsi_meet_context_user"], json!({"id": {"k": "v"}}));
    }
}
