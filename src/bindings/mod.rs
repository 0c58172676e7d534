//! The only place that imports mlua: turns Lua values into the plain Rust
//! structs of the pure modules once, at the boundary, and results back.
//! Expected failures return `nil, text, condition, code` to Lua; Lua errors
//! are only raised for programming mistakes (wrong argument types).

use mlua::prelude::*;
use mlua::serde::{DeserializeOptions, SerializeOptions};

use crate::error::Error;

mod admin;
mod auth;
mod owner;
mod resync;
mod security;
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

/// Verified claims -> (session fields, claims) as Lua tables, converting
/// the claims once: the fields share the claims' subtables.
pub(crate) fn claims_and_fields(lua: &Lua, claims: &crate::token::Claims) -> LuaResult<(LuaTable, LuaTable)> {
    let c = object_to_lua(lua, claims)?;
    let fields = lua.create_table_with_capacity(0, crate::token::SESSION_FIELDS.len())?;
    for (field, path) in crate::token::SESSION_FIELDS {
        let mut v: LuaValue = c.raw_get(path[0])?;
        for key in &path[1..] {
            v = match v {
                LuaValue::Table(t) => t.raw_get(*key)?,
                _ => LuaNil,
            };
        }
        if !v.is_nil() {
            fields.raw_set(*field, v)?;
        }
    }
    if crate::token::user_id_fallback(claims).is_some() {
        let user = lua.create_table()?;
        user.raw_set("id", c.raw_get::<LuaValue>("user_id")?)?;
        fields.raw_set("jitsi_meet_context_user", user)?;
    }
    Ok((fields, c))
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
    owner::register(lua, &t)?;
    resync::register(lua, &t)?;
    security::register(lua, &t)?;
    Ok(t)
}
