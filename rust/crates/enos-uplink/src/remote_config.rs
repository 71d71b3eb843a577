//! Remote configuration, two services of the gateway's model: `getConfig` (every service's
//! effective configuration, secrets replaced by a marker) and `setParameter` (one parameter of a
//! fixed list, each with its bounds, applied through the owning service's own validation).
//!
//! A change is audited in the journal (`AUDIT the cloud (request ..) set NAME: OLD -> NEW`), and
//! undone when the service does not come up with it (the device it concerns `failed`): the cloud
//! is then told why. A refused change changes nothing.

use crate::gateway_services::Answer;
use crate::state::Shared;
use enos_bus::CollectorProxy;
use enos_cloud::codes;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// What stands in for a secret in `getConfig`.
pub const SECRET_MARKER: &str = "(secret)";

/// How long a changed device may take to come up before the change is rolled back.
const COME_UP_S: u64 = 10;

/// The parameters the cloud may change: name (`{id}`/`{group}` stand for a device and one of its
/// poll groups), bounds (inclusive) and what it is, for the error message and the docs.
pub const PARAMETERS: &[(&str, u64, u64, &str)] = &[
    ("collector.push.interval_ms", 50, 60_000, "how often the collector hands samples to the uplink"),
    ("collector.push.max_samples", 100, 1_000_000, "samples that make the collector hand over at once"),
    ("collector.device.{id}.poll_group.{group}.interval_ms", 10, 86_400_000, "the poll interval of one poll group of a device"),
];

/// A parameter name read: where it lives in the collector's configuration document.
#[derive(Debug, PartialEq)]
enum Target {
    Push(&'static str),
    PollGroup { device: String, group: String },
}

/// `name` → its target and bounds, or why it is not one the cloud may change.
fn target(name: &str) -> Result<(Target, u64, u64), String> {
    let bounds = |i: usize| (PARAMETERS[i].1, PARAMETERS[i].2);
    let t = match name {
        "collector.push.interval_ms" => (Target::Push("interval_ms"), bounds(0)),
        "collector.push.max_samples" => (Target::Push("max_samples"), bounds(1)),
        _ => {
            let rest = name.strip_prefix("collector.device.").and_then(|r| r.strip_suffix(".interval_ms"));
            match rest.and_then(|r| r.split_once(".poll_group.")) {
                Some((d, g)) if !d.is_empty() && !g.is_empty() => (Target::PollGroup { device: d.into(), group: g.into() }, bounds(2)),
                _ => {
                    let names: Vec<&str> = PARAMETERS.iter().map(|p| p.0).collect();
                    return Err(format!("\"{name}\" is not a parameter the cloud may change (these are: {})", names.join(", ")));
                }
            }
        }
    };
    Ok((t.0, t.1 .0, t.1 .1))
}

/// The number asked for: a JSON number or a numeric string, within the bounds.
fn value_of(name: &str, v: &Value, min: u64, max: u64) -> Result<u64, String> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        Some(n) => Err(format!("{name}: {n} is out of bounds ({min}-{max})")),
        None => Err(format!("{name}: {v} is not a whole number")),
    }
}

/// The field `t` names in the collector's configuration document.
fn field<'a>(doc: &'a mut Value, t: &Target) -> Result<&'a mut Value, String> {
    match t {
        Target::Push(key) => doc.get_mut("push").and_then(|p| p.get_mut(*key)).ok_or_else(|| format!("the collector has no push.{key}")),
        Target::PollGroup { device, group } => {
            let dev = doc
                .get_mut("device")
                .and_then(|d| d.as_array_mut())
                .and_then(|a| a.iter_mut().find(|d| d["id"] == device.as_str()))
                .ok_or_else(|| format!("the collector has no device \"{device}\""))?;
            dev.get_mut("poll_groups")
                .and_then(|g| g.as_array_mut())
                .and_then(|a| a.iter_mut().find(|g| g["name"] == group.as_str()))
                .and_then(|g| g.get_mut("interval_ms"))
                .ok_or_else(|| format!("device \"{device}\" has no poll group \"{group}\""))
        }
    }
}

