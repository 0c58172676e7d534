//! What the admin commands report (`prosodyctl mod_jitsi_security_admin`):
//! every configuration problem of a module's options (found by the code
//! the server runs), every check of a token with its outcome, and whether
//! UVS or the homeserver is reachable and accepts our credentials. Never a
//! signature, a key or a token. Pure of Lua; the service check blocks
//! (it runs in prosodyctl, never in the server).

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::runtime::login::{AuthOptions, Authenticator, BackendConfig};
use crate::error::Error;
use crate::policy::door::{self, DoorConfig, DoorInput};
use crate::policy::{Proof, Scope};
use crate::options::{self, Module, Problem, Raw};
use crate::matrix::resync::ResyncSettings;
use crate::standard::token::{self, Claims, Verifier};
use crate::runtime::http::{Http, MAX_SMALL_BODY};

/// One line of a report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckLine {
    pub check: String,
    pub pass: bool,
    pub reason: String,
}

fn line(check: &str, r: Result<String, Error>) -> CheckLine {
    match r {
        Ok(reason) => CheckLine { check: check.into(), pass: true, reason },
        Err(e) => CheckLine { check: check.into(), pass: false, reason: e.to_string() },
    }
}

/// `check-config`: every problem of the options `module` reads (raw
/// values from Prosody's config), found by the code the server runs when
/// it loads the module; empty when the module would load cleanly.
pub fn check_config(module: Module, raw: &[(String, Raw)]) -> Vec<Problem> {
    let pairs = || raw.iter().map(|(n, r)| (n.as_str(), r));
    let runtime = |e: Error| match e {
        Error::Config(text) => Problem::from_config_text(&text),
        other => Problem::from_config_text(&other.to_string()),
    };
    match module {
        Module::Auth => match AuthOptions::from_raw(pairs()) {
            Err(problems) => problems,
            Ok(o) => Authenticator::new(o).err().map(runtime).into_iter().collect(),
        },
        Module::PowerSync => match AuthOptions::from_raw_for(module, pairs()) {
            Err(problems) => problems,
            Ok((o, all)) => {
                let interval = all.get("matrix_resync_interval").and_then(Value::as_f64);
                ResyncSettings::from_options(&o, interval).err().map(runtime).into_iter().collect()
            }
        },
        Module::SecurityOndemand | Module::TokenVerification => {
            options::parse_with_defaults(module, pairs()).err().unwrap_or_default()
        }
    }
}

/// A token's claims with every secret in them removed: the OpenID token
/// and the room password.
pub fn shown_claims(claims: &Claims) -> Map<String, Value> {
    let mut claims = claims.to_map();
    let context = claims.get_mut("context");
    if let Some(Value::Object(context)) = context {
        for (part, secret) in [("matrix", "token"), ("room", "password")] {
            if let Some(Value::Object(m)) = context.get_mut(part) {
                if m.contains_key(secret) {
                    m.insert(secret.into(), Value::String("<redacted>".into()));
                }
            }
        }
    }
    claims
}

/// `check-token <token> <room>`: would the room door let a session that
/// logged in with this token into `room` (docs/design.md, "Room doors")?
/// A Matrix token's proof is its room id; a standard token's its `room`
/// claim, `sub` and `context.tenant`.
fn door_line(claims: &Claims, room: Option<&[u8]>, scope: &Scope) -> Option<CheckLine> {
    let room = String::from_utf8_lossy(room?).into_owned();
    let text = |key: &str| claims.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let context = claims.get("context");
    let matrix_room_id = context
        .and_then(|c| c.get("matrix"))
        .and_then(|m| m.get("room_id"))
        .and_then(|r| r.as_str())
        .map(str::to_string);
    let proof = Proof {
        has_token: true,
        token_room: text("room"),
        token_tenant: context.and_then(|c| c.get("tenant")).and_then(|t| t.as_str()).map(str::to_string),
        token_domain: text("sub"),
        matrix_room_id,
        grants_until: None,
    };
    let config = DoorConfig { scope: scope.clone(), ..Default::default() };
    let verdict = door::check(&config, &DoorInput { room_node: room.clone(), proof, ..Default::default() });
    let shown = crate::text::Untrusted::new(&room);
    Some(match verdict.text {
        None => CheckLine { check: "room door".into(), pass: true, reason: format!("opens room {shown}") },
        Some(text) => CheckLine { check: "room door".into(), pass: false, reason: format!("{text} ({})", verdict.code) },
    })
}

