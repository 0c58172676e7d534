//! The option table (src/options.rs) for the shims: which options a module
//! reads, and their raw config values checked and normalized.

use mlua::prelude::*;

use super::{refusal, to_lua};
use crate::error::Error;
use crate::options::{self, Module, Raw};

/// A config value as [`Raw`]: lists one level deep (a table whose keys
/// are exactly 1..n), anything else by its type name.
fn raw_value(v: &LuaValue, top: bool) -> Raw {
    match v {
        LuaValue::Boolean(b) => Raw::Bool(*b),
        LuaValue::Integer(i) => Raw::Integer(*i),
        LuaValue::Number(n) => Raw::Float(*n),
        LuaValue::String(s) => Raw::Str(s.as_bytes().to_vec()),
        LuaValue::Table(t) if top => {
            let n = t.raw_len();
            if t.pairs::<LuaValue, LuaValue>().count() != n {
                return Raw::Other("table");
            }
            let mut items = Vec::with_capacity(n);
            for i in 1..=n {
                match t.raw_get::<LuaValue>(i) {
                    Ok(value) => items.push(raw_value(&value, false)),
                    Err(_) => return Raw::Other("table"),
                }
            }
            Raw::List(items)
        }
        other => Raw::Other(other.type_name()),
    }
}

/// `{ name = value }` as read by a shim -> (name, raw value) pairs; keys
/// that are not strings are skipped, nil values are absent.
pub(crate) fn raw_options(options: &LuaTable) -> Vec<(String, Raw)> {
    let mut out = Vec::new();
    for (name, value) in options.pairs::<LuaValue, LuaValue>().flatten() {
        if let LuaValue::String(name) = name {
            out.push((String::from_utf8_lossy(&name.as_bytes()).into_owned(), raw_value(&value, true)));
        }
    }
    out
}

/// The raw options of `module` checked by the option table, with defaults
/// filled: what a constructor (`new_door`, `new_security`) builds from.
pub(crate) fn checked(module: Module, raw: &LuaTable) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
    let raw = raw_options(raw);
    options::parse_with_defaults(module, raw.iter().map(|(n, r)| (n.as_str(), r)))
        .map_err(|problems| Error::Config(options::summary(&problems)))
}

pub(crate) fn module_named(name: &str) -> LuaResult<Module> {
    Module::from_name(name).ok_or_else(|| LuaError::runtime(format!("jitsi_security: no options for module {name:?}")))
}

/// option_names(module_name) -> { names... }, { [name] = true when a MUC
/// module reads it from the VirtualHost if the component does not set it }
fn option_names(lua: &Lua, name: String) -> LuaResult<(LuaTable, LuaTable)> {
    let module = module_named(&name)?;
    let names = lua.create_table()?;
    let inherited = lua.create_table()?;
    for spec in options::specs(module) {
        names.push(spec.name)?;
        if module.on_component() && spec.inherited() {
            inherited.set(spec.name, true)?;
        }
    }
    Ok((names, inherited))
}

/// options(module_name, raw) -> { every option, defaults filled } | nil, "configuration error: ...", condition, code
fn checked_options(lua: &Lua, (name, raw): (String, LuaTable)) -> LuaResult<LuaMultiValue> {
    let module = module_named(&name)?;
    let raw = raw_options(&raw);
    match options::parse_with_defaults(module, raw.iter().map(|(n, r)| (n.as_str(), r))) {
        Ok(map) => to_lua(lua, &map)?.into_lua_multi(lua),
        Err(problems) => refusal(lua, &Error::Config(options::summary(&problems))),
    }
}

/// read_options(module) -> raw, options | raw, nil, "configuration error: ...", condition, code
///
/// Every option of a Prosody `module` (its `name` picks the row set): from
/// the module's own host, or, for a MUC component, from the VirtualHost
/// whose options it shares when the component does not set them: the
/// `matrix_auth_host` option when the module reads one, else the
/// component's host minus its first label (`conference.meet.example.com` ->
/// `meet.example.com`). Returns the raw values (for the constructors that
/// take them) and the checked options with defaults filled.
fn read_options(lua: &Lua, prosody_module: LuaTable) -> LuaResult<LuaMultiValue> {
    let name: String = prosody_module.get("name")?;
    let host: String = prosody_module.get("host")?;
    let module = module_named(&name)?;
    let get_option: LuaFunction = prosody_module.get("get_option")?;
    let raw = lua.create_table()?;
    for spec in options::specs(module) {
        raw.set(spec.name, get_option.call::<LuaValue>((prosody_module.clone(), spec.name))?)?;
    }
    if module.on_component() {
        // A matrix_auth_host that is not valid UTF-8 text falls back to the
        // default here; the option table reports it as a configuration error.
        let fallback = match raw.get::<LuaValue>("matrix_auth_host")? {
            LuaValue::String(h) => h.to_str().ok().map(|h| h.to_string()),
            _ => None,
        }
        .unwrap_or_else(|| host.split_once('.').map_or(host.as_str(), |(_, rest)| rest).to_string());
        let require: LuaFunction = lua.globals().get("require")?;
        let config: LuaTable = require.call("core.configmanager")?;
        let config_get: LuaFunction = config.get("get")?;
        for spec in options::specs(module).filter(|s| s.inherited()) {
            if raw.get::<LuaValue>(spec.name)?.is_nil() {
                raw.set(spec.name, config_get.call::<LuaValue>((fallback.as_str(), spec.name))?)?;
            }
        }
    }
    let parsed = options::parse_with_defaults(module, raw_options(&raw).iter().map(|(n, r)| (n.as_str(), r)));
    let mut out = vec![LuaValue::Table(raw)];
    match parsed {
        Ok(map) => out.push(to_lua(lua, &map)?),
        Err(problems) => out.extend(refusal(lua, &Error::Config(options::summary(&problems)))?),
    }
    Ok(LuaMultiValue::from_iter(out))
}

pub(super) fn register(lua: &Lua, t: &LuaTable) -> LuaResult<()> {
    t.set("read_options", lua.create_function(read_options)?)?;
    t.set("option_names", lua.create_function(option_names)?)?;
    t.set("options", lua.create_function(checked_options)?)?;
    Ok(())
}
