//! Public keys chosen by a token's `kid` (README "Standard Jitsi tokens":
//! `asap_key_server`, `cache_keys_url`), as jitsi's
//! token auth finds them, with the bounds jitsi's lacks:
//!
//! - `asap_key_server`: the key of `kid` is `GET <server>/<hex(sha256(kid))>.pem`,
//!   fetched on demand, kept in an LRU of `jwt_pubkey_cache_size` (128)
//!   for the answer's `Cache-Control: max-age` (else [`ASAP_DEFAULT_AGE`]),
//!   never longer than [`MAX_KEY_AGE`]; an expired key is fetched again
//!   (a known kid: not counted by the rate limit below).
//! - Only a definite answer is remembered as a failure, for
//!   [`NEGATIVE_TTL`], in an LRU of [`FAILED_KIDS`]: the key server's 404
//!   or a body that is not a usable key. A timeout, a connection error,
//!   another status or a full queue is not (a flood of forged kids must
//!   not lock the users of a real key out).
//! - Fetches of kids never seen are limited to [`KID_FETCHES_PER_SECOND`]
//!   (a token bucket of [`KID_FETCH_BURST`]); a kid longer than
//!   [`MAX_KID_LEN`] bytes is refused before any fetch.
//! - `cache_keys_url`: a JWKS (`{"keys": [...]}`, RSA and P-256 keys) or a
//!   map from kid to PEM, fetched with the first login or tick, refreshed
//!   after the answer's `max-age` (else every 6 h, never later than
//!   [`MAX_KEY_AGE`]), retried after 30 s on failure; a key dropped from
//!   the set is still accepted for [`SET_GRACE`] after the first refresh
//!   that no longer lists it. JWKS keys whose `use` is not `sig` or whose
//!   `alg` is not the one the key verifies are skipped.
//! - RSA keys under [`MIN_RSA_BITS`] are refused, from either source.
//!
//! This is the state kept on Prosody's thread; the fetches run on the
//! engine. Pure of Lua.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::runtime::engine::later;
use crate::standard::jws::SigKey;
use crate::standard::token::{Verifier, VerifierOptions};

/// A kid whose key server answered 404 (or an unusable key) is refused
/// this long without asking again.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(30);
/// Most kids remembered as failed (least recently used forgotten first).
pub const FAILED_KIDS: usize = 1024;
/// Longest `kid` asked for, in bytes.
pub const MAX_KID_LEN: usize = 256;
/// Fetches of kids never seen, per second (token bucket rate)...
pub const KID_FETCHES_PER_SECOND: f64 = 10.0;
/// ...and burst.
pub const KID_FETCH_BURST: f64 = 20.0;
/// Lifetime of an asap key whose answer has no `max-age`.
pub const ASAP_DEFAULT_AGE: Duration = Duration::from_secs(3600);
/// No key (or key set) is kept longer than this without asking again,
/// whatever `max-age` says.
pub const MAX_KEY_AGE: Duration = Duration::from_secs(24 * 3600);
/// Shortest lifetime, whatever `max-age` says (no tight refetch loop).
pub const MIN_KEY_AGE: Duration = Duration::from_secs(1);
/// Refresh of `cache_keys_url` without a `max-age`.
pub const SET_REFRESH: Duration = Duration::from_secs(6 * 3600);
/// Retry of a failed `cache_keys_url` fetch.
pub const SET_RETRY: Duration = Duration::from_secs(30);
/// A key dropped from the set is still accepted this long.
pub const SET_GRACE: Duration = Duration::from_secs(90 * 60);
/// Smallest RSA modulus accepted.
pub const MIN_RSA_BITS: usize = 2048;

/// The URL of `kid`'s PEM on an ASAP key server.
pub fn asap_url(base: &str, kid: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, kid.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{}/{hex}.pem", crate::matrix::verify::normalize_base_url(base))
}

/// `max-age` of a `Cache-Control` header, capped at [`MAX_KEY_AGE`] (any
/// number of digits, however large, is a valid and capped age).
pub fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("max-age") {
            return None;
        }
        let v = v.trim().trim_matches('"');
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let cap = MAX_KEY_AGE.as_secs();
        let secs = v.bytes().try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0'))).map_or(cap, |n| n.min(cap));
        Some(Duration::from_secs(secs))
    })
}

