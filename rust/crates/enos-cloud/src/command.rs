//! Commands from the cloud: what arrived, for whom, and the reply topic.

use crate::{codes, topics};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// Point writes in the order the cloud wrote them in the JSON object (a `serde_json::Map` would
/// sort them: a device sequence such as "unlock, then set" must not run backwards).
pub type Writes = Vec<(String, serde_json::Value)>;

#[derive(Debug, Clone, PartialEq)]
pub enum CommandKind {
    /// `thing.service.measurepoint.set`: point → value, in the cloud's order.
    SetPoints(Writes),
    /// `thing.service.{id}`: a service call; `writes` when its input parameters are a non-empty
    /// object (point → value, in the cloud's order).
    Service { service: String, writes: Option<Writes> },
    /// `ota.device.upgrade` for the gateway.
    OtaUpgrade(serde_json::Value),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub id: String,
    pub product_key: String,
    pub device_key: String,
    pub reply_topic: String,
    pub kind: CommandKind,
}

/// Why a command could not be parsed; the reply carries the code and the text.
#[derive(Debug, Clone, PartialEq)]
pub struct Malformed {
    pub id: String,
    pub reply_topic: Option<String>,
    pub code: i64,
    pub message: String,
}

/// The request id of a payload too large to parse as a command, when there is one, so even its
/// refusal can be matched by the cloud.
pub fn id_of(payload: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(payload).ok().and_then(|v| v["id"].as_str().map(String::from)).unwrap_or_default()
}

/// Parses a message on a command topic. `Ok(None)`: not a command topic (a reply, for example).
pub fn parse(topic: &str, payload: &[u8]) -> Result<Option<Command>, Malformed> {
    let parts: Vec<&str> = topic.split('/').collect();
    // /sys/{pk}/{dk}/rest...
    if parts.len() < 5 || !parts[0].is_empty() || parts[1] != "sys" || topics::request_of(topic).is_some() {
        return Ok(None);
    }
    let (pk, dk) = (parts[2], parts[3]);
    let rest = parts[4..].join("/");
    let expected_method = if rest == topics::MEASUREPOINT_SET {
        "thing.service.measurepoint.set".to_string()
    } else if rest == topics::OTA_UPGRADE {
        "ota.device.upgrade".to_string()
    } else if let Some(s) = rest.strip_prefix(topics::SERVICE_PREFIX) {
        if s.is_empty() || s.contains('/') {
            return Ok(None);
        }
        format!("thing.service.{s}")
    } else {
        return Ok(None);
    };
    let reply_topic = topics::reply_of(topic);
    let bad = |id: &str, code: i64, message: String| Malformed { id: id.into(), reply_topic: Some(reply_topic.clone()), code, message };
    if payload.is_empty() {
        return Err(bad("", codes::EMPTY, "payload empty".into()));
    }
    let v: Envelope = serde_json::from_slice(payload).map_err(|e| bad("", codes::NOT_JSON, format!("payload is not valid JSON: {e}")))?;
    let id = match &v.id {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => return Err(bad("", codes::BAD_PARAMS, "missing request id".into())),
    };
    if id.len() > 64 {
        return Err(bad("", codes::BAD_PARAMS, "request id longer than 64 characters".into()));
    }
    let method = v.method.as_ref().and_then(|m| m.as_str()).unwrap_or("");
    if method != expected_method {
        return Err(bad(&id, codes::METHOD_MISMATCH, format!("method {method:?} does not match the topic (expected {expected_method:?})")));
    }
    let kind = if rest == topics::MEASUREPOINT_SET {
        match v.params {
            Params::Object(m) if !m.is_empty() => CommandKind::SetPoints(m),
            _ => return Err(bad(&id, codes::BAD_PARAMS, "params must be a non-empty object of point: value".into())),
        }
    } else if rest == topics::OTA_UPGRADE {
        CommandKind::OtaUpgrade(v.params.into_value())
    } else {
        let writes = match v.params {
            Params::Object(m) if !m.is_empty() => Some(m),
            _ => None,
        };
        CommandKind::Service { service: rest[topics::SERVICE_PREFIX.len()..].to_string(), writes }
    };
    Ok(Some(Command { id, product_key: pk.into(), device_key: dk.into(), reply_topic, kind }))
}

