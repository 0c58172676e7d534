//! The room door (docs/design.md, "Room doors"): a login proves something
//! about one room, and the MUC join is where that proof is checked. The
//! `token_verification` shim gathers the facts of a join (who, which room,
//! the main room of a breakout room) and applies the verdict; every rule is
//! here. Pure: no Lua, no I/O.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{is_healthcheck, proof_refusal, Proof, RoomRefusal, Scope};
use crate::text::Untrusted;

/// The door's options (read from the MUC component, else from its
/// VirtualHost, as jitsi-meet's module does).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DoorConfig {
    #[serde(default)]
    pub scope: Scope,
    /// `allow_empty_token`: token-less sessions pass.
    #[serde(default)]
    pub allow_empty_token: bool,
    /// `token_verification_allowlist`: domains or bare JIDs that skip the check.
    #[serde(default)]
    pub allowlist: Vec<String>,
    /// `token_verification_require_token_for_moderation`: owner
    /// configuration only from sessions that proved a room.
    #[serde(default)]
    pub require_token_for_moderation: bool,
}

/// The door's options as an admin writes them (`token_verification` on a
/// MUC component; each read from the component, else its VirtualHost).
#[derive(Debug, Clone, Default)]
pub struct DoorOptions {
    /// The MUC component's host.
    pub host: String,
    pub allow_empty_token: Option<bool>,
    pub enable_domain_verification: Option<bool>,
    pub muc_mapper_domain_base: Option<String>,
    pub token_verification_allowlist: Vec<String>,
    pub token_verification_require_token_for_moderation: Option<bool>,
}

impl DoorOptions {
    /// The door of this component (jitsi-meet's defaults: empty tokens
    /// refused, domains verified).
    pub fn into_config(self) -> DoorConfig {
        DoorConfig {
            scope: Scope::for_host(
                &self.host,
                self.muc_mapper_domain_base.as_deref(),
                self.enable_domain_verification.unwrap_or(true),
            ),
            allow_empty_token: self.allow_empty_token.unwrap_or(false),
            allowlist: self.token_verification_allowlist,
            require_token_for_moderation: self.token_verification_require_token_for_moderation.unwrap_or(false),
        }
    }
}

/// The facts of one join (or room creation), gathered by the shim.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DoorInput {
    /// Node of the room being joined.
    pub room_node: String,
    /// The room is on a breakout component: it is opened by its main room.
    #[serde(default)]
    pub breakout: bool,
    /// Node of the main room of a breakout room, when known.
    #[serde(default)]
    pub main_room_node: Option<String>,
    /// The joiner's real JID (`stanza.attr.from`).
    #[serde(default)]
    pub user_jid: String,
    /// A server admin (jicofo's focus user is one).
    #[serde(default)]
    pub is_admin: bool,
    /// The join arrived over server-to-server (visitor nodes).
    #[serde(default)]
    pub from_s2s: bool,
    /// The session logged in on another VirtualHost than the one whose
    /// logins this door checks (a guest host).
    #[serde(default)]
    pub other_host: bool,
    /// What the session proved at login.
    #[serde(default)]
    pub proof: Proof,
    /// Now, seconds since the epoch (for lapsed grants).
    #[serde(default)]
    pub now: f64,
}

/// Why the door opened or stayed shut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DoorVerdict {
    pub open: bool,
    /// Reason code: for a refusal, the `REQUEST_COMPLETE reason:<code>`.
    pub code: &'static str,
    /// For a refusal: the text of the error presence (escaped, bounded).
    pub text: Option<String>,
    /// The token's grants (bypass, room settings, moderator) have lapsed:
    /// the shim removes them from the session before anyone reads them.
    pub lapse_grants: bool,
}

fn open(code: &'static str) -> DoorVerdict {
    DoorVerdict { open: true, code, text: None, lapse_grants: false }
}

fn shut(code: &'static str, text: String) -> DoorVerdict {
    DoorVerdict { open: false, code, text: Some(text), lapse_grants: false }
}

/// `user@domain/resource` -> (`user@domain`, `domain`).
fn bare_and_domain(jid: &str) -> (&str, &str) {
    let bare = jid.split_once('/').map_or(jid, |(b, _)| b);
    let domain = bare.split_once('@').map_or(bare, |(_, d)| d);
    (bare, domain)
}

fn allowlisted(config: &DoorConfig, jid: &str) -> bool {
    let (bare, domain) = bare_and_domain(jid);
    !jid.is_empty()
        && config.allowlist.iter().any(|a| a.eq_ignore_ascii_case(bare) || a.eq_ignore_ascii_case(domain))
}

