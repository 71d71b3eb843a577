//! The D-Bus contract of EnOS Edge: one well-known name, one object and one versioned interface
//! per service, the proxies every caller uses, and the status documents they exchange.
//!
//! Hot-path telemetry is a byte array in the format of `enos_batch::batch`; control and status
//! calls carry small JSON documents whose Rust types live here, so the services, `enosctl` and
//! the web center share one definition. A failed call is an [`Error`] (`org.enos.Edge.Error.*` on
//! the bus, its message in words); the names and signatures are data in [`contract`]. Interfaces only grow: a breaking change becomes
//! `...2`, served next to `...1` until every caller has moved.

mod caller;
pub mod contract;
mod error;

pub use caller::Caller;
pub use contract::{
    COLLECTOR_IFACE, COLLECTOR_NAME, COLLECTOR_PATH, ERROR_PREFIX, OTA_IFACE, OTA_NAME, OTA_PATH, UPLINK_IFACE, UPLINK_INSPECT_IFACE,
    UPLINK_NAME, UPLINK_PATH, UPLINK_SETTINGS_IFACE, WEB_IFACE, WEB_NAME, WEB_PATH,
};
pub use enos_model::device::*;
pub use error::{Error, Result};
use zbus::proxy;

/// Environment variable that points every service and tool at another bus (tests, development).
pub const BUS_ADDRESS_ENV: &str = "ENOS_BUS_ADDRESS";

/// Connects to the bus the services share: `ENOS_BUS_ADDRESS` if set, else the system bus.
pub fn builder() -> zbus::connection::Builder<'static> {
    match std::env::var(BUS_ADDRESS_ENV) {
        Ok(addr) if !addr.is_empty() => zbus::connection::Builder::address(addr.as_str()),
        _ => zbus::connection::Builder::system(),
    }
}

pub async fn connect() -> zbus::Result<zbus::Connection> {
    builder().build().await
}

/// `org.enos.Edge.Collector1`: field devices, their state, reads and writes.
#[proxy(interface = "org.enos.Edge.Collector1", default_service = "org.enos.Edge.Collector", default_path = "/org/enos/Edge/Collector")]
pub trait Collector {
    /// Every configured device and its state, as JSON `[DeviceStatus]`.
    fn list_devices(&self) -> Result<String>;
    /// Reads points from the device now (not from the last poll); JSON `[PointReading]`.
    fn read_points(&self, device: &str, points: &[&str]) -> Result<String>;
    /// Writes one point; `value` is JSON (number, bool or string). The device's answer comes back
    /// as JSON `WriteOutcome`; a refused write is an outcome, not a D-Bus error.
    fn write_point(&self, device: &str, point: &str, value: &str) -> Result<String>;
    /// Counters of the collector, JSON `CollectorStats`.
    fn stats(&self) -> Result<String>;
    /// The running configuration, JSON `enos_collector_config::CollectorConfig` (points inline).
    fn get_config(&self) -> Result<String>;
    /// Every finding of a configuration document: JSON `{"ok", "errors": [config_edit::Finding]}`.
    fn validate_config(&self, config: &str) -> Result<String>;
    /// Validates the whole document, writes it atomically to the config file and applies it
    /// without a restart (only the changed devices' drivers restart). JSON
    /// `{"ok": true, "file", "started", "restarted", "stopped", "unchanged", "note"}` or
    /// `{"ok": false, "errors": [Finding]}` (then nothing changed).
    fn apply_config(&self, config: &str) -> Result<String>;
    /// The device-model library: JSON `{"dir", "models": [config_edit::DeviceModel], "errors"}`.
    fn list_device_models(&self) -> Result<String>;
    /// The installed protocol plugins: JSON `{"dir", "plugins": [{"name", "version", "protocols",
    /// "point_address", "config_schema"}], "errors"}` (the device editor's settings form).
    fn list_plugins(&self) -> Result<String>;
    /// The communication test: `request` is JSON `comm_test::CommTest`, tagged by `kind` (without
    /// it: a Modbus register read, `raw_read::RawRead`), the answer JSON `comm_test::CommAnswer` of
    /// the same kind (a failed test is an answer with `failure` and `message`).
    fn read_raw(&self, device: &str, request: &str) -> Result<String>;
    /// The device's recent polled values with a short history newer than `since_ms` (starts or
    /// extends a 60 s watch; history is kept only while watched). JSON
    /// `{"device", "time_ms", "points": [{"point", "value", "quality", "ts_ms", "history": [[ts, v]]}]}`.
    fn live_values(&self, device: &str, since_ms: u64) -> Result<String>;
    /// Installs a resource package (the package file's bytes, `enos-package`); answers when it is
    /// installed, refused or rolled back: JSON `{"ok", "name", "version", "outcome", "reason"}`.
    fn install_package(&self, package: &[u8]) -> Result<String>;
    /// The installed resource package and the history: JSON `{"installed", "history"}`.
    fn packages(&self) -> Result<String>;
    /// The level of the collector's own log lines until it stops (`error`, `warn`, `info`,
    /// `debug`, `trace`); answers the level it had.
    fn set_log_level(&self, level: &str) -> Result<String>;
    /// An OPC UA device's trust list: the server certificates of its PKI's `trusted/` and
    /// `rejected/`, JSON `OpcuaCertificates`.
    fn list_opcua_certificates(&self, device: &str) -> Result<String>;
    /// Moves a rejected server certificate (named by its SHA-256 thumbprint) to `trusted/`: the
    /// device's next connect attempt accepts its server. JSON `OpcuaCertificate` as it is now.
    fn trust_opcua_certificate(&self, device: &str, sha256: &str) -> Result<String>;
    /// Deletes a server certificate from either list (a trusted server is refused again at its
    /// next connect). JSON `OpcuaCertificate` as it was.
    fn remove_opcua_certificate(&self, device: &str, sha256: &str) -> Result<String>;
    /// A device went online or offline (`state`), with the reason.
    #[zbus(signal)]
    fn device_state_changed(&self, device: &str, state: &str, reason: &str) -> zbus::Result<()>;
}

