//! Lobby/password policy bindings: a table in, a table of actions out.

use mlua::prelude::*;

use super::{from_lua, to_lua};
use crate::policy::security::{self, JoinInput};

/// security_pre_join(input) -> { inject_password?, grant_member, why }
fn pre_join(lua: &Lua, input: LuaTable) -> LuaResult<LuaValue> {
    let input: JoinInput = from_lua(lua, LuaValue::Table(input))?;
    to_lua(lua, &security::pre_join(&input))
}

/// security_joined(input) -> { lobby? ("create"|"destroy"), set_password?, why }
fn joined(lua: &Lua, input: LuaTable) -> LuaResult<LuaValue> {
    let input: JoinInput = from_lua(lua, LuaValue::Table(input))?;
    to_lua(lua, &security::joined(&input))
}

pub(super) fn register(lua: &Lua, t: &LuaTable) -> LuaResult<()> {
    t.set("security_pre_join", lua.create_function(pre_join)?)?;
    t.set("security_joined", lua.create_function(joined)?)?;
    Ok(())
}