/// May this join (or room creation) go ahead?
pub fn check(config: &DoorConfig, input: &DoorInput) -> DoorVerdict {
    let mut verdict = decide(config, input);
    verdict.lapse_grants = input.proof.has_token && !input.proof.grants_live(input.now);
    verdict
}

fn decide(config: &DoorConfig, input: &DoorInput) -> DoorVerdict {
    if input.is_admin {
        return open("admin");
    }
    if input.from_s2s {
        return open("s2s");
    }
    if allowlisted(config, &input.user_jid) {
        return open("allowlist");
    }
    let node = if input.breakout {
        match input.main_room_node.as_deref() {
            Some(main) => main,
            None => {
                return shut(
                    "no_main_room",
                    format!("breakout room {} has no main room", Untrusted::new(&input.room_node)),
                )
            }
        }
    } else {
        input.room_node.as_str()
    };
    if is_healthcheck(node) {
        return open("healthcheck");
    }
    if input.other_host {
        return open("other_host");
    }
    if !input.proof.has_token {
        return if config.allow_empty_token {
            open("empty_token_allowed")
        } else {
            shut("token_required", "a token is required to join this room".into())
        };
    }
    match proof_refusal(&config.scope, &input.proof, node) {
        None => open("ok"),
        Some(refusal) => shut(refusal.code(), refusal_text(refusal, node)),
    }
}

fn refusal_text(refusal: RoomRefusal, node: &str) -> String {
    let room = Untrusted::new(node);
    match refusal {
        RoomRefusal::RoomNotCovered => format!("the token does not open room {room}"),
        RoomRefusal::TenantMismatch => format!("the token's tenant does not open room {room}"),
        RoomRefusal::MatrixRoomMismatch => {
            format!("this Matrix login was verified for another room than {room}")
        }
    }
}

/// May this session change a room's configuration (owner-config IQs)?
/// With `token_verification_require_token_for_moderation`, only admins
/// and sessions whose login proved a room may.
pub fn may_configure(config: &DoorConfig, is_admin: bool, proof: &Proof) -> bool {
    !config.require_token_for_moderation
        || is_admin
        || (proof.has_token && (proof.token_room.is_some() || proof.matrix_room_id.is_some()))
}

/// The text of a refused owner-configuration IQ (jitsi-meet's).
pub const CONFIGURE_REFUSED: &str = "Room modification disabled for guests";

/// The claims of `context.user` that grant something; they lapse with the
/// token (`exp`) and are removed from a session whose token expired.
pub const USER_GRANTS: &[&str] = &["security_bypass", "moderator", "affiliation", "lobby_bypass"];

