//! Direct homeserver verification (docs/design.md, "Verifying Matrix users"): what UVS does,
//! done natively against the homeserver, with no UVS to run.
//!
//! 1. OpenID: `GET {hs}/_matrix/federation/v1/openid/userinfo?access_token=`
//!    gives `{"sub": "@user:server"}`; the user must belong to our server.
//! 2. Membership and power: Synapse's admin API
//!    `GET {hs}/_synapse/admin/v1/rooms/{roomId}/state` with the admin
//!    token; reduced to [`RoomFacts`] (v12 creators are owners).
//!
//! What costs a request is remembered in [`Memory`] (see [`super::cache`]):
//! the user id per OpenID token (`matrix_cache_ttl`), refusals per token
//! ([`super::cache::REFUSAL_TTL`]), and each room's facts
//! (`matrix_state_ttl`), one read in flight per room shared by every login
//! that arrives meanwhile. A refused token never costs a state read.
//!
//! The OpenID token travels in a URL query (the API wants it there), so no
//! error text built here ever carries a URL; the admin token only ever
//! travels in an `Authorization` header.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{watch, OnceCell};

use super::cache::{Memory, RoomPlan, TokenKey};
use crate::runtime::http::{HttpAnswer, Http, MAX_SMALL_BODY, MAX_STATE_BODY};
use super::state::{RoomFacts, Standing};
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

/// The room state answer: the room's facts, or the verdict to give.
pub fn classify_room(status: u16, body: &[u8]) -> Result<RoomFacts, Verdict> {
    match status {
        200 => {}
        // The room is unknown to our homeserver: nobody of ours is in it.
        404 => return Err(Verdict::NotInRoom),
        other => return Err(Failure::HttpStatus(other).into()),
    }
    RoomFacts::parse(body).map_err(|why| Failure::BadBody(format!("of room state {why}")).into())
}

/// The room state answer: the user's standing, or the verdict to give.
pub fn classify_state(status: u16, body: &[u8], user_id: &str) -> Result<Standing, Verdict> {
    classify_room(status, body).map(|facts| facts.standing(user_id))
}

/// One room state read as the logins waiting for it see it.
type RoomRead = Result<Arc<RoomFacts>, Verdict>;
/// How a login waits for a read in flight: `None` until it is done; the
/// sender dropped without a value means the reading login gave up.
type Flight = watch::Receiver<Option<RoomRead>>;

/// Forgets a read whose login gave up (its deadline passed) before the
/// answer: the logins that followed it read again.
struct ReadGuard<'a> {
    hs: &'a Homeserver,
    room_id: &'a str,
    id: u64,
    started: Instant,
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        self.hs.memory().read_done(self.room_id, self.id, None, self.started, Instant::now());
    }
}

