//! The uplink's own settings changed by the cloud (`setParameter uplink.{table}.{key}`: the
//! cache's bounds, the sender's batch and window): checked as a start would check the file,
//! written to the uplink's file (so a restart keeps them), then taken by the running uplink
//! without a restart (the cache's bounds at its next write, the sender at its next turn).
//!
//! The file is written before anything changes in the running uplink: a refused value or a failed
//! write leaves both as they were. Nothing is left to roll back afterwards: unlike a device's
//! setting, no device or connection has to come up with the value.

use crate::cloud_edit;
use crate::config::UplinkConfig;
use crate::state::Shared;
use enos_cloud::codes;
use serde_json::{json, Value};
use std::sync::Arc;

type Refusal = (i64, String);

/// Sets `[table] key` of the uplink to `new` (a number within the parameter's bounds).
pub async fn change(shared: &Arc<Shared>, request: &str, name: &str, (table, key): (&str, &str), new: &Value) -> Result<Value, Refusal> {
    let bad = |m: String| (codes::BAD_PARAMS, m);
    let failed = |m: String| (codes::write_failed(None), m);
    let n = new.as_u64().ok_or_else(|| bad(format!("{name}: {new} is not a whole number")))?;
    let file = &shared.file;
    let _one = file.writing.lock().await;
    let mut effective = serde_json::to_value(shared.effective_cfg()).map_err(|e| failed(e.to_string()))?;
    let old = effective[table][key].clone();
    if old == *new {
        return Ok(json!({ "name": name, "old": old, "new": new, "changed": false }));
    }
    if (table, key) == ("cache", "keep_free_bytes") {
        keep_free_fits(shared, n).map_err(|why| bad(format!("{name}: {why}")))?;
    }
    let base = file.text().map_err(failed)?;
    let text = cloud_edit::set_value(&file.loaded, &base, table, key, toml::Value::Integer(n as i64))
        .map_err(|e| failed(format!("{name}: {e}")))?;
    // the validation of a start, on the whole file as it would be written
    let cfg = UplinkConfig::from_str_at(&file.path, &text).map_err(|e| bad(format!("{name}: {new} refused: {e}")))?;
    // Only this value changes in the running uplink, not whatever else the file says by now.
    effective[table][key] = new.clone();
    let running: UplinkConfig = serde_json::from_value(effective).map_err(|e| failed(e.to_string()))?;
    let f = file.clone();
    let written = tokio::task::spawn_blocking(move || f.write(&text, &cfg)).await.map_err(|e| failed(e.to_string()))?;
    written.map_err(|e| failed(format!("{name}: cannot write {}: {e} (nothing was changed)", file.path.display())))?;
    apply(shared, &running);
    log::warn!("AUDIT the cloud (request {request}) set {name}: {old} -> {new} (written to {})", file.path.display());
    Ok(json!({ "name": name, "old": old, "new": new, "changed": true }))
}

/// The running uplink takes the settings the cloud may change from `cfg` (the effective ones with
/// the change).
fn apply(shared: &Shared, cfg: &UplinkConfig) {
    let c = &cfg.cache;
    shared.cache.set_bounds(c.max_bytes, c.max_age_hours * 3_600_000);
    shared.cache.keep_free(c.keep_free_bytes);
    *shared.tuning.lock().expect("tuning") = crate::config::Tuning::of(cfg);
    shared.new_data.notify_one();
}

/// A reserve the file system cannot give now would make the cache drop what it holds at once
/// (and then refuse every write): refused.
fn keep_free_fits(shared: &Shared, bytes: u64) -> Result<(), String> {
    let Some(disk) = enos_runtime::sys::Disk::of(&shared.cfg.cache.dir) else { return Ok(()) };
    if bytes >= disk.total_bytes {
        return Err(format!("{bytes} is more than the cache's file system holds ({} bytes)", disk.total_bytes));
    }
    if bytes > disk.free_bytes {
        return Err(format!(
            "{bytes} is more than is free on the cache's file system now ({} bytes): the cache would drop the data it holds",
            disk.free_bytes
        ));
    }
    Ok(())
}
