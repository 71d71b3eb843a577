//! Device models (TSL) of the sub-devices' products: fetched from the cloud after a login and
//! when asked (`UplinkInspect1.DeviceModel`), kept on disk (`device-models/{product}.json`
//! next to the identities) so a box offline still knows them, and compared with the collector's
//! point table of a device (`enos_cloud::tsl::check`).

use crate::state::Shared;
use enos_cloud::tsl::{self, Finding, LocalPoint, Model};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// A model as kept on disk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Kept {
    pub product_key: String,
    pub fetched_ms: u64,
    pub model: Model,
}

fn file(shared: &Shared, product_key: &str) -> PathBuf {
    shared.subs().dir().join("device-models").join(format!("{product_key}.json"))
}

pub fn load(shared: &Shared, product_key: &str) -> Option<Kept> {
    serde_json::from_slice(&std::fs::read(file(shared, product_key)).ok()?).ok()
}

/// Keeps a fetched model; says in the log when its version changed.
pub fn store(shared: &Shared, product_key: &str, model: Model) -> std::io::Result<()> {
    let old = load(shared, product_key);
    match &old {
        Some(o) if o.model.version != model.version => {
            log::info!("the device model of {product_key} changed: version {} → {}", o.model.version, model.version)
        }
        None => log::info!("the device model of {product_key} fetched: version {}", model.version),
        _ => {}
    }
    let f = file(shared, product_key);
    std::fs::create_dir_all(f.parent().expect("in a directory"))?;
    let k = Kept { product_key: product_key.to_string(), fetched_ms: enos_batch::now_ms(), model };
    enos_runtime::fs::write_atomic(&f, &serde_json::to_vec_pretty(&k).map_err(std::io::Error::other)?, 0o640)
}

/// The collector's points of `device`, as the check reads them from `GetConfig`.
#[derive(Deserialize)]
struct Configured {
    #[serde(default, rename = "device")]
    devices: Vec<Device>,
}

#[derive(Deserialize)]
struct Device {
    id: String,
    #[serde(default, rename = "point")]
    points: Vec<Point>,
}

#[derive(Deserialize)]
struct Point {
    name: String,
    #[serde(default, rename = "type")]
    data_type: Option<String>,
    #[serde(default)]
    scale: Option<f64>,
    #[serde(default)]
    access: Option<String>,
}

/// The findings for `device` against `model`, from the collector's configuration JSON.
pub fn findings(config_json: &str, device: &str, model: &Model) -> Result<Vec<Finding>, String> {
    let c: Configured = serde_json::from_str(config_json).map_err(|e| format!("the collector's configuration is not readable: {e}"))?;
    let d = c.devices.iter().find(|d| d.id == device).ok_or_else(|| format!("the collector has no device {device}"))?;
    let points: Vec<LocalPoint> = d
        .points
        .iter()
        .map(|p| LocalPoint {
            name: &p.name,
            data_type: p.data_type.as_deref(),
            scaled: p.scale.is_some_and(|s| s != 1.0),
            writable: p.access.as_deref() == Some("rw"),
        })
        .collect();
    Ok(tsl::check(&points, model))
}

/// `UplinkInspect1.DeviceModel(device, fetch)`: the device's model (fetched now when `fetch` and
/// the session is up, else as kept) and how its configured points disagree with it.
pub async fn answer(shared: &std::sync::Arc<Shared>, device: &str, fetch: bool) -> enos_bus::Result<serde_json::Value> {
    let pk = shared.subs().devices.get(device).map(|s| s.product_key.clone());
    let Some(pk) = pk else {
        return Err(enos_bus::Error::NotFound(format!("{device} is no sub-device: give it a product key first")));
    };
    let mut note = None;
    if fetch {
        let before = load(shared, &pk).map(|k| k.fetched_ms);
        shared.models_wanted.lock().expect("models wanted").insert(device.to_string());
        shared.subs_changed();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
        loop {
            if load(shared, &pk).map(|k| k.fetched_ms) != before {
                break;
            }
            if let Some(e) = shared.models_failed.lock().expect("models failed").remove(device) {
                note = Some(format!("not fetched now: {e}"));
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                note = Some("not fetched now: the cloud session did not fetch it within 8 s".into());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let Some(kept) = load(shared, &pk) else {
        return Ok(serde_json::json!({"device": device, "product_key": pk, "model": null, "findings": [],
            "note": note.unwrap_or_else(|| format!("the model of {pk} has not been fetched yet (it is, after the device's login)"))}));
    };
    let conn = shared.bus().ok_or_else(|| enos_bus::Error::Failed("not on the bus yet".into()))?;
    let cfg = enos_bus::CollectorProxy::new(conn).await?.get_config().await?;
    let found = findings(&cfg, device, &kept.model).map_err(enos_bus::Error::Failed)?;
    Ok(serde_json::json!({"device": device, "product_key": pk, "version": kept.model.version, "fetched_ms": kept.fetched_ms,
        "model": kept.model, "findings": found, "note": note}))
}

#[cfg(test)]
mod tests {
    #[test]
    fn points_of_a_device_checked_against_its_model() {
        let m: enos_cloud::tsl::Model = serde_json::from_value(serde_json::json!({"version": "1", "measurepoints":
            {"p": {"data_type": "INT", "writable": false}}, "attributes": [], "services": [], "events": []}))
        .unwrap();
        let cfg = r#"{"device": [{"id": "d", "point": [{"name": "p", "type": "f32", "access": "rw"}, {"name": "q"}]}]}"#;
        let f = super::findings(cfg, "d", &m).unwrap();
        assert_eq!(f.len(), 3, "{f:?}");
        assert_eq!(super::findings(cfg, "x", &m).unwrap_err(), "the collector has no device x");
    }
}
