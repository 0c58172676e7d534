//! Public keys chosen by a token's `kid` (CONTRACT section 2), as jitsi's
//! token auth finds them:
//!
//! - `asap_key_server`: the key of `kid` is `GET <server>/<hex(sha256(kid))>.pem`,
//!   fetched on demand, kept in an LRU of `jwt_pubkey_cache_size` (128); a
//!   kid whose fetch failed is refused for [`NEGATIVE_TTL`] without asking
//!   again (no tight loop against the key server).
//! - `cache_keys_url`: a JWKS (`{"keys": [...]}`, RSA and P-256 keys) or a
//!   map from kid to PEM, fetched at startup, refreshed after the answer's
//!   `Cache-Control: max-age` (else every 6 h), retried after 30 s on
//!   failure; a key dropped from the set is still accepted for 90 minutes.
//!
//! This is the state kept on Prosody's thread; the fetches run on the
//! engine. Pure of Lua.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::jws::SigKey;
use crate::token::{Verifier, VerifierOptions};

/// A kid whose key could not be fetched is refused this long.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(30);
/// Refresh of `cache_keys_url` without a `max-age`.
pub const SET_REFRESH: Duration = Duration::from_secs(6 * 3600);
/// Retry of a failed `cache_keys_url` fetch.
pub const SET_RETRY: Duration = Duration::from_secs(30);
/// A key dropped from the set is still accepted this long.
pub const SET_GRACE: Duration = Duration::from_secs(90 * 60);

/// The URL of `kid`'s PEM on an ASAP key server.
pub fn asap_url(base: &str, kid: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, kid.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{}/{hex}.pem", crate::verify::normalize_base_url(base))
}

/// `max-age` of a `Cache-Control` header.
pub fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case("max-age").then(|| v.trim().trim_matches('"').parse::<u64>().ok()).flatten()
    })
    .map(Duration::from_secs)
}

