//! Requests a gateway makes besides telemetry: reporting its version and update progress, and
//! logging its sub-devices in (topology add, then a batch login) after every connect.

use crate::{request, sign, topics, Identity, Reply};
use serde_json::json;

/// A request to publish: its topic, its id (the reply carries it) and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub topic: String,
    pub id: u64,
    pub method: &'static str,
    pub payload: Vec<u8>,
}

fn make(topic: String, id: u64, method: &'static str, params: serde_json::Value) -> Request {
    Request { topic, id, method, payload: request(id, method, params) }
}

/// The progress step of an update the gateway could not start (no agent, refused by it).
pub const OTA_STEP_DECLINED: i32 = -5;

/// `ota.device.inform`: the firmware version the gateway runs.
pub fn ota_inform(gw_pk: &str, gw_dk: &str, id: u64, version: &str) -> Request {
    make(topics::sys(gw_pk, gw_dk, topics::OTA_INFORM), id, "ota.device.inform", json!({ "version": version }))
}

/// `ota.device.progress`: a step of the update job (0-100, negative: failed), in words.
pub fn ota_progress(gw_pk: &str, gw_dk: &str, id: u64, step: i32, desc: &str) -> Request {
    make(topics::sys(gw_pk, gw_dk, topics::OTA_PROGRESS), id, "ota.device.progress", json!({ "step": step.to_string(), "desc": desc }))
}

/// The sign of a sub-device for `client_id` at `ts`.
fn sub_sign(s: &Identity, client_id: &str, ts: &str) -> String {
    sign::sign(&[("clientId", client_id), ("deviceKey", &s.device_key), ("productKey", &s.product_key), ("timestamp", ts)], &s.secret)
}

/// `thing.topo.add`: the sub-devices belong to this gateway.
pub fn topo_add(gw_pk: &str, gw_dk: &str, id: u64, subs: &[Identity], ts_ms: u64) -> Request {
    let ts = ts_ms.to_string();
    let params = subs
        .iter()
        .map(|s| {
            let client_id = format!("{}.{}.{ts}", s.product_key, s.device_key);
            json!({"productKey": s.product_key, "deviceKey": s.device_key, "clientId": client_id, "timestamp": ts,
                   "signMethod": "sha256", "sign": sub_sign(s, &client_id, &ts)})
        })
        .collect();
    make(topics::sys(gw_pk, gw_dk, topics::TOPO_ADD), id, "thing.topo.add", serde_json::Value::Array(params))
}

/// `combine.login.batch`: the sub-devices go online on this session.
pub fn login_batch(gw_pk: &str, gw_dk: &str, id: u64, subs: &[Identity], ts_ms: u64) -> Request {
    const CLIENT_ID: &str = "login.batch";
    let ts = ts_ms.to_string();
    let subs: Vec<_> = subs
        .iter()
        .map(|s| json!({"productKey": s.product_key, "deviceKey": s.device_key, "secureMode": "2", "sign": sub_sign(s, CLIENT_ID, &ts)}))
        .collect();
    make(
        topics::session(gw_pk, gw_dk, topics::LOGIN_BATCH),
        id,
        "combine.login.batch",
        json!({"clientId": CLIENT_ID, "timestamp": ts, "signMethod": "sha256", "subDevices": subs}),
    )
}

/// The sub-devices a batch login's reply lists as failed: (device key, why in words).
pub fn login_failures(r: &Reply) -> Vec<(String, String)> {
    let failed = r.data.get("failedSubDevices").and_then(|v| v.as_array()).cloned().unwrap_or_default();
    failed
        .iter()
        .map(|f| {
            let dk = f["deviceKey"].as_str().unwrap_or_default().to_string();
            let why = match (f["code"].as_i64(), f["message"].as_str().or(f["msg"].as_str())) {
                (Some(c), Some(m)) => format!("code {c}: {m}"),
                (Some(c), None) => format!("code {c}"),
                (None, Some(m)) => m.to_string(),
                (None, None) => "no reason given".to_string(),
            };
            (dk, why)
        })
        .collect()
}

/// The gateway's event reporting a resource package's progress (`docs/cloud-protocol.md`,
/// "Services of the gateway's model"): the model defines the event `resourcePackageProgress`.
pub const PACKAGE_PROGRESS_EVENT: &str = "resourcePackageProgress";

/// One step of a resource package: `step` 0 downloading, 40 downloaded and verified, 50
/// applying, 100 installed; negative: -1 download failed, -2 digest or size wrong, -3 refused by
/// the gateway (signature, validation, version), -4 rolled back. `outcome` says the same in a
/// word (`downloading`, `applying`, `installed`, `failed`, `refused`, `rolled-back`).
pub struct PackageProgress<'a> {
    pub version: &'a str,
    pub step: i32,
    pub outcome: &'a str,
    pub message: &'a str,
}

pub fn package_progress(gw_pk: &str, gw_dk: &str, id: u64, p: &PackageProgress, time_ms: u64) -> Request {
    make(
        topics::sys(gw_pk, gw_dk, "thing/event/resourcePackageProgress/post"),
        id,
        "thing.event.resourcePackageProgress.post",
        json!({ "value": { "version": p.version, "step": p.step, "outcome": p.outcome, "message": p.message }, "time": time_ms }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_requests_carry_each_sub_devices_sign() {
        let subs = [Identity { product_key: "pkI".into(), device_key: "inv01".into(), secret: "s".into() }];
        let t = topo_add("pk", "gw", 7, &subs, 1000);
        assert_eq!(t.topic, "/sys/pk/gw/thing/topo/add");
        let v: serde_json::Value = serde_json::from_slice(&t.payload).unwrap();
        assert_eq!((v["id"].as_str(), v["method"].as_str()), (Some("7"), Some("thing.topo.add")));
        let want = sign::sign(&[("clientId", "pkI.inv01.1000"), ("deviceKey", "inv01"), ("productKey", "pkI"), ("timestamp", "1000")], "s");
        assert_eq!(v["params"][0]["sign"], want.as_str());
        let l = login_batch("pk", "gw", 8, &subs, 1000);
        assert_eq!(l.topic, "/ext/session/pk/gw/combine/login/batch");
        let v: serde_json::Value = serde_json::from_slice(&l.payload).unwrap();
        assert_eq!(v["params"]["subDevices"][0]["secureMode"], "2");
        let p: serde_json::Value = serde_json::from_slice(&ota_progress("pk", "gw", 9, OTA_STEP_DECLINED, "no").payload).unwrap();
        assert_eq!(p["params"], json!({"step": "-5", "desc": "no"}));
        let r = Reply {
            id: "8".into(),
            code: 200,
            message: String::new(),
            data: json!({"loginedSubDevices": [{}], "failedSubDevices": [{"deviceKey": "d2", "code": 1002, "message": "no such device"}]}),
        };
        assert_eq!(login_failures(&r), vec![("d2".to_string(), "code 1002: no such device".to_string())]);
    }
}
