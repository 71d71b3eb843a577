//! `org.enos.Edge.Collector1` on the bus.

use crate::config_api::ConfigApi;
use crate::pusher::Stats;
use crate::reload::DRIVER_STOPPED;
use enos_bus::{Caller, Error, Result};
use enos_bus::{CollectorStats, WriteFailure, WriteOutcome};
use enos_drivers::{Command, DeviceEvent};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use zbus::object_server::SignalEmitter;

pub struct Collector {
    /// The running drivers (replaced in part by ApplyConfig) and the configuration calls.
    pub api: Arc<ConfigApi>,
    pub stats: Arc<Stats>,
}

impl Collector {
    fn route(&self, device: &str) -> Option<mpsc::Sender<Command>> {
        self.api.engine.lock().expect("engine").route(device)
    }
}

const MAX_VALUE_BYTES: usize = 4096;

#[zbus::interface(name = "org.enos.Edge.Collector1")]
impl Collector {
    async fn list_devices(&self) -> Result<String> {
        let all = self.api.engine.lock().expect("engine").statuses();
        serde_json::to_string(&all).map_err(|e| Error::Failed(e.to_string()))
    }

    async fn read_points(&self, device: &str, points: Vec<String>) -> Result<String> {
        let route = self.route(device).ok_or_else(|| Error::NotFound(format!("no device {device:?}")))?;
        let (reply, rx) = oneshot::channel();
        route.send(Command::Read { device: device.into(), points, reply }).await.map_err(|_| Error::Failed(DRIVER_STOPPED.into()))?;
        let readings = rx.await.map_err(|_| Error::Failed(DRIVER_STOPPED.into()))?.map_err(Error::InvalidArgs)?;
        serde_json::to_string(&readings).map_err(|e| Error::Failed(e.to_string()))
    }

    /// Logged with who asked (a cloud command through the uplink, the web center, enosctl).
    async fn write_point(
        &self,
        device: &str,
        point: &str,
        value: &str,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
    ) -> Result<String> {
        let who = Caller::of(conn, &hdr).await;
        let out = if value.len() > MAX_VALUE_BYTES {
            WriteOutcome::failed(WriteFailure::BadValue, "value larger than 4 KiB")
        } else {
            match (self.route(device), serde_json::from_str::<serde_json::Value>(value)) {
                (None, _) => WriteOutcome::failed(WriteFailure::UnknownDevice, format!("no device {device:?}")),
                (_, Err(e)) => WriteOutcome::failed(WriteFailure::BadValue, format!("value is not JSON: {e}")),
                (Some(route), Ok(v)) => {
                    let (reply, rx) = oneshot::channel();
                    let cmd = Command::Write { device: device.into(), point: point.into(), value: v, reply };
                    match route.send(cmd).await {
                        Ok(()) => rx.await.unwrap_or_else(|_| WriteOutcome::failed(WriteFailure::Internal, DRIVER_STOPPED)),
                        Err(_) => WriteOutcome::failed(WriteFailure::Internal, DRIVER_STOPPED),
                    }
                }
            }
        };
        log::info!("write {device}.{point} = {value} by {who}: {}", if out.ok { "ok".to_string() } else { out.message.clone() });
        serde_json::to_string(&out).map_err(|e| Error::Failed(e.to_string()))
    }

    async fn stats(&self) -> Result<String> {
        let s = &self.stats;
        let (devs, devices) = {
            let e = self.api.engine.lock().expect("engine");
            (e.statuses(), e.device_count())
        };
        let st = CollectorStats {
            devices,
            devices_online: devs.iter().filter(|d| d.state == "online").count(),
            samples_collected: s.samples_collected.load(Relaxed),
            batches_pushed: s.batches_pushed.load(Relaxed),
            samples_pushed: s.samples_pushed.load(Relaxed),
            push_failures: s.push_failures.load(Relaxed),
            samples_buffered: s.samples_buffered.load(Relaxed),
            samples_dropped: s.samples_dropped.load(Relaxed),
            requests: devs.iter().map(|d| d.polls_ok + d.polls_failed).sum(),
            state: s.state().into(),
            buffer_max_samples: s.buffer_max_samples.load(Relaxed),
        };
        serde_json::to_string(&st).map_err(|e| Error::Failed(e.to_string()))
    }

