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
