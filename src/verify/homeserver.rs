//! Direct homeserver verification (CONTRACT section 4b): what UVS does,
//! done natively against the homeserver, with no UVS to run.
//!
//! 1. OpenID: `GET {hs}/_matrix/federation/v1/openid/userinfo?access_token=`
//!    gives `{"sub": "@user:server"}`; the user must belong to our server.
//! 2. Membership and power: Synapse's admin API
//!    `GET {hs}/_synapse/admin/v1/rooms/{roomId}/state` with the admin
//!    token; read by [`super::state::standing`] (v12 creators are owners).
//!
//! The OpenID token travels in a URL query (the API wants it there), so no
//! error text built here ever carries a URL; the admin token only ever
//! travels in an `Authorization` header.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::OnceCell;

use super::http::{Answer, Http, MAX_SMALL_BODY, MAX_STATE_BODY};
use super::state::{standing, Standing};
use super::{normalize_base_url, Backend, BoxFuture, Check, Failure, Verdict};

/// How to reach the homeserver.
#[derive(Clone)]
pub struct HomeserverConfig {
    /// Base URL of the client and admin APIs, e.g. `https://matrix.example.com`.
    pub base_url: String,
    /// A Synapse server admin's access token. Secret: never logged.
    pub admin_token: String,
    /// The server OpenID users must belong to; by default the server of
    /// the admin token's own user (`/_matrix/client/v3/account/whoami`).
    pub server_name: Option<String>,
    /// `false`: the OpenID check only (never an owner).
    pub verify_membership: bool,
}

impl fmt::Debug for HomeserverConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HomeserverConfig")
            .field("base_url", &self.base_url)
            .field("admin_token", &"<redacted>")
            .field("server_name", &self.server_name)
            .field("verify_membership", &self.verify_membership)
            .finish()
    }
}

/// The server part of a Matrix user id (`@local:server` -> `server`).
pub fn server_of(user_id: &str) -> Option<&str> {
    let rest = user_id.strip_prefix('@')?;
    let (local, server) = rest.split_once(':')?;
    (!local.is_empty() && !server.is_empty()).then_some(server)
}

/// Percent-encode everything but RFC 3986's unreserved characters.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The OpenID userinfo answer: the user id, or the verdict to give.
pub fn classify_userinfo(status: u16, body: &[u8], server_name: &str) -> Result<String, Verdict> {
    match status {
        200 => {}
        // M_UNKNOWN_TOKEN: expired, unknown or forged OpenID token.
        401 | 403 => return Err(Verdict::InvalidToken),
        other => return Err(Failure::HttpStatus(other).into()),
    }
    let sub = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("sub").and_then(Value::as_str).map(str::to_string))
        .ok_or_else(|| Verdict::from(Failure::BadBody("of OpenID userinfo has no sub".into())))?;
    // A user of another server is not ours to vouch for.
    if server_of(&sub) != Some(server_name) {
        return Err(Verdict::InvalidToken);
    }
    Ok(sub)
}

/// The room state answer: the user's standing, or the verdict to give.
pub fn classify_state(status: u16, body: &[u8], user_id: &str) -> Result<Standing, Verdict> {
    match status {
        200 => {}
        // The room is unknown to our homeserver: nobody of ours is in it.
        404 => return Err(Verdict::NotInRoom),
        other => return Err(Failure::HttpStatus(other).into()),
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| Verdict::from(Failure::BadBody("of room state is not valid JSON".into())))?;
    let events = value
        .get("state")
        .and_then(Value::as_array)
        .ok_or_else(|| Verdict::from(Failure::BadBody("of room state has no state list".into())))?;
    Ok(standing(events, user_id))
}

/// The homeserver backend.
pub struct Homeserver {
    config: HomeserverConfig,
    http: Http,
    /// Our server name, configured or learnt once from whoami.
    server_name: OnceCell<String>,
}

impl Homeserver {
    pub fn new(mut config: HomeserverConfig, http: Http) -> Self {
        config.base_url = normalize_base_url(&config.base_url);
        let server_name = match config.server_name.clone().filter(|s| !s.is_empty()) {
            Some(s) => OnceCell::new_with(Some(s)),
            None => OnceCell::new(),
        };
        Homeserver { config, http, server_name }
    }

    pub fn config(&self) -> &HomeserverConfig {
        &self.config
    }

