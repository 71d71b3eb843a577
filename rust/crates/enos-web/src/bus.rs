//! Every D-Bus call the web center makes, in one place: the services' interfaces
//! (`enos_bus` proxies) and systemd/logind, each with a deadline, its failure in plain words
//! and its answer decoded. Handlers never touch a proxy.

use crate::http::ApiError;
use enos_bus::{
    CollectorProxy, CollectorStats, DeviceStatus, OtaProxy, PointReading, UplinkInspectProxy, UplinkProxy, UplinkSettingsProxy,
    UplinkStatus, WriteOutcome,
};
use enos_collector_config::CollectorConfig;
use hyper::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::future::Future;
use std::time::Duration;

/// A cloud connection test makes a whole CONNECT: longer than an ordinary call.
const CLOUD_TEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A package install waits for the new configuration's devices (the collector's health deadline,
/// `--package-health-timeout-s`, 60 s by default) and may roll back: longer still.
const PACKAGE_TIMEOUT: Duration = Duration::from_secs(150);

pub struct Services {
    collector: CollectorProxy<'static>,
    uplink: UplinkProxy<'static>,
    inspect: UplinkInspectProxy<'static>,
    ota: OtaProxy<'static>,
    cloud: UplinkSettingsProxy<'static>,
    /// For systemd and logind calls, and name owners.
    conn: zbus::Connection,
    /// An ordinary call.
    timeout: Duration,
    /// A call that waits for a field device (read, write, raw registers).
    device_timeout: Duration,
}

impl Services {
    pub async fn new(conn: &zbus::Connection, timeout: Duration, device_timeout: Duration) -> zbus::Result<Services> {
        use zbus::proxy::CacheProperties::No;
        Ok(Services {
            collector: CollectorProxy::builder(conn).cache_properties(No).build().await?,
            uplink: UplinkProxy::builder(conn).cache_properties(No).build().await?,
            inspect: UplinkInspectProxy::builder(conn).cache_properties(No).build().await?,
            ota: OtaProxy::builder(conn).cache_properties(No).build().await?,
            cloud: UplinkSettingsProxy::builder(conn).cache_properties(No).build().await?,
            conn: conn.clone(),
            timeout,
            device_timeout,
        })
    }

    // ---- the collector ----

    pub async fn collector_stats(&self) -> Result<CollectorStats, ApiError> {
        decode("collector", call("collector", self.timeout, self.collector.stats()).await?)
    }

    pub async fn devices(&self) -> Result<Vec<DeviceStatus>, ApiError> {
        decode("collector", call("collector", self.timeout, self.collector.list_devices()).await?)
    }

    pub async fn read_points(&self, device: &str, points: &[&str]) -> Result<Vec<PointReading>, ApiError> {
        decode("collector", call("collector", self.device_timeout, self.collector.read_points(device, points)).await?)
    }

    /// `value` is JSON text.
    pub async fn write_point(&self, device: &str, point: &str, value: &str) -> Result<WriteOutcome, ApiError> {
        decode("collector", call("collector", self.device_timeout, self.collector.write_point(device, point, value)).await?)
    }

    pub async fn collector_config(&self) -> Result<CollectorConfig, ApiError> {
        decode("collector", call("collector", self.timeout, self.collector.get_config()).await?)
    }

    /// The collector's verdict: `{"ok": true, ...}` or `{"ok": false, "errors": [...]}`.
    pub async fn apply_config(&self, cfg: &CollectorConfig) -> Result<Value, ApiError> {
        let doc = serde_json::to_string(cfg).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        decode("collector", call("collector", self.timeout, self.collector.apply_config(&doc)).await?)
    }

    pub async fn plugins(&self) -> Result<Value, ApiError> {
        decode("collector", call("collector", self.timeout, self.collector.list_plugins()).await?)
    }

    pub async fn device_models(&self) -> Result<Value, ApiError> {
        decode("collector", call("collector", self.timeout, self.collector.list_device_models()).await?)
    }

    /// `request` is an `enos_model::comm_test::CommTest` as JSON.
    pub async fn read_raw(&self, device: &str, request: &str) -> Result<Value, ApiError> {
        decode("collector", call("collector", self.device_timeout, self.collector.read_raw(device, request)).await?)
    }

    pub async fn live_values(&self, device: &str, since_ms: u64) -> Result<Value, ApiError> {
        decode("collector", call("collector", self.timeout, self.collector.live_values(device, since_ms)).await?)
    }

    /// Installs a resource package: `{"ok", "name", "version", "outcome", "reason"}`, once the
    /// collector has installed, refused or rolled it back (its health deadline included).
    pub async fn install_package(&self, package: &[u8]) -> Result<Value, ApiError> {
        decode("collector", call("collector", PACKAGE_TIMEOUT, self.collector.install_package(package)).await?)
    }