    /// The running configuration as JSON (`CollectorConfig`, points inline).
    async fn get_config(&self) -> Result<String> {
        self.api.get_config()
    }

    /// Every finding of a configuration document: `{"ok", "errors": [Finding]}`.
    async fn validate_config(&self, config: &str) -> Result<String> {
        self.api.validate(config).await
    }

    /// Validates, writes atomically and applies a configuration without a restart.
    async fn apply_config(
        &self,
        config: &str,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
    ) -> Result<String> {
        log::info!("a new configuration from {}", Caller::of(conn, &hdr).await);
        self.api.apply(config).await
    }

    /// The device-model library: `{"dir", "models": [DeviceModel], "errors"}`.
    async fn list_device_models(&self) -> Result<String> {
        self.api.device_models()
    }

    /// The installed protocol plugins and their settings' schemas.
    async fn list_plugins(&self) -> Result<String> {
        self.api.plugins()
    }

    /// The communication test (`enos_model::comm_test`).
    async fn read_raw(&self, device: &str, request: &str) -> Result<String> {
        self.api.read_raw(device, request).await
    }

    /// The device's recent values (a watch of 60 s starts or is extended).
    async fn live_values(&self, device: &str, since_ms: u64) -> Result<String> {
        self.api.live_values(device, since_ms)
    }

    /// Installs a resource package (its bytes; `packages.rs`): JSON `{"ok", "name", "version",
    /// "outcome", "reason"}`. Answers once the package is installed, refused or rolled back.
    async fn install_package(
        &self,
        package: Vec<u8>,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
    ) -> Result<String> {
        let who = Caller::of(conn, &hdr).await.to_string();
        let out = self.api.packages.install(&self.api, &package, &who).await;
        serde_json::to_string(&out).map_err(|e| Error::Failed(e.to_string()))
    }

    /// The installed package and the history: JSON `{"installed", "history"}`.
    async fn packages(&self) -> Result<String> {
        serde_json::to_string(&self.api.packages.list()).map_err(|e| Error::Failed(e.to_string()))
    }

    /// The level of the collector's own log lines until it stops; answers the one it had.
    async fn set_log_level(
        &self,
        level: &str,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
    ) -> Result<String> {
        enos_runtime::set_log_level_by(level, Caller::of(conn, &hdr).await).map_err(Error::InvalidArgs)
    }

    /// An OPC UA device's trust list: JSON `OpcuaCertificates`.
    async fn list_opcua_certificates(&self, device: &str) -> Result<String> {
        crate::opcua_trust::list(&self.api.engine, device)
    }

    /// Trusts a rejected server certificate of an OPC UA device (audited with the caller).
    async fn trust_opcua_certificate(
        &self,
        device: &str,
        sha256: &str,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
    ) -> Result<String> {
        let who = Caller::of(conn, &hdr).await.to_string();
        crate::opcua_trust::trust(&self.api.engine, device, sha256, &who)
    }

    /// Removes a server certificate from an OPC UA device's trust list (audited with the caller).
    async fn remove_opcua_certificate(
        &self,
        device: &str,
        sha256: &str,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
    ) -> Result<String> {
        let who = Caller::of(conn, &hdr).await.to_string();
        crate::opcua_trust::remove(&self.api.engine, device, sha256, &who)
    }

    #[zbus(signal)]
    async fn device_state_changed(emitter: &SignalEmitter<'_>, device: &str, state: &str, reason: &str) -> zbus::Result<()>;
}

pub async fn serve(c: Collector) -> zbus::Result<zbus::Connection> {
    enos_bus::builder().name(enos_bus::COLLECTOR_NAME).serve_at(enos_bus::COLLECTOR_PATH, c).build().await
}

pub async fn forward_events(conn: zbus::Connection, mut rx: mpsc::UnboundedReceiver<DeviceEvent>) {
    let Ok(emitter) = SignalEmitter::new(&conn, enos_bus::COLLECTOR_PATH) else { return };
    while let Some(e) = rx.recv().await {
        if let Err(err) = Collector::device_state_changed(&emitter, &e.device, &e.state, &e.reason).await {
            log::warn!("could not signal the state of {}: {err}", e.device);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn serves_the_contracts_interface() {
        use zbus::object_server::Interface;
        assert_eq!(super::Collector::name().as_str(), enos_bus::COLLECTOR_IFACE);
    }
}
