//! Is this Matrix user in this Matrix room, and with how much power?
//!
//! Two backends answer through one small interface, [`Backend`]: the Matrix
//! User Verification Service ([`uvs`]) or the homeserver itself
//! ([`homeserver`]), docs/design.md, "Verifying Matrix users". Both run on
//! the shared non-blocking HTTP client ([`crate::runtime::http`]) inside
//! the [`crate::runtime::engine`]'s background thread;
//! identical checks are answered from [`cache`]. Whichever backend answered,
//! the caller gets a [`Verdict`]. Pure of Lua.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub mod cache;
pub mod homeserver;
pub mod state;
pub mod uvs;

/// `state_default` when `m.room.power_levels` does not set it (Matrix spec).
pub const DEFAULT_STATE_DEFAULT: i64 = 50;

/// A future the engine can run on its thread.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// One check: a Matrix OpenID token and the room its user must be in.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Check {
    /// Matrix OpenID token (`context.matrix.token`). Secret: never logged.
    pub token: String,
    /// Matrix room id, e.g. `!abc:matrix.org` (or `!abc` from room v12).
    pub room_id: String,
    /// `context.matrix.server_name`, when the token names one.
    pub server_name: Option<String>,
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check")
            .field("token", &"<redacted>")
            .field("room_id", &self.room_id)
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// A verifier of Matrix users: UVS or the homeserver.
pub trait Backend: Send + Sync + 'static {
    /// How refusals name it: "UVS" or "the homeserver".
    fn name(&self) -> &'static str;
    /// Run one check (on the engine's runtime; the engine bounds its time).
    fn check(self: Arc<Self>, check: Check) -> BoxFuture<Verdict>;
    /// Whether membership (and so power) is checked at all.
    fn verifies_membership(&self) -> bool;
    /// How long the login service may keep a whole verified verdict, given
    /// `matrix_cache_ttl`: all of it unless the backend keeps parts itself.
    fn verdict_ttl(&self, cache_ttl: Duration) -> Duration {
        cache_ttl
    }
}

/// Why a backend could not give an answer. Every one means "not verified".
/// Texts are ours; pieces of other servers' text in them are escaped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Transport error: refused, DNS, TLS, reset, bad URL...
    #[error("connection failed: {0}")]
    Connect(String),
    /// The login's deadline passed first (queue wait included).
    #[error("timed out after {after_ms} ms")]
    Timeout { after_ms: u64 },
    /// An HTTP status other than the ones the API answers with.
    #[error("answered HTTP {0}")]
    HttpStatus(u16),
    /// A body that cannot be used; the text says why (never the body).
    #[error("body {0}")]
    BadBody(String),
    /// The check itself broke (a task panicked, the engine stopped).
    #[error("check failed internally: {0}")]
    Internal(String),
}

impl Failure {
    /// A stable short name of the failure kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Connect(_) => "connect_failed",
            Failure::Timeout { .. } => "timeout",
            Failure::HttpStatus(_) => "http_status",
            Failure::BadBody(_) => "bad_body",
            Failure::Internal(_) => "internal",
        }
    }
}

/// The verdict of one check, whichever backend gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The token is valid (and, when required, the user is in the room).
    Verified {
        user_id: Option<String>,
        /// The user's power level, when known.
        power_level: Option<i64>,
        /// `state_default`, 50 when missing.
        state_default: i64,
        /// A creator of a room of version 12 or later (unlimited power).
        creator: bool,
        /// Owner by the rule `power >= state_default` (or creator); false
        /// when membership was not verified.
        is_owner: bool,
    },
    /// Valid token, but the user is not joined to the room.
    NotInRoom,
    /// The OpenID token is not valid (or not of the expected server).
    InvalidToken,
    /// No usable answer: fail closed.
    Failure(Failure),
}

