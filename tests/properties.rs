//! Property tests (proptest) of the pure logic: tokens, room names, the UVS
//! decision, token extraction and refusal texts. 256 cases per property, a
//! few seconds in all; run by `cargo test` (`make test-rust`).
//!
//! Every call into the crate goes through one of the small helpers in the
//! first section: when a path or a signature moves, fix it there and
//! nowhere else. A failure found here becomes a plain test in
//! tests/regressions.rs.

use data_encoding::BASE64URL_NOPAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use jitsi_security::error::Error;

// ---------------------------------------------------------------------------
// The crate's API, in one place
// ---------------------------------------------------------------------------

type Claims = Map<String, Value>;

const NOW: u64 = 1_700_000_000;
const SECRET: &[u8] = b"property-test-secret";
const RSA_PUB: &[u8] = include_bytes!("fixtures/rsa_public.pem");

/// The verifier kind under test (the real one is built by `verifier`).
type Verifier = jitsi_security::standard::token::Verifier;

/// A verifier pinned to `alg`, accepting issuer `app`, any audience, room
/// claim required, no leeway.
fn verifier(alg: &str, key: jitsi_security::standard::token::KeySource) -> Verifier {
    Verifier::new(jitsi_security::standard::token::VerifierConfig {
        algorithm: alg.into(),
        key,
        accepted_issuers: vec!["app".into()],
        accepted_audiences: vec!["*".into()],
        require_room_claim: true,
        leeway: 0,
    })
    .expect("verifier config is valid")
}

fn hs256_verifier() -> Verifier {
    verifier("HS256", jitsi_security::standard::token::KeySource::Secret(SECRET.to_vec()))
}

fn rs256_verifier() -> Verifier {
    verifier("RS256", jitsi_security::standard::token::KeySource::PublicKeyPem(RSA_PUB.to_vec()))
}

// A `&str` argument fits both `&str` and `impl AsRef<[u8]>` parameters.
fn verify(v: &Verifier, token: &str) -> Result<Claims, Error> {
    v.verify(token, NOW).map(|c| c.to_map())
}

fn peek(token: &str) -> Result<Claims, Error> {
    jitsi_security::standard::token::peek(token).map(|c| c.to_map())
}

fn name_for_room_id(room_id: &str) -> String {
    jitsi_security::matrix::room::name_for_room_id(room_id)
}

fn room_id_for_name(name: &str) -> Result<String, Error> {
    jitsi_security::matrix::room::room_id_for_name(name)
}

fn check_room(name: &str, room_id: &str) -> Result<(), Error> {
    jitsi_security::matrix::room::check_room(name, room_id)
}

fn token_from(query: Option<&str>, authorization: Option<&str>) -> Option<String> {
    jitsi_security::runtime::request::token_from(query.map(str::as_bytes), authorization.map(str::as_bytes))
        .map(|t| String::from_utf8(t.to_vec()).expect("UTF-8 in, UTF-8 out"))
}

/// The UVS decision, reduced to what the properties look at.
#[derive(Debug)]
struct Verdict {
    /// `ok`, `not_in_room`, `invalid_token` or `invalid_response`.
    code: &'static str,
    /// The failure kind (`http_status`, `bad_body`...) of a failure.
    failure: Option<&'static str>,
    is_owner: bool,
}

fn classify(status: u16, body: &[u8], verify_membership: bool) -> Verdict {
    let outcome = jitsi_security::matrix::verify::uvs::classify(status, body, verify_membership);
    let _ = outcome.detail("UVS"); // must not panic either
    Verdict {
        code: outcome.code(),
        failure: match &outcome {
            jitsi_security::matrix::verify::Verdict::Failure(f) => Some(f.kind()),
            _ => None,
        },
        is_owner: outcome.is_owner(),
    }
}

// ---------------------------------------------------------------------------
// Token building
// ---------------------------------------------------------------------------

fn b64(bytes: &[u8]) -> String {
    BASE64URL_NOPAD.encode(bytes)
}

