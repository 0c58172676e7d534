//! JWT handling: verify standard Jitsi tokens with a pinned algorithm, or
//! decode without verifying (Matrix tokens, whose trust anchor is UVS).
//! Pure Rust: claims come out as a [`json::Object`], decoded once.

use data_encoding::BASE64URL_NOPAD;
use serde_json::{Map, Value};

use crate::standard::json::{self, Kind, Val};
use crate::standard::jws::SigKey;

use crate::error::{Error, Result};
use crate::text::Untrusted;

/// Longest token accepted, in bytes (real ones are well under 8 KiB).
pub const MAX_TOKEN_BYTES: usize = 32 * 1024;

/// Claims of a token: the payload's JSON object (a header is one too).
pub type Claims = json::Object;

/// Where the verification key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A shared secret for HS256/384/512 (`app_secret`).
    Secret(Vec<u8>),
    /// A PEM public key for RS256/ES256 (read from a file by the caller).
    PublicKeyPem(Vec<u8>),
}

impl KeySource {
    /// Read a PEM public key file (`jwt_public_key_file`).
    pub fn from_pem_file(path: &str) -> Result<Self> {
        std::fs::read(path)
            .map(KeySource::PublicKeyPem)
            .map_err(|e| Error::Config(format!("cannot read public key file '{path}': {e}")))
    }
}

/// How standard tokens are verified (the module's options, parsed).
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Pinned algorithm name: HS256, HS384, HS512, RS256 or ES256.
    pub algorithm: String,
    pub key: KeySource,
    /// Accepted `iss` values; `*` accepts any.
    pub accepted_issuers: Vec<String>,
    /// Accepted `aud` values; `*` accepts any (but `aud` must be present).
    pub accepted_audiences: Vec<String>,
    pub require_room_claim: bool,
    /// Seconds of clock skew tolerated on `exp` and `nbf`.
    pub leeway: u64,
}

/// The module options that configure standard-token verification, as the
/// Prosody shim reads them (same names as Jitsi's token auth).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct VerifierOptions {
    pub app_id: Option<String>,
    pub app_secret: Option<String>,
    pub jwt_public_key_file: Option<String>,
    pub signature_algorithm: Option<String>,
    pub asap_accepted_issuers: Option<Vec<String>>,
    pub asap_accepted_audiences: Option<Vec<String>>,
    pub asap_require_room_claim: Option<bool>,
    pub token_leeway: Option<u64>,
    /// Keys by `kid` from an ASAP key server (see `crate::standard::keys`).
    pub asap_key_server: Option<String>,
    /// Keys by `kid` from a JWKS or kid -> PEM map (see `crate::standard::keys`).
    pub cache_keys_url: Option<String>,
    /// Size of the LRU of keys fetched by `kid` (default 128).
    pub jwt_pubkey_cache_size: Option<f64>,
}

impl VerifierOptions {
    /// Apply Jitsi's defaults: HS256 (RS256 when only a public key is given),
    /// issuers `{app_id}`, audiences `{"*"}`, room claim required, no leeway.
    pub fn into_config(self) -> Result<VerifierConfig> {
        let app_id = self
            .app_id
            .filter(|a| !a.is_empty())
            .ok_or_else(|| Error::Config("app_id is not set".into()))?;
        let key = match (self.app_secret.filter(|s| !s.is_empty()), &self.jwt_public_key_file) {
            (Some(_), Some(_)) => {
                return Err(Error::Config("set app_secret or jwt_public_key_file, not both".into()))
            }
            (Some(secret), None) => KeySource::Secret(secret.into_bytes()),
            (None, Some(path)) => KeySource::from_pem_file(path).map_err(|e| match e {
                Error::Config(why) => Error::Config(format!("jwt_public_key_file: {why}")),
                other => other,
            })?,
            (None, None) => {
                return Err(Error::Config("neither app_secret nor jwt_public_key_file is set".into()))
            }
        };
        let algorithm = self.signature_algorithm.unwrap_or_else(|| {
            if matches!(key, KeySource::Secret(_)) { "HS256" } else { "RS256" }.to_string()
        });
        Ok(VerifierConfig {
            algorithm,
            key,
            accepted_issuers: self.asap_accepted_issuers.unwrap_or_else(|| vec![app_id]),
            accepted_audiences: self.asap_accepted_audiences.unwrap_or_else(|| vec!["*".into()]),
            require_room_claim: self.asap_require_room_claim.unwrap_or(true),
            leeway: self.token_leeway.unwrap_or(0),
        })
    }
}

/// A configured verifier; built once at module load.
pub struct Verifier {
    algorithm_name: &'static str,
    key: SigKey,
    accepted_issuers: Vec<String>,
    accepted_audiences: Vec<String>,
    require_room_claim: bool,
    leeway: u64,
}

