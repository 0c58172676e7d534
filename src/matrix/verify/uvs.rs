//! The Matrix User Verification Service backend (docs/design.md, "Verifying Matrix users"): one
//! `POST` per check, answered as the real UVS (matrix-org, 3.0) answers.
//! [`classify`] is a pure function of the HTTP status and body; [`Uvs`]
//! sends the request on the shared non-blocking client.
//!
//! Every failure (transport error, timeout, non-200 status, unparsable
//! body, missing `results`) means "not verified": fail closed. A JSON
//! `null` where a value is expected means "absent", never "broken".
//! Neither the OpenID token nor the UVS auth token appears in any text.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::runtime::http::{Http, MAX_SMALL_BODY};
use super::{normalize_base_url, Backend, BoxFuture, Check, Failure, Verdict, DEFAULT_STATE_DEFAULT};

/// Path of the "user + room membership" check.
pub const PATH_USER_IN_ROOM: &str = "/verify/user_in_room";
/// Path of the "user only" check.
pub const PATH_USER: &str = "/verify/user";

/// How to reach the UVS.
#[derive(Clone)]
pub struct UvsConfig {
    /// e.g. `http://uvs:3000` (a trailing `/` is stripped).
    pub base_url: String,
    /// Sent as `Authorization: Bearer <token>` when set (empty counts as unset).
    pub auth_token: Option<String>,
    /// `true`: `/verify/user_in_room` and room membership is required.
    /// `false`: `/verify/user`, the user check only (never an owner).
    pub verify_membership: bool,
}

impl UvsConfig {
    pub fn new(base_url: impl Into<String>) -> Self {
        UvsConfig { base_url: normalize_base_url(&base_url.into()), auth_token: None, verify_membership: true }
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
            .field("verify_membership", &self.verify_membership)
            .finish()
    }
}

/// The JSON body sent to the UVS (`room_id` only when membership is verified).
pub fn request_body(check: &Check, verify_membership: bool) -> Value {
    let mut body = serde_json::Map::new();
    body.insert("token".into(), Value::String(check.token.clone()));
    if verify_membership {
        body.insert("room_id".into(), Value::String(check.room_id.clone()));
    }
    if let Some(server) = check.server_name.as_deref().filter(|s| !s.is_empty()) {
        body.insert("matrix_server_name".into(), Value::String(server.to_string()));
    }
    Value::Object(body)
}

/// `results` of a UVS answer. A missing or `null` field counts as `false`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
struct UvsResults {
    #[serde(default)]
    user: Option<bool>,
    #[serde(default)]
    room_membership: Option<bool>,
}

/// `power_levels.room`: only `state_default` matters.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
struct RoomPowerLevels {
    #[serde(default, deserialize_with = "lenient_power")]
    state_default: Option<i64>,
}

/// `power_levels` of a UVS answer.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
struct PowerLevels {
    #[serde(default)]
    room: Option<RoomPowerLevels>,
    /// The user's power level in the room.
    #[serde(default, deserialize_with = "lenient_power")]
    user: Option<i64>,
}

impl PowerLevels {
    fn state_default(&self) -> i64 {
        self.room.as_ref().and_then(|r| r.state_default).unwrap_or(DEFAULT_STATE_DEFAULT)
    }
}

/// Power levels are integers, but rooms before version 10 may hold them as
/// strings ("50"); accept integral numbers and numeric strings, refuse the rest.
fn lenient_power<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(v) => super::state::power_from_value(&v)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("power level is not an integer")),
    }
}

/// The decision, from the HTTP status and body alone.
pub fn classify(status: u16, body: &[u8], verify_membership: bool) -> Verdict {
    if status != 200 {
        return Failure::HttpStatus(status).into();
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return Failure::BadBody(format!("is not valid JSON (line {}, column {})", e.line(), e.column())).into()
        }
    };
    let Value::Object(obj) = value else {
        return Failure::BadBody("is not a JSON object".into()).into();
    };
    // serde would also read a struct from an array (fields in order):
    // only an object is an answer.
    let results = match obj.get("results") {
        None | Some(Value::Null) => return Failure::BadBody("has no results".into()).into(),
        Some(r) if !r.is_object() => return Failure::BadBody("has malformed results".into()).into(),
        Some(r) => match UvsResults::deserialize(r) {
            Ok(r) => r,
            Err(_) => return Failure::BadBody("has malformed results".into()).into(),
        },
    };
    if results.user != Some(true) {
        return Verdict::InvalidToken;
    }
    if verify_membership && results.room_membership != Some(true) {
        return Verdict::NotInRoom;
    }
    // A malformed `power_levels` counts as absent (so: not owner) rather
    // than failing the verification.
    let pl = obj
        .get("power_levels")
        .filter(|p| p.is_object() && p.get("room").is_none_or(|r| r.is_object() || r.is_null()))
        .and_then(|p| PowerLevels::deserialize(p).ok());
    let power_level = pl.as_ref().and_then(|p| p.user);
    let state_default = pl.as_ref().map(PowerLevels::state_default).unwrap_or(DEFAULT_STATE_DEFAULT);
    Verdict::Verified {
        user_id: obj.get("user_id").and_then(Value::as_str).map(str::to_string),
        power_level,
        state_default,
        creator: false,
        // Without a membership check the room's power levels prove nothing.
        is_owner: verify_membership && power_level.is_some_and(|p| p >= state_default),
    }
}