/// `b64(header).b64(payload).` signed with HS256 over exactly those bytes,
/// whatever the header says (so only the property's one change is wrong).
fn sign_hs256(header: &Value, payload: &Value, secret: &[u8]) -> String {
    let message = format!("{}.{}", b64(header.to_string().as_bytes()), b64(payload.to_string().as_bytes()));
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &EncodingKey::from_secret(secret), Algorithm::HS256)
        .expect("HS256 signing works");
    format!("{message}.{sig}")
}

/// Claims the test verifiers accept, with a fuzzed room and extra claims.
fn good_claims() -> impl Strategy<Value = Value> {
    (
        "\\PC{0,40}",
        prop_oneof![Just(json!("jitsi")), Just(json!(["x", "jitsi"]))],
        1u64..1_000_000,
        prop::collection::btree_map("[a-z]{1,8}", json_value(), 0..4),
    )
        .prop_map(|(room, aud, ttl, extra)| {
            let mut c: Map<String, Value> = extra.into_iter().collect();
            c.insert("iss".into(), json!("app"));
            c.insert("aud".into(), aud);
            c.insert("room".into(), json!(room));
            c.insert("exp".into(), json!(NOW + ttl));
            c.remove("nbf");
            Value::Object(c)
        })
}

/// Small arbitrary JSON values (finite numbers only, as JSON has).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        prop_oneof![Just("results"), Just("user"), Just("room_membership"), Just("power_levels")]
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(json_key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Object keys: mostly names the code looks at, sometimes anything.
fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "results", "user", "room_membership", "user_id", "power_levels", "room",
            "state_default", "alg", "typ", "iss", "aud", "exp", "nbf", "context", "matrix",
        ])
        .prop_map(String::from),
        1 => "\\PC{0,8}",
    ]
}

fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(json_key(), json_value(), 0..6).prop_map(|m| m.into_iter().collect())
}

/// Strings that look like tokens: base64url characters, dots and `=`.
fn tokenish() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_=.-]{0,120}"
}

/// A replacement for one character of a token: usually another base64url
/// character (still decodes, so the signature is what must refuse it).
fn replacement_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".chars().collect::<Vec<_>>()
        ),
        1 => any::<char>(),
    ]
}

/// `v` after a trip through JSON text (serde_json's float parsing may round
/// the last bit of a huge number differently from its printing).
fn reparsed(v: &Value) -> Value {
    serde_json::from_str(&v.to_string()).expect("JSON text parses")
}

fn replace_char_at(s: &str, byte_index: usize, with: char) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    out.push_str(&s[..byte_index]);
    out.push(with);
    out.push_str(&s[byte_index + 1..]);
    out
}