/// `context.user` without its grants (display data and ids stay).
pub fn without_grants(user: &Value) -> Value {
    match user {
        Value::Object(map) => Value::Object(
            map.iter().filter(|(k, _)| !USER_GRANTS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::room::name_for_room_id;
    use serde_json::json;

    fn config() -> DoorConfig {
        DoorConfig {
            scope: Scope { home_domains: vec!["meet.example.com".into()], domain_verification: true },
            allow_empty_token: false,
            allowlist: vec!["recorder.meet.example.com".into(), "jigasi@auth.meet.example.com".into()],
            require_token_for_moderation: false,
        }
    }

    fn token(room: &str, sub: &str) -> Proof {
        Proof { has_token: true, token_room: Some(room.into()), token_domain: Some(sub.into()), ..Default::default() }
    }

    fn join(node: &str, proof: Proof) -> DoorInput {
        DoorInput { room_node: node.into(), user_jid: "u@meet.example.com/r".into(), proof, now: 1000.0, ..Default::default() }
    }

    #[test]
    fn door_rules_table() {
        let a = name_for_room_id("!a:example.org");
        let b = name_for_room_id("!b:example.org");
        let matrix = Proof { has_token: true, matrix_room_id: Some("!a:example.org".into()), ..Default::default() };
        let home = "meet.example.com";
        let breakout = |main: Option<&str>, proof: Proof| DoorInput {
            breakout: true,
            main_room_node: main.map(str::to_string),
            ..join("5f1c2d3e-uuid", proof)
        };
        let cases: Vec<(&str, DoorInput, bool, &str)> = vec![
            ("standard own room", join("rooma", token("rooma", home)), true, "ok"),
            ("standard claim case", join("rooma", token("ROOMA", home)), true, "ok"),
            ("standard other room", join("roomb", token("rooma", home)), false, "room_not_covered"),
            ("star", join("roomb", token("*", home)), true, "ok"),
            ("star of another tenant, unprefixed", join("boardroom", token("*", "t1")), false, "tenant_mismatch"),
            ("star of t1 in [t1]", join("[t1]x", token("*", "t1")), true, "ok"),
            ("star of t1 in [t2]", join("[t2]x", token("*", "t1")), false, "tenant_mismatch"),
            ("sub star", join("[t2]x", token("*", "*")), true, "ok"),
            ("breakout of own room", breakout(Some("rooma"), token("rooma", home)), true, "ok"),
            ("breakout of other room", breakout(Some("roomb"), token("rooma", home)), false, "room_not_covered"),
            ("breakout without main room", breakout(None, token("*", home)), false, "no_main_room"),
            ("matrix own room", join(&a, matrix.clone()), true, "ok"),
            ("matrix own room upper case", join(&a.to_uppercase(), matrix.clone()), true, "ok"),
            ("matrix other room", join(&b, matrix.clone()), false, "matrix_room_mismatch"),
            ("matrix own breakout", breakout(Some(&a), matrix.clone()), true, "ok"),
            ("matrix other breakout", breakout(Some(&b), matrix.clone()), false, "matrix_room_mismatch"),
            ("no token", join("rooma", Proof::default()), false, "token_required"),
            ("admin", DoorInput { is_admin: true, ..join("roomb", Proof::default()) }, true, "admin"),
            ("s2s", DoorInput { from_s2s: true, ..join("roomb", Proof::default()) }, true, "s2s"),
            ("guest host", DoorInput { other_host: true, ..join("roomb", Proof::default()) }, true, "other_host"),
            ("allowlisted domain",
             DoorInput { user_jid: "rec@recorder.meet.example.com/x".into(), ..join("roomb", Proof::default()) }, true, "allowlist"),
            ("allowlisted jid",
             DoorInput { user_jid: "jigasi@auth.meet.example.com/x".into(), ..join("roomb", Proof::default()) }, true, "allowlist"),
            ("not allowlisted: other user of that domain",
             DoorInput { user_jid: "x@auth.meet.example.com/x".into(), ..join("roomb", Proof::default()) }, false, "token_required"),
            ("healthcheck", join("__jicofo-health-check-1", Proof::default()), true, "healthcheck"),
        ];
        for (name, input, want_open, want_code) in cases {
            let v = check(&config(), &input);
            assert_eq!((v.open, v.code), (want_open, want_code), "{name}");
            assert_eq!(v.text.is_some(), !want_open, "{name}: a refusal has a text");
        }
    }

    #[test]
    fn options_take_jitsi_defaults() {
        let c = DoorOptions { host: "conference.meet.example.com".into(), ..Default::default() }.into_config();
        assert_eq!(c.scope.home_domains, ["meet.example.com"]);
        assert!(c.scope.domain_verification && !c.allow_empty_token && !c.require_token_for_moderation);
    }

    #[test]
    fn configuration_needs_a_proof_when_required() {
        let mut c = config();
        assert!(may_configure(&c, false, &Proof::default()), "not required: anyone");
        c.require_token_for_moderation = true;
        assert!(!may_configure(&c, false, &Proof::default()));
        assert!(may_configure(&c, true, &Proof::default()), "admins");
        assert!(may_configure(&c, false, &token("r", "meet.example.com")));
        let matrix = Proof { has_token: true, matrix_room_id: Some("!a:x".into()), ..Default::default() };
        assert!(may_configure(&c, false, &matrix));
        let no_room = Proof { has_token: true, ..Default::default() };
        assert!(!may_configure(&c, false, &no_room));
    }

    #[test]
    fn empty_tokens_follow_allow_empty_token() {
        let mut c = config();
        c.allow_empty_token = true;
        let v = check(&c, &join("rooma", Proof::default()));
        assert_eq!((v.open, v.code), (true, "empty_token_allowed"));
    }

    #[test]
    fn refusal_texts_are_pinned_and_escaped() {
        let v = check(&config(), &join("roomb\n", token("rooma", "meet.example.com")));
        assert_eq!(v.text.as_deref(), Some("the token does not open room 'roomb\\x0a'"));
        let v = check(&config(), &join("boardroom", token("*", "t1")));
        assert_eq!(v.text.as_deref(), Some("the token's tenant does not open room 'boardroom'"));
        let v = check(&config(), &join("x", Proof::default()));
        assert_eq!(v.text.as_deref(), Some("a token is required to join this room"));
    }

    #[test]
    fn lapsed_grants_are_flagged_and_removed() {
        let mut live = token("rooma", "meet.example.com");
        live.grants_until = Some(1000.5);
        assert!(!check(&config(), &join("rooma", live.clone())).lapse_grants);
        live.grants_until = Some(1000.0);
        let v = check(&config(), &join("rooma", live));
        assert!(v.open && v.lapse_grants, "the door stays open, the grants lapse");
        let user = json!({"id": "u", "name": "N", "security_bypass": true, "moderator": "true", "affiliation": "owner"});
        assert_eq!(without_grants(&user), json!({"id": "u", "name": "N"}));
    }
}
