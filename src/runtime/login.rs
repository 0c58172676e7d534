//! One login decision for the VirtualHost provider: which kind of token it
//! is (Matrix or standard Jitsi, as jitsi-contrib's hybrid auth does) and
//! what is checked locally. Matrix logins end with a check by UVS or the
//! homeserver that the caller runs off the event loop. Pure: no Lua, no I/O.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::matrix::token::{self as matrix_token, MatrixLogin, MatrixPolicy};
use crate::options::{self, Module, Problem, Raw};
use crate::standard::token::{self, Claims, Verifier, VerifierOptions};
use crate::matrix::verify::homeserver::{Homeserver, HomeserverConfig};
use crate::runtime::http::Http;
use crate::matrix::verify::uvs::{Uvs, UvsConfig};
use crate::matrix::verify::{Backend, Verdict};

/// Default budget of one Matrix check, queue included, seconds.
pub const DEFAULT_UVS_TIMEOUT_SECS: f64 = 5.0;
/// Default number of Matrix checks in flight at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;
/// Default number of Matrix logins allowed to wait at once.
pub const DEFAULT_QUEUE_LIMIT: usize = 1024;
/// Default seconds a verified Matrix check is remembered.
pub const DEFAULT_CACHE_TTL_SECS: f64 = 60.0;
/// Default seconds a Matrix room's state is kept in direct mode.
pub const DEFAULT_STATE_TTL_SECS: f64 = 5.0;

/// The VirtualHost's options, with the names admins already use.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthOptions {
    /// Standard-token options (`app_id`, `app_secret`, `asap_*` ...).
    #[serde(flatten)]
    pub standard: VerifierOptions,
    pub uvs_base_url: Option<String>,
    pub uvs_auth_token: Option<String>,
    pub uvs_sync_power_levels: Option<bool>,
    pub uvs_timeout: Option<f64>,
    pub uvs_disable_membership_verification: Option<bool>,
    pub uvs_issuer: Option<Vec<String>>,
    pub matrix_token_secret: Option<String>,
    /// Accepted and ignored (checks no longer cost a thread each).
    pub uvs_workers: Option<f64>,
    /// Matrix logins allowed to wait at once ([`DEFAULT_QUEUE_LIMIT`]).
    pub uvs_queue_limit: Option<f64>,
    /// Matrix checks in flight at once ([`DEFAULT_MAX_IN_FLIGHT`]).
    pub uvs_max_in_flight: Option<f64>,
    /// Seconds a verified check is remembered (default 60; 0 disables).
    pub matrix_cache_ttl: Option<f64>,
    /// Direct mode: seconds a Matrix room's state is kept for the next
    /// logins into it (default 5; 0 disables); a ban reaches new logins
    /// within this time.
    pub matrix_state_ttl: Option<f64>,
    /// Direct mode: the homeserver's base URL (instead of `uvs_base_url`).
    pub matrix_homeserver_url: Option<String>,
    /// Direct mode: a Synapse server admin's access token.
    pub matrix_admin_token: Option<String>,
    /// Direct mode: the server OpenID users must belong to.
    pub matrix_server_name: Option<String>,
}

/// Which verifier answers Matrix checks.
#[derive(Debug, Clone)]
pub enum BackendConfig {
    Uvs(UvsConfig),
    Homeserver(HomeserverConfig),
}

impl MatrixSettings {
    /// The backend, on the shared HTTP client (the homeserver keeps user
    /// ids for `cache_ttl` and rooms' state for `state_ttl`).
    pub fn build_backend(&self, http: Http) -> Arc<dyn Backend> {
        match &self.backend {
            BackendConfig::Uvs(c) => Arc::new(Uvs::new(c.clone(), http)),
            BackendConfig::Homeserver(c) => {
                Arc::new(Homeserver::new(c.clone(), http).keeping(self.cache_ttl, self.state_ttl))
            }
        }
    }
}