/// `s` with the ASCII letters at the positions `mask` marks upper-cased.
fn mixed_case(s: &str, mask: &[bool]) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| if mask.get(i % mask.len().max(1)).copied().unwrap_or(false) { c.to_ascii_uppercase() } else { c })
        .collect()
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn peek_and_verify_never_panic_on_any_string(s in prop_oneof![any::<String>(), tokenish()]) {
        let _ = peek(&s);
        let _ = verify(&hs256_verifier(), &s);
        let _ = verify(&rs256_verifier(), &s);
    }

    #[test]
    fn peek_returns_the_payload_exactly_when_both_segments_are_json_objects(
        header in prop_oneof![
            json_object().prop_map(Value::Object),
            json_value(),
            Just(json!({"alg": "HS256", "typ": "JWT"})),
            Just(json!({"alg": "none", "typ": "jwt"})),
        ],
        payload in prop_oneof![json_object().prop_map(Value::Object), json_value()],
        sig in "[A-Za-z0-9_-]{0,50}",
    ) {
        let token = format!("{}.{}.{sig}", b64(header.to_string().as_bytes()), b64(payload.to_string().as_bytes()));
        let typ_ok = match header.get("typ") {
            None | Some(Value::Null) => true,
            Some(Value::String(t)) => t.eq_ignore_ascii_case("JWT"),
            Some(_) => false,
        };
        let want_ok = header.is_object() && typ_ok && payload.is_object();
        match peek(&token) {
            Ok(claims) => {
                prop_assert!(want_ok, "peek accepted {header} / {payload}");
                prop_assert_eq!(Value::Object(claims), reparsed(&payload));
            }
            Err(e) => prop_assert!(!want_ok, "peek refused {} / {}: {:?}", header, payload, e),
        }
    }

    #[test]
    fn token_signed_with_the_right_key_verifies_and_any_one_change_fails(
        claims in good_claims(),
        segment in 1usize..3, // 1: payload, 2: signature
        at in any::<prop::sample::Index>(),
        with in replacement_char(),
    ) {
        let v = hs256_verifier();
        let token = sign_hs256(&json!({"alg": "HS256", "typ": "JWT"}), &claims, SECRET);
        let got = verify(&v, &token);
        prop_assert!(got.is_ok(), "good token refused: {:?}", got);
        prop_assert_eq!(Value::Object(got.unwrap()), reparsed(&claims));

        let start: usize = token.split('.').take(segment).map(|p| p.len() + 1).sum();
        let len = token.split('.').nth(segment).unwrap().len();
        let i = start + at.index(len);
        prop_assume!(token.as_bytes()[i] as char != with);
        let forged = replace_char_at(&token, i, with);
        let got = verify(&v, &forged);
        prop_assert!(got.is_err(), "changed byte {} to {:?} and it still verified", i, with);
    }

    #[test]
    fn token_signed_with_another_key_fails(claims in good_claims(), secret in prop::collection::vec(any::<u8>(), 1..64)) {
        prop_assume!(secret != SECRET);
        let token = sign_hs256(&json!({"alg": "HS256", "typ": "JWT"}), &claims, &secret);
        prop_assert!(matches!(verify(&hs256_verifier(), &token), Err(Error::TokenSignature)));
    }

    #[test]
    fn any_alg_but_the_configured_one_fails(alg in other_alg("HS256"), typ in prop::option::of(Just("JWT"))) {
        // Correctly HMAC-signed with the verifier's own secret: only `alg` is wrong.
        let mut header = json!({"alg": alg});
        if let Some(t) = typ {
            header["typ"] = json!(t);
        }
        let token = sign_hs256(&header, &json!({"iss": "app", "aud": "a", "room": "r", "exp": NOW + 60}), SECRET);
        let got = verify(&hs256_verifier(), &token);
        prop_assert!(matches!(got, Err(Error::TokenAlgorithm { .. })), "alg {}: {:?}", header["alg"], got);
    }

    #[test]
    fn rs256_verifier_refuses_hmac_signed_with_its_public_key(alg in prop_oneof![Just(json!("HS256")), Just(json!("RS256")), other_alg("RS256")]) {
        let header = json!({"alg": alg, "typ": "JWT"});
        let token = sign_hs256(&header, &json!({"iss": "app", "aud": "a", "room": "r", "exp": NOW + 60}), RSA_PUB);
        let got = verify(&rs256_verifier(), &token);
        prop_assert!(got.is_err(), "alg {}: verified", header["alg"]);
        if header["alg"] != "RS256" {
            prop_assert!(matches!(got, Err(Error::TokenAlgorithm { .. })), "alg {}: {:?}", header["alg"], got);
        }
    }
}

/// `alg` header values other than `configured`: other algorithms, other
/// spellings, strings with spaces or NULs, non-strings.
fn other_alg(configured: &'static str) -> impl Strategy<Value = Value> {
    let near = vec![
        "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA",
        "none", "None", "NONE", "", "hs256", "Hs256", "rs256", "HS256 ", " HS256", "HS256\u{0}",
        "RS256 ", "\u{0}RS256",
    ];
    prop_oneof![
        3 => prop::sample::select(near).prop_map(|s| json!(s)),
        1 => "\\PC{0,10}".prop_map(|s| json!(s)),
        1 => json_value(),
    ]
    .prop_filter("the configured algorithm", move |v| v.as_str() != Some(configured))
}