/// The keys of a `cache_keys_url` answer: kid -> key and its algorithm.
/// Keys that cannot be used are skipped (and counted in the error text
/// only when none is left).
pub fn parse_key_set(body: &[u8]) -> Result<Vec<(String, SigKey, &'static str)>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|_| "the key set is not JSON".to_string())?;
    let Value::Object(obj) = value else { return Err("the key set is not a JSON object".into()) };
    let mut out = Vec::new();
    let mut skipped = 0;
    match obj.get("keys") {
        Some(Value::Array(jwks)) => {
            for jwk in jwks {
                let kid = jwk.get("kid").and_then(Value::as_str);
                match (kid, SigKey::from_jwk(jwk)) {
                    (Some(kid), Ok((key, alg))) => out.push((kid.to_string(), key, alg)),
                    _ => skipped += 1,
                }
            }
        }
        Some(_) => return Err("the key set's keys is not a list".into()),
        None => {
            for (kid, pem) in &obj {
                match pem.as_str().map(|p| SigKey::public_pem(p.as_bytes())) {
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

/// A small least-recently-used map.
struct Lru<V> {
    cap: usize,
    clock: u64,
    map: HashMap<String, (V, u64)>,
}

impl<V: Clone> Lru<V> {
    fn new(cap: usize) -> Self {
        Lru { cap: cap.max(1), clock: 0, map: HashMap::new() }
    }

    fn get(&mut self, k: &str) -> Option<V> {
        self.clock += 1;
        let clock = self.clock;
        self.map.get_mut(k).map(|(v, used)| {
            *used = clock;
            v.clone()
        })
    }

    fn insert(&mut self, k: String, v: V) {
        if self.map.len() >= self.cap && !self.map.contains_key(&k) {
            if let Some(oldest) = self.map.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone()) {
                self.map.remove(&oldest);
            }
        }
        self.clock += 1;
        self.map.insert(k, (v, self.clock));
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// What the store knows about a kid.
pub enum Lookup {
    Found(Rc<Verifier>),
    /// Not known yet: fetch it (asap) or wait for the first key set.
    Fetch,
    /// Known bad (a recent failed fetch, or not in a loaded key set).
    Refused(String),
}

/// The kid-chosen keys of one VirtualHost.
pub struct KeyStore {
    options: VerifierOptions,
    asap: Option<String>,
    by_kid: Lru<Rc<Verifier>>,
    failed: HashMap<String, Instant>,
    set_url: Option<String>,
    /// kid -> (verifier, last time the set listed it).
    set: HashMap<String, (Rc<Verifier>, Instant)>,
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
            failed: HashMap::new(),
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
            if let Some((v, _)) = self.set.get(kid) {
                return Lookup::Found(Rc::clone(v));
            }
            if !self.set_loaded {
                return Lookup::Fetch;
            }
            if self.asap.is_none() {
                return Lookup::Refused(format!("no key for kid {} in cache_keys_url", crate::text::Untrusted::new(kid)));
            }
        }
        if let Some(v) = self.by_kid.get(kid) {
            return Lookup::Found(v);
        }
        match self.failed.get(kid) {
            Some(at) if now.duration_since(*at) < NEGATIVE_TTL => {
                Lookup::Refused(format!("the key of kid {} could not be fetched recently", crate::text::Untrusted::new(kid)))
            }
            _ => Lookup::Fetch,
        }
    }

    /// Whether logins must wait for the first key set.
    pub fn set_waiting(&self) -> bool {
        self.set_url.is_some() && !self.set_loaded
    }

    /// The URL to fetch `kid`'s key from (asap), if any.
    pub fn asap_url(&self, kid: &str) -> Option<String> {
        self.asap.as_deref().map(|base| asap_url(base, kid))
    }

    /// An asap fetch answered: a PEM body, or why not.
    pub fn asap_answer(&mut self, kid: &str, answer: Result<&[u8], String>, now: Instant) -> Result<Rc<Verifier>, String> {
        let made = answer.and_then(|pem| {
            let (key, alg) = SigKey::public_pem(pem).map_err(str::to_string)?;
            Verifier::for_key(&self.options, key, alg).map_err(|e| e.to_string())
        });
        match made {
            Ok(v) => {
                let v = Rc::new(v);
                self.failed.remove(kid);
                self.by_kid.insert(kid.to_string(), Rc::clone(&v));
                Ok(v)
            }
            Err(e) => {
                if self.failed.len() > 10_000 {
                    self.failed.retain(|_, at| now.duration_since(*at) < NEGATIVE_TTL);
                }
                self.failed.insert(kid.to_string(), now);
                Err(e)
            }
        }
    }

    /// The key set's URL, when a refresh is due.
    pub fn due_refresh(&self, now: Instant) -> Option<String> {
        self.set_url.clone().filter(|_| now >= self.next_refresh)
    }

    /// Mark a refresh as started (so one is not sent twice).
    pub fn refresh_started(&mut self, now: Instant) {
        self.next_refresh = now + SET_RETRY;
    }

    /// The key set answered: its body and `max-age`, or why not. Returns
    /// the error text of a failure (for one log line).
    pub fn set_answer(&mut self, answer: Result<(&[u8], Option<Duration>), String>, now: Instant) -> Result<usize, String> {
        let parsed = answer.and_then(|(body, age)| parse_key_set(body).map(|keys| (keys, age)));
        match parsed {
            Ok((keys, age)) => {
                for (kid, key, alg) in keys {
                    if let Ok(v) = Verifier::for_key(&self.options, key, alg) {
                        self.set.insert(kid, (Rc::new(v), now));
                    }
                }
                self.set.retain(|_, (_, seen)| now.duration_since(*seen) < SET_GRACE);
                self.set_loaded = true;
                self.next_refresh = now + age.unwrap_or(SET_REFRESH).max(Duration::from_secs(1));
                Ok(self.set.len())
            }
            Err(e) => {
                self.next_refresh = now + SET_RETRY;
                // Until a first set arrives, logins must not wait forever.
                self.set_loaded = true;
                Err(e)
            }
        }
    }

    pub fn cached_kids(&self) -> usize {
        self.by_kid.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RSA_PUB: &str = include_str!("../tests/fixtures/rsa_public.pem");
    const EC_PUB: &str = include_str!("../tests/fixtures/ec_public.pem");

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
    }

    #[test]
    fn key_sets_as_jwks_or_pem_maps() {
        let map = json!({"k1": RSA_PUB, "k2": EC_PUB, "bad": "nope"}).to_string();
        let mut kids: Vec<(String, &str)> = parse_key_set(map.as_bytes()).unwrap().into_iter().map(|(k, _, a)| (k, a)).collect();
        kids.sort();
        assert_eq!(kids, vec![("k1".to_string(), "RS256"), ("k2".to_string(), "ES256")]);
        // RSA keys are checked when the set is read (src/jws.rs): a real
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
        assert!(matches!(s.lookup("a", t0), Lookup::Fetch));
        assert!(s.asap_answer("a", Err("HTTP 404".into()), t0).is_err());
        assert!(matches!(s.lookup("a", t0 + Duration::from_secs(29)), Lookup::Refused(_)));
        assert!(matches!(s.lookup("a", t0 + NEGATIVE_TTL), Lookup::Fetch));
        assert!(s.asap_answer("a", Ok(RSA_PUB.as_bytes()), t0).is_ok());
        assert!(matches!(s.lookup("a", t0), Lookup::Found(_)));
    }

    #[test]
    fn asap_keys_live_in_a_bounded_lru() {
        let t0 = Instant::now();
        let mut s = KeyStore::new(&options(Some("http://k"), None), t0);
        s.asap_answer("a", Ok(RSA_PUB.as_bytes()), t0).unwrap();
        s.asap_answer("b", Ok(EC_PUB.as_bytes()), t0).unwrap();
        assert!(matches!(s.lookup("a", t0), Lookup::Found(_)), "a used last");
        s.asap_answer("c", Ok(RSA_PUB.as_bytes()), t0).unwrap();
        assert_eq!(s.cached_kids(), 2);
        assert!(matches!(s.lookup("b", t0), Lookup::Fetch), "b was the least recently used");
        assert!(matches!(s.lookup("a", t0), Lookup::Found(_)));
    }

    #[test]
    fn key_set_refresh_grace_and_retry() {
        let t0 = Instant::now();
        let mut s = KeyStore::new(&options(None, Some("http://set")), t0);
        assert!(matches!(s.lookup("k1", t0), Lookup::Fetch), "wait for the first set");
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
        let t2 = t0 + SET_GRACE + Duration::from_secs(1);
        s.set_answer(Ok((one.as_bytes(), None)), t2).unwrap();
        assert!(matches!(s.lookup("k2", t2), Lookup::Refused(_)));
        // A failed refresh keeps the keys and retries after 30 s.
        assert!(s.set_answer(Err("HTTP 500".into()), t2).is_err());
        assert!(matches!(s.lookup("k1", t2), Lookup::Found(_)));
        assert!(s.due_refresh(t2 + SET_RETRY).is_some());
        assert_eq!(s.due_refresh(t2 + Duration::from_secs(29)), None);
    }
}
