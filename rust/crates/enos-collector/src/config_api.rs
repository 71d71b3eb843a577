//! The configuration calls of `org.enos.Edge.Collector1` (GetConfig, ValidateConfig,
//! ApplyConfig, ListDeviceModels) and the engineering calls (ReadRaw, LiveValues).
//!
//! ApplyConfig validates the whole document first (every finding, by device, point and field);
//! only a clean document is written, atomically (temp file, fsync, rename, directory fsync, the
//! previous file kept as `<name>.previous`), and only a written document is applied. A refused
//! document changes nothing, on disk or running.

use crate::config_edit;
use crate::reload::Engine;
use enos_bus::Error;
use enos_collector_config::CollectorConfig;
use enos_config::Finding;
use enos_drivers::Command;
use enos_model::comm_test::{self, CommTest};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

pub struct ConfigApi {
    pub engine: Arc<Mutex<Engine>>,
    /// Where ApplyConfig writes: the `--config` file, else `/data/enos/config/collector/collector.toml`.
    pub file: PathBuf,
    /// The device-model library (`--device-models`, default `/usr/share/enos/device-models`).
    pub models_dir: PathBuf,
    /// One apply at a time (ApplyConfig, a package).
    pub applying: tokio::sync::Mutex<()>,
    /// Resource packages: where they are installed, the key they are checked with.
    pub packages: crate::packages::Packages,
}

const MAX_DOC_BYTES: usize = 4 << 20;

fn to_json(v: &serde_json::Value) -> enos_bus::Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Failed(e.to_string()))
}

/// The document, or its one finding when it is not a configuration at all.
fn parse_doc(doc: &str) -> Result<CollectorConfig, Vec<Finding>> {
    let whole = |reason: String| vec![Finding { key: "(document)".into(), device: None, point: None, field: String::new(), reason }];
    if doc.len() > MAX_DOC_BYTES {
        return Err(whole(format!("larger than {} MiB", MAX_DOC_BYTES >> 20)));
    }
    serde_json::from_str(doc).map_err(|e| whole(format!("not a collector configuration: {e}")))
}

/// Writes the configuration atomically, keeping the file before this change as
/// `<name>.previous` for a technician who wants it back.
pub fn write_config(file: &Path, text: &str) -> std::io::Result<()> {
    if file.exists() {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let _ = std::fs::copy(file, file.with_file_name(format!("{name}.previous")));
    }
    enos_runtime::fs::write_atomic(file, text.as_bytes(), 0o644)
}

impl ConfigApi {
    pub fn get_config(&self) -> enos_bus::Result<String> {
        let mut cfg = self.engine.lock().expect("engine").config();
        for d in &mut cfg.devices {
            d.points_csv = None; // the points are inline in the document
        }
        // Straight to text: a `serde_json::Value` of 100,000 points is a million small
        // allocations, and their holes kept the collector's RSS up long after.
        serde_json::to_string(&cfg).map_err(|e| Error::Failed(e.to_string()))
    }

    pub async fn validate(&self, doc: &str) -> enos_bus::Result<String> {
        let errors = match parse_doc(doc) {
            Ok(cfg) => findings(cfg).await.1,
            Err(e) => e,
        };
        to_json(&json!({ "ok": errors.is_empty(), "errors": errors }))
    }

