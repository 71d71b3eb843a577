//! The dashboard and the control page: status, the device list, a communication test (read
//! now) and a point write.

use crate::access::Caller;
use crate::http::{ok, read_json, read_json_opt, ApiError, ApiResult};
use crate::state::App;
use enos_bus::PointReading;
use hyper::body::Incoming;
use hyper::Request;
use serde::Deserialize;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// `GET /api/status`.
pub async fn status(app: &App) -> ApiResult {
    ok(&app.bus.status().await)
}

/// `GET /api/devices`.
pub async fn list(app: &App) -> ApiResult {
    ok(&app.bus.devices().await?)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReadRequest {
    #[serde(default)]
    points: Vec<String>,
}

fn quality_words(r: &PointReading) -> String {
    use enos_batch::Quality::*;
    let base = match r.quality {
        Good => "good",
        DeviceException => "the device answered with an error",
        CommFailure => "no answer from the device",
        DecodeError => "the answer does not decode as configured",
        Offline => "the device is offline",
        Invalid => "the device marks the value invalid",
        Doubtful => "the device flags the value as doubtful",
    };
    match &r.error {
        Some(e) if r.quality != Good => format!("{base}: {e}"),
        _ => base.to_string(),
    }
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
            v["text"] = quality_words(p).into();
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
