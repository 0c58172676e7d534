//! The only place that imports mlua: turns Lua values into the plain Rust
//! structs of the pure modules once, at the boundary, and results back.
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

/// Verified claims -> (session fields, claims) as Lua tables, converting
/// the claims once: the fields share the claims' subtables. This is on
/// every login, so the tables are built with the raw C API inside one
/// protected call (mlua's safe API protects every single set).
pub(crate) fn claims_and_fields(lua: &Lua, claims: &crate::token::Claims) -> LuaResult<(LuaTable, LuaTable)> {
    use mlua::ffi;
    use std::os::raw::c_int;

    /// Push `v`. A Lua error (out of memory) unwinds to the protected call;
    /// nothing here owns memory that would need dropping.
    unsafe fn push(state: *mut ffi::lua_State, v: &serde_json::Value) {
        use serde_json::Value;
        match v {
            Value::Null => ffi::lua_pushnil(state),
            Value::Bool(b) => ffi::lua_pushboolean(state, *b as c_int),
            Value::Number(n) => match n.as_i64() {
                Some(i) => ffi::lua_pushinteger(state, i),
                None => ffi::lua_pushnumber(state, n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => {
                ffi::lua_pushlstring(state, s.as_ptr().cast(), s.len());
            }
            Value::Array(a) => {
                ffi::lua_createtable(state, a.len().min(1 << 20) as c_int, 0);
                if ffi::lua_checkstack(state, 3) == 0 {
                    return;
                }
                for (i, x) in a.iter().enumerate() {
                    push(state, x);
                    ffi::lua_rawseti(state, -2, (i + 1) as ffi::lua_Integer);
                }
            }
            Value::Object(o) => push_object(state, o),
        }
    }

    unsafe fn push_object(state: *mut ffi::lua_State, o: &serde_json::Map<String, serde_json::Value>) {
        ffi::lua_createtable(state, 0, o.len().min(1 << 20) as c_int);
        if ffi::lua_checkstack(state, 4) == 0 {
            return;
        }
        for (k, x) in o {
            ffi::lua_pushlstring(state, k.as_ptr().cast(), k.len());
            push(state, x);
            ffi::lua_rawset(state, -3);
        }
    }

    /// Push `t[key]` for the table at `idx` (absolute).
    unsafe fn raw_field(state: *mut ffi::lua_State, idx: c_int, key: &str) {
        ffi::lua_pushlstring(state, key.as_ptr().cast(), key.len());
        ffi::lua_rawget(state, idx);
    }

    let user_id_fallback = crate::token::user_id_fallback(claims).is_some();
    // SAFETY: exec_raw runs the closure in a protected call on a stack with
    // room checked; every push is balanced and the two tables are the only
    // values left.
    unsafe {
        lua.exec_raw::<(LuaTable, LuaTable)>((), |state| {
            if ffi::lua_checkstack(state, 8) == 0 {
                return;
            }
            ffi::lua_createtable(state, 0, crate::token::SESSION_FIELDS.len() as c_int);
            let fields = ffi::lua_gettop(state);
            push_object(state, claims);
            let c = ffi::lua_gettop(state);
            for (field, path) in crate::token::SESSION_FIELDS {
                raw_field(state, c, path[0]);
                let mut walked = true;
                for key in &path[1..] {
                    if ffi::lua_type(state, -1) != ffi::LUA_TTABLE {
                        walked = false;
                        break;
                    }
                    let t = ffi::lua_gettop(state);
                    raw_field(state, t, key);
                    ffi::lua_remove(state, t);
                }
                if !walked || ffi::lua_type(state, -1) == ffi::LUA_TNIL {
                    ffi::lua_settop(state, c);
                    continue;
                }
                ffi::lua_pushlstring(state, field.as_ptr().cast(), field.len());
                ffi::lua_insert(state, -2);
                ffi::lua_rawset(state, fields);
            }
            if user_id_fallback {
                ffi::lua_pushstring(state, c"jitsi_meet_context_user".as_ptr());
                ffi::lua_createtable(state, 0, 1);
                ffi::lua_pushstring(state, c"id".as_ptr());
                raw_field(state, c, "user_id");
                ffi::lua_rawset(state, -3);
                ffi::lua_rawset(state, fields);
            }
        })
    }
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
    resync::register(lua, &t)?;
    security::register(lua, &t)?;
    Ok(t)
}
