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
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What stands in for a secret in `getConfig`.
pub const SECRET_MARKER: &str = "(secret)";

/// How long a changed device may take to collect again before the change is rolled back.
const COME_UP_S: u64 = 10;

/// What a parameter's value is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// A whole number within these bounds (inclusive).
    Number(u64, u64),
    /// A log level: `error`, `warn`, `info`, `debug`, `trace`.
    Level,
}

/// A parameter the cloud may change: its name (`{id}`/`{group}` stand for a device and one of
/// its poll groups) and its kind. What each is: `docs/cloud-protocol.md`.
pub struct Parameter {
    pub name: &'static str,
    kind: Kind,
}

pub const PARAMETERS: &[Parameter] = &[
    Parameter { name: "collector.push.interval_ms", kind: Kind::Number(50, 60_000) },
    Parameter { name: "collector.push.max_samples", kind: Kind::Number(100, 1_000_000) },
    Parameter { name: "collector.device.{id}.poll_group.{group}.interval_ms", kind: Kind::Number(10, 86_400_000) },
    Parameter { name: "collector.device.{id}.timeout_ms", kind: Kind::Number(10, 60_000) },
    Parameter { name: "uplink.log_level", kind: Kind::Level },
    Parameter { name: "collector.log_level", kind: Kind::Level },
    Parameter { name: "ota.log_level", kind: Kind::Level },
    Parameter { name: "web.log_level", kind: Kind::Level },
    // The uplink's own settings (`uplink.{table}.{key}` of uplink.toml), applied while it runs.
    Parameter { name: "uplink.cache.max_bytes", kind: Kind::Number(1 << 20, 1 << 40) },
    Parameter { name: "uplink.cache.max_age_hours", kind: Kind::Number(0, 87_600) },
    // 0 (no reserve) only in the file: the cache would meet a full disk, which RocksDB does not survive
    Parameter { name: "uplink.cache.keep_free_bytes", kind: Kind::Number(1 << 20, 1 << 40) },
    Parameter { name: "uplink.sender.max_message_bytes", kind: Kind::Number(4096, 512 * 1024) },
    Parameter { name: "uplink.sender.live_share_percent", kind: Kind::Number(0, 90) },
    Parameter { name: "uplink.sender.resume_after_s", kind: Kind::Number(1, 86_400) },
    Parameter { name: "uplink.sender.reply_timeout_s", kind: Kind::Number(1, 3600) },
    Parameter { name: "uplink.cloud.max_in_flight", kind: Kind::Number(1, 1000) },
];