/// How Matrix checks run, when Matrix tokens are enabled.
#[derive(Debug, Clone)]
pub struct MatrixSettings {
    pub backend: BackendConfig,
    /// One deadline for a whole check, queue included.
    pub timeout: Duration,
    pub max_in_flight: usize,
    pub queue_limit: usize,
    pub cache_ttl: Duration,
    /// Direct mode: how long a room's state is kept (`matrix_state_ttl`).
    pub state_ttl: Duration,
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn count_option(name: &str, v: Option<f64>, default: usize) -> Result<usize> {
    match v {
        None => Ok(default),
        Some(n) if (1.0..=1_000_000.0).contains(&n) => Ok(n as usize),
        Some(n) => Err(Error::Config(format!("{name} {n} is not between 1 and 1000000"))),
    }
}

fn seconds_option(name: &str, v: Option<f64>, default: f64, zero_ok: bool) -> Result<Duration> {
    let s = v.unwrap_or(default);
    if !(s.is_finite() && (s > 0.0 || (zero_ok && s == 0.0)) && s <= 86_400.0) {
        return Err(Error::Config(format!("{name} {s} is not a number of seconds")));
    }
    Ok(Duration::from_secs_f64(s))
}

impl AuthOptions {
    /// From the raw values of Prosody's config (name -> value, absent
    /// options left out): types and ranges checked by [`crate::options`].
    pub fn from_raw<'a>(raw: impl IntoIterator<Item = (&'a str, &'a Raw)>) -> std::result::Result<Self, Vec<Problem>> {
        Self::from_raw_for(Module::Auth, raw).map(|(o, _)| o)
    }

    /// The options `module` reads, checked: those of them that are auth
    /// options (power sync shares the Matrix ones), and all of them.
    pub fn from_raw_for<'a>(
        module: Module,
        raw: impl IntoIterator<Item = (&'a str, &'a Raw)>,
    ) -> std::result::Result<(Self, Map<String, Value>), Vec<Problem>> {
        let map = options::parse(module, raw)?;
        let o = serde_json::from_value(Value::Object(map.clone()))
            .map_err(|e| vec![Problem::from_config_text(&e.to_string())])?;
        Ok((o, map))
    }

    /// The backend and bounds of Matrix checks; `None` when Matrix tokens
    /// are off (neither `uvs_base_url` nor `matrix_homeserver_url`).
    pub fn matrix_settings(&self) -> Result<Option<MatrixSettings>> {
        let verify_membership = !self.uvs_disable_membership_verification.unwrap_or(false);
        let backend = match (nonempty(&self.uvs_base_url), nonempty(&self.matrix_homeserver_url)) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(Error::Config("set uvs_base_url or matrix_homeserver_url, not both".into()))
            }
            (Some(url), None) => {
                let mut uvs = UvsConfig::new(url);
                uvs.auth_token = nonempty(&self.uvs_auth_token).map(str::to_string);
                uvs.verify_membership = verify_membership;
                BackendConfig::Uvs(uvs)
            }
            (None, Some(url)) => BackendConfig::Homeserver(HomeserverConfig {
                base_url: url.to_string(),
                admin_token: nonempty(&self.matrix_admin_token)
                    .ok_or_else(|| Error::Config("matrix_homeserver_url needs matrix_admin_token".into()))?
                    .to_string(),
                server_name: nonempty(&self.matrix_server_name).map(str::to_string),
                verify_membership,
            }),
        };
        let timeout = seconds_option("uvs_timeout", self.uvs_timeout, DEFAULT_UVS_TIMEOUT_SECS, false)?;
        if timeout > Duration::from_secs(300) {
            return Err(Error::Config(format!("uvs_timeout {} is not between 0 and 300 seconds", timeout.as_secs_f64())));
        }
        Ok(Some(MatrixSettings {
            backend,
            timeout,
            max_in_flight: count_option("uvs_max_in_flight", self.uvs_max_in_flight, DEFAULT_MAX_IN_FLIGHT)?,
            queue_limit: count_option("uvs_queue_limit", self.uvs_queue_limit, DEFAULT_QUEUE_LIMIT)?,
            cache_ttl: seconds_option("matrix_cache_ttl", self.matrix_cache_ttl, DEFAULT_CACHE_TTL_SECS, true)?,
            state_ttl: seconds_option("matrix_state_ttl", self.matrix_state_ttl, DEFAULT_STATE_TTL_SECS, true)?,
        }))
    }
}

