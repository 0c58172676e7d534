//! What a session may do in a room (docs/design.md, "Trust rules", "Room
//! doors", "Lobby, password, owners"): the room door, lobby/password/bypass,
//! owners, and the one tenant rule they all use. Pure functions: they take
//! the facts the Lua shims gather (a session's [`Proof`], the room's state)
//! and return the actions the shims apply.
//!
//! Decides: who enters a room, what a token's grants change, who is owner.
//! Must not touch: Lua, I/O, token signatures (a [`Proof`] is what a
//! verified login left on the session).

pub mod door;
pub mod owner;
pub mod security;

use serde::Deserialize;
use serde_json::Value;

use crate::matrix::room::name_for_room_id;

/// Rooms jicofo creates for health checks; no policy ever touches them.
pub const HEALTHCHECK_PREFIX: &str = "__jicofo-health-check";

/// True for jicofo's health-check rooms.
pub fn is_healthcheck(room_node: &str) -> bool {
    room_node.starts_with(HEALTHCHECK_PREFIX)
}

/// Jitsi's `[tenant]room` node split into its tenant (if any) and room.
pub fn split_tenant(room_node: &str) -> (Option<&str>, &str) {
    match room_node.strip_prefix('[').and_then(|r| r.split_once(']')) {
        Some((tenant, room)) => (Some(tenant), room),
        None => (None, room_node),
    }
}

/// Where this MUC lives, for the tenant rule: the domains a token's tenant
/// may name for rooms without `[tenant]`, and whether domains are checked
/// at all (`enable_domain_verification`, default true). docs/design.md,
/// "Trust rules".
#[derive(Debug, Clone, Deserialize)]
pub struct Scope {
    /// This host's domain (`muc_mapper_domain_base`, else the MUC
    /// component's host minus its first label), lower case.
    #[serde(default)]
    pub home_domains: Vec<String>,
    /// `enable_domain_verification`.
    #[serde(default = "yes")]
    pub domain_verification: bool,
}

fn yes() -> bool {
    true
}

impl Scope {
    /// The scope of the MUC component `host`: its domain is
    /// `muc_mapper_domain_base` when set, else `host` minus its first
    /// label (`conference.meet.example.com` -> `meet.example.com`).
    pub fn for_host(host: &str, domain_base: Option<&str>, domain_verification: bool) -> Self {
        Scope::for_domain(host.split_once('.').map_or(host, |(_, rest)| rest), domain_base, domain_verification)
    }

    /// The scope of the MUC components of the VirtualHost `domain`: its
    /// domain is `muc_mapper_domain_base` when set, else `domain`.
    pub fn for_domain(domain: &str, domain_base: Option<&str>, domain_verification: bool) -> Self {
        let home = domain_base.map(str::trim).filter(|b| !b.is_empty()).unwrap_or(domain);
        Scope { home_domains: vec![home.to_ascii_lowercase()], domain_verification }
    }
}

impl Default for Scope {
    fn default() -> Self {
        Scope { home_domains: Vec::new(), domain_verification: true }
    }
}

/// What a session proved at login, read off its session fields (see
/// `bindings::session`): the only input of every room decision.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Proof {
    /// The session logged in with a token (`session.auth_token`).
    #[serde(default)]
    pub has_token: bool,
    /// The token's `room` claim (`session.jitsi_meet_room`).
    #[serde(default, deserialize_with = "lenient_str")]
    pub token_room: Option<String>,
    /// `session.jitsi_meet_str_tenant` (the token's `context.tenant`).
    #[serde(default, deserialize_with = "lenient_str")]
    pub token_tenant: Option<String>,
    /// `session.jitsi_meet_domain` (the token's `sub`, the tenant when
    /// `context.tenant` is absent).
    #[serde(default, deserialize_with = "lenient_str")]
    pub token_domain: Option<String>,
    /// The Matrix room a Matrix login was verified for
    /// (`session.jitsi_meet_context_matrix.room_id`).
    #[serde(default, deserialize_with = "lenient_str")]
    pub matrix_room_id: Option<String>,
    /// When the token's grants lapse (`exp` + leeway, seconds since the
    /// epoch; `session.jitsi_security_grants_until`); none: never.
    #[serde(default, deserialize_with = "lenient_f64")]
    pub grants_until: Option<f64>,
}

/// A session field that should be a string but, set by another module
/// or from a claim of another type, may be anything: not a string, none.
pub(crate) fn lenient_str<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => Some(s),
        _ => None,
    })
}

