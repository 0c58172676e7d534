//! Client for the Matrix User Verification Service (UVS), CONTRACT section 4.
//!
//! Pure Rust, no Lua: the decision ([`classify`]) is a pure function of the
//! HTTP status and body, and [`UvsClient::verify`] does the blocking HTTP
//! exchange (run it on a worker thread, see `crate::worker`, never on
//! Prosody's event loop).
//!
//! Every failure (transport error, timeout, non-200 status, unparsable body,
//! missing `results`) means "not verified": the client fails closed.
//!
//! Neither the Matrix OpenID token nor the UVS auth token ever appears in a
//! `Debug` output, a [`UvsOutcome::detail`] text or an error message built
//! here.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// `state_default` when `m.room.power_levels` does not set it (Matrix spec).
pub const DEFAULT_STATE_DEFAULT: i64 = 50;

/// Path of the "user + room membership" check.
pub const PATH_USER_IN_ROOM: &str = "/verify/user_in_room";
/// Path of the "user only" check.
pub const PATH_USER: &str = "/verify/user";

/// Largest UVS response body read (a real answer is a few hundred bytes).
pub const MAX_BODY_BYTES: u64 = 1 << 20;

// ---------------------------------------------------------------------------
// Configuration and request
// ---------------------------------------------------------------------------

/// How to reach the UVS.
#[derive(Clone)]
pub struct UvsConfig {
    /// e.g. `http://uvs:3000` (a trailing `/` is stripped by [`UvsClient::new`]).
    pub base_url: String,
    /// Sent as `Authorization: Bearer <token>` when set (an empty string counts as unset).
    pub auth_token: Option<String>,
    /// Whole-request budget: connect + send + response headers + body.
    pub timeout: Duration,
    /// `true`: `/verify/user_in_room` and room membership is required.
    /// `false`: `/verify/user`, the user check only (never an owner).
    pub verify_membership: bool,
}

impl UvsConfig {
    /// Config with the defaults: no auth token, 3 s timeout, membership verified.
    pub fn new(base_url: impl Into<String>) -> Self {
        UvsConfig {
            base_url: normalize_base_url(&base_url.into()),
            auth_token: None,
            timeout: Duration::from_secs(3),
            verify_membership: true,
        }
    }

    /// The full URL of the endpoint this config uses.
    pub fn endpoint(&self) -> String {
        let path = if self.verify_membership { PATH_USER_IN_ROOM } else { PATH_USER };
        format!("{}{}", normalize_base_url(&self.base_url), path)
    }

    fn bearer(&self) -> Option<&str> {
        self.auth_token.as_deref().filter(|t| !t.is_empty())
    }
}

impl fmt::Debug for UvsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UvsConfig")
            .field("base_url", &self.base_url)
            .field("auth_token", &self.auth_token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("verify_membership", &self.verify_membership)
            .finish()
    }
}

/// Strips one trailing `/` (and surrounding whitespace) from a base URL.
pub fn normalize_base_url(url: &str) -> String {
    let url = url.trim();
    url.strip_suffix('/').unwrap_or(url).to_string()
}

/// One verification: the Matrix OpenID token and the room it must be a member of.
#[derive(Clone, PartialEq, Eq)]
pub struct UvsRequest {
    /// Matrix OpenID token (`context.matrix.token`). Secret: never logged.
    pub token: String,
    /// Matrix room id, e.g. `!abc:matrix.org`.
    pub room_id: String,
    /// `context.matrix.server_name`, sent as `matrix_server_name` when set.
    pub server_name: Option<String>,
}

impl UvsRequest {
    /// The JSON body sent to the UVS (`room_id` only when membership is verified).
    pub fn body(&self, verify_membership: bool) -> Value {
        let mut body = serde_json::Map::new();
        body.insert("token".into(), Value::String(self.token.clone()));
        if verify_membership {
            body.insert("room_id".into(), Value::String(self.room_id.clone()));
        }
        if let Some(server) = self.server_name.as_deref().filter(|s| !s.is_empty()) {
            body.insert("matrix_server_name".into(), Value::String(server.to_string()));
        }
        Value::Object(body)
    }
}

