//! Sub-devices the gateway manages in the cloud (docs/cloud-protocol.md): registering a device
//! configured locally (`thing.device.register`), taking it out of the topology
//! (`thing.topo.delete`), logging it out (`combine.logout`), and the cloud's own
//! `combine.enable` / `combine.disable` / `combine.delete` of one of them.

use crate::requests::Request;
use crate::{request_version, topics, Reply};
use serde_json::json;

/// A sub-device registration takes at most this many devices in one request.
pub const MAX_REGISTER: usize = 1000;

/// A device to register: its product and the name it gets in the cloud.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDevice {
    pub product_key: String,
    /// The device key asked for: the gateway proposes one, so a registration asked again after
    /// a lost reply names the same device rather than creating a second one.
    pub device_key: String,
    /// The collector's device id, shown in the cloud as the device's name.
    pub name: String,
    /// `+08:00`-style offset of the site.
    pub timezone: String,
}

/// What the cloud answered for one registered device.
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    pub product_key: String,
    pub device_key: String,
    pub secret: String,
    pub asset_id: String,
}

/// The device key the gateway proposes for one of its devices: `{gateway key}_{device id}`,
/// characters EnOS does not take in a key replaced by `_`.
pub fn proposed_device_key(gw_dk: &str, device: &str) -> String {
    let clean: String =
        device.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' { c } else { '_' }).collect();
    format!("{gw_dk}_{clean}")
}

/// `thing.device.register` (version 1.1) for up to `MAX_REGISTER` devices.
pub fn register(gw_pk: &str, gw_dk: &str, id: u64, devices: &[NewDevice]) -> Request {
    let params: Vec<_> = devices
        .iter()
        .map(|d| {
            json!({"productKey": d.product_key, "deviceKey": d.device_key,
                   "deviceName": {"defaultValue": d.name, "i18nValue": {}},
                   "timezone": d.timezone, "deviceAttributes": {},
                   "deviceDesc": format!("registered by gateway {gw_dk}")})
        })
        .collect();
    let method = "thing.device.register";
    Request {
        topic: topics::sys(gw_pk, gw_dk, topics::DEVICE_REGISTER),
        id,
        method,
        payload: request_version(id, method, "1.1", json!(params)),
    }
}

/// The identities in a registration's reply, in the order asked; or what is wrong with it, in words.
pub fn registered(r: &Reply, asked: &[NewDevice]) -> Result<Vec<Registered>, String> {
    let Some(list) = r.data.as_array() else {
        return Err("the registration reply holds no list of devices".into());
    };
    if list.len() != asked.len() {
        return Err(format!("the registration reply lists {} devices for {} asked", list.len(), asked.len()));
    }
    list.iter()
        .zip(asked)
        .map(|(v, a)| {
            let text = |k: &str| v.get(k).and_then(|x| x.as_str()).filter(|s| !s.is_empty()).map(String::from);
            let secret = text("deviceSecret").ok_or_else(|| format!("the registration reply gives {} no device secret", a.name))?;
            let device_key = text("deviceKey").unwrap_or_else(|| a.device_key.clone());
            if device_key.contains(['/', '+', '#', '&', '|']) {
                return Err(format!("the registration reply gives {} the unusable device key {device_key:?}", a.name));
            }
            Ok(Registered {
                product_key: text("productKey").unwrap_or_else(|| a.product_key.clone()),
                device_key,
                secret,
                asset_id: text("assetId").unwrap_or_default(),
            })
        })
        .collect()
}

/// `thing.topo.delete`: the sub-devices no longer belong to this gateway.
pub fn topo_delete(gw_pk: &str, gw_dk: &str, id: u64, subs: &[(&str, &str)]) -> Request {
    let params: Vec<_> = subs.iter().map(|(pk, dk)| json!({"productKey": pk, "deviceKey": dk})).collect();
    let method = "thing.topo.delete";
    Request { topic: topics::sys(gw_pk, gw_dk, topics::TOPO_DELETE), id, method, payload: crate::request(id, method, json!(params)) }
}

/// `combine.logout`: one sub-device goes offline on this session.
pub fn logout(gw_pk: &str, gw_dk: &str, id: u64, pk: &str, dk: &str) -> Request {
    let method = "combine.logout";
    Request {
        topic: topics::session(gw_pk, gw_dk, topics::LOGOUT),
        id,
        method,
        payload: crate::request(id, method, json!({"productKey": pk, "deviceKey": dk})),
    }
}

/// What the cloud does to one of the gateway's sub-devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudAction {
    Enable,
    Disable,
    Delete,
}