    pub async fn apply(&self, doc: &str) -> enos_bus::Result<String> {
        let _one = self.applying.lock().await;
        let cfg = match parse_doc(doc) {
            Ok(c) => c,
            Err(errors) => return to_json(&json!({ "ok": false, "errors": errors })),
        };
        let (cfg, errors) = findings(cfg).await;
        if !errors.is_empty() {
            log::info!("configuration refused: {}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "));
            return to_json(&json!({ "ok": false, "errors": errors }));
        }
        let push_changed = *self.engine.lock().expect("engine").push_config() != cfg.push;
        let applied = match self.put_in_place(cfg).await {
            Ok(a) => a,
            Err(reason) => {
                let f = Finding { key: "(file)".into(), device: None, point: None, field: String::new(), reason };
                return to_json(&json!({ "ok": false, "errors": [f] }));
            }
        };
        to_json(&json!({
            "ok": true,
            "file": self.file,
            "started": applied.started,
            "restarted": applied.restarted,
            "stopped": applied.stopped,
            "unchanged": applied.unchanged,
            "note": if push_changed { Some("the [push] settings take effect at the next start of the collector") } else { None },
        }))
    }

    /// Writes a validated configuration (atomically) and swaps the drivers; the caller holds
    /// `applying`. ApplyConfig and resource packages (`packages.rs`) both come here.
    pub async fn put_in_place(&self, cfg: CollectorConfig) -> Result<crate::reload::Applied, String> {
        let text = config_edit::to_toml(&cfg).map_err(|e| format!("cannot write the configuration as TOML: {e}"))?;
        let file = self.file.clone();
        let written = tokio::task::spawn_blocking(move || write_config(&file, &text)).await.map_err(|e| e.to_string())?;
        if let Err(e) = written {
            let reason = format!("cannot write {}: {e} (nothing was changed)", self.file.display());
            log::error!("{reason}");
            return Err(reason);
        }
        let applied = self.engine.lock().expect("engine").apply(cfg);
        log::info!(
            "configuration written to {} and applied: started {:?}, restarted {:?}, stopped {:?}, unchanged {:?}",
            self.file.display(),
            applied.started,
            applied.restarted,
            applied.stopped,
            applied.unchanged
        );
        Ok(applied)
    }

    pub fn device_models(&self) -> enos_bus::Result<String> {
        // The library on the read-only root, then the models the installed package brought.
        let (mut models, mut errors) = config_edit::load_models(&self.models_dir);
        let (more, more_errors) = config_edit::load_models(&self.packages.models_dir());
        models.extend(more);
        errors.extend(more_errors);
        to_json(&json!({ "dir": self.models_dir, "models": models, "errors": errors }))
    }

    /// The installed plugins' manifests (read, not loaded): name, version, protocols, point
    /// address format and settings schema; a directory whose manifest does not read is an error.
    pub fn plugins(&self) -> enos_bus::Result<String> {
        let dir = enos_drivers::plugin::plugins_dir();
        let (mut plugins, mut errors) = (Vec::new(), Vec::new());
        let mut entries: Vec<_> = std::fs::read_dir(&dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries.iter().filter(|p| p.is_dir() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))) {
            match enos_drivers::plugin::Manifest::load(p) {
                Ok(m) => plugins.push(json!({
                    "name": m.name,
                    "version": m.version,
                    "protocols": m.protocols,
                    "point_address": m.point_address,
                    "config_schema": m.config_schema,
                })),
                Err(e) => errors.push(e.to_string()),
            }
        }
        to_json(&json!({ "dir": dir, "plugins": plugins, "errors": errors }))
    }

    /// The communication test of `device`: `request` is an `enos_model::comm_test::CommTest`
    /// (without `kind`: a Modbus register read), of the kind the device's protocol answers.
    pub async fn read_raw(&self, device: &str, request: &str) -> enos_bus::Result<String> {
        let req = CommTest::parse(request).map_err(|e| Error::InvalidArgs(e.to_string()))?;
        let route = {
            let engine = self.engine.lock().expect("engine");
            let protocol = engine.device(device).map(|d| d.proto.protocol());
            let want = protocol.map(comm_test::kind_of);
            match (protocol, want) {
                (None, _) => return Err(Error::NotFound(format!("there is no device \"{device}\""))),
                (Some(p), Some(None)) => {
                    return Err(Error::NotSupported(format!("device \"{device}\" ({p}) has no communication test yet")))
                }
                (Some(p), Some(Some(k))) if k != req.kind() => {
                    return Err(Error::InvalidArgs(format!(
                        "device \"{device}\" ({p}): its communication test is {}, not {}",
                        k.name(),
                        req.kind().name()
                    )))
                }
                _ => engine.route(device),
            }
        };
        let route = route.ok_or_else(|| Error::NotFound(format!("device \"{device}\" is disabled: enable it to test it")))?;
        let (reply, rx) = oneshot::channel();
        route
            .send(Command::RawRead { device: device.into(), request: req, reply })
            .await
            .map_err(|_| Error::Failed(crate::reload::DRIVER_STOPPED.into()))?;
        let ans = rx.await.map_err(|_| Error::Failed(crate::reload::DRIVER_STOPPED.into()))?.map_err(Error::InvalidArgs)?;
        log::info!("communication test of {device} ({}): {}", ans.kind().name(), ans.message());
        to_json(&serde_json::to_value(&ans).map_err(|e| Error::Failed(e.to_string()))?)
    }

    pub fn live_values(&self, device: &str, since_ms: u64) -> enos_bus::Result<String> {
        let engine = self.engine.lock().expect("engine");
        if engine.device(device).is_none() {
            return Err(Error::NotFound(format!("no device {device:?}")));
        }
        let live = engine.live.clone();
        drop(engine);
        to_json(
            &json!({ "device": device, "time_ms": enos_batch::now_ms(), "points": live.values(device, since_ms).iter().map(|p| p.to_json()).collect::<Vec<_>>() }),
        )
    }
}

