//! Live Matrix membership bindings: the power-sync shim tracks occupants,
//! ticks a timer, and applies the actions drained when the fd is readable.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use mlua::prelude::*;
use serde::Deserialize;

use super::{from_lua, refusal};
use crate::error::Error;
use crate::resync::{Action, Resync, ResyncSettings};
use crate::verify::homeserver::{Homeserver, HomeserverConfig};
use crate::verify::http::Http;

/// The options the shim reads (from the MUC component or its VirtualHost).
#[derive(Debug, Default, Deserialize)]
struct ResyncOptions {
    matrix_homeserver_url: Option<String>,
    matrix_admin_token: Option<String>,
    matrix_server_name: Option<String>,
    matrix_resync_interval: Option<f64>,
    uvs_timeout: Option<f64>,
    uvs_sync_power_levels: Option<bool>,
    uvs_max_in_flight: Option<f64>,
}

struct LuaResync(RefCell<Resync>);

fn actions(lua: &Lua, list: Vec<Action>) -> LuaResult<LuaTable> {
    let out = lua.create_table()?;
    for a in list {
        let t = lua.create_table()?;
        match a {
            Action::Kick { room, occupant, user_id, reason } => {
                t.set("kind", "kick")?;
                t.set("room", room)?;
                t.set("occupant", occupant)?;
                t.set("user_id", crate::text::escape_line(&user_id))?;
                t.set("reason", reason)?;
            }
            Action::Owner { room, occupant, bare_jid, matrix_room, owner } => {
                t.set("kind", "owner")?;
                t.set("room", room)?;
                t.set("occupant", occupant)?;
                t.set("bare_jid", bare_jid)?;
                t.set("matrix_room", matrix_room)?;
                t.set("owner", owner)?;
            }
            Action::Outage { text } => {
                t.set("kind", "outage")?;
                t.set("text", text)?;
            }
            Action::Recovered { text } => {
                t.set("kind", "recovered")?;
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
        // track(room_jid, room_node, occupant_jid, bare_jid, matrix_room_id, matrix_user_id) -> tracked?
        methods.add_method(
            "track",
            |_, this, (room, node, occupant, bare, matrix_room, user): (LuaString, LuaString, LuaString, LuaString, LuaString, LuaString)| {
                let s = |v: &LuaString| String::from_utf8_lossy(&v.as_bytes()).into_owned();
                Ok(this.0.borrow_mut().track(&s(&room), &s(&node), &s(&occupant), &s(&bare), &s(&matrix_room), &s(&user), Instant::now()))
            },
        );
        methods.add_method("untrack", |_, this, (room, occupant): (LuaString, LuaString)| {
            let s = |v: &LuaString| String::from_utf8_lossy(&v.as_bytes()).into_owned();
            this.0.borrow_mut().untrack(&s(&room), &s(&occupant));
            Ok(())
        });
        methods.add_method("tick", |_, this, ()| Ok(this.0.borrow_mut().tick(Instant::now())));
        methods.add_method("drain", |lua, this, ()| actions(lua, this.0.borrow_mut().drain()));
        methods.add_method("fd", |_, this, ()| Ok(this.0.borrow().fd()));
        methods.add_method("watched", |_, this, ()| Ok(this.0.borrow().watched()));
        methods.add_method("sent", |_, this, ()| Ok(this.0.borrow().sent));
        methods.add_method("close", |_, this, ()| {
            this.0.borrow_mut().close();
            Ok(())
        });
    }
}

fn settings(o: &ResyncOptions) -> Result<Option<(HomeserverConfig, ResyncSettings)>, Error> {
    let url = o.matrix_homeserver_url.as_deref().map(str::trim).filter(|u| !u.is_empty());
    let interval = o.matrix_resync_interval.unwrap_or(30.0);
    let Some(url) = url else { return Ok(None) };
    if interval == 0.0 {
        return Ok(None);
    }
    if !(interval.is_finite() && interval > 0.0 && interval <= 86_400.0) {
        return Err(Error::Config(format!("matrix_resync_interval {interval} is not a number of seconds")));
    }
    let token = o.matrix_admin_token.as_deref().map(str::trim).filter(|t| !t.is_empty());
    let token = token.ok_or_else(|| Error::Config("matrix_homeserver_url needs matrix_admin_token".into()))?;
    let timeout = o.uvs_timeout.unwrap_or(crate::auth::DEFAULT_UVS_TIMEOUT_SECS);
    if !(timeout.is_finite() && timeout > 0.0 && timeout <= 300.0) {
        return Err(Error::Config(format!("uvs_timeout {timeout} is not between 0 and 300 seconds")));
    }
    let hs = HomeserverConfig {
        base_url: url.to_string(),
        admin_token: token.to_string(),
        server_name: o.matrix_server_name.clone().filter(|s| !s.is_empty()),
        verify_membership: true,
    };
    let settings = ResyncSettings {
        interval: Duration::from_secs_f64(interval),
        timeout: Duration::from_secs_f64(timeout),
        sync_power_levels: o.uvs_sync_power_levels.unwrap_or(false),
        max_in_flight: o.uvs_max_in_flight.map_or(crate::auth::DEFAULT_MAX_IN_FLIGHT, |n| n.clamp(1.0, 1e6) as usize),
    };
    Ok(Some((hs, settings)))
}

/// new_resync(options) -> resync | false, why (off) | nil, text (error)
fn new_resync(lua: &Lua, options: LuaTable) -> LuaResult<LuaMultiValue> {
    let options: ResyncOptions = from_lua(lua, LuaValue::Table(options))?;
    match settings(&options) {
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