/// Changing the unused low bits of a signature's last character gives
/// another string for the same bytes; it must not verify (no malleability).
#[test]
fn signature_with_non_canonical_trailing_bits_fails() {
    let v = hs256_verifier();
    let token = sign_hs256(&json!({"alg": "HS256"}), &json!({"iss": "app", "aud": "a", "room": "r"}), SECRET);
    assert!(verify(&v, &token).is_ok());
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    // 32 bytes = 43 characters; the last one carries 4 bits and 2 unused ones.
    let last = token.chars().last().unwrap();
    let value = alphabet.find(last).unwrap();
    for unused in 1..4 {
        let other = alphabet.as_bytes()[(value & !3) | ((value & 3) ^ unused)] as char;
        let forged = format!("{}{other}", &token[..token.len() - 1]);
        assert!(verify(&v, &forged).is_err(), "{forged}");
    }
}

// ---------------------------------------------------------------------------
// Room names
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn room_name_round_trips_in_any_case(id in any::<String>(), mask in prop::collection::vec(any::<bool>(), 1..16)) {
        // The empty id encodes to the empty name, which means "no room".
        prop_assume!(!id.is_empty());
        let name = name_for_room_id(&id);
        prop_assert_eq!(&name, &name.to_ascii_lowercase());
        for n in [name.clone(), name.to_ascii_uppercase(), mixed_case(&name, &mask)] {
            prop_assert_eq!(room_id_for_name(&n), Ok(id.clone()));
            prop_assert!(check_room(&n, &id).is_ok());
        }
    }

    #[test]
    fn room_id_for_name_accepts_only_canonical_names(
        name in prop_oneof!["[a-zA-Z2-7]{0,40}", "[a-zA-Z0-9=]{0,40}", any::<String>()],
    ) {
        match room_id_for_name(&name) {
            Ok(id) => {
                prop_assert_eq!(name_for_room_id(&id), name.to_ascii_lowercase());
                prop_assert!(check_room(&name, &id).is_ok());
            }
            Err(_) => prop_assert!(check_room(&name, "").is_err() && check_room(&name, "!a:b").is_err()),
        }
    }

    #[test]
    fn check_room_accepts_exactly_the_encoded_id(a in "[!a-c:.]{1,6}", b in "[!a-c:.]{1,6}") {
        prop_assert_eq!(check_room(&name_for_room_id(&a), &b).is_ok(), a == b);
    }
}

// ---------------------------------------------------------------------------
// UVS decision
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn classify_fails_on_any_status_but_200(
        status in any::<u16>(),
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            Just(br#"{"results":{"user":true,"room_membership":true},"power_levels":{"user":100}}"#.to_vec()),
        ],
        vm in any::<bool>(),
    ) {
        prop_assume!(status != 200);
        let v = classify(status, &body, vm);
        prop_assert_eq!(v.code, "invalid_response");
        prop_assert_eq!(v.failure, Some("http_status"));
    }

    #[test]
    fn classify_never_panics_and_verifies_only_what_uvs_confirmed(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| b),
            json_value().prop_map(|v| v.to_string().into_bytes()),
            (any::<bool>(), any::<bool>(), json_value()).prop_map(|(u, m, pl)| {
                json!({"results": {"user": u, "room_membership": m}, "power_levels": pl}).to_string().into_bytes()
            }),
        ],
        vm in any::<bool>(),
    ) {
        let v = classify(200, &body, vm);
        if v.code == "ok" {
            let parsed: Value = serde_json::from_slice(&body).expect("verified body is JSON");
            prop_assert_eq!(&parsed["results"]["user"], &json!(true));
            if vm {
                prop_assert_eq!(&parsed["results"]["room_membership"], &json!(true));
            }
        }
        prop_assert!(!v.is_owner || (vm && v.code == "ok"));
    }

    #[test]
    fn classify_fails_on_an_object_without_results(mut obj in json_object(), null_results in any::<bool>(), vm in any::<bool>()) {
        obj.remove("results");
        if null_results {
            obj.insert("results".into(), Value::Null);
        }
        let v = classify(200, Value::Object(obj).to_string().as_bytes(), vm);
        prop_assert_eq!(v.code, "invalid_response");
        prop_assert_eq!(v.failure, Some("bad_body"));
    }

    // Found `[]` / `[true, true]` accepted (serde reads a struct from an
    // array): see tests/regressions.rs.
    #[test]
    fn classify_fails_when_results_is_not_an_object(
        results in prop_oneof![
            prop::collection::vec(any::<bool>(), 0..4).prop_map(Value::from),
            json_value(),
        ],
        vm in any::<bool>(),
    ) {
        prop_assume!(!results.is_object());
        let body = json!({"results": results, "user_id": "@u:x"}).to_string();
        let v = classify(200, body.as_bytes(), vm);
        prop_assert_eq!(v.code, "invalid_response", "results {}", results);
    }
}

