//! Matrix tokens (CONTRACT section 3): Element's widget token carries a
//! Matrix OpenID token and room id. Its signature is not the trust anchor
//! (unless `matrix_token_secret` is set); UVS is. This module checks
//! everything that can be checked before asking UVS, and turns UVS's
//! verdict into session fields. Pure: no Lua, no I/O.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::room;
use crate::token::{self, Claims, KeySource, Verifier, VerifierConfig};
use crate::uvs::{UvsOutcome, UvsRequest};

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

/// A Matrix login that passed every local check and now waits for UVS.
#[derive(Debug, Clone)]
pub struct MatrixLogin {
    pub request: UvsRequest,
    pub claims: Claims,
}

fn str_field<'a>(v: Option<&'a Value>, key: &str) -> Option<&'a str> {
    v.and_then(|v| v.get(key)).and_then(Value::as_str)
}

/// Local checks of a Matrix token for the Jitsi room `room_name`.
pub fn prepare(policy: &MatrixPolicy, token: &str, room_name: Option<&str>, now: u64) -> Result<MatrixLogin> {
    let claims = match &policy.signature {
        Some(verifier) => verifier.verify(token, now)?,
        None => token::decode_unverified(token, now)?,
    };
    if !policy.accepted_issuers.is_empty() {
        let iss = match claims.get("iss") {
            None | Some(Value::Null) => return Err(Error::ClaimMissing("iss")),
            Some(Value::String(s)) => s,
            Some(_) => return Err(Error::ClaimType("iss")),
        };
        if !policy.accepted_issuers.iter().any(|a| a == "*" || a == iss) {
            return Err(Error::IssuerNotAccepted(iss.clone()));
        }
    }
    let context = claims.get("context").filter(|c| c.is_object()).ok_or(Error::MatrixContextMissing)?;
    let matrix = context.get("matrix").filter(|m| m.is_object()).ok_or(Error::MatrixContextMissing)?;
    let room_id = str_field(Some(matrix), "room_id")
        .filter(|r| !r.is_empty())
        .ok_or(Error::MatrixRoomIdMissing)?;
    let openid = str_field(Some(matrix), "token")
        .filter(|t| !t.is_empty())
        .ok_or(Error::MatrixOpenIdMissing)?;
    let room_name = room_name.filter(|r| !r.is_empty()).ok_or(Error::RoomMissing)?;
    room::check_room(room_name, room_id)?;
    Ok(MatrixLogin {
        request: UvsRequest {
            token: openid.to_string(),
            room_id: room_id.to_string(),
            server_name: str_field(Some(matrix), "server_name").map(str::to_string),
        },
        claims,
    })
}

