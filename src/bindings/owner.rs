//! Matrix power sync bindings: a table in, a decision out.

use mlua::prelude::*;

use super::{from_lua, to_lua};
use crate::policy::owner::{self, OwnerInput};

/// owner_on_join(input) -> { set_affiliation? ("owner"|"member"), why }
fn on_join(lua: &Lua, input: LuaTable) -> LuaResult<LuaValue> {
    let input: OwnerInput = from_lua(lua, LuaValue::Table(input))?;
    to_lua(lua, &owner::on_join(&input))
}

/// owner_allow_grant(input, affiliation) -> boolean
fn allow_grant(lua: &Lua, (input, affiliation): (LuaTable, String)) -> LuaResult<bool> {
    let input: OwnerInput = from_lua(lua, LuaValue::Table(input))?;
    Ok(owner::allow_grant(&input, &affiliation))
}

/// owner_on_power_change(input, matrix_room, user_id, owner) ->
/// { flags = { { jid, is_owner }... }, set_affiliation? ("owner"|"member"), why }
fn on_power_change(lua: &Lua, (input, matrix_room, user_id, owner): (LuaTable, LuaString, LuaString, bool)) -> LuaResult<LuaValue> {
    let input: OwnerInput = from_lua(lua, LuaValue::Table(input))?;
    let s = |v: &LuaString| String::from_utf8_lossy(&v.as_bytes()).into_owned();
    to_lua(lua, &owner::on_power_change(&input, &s(&matrix_room), &s(&user_id), owner))
}

pub(super) fn register(lua: &Lua, t: &LuaTable) -> LuaResult<()> {
    t.set("owner_on_join", lua.create_function(on_join)?)?;
    t.set("owner_allow_grant", lua.create_function(allow_grant)?)?;
    t.set("owner_on_power_change", lua.create_function(on_power_change)?)?;
    Ok(())
}
