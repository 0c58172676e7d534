//! Every option our Prosody modules read, in one table: its name, type,
//! range, default, the modules that read it and a line of help. The Lua
//! shims read these names from Prosody's config with the raw
//! `module:get_option(name)` and hand the raw values here; [`parse`] checks
//! types and ranges and gives a normalized map that fills the option
//! structs ([`crate::runtime::login::AuthOptions`], the resync options). The admin
//! command `check-config` runs the very same code, and a unit test keeps
//! README's option tables equal to this one. Pure: no Lua, no I/O.

use std::fmt;

use serde_json::{Map, Value};

use crate::runtime::login::{DEFAULT_CACHE_TTL_SECS, DEFAULT_MAX_IN_FLIGHT, DEFAULT_QUEUE_LIMIT, DEFAULT_UVS_TIMEOUT_SECS};

/// A Prosody module of ours that reads options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Module {
    /// `mod_auth_matrix_user_verification` (and its alias
    /// `mod_auth_hybrid_matrix_token`) on the VirtualHost.
    Auth,
    /// `mod_matrix_power_sync` on the MUC component.
    PowerSync,
    /// `mod_token_security_ondemand` on the MUC component.
    SecurityOndemand,
    /// `mod_token_verification` (the room door) on MUC components.
    TokenVerification,
}

impl Module {
    /// Every module, in the order `check-config` reports them.
    pub const ALL: [Module; 4] = [Module::Auth, Module::PowerSync, Module::SecurityOndemand, Module::TokenVerification];

    /// From Prosody's `module.name` (`auth_hybrid_matrix_token` is the auth module too).
    pub fn from_name(name: &str) -> Option<Module> {
        Some(match name {
            "auth_matrix_user_verification" | "auth_hybrid_matrix_token" => Module::Auth,
            "matrix_power_sync" => Module::PowerSync,
            "token_security_ondemand" => Module::SecurityOndemand,
            "token_verification" => Module::TokenVerification,
            _ => return None,
        })
    }

    /// Prosody's name of the module (what `modules_enabled` lists).
    pub fn name(self) -> &'static str {
        match self {
            Module::Auth => "auth_matrix_user_verification",
            Module::PowerSync => "matrix_power_sync",
            Module::SecurityOndemand => "token_security_ondemand",
            Module::TokenVerification => "token_verification",
        }
    }

    /// Loaded on MUC components: an option the component does not set is
    /// read from its VirtualHost (see [`Spec::inherited`]).
    pub fn on_component(self) -> bool {
        self != Module::Auth
    }
}

/// What an option's value must be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// A string (`""` counts as unset unless the option says otherwise).
    Text,
    /// A secret string of at least `min_bytes`, never one of `refused`
    /// (publicly known values); its value never reaches a message.
    Secret { min_bytes: usize, refused: &'static [&'static str] },
    /// `true` or `false`.
    Flag,
    /// A list of strings; a single string is a one-element list (as
    /// Prosody's `get_option_array` reads it).
    List,
    /// A number of seconds, fractions allowed, from `min` to `max`; with
    /// `min_open` the minimum itself is excluded.
    Seconds { min: f64, min_open: bool, max: f64 },
    /// A whole number from `min` to `max`.
    Whole { min: u64, max: u64 },
    /// Any number (accepted and ignored).
    Number,
}

impl Kind {
    /// What a value of this kind is, for messages and README's type column.
    pub fn expected(self) -> String {
        match self {
            Kind::Text => "a string".into(),
            Kind::Secret { min_bytes, .. } => format!("a secret string of at least {min_bytes} bytes"),
            Kind::Flag => "true or false".into(),
            Kind::List => "a string or a list of strings".into(),
            Kind::Seconds { min, min_open: true, max } => {
                format!("a number of seconds more than {} and at most {}", num(min), num(max))
            }
            Kind::Seconds { min, min_open: false, max } => format!("a number of seconds from {} to {}", num(min), num(max)),
            Kind::Whole { min, max } => format!("a whole number from {min} to {max}"),
            Kind::Number => "a number".into(),
        }
    }

    /// README's type column.
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Text => "string",
            Kind::Secret { .. } => "secret",
            Kind::Flag => "boolean",
            Kind::List => "list",
            Kind::Seconds { .. } => "seconds",
            Kind::Whole { .. } => "whole number",
            Kind::Number => "number",
        }
    }
}

