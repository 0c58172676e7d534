//! The crate's one error type. Every refusal names the step that failed and
//! carries a reason text fit for a log line and a SASL failure: it never
//! contains a token, a secret or a key, and every piece of untrusted text
//! in it is an [`Untrusted`] (escaped, quoted, bounded).

use crate::text::Untrusted;

/// Everything that can go wrong while configuring or checking a login.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The module configuration is unusable (missing key, unreadable key
    /// file, unknown algorithm...). Raised at load time, never per login.
    #[error("configuration error: {0}")]
    Config(String),

    /// No token was presented and empty tokens are not allowed.
    #[error("no token was presented")]
    TokenMissing,

    /// The token is not three base64url segments with JSON header and payload.
    #[error("token is malformed: {0}")]
    TokenMalformed(&'static str),

    /// The header's `typ` is present but is not `JWT`.
    #[error("token type {0} is not JWT")]
    TokenType(Untrusted),

    /// The header's `alg` is not the algorithm pinned by configuration
    /// (this is where `alg: none` and HS/RS confusion end).
    #[error("token algorithm {got} is not accepted (expected {expected})")]
    TokenAlgorithm { got: Untrusted, expected: &'static str },

    /// The header's `crit` lists extensions, none of which we understand
    /// (RFC 7515 section 4.1.11 says refuse).
    #[error("token header lists critical extensions {0} that are not understood")]
    TokenCritical(Untrusted),

    /// `session.public_key` (from a fetch-key handler) is not an RSA or EC
    /// PEM public key.
    #[error("the public key for this session is not an RSA or EC PEM public key")]
    PublicKeyUnusable,

    /// Keys are chosen by `kid` and the token's header has none.
    #[error("token header has no kid (keys are chosen by kid here)")]
    KidMissing,

    /// No usable key for the token's `kid` (not in the key set, or its
    /// fetch failed); the text is ours, untrusted parts escaped.
    #[error("no public key for this token: {0}")]
    KeyUnavailable(String),

    /// The signature does not match the configured key.
    #[error("token signature is invalid")]
    TokenSignature,

    /// `now >= exp` (after leeway).
    #[error("token has expired")]
    TokenExpired,

    /// `now < nbf` (after leeway).
    #[error("token is not yet valid (nbf is in the future)")]
    TokenNotYetValid,

    /// A claim has the wrong JSON type (`exp` a string, `iss` a number...).
    #[error("token claim '{0}' has the wrong type")]
    ClaimType(&'static str),

    /// A required claim is absent.
    #[error("token has no '{0}' claim")]
    ClaimMissing(&'static str),

    /// `iss` is not among the accepted issuers.
    #[error("token issuer {0} is not accepted")]
    IssuerNotAccepted(Untrusted),

    /// No `aud` value is among the accepted audiences.
    #[error("token audience is not accepted")]
    AudienceNotAccepted,

    /// A Matrix token lacks `context`.
    #[error("token has no Matrix context (context.matrix)")]
    MatrixContextMissing,

    /// A Matrix token lacks `context.matrix.room_id` (or it is not a string).
    #[error("token has no Matrix room id (context.matrix.room_id)")]
    MatrixRoomIdMissing,

    /// A Matrix token lacks `context.matrix.token` (the OpenID token).
    #[error("token has no Matrix OpenID token (context.matrix.token)")]
    MatrixOpenIdMissing,

    /// The connection named no Jitsi room (`?room=`).
    #[error("no room name was given")]
    RoomMissing,

    /// The Jitsi room name is not the base32 encoding of any room id.
    #[error("room name {0} is not a base32 encoded Matrix room id")]
    RoomNameUndecodable(Untrusted),

    /// The verifier (UVS or the homeserver) says the user is not a member
    /// of the Matrix room.
    #[error("user is not a member of Matrix room {0}")]
    MatrixNotInRoom(Untrusted),

    /// The verifier says the Matrix OpenID token is not valid.
    #[error("Matrix OpenID token was refused by {0}")]
    MatrixInvalidToken(&'static str),

    /// The verifier gave no usable answer (down, timeout, non-200, bad
    /// body): fail closed. The text is ours, already escaped.
    #[error("could not verify the Matrix user: {0}")]
    MatrixUnavailable(String),

    /// Too many Matrix checks are already waiting; refused without blocking.
    #[error("too many Matrix logins are waiting for verification (limit {0})")]
    MatrixBusy(usize),

    /// The module was unloaded (or reloaded) while the login waited.
    #[error("the authentication module was unloaded; please retry")]
    Unloaded,

    /// A standard token arrived but no key for standard tokens is configured.
    #[error("{0}")]
    StandardDisabled(String),

    /// Matrix tokens arrived but the module has no `uvs_base_url`.
    #[error("Matrix tokens are not accepted here (neither uvs_base_url nor matrix_homeserver_url is set)")]
    MatrixDisabled,

    /// An unknown `kid` was not fetched: too many unknown kids were asked
    /// for in the last second, or too many key fetches or logins waiting
    /// for one are pending. Refused at once, nothing remembered.
    #[error("the key of this token is not fetched now: {0}")]
    KeyFetchBusy(String),

    /// The key server gave no definite answer for a `kid` (timeout,
    /// connection error, a status other than 200 or 404): not remembered,
    /// the next login asks again. The text is ours, already escaped.
    #[error("the key of this token could not be fetched: {0}")]
    KeyFetchFailed(String),

    /// The Jitsi room name does not encode the token's Matrix room id.
    #[error("room name {room} does not match Matrix room id {room_id}")]
    RoomMismatch { room: Untrusted, room_id: Untrusted },
}

impl Error {
    /// The SASL failure condition (RFC 6120 section 6.5) for this refusal.
    pub fn sasl_condition(&self) -> &'static str {
        match self {
            Error::Config(_) => "temporary-auth-failure",
            Error::MatrixContextMissing
            | Error::MatrixRoomIdMissing
            | Error::MatrixOpenIdMissing
            | Error::RoomMissing
            | Error::RoomNameUndecodable(_) => "bad-request",
            Error::RoomMismatch { .. } => "not-allowed",
            Error::MatrixUnavailable(_)
            | Error::MatrixBusy(_)
            | Error::Unloaded
            | Error::KeyFetchBusy(_)
            | Error::KeyFetchFailed(_) => "temporary-auth-failure",
            _ => "not-authorized",
        }
    }

    /// The `REQUEST_COMPLETE reason:<code>` code the original Matrix plugin
    /// logged for this refusal; admins alert on these.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Error::Config(_) => "config_error",
            Error::TokenMissing | Error::TokenMalformed(_) => "auth_token_decode_issue",
            Error::MatrixContextMissing
            | Error::MatrixRoomIdMissing
            | Error::MatrixOpenIdMissing
            | Error::RoomMissing => "missing_matrix_room_id",
            Error::RoomNameUndecodable(_) | Error::RoomMismatch { .. } => {
                "jitsi_and_matrix_room_mismatch"
            }
            Error::MatrixNotInRoom(_) => "not_in_room",
            Error::MatrixInvalidToken(_) => "invalid_token",
            Error::MatrixUnavailable(_) => "invalid_response",
            Error::MatrixBusy(_) => "uvs_busy",
            Error::Unloaded => "module_unloaded",
            Error::KeyFetchBusy(_) => "key_fetch_busy",
            Error::KeyFetchFailed(_) => "key_fetch_failed",
            _ => "invalid_auth_token",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