fn parse_algorithm(name: &str) -> Result<&'static str> {
    Ok(match name.to_ascii_uppercase().as_str() {
        "HS256" => "HS256",
        "HS384" => "HS384",
        "HS512" => "HS512",
        "RS256" => "RS256",
        "ES256" => "ES256",
        _ => {
            return Err(Error::Config(format!(
                "signature_algorithm '{name}' is not supported (HS256, HS384, HS512, RS256, ES256)"
            )))
        }
    })
}

/// A token split and decoded once: header, claims, and what the signature
/// covers.
pub struct Parsed<'a> {
    pub header: Claims,
    pub claims: Claims,
    signing_input: &'a str,
    signature: &'a str,
}

/// Split and decode a token (any bytes); the header's `typ`, when
/// present, must be `JWT`. Neither the signature nor the times are checked.
pub fn parse(token: &[u8]) -> Result<Parsed<'_>> {
    let (token, parts) = split(token)?;
    let header = decode_json_segment(parts[0], "header")?;
    if let Some(t) = header.get("typ").filter(|t| !t.is_null()) {
        if !t.as_str().is_some_and(|t| t.eq_ignore_ascii_case("JWT")) {
            return Err(Error::TokenType(Untrusted::new(t.as_str().unwrap_or("(not a string)"))));
        }
    }
    // RFC 7515 section 4.1.11: extensions listed in `crit` must be
    // understood; this verifier understands none.
    if let Some(crit) = header.get("crit").filter(|c| !c.is_null()) {
        let shown = match crit.kind() {
            Kind::Array => crit.items().filter_map(|n| n.as_str()).collect::<Vec<_>>().join(","),
            _ => "(not a list)".into(),
        };
        return Err(Error::TokenCritical(Untrusted::new(&shown)));
    }
    let claims = decode_json_segment(parts[1], "payload")?;
    Ok(Parsed { header, claims, signing_input: &token[..parts[0].len() + 1 + parts[1].len()], signature: parts[2] })
}

impl Verifier {
    pub fn new(config: VerifierConfig) -> Result<Self> {
        let algorithm_name = parse_algorithm(&config.algorithm)?;
        let key = match (&config.key, algorithm_name) {
            (KeySource::Secret(s), "HS256" | "HS384" | "HS512") => {
                if s.is_empty() {
                    return Err(Error::Config("app_secret is empty".into()));
                }
                SigKey::hmac(algorithm_name, s).expect("an HMAC algorithm")
            }
            (KeySource::PublicKeyPem(pem), "RS256") => SigKey::rsa_pem(pem)
                .map_err(|e| Error::Config(format!("public key is not an RSA PEM key: {e}")))?,
            (KeySource::PublicKeyPem(pem), "ES256") => SigKey::ec_pem(pem)
                .map_err(|e| Error::Config(format!("public key is not an EC PEM key: {e}")))?,
            (KeySource::Secret(_), _) => {
                return Err(Error::Config(format!(
                    "{algorithm_name} needs a public key file, not app_secret"
                )))
            }
            (KeySource::PublicKeyPem(_), _) => {
                return Err(Error::Config(format!(
                    "{algorithm_name} needs app_secret, not a public key file"
                )))
            }
        };
        if config.accepted_issuers.is_empty() {
            return Err(Error::Config("no accepted issuers (set app_id)".into()));
        }
        if config.accepted_audiences.is_empty() {
            return Err(Error::Config("asap_accepted_audiences is empty".into()));
        }
        Ok(Verifier {
            algorithm_name,
            key,
            accepted_issuers: config.accepted_issuers,
            accepted_audiences: config.accepted_audiences,
            require_room_claim: config.require_room_claim,
            leeway: config.leeway,
        })
    }

    /// A verifier for a key chosen at login (by the token's `kid`, or put
    /// on the session by a fetch-key handler): the algorithm follows the
    /// key's type, never the token's header; issuers, audiences, room claim
    /// and leeway as configured.
    pub fn for_key(options: &VerifierOptions, key: SigKey, algorithm_name: &'static str) -> Result<Self> {
        let app_id = options.app_id.clone().filter(|a| !a.is_empty()).ok_or_else(|| Error::Config("app_id is not set".into()))?;
        Ok(Verifier {
            algorithm_name,
            key,
            accepted_issuers: options.asap_accepted_issuers.clone().unwrap_or_else(|| vec![app_id]),
            accepted_audiences: options.asap_accepted_audiences.clone().unwrap_or_else(|| vec!["*".into()]),
            require_room_claim: options.asap_require_room_claim.unwrap_or(true),
            leeway: options.token_leeway.unwrap_or(0),
        })
    }

    /// Verify `token` (any bytes) at time `now` (seconds since the epoch).
    pub fn verify(&self, token: impl AsRef<[u8]>, now: u64) -> Result<Claims> {
        self.verify_parsed(parse(token.as_ref())?, now)
    }

    /// Verify a token already parsed (its JSON is decoded only once).
    pub fn verify_parsed(&self, parsed: Parsed<'_>, now: u64) -> Result<Claims> {
        check_header(&parsed.header, self.algorithm_name)?;
        self.check_signature(&parsed)?;
        self.check_claims(&parsed.claims, now)?;
        Ok(parsed.claims)
    }