/// An option's default, typed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptionDefault {
    /// No default: unset means off (or "not used").
    Unset,
    /// The option must be set.
    Required,
    Flag(bool),
    Number(f64),
    List(&'static [&'static str]),
    /// A default that depends on other options (README shows this text).
    Derived(&'static str),
}

impl OptionDefault {
    /// As README's default column shows it.
    pub fn shown(self) -> String {
        match self {
            OptionDefault::Unset => "–".into(),
            OptionDefault::Required => "required".into(),
            OptionDefault::Flag(b) => format!("`{b}`"),
            OptionDefault::Number(n) => format!("`{}`", num(n)),
            OptionDefault::List(l) => format!("`{}`", lua_list(l)),
            OptionDefault::Derived(text) => text.into(),
        }
    }

    /// The typed default, for modules whose options have no Rust struct.
    pub fn value(self) -> Option<Value> {
        match self {
            OptionDefault::Flag(b) => Some(Value::Bool(b)),
            OptionDefault::Number(n) => Some(number(n)),
            OptionDefault::List(l) => Some(Value::Array(l.iter().map(|s| Value::String((*s).into())).collect())),
            OptionDefault::Unset | OptionDefault::Required | OptionDefault::Derived(_) => None,
        }
    }
}

/// One option.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    pub kind: Kind,
    pub default: OptionDefault,
    /// The modules that read it.
    pub modules: &'static [Module],
    /// One line for admins (README's meaning column says more).
    pub help: &'static str,
}

impl Spec {
    /// A MUC module reads this option from its component, else from the
    /// VirtualHost; `matrix_auth_host` (which names that VirtualHost) only
    /// from the component.
    pub fn inherited(&self) -> bool {
        self.name != "matrix_auth_host"
    }

    /// How to fix a wrong value.
    pub fn fix(&self) -> String {
        let how = match self.default {
            OptionDefault::Required => format!("set {} ({}): {}", self.name, self.kind.expected(), self.help),
            OptionDefault::Unset | OptionDefault::Derived(_) => {
                format!("set {} to {} ({}), or remove the line", self.name, self.kind.expected(), self.help)
            }
            OptionDefault::Flag(_) | OptionDefault::Number(_) | OptionDefault::List(_) => {
                let example = match self.default {
                    OptionDefault::List(l) => lua_list(l),
                    other => other.shown().trim_matches('`').to_string(),
                };
                format!("write {} = {example} (the default; {}), or remove the line", self.name, self.kind.expected())
            }
        };
        match self.kind {
            Kind::Secret { min_bytes, .. } => format!(
                "use a random secret of at least {min_bytes} bytes that the token issuer shares (for example the \
                 output of `openssl rand -hex 32`), or remove {} so that Matrix tokens grant nothing beyond \
                 membership",
                self.name
            ),
            _ => how,
        }
    }
}

const AUTH: &[Module] = &[Module::Auth];
const AUTH_AND_SYNC: &[Module] = &[Module::Auth, Module::PowerSync];
const SYNC: &[Module] = &[Module::PowerSync];
const DOOR: &[Module] = &[Module::TokenVerification];
const AUTH_AND_DOOR: &[Module] = &[Module::Auth, Module::TokenVerification];
const DOOR_AND_ONDEMAND: &[Module] = &[Module::TokenVerification, Module::SecurityOndemand];

/// Longest accepted `uvs_timeout`, seconds.
pub const MAX_UVS_TIMEOUT_SECS: f64 = 300.0;
/// Longest accepted duration option (a day), seconds.
pub const MAX_SECONDS: f64 = 86_400.0;
/// Largest accepted count option.
pub const MAX_COUNT: u64 = 1_000_000;
/// Default `matrix_state_ttl`, seconds.
pub const DEFAULT_STATE_TTL_SECS: f64 = 5.0;
/// Default `jwt_pubkey_cache_size`.
pub const DEFAULT_PUBKEY_CACHE_SIZE: f64 = 128.0;
/// Shortest accepted `matrix_token_secret`, bytes.
pub const MIN_MATRIX_SECRET_BYTES: usize = 32;

const SECONDS_OR_ZERO: Kind = Kind::Seconds { min: 0.0, min_open: false, max: MAX_SECONDS };
const COUNT: Kind = Kind::Whole { min: 1, max: MAX_COUNT };