/// `org.enos.Edge.Uplink1`: the cache and the cloud session.
#[proxy(interface = "org.enos.Edge.Uplink1", default_service = "org.enos.Edge.Uplink", default_path = "/org/enos/Edge/Uplink")]
pub trait Uplink {
    /// Appends an encoded telemetry batch to the durable cache; returns once it is stored
    /// (synced to disk per the cache's sync policy) with the cache sequence number.
    fn push_telemetry(&self, batch: &[u8]) -> Result<u64>;
    /// JSON `UplinkStatus`: cloud session, cache backlog, sender counters.
    fn status(&self) -> Result<String>;
    /// The cloud session changed state (`connected`, `connecting`, `disconnected`).
    #[zbus(signal)]
    fn cloud_state_changed(&self, state: &str, reason: &str) -> zbus::Result<()>;
}

/// `org.enos.Edge.UplinkInspect1`, on the uplink's object next to `Uplink1`: views for
/// engineering tools (the web center's live page).
#[proxy(interface = "org.enos.Edge.UplinkInspect1", default_service = "org.enos.Edge.Uplink", default_path = "/org/enos/Edge/Uplink")]
pub trait UplinkInspect {
    /// The device's values the cloud last acknowledged: JSON `{"device", "routed", "product_key",
    /// "device_key", "points": [{"point", "value", "ts_ms", "acked_ms"}]}`. A call starts (or
    /// extends) a 60 s watch; only watched devices are recorded, so the first answer is empty.
    fn last_sent(&self, device: &str) -> Result<String>;
    /// JSON `{"device", "product_key", "version", "fetched_ms", "model", "findings": [{"point",
    /// "problem"}], "note"}`: the device's model (TSL), fetched from the cloud now when `fetch`,
    /// else as kept, and where its configured points disagree with it.
    fn device_model(&self, device: &str, fetch: bool) -> Result<String>;
}

/// `org.enos.Edge.UplinkSettings1`, on the uplink's object: the cloud settings.
#[proxy(interface = "org.enos.Edge.UplinkSettings1", default_service = "org.enos.Edge.Uplink", default_path = "/org/enos/Edge/Uplink")]
pub trait UplinkSettings {
    /// JSON `enos_model::cloud::CloudView` plus `file` and `state` (never the secret).
    fn get_cloud_settings(&self) -> Result<String>;
    /// `change`: JSON `enos_model::cloud::CloudChange`. `{"ok": true, "file"}` once validated and written
    /// (the session then starts again; the cache is untouched); a change that does not validate
    /// is `Error::InvalidArgs` naming the field, and nothing changed.
    fn set_cloud_settings(&self, change: &str) -> Result<String>;
    /// A CONNECT with these settings, apart from the running session: `{"ok", "message", "took_ms"}`.
    fn test_connection(&self, change: &str) -> Result<String>;
}

/// `org.enos.Edge.Ota1`: whole-system A/B updates.
#[proxy(interface = "org.enos.Edge.Ota1", default_service = "org.enos.Edge.Ota", default_path = "/org/enos/Edge/Ota")]
pub trait Ota {
    /// Starts a job from the params of a cloud `ota.device.upgrade` (JSON: version, fileUrl,
    /// fileSize, sign, signMethod). Returns the job id; refuses (`InvalidArgs`, `Busy`,
    /// `NotSupported`) with the reason.
    fn start_job(&self, params: &str) -> Result<String>;
    /// Installs a bundle already on this box (web upload, `enosctl ota install FILE`).
    fn install_file(&self, path: &str) -> Result<String>;
    /// JSON `OtaStatus`.
    fn status(&self) -> Result<String>;
    /// JSON `[OtaJob]`, newest last.
    fn history(&self) -> Result<String>;
    /// Boots the other slot (operator's decision); returns what will happen.
    fn rollback(&self) -> Result<String>;
    /// The level of the agent's own log lines until it stops (`error`, `warn`, `info`, `debug`,
    /// `trace`); answers the level it had.
    fn set_log_level(&self, level: &str) -> Result<String>;
    /// A step of the running job: percent 0..100, or a negative EnOS failure code
    /// (-1 undefined, -2 download, -3 verification, -4 install, -5 declined).
    #[zbus(signal)]
    fn progress(&self, job: &str, step: i32, desc: &str) -> zbus::Result<()>;
    /// The version the box runs changed (after a commit or a rollback).
    #[zbus(signal)]
    fn version_changed(&self, version: &str, reason: &str) -> zbus::Result<()>;
}

/// `org.enos.Edge.Web1`: the web center's one method on the bus.
#[proxy(interface = "org.enos.Edge.Web1", default_service = "org.enos.Edge.Web", default_path = "/org/enos/Edge/Web")]
pub trait Web {
    /// The level of the web center's own log lines until it stops (`error`, `warn`, `info`,
    /// `debug`, `trace`); answers the level it had.
    fn set_log_level(&self, level: &str) -> Result<String>;
}
