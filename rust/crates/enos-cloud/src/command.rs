//! Commands from the cloud: what arrived, for whom, and the reply topic.

use crate::topics;

#[derive(Debug, Clone, PartialEq)]
pub enum CommandKind {
    /// `thing.service.measurepoint.set`: point → value.
    SetPoints(serde_json::Map<String, serde_json::Value>),
    /// `thing.service.{id}`: a service call with its input parameters.
    Service { service: String, params: serde_json::Value },
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

/// Parses a message on a command topic. `Ok(None)`: not a command topic (a reply, for example).
pub fn parse(topic: &str, payload: &[u8]) -> Result<Option<Command>, Malformed> {
    let parts: Vec<&str> = topic.split('/').collect();
    // /sys/{pk}/{dk}/rest...
    if parts.len() < 5 || !parts[0].is_empty() || parts[1] != "sys" || topic.ends_with("_reply") {
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
        return Err(bad("", 1251, "payload empty".into()));
    }
    let v: serde_json::Value = serde_json::from_slice(payload).map_err(|e| bad("", 1220, format!("payload is not valid JSON: {e}")))?;
    let id = match v.get("id") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => return Err(bad("", 460, "missing request id".into())),
    };
    if id.len() > 64 {
        return Err(bad("", 460, "request id longer than 64 characters".into()));
    }
    let method = v.get("method").and_then(|m| m.as_str()).unwrap_or("");
    if method != expected_method {
        return Err(bad(&id, 1260, format!("method {method:?} does not match the topic (expected {expected_method:?})")));
    }
    let params = v.get("params").cloned().unwrap_or(serde_json::Value::Null);
    let kind = if rest == topics::MEASUREPOINT_SET {
        match params {
            serde_json::Value::Object(m) if !m.is_empty() => CommandKind::SetPoints(m),
            _ => return Err(bad(&id, 460, "params must be a non-empty object of point: value".into())),
        }
    } else if rest == topics::OTA_UPGRADE {
        CommandKind::OtaUpgrade(params)
    } else {
        CommandKind::Service { service: rest[topics::SERVICE_PREFIX.len()..].to_string(), params }
    };
    Ok(Some(Command { id, product_key: pk.into(), device_key: dk.into(), reply_topic, kind }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_malformed_ones() {
        let t = "/sys/pk/inv01/thing/service/measurepoint/set";
        let c = parse(t, br#"{"id":"7","version":"1.0","method":"thing.service.measurepoint.set","params":{"SP":5}}"#).unwrap().unwrap();
        assert_eq!(c.reply_topic, format!("{t}_reply"));
        assert!(matches!(c.kind, CommandKind::SetPoints(ref m) if m["SP"] == 5));
        let e = parse(t, b"{not json").unwrap_err();
        assert_eq!((e.code, e.reply_topic.as_deref()), (1220, Some("/sys/pk/inv01/thing/service/measurepoint/set_reply")));
        let e = parse(t, br#"{"id":"8","method":"thing.service.Reset","params":{}}"#).unwrap_err();
        assert_eq!((e.code, e.id.as_str()), (1260, "8"));
        let e = parse(t, br#"{"id":"9","method":"thing.service.measurepoint.set","params":[]}"#).unwrap_err();
        assert_eq!(e.code, 460);
        let s =
            parse("/sys/pk/inv01/thing/service/Reset", br#"{"id":1,"method":"thing.service.Reset","params":{"a":1}}"#).unwrap().unwrap();
        assert_eq!(s.kind, CommandKind::Service { service: "Reset".into(), params: serde_json::json!({"a":1}) });
        assert_eq!(parse("/sys/pk/gw/thing/measurepoint/post/batch_reply", b"{}").unwrap(), None);
    }
}
