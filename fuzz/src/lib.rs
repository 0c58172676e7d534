//! What the fuzz targets share: the fixed keys and verifiers, the oracles
//! (what must hold whenever a call succeeds), and every call into
//! `jitsi_security`.
//!
//! The targets never call the crate directly: when a path or a signature
//! moves, fix the "API" section below and nowhere else.

use std::sync::OnceLock;

use data_encoding::BASE64URL_NOPAD;
use serde_json::{Map, Value};

pub use jitsi_security::error::Error;

pub type Claims = Map<String, Value>;

/// The time every verification runs at (targets may shift it).
pub const NOW: u64 = 1_700_000_000;
/// The HS256 verifier's secret.
pub const SECRET: &[u8] = b"fuzz-secret";
/// The one issuer and the one audience the verifiers accept.
pub const ISSUER: &str = "app";
pub const AUDIENCE: &str = "jitsi";
/// The RS256 verifier's key (also the "secret" of the HS/RS confusion attack).
pub const RSA_PUB: &[u8] = include_bytes!("../../tests/fixtures/rsa_public.pem");

// ---------------------------------------------------------------------------
// API: the only place that names jitsi_security's items
// ---------------------------------------------------------------------------

/// Token functions take any bytes (`impl AsRef<[u8]>`), as they come from
/// the network. Were one to take `&str` again, convert here with
/// `String::from_utf8_lossy`.
pub fn peek(token: &[u8]) -> Result<Claims, Error> {
    jitsi_security::standard::token::peek(token).map(|c| c.to_map())
}

/// `json::Object::parse` (the claims' decoder) read back as serde_json
/// values, or `None` when it refuses the bytes.
pub fn json_object(bytes: &[u8]) -> Option<Value> {
    jitsi_security::standard::json::Object::parse(bytes.to_vec()).map(|o| o.root().to_value())
}

/// A verifier built once, and the algorithm it is pinned to.
pub struct Verifier {
    inner: jitsi_security::standard::token::Verifier,
    pub algorithm: &'static str,
}

impl Verifier {
    fn new(algorithm: &'static str, key: jitsi_security::standard::token::KeySource) -> Self {
        let inner = jitsi_security::standard::token::Verifier::new(jitsi_security::standard::token::VerifierConfig {
            algorithm: algorithm.into(),
            key,
            accepted_issuers: vec![ISSUER.into()],
            accepted_audiences: vec![AUDIENCE.into()],
            require_room_claim: true,
            leeway: 0,
        })
        .expect("fuzz verifier config is valid");
        Verifier { inner, algorithm }
    }

    pub fn verify(&self, token: &[u8], now: u64) -> Result<Claims, Error> {
        self.inner.verify(token, now).map(|c| c.to_map())
    }
}

/// HS256 with [`SECRET`].
pub fn hs256() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| Verifier::new("HS256", jitsi_security::standard::token::KeySource::Secret(SECRET.to_vec())))
}

/// RS256 with tests/fixtures/rsa_public.pem.
pub fn rs256() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| Verifier::new("RS256", jitsi_security::standard::token::KeySource::PublicKeyPem(RSA_PUB.to_vec())))
}

pub fn name_for_room_id(room_id: &str) -> String {
    jitsi_security::matrix::room::name_for_room_id(room_id)
}

pub fn room_id_for_name(name: &str) -> Result<String, Error> {
    jitsi_security::matrix::room::room_id_for_name(name)
}

pub fn check_room(name: &str, room_id: &str) -> Result<(), Error> {
    jitsi_security::matrix::room::check_room(name, room_id)
}

/// The UVS decision, reduced to what the oracle looks at.
#[derive(Debug)]
pub struct UvsVerdict {
    /// `ok`, `not_in_room`, `invalid_token` or `invalid_response`.
    pub code: &'static str,
    /// The failure kind (`http_status`, `bad_body`...) of a failure.
    pub failure: Option<&'static str>,
    pub is_owner: bool,
    pub detail: String,
}

pub fn classify(status: u16, body: &[u8], verify_membership: bool) -> UvsVerdict {
    use jitsi_security::matrix::verify::{uvs, Verdict};
    let v = uvs::classify(status, body, verify_membership);
    UvsVerdict {
        code: v.code(),
        failure: match &v {
            Verdict::Failure(f) => Some(f.kind()),
            _ => None,
        },
        is_owner: v.is_owner(),
        detail: v.detail("UVS"),
    }
}