    fn check_signature(&self, parsed: &Parsed<'_>) -> Result<()> {
        let signature = BASE64URL_NOPAD
            .decode(parsed.signature.as_bytes())
            .map_err(|_| Error::TokenMalformed("signature is not base64url"))?;
        if !self.key.verify(parsed.signing_input.as_bytes(), &signature) {
            return Err(Error::TokenSignature);
        }
        Ok(())
    }

    fn check_claims(&self, claims: &Claims, now: u64) -> Result<()> {
        let r = Registered::of(claims);
        check_times(&r, now, self.leeway)?;
        issuer_check(&self.accepted_issuers, r.iss)?;
        self.check_audience(&r)?;
        self.check_room_claim(&r)?;
        check_context(&r)
    }

    /// Every check of [`Verifier::verify`] on its own, for an admin's
    /// `check-token`: the claims (when the token decodes) and each check's
    /// name with its outcome. Never the signature or a key.
    pub fn diagnose(&self, token: impl AsRef<[u8]>, now: u64) -> (Option<Claims>, Vec<(&'static str, Result<()>)>) {
        let parsed = match parse(token.as_ref()) {
            Ok(p) => p,
            Err(e) => return (None, vec![("format", Err(e))]),
        };
        let r = Registered::of(&parsed.claims);
        let checks = vec![
            ("format", Ok(())),
            ("header (alg)", check_header(&parsed.header, self.algorithm_name)),
            ("signature", self.check_signature(&parsed)),
            ("time (exp, nbf)", check_times(&r, now, self.leeway)),
            ("issuer", issuer_check(&self.accepted_issuers, r.iss)),
            ("audience", self.check_audience(&r)),
            ("room claim", self.check_room_claim(&r)),
            ("context", check_context(&r)),
        ];
        (Some(parsed.claims), checks)
    }

    fn check_audience(&self, r: &Registered<'_>) -> Result<()> {
        let aud = r.aud.filter(|a| !a.is_null()).ok_or(Error::ClaimMissing("aud"))?;
        let accepted = match aud.kind() {
            Kind::Str(s) => accepts(&self.accepted_audiences, s),
            Kind::Array => {
                let mut any = false;
                for item in aud.items() {
                    any |= accepts(&self.accepted_audiences, item.as_str().ok_or(Error::ClaimType("aud"))?);
                }
                any
            }
            _ => return Err(Error::ClaimType("aud")),
        };
        if !accepted {
            return Err(Error::AudienceNotAccepted);
        }
        Ok(())
    }

    fn check_room_claim(&self, r: &Registered<'_>) -> Result<()> {
        match r.room.map(|r| r.kind()) {
            None | Some(Kind::Null) if self.require_room_claim => Err(Error::ClaimMissing("room")),
            None | Some(Kind::Null) | Some(Kind::Str(_)) => Ok(()),
            Some(_) => Err(Error::ClaimType("room")),
        }
    }
}

/// The registered claims the checks read, looked up in one pass over the
/// claims.
struct Registered<'a> {
    exp: Option<Val<'a>>,
    nbf: Option<Val<'a>>,
    iss: Option<Val<'a>>,
    aud: Option<Val<'a>>,
    room: Option<Val<'a>>,
    context: Option<Val<'a>>,
}

impl<'a> Registered<'a> {
    fn of(claims: &'a Claims) -> Registered<'a> {
        let [exp, nbf, iss, aud, room, context] = claims.root().pick(["exp", "nbf", "iss", "aud", "room", "context"]);
        Registered { exp, nbf, iss, aud, room, context }
    }
}

/// `context`, when present, is an object (its parts become session fields).
fn check_context(r: &Registered<'_>) -> Result<()> {
    match r.context.map(|c| c.kind()) {
        None | Some(Kind::Null) | Some(Kind::Object) => Ok(()),
        Some(_) => Err(Error::ClaimType("context")),
    }
}

/// `iss` must be a string among `accepted` (`*` accepts any): the one
/// issuer rule, for standard and Matrix tokens.
pub fn check_issuer(accepted: &[String], claims: &Claims) -> Result<()> {
    issuer_check(accepted, claims.get("iss"))
}

fn issuer_check(accepted: &[String], iss: Option<Val<'_>>) -> Result<()> {
    let iss = match iss.map(|i| i.kind()) {
        None | Some(Kind::Null) => return Err(Error::ClaimMissing("iss")),
        Some(Kind::Str(s)) => s,
        Some(_) => return Err(Error::ClaimType("iss")),
    };
    if !accepts(accepted, iss) {
        return Err(Error::IssuerNotAccepted(iss.into()));
    }
    Ok(())
}

fn accepts(accepted: &[String], value: &str) -> bool {
    accepted.iter().any(|a| a == "*" || a == value)
}

/// The bytes a token may hold: base64url's alphabet and dots (a table:
/// this runs over every byte of every login's token).
const TOKEN_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.';
        b += 1;
    }
    t
};