/// What a login needs next.
#[derive(Debug)]
pub enum LoginStep {
    /// A standard token passed: its verified claims (the session fields
    /// are [`token::session_fields`] of them).
    Verified(Claims),
    /// A standard token whose key is chosen by this `kid`
    /// (`asap_key_server`, `cache_keys_url`): see `crate::standard::keys`.
    NeedKey(String),
    /// A Matrix token passed the local checks: ask the verifier, then
    /// [`Authenticator::finish`].
    Matrix(MatrixLogin),
}

/// Configured once per VirtualHost.
pub struct Authenticator {
    standard: std::result::Result<Verifier, String>,
    matrix: Option<MatrixPolicy>,
    /// For verifiers of keys handed over at login (`session.public_key`).
    standard_options: VerifierOptions,
    /// Verifiers of those keys, by PEM (bounded: most deployments use one).
    session_keys: RefCell<HashMap<Vec<u8>, Rc<Verifier>>>,
    /// Standard tokens' keys are chosen by `kid`.
    kid_keys: bool,
}

/// Most session keys whose verifiers are kept.
const MAX_SESSION_KEYS: usize = 64;

impl Authenticator {
    /// Returns the authenticator and, when Matrix tokens are enabled, how
    /// their checks run.
    pub fn new(o: AuthOptions) -> Result<(Self, Option<MatrixSettings>)> {
        let app_id = o.standard.app_id.clone().filter(|a| !a.is_empty());
        let Some(app_id) = app_id else {
            return Err(Error::Config("app_id is not set".into()));
        };
        if let Some(secret) = &o.matrix_token_secret {
            let raw = Raw::Str(secret.clone().into_bytes());
            options::parse(Module::Auth, [("matrix_token_secret", &raw)])
                .map_err(|p| Error::Config(options::summary(&p)))?;
        }
        let standard_wanted = o.standard.app_secret.as_deref().is_some_and(|s| !s.is_empty())
            || o.standard.jwt_public_key_file.is_some();
        let nonblank = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        let kid_keys = nonblank(&o.standard.asap_key_server) || nonblank(&o.standard.cache_keys_url);
        let standard = if standard_wanted {
            Ok(Verifier::new(o.standard.clone().into_config()?)?)
        } else {
            Err("standard tokens are not accepted here (no app_secret, jwt_public_key_file, asap_key_server or cache_keys_url)".into())
        };
        let settings = o.matrix_settings()?;
        let matrix = match &settings {
            None => None,
            Some(_) => {
                let issuers = match o.uvs_issuer.clone() {
                    Some(list) if !list.is_empty() => list,
                    _ => vec![app_id],
                };
                Some(MatrixPolicy::new(issuers, o.matrix_token_secret.clone(), o.uvs_sync_power_levels.unwrap_or(false))?)
            }
        };
        let session_keys = RefCell::new(HashMap::new());
        Ok((Authenticator { standard, matrix, standard_options: o.standard, session_keys, kid_keys }, settings))
    }