    /// The installed resource package and the history: `{"installed", "history"}`.
    pub async fn packages(&self) -> Result<Value, ApiError> {
        decode("collector", call("collector", self.timeout, self.collector.packages()).await?)
    }

    /// An OPC UA device's server certificates (`OpcuaCertificates`).
    pub async fn opcua_certificates(&self, device: &str) -> Result<Value, ApiError> {
        decode("collector", call("collector", self.timeout, self.collector.list_opcua_certificates(device)).await?)
    }

    /// Trusts a rejected server certificate; the certificate as it is now.
    pub async fn trust_opcua_certificate(&self, device: &str, sha256: &str) -> Result<Value, ApiError> {
        decode("collector", call("collector", self.timeout, self.collector.trust_opcua_certificate(device, sha256)).await?)
    }

    /// Removes a server certificate from either list; the certificate as it was.
    pub async fn remove_opcua_certificate(&self, device: &str, sha256: &str) -> Result<Value, ApiError> {
        decode("collector", call("collector", self.timeout, self.collector.remove_opcua_certificate(device, sha256)).await?)
    }

    // ---- the uplink ----

    pub async fn uplink_status(&self) -> Result<UplinkStatus, ApiError> {
        decode("uplink", call("uplink", self.timeout, self.uplink.status()).await?)
    }

    pub async fn last_sent(&self, device: &str) -> Result<Value, ApiError> {
        decode("uplink", call("uplink", self.timeout, self.inspect.last_sent(device)).await?)
    }

    pub async fn cloud_settings(&self) -> Result<Value, ApiError> {
        decode("uplink", call("uplink", self.timeout, self.cloud.get_cloud_settings()).await?)
    }

    /// `change` is an `enos_model::cloud::CloudChange` as JSON.
    pub async fn set_cloud_settings(&self, change: &str) -> Result<Value, ApiError> {
        decode("uplink", call("uplink", self.timeout, self.cloud.set_cloud_settings(change)).await?)
    }

    pub async fn test_cloud(&self, change: &str) -> Result<Value, ApiError> {
        decode("uplink", call("uplink", CLOUD_TEST_TIMEOUT, self.cloud.test_connection(change)).await?)
    }

    // ---- the update agent: its absence said as what it means ----

    pub async fn ota_status(&self) -> Result<Value, ApiError> {
        decode("ota", call("ota", self.timeout, self.ota.status()).await.map_err(ota_unavailable)?)
    }

    pub async fn ota_history(&self) -> Result<Value, ApiError> {
        decode("ota", call("ota", self.timeout, self.ota.history()).await.map_err(ota_unavailable)?)
    }

    /// Starts a job for a bundle on this box; answers the job id.
    pub async fn install_file(&self, path: &str) -> Result<String, ApiError> {
        call("ota", self.timeout, self.ota.install_file(path)).await.map_err(ota_unavailable)
    }

    // ---- the bus itself, systemd and logind ----

    pub async fn name_has_owner(&self, name: &str) -> bool {
        let Ok(p) = zbus::fdo::DBusProxy::new(&self.conn).await else { return false };
        let Ok(n) = zbus::names::BusName::try_from(name) else { return false };
        tokio::time::timeout(self.timeout, p.name_has_owner(n)).await.ok().and_then(Result::ok).unwrap_or(false)
    }

    /// `RestartUnit(unit, "replace")` of systemd.
    pub async fn restart_unit(&self, unit: &str) -> Result<(), ApiError> {
        let m = ("org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", "RestartUnit");
        self.system_call(m, &(unit, "replace")).await
    }

    /// `Reboot(false)` of logind.
    pub async fn reboot(&self) -> Result<(), ApiError> {
        let m = ("org.freedesktop.login1", "/org/freedesktop/login1", "org.freedesktop.login1.Manager", "Reboot");
        self.system_call(m, &(false,)).await
    }

    /// A call to systemd or logind; their absence said plainly.
    async fn system_call(
        &self,
        (dest, path, iface, method): (&str, &str, &str, &str),
        body: &(impl serde::Serialize + zbus::zvariant::DynamicType),
    ) -> Result<(), ApiError> {
        let absent = || ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("not available here: {dest} (systemd) is not on this bus"));
        // not by activation: on a bus without systemd (tests, a container) say so at once
        if !self.name_has_owner(dest).await {
            return Err(absent());
        }
        let r = tokio::time::timeout(self.timeout, self.conn.call_method(Some(dest), path, Some(iface), method, body)).await;
        match r {
            Err(_) => Err(ApiError::new(StatusCode::GATEWAY_TIMEOUT, format!("{dest} did not answer"))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                let (name, detail) = error_parts(&e);
                match name.as_str() {
                    "org.freedesktop.DBus.Error.ServiceUnknown" | "org.freedesktop.DBus.Error.NameHasNoOwner" => Err(absent()),
                    "org.freedesktop.DBus.Error.AccessDenied" | "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired" => {
                        Err(ApiError::new(
                            StatusCode::BAD_GATEWAY,
                            format!("{dest} refused: the polkit rule for enos-web is missing ({detail})"),
                        ))
                    }
                    _ => Err(ApiError::new(StatusCode::BAD_GATEWAY, format!("{dest}: {detail}"))),
                }
            }
        }
    }

    /// Everything the dashboard shows, asked of both services at once.
    pub async fn status(&self) -> Status {
        let (uplink, collector, devices) = tokio::join!(self.uplink_status(), self.collector_stats(), self.devices());
        Status {
            uplink: uplink.map_err(|e| e.message),
            collector: collector.map_err(|e| e.message),
            devices: devices.map_err(|e| e.message),
        }
    }
}

