//! `org.enos.Edge.UplinkSettings1`: the cloud settings seen and changed from the web center.
//!
//! `SetCloudSettings` validates the change as the uplink would load it, writes the secret (to its
//! own 0600 file, also one that was inline in `uplink.toml`) and `uplink.toml` atomically, then asks `main` to start the session again with
//! the new file: the cache stays open and nothing in it is touched; only the MQTT session (and the
//! sender's counters) start over. `TestConnection` tries a CONNECT with given settings, apart from
//! the running session. The secret is never answered, only whether one is set.

use crate::cloud_edit;
use crate::config::{ConfigFile, UplinkConfig};
use crate::state::Shared;
use enos_bus::Error;
use enos_cloud::Identity;
use enos_model::cloud::CloudChange;
use enos_runtime::fs::write_atomic;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Notify;

pub struct Settings {
    current: Mutex<Arc<Shared>>,
    /// Where the configuration came from and where a change is written (shared with the
    /// cloud's `setParameter`: one writer at a time).
    pub file: Arc<ConfigFile>,
    /// Told when a change is written: `main` starts the session again from `file`.
    pub reload: Notify,
}

impl Settings {
    pub fn new(shared: Arc<Shared>) -> Settings {
        let file = shared.file.clone();
        Settings { current: Mutex::new(shared), file, reload: Notify::new() }
    }

    pub fn set_current(&self, shared: Arc<Shared>) {
        *self.current.lock().expect("settings") = shared;
    }

    fn shared(&self) -> Arc<Shared> {
        self.current.lock().expect("settings").clone()
    }

    fn secret_file(&self) -> PathBuf {
        self.file.path.parent().unwrap_or(Path::new(".")).join("gateway.secret")
    }
}

/// At start: a secret written inline in a file others may read is said so in the log (the uplink
/// moves it into its own 0600 file the next time it writes the settings; the image's
/// `/etc/enos/uplink.toml` it cannot write).
pub fn warn_inline_secrets(file: &Path, cfg: &crate::config::UplinkConfig) {
    use std::os::unix::fs::PermissionsExt;
    let inline = cfg.cloud.device_secret.is_some() || cfg.sub_devices.iter().any(|s| s.device_secret.is_some());
    let mode = std::fs::metadata(file).map(|m| m.permissions().mode()).unwrap_or(0);
    if inline && mode & 0o077 != 0 {
        log::warn!(
            "{} holds a device secret inline and others may read it (mode {:o}): use device_secret_file with a 0600 file",
            file.display(),
            mode & 0o777
        );
    }
}

/// A change that does not validate: nothing changed, the reason names the field.
fn refused(msg: impl Into<String>) -> enos_bus::Result<String> {
    Err(Error::InvalidArgs(msg.into()))
}

impl Settings {
    /// JSON `enos_model::cloud::CloudView` plus `file`: the running cloud settings, the secret as `secret_set`.
    async fn get_cloud_settings(&self) -> enos_bus::Result<String> {
        let shared = self.shared();
        let mut v = serde_json::to_value(cloud_edit::view(&shared.cfg.cloud)).map_err(|e| Error::Failed(e.to_string()))?;
        v["file"] = json!(self.file.path);
        v["state"] = json!(shared.cloud.lock().expect("cloud").state.clone());
        Ok(v.to_string())
    }

    /// `change` is JSON `enos_model::cloud::CloudChange`. Answers `{"ok": true, "file"}` once written
    /// (the session then reconnects); else an error (`InvalidArgs`: the change; `Failed`: the
    /// files) and nothing changed.
    async fn set_cloud_settings(&self, change: &str) -> enos_bus::Result<String> {
        let _one = self.file.writing.lock().await;
        let ch: CloudChange = match serde_json::from_str(change) {
            Ok(c) => c,
            Err(e) => return refused(format!("not cloud settings: {e}")),
        };
        if let Err(e) = ch.check() {
            return refused(e);
        }
        // what the cloud changed while running (max_in_flight) is kept, not the loaded value
        let cur = self.shared().effective_cfg().cloud;
        let secret_file = self.secret_file();
        let mut cloud = cloud_edit::applied(&ch, &cur, &secret_file);
        // The secret never goes (back) into uplink.toml, which the group may read: a new one, or
        // one the operator wrote inline, goes into its own 0600 file.
        let new_secret = ch.device_secret.clone().filter(|s| !s.is_empty()).or_else(|| cloud.device_secret.take());
        if new_secret.is_some() {
            cloud.device_secret = None;
            cloud.device_secret_file = Some(secret_file.clone());
        }
        let base = self.file.text().map_err(Error::Failed)?;
        let text = match cloud_edit::replace_cloud(&self.file.loaded, &base, &cloud) {
            Ok(t) => t,
            Err(e) => return refused(e.to_string()),
        };
        let cfg = match UplinkConfig::from_str_at(&self.file.path, &text) {
            Ok(c) => c,
            Err(e) => return refused(e.to_string()),
        };
        let file = self.file.clone();
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if let Some(s) = new_secret {
                write_atomic(&secret_file, s.as_bytes(), 0o600)?;
            }
            file.write(&text, &cfg)
        })
        .await
        .map_err(|e| Error::Failed(e.to_string()))?;
        if let Err(e) = written {
            return Err(Error::Failed(format!("cannot write {}: {e} (nothing was changed)", self.file.path.display())));
        }
        log::info!("cloud settings changed (uri {}, {}/{}); the session starts again", cloud.uri, cloud.product_key, cloud.device_key);
        self.reload.notify_one();
        Ok(json!({ "ok": true, "file": self.file.path }).to_string())
    }

    /// Tries a CONNECT with these settings (the secret defaults to the one set), apart from the
    /// running session: `{"ok", "message", "took_ms"}`.
    async fn test_connection(&self, change: &str) -> enos_bus::Result<String> {
        let ch: CloudChange = serde_json::from_str(change).map_err(|e| Error::InvalidArgs(format!("not cloud settings: {e}")))?;
        ch.check().map_err(|e| Error::InvalidArgs(e.to_string()))?;
        let cur = self.shared().cfg.cloud.clone();
        let mut c = cloud_edit::applied(&ch, &cur, &self.secret_file());
        let secret = match ch.device_secret.clone().filter(|s| !s.is_empty()) {
            Some(s) => s,
            None => match cur.secret() {
                Ok(s) => s,
                Err(_) => return Ok(json!({ "ok": false, "message": "no device secret is set: enter it" }).to_string()),
            },
        };
        c.device_secret = Some(secret.clone());
        c.device_secret_file = None;
        if !c.is_tls() && !c.allow_plain {
            return Ok(
                json!({ "ok": false, "message": "plain TCP is refused: use ssl:// (or allow plain TCP for a test broker)" }).to_string()
            );
        }
        let gw = Identity { product_key: c.product_key.clone(), device_key: c.device_key.clone(), secret };
        let t0 = Instant::now();
        // No timeout around it here: dropping a connecting client early is what deadlocks paho
        // (see mqtt::bury); paho's own connect timeout (15 s) ends it.
        let r = crate::mqtt::try_connect(&c, &gw).await;
        let took_ms = t0.elapsed().as_millis() as u64;
        let (ok, message) = match r {
            Err(e) => (false, e),
            Ok(()) => (true, format!("connected to {} and signed in as {}/{}", c.uri, c.product_key, c.device_key)),
        };
        log::info!("connection test to {}: {message}", c.uri);
        Ok(json!({ "ok": ok, "message": message, "took_ms": took_ms }).to_string())
    }
}