    fn admin_get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .client()
            .get(format!("{}{path}", self.config.base_url))
            .bearer_auth(&self.config.admin_token)
            .header("Accept", "application/json")
    }

    /// The server of the admin token's user (a failure is not remembered).
    async fn whoami(&self) -> Result<String, Verdict> {
        let answer = self.http.send(self.admin_get("/_matrix/client/v3/account/whoami"), MAX_SMALL_BODY, &[200]).await?;
        if answer.status != 200 {
            return Err(Failure::HttpStatus(answer.status).into());
        }
        serde_json::from_slice::<Value>(&answer.body)
            .ok()
            .and_then(|v| v.get("user_id").and_then(Value::as_str).and_then(server_of).map(str::to_string))
            .ok_or_else(|| Failure::BadBody("of whoami has no user_id".into()).into())
    }

    /// Read a room's state with the admin API (one request).
    pub async fn room_state(&self, room_id: &str) -> Result<Answer, Failure> {
        let path = format!("/_synapse/admin/v1/rooms/{}/state", url_encode(room_id));
        // The body of a 404 too: `M_NOT_FOUND` tells a room that does not
        // exist from a proxy or a wrong URL (the live resync needs it).
        self.http.send(self.admin_get(&path), MAX_STATE_BODY, &[200, 404]).await
    }

    async fn verify(&self, check: &Check) -> Result<Verdict, Verdict> {
        let server = self.server_name.get_or_try_init(|| self.whoami()).await?;
        if check.server_name.as_deref().is_some_and(|s| !s.is_empty() && s != server) {
            // The token names another homeserver than the one we ask.
            return Ok(Verdict::InvalidToken);
        }
        let userinfo = self.http.client().get(format!(
            "{}/_matrix/federation/v1/openid/userinfo?access_token={}",
            self.config.base_url,
            url_encode(&check.token)
        ));
        let answer = self.http.send(userinfo, MAX_SMALL_BODY, &[200]).await?;
        let user_id = classify_userinfo(answer.status, &answer.body, server)?;
        if !self.config.verify_membership {
            return Ok(Verdict::Verified {
                user_id: Some(user_id),
                power_level: None,
                state_default: super::DEFAULT_STATE_DEFAULT,
                creator: false,
                is_owner: false,
            });
        }
        let state = self.room_state(&check.room_id).await?;
        let s = classify_state(state.status, &state.body, &user_id)?;
        if !s.joined() {
            return Ok(Verdict::NotInRoom);
        }
        Ok(Verdict::Verified {
            user_id: Some(user_id),
            power_level: Some(s.power_level),
            state_default: s.state_default,
            creator: s.creator,
            is_owner: s.is_owner(),
        })
    }
}

impl Backend for Homeserver {
    fn name(&self) -> &'static str {
        "the homeserver"
    }

    fn check(self: Arc<Self>, check: Check) -> BoxFuture<Verdict> {
        Box::pin(async move { self.verify(&check).await.unwrap_or_else(|v| v) })
    }

    fn verifies_membership(&self) -> bool {
        self.config.verify_membership
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_of_user_ids() {
        for (id, want) in [
            ("@a:x.org", Some("x.org")),
            ("@a:x.org:8448", Some("x.org:8448")),
            ("a:x", None),
            ("@:x", None),
            ("@a:", None),
            ("@a", None),
        ] {
            assert_eq!(server_of(id), want, "{id}");
        }
    }

    #[test]
    fn url_encode_room_ids_and_tokens() {
        assert_eq!(url_encode("!abc:x.org"), "%21abc%3Ax.org");
        assert_eq!(url_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn userinfo_answers() {
        let ok = br#"{"sub":"@u:hs"}"#;
        assert_eq!(classify_userinfo(200, ok, "hs"), Ok("@u:hs".into()));
        assert_eq!(classify_userinfo(200, ok, "other"), Err(Verdict::InvalidToken));
        assert_eq!(classify_userinfo(401, b"{}", "hs"), Err(Verdict::InvalidToken));
        assert_eq!(classify_userinfo(500, b"", "hs"), Err(Failure::HttpStatus(500).into()));
        assert!(matches!(classify_userinfo(200, b"{}", "hs"), Err(Verdict::Failure(Failure::BadBody(_)))));
        assert!(matches!(classify_userinfo(200, b"<html>", "hs"), Err(Verdict::Failure(Failure::BadBody(_)))));
    }

    #[test]
    fn state_answers() {
        let body = br#"{"state":[{"type":"m.room.member","state_key":"@u:hs","sender":"@u:hs","content":{"membership":"join"}}]}"#;
        assert!(classify_state(200, body, "@u:hs").unwrap().joined());
        assert!(!classify_state(200, body, "@v:hs").unwrap().joined());
        assert_eq!(classify_state(404, b"", "@u:hs"), Err(Verdict::NotInRoom));
        assert_eq!(classify_state(403, b"", "@u:hs"), Err(Failure::HttpStatus(403).into()));
        assert!(matches!(classify_state(200, b"{}", "@u:hs"), Err(Verdict::Failure(Failure::BadBody(_)))));
    }
}