/// How long a key (or set) answered with `age` is kept.
pub fn lifetime(age: Option<Duration>, default: Duration) -> Duration {
    age.unwrap_or(default).clamp(MIN_KEY_AGE, MAX_KEY_AGE)
}

/// Refuse RSA keys under [`MIN_RSA_BITS`].
fn strong_enough(key: &SigKey) -> Result<(), String> {
    match key.rsa_bits() {
        Some(bits) if bits < MIN_RSA_BITS => Err(format!("an RSA key of {bits} bits (at least {MIN_RSA_BITS} needed)")),
        _ => Ok(()),
    }
}

/// A JWK fit for verifying tokens: `use` (if any) is `sig`, `alg` (if any)
/// is the algorithm the key verifies, RSA keys are strong enough.
fn jwk_key(jwk: &Value) -> Result<(SigKey, &'static str), String> {
    if jwk.get("use").is_some_and(|u| u.as_str() != Some("sig")) {
        return Err("a JWK whose use is not sig".into());
    }
    let (key, alg) = SigKey::from_jwk(jwk).map_err(str::to_string)?;
    if jwk.get("alg").is_some_and(|a| a.as_str() != Some(alg)) {
        return Err(format!("a JWK whose alg is not {alg}"));
    }
    strong_enough(&key)?;
    Ok((key, alg))
}

/// A PEM public key fit for verifying tokens.
fn pem_key(pem: &[u8]) -> Result<(SigKey, &'static str), String> {
    let (key, alg) = SigKey::public_pem(pem).map_err(str::to_string)?;
    strong_enough(&key)?;
    Ok((key, alg))
}

/// The keys of a `cache_keys_url` answer: kid -> key and its algorithm.
/// Keys that cannot be used are skipped (and counted in the error text
/// only when none is left); so are kids longer than [`MAX_KID_LEN`].
pub fn parse_key_set(body: &[u8]) -> Result<Vec<(String, SigKey, &'static str)>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|_| "the key set is not JSON".to_string())?;
    let Value::Object(obj) = value else { return Err("the key set is not a JSON object".into()) };
    let mut out = Vec::new();
    let mut skipped = 0;
    let kid_ok = |kid: &str| kid.len() <= MAX_KID_LEN;
    match obj.get("keys") {
        Some(Value::Array(jwks)) => {
            for jwk in jwks {
                let kid = jwk.get("kid").and_then(Value::as_str).filter(|k| kid_ok(k));
                match (kid, jwk_key(jwk)) {
                    (Some(kid), Ok((key, alg))) => out.push((kid.to_string(), key, alg)),
                    _ => skipped += 1,
                }
            }
        }
        Some(_) => return Err("the key set's keys is not a list".into()),
        None => {
            for (kid, pem) in &obj {
                match pem.as_str().filter(|_| kid_ok(kid)).map(|p| pem_key(p.as_bytes())) {
                    Some(Ok((key, alg))) => out.push((kid.clone(), key, alg)),
                    _ => skipped += 1,
                }
            }
        }
    }
    if out.is_empty() {
        return Err(format!("the key set has no usable key ({skipped} skipped)"));
    }
    Ok(out)
}

/// A least-recently-used map of at most `cap` entries; every operation
/// costs O(log n), eviction included.
pub struct Lru<V> {
    cap: usize,
    clock: u64,
    map: HashMap<String, (V, u64)>,
    /// use tick -> key, oldest first.
    order: BTreeMap<u64, String>,
}