// ---------------------------------------------------------------------------
// Oracles
// ---------------------------------------------------------------------------

pub fn b64(bytes: &[u8]) -> String {
    BASE64URL_NOPAD.encode(bytes)
}

/// The header of a token, decoded independently of the crate.
pub fn header_of(token: &[u8]) -> Option<Claims> {
    let seg = token.trim_ascii().split(|&b| b == b'.').next()?;
    let end = seg.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    let bytes = BASE64URL_NOPAD.decode(&seg[..end]).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Panics unless a token the verifier `v` accepted at `now` deserved it:
/// its header pins `v`'s algorithm, its claims pass every check, and
/// `peek` reads the same claims.
pub fn assert_verified_token_is_acceptable(v: &Verifier, token: &[u8], claims: &Claims, now: u64) {
    let header = header_of(token).expect("verified token has a JSON object header");
    assert_eq!(header.get("alg").and_then(Value::as_str), Some(v.algorithm), "alg not pinned: {header:?}");
    match header.get("typ") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) => assert!(t.eq_ignore_ascii_case("JWT"), "typ {t:?} accepted"),
        Some(t) => panic!("typ {t} accepted"),
    }
    assert_claims_are_acceptable(claims, now);
    assert_eq!(peek(token).as_ref(), Ok(claims), "peek reads other claims than verify");
}

/// Panics unless `claims` pass the verifiers' checks at `now`.
pub fn assert_claims_are_acceptable(claims: &Claims, now: u64) {
    assert_eq!(claims.get("iss").and_then(Value::as_str), Some(ISSUER), "iss");
    match claims.get("aud") {
        Some(Value::String(a)) => assert_eq!(a, AUDIENCE, "aud"),
        Some(Value::Array(a)) => {
            assert!(a.iter().all(Value::is_string), "aud with a non-string: {a:?}");
            assert!(a.iter().any(|x| x == AUDIENCE), "aud {a:?}");
        }
        other => panic!("aud {other:?} accepted"),
    }
    assert!(claims.get("room").is_some_and(Value::is_string), "room {:?} accepted", claims.get("room"));
    let now = now as f64;
    match claims.get("exp") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) => assert!(now < n.as_f64().unwrap(), "expired exp {n} accepted at {now}"),
        Some(e) => panic!("exp {e} accepted"),
    }
    match claims.get("nbf") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) => assert!(now >= n.as_f64().unwrap(), "future nbf {n} accepted at {now}"),
        Some(e) => panic!("nbf {e} accepted"),
    }
}

/// Panics unless the UVS decision follows from the status and body alone,
/// as docs/design.md, "Verifying Matrix users" says: anything unusable fails closed.
pub fn assert_uvs_verdict_follows_from_body(status: u16, body: &[u8], vm: bool, v: &UvsVerdict) {
    if status != 200 {
        assert_eq!((v.code, v.failure), ("invalid_response", Some("http_status")), "status {status}");
        return;
    }
    let obj = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => o,
        _ => {
            assert_eq!((v.code, v.failure), ("invalid_response", Some("bad_body")), "not a JSON object");
            return;
        }
    };
    let results = match obj.get("results") {
        None | Some(Value::Null) => {
            assert_eq!((v.code, v.failure), ("invalid_response", Some("bad_body")), "no results");
            return;
        }
        Some(r) => r,
    };
    if !results.is_object() {
        assert_eq!((v.code, v.failure), ("invalid_response", Some("bad_body")), "results {results}");
    }
    if v.code == "ok" {
        assert_eq!(results.get("user"), Some(&Value::Bool(true)), "verified without results.user");
        if vm {
            assert_eq!(results.get("room_membership"), Some(&Value::Bool(true)), "verified without membership");
        }
    }
    if v.is_owner {
        assert!(vm && v.code == "ok", "owner without a membership check");
        let pl = obj.get("power_levels").expect("owner without power_levels");
        assert!(pl.is_object(), "owner from power_levels {pl} that is not an object");
    }
}

// ---------------------------------------------------------------------------
// Keys (jws): the API section's last part, kept beside its only user
// ---------------------------------------------------------------------------

