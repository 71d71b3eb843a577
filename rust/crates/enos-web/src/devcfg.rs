//! Device configuration and engineering calls: devices added, edited and removed through the
//! collector's `GetConfig`/`ApplyConfig`, point tables as CSV (`enos_collector_config::points_csv`, parsed
//! and written here so the format has one home), the device-model library, raw-register reads
//! and live values. See `docs/web-api.md`.

use crate::access::Caller;
use crate::http::{ok, read_json, ApiError, ApiResult};
use crate::state::App;
use enos_collector_config::points_csv;
use enos_collector_config::{CollectorConfig, DeviceConfig, Protocol};
use enos_model::comm_test::CommTest;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::json;

/// Larger than `limits.max_body_bytes`: a device with a thousand points is ~200 KB of JSON.
pub const CONFIG_BODY_MAX: usize = 4 << 20;

async fn running_config(app: &App) -> Result<CollectorConfig, ApiError> {
    app.bus.collector_config().await
}

fn unprocessable(message: impl Into<String>, errors: serde_json::Value) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message).with_details(errors)
}

/// `GET /api/config`: the collector's running configuration.
pub async fn get_config(app: &App) -> ApiResult {
    ok(&running_config(app).await?)
}

/// `GET /api/devices/{id}/config`.
pub async fn get_device(app: &App, id: &str) -> ApiResult {
    let cfg = running_config(app).await?;
    let d = cfg.device(id).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no device {id:?} is configured")))?;
    ok(d)
}

/// Applies `cfg` through the collector; its findings become a `422` with `errors`.
async fn apply(app: &App, cfg: &CollectorConfig) -> Result<serde_json::Value, ApiError> {
    let r = app.bus.apply_config(cfg).await?;
    if r["ok"] != true {
        let errors = r["errors"].clone();
        // The first finding with the setting it names (its cell is marked too, maybe out of view).
        let first = errors
            .get(0)
            .map(|e| match (e["field"].as_str().filter(|f| !f.is_empty()), e["reason"].as_str().unwrap_or("refused")) {
                (Some(f), r) => format!("{f}: {r}"),
                (None, r) => r.to_string(),
            })
            .unwrap_or_else(|| "refused".into());
        let n = errors.as_array().map(|a| a.len()).unwrap_or(0);
        return Err(unprocessable(
            format!("the configuration was refused ({n} problem{}): {first}", if n == 1 { "" } else { "s" }),
            errors,
        ));
    }
    Ok(r)
}

/// `PUT /api/devices/{id}/config`: adds the device or replaces its settings and points.
pub async fn put_device(app: &App, req: Request<Incoming>, c: Caller, id: &str) -> ApiResult {
    let s = c.session;
    let dev: DeviceConfig = read_json(req, CONFIG_BODY_MAX).await?;
    if dev.id != id {
        return Err(ApiError::bad_request(format!("the body is for device {:?}, the path for {id:?}", dev.id)));
    }
    let _one = app.config_edit.lock().await;
    let mut cfg = running_config(app).await?;
    let created = match cfg.devices.iter_mut().find(|d| d.id == id) {
        Some(d) => {
            *d = dev;
            false
        }
        None => {
            cfg.devices.push(dev);
            true
        }
    };
    let r = apply(app, &cfg).await.inspect_err(|e| log::info!("{:?}: device {id:?} not saved: {}", s.user, e.message))?;
    log::info!(
        "{:?} {} device {id:?}; restarted {}, started {}",
        s.user,
        if created { "added" } else { "changed" },
        r["restarted"],
        r["started"]
    );
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(crate::http::json(status, &json!({ "device": id, "created": created, "applied": r })))
}

/// `DELETE /api/devices/{id}/config`.
pub async fn delete_device(app: &App, c: Caller, id: &str) -> ApiResult {
    let s = c.session;
    let _one = app.config_edit.lock().await;
    let mut cfg = running_config(app).await?;
    let before = cfg.devices.len();
    cfg.devices.retain(|d| d.id != id);
    if cfg.devices.len() == before {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no device {id:?} is configured")));
    }
    let r = apply(app, &cfg).await?;
    log::info!("{:?} removed device {id:?}", s.user);
    ok(&json!({ "device": id, "removed": true, "applied": r }))
}

