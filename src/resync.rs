//! Live Matrix membership (direct homeserver mode): while a Jitsi room has
//! occupants verified for Matrix room R, R's state is re-read every
//! `matrix_resync_interval` seconds (jittered), one request per Matrix room
//! however many occupants, on the [`Engine`]'s thread. Occupants no longer
//! joined are kicked; with power sync, owners follow power levels.
//!
//! A homeserver error, timeout or unusable answer changes nothing (no mass
//! kick during an outage); it is reported once per outage. Pure of Lua.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::auth::{AuthOptions, BackendConfig};
use crate::engine::{Engine, Outcome};
use crate::error::Error;
use crate::verify::homeserver::{Homeserver, HomeserverConfig};
use crate::verify::state::RoomView;
use crate::verify::Failure;

/// What one re-read of a room gave.
#[derive(Debug)]
pub enum RoomAnswer {
    /// The room's state events.
    State(Vec<Value>),
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

/// What the shim should do after a resync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Kick this occupant from this room (every session of it).
    Kick { room: String, occupant: String, user_id: String, reason: String },
    /// Make this occupant's user owner (`true`) or member (`false`); the
    /// shim applies it only when the affiliation differs.
    Owner { room: String, occupant: String, bare_jid: String, matrix_room: String, owner: bool },
    /// The homeserver stopped answering usefully (once per outage).
    Outage { text: String },
    /// It answers again.
    Recovered { text: String },
    /// One failed resync of one room (for a metric; no log line).
    Failed { matrix_room: String },
}

#[derive(Debug, Clone)]
struct Occupant {
    bare_jid: String,
    user_id: String,
}

struct Tracked {
    /// Jitsi room jid -> occupant jid -> who.
    rooms: HashMap<String, HashMap<String, Occupant>>,
    next_due: Instant,
    /// The request id in flight, if any.
    in_flight: Option<u64>,
}

/// Resync settings.
#[derive(Debug, Clone)]
pub struct ResyncSettings {
    pub interval: Duration,
    pub timeout: Duration,
    pub sync_power_levels: bool,
    pub max_in_flight: usize,
}

/// Default `matrix_resync_interval`, seconds.
pub const DEFAULT_INTERVAL_SECS: f64 = 30.0;

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
}

pub struct Resync {
    engine: Engine<RoomAnswer>,
    homeserver: Arc<Homeserver>,
    settings: ResyncSettings,
    /// Matrix room id -> what is tracked for it.
    tracked: HashMap<String, Tracked>,
    /// Request id -> Matrix room id.
    requests: HashMap<u64, String>,
    outage: bool,
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
        Ok(Resync {
            engine,
            homeserver: Arc::new(homeserver),
            settings,
            tracked: HashMap::new(),
            requests: HashMap::new(),
            outage: false,
            seed,
            sent: 0,
        })
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

    /// An occupant verified for `matrix_room` as `user_id` joined `room`
    /// (whose node is `room_node`). Only the Jitsi room that stands for
    /// that Matrix room is watched: false (and nothing tracked) otherwise.
    #[allow(clippy::too_many_arguments)]
    pub fn track(&mut self, room: &str, room_node: &str, occupant: &str, bare_jid: &str, matrix_room: &str, user_id: &str, now: Instant) -> bool {
        if crate::room::name_for_room_id(matrix_room) != room_node.to_ascii_lowercase() {
            return false;
        }
        if !self.tracked.contains_key(matrix_room) {
            let next_due = crate::engine::later(now, self.jittered());
            self.tracked.insert(matrix_room.to_string(), Tracked { rooms: HashMap::new(), next_due, in_flight: None });
        }
        let t = self.tracked.get_mut(matrix_room).expect("inserted above");
        t.rooms
            .entry(room.to_string())
            .or_default()
            .insert(occupant.to_string(), Occupant { bare_jid: bare_jid.to_string(), user_id: user_id.to_string() });
        true
    }