fn lenient_f64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_f64(),
        _ => None,
    })
}

impl Proof {
    /// The token's tenant: `context.tenant`, else `sub`.
    pub fn tenant(&self) -> Option<&str> {
        self.token_tenant.as_deref().or(self.token_domain.as_deref())
    }

    /// Do the token's grants (bypass, room settings, moderator) still
    /// hold at `now` (seconds since the epoch)?
    pub fn grants_live(&self, now: f64) -> bool {
        self.grants_until.is_none_or(|until| now < until)
    }
}

/// The tenant rule (docs/design.md, "Trust rules"), the one place that
/// decides whether a token of tenant `token_tenant` (`context.tenant`,
/// else `sub`) may open, bypass or configure `room_node`:
///
/// - `[t]room`: only tenant `t` or `*` (always, whatever the scope says);
/// - a room without `[tenant]`: only this host's domain or `*` (when
///   domains are verified, the default).
///
/// Tenants compare without regard to ASCII case.
pub fn tenant_allows(scope: &Scope, token_tenant: Option<&str>, room_node: &str) -> bool {
    let (room_tenant, _) = split_tenant(room_node);
    if room_tenant.is_none() && !scope.domain_verification {
        return true;
    }
    let Some(tenant) = token_tenant else { return false };
    if tenant == "*" {
        return true;
    }
    match room_tenant {
        Some(room_tenant) => tenant.eq_ignore_ascii_case(room_tenant),
        None => scope.home_domains.iter().any(|d| d.eq_ignore_ascii_case(tenant)),
    }
}

/// Does the `room` claim name `room_node`? `*` names every room; else the
/// claim names the room (without its `[tenant]` prefix) or the whole node,
/// ignoring case. No claim names no room.
pub fn claim_names_room(claim: Option<&str>, room_node: &str) -> bool {
    let Some(claim) = claim else { return false };
    let (_, room) = split_tenant(room_node);
    claim == "*" || claim.eq_ignore_ascii_case(room) || claim.eq_ignore_ascii_case(room_node)
}

/// Why a standard token does not open `room_node`, if it does not: its
/// `room` claim, then the tenant rule.
pub fn standard_token_refusal(scope: &Scope, proof: &Proof, room_node: &str) -> Option<RoomRefusal> {
    if !claim_names_room(proof.token_room.as_deref(), room_node) {
        return Some(RoomRefusal::RoomNotCovered);
    }
    if !tenant_allows(scope, proof.tenant(), room_node) {
        return Some(RoomRefusal::TenantMismatch);
    }
    None
}

/// Why a proof does not cover a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomRefusal {
    /// The token's `room` claim does not name the room.
    RoomNotCovered,
    /// The token's tenant may not act in the room.
    TenantMismatch,
    /// The Matrix login was verified for another Matrix room.
    MatrixRoomMismatch,
}

impl RoomRefusal {
    /// The reason code admins see in `REQUEST_COMPLETE reason:<code>`.
    pub fn code(self) -> &'static str {
        match self {
            RoomRefusal::RoomNotCovered => "room_not_covered",
            RoomRefusal::TenantMismatch => "tenant_mismatch",
            RoomRefusal::MatrixRoomMismatch => "matrix_room_mismatch",
        }
    }
}