/// Turn UVS's verdict into the session fields of CONTRACT section 3.
pub fn finish(policy: &MatrixPolicy, login: &MatrixLogin, outcome: &UvsOutcome) -> Result<Map<String, Value>> {
    let is_owner = match outcome {
        UvsOutcome::Verified { is_owner, .. } => policy.sync_power_levels && *is_owner,
        UvsOutcome::NotInRoom => return Err(Error::UvsNotInRoom(login.request.room_id.clone())),
        UvsOutcome::InvalidToken => return Err(Error::UvsInvalidToken),
        UvsOutcome::Failure(f) => return Err(Error::UvsUnavailable(f.to_string())),
    };
    let context = login.claims.get("context");
    let mut fields = Map::new();
    fields.insert("auth_matrix_user_verification_is_owner".into(), Value::Bool(is_owner));
    for (field, key) in [
        ("jitsi_meet_context_user", "user"),
        ("jitsi_meet_context_features", "features"),
        ("jitsi_meet_context_group", "group"),
    ] {
        if let Some(v) = context.and_then(|c| c.get(key)).filter(|v| !v.is_null()) {
            fields.insert(field.into(), v.clone());
        }
    }
    // The Matrix context without the OpenID token: a secret has no business
    // lingering on the session.
    let mut matrix = context
        .and_then(|c| c.get("matrix"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    matrix.remove("token");
    fields.insert("jitsi_meet_context_matrix".into(), Value::Object(matrix));
    if let UvsOutcome::Verified { user_id: Some(id), .. } = outcome {
        fields.insert("matrix_user_id".into(), Value::String(id.clone()));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uvs::UvsFailure;
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
        let login = prepare(&policy(), &jwt(&claims(), b"notused"), Some(&name()), NOW).unwrap();
        assert_eq!(login.request.token, "openid-secret");
        assert_eq!(login.request.room_id, ROOM_ID);
        assert_eq!(login.request.server_name.as_deref(), Some("matrix.org"));
        // Upper-case (Element's own spelling) works too.
        assert!(prepare(&policy(), &jwt(&claims(), b"x"), Some(&name().to_uppercase()), NOW).is_ok());
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
            ("expired", expired, Some(name()), Error::TokenExpired),
            ("no room", claims(), None, Error::RoomMissing),
            ("empty room", claims(), Some(String::new()), Error::RoomMissing),
            ("undecodable room", claims(), Some("room!".into()), Error::RoomNameUndecodable("room!".into())),
            ("other room", claims(), Some(other_name.clone()),
             Error::RoomMismatch { room: other_name, room_id: ROOM_ID.into() }),
        ];
        for (what, c, room, want) in cases {
            assert_eq!(prepare(&policy(), &jwt(&c, b"k"), room.as_deref(), NOW).unwrap_err(), want, "{what}");
        }
    }

    #[test]
    fn prepare_requires_signature_when_secret_configured() {
        let p = MatrixPolicy::new(vec!["issuer".into()], Some("notused".into()), false).unwrap();
        assert!(prepare(&p, &jwt(&claims(), b"notused"), Some(&name()), NOW).is_ok());
        assert_eq!(prepare(&p, &jwt(&claims(), b"other"), Some(&name()), NOW).unwrap_err(), Error::TokenSignature);
    }

    #[test]
    fn finish_maps_outcomes() {
        let login = prepare(&policy(), &jwt(&claims(), b"k"), Some(&name()), NOW).unwrap();
        let verified = |is_owner| UvsOutcome::Verified {
            user_id: Some("@u:matrix.org".into()), power_level: Some(100), state_default: 50, is_owner,
        };
        let f = finish(&policy(), &login, &verified(true)).unwrap();
        assert_eq!(f["auth_matrix_user_verification_is_owner"], true);
        assert_eq!(f["jitsi_meet_context_user"]["name"], "M");
        assert_eq!(f["jitsi_meet_context_matrix"]["room_id"], ROOM_ID);
        assert!(f["jitsi_meet_context_matrix"].get("token").is_none(), "OpenID token stripped");
        assert_eq!(f["matrix_user_id"], "@u:matrix.org");
        assert_eq!(finish(&policy(), &login, &verified(false)).unwrap()["auth_matrix_user_verification_is_owner"], false);
        let no_sync = MatrixPolicy::new(vec![], None, false).unwrap();
        assert_eq!(finish(&no_sync, &login, &verified(true)).unwrap()["auth_matrix_user_verification_is_owner"], false);
        assert_eq!(finish(&policy(), &login, &UvsOutcome::NotInRoom).unwrap_err(), Error::UvsNotInRoom(ROOM_ID.into()));
        assert_eq!(finish(&policy(), &login, &UvsOutcome::InvalidToken).unwrap_err(), Error::UvsInvalidToken);
        let e = finish(&policy(), &login, &UvsOutcome::Failure(UvsFailure::HttpStatus(500))).unwrap_err();
        assert_eq!(e, Error::UvsUnavailable("UVS answered HTTP 500".into()));
        assert_eq!((e.sasl_condition(), e.reason_code()), ("temporary-auth-failure", "invalid_response"));
    }
}