/// The UVS backend.
pub struct Uvs {
    config: UvsConfig,
    http: Http,
}

impl Uvs {
    pub fn new(mut config: UvsConfig, http: Http) -> Self {
        config.base_url = normalize_base_url(&config.base_url);
        Uvs { config, http }
    }

    pub fn config(&self) -> &UvsConfig {
        &self.config
    }

    async fn exchange(&self, check: &Check) -> Verdict {
        let vm = self.config.verify_membership;
        let mut request = self
            .http
            .client()
            .post(self.config.endpoint())
            .header("Accept", "application/json")
            .header("Content-Type", "application/json")
            .body(request_body(check, vm).to_string());
        if let Some(token) = self.config.bearer() {
            request = request.bearer_auth(token);
        }
        match self.http.send(request, MAX_SMALL_BODY, &[200]).await {
            Ok(answer) => classify(answer.status, &answer.body, vm),
            Err(f) => f.into(),
        }
    }
}

impl Backend for Uvs {
    fn name(&self) -> &'static str {
        "UVS"
    }

    fn check(self: Arc<Self>, check: Check) -> BoxFuture<Verdict> {
        Box::pin(async move { self.exchange(&check).await })
    }

    fn verifies_membership(&self) -> bool {
        self.config.verify_membership
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
    use std::time::Duration;

    fn verified(user: &str, pl: Option<i64>, sd: i64, owner: bool) -> Verdict {
        Verdict::Verified { user_id: Some(user.into()), power_level: pl, state_default: sd, creator: false, is_owner: owner }
    }

    fn bad_body(reason: &str) -> Verdict {
        Verdict::Failure(Failure::BadBody(reason.into()))
    }

    #[test]
    fn classify_table() {
        let member = r#"{"results":{"user":true,"room_membership":true},"user_id":"@a:x","power_levels":{"room":{"state_default":50},"user":100}}"#;
        let cases: Vec<(&str, u16, &str, bool, Verdict)> = vec![
            ("member owner", 200, member, true, verified("@a:x", Some(100), 50, true)),
            ("non-200 500", 500, member, true, Verdict::Failure(Failure::HttpStatus(500))),
            ("non-200 401", 401, "", true, Verdict::Failure(Failure::HttpStatus(401))),
            ("non-200 204", 204, member, true, Verdict::Failure(Failure::HttpStatus(204))),
            ("redirect", 302, "", true, Verdict::Failure(Failure::HttpStatus(302))),
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
                Verdict::InvalidToken,
            ),
            ("user missing counts false", 200, r#"{"results":{}}"#, true, Verdict::InvalidToken),
            (
                "real UVS, invalid OpenID token: nulls mean absent",
                200,
                r#"{"results":{"user":false,"room_membership":null},"user_id":null,"power_levels":null}"#,
                true,
                Verdict::InvalidToken,
            ),
            (
                "null membership is not membership",
                200,
                r#"{"results":{"user":true,"room_membership":null},"user_id":"@a:x","power_levels":null}"#,
                true,
                Verdict::NotInRoom,
            ),
            ("null user is not a user", 200, r#"{"results":{"user":null}}"#, false, Verdict::InvalidToken),
            ("string booleans", 200, r#"{"results":{"user":"true","room_membership":"true"}}"#, true,
             bad_body("has malformed results")),
            ("huge number", 200, r#"{"results":{"user":true,"room_membership":true},"power_levels":{"user":1e400}}"#, true,
             bad_body("is not valid JSON (line 1, column 76)")),
            (
                "invalid token even without membership check",
                200,
                r#"{"results":{"user":false}}"#,
                false,
                Verdict::InvalidToken,
            ),
            (
                "not in room",
                200,
                r#"{"results":{"user":true,"room_membership":false},"user_id":"@a:x","power_levels":null}"#,
                true,
                Verdict::NotInRoom,
            ),
            (
                "membership missing counts false",
                200,
                r#"{"results":{"user":true},"user_id":"@a:x"}"#,
                true,
                Verdict::NotInRoom,
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
                Verdict::Verified { user_id: None, power_level: None, state_default: 50, creator: false, is_owner: false },
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
    fn request_body_fields() {
        let mut req = Check { token: "t".into(), room_id: "!r:x".into(), server_name: None };
        assert_eq!(request_body(&req, true), json!({"token":"t","room_id":"!r:x"}));
        assert_eq!(request_body(&req, false), json!({"token":"t"}));
        req.server_name = Some("matrix.org".into());
        assert_eq!(request_body(&req, true), json!({"token":"t","room_id":"!r:x","matrix_server_name":"matrix.org"}));
        assert_eq!(request_body(&req, false), json!({"token":"t","matrix_server_name":"matrix.org"}));
        req.server_name = Some(String::new());
        assert_eq!(request_body(&req, false), json!({"token":"t"}));
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

    struct Client(Arc<Uvs>);

    impl Client {
        fn verify(&self, check: &Check) -> Verdict {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(Arc::clone(&self.0).check(check.clone()))
        }
    }

    fn client(url: &str, auth: Option<&str>, vm: bool) -> Client {
        let config = UvsConfig { base_url: format!("{url}/"), auth_token: auth.map(str::to_string), verify_membership: vm };
        Client(Arc::new(Uvs::new(config, Http::new().unwrap())))
    }

    const MEMBER_100: &str = r#"{"results":{"user":true,"room_membership":true},"user_id":"@m:x","power_levels":{"room":{"state_default":50},"user":100}}"#;

    #[test]
    fn client_sends_user_in_room_request_with_bearer() {
        let (url, seen, server) = serve_once(200, MEMBER_100, None);
        let c = client(&url, Some("AUTH-TOKEN"), true);
        let req = Check { token: "OPENID".into(), room_id: "!r:x".into(), server_name: Some("x".into()) };
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
        let c = client(&url, None, false);
        let req = Check { token: "OPENID".into(), room_id: "!r:x".into(), server_name: None };
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
        let cases: Vec<(u16, &'static str, Verdict)> = vec![
            (200, MEMBER_100, verified("@m:x", Some(100), 50, true)),
            (500, r#"{"error":"boom"}"#, Failure::HttpStatus(500).into()),
            (403, "{}", Failure::HttpStatus(403).into()),
            (400, "matrix_server_name is required", Failure::HttpStatus(400).into()),
            (401, "", Failure::HttpStatus(401).into()),
            (302, "", Failure::HttpStatus(302).into()),
            (200, "not json", bad_body("is not valid JSON (line 1, column 2)")),
            (200, r#"{"user_id":"@m:x"}"#, bad_body("has no results")),
            (200, r#"{"results":{"user":false,"room_membership":false},"user_id":null,"power_levels":null}"#, Verdict::InvalidToken),
            (200, r#"{"results":{"user":true,"room_membership":false},"user_id":"@m:x","power_levels":null}"#, Verdict::NotInRoom),
        ];
        for (status, body, want) in cases {
            let (url, _seen, server) = serve_once(status, body, None);
            let c = client(&url, Some("a"), true);
            let req = Check { token: "t".into(), room_id: "!r:x".into(), server_name: None };
            assert_eq!(c.verify(&req), want, "status {status} body {body}");
            server.join().unwrap();
        }
    }

    #[test]
    fn client_reports_connect_failure_on_refused_port() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let c = client(&format!("http://127.0.0.1:{port}"), Some("SECRET-AUTH"), true);
        let req = Check { token: "SECRET-OPENID".into(), room_id: "!r:x".into(), server_name: None };
        let out = c.verify(&req);
        match &out {
            Verdict::Failure(Failure::Connect(_)) => {}
            other => panic!("expected a connect failure, got {other:?}"),
        }
        assert_eq!(out.code(), "invalid_response");
        assert!(out.detail("UVS").starts_with("UVS connection failed: "), "{}", out.detail("UVS"));
        assert!(!out.detail("UVS").contains("SECRET"));
    }

}
