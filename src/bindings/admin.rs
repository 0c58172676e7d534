//! Admin command bindings (prosodyctl mod_jitsi_security_admin). Options
//! arrive raw, as Prosody's config holds them, and are checked by the same
//! code the server runs: a configuration the server refuses is reported,
//! never raised as a Lua error.

use mlua::prelude::*;

use super::options::{checked, module_named, raw_options};
use super::to_lua;
use crate::admin::{self, CheckLine};
use crate::runtime::login::AuthOptions;
use crate::options::{self, Module, Problem};

fn lines(lua: &Lua, list: Vec<CheckLine>) -> LuaResult<LuaValue> {
    to_lua(lua, &list)
}

/// The host's auth options, or the line saying why there are none.
fn auth_options(options: &LuaTable) -> Result<AuthOptions, CheckLine> {
    let raw = raw_options(options);
    AuthOptions::from_raw(raw.iter().map(|(n, r)| (n.as_str(), r))).map_err(|problems: Vec<Problem>| CheckLine {
        check: "configuration".into(),
        pass: false,
        reason: format!("configuration error: {} (see check-config)", options::summary(&problems)),
    })
}

/// admin_check_config(module_name, raw options) -> { {option=, text=, fix=} ... }
fn check_config(lua: &Lua, (name, options): (String, LuaTable)) -> LuaResult<LuaValue> {
    let module = module_named(&name)?;
    to_lua(lua, &admin::check_config(module, &raw_options(&options)))
}

/// admin_check_token(raw options, token, room?, door?) -> claims | nil, { {check=, pass=, reason=} ... }
/// door: { host = <VirtualHost>, and its raw muc_mapper_domain_base and
/// enable_domain_verification } (a wrong one is check-config's to report:
/// here it counts as unset).
fn check_token(
    lua: &Lua,
    (options, token, room, door): (LuaTable, LuaString, Option<LuaString>, Option<LuaTable>),
) -> LuaResult<(LuaValue, LuaValue)> {
    let options = match auth_options(&options) {
        Ok(o) => o,
        Err(l) => return Ok((LuaNil, lines(lua, vec![l])?)),
    };
    let room = room.as_ref().map(|r| r.as_bytes());
    let scope = match &door {
        Some(d) => {
            let host: String = d.get::<Option<String>>("host")?.unwrap_or_default();
            let o = checked(Module::TokenVerification, d).unwrap_or_default();
            let base = o.get("muc_mapper_domain_base").and_then(serde_json::Value::as_str);
            let verification = o.get("enable_domain_verification").and_then(serde_json::Value::as_bool).unwrap_or(true);
            crate::policy::Scope::for_domain(&host, base, verification)
        }
        None => crate::policy::Scope::default(),
    };
    let (claims, list) = admin::check_token(options, &token.as_bytes(), room.as_deref(), &scope);
    let claims = match claims {
        Some(c) => to_lua(lua, &c)?,
        None => LuaNil,
    };
    Ok((claims, lines(lua, list)?))
}

/// admin_check_service(raw options) -> { {check=, pass=, reason=} ... }
fn check_service(lua: &Lua, options: LuaTable) -> LuaResult<LuaValue> {
    match auth_options(&options) {
        Ok(o) => lines(lua, admin::check_service(o)),
        Err(l) => lines(lua, vec![l]),
    }
}

pub(super) fn register(lua: &Lua, t: &LuaTable) -> LuaResult<()> {
    t.set("admin_check_config", lua.create_function(check_config)?)?;
    t.set("admin_check_token", lua.create_function(check_token)?)?;
    t.set("admin_check_service", lua.create_function(check_service)?)?;
    Ok(())
}
