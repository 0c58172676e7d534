//! What Matrix checks remember, so that repeated work costs one request.
//!
//! - [`Broker`] (the login service, any backend): identical checks (same
//!   OpenID token, room and server) in flight share one request, and a
//!   verified answer is kept for the backend's verdict TTL (UVS:
//!   `matrix_cache_ttl`; the homeserver keeps its parts itself, below).
//! - [`Memory`] (direct mode, README "UVS or the homeserver"): the userinfo
//!   answer per OpenID token for `matrix_cache_ttl`; refusals of one OpenID
//!   token for [`REFUSAL_TTL`]; each Matrix room's [`RoomFacts`] for
//!   `matrix_state_ttl`, with one state read in flight per room shared by
//!   every login that arrives meanwhile. A user missing from kept state
//!   is read again at once, so a kept state never refuses anyone who
//!   joined before their login began.
//!
//! Pure: the caller passes the time; no I/O, no locks, bounded in size.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::state::RoomFacts;
use super::{Check, Verdict};

/// Most verified answers kept at once.
pub const MAX_ENTRIES: usize = 10_000;

/// What to do with a new check.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Answered from the cache.
    Cached(Verdict),
    /// An identical check is in flight; its answer will be shared.
    Joined,
    /// Send a request (then call [`Broker::finish`] with its answer).
    Send,
}

/// Cache plus in-flight table, keyed by the whole [`Check`].
pub struct Broker {
    ttl: Duration,
    cache: HashMap<Check, (Instant, Verdict)>,
    /// Request id -> (check, every waiter id, the requester's own first).
    inflight: HashMap<u64, (Check, Vec<u64>)>,
    /// Check -> request id of the identical check in flight.
    by_check: HashMap<Check, u64>,
}

impl Broker {
    /// `ttl` zero disables the cache (coalescing still applies).
    pub fn new(ttl: Duration) -> Self {
        Broker { ttl, cache: HashMap::new(), inflight: HashMap::new(), by_check: HashMap::new() }
    }

    /// Plan the check of waiter `id` (a fresh id per login).
    pub fn plan(&mut self, check: &Check, id: u64, now: Instant) -> Plan {
        if let Some((expires, verdict)) = self.cache.get(check) {
            if now < *expires {
                return Plan::Cached(verdict.clone());
            }
            self.cache.remove(check);
        }
        if let Some(request) = self.by_check.get(check) {
            if let Some((_, waiters)) = self.inflight.get_mut(request) {
                waiters.push(id);
                return Plan::Joined;
            }
        }
        self.by_check.insert(check.clone(), id);
        self.inflight.insert(id, (check.clone(), vec![id]));
        Plan::Send
    }

    /// The request `id` was not sent after all (the engine refused it):
    /// forget it, and return the waiters that joined it meanwhile (none,
    /// since planning and sending happen in one call on one thread).
    pub fn abandon(&mut self, id: u64) -> Vec<u64> {
        match self.inflight.remove(&id) {
            Some((check, waiters)) => {
                self.by_check.remove(&check);
                waiters
            }
            None => Vec::new(),
        }
    }

    /// Request `id` answered: every waiter that shares the answer (the
    /// requester first). A verified answer is cached.
    pub fn finish(&mut self, id: u64, verdict: &Verdict, now: Instant) -> Vec<u64> {
        let Some((check, waiters)) = self.inflight.remove(&id) else { return Vec::new() };
        self.by_check.remove(&check);
        if verdict.is_verified() && !self.ttl.is_zero() {
            if self.cache.len() >= MAX_ENTRIES {
                self.cache.retain(|_, (expires, _)| now < *expires);
            }
            if let (true, Some(until)) = (self.cache.len() < MAX_ENTRIES, now.checked_add(self.ttl)) {
                self.cache.insert(check, (until, verdict.clone()));
            }
        }
        waiters
    }

    /// Every waiter of every request in flight (for shutting down).
    pub fn take_all_waiters(&mut self) -> Vec<u64> {
        self.by_check.clear();
        self.inflight.drain().flat_map(|(_, (_, w))| w).collect()
    }

