//! One login decision for the VirtualHost provider: which kind of token it
//! is (Matrix or standard Jitsi, as jitsi-contrib's hybrid auth does) and
//! what is checked locally. Matrix logins end with a UVS request that the
//! caller runs off the event loop. Pure: no Lua, no I/O.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::matrix::{self, MatrixLogin, MatrixPolicy};
use crate::token::{self, Verifier, VerifierOptions};
use crate::uvs::UvsConfig;

/// Default UVS request budget, seconds.
pub const DEFAULT_UVS_TIMEOUT_SECS: f64 = 5.0;

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
    /// Worker threads that talk to UVS (default 4).
    pub uvs_workers: Option<usize>,
    /// Matrix logins allowed to wait for UVS at once (default 256).
    pub uvs_queue_limit: Option<usize>,
}

impl AuthOptions {
    /// `(threads, queue limit)` of the UVS worker pool.
    pub fn pool_size(&self) -> (usize, usize) {
        (self.uvs_workers.unwrap_or(4).clamp(1, 64), self.uvs_queue_limit.unwrap_or(256).max(1))
    }
}

/// What a login needs next.
#[derive(Debug)]
pub enum LoginStep {
    /// A standard token passed: copy these fields onto the session.
    Done(Map<String, Value>),
    /// A Matrix token passed the local checks: ask UVS, then `matrix::finish`.
    Uvs(MatrixLogin),
}

/// Configured once per VirtualHost.
pub struct Authenticator {
    standard: std::result::Result<Verifier, String>,
    matrix: Option<MatrixPolicy>,
}

impl Authenticator {
    /// Returns the authenticator and, when Matrix tokens are enabled, the
    /// UVS client configuration.
    pub fn new(o: AuthOptions) -> Result<(Self, Option<UvsConfig>)> {
        let app_id = o.standard.app_id.clone().filter(|a| !a.is_empty());
        let standard_wanted = o.standard.app_secret.as_deref().is_some_and(|s| !s.is_empty())
            || o.standard.jwt_public_key_file.is_some();
        let standard = if standard_wanted {
            Ok(Verifier::new(o.standard.clone().into_config()?)?)
        } else {
            Err("standard tokens are not accepted here (no app_secret or jwt_public_key_file)".into())
        };
        let base_url = o.uvs_base_url.as_deref().map(str::trim).filter(|u| !u.is_empty());
        let (matrix, uvs) = match base_url {
            None => (None, None),
            Some(url) => {
                let issuers = match (o.uvs_issuer.clone(), &app_id) {
                    (Some(list), _) if !list.is_empty() => list,
                    (_, Some(app_id)) => vec![app_id.clone()],
                    (_, None) => {
                        return Err(Error::Config("Matrix tokens need app_id or uvs_issuer".into()))
                    }
                };
                let timeout = o.uvs_timeout.unwrap_or(DEFAULT_UVS_TIMEOUT_SECS);
                if !(timeout.is_finite() && timeout > 0.0 && timeout <= 300.0) {
                    return Err(Error::Config(format!("uvs_timeout {timeout} is not between 0 and 300 seconds")));
                }
                let mut uvs = UvsConfig::new(url);
                uvs.auth_token = o.uvs_auth_token.clone().filter(|t| !t.is_empty());
                uvs.timeout = Duration::from_secs_f64(timeout);
                uvs.verify_membership = !o.uvs_disable_membership_verification.unwrap_or(false);
                let policy = MatrixPolicy::new(
                    issuers,
                    o.matrix_token_secret.clone(),
                    o.uvs_sync_power_levels.unwrap_or(false),
                )?;
                (Some(policy), Some(uvs))
            }
        };
        if app_id.is_none() {
            return Err(Error::Config("app_id is not set".into()));
        }
        Ok((Authenticator { standard, matrix }, uvs))
    }