impl Verdict {
    /// The `REQUEST_COMPLETE reason:<code>` of the original plugin.
    pub fn code(&self) -> &'static str {
        match self {
            Verdict::Verified { .. } => "ok",
            Verdict::NotInRoom => "not_in_room",
            Verdict::InvalidToken => "invalid_token",
            Verdict::Failure(_) => "invalid_response",
        }
    }

    /// A line for logs, naming the backend. Never contains a token; a
    /// user id from the other server is escaped.
    pub fn detail(&self, source: &str) -> String {
        match self {
            Verdict::Verified { user_id, power_level, state_default, creator, is_owner } => {
                let who = user_id.as_deref().map(crate::text::escape_line).unwrap_or_else(|| "<unknown user>".into());
                let role = if *is_owner { "owner" } else { "not owner" };
                match (creator, power_level) {
                    (true, _) => format!("{source} verified {who} (room creator, {role})"),
                    (false, Some(pl)) => {
                        format!("{source} verified {who} (power level {pl}, state_default {state_default}, {role})")
                    }
                    (false, None) => format!("{source} verified {who} (no power levels, {role})"),
                }
            }
            Verdict::NotInRoom => format!("{source}: user is not a member of the room"),
            Verdict::InvalidToken => format!("{source} rejected the OpenID token"),
            Verdict::Failure(f) => format!("{source} {f}"),
        }
    }

    pub fn is_verified(&self) -> bool {
        matches!(self, Verdict::Verified { .. })
    }

    pub fn is_owner(&self) -> bool {
        matches!(self, Verdict::Verified { is_owner: true, .. })
    }

    /// What the engine reports when a check ran out of time.
    pub fn timed_out(after: Duration) -> Self {
        Verdict::Failure(Failure::Timeout { after_ms: after.as_millis() as u64 })
    }
}

impl From<Failure> for Verdict {
    fn from(f: Failure) -> Self {
        Verdict::Failure(f)
    }
}

/// Strips surrounding whitespace and one trailing `/` from a base URL.
pub fn normalize_base_url(url: &str) -> String {
    let url = url.trim();
    url.strip_suffix('/').unwrap_or(url).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(pl: Option<i64>, creator: bool, owner: bool) -> Verdict {
        Verdict::Verified {
            user_id: Some("@a:x".into()),
            power_level: pl,
            state_default: 50,
            creator,
            is_owner: owner,
        }
    }

    #[test]
    fn verdict_codes_match_original_plugin_reasons() {
        let cases: Vec<(Verdict, &str)> = vec![
            (verified(None, false, false), "ok"),
            (Verdict::NotInRoom, "not_in_room"),
            (Verdict::InvalidToken, "invalid_token"),
            (Failure::HttpStatus(500).into(), "invalid_response"),
            (Failure::BadBody("has no results".into()).into(), "invalid_response"),
            (Failure::Timeout { after_ms: 3000 }.into(), "invalid_response"),
            (Failure::Connect("refused".into()).into(), "invalid_response"),
            (Failure::Internal("panic".into()).into(), "invalid_response"),
        ];
        for (verdict, code) in cases {
            assert_eq!(verdict.code(), code, "{verdict:?}");
            assert_eq!(verdict.is_verified(), code == "ok");
        }
    }

    #[test]
    fn verdict_details_name_the_source() {
        let cases: Vec<(Verdict, &str)> = vec![
            (Failure::HttpStatus(500).into(), "UVS answered HTTP 500"),
            (Failure::Timeout { after_ms: 3000 }.into(), "UVS timed out after 3000 ms"),
            (Failure::BadBody("has no results".into()).into(), "UVS body has no results"),
            (Failure::Connect("refused".into()).into(), "UVS connection failed: refused"),
            (Verdict::InvalidToken, "UVS rejected the OpenID token"),
            (Verdict::NotInRoom, "UVS: user is not a member of the room"),
            (verified(Some(100), false, true), "UVS verified @a:x (power level 100, state_default 50, owner)"),
            (verified(None, false, false), "UVS verified @a:x (no power levels, not owner)"),
            (verified(None, true, true), "UVS verified @a:x (room creator, owner)"),
        ];
        for (verdict, detail) in cases {
            assert_eq!(verdict.detail("UVS"), detail);
        }
        let hostile = Verdict::Verified {
            user_id: Some("@a:x\nREQUEST_COMPLETE reason:ok".into()),
            power_level: None,
            state_default: 50,
            creator: false,
            is_owner: false,
        };
        assert!(!hostile.detail("UVS").contains('\n'));
    }

    #[test]
    fn base_url_trailing_slash_is_stripped() {
        for (given, want) in [
            ("http://uvs:3000", "http://uvs:3000"),
            ("http://uvs:3000/", "http://uvs:3000"),
            ("http://uvs:3000/prefix/", "http://uvs:3000/prefix"),
            (" http://uvs:3000/ ", "http://uvs:3000"),
        ] {
            assert_eq!(normalize_base_url(given), want);
        }
    }

    #[test]
    fn check_debug_redacts_the_openid_token() {
        let c = Check { token: "SECRET-OPENID".into(), room_id: "!r:x".into(), server_name: None };
        assert!(!format!("{c:?}").contains("SECRET"));
    }
}