impl<V: Clone> Lru<V> {
    pub fn new(cap: usize) -> Self {
        Lru { cap: cap.max(1), clock: 0, map: HashMap::new(), order: BTreeMap::new() }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The value of `k`, now the most recently used.
    pub fn get(&mut self, k: &str) -> Option<V> {
        let clock = self.tick();
        let (v, used) = self.map.get_mut(k)?;
        self.order.remove(used);
        *used = clock;
        self.order.insert(clock, k.to_string());
        Some(v.clone())
    }

    pub fn insert(&mut self, k: String, v: V) {
        let clock = self.tick();
        if let Some((_, used)) = self.map.get(&k) {
            self.order.remove(used);
        } else if self.map.len() >= self.cap {
            if let Some((_, oldest)) = self.order.pop_first() {
                self.map.remove(&oldest);
            }
        }
        self.order.insert(clock, k.clone());
        self.map.insert(k, (v, clock));
    }

    pub fn remove(&mut self, k: &str) {
        if let Some((_, used)) = self.map.remove(k) {
            self.order.remove(&used);
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// A token bucket: `rate` per second, at most `burst` at once.
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Bucket { rate, burst, tokens: burst, last: now }
    }

    /// Take one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the store knows about a kid.
pub enum Lookup {
    Found(Rc<Verifier>),
    /// Not known yet, or expired: fetch it (asap) or wait for the first
    /// key set. `known`: a key of this kid was fetched before (its fetch
    /// is not rate-limited).
    Fetch { known: bool },
    /// Known bad (a recent definite failure, or not in a loaded key set).
    Refused(String),
}

/// Why an asap fetch gave no key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFailure {
    pub text: String,
    /// The key server's own answer (404, or not a usable key): remembered.
    pub definite: bool,
}

/// What an asap fetch got.
pub enum Fetched<'a> {
    /// 200: the body and its `max-age`.
    Body(&'a [u8], Option<Duration>),
    /// 404: the key server has no key for this kid.
    NotFound,
    /// No definite answer (timeout, connection, another status...).
    Failed(String),
}

/// One key of the set.
struct SetKey {
    verifier: Rc<Verifier>,
    /// When the first refresh that no longer listed it arrived.
    dropped: Option<Instant>,
}

/// The kid-chosen keys of one VirtualHost.
pub struct KeyStore {
    options: VerifierOptions,
    asap: Option<String>,
    /// kid -> (verifier, expiry).
    by_kid: Lru<(Rc<Verifier>, Instant)>,
    /// kid -> when its definite failure arrived.
    failed: Lru<Instant>,
    rate: Bucket,
    set_url: Option<String>,
    set: HashMap<String, SetKey>,
    set_loaded: bool,
    next_refresh: Instant,
}

impl KeyStore {
    pub fn new(options: &VerifierOptions, now: Instant) -> Self {
        let cap = options.jwt_pubkey_cache_size.map_or(128, |n| n.clamp(1.0, 100_000.0) as usize);
        KeyStore {
            options: options.clone(),
            asap: options.asap_key_server.clone().filter(|s| !s.trim().is_empty()),
            by_kid: Lru::new(cap),
            failed: Lru::new(FAILED_KIDS),
            rate: Bucket::new(KID_FETCHES_PER_SECOND, KID_FETCH_BURST, now),
            set_url: options.cache_keys_url.clone().filter(|s| !s.trim().is_empty()),
            set: HashMap::new(),
            set_loaded: false,
            next_refresh: now,
        }
    }

    /// Whether keys are chosen by kid at all.
    pub fn enabled(&self) -> bool {
        self.asap.is_some() || self.set_url.is_some()
    }

    pub fn lookup(&mut self, kid: &str, now: Instant) -> Lookup {
        if self.set_url.is_some() {
            match self.set.get(kid) {
                Some(SetKey { verifier, dropped: None }) => return Lookup::Found(Rc::clone(verifier)),
                Some(SetKey { verifier, dropped: Some(at) }) if now < later(*at, SET_GRACE) => {
                    return Lookup::Found(Rc::clone(verifier))
                }
                _ => {}
            }
            if !self.set_loaded {
                return Lookup::Fetch { known: false };
            }
            if self.asap.is_none() {
                return Lookup::Refused(format!("no key for kid {} in cache_keys_url", crate::text::Untrusted::new(kid)));
            }
        }
        if let Some((v, expires)) = self.by_kid.get(kid) {
            if now < expires {
                return Lookup::Found(v);
            }
            return Lookup::Fetch { known: true };
        }
        match self.failed.get(kid) {
            Some(at) if now < later(at, NEGATIVE_TTL) => {
                Lookup::Refused(format!("the key of kid {} could not be fetched recently", crate::text::Untrusted::new(kid)))
            }
            Some(_) => {
                self.failed.remove(kid);
                Lookup::Fetch { known: false }
            }
            None => Lookup::Fetch { known: false },
        }
    }

    /// May a kid never seen be fetched now? (Takes from the rate limit.)
    pub fn may_fetch_unknown(&mut self, now: Instant) -> bool {
        self.rate.take(now)
    }

    /// Whether logins must wait for the first key set.
    pub fn set_waiting(&self) -> bool {
        self.set_url.is_some() && !self.set_loaded
    }

    /// The URL to fetch `kid`'s key from (asap), if any.
    pub fn asap_url(&self, kid: &str) -> Option<String> {
        self.asap.as_deref().map(|base| asap_url(base, kid))
    }

    /// An asap fetch answered. A definite failure is remembered for
    /// [`NEGATIVE_TTL`]; any other is not.
    pub fn asap_answer(&mut self, kid: &str, answer: Fetched<'_>, now: Instant) -> Result<Rc<Verifier>, KeyFailure> {
        let made = match answer {
            Fetched::Body(pem, age) => pem_key(pem)
                .and_then(|(key, alg)| Verifier::for_key(&self.options, key, alg).map_err(|e| e.to_string()))
                .map(|v| (v, age))
                .map_err(|text| KeyFailure { text, definite: true }),
            Fetched::NotFound => Err(KeyFailure { text: "HTTP 404".into(), definite: true }),
            Fetched::Failed(text) => Err(KeyFailure { text, definite: false }),
        };
        match made {
            Ok((v, age)) => {
                let v = Rc::new(v);
                self.failed.remove(kid);
                self.by_kid.insert(kid.to_string(), (Rc::clone(&v), later(now, lifetime(age, ASAP_DEFAULT_AGE))));
                Ok(v)
            }
            Err(failure) => {
                if failure.definite {
                    self.by_kid.remove(kid);
                    self.failed.insert(kid.to_string(), now);
                }
                Err(failure)
            }
        }
    }

    /// The key set's URL, when a refresh is due.
    pub fn due_refresh(&self, now: Instant) -> Option<String> {
        self.set_url.clone().filter(|_| now >= self.next_refresh)
    }

    /// Mark a refresh as started (so one is not sent twice).
    pub fn refresh_started(&mut self, now: Instant) {
        self.next_refresh = later(now, SET_RETRY);
    }

    /// The key set answered: its body and `max-age`, or why not. Returns
    /// the error text of a failure (for one log line).
    pub fn set_answer(&mut self, answer: Result<(&[u8], Option<Duration>), String>, now: Instant) -> Result<usize, String> {
        let parsed = answer.and_then(|(body, age)| parse_key_set(body).map(|keys| (keys, age)));
        match parsed {
            Ok((keys, age)) => {
                let mut listed = std::collections::HashSet::new();
                for (kid, key, alg) in keys {
                    if let Ok(v) = Verifier::for_key(&self.options, key, alg) {
                        listed.insert(kid.clone());
                        self.set.insert(kid, SetKey { verifier: Rc::new(v), dropped: None });
                    }
                }
                for (kid, k) in self.set.iter_mut() {
                    if !listed.contains(kid) && k.dropped.is_none() {
                        k.dropped = Some(now);
                    }
                }
                self.set.retain(|_, k| k.dropped.is_none_or(|at| now < later(at, SET_GRACE)));
                self.set_loaded = true;
                self.next_refresh = later(now, lifetime(age, SET_REFRESH));
                Ok(self.set.len())
            }
            Err(e) => {
                self.next_refresh = later(now, SET_RETRY);
                // Until a first set arrives, logins must not wait forever.
                self.set_loaded = true;
                Err(e)
            }
        }
    }

    pub fn cached_kids(&self) -> usize {
        self.by_kid.len()
    }

    pub fn failed_kids(&self) -> usize {
        self.failed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RSA_PUB: &str = include_str!("../../tests/fixtures/rsa_public.pem");
    const EC_PUB: &str = include_str!("../../tests/fixtures/ec_public.pem");
    const RSA_1024_PUB: &str = include_str!("../../tests/fixtures/rsa1024_public.pem");

    fn options(asap: Option<&str>, set: Option<&str>) -> VerifierOptions {
        VerifierOptions {
            app_id: Some("app".into()),
            asap_key_server: asap.map(str::to_string),
            cache_keys_url: set.map(str::to_string),
            jwt_pubkey_cache_size: Some(2.0),
            ..Default::default()
        }
    }

    #[test]
    fn asap_url_is_the_sha256_of_the_kid() {
        assert_eq!(
            asap_url("https://keys.example.com/", "abc"),
            "https://keys.example.com/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad.pem"
        );
    }

    #[test]
    fn max_age_from_cache_control() {
        assert_eq!(max_age("public, max-age=300"), Some(Duration::from_secs(300)));
        assert_eq!(max_age("MAX-AGE=\"60\""), Some(Duration::from_secs(60)));
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(max_age("max-age=soon"), None);
        assert_eq!(max_age("max-age=-5"), None);
        assert_eq!(max_age("max-age="), None);
    }

    #[test]
    fn max_age_is_capped_and_never_overflows() {
        assert_eq!(max_age("max-age=18446744073709551615"), Some(MAX_KEY_AGE));
        assert_eq!(max_age("max-age=99999999999999999999999999999999"), Some(MAX_KEY_AGE));
        assert_eq!(max_age("max-age=86401"), Some(MAX_KEY_AGE));
        assert_eq!(max_age("max-age=86400"), Some(MAX_KEY_AGE));
        assert_eq!(lifetime(Some(Duration::ZERO), ASAP_DEFAULT_AGE), MIN_KEY_AGE);
        assert_eq!(lifetime(Some(Duration::MAX), ASAP_DEFAULT_AGE), MAX_KEY_AGE);
        assert_eq!(lifetime(None, ASAP_DEFAULT_AGE), ASAP_DEFAULT_AGE);
        // A huge age from the set's own answer: the next refresh is a day away, no panic.
        let t0 = Instant::now();
        let mut s = KeyStore::new(&options(None, Some("http://set")), t0);
        let one = json!({"k1": RSA_PUB}).to_string();
        s.set_answer(Ok((one.as_bytes(), Some(Duration::MAX))), t0).unwrap();
        assert_eq!(s.due_refresh(t0 + MAX_KEY_AGE - Duration::from_secs(1)), None);
        assert!(s.due_refresh(t0 + MAX_KEY_AGE).is_some());
        // And for asap keys.
        let mut a = KeyStore::new(&options(Some("http://k"), None), t0);
        a.asap_answer("k", Fetched::Body(RSA_PUB.as_bytes(), Some(Duration::MAX)), t0).unwrap();
        assert!(matches!(a.lookup("k", t0 + MAX_KEY_AGE - Duration::from_secs(1)), Lookup::Found(_)));
        assert!(matches!(a.lookup("k", t0 + MAX_KEY_AGE), Lookup::Fetch { known: true }));
    }

    #[test]
    fn asap_keys_expire_after_max_age_or_the_default() {
        let t0 = Instant::now();
        let mut s = KeyStore::new(&options(Some("http://k"), None), t0);
        s.asap_answer("a", Fetched::Body(RSA_PUB.as_bytes(), Some(Duration::from_secs(60))), t0).unwrap();
        s.asap_answer("b", Fetched::Body(EC_PUB.as_bytes(), None), t0).unwrap();
        assert!(matches!(s.lookup("a", t0 + Duration::from_secs(59)), Lookup::Found(_)));
        assert!(matches!(s.lookup("a", t0 + Duration::from_secs(60)), Lookup::Fetch { known: true }));
        assert!(matches!(s.lookup("b", t0 + ASAP_DEFAULT_AGE - Duration::from_secs(1)), Lookup::Found(_)));
        assert!(matches!(s.lookup("b", t0 + ASAP_DEFAULT_AGE), Lookup::Fetch { known: true }));
        // A refetch that fails without a definite answer is not remembered...
        let t1 = t0 + ASAP_DEFAULT_AGE;
        assert!(!s.asap_answer("b", Fetched::Failed("timed out".into()), t1).err().unwrap().definite);
        assert!(matches!(s.lookup("b", t1), Lookup::Fetch { known: true }));
        // ...a 404 is: the kid is gone.
        assert!(s.asap_answer("b", Fetched::NotFound, t1).err().unwrap().definite);
        assert!(matches!(s.lookup("b", t1), Lookup::Refused(_)));
    }

    #[test]
    fn only_definite_failures_are_remembered() {
        let t0 = Instant::now();
        let mut s = KeyStore::new(&options(Some("http://k"), None), t0);
        for (answer, remembered) in [
            (Fetched::NotFound, true),
            (Fetched::Body(b"not a key", None), true),
            (Fetched::Failed("timed out after 5000 ms".into()), false),
            (Fetched::Failed("HTTP 503".into()), false),
        ] {
            let mut s2 = KeyStore::new(&options(Some("http://k"), None), t0);
            assert_eq!(s2.asap_answer("x", answer, t0).err().unwrap().definite, remembered);
            assert_eq!(matches!(s2.lookup("x", t0), Lookup::Refused(_)), remembered);
        }
        assert!(matches!(s.lookup("x", t0), Lookup::Fetch { known: false }));
    }

    #[test]
    fn failed_kids_are_an_lru_of_bounded_size() {
        let t0 = Instant::now();
        let mut s = KeyStore::new(&options(Some("http://k"), None), t0);
        for i in 0..(FAILED_KIDS + 500) {
            s.asap_answer(&format!("forged-{i}"), Fetched::NotFound, t0).err().unwrap();
        }
        assert_eq!(s.failed_kids(), FAILED_KIDS);
        assert!(matches!(s.lookup("forged-0", t0), Lookup::Fetch { known: false }), "the oldest forgotten");
        assert!(matches!(s.lookup(&format!("forged-{}", FAILED_KIDS + 499), t0), Lookup::Refused(_)));
    }

    #[test]
    fn lru_evicts_the_least_recently_used() {
        let mut l = Lru::new(3);
        for k in ["a", "b", "c"] {
            l.insert(k.to_string(), k.len());
        }
        assert_eq!(l.get("a"), Some(1));
        l.insert("d".into(), 1);
        assert_eq!(l.get("b"), None, "b was the least recently used");
        l.insert("a".into(), 2);
        assert_eq!(l.len(), 3);
        l.insert("e".into(), 1);
        assert_eq!(l.get("c"), None);
        assert_eq!(l.get("a"), Some(2));
        l.remove("a");
        assert_eq!((l.len(), l.order.len()), (2, 2));
    }

    #[test]
    fn unknown_kid_fetches_are_rate_limited() {
        let t0 = Instant::now();
        let mut b = Bucket::new(KID_FETCHES_PER_SECOND, KID_FETCH_BURST, t0);
        let burst = (0..1000).filter(|_| b.take(t0)).count();
        assert_eq!(burst, KID_FETCH_BURST as usize);
        assert!(!b.take(t0 + Duration::from_millis(50)), "half a token");
        assert!(b.take(t0 + Duration::from_millis(100)), "one token after 1/rate s");
        assert!(!b.take(t0 + Duration::from_millis(100)));
        let later = t0 + Duration::from_secs(3600);
        assert_eq!((0..1000).filter(|_| b.take(later)).count(), KID_FETCH_BURST as usize, "never more than the burst");
        // A clock that goes back takes nothing and breaks nothing.
        assert!(!b.take(t0));
    }

    #[test]
    fn key_sets_as_jwks_or_pem_maps() {
        let map = json!({"k1": RSA_PUB, "k2": EC_PUB, "bad": "nope"}).to_string();
        let mut kids: Vec<(String, &str)> = parse_key_set(map.as_bytes()).unwrap().into_iter().map(|(k, _, a)| (k, a)).collect();
        kids.sort();
        assert_eq!(kids, vec![("k1".to_string(), "RS256"), ("k2".to_string(), "ES256")]);
        // RSA keys are checked when the set is read (src/standard/jws.rs): a real
        // 2048-bit modulus, and a 24-bit one that is left out.
        let n = openssl::rsa::Rsa::public_key_from_pem(RSA_PUB.as_bytes()).unwrap().n().to_vec();
        let jwks = json!({"keys": [
            {"kty": "RSA", "kid": "r", "n": data_encoding::BASE64URL_NOPAD.encode(&n), "e": "AQAB"},
            {"kty": "RSA", "kid": "tiny", "n": "sXch", "e": "AQAB"},
            {"kty": "EC", "crv": "P-384", "kid": "e384", "x": "AA", "y": "AA"},
            {"kty": "oct", "kid": "h", "k": "AA"}
        ]})
        .to_string();
        let keys = parse_key_set(jwks.as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!((keys[0].0.as_str(), keys[0].2), ("r", "RS256"));
        assert!(parse_key_set(b"[]").is_err());
        assert!(parse_key_set(br#"{"keys": 5}"#).is_err());
        assert!(parse_key_set(br#"{"keys": []}"#).is_err());
    }

    #[test]
    fn asap_failures_are_not_refetched_in_a_tight_loop() {
        let t0 = Instant::now();
        let mut s = KeyStore::new(&options(Some("http://k"), None), t0);
        assert!(matches!(s.lookup("a", t0), Lookup::Fetch { known: false }));
        assert!(s.asap_answer("a", Fetched::NotFound, t0).is_err());
        assert!(matches!(s.lookup("a", t0 + Duration::from_secs(29)), Lookup::Refused(_)));
        assert!(matches!(s.lookup("a", t0 + NEGATIVE_TTL), Lookup::Fetch { known: false }));
        assert!(s.asap_answer("a", Fetched::Body(RSA_PUB.as_bytes(), None), t0).is_ok());
        assert!(matches!(s.lookup("a", t0), Lookup::Found(_)));
    }

    #[test]
    fn asap_keys_live_in_a_bounded_lru() {
        let t0 = Instant::now();
        let mut s = KeyStore::new(&options(Some("http://k"), None), t0);
        s.asap_answer("a", Fetched::Body(RSA_PUB.as_bytes(), None), t0).unwrap();
        s.asap_answer("b", Fetched::Body(EC_PUB.as_bytes(), None), t0).unwrap();
        assert!(matches!(s.lookup("a", t0), Lookup::Found(_)), "a used last");
        s.asap_answer("c", Fetched::Body(RSA_PUB.as_bytes(), None), t0).unwrap();
        assert_eq!(s.cached_kids(), 2);
        assert!(matches!(s.lookup("b", t0), Lookup::Fetch { known: false }), "b was the least recently used");
        assert!(matches!(s.lookup("a", t0), Lookup::Found(_)));
    }

    #[test]
    fn key_set_refresh_grace_and_retry() {
        let t0 = Instant::now();
        let mut s = KeyStore::new(&options(None, Some("http://set")), t0);
        assert!(matches!(s.lookup("k1", t0), Lookup::Fetch { known: false }), "wait for the first set");
        assert_eq!(s.due_refresh(t0).as_deref(), Some("http://set"));
        s.refresh_started(t0);
        assert_eq!(s.due_refresh(t0), None);
        let both = json!({"k1": RSA_PUB, "k2": EC_PUB}).to_string();
        assert_eq!(s.set_answer(Ok((both.as_bytes(), Some(Duration::from_secs(300)))), t0), Ok(2));
        assert!(matches!(s.lookup("k2", t0), Lookup::Found(_)));
        assert!(matches!(s.lookup("zz", t0), Lookup::Refused(_)));
        assert_eq!(s.due_refresh(t0 + Duration::from_secs(299)), None);
        assert!(s.due_refresh(t0 + Duration::from_secs(300)).is_some(), "max-age honoured");
        // k2 dropped: still accepted within the grace period, then gone.
        let one = json!({"k1": RSA_PUB}).to_string();
        let t1 = t0 + Duration::from_secs(300);
        s.set_answer(Ok((one.as_bytes(), None)), t1).unwrap();
        assert!(matches!(s.lookup("k2", t1), Lookup::Found(_)));
        // The grace counts from the first refresh that no longer lists it,
        // however long ago it was last listed, and holds between refreshes.
        let t2 = t1 + SET_GRACE - Duration::from_secs(1);
        s.set_answer(Ok((one.as_bytes(), None)), t2).unwrap();
        assert!(matches!(s.lookup("k2", t2), Lookup::Found(_)));
        assert!(matches!(s.lookup("k2", t1 + SET_GRACE), Lookup::Refused(_)), "gone after the grace, without a refresh");
        let t2 = t1 + SET_GRACE;
        s.set_answer(Ok((one.as_bytes(), None)), t2).unwrap();
        assert!(matches!(s.lookup("k2", t2), Lookup::Refused(_)));
        // A failed refresh keeps the keys and retries after 30 s.
        assert!(s.set_answer(Err("HTTP 500".into()), t2).is_err());
        assert!(matches!(s.lookup("k1", t2), Lookup::Found(_)));
        assert!(s.due_refresh(t2 + SET_RETRY).is_some());
        assert_eq!(s.due_refresh(t2 + Duration::from_secs(29)), None);
    }

    #[test]
    fn a_key_dropped_after_a_long_refresh_interval_still_gets_its_grace() {
        let t0 = Instant::now();
        let mut s = KeyStore::new(&options(None, Some("http://set")), t0);
        let both = json!({"k1": RSA_PUB, "k2": EC_PUB}).to_string();
        s.set_answer(Ok((both.as_bytes(), None)), t0).unwrap();
        // The next refresh (6 h later, the default) drops k2.
        let t1 = t0 + SET_REFRESH;
        let one = json!({"k1": RSA_PUB}).to_string();
        s.set_answer(Ok((one.as_bytes(), None)), t1).unwrap();
        assert!(matches!(s.lookup("k2", t1 + Duration::from_secs(60)), Lookup::Found(_)), "90 minutes from the drop");
    }

    #[test]
    fn jwks_keys_not_for_signatures_or_with_another_alg_or_weak_are_skipped() {
        // The fixture's modulus and exponent, as a JWK.
        let rsa = openssl::rsa::Rsa::public_key_from_pem(RSA_PUB.as_bytes()).unwrap();
        let (n, e) = (rsa.n().to_vec(), rsa.e().to_vec());
        let b64 = |b: &[u8]| data_encoding::BASE64URL_NOPAD.encode(b);
        let small_n = vec![0xc5u8; 128]; // 1024 bits
        let jwks = json!({"keys": [
            {"kty": "RSA", "kid": "good", "use": "sig", "alg": "RS256", "n": b64(&n), "e": b64(&e)},
            {"kty": "RSA", "kid": "plain", "n": b64(&n), "e": b64(&e)},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": b64(&n), "e": b64(&e)},
            {"kty": "RSA", "kid": "hs", "alg": "HS256", "n": b64(&n), "e": b64(&e)},
            {"kty": "RSA", "kid": "rs512", "alg": "RS512", "n": b64(&n), "e": b64(&e)},
            {"kty": "RSA", "kid": "weak", "n": b64(&small_n), "e": b64(&e)},
            {"kty": "RSA", "kid": "k".repeat(MAX_KID_LEN + 1), "n": b64(&n), "e": b64(&e)}
        ]})
        .to_string();
        let mut kids: Vec<String> = parse_key_set(jwks.as_bytes()).unwrap().into_iter().map(|(k, _, _)| k).collect();
        kids.sort();
        assert_eq!(kids, vec!["good".to_string(), "plain".to_string()]);
    }

    #[test]
    fn rsa_keys_under_2048_bits_are_refused() {
        let t0 = Instant::now();
        let mut s = KeyStore::new(&options(Some("http://k"), None), t0);
        let e = s.asap_answer("weak", Fetched::Body(RSA_1024_PUB.as_bytes(), None), t0).err().unwrap();
        assert_eq!(e, KeyFailure { text: "an RSA key of fewer than 2048 or more than 8192 bits".into(), definite: true });
        assert_eq!(SigKey::public_pem(RSA_PUB.as_bytes()).unwrap().0.rsa_bits(), Some(2048));
        let map = json!({"weak": RSA_1024_PUB, "ok": RSA_PUB}).to_string();
        let kids: Vec<String> = parse_key_set(map.as_bytes()).unwrap().into_iter().map(|(k, _, _)| k).collect();
        assert_eq!(kids, vec!["ok".to_string()]);
    }
}