impl fmt::Debug for UvsRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UvsRequest")
            .field("token", &"<redacted>")
            .field("room_id", &self.room_id)
            .field("server_name", &self.server_name)
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Response types
// ---------------------------------------------------------------------------

/// `results` of a UVS answer. A missing field counts as `false`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UvsResults {
    #[serde(default)]
    pub user: bool,
    #[serde(default)]
    pub room_membership: bool,
}

/// The `m.room.power_levels` content the UVS returns (without `users`); only
/// `state_default` matters here, the rest is kept as-is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RoomPowerLevels {
    #[serde(default, deserialize_with = "lenient_power", skip_serializing_if = "Option::is_none")]
    pub state_default: Option<i64>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// `power_levels` of a UVS answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PowerLevels {
    #[serde(default)]
    pub room: Option<RoomPowerLevels>,
    /// The user's power level in the room.
    #[serde(default, deserialize_with = "lenient_power")]
    pub user: Option<i64>,
}

impl PowerLevels {
    /// `state_default`, 50 when missing.
    pub fn state_default(&self) -> i64 {
        self.room.as_ref().and_then(|r| r.state_default).unwrap_or(DEFAULT_STATE_DEFAULT)
    }

    /// Owner rule: `user >= room.state_default` (no user level: not owner).
    pub fn is_owner(&self) -> bool {
        matches!(self.user, Some(level) if level >= self.state_default())
    }
}

/// A whole UVS answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UvsResponse {
    pub results: Option<UvsResults>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub power_levels: Option<PowerLevels>,
}

impl UvsResponse {
    /// Parses a 200 body. `results` must be an object of booleans; `user_id`
    /// that is not a string is ignored; a malformed `power_levels` counts as
    /// absent (so: not owner) rather than failing the verification.
    pub fn parse(body: &[u8]) -> Result<UvsResponse, UvsFailure> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            UvsFailure::BadBody(format!("is not valid JSON (line {}, column {})", e.line(), e.column()))
        })?;
        let Value::Object(obj) = value else {
            return Err(UvsFailure::BadBody("is not a JSON object".into()));
        };
        let results = match obj.get("results") {
            None | Some(Value::Null) => return Err(UvsFailure::BadBody("has no results".into())),
            Some(r) => serde_json::from_value::<UvsResults>(r.clone())
                .map_err(|_| UvsFailure::BadBody("has malformed results".into()))?,
        };
        let user_id = obj.get("user_id").and_then(Value::as_str).map(str::to_string);
        let power_levels = obj
            .get("power_levels")
            .filter(|p| !p.is_null())
            .and_then(|p| serde_json::from_value::<PowerLevels>(p.clone()).ok());
        Ok(UvsResponse { results: Some(results), user_id, power_levels })
    }
}

/// Power levels are integers, but rooms before version 10 may hold them as
/// strings ("50"); accept integral numbers and numeric strings, refuse the rest.
fn lenient_power<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => power_from_value(&v)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("power level is not an integer")),
    }
}

fn power_from_value(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Outcome
// ---------------------------------------------------------------------------

/// Why a UVS check could not give an answer. Every one means "not verified".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UvsFailure {
    /// Transport error: refused, DNS, TLS, reset, bad URL...
    #[error("UVS connection failed: {0}")]
    Connect(String),
    /// The whole-request timeout elapsed.
    #[error("UVS timed out after {after_ms} ms")]
    Timeout { after_ms: u64 },
    /// Any status but 200.
    #[error("UVS answered HTTP {0}")]
    HttpStatus(u16),
    /// 200 but the body is unusable; the text says why (never the body itself).
    #[error("UVS body {0}")]
    BadBody(String),
    /// The check itself broke (a worker panicked).
    #[error("UVS check failed internally: {0}")]
    Internal(String),
}

impl UvsFailure {
    /// A stable short name of the failure kind, finer than [`UvsOutcome::code`].
    pub fn kind(&self) -> &'static str {
        match self {
            UvsFailure::Connect(_) => "connect_failed",
            UvsFailure::Timeout { .. } => "timeout",
            UvsFailure::HttpStatus(_) => "http_status",
            UvsFailure::BadBody(_) => "bad_body",
            UvsFailure::Internal(_) => "internal",
        }
    }
}