/// Every option, in README's order.
pub static OPTIONS: &[Spec] = &[
    // Standard Jitsi tokens (VirtualHost).
    Spec { name: "app_id", kind: Kind::Text, default: OptionDefault::Required, modules: AUTH,
           help: "expected `iss` of standard tokens and the default issuer of Matrix tokens" },
    Spec { name: "app_secret", kind: Kind::Text, default: OptionDefault::Unset, modules: AUTH,
           help: "HMAC key of standard tokens (HS256/384/512)" },
    Spec { name: "jwt_public_key_file", kind: Kind::Text, default: OptionDefault::Unset, modules: AUTH,
           help: "path of a PEM public key (RS256 or ES256)" },
    Spec { name: "signature_algorithm", kind: Kind::Text,
           default: OptionDefault::Derived("`HS256` with a secret, `RS256` with a key file"), modules: AUTH,
           help: "the only algorithm accepted for standard tokens" },
    Spec { name: "asap_accepted_issuers", kind: Kind::List, default: OptionDefault::Derived("`{ app_id }`"), modules: AUTH,
           help: "accepted `iss` of standard tokens; \"*\" accepts any" },
    Spec { name: "asap_accepted_audiences", kind: Kind::List, default: OptionDefault::List(&["*"]), modules: AUTH,
           help: "accepted `aud` of standard tokens; \"*\" accepts any" },
    Spec { name: "asap_require_room_claim", kind: Kind::Flag, default: OptionDefault::Flag(true), modules: AUTH,
           help: "refuse tokens without a `room` claim" },
    Spec { name: "token_leeway", kind: Kind::Whole { min: 0, max: 86_400 }, default: OptionDefault::Number(0.0), modules: AUTH,
           help: "seconds of clock skew allowed on `exp` and `nbf`" },
    Spec { name: "allow_empty_token", kind: Kind::Flag, default: OptionDefault::Flag(false), modules: AUTH_AND_DOOR,
           help: "let token-less clients log in (and pass the room door)" },
    Spec { name: "asap_key_server", kind: Kind::Text, default: OptionDefault::Unset, modules: AUTH,
           help: "base URL of public keys chosen by the token's `kid`" },
    Spec { name: "jwt_pubkey_cache_size", kind: Kind::Whole { min: 1, max: 100_000 },
           default: OptionDefault::Number(DEFAULT_PUBKEY_CACHE_SIZE), modules: AUTH,
           help: "how many keys fetched by `kid` are kept" },
    Spec { name: "cache_keys_url", kind: Kind::Text, default: OptionDefault::Unset, modules: AUTH,
           help: "URL of a JWKS or kid -> PEM map of public keys" },
    // Matrix tokens (VirtualHost).
    Spec { name: "uvs_base_url", kind: Kind::Text, default: OptionDefault::Unset, modules: AUTH,
           help: "UVS base URL; unset with matrix_homeserver_url unset: Matrix tokens refused" },
    Spec { name: "uvs_auth_token", kind: Kind::Text, default: OptionDefault::Unset, modules: AUTH,
           help: "sent to UVS as `Authorization: Bearer`" },
    Spec { name: "uvs_sync_power_levels", kind: Kind::Flag, default: OptionDefault::Flag(false), modules: AUTH_AND_SYNC,
           help: "Matrix users with power >= state_default become owners" },
    Spec { name: "uvs_timeout", kind: Kind::Seconds { min: 0.0, min_open: true, max: MAX_UVS_TIMEOUT_SECS },
           default: OptionDefault::Number(DEFAULT_UVS_TIMEOUT_SECS), modules: AUTH_AND_SYNC,
           help: "seconds one Matrix check may take in all" },
    Spec { name: "uvs_disable_membership_verification", kind: Kind::Flag, default: OptionDefault::Flag(false), modules: AUTH,
           help: "only check the OpenID token, not room membership" },
    Spec { name: "uvs_issuer", kind: Kind::List, default: OptionDefault::Derived("`{ app_id }`"), modules: AUTH,
           help: "accepted `iss` of Matrix tokens; \"*\" accepts any" },
    Spec { name: "matrix_token_secret",
           kind: Kind::Secret { min_bytes: MIN_MATRIX_SECRET_BYTES, refused: &["notused"] },
           default: OptionDefault::Unset, modules: AUTH,
           help: "HS256 secret Matrix tokens must be signed with" },
    Spec { name: "uvs_max_in_flight", kind: COUNT, default: OptionDefault::Number(DEFAULT_MAX_IN_FLIGHT as f64),
           modules: AUTH_AND_SYNC, help: "Matrix checks sent at once" },
    Spec { name: "uvs_queue_limit", kind: COUNT, default: OptionDefault::Number(DEFAULT_QUEUE_LIMIT as f64), modules: AUTH,
           help: "Matrix logins that may wait at once" },
    Spec { name: "matrix_cache_ttl", kind: SECONDS_OR_ZERO, default: OptionDefault::Number(DEFAULT_CACHE_TTL_SECS),
           modules: AUTH, help: "seconds a verified Matrix check is remembered; 0 disables" },
    Spec { name: "matrix_state_ttl", kind: SECONDS_OR_ZERO, default: OptionDefault::Number(DEFAULT_STATE_TTL_SECS),
           modules: AUTH, help: "seconds a Matrix room's state is kept in direct mode; 0 disables" },
    Spec { name: "matrix_homeserver_url", kind: Kind::Text, default: OptionDefault::Unset, modules: AUTH_AND_SYNC,
           help: "direct mode: the homeserver's base URL, instead of uvs_base_url" },
    Spec { name: "matrix_admin_token", kind: Kind::Text, default: OptionDefault::Unset, modules: AUTH_AND_SYNC,
           help: "direct mode: the access token of a Synapse server admin" },
    Spec { name: "matrix_server_name", kind: Kind::Text,
           default: OptionDefault::Derived("the server of `matrix_admin_token`'s user"), modules: AUTH_AND_SYNC,
           help: "direct mode: the server OpenID users must belong to" },
    Spec { name: "uvs_workers", kind: Kind::Number, default: OptionDefault::Unset, modules: AUTH,
           help: "accepted and ignored" },
    // Room owners and live membership (MUC component).
    Spec { name: "matrix_auth_host", kind: Kind::Text,
           default: OptionDefault::Derived("the component's host minus its first label"), modules: SYNC,
           help: "the VirtualHost whose options the component uses when it does not set them" },
    Spec { name: "matrix_resync_interval", kind: SECONDS_OR_ZERO, default: OptionDefault::Number(crate::matrix::resync::DEFAULT_INTERVAL_SECS),
           modules: SYNC, help: "seconds between reads of a watched Matrix room's state; 0 turns live membership off" },
    // The room door (MUC components).
    Spec { name: "token_verification_allowlist", kind: Kind::List, default: OptionDefault::List(&[]), modules: DOOR,
           help: "domains or bare JIDs that skip the room door" },
    Spec { name: "token_verification_require_token_for_moderation", kind: Kind::Flag, default: OptionDefault::Flag(false),
           modules: DOOR, help: "refuse room configuration by token-less sessions" },
    Spec { name: "enable_domain_verification", kind: Kind::Flag, default: OptionDefault::Flag(true), modules: DOOR_AND_ONDEMAND,
           help: "check the token's tenant against the room's `[tenant]` and this domain" },
    Spec { name: "muc_mapper_domain_base", kind: Kind::Text,
           default: OptionDefault::Derived("the component's host minus its first label"), modules: DOOR_AND_ONDEMAND,
           help: "this deployment's domain (the tenant of rooms without `[tenant]`)" },
];

