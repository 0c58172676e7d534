//! Lobby/password policy bindings: options in once, then per join the
//! session and the room's facts in, a table of actions out.

use mlua::prelude::*;

use serde_json::Value;

use super::options::checked;
use super::session::{now, proof_of, string_fact};
use super::to_lua;
use crate::options::Module;
use crate::policy::security::{self, JoinInput};
use crate::policy::Scope;

struct LuaSecurity(Scope);

fn input(this: &LuaSecurity, session: &LuaTable, facts: &LuaTable) -> LuaResult<JoinInput> {
    let field = |name: &str| -> LuaResult<Option<serde_json::Value>> {
        let v: LuaValue = session.raw_get(name)?;
        Ok(match v {
            LuaValue::Table(_) => serde_json::to_value(&v).ok(),
            _ => None,
        })
    };
    Ok(JoinInput {
        room_node: string_fact(facts, "room_node")?.unwrap_or_default(),
        scope: this.0.clone(),
        proof: proof_of(session)?,
        context_room: field("jitsi_meet_context_room")?,
        context_user: field("jitsi_meet_context_user")?,
        lobby_enabled: facts.raw_get::<Option<bool>>("lobby_enabled")?.unwrap_or(false),
        password: string_fact(facts, "password")?,
        affiliation: string_fact(facts, "affiliation")?,
        now: now(),
    })
}

impl LuaUserData for LuaSecurity {
    fn add_methods<M: LuaUserDataMethods<Self>>(methods: &mut M) {
        // pre_join(session, facts) -> { inject_password?, grant_member, why }
        methods.add_method("pre_join", |lua, this, (session, facts): (LuaTable, LuaTable)| {
            to_lua(lua, &security::pre_join(&input(this, &session, &facts)?))
        });
        // joined(session, facts) -> { lobby? ("create"|"destroy"), set_password?, why }
        methods.add_method("joined", |lua, this, (session, facts): (LuaTable, LuaTable)| {
            to_lua(lua, &security::joined(&input(this, &session, &facts)?))
        });
    }
}

/// new_security(host, raw options) -> security | nil, "configuration error: ..."
/// (the options as `read_options` returns them raw; checked by the option table).
fn new_security(lua: &Lua, (host, raw): (String, LuaTable)) -> LuaResult<LuaMultiValue> {
    match checked(Module::SecurityOndemand, &raw) {
        Ok(o) => {
            let base = o.get("muc_mapper_domain_base").and_then(Value::as_str);
            let verification = o.get("enable_domain_verification").and_then(Value::as_bool).unwrap_or(true);
            lua.create_userdata(LuaSecurity(Scope::for_host(&host, base, verification)))?.into_lua_multi(lua)
        }
        Err(e) => (LuaNil, e.to_string()).into_lua_multi(lua),
    }
}

pub(super) fn register(lua: &Lua, t: &LuaTable) -> LuaResult<()> {
    t.set("new_security", lua.create_function(new_security)?)?;
    Ok(())
}
