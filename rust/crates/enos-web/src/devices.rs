//! The dashboard and the control page: status, the device list, a communication test (read
//! now), the points that can be written and a point write.

use crate::access::Caller;
use crate::http::{ok, read_json, read_json_opt, ApiError, ApiResult};
use crate::quality;
use crate::state::App;
use enos_collector_config::iec104::CommandType;
use enos_collector_config::modbus::DataType;
use enos_collector_config::{Access, PointMeta, ProtocolConfig};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// `GET /api/status`.
pub async fn status(app: &App) -> ApiResult {
    ok(&app.bus.status().await)
}

/// `GET /api/devices`: each device with its cloud side (`cloud`, see `with_cloud`).
pub async fn list(app: &App) -> ApiResult {
    let (devices, uplink) = tokio::join!(app.bus.devices(), app.bus.uplink_status());
    ok(&with_cloud(&devices?, uplink.ok().as_ref()))
}

/// The devices, each with `cloud`: its sub-device status in the uplink (identity, state, why it
/// cannot upload), `null` when it has no cloud identity; left out when the uplink does not answer
/// (unknown, not "none").
pub fn with_cloud(devices: &[enos_bus::DeviceStatus], uplink: Option<&enos_bus::UplinkStatus>) -> Vec<serde_json::Value> {
    devices
        .iter()
        .map(|d| {
            let mut v = serde_json::to_value(d).unwrap_or_default();
            if let Some(u) = uplink {
                v["cloud"] = serde_json::to_value(u.sub_devices.iter().find(|s| s.device == d.id)).unwrap_or_default();
            }
            v
        })
        .collect()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReadRequest {
    #[serde(default)]
    points: Vec<String>,
}

/// `POST /api/devices/{id}/read`: a communication test, the points read from the device now.
pub async fn read(app: &App, req: Request<Incoming>, id: &str) -> ApiResult {
    let r: ReadRequest = read_json_opt(req, app.body_limit()).await?.unwrap_or_default();
    if r.points.len() > 1000 {
        return Err(ApiError::bad_request("at most 1000 points at once"));
    }
    let names: Vec<&str> = r.points.iter().map(String::as_str).collect();
    let t0 = Instant::now();
    let readings = app.bus.read_points(id, &names).await?;
    let out: Vec<_> = readings
        .iter()
        .map(|p| {
            let mut v = serde_json::to_value(p).expect("reading");
            v["text"] = quality::with_reason(p.quality, p.error.as_deref()).into();
            v
        })
        .collect();
    let good = readings.iter().filter(|p| p.quality == enos_batch::Quality::Good).count();
    ok(&serde_json::json!({
        "device": id,
        "took_ms": t0.elapsed().as_millis() as u64,
        "good": good,
        "total": readings.len(),
        "readings": out,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteRequest {
    value: serde_json::Value,
}

/// `POST /api/devices/{id}/points/{point}/write`: control, the device's answer.
pub async fn write(app: &App, req: Request<Incoming>, c: Caller, id: &str, point: &str) -> ApiResult {
    let user = c.session.user;
    let w: WriteRequest = read_json(req, app.body_limit()).await?;
    if !(w.value.is_number() || w.value.is_boolean() || w.value.is_string()) {
        return Err(ApiError::bad_request("value must be a number, true/false or a string"));
    }
    let value = w.value.to_string();
    app.counters.writes.fetch_add(1, Ordering::Relaxed);
    let t0 = Instant::now();
    let outcome = app.bus.write_point(id, point, &value).await.inspect_err(|e| {
        app.counters.writes_failed.fetch_add(1, Ordering::Relaxed);
        log::warn!("write by {user:?}: {id}.{point} = {value}: {}", e.message);
    })?;
    if !outcome.ok {
        app.counters.writes_failed.fetch_add(1, Ordering::Relaxed);
    }
    log::info!("write by {user:?}: {id}.{point} = {value}: {}", outcome.message);
    ok(&serde_json::json!({
        "device": id,
        "point": point,
        "value": w.value,
        "ok": outcome.ok,
        "failure": outcome.failure,
        "code": outcome.failure.map(|f| f.cloud_code()).unwrap_or(200),
        "message": outcome.message,
        "text": outcome.text(),
        "took_ms": t0.elapsed().as_millis() as u64,
    }))
}

/// `GET /api/devices/{id}/writable`: the points an operator may write, with what the write
/// dialog shows and checks before sending: unit, configured range, what kind of value.
pub async fn writable(app: &App, id: &str) -> ApiResult {
    let cfg = app.bus.collector_config().await?;
    let d = cfg.device(id).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no device {id:?} is configured")))?;
    // `rw` is refused by validation where the protocol's address cannot be written
    let points: Vec<_> = d.proto.points().into_iter().filter(|p| p.access == Access::Rw).map(|p| write_facts(&d.proto, p)).collect();
    // why nothing can be written, when the protocol never writes
    let mut facts = serde_json::json!({ "device": id, "points": points });
    if matches!(d.proto, ProtocolConfig::Dlt645(_)) {
        facts["note"] = "DL/T 645 meters are read-only: the gateway reads them and never writes to them.".into();
    }
    ok(&facts)
}

/// One writable point: `kind` is `bool` (a coil or a bit), `text` or `number`; `min`/`max` are
/// the configured range in engineering units (the collector checks the same ones; absent: the
/// data type's range is what limits a write). `type`: the Modbus data type, else the protocol.
fn write_facts(proto: &ProtocolConfig, p: &PointMeta) -> serde_json::Value {
    if let ProtocolConfig::Iec104(d) = proto {
        if let Some(c) = d.points.iter().find(|x| x.meta.name == p.name).and_then(|x| x.at.command) {
            return iec104_write_facts(p, c);
        }
    }
    let modbus = proto.modbus().and_then(|(_, m)| m.point(&p.name)).map(|mp| &mp.at);
    let (kind, data_type) = match modbus {
        Some(a) if a.area.is_bits() || matches!(a.data_type, DataType::Bool | DataType::Bit) => ("bool", a.data_type.to_string()),
        Some(a) if a.data_type == DataType::String => ("text", a.data_type.to_string()),
        Some(a) => ("number", a.data_type.to_string()),
        None => ("number", proto.protocol().to_string()),
    };
    serde_json::json!({ "point": p.name, "unit": p.unit, "type": data_type, "kind": kind, "min": p.min(), "max": p.max() })
}

/// An IEC 104 command point: switching commands are a `choice` of their states (`choices`: the
/// value sent and its word; `states`: the monitored value's words, for the current value),
/// set-points and bitstrings numbers with the configured range.
fn iec104_write_facts(p: &PointMeta, c: CommandType) -> serde_json::Value {
    use serde_json::json;
    let off_on = json!([{ "value": false, "label": "off" }, { "value": true, "label": "on" }]);
    let (kind, data_type, choices, states) = match c {
        CommandType::Single => ("choice", "C_SC_NA_1 single command", off_on, json!([[false, "off"], [true, "on"]])),
        CommandType::Double => {
            ("choice", "C_DC_NA_1 double command", off_on, json!([[0, "intermediate"], [1, "off"], [2, "on"], [3, "indeterminate"]]))
        }
        CommandType::Regulating => (
            "choice",
            "C_RC_NA_1 regulating step",
            json!([{ "value": false, "label": "lower" }, { "value": true, "label": "higher" }]),
            json!([]),
        ),
        CommandType::SetpointNormalized => ("number", "C_SE_NA_1 set-point, normalised", json!(null), json!([])),
        CommandType::SetpointScaled => ("number", "C_SE_NB_1 set-point, scaled", json!(null), json!([])),
        CommandType::SetpointFloat => ("number", "C_SE_NC_1 set-point, short float", json!(null), json!([])),
        CommandType::Bitstring => ("number", "C_BO_NA_1 bitstring of 32 bits", json!(null), json!([])),
    };
    let (min, max) = match c {
        CommandType::Bitstring => (Some(p.min().unwrap_or(0.0)), Some(p.max().unwrap_or(f64::from(u32::MAX)))),
        _ => (p.min(), p.max()),
    };
    json!({ "point": p.name, "unit": p.unit, "type": data_type, "kind": kind, "min": min, "max": max, "choices": choices, "states": states })
}