/// The verdict of one UVS check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UvsOutcome {
    /// The token is valid (and, when required, the user is in the room).
    Verified {
        user_id: Option<String>,
        /// `power_levels.user`, when the UVS sent power levels.
        power_level: Option<i64>,
        /// `power_levels.room.state_default`, 50 when missing.
        state_default: i64,
        /// `power_level >= state_default`; false without power levels or
        /// when membership was not verified.
        is_owner: bool,
    },
    /// Valid token, but the user is not a member of the room.
    NotInRoom,
    /// The UVS says the OpenID token is not valid (`results.user` false).
    InvalidToken,
    /// No usable answer: fail closed.
    Failure(UvsFailure),
}

impl UvsOutcome {
    /// The `REQUEST_COMPLETE reason:<code>` of the original plugin:
    /// `ok`, `not_in_room`, `invalid_token`, `invalid_response`.
    pub fn code(&self) -> &'static str {
        match self {
            UvsOutcome::Verified { .. } => "ok",
            UvsOutcome::NotInRoom => "not_in_room",
            UvsOutcome::InvalidToken => "invalid_token",
            UvsOutcome::Failure(_) => "invalid_response",
        }
    }

    /// A human-readable line for logs. Never contains a token.
    pub fn detail(&self) -> String {
        match self {
            UvsOutcome::Verified { user_id, power_level, state_default, is_owner } => {
                let who = user_id.as_deref().unwrap_or("<unknown user>");
                match power_level {
                    Some(pl) => format!(
                        "UVS verified {who} (power level {pl}, state_default {state_default}, {})",
                        if *is_owner { "owner" } else { "not owner" }
                    ),
                    None => format!("UVS verified {who} (no power levels, not owner)"),
                }
            }
            UvsOutcome::NotInRoom => "UVS: user is not a member of the room".to_string(),
            UvsOutcome::InvalidToken => "UVS rejected the OpenID token".to_string(),
            UvsOutcome::Failure(f) => f.to_string(),
        }
    }

    pub fn is_verified(&self) -> bool {
        matches!(self, UvsOutcome::Verified { .. })
    }

    pub fn is_owner(&self) -> bool {
        matches!(self, UvsOutcome::Verified { is_owner: true, .. })
    }

    pub fn failure(&self) -> Option<&UvsFailure> {
        match self {
            UvsOutcome::Failure(f) => Some(f),
            _ => None,
        }
    }
}

impl From<UvsFailure> for UvsOutcome {
    fn from(f: UvsFailure) -> Self {
        UvsOutcome::Failure(f)
    }
}

/// The decision, from the HTTP status and body alone.
pub fn classify(status: u16, body: &[u8], verify_membership: bool) -> UvsOutcome {
    if status != 200 {
        return UvsOutcome::Failure(UvsFailure::HttpStatus(status));
    }
    let resp = match UvsResponse::parse(body) {
        Ok(r) => r,
        Err(f) => return UvsOutcome::Failure(f),
    };
    let results = resp.results.unwrap_or_default();
    if !results.user {
        return UvsOutcome::InvalidToken;
    }
    if verify_membership && !results.room_membership {
        return UvsOutcome::NotInRoom;
    }
    let pl = resp.power_levels.as_ref();
    UvsOutcome::Verified {
        user_id: resp.user_id,
        power_level: pl.and_then(|p| p.user),
        state_default: pl.map(PowerLevels::state_default).unwrap_or(DEFAULT_STATE_DEFAULT),
        // Without a membership check the room's power levels prove nothing.
        is_owner: verify_membership && pl.is_some_and(PowerLevels::is_owner),
    }
}

// ---------------------------------------------------------------------------
// HTTP client
// ---------------------------------------------------------------------------

/// Blocking UVS client; share it between threads (`Arc<UvsClient>`).
pub struct UvsClient {
    config: UvsConfig,
    agent: ureq::Agent,
}

impl fmt::Debug for UvsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UvsClient").field("config", &self.config).finish()
    }
}

