pub mod admin;
pub mod auth;
pub mod bindings;
pub mod engine;
pub mod error;
pub mod jws;
pub mod keys;
pub mod matrix;
pub mod options;
pub mod policy;
pub mod request;
pub mod resync;
pub mod room;
pub mod service;
pub mod text;
pub mod token;
pub mod verify;

/// `require "jitsi_security"` (the module file must be `jitsi_security.so`).
#[cfg(feature = "module")]
#[mlua::lua_module]
fn jitsi_security(lua: &mlua::Lua) -> mlua::Result<mlua::Table> {
    bindings::exports(lua)
}