    pub fn cached_entries(&self) -> usize {
        self.cache.len()
    }
}

/// How long a refusal of one OpenID token (invalid token, not in the room)
/// is kept in direct mode: a flood of one bad login costs one request per
/// this many seconds, and a user who joins the Matrix room right after a
/// refused login gets in on a login this long after it (Element fetches a
/// fresh OpenID token when its widget opens anyway).
pub const REFUSAL_TTL: Duration = Duration::from_secs(5);
/// Most Matrix rooms whose state is kept at once.
pub const MAX_ROOMS: usize = 256;

/// The SHA-256 of an OpenID token: the memory never holds the token itself.
pub type TokenKey = [u8; 32];

/// What to do for a login's room state.
#[derive(Debug, PartialEq, Eq)]
pub enum RoomPlan<F> {
    /// Use these facts: the user is joined in a state read less than
    /// `matrix_state_ttl` ago, or the state was read after the login began.
    Use(Arc<RoomFacts>),
    /// A read is in flight: wait for `flight`, then [`Memory::settles`].
    Follow { started: Instant, flight: F },
    /// Read the room's state now, and say so with [`Memory::read_started`].
    Read,
}

struct Room<F> {
    /// Facts of the last read and when that read started.
    kept: Option<(Instant, Arc<RoomFacts>)>,
    /// The read in flight: its id, when it started, how to wait for it.
    reading: Option<(u64, Instant, F)>,
}

/// The direct mode's memory (see the module doc). `F` is how a login
/// waits for a read in flight (a channel receiver in the backend).
pub struct Memory<F> {
    state_ttl: Duration,
    user_ttl: Duration,
    users: HashMap<TokenKey, (Instant, String)>,
    /// (token, room) -> until, verdict; room `None`: every room.
    refusals: HashMap<(TokenKey, Option<String>), (Instant, Verdict)>,
    rooms: HashMap<String, Room<F>>,
    next_read: u64,
}

/// `t + d`, or `None` where that is past what an `Instant` can hold.
fn until(t: Instant, d: Duration) -> Option<Instant> {
    t.checked_add(d)
}

impl<F: Clone> Memory<F> {
    /// `user_ttl`: `matrix_cache_ttl`; `state_ttl`: `matrix_state_ttl`
    /// (zero: nothing kept, reads in flight are still shared).
    pub fn new(user_ttl: Duration, state_ttl: Duration) -> Self {
        Memory { state_ttl, user_ttl, users: HashMap::new(), refusals: HashMap::new(), rooms: HashMap::new(), next_read: 1 }
    }

    /// A refusal kept for this token (in any room, or in `room`).
    pub fn refused(&self, token: &TokenKey, room: &str, now: Instant) -> Option<Verdict> {
        [(*token, None), (*token, Some(room.to_string()))]
            .iter()
            .filter_map(|k| self.refusals.get(k))
            .find(|(until, _)| now < *until)
            .map(|(_, v)| v.clone())
    }

    /// Keep `verdict` (a refusal) for [`REFUSAL_TTL`]; `room` `None`: the
    /// token itself was refused, so in every room.
    pub fn refuse(&mut self, token: &TokenKey, room: Option<&str>, verdict: Verdict, now: Instant) {
        let Some(until) = until(now, REFUSAL_TTL) else { return };
        if self.refusals.len() >= MAX_ENTRIES {
            self.refusals.retain(|_, (u, _)| now < *u);
        }
        if self.refusals.len() < MAX_ENTRIES {
            self.refusals.insert((*token, room.map(str::to_string)), (until, verdict));
        }
    }

    /// The user id the homeserver gave for this token, when still kept.
    pub fn user(&self, token: &TokenKey, now: Instant) -> Option<String> {
        self.users.get(token).filter(|(until, _)| now < *until).map(|(_, u)| u.clone())
    }

