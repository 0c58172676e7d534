//! Live Matrix membership (direct homeserver mode): while a Jitsi room has
//! occupants verified for Matrix room R, R's state is re-read every
//! `matrix_resync_interval` seconds (jittered), one request per Matrix room
//! however many occupants, on the [`Engine`]'s thread. Occupants no longer
//! joined are kicked; with power sync, owners follow power levels
//! (README "Live Matrix membership").
//!
//! Occupants are tracked by their session's real (full) JID, not by their
//! nick: a nick change keeps the same real JID, so the person stays
//! watched; the shim finds the occupant's current nick from the real JID
//! when it acts.
//!
//! A homeserver error, timeout or unusable answer changes nothing (no mass
//! kick during an outage); it is reported once per outage of each Matrix
//! room. A room the homeserver says does not exist (404 `M_NOT_FOUND`),
//! twice in a row, removes its Matrix-verified occupants. Pure of Lua.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::runtime::login::{AuthOptions, BackendConfig};
use crate::runtime::engine::{Engine, Outcome};
use crate::error::Error;
use crate::matrix::verify::homeserver::{Homeserver, HomeserverConfig};
use crate::runtime::http::HttpAnswer;
use crate::matrix::verify::state::RoomView;
use crate::matrix::verify::Failure;

/// What one re-read of a room gave.
#[derive(Debug)]
pub enum RoomAnswer {
    /// The room's state events.
    State(Vec<Value>),
    /// The homeserver says the room does not exist (404 `M_NOT_FOUND`).
    NotFound,
    /// No usable answer.
    Failed(Failure),
}

impl Outcome for RoomAnswer {
    fn timed_out(after: Duration) -> Self {
        RoomAnswer::Failed(Failure::Timeout { after_ms: after.as_millis() as u64 })
    }
    fn panicked(message: String) -> Self {
        RoomAnswer::Failed(Failure::Internal(crate::text::escape_line(&message)))
    }
}

impl RoomAnswer {
    /// Read the admin API's answer for a room's state. Only a 404 whose body
    /// is Matrix's `M_NOT_FOUND` means "no such room": a bare 404 (a proxy,
    /// a wrong base URL) is a failure like any other status.
    pub fn classify(answer: Result<HttpAnswer, Failure>) -> RoomAnswer {
        let a = match answer {
            Ok(a) => a,
            Err(f) => return RoomAnswer::Failed(f),
        };
        match a.status {
            200 => match serde_json::from_slice::<Value>(&a.body) {
                Ok(Value::Object(mut o)) => match o.remove("state") {
                    Some(Value::Array(events)) => RoomAnswer::State(events),
                    _ => RoomAnswer::Failed(Failure::BadBody("of room state has no state list".into())),
                },
                _ => RoomAnswer::Failed(Failure::BadBody("of room state is not a JSON object".into())),
            },
            404 if serde_json::from_slice::<Value>(&a.body)
                .ok()
                .is_some_and(|v| v.get("errcode").and_then(Value::as_str) == Some("M_NOT_FOUND")) =>
            {
                RoomAnswer::NotFound
            }
            other => RoomAnswer::Failed(Failure::HttpStatus(other)),
        }
    }
}

/// Why an occupant is removed (the status text its client sees).
pub const REASON_ROOM_GONE: &str = "the Matrix room no longer exists";

/// A kicked session's Matrix proof is spent: the shim marks the session and
/// refuses its later joins with this text (a new login checks membership
/// again).
pub const REJOIN_REFUSAL: &str = "your Matrix room membership was revoked; log in again to rejoin";

/// What the shim should do after a resync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Kick the occupant whose session is `real_jid` from `room`; that
    /// session may not join again ([`REJOIN_REFUSAL`]).
    Kick { room: String, real_jid: String, user_id: String, reason: String },
    /// The Matrix user `user_id` (session `real_jid`, account `bare_jid`)
    /// should be owner (`true`) or not (`false`) by the Matrix rule; the
    /// shim asks [`crate::policy::owner::on_power_change`] what to change.
    Owner { room: String, real_jid: String, bare_jid: String, matrix_room: String, user_id: String, owner: bool },
    /// The homeserver stopped answering usefully for this Matrix room (once
    /// per outage of the room).
    Outage { matrix_room: String, text: String },
    /// It answers again for this room.
    Recovered { matrix_room: String, text: String },
    /// One failed resync of one room (for a metric; no log line).
    Failed { matrix_room: String },
}

