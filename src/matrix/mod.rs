//! Matrix (docs/design.md, "Matrix tokens" and "Verifying Matrix users"):
//! Element's widget tokens, Jitsi room names <-> Matrix room ids, checking
//! a Matrix user with UVS or the homeserver (`verify`: the backends, room
//! state, what is kept between logins), and the live resync of Matrix
//! membership in direct mode.
//!
//! Decides: whether a Matrix token may be checked, what a verifier's answer
//! means, which session fields a verified Matrix login gets, who must leave
//! or change affiliation after a resync. Must not touch: Lua, Prosody's
//! loop (requests are futures the `runtime` engine runs), or what a session
//! may do in a room (`policy`).

pub mod resync;
pub mod room;
pub mod token;
pub mod verify;