impl UvsClient {
    pub fn new(mut config: UvsConfig) -> Self {
        config.base_url = normalize_base_url(&config.base_url);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            // A redirect is an answer other than 200: fail closed, and never
            // carry the bearer token elsewhere.
            .max_redirects(0)
            .build()
            .into();
        UvsClient { config, agent }
    }

    pub fn config(&self) -> &UvsConfig {
        &self.config
    }

    /// Runs one check (blocking, at most about `config.timeout`).
    pub fn verify(&self, req: &UvsRequest) -> UvsOutcome {
        let outcome = self.exchange(req).unwrap_or_else(UvsOutcome::Failure);
        self.scrub_outcome(outcome, req)
    }

    fn exchange(&self, req: &UvsRequest) -> Result<UvsOutcome, UvsFailure> {
        let vm = self.config.verify_membership;
        let mut builder = self
            .agent
            .post(&self.config.endpoint())
            .header("Accept", "application/json");
        if let Some(token) = self.config.bearer() {
            builder = builder.header("Authorization", &format!("Bearer {token}"));
        }
        let mut resp = builder.send_json(req.body(vm)).map_err(|e| self.transport_failure(e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Ok(classify(status, b"", vm));
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => {
                    UvsFailure::BadBody(format!("is larger than {MAX_BODY_BYTES} bytes"))
                }
                e => self.transport_failure(e),
            })?;
        Ok(classify(status, &body, vm))
    }

    fn transport_failure(&self, e: ureq::Error) -> UvsFailure {
        let timed_out = UvsFailure::Timeout { after_ms: self.config.timeout.as_millis() as u64 };
        match e {
            ureq::Error::Timeout(_) => timed_out,
            ureq::Error::Io(ref io)
                if matches!(io.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) =>
            {
                timed_out
            }
            e => UvsFailure::Connect(e.to_string()),
        }
    }