impl CloudAction {
    /// In words, for the device's state.
    pub fn said(self) -> &'static str {
        match self {
            CloudAction::Enable => "enabled",
            CloudAction::Disable => "disabled",
            CloudAction::Delete => "deleted",
        }
    }
}

/// `combine.enable` / `disable` / `delete` from the cloud for one sub-device.
#[derive(Debug, Clone, PartialEq)]
pub struct Downstream {
    pub id: String,
    pub action: CloudAction,
    pub product_key: String,
    pub device_key: String,
    pub reply_topic: String,
}

/// Parses a message on `/ext/session/{gw}/combine/{action}`. `None`: not such a message (a reply,
/// a login topic); `Err`: (request id, reply topic, code, words) for the refusal.
pub fn parse_downstream(topic: &str, payload: &[u8]) -> Option<Result<Downstream, (String, String, i64, String)>> {
    if topics::request_of(topic).is_some() || !topic.starts_with("/ext/session/") {
        return None;
    }
    let action = match topic.rsplit_once('/')?.1 {
        "enable" => CloudAction::Enable,
        "disable" => CloudAction::Disable,
        "delete" => CloudAction::Delete,
        _ => return None,
    };
    let reply_topic = topics::reply_of(topic);
    let v: serde_json::Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(e) => return Some(Err((String::new(), reply_topic, crate::codes::NOT_JSON, format!("not JSON: {e}")))),
    };
    let id = v["id"].as_str().unwrap_or_default().to_string();
    let p = &v["params"];
    match (p["productKey"].as_str(), p["deviceKey"].as_str()) {
        (Some(pk), Some(dk)) => Some(Ok(Downstream { id, action, product_key: pk.into(), device_key: dk.into(), reply_topic })),
        _ => Some(Err((id, reply_topic, crate::codes::BAD_PARAMS, "params need productKey and deviceKey".into()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked() -> Vec<NewDevice> {
        vec![NewDevice { product_key: "pkI".into(), device_key: "gw_inv 1".into(), name: "inv 1".into(), timezone: "+08:00".into() }]
    }

    #[test]
    fn a_registration_and_its_reply() {
        assert_eq!(proposed_device_key("gw", "inv 1/ä"), "gw_inv_1__");
        let r = register("pk", "gw", 5, &asked());
        assert_eq!(r.topic, "/sys/pk/gw/thing/device/register");
        let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
        assert_eq!((v["version"].as_str(), v["method"].as_str()), (Some("1.1"), Some("thing.device.register")));
        assert_eq!(v["params"][0]["deviceName"]["defaultValue"], "inv 1");
        let ok = Reply {
            id: "5".into(),
            code: 200,
            message: String::new(),
            data: json!([{"assetId": "a1", "deviceKey": "k1", "deviceSecret": "s1", "productKey": "pkI"}]),
        };
        let got = registered(&ok, &asked()).unwrap();
        assert_eq!(got[0], Registered { product_key: "pkI".into(), device_key: "k1".into(), secret: "s1".into(), asset_id: "a1".into() });
        let short = Reply { data: json!([]), ..ok.clone() };
        assert_eq!(registered(&short, &asked()).unwrap_err(), "the registration reply lists 0 devices for 1 asked");
        let nosecret = Reply { data: json!([{"deviceKey": "k1"}]), ..ok.clone() };
        assert_eq!(registered(&nosecret, &asked()).unwrap_err(), "the registration reply gives inv 1 no device secret");
        let nolist = Reply { data: json!({"x": 1}), ..ok };
        assert!(registered(&nolist, &asked()).unwrap_err().contains("no list"));
    }

    #[test]
    fn the_clouds_disable_of_a_sub_device() {
        let t = "/ext/session/pk/gw/combine/disable";
        let d = parse_downstream(t, br#"{"id":"9","method":"combine.disable","params":{"productKey":"p","deviceKey":"d"}}"#);
        let d = d.unwrap().unwrap();
        assert_eq!(
            (d.action, d.device_key.as_str(), d.reply_topic.as_str()),
            (CloudAction::Disable, "d", "/ext/session/pk/gw/combine/disable_reply")
        );
        assert!(parse_downstream("/ext/session/pk/gw/combine/login/batch_reply", b"{}").is_none());
        assert_eq!(parse_downstream(t, b"{]").unwrap().unwrap_err().2, crate::codes::NOT_JSON);
        assert_eq!(parse_downstream(t, br#"{"id":"1","params":{}}"#).unwrap().unwrap_err().2, crate::codes::BAD_PARAMS);
    }
}