/// Everything the dashboard shows; a service that does not answer leaves its part `null` and
/// says why in `errors`.
pub struct Status {
    pub uplink: Result<UplinkStatus, String>,
    pub collector: Result<CollectorStats, String>,
    pub devices: Result<Vec<DeviceStatus>, String>,
}

impl serde::Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut errors = serde_json::Map::new();
        for (k, e) in
            [("uplink", self.uplink.as_ref().err()), ("collector", self.collector.as_ref().err()), ("devices", self.devices.as_ref().err())]
        {
            if let Some(e) = e {
                errors.insert(k.into(), e.clone().into());
            }
        }
        serde_json::json!({
            "time_ms": enos_batch::now_ms(),
            "uplink": self.uplink.as_ref().ok(),
            "collector": self.collector.as_ref().ok(),
            "devices": self.devices.as_ref().ok().map(|d| crate::devices::with_cloud(d, self.uplink.as_ref().ok())),
            "errors": errors,
        })
        .serialize(s)
    }
}

/// A D-Bus call with a deadline, its failure in plain words.
async fn call<F>(what: &'static str, timeout: Duration, fut: F) -> Result<String, ApiError>
where
    F: Future<Output = enos_bus::Result<String>>,
{
    match tokio::time::timeout(timeout, fut).await {
        Err(_) => {
            Err(ApiError::new(StatusCode::GATEWAY_TIMEOUT, format!("the {what} service did not answer within {} s", timeout.as_secs())))
        }
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(bus_error(what, e)),
    }
}

/// The error's D-Bus name (empty when it has none) and its message alone.
fn error_parts(e: &zbus::Error) -> (String, String) {
    match e {
        zbus::Error::MethodError(name, detail, _) => (name.as_str().to_string(), detail.clone().unwrap_or_default()),
        zbus::Error::FDO(f) => match f.as_ref() {
            zbus::fdo::Error::ServiceUnknown(m) => ("org.freedesktop.DBus.Error.ServiceUnknown".into(), m.clone()),
            zbus::fdo::Error::NameHasNoOwner(m) => ("org.freedesktop.DBus.Error.NameHasNoOwner".into(), m.clone()),
            zbus::fdo::Error::InvalidArgs(m) => ("org.freedesktop.DBus.Error.InvalidArgs".into(), m.clone()),
            zbus::fdo::Error::AccessDenied(m) => ("org.freedesktop.DBus.Error.AccessDenied".into(), m.clone()),
            zbus::fdo::Error::InteractiveAuthorizationRequired(m) => {
                ("org.freedesktop.DBus.Error.InteractiveAuthorizationRequired".into(), m.clone())
            }
            other => (String::new(), other.to_string()),
        },
        other => (String::new(), other.to_string()),
    }
}

/// The service's refusal keeps its words; the HTTP status follows its kind.
fn bus_error(what: &str, e: enos_bus::Error) -> ApiError {
    use enos_bus::Error as E;
    match e {
        E::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m),
        E::InvalidArgs(m) | E::NotSupported(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m),
        E::Busy(m) => ApiError::new(StatusCode::CONFLICT, m),
        E::Failed(m) => ApiError::new(StatusCode::BAD_GATEWAY, format!("the {what} service failed: {m}")),
        e if e.is_absent() => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("the {what} service is not running")),
        e if e.is_denied() => ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("the bus policy does not let the web center make this call to the {what} service"),
        ),
        e => ApiError::new(StatusCode::BAD_GATEWAY, format!("the {what} service failed: {e}")),
    }
}

fn decode<T: DeserializeOwned>(what: &str, s: String) -> Result<T, ApiError> {
    serde_json::from_str(&s)
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, format!("the {what} service answered something unexpected: {e}")))
}

fn ota_unavailable(e: ApiError) -> ApiError {
    if e.status == StatusCode::SERVICE_UNAVAILABLE {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the update service (enos-ota) is not running: updates cannot be installed now")
    } else {
        e
    }
}
