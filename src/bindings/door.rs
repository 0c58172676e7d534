//! The room door (`token_verification`): options in once, then per join
//! the shim's facts and the session in, a verdict out.

use mlua::prelude::*;

use super::session::{lapse_grants, now, proof_of};
use super::to_lua;
use crate::error::Error;
use crate::policy::door::{self, DoorConfig, DoorInput, DoorOptions};

struct LuaDoor(DoorConfig);

pub(super) fn bool_option(t: &LuaTable, name: &str) -> Result<Option<bool>, Error> {
    match t.raw_get::<LuaValue>(name) {
        Ok(LuaValue::Nil) => Ok(None),
        Ok(LuaValue::Boolean(b)) => Ok(Some(b)),
        _ => Err(Error::Config(format!("{name} must be true or false"))),
    }
}

pub(super) fn string_option(t: &LuaTable, name: &str) -> Result<Option<String>, Error> {
    match t.raw_get::<LuaValue>(name) {
        Ok(LuaValue::Nil) => Ok(None),
        Ok(LuaValue::String(s)) => {
            s.to_str().map(|s| Some(s.to_string())).map_err(|_| Error::Config(format!("{name} is not valid UTF-8")))
        }
        _ => Err(Error::Config(format!("{name} must be a string"))),
    }
}

/// A list of strings, or one string (as Prosody's get_option_array takes it).
fn list_option(t: &LuaTable, name: &str) -> Result<Vec<String>, Error> {
    let wrong = || Error::Config(format!("{name} must be a list of strings"));
    match t.raw_get::<LuaValue>(name) {
        Ok(LuaValue::Nil) => Ok(Vec::new()),
        Ok(LuaValue::String(s)) => Ok(vec![s.to_str().map_err(|_| wrong())?.to_string()]),
        Ok(LuaValue::Table(list)) => {
            let mut out = Vec::new();
            for pair in list.pairs::<LuaValue, LuaValue>() {
                // Sets (module:get_option_set) are keyed by their items.
                let item = match pair.map_err(|_| wrong())? {
                    (LuaValue::Integer(_), LuaValue::String(s)) | (LuaValue::String(s), LuaValue::Boolean(true)) => s,
                    _ => return Err(wrong()),
                };
                out.push(item.to_str().map_err(|_| wrong())?.to_string());
            }
            Ok(out)
        }
        _ => Err(wrong()),
    }
}

fn door_options(options: &LuaTable) -> Result<DoorOptions, Error> {
    Ok(DoorOptions {
        host: string_option(options, "host")?.ok_or_else(|| Error::Config("host is not set".into()))?,
        allow_empty_token: bool_option(options, "allow_empty_token")?,
        enable_domain_verification: bool_option(options, "enable_domain_verification")?,
        muc_mapper_domain_base: string_option(options, "muc_mapper_domain_base")?,
        token_verification_allowlist: list_option(options, "token_verification_allowlist")?,
        token_verification_require_token_for_moderation: bool_option(
            options,
            "token_verification_require_token_for_moderation",
        )?,
    })
}

pub(super) fn string_fact(t: &LuaTable, name: &str) -> LuaResult<Option<String>> {
    Ok(match t.raw_get::<LuaValue>(name)? {
        LuaValue::String(s) => Some(s.to_string_lossy().to_string()),
        _ => None,
    })
}

impl LuaUserData for LuaDoor {
    fn add_methods<M: LuaUserDataMethods<Self>>(methods: &mut M) {
        // check(facts, session) -> { open, code, text?, lapse_grants }
        methods.add_method("check", |lua, this, (facts, session): (LuaTable, LuaTable)| {
            let input = DoorInput {
                room_node: string_fact(&facts, "room_node")?.unwrap_or_default(),
                breakout: facts.raw_get::<Option<bool>>("breakout")?.unwrap_or(false),
                main_room_node: string_fact(&facts, "main_room_node")?,
                user_jid: string_fact(&facts, "user_jid")?.unwrap_or_default(),
                is_admin: facts.raw_get::<Option<bool>>("is_admin")?.unwrap_or(false),
                from_s2s: facts.raw_get::<Option<bool>>("from_s2s")?.unwrap_or(false),
                other_host: facts.raw_get::<Option<bool>>("other_host")?.unwrap_or(false),
                proof: proof_of(&session)?,
                now: now(),
            };
            to_lua(lua, &door::check(&this.0, &input))
        });
        // may_configure(is_admin, session) -> boolean
        methods.add_method("may_configure", |_, this, (is_admin, session): (bool, LuaTable)| {
            Ok(door::may_configure(&this.0, is_admin, &proof_of(&session)?))
        });
        // lapse(session): remove the token's grants from the session.
        methods.add_method("lapse", |lua, _, session: LuaTable| lapse_grants(lua, &session));
        methods.add_method("describe", |_, this, ()| {
            let c = &this.0;
            Ok(format!(
                "room door: domains {:?} (verification {}), empty tokens {}, {} allowlisted",
                c.scope.home_domains,
                if c.scope.domain_verification { "on" } else { "off" },
                if c.allow_empty_token { "allowed" } else { "refused" },
                c.allowlist.len()
            ))
        });
    }
}

/// new_door(options) -> door | nil, text
fn new_door(lua: &Lua, options: LuaTable) -> LuaResult<LuaMultiValue> {
    match door_options(&options) {
        Ok(o) => lua.create_userdata(LuaDoor(o.into_config()))?.into_lua_multi(lua),
        Err(e) => (LuaNil, e.to_string()).into_lua_multi(lua),
    }
}

pub(super) fn register(lua: &Lua, t: &LuaTable) -> LuaResult<()> {
    t.set("new_door", lua.create_function(new_door)?)?;
    t.set("configure_refused_text", door::CONFIGURE_REFUSED)?;
    Ok(())
}