    /// An occupant left `room` (or was kicked); rooms with nobody left to
    /// watch stop being re-read.
    pub fn untrack(&mut self, room: &str, occupant: &str) {
        self.tracked.retain(|_, t| {
            if let Some(occupants) = t.rooms.get_mut(room) {
                occupants.remove(occupant);
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
            let job = Box::pin(async move {
                match hs.room_state(&room_id).await {
                    Ok(a) if a.status == 200 => match serde_json::from_slice::<Value>(&a.body) {
                        Ok(Value::Object(mut o)) => match o.remove("state") {
                            Some(Value::Array(events)) => RoomAnswer::State(events),
                            _ => RoomAnswer::Failed(Failure::BadBody("of room state has no state list".into())),
                        },
                        _ => RoomAnswer::Failed(Failure::BadBody("of room state is not a JSON object".into())),
                    },
                    Ok(a) => RoomAnswer::Failed(Failure::HttpStatus(a.status)),
                    Err(f) => RoomAnswer::Failed(f),
                }
            });
            let next_due = crate::engine::later(now, self.jittered());
            let t = self.tracked.get_mut(&matrix_room).expect("listed above");
            t.next_due = next_due;
            if self.engine.submit(id, crate::engine::later(now, self.settings.timeout), job).is_ok() {
                t.in_flight = Some(id);
                self.requests.insert(id, matrix_room);
                self.sent += 1;
                sent += 1;
            }
        }
        sent
    }

    /// Actions from every answer that arrived (never blocks).
    pub fn drain(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        for (id, answer) in self.engine.drain() {
            let Some(matrix_room) = self.requests.remove(&id) else { continue };
            let Some(t) = self.tracked.get_mut(&matrix_room) else { continue };
            if t.in_flight == Some(id) {
                t.in_flight = None;
            }
            let events = match answer {
                RoomAnswer::State(events) => events,
                RoomAnswer::Failed(f) => {
                    actions.push(Action::Failed { matrix_room: matrix_room.clone() });
                    if !self.outage {
                        self.outage = true;
                        actions.push(Action::Outage {
                            text: format!("the homeserver {f}; Matrix membership is not re-checked until it answers (nobody is removed meanwhile)"),
                        });
                    }
                    continue;
                }
            };
            if self.outage {
                self.outage = false;
                actions.push(Action::Recovered { text: "the homeserver answers again; Matrix membership re-checks resume".into() });
            }
            let view = RoomView::new(&events);
            for (room, occupants) in &t.rooms {
                for (occupant, who) in occupants {
                    let s = view.standing(&who.user_id);
                    if !s.joined() {
                        let state = s.membership.as_deref().unwrap_or("not a member");
                        actions.push(Action::Kick {
                            room: room.clone(),
                            occupant: occupant.clone(),
                            user_id: who.user_id.clone(),
                            reason: format!("no longer in the Matrix room ({})", crate::text::escape_line(state)),
                        });
                    } else if self.settings.sync_power_levels {
                        actions.push(Action::Owner {
                            room: room.clone(),
                            occupant: occupant.clone(),
                            bare_jid: who.bare_jid.clone(),
                            matrix_room: matrix_room.clone(),
                            owner: s.is_owner(),
                        });
                    }
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::http::Http;
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
        crate::room::name_for_room_id("!r:x")
    }

    #[test]
    fn resync_watches_only_the_room_that_stands_for_the_matrix_room() {
        let (url, _) = serve(200, state(vec![]));
        let mut r = resync(&url, true);
        assert!(!r.track("other@muc", "other", "other@muc/a", "a@h", "!r:x", "@a:x", Instant::now()));
        assert_eq!(r.watched(), 0);
        assert!(r.track("j@muc", &node().to_uppercase(), "j@muc/a", "a@h", "!r:x", "@a:x", Instant::now()));
        assert_eq!(r.watched(), 1);
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
            let a = r.drain();
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
        r.track("j@muc", &node(), "j@muc/a", "a@h", "!r:x", "@a:x", now);
        r.track("j@muc", &node(), "j@muc/b", "b@h", "!r:x", "@b:x", now);
        r.track("j@muc", &node(), "j@muc/b2", "b@h", "!r:x", "@b:x", now);
        r.track("j@muc", &node(), "j@muc/c", "c@h", "!r:x", "@c:x", now);
        let mut actions = run(&mut r);
        actions.sort_by_key(|a| format!("{a:?}"));
        assert_eq!(count.load(Ordering::SeqCst), 1, "one request for four occupants");
        let kicked: Vec<&str> = actions
            .iter()
            .filter_map(|a| match a { Action::Kick { occupant, .. } => Some(occupant.as_str()), _ => None })
            .collect();
        assert_eq!(kicked, vec!["j@muc/b", "j@muc/b2", "j@muc/c"], "every session of a gone user");
        assert!(actions.contains(&Action::Owner {
            room: "j@muc".into(), occupant: "j@muc/a".into(), bare_jid: "a@h".into(), matrix_room: "!r:x".into(), owner: true
        }));
    }

    #[test]
    fn resync_failures_change_nothing_and_warn_once() {
        let (url, _) = serve(500, "{}".into());
        let mut r = resync(&url, true);
        r.track("j@muc", &node(), "j@muc/a", "a@h", "!r:x", "@a:x", Instant::now());
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
        r.track("j@muc", &node(), "j@muc/a", "a@h", "!r:x", "@a:x", now);
        r.untrack("j@muc", "j@muc/a");
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
}
