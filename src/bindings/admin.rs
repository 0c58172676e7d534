//! Admin command bindings (prosodyctl mod_jitsi_security_admin).

use mlua::prelude::*;

use super::{from_lua, to_lua};
use crate::admin::{self, CheckLine};
use crate::auth::{AuthOptions, OPTION_NAMES};

fn lines(lua: &Lua, list: Vec<CheckLine>) -> LuaResult<LuaValue> {
    to_lua(lua, &list)
}

/// admin_check_token(options, token, room?) -> claims | nil, { {check=, pass=, reason=} ... }
fn check_token(lua: &Lua, (options, token, room): (LuaTable, LuaString, Option<LuaString>)) -> LuaResult<(LuaValue, LuaValue)> {
    let options: AuthOptions = from_lua(lua, LuaValue::Table(options))?;
    let room = room.as_ref().map(|r| r.as_bytes());
    let (claims, list) = admin::check_token(options, &token.as_bytes(), room.as_deref());
    let claims = match claims {
        Some(c) => to_lua(lua, &c)?,
        None => LuaNil,
    };
    Ok((claims, lines(lua, list)?))
}

/// admin_check_service(options) -> { {check=, pass=, reason=} ... }
fn check_service(lua: &Lua, options: LuaTable) -> LuaResult<LuaValue> {
    let options: AuthOptions = from_lua(lua, LuaValue::Table(options))?;
    lines(lua, admin::check_service(options))
}

pub(super) fn register(lua: &Lua, t: &LuaTable) -> LuaResult<()> {
    t.set("admin_option_names", OPTION_NAMES.to_vec())?;
    t.set("admin_check_token", lua.create_function(check_token)?)?;
    t.set("admin_check_service", lua.create_function(check_service)?)?;
    Ok(())
}
