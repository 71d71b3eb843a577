//! Every D-Bus call enosctl makes, in one place, each failure said once and in words: which
//! service, and what went wrong (never the D-Bus error name, never twice).

use enos_bus::{
    CollectorProxy, CollectorStats, DeviceStatus, OtaJob, OtaProxy, OtaStatus, PointReading, UplinkProxy, UplinkStatus, WriteOutcome,
};
use serde::de::DeserializeOwned;
use std::future::Future;
use std::time::Duration;

/// An ordinary call; a read or write waits for the field device as well.
const TIMEOUT: Duration = Duration::from_secs(10);
const DEVICE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("cannot reach the D-Bus bus ({0}); is dbus running? (tests and local runs: ENOS_BUS_ADDRESS)")]
    NoBus(String),
    #[error("the {0} service is not running")]
    NotRunning(&'static str),
    #[error("the {0} service did not answer within {1} s")]
    Timeout(&'static str, u64),
    #[error("the bus policy does not let enosctl call the {0} service (run it as root or as a member of enos-admin)")]
    Denied(&'static str),
    /// The service refused the request: its own words.
    #[error("{0}")]
    Refused(String),
    #[error("the {0} service answered something unexpected: {1}")]
    Garbled(&'static str, String),
    #[error("the {0} service failed: {1}")]
    Failed(&'static str, String),
}

pub struct Bus {
    conn: zbus::Connection,
}

impl Bus {
    pub async fn connect() -> Result<Bus, CallError> {
        let conn = enos_bus::connect().await.map_err(|e| CallError::NoBus(message(&e).1))?;
        Ok(Bus { conn })
    }

    async fn collector(&self) -> Result<CollectorProxy<'static>, CallError> {
        CollectorProxy::new(&self.conn).await.map_err(|e| words("enos-collector", e))
    }
    async fn uplink(&self) -> Result<UplinkProxy<'static>, CallError> {
        UplinkProxy::new(&self.conn).await.map_err(|e| words("enos-uplink", e))
    }
    async fn ota(&self) -> Result<OtaProxy<'static>, CallError> {
        OtaProxy::new(&self.conn).await.map_err(|e| words("enos-ota", e))
    }

    pub async fn device_model(&self, device: &str, fetch: bool) -> Result<serde_json::Value, CallError> {
        let p = enos_bus::UplinkInspectProxy::new(&self.conn).await.map_err(|e| words("enos-uplink", e))?;
        decode("enos-uplink", call("enos-uplink", DEVICE_TIMEOUT, p.device_model(device, fetch)).await?)
    }

    pub async fn collector_stats(&self) -> Result<CollectorStats, CallError> {
        decode("enos-collector", call("enos-collector", TIMEOUT, self.collector().await?.stats()).await?)
    }
    pub async fn devices(&self) -> Result<Vec<DeviceStatus>, CallError> {
        decode("enos-collector", call("enos-collector", TIMEOUT, self.collector().await?.list_devices()).await?)
    }
    pub async fn read_points(&self, device: &str, points: &[&str]) -> Result<Vec<PointReading>, CallError> {
        decode("enos-collector", call("enos-collector", DEVICE_TIMEOUT, self.collector().await?.read_points(device, points)).await?)
    }
    /// `value` is JSON text.
    pub async fn write_point(&self, device: &str, point: &str, value: &str) -> Result<WriteOutcome, CallError> {
        decode("enos-collector", call("enos-collector", DEVICE_TIMEOUT, self.collector().await?.write_point(device, point, value)).await?)
    }
    /// The device's communication test (`request`: JSON with its `kind`).
    pub async fn comm_test(&self, device: &str, request: &str) -> Result<enos_model::comm_test::CommAnswer, CallError> {
        decode("enos-collector", call("enos-collector", DEVICE_TIMEOUT, self.collector().await?.read_raw(device, request)).await?)
    }
    pub async fn uplink_status(&self) -> Result<UplinkStatus, CallError> {
        decode("enos-uplink", call("enos-uplink", TIMEOUT, self.uplink().await?.status()).await?)
    }
    pub async fn ota_status(&self) -> Result<OtaStatus, CallError> {
        decode("enos-ota", call("enos-ota", TIMEOUT, self.ota().await?.status()).await?)
    }
    pub async fn ota_history(&self) -> Result<Vec<OtaJob>, CallError> {
        decode("enos-ota", call("enos-ota", TIMEOUT, self.ota().await?.history()).await?)
    }
    /// The new job's id.
    pub async fn install_file(&self, path: &str) -> Result<String, CallError> {
        call("enos-ota", TIMEOUT, self.ota().await?.install_file(path)).await
    }
    pub async fn rollback(&self) -> Result<String, CallError> {
        call("enos-ota", TIMEOUT, self.ota().await?.rollback()).await
    }
    /// Waits for the outcome: the collector's health deadline (60 s by default) and more.
    pub async fn install_package(&self, package: &[u8]) -> Result<serde_json::Value, CallError> {
        let col = self.collector().await?;
        decode("enos-collector", call("enos-collector", Duration::from_secs(300), col.install_package(package)).await?)
    }
    pub async fn opcua_certificates(&self, device: &str) -> Result<enos_bus::OpcuaCertificates, CallError> {
        decode("enos-collector", call("enos-collector", TIMEOUT, self.collector().await?.list_opcua_certificates(device)).await?)
    }
    pub async fn trust_opcua_certificate(&self, device: &str, sha256: &str) -> Result<enos_bus::OpcuaCertificate, CallError> {
        decode("enos-collector", call("enos-collector", TIMEOUT, self.collector().await?.trust_opcua_certificate(device, sha256)).await?)
    }
    pub async fn remove_opcua_certificate(&self, device: &str, sha256: &str) -> Result<enos_bus::OpcuaCertificate, CallError> {
        decode("enos-collector", call("enos-collector", TIMEOUT, self.collector().await?.remove_opcua_certificate(device, sha256)).await?)
    }
    pub async fn packages(&self) -> Result<serde_json::Value, CallError> {
        decode("enos-collector", call("enos-collector", TIMEOUT, self.collector().await?.packages()).await?)
    }
}

async fn call<F>(service: &'static str, timeout: Duration, fut: F) -> Result<String, CallError>
where
    F: Future<Output = enos_bus::Result<String>>,
{
    match tokio::time::timeout(timeout, fut).await {
        Err(_) => Err(CallError::Timeout(service, timeout.as_secs())),
        Ok(r) => r.map_err(|e| refusal(service, e)),
    }
}

/// A service's own refusal keeps its words; a failure of the bus is said as what it means.
fn refusal(service: &'static str, e: enos_bus::Error) -> CallError {
    use enos_bus::Error as E;
    match e {
        E::Bus(z) => words(service, z),
        E::Failed(m) => CallError::Failed(service, m),
        other => CallError::Refused(other.to_string()),
    }
}

fn decode<T: DeserializeOwned>(service: &'static str, s: String) -> Result<T, CallError> {
    serde_json::from_str(&s).map_err(|e| CallError::Garbled(service, e.to_string()))
}

/// The error's D-Bus name (empty when it has none) and its message without the name.
fn message(e: &zbus::Error) -> (String, String) {
    match e {
        zbus::Error::MethodError(name, detail, _) => (name.to_string(), detail.clone().unwrap_or_default()),
        zbus::Error::FDO(f) => {
            let text = f.to_string();
            // fdo errors print as "org.freedesktop.DBus.Error.X: message"
            match text.split_once(": ") {
                Some((name, m)) if name.starts_with("org.freedesktop.DBus.Error.") => (name.to_string(), m.to_string()),
                _ => (String::new(), text),
            }
        }
        other => (String::new(), other.to_string()),
    }
}

fn words(service: &'static str, e: zbus::Error) -> CallError {
    let (name, detail) = message(&e);
    match name.rsplit('.').next().unwrap_or("") {
        "ServiceUnknown" | "NameHasNoOwner" if name.starts_with("org.freedesktop.DBus.") => CallError::NotRunning(service),
        "AccessDenied" if name.starts_with("org.freedesktop.DBus.") => CallError::Denied(service),
        "Failed" if name.starts_with("org.freedesktop.DBus.") => CallError::Failed(service, detail),
        _ if !name.is_empty() => CallError::Refused(detail),
        _ => CallError::Failed(service, detail),
    }
}