/// The request envelope; only `params` needs its order kept.
#[derive(Deserialize)]
struct Envelope {
    id: Option<serde_json::Value>,
    method: Option<serde_json::Value>,
    #[serde(default)]
    params: Params,
}

/// `params` as sent: an object keeps its keys' order, anything else is kept as a value.
#[derive(Debug, Default)]
enum Params {
    #[default]
    Absent,
    Object(Writes),
    Other(serde_json::Value),
}

impl Params {
    fn into_value(self) -> serde_json::Value {
        match self {
            Params::Absent => serde_json::Value::Null,
            Params::Object(w) => serde_json::Value::Object(w.into_iter().collect()),
            Params::Other(v) => v,
        }
    }
}

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Params, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Params;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("command parameters")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Params, A::Error> {
                let mut w = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, serde_json::Value>()? {
                    w.push((k, v));
                }
                Ok(Params::Object(w))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, s: A) -> Result<Params, A::Error> {
                let v = serde_json::Value::deserialize(serde::de::value::SeqAccessDeserializer::new(s))?;
                Ok(Params::Other(v))
            }
            fn visit_bool<E>(self, b: bool) -> Result<Params, E> {
                Ok(Params::Other(b.into()))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Params, E> {
                Ok(Params::Other(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Params, E> {
                Ok(Params::Other(n.into()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Params, E> {
                Ok(Params::Other(serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Params, E> {
                Ok(Params::Other(s.into()))
            }
            fn visit_unit<E>(self) -> Result<Params, E> {
                Ok(Params::Other(serde_json::Value::Null))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_malformed_ones() {
        let t = "/sys/pk/inv01/thing/service/measurepoint/set";
        let c = parse(t, br#"{"id":"7","version":"1.0","method":"thing.service.measurepoint.set","params":{"SP":5}}"#).unwrap().unwrap();
        assert_eq!(c.reply_topic, format!("{t}_reply"));
        assert_eq!(c.kind, CommandKind::SetPoints(vec![("SP".into(), serde_json::json!(5))]));
        let e = parse(t, b"{not json").unwrap_err();
        assert_eq!((e.code, e.reply_topic.as_deref()), (1220, Some("/sys/pk/inv01/thing/service/measurepoint/set_reply")));
        let e = parse(t, br#"{"id":"8","method":"thing.service.Reset","params":{}}"#).unwrap_err();
        assert_eq!((e.code, e.id.as_str()), (1260, "8"));
        let e = parse(t, br#"{"id":"9","method":"thing.service.measurepoint.set","params":[]}"#).unwrap_err();
        assert_eq!(e.code, 460);
        let s =
            parse("/sys/pk/inv01/thing/service/Reset", br#"{"id":1,"method":"thing.service.Reset","params":{"a":1}}"#).unwrap().unwrap();
        assert_eq!(s.kind, CommandKind::Service { service: "Reset".into(), writes: Some(vec![("a".into(), serde_json::json!(1))]) });
        assert_eq!(parse("/sys/pk/gw/thing/measurepoint/post/batch_reply", b"{}").unwrap(), None);
    }

    #[test]
    fn points_keep_the_order_the_cloud_wrote_them_in() {
        let t = "/sys/pk/inv01/thing/service/measurepoint/set";
        let c = parse(t, br#"{"id":"1","method":"thing.service.measurepoint.set","params":{"zeta":1,"alpha":{"b":2,"a":1},"mid":"x"}}"#)
            .unwrap()
            .unwrap();
        let CommandKind::SetPoints(w) = c.kind else { panic!("{:?}", c.kind) };
        let names: Vec<&str> = w.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["zeta", "alpha", "mid"]);
        let o = parse("/sys/pk/gw/ota/device/upgrade", br#"{"id":"2","method":"ota.device.upgrade","params":{"version":"1","n":[1,2.5]}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(o.kind, CommandKind::OtaUpgrade(serde_json::json!({"version":"1","n":[1,2.5]})));
        let s = parse("/sys/pk/inv01/thing/service/Reset", br#"{"id":3,"method":"thing.service.Reset","params":[1]}"#).unwrap().unwrap();
        assert_eq!(s.kind, CommandKind::Service { service: "Reset".into(), writes: None });
    }
}
