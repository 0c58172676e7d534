//! Reading a Prosody session: the session fields our auth module (or
//! jitsi-meet's token auth) set at login become a [`Proof`], the one
//! input of every room decision. The field names live here only.

use mlua::prelude::*;

use crate::policy::Proof;
use crate::standard::token::GRANTS_UNTIL_FIELD;

/// The string in `t[key]`, when it is a valid UTF-8 string.
fn string_field(t: &LuaTable, key: &str) -> LuaResult<Option<String>> {
    Ok(match t.raw_get::<LuaValue>(key)? {
        LuaValue::String(s) => s.to_str().ok().map(|s| s.to_string()),
        _ => None,
    })
}

/// What `session` proved at login.
pub(crate) fn proof_of(session: &LuaTable) -> LuaResult<Proof> {
    let matrix_room_id = match session.raw_get::<LuaValue>("jitsi_meet_context_matrix")? {
        LuaValue::Table(m) => string_field(&m, "room_id")?,
        _ => None,
    };
    let grants_until = match session.raw_get::<LuaValue>(GRANTS_UNTIL_FIELD)? {
        LuaValue::Integer(i) => Some(i as f64),
        LuaValue::Number(n) => Some(n),
        _ => None,
    };
    Ok(Proof {
        has_token: !session.raw_get::<LuaValue>("auth_token")?.is_nil(),
        token_room: string_field(session, "jitsi_meet_room")?,
        token_tenant: string_field(session, "jitsi_meet_str_tenant")?,
        token_domain: string_field(session, "jitsi_meet_domain")?,
        matrix_room_id,
        grants_until,
    })
}

/// The session's token grants lapsed: remove them from its fields before
/// any module reads them (`context.user` keeps its display data and ids;
/// `context.room` goes).
pub(crate) fn lapse_grants(lua: &Lua, session: &LuaTable) -> LuaResult<()> {
    if let LuaValue::Table(user) = session.raw_get::<LuaValue>("jitsi_meet_context_user")? {
        let kept = lua.create_table()?;
        for pair in user.pairs::<LuaValue, LuaValue>() {
            let (k, v) = pair?;
            let grant = matches!(&k, LuaValue::String(s)
                if s.to_str().is_ok_and(|s| crate::policy::door::USER_GRANTS.contains(&&*s)));
            if !grant {
                kept.raw_set(k, v)?;
            }
        }
        session.raw_set("jitsi_meet_context_user", kept)?;
    }
    session.raw_set("jitsi_meet_context_room", LuaNil)?;
    Ok(())
}

/// A fact the shim gathered (a room's node, a JID, a password): text, or
/// none when it is not a string.
pub(crate) fn string_fact(t: &LuaTable, name: &str) -> LuaResult<Option<String>> {
    Ok(match t.raw_get::<LuaValue>(name)? {
        LuaValue::String(s) => Some(s.to_string_lossy().to_string()),
        _ => None,
    })
}

/// Seconds since the epoch, with the fraction.
pub(crate) fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}