/// Any bytes in; the token (trimmed, now known to be ASCII) and its three
/// segments out. Only base64url characters and dots are accepted (JWS
/// segments have no `=` padding, RFC 7515).
fn split(token: &[u8]) -> Result<(&str, [&str; 3])> {
    let token = token.trim_ascii();
    if token.is_empty() {
        return Err(Error::TokenMissing);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Error::TokenMalformed("token is longer than 32768 bytes"));
    }
    // Without early exit: a branch-free loop over a few hundred bytes.
    if !token.iter().fold(true, |ok, &b| ok & TOKEN_BYTE[b as usize]) {
        return Err(Error::TokenMalformed("token has characters that are not base64url"));
    }
    // Checked just above: every byte is ASCII.
    let token = std::str::from_utf8(token).map_err(|_| Error::TokenMalformed("token is not ASCII"))?;
    let mut it = token.split('.');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(h), Some(p), Some(s), None) => Ok((token, [h, p, s])),
        _ => Err(Error::TokenMalformed("not three dot-separated segments")),
    }
}

fn decode_json_segment(segment: &str, what: &'static str) -> Result<Claims> {
    let bytes = BASE64URL_NOPAD
        .decode(segment.as_bytes())
        .map_err(|_| {
            Error::TokenMalformed(if what == "header" {
                "header is not base64url"
            } else {
                "payload is not base64url"
            })
        })?;
    json::Object::parse(bytes).ok_or(Error::TokenMalformed(if what == "header" {
        "header is not a JSON object"
    } else {
        "payload is not a JSON object"
    }))
}

fn header_alg(header: &Claims) -> &str {
    header.get("alg").and_then(|a| a.as_str()).unwrap_or("(missing)")
}

/// The header's `alg` must be the algorithm pinned by configuration (its
/// `typ` and `crit` were checked by [`parse`]).
fn check_header(header: &Claims, expected: &'static str) -> Result<()> {
    let alg = header_alg(header);
    if alg != expected {
        return Err(Error::TokenAlgorithm { got: alg.into(), expected });
    }
    Ok(())
}

fn number_claim(value: Option<Val<'_>>, name: &'static str) -> Result<Option<f64>> {
    match value {
        None => Ok(None),
        Some(v) if v.is_null() => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or(Error::ClaimType(name)),
    }
}

/// `now >= exp + leeway` and `now + leeway < nbf` fail; both are optional
/// but must be numbers when present.
fn check_times(r: &Registered<'_>, now: u64, leeway: u64) -> Result<()> {
    let now = now as f64;
    let leeway = leeway as f64;
    if let Some(exp) = number_claim(r.exp, "exp")? {
        if now >= exp + leeway {
            return Err(Error::TokenExpired);
        }
    }
    if let Some(nbf) = number_claim(r.nbf, "nbf")? {
        if now + leeway < nbf {
            return Err(Error::TokenNotYetValid);
        }
    }
    Ok(())
}

/// Parse a token without checking signature or times: header JSON (with
/// `typ` JWT when present) and payload JSON object.
pub fn peek(token: impl AsRef<[u8]>) -> Result<Claims> {
    parse(token.as_ref()).map(|p| p.claims)
}

/// Decode a token without checking its signature (Matrix tokens); `exp`
/// and `nbf` still apply.
pub fn decode_unverified(token: impl AsRef<[u8]>, now: u64) -> Result<Claims> {
    let claims = peek(token)?;
    check_times(&Registered::of(&claims), now, 0)?;
    Ok(claims)
}

/// True when the token's payload carries `context.matrix` (a Matrix token).
pub fn is_matrix(claims: &Claims) -> bool {
    claims
        .get("context")
        .and_then(|c| c.get("matrix"))
        .is_some_and(|m| !m.is_null())
}

/// Where each session field comes from in the claims (README, "Standard
/// Jitsi tokens"): the one description both [`session_fields`] and the Lua
/// binding's tables are built from, through [`session_field_sources`].
pub const SESSION_FIELDS: &[(&str, &[&str])] = &[
    ("jitsi_meet_room", &["room"]),
    ("jitsi_meet_domain", &["sub"]),
    ("jitsi_meet_auth_issuer", &["iss"]),
    ("jitsi_meet_context_user", &["context", "user"]),
    ("jitsi_meet_context_group", &["context", "group"]),
    ("jitsi_meet_context_features", &["context", "features"]),
    ("jitsi_meet_context_room", &["context", "room"]),
    ("jitsi_meet_str_tenant", &["context", "tenant"]),
];

/// No `context` but a top-level `user_id`: jitsi's token auth makes it the
/// user (`jitsi_meet_context_user = { id = user_id }`).
fn user_id_fallback<'a>(user_id: Option<Val<'a>>, context: Option<Val<'a>>) -> Option<Val<'a>> {
    user_id.filter(|v| !v.is_null() && context.is_none())
}

