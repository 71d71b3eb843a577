//! Reading devices and points from documents of any format (TOML files, JSON from the web
//! center) with errors that name the key.
//!
//! A device's keys depend on its `protocol`, and a point's are split between the common part and
//! the protocol's address. serde's own way for both (`flatten`, internally tagged enums) buffers
//! the document and its errors lose the key ("expected u8" of what?). Instead the document is
//! taken whole, split here, and each part read through toml's value reader, whose errors say
//! `in `unit_id``.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Reads `T` from one document; JSON nulls count as absent keys.
pub(crate) fn read<T: DeserializeOwned>(v: Value) -> Result<T, String> {
    let v = toml::Value::try_from(without_nulls(v)).map_err(|e| e.to_string())?;
    v.try_into().map_err(|e: toml::de::Error| keyed(&e.to_string()))
}

/// "invalid value ... expected u8\nin `unit_id`" as "unit_id: invalid value ... expected u8".
fn keyed(message: &str) -> String {
    let m = message.trim();
    match m.rsplit_once("\nin `") {
        // An inner part already said where (a point names itself).
        Some((msg, _)) if msg.starts_with("point \"") => msg.to_string(),
        Some((msg, key)) => format!("{}: {msg}", key.trim_end_matches('`')),
        None => m.to_string(),
    }
}

fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, without_nulls(v))).collect()),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        v => v,
    }
}

/// Takes a table apart: the document as a map of keys.
pub(crate) fn table<E: serde::de::Error>(v: Value, what: &str) -> Result<Map<String, Value>, E> {
    match v {
        Value::Object(m) => Ok(m),
        other => Err(E::custom(format!("{what} must be a table, not {}", kind(&other)))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "empty",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}
