//! Device models (TSL, `thing.tsltemplate.get`): what the cloud expects of a product's devices,
//! and how a device's configured points compare with it. The cloud never pushes a changed model:
//! the gateway asks on login and when told, and compares versions.

use crate::requests::Request;
use crate::{topics, Reply};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;

/// `thing.tsltemplate.get` for one device.
pub fn get(pk: &str, dk: &str, id: u64) -> Request {
    let method = "thing.tsltemplate.get";
    Request { topic: topics::sys(pk, dk, topics::TSL_GET), id, method, payload: crate::request(id, method, json!({})) }
}

/// One measure point of a model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelPoint {
    /// The model's data type in its own words (`FLOAT`, `INT`, `BOOL`, ...), upper case.
    pub data_type: String,
    /// Whether the model lets the cloud write it (`rw`); `None`: the model does not say.
    pub writable: Option<bool>,
}

/// What the gateway keeps of a product's model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Model {
    /// The model's version as the cloud names it, else a digest of its content.
    pub version: String,
    pub measurepoints: BTreeMap<String, ModelPoint>,
    pub attributes: Vec<String>,
    pub services: Vec<String>,
    pub events: Vec<String>,
}

/// The model in a `thing.tsltemplate.get` reply, or what is wrong with the reply, in words.
pub fn model(r: &Reply) -> Result<Model, String> {
    let d = &r.data;
    let Some(mps) = d.get("tslMeasurepointMap").and_then(|m| m.as_object()) else {
        return Err("the device model reply holds no tslMeasurepointMap".into());
    };
    let names = |k: &str| d.get(k).and_then(|m| m.as_object()).map(|m| m.keys().cloned().collect()).unwrap_or_default();
    let measurepoints = mps
        .iter()
        .map(|(name, p)| {
            let t = p.get("dataDefinition").and_then(|x| x.get("type")).or_else(|| p.get("dataType")).or_else(|| p.get("type"));
            let data_type = match t {
                Some(serde_json::Value::String(s)) => s.to_uppercase(),
                Some(serde_json::Value::Object(o)) => o.get("type").and_then(|x| x.as_str()).unwrap_or("").to_uppercase(),
                _ => String::new(),
            };
            let access = p.get("accessMode").or_else(|| p.get("access")).and_then(|a| a.as_str()).map(|a| a.to_lowercase());
            let writable = match access.as_deref() {
                Some("rw" | "w" | "read_write" | "write") => Some(true),
                Some("r" | "read_only" | "read") => Some(false),
                _ => p.get("writable").and_then(|w| w.as_bool()),
            };
            (name.clone(), ModelPoint { data_type, writable })
        })
        .collect();
    let version = ["version", "tslVersion", "modelVersion"]
        .iter()
        .find_map(|k| d.get(*k).and_then(|v| v.as_str().map(String::from).or_else(|| v.as_i64().map(|n| n.to_string()))))
        .unwrap_or_else(|| {
            use sha2::Digest;
            format!("sha256:{}", &hex::encode(sha2::Sha256::digest(d.to_string().as_bytes()))[..16])
        });
    Ok(Model {
        version,
        measurepoints,
        attributes: names("tslAttributeMap"),
        services: names("tslServiceMap"),
        events: names("tslEventMap"),
    })
}

/// A configured point, as the check needs it.
pub struct LocalPoint<'a> {
    pub name: &'a str,
    /// The collector's data type (`u16`, `f32`, `bool`, ...), when the protocol names one.
    pub data_type: Option<&'a str>,
    /// A scale other than 1 makes an integer register a decimal value.
    pub scaled: bool,
    pub writable: bool,
}

/// One way a device's configuration and its model disagree, in words.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Finding {
    pub point: String,
    pub problem: String,
}

/// What the cloud makes of a value of ours: number kinds compared loosely (an INT model point
/// takes a u16; a DOUBLE takes an f32), never a decimal into an integer or text into a number.
fn kind_of_local(t: &str, scaled: bool) -> &'static str {
    match t {
        "bool" | "bit" => "bool",
        "string" => "text",
        "f32" | "f64" => "decimal",
        _ if scaled => "decimal",
        _ => "integer",
    }
}

fn kind_of_model(t: &str) -> Option<&'static str> {
    Some(match t {
        "BOOL" | "BOOLEAN" => "bool",
        "INT" | "INTEGER" | "LONG" | "ENUM" => "integer",
        "FLOAT" | "DOUBLE" => "decimal",
        "STRING" | "TEXT" | "DATE" | "TIMESTAMP" => "text",
        _ => return None, // ARRAY, STRUCT, FILE, ...: not compared
    })
}

/// Every disagreement between the configured points and the model.
pub fn check(points: &[LocalPoint], m: &Model) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in points {
        let f = |problem: String| Finding { point: p.name.to_string(), problem };
        let Some(mp) = m.measurepoints.get(p.name) else {
            out.push(f(format!("the device model has no measure point {}: the cloud does not take its values", p.name)));
            continue;
        };
        if let (Some(t), Some(want)) = (p.data_type, kind_of_model(&mp.data_type)) {
            let have = kind_of_local(t, p.scaled);
            let fits = have == want || (have == "integer" && want == "decimal") || (have == "bool" && want == "integer");
            if !fits {
                let scaled = if p.scaled && t != "f32" && t != "f64" { " scaled" } else { "" };
                let a = if have == "integer" { "an" } else { "a" };
                out.push(f(format!("configured as{scaled} {t} ({a} {have} value), the device model says {}", mp.data_type)));
            }
        }
        if p.writable && mp.writable == Some(false) {
            out.push(f("writable here, read-only in the device model: the cloud will not write it".into()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(data: serde_json::Value) -> Reply {
        Reply { id: "1".into(), code: 200, message: String::new(), data }
    }

    #[test]
    fn a_model_and_the_points_that_disagree_with_it() {
        let m = model(&reply(json!({
            "version": 3,
            "tslMeasurepointMap": {
                "power": {"dataDefinition": {"type": "FLOAT"}},
                "count": {"dataType": "INT", "accessMode": "r"},
                "mode": {"dataType": {"type": "ENUM"}},
            },
            "tslServiceMap": {"reset": {}},
            "tslAttributeMap": {}, "tslEventMap": {}
        })))
        .unwrap();
        assert_eq!(m.version, "3");
        assert_eq!(m.measurepoints["count"], ModelPoint { data_type: "INT".into(), writable: Some(false) });
        assert_eq!(m.services, vec!["reset".to_string()]);
        let pts = [
            LocalPoint { name: "power", data_type: Some("u16"), scaled: true, writable: false },
            LocalPoint { name: "count", data_type: Some("u16"), scaled: true, writable: true },
            LocalPoint { name: "mode", data_type: Some("bool"), scaled: false, writable: false },
            LocalPoint { name: "extra", data_type: Some("u16"), scaled: false, writable: false },
        ];
        let found = check(&pts, &m);
        let words: Vec<String> = found.iter().map(|f| format!("{}: {}", f.point, f.problem)).collect();
        assert_eq!(
            words,
            vec![
                "count: configured as scaled u16 (a decimal value), the device model says INT",
                "count: writable here, read-only in the device model: the cloud will not write it",
                "extra: the device model has no measure point extra: the cloud does not take its values",
            ]
        );
        assert!(model(&reply(json!({"x": 1}))).unwrap_err().contains("no tslMeasurepointMap"));
        let unversioned = model(&reply(json!({"tslMeasurepointMap": {}}))).unwrap();
        assert!(unversioned.version.starts_with("sha256:"));
    }
}