/// What one session field holds, as a value inside the claims.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldSource<'a> {
    /// This claim's value, as it is.
    Claim(Val<'a>),
    /// `{ "id": <this claim> }` (the `user_id` fallback).
    UserId(Val<'a>),
}

impl<'a> FieldSource<'a> {
    /// The claim the field is made from (the Lua binding finds it by position).
    pub fn claim(&self) -> Val<'a> {
        match self {
            FieldSource::Claim(v) | FieldSource::UserId(v) => *v,
        }
    }
}

/// The `jitsi_meet_context_user` entry of [`SESSION_FIELDS`] (the
/// `user_id` fallback's field).
const USER_FIELD: usize = 3;

/// Every session field of `claims` (by its index in [`SESSION_FIELDS`])
/// with where its value comes from: [`SESSION_FIELDS`] walked through
/// objects (a missing or null value, or a path through a non-object, gives
/// no field), then the `user_id` fallback. At most one source per field.
pub fn session_field_sources(claims: &Claims) -> impl Iterator<Item = (usize, FieldSource<'_>)> {
    // Every first key, and `user_id` for the fallback, in one pass over
    // the claims (the user field's first key is `context`).
    const N: usize = SESSION_FIELDS.len();
    let keys: [&str; N + 1] = std::array::from_fn(|i| if i < N { SESSION_FIELDS[i].1[0] } else { "user_id" });
    let found = claims.root().pick(keys);
    let fallback = user_id_fallback(found[N], found[USER_FIELD]);
    let walked = SESSION_FIELDS.iter().zip(found).enumerate().filter_map(move |(i, ((_, path), first))| {
        let mut v = first;
        for key in &path[1..] {
            v = v.and_then(|x| x.get(key));
        }
        v.filter(|v| !v.is_null()).map(|v| (i, FieldSource::Claim(v)))
    });
    // The fallback needs `context` absent, so `context.user` gave no field.
    walked.chain(fallback.map(|id| (USER_FIELD, FieldSource::UserId(id))))
}

/// The session fields (README, "Standard Jitsi tokens") of verified claims.
pub fn session_fields(claims: &Claims) -> Map<String, Value> {
    session_field_sources(claims)
        .map(|(i, source)| {
            let value = match source {
                FieldSource::Claim(v) => v.to_value(),
                FieldSource::UserId(id) => serde_json::json!({ "id": id.to_value() }),
            };
            (SESSION_FIELDS[i].0.to_string(), value)
        })
        .collect()
}

/// The session field that says when a token's grants lapse.
pub const GRANTS_UNTIL_FIELD: &str = "jitsi_security_grants_until";

/// When the grants of verified `claims` lapse: `exp` + `leeway` (seconds
/// since the epoch); none when the token has no `exp`.
pub fn grants_until(claims: &Claims, leeway: u64) -> Option<f64> {
    claims.get("exp").and_then(|e| e.as_f64()).map(|exp| exp + leeway as f64)
}

