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

pub(super) fn register(lua: &Lua, t: &LuaTable) -> LuaResult<()> {
    t.set("owner_on_join", lua.create_function(on_join)?)?;
    t.set("owner_allow_grant", lua.create_function(allow_grant)?)?;
    Ok(())
}