/// The option called `name`.
pub fn spec(name: &str) -> Option<&'static Spec> {
    OPTIONS.iter().find(|s| s.name == name)
}

/// The options `module` reads, in table order.
pub fn specs(module: Module) -> impl Iterator<Item = &'static Spec> {
    OPTIONS.iter().filter(move |s| s.modules.contains(&module))
}

/// A raw option value as Prosody's config holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    Bool(bool),
    Integer(i64),
    Float(f64),
    /// Any bytes (a config file is not always UTF-8).
    Str(Vec<u8>),
    /// A table whose keys are exactly 1..n.
    List(Vec<Raw>),
    /// Any other value: a table with other keys, a function... (its type name).
    Other(&'static str),
}

impl Raw {
    fn shown(&self) -> String {
        match self {
            Raw::Bool(b) => b.to_string(),
            Raw::Integer(i) => i.to_string(),
            Raw::Float(f) => num(*f),
            Raw::Str(s) => format!("the string {}", crate::text::Untrusted::new(s)),
            Raw::List(_) => "a list".into(),
            Raw::Other(t) => format!("a {t}"),
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            Raw::Integer(i) => Some(*i as f64),
            Raw::Float(f) => Some(*f),
            _ => None,
        }
    }
}

/// One configuration mistake and its fix.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub option: String,
    /// What is wrong, starting after the option's name.
    pub text: String,
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.option, self.text)
    }
}