/// Does this proof cover `room_node` (the main room's node for a breakout
/// room)? A Matrix login covers base32(its room id) only; a standard token
/// what its `room` claim names, within the tenant rule.
pub fn proof_refusal(scope: &Scope, proof: &Proof, room_node: &str) -> Option<RoomRefusal> {
    match &proof.matrix_room_id {
        Some(room_id) => (!room_node.eq_ignore_ascii_case(&name_for_room_id(room_id)))
            .then_some(RoomRefusal::MatrixRoomMismatch),
        None => standard_token_refusal(scope, proof, room_node),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope { home_domains: vec!["meet.example.com".into()], domain_verification: true }
    }

    #[test]
    fn claim_names_room_cases() {
        let cases = [
            (Some("*"), "abc", true),
            (Some("abc"), "abc", true),
            (Some("ABC"), "abc", true),
            (Some("abd"), "abc", false),
            (Some("abc"), "abcd", false),
            (None, "abc", false),
            (Some("abc"), "[t1]abc", true),
            (Some("[t1]abc"), "[t1]abc", true),
            (Some("tenant"), "[tenant]abc", false),
        ];
        for (claim, node, want) in cases {
            assert_eq!(claim_names_room(claim, node), want, "{claim:?} {node}");
        }
    }

    #[test]
    fn tenant_rule_cases() {
        let off = Scope { domain_verification: false, ..scope() };
        let cases = [
            // Rooms without a tenant: the host's domain or `*` only.
            (scope(), Some("meet.example.com"), "boardroom", true),
            (scope(), Some("MEET.example.com"), "boardroom", true),
            (scope(), Some("*"), "boardroom", true),
            (scope(), Some("t1"), "boardroom", false),
            (scope(), None, "boardroom", false),
            (off.clone(), Some("t1"), "boardroom", true),
            (off.clone(), None, "boardroom", true),
            // `[t]room`: tenant t or `*`, whatever the scope.
            (scope(), Some("t1"), "[t1]x", true),
            (scope(), Some("T1"), "[t1]x", true),
            (scope(), Some("*"), "[t2]x", true),
            (scope(), Some("t1"), "[t2]x", false),
            (scope(), Some("meet.example.com"), "[t2]x", false),
            (scope(), None, "[t2]x", false),
            (off, Some("t1"), "[t2]x", false),
        ];
        for (scope, tenant, node, want) in cases {
            assert_eq!(tenant_allows(&scope, tenant, node), want, "{tenant:?} {node} {}", scope.domain_verification);
        }
    }

    #[test]
    fn proof_refusal_cases() {
        let standard = |room: &str, tenant: Option<&str>, sub: Option<&str>| Proof {
            has_token: true,
            token_room: Some(room.into()),
            token_tenant: tenant.map(str::to_string),
            token_domain: sub.map(str::to_string),
            ..Default::default()
        };
        let a = name_for_room_id("!a:example.org");
        let b = name_for_room_id("!b:example.org");
        let matrix = Proof { has_token: true, matrix_room_id: Some("!a:example.org".into()), ..Default::default() };
        let home = Some("meet.example.com");
        use RoomRefusal::*;
        let cases: Vec<(&str, Proof, String, Option<RoomRefusal>)> = vec![
            ("room claim", standard("rooma", None, home), "rooma".into(), None),
            ("room claim other room", standard("rooma", None, home), "roomb".into(), Some(RoomNotCovered)),
            ("star", standard("*", None, home), "roomb".into(), None),
            ("tenant star, unprefixed", standard("*", None, Some("t1")), "boardroom".into(), Some(TenantMismatch)),
            ("tenant star, own tenant", standard("*", None, Some("t1")), "[t1]x".into(), None),
            ("tenant star, other tenant", standard("*", None, Some("t1")), "[t2]x".into(), Some(TenantMismatch)),
            ("context.tenant wins", standard("*", Some("t2"), Some("t1")), "[t2]x".into(), None),
            ("matrix own room", matrix.clone(), a.clone(), None),
            ("matrix own room, upper", matrix.clone(), a.to_uppercase(), None),
            ("matrix other room", matrix.clone(), b, Some(MatrixRoomMismatch)),
            ("matrix tenant-prefixed", matrix.clone(), format!("[t]{a}"), Some(MatrixRoomMismatch)),
            ("matrix padded", matrix, format!("{a}="), Some(MatrixRoomMismatch)),
        ];
        for (name, proof, node, want) in cases {
            assert_eq!(proof_refusal(&scope(), &proof, &node), want, "{name}");
        }
    }

    #[test]
    fn scope_for_host_takes_the_domain_base_or_the_parent() {
        assert_eq!(Scope::for_host("conference.Meet.example.com", None, true).home_domains, ["meet.example.com"]);
        assert_eq!(Scope::for_host("breakout.meet.example.com", Some("example.org"), true).home_domains, ["example.org"]);
        assert_eq!(Scope::for_host("localhost", None, true).home_domains, ["localhost"]);
    }

    #[test]
    fn grants_lapse_at_their_time() {
        let p = Proof { grants_until: Some(100.0), ..Default::default() };
        assert!(p.grants_live(99.5));
        assert!(!p.grants_live(100.0));
        assert!(Proof::default().grants_live(1e12), "no exp: no lapse");
    }

    #[test]
    fn healthcheck_rooms_are_recognised() {
        assert!(is_healthcheck("__jicofo-health-check-1234"));
        assert!(!is_healthcheck("room__jicofo-health-check"));
    }
}
