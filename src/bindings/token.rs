//! Token, request and room-name bindings.

use mlua::prelude::*;

use super::{from_lua, refusal, to_lua};
use crate::token::{self as tok, Verifier, VerifierOptions};
use crate::{request, room};

struct LuaVerifier(Verifier);

impl LuaUserData for LuaVerifier {
    fn add_methods<M: LuaUserDataMethods<Self>>(methods: &mut M) {
        // verifier:verify(token) -> session_fields, claims | nil, text, condition, code
        methods.add_method("verify", |lua, this, token: LuaString| {
            let token = token.to_str()?;
            match this.0.verify(&token, tok::now()) {
                Ok(claims) => (to_lua(lua, &tok::session_fields(&claims))?, to_lua(lua, &claims)?)
                    .into_lua_multi(lua),
                Err(e) => refusal(lua, &e),
            }
        });
    }
}

/// new_verifier(options) -> verifier | nil, text
fn new_verifier(lua: &Lua, options: LuaTable) -> LuaResult<LuaMultiValue> {
    let options: VerifierOptions = from_lua(lua, LuaValue::Table(options))?;
    match options.into_config().and_then(Verifier::new) {
        Ok(v) => lua.create_userdata(LuaVerifier(v))?.into_lua_multi(lua),
        Err(e) => refusal(lua, &e),
    }
}

/// decode_unverified(token) -> claims, is_matrix | nil, text, condition, code
fn decode_unverified(lua: &Lua, token: LuaString) -> LuaResult<LuaMultiValue> {
    match tok::decode_unverified(&token.to_str()?, tok::now()) {
        Ok(claims) => (to_lua(lua, &claims)?, tok::is_matrix(&claims)).into_lua_multi(lua),
        Err(e) => refusal(lua, &e),
    }
}

/// token_from(query_token, authorization_header) -> token | nil
fn token_from(_: &Lua, (query, header): (Option<String>, Option<String>)) -> LuaResult<Option<String>> {
    Ok(request::token_from(query.as_deref(), header.as_deref()))
}

/// room_id_for_name(name) -> room_id | nil, text, condition, code
fn room_id_for_name(lua: &Lua, name: String) -> LuaResult<LuaMultiValue> {
    match room::room_id_for_name(&name) {
        Ok(id) => id.into_lua_multi(lua),
        Err(e) => refusal(lua, &e),
    }
}

/// name_for_room_id(room_id) -> name
fn name_for_room_id(_: &Lua, room_id: String) -> LuaResult<String> {
    Ok(room::name_for_room_id(&room_id))
}

pub(super) fn register(lua: &Lua, t: &LuaTable) -> LuaResult<()> {
    t.set("new_verifier", lua.create_function(new_verifier)?)?;
    t.set("decode_unverified", lua.create_function(decode_unverified)?)?;
    t.set("token_from", lua.create_function(token_from)?)?;
    t.set("room_id_for_name", lua.create_function(room_id_for_name)?)?;
    t.set("name_for_room_id", lua.create_function(name_for_room_id)?)?;
    Ok(())
}