/// A parameter name read: where it lives.
#[derive(Debug, PartialEq)]
enum Target {
    /// A key of the collector's `[push]`.
    Push(&'static str),
    PollGroup {
        device: String,
        group: String,
    },
    /// A key of a device's settings.
    Device {
        device: String,
        key: &'static str,
    },
    /// The uplink's own log level (`enos_runtime::set_log_level`).
    UplinkLogLevel,
    /// Another service's log level, through its own `SetLogLevel` (`collector`, `ota`, `web`).
    LogLevelOf(&'static str),
    /// A setting of `uplink.toml`: its table and key.
    Uplink(&'static str, &'static str),
}

impl Target {
    /// The collector's device the change concerns: it must still collect afterwards.
    fn device(&self) -> Option<&str> {
        match self {
            Target::PollGroup { device, .. } | Target::Device { device, .. } => Some(device),
            _ => None,
        }
    }
}

/// `name` → its target and kind, or why it is not one the cloud may change.
fn target(name: &str) -> Result<(Target, Kind), String> {
    let kind = |i: usize| PARAMETERS[i].kind;
    let t = match name {
        "collector.push.interval_ms" => (Target::Push("interval_ms"), kind(0)),
        "collector.push.max_samples" => (Target::Push("max_samples"), kind(1)),
        "uplink.log_level" => (Target::UplinkLogLevel, kind(4)),
        "collector.log_level" => (Target::LogLevelOf("collector"), kind(5)),
        "ota.log_level" => (Target::LogLevelOf("ota"), kind(6)),
        "web.log_level" => (Target::LogLevelOf("web"), kind(7)),
        _ if name.starts_with("uplink.") => {
            let p = PARAMETERS.iter().find(|p| p.name == name).ok_or_else(|| unknown(name))?;
            let (table, key) = p.name["uplink.".len()..].split_once('.').expect("uplink.{table}.{key}");
            (Target::Uplink(table, key), p.kind)
        }
        _ => {
            let rest = name.strip_prefix("collector.device.");
            let group = rest.and_then(|r| r.strip_suffix(".interval_ms")).and_then(|r| r.split_once(".poll_group."));
            let timeout = rest.and_then(|r| r.strip_suffix(".timeout_ms")).filter(|d| !d.contains(".poll_group."));
            match (group, timeout) {
                (Some((d, g)), _) if !d.is_empty() && !g.is_empty() => (Target::PollGroup { device: d.into(), group: g.into() }, kind(2)),
                (_, Some(d)) if !d.is_empty() => (Target::Device { device: d.into(), key: "timeout_ms" }, kind(3)),
                _ => return Err(unknown(name)),
            }
        }
    };
    Ok(t)
}

fn unknown(name: &str) -> String {
    let names: Vec<&str> = PARAMETERS.iter().map(|p| p.name).collect();
    format!("\"{name}\" is not a parameter the cloud may change (these are: {})", names.join(", "))
}

/// The value asked for, as the parameter's kind wants it: a number (a JSON number or a numeric
/// string) within the bounds, or a level word.
fn value_of(name: &str, v: &Value, kind: Kind) -> Result<Value, String> {
    match kind {
        Kind::Number(min, max) => {
            let n = match v {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse::<u64>().ok(),
                _ => None,
            };
            match n {
                Some(n) if (min..=max).contains(&n) => Ok(json!(n)),
                Some(n) => Err(format!("{name}: {n} is out of bounds ({min}-{max})")),
                None => Err(format!("{name}: {v} is not a whole number")),
            }
        }
        Kind::Level => match v.as_str().map(|s| s.trim().to_ascii_lowercase()) {
            Some(l) if ["error", "warn", "info", "debug", "trace"].contains(&l.as_str()) => Ok(json!(l)),
            _ => Err(format!("{name}: {v} is not a log level (error, warn, info, debug, trace)")),
        },
    }
}

/// The field `t` names in the collector's configuration document.
fn field<'a>(doc: &'a mut Value, t: &Target) -> Result<&'a mut Value, String> {
    let device = |doc: &'a mut Value, device: &str| {
        doc.get_mut("device")
            .and_then(|d| d.as_array_mut())
            .and_then(|a| a.iter_mut().find(|d| d["id"] == device))
            .ok_or_else(|| format!("the collector has no device \"{device}\""))
    };
    match t {
        Target::Push(key) => doc.get_mut("push").and_then(|p| p.get_mut(*key)).ok_or_else(|| format!("the collector has no push.{key}")),
        Target::PollGroup { device: d, group } => device(doc, d)?
            .get_mut("poll_groups")
            .and_then(|g| g.as_array_mut())
            .and_then(|a| a.iter_mut().find(|g| g["name"] == group.as_str()))
            .and_then(|g| g.get_mut("interval_ms"))
            .ok_or_else(|| format!("device \"{d}\" has no poll group \"{group}\"")),
        Target::Device { device: d, key } => {
            device(doc, d)?.get_mut(*key).ok_or_else(|| format!("device \"{d}\" has no setting {key} (its protocol has none)"))
        }
        Target::UplinkLogLevel | Target::LogLevelOf(_) | Target::Uplink(..) => Err("not in the collector's configuration".into()),
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

/// Another service's configuration file for `getConfig`: `{file, settings}` (secrets replaced;
/// `settings` empty when there is no file: the service's built-in defaults), or `{unavailable}`
/// saying why it cannot be read. By default the file the service itself reads: its operator copy
/// on `/data` (whose directory only that service may read: then said so), else the image's.
fn service_file(service: &str, configured: Option<&Path>) -> Value {
    let path = match configured {
        Some(p) => p.to_path_buf(),
        None => {
            let own = enos_config::operator_config_path(service);
            match std::fs::metadata(&own) {
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    return json!({ "unavailable": format!("{}: only {service} may read its directory", own.display()) });
                }
                _ => enos_config::default_config_path(service),
            }
        }
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return json!({ "file": path, "settings": {} }),
        Err(e) => return json!({ "unavailable": format!("{}: {e}", path.display()) }),
    };
    match toml::from_str::<toml::Table>(&text) {
        Ok(t) => {
            let mut settings = serde_json::to_value(t).unwrap_or(Value::Null);
            redact(&mut settings);
            json!({ "file": path, "settings": settings })
        }
        Err(e) => json!({ "unavailable": format!("{}: not valid TOML: {}", path.display(), e.message()) }),
    }
}