impl Problem {
    fn new(spec: &Spec, text: String) -> Self {
        Problem { option: spec.name.into(), text, fix: spec.fix() }
    }

    /// A refusal of the runtime's own checks (`configuration error: <text>`)
    /// as a problem: its option is the first option name in the text.
    pub fn from_config_text(text: &str) -> Self {
        let named = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .find_map(spec);
        match named {
            Some(s) if text.starts_with(s.name) => {
                let rest = text[s.name.len()..].trim_start_matches(':').trim_start();
                Problem { option: s.name.into(), text: rest.into(), fix: s.fix() }
            }
            Some(s) => Problem { option: s.name.into(), text: text.into(), fix: s.fix() },
            None => Problem { option: "configuration".into(), text: text.into(), fix: "see README".into() },
        }
    }
}

/// The one line a runtime logs for `problems` (after `configuration error: `).
pub fn summary(problems: &[Problem]) -> String {
    problems.iter().map(Problem::to_string).collect::<Vec<_>>().join("; ")
}

fn check(spec: &Spec, raw: &Raw) -> Result<Value, Problem> {
    let wrong = || Problem::new(spec, format!("is {}, not {}", raw.shown(), spec.kind.expected()));
    let text = |raw: &Raw| match raw {
        Raw::Str(s) => String::from_utf8(s.clone()).map_err(|_| Problem::new(spec, "is not valid UTF-8".into())),
        _ => Err(wrong()),
    };
    match spec.kind {
        Kind::Text => Ok(Value::String(text(raw)?)),
        Kind::Secret { min_bytes, refused } => {
            let Raw::Str(s) = raw else {
                // Never show a secret's value, whatever its type.
                return Err(Problem::new(spec, format!("is not a string: {} is expected", spec.kind.expected())));
            };
            if refused.iter().any(|r| r.as_bytes() == s.as_slice()) {
                return Err(Problem::new(spec, "is a publicly known value (Element's `notused`), not a secret".into()));
            }
            if s.len() < min_bytes {
                return Err(Problem::new(spec, format!("is {} bytes long, shorter than {min_bytes}", s.len())));
            }
            Ok(Value::String(text(raw)?))
        }
        Kind::Flag => match raw {
            Raw::Bool(b) => Ok(Value::Bool(*b)),
            _ => Err(wrong()),
        },
        Kind::List => match raw {
            Raw::Str(_) => Ok(Value::Array(vec![Value::String(text(raw)?)])),
            Raw::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Raw::Str(_) => out.push(Value::String(text(item)?)),
                        other => {
                            return Err(Problem::new(
                                spec,
                                format!("lists {}, not {}", other.shown(), spec.kind.expected()),
                            ))
                        }
                    }
                }
                Ok(Value::Array(out))
            }
            _ => Err(wrong()),
        },
        Kind::Seconds { min, min_open, max } => {
            let n = raw.number().ok_or_else(wrong)?;
            let above_min = if min_open { n > min } else { n >= min };
            if !(n.is_finite() && above_min && n <= max) {
                return Err(wrong());
            }
            Ok(number(n))
        }
        Kind::Whole { min, max } => {
            let n = raw.number().ok_or_else(wrong)?;
            if !(n.is_finite() && n.fract() == 0.0 && n >= min as f64 && n <= max as f64) {
                return Err(wrong());
            }
            Ok(Value::from(n as u64))
        }
        Kind::Number => {
            let n = raw.number().filter(|n| n.is_finite()).ok_or_else(wrong)?;
            Ok(number(n))
        }
    }
}

