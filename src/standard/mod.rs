//! Standard Jitsi tokens (docs/design.md, "Standard Jitsi tokens"): parsing
//! a JWT from any bytes, verifying its JWS signature with a key pinned by
//! configuration, checking its claims, and keys chosen by `kid`
//! (`asap_key_server`, `cache_keys_url`).
//!
//! Decides: whether a token is well formed, signed by a configured key,
//! within its times, for an accepted issuer and audience; which session
//! fields its claims give. Must not touch: Lua, the network (key fetches
//! are planned here and run by `runtime`), rooms or grants (`policy`).

pub mod json;
pub mod jws;
pub mod keys;
pub mod token;