/// The interface object (the settings are shared with `main`).
pub(crate) struct Iface(Arc<Settings>);

#[zbus::interface(name = "org.enos.Edge.UplinkSettings1")]
impl Iface {
    /// JSON `enos_model::cloud::CloudView` plus `file` and `state`; never the secret.
    async fn get_cloud_settings(&self) -> enos_bus::Result<String> {
        self.0.get_cloud_settings().await
    }
    /// JSON `enos_model::cloud::CloudChange` → `{"ok": true, "file"}` (the session then reconnects) or
    /// an error (nothing changed).
    async fn set_cloud_settings(
        &self,
        change: &str,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
    ) -> enos_bus::Result<String> {
        let who = enos_bus::Caller::of(conn, &hdr).await;
        let r = self.0.set_cloud_settings(change).await;
        match &r {
            Ok(_) => log::info!("cloud settings changed by {who}"),
            Err(e) => log::info!("cloud settings from {who} refused: {e}"),
        }
        r
    }
    /// A CONNECT with these settings apart from the session: `{"ok", "message", "took_ms"}`.
    async fn test_connection(&self, change: &str) -> enos_bus::Result<String> {
        self.0.test_connection(change).await
    }
}

pub async fn serve(conn: &zbus::Connection, s: Arc<Settings>) -> zbus::Result<()> {
    conn.object_server().at(enos_bus::UPLINK_PATH, Iface(s)).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_secret_is_never_written_through_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        // what the old writer's temporary name was: predictable, so another writer of the
        // directory could plant a link there
        let planted = dir.path().join(format!(".gateway.secret.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let secret = dir.path().join("gateway.secret");
        write_atomic(&secret, b"s3cret", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched", "the secret went through the planted link");
        let meta = std::fs::symlink_metadata(&secret).unwrap();
        assert!(meta.file_type().is_file(), "the secret file is a plain file");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "s3cret");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 3, "no temporary file left behind: {left:?}");
    }

    #[tokio::test]
    async fn an_inline_secret_moves_into_its_own_file_when_the_settings_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("uplink.toml");
        let text = format!(
            "[cloud]\nuri = \"tcp://127.0.0.1:1\"\nallow_plain = true\nproduct_key = \"pk\"\ndevice_key = \"gw\"\n\
             device_secret = \"gw-s3cret\"\n\n[cache]\ndir = \"{}\"\n",
            dir.path().join("cache").display()
        );
        std::fs::write(&file, text).unwrap();
        let cfg = crate::config::UplinkConfig::load(&file).unwrap();
        let cache = Arc::new(enos_cache::Cache::open(&cfg.cache.dir, 1 << 30, 0, enos_cache::Sync::Never).unwrap());
        let cf = Arc::new(ConfigFile::new(file.clone(), file.clone()));
        let settings = Settings::new(Shared::new(cfg, cache, dir.path().join("sub-devices.json"), cf));
        // a change that gives no new secret: the one there is stays
        let answer = settings.set_cloud_settings(r#"{"uri":"tcp://127.0.0.1:2","product_key":"pk","device_key":"gw"}"#).await.unwrap();
        assert!(answer.contains(r#""ok":true"#), "{answer}");
        let written = std::fs::read_to_string(&file).unwrap();
        assert!(!written.contains("gw-s3cret"), "the secret stayed in uplink.toml: {written}");
        let secret_file = dir.path().join("gateway.secret");
        assert_eq!(std::fs::metadata(&secret_file).unwrap().permissions().mode() & 0o777, 0o600);
        let back = crate::config::UplinkConfig::load(&file).unwrap();
        assert_eq!(back.cloud.secret().unwrap(), "gw-s3cret");
        assert_eq!(back.cloud.uri, "tcp://127.0.0.1:2");
    }
}