/// Every finding of `cfg`: its own checks, then (when those pass) each enabled plugin device's
/// settings against its installed plugin's schema, each finding naming the setting (the driver
/// checks them again when it starts). Loading may compile the plugin: not on the bus's threads.
async fn findings(cfg: CollectorConfig) -> (CollectorConfig, Vec<Finding>) {
    let own = cfg.findings().0;
    if !own.is_empty() {
        return (cfg, own);
    }
    tokio::task::spawn_blocking(move || {
        let found = plugin_settings(&cfg);
        (cfg, found)
    })
    .await
    .expect("the plugin settings check")
}

fn plugin_settings(cfg: &CollectorConfig) -> Vec<Finding> {
    use enos_collector_config::ProtocolConfig;
    let mut out = Vec::new();
    for (i, d) in cfg.devices.iter().enumerate().filter(|(_, d)| d.enabled) {
        let ProtocolConfig::Plugin(p) = &d.proto else { continue };
        let at = enos_config::Scope::root().device(i, &d.id);
        match enos_drivers::plugin::load(&enos_drivers::plugin::plugins_dir().join(&p.plugin)) {
            Err(e) => out.push(at.finding("plugin", e)),
            Ok(plugin) => {
                for f in plugin.check_settings(&p.settings).err().unwrap_or_default() {
                    // The schema's findings start with the setting's path (`settings.timeout_ms: ...`).
                    let (field, reason) = f.split_once(": ").unwrap_or(("settings", &f));
                    out.push(at.finding(field, reason));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_keeps_the_previous_file() {
        let d = tempfile_dir("previous");
        let f = d.join("collector.toml");
        write_config(&f, "a = 1\n").unwrap();
        write_config(&f, "a = 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "a = 2\n");
        assert_eq!(std::fs::read_to_string(d.join("collector.toml.previous")).unwrap(), "a = 1\n");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 2, "no temp file left");
        let e = write_config(&d.join("missing/collector.toml"), "x").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn atomic_write_does_not_follow_a_planted_temp_symlink() {
        // The temp name used to be predictable (pid): a symlink planted there was written through.
        let d = tempfile_dir("symlink");
        let victim = d.join("victim");
        std::fs::write(&victim, "untouched\n").unwrap();
        std::os::unix::fs::symlink(&victim, d.join(format!(".collector.toml.tmp-{}", std::process::id()))).unwrap();
        write_config(&d.join("collector.toml"), "a = 1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched\n");
        assert!(!std::fs::symlink_metadata(d.join("collector.toml")).unwrap().file_type().is_symlink());
        std::fs::remove_dir_all(d).unwrap();
    }

    fn tempfile_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("enos-collector-test-{tag}-{}-{}", std::process::id(), enos_batch::now_ms()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