// ---------------------------------------------------------------------------
// Token extraction
// ---------------------------------------------------------------------------

/// ASCII white space, as `token_from` strips it (values are bytes from
/// the network: only ASCII white space is white space).
fn blank() -> impl Strategy<Value = String> {
    "[ \t\r\n]{0,3}"
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn token_from_prefers_a_non_blank_query(q in "\\PC{0,20}", pad in blank(), header in prop::option::of(any::<String>())) {
        let trimmed = q.trim_matches(|c: char| c.is_ascii_whitespace());
        prop_assume!(!trimmed.is_empty());
        let query = format!("{pad}{q}{pad}");
        prop_assert_eq!(token_from(Some(&query), header.as_deref()), Some(trimmed.to_string()));
    }

    #[test]
    fn token_from_matches_bearer_in_any_case(
        query in prop::option::of(blank()),
        mask in prop::collection::vec(any::<bool>(), 1..8),
        t in "\\PC{0,20}",
        pad in blank(),
    ) {
        let header = format!("{pad}{} {t}{pad}", mixed_case("bearer", &mask));
        let want = Some(t.trim_matches(|c: char| c.is_ascii_whitespace()).to_string()).filter(|t| !t.is_empty());
        prop_assert_eq!(token_from(query.as_deref(), Some(&header)), want);
    }

    #[test]
    fn token_from_refuses_other_schemes(scheme in "[A-Za-z]{1,10}", t in "[A-Za-z0-9._-]{1,20}") {
        prop_assume!(!scheme.eq_ignore_ascii_case("bearer"));
        prop_assert_eq!(token_from(None, Some(&format!("{scheme} {t}"))), None);
    }

    #[test]
    fn token_from_never_panics(q in prop::option::of(any::<String>()), h in prop::option::of(any::<String>())) {
        let _ = token_from(q.as_deref(), h.as_deref());
    }
}

// ---------------------------------------------------------------------------
// Refusal texts (docs/design.md, "Trust rules": untrusted text cannot forge a log line)
// ---------------------------------------------------------------------------

/// A refusal as it reaches a log line or a SASL failure text.
fn refusal_text(e: &Error) -> String {
    e.to_string()
}

fn printable_ascii(text: &str) -> bool {
    text.bytes().all(|b| (0x20..0x7f).contains(&b))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn refusals_of_any_input_are_printable_ascii(
        s in prop_oneof![any::<String>(), tokenish(), "[a-z2-7\n\u{0}\u{e9}]{1,20}"],
        header in json_object(),
        payload in json_object(),
    ) {
        // Fuzzed strings directly, and inside the JSON the checks quote from.
        let token = format!("{}.{}.{}", b64(Value::Object(header).to_string().as_bytes()),
                            b64(Value::Object(payload).to_string().as_bytes()), b64(s.as_bytes()));
        let results = [
            peek(&s).err(), peek(&token).err(),
            verify(&hs256_verifier(), &s).err(), verify(&hs256_verifier(), &token).err(),
            verify(&rs256_verifier(), &token).err(),
            room_id_for_name(&s).err(), check_room(&s, &s).err(),
            check_room(&name_for_room_id(&s), "!other:x").err(),
            // Signed, so the claim checks that quote `iss`, `typ`, `alg` run.
            verify(&hs256_verifier(), &sign_hs256(&json!({"alg": "HS256"}), &json!({"iss": s}), SECRET)).err(),
            verify(&hs256_verifier(), &sign_hs256(&json!({"alg": "HS256", "typ": s}), &json!({}), SECRET)).err(),
            verify(&hs256_verifier(), &sign_hs256(&json!({"alg": s}), &json!({}), SECRET)).err(),
        ];
        for e in results.iter().flatten() {
            let text = refusal_text(e);
            prop_assert!(printable_ascii(&text), "{:?}", text);
        }
    }
}