/// `check-token`: the token's claims and every check, as the host's
/// options configure them.
pub fn check_token(options: AuthOptions, token: &[u8], room: Option<&[u8]>, scope: &Scope) -> (Option<Map<String, Value>>, Vec<CheckLine>) {
    let now = token::now();
    let peeked = match token::peek(token) {
        Ok(c) => c,
        Err(e) => return (None, vec![line("format", Err(e))]),
    };
    let kind = if token::is_matrix(&peeked) { "Matrix (context.matrix)" } else { "standard Jitsi" };
    let mut lines = vec![line("format", Ok("three base64url segments, JSON header and payload".into())), line("kind", Ok(kind.into()))];
    if token::is_matrix(&peeked) {
        let policy = Authenticator::new(options.clone()).map(|(a, _)| a);
        match policy {
            Err(e) => lines.push(line("configuration", Err(e))),
            Ok(auth) => {
                let r = auth.begin(token, room, now, None).map(|_| {
                    "issuer, signature (when matrix_token_secret is set), time, context and room name pass; \
                     membership is checked by UVS or the homeserver at login (check-matrix tests the connection)"
                        .to_string()
                });
                lines.push(line("Matrix checks before the verifier", r));
            }
        }
        lines.extend(door_line(&peeked, room, scope));
        return (Some(shown_claims(&peeked)), lines);
    }
    let verifier = options.standard.clone().into_config().and_then(Verifier::new);
    match verifier {
        Err(e) => lines.push(line("configuration", Err(e))),
        Ok(v) => {
            let (_, checks) = v.diagnose(token, now);
            // "format" is already the first line.
            let checks = checks.into_iter().filter(|(name, _)| *name != "format");
            lines.extend(checks.map(|(name, r)| line(name, r.map(|_| String::new()))));
        }
    }
    lines.extend(door_line(&peeked, room, scope));
    (Some(shown_claims(&peeked)), lines)
}