/// `getConfig`: `{collector, uplink, ota, web}`, secrets replaced; a device's points are counted,
/// not listed (a table of thousands would not fit one message; `points` is their number).
pub async fn get_config(shared: &Arc<Shared>) -> Answer {
    let mut uplink = serde_json::to_value(shared.effective_cfg()).unwrap_or(Value::Null);
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
    let m = &shared.cfg.monitor;
    let (ota, web) = (service_file("ota", m.ota_config.as_deref()), service_file("web", m.web_config.as_deref()));
    Answer::ok(json!({ "collector": collector, "uplink": uplink, "ota": ota, "web": web }))
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
    let (t, kind) = target(name).map_err(bad)?;
    let new = value_of(name, v, kind).map_err(bad)?;
    if t == Target::UplinkLogLevel {
        let level: log::LevelFilter =
            new.as_str().unwrap_or("info").parse().map_err(|_| bad(format!("{name}: {new} is not a log level")))?;
        let old = json!(enos_runtime::set_log_level(level).to_string().to_ascii_lowercase());
        if old != new {
            log::warn!("AUDIT the cloud (request {request}) set {name}: {old} -> {new}");
        }
        return Ok(json!({ "name": name, "old": old, "new": new, "changed": old != new }));
    }
    let failed = |m: String| (codes::write_failed(None), m);
    if let Target::Uplink(table, key) = t {
        return crate::uplink_tuning::change(shared, request, name, (table, key), &new).await;
    }
    if let Target::LogLevelOf(service) = t {
        let old = json!(log_level_of(shared, service, new.as_str().unwrap_or("info")).await.map_err(failed)?);
        if old != new {
            log::warn!("AUDIT the cloud (request {request}) set {name}: {old} -> {new}");
        }
        return Ok(json!({ "name": name, "old": old, "new": new, "changed": old != new }));
    }
    let p = collector(shared).await.map_err(failed)?;
    let before = collector_config(&p).await.map_err(failed)?;
    let mut after = before.clone();
    let slot = field(&mut after, &t).map_err(bad)?;
    let old = slot.clone();
    if old == new {
        return Ok(json!({ "name": name, "old": old, "new": new, "changed": false }));
    }
    *slot = new.clone();
    // Whether the device collected before: then it must collect with the change too.
    let was_online = match t.device() {
        Some(d) => device_status(&p, d).await.is_some_and(|s| s.state == "online"),
        None => false,
    };
    let since = enos_batch::now_ms();
    apply(&p, &after).await.map_err(|why| bad(format!("{name}: the collector refused {new}: {why}")))?;
    log::info!("AUDIT the cloud (request {request}) set {name}: {old} -> {new}");
    if let Some(device) = t.device() {
        if let Err(why) = comes_up(&p, device, was_online, since).await {
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

/// `service`'s `SetLogLevel` (it audits the change with its caller): the level it had.
async fn log_level_of(shared: &Shared, service: &str, level: &str) -> Result<String, String> {
    let conn = shared.bus().ok_or("the uplink is not on the bus yet")?;
    let who = match service {
        "collector" => "the collector",
        "ota" => "the update agent",
        _ => "the web center",
    };
    let unreachable = |e: zbus::Error| format!("{who} cannot be reached: {e}");
    let r = match service {
        "collector" => collector(shared).await?.set_log_level(level).await,
        "ota" => enos_bus::OtaProxy::new(conn).await.map_err(unreachable)?.set_log_level(level).await,
        _ => enos_bus::WebProxy::new(conn).await.map_err(unreachable)?.set_log_level(level).await,
    };
    r.map_err(|e| format!("{who} did not take it: {e}"))
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

async fn device_status(p: &CollectorProxy<'_>, device: &str) -> Option<enos_bus::DeviceStatus> {
    let list = p.list_devices().await.ok()?;
    serde_json::from_str::<Vec<enos_bus::DeviceStatus>>(&list).ok()?.into_iter().find(|d| d.id == device)
}

/// Waits until `device` came up with the change: collecting again (`online` with a good poll
/// after `since_ms`) when it collected before, else anything but `failed` (its driver started;
/// a device that was offline before cannot be asked to answer now).
async fn comes_up(p: &CollectorProxy<'_>, device: &str, was_online: bool, since_ms: u64) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(COME_UP_S);
    loop {
        // give the engine a moment to swap the driver before looking
        tokio::time::sleep(Duration::from_millis(300)).await;
        let last = match device_status(p, device).await {
            Some(d) if was_online && d.state == "online" && d.last_ok_ms.is_some_and(|t| t >= since_ms) => return Ok(()),
            Some(d) if !was_online && d.state != "failed" => return Ok(()),
            Some(d) => {
                let why = d.last_error.clone().map(|e| format!(": {e}")).unwrap_or_default();
                let state = if d.state == "online" { "no good poll".to_string() } else { d.state.clone() };
                format!("{state} {COME_UP_S} s after the change{why}")
            }
            None => "it is no longer listed".into(),
        };
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
        assert_eq!(target("collector.push.interval_ms").unwrap(), (Target::Push("interval_ms"), Kind::Number(50, 60_000)));
        let (t, ..) = target("collector.device.inv01.poll_group.fast.interval_ms").unwrap();
        assert_eq!(t, Target::PollGroup { device: "inv01".into(), group: "fast".into() });
        let (t, k) = target("collector.device.inv01.timeout_ms").unwrap();
        assert_eq!((t, k), (Target::Device { device: "inv01".into(), key: "timeout_ms" }, Kind::Number(10, 60_000)));
        assert_eq!(target("uplink.log_level").unwrap(), (Target::UplinkLogLevel, Kind::Level));
        assert_eq!(target("collector.log_level").unwrap(), (Target::LogLevelOf("collector"), Kind::Level));
        assert_eq!(target("ota.log_level").unwrap(), (Target::LogLevelOf("ota"), Kind::Level));
        assert_eq!(target("web.log_level").unwrap(), (Target::LogLevelOf("web"), Kind::Level));
        assert_eq!(
            target("uplink.cache.keep_free_bytes").unwrap(),
            (Target::Uplink("cache", "keep_free_bytes"), Kind::Number(1 << 20, 1 << 40))
        );
        assert_eq!(target("uplink.cloud.max_in_flight").unwrap(), (Target::Uplink("cloud", "max_in_flight"), Kind::Number(1, 1000)));
        assert!(target("uplink.cache.dir").unwrap_err().starts_with("\"uplink.cache.dir\" is not a parameter the cloud may change"));
        let e = target("collector.device.inv01.retries").unwrap_err();
        assert!(e.starts_with("\"collector.device.inv01.retries\" is not a parameter the cloud may change (these are: "), "{e}");
        let n = Kind::Number(10, 20);
        assert_eq!(value_of("x", &json!(5), n).unwrap_err(), "x: 5 is out of bounds (10-20)");
        assert_eq!(value_of("x", &json!("15"), n), Ok(json!(15)));
        assert_eq!(value_of("x", &json!(true), n).unwrap_err(), "x: true is not a whole number");
        assert_eq!(value_of("x", &json!("DEBUG"), Kind::Level), Ok(json!("debug")));
        assert_eq!(
            value_of("x", &json!("loud"), Kind::Level).unwrap_err(),
            "x: \"loud\" is not a log level (error, warn, info, debug, trace)"
        );
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
