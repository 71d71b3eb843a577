//! `org.enos.Edge.UplinkSettings1`: the cloud settings seen and changed from the web center.
//!
//! `SetCloudSettings` validates the change as the uplink would load it, writes the secret (to its
//! own 0600 file) and `uplink.toml` atomically, then asks `main` to start the session again with
//! the new file: the cache stays open and nothing in it is touched; only the MQTT session (and the
//! sender's counters) start over. `TestConnection` tries a CONNECT with given settings, apart from
//! the running session. The secret is never answered, only whether one is set.

use crate::cloud_edit;
use crate::config::UplinkConfig;
use crate::state::Shared;
use enos_cloud::{sign, Identity};
use enos_model::cloud::CloudChange;
use enos_runtime::fs::write_atomic;
use paho_mqtt as mqtt;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use zbus::fdo;

pub struct Settings {
    current: Mutex<Arc<Shared>>,
    /// The file the uplink loaded (the starting point of a change).
    loaded: PathBuf,
    /// Where a change is written: `--config`, else `/data/enos/config/uplink.toml`.
    pub file: PathBuf,
    /// Told when a change is written: `main` starts the session again from `file`.
    pub reload: Notify,
    applying: tokio::sync::Mutex<()>,
}

impl Settings {
    pub fn new(shared: Arc<Shared>, loaded: PathBuf, file: PathBuf) -> Settings {
        Settings { current: Mutex::new(shared), loaded, file, reload: Notify::new(), applying: Default::default() }
    }

    pub fn set_current(&self, shared: Arc<Shared>) {
        *self.current.lock().expect("settings") = shared;
    }

    fn shared(&self) -> Arc<Shared> {
        self.current.lock().expect("settings").clone()
    }

    fn secret_file(&self) -> PathBuf {
        self.file.parent().unwrap_or(Path::new(".")).join("gateway.secret")
    }
}

fn refused(msg: impl Into<String>) -> fdo::Result<String> {
    Ok(json!({ "ok": false, "error": msg.into() }).to_string())
}

impl Settings {
    /// JSON `enos_model::cloud::CloudView` plus `file`: the running cloud settings, the secret as `secret_set`.
    async fn get_cloud_settings(&self) -> fdo::Result<String> {
        let shared = self.shared();
        let mut v = serde_json::to_value(cloud_edit::view(&shared.cfg.cloud)).map_err(|e| fdo::Error::Failed(e.to_string()))?;
        v["file"] = json!(self.file);
        v["state"] = json!(shared.cloud.lock().expect("cloud").state.clone());
        Ok(v.to_string())
    }

    /// `change` is JSON `enos_model::cloud::CloudChange`. Answers `{"ok": true, "file"}` once written
    /// (the session then reconnects), or `{"ok": false, "error"}` and nothing changed.
    async fn set_cloud_settings(&self, change: &str) -> fdo::Result<String> {
        let _one = self.applying.lock().await;
        let ch: CloudChange = match serde_json::from_str(change) {
            Ok(c) => c,
            Err(e) => return refused(format!("not cloud settings: {e}")),
        };
        if let Err(e) = ch.check() {
            return refused(e);
        }
        let cur = self.shared().cfg.cloud.clone();
        let secret_file = self.secret_file();
        let new_secret = ch.device_secret.clone().filter(|s| !s.is_empty());
        let cloud = cloud_edit::applied(&ch, &cur, &secret_file);
        let base = std::fs::read_to_string(&self.file).or_else(|_| std::fs::read_to_string(&self.loaded));
        let base = match base {
            Ok(b) => b,
            Err(e) => return refused(format!("cannot read {}: {e}", self.loaded.display())),
        };
        let text = match cloud_edit::replace_cloud(&self.loaded, &base, &cloud) {
            Ok(t) => t,
            Err(e) => return refused(e.to_string()),
        };
        if let Err(e) = UplinkConfig::from_str_at(&self.file, &text) {
            return refused(e.to_string());
        }
        let (file, text2) = (self.file.clone(), text.clone());
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if let Some(s) = new_secret {
                write_atomic(&secret_file, s.as_bytes(), 0o600)?;
            }
            write_atomic(&file, text2.as_bytes(), 0o640)
        })
        .await
        .map_err(|e| fdo::Error::Failed(e.to_string()))?;
        if let Err(e) = written {
            return refused(format!("cannot write {}: {e} (nothing was changed)", self.file.display()));
        }
        log::info!("cloud settings changed (uri {}, {}/{}); the session starts again", cloud.uri, cloud.product_key, cloud.device_key);
        self.reload.notify_one();
        Ok(json!({ "ok": true, "file": self.file }).to_string())
    }

    /// Tries a CONNECT with these settings (the secret defaults to the one set), apart from the
    /// running session: `{"ok", "message", "took_ms"}`.
    async fn test_connection(&self, change: &str) -> fdo::Result<String> {
        let ch: CloudChange = serde_json::from_str(change).map_err(|e| fdo::Error::InvalidArgs(format!("not cloud settings: {e}")))?;
        ch.check().map_err(|e| fdo::Error::InvalidArgs(e.to_string()))?;
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
        // (see GRAVEYARD); paho's own connect timeout (15 s) ends it.
        let r = try_connect(&c, &gw).await;
        let took_ms = t0.elapsed().as_millis() as u64;
        let (ok, message) = match r {
            Err(e) => (false, e),
            Ok(()) => (true, format!("connected to {} and signed in as {}/{}", c.uri, c.product_key, c.device_key)),
        };
        log::info!("connection test to {}: {message}", c.uri);
        Ok(json!({ "ok": ok, "message": message, "took_ms": took_ms }).to_string())
    }
}