    /// Keep the user id of a token for `matrix_cache_ttl`.
    pub fn keep_user(&mut self, token: &TokenKey, user_id: &str, now: Instant) {
        let Some(until) = until(now, self.user_ttl).filter(|_| !self.user_ttl.is_zero()) else { return };
        if self.users.len() >= MAX_ENTRIES {
            self.users.retain(|_, (u, _)| now < *u);
        }
        if self.users.len() < MAX_ENTRIES {
            self.users.insert(*token, (until, user_id.to_string()));
        }
    }

    /// What a login of `user` that began at `arrived` does for `room`.
    pub fn room_plan(&mut self, room: &str, user: &str, arrived: Instant, now: Instant) -> RoomPlan<F> {
        let Some(r) = self.rooms.get(room) else { return RoomPlan::Read };
        if let Some((started, facts)) = &r.kept {
            let fresh = until(*started, self.state_ttl).is_some_and(|u| now < u);
            if Self::settles(*started, arrived, facts, user) && (fresh || *started >= arrived) {
                return RoomPlan::Use(Arc::clone(facts));
            }
        }
        match &r.reading {
            Some((_, started, flight)) => RoomPlan::Follow { started: *started, flight: flight.clone() },
            None => RoomPlan::Read,
        }
    }

    /// Whether facts read from a read that started at `started` answer a
    /// login that began at `arrived`: yes when the user is joined in them,
    /// or when the read started after the login began (nothing newer
    /// can be known); no when they may predate the user's join.
    pub fn settles(started: Instant, arrived: Instant, facts: &RoomFacts, user: &str) -> bool {
        started >= arrived || facts.joined(user)
    }

    /// A read of `room` started at `started`; later logins follow `flight`.
    /// Returns the read's id for [`Memory::read_done`].
    pub fn read_started(&mut self, room: &str, started: Instant, flight: F) -> u64 {
        let id = self.next_read;
        self.next_read += 1;
        let r = self.rooms.entry(room.to_string()).or_insert(Room { kept: None, reading: None });
        r.reading = Some((id, started, flight));
        id
    }

    /// Read `id` of `room` ended: `facts` when it gave usable state (kept
    /// for `matrix_state_ttl` from `started`), `None` when it failed or
    /// was dropped (nothing kept; the next login reads again).
    pub fn read_done(&mut self, room: &str, id: u64, facts: Option<Arc<RoomFacts>>, started: Instant, now: Instant) {
        if let Some(facts) = facts.filter(|_| !self.state_ttl.is_zero()) {
            let new_room = self.rooms.get(room).is_none_or(|r| r.kept.is_none());
            if new_room && self.kept_rooms() >= MAX_ROOMS {
                self.forget_stale_rooms(now);
            }
            if !new_room || self.kept_rooms() < MAX_ROOMS {
                let r = self.rooms.entry(room.to_string()).or_insert(Room { kept: None, reading: None });
                if r.kept.as_ref().is_none_or(|(s, _)| *s <= started) {
                    r.kept = Some((started, facts));
                }
            }
        }
        let Some(r) = self.rooms.get_mut(room) else { return };
        if r.reading.as_ref().is_some_and(|(i, _, _)| *i == id) {
            r.reading = None;
        }
        if r.kept.is_none() && r.reading.is_none() {
            self.rooms.remove(room);
        }
    }

    fn kept_rooms(&self) -> usize {
        self.rooms.values().filter(|r| r.kept.is_some()).count()
    }

    fn forget_stale_rooms(&mut self, now: Instant) {
        let ttl = self.state_ttl;
        self.rooms.retain(|_, r| {
            if r.kept.as_ref().is_some_and(|(s, _)| until(*s, ttl).is_none_or(|u| now >= u)) {
                r.kept = None;
            }
            r.kept.is_some() || r.reading.is_some()
        });
    }