    /// Local checks for `token` presented for the Jitsi room `room`.
    /// `session_key`: a PEM public key a fetch-key handler put on the
    /// session; it overrides the configured key for standard tokens.
    pub fn begin(&self, token: &[u8], room: Option<&[u8]>, now: u64, session_key: Option<&[u8]>) -> Result<LoginStep> {
        // Decoded once: the kind of token is read from the same parse that
        // a standard token is verified from.
        let parsed = token::parse(token)?;
        let matrix_token = token::is_matrix(&parsed.claims);
        if let (Some(pem), false) = (session_key, matrix_token) {
            return Ok(LoginStep::Verified(self.session_key_verifier(pem)?.verify_parsed(parsed, now)?));
        }
        if self.kid_keys && !matrix_token {
            let kid = parsed.header.get("kid").and_then(|k| k.as_str()).filter(|k| !k.is_empty());
            return kid.map(|k| LoginStep::NeedKey(k.to_string())).ok_or(Error::KidMissing);
        }
        match (&self.standard, &self.matrix) {
            (Ok(verifier), _) if !matrix_token => Ok(LoginStep::Verified(verifier.verify_parsed(parsed, now)?)),
            (_, Some(policy)) => Ok(LoginStep::Matrix(matrix_token::prepare(policy, token, room, now)?)),
            (_, None) if matrix_token => Err(Error::MatrixDisabled),
            (Err(why), None) => Err(Error::StandardDisabled(why.clone())),
            (Ok(_), None) => unreachable!("standard tokens are handled above"),
        }
    }

    fn session_key_verifier(&self, pem: &[u8]) -> Result<Rc<Verifier>> {
        if let Some(v) = self.session_keys.borrow().get(pem) {
            return Ok(Rc::clone(v));
        }
        let (key, alg) = crate::standard::jws::SigKey::public_pem(pem).map_err(|_| Error::PublicKeyUnusable)?;
        let verifier = Rc::new(Verifier::for_key(&self.standard_options, key, alg)?);
        let mut keys = self.session_keys.borrow_mut();
        if keys.len() >= MAX_SESSION_KEYS {
            keys.clear();
        }
        keys.insert(pem.to_vec(), Rc::clone(&verifier));
        Ok(verifier)
    }

    /// Turn the verdict of `source` for `login` into session fields.
    pub fn finish(&self, login: &MatrixLogin, verdict: &Verdict, source: &'static str) -> Result<Map<String, Value>> {
        let policy = self.matrix.as_ref().ok_or(Error::MatrixDisabled)?;
        matrix_token::finish(policy, login, verdict, source)
    }

    /// The options of standard tokens (for keys chosen by `kid`).
    pub fn standard_options(&self) -> &VerifierOptions {
        &self.standard_options
    }