/// Test clients, kept until paho is surely done with them. Paho destroys a client when its last
/// reference goes; if that last reference is the one a connect callback holds, the destroy runs
/// on paho's own receive thread, which holds paho's global lock: a deadlock that stops every
/// client of the process (seen with gdb: `MQTTAsync_destroy` in `MQTTAsync_rcv`). So a test
/// client is never dropped at once: it waits here and goes on a later test, from our thread.
static GRAVEYARD: Mutex<Vec<(Instant, mqtt::AsyncClient)>> = Mutex::new(Vec::new());

pub fn bury(cli: mqtt::AsyncClient) {
    let old: Vec<_> = {
        let mut g = GRAVEYARD.lock().expect("graveyard");
        let (old, keep): (Vec<_>, Vec<_>) = g.drain(..).partition(|(t, _)| t.elapsed() > Duration::from_secs(60));
        *g = keep;
        g.push((Instant::now(), cli));
        old
    };
    drop(old);
}

async fn try_connect(c: &crate::config::CloudConfig, gw: &Identity) -> Result<(), String> {
    let f = sign::connect_fields(gw, enos_batch::now_ms());
    let cli = mqtt::CreateOptionsBuilder::new_v3()
        .server_uri(c.uri.replace("mqtts://", "ssl://").replace("mqtt://", "tcp://"))
        .client_id(&f.client_id)
        .persistence(mqtt::PersistenceType::None)
        .create_client()
        .map_err(|e| format!("creating MQTT client: {e}"))?;
    let opts = crate::session::connect_options(c, &f)?;
    let r = cli.connect(opts).await;
    if r.is_ok() {
        let _ = cli.disconnect(None).await;
    }
    bury(cli);
    r.map(|_| ()).map_err(|e| {
        let e = e.to_string();
        if e.contains("password") || e.contains("authori") || e.trim() == "(0)" || e.is_empty() {
            format!("the cloud refused the sign-in: check the product key, device key and secret ({e})")
        } else {
            format!("the broker could not be reached or refused: {e}")
        }
    })
}

/// The interface object (the settings are shared with `main`).
struct Iface(Arc<Settings>);

#[zbus::interface(name = "org.enos.Edge.UplinkSettings1")]
impl Iface {
    /// JSON `enos_model::cloud::CloudView` plus `file` and `state`; never the secret.
    async fn get_cloud_settings(&self) -> fdo::Result<String> {
        self.0.get_cloud_settings().await
    }
    /// JSON `enos_model::cloud::CloudChange` → `{"ok": true, "file"}` (the session then reconnects) or
    /// `{"ok": false, "error"}` (nothing changed).
    async fn set_cloud_settings(&self, change: &str) -> fdo::Result<String> {
        self.0.set_cloud_settings(change).await
    }
    /// A CONNECT with these settings apart from the session: `{"ok", "message", "took_ms"}`.
    async fn test_connection(&self, change: &str) -> fdo::Result<String> {
        self.0.test_connection(change).await
    }
}

pub async fn serve(conn: &zbus::Connection, s: Arc<Settings>) -> zbus::Result<()> {
    conn.object_server().at(enos_bus::UPLINK_PATH, Iface(s)).await.map(|_| ())
}
