//! The communication test of an OPC UA device: a browse of the server's address space from one
//! node (the Objects folder by default), each node with its ids, names and class, a variable
//! with its data type, access level and current value, and the configured point on it.

use super::map;
use enos_collector_config::opcua::{NodeRef, OpcuaDevice};
use enos_model::comm_test::{CommAnswer, OpcuaBrowse, OpcuaBrowseAnswer, OpcuaNode};
use enos_opcua::opcua::types::{NodeClass, StatusCode, Variant};
use enos_opcua::{access_words, class_name, words, Browsed, Client};
use std::sync::Arc;
use std::time::Instant;

/// The configured points of one device: each one's node as written and its name.
pub type Names = Vec<(NodeRef, String)>;

pub fn names(cfg: &OpcuaDevice) -> Names {
    cfg.points.iter().filter_map(|p| Some((NodeRef::parse(&p.at.node).ok()?, p.meta.name.to_string()))).collect()
}

/// Browses and says what the server has there; a failure is an answer with `ok: false`.
pub async fn browse(client: Arc<Client>, req: OpcuaBrowse, names: Names) -> CommAnswer {
    let started = Instant::now();
    let mut a = OpcuaBrowseAnswer { node: req.node().to_string(), ..Default::default() };
    let node = match NodeRef::parse(req.node()).and_then(|r| map::node(&r)) {
        Ok(n) => n,
        Err(why) => return failed(a, "refused", format!("node: {why}"), started),
    };
    let from = match client.resolve(&node.0, node.1.as_deref()).await {
        Ok(n) => n,
        Err(code) => {
            let why = format!("the namespace of {}: {}", a.node, words(code));
            return failed(a, failure(code), why, started);
        }
    };
    match client.browse(&from).await {
        Ok(children) => {
            a.more = children.more;
            a.nodes = children.nodes.iter().map(|b| described(b, &names)).collect();
            let n = a.nodes.len();
            a.ok = true;
            a.message = format!(
                "{} holds {n} node{}{}",
                a.node,
                if n == 1 { "" } else { "s" },
                if a.more { " (the first ones shown: the server has more)" } else { "" }
            );
        }
        Err(code) => {
            let why = format!("browsing {}: {}", a.node, words(code));
            return failed(a, failure(code), why, started);
        }
    }
    a.took_ms = started.elapsed().as_millis() as u64;
    CommAnswer::OpcuaBrowse(a)
}

/// The answer while there is no session.
pub fn offline(req: &OpcuaBrowse, why: &str) -> CommAnswer {
    let a = OpcuaBrowseAnswer { node: req.node().to_string(), ..Default::default() };
    failed(a, "offline", why.to_string(), Instant::now())
}

fn failed(mut a: OpcuaBrowseAnswer, failure: &str, message: String, started: Instant) -> CommAnswer {
    a.failure = Some(failure.into());
    a.message = message;
    a.took_ms = started.elapsed().as_millis() as u64;
    CommAnswer::OpcuaBrowse(a)
}

fn failure(code: StatusCode) -> &'static str {
    match code.sub_code().name() {
        "BadTimeout" | "BadRequestTimeout" => "timeout",
        "BadNotConnected" | "BadConnectionClosed" | "BadCommunicationError" | "BadSessionClosed" | "BadSessionIdInvalid" => "offline",
        _ => "refused",
    }
}

fn described(b: &Browsed, names: &Names) -> OpcuaNode {
    let node_id = b.node.to_string();
    let nsu_id = b.namespace_uri.as_ref().map(|uri| {
        let id = node_id.split_once(';').map_or(node_id.as_str(), |(_, id)| id);
        format!("nsu={uri};{id}")
    });
    let (value, text) = match &b.value {
        Some(v) if v.status.is_some_and(|s| !s.is_good()) => (serde_json::Value::Null, words(v.status.unwrap_or_default())),
        Some(v) => v.value.as_ref().map_or((serde_json::Value::Null, "no value".into()), json),
        None => (serde_json::Value::Null, String::new()),
    };
    let point = names
        .iter()
        .find(|(r, _)| {
            let s = r.to_string();
            s == node_id || Some(&s) == nsu_id.as_ref()
        })
        .map(|(_, n)| n.clone());
    OpcuaNode {
        nsu_id,
        browse_name: b.browse_name.clone(),
        display_name: b.display_name.clone(),
        node_class: class_name(b.class).into(),
        data_type: b.data_type.clone(),
        access: b.access_level.map(access_words),
        writable: b.access_level.is_some_and(|l| l & 2 != 0),
        value: if b.class == NodeClass::Variable { value } else { serde_json::Value::Null },
        text,
        point,
        node_id,
    }
}

/// A value as JSON (numbers, true/false, text) and in words.
fn json(v: &Variant) -> (serde_json::Value, String) {
    let j = match v {
        Variant::Boolean(b) => serde_json::json!(b),
        Variant::SByte(x) => serde_json::json!(x),
        Variant::Byte(x) => serde_json::json!(x),
        Variant::Int16(x) => serde_json::json!(x),
        Variant::UInt16(x) => serde_json::json!(x),
        Variant::Int32(x) => serde_json::json!(x),
        Variant::UInt32(x) => serde_json::json!(x),
        Variant::Int64(x) => serde_json::json!(x),
        Variant::UInt64(x) => serde_json::json!(x),
        // a Float as the decimal it was meant to be
        Variant::Float(x) => x.to_string().parse::<f64>().map_or(serde_json::Value::Null, |f| serde_json::json!(f)),
        Variant::Double(x) => serde_json::json!(x),
        Variant::String(s) => serde_json::json!(s.as_ref()),
        Variant::LocalizedText(t) => serde_json::json!(t.text.as_ref()),
        Variant::Empty => serde_json::Value::Null,
        _ => return (serde_json::Value::Null, text(v)),
    };
    (j, text(v))
}

fn text(v: &Variant) -> String {
    match v {
        Variant::Empty => "no value".into(),
        Variant::LocalizedText(t) => t.text.to_string(),
        Variant::Array(a) => format!("an array of {} values", a.values.len()),
        Variant::ExtensionObject(_) => "a structure".into(),
        Variant::ByteString(b) => format!("{} bytes", b.value.as_ref().map_or(0, |v| v.len())),
        other => other.to_string(),
    }
}