/// What a public key parse gave: the algorithm it verifies, and a check of
/// `sig` over `message` with it (which must not panic either).
pub fn public_key_from_pem(pem: &[u8], message: &[u8], sig: &[u8]) -> Option<&'static str> {
    let _ = jitsi_security::standard::jws::SigKey::rsa_pem(pem).map(|k| k.verify(message, sig));
    let _ = jitsi_security::standard::jws::SigKey::ec_pem(pem).map(|k| k.verify(message, sig));
    let (key, alg) = jitsi_security::standard::jws::SigKey::public_pem(pem).ok()?;
    let _ = key.verify(message, sig);
    Some(alg)
}

/// The same for one JWK.
pub fn public_key_from_jwk(jwk: &Value, message: &[u8], sig: &[u8]) -> Option<&'static str> {
    let (key, alg) = jitsi_security::standard::jws::SigKey::from_jwk(jwk).ok()?;
    let _ = key.verify(message, sig);
    Some(alg)
}

// ---------------------------------------------------------------------------
// Structured JSON for the structured targets
// ---------------------------------------------------------------------------

/// Fuzzed JSON built from names the code looks at and small values, so the
/// fuzzer reaches shapes (an array where an object belongs, a string where a
/// number belongs) that byte mutations rarely produce.
pub mod json {
    use arbitrary::Arbitrary;
    use serde_json::{Map, Value};

    #[derive(Arbitrary, Debug)]
    pub enum Key {
        // token header and claims
        Alg,
        Typ,
        Iss,
        Aud,
        Room,
        Exp,
        Nbf,
        Sub,
        Context,
        Matrix,
        // UVS answers
        Results,
        User,
        RoomMembership,
        UserId,
        PowerLevels,
        StateDefault,
        Other(String),
    }

    #[derive(Arbitrary, Debug)]
    pub enum Json {
        Null,
        Bool(bool),
        Int(i64),
        Float(f64),
        /// `NOW` plus a small offset, to land near the time checks.
        Time(i16),
        Str(String),
        Known(Known),
        Array(Vec<Json>),
        Object(Vec<(Key, Json)>),
    }

    #[derive(Arbitrary, Debug)]
    pub enum Known {
        Hs256,
        Rs256,
        Es256,
        None,
        Jwt,
        Issuer,
        Audience,
        /// A power level as an old room holds it.
        Fifty,
    }

    impl Key {
        pub fn name(&self) -> &str {
            match self {
                Key::Alg => "alg",
                Key::Typ => "typ",
                Key::Iss => "iss",
                Key::Aud => "aud",
                Key::Room => "room",
                Key::Exp => "exp",
                Key::Nbf => "nbf",
                Key::Sub => "sub",
                Key::Context => "context",
                Key::Matrix => "matrix",
                Key::Results => "results",
                Key::User => "user",
                Key::RoomMembership => "room_membership",
                Key::UserId => "user_id",
                Key::PowerLevels => "power_levels",
                Key::StateDefault => "state_default",
                Key::Other(s) => s,
            }
        }
    }

    /// A JSON object of these fields (a repeated key keeps its last value).
    pub fn object(fields: &[(Key, Json)]) -> Value {
        object_at(fields, 0)
    }

    fn object_at(fields: &[(Key, Json)], depth: u32) -> Value {
        let mut m = Map::new();
        for (k, v) in fields {
            m.insert(k.name().to_string(), v.value_at(depth + 1));
        }
        Value::Object(m)
    }

    impl Json {
        pub fn value(&self) -> Value {
            self.value_at(0)
        }

        fn value_at(&self, depth: u32) -> Value {
            if depth > 6 {
                return Value::Null;
            }
            match self {
                Json::Null => Value::Null,
                Json::Bool(b) => Value::Bool(*b),
                Json::Int(i) => Value::from(*i),
                Json::Float(x) => Value::from(*x), // NaN and infinities become null
                Json::Time(d) => Value::from(super::NOW as i64 + i64::from(*d)),
                Json::Str(s) => Value::from(s.as_str()),
                Json::Known(k) => Value::from(match k {
                    Known::Hs256 => "HS256",
                    Known::Rs256 => "RS256",
                    Known::Es256 => "ES256",
                    Known::None => "none",
                    Known::Jwt => "JWT",
                    Known::Issuer => super::ISSUER,
                    Known::Audience => super::AUDIENCE,
                    Known::Fifty => "50",
                }),
                Json::Array(a) => Value::Array(a.iter().map(|j| j.value_at(depth + 1)).collect()),
                Json::Object(o) => object_at(o, depth),
            }
        }
    }
}