    /// Belt and braces: no transport error text may carry a secret. (Our own
    /// texts never do; secrets shorter than 6 characters are not worth
    /// mangling messages for.)
    fn scrub_outcome(&self, outcome: UvsOutcome, req: &UvsRequest) -> UvsOutcome {
        let scrub = |s: String| -> String {
            let mut s = s;
            for secret in [Some(req.token.as_str()), self.config.bearer()].into_iter().flatten() {
                if secret.len() >= 6 {
                    s = s.replace(secret, "<redacted>");
                }
            }
            s
        };
        match outcome {
            UvsOutcome::Failure(UvsFailure::Connect(m)) => UvsOutcome::Failure(UvsFailure::Connect(scrub(m))),
            UvsOutcome::Failure(UvsFailure::Internal(m)) => UvsOutcome::Failure(UvsFailure::Internal(scrub(m))),
            other => other,
        }
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::thread;
    use std::time::Instant;

    fn verified(user: &str, pl: Option<i64>, sd: i64, owner: bool) -> UvsOutcome {
        UvsOutcome::Verified { user_id: Some(user.into()), power_level: pl, state_default: sd, is_owner: owner }
    }

    fn bad_body(reason: &str) -> UvsOutcome {
        UvsOutcome::Failure(UvsFailure::BadBody(reason.into()))
    }

    #[test]
    fn classify_table() {
        let member = r#"{"results":{"user":true,"room_membership":true},"user_id":"@a:x","power_levels":{"room":{"state_default":50},"user":100}}"#;
        let cases: Vec<(&str, u16, &str, bool, UvsOutcome)> = vec![
            ("member owner", 200, member, true, verified("@a:x", Some(100), 50, true)),
            ("non-200 500", 500, member, true, UvsOutcome::Failure(UvsFailure::HttpStatus(500))),
            ("non-200 401", 401, "", true, UvsOutcome::Failure(UvsFailure::HttpStatus(401))),
            ("non-200 204", 204, member, true, UvsOutcome::Failure(UvsFailure::HttpStatus(204))),
            ("redirect", 302, "", true, UvsOutcome::Failure(UvsFailure::HttpStatus(302))),
            ("empty body", 200, "", true, bad_body("is not valid JSON (line 1, column 0)")),
            ("not json", 200, "<html>", true, bad_body("is not valid JSON (line 1, column 1)")),
            ("json array", 200, "[1]", true, bad_body("is not a JSON object")),
            ("json null", 200, "null", true, bad_body("is not a JSON object")),
            ("missing results", 200, r#"{"user_id":"@a:x"}"#, true, bad_body("has no results")),
            ("null results", 200, r#"{"results":null}"#, true, bad_body("has no results")),
            ("results not object", 200, r#"{"results":true}"#, true, bad_body("has malformed results")),
            ("results user string", 200, r#"{"results":{"user":"true"}}"#, true, bad_body("has malformed results")),
            (
                "unknown token",
                200,
                r#"{"results":{"user":false,"room_membership":false},"user_id":null,"power_levels":null}"#,
                true,
                UvsOutcome::InvalidToken,
            ),
            ("user missing counts false", 200, r#"{"results":{}}"#, true, UvsOutcome::InvalidToken),
            (
                "invalid token even without membership check",
                200,
                r#"{"results":{"user":false}}"#,
                false,
                UvsOutcome::InvalidToken,
            ),
            (
                "not in room",
                200,
                r#"{"results":{"user":true,"room_membership":false},"user_id":"@a:x","power_levels":null}"#,
                true,
                UvsOutcome::NotInRoom,
            ),
            (
                "membership missing counts false",
                200,
                r#"{"results":{"user":true},"user_id":"@a:x"}"#,
                true,
                UvsOutcome::NotInRoom,
            ),
            (
                "user only: membership not required",
                200,
                r#"{"results":{"user":true},"user_id":"@a:x"}"#,
                false,
                verified("@a:x", None, 50, false),
            ),
            (
                "user only: never owner",
                200,
                member,
                false,
                verified("@a:x", Some(100), 50, false),
            ),
            (
                "user_id not a string is ignored",
                200,
                r#"{"results":{"user":true,"room_membership":true},"user_id":7}"#,
                true,
                UvsOutcome::Verified { user_id: None, power_level: None, state_default: 50, is_owner: false },
            ),
        ];
        for (name, status, body, vm, want) in cases {
            assert_eq!(classify(status, body.as_bytes(), vm), want, "case {name}");
        }
    }

    #[test]
    fn classify_owner_rule() {
        // (name, power_levels JSON, expected power_level, state_default, is_owner)
        let cases: Vec<(&str, Value, Option<i64>, i64, bool)> = vec![
            ("equal to state_default", json!({"room":{"state_default":50},"user":50}), Some(50), 50, true),
            ("above state_default", json!({"room":{"state_default":50},"user":100}), Some(100), 50, true),
            ("below state_default", json!({"room":{"state_default":50},"user":49}), Some(49), 50, false),
            ("custom state_default met", json!({"room":{"state_default":75},"user":75}), Some(75), 75, true),
            ("custom state_default missed", json!({"room":{"state_default":75},"user":50}), Some(50), 75, false),
            ("state_default 0, user 0", json!({"room":{"state_default":0},"user":0}), Some(0), 0, true),
            ("missing state_default is 50: 50", json!({"room":{"ban":50},"user":50}), Some(50), 50, true),
            ("missing state_default is 50: 49", json!({"room":{"ban":50},"user":49}), Some(49), 50, false),
            ("missing room is 50", json!({"user":50}), Some(50), 50, true),
            ("null state_default is 50", json!({"room":{"state_default":null},"user":50}), Some(50), 50, true),
            ("negative user", json!({"room":{"state_default":0},"user":-1}), Some(-1), 0, false),
            ("string levels (old rooms)", json!({"room":{"state_default":"50"},"user":"100"}), Some(100), 50, true),
            ("integral float", json!({"room":{"state_default":50.0},"user":100.0}), Some(100), 50, true),
            ("missing user level", json!({"room":{"state_default":0}}), None, 0, false),
            ("null power_levels", Value::Null, None, 50, false),
            ("power_levels not an object", json!("high"), None, 50, false),
            ("garbage state_default", json!({"room":{"state_default":"lots"},"user":100}), None, 50, false),
            ("garbage user level", json!({"room":{"state_default":0},"user":[1]}), None, 50, false),
            ("fractional level", json!({"room":{"state_default":50},"user":50.5}), None, 50, false),
        ];
        for (name, pl, want_pl, want_sd, want_owner) in cases {
            let body = json!({
                "results": {"user": true, "room_membership": true},
                "user_id": "@o:x",
                "power_levels": pl,
            })
            .to_string();
            assert_eq!(
                classify(200, body.as_bytes(), true),
                verified("@o:x", want_pl, want_sd, want_owner),
                "case {name}"
            );
        }
    }

    #[test]
    fn outcome_codes_match_original_plugin_reasons() {
        let cases: Vec<(UvsOutcome, &str)> = vec![
            (verified("@a:x", None, 50, false), "ok"),
            (UvsOutcome::NotInRoom, "not_in_room"),
            (UvsOutcome::InvalidToken, "invalid_token"),
            (UvsFailure::HttpStatus(500).into(), "invalid_response"),
            (UvsFailure::BadBody("has no results".into()).into(), "invalid_response"),
            (UvsFailure::Timeout { after_ms: 3000 }.into(), "invalid_response"),
            (UvsFailure::Connect("refused".into()).into(), "invalid_response"),
            (UvsFailure::Internal("panic".into()).into(), "invalid_response"),
        ];
        for (outcome, code) in cases {
            assert_eq!(outcome.code(), code, "{outcome:?}");
            assert_eq!(outcome.is_verified(), code == "ok");
        }
    }

    #[test]
    fn outcome_details_are_readable() {
        let cases: Vec<(UvsOutcome, &str)> = vec![
            (UvsFailure::HttpStatus(500).into(), "UVS answered HTTP 500"),
            (UvsFailure::Timeout { after_ms: 3000 }.into(), "UVS timed out after 3000 ms"),
            (UvsFailure::BadBody("has no results".into()).into(), "UVS body has no results"),
            (UvsFailure::Connect("refused".into()).into(), "UVS connection failed: refused"),
            (UvsOutcome::InvalidToken, "UVS rejected the OpenID token"),
            (UvsOutcome::NotInRoom, "UVS: user is not a member of the room"),
            (verified("@a:x", Some(100), 50, true), "UVS verified @a:x (power level 100, state_default 50, owner)"),
            (verified("@a:x", None, 50, false), "UVS verified @a:x (no power levels, not owner)"),
        ];
        for (outcome, detail) in cases {
            assert_eq!(outcome.detail(), detail);
        }
    }

    #[test]
    fn base_url_trailing_slash_is_stripped() {
        let cases = [
            ("http://uvs:3000", "http://uvs:3000"),
            ("http://uvs:3000/", "http://uvs:3000"),
            ("http://uvs:3000/prefix/", "http://uvs:3000/prefix"),
            (" http://uvs:3000/ ", "http://uvs:3000"),
        ];
        for (given, want) in cases {
            assert_eq!(normalize_base_url(given), want);
            let mut cfg = UvsConfig::new("x");
            cfg.base_url = given.to_string();
            assert_eq!(UvsClient::new(cfg).config().base_url, want);
        }
        let mut cfg = UvsConfig::new("http://uvs/");
        assert_eq!(cfg.endpoint(), "http://uvs/verify/user_in_room");
        cfg.verify_membership = false;
        assert_eq!(cfg.endpoint(), "http://uvs/verify/user");
    }

    #[test]
    fn debug_output_redacts_tokens() {
        let req = UvsRequest { token: "SECRET-OPENID".into(), room_id: "!r:x".into(), server_name: None };
        let mut cfg = UvsConfig::new("http://uvs");
        cfg.auth_token = Some("SECRET-AUTH".into());
        let client = UvsClient::new(cfg.clone());
        for text in [format!("{req:?}"), format!("{cfg:?}"), format!("{client:?}")] {
            assert!(!text.contains("SECRET"), "{text}");
        }
    }

    #[test]
    fn transport_error_texts_are_scrubbed_of_secrets() {
        let mut cfg = UvsConfig::new("http://uvs");
        cfg.auth_token = Some("SECRET-AUTH".into());
        let c = UvsClient::new(cfg);
        let req = UvsRequest { token: "SECRET-OPENID".into(), room_id: "!r:x".into(), server_name: None };
        let cases = [
            UvsFailure::Connect("x SECRET-AUTH y SECRET-OPENID".into()),
            UvsFailure::Internal("SECRET-OPENID".into()),
        ];
        for failure in cases {
            let out = c.scrub_outcome(failure.into(), &req);
            assert!(!out.detail().contains("SECRET"), "{}", out.detail());
            assert!(out.detail().contains("<redacted>"), "{}", out.detail());
        }
    }

    #[test]
    fn request_body_fields() {
        let mut req = UvsRequest { token: "t".into(), room_id: "!r:x".into(), server_name: None };
        assert_eq!(req.body(true), json!({"token":"t","room_id":"!r:x"}));
        assert_eq!(req.body(false), json!({"token":"t"}));
        req.server_name = Some("matrix.org".into());
        assert_eq!(req.body(true), json!({"token":"t","room_id":"!r:x","matrix_server_name":"matrix.org"}));
        assert_eq!(req.body(false), json!({"token":"t","matrix_server_name":"matrix.org"}));
        req.server_name = Some(String::new());
        assert_eq!(req.body(false), json!({"token":"t"}));
    }

    // --- a tiny HTTP server on 127.0.0.1:0 ---------------------------------

    #[derive(Debug)]
    struct Seen {
        method: String,
        path: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
        }
        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).expect("request body is JSON")
        }
    }

    fn read_request(stream: &TcpStream) -> Option<Seen> {
        let mut reader = BufReader::new(stream.try_clone().ok()?);
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let mut parts = line.split_whitespace();
        let method = parts.next()?.to_string();
        let path = parts.next()?.to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).ok()? == 0 {
                return None;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':')?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let len = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        reader.read_exact(&mut body).ok()?;
        Some(Seen { method, path, headers, body })
    }

    /// Serves exactly one connection: records the request, waits for `hold`
    /// (if any, at most 20 s), then answers `status` + `body`.
    fn serve_once(
        status: u16,
        body: &'static str,
        hold: Option<mpsc::Receiver<()>>,
    ) -> (String, mpsc::Receiver<Seen>, thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        let handle = thread::spawn(move || {
            let Ok((mut stream, _)) = listener.accept() else { return };
            let Some(seen) = read_request(&stream) else { return };
            let _ = tx.send(seen);
            if let Some(hold) = hold {
                let _ = hold.recv_timeout(Duration::from_secs(20));
            }
            let reply = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        });
        (url, rx, handle)
    }

    fn client(url: &str, auth: Option<&str>, vm: bool, timeout: Duration) -> UvsClient {
        UvsClient::new(UvsConfig {
            base_url: format!("{url}/"),
            auth_token: auth.map(str::to_string),
            timeout,
            verify_membership: vm,
        })
    }

    const MEMBER_100: &str = r#"{"results":{"user":true,"room_membership":true},"user_id":"@m:x","power_levels":{"room":{"state_default":50},"user":100}}"#;

    #[test]
    fn client_sends_user_in_room_request_with_bearer() {
        let (url, seen, server) = serve_once(200, MEMBER_100, None);
        let c = client(&url, Some("AUTH-TOKEN"), true, Duration::from_secs(10));
        let req = UvsRequest { token: "OPENID".into(), room_id: "!r:x".into(), server_name: Some("x".into()) };
        assert_eq!(c.verify(&req), verified("@m:x", Some(100), 50, true));
        let s = seen.recv_timeout(Duration::from_secs(10)).unwrap();
        server.join().unwrap();
        assert_eq!(s.method, "POST");
        assert_eq!(s.path, "/verify/user_in_room");
        assert_eq!(s.header("authorization"), Some("Bearer AUTH-TOKEN"));
        assert!(s.header("content-type").unwrap().starts_with("application/json"));
        assert_eq!(s.json(), json!({"token":"OPENID","room_id":"!r:x","matrix_server_name":"x"}));
    }

    #[test]
    fn client_sends_user_only_request_without_bearer() {
        let (url, seen, server) =
            serve_once(200, r#"{"results":{"user":true},"user_id":"@m:x"}"#, None);
        let c = client(&url, None, false, Duration::from_secs(10));
        let req = UvsRequest { token: "OPENID".into(), room_id: "!r:x".into(), server_name: None };
        assert_eq!(c.verify(&req), verified("@m:x", None, 50, false));
        let s = seen.recv_timeout(Duration::from_secs(10)).unwrap();
        server.join().unwrap();
        assert_eq!(s.method, "POST");
        assert_eq!(s.path, "/verify/user");
        assert_eq!(s.header("authorization"), None);
        assert_eq!(s.json(), json!({"token":"OPENID"}));
    }

    #[test]
    fn client_classifies_server_answers() {
        let cases: Vec<(u16, &'static str, UvsOutcome)> = vec![
            (200, MEMBER_100, verified("@m:x", Some(100), 50, true)),
            (500, r#"{"error":"boom"}"#, UvsFailure::HttpStatus(500).into()),
            (401, "", UvsFailure::HttpStatus(401).into()),
            (302, "", UvsFailure::HttpStatus(302).into()),
            (200, "not json", bad_body("is not valid JSON (line 1, column 2)")),
            (200, r#"{"user_id":"@m:x"}"#, bad_body("has no results")),
            (200, r#"{"results":{"user":false,"room_membership":false},"user_id":null,"power_levels":null}"#, UvsOutcome::InvalidToken),
            (200, r#"{"results":{"user":true,"room_membership":false},"user_id":"@m:x","power_levels":null}"#, UvsOutcome::NotInRoom),
        ];
        for (status, body, want) in cases {
            let (url, _seen, server) = serve_once(status, body, None);
            let c = client(&url, Some("a"), true, Duration::from_secs(10));
            let req = UvsRequest { token: "t".into(), room_id: "!r:x".into(), server_name: None };
            assert_eq!(c.verify(&req), want, "status {status} body {body}");
            server.join().unwrap();
        }
    }

    #[test]
    fn client_times_out_on_slow_server() {
        let (release, hold) = mpsc::channel();
        let (url, seen, server) = serve_once(200, MEMBER_100, Some(hold));
        let timeout = Duration::from_millis(300);
        let c = client(&url, None, true, timeout);
        let req = UvsRequest { token: "t".into(), room_id: "!r:x".into(), server_name: None };
        let start = Instant::now();
        let out = c.verify(&req);
        let took = start.elapsed();
        assert_eq!(out, UvsFailure::Timeout { after_ms: 300 }.into());
        assert_eq!(out.detail(), "UVS timed out after 300 ms");
        assert!(took >= timeout, "returned before the timeout: {took:?}");
        assert!(took < timeout + Duration::from_secs(5), "timeout not enforced: {took:?}");
        seen.recv_timeout(Duration::from_secs(10)).unwrap();
        let _ = release.send(());
        server.join().unwrap();
    }

    #[test]
    fn client_reports_connect_failure_on_refused_port() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let c = client(&format!("http://127.0.0.1:{port}"), Some("SECRET-AUTH"), true, Duration::from_secs(5));
        let req = UvsRequest { token: "SECRET-OPENID".into(), room_id: "!r:x".into(), server_name: None };
        let out = c.verify(&req);
        match out.failure() {
            Some(UvsFailure::Connect(_)) => {}
            other => panic!("expected a connect failure, got {other:?}"),
        }
        assert_eq!(out.code(), "invalid_response");
        assert!(out.detail().starts_with("UVS connection failed: "), "{}", out.detail());
        assert!(!out.detail().contains("SECRET"));
    }

    #[test]
    fn client_reports_connect_failure_on_bad_url() {
        let c = client("not a url", None, true, Duration::from_secs(2));
        let req = UvsRequest { token: "t".into(), room_id: "!r:x".into(), server_name: None };
        assert_eq!(c.verify(&req).failure().map(UvsFailure::kind), Some("connect_failed"));
    }
}