    /// A one-line summary for the startup log (never a secret).
    pub fn describe(&self) -> String {
        let standard = match (&self.standard, self.kid_keys) {
            (_, true) => "standard tokens: on (keys by kid)",
            (Ok(_), false) => "standard tokens: on",
            (Err(_), false) => "standard tokens: off",
        };
        let matrix = match &self.matrix {
            Some(p) => format!(
                "Matrix tokens: on (issuers {:?}, signature {}, power level sync {})",
                p.accepted_issuers,
                if p.signature.is_some() { "required" } else { "not required" },
                if p.sync_power_levels { "on" } else { "off" }
            ),
            None => "Matrix tokens: off".into(),
        };
        format!("{standard}; {matrix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::room::name_for_room_id;
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;

    fn jwt(claims: Value, secret: &[u8]) -> String {
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn options(secret: bool, uvs: bool) -> AuthOptions {
        AuthOptions {
            standard: VerifierOptions {
                app_id: Some("app".into()),
                app_secret: secret.then(|| "s3cret".into()),
                ..Default::default()
            },
            uvs_base_url: uvs.then(|| "http://127.0.0.1:9/".into()),
            ..Default::default()
        }
    }

    fn standard_token() -> String {
        jwt(json!({"iss": "app", "aud": "jitsi", "room": "r"}), b"s3cret")
    }

    fn matrix_token() -> String {
        jwt(json!({"iss": "app", "aud": "jitsi", "room": "*",
                   "context": {"matrix": {"token": "o", "room_id": "!r:x"}}}), b"notused")
    }

    #[test]
    fn begin_routes_tokens_by_kind_and_configuration() {
        let room = name_for_room_id("!r:x");
        let no_matrix_ctx = jwt(json!({"iss": "app", "aud": "x", "room": "r"}), b"notused");
        type Want = fn(&Result<LoginStep>) -> bool;
        let cases: Vec<(&str, bool, bool, String, Want)> = vec![
            ("hybrid standard", true, true, standard_token(), |r| matches!(r, Ok(LoginStep::Verified(_)))),
            ("hybrid matrix", true, true, matrix_token(), |r| matches!(r, Ok(LoginStep::Matrix(_)))),
            ("standard only, matrix token", true, false, matrix_token(), |r| matches!(r, Err(Error::MatrixDisabled))),
            ("matrix only, standard token", false, true, no_matrix_ctx.clone(),
             |r| matches!(r, Err(Error::MatrixContextMissing))),
            ("matrix only, matrix token", false, true, matrix_token(), |r| matches!(r, Ok(LoginStep::Matrix(_)))),
            ("hybrid, forged standard", true, true, no_matrix_ctx.clone(), |r| matches!(r, Err(Error::TokenSignature))),
            ("garbage", true, true, "x.y".into(), |r| matches!(r, Err(Error::TokenMalformed(_)))),
        ];
        for (name, secret, uvs, token, want) in cases {
            let (auth, _) = Authenticator::new(options(secret, uvs)).unwrap();
            let got = auth.begin(token.as_bytes(), Some(room.as_bytes()), NOW, None);
            assert!(want(&got), "{name}: {got:?}");
        }
    }

    #[test]
    fn new_builds_uvs_config_from_options() {
        let mut o = options(false, true);
        o.uvs_auth_token = Some("tok".into());
        o.uvs_timeout = Some(1.5);
        o.uvs_disable_membership_verification = Some(true);
        let (_, settings) = Authenticator::new(o).unwrap();
        let settings = settings.unwrap();
        let BackendConfig::Uvs(uvs) = &settings.backend else { panic!("{settings:?}") };
        assert_eq!(uvs.base_url, "http://127.0.0.1:9");
        assert_eq!(uvs.auth_token.as_deref(), Some("tok"));
        assert_eq!(settings.timeout, Duration::from_millis(1500));
        assert_eq!((settings.max_in_flight, settings.queue_limit), (DEFAULT_MAX_IN_FLIGHT, DEFAULT_QUEUE_LIMIT));
        assert_eq!(settings.cache_ttl, Duration::from_secs(60));
        assert_eq!(settings.state_ttl, Duration::from_secs(5));
        assert!(!uvs.verify_membership);
        assert!(Authenticator::new(options(true, false)).unwrap().1.is_none());
    }

    #[test]
    fn new_rejects_bad_configuration() {
        let mut no_app = options(true, true);
        no_app.standard.app_id = None;
        let mut bad_timeout = options(false, true);
        bad_timeout.uvs_timeout = Some(0.0);
        let mut bad_key = options(false, false);
        bad_key.standard.jwt_public_key_file = Some("/nonexistent".into());
        let mut both = options(false, true);
        both.matrix_homeserver_url = Some("http://hs".into());
        both.matrix_admin_token = Some("adm".into());
        let mut no_admin_token = options(false, false);
        no_admin_token.matrix_homeserver_url = Some("http://hs".into());
        let mut bad_in_flight = options(false, true);
        bad_in_flight.uvs_max_in_flight = Some(0.0);
        let mut bad_state_ttl = options(false, true);
        bad_state_ttl.matrix_state_ttl = Some(-1.0);
        for o in [no_app, bad_timeout, bad_key, both, no_admin_token, bad_in_flight, bad_state_ttl] {
            assert!(matches!(Authenticator::new(o), Err(Error::Config(_))));
        }
    }

    #[test]
    fn new_refuses_a_known_empty_or_short_matrix_token_secret() {
        for secret in ["notused", "", "not-32-bytes-long"] {
            let mut o = options(false, true);
            o.matrix_token_secret = Some(secret.into());
            let err = Authenticator::new(o).err().expect(secret).to_string();
            assert!(err.starts_with("configuration error: matrix_token_secret "), "{secret:?}: {err}");
            if secret.len() > 8 {
                assert!(!err.contains(secret), "never the secret: {err}");
            }
        }
        let mut o = options(false, true);
        o.matrix_token_secret = Some("k".repeat(32));
        assert!(Authenticator::new(o).is_ok());
    }

    #[test]
    fn from_raw_fills_the_options_from_raw_config_values() {
        let raw = [
            ("app_id", Raw::Str(b"app".to_vec())),
            ("uvs_issuer", Raw::Str(b"element".to_vec())),
            ("token_leeway", Raw::Integer(30)),
            ("uvs_timeout", Raw::Float(1.5)),
            ("uvs_max_in_flight", Raw::Float(64.0)),
            ("matrix_resync_interval", Raw::Str(b"not the auth module's".to_vec())),
        ];
        let o = AuthOptions::from_raw(raw.iter().map(|(n, r)| (*n, r))).unwrap();
        assert_eq!(o.standard.app_id.as_deref(), Some("app"));
        assert_eq!(o.uvs_issuer, Some(vec!["element".to_string()]));
        assert_eq!((o.standard.token_leeway, o.uvs_timeout, o.uvs_max_in_flight), (Some(30), Some(1.5), Some(64.0)));
        let bad = [("token_leeway", Raw::Float(1.5)), ("uvs_timeout", Raw::Str(b"5".to_vec()))];
        let problems = AuthOptions::from_raw(bad.iter().map(|(n, r)| (*n, r))).unwrap_err();
        assert_eq!(problems.iter().map(|p| p.option.as_str()).collect::<Vec<_>>(), ["token_leeway", "uvs_timeout"]);
    }

    #[test]
    fn matrix_issuer_defaults_to_app_id_and_uvs_issuer_overrides() {
        let room = name_for_room_id("!r:x");
        let other_iss = jwt(json!({"iss": "element", "room": "*",
                                   "context": {"matrix": {"token": "o", "room_id": "!r:x"}}}), b"n");
        let (auth, _) = Authenticator::new(options(false, true)).unwrap();
        assert!(matches!(auth.begin(other_iss.as_bytes(), Some(room.as_bytes()), NOW, None), Err(Error::IssuerNotAccepted(_))));
        let mut o = options(false, true);
        o.uvs_issuer = Some(vec!["element".into()]);
        let (auth, _) = Authenticator::new(o).unwrap();
        assert!(matches!(auth.begin(other_iss.as_bytes(), Some(room.as_bytes()), NOW, None), Ok(LoginStep::Matrix(_))));
    }

    #[test]
    fn new_builds_homeserver_config_from_options() {
        let mut o = options(false, false);
        o.matrix_homeserver_url = Some("http://hs:8008/".into());
        o.matrix_admin_token = Some("adm".into());
        o.matrix_cache_ttl = Some(0.0);
        o.matrix_state_ttl = Some(0.5);
        let (_, settings) = Authenticator::new(o).unwrap();
        let settings = settings.unwrap();
        let BackendConfig::Homeserver(hs) = &settings.backend else { panic!("{settings:?}") };
        assert_eq!((hs.base_url.as_str(), hs.admin_token.as_str(), hs.server_name.as_deref()), ("http://hs:8008/", "adm", None));
        assert!(settings.cache_ttl.is_zero());
        assert_eq!(settings.state_ttl, Duration::from_millis(500));
        assert!(!format!("{settings:?}").contains("adm\""), "admin token redacted");
    }
}
