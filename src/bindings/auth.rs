//! The VirtualHost login service: standard tokens are decided at once;
//! Matrix logins return a waiter id, and the shim waits (util.async) until
//! the service's fd is readable, then drains finished logins.

use std::cell::RefCell;

use mlua::prelude::*;

use super::options::raw_options;
use super::{login_result, object_to_lua, refusal, Names};
use crate::runtime::login::AuthOptions;
use crate::error::Error;
use crate::runtime::service::{Granted, Finished, Service, Reply};

struct LuaAuthenticator {
    service: RefCell<Service>,
    /// Lua strings of the answer's names, made once.
    names: Names,
}

/// login(token, room, public_key?) -> {fields=, claims=?} | {pending=id, timeout=seconds} | nil, text, condition, code
fn login(lua: &Lua, this: &LuaAuthenticator, token: &[u8], room: Option<&[u8]>, key: Option<&[u8]>) -> LuaResult<LuaMultiValue> {
    let step = this.service.borrow_mut().login(token, room, key);
    let t = match step {
        Ok(Reply::Verified(claims)) => standard_result(lua, &this.names, &claims, this.service.borrow().token_leeway())?,
        Ok(Reply::Granted(fields)) => {
            let t = lua.create_table()?;
            t.set("fields", object_to_lua(lua, &fields)?)?;
            t
        }
        Ok(Reply::Pending { id, timeout }) => {
            let t = lua.create_table()?;
            t.set("pending", id)?;
            t.set("timeout", timeout.as_secs_f64())?;
            t
        }
        Err(e) => return refusal(lua, &e),
    };
    t.into_lua_multi(lua)
}

/// `{ fields =, claims = }` of a verified standard token, the fields with
/// when its grants lapse.
fn standard_result(lua: &Lua, names: &Names, claims: &crate::standard::token::Claims, leeway: u64) -> LuaResult<LuaTable> {
    login_result(lua, names, claims, crate::standard::token::grants_until(claims, leeway))
}

/// { {id=, fields=, code="ok", detail=} | {id=, text=, condition=, code=, detail=} ... }
fn finished(lua: &Lua, names: &Names, list: Vec<Finished>, leeway: u64) -> LuaResult<LuaTable> {
    let out = lua.create_table()?;
    for f in list {
        let entry = lua.create_table()?;
        entry.set("id", f.id)?;
        entry.set("detail", f.detail)?;
        match f.result {
            Ok(Granted::Fields(fields)) => {
                entry.set("fields", object_to_lua(lua, &fields)?)?;
                entry.set("code", "ok")?;
            }
            Ok(Granted::Claims(claims)) => {
                let result = standard_result(lua, names, &claims, leeway)?;
                entry.set("fields", result.raw_get::<LuaTable>("fields")?)?;
                entry.set("claims", result.raw_get::<LuaTable>("claims")?)?;
                entry.set("code", "ok")?;
            }
            Err(e) => {
                entry.set("text", e.to_string())?;
                entry.set("condition", e.sasl_condition())?;
                entry.set("code", e.reason_code())?;
            }
        }
        out.push(entry)?;
    }
    Ok(out)
}

impl LuaUserData for LuaAuthenticator {
    fn add_methods<M: LuaUserDataMethods<Self>>(methods: &mut M) {
        // Token and room come from the network: they cross as bytes.
        methods.add_method("login", |lua, this, (token, room, key): (LuaString, Option<LuaString>, Option<LuaString>)| {
            let room = room.as_ref().map(|r| r.as_bytes());
            let key = key.as_ref().map(|k| k.as_bytes());
            login(lua, this, &token.as_bytes(), room.as_deref(), key.as_deref())
        });
        methods.add_method("drain", |lua, this, ()| {
            let mut service = this.service.borrow_mut();
            finished(lua, &this.names, service.drain(), service.token_leeway())
        });
        methods.add_method("close", |lua, this, ()| {
            let mut service = this.service.borrow_mut();
            finished(lua, &this.names, service.close(), service.token_leeway())
        });
        methods.add_method("fd", |_, this, ()| Ok(this.service.borrow().fd()));
        // expire(id, seconds) -> { <one finished entry> }: the shim's
        // own deadline for a waiting login passed; its answer (a timeout).
        methods.add_method("expire", |lua, this, (id, seconds): (u64, f64)| {
            let after = std::time::Duration::try_from_secs_f64(seconds).unwrap_or_default();
            let mut service = this.service.borrow_mut();
            let expired = service.expire(id, after);
            finished(lua, &this.names, vec![expired], service.token_leeway())
        });
        // tick() -> { {level, text} ... }: periodic work (key set refresh)
        // and the log lines gathered since the last call.
        methods.add_method("tick", |lua, this, ()| {
            let mut service = this.service.borrow_mut();
            service.tick();
            let notes = lua.create_table()?;
            for (level, text) in service.take_notes() {
                notes.push(lua.create_sequence_from([level.to_string(), text])?)?;
            }
            Ok(notes)
        });
        methods.add_method("pending", |_, this, ()| Ok(this.service.borrow().waiting()));
        methods.add_method("describe", |_, this, ()| Ok(this.service.borrow().describe()));
    }
}

/// new_authenticator(raw options) -> authenticator | nil, text, condition, code
/// (raw: `{ name = module:get_option(name) }` for `option_names(module.name)`;
/// a wrong type or range is a `configuration error: <option> ...`).
fn new_authenticator(lua: &Lua, options: LuaTable) -> LuaResult<LuaMultiValue> {
    let raw = raw_options(&options);
    let options = match AuthOptions::from_raw(raw.iter().map(|(n, r)| (n.as_str(), r))) {
        Ok(o) => o,
        Err(problems) => return refusal(lua, &Error::Config(crate::options::summary(&problems))),
    };
    match Service::new(options) {
        Ok(service) => lua.create_userdata(LuaAuthenticator { service: RefCell::new(service), names: Names::new(lua)? })?.into_lua_multi(lua),
        Err(e) => refusal(lua, &e),
    }
}

pub(super) fn register(lua: &Lua, t: &LuaTable) -> LuaResult<()> {
    t.set("new_authenticator", lua.create_function(new_authenticator)?)?;
    Ok(())
}
