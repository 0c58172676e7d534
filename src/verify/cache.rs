//! Identical checks (same OpenID token, room and server) cost one request:
//! a verified answer is kept for `matrix_cache_ttl` seconds, and checks
//! that arrive while an identical one is in flight wait for its answer.
//! Refusals and failures are never kept. Used from Prosody's thread only
//! (no locks); bounded in size.

use std::collections::HashMap;
use std::time::{Duration, Instant};

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
            if self.cache.len() < MAX_ENTRIES {
                self.cache.insert(check, (crate::engine::later(now, self.ttl), verdict.clone()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Failure;

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
}