/// Current time in seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"unit-test-secret";
    const NOW: u64 = 1_700_000_000;
    const RSA_PRIV: &[u8] = include_bytes!("../../tests/fixtures/rsa_private.pem");
    const RSA_PUB: &[u8] = include_bytes!("../../tests/fixtures/rsa_public.pem");
    const EC_PRIV: &[u8] = include_bytes!("../../tests/fixtures/ec_private.pem");
    const EC_PUB: &[u8] = include_bytes!("../../tests/fixtures/ec_public.pem");

    fn config(alg: &str, key: KeySource) -> VerifierConfig {
        VerifierConfig {
            algorithm: alg.into(),
            key,
            accepted_issuers: vec!["app".into()],
            accepted_audiences: vec!["*".into()],
            require_room_claim: true,
            leeway: 0,
        }
    }

    fn hs_verifier() -> Verifier {
        Verifier::new(config("HS256", KeySource::Secret(SECRET.to_vec()))).unwrap()
    }

    fn good_claims() -> Value {
        json!({"iss": "app", "aud": "jitsi", "sub": "meet.example.com", "room": "r1",
               "exp": NOW + 60, "context": {"user": {"name": "A"}, "room": {"lobby": true}}})
    }

    fn hs(claims: &Value) -> String {
        encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    fn b64(v: &Value) -> String {
        BASE64URL_NOPAD.encode(v.to_string().as_bytes())
    }

    #[test]
    fn unknown_header_fields_are_ignored_but_crit_is_not() {
        let token = format!("{}.{}.", b64(&json!({"alg": "HS256", "x5u": "https://x", "zzz": 1})), b64(&good_claims()));
        assert!(peek(&token).is_ok());
        let crit = format!("{}.{}.", b64(&json!({"alg": "HS256", "crit": ["b64"], "b64": false})), b64(&good_claims()));
        assert_eq!(peek(&crit).unwrap_err().to_string(), "token header lists critical extensions 'b64' that are not understood");
        assert_eq!(Error::TokenCritical("b64".into()).reason_code(), "invalid_auth_token");
    }

    #[test]
    fn the_user_id_fallback_fills_the_user_field() {
        assert_eq!(SESSION_FIELDS[USER_FIELD], ("jitsi_meet_context_user", &["context", "user"][..]));
    }

    #[test]
    fn grants_until_is_exp_plus_leeway() {
        let claims = good_claims();
        assert_eq!(grants_until(&Claims::from_map(claims.as_object().unwrap()), 30), Some((NOW + 90) as f64));
        assert_eq!(grants_until(&Claims::parse_str("{}").unwrap(), 30), None);
    }

    #[test]
    fn verify_accepts_good_hs256_token() {
        let claims = hs_verifier().verify(hs(&good_claims()), NOW).unwrap();
        assert_eq!(claims.get("room").and_then(|r| r.as_str()), Some("r1"));
    }

    #[test]
    fn verify_refusals_each_have_their_own_reason() {
        let v = hs_verifier();
        let with = |patch: Value| {
            let mut c = good_claims();
            for (k, val) in patch.as_object().unwrap() {
                if val.is_null() {
                    c.as_object_mut().unwrap().remove(k);
                } else {
                    c[k] = val.clone();
                }
            }
            hs(&c)
        };
        let cases: Vec<(&str, String, Error)> = vec![
            ("expired", with(json!({"exp": NOW - 1})), Error::TokenExpired),
            ("exp equal to now", with(json!({"exp": NOW})), Error::TokenExpired),
            ("not yet valid", with(json!({"nbf": NOW + 10})), Error::TokenNotYetValid),
            ("exp as string", with(json!({"exp": "later"})), Error::ClaimType("exp")),
            ("nbf as string", with(json!({"nbf": "soon"})), Error::ClaimType("nbf")),
            ("wrong issuer", with(json!({"iss": "other"})), Error::IssuerNotAccepted("other".into())),
            ("missing issuer", with(json!({"iss": null})), Error::ClaimMissing("iss")),
            ("issuer not a string", with(json!({"iss": 5})), Error::ClaimType("iss")),
            ("missing audience", with(json!({"aud": null})), Error::ClaimMissing("aud")),
            ("audience wrong type", with(json!({"aud": 7})), Error::ClaimType("aud")),
            ("missing room", with(json!({"room": null})), Error::ClaimMissing("room")),
            ("room not a string", with(json!({"room": 1})), Error::ClaimType("room")),
            ("context not an object", with(json!({"context": "x"})), Error::ClaimType("context")),
            ("padded segment", format!("{}=", hs(&good_claims())), Error::TokenMalformed("token has characters that are not base64url")),
            ("garbage", "garbage".into(), Error::TokenMalformed("not three dot-separated segments")),
            ("empty", "".into(), Error::TokenMissing),
            ("bad header b64", "a.e30.sig".into(), Error::TokenMalformed("header is not base64url")),
            ("not base64url chars", "%%%.e30.sig".into(), Error::TokenMalformed("token has characters that are not base64url")),
            ("newline inside", "e30.e30\n.sig".into(), Error::TokenMalformed("token has characters that are not base64url")),
            ("oversize", format!("e30.{}.sig", "a".repeat(MAX_TOKEN_BYTES)), Error::TokenMalformed("token is longer than 32768 bytes")),
            ("header not json", format!("{}.e30.sig", BASE64URL_NOPAD.encode(b"nope")),
                Error::TokenMalformed("header is not a JSON object")),
            ("crit header", {
                let mut h = Header::new(Algorithm::HS256);
                h.crit = Some(vec!["exp".into()]);
                encode(&h, &good_claims(), &EncodingKey::from_secret(SECRET)).unwrap()
            }, Error::TokenCritical("exp".into())),
            ("crit not a list", format!("{}.{}.sig", b64(&json!({"alg": "HS256", "crit": "b64"})), b64(&good_claims())),
                Error::TokenCritical("(not a list)".into())),
        ];
        for (name, token, want) in cases {
            assert_eq!(v.verify(&token, NOW).unwrap_err(), want, "case {name}");
        }
    }

    #[test]
    fn verify_rejects_wrong_signature() {
        let token = encode(&Header::new(Algorithm::HS256), &good_claims(),
                           &EncodingKey::from_secret(b"other-secret")).unwrap();
        assert_eq!(hs_verifier().verify(&token, NOW).unwrap_err(), Error::TokenSignature);
    }

    #[test]
    fn verify_rejects_tampered_payload() {
        let token = hs(&good_claims());
        let parts: Vec<&str> = token.split('.').collect();
        let mut c = good_claims();
        c["room"] = json!("*");
        let forged = format!("{}.{}.{}", parts[0], b64(&c), parts[2]);
        assert_eq!(hs_verifier().verify(&forged, NOW).unwrap_err(), Error::TokenSignature);
    }

    #[test]
    fn verify_rejects_alg_none() {
        for alg in ["none", "None", "NONE"] {
            let token = format!("{}.{}.", b64(&json!({"alg": alg, "typ": "JWT"})), b64(&good_claims()));
            assert_eq!(
                hs_verifier().verify(&token, NOW).unwrap_err(),
                Error::TokenAlgorithm { got: alg.into(), expected: "HS256" }
            );
        }
    }

    #[test]
    fn verify_rejects_hs_rs_confusion() {
        // An HS256 token whose "secret" is the server's RSA public key.
        let v = Verifier::new(config("RS256", KeySource::PublicKeyPem(RSA_PUB.to_vec()))).unwrap();
        let token = encode(&Header::new(Algorithm::HS256), &good_claims(),
                           &EncodingKey::from_secret(RSA_PUB)).unwrap();
        assert_eq!(v.verify(&token, NOW).unwrap_err(),
                   Error::TokenAlgorithm { got: "HS256".into(), expected: "RS256" });
    }

    #[test]
    fn verify_rejects_other_hs_strength() {
        let token = encode(&Header::new(Algorithm::HS512), &good_claims(),
                           &EncodingKey::from_secret(SECRET)).unwrap();
        assert_eq!(hs_verifier().verify(&token, NOW).unwrap_err(),
                   Error::TokenAlgorithm { got: "HS512".into(), expected: "HS256" });
    }

    #[test]
    fn verify_accepts_rs256_and_es256_with_pem_keys() {
        let rs = Verifier::new(config("RS256", KeySource::PublicKeyPem(RSA_PUB.to_vec()))).unwrap();
        let t = encode(&Header::new(Algorithm::RS256), &good_claims(),
                       &EncodingKey::from_rsa_pem(RSA_PRIV).unwrap()).unwrap();
        assert!(rs.verify(&t, NOW).is_ok());
        let es = Verifier::new(config("ES256", KeySource::PublicKeyPem(EC_PUB.to_vec()))).unwrap();
        let t = encode(&Header::new(Algorithm::ES256), &good_claims(),
                       &EncodingKey::from_ec_pem(EC_PRIV).unwrap()).unwrap();
        assert!(es.verify(&t, NOW).is_ok());
        // An ES256 token is refused by the RS256 verifier.
        assert!(matches!(rs.verify(&t, NOW), Err(Error::TokenAlgorithm { .. })));
    }

    #[test]
    fn verify_rejects_wrong_type() {
        let mut h = Header::new(Algorithm::HS256);
        h.typ = Some("JOSE+JSON".into());
        let t = encode(&h, &good_claims(), &EncodingKey::from_secret(SECRET)).unwrap();
        assert_eq!(hs_verifier().verify(&t, NOW).unwrap_err(), Error::TokenType("JOSE+JSON".into()));
    }

    #[test]
    fn verify_checks_audience_list_and_leeway() {
        let mut cfg = config("HS256", KeySource::Secret(SECRET.to_vec()));
        cfg.accepted_audiences = vec!["jitsi".into()];
        cfg.leeway = 30;
        let v = Verifier::new(cfg).unwrap();
        let mut c = good_claims();
        c["aud"] = json!(["x", "jitsi"]);
        c["exp"] = json!(NOW - 10);
        assert!(v.verify(hs(&c), NOW).is_ok(), "leeway covers 10 s");
        c["aud"] = json!("other");
        assert_eq!(v.verify(hs(&c), NOW).unwrap_err(), Error::AudienceNotAccepted);
    }

    #[test]
    fn verify_room_claim_optional_when_configured() {
        let mut cfg = config("HS256", KeySource::Secret(SECRET.to_vec()));
        cfg.require_room_claim = false;
        let v = Verifier::new(cfg).unwrap();
        let mut c = good_claims();
        c.as_object_mut().unwrap().remove("room");
        assert!(v.verify(hs(&c), NOW).is_ok());
    }

    #[test]
    fn new_rejects_mismatched_key_material() {
        let cases = vec![
            config("HS256", KeySource::PublicKeyPem(RSA_PUB.to_vec())),
            config("RS256", KeySource::Secret(SECRET.to_vec())),
            config("RS256", KeySource::PublicKeyPem(b"not a pem".to_vec())),
            config("ES256", KeySource::PublicKeyPem(RSA_PUB.to_vec())),
            config("HS256", KeySource::Secret(Vec::new())),
            config("none", KeySource::Secret(SECRET.to_vec())),
        ];
        for c in cases {
            let alg = c.algorithm.clone();
            assert!(matches!(Verifier::new(c), Err(Error::Config(_))), "{alg}");
        }
    }

    #[test]
    fn options_apply_jitsi_defaults() {
        let o = VerifierOptions { app_id: Some("app".into()), app_secret: Some("s".into()), ..Default::default() };
        let c = o.into_config().unwrap();
        assert_eq!(c.algorithm, "HS256");
        assert_eq!(c.accepted_issuers, vec!["app"]);
        assert_eq!(c.accepted_audiences, vec!["*"]);
        assert!(c.require_room_claim);
        let key = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rsa_public.pem");
        let o = VerifierOptions { app_id: Some("app".into()), jwt_public_key_file: Some(key.into()), ..Default::default() };
        assert_eq!(o.into_config().unwrap().algorithm, "RS256");
        let bad = [
            VerifierOptions { app_secret: Some("s".into()), ..Default::default() },
            VerifierOptions { app_id: Some("app".into()), ..Default::default() },
            VerifierOptions { app_id: Some("app".into()), jwt_public_key_file: Some("/nonexistent.pem".into()), ..Default::default() },
            VerifierOptions { app_id: Some("app".into()), app_secret: Some("s".into()), jwt_public_key_file: Some(key.into()), ..Default::default() },
        ];
        for o in bad {
            assert!(matches!(o.into_config(), Err(Error::Config(_))));
        }
    }

    #[test]
    fn decode_unverified_reads_matrix_tokens_signed_with_anything() {
        let c = json!({"iss": "issuer", "room": "*",
                       "context": {"matrix": {"token": "t", "room_id": "!a:b"}}});
        let t = encode(&Header::new(Algorithm::HS256), &c, &EncodingKey::from_secret(b"notused")).unwrap();
        let claims = decode_unverified(&t, NOW).unwrap();
        assert!(is_matrix(&claims));
        assert!(!is_matrix(&Claims::from_map(good_claims().as_object().unwrap())));
        assert_eq!(decode_unverified("a.b", NOW).unwrap_err(),
                   Error::TokenMalformed("not three dot-separated segments"));
    }

    #[test]
    fn diagnose_reports_every_check_on_its_own() {
        let mut c = good_claims();
        c["iss"] = json!("other");
        c["exp"] = json!(NOW - 1);
        let token = encode(&Header::new(Algorithm::HS256), &c, &EncodingKey::from_secret(b"wrong")).unwrap();
        let (claims, checks) = hs_verifier().diagnose(&token, NOW);
        assert_eq!(claims.unwrap().get("iss").and_then(|i| i.as_str()), Some("other"));
        let failed: Vec<&str> = checks.iter().filter(|(_, r)| r.is_err()).map(|(n, _)| *n).collect();
        assert_eq!(failed, vec!["signature", "time (exp, nbf)", "issuer"]);
        let (claims, checks) = hs_verifier().diagnose("nope", NOW);
        assert!(claims.is_none());
        assert_eq!(checks.len(), 1);
        let (_, checks) = hs_verifier().diagnose(hs(&good_claims()), NOW);
        assert!(checks.iter().all(|(_, r)| r.is_ok()), "{checks:?}");
    }

    #[test]
    fn session_fields_user_id_fallback_without_context() {
        let f = session_fields(&Claims::from_map(json!({"iss": "app", "user_id": "u-42"}).as_object().unwrap()));
        assert_eq!(f["jitsi_meet_context_user"], json!({"id": "u-42"}));
        let f = session_fields(&Claims::from_map(json!({"iss": "app", "user_id": "u-42", "context": {"user": {"name": "A"}}}).as_object().unwrap()));
        assert_eq!(f["jitsi_meet_context_user"], json!({"name": "A"}), "context wins");
    }

    #[test]
    fn verifier_for_a_key_follows_the_key_type_not_the_header() {
        let o = VerifierOptions { app_id: Some("app".into()), ..Default::default() };
        let (key, alg) = SigKey::public_pem(RSA_PUB).unwrap();
        assert_eq!(alg, "RS256");
        let v = Verifier::for_key(&o, key, alg).unwrap();
        let t = encode(&Header::new(Algorithm::RS256), &good_claims(), &EncodingKey::from_rsa_pem(RSA_PRIV).unwrap()).unwrap();
        assert!(v.verify(&t, NOW).is_ok());
        assert!(matches!(v.verify(hs(&good_claims()), NOW), Err(Error::TokenAlgorithm { .. })));
        assert_eq!(SigKey::public_pem(EC_PUB).unwrap().1, "ES256");
        assert!(SigKey::public_pem(b"nope").is_err());
    }

    #[test]
    fn session_fields_copies_contract_fields_only() {
        let mut c = good_claims();
        c["context"]["tenant"] = json!("t1");
        c["context"]["group"] = json!("g");
        let f = session_fields(&Claims::from_map(c.as_object().unwrap()));
        assert_eq!(f["jitsi_meet_room"], "r1");
        assert_eq!(f["jitsi_meet_domain"], "meet.example.com");
        assert_eq!(f["jitsi_meet_auth_issuer"], "app");
        assert_eq!(f["jitsi_meet_context_user"]["name"], "A");
        assert_eq!(f["jitsi_meet_context_room"]["lobby"], true);
        assert_eq!(f["jitsi_meet_context_group"], "g");
        assert_eq!(f["jitsi_meet_str_tenant"], "t1");
        assert!(!f.contains_key("jitsi_meet_context_features"));
    }
}
