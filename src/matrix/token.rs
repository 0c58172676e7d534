//! Matrix tokens (docs/design.md, "Matrix tokens" and "Trust rules"): Element's widget token
//! carries a Matrix OpenID token and room id. Its signature is not the
//! trust anchor (unless `matrix_token_secret` is set); the verifier (UVS or
//! the homeserver) is. This module checks everything that can be checked
//! before asking, and turns the verdict into session fields. An unsigned
//! token gives a display name and an avatar, nothing that grants; a token
//! signed with `matrix_token_secret` is for the room base32(room_id) only.
//! Pure: no Lua, no I/O.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::matrix::room;
use crate::text::Untrusted;
use crate::standard::json::Val;
use crate::standard::token::{self, Claims, KeySource, Verifier, VerifierConfig};
use crate::matrix::verify::{Check, Verdict};

/// How Matrix tokens are checked.
pub struct MatrixPolicy {
    /// Accepted `iss` values (`uvs_issuer`, else `{app_id}`); empty: any.
    pub accepted_issuers: Vec<String>,
    /// When set, tokens must be HS256-signed with `matrix_token_secret`.
    pub signature: Option<Verifier>,
    /// `uvs_sync_power_levels`: only then can a Matrix user be owner.
    pub sync_power_levels: bool,
}

impl MatrixPolicy {
    pub fn new(
        accepted_issuers: Vec<String>,
        secret: Option<String>,
        sync_power_levels: bool,
    ) -> Result<Self> {
        let signature = match secret.filter(|s| !s.is_empty()) {
            None => None,
            Some(secret) => Some(Verifier::new(VerifierConfig {
                algorithm: "HS256".into(),
                key: KeySource::Secret(secret.into_bytes()),
                accepted_issuers: vec!["*".into()],
                accepted_audiences: vec!["*".into()],
                require_room_claim: false,
                leeway: 0,
            })?),
        };
        Ok(MatrixPolicy { accepted_issuers, signature, sync_power_levels })
    }
}

/// A Matrix login that passed every local check and now waits for the verifier.
#[derive(Debug, Clone)]
pub struct MatrixLogin {
    pub check: Check,
    pub claims: Claims,
    /// The token's signature was verified with `matrix_token_secret`.
    pub signed: bool,
}

fn str_field<'a>(v: Val<'a>, key: &str) -> Option<&'a str> {
    v.get(key).and_then(|v| v.as_str())
}

/// Local checks of a Matrix token for the Jitsi room `room_name`.
pub fn prepare(policy: &MatrixPolicy, token: &[u8], room_name: Option<&[u8]>, now: u64) -> Result<MatrixLogin> {
    let claims = match &policy.signature {
        Some(verifier) => verifier.verify(token, now)?,
        None => token::decode_unverified(token, now)?,
    };
    if !policy.accepted_issuers.is_empty() {
        token::check_issuer(&policy.accepted_issuers, &claims)?;
    }
    let context = claims.get("context").filter(|c| c.is_object()).ok_or(Error::MatrixContextMissing)?;
    let matrix = context.get("matrix").filter(|m| m.is_object()).ok_or(Error::MatrixContextMissing)?;
    let room_id = str_field(matrix, "room_id")
        .filter(|r| !r.is_empty())
        .ok_or(Error::MatrixRoomIdMissing)?;
    let openid = str_field(matrix, "token")
        .filter(|t| !t.is_empty())
        .ok_or(Error::MatrixOpenIdMissing)?;
    let room_name = room_name.filter(|r| !r.is_empty()).ok_or(Error::RoomMissing)?;
    room::check_room(room_name, room_id)?;
    Ok(MatrixLogin {
        check: Check {
            token: openid.to_string(),
            room_id: room_id.to_string(),
            server_name: str_field(matrix, "server_name").map(str::to_string),
        },
        claims,
        signed: policy.signature.is_some(),
    })
}

