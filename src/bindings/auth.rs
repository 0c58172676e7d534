//! The VirtualHost authenticator: token checks plus the UVS worker pool.
//! Matrix logins return a job id; the shim waits (util.async) until the
//! pool's eventfd is readable, then drains finished jobs.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use mlua::prelude::*;

use super::{from_lua, refusal, to_lua};
use crate::auth::{AuthOptions, Authenticator, LoginStep};
use crate::error::Error;
use crate::matrix::MatrixLogin;
use crate::token;
use crate::uvs::UvsClient;
use crate::worker::{SubmitError, UvsPool};

struct LuaAuthenticator {
    auth: Authenticator,
    pool: Option<UvsPool>,
    /// Matrix logins waiting for UVS, by job id (touched only from Lua).
    pending: RefCell<HashMap<u64, MatrixLogin>>,
}

impl LuaAuthenticator {
    /// login(token, room) -> {fields=...} | {pending=id} | nil, text, condition, code
    fn login(&self, lua: &Lua, token: &str, room: Option<&str>) -> LuaResult<LuaMultiValue> {
        let step = match self.auth.begin(token, room, token::now()) {
            Ok(step) => step,
            Err(e) => return refusal(lua, &e),
        };
        let t = lua.create_table()?;
        match step {
            LoginStep::Done(fields) => t.set("fields", to_lua(lua, &fields)?)?,
            LoginStep::Uvs(login) => {
                let Some(pool) = &self.pool else { return refusal(lua, &Error::MatrixDisabled) };
                match pool.submit(login.request.clone()) {
                    Ok(id) => {
                        self.pending.borrow_mut().insert(id, login);
                        t.set("pending", id)?;
                    }
                    Err(SubmitError::QueueFull { limit }) => return refusal(lua, &Error::UvsBusy(limit)),
                }
            }
        }
        t.into_lua_multi(lua)
    }

    /// drain() -> { {id=, fields=, code="ok", detail=} | {id=, text=, condition=, code=, detail=} ... }
    fn drain(&self, lua: &Lua) -> LuaResult<LuaTable> {
        let out = lua.create_table()?;
        let Some(pool) = &self.pool else { return Ok(out) };
        for (id, outcome) in pool.drain() {
            let Some(login) = self.pending.borrow_mut().remove(&id) else { continue };
            let entry = lua.create_table()?;
            entry.set("id", id)?;
            entry.set("detail", outcome.detail())?;
            match self.auth.finish(&login, &outcome) {
                Ok(fields) => {
                    entry.set("fields", to_lua(lua, &fields)?)?;
                    entry.set("code", outcome.code())?;
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
}

impl LuaUserData for LuaAuthenticator {
    fn add_methods<M: LuaUserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("login", |lua, this, (token, room): (LuaString, Option<LuaString>)| {
            let room = room.map(|r| r.to_str().map(|s| s.to_string())).transpose()?;
            this.login(lua, &token.to_str()?, room.as_deref())
        });
        methods.add_method("drain", |lua, this, ()| this.drain(lua));
        methods.add_method("fd", |_, this, ()| Ok(this.pool.as_ref().map(|p| p.fd())));
        methods.add_method("pending", |_, this, ()| Ok(this.pending.borrow().len()));
        methods.add_method("describe", |_, this, ()| Ok(this.auth.describe()));
    }
}

/// new_authenticator(options) -> authenticator | nil, text
fn new_authenticator(lua: &Lua, options: LuaTable) -> LuaResult<LuaMultiValue> {
    let options: AuthOptions = from_lua(lua, LuaValue::Table(options))?;
    let (threads, queue_limit) = options.pool_size();
    let (auth, uvs) = match Authenticator::new(options) {
        Ok(v) => v,
        Err(e) => return refusal(lua, &e),
    };
    let pool = match uvs {
        None => None,
        Some(config) => match UvsPool::new(threads, queue_limit, Arc::new(UvsClient::new(config))) {
            Ok(pool) => Some(pool),
            Err(e) => return refusal(lua, &Error::Config(format!("cannot start UVS workers: {e}"))),
        },
    };
    let ud = LuaAuthenticator { auth, pool, pending: RefCell::new(HashMap::new()) };
    lua.create_userdata(ud)?.into_lua_multi(lua)
}

pub(super) fn register(lua: &Lua, t: &LuaTable) -> LuaResult<()> {
    t.set("new_authenticator", lua.create_function(new_authenticator)?)?;
    Ok(())
}