/// Replaces every string under a key that names a secret by [`SECRET_MARKER`].
pub fn redact(v: &mut Value) {
    const SECRET_KEYS: [&str; 4] = ["secret", "password", "passphrase", "private_key"];
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                let k = k.to_ascii_lowercase();
                let names_file = k.ends_with("_file") || k.ends_with("_dir") || k.ends_with("_path");
                if !names_file && SECRET_KEYS.iter().any(|s| k.contains(s)) && !x.is_null() {
                    *x = json!(SECRET_MARKER);
                } else {
                    redact(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

async fn collector(shared: &Shared) -> Result<CollectorProxy<'static>, String> {
    let conn = shared.bus().ok_or("the uplink is not on the bus yet")?;
    CollectorProxy::new(conn).await.map_err(|e| format!("the collector cannot be reached: {e}"))
}

async fn collector_config(p: &CollectorProxy<'_>) -> Result<Value, String> {
    let j = p.get_config().await.map_err(|e| format!("the collector's configuration could not be read: {e}"))?;
    serde_json::from_str(&j).map_err(|e| format!("the collector's configuration is not readable: {e}"))
}

/// `getConfig`: `{collector, uplink}`, secrets replaced; a device's points are counted, not
/// listed (a table of thousands would not fit one message; `points` is their number).
pub async fn get_config(shared: &Arc<Shared>) -> Answer {
    let mut uplink = serde_json::to_value(&shared.cfg).unwrap_or(Value::Null);
    redact(&mut uplink);
    let mut collector = match collector(shared).await {
        Ok(p) => collector_config(&p).await.unwrap_or_else(|e| json!({ "unavailable": e })),
        Err(e) => json!({ "unavailable": e }),
    };
    for d in collector.get_mut("device").and_then(|d| d.as_array_mut()).into_iter().flatten() {
        if let Some(m) = d.as_object_mut() {
            let n = m.remove("point").and_then(|p| p.as_array().map(|a| a.len())).unwrap_or(0);
            m.insert("points".into(), json!(n));
        }
    }
    redact(&mut collector);
    Answer::ok(json!({ "collector": collector, "uplink": uplink }))
}

/// `setParameter {name, value}`: the change applied through the collector's `ApplyConfig` (its
/// validation, its atomic write), audited, rolled back if the device does not come up with it.
pub async fn set_parameter(shared: &Arc<Shared>, request: &str, params: &Value) -> Answer {
    let name = params["name"].as_str().unwrap_or_default();
    match change(shared, request, name, &params["value"]).await {
        Ok(data) => Answer::ok(data),
        Err((code, why)) => {
            log::warn!("the cloud (request {request}) asked to set {name:?}: refused, nothing changed: {why}");
            Answer::refused(code, why)
        }
    }
}

async fn change(shared: &Arc<Shared>, request: &str, name: &str, v: &Value) -> Result<Value, (i64, String)> {
    let bad = |m: String| (codes::BAD_PARAMS, m);
    if name.is_empty() {
        return Err(bad("setParameter needs \"name\" (the parameter) and \"value\"".into()));
    }
    let (t, min, max) = target(name).map_err(bad)?;
    let new = value_of(name, v, min, max).map_err(bad)?;
    let failed = |m: String| (codes::write_failed(None), m);
    let p = collector(shared).await.map_err(failed)?;
    let before = collector_config(&p).await.map_err(failed)?;
    let mut after = before.clone();
    let slot = field(&mut after, &t).map_err(bad)?;
    let old = slot.clone();
    if old.as_u64() == Some(new) {
        return Ok(json!({ "name": name, "old": old, "new": new, "changed": false }));
    }
    *slot = json!(new);
    apply(&p, &after).await.map_err(|why| bad(format!("{name}: the collector refused {new}: {why}")))?;
    log::info!("AUDIT the cloud (request {request}) set {name}: {old} -> {new}");
    if let Target::PollGroup { device, .. } = &t {
        if let Err(why) = comes_up(&p, device).await {
            let undone = apply(&p, &before).await;
            let how = match &undone {
                Ok(()) => format!("rolled back to {old}"),
                Err(e) => format!("and the rollback to {old} failed too: {e}"),
            };
            log::warn!("AUDIT the cloud (request {request}) set {name}: {new} -> {old} ({how}): {why}");
            return Err(failed(format!("{name}: device \"{device}\" did not come up with {new} ({why}); {how}")));
        }
    }
    Ok(json!({ "name": name, "old": old, "new": new, "changed": true }))
}

/// `ApplyConfig`; its findings in words when it refuses.
async fn apply(p: &CollectorProxy<'_>, doc: &Value) -> Result<(), String> {
    let answer = p.apply_config(&doc.to_string()).await.map_err(|e| e.to_string())?;
    let a: Value = serde_json::from_str(&answer).map_err(|e| format!("an unreadable answer ({e})"))?;
    if a["ok"].as_bool() == Some(true) {
        return Ok(());
    }
    let why: Vec<String> = a["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| format!("{}: {}", f["key"].as_str().unwrap_or(""), f["reason"].as_str().unwrap_or("")))
        .collect();
    Err(if why.is_empty() { "no reason given".into() } else { why.join("; ") })
}

/// Waits until `device` is anything but `failed` (its driver started with the change).
async fn comes_up(p: &CollectorProxy<'_>, device: &str) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(COME_UP_S);
    let mut last = String::from("no state reported");
    loop {
        // give the engine a moment to swap the driver before looking
        tokio::time::sleep(Duration::from_millis(300)).await;
        if let Ok(Ok(list)) = p.list_devices().await.map(|j| serde_json::from_str::<Vec<enos_bus::DeviceStatus>>(&j)) {
            match list.iter().find(|d| d.id == device) {
                Some(d) if d.state != "failed" => return Ok(()),
                Some(d) => last = d.last_error.clone().unwrap_or_else(|| "failed".into()),
                None => last = "it is no longer listed".into(),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_bounds() {
        assert_eq!(target("collector.push.interval_ms").unwrap(), (Target::Push("interval_ms"), 50, 60_000));
        let (t, ..) = target("collector.device.inv01.poll_group.fast.interval_ms").unwrap();
        assert_eq!(t, Target::PollGroup { device: "inv01".into(), group: "fast".into() });
        let e = target("collector.device.inv01.timeout_ms").unwrap_err();
        assert!(e.starts_with("\"collector.device.inv01.timeout_ms\" is not a parameter the cloud may change (these are: "), "{e}");
        assert_eq!(value_of("x", &json!(5), 10, 20).unwrap_err(), "x: 5 is out of bounds (10-20)");
        assert_eq!(value_of("x", &json!("15"), 10, 20), Ok(15));
        assert_eq!(value_of("x", &json!(true), 10, 20).unwrap_err(), "x: true is not a whole number");
    }

    #[test]
    fn secrets_are_replaced_paths_are_not() {
        let mut v = json!({"cloud": {"device_secret": "s", "device_secret_file": "/a", "product_key": "pk"},
                           "device": [{"password": "p", "user": "u"}], "sub_device": [{"device_secret": null}]});
        redact(&mut v);
        assert_eq!(v["cloud"]["device_secret"], SECRET_MARKER);
        assert_eq!(v["cloud"]["device_secret_file"], "/a");
        assert_eq!(v["device"][0]["password"], SECRET_MARKER);
        assert_eq!(v["device"][0]["user"], "u");
        assert!(v["sub_device"][0]["device_secret"].is_null());
    }
}