/// `GET /api/devices/{id}/points.csv`: the point table in the CSV format it can be imported in.
pub async fn export_csv(app: &App, id: &str) -> ApiResult {
    let cfg = running_config(app).await?;
    let d = cfg.device(id).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no device {id:?} is configured")))?;
    let mut r = crate::http::text(StatusCode::OK, "text/csv; charset=utf-8", points_csv::write(&d.proto));
    let fname: String = id.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    let cd = HeaderValue::from_str(&format!("attachment; filename=\"{fname}-points.csv\"")).expect("ascii");
    r.headers_mut().insert("content-disposition", cd);
    r.headers_mut().insert("cache-control", HeaderValue::from_static("no-store"));
    Ok(r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CsvBody {
    csv: String,
    /// The protocol whose columns the table has.
    #[serde(default = "modbus_tcp")]
    protocol: Protocol,
}
fn modbus_tcp() -> Protocol {
    Protocol::ModbusTcp
}

/// `POST /api/points-csv`: parses a point table; every bad row and column is reported.
pub async fn parse_csv(req: Request<Incoming>) -> ApiResult {
    let b: CsvBody = read_json(req, CONFIG_BODY_MAX).await?;
    match points_csv::parse(b.protocol, &b.csv) {
        Ok(points) => ok(&json!({ "points": points })),
        Err(errors) => {
            let list: Vec<_> =
                errors.iter().map(|e| json!({ "line": e.line, "column": e.column, "reason": e.reason, "text": e.to_string() })).collect();
            let first = errors.first().map(|e| e.to_string()).unwrap_or_default();
            Err(unprocessable(
                format!("the point table has {} problem{}: {first}", errors.len(), if errors.len() == 1 { "" } else { "s" }),
                json!(list),
            ))
        }
    }
}

/// `GET /api/protocols`: per protocol its device settings and point fields, from which the page
/// builds the device form and the point grid, and its communication test.
pub async fn protocols() -> ApiResult {
    // each with the communication test its devices answer (`comm_test`, absent: none yet)
    let list: Vec<serde_json::Value> = enos_collector_config::protocols::describe()
        .into_iter()
        .zip(enos_collector_config::protocols::ALL)
        .map(|(info, spec)| {
            let mut v = serde_json::to_value(info).expect("protocol description");
            v["comm_test"] = serde_json::to_value(enos_model::comm_test::for_protocol(spec.protocol)).expect("test description");
            v
        })
        .collect();
    ok(&list)
}

/// `GET /api/device-models`: the library shipped with the image.
/// `GET /api/plugins`: the installed plugins, each with its settings schema (the editor's form).
pub async fn plugins(app: &App) -> ApiResult {
    ok(&app.bus.plugins().await?)
}

pub async fn device_models(app: &App) -> ApiResult {
    ok(&app.bus.device_models().await?)
}

/// `POST /api/devices/{id}/raw-read`: the device's communication test now
/// (`enos_model::comm_test`: registers, an interrogation, data identifiers; by `kind`).
pub async fn raw_read(app: &App, req: Request<Incoming>, c: Caller, id: &str) -> ApiResult {
    let s = c.session;
    let body: serde_json::Value = read_json(req, app.body_limit()).await?;
    let body = body.to_string();
    let t = CommTest::parse(&body).map_err(ApiError::bad_request)?;
    let v = app.bus.read_raw(id, &body).await?;
    log::info!("communication test by {:?}: {id} ({}): {}", s.user, t.kind().name(), v["message"].as_str().unwrap_or(""));
    ok(&v)
}

/// `GET /api/devices/{id}/live?since_ms=N`: recent polled values and their history.
pub async fn live(app: &App, req: Request<Incoming>, id: &str) -> ApiResult {
    let since = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("since_ms="))
        .map(|v| v.parse::<u64>().map_err(|_| ApiError::bad_request("since_ms must be a number")))
        .transpose()?
        .unwrap_or(0);
    ok(&app.bus.live_values(id, since).await?)
}

/// `GET /api/devices/{id}/opcua-certificates`: the OPC UA device's trust list (admins).
pub async fn opcua_certificates(app: &App, id: &str) -> ApiResult {
    ok(&app.bus.opcua_certificates(id).await?)
}

/// `POST /api/devices/{id}/opcua-certificates/{sha256}/trust` (or `/remove`): trusts a rejected
/// server certificate or removes one (admins); the collector audits it with the web center as the
/// caller, so the user is logged here.
pub async fn opcua_certificate(app: &App, c: Caller, id: &str, sha256: &str, trust: bool) -> ApiResult {
    let user = &c.session.user;
    let r = if trust { app.bus.trust_opcua_certificate(id, sha256).await } else { app.bus.remove_opcua_certificate(id, sha256).await };
    let what = if trust { "trusted" } else { "removed" };
    match &r {
        Ok(v) => log::warn!("{user:?} {what} OPC UA server certificate {sha256} ({}) of {id}", v["subject"].as_str().unwrap_or("")),
        Err(e) => log::warn!("{user:?} asked for OPC UA server certificate {sha256} of {id} to be {what}: {}", e.message),
    }
    ok(&r?)
}

/// `GET /api/devices/{id}/last-sent`: what the cloud last acknowledged for the device.
pub async fn last_sent(app: &App, id: &str) -> ApiResult {
    ok(&app.bus.last_sent(id).await?)
}
