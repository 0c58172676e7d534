//! jitsi_security: the native module behind Jitsi Meet's token and Matrix
//! plugins for Prosody (docs/design.md). Folders by feature: `standard`
//! (Jitsi JWTs), `matrix` (Matrix tokens and users), `policy` (what a
//! session may do in a room), `runtime` (logins, background requests),
//! `bindings` (the only code that touches Lua).

pub mod admin;
pub mod bindings;
pub mod error;
pub mod matrix;
pub mod options;
pub mod policy;
pub mod runtime;
pub mod standard;
pub mod text;

/// `require "jitsi_security"` (the module file must be `jitsi_security.so`).
#[cfg(feature = "module")]
#[mlua::lua_module]
fn jitsi_security(lua: &mlua::Lua) -> mlua::Result<mlua::Table> {
    bindings::exports(lua)
}
