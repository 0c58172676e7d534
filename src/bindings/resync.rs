//! Live Matrix membership bindings: the power-sync shim tracks occupants,
//! ticks a timer, and applies the actions drained when the fd is readable.

use std::cell::RefCell;
use std::time::Instant;

use mlua::prelude::*;

use super::options::raw_options;
use super::refusal;
use crate::runtime::login::AuthOptions;
use crate::error::Error;
use crate::options::Module;
use crate::matrix::resync::{Action, Resync, ResyncSettings};
use crate::matrix::verify::homeserver::Homeserver;
use crate::runtime::http::Http;

struct LuaResync(RefCell<Resync>);

fn actions(lua: &Lua, list: Vec<Action>) -> LuaResult<LuaTable> {
    let out = lua.create_table()?;
    for a in list {
        let t = lua.create_table()?;
        match a {
            Action::Kick { room, real_jid, user_id, reason } => {
                t.set("kind", "kick")?;
                t.set("rejoin_refusal", crate::matrix::resync::REJOIN_REFUSAL)?;
                t.set("room", room)?;
                t.set("real_jid", real_jid)?;
                t.set("user_id", crate::text::escape_line(&user_id))?;
                t.set("reason", reason)?;
            }
            Action::Owner { room, real_jid, bare_jid, matrix_room, user_id, owner } => {
                t.set("kind", "owner")?;
                t.set("room", room)?;
                t.set("real_jid", real_jid)?;
                t.set("bare_jid", bare_jid)?;
                t.set("matrix_room", matrix_room)?;
                t.set("user_id", user_id)?;
                t.set("owner", owner)?;
            }
            Action::Outage { matrix_room, text } => {
                t.set("kind", "outage")?;
                t.set("matrix_room", crate::text::escape_line(&matrix_room))?;
                t.set("text", text)?;
            }
            Action::Recovered { matrix_room, text } => {
                t.set("kind", "recovered")?;
                t.set("matrix_room", crate::text::escape_line(&matrix_room))?;
                t.set("text", text)?;
            }
            Action::Failed { matrix_room } => {
                t.set("kind", "failed")?;
                t.set("matrix_room", crate::text::escape_line(&matrix_room))?;
            }
        }
        out.push(t)?;
    }
    Ok(out)
}

impl LuaUserData for LuaResync {
    fn add_methods<M: LuaUserDataMethods<Self>>(methods: &mut M) {
        // track(room_jid, room_node, real_jid, bare_jid, matrix_room_id, matrix_user_id) -> tracked?
        // (room_node: the node of the Jitsi room this room belongs to)
        methods.add_method(
            "track",
            |_, this, (room, node, occupant, bare, matrix_room, user): (LuaString, LuaString, LuaString, LuaString, LuaString, LuaString)| {
                let s = |v: &LuaString| String::from_utf8_lossy(&v.as_bytes()).into_owned();
                Ok(this.0.borrow_mut().track(&s(&room), &s(&node), &s(&occupant), &s(&bare), &s(&matrix_room), &s(&user), Instant::now()))
            },
        );
        // untrack(room_jid, real_jid)
        methods.add_method("untrack", |_, this, (room, real_jid): (LuaString, LuaString)| {
            let s = |v: &LuaString| String::from_utf8_lossy(&v.as_bytes()).into_owned();
            this.0.borrow_mut().untrack(&s(&room), &s(&real_jid));
            Ok(())
        });
        methods.add_method("tick", |_, this, ()| Ok(this.0.borrow_mut().tick(Instant::now())));
        methods.add_method("drain", |lua, this, ()| actions(lua, this.0.borrow_mut().drain(Instant::now())));
        // Seconds between two calls of tick() (the shim's timer).
        methods.add_method("tick_every", |_, this, ()| Ok(this.0.borrow().settings().tick_every().as_secs_f64()));
        methods.add_method("sessions", |_, this, ()| Ok(this.0.borrow().sessions()));
        methods.add_method("fd", |_, this, ()| Ok(this.0.borrow().fd()));
        methods.add_method("watched", |_, this, ()| Ok(this.0.borrow().watched()));
        methods.add_method("sent", |_, this, ()| Ok(this.0.borrow().sent));
        methods.add_method("close", |_, this, ()| {
            this.0.borrow_mut().close();
            Ok(())
        });
    }
}

/// new_resync(options) -> resync | false, why (off) | nil, text (error)
fn new_resync(lua: &Lua, options: LuaTable) -> LuaResult<LuaMultiValue> {
    // Raw config values (the component's, else the VirtualHost's), checked
    // by the option table (src/options.rs).
    let raw = raw_options(&options);
    let (auth, all) = match AuthOptions::from_raw_for(Module::PowerSync, raw.iter().map(|(n, r)| (n.as_str(), r))) {
        Ok(o) => o,
        Err(problems) => return refusal(lua, &Error::Config(crate::options::summary(&problems))),
    };
    let interval = all.get("matrix_resync_interval").and_then(serde_json::Value::as_f64);
    match ResyncSettings::from_options(&auth, interval) {
        Err(e) => refusal(lua, &e),
        Ok(None) => (false, "live Matrix membership is off (needs matrix_homeserver_url; matrix_resync_interval is not 0)")
            .into_lua_multi(lua),
        Ok(Some((hs, s))) => {
            let http = Http::new().map_err(|e| LuaError::runtime(format!("cannot start the HTTP client: {e}")))?;
            match Resync::new(Homeserver::new(hs, http), s) {
                Ok(r) => lua.create_userdata(LuaResync(RefCell::new(r)))?.into_lua_multi(lua),
                Err(e) => refusal(lua, &Error::Config(format!("cannot start the resync thread: {e}"))),
            }
        }
    }
}

pub(super) fn register(lua: &Lua, t: &LuaTable) -> LuaResult<()> {
    t.set("new_resync", lua.create_function(new_resync)?)?;
    Ok(())
}