    /// Rooms with kept state or a read in flight.
    pub fn rooms(&self) -> usize {
        self.rooms.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::verify::Failure;

    fn check(token: &str) -> Check {
        Check { token: token.into(), room_id: "!r:x".into(), server_name: None }
    }

    fn ok() -> Verdict {
        Verdict::Verified { user_id: Some("@u:x".into()), power_level: Some(0), state_default: 50, creator: false, is_owner: false }
    }

    #[test]
    fn identical_checks_share_one_request_and_then_the_cache() {
        let t0 = Instant::now();
        let mut b = Broker::new(Duration::from_secs(60));
        assert_eq!(b.plan(&check("a"), 1, t0), Plan::Send);
        assert_eq!(b.plan(&check("a"), 2, t0), Plan::Joined);
        assert_eq!(b.plan(&check("b"), 3, t0), Plan::Send, "another token is another check");
        assert_eq!(b.finish(1, &ok(), t0), vec![1, 2]);
        assert_eq!(b.plan(&check("a"), 4, t0 + Duration::from_secs(59)), Plan::Cached(ok()));
        assert_eq!(b.plan(&check("a"), 5, t0 + Duration::from_secs(60)), Plan::Send, "expired");
    }

    #[test]
    fn refusals_and_failures_are_never_cached() {
        let t0 = Instant::now();
        for verdict in [Verdict::NotInRoom, Verdict::InvalidToken, Failure::HttpStatus(500).into()] {
            let mut b = Broker::new(Duration::from_secs(60));
            assert_eq!(b.plan(&check("a"), 1, t0), Plan::Send);
            assert_eq!(b.finish(1, &verdict, t0), vec![1]);
            assert_eq!(b.plan(&check("a"), 2, t0), Plan::Send, "{verdict:?}");
        }
    }

    #[test]
    fn zero_ttl_disables_the_cache_but_not_coalescing() {
        let t0 = Instant::now();
        let mut b = Broker::new(Duration::ZERO);
        assert_eq!(b.plan(&check("a"), 1, t0), Plan::Send);
        assert_eq!(b.plan(&check("a"), 2, t0), Plan::Joined);
        assert_eq!(b.finish(1, &ok(), t0), vec![1, 2]);
        assert_eq!(b.plan(&check("a"), 3, t0), Plan::Send);
        assert_eq!(b.cached_entries(), 0);
    }

    #[test]
    fn abandon_and_shutdown_release_waiters() {
        let t0 = Instant::now();
        let mut b = Broker::new(Duration::from_secs(60));
        assert_eq!(b.plan(&check("a"), 1, t0), Plan::Send);
        assert_eq!(b.abandon(1), vec![1]);
        assert_eq!(b.plan(&check("a"), 2, t0), Plan::Send, "abandoned request is forgotten");
        assert_eq!(b.plan(&check("a"), 3, t0), Plan::Joined);
        let mut all = b.take_all_waiters();
        all.sort();
        assert_eq!(all, vec![2, 3]);
        assert!(b.finish(2, &ok(), t0).is_empty());
    }

    #[test]
    fn the_cache_is_bounded() {
        let t0 = Instant::now();
        let mut b = Broker::new(Duration::from_secs(60));
        for i in 0..(MAX_ENTRIES as u64 + 10) {
            let c = check(&format!("t{i}"));
            assert_eq!(b.plan(&c, i, t0), Plan::Send);
            b.finish(i, &ok(), t0);
        }
        assert_eq!(b.cached_entries(), MAX_ENTRIES);
    }

    // --- Memory (direct mode) -------------------------------------------

    fn facts(joined: &[&str]) -> Arc<RoomFacts> {
        let events: Vec<serde_json::Value> = joined
            .iter()
            .map(|u| serde_json::json!({"type": "m.room.member", "state_key": u, "content": {"membership": "join"}}))
            .collect();
        Arc::new(RoomFacts::new(&events))
    }

    const SECS: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// What a login does, in short.
    #[derive(Debug, PartialEq, Eq)]
    enum Did {
        Use,
        Follow(&'static str),
        Read,
    }

    fn did(p: RoomPlan<&'static str>) -> Did {
        match p {
            RoomPlan::Use(_) => Did::Use,
            RoomPlan::Follow { flight, .. } => Did::Follow(flight),
            RoomPlan::Read => Did::Read,
        }
    }

    #[test]
    fn room_plans_share_reads_keep_state_briefly_and_reread_for_missing_users() {
        let t0 = Instant::now();
        // State read at t0 (in flight until 1 s), kept for 5 s, holding @a and @b.
        // (login user, login began at, planned at, expected plan)
        let cases: Vec<(&str, &str, Duration, Duration, Did)> = vec![
            ("in flight: a member follows", "@a:x", MS(0), MS(500), Did::Follow("read1")),
            ("in flight: anyone follows", "@z:x", MS(200), MS(500), Did::Follow("read1")),
            ("kept: a member uses it", "@a:x", SECS(2), SECS(2), Did::Use),
            ("kept: another member uses it", "@b:x", SECS(4), MS(4999), Did::Use),
            ("kept, missing user: read again", "@z:x", SECS(2), SECS(2), Did::Read),
            ("kept but expired (5 s): read again", "@a:x", SECS(5), SECS(5), Did::Read),
            ("expired but read after the login began: final", "@z:x", MS(0), SECS(6), Did::Use),
        ];
        for (what, user, began, at, want) in cases {
            let mut m: Memory<&'static str> = Memory::new(SECS(60), SECS(5));
            assert_eq!(did(m.room_plan("!r:x", "@a:x", t0, t0)), Did::Read, "{what}: first login reads");
            let id = m.read_started("!r:x", t0, "read1");
            if at >= SECS(1) {
                m.read_done("!r:x", id, Some(facts(&["@a:x", "@b:x"])), t0, t0 + SECS(1));
            }
            assert_eq!(did(m.room_plan("!r:x", user, t0 + began, t0 + at)), want, "{what}");
        }
    }

    #[test]
    fn followers_settle_only_on_state_read_after_they_began_or_holding_them() {
        let t0 = Instant::now();
        let f = facts(&["@a:x"]);
        // (read started at, login began at, user, settles)
        let cases = [
            (MS(100), MS(0), "@z:x", true),  // read after the login began: final
            (MS(0), MS(0), "@z:x", true),    // same instant counts as after
            (MS(0), MS(100), "@a:x", true),  // older read, but holds the user
            (MS(0), MS(100), "@z:x", false), // older read without the user: read again
        ];
        for (started, began, user, want) in cases {
            assert_eq!(Memory::<()>::settles(t0 + started, t0 + began, &f, user), want, "{started:?} {began:?} {user}");
        }
    }

    #[test]
    fn zero_state_ttl_keeps_nothing_but_shares_reads_in_flight() {
        let t0 = Instant::now();
        let mut m: Memory<&'static str> = Memory::new(SECS(60), Duration::ZERO);
        assert_eq!(did(m.room_plan("!r:x", "@a:x", t0, t0)), Did::Read);
        let id = m.read_started("!r:x", t0, "read1");
        assert_eq!(did(m.room_plan("!r:x", "@b:x", t0, t0)), Did::Follow("read1"));
        m.read_done("!r:x", id, Some(facts(&["@a:x", "@b:x"])), t0, t0 + MS(10));
        assert_eq!(did(m.room_plan("!r:x", "@a:x", t0 + MS(20), t0 + MS(20))), Did::Read, "nothing kept");
        assert_eq!(m.rooms(), 0);
    }

    #[test]
    fn failed_or_dropped_reads_keep_nothing_and_the_next_login_reads() {
        let t0 = Instant::now();
        let mut m: Memory<&'static str> = Memory::new(SECS(60), SECS(5));
        let id = m.read_started("!r:x", t0, "read1");
        m.read_done("!r:x", id, None, t0, t0 + MS(10));
        assert_eq!(did(m.room_plan("!r:x", "@a:x", t0, t0 + MS(20))), Did::Read);
        assert_eq!(m.rooms(), 0);
        // A newer read's answer is not replaced by an older one's.
        let old = m.read_started("!r:x", t0, "old");
        let new = m.read_started("!r:x", t0 + MS(50), "new");
        m.read_done("!r:x", new, Some(facts(&["@a:x"])), t0 + MS(50), t0 + MS(60));
        m.read_done("!r:x", old, Some(facts(&[])), t0, t0 + MS(70));
        assert_eq!(did(m.room_plan("!r:x", "@a:x", t0 + MS(80), t0 + MS(80))), Did::Use);
    }

    #[test]
    fn kept_rooms_are_bounded_and_stale_ones_make_room() {
        let t0 = Instant::now();
        let mut m: Memory<()> = Memory::new(SECS(60), SECS(5));
        for i in 0..MAX_ROOMS + 10 {
            let room = format!("!r{i}:x");
            let id = m.read_started(&room, t0, ());
            m.read_done(&room, id, Some(facts(&["@a:x"])), t0, t0);
        }
        assert_eq!(m.rooms(), MAX_ROOMS);
        let later = t0 + SECS(6);
        let id = m.read_started("!new:x", later, ());
        m.read_done("!new:x", id, Some(facts(&["@a:x"])), later, later);
        assert_eq!(m.rooms(), 1, "expired rooms made way");
        assert!(matches!(m.room_plan("!new:x", "@a:x", later, later), RoomPlan::Use(_)));
    }

    #[test]
    fn refusals_are_kept_per_token_briefly() {
        let t0 = Instant::now();
        let (bad, shy, other) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        let mut m: Memory<()> = Memory::new(SECS(60), SECS(5));
        m.refuse(&bad, None, Verdict::InvalidToken, t0);
        m.refuse(&shy, Some("!r:x"), Verdict::NotInRoom, t0);
        // (token, room, at, kept refusal)
        let cases = [
            (bad, "!r:x", MS(0), Some(Verdict::InvalidToken)),
            (bad, "!other:x", MS(4999), Some(Verdict::InvalidToken)),
            (bad, "!r:x", REFUSAL_TTL, None),
            (shy, "!r:x", MS(100), Some(Verdict::NotInRoom)),
            (shy, "!other:x", MS(100), None),
            (shy, "!r:x", REFUSAL_TTL, None),
            (other, "!r:x", MS(0), None),
        ];
        for (token, room, at, want) in cases {
            assert_eq!(m.refused(&token, room, t0 + at), want, "{token:?} {room} {at:?}");
        }
    }

    #[test]
    fn user_ids_are_kept_for_the_cache_ttl_only() {
        let t0 = Instant::now();
        let tok = [7u8; 32];
        let mut m: Memory<()> = Memory::new(SECS(60), SECS(5));
        m.keep_user(&tok, "@u:x", t0);
        assert_eq!(m.user(&tok, t0 + SECS(59)).as_deref(), Some("@u:x"));
        assert_eq!(m.user(&tok, t0 + SECS(60)), None);
        let mut off: Memory<()> = Memory::new(Duration::ZERO, SECS(5));
        off.keep_user(&tok, "@u:x", t0);
        assert_eq!(off.user(&tok, t0), None, "matrix_cache_ttl 0 keeps nothing");
    }

    #[test]
    fn huge_ttls_never_overflow() {
        let t0 = Instant::now();
        let mut m: Memory<()> = Memory::new(Duration::MAX, Duration::MAX);
        m.keep_user(&[1; 32], "@u:x", t0);
        let id = m.read_started("!r:x", t0, ());
        m.read_done("!r:x", id, Some(facts(&["@a:x"])), t0, t0);
        assert!(matches!(m.room_plan("!r:x", "@z:x", t0 + MS(1), t0 + MS(1)), RoomPlan::Read));
        let mut b = Broker::new(Duration::MAX);
        assert_eq!(b.plan(&check("a"), 1, t0), Plan::Send);
        assert_eq!(b.finish(1, &ok(), t0), vec![1]);
    }
}
