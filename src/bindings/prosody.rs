//! Small pieces of Prosody's module API that several shims need, written
//! once: a counter per reason code, and "is this JID a server admin".

use mlua::prelude::*;

/// counter(module, prefix, kind?) -> function(code): counts `<prefix><code>`
/// with `module:measure` (kind "rate" unless given), one measure per code.
fn counter(lua: &Lua, (module, prefix, kind): (LuaTable, String, Option<String>)) -> LuaResult<LuaFunction> {
    let measures = lua.create_table()?;
    let kind = kind.unwrap_or_else(|| "rate".into());
    lua.create_function(move |_, (code, n): (String, Option<i64>)| {
        let measure = match measures.raw_get::<Option<LuaFunction>>(code.as_str())? {
            Some(m) => m,
            None => {
                let measure_fn: LuaFunction = module.get("measure")?;
                let m: LuaFunction = measure_fn.call((module.clone(), format!("{prefix}{code}"), kind.as_str()))?;
                measures.raw_set(code.as_str(), m.clone())?;
                m
            }
        };
        match n {
            Some(n) => measure.call::<()>(n),
            None => measure.call::<()>(()),
        }
    })
}

/// admin_check(module, permission) -> function(jid): true for server
/// admins. Prosody 13 has roles: `permission` is granted to prosody:admin
/// (and so prosody:operator; admins may grant it to other roles) and asked
/// with module:could (13's legacy is_admin() logs a traceback on every
/// call). Prosody 0.12 has no roles; there usermanager.is_admin is the API.
fn admin_check(lua: &Lua, (module, permission): (LuaTable, String)) -> LuaResult<LuaFunction> {
    let could: Option<LuaFunction> = module.get("could")?;
    let default_permission: Option<LuaFunction> = module.get("default_permission")?;
    if let (Some(could), Some(default_permission)) = (could, default_permission) {
        default_permission.call::<()>((module.clone(), "prosody:admin", permission.as_str()))?;
        return lua.create_function(move |_, jid: LuaValue| {
            Ok(could.call::<LuaValue>((module.clone(), permission.as_str(), jid))?.as_boolean() == Some(true))
        });
    }
    let require: LuaFunction = lua.globals().get("require")?;
    let usermanager: LuaTable = require.call("core.usermanager")?;
    let is_admin: LuaFunction = usermanager.get("is_admin")?;
    let host: String = module.get("host")?;
    lua.create_function(move |_, jid: LuaValue| {
        Ok(is_admin.call::<LuaValue>((jid, host.as_str()))?.as_boolean() == Some(true))
    })
}

pub(super) fn register(lua: &Lua, t: &LuaTable) -> LuaResult<()> {
    t.set("counter", lua.create_function(counter)?)?;
    t.set("admin_check", lua.create_function(admin_check)?)?;
    Ok(())
}