/// Turn the verifier's verdict into the session fields of docs/design.md,
/// "Matrix tokens", keeping only what the token may grant ("Trust rules").
pub fn finish(policy: &MatrixPolicy, login: &MatrixLogin, verdict: &Verdict, source: &'static str) -> Result<Map<String, Value>> {
    let (user_id, is_owner) = match verdict {
        Verdict::Verified { user_id, is_owner, .. } => (user_id.as_deref(), policy.sync_power_levels && *is_owner),
        Verdict::NotInRoom => return Err(Error::MatrixNotInRoom(Untrusted::new(&login.check.room_id))),
        Verdict::InvalidToken => return Err(Error::MatrixInvalidToken(source)),
        Verdict::Failure(_) => return Err(Error::MatrixUnavailable(verdict.detail(source))),
    };
    let context = login.claims.get("context");
    let mut fields = if login.signed {
        // Signed with our (strong) secret: its claims count, but only in
        // the room the token proves (the `room` claim is replaced by it),
        // and the user is the one the verifier vouched for: the token's
        // own `context.user.id` is dropped.
        let mut f = token::session_fields(&login.claims);
        f.insert("jitsi_meet_room".into(), Value::String(room::name_for_room_id(&login.check.room_id)));
        let mut user = match f.remove("jitsi_meet_context_user") {
            Some(Value::Object(u)) => u,
            _ => Map::new(),
        };
        user.remove("id");
        if let Some(id) = user_id {
            user.insert("id".into(), Value::String(id.to_string()));
        }
        f.insert("jitsi_meet_context_user".into(), Value::Object(user));
        if let Some(until) = token::grants_until(&login.claims, 0) {
            f.insert(token::GRANTS_UNTIL_FIELD.into(), Value::from(until));
        }
        f
    } else {
        // Unsigned: a display name and an avatar, nothing that grants.
        let mut user = Map::new();
        if let Some(given) = context.and_then(|c| c.get("user")) {
            for key in ["name", "avatar"] {
                if let Some(v) = given.get(key).and_then(|v| v.as_str()) {
                    user.insert(key.into(), Value::String(v.to_string()));
                }
            }
        }
        if let Some(id) = user_id {
            user.insert("id".into(), Value::String(id.to_string()));
        }
        let mut f = Map::new();
        f.insert("jitsi_meet_context_user".into(), Value::Object(user));
        f
    };
    fields.insert("auth_matrix_user_verification_is_owner".into(), Value::Bool(is_owner));
    // The Matrix context without the OpenID token: a secret has no business
    // lingering on the session.
    let mut matrix = context
        .and_then(|c| c.get("matrix"))
        .and_then(|m| m.to_map())
        .unwrap_or_default();
    matrix.remove("token");
    fields.insert("jitsi_meet_context_matrix".into(), Value::Object(matrix));
    if let Some(id) = user_id {
        fields.insert("matrix_user_id".into(), Value::String(id.to_string()));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::verify::Failure;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;
    const ROOM_ID: &str = "!qwertyasdfgh:matrix.org";

    fn jwt(claims: &Value, secret: &[u8]) -> String {
        use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
        encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn claims() -> Value {
        json!({"iss": "issuer", "aud": "jitsi", "room": "*", "sub": "meet.example.com",
               "context": {"user": {"name": "M", "avatar": "a"},
                           "matrix": {"token": "openid-secret", "room_id": ROOM_ID, "server_name": "matrix.org"}}})
    }

    fn policy() -> MatrixPolicy {
        MatrixPolicy::new(vec!["issuer".into()], None, true).unwrap()
    }

    fn name() -> String {
        room::name_for_room_id(ROOM_ID)
    }

    #[test]
    fn prepare_builds_the_uvs_request() {
        let login = prepare(&policy(), jwt(&claims(), b"notused").as_bytes(), Some(name().as_bytes()), NOW).unwrap();
        assert_eq!(login.check.token, "openid-secret");
        assert_eq!(login.check.room_id, ROOM_ID);
        assert_eq!(login.check.server_name.as_deref(), Some("matrix.org"));
        // Upper-case (Element's own spelling) works too.
        assert!(prepare(&policy(), jwt(&claims(), b"x").as_bytes(), Some(name().to_uppercase().as_bytes()), NOW).is_ok());
    }

    #[test]
    fn prepare_refusals() {
        let mut no_context = claims();
        no_context.as_object_mut().unwrap().remove("context");
        let mut no_room_id = claims();
        no_room_id["context"]["matrix"].as_object_mut().unwrap().remove("room_id");
        let mut room_id_number = claims();
        room_id_number["context"]["matrix"]["room_id"] = json!(5);
        let mut no_openid = claims();
        no_openid["context"]["matrix"].as_object_mut().unwrap().remove("token");
        let mut wrong_iss = claims();
        wrong_iss["iss"] = json!("other");
        let mut expired = claims();
        expired["exp"] = json!(NOW - 5);
        let other_name = room::name_for_room_id("!other:matrix.org");
        let cases: Vec<(&str, Value, Option<String>, Error)> = vec![
            ("no context", no_context, Some(name()), Error::MatrixContextMissing),
            ("no room_id", no_room_id, Some(name()), Error::MatrixRoomIdMissing),
            ("room_id not a string", room_id_number, Some(name()), Error::MatrixRoomIdMissing),
            ("no openid token", no_openid, Some(name()), Error::MatrixOpenIdMissing),
            ("wrong issuer", wrong_iss, Some(name()), Error::IssuerNotAccepted("other".into())),
            ("room with a NUL", claims(), Some("ab\0cd".into()), Error::RoomNameUndecodable("ab\0cd".into())),
            ("expired", expired, Some(name()), Error::TokenExpired),
            ("no room", claims(), None, Error::RoomMissing),
            ("empty room", claims(), Some(String::new()), Error::RoomMissing),
            ("undecodable room", claims(), Some("room!".into()), Error::RoomNameUndecodable("room!".into())),
            ("other room", claims(), Some(other_name.clone()),
             Error::RoomMismatch { room: other_name.as_str().into(), room_id: ROOM_ID.into() }),
        ];
        for (what, c, room, want) in cases {
            let room = room.as_deref().map(str::as_bytes);
            assert_eq!(prepare(&policy(), jwt(&c, b"k").as_bytes(), room, NOW).unwrap_err(), want, "{what}");
        }
    }

    #[test]
    fn prepare_requires_signature_when_secret_configured() {
        let p = MatrixPolicy::new(vec!["issuer".into()], Some("notused".into()), false).unwrap();
        assert!(prepare(&p, jwt(&claims(), b"notused").as_bytes(), Some(name().as_bytes()), NOW).unwrap().signed);
        assert_eq!(prepare(&p, jwt(&claims(), b"other").as_bytes(), Some(name().as_bytes()), NOW).unwrap_err(), Error::TokenSignature);
    }

    fn verified(is_owner: bool) -> Verdict {
        Verdict::Verified {
            user_id: Some("@u:matrix.org".into()), power_level: Some(100), state_default: 50, creator: false, is_owner,
        }
    }

    #[test]
    fn finish_maps_verdicts() {
        let login = prepare(&policy(), jwt(&claims(), b"k").as_bytes(), Some(name().as_bytes()), NOW).unwrap();
        let f = finish(&policy(), &login, &verified(true), "UVS").unwrap();
        assert_eq!(f["auth_matrix_user_verification_is_owner"], true);
        assert_eq!(f["jitsi_meet_context_user"], json!({"name": "M", "avatar": "a", "id": "@u:matrix.org"}));
        assert_eq!(f["jitsi_meet_context_matrix"]["room_id"], ROOM_ID);
        assert!(f["jitsi_meet_context_matrix"].get("token").is_none(), "OpenID token stripped");
        assert_eq!(f["matrix_user_id"], "@u:matrix.org");
        assert_eq!(finish(&policy(), &login, &verified(false), "UVS").unwrap()["auth_matrix_user_verification_is_owner"], false);
        let no_sync = MatrixPolicy::new(vec![], None, false).unwrap();
        assert_eq!(finish(&no_sync, &login, &verified(true), "UVS").unwrap()["auth_matrix_user_verification_is_owner"], false);
        assert_eq!(finish(&policy(), &login, &Verdict::NotInRoom, "UVS").unwrap_err(), Error::MatrixNotInRoom(ROOM_ID.into()));
        assert_eq!(finish(&policy(), &login, &Verdict::InvalidToken, "UVS").unwrap_err(), Error::MatrixInvalidToken("UVS"));
        let e = finish(&policy(), &login, &Verdict::Failure(Failure::HttpStatus(500)), "UVS").unwrap_err();
        assert_eq!(e, Error::MatrixUnavailable("UVS answered HTTP 500".into()));
        assert_eq!((e.sasl_condition(), e.reason_code()), ("temporary-auth-failure", "invalid_response"));
    }

    fn granting_claims() -> Value {
        let mut c = claims();
        c["context"]["user"]["security_bypass"] = json!(true);
        c["context"]["user"]["moderator"] = json!(true);
        c["context"]["room"] = json!({"lobby": false, "password": ""});
        c["context"]["features"] = json!({"recording": true});
        c["context"]["group"] = json!("g");
        c["room"] = json!("someotherroom");
        c
    }

    #[test]
    fn finish_unsigned_token_grants_nothing() {
        let login = prepare(&policy(), jwt(&granting_claims(), b"k").as_bytes(), Some(name().as_bytes()), NOW).unwrap();
        let f = finish(&policy(), &login, &verified(false), "UVS").unwrap();
        assert_eq!(f["jitsi_meet_context_user"], json!({"name": "M", "avatar": "a", "id": "@u:matrix.org"}));
        for field in ["jitsi_meet_context_room", "jitsi_meet_context_features", "jitsi_meet_context_group",
                      "jitsi_meet_room", "jitsi_meet_str_tenant", "jitsi_meet_domain"] {
            assert!(!f.contains_key(field), "{field} must not come from an unsigned token");
        }
    }

    #[test]
    fn finish_signed_token_is_bound_to_its_matrix_room() {
        let p = MatrixPolicy::new(vec!["issuer".into()], Some("sekrit".into()), true).unwrap();
        let login = prepare(&p, jwt(&granting_claims(), b"sekrit").as_bytes(), Some(name().as_bytes()), NOW).unwrap();
        let f = finish(&p, &login, &verified(false), "UVS").unwrap();
        assert_eq!(f["jitsi_meet_context_user"]["security_bypass"], true);
        assert_eq!(f["jitsi_meet_context_room"]["lobby"], false);
        assert_eq!(f["jitsi_meet_room"], name(), "the room claim is replaced by the proven room");
    }

    #[test]
    fn finish_signed_token_user_is_the_verified_user() {
        let secret = "a-real-secret-of-at-least-32-bytes!";
        let p = MatrixPolicy::new(vec!["issuer".into()], Some(secret.into()), true).unwrap();
        let mut c = granting_claims();
        c["context"]["user"]["id"] = json!("@ceo:example.org");
        c["exp"] = json!(NOW + 60);
        let login = prepare(&p, jwt(&c, secret.as_bytes()).as_bytes(), Some(name().as_bytes()), NOW).unwrap();
        let f = finish(&p, &login, &verified(false), "UVS").unwrap();
        assert_eq!(f["jitsi_meet_context_user"]["id"], "@u:matrix.org", "the JWT's own id is dropped");
        assert_eq!(f["jitsi_meet_context_user"]["name"], "M");
        assert_eq!(f[crate::standard::token::GRANTS_UNTIL_FIELD], json!((NOW + 60) as f64));
        let unverified = Verdict::Verified { user_id: None, power_level: None, state_default: 50, creator: false, is_owner: false };
        let f = finish(&p, &login, &unverified, "UVS").unwrap();
        assert!(f["jitsi_meet_context_user"].get("id").is_none(), "no verified id: no id at all");
    }
}