#[derive(Debug, Clone)]
struct Occupant {
    bare_jid: String,
    user_id: String,
}

struct Tracked {
    /// Jitsi room jid -> real (full) JID of the session -> who.
    rooms: HashMap<String, HashMap<String, Occupant>>,
    next_due: Instant,
    /// The request id in flight, if any.
    in_flight: Option<u64>,
    /// In an outage: the warning was given, the recovery is not yet seen.
    outage: bool,
    /// The last answer was "no such room"; a second one confirms it.
    not_found: bool,
}

/// Resync settings.
#[derive(Debug, Clone)]
pub struct ResyncSettings {
    pub interval: Duration,
    pub timeout: Duration,
    pub sync_power_levels: bool,
    pub max_in_flight: usize,
}

/// Default `matrix_resync_interval`, seconds (the one place that knows it).
pub const DEFAULT_INTERVAL_SECS: f64 = 30.0;

/// The shim's timer checks for due rooms this often, at most.
const MAX_TICK: Duration = Duration::from_secs(1);

impl ResyncSettings {
    /// From the VirtualHost's options (validated as the auth module does)
    /// and `matrix_resync_interval`: `None` when off (no direct homeserver
    /// mode, or an interval of 0).
    pub fn from_options(
        options: &AuthOptions,
        interval: Option<f64>,
    ) -> crate::error::Result<Option<(HomeserverConfig, ResyncSettings)>> {
        let interval = interval.unwrap_or(DEFAULT_INTERVAL_SECS);
        let Some(matrix) = options.matrix_settings()? else { return Ok(None) };
        let BackendConfig::Homeserver(mut hs) = matrix.backend else { return Ok(None) };
        if interval == 0.0 {
            return Ok(None);
        }
        if !(interval.is_finite() && interval > 0.0 && interval <= 86_400.0) {
            return Err(Error::Config(format!("matrix_resync_interval {interval} is not a number of seconds")));
        }
        // A resync always reads membership, whatever the login checks.
        hs.verify_membership = true;
        let settings = ResyncSettings {
            interval: Duration::from_secs_f64(interval),
            timeout: matrix.timeout,
            sync_power_levels: options.uvs_sync_power_levels.unwrap_or(false),
            max_in_flight: matrix.max_in_flight,
        };
        Ok(Some((hs, settings)))
    }

    /// How often the shim's timer should call [`Resync::tick`]: a quarter
    /// of the interval, at most a second.
    pub fn tick_every(&self) -> Duration {
        (self.interval / 4).min(MAX_TICK)
    }
}

/// `now + d`, or `now` itself if that would overflow (never panics).
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).unwrap_or(now)
}

pub struct Resync {
    engine: Engine<RoomAnswer>,
    homeserver: Arc<Homeserver>,
    settings: ResyncSettings,
    /// Matrix room id -> what is tracked for it.
    tracked: HashMap<String, Tracked>,
    /// Request id -> Matrix room id.
    requests: HashMap<u64, String>,
    seed: u64,
    /// Requests sent so far (for tests and metrics).
    pub sent: u64,
}

impl Resync {
    pub fn new(homeserver: Homeserver, settings: ResyncSettings) -> std::io::Result<Self> {
        let engine = Engine::new(settings.max_in_flight, 4096)?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
        Ok(Resync { engine, homeserver: Arc::new(homeserver), settings, tracked: HashMap::new(), requests: HashMap::new(), seed, sent: 0 })
    }

    pub fn settings(&self) -> &ResyncSettings {
        &self.settings
    }

    /// The interval scaled by a factor in [0.8, 1.2): rooms drift apart.
    fn jittered(&mut self) -> Duration {
        // xorshift64: plenty for spreading timers.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let unit = (self.seed >> 11) as f64 / (1u64 << 53) as f64;
        self.settings.interval.mul_f64(0.8 + 0.4 * unit)
    }