/// `check-matrix`: reach UVS (`POST /verify/user` with a token that
/// cannot be valid) or the homeserver (`whoami` with the admin token),
/// and say whether our credentials are accepted, with the latency.
pub fn check_service(options: AuthOptions) -> Vec<CheckLine> {
    let settings = match options.matrix_settings() {
        Ok(Some(s)) => s,
        Ok(None) => return vec![line("configuration", Err(Error::MatrixDisabled))],
        Err(e) => return vec![line("configuration", Err(e))],
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return vec![line("runtime", Err(Error::Config(e.to_string())))],
    };
    let http = match Http::new() {
        Ok(h) => h,
        Err(e) => return vec![line("HTTP client", Err(Error::Config(e)))],
    };
    /// Reads an answer: what it says of our credentials.
    type Judge = fn(u16, &[u8]) -> Result<String, String>;
    let (name, request, accepted): (&str, reqwest::RequestBuilder, Judge) =
        match &settings.backend {
            BackendConfig::Uvs(c) => {
                let mut r = http
                    .client()
                    .post(format!("{}/verify/user", c.base_url))
                    .header("Content-Type", "application/json")
                    .body(r#"{"token":"jitsi-prosody-security-check-matrix"}"#);
                if let Some(t) = c.auth_token.as_deref() {
                    r = r.bearer_auth(t);
                }
                ("UVS", r, |status, _| match status {
                    200 => Ok("UVS answered a check (uvs_auth_token accepted)".into()),
                    401 | 403 => Err(format!("UVS refused uvs_auth_token (HTTP {status})")),
                    400 => Err("UVS wants matrix_server_name (it serves several servers): HTTP 400".into()),
                    other => Err(format!("UVS answered HTTP {other}")),
                })
            }
            BackendConfig::Homeserver(c) => (
                "the homeserver",
                http.client().get(format!("{}/_matrix/client/v3/account/whoami", c.base_url)).bearer_auth(&c.admin_token),
                |status, body| match status {
                    200 => {
                        let who = serde_json::from_slice::<Value>(body)
                            .ok()
                            .and_then(|v| v.get("user_id").and_then(Value::as_str).map(crate::text::escape_line))
                            .unwrap_or_else(|| "<no user_id>".into());
                        Ok(format!("matrix_admin_token accepted: it is {who}"))
                    }
                    401 | 403 => Err(format!("the homeserver refused matrix_admin_token (HTTP {status})")),
                    other => Err(format!("the homeserver answered HTTP {other}")),
                },
            ),
        };
    let start = Instant::now();
    let answer = runtime.block_on(async {
        tokio::time::timeout(settings.timeout.max(Duration::from_secs(1)), http.send(request, MAX_SMALL_BODY, &[200])).await
    });
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let reach = |r: Result<String, String>| CheckLine {
        check: format!("{name}: credentials"),
        pass: r.is_ok(),
        reason: r.unwrap_or_else(|e| e),
    };
    match answer {
        Err(_) => vec![CheckLine { check: format!("{name}: reachable"), pass: false, reason: format!("no answer within {:.1} s", settings.timeout.as_secs_f64()) }],
        Ok(Err(f)) => vec![CheckLine { check: format!("{name}: reachable"), pass: false, reason: f.to_string() }],
        Ok(Ok(a)) => vec![
            CheckLine { check: format!("{name}: reachable"), pass: true, reason: format!("answered in {ms:.1} ms") },
            reach(accepted(a.status, &a.body)),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standard::token::VerifierOptions;
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    use serde_json::json;

    fn options() -> AuthOptions {
        AuthOptions {
            standard: VerifierOptions { app_id: Some("app".into()), app_secret: Some("s".into()), ..Default::default() },
            uvs_base_url: Some("http://127.0.0.1:9".into()),
            ..Default::default()
        }
    }

    #[test]
    fn check_token_lists_every_standard_check_and_hides_secrets() {
        let t = encode(&Header::new(Algorithm::HS256), &json!({"iss": "app", "aud": "x", "room": "r"}), &EncodingKey::from_secret(b"other")).unwrap();
        let (claims, lines) = check_token(options(), t.as_bytes(), None, &scope());
        assert_eq!(claims.unwrap()["room"], "r");
        let failed: Vec<&str> = lines.iter().filter(|l| !l.pass).map(|l| l.check.as_str()).collect();
        assert_eq!(failed, vec!["signature"]);
        assert!(lines.len() >= 8, "{lines:?}");
        let all = format!("{lines:?}");
        assert!(!all.contains(t.split('.').nth(2).unwrap()), "no signature in the report");
    }

    #[test]
    fn check_token_redacts_the_openid_token() {
        let t = encode(&Header::new(Algorithm::HS256),
                       &json!({"iss": "app", "room": "*", "context": {"matrix": {"token": "OPENID-SECRET", "room_id": "!r:x"}}}),
                       &EncodingKey::from_secret(b"notused")).unwrap();
        let room = crate::matrix::room::name_for_room_id("!r:x");
        let (claims, lines) = check_token(options(), t.as_bytes(), Some(room.as_bytes()), &scope());
        assert!(!serde_json::to_string(&claims).unwrap().contains("OPENID-SECRET"));
        assert!(lines.iter().all(|l| l.pass), "{lines:?}");
        let (_, lines) = check_token(options(), t.as_bytes(), Some(b"wrongroom"), &scope());
        assert!(lines.iter().any(|l| !l.pass), "{lines:?}");
    }

    fn scope() -> Scope {
        Scope::for_host("conference.meet.example.com", None, true)
    }

    #[test]
    fn check_token_says_whether_the_door_opens_the_room() {
        let t = encode(&Header::new(Algorithm::HS256),
                       &json!({"iss": "app", "aud": "x", "room": "rooma", "sub": "meet.example.com"}),
                       &EncodingKey::from_secret(b"s")).unwrap();
        let door = |room: &[u8]| {
            let (_, lines) = check_token(options(), t.as_bytes(), Some(room), &scope());
            let l = lines.into_iter().find(|l| l.check == "room door").expect("a room door line");
            (l.pass, l.reason)
        };
        assert_eq!(door(b"rooma"), (true, "opens room 'rooma'".to_string()));
        assert_eq!(door(b"roomb"), (false, "the token does not open room 'roomb' (room_not_covered)".to_string()));
        let (_, lines) = check_token(options(), t.as_bytes(), None, &scope());
        assert!(lines.iter().all(|l| l.check != "room door"), "no room: no door line");
        let other_tenant = encode(&Header::new(Algorithm::HS256),
                                  &json!({"iss": "app", "aud": "x", "room": "*", "sub": "t1"}),
                                  &EncodingKey::from_secret(b"s")).unwrap();
        let (_, lines) = check_token(options(), other_tenant.as_bytes(), Some(b"boardroom"), &scope());
        let l = lines.iter().find(|l| l.check == "room door").unwrap();
        assert!(!l.pass && l.reason.ends_with("(tenant_mismatch)"), "{l:?}");
    }

    #[test]
    fn check_service_reports_an_unreachable_uvs() {
        let lines = check_service(options());
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(!lines[0].pass && lines[0].check == "UVS: reachable", "{lines:?}");
    }
}
