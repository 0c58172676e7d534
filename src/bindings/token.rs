//! Token, request and room-name bindings.

use mlua::prelude::*;

use super::{claims_and_fields, from_lua, refusal, to_lua, Names};
use crate::standard::token::{self as tok, Verifier, VerifierOptions};
use crate::matrix::room;
use crate::runtime::request;

/// A verifier and the Lua strings of its answer's names, made once.
struct LuaVerifier(Verifier, Names);

impl LuaUserData for LuaVerifier {
    fn add_methods<M: LuaUserDataMethods<Self>>(methods: &mut M) {
        // verifier:verify(token) -> session_fields, claims | nil, text, condition, code
        methods.add_method("verify", |lua, this, token: LuaString| {
            match this.0.verify(&*token.as_bytes(), tok::now()) {
                Ok(claims) => claims_and_fields(lua, &this.1, &claims)?.into_lua_multi(lua),
                Err(e) => refusal(lua, &e),
            }
        });
    }
}

/// new_verifier(options) -> verifier | nil, text
fn new_verifier(lua: &Lua, options: LuaTable) -> LuaResult<LuaMultiValue> {
    let options: VerifierOptions = from_lua(lua, LuaValue::Table(options))?;
    match options.into_config().and_then(Verifier::new) {
        Ok(v) => lua.create_userdata(LuaVerifier(v, Names::new(lua)?))?.into_lua_multi(lua),
        Err(e) => refusal(lua, &e),
    }
}

/// decode_unverified(token) -> claims, is_matrix | nil, text, condition, code
fn decode_unverified(lua: &Lua, token: LuaString) -> LuaResult<LuaMultiValue> {
    match tok::decode_unverified(&*token.as_bytes(), tok::now()) {
        Ok(claims) => (to_lua(lua, &claims)?, tok::is_matrix(&claims)).into_lua_multi(lua),
        Err(e) => refusal(lua, &e),
    }
}

/// token_from(query_token, authorization_header) -> token | nil
/// (both from the network: any bytes in, the same bytes out)
fn token_from(lua: &Lua, (query, header): (Option<LuaString>, Option<LuaString>)) -> LuaResult<Option<LuaString>> {
    let query = query.as_ref().map(|q| q.as_bytes());
    let header = header.as_ref().map(|h| h.as_bytes());
    request::token_from(query.as_deref(), header.as_deref()).map(|t| lua.create_string(t)).transpose()
}

/// room_id_for_name(name) -> room_id | nil, text, condition, code
fn room_id_for_name(lua: &Lua, name: LuaString) -> LuaResult<LuaMultiValue> {
    match room::room_id_for_name(&*name.as_bytes()) {
        Ok(id) => id.into_lua_multi(lua),
        Err(e) => refusal(lua, &e),
    }
}

/// name_for_room_id(room_id) -> name (a room id that is not UTF-8 is
/// encoded as its bytes would be, lossily)
fn name_for_room_id(_: &Lua, room_id: LuaString) -> LuaResult<String> {
    Ok(room::name_for_room_id(&String::from_utf8_lossy(&room_id.as_bytes())))
}

pub(super) fn register(lua: &Lua, t: &LuaTable) -> LuaResult<()> {
    t.set("new_verifier", lua.create_function(new_verifier)?)?;
    t.set("decode_unverified", lua.create_function(decode_unverified)?)?;
    t.set("token_from", lua.create_function(token_from)?)?;
    t.set("room_id_for_name", lua.create_function(room_id_for_name)?)?;
    t.set("name_for_room_id", lua.create_function(name_for_room_id)?)?;
    Ok(())
}