    /// The session `real_jid` (account `bare_jid`), verified for
    /// `matrix_room` as `user_id`, is an occupant of `room`, which belongs
    /// to the Jitsi room named `room_node` (its own node; a breakout
    /// room's main room). Only the Jitsi room that stands for that Matrix
    /// room is watched: false (and nothing tracked) otherwise. Tracking the
    /// same session again (a nick change, a module reload) changes nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn track(&mut self, room: &str, room_node: &str, real_jid: &str, bare_jid: &str, matrix_room: &str, user_id: &str, now: Instant) -> bool {
        if crate::matrix::room::name_for_room_id(matrix_room) != room_node.to_ascii_lowercase() {
            return false;
        }
        if !self.tracked.contains_key(matrix_room) {
            let next_due = later(now, self.jittered());
            self.tracked.insert(
                matrix_room.to_string(),
                Tracked { rooms: HashMap::new(), next_due, in_flight: None, outage: false, not_found: false },
            );
        }
        let t = self.tracked.get_mut(matrix_room).expect("inserted above");
        t.rooms
            .entry(room.to_string())
            .or_default()
            .insert(real_jid.to_string(), Occupant { bare_jid: bare_jid.to_string(), user_id: user_id.to_string() });
        true
    }

    /// The session `real_jid` is no longer an occupant of `room` (it left,
    /// or was kicked); rooms with nobody left to watch stop being re-read.
    pub fn untrack(&mut self, room: &str, real_jid: &str) {
        self.tracked.retain(|_, t| {
            if let Some(occupants) = t.rooms.get_mut(room) {
                occupants.remove(real_jid);
                if occupants.is_empty() {
                    t.rooms.remove(room);
                }
            }
            !t.rooms.is_empty()
        });
    }

    /// Matrix rooms being watched.
    pub fn watched(&self) -> usize {
        self.tracked.len()
    }

    /// Sessions being watched, in every room.
    pub fn sessions(&self) -> usize {
        self.tracked.values().flat_map(|t| t.rooms.values()).map(HashMap::len).sum()
    }

    /// Send a request for every room that is due and has none in flight.
    pub fn tick(&mut self, now: Instant) -> usize {
        let due: Vec<String> = self
            .tracked
            .iter()
            .filter(|(_, t)| t.in_flight.is_none() && t.next_due <= now)
            .map(|(id, _)| id.clone())
            .collect();
        let mut sent = 0;
        for matrix_room in due {
            let id = self.engine.next_id();
            let hs = Arc::clone(&self.homeserver);
            let room_id = matrix_room.clone();
            let job = Box::pin(async move { RoomAnswer::classify(hs.room_state(&room_id).await) });
            let next_due = later(now, self.jittered());
            let t = self.tracked.get_mut(&matrix_room).expect("listed above");
            t.next_due = next_due;
            if self.engine.submit(id, later(now, self.settings.timeout), job).is_ok() {
                t.in_flight = Some(id);
                self.requests.insert(id, matrix_room);
                self.sent += 1;
                sent += 1;
            }
        }
        sent
    }

    /// Actions from every answer that arrived (never blocks).
    pub fn drain(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        for (id, answer) in self.engine.drain() {
            let Some(matrix_room) = self.requests.remove(&id) else { continue };
            let Some(t) = self.tracked.get_mut(&matrix_room) else { continue };
            if t.in_flight == Some(id) {
                t.in_flight = None;
            }
            judge(&self.settings, &matrix_room, t, answer, now, &mut actions);
        }
        actions
    }

    pub fn fd(&self) -> Option<RawFd> {
        self.engine.fd()
    }

    /// Stop without waiting (see [`Engine::close`]).
    pub fn close(&mut self) {
        self.engine.close();
        self.tracked.clear();
        self.requests.clear();
    }
}