/// Check the raw options of `module` (options it does not read are
/// ignored; absent ones are simply not in `raw`). Gives the set options,
/// normalized (a single string as a one-element list, numbers checked),
/// or every problem.
pub fn parse<'a>(module: Module, raw: impl IntoIterator<Item = (&'a str, &'a Raw)>) -> Result<Map<String, Value>, Vec<Problem>> {
    let mut out = Map::new();
    let mut problems = Vec::new();
    let mut given: Vec<(&str, &Raw)> = raw.into_iter().collect();
    given.sort_by_key(|(name, _)| OPTIONS.iter().position(|s| s.name == *name));
    for (name, value) in given {
        let Some(spec) = spec(name).filter(|s| s.modules.contains(&module)) else { continue };
        match check(spec, value) {
            Ok(v) => {
                out.insert(name.into(), v);
            }
            Err(p) => problems.push(p),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// [`parse`], then every typed default of `module` filled in (for modules
/// whose options have no Rust struct: the shim gets them ready to use).
pub fn parse_with_defaults<'a>(
    module: Module,
    raw: impl IntoIterator<Item = (&'a str, &'a Raw)>,
) -> Result<Map<String, Value>, Vec<Problem>> {
    let mut out = parse(module, raw)?;
    for spec in specs(module) {
        if let (false, Some(v)) = (out.contains_key(spec.name), spec.default.value()) {
            out.insert(spec.name.into(), v);
        }
    }
    Ok(out)
}

/// A number as JSON: whole numbers as integers.
fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

/// A number as an admin writes it: `5`, `1.5`.
fn num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn lua_list(items: &[&str]) -> String {
    if items.is_empty() {
        return "{ }".into();
    }
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("{{ {} }}", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn one(module: Module, name: &str, raw: Raw) -> Result<Map<String, Value>, Vec<Problem>> {
        parse(module, [(name, &raw)])
    }

    fn s(v: &str) -> Raw {
        Raw::Str(v.as_bytes().to_vec())
    }

    #[test]
    fn parse_pins_every_configuration_error_text() {
        let cases: Vec<(&str, Raw, &str)> = vec![
            ("token_leeway", Raw::Float(1.5), "token_leeway is 1.5, not a whole number from 0 to 86400"),
            ("token_leeway", Raw::Integer(-1), "token_leeway is -1, not a whole number from 0 to 86400"),
            ("token_leeway", s("5"), "token_leeway is the string '5', not a whole number from 0 to 86400"),
            ("uvs_timeout", s("5"), "uvs_timeout is the string '5', not a number of seconds more than 0 and at most 300"),
            ("uvs_timeout", Raw::Integer(0), "uvs_timeout is 0, not a number of seconds more than 0 and at most 300"),
            ("uvs_timeout", Raw::Integer(301), "uvs_timeout is 301, not a number of seconds more than 0 and at most 300"),
            ("uvs_timeout", Raw::Float(f64::NAN), "uvs_timeout is NaN, not a number of seconds more than 0 and at most 300"),
            ("matrix_cache_ttl", Raw::Integer(-5), "matrix_cache_ttl is -5, not a number of seconds from 0 to 86400"),
            ("uvs_max_in_flight", Raw::Integer(0), "uvs_max_in_flight is 0, not a whole number from 1 to 1000000"),
            ("uvs_queue_limit", Raw::Float(10.5), "uvs_queue_limit is 10.5, not a whole number from 1 to 1000000"),
            ("jwt_pubkey_cache_size", Raw::Integer(100_001), "jwt_pubkey_cache_size is 100001, not a whole number from 1 to 100000"),
            ("asap_require_room_claim", s("true"), "asap_require_room_claim is the string 'true', not true or false"),
            ("uvs_sync_power_levels", Raw::Integer(1), "uvs_sync_power_levels is 1, not true or false"),
            ("app_id", Raw::Integer(5), "app_id is 5, not a string"),
            ("app_id", Raw::Other("table"), "app_id is a table, not a string"),
            ("app_id", Raw::Str(vec![0xff]), "app_id is not valid UTF-8"),
            ("uvs_issuer", Raw::Bool(true), "uvs_issuer is true, not a string or a list of strings"),
            ("uvs_issuer", Raw::List(vec![s("a"), Raw::Integer(3)]), "uvs_issuer lists 3, not a string or a list of strings"),
            ("uvs_workers", s("4"), "uvs_workers is the string '4', not a number"),
            ("matrix_token_secret", s("notused"),
             "matrix_token_secret is a publicly known value (Element's `notused`), not a secret"),
            ("matrix_token_secret", s(""), "matrix_token_secret is 0 bytes long, shorter than 32"),
            ("matrix_token_secret", s("short-but-secret"), "matrix_token_secret is 16 bytes long, shorter than 32"),
            ("matrix_token_secret", Raw::Integer(12345),
             "matrix_token_secret is not a string: a secret string of at least 32 bytes is expected"),
        ];
        for (name, raw, want) in cases {
            let problems = one(Module::Auth, name, raw.clone()).expect_err(name);
            assert_eq!(problems.len(), 1, "{name}: {problems:?}");
            assert_eq!(problems[0].to_string(), want, "{name} {raw:?}");
            assert_eq!(problems[0].option, name);
            assert!(problems[0].fix.contains(name), "the fix names the option: {:?}", problems[0].fix);
        }
    }

    #[test]
    fn parse_never_shows_a_secret_value() {
        for raw in [s("notused"), s("0123456789"), Raw::Integer(987654321), Raw::List(vec![s("hidden-secret")])] {
            let problems = one(Module::Auth, "matrix_token_secret", raw.clone()).unwrap_err();
            let all = format!("{problems:?}");
            for needle in ["0123456789", "987654321", "hidden-secret"] {
                assert!(!all.contains(needle), "{raw:?} shown in {all}");
            }
        }
    }

    #[test]
    fn parse_normalizes_accepted_values() {
        let cases: Vec<(&str, Raw, Value)> = vec![
            ("uvs_issuer", s("meet.example.com"), serde_json::json!(["meet.example.com"])),
            ("uvs_issuer", Raw::List(vec![s("a"), s("b")]), serde_json::json!(["a", "b"])),
            ("asap_accepted_audiences", Raw::List(vec![]), serde_json::json!([])),
            ("token_leeway", Raw::Float(30.0), serde_json::json!(30)),
            ("uvs_timeout", Raw::Float(1.5), serde_json::json!(1.5)),
            ("uvs_timeout", Raw::Integer(300), serde_json::json!(300)),
            ("matrix_cache_ttl", Raw::Integer(0), serde_json::json!(0)),
            ("uvs_workers", Raw::Integer(8), serde_json::json!(8)),
            ("app_secret", s(""), serde_json::json!("")),
            ("matrix_token_secret", s(&"k".repeat(32)), serde_json::json!("k".repeat(32))),
            ("allow_empty_token", Raw::Bool(true), serde_json::json!(true)),
        ];
        for (name, raw, want) in cases {
            let got = one(Module::Auth, name, raw).unwrap_or_else(|p| panic!("{name}: {p:?}"));
            assert_eq!(got.get(name), Some(&want), "{name}");
        }
    }

    #[test]
    fn parse_reads_only_the_modules_own_options_and_reports_every_problem() {
        let raw = [("token_leeway", Raw::Float(1.5)), ("uvs_timeout", s("5")), ("matrix_resync_interval", s("x"))];
        let problems = parse(Module::Auth, raw.iter().map(|(n, r)| (*n, r))).unwrap_err();
        let options: Vec<&str> = problems.iter().map(|p| p.option.as_str()).collect();
        assert_eq!(options, vec!["token_leeway", "uvs_timeout"], "in table order; the resync option is not the auth module's");
        assert_eq!(
            summary(&problems),
            "token_leeway is 1.5, not a whole number from 0 to 86400; \
             uvs_timeout is the string '5', not a number of seconds more than 0 and at most 300"
        );
        let problems = parse(Module::PowerSync, raw.iter().map(|(n, r)| (*n, r))).unwrap_err();
        let options: Vec<&str> = problems.iter().map(|p| p.option.as_str()).collect();
        assert_eq!(options, vec!["uvs_timeout", "matrix_resync_interval"]);
    }

    #[test]
    fn parse_with_defaults_fills_typed_defaults() {
        let raw = s("meet.example.com");
        let got = parse_with_defaults(Module::TokenVerification, [("muc_mapper_domain_base", &raw)]).unwrap();
        let want = serde_json::json!({
            "allow_empty_token": false,
            "token_verification_allowlist": [],
            "token_verification_require_token_for_moderation": false,
            "enable_domain_verification": true,
            "muc_mapper_domain_base": "meet.example.com",
        });
        assert_eq!(Value::Object(got), want);
    }

    #[test]
    fn fixes_say_what_to_write() {
        let fix = |n: &str| spec(n).unwrap().fix();
        assert_eq!(fix("token_leeway"), "write token_leeway = 0 (the default; a whole number from 0 to 86400), or remove the line");
        assert_eq!(fix("app_id"), "set app_id (a string): expected `iss` of standard tokens and the default issuer of Matrix tokens");
        assert_eq!(fix("asap_accepted_audiences"),
                   "write asap_accepted_audiences = { \"*\" } (the default; a string or a list of strings), or remove the line");
        assert!(fix("matrix_token_secret").contains("at least 32 bytes"));
    }

    #[test]
    fn problems_from_runtime_texts_name_their_option() {
        let p = Problem::from_config_text("app_id is not set");
        assert_eq!((p.option.as_str(), p.text.as_str()), ("app_id", "is not set"));
        let p = Problem::from_config_text("set uvs_base_url or matrix_homeserver_url, not both");
        assert_eq!((p.option.as_str(), p.text.as_str()), ("uvs_base_url", "set uvs_base_url or matrix_homeserver_url, not both"));
        let p = Problem::from_config_text("jwt_public_key_file: cannot read public key file '/x': gone");
        assert_eq!((p.option.as_str(), p.text.as_str()), ("jwt_public_key_file", "cannot read public key file '/x': gone"));
        assert_eq!(Problem::from_config_text("cannot start the HTTP client").option, "configuration");
    }

    #[test]
    fn the_table_is_well_formed() {
        let mut seen = BTreeMap::new();
        for s in OPTIONS {
            assert!(seen.insert(s.name, ()).is_none(), "{} twice", s.name);
            assert!(!s.modules.is_empty() && !s.help.is_empty(), "{}", s.name);
            if let Some(v) = s.default.value() {
                let raw = match &v {
                    Value::Bool(b) => Raw::Bool(*b),
                    Value::Number(n) => Raw::Float(n.as_f64().unwrap()),
                    Value::Array(a) => Raw::List(a.iter().map(|x| s_raw(x.as_str().unwrap())).collect()),
                    _ => unreachable!(),
                };
                assert_eq!(check(s, &raw), Ok(v), "the default of {} passes its own check", s.name);
            }
        }
        for m in Module::ALL {
            assert_eq!(Module::from_name(m.name()), Some(m));
            assert!(specs(m).count() > 0);
        }
    }

    fn s_raw(v: &str) -> Raw {
        s(v)
    }

    /// README's option tables (`| option | type | default | meaning |`),
    /// row by row: (option, type, default).
    fn readme_rows(readme: &str) -> Vec<(String, String, String)> {
        let mut rows = Vec::new();
        let mut in_table = false;
        for line in readme.lines() {
            let cells: Vec<&str> = line.trim().trim_matches('|').split(" | ").map(str::trim).collect();
            if !line.starts_with('|') {
                in_table = false;
                continue;
            }
            if cells.first() == Some(&"option") && cells.get(1) == Some(&"type") && cells.get(2) == Some(&"default") {
                in_table = true;
                continue;
            }
            if !in_table || cells[0].starts_with("---") {
                continue;
            }
            assert!(cells.len() >= 4, "README option row with too few cells: {line}");
            rows.push((cells[0].trim_matches('`').to_string(), cells[1].to_string(), cells[2].to_string()));
        }
        rows
    }

    #[test]
    fn readme_option_tables_match_the_option_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(path).expect("README.md");
        let rows = readme_rows(&readme);
        let mut problems = Vec::new();
        for spec in OPTIONS {
            let found: Vec<_> = rows.iter().filter(|(n, _, _)| n == spec.name).collect();
            match found.as_slice() {
                [] => problems.push(format!("README has no row for {}", spec.name)),
                [(_, ty, default)] => {
                    if ty != spec.kind.type_name() {
                        problems.push(format!("README: {} is of type {ty}, the code says {}", spec.name, spec.kind.type_name()));
                    }
                    if *default != spec.default.shown() {
                        problems.push(format!("README: {} defaults to {default}, the code says {}", spec.name, spec.default.shown()));
                    }
                }
                _ => problems.push(format!("README has {} rows for {}", found.len(), spec.name)),
            }
        }
        for (name, _, _) in &rows {
            if spec(name).is_none() {
                problems.push(format!("README documents {name}, which no module reads"));
            }
        }
        assert!(problems.is_empty(), "README's option tables drifted from src/options.rs:\n{}", problems.join("\n"));
        assert!(rows.len() >= OPTIONS.len());
    }

    #[test]
    fn readme_drift_check_catches_each_kind_of_drift() {
        let good = "| option | type | default | meaning |\n|---|---|---|---|\n| `app_id` | string | required | x |\n";
        assert_eq!(readme_rows(good), vec![("app_id".into(), "string".into(), "required".into())]);
        let other_table = "| code | meaning | x |\n|---|---|---|\n| `app_id` | y | z |\n";
        assert!(readme_rows(other_table).is_empty(), "only option tables count");
    }
}
