//! The host side (docs/design.md, "Architecture"): what a login needs next
//! (`login`: standard or Matrix token, from the VirtualHost's options), the
//! login service that keeps waiting logins and answers them (`service`,
//! with one bounded list type for every wait, `waiters`),
//! the background engine that runs network requests off Prosody's thread
//! and wakes it through an eventfd (`engine`), the shared HTTP client
//! (`http`) and how a connection hands over its token (`request`).
//!
//! Decides: when a waiting login is answered, refused as busy or timed
//! out. Must not touch: Lua (that is `bindings`), token or Matrix rules
//! (`standard`, `matrix`), room decisions (`policy`).

pub mod engine;
pub mod http;
pub mod login;
pub mod request;
pub mod service;
pub mod waiters;