/// What one answer about `matrix_room` means for its tracked occupants.
fn judge(settings: &ResyncSettings, matrix_room: &str, t: &mut Tracked, answer: RoomAnswer, now: Instant, actions: &mut Vec<Action>) {
    let room_text = crate::text::Untrusted::new(matrix_room);
    let events = match answer {
        RoomAnswer::Failed(f) => {
            t.not_found = false;
            actions.push(Action::Failed { matrix_room: matrix_room.to_string() });
            if !t.outage {
                t.outage = true;
                actions.push(Action::Outage {
                    matrix_room: matrix_room.to_string(),
                    text: format!(
                        "Matrix room {room_text}: the homeserver {f}; Matrix membership is not re-checked until it answers (nobody is removed meanwhile)"
                    ),
                });
            }
            return;
        }
        RoomAnswer::NotFound => None,
        RoomAnswer::State(events) => Some(events),
    };
    if t.outage {
        t.outage = false;
        actions.push(Action::Recovered {
            matrix_room: matrix_room.to_string(),
            text: format!("Matrix room {room_text}: the homeserver answers again; Matrix membership re-checks resume"),
        });
    }
    let Some(events) = events else { return not_found(t, now, actions) };
    t.not_found = false;
    let view = RoomView::new(&events);
    for (room, occupants) in &t.rooms {
        for (real_jid, who) in occupants {
            let s = view.standing(&who.user_id);
            if !s.joined() {
                let state = s.membership.as_deref().unwrap_or("not a member");
                actions.push(Action::Kick {
                    room: room.clone(),
                    real_jid: real_jid.clone(),
                    user_id: who.user_id.clone(),
                    reason: format!("no longer in the Matrix room ({})", crate::text::escape_line(state)),
                });
            } else if settings.sync_power_levels {
                actions.push(Action::Owner {
                    room: room.clone(),
                    real_jid: real_jid.clone(),
                    bare_jid: who.bare_jid.clone(),
                    matrix_room: matrix_room.to_string(),
                    user_id: who.user_id.clone(),
                    owner: s.is_owner(),
                });
            }
        }
    }
}