    /// Local checks for `token` presented for the Jitsi room `room`.
    pub fn begin(&self, token: &str, room: Option<&str>, now: u64) -> Result<LoginStep> {
        let claims = token::peek(token)?;
        let matrix_token = token::is_matrix(&claims);
        match (&self.standard, &self.matrix) {
            (Ok(verifier), _) if !matrix_token => {
                let claims = verifier.verify(token, now)?;
                Ok(LoginStep::Done(token::session_fields(&claims)))
            }
            (_, Some(policy)) => Ok(LoginStep::Uvs(matrix::prepare(policy, token, room, now)?)),
            (_, None) if matrix_token => Err(Error::MatrixDisabled),
            (Err(why), None) => Err(Error::StandardDisabled(why.clone())),
            (Ok(_), None) => unreachable!("standard tokens are handled above"),
        }
    }

    /// Turn UVS's verdict for `login` into session fields.
    pub fn finish(&self, login: &MatrixLogin, outcome: &crate::uvs::UvsOutcome) -> Result<Map<String, Value>> {
        let policy = self.matrix.as_ref().ok_or(Error::MatrixDisabled)?;
        matrix::finish(policy, login, outcome)
    }

    /// A one-line summary for the startup log (never a secret).
    pub fn describe(&self) -> String {
        let standard = match &self.standard {
            Ok(_) => "standard tokens: on",
            Err(_) => "standard tokens: off",
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
    use crate::room::name_for_room_id;
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
            ("hybrid standard", true, true, standard_token(), |r| matches!(r, Ok(LoginStep::Done(_)))),
            ("hybrid matrix", true, true, matrix_token(), |r| matches!(r, Ok(LoginStep::Uvs(_)))),
            ("standard only, matrix token", true, false, matrix_token(), |r| matches!(r, Err(Error::MatrixDisabled))),
            ("matrix only, standard token", false, true, no_matrix_ctx.clone(),
             |r| matches!(r, Err(Error::MatrixContextMissing))),
            ("matrix only, matrix token", false, true, matrix_token(), |r| matches!(r, Ok(LoginStep::Uvs(_)))),
            ("hybrid, forged standard", true, true, no_matrix_ctx.clone(), |r| matches!(r, Err(Error::TokenSignature))),
            ("garbage", true, true, "x.y".into(), |r| matches!(r, Err(Error::TokenMalformed(_)))),
        ];
        for (name, secret, uvs, token, want) in cases {
            let (auth, _) = Authenticator::new(options(secret, uvs)).unwrap();
            let got = auth.begin(&token, Some(&room), NOW);
            assert!(want(&got), "{name}: {got:?}");
        }
    }

    #[test]
    fn new_builds_uvs_config_from_options() {
        let mut o = options(false, true);
        o.uvs_auth_token = Some("tok".into());
        o.uvs_timeout = Some(1.5);
        o.uvs_disable_membership_verification = Some(true);
        let (_, uvs) = Authenticator::new(o).unwrap();
        let uvs = uvs.unwrap();
        assert_eq!(uvs.base_url, "http://127.0.0.1:9");
        assert_eq!(uvs.auth_token.as_deref(), Some("tok"));
        assert_eq!(uvs.timeout, Duration::from_millis(1500));
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
        for o in [no_app, bad_timeout, bad_key] {
            assert!(matches!(Authenticator::new(o), Err(Error::Config(_))));
        }
    }

    #[test]
    fn matrix_issuer_defaults_to_app_id_and_uvs_issuer_overrides() {
        let room = name_for_room_id("!r:x");
        let other_iss = jwt(json!({"iss": "element", "room": "*",
                                   "context": {"matrix": {"token": "o", "room_id": "!r:x"}}}), b"n");
        let (auth, _) = Authenticator::new(options(false, true)).unwrap();
        assert!(matches!(auth.begin(&other_iss, Some(&room), NOW), Err(Error::IssuerNotAccepted(_))));
        let mut o = options(false, true);
        o.uvs_issuer = Some(vec!["element".into()]);
        let (auth, _) = Authenticator::new(o).unwrap();
        assert!(matches!(auth.begin(&other_iss, Some(&room), NOW), Ok(LoginStep::Uvs(_))));
    }
}
