//! The room door (`token_verification`): options in once, then per join
//! the shim's facts and the session in, a verdict out.

use mlua::prelude::*;

use serde_json::{Map, Value};

use super::options::checked;
use super::session::{lapse_grants, now, proof_of, string_fact};
use super::to_lua;
use crate::options::Module;
use crate::policy::door::{self, DoorConfig, DoorInput, DoorOptions};

struct LuaDoor(DoorConfig);

/// The door of MUC component `host` from its checked options.
fn door_options(host: String, o: &Map<String, Value>) -> DoorOptions {
    let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
    let flag = |k: &str| o.get(k).and_then(Value::as_bool);
    let list = |k: &str| -> Vec<String> {
        o.get(k).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect()).unwrap_or_default()
    };
    DoorOptions {
        host,
        allow_empty_token: flag("allow_empty_token"),
        enable_domain_verification: flag("enable_domain_verification"),
        muc_mapper_domain_base: text("muc_mapper_domain_base"),
        token_verification_allowlist: list("token_verification_allowlist"),
        token_verification_require_token_for_moderation: flag("token_verification_require_token_for_moderation"),
    }
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

/// new_door(host, raw options) -> door | nil, "configuration error: ..."
/// (the options as `read_options` returns them raw; checked by the option table).
fn new_door(lua: &Lua, (host, raw): (String, LuaTable)) -> LuaResult<LuaMultiValue> {
    match checked(Module::TokenVerification, &raw) {
        Ok(o) => lua.create_userdata(LuaDoor(door_options(host, &o).into_config()))?.into_lua_multi(lua),
        Err(e) => (LuaNil, e.to_string()).into_lua_multi(lua),
    }
}

pub(super) fn register(lua: &Lua, t: &LuaTable) -> LuaResult<()> {
    t.set("new_door", lua.create_function(new_door)?)?;
    t.set("configure_refused_text", door::CONFIGURE_REFUSED)?;
    Ok(())
}