/// "No such room": the first time, read again at the next tick; the second
/// time in a row, remove every tracked occupant (kept tracked until the
/// shim confirms each kick, so a failed kick is retried).
fn not_found(t: &mut Tracked, now: Instant, actions: &mut Vec<Action>) {
    if !t.not_found {
        t.not_found = true;
        t.next_due = now;
        return;
    }
    for (room, occupants) in &t.rooms {
        for (real_jid, who) in occupants {
            actions.push(Action::Kick {
                room: room.clone(),
                real_jid: real_jid.clone(),
                user_id: who.user_id.clone(),
                reason: REASON_ROOM_GONE.to_string(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::http::Http;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A homeserver stand-in answering every request with `status` + `body`;
    /// counts requests.
    fn serve(status: u16, body: String) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&count);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                c.fetch_add(1, Ordering::SeqCst);
                let reply = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        (url, count)
    }

    fn resync(url: &str, sync: bool) -> Resync {
        let hs = Homeserver::new(
            HomeserverConfig { base_url: url.into(), admin_token: "adm".into(), server_name: Some("x".into()), verify_membership: true },
            Http::new().unwrap(),
        );
        let settings = ResyncSettings { interval: Duration::from_millis(100), timeout: Duration::from_secs(5), sync_power_levels: sync, max_in_flight: 8 };
        Resync::new(hs, settings).unwrap()
    }

    fn node() -> String {
        crate::matrix::room::name_for_room_id("!r:x")
    }

    #[test]
    fn resync_watches_only_the_room_that_stands_for_the_matrix_room() {
        let (url, _) = serve(200, state(vec![]));
        let mut r = resync(&url, true);
        assert!(!r.track("other@muc", "other", "a@h/1", "a@h", "!r:x", "@a:x", Instant::now()));
        assert_eq!(r.watched(), 0);
        assert!(r.track("j@muc", &node().to_uppercase(), "a@h/1", "a@h", "!r:x", "@a:x", Instant::now()));
        assert_eq!(r.watched(), 1);
        // A breakout room is tracked under its main room's node.
        assert!(r.track("uuid@breakout", &node(), "a@h/1", "a@h", "!r:x", "@a:x", Instant::now()));
        assert_eq!((r.watched(), r.sessions()), (1, 2));
    }

    fn member(user: &str, membership: &str) -> Value {
        serde_json::json!({"type": "m.room.member", "state_key": user, "sender": user, "content": {"membership": membership}})
    }

    fn state(events: Vec<Value>) -> String {
        serde_json::json!({ "state": events }).to_string()
    }

    fn run(r: &mut Resync) -> Vec<Action> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            r.tick(Instant::now() + Duration::from_secs(1));
            let a = r.drain(Instant::now());
            if !a.is_empty() {
                return a;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Vec::new()
    }

    #[test]
    fn resync_kicks_only_those_no_longer_joined_one_request_per_room() {
        let levels = serde_json::json!({"type": "m.room.power_levels", "state_key": "", "sender": "@a:x",
                                        "content": {"users": {"@a:x": 100}}});
        let body = state(vec![member("@a:x", "join"), member("@b:x", "leave"), member("@c:x", "ban"), levels]);
        let (url, count) = serve(200, body);
        let mut r = resync(&url, true);
        let now = Instant::now();
        r.track("j@muc", &node(), "a@h/1", "a@h", "!r:x", "@a:x", now);
        r.track("j@muc", &node(), "b@h/1", "b@h", "!r:x", "@b:x", now);
        r.track("j@muc", &node(), "b@h/2", "b@h", "!r:x", "@b:x", now);
        r.track("j@muc", &node(), "c@h/1", "c@h", "!r:x", "@c:x", now);
        let mut actions = run(&mut r);
        actions.sort_by_key(|a| format!("{a:?}"));
        assert_eq!(count.load(Ordering::SeqCst), 1, "one request for four occupants");
        let kicked: Vec<&str> = actions
            .iter()
            .filter_map(|a| match a { Action::Kick { real_jid, .. } => Some(real_jid.as_str()), _ => None })
            .collect();
        assert_eq!(kicked, vec!["b@h/1", "b@h/2", "c@h/1"], "every session of a gone user");
        assert!(actions.contains(&Action::Owner {
            room: "j@muc".into(),
            real_jid: "a@h/1".into(),
            bare_jid: "a@h".into(),
            matrix_room: "!r:x".into(),
            user_id: "@a:x".into(),
            owner: true
        }));
    }

    #[test]
    fn resync_failures_change_nothing_and_warn_once() {
        let (url, _) = serve(500, "{}".into());
        let mut r = resync(&url, true);
        r.track("j@muc", &node(), "a@h/1", "a@h", "!r:x", "@a:x", Instant::now());
        let first = run(&mut r);
        assert!(matches!(first.as_slice(), [Action::Failed { .. }, Action::Outage { .. }]), "{first:?}");
        let second = run(&mut r);
        assert!(matches!(second.as_slice(), [Action::Failed { .. }]), "no second warning: {second:?}");
    }

    #[test]
    fn resync_stops_when_rooms_empty() {
        let (url, count) = serve(200, state(vec![]));
        let mut r = resync(&url, false);
        let now = Instant::now();
        r.track("j@muc", &node(), "a@h/1", "a@h", "!r:x", "@a:x", now);
        r.untrack("j@muc", "a@h/1");
        assert_eq!(r.watched(), 0);
        assert_eq!(r.tick(now + Duration::from_secs(10)), 0);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(count.load(Ordering::SeqCst), 0, "no requests for a room without Matrix occupants");
    }

    #[test]
    fn settings_follow_the_auth_options() {
        let mut o = AuthOptions::default();
        assert!(ResyncSettings::from_options(&o, None).unwrap().is_none(), "no homeserver: off");
        o.uvs_base_url = Some("http://uvs".into());
        assert!(ResyncSettings::from_options(&o, None).unwrap().is_none(), "UVS: impossible, off");
        o.uvs_base_url = None;
        o.matrix_homeserver_url = Some("http://hs".into());
        assert!(ResyncSettings::from_options(&o, None).is_err(), "needs the admin token");
        o.matrix_admin_token = Some("adm".into());
        o.uvs_timeout = Some(2.0);
        o.uvs_disable_membership_verification = Some(true);
        let (hs, s) = ResyncSettings::from_options(&o, Some(1.5)).unwrap().unwrap();
        assert!(hs.verify_membership);
        assert_eq!((s.interval, s.timeout), (Duration::from_millis(1500), Duration::from_secs(2)));
        assert!(ResyncSettings::from_options(&o, Some(0.0)).unwrap().is_none(), "0 turns it off");
        assert!(ResyncSettings::from_options(&o, Some(-1.0)).is_err());
    }

    #[test]
    fn resync_jitter_stays_within_bounds() {
        let (url, _) = serve(200, state(vec![]));
        let mut r = resync(&url, false);
        for _ in 0..1000 {
            let d = r.jittered();
            assert!(d >= Duration::from_millis(80) && d < Duration::from_millis(120), "{d:?}");
        }
    }

    fn answer(status: u16, body: &str) -> Result<HttpAnswer, Failure> {
        Ok(HttpAnswer { status, body: body.as_bytes().to_vec(), max_age: None })
    }

    #[test]
    fn classify_answers() {
        let cases: [(&str, Result<HttpAnswer, Failure>, &str); 7] = [
            ("state", answer(200, r#"{"state":[]}"#), "state"),
            ("no state list", answer(200, r#"{"x":[]}"#), "failed"),
            ("not JSON", answer(200, "<html>"), "failed"),
            ("Synapse's unknown room", answer(404, r#"{"errcode":"M_NOT_FOUND","error":"Room not found"}"#), "not found"),
            ("a bare 404 (a proxy, a wrong URL)", answer(404, "<html>not here</html>"), "failed"),
            ("404 with another errcode", answer(404, r#"{"errcode":"M_UNRECOGNIZED"}"#), "failed"),
            ("transport error", Err(Failure::Connect("refused".into())), "failed"),
        ];
        for (name, a, want) in cases {
            let got = match RoomAnswer::classify(a) {
                RoomAnswer::State(_) => "state",
                RoomAnswer::NotFound => "not found",
                RoomAnswer::Failed(_) => "failed",
            };
            assert_eq!(got, want, "{name}");
        }
    }

    fn settings(sync: bool) -> ResyncSettings {
        ResyncSettings { interval: Duration::from_secs(30), timeout: Duration::from_secs(5), sync_power_levels: sync, max_in_flight: 8 }
    }

    fn tracked(occupants: &[(&str, &str)]) -> Tracked {
        let mut room = HashMap::new();
        for (real_jid, user) in occupants {
            room.insert(real_jid.to_string(), Occupant { bare_jid: real_jid.split('/').next().unwrap().into(), user_id: user.to_string() });
        }
        Tracked { rooms: HashMap::from([("j@muc".to_string(), room)]), next_due: Instant::now(), in_flight: None, outage: false, not_found: false }
    }

    /// A compact view of actions: "kick <jid> <reason>", "owner <jid> <bool>", "outage", "recovered", "failed".
    fn summary(actions: &[Action]) -> Vec<String> {
        let mut out: Vec<String> = actions
            .iter()
            .map(|a| match a {
                Action::Kick { real_jid, reason, .. } => format!("kick {real_jid} {reason}"),
                Action::Owner { real_jid, owner, .. } => format!("owner {real_jid} {owner}"),
                Action::Outage { .. } => "outage".into(),
                Action::Recovered { .. } => "recovered".into(),
                Action::Failed { .. } => "failed".into(),
            })
            .collect();
        out.sort();
        out
    }

    fn state_answer(events: Vec<Value>) -> RoomAnswer {
        RoomAnswer::State(events)
    }

    #[test]
    fn judge_sequences() {
        let joined = || state_answer(vec![member("@a:x", "join"), member("@b:x", "join")]);
        let failed = || RoomAnswer::Failed(Failure::HttpStatus(502));
        let cases: Vec<(&str, Vec<RoomAnswer>, Vec<&str>)> = vec![
            ("one not-found is not enough", vec![RoomAnswer::NotFound], vec![]),
            (
                "two not-founds in a row remove every Matrix occupant",
                vec![RoomAnswer::NotFound, RoomAnswer::NotFound],
                vec!["kick a@h/1 the Matrix room no longer exists", "kick b@h/1 the Matrix room no longer exists"],
            ),
            ("not-found, then the room again: nobody removed", vec![RoomAnswer::NotFound, joined(), RoomAnswer::NotFound], vec![]),
            ("not-found, failure, not-found: not confirmed", vec![RoomAnswer::NotFound, failed(), RoomAnswer::NotFound], vec!["failed", "outage", "recovered"]),
            ("failures: one warning per outage", vec![failed(), failed(), failed()], vec!["failed", "failed", "failed", "outage"]),
            ("an outage ends with an answer", vec![failed(), joined()], vec!["failed", "outage", "recovered"]),
            ("an outage ends with not-found too", vec![failed(), RoomAnswer::NotFound], vec!["failed", "outage", "recovered"]),
        ];
        for (name, answers, want) in cases {
            let mut t = tracked(&[("a@h/1", "@a:x"), ("b@h/1", "@b:x")]);
            let mut actions = Vec::new();
            for a in answers {
                judge(&settings(false), "!r:x", &mut t, a, Instant::now(), &mut actions);
            }
            let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            assert_eq!(summary(&actions), want, "{name}");
        }
    }

    #[test]
    fn judge_first_not_found_reads_again_at_the_next_tick() {
        let mut t = tracked(&[("a@h/1", "@a:x")]);
        let later_due = Instant::now() + Duration::from_secs(60);
        t.next_due = later_due;
        let now = Instant::now();
        let mut actions = Vec::new();
        judge(&settings(false), "!r:x", &mut t, RoomAnswer::NotFound, now, &mut actions);
        assert_eq!(t.next_due, now, "the confirming read is not a whole interval away");
    }

    #[test]
    fn judge_outage_is_per_room() {
        let mut r1 = tracked(&[("a@h/1", "@a:x")]);
        let mut r2 = tracked(&[("b@h/1", "@b:x")]);
        let mut actions = Vec::new();
        judge(&settings(false), "!r1:x", &mut r1, RoomAnswer::Failed(Failure::HttpStatus(500)), Instant::now(), &mut actions);
        judge(&settings(false), "!r2:x", &mut r2, RoomAnswer::Failed(Failure::HttpStatus(500)), Instant::now(), &mut actions);
        judge(&settings(false), "!r1:x", &mut r1, RoomAnswer::Failed(Failure::HttpStatus(500)), Instant::now(), &mut actions);
        let outages: Vec<&str> =
            actions.iter().filter_map(|a| match a { Action::Outage { matrix_room, .. } => Some(matrix_room.as_str()), _ => None }).collect();
        assert_eq!(outages, vec!["!r1:x", "!r2:x"], "one warning per room's outage");
        let Action::Outage { text, .. } = &actions[1] else { panic!("{actions:?}") };
        assert_eq!(
            text,
            "Matrix room '!r1:x': the homeserver answered HTTP 500; Matrix membership is not re-checked until it answers (nobody is removed meanwhile)"
        );
    }

    #[test]
    fn judge_power_and_membership_by_session() {
        let levels = serde_json::json!({"type": "m.room.power_levels", "state_key": "", "sender": "@a:x",
                                        "content": {"users": {"@a:x": 100}}});
        let mut t = tracked(&[("a@h/1", "@a:x"), ("a@h/2", "@a:x"), ("b@h/1", "@b:x"), ("c@h/1", "@c:x")]);
        let mut actions = Vec::new();
        let answer = state_answer(vec![member("@a:x", "join"), member("@b:x", "join"), member("@c:x", "ban"), levels]);
        judge(&settings(true), "!r:x", &mut t, answer, Instant::now(), &mut actions);
        assert_eq!(
            summary(&actions),
            vec!["kick c@h/1 no longer in the Matrix room (ban)", "owner a@h/1 true", "owner a@h/2 true", "owner b@h/1 false"]
        );
    }

    #[test]
    fn texts_admins_and_users_see() {
        assert_eq!(REASON_ROOM_GONE, "the Matrix room no longer exists");
        assert_eq!(REJOIN_REFUSAL, "your Matrix room membership was revoked; log in again to rejoin");
    }

    #[test]
    fn later_never_panics() {
        let now = Instant::now();
        assert_eq!(later(now, Duration::MAX), now);
        assert_eq!(later(now, Duration::from_secs(1)), now + Duration::from_secs(1));
    }

    #[test]
    fn tick_every_is_a_quarter_interval_at_most_a_second() {
        let mut s = settings(false);
        assert_eq!(s.tick_every(), Duration::from_secs(1));
        s.interval = Duration::from_secs(2);
        assert_eq!(s.tick_every(), Duration::from_millis(500));
    }
}