fn token_key(token: &str) -> TokenKey {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

/// The homeserver backend.
pub struct Homeserver {
    config: HomeserverConfig,
    http: Http,
    /// Our server name, configured or learnt once from whoami.
    server_name: OnceCell<String>,
    /// User ids, refusals and rooms' facts (checks run on the engine's
    /// one thread; the lock is never held across an await).
    memory: Mutex<Memory<Flight>>,
}

impl Homeserver {
    pub fn new(mut config: HomeserverConfig, http: Http) -> Self {
        config.base_url = normalize_base_url(&config.base_url);
        let server_name = match config.server_name.clone().filter(|s| !s.is_empty()) {
            Some(s) => OnceCell::new_with(Some(s)),
            None => OnceCell::new(),
        };
        Homeserver { config, http, server_name, memory: Mutex::new(Memory::new(Duration::ZERO, Duration::ZERO)) }
    }

    /// Remember user ids for `user_ttl` (`matrix_cache_ttl`) and rooms'
    /// state for `state_ttl` (`matrix_state_ttl`); by default nothing is
    /// kept (reads in flight are still shared).
    pub fn keeping(mut self, user_ttl: Duration, state_ttl: Duration) -> Self {
        self.memory = Mutex::new(Memory::new(user_ttl, state_ttl));
        self
    }

    fn memory(&self) -> MutexGuard<'_, Memory<Flight>> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
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
    pub async fn room_state(&self, room_id: &str) -> Result<HttpAnswer, Failure> {
        let path = format!("/_synapse/admin/v1/rooms/{}/state", url_encode(room_id));
        // The body of a 404 too: `M_NOT_FOUND` tells a room that does not
        // exist from a proxy or a wrong URL (the live resync needs it).
        self.http.send(self.admin_get(&path), MAX_STATE_BODY, &[200, 404]).await
    }

    /// The user of an OpenID token: kept, or asked (userinfo), and kept.
    async fn user_of(&self, key: &TokenKey, token: &str, server: &str) -> Result<String, Verdict> {
        if let Some(user_id) = self.memory().user(key, Instant::now()) {
            return Ok(user_id);
        }
        let userinfo = self.http.client().get(format!(
            "{}/_matrix/federation/v1/openid/userinfo?access_token={}",
            self.config.base_url,
            url_encode(token)
        ));
        let answer = self.http.send(userinfo, MAX_SMALL_BODY, &[200]).await?;
        let user_id = classify_userinfo(answer.status, &answer.body, server)?;
        self.memory().keep_user(key, &user_id, Instant::now());
        Ok(user_id)
    }

    /// One read of the room's state, reduced to its facts.
    async fn read_room(&self, room_id: &str) -> RoomRead {
        let answer = self.room_state(room_id).await?;
        classify_room(answer.status, &answer.body).map(Arc::new)
    }

    /// The room's facts for a login of `user_id` that began at `arrived`:
    /// kept ones, a read in flight's, or a new read's (see [`Memory`]).
    async fn facts_for(&self, room_id: &str, user_id: &str, arrived: Instant) -> RoomRead {
        enum Step {
            Use(Arc<RoomFacts>),
            Follow(Instant, Flight),
            Read(watch::Sender<Option<RoomRead>>, u64, Instant),
        }
        loop {
            let step = {
                let mut memory = self.memory();
                match memory.room_plan(room_id, user_id, arrived, Instant::now()) {
                    RoomPlan::Use(facts) => Step::Use(facts),
                    RoomPlan::Follow { started, flight } => Step::Follow(started, flight),
                    RoomPlan::Read => {
                        let (tx, rx) = watch::channel(None);
                        let started = Instant::now();
                        Step::Read(tx, memory.read_started(room_id, started, rx), started)
                    }
                }
            };
            match step {
                Step::Use(facts) => return Ok(facts),
                Step::Follow(started, mut flight) => {
                    // `wait_for` also sees a value sent before it was called.
                    let got = flight.wait_for(Option::is_some).await.map(|v| v.clone());
                    match got {
                        Ok(Some(Ok(facts))) if Memory::<Flight>::settles(started, arrived, &facts, user_id) => {
                            return Ok(facts)
                        }
                        Ok(Some(Err(verdict))) => return Err(verdict),
                        // Read before this login began and without this
                        // user, or given up by its login: plan again.
                        _ => continue,
                    }
                }
                Step::Read(tx, id, started) => {
                    let guard = ReadGuard { hs: self, room_id, id, started };
                    let read = self.read_room(room_id).await;
                    std::mem::forget(guard);
                    self.memory().read_done(room_id, id, read.as_ref().ok().cloned(), started, Instant::now());
                    let _ = tx.send(Some(read.clone()));
                    return read;
                }
            }
        }
    }

    async fn verify(&self, check: &Check) -> Result<Verdict, Verdict> {
        let arrived = Instant::now();
        let server = self.server_name.get_or_try_init(|| self.whoami()).await?;
        if check.server_name.as_deref().is_some_and(|s| !s.is_empty() && s != server) {
            // The token names another homeserver than the one we ask.
            return Ok(Verdict::InvalidToken);
        }
        let key = token_key(&check.token);
        if let Some(refusal) = self.memory().refused(&key, &check.room_id, Instant::now()) {
            return Ok(refusal);
        }
        let user_id = match self.user_of(&key, &check.token, server).await {
            Ok(user_id) => user_id,
            Err(Verdict::InvalidToken) => {
                self.memory().refuse(&key, None, Verdict::InvalidToken, Instant::now());
                return Ok(Verdict::InvalidToken);
            }
            Err(other) => return Err(other),
        };
        if !self.config.verify_membership {
            return Ok(Verdict::Verified {
                user_id: Some(user_id),
                power_level: None,
                state_default: super::DEFAULT_STATE_DEFAULT,
                creator: false,
                is_owner: false,
            });
        }
        let standing = match self.facts_for(&check.room_id, &user_id, arrived).await {
            Ok(facts) => Some(facts.standing(&user_id)).filter(Standing::joined),
            Err(Verdict::NotInRoom) => None, // a room our homeserver does not know
            Err(other) => return Err(other),
        };
        let Some(s) = standing else {
            self.memory().refuse(&key, Some(&check.room_id), Verdict::NotInRoom, Instant::now());
            return Ok(Verdict::NotInRoom);
        };
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

    /// Nothing whole: this backend keeps user ids and rooms' state itself,
    /// so that a ban reaches new logins within `matrix_state_ttl`.
    fn verdict_ttl(&self, _cache_ttl: Duration) -> Duration {
        Duration::ZERO
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

    // --- the backend against a stand-in homeserver ------------------------

    use std::collections::HashMap as Map;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A homeserver stand-in: userinfo answers `@<name>:x` for tokens
    /// `good-<name>` (401 otherwise); a room's state is `members` joined,
    /// answered after `state_delay_ms` (the first read after
    /// `first_state_delay_ms`, when set). Counts requests by kind.
    struct FakeHs {
        url: String,
        members: Arc<Mutex<Vec<String>>>,
        counts: Arc<Mutex<Map<&'static str, usize>>>,
    }

    impl FakeHs {
        fn start(members: &[&str], state_delay_ms: u64, first_state_delay_ms: Option<u64>) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let members = Arc::new(Mutex::new(members.iter().map(|m| m.to_string()).collect::<Vec<_>>()));
            let counts = Arc::new(Mutex::new(Map::new()));
            let (m, c) = (Arc::clone(&members), Arc::clone(&counts));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { return };
                    let (m, c) = (Arc::clone(&m), Arc::clone(&c));
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 8192];
                        let n = stream.read(&mut buf).unwrap_or(0);
                        let head = String::from_utf8_lossy(&buf[..n]).to_string();
                        let target = head.split(' ').nth(1).unwrap_or("").to_string();
                        let (status, body) = if let Some(token) = target.strip_prefix("/_matrix/federation/v1/openid/userinfo?access_token=") {
                            *c.lock().unwrap().entry("userinfo").or_insert(0) += 1;
                            match token.strip_prefix("good-") {
                                Some(name) => (200, format!(r#"{{"sub":"@{name}:x"}}"#)),
                                None => (401, r#"{"errcode":"M_UNKNOWN_TOKEN"}"#.to_string()),
                            }
                        } else if target.starts_with("/_synapse/admin/v1/rooms/%21gone") {
                            *c.lock().unwrap().entry("state").or_insert(0) += 1;
                            (404, r#"{"errcode":"M_NOT_FOUND"}"#.to_string())
                        } else if target.starts_with("/_synapse/admin/v1/rooms/") {
                            let nth = {
                                let mut c = c.lock().unwrap();
                                let e = c.entry("state").or_insert(0);
                                *e += 1;
                                *e
                            };
                            let delay = match first_state_delay_ms {
                                Some(d) if nth == 1 => d,
                                _ => state_delay_ms,
                            };
                            // The state as it is when the read arrives.
                            let events: Vec<Value> = m.lock().unwrap().iter().map(|u| {
                                serde_json::json!({"type": "m.room.member", "state_key": u, "sender": u, "content": {"membership": "join"}})
                            }).collect();
                            std::thread::sleep(Duration::from_millis(delay));
                            (200, serde_json::json!({ "state": events }).to_string())
                        } else {
                            (404, "{}".to_string())
                        };
                        let reply = format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(reply.as_bytes());
                    });
                }
            });
            FakeHs { url, members, counts }
        }

        fn count(&self, kind: &str) -> usize {
            self.counts.lock().unwrap().get(kind).copied().unwrap_or(0)
        }

        fn set_members(&self, members: &[&str]) {
            *self.members.lock().unwrap() = members.iter().map(|m| m.to_string()).collect();
        }

        fn backend(&self, state_ttl: Duration) -> Arc<Homeserver> {
            let config = HomeserverConfig {
                base_url: self.url.clone(),
                admin_token: "adm".into(),
                server_name: Some("x".into()),
                verify_membership: true,
            };
            Arc::new(Homeserver::new(config, Http::new().unwrap()).keeping(Duration::from_secs(60), state_ttl))
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    fn login(token: &str) -> Check {
        Check { token: token.into(), room_id: "!r:x".into(), server_name: None }
    }

    /// Run the checks at once (as the engine does); verdict codes in order.
    fn all_at_once(rt: &tokio::runtime::Runtime, hs: &Arc<Homeserver>, tokens: &[String]) -> Vec<&'static str> {
        rt.block_on(async {
            let tasks: Vec<_> = tokens.iter().map(|t| tokio::spawn(Arc::clone(hs).check(login(t)))).collect();
            let mut codes = Vec::new();
            for t in tasks {
                codes.push(t.await.unwrap().code());
            }
            codes
        })
    }

    fn one(rt: &tokio::runtime::Runtime, hs: &Arc<Homeserver>, token: &str) -> Verdict {
        rt.block_on(Arc::clone(hs).check(login(token)))
    }

    #[test]
    fn logins_of_different_members_at_once_share_one_state_read() {
        let names: Vec<String> = (0..20).map(|i| format!("u{i}")).collect();
        let members: Vec<String> = names.iter().map(|n| format!("@{n}:x")).collect();
        let hs = FakeHs::start(&members.iter().map(String::as_str).collect::<Vec<_>>(), 300, None);
        let backend = hs.backend(Duration::from_secs(60));
        let rt = rt();
        let tokens: Vec<String> = names.iter().map(|n| format!("good-{n}")).collect();
        assert_eq!(all_at_once(&rt, &backend, &tokens), vec!["ok"; 20]);
        assert_eq!((hs.count("userinfo"), hs.count("state")), (20, 1), "one userinfo per token, one state read");
        // Within matrix_state_ttl, known users cost nothing more.
        assert!(one(&rt, &backend, "good-u3").is_verified());
        assert_eq!((hs.count("userinfo"), hs.count("state")), (20, 1));
    }

    #[test]
    fn a_user_missing_from_kept_state_is_read_again_at_once() {
        let hs = FakeHs::start(&["@a:x"], 0, None);
        let backend = hs.backend(Duration::from_secs(60));
        let rt = rt();
        assert!(one(&rt, &backend, "good-a").is_verified());
        assert_eq!(hs.count("state"), 1);
        hs.set_members(&["@a:x", "@b:x"]); // b joins the Matrix room, then opens the call
        assert!(one(&rt, &backend, "good-b").is_verified(), "kept state lacked b: read again");
        assert_eq!(hs.count("state"), 2);
        assert!(one(&rt, &backend, "good-a").is_verified());
        assert_eq!(hs.count("state"), 2, "the new read is kept");
    }

    #[test]
    fn kept_state_admits_a_member_until_it_expires_and_no_longer_with_ttl_zero() {
        let hs = FakeHs::start(&["@a:x"], 0, None);
        let rt = rt();
        let kept = hs.backend(Duration::from_secs(60));
        assert!(one(&rt, &kept, "good-a").is_verified());
        let fresh = hs.backend(Duration::ZERO);
        assert!(one(&rt, &fresh, "good-a").is_verified());
        hs.set_members(&[]); // a is banned
        assert!(one(&rt, &kept, "good-a").is_verified(), "within matrix_state_ttl the kept state answers");
        assert_eq!(one(&rt, &fresh, "good-a"), Verdict::NotInRoom, "matrix_state_ttl 0: every login reads");
    }

    #[test]
    fn refused_tokens_are_kept_and_never_cost_a_state_read() {
        let hs = FakeHs::start(&["@a:x"], 0, None);
        let backend = hs.backend(Duration::from_secs(60));
        let rt = rt();
        for _ in 0..5 {
            assert_eq!(one(&rt, &backend, "forged"), Verdict::InvalidToken);
        }
        assert_eq!((hs.count("userinfo"), hs.count("state")), (1, 0), "5 refusals of one token: one userinfo, no state");
        let tokens: Vec<String> = (0..5).map(|_| "forged2".to_string()).collect();
        assert_eq!(all_at_once(&rt, &backend, &tokens), vec!["invalid_token"; 5]);
        assert_eq!(hs.count("state"), 0);
        let before = hs.count("userinfo");
        for _ in 0..3 {
            assert_eq!(one(&rt, &backend, "good-stranger"), Verdict::NotInRoom);
        }
        assert_eq!((hs.count("userinfo") - before, hs.count("state")), (1, 1), "a non-member's 3 logins: one userinfo, one state read");
    }

    #[test]
    fn a_room_the_homeserver_does_not_know_refuses_and_is_not_kept() {
        let hs = FakeHs::start(&["@a:x"], 0, None);
        let backend = hs.backend(Duration::from_secs(60));
        let rt = rt();
        let gone = |token: &str| Check { token: token.into(), room_id: "!gone:x".into(), server_name: None };
        for _ in 0..3 {
            assert_eq!(rt.block_on(Arc::clone(&backend).check(gone("good-a"))), Verdict::NotInRoom);
        }
        assert_eq!(hs.count("state"), 1, "the refusal of this token is kept");
        assert_eq!(rt.block_on(Arc::clone(&backend).check(gone("good-b"))), Verdict::NotInRoom);
        assert_eq!(hs.count("state"), 2, "a 404 is no state to keep: another token reads again");
    }

    #[test]
    fn a_read_given_up_by_its_login_does_not_hold_the_others() {
        // The first state read hangs; its login gives up (its deadline).
        let hs = FakeHs::start(&["@a:x", "@b:x"], 0, Some(10_000));
        let backend = hs.backend(Duration::from_secs(60));
        let rt = rt();
        let b = rt.block_on(async {
            let a = tokio::spawn(tokio::time::timeout(Duration::from_millis(300), Arc::clone(&backend).check(login("good-a"))));
            // b logs in once a's read is at the homeserver.
            for _ in 0..500 {
                if hs.count("state") > 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(hs.count("state"), 1, "a's read is in flight");
            let b = tokio::spawn(tokio::time::timeout(Duration::from_secs(8), Arc::clone(&backend).check(login("good-b"))));
            assert!(a.await.unwrap().is_err(), "a gave up");
            b.await.unwrap()
        });
        assert!(b.is_ok_and(|v| v.is_verified()), "b is answered by a read of its own");
    }
}
