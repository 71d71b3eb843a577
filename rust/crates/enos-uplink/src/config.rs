//! The uplink's configuration: the cloud session, the cache bounds and the sending policy.

use enos_config::{parse_toml, read_file, ConfigError, Finding, Findings, Scope};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UplinkConfig {
    pub cloud: CloudConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub sender: SenderConfig,
    #[serde(default)]
    pub health: HealthConfig,
    #[serde(default)]
    pub registration: RegistrationConfig,
    /// Resource packages the cloud sends (`applyResourcePackage`).
    #[serde(default)]
    pub packages: PackagesConfig,
    /// EnOS identities of the collector's devices, by collector device id.
    #[serde(default, rename = "sub_device")]
    pub sub_devices: Vec<SubDevice>,
    #[serde(default)]
    pub monitor: MonitorConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CloudConfig {
    /// `ssl://host:18883` (TLS) or `tcp://host:11883` (plain, only with `allow_plain = true`).
    pub uri: String,
    #[serde(default)]
    pub allow_plain: bool,
    pub product_key: String,
    pub device_key: String,
    /// The gateway's device secret, inline or from `device_secret_file` (preferred: 0600 file).
    #[serde(default)]
    pub device_secret: Option<String>,
    #[serde(default)]
    pub device_secret_file: Option<PathBuf>,
    /// CA bundle that signs the broker's certificate (system store when absent).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key for mutual TLS.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default = "d_true")]
    pub verify_hostname: bool,
    #[serde(default = "d_keepalive")]
    pub keepalive_s: u64,
    #[serde(default = "d_reconnect_min")]
    pub reconnect_min_ms: u64,
    #[serde(default = "d_reconnect_max")]
    pub reconnect_max_ms: u64,
    /// QoS 1 messages awaiting their reply at once (throughput on a WAN is window / RTT).
    #[serde(default = "d_in_flight")]
    pub max_in_flight: usize,
    /// Firmware version reported with `ota.device.inform` (default: the version enos-ota reports, else the version stamped at build time: `ENOS_VERSION`, else the crate version).
    #[serde(default)]
    pub firmware_version: Option<String>,
}
fn d_true() -> bool {
    true
}
fn d_keepalive() -> u64 {
    60
}
fn d_reconnect_min() -> u64 {
    1000
}
fn d_reconnect_max() -> u64 {
    60_000
}
fn d_in_flight() -> usize {
    64
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SyncPolicy {
    /// fsync the write-ahead log before acknowledging a batch: survives a power cut.
    #[default]
    Always,
    /// Leave flushing to the OS: survives a crash of the service, not a power cut.
    Never,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct CacheConfig {
    pub dir: PathBuf,
    /// Upper bound of cached telemetry, in bytes as stored.
    pub max_bytes: u64,
    /// Data older than this is dropped (counted) even if there is room.
    pub max_age_hours: u64,
    pub sync: SyncPolicy,
    /// Free space the cache leaves on its file system for everything else: below it the
    /// oldest data goes first; below half of it nothing is written (0: no such bound).
    pub keep_free_bytes: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            dir: "/data/enos/cache".into(),
            max_bytes: 2 << 30,
            max_age_hours: 24 * 30,
            sync: SyncPolicy::Always,
            keep_free_bytes: 64 << 20,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RejectPolicy {
    /// After `max_attempts`, delete the batch from the cache (counted and logged).
    Drop,
    /// After `max_attempts`, move the batch to the dead-letter store for inspection.
    #[default]
    DeadLetter,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SenderConfig {
    /// Data that waited in the cache longer than this goes out as `resume` (back-fill), not `post`.
    pub resume_after_s: u64,
    /// A publish without a `_reply` within this time is sent again.
    pub reply_timeout_s: u64,
    /// Upper bound of one MQTT payload (EnOS refuses more than 512 KB).
    pub max_message_bytes: usize,
    /// Attempts for a batch the cloud refuses as wrong (a busy or failing cloud, 429 or 5xx, is
    /// waited out without a limit).
    pub max_attempts: u32,
    pub on_reject: RejectPolicy,
    /// Share of the in-flight window reserved for live data while a backlog drains.
    pub live_share_percent: u8,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            resume_after_s: 60,
            reply_timeout_s: 30,
            max_message_bytes: 480 * 1024,
            max_attempts: 5,
            on_reject: RejectPolicy::DeadLetter,
            live_share_percent: 25,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct HealthConfig {
    /// Period of the gateway's own measure points (cpu, memory, disk, cache); 0 turns them off.
    pub interval_s: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig { interval_s: 60 }
    }
}

/// What the cloud learns about the gateway besides telemetry (attributes, events, logs, network).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct MonitorConfig {
    /// How often device states and the gateway's attributes are looked at (changes become events
    /// and attribute updates).
    pub check_s: u64,
    /// Period of `network.status.report`; 0 turns it off.
    pub network_report_s: u64,
    /// Where `uploadLogs` reads: absent → the journal (`journalctl`); a file → the services'
    /// stderr lines in it (`{time} {service} {LEVEL}: {text}`), for boxes without a journal and tests.
    pub log_file: Option<PathBuf>,
    /// Bounds of one `uploadLogs`: lines and bytes of text in all its messages.
    pub log_max_lines: usize,
    pub log_max_bytes: usize,
    /// The update agent's and the web center's configuration files `getConfig` shows; absent →
    /// the file each service reads by default (`enos_config::default_config_path`).
    pub ota_config: Option<PathBuf>,
    pub web_config: Option<PathBuf>,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            check_s: 5,
            network_report_s: 600,
            log_file: None,
            log_max_lines: 1000,
            log_max_bytes: 256 * 1024,
            ota_config: None,
            web_config: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct PackagesConfig {
    /// Where downloads are kept until applied (the uplink's own directory).
    pub dir: PathBuf,
    /// The largest package the gateway downloads.
    pub max_bytes: u64,
    /// Plain http:// package URLs (a test network only).
    pub allow_http: bool,
}

impl Default for PackagesConfig {
    fn default() -> Self {
        PackagesConfig { dir: "/data/enos/config/uplink/packages".into(), max_bytes: 16 << 20, allow_http: false }
    }
}

/// The registration of the collector's devices that name a product key (`product_key` in
/// `collector.toml`) and have no `[[sub_device]]` here.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RegistrationConfig {
    /// The site's UTC offset the cloud files registered devices under (`+08:00`).
    pub timezone: String,
    /// How often the collector's configuration is read for added and removed devices.
    pub poll_s: u64,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        RegistrationConfig { timezone: "+00:00".into(), poll_s: 10 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SubDevice {
    /// The collector's device id.
    pub device: String,
    pub product_key: String,
    pub device_key: String,
    #[serde(default)]
    pub device_secret: Option<String>,
    #[serde(default)]
    pub device_secret_file: Option<PathBuf>,
    /// Points of this device the cloud may write anywhere in their data type's range. A cloud
    /// write to any other numeric point without both `min` and `max` is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub type_range_points: Vec<String>,
}

fn secret(inline: &Option<String>, file: &Option<PathBuf>, key: &str) -> Result<String, Finding> {
    match (inline, file) {
        (Some(s), None) if !s.is_empty() => Ok(s.clone()),
        (None, Some(f)) => std::fs::read_to_string(f)
            .map(|s| s.trim().to_owned())
            .map_err(|e| Finding::new(format!("{key}_file"), format!("cannot read {}: {e}", f.display()))),
        (Some(_), Some(_)) => Err(Finding::new(key, format!("give either {key} or {key}_file, not both"))),
        _ => Err(Finding::new(key, format!("missing (set {key} or {key}_file)"))),
    }
}

impl CloudConfig {
    pub fn secret(&self) -> Result<String, Finding> {
        secret(&self.device_secret, &self.device_secret_file, "cloud.device_secret")
    }
    pub fn is_tls(&self) -> bool {
        self.uri.starts_with("ssl://") || self.uri.starts_with("mqtts://")
    }
}

impl SubDevice {
    pub fn secret(&self, i: usize) -> Result<String, Finding> {
        secret(&self.device_secret, &self.device_secret_file, &format!("sub_device[{i}].device_secret"))
    }
}

impl UplinkConfig {
    pub fn load(file: &Path) -> Result<UplinkConfig, ConfigError> {
        Self::from_str_at(file, &read_file(file)?)
    }

    pub fn from_str_at(file: &Path, text: &str) -> Result<UplinkConfig, ConfigError> {
        let cfg: UplinkConfig = parse_toml(file, text)?;
        cfg.findings().into_result(file)?;
        Ok(cfg)
    }

    /// Every finding of the configuration.
    pub fn findings(&self) -> Findings {
        let mut out = Findings::default();
        let at = &Scope::root();
        let c = &self.cloud;
        let scheme = c.uri.split("://").next().unwrap_or("");
        match scheme {
            "ssl" | "mqtts" => {}
            "tcp" | "mqtt" if c.allow_plain => {}
            "tcp" | "mqtt" => {
                out.add(at, "cloud.uri", "plain TCP sends the session unencrypted; use ssl:// or set cloud.allow_plain = true")
            }
            _ => out.add(at, "cloud.uri", format!("{:?} must start with ssl:// or tcp://", c.uri)),
        }
        if c.cert_file.is_some() != c.key_file.is_some() {
            out.add(at, "cloud.cert_file", "mutual TLS needs both cert_file and key_file");
        }
        for (k, v) in [("cloud.product_key", &c.product_key), ("cloud.device_key", &c.device_key)] {
            if v.is_empty() || v.contains(['/', '+', '#', '&', '|']) {
                out.add(at, k, "must be non-empty and free of / + # & |");
            }
        }
        // A box that is not provisioned yet has no secret: it still caches (the session waits),
        // so only a contradictory setting is an error here.
        if c.device_secret.is_some() && c.device_secret_file.is_some() {
            out.add(at, "cloud.device_secret", "give either cloud.device_secret or cloud.device_secret_file, not both");
        }
        if !(10..=1200).contains(&c.keepalive_s) {
            out.add(at, "cloud.keepalive_s", "must be 10-1200");
        }
        if c.max_in_flight == 0 || c.max_in_flight > 1000 {
            out.add(at, "cloud.max_in_flight", "must be 1-1000");
        }
        if self.cache.max_bytes < 1 << 20 {
            out.add(at, "cache.max_bytes", "must be at least 1 MiB");
        }
        if self.sender.max_message_bytes < 4096 || self.sender.max_message_bytes > 512 * 1024 {
            out.add(at, "sender.max_message_bytes", "must be 4096-524288 (EnOS refuses > 512 KB)");
        }
        if self.sender.max_attempts == 0 {
            out.add(at, "sender.max_attempts", "must be at least 1");
        }
        if self.sender.reply_timeout_s == 0 {
            out.add(at, "sender.reply_timeout_s", "must be at least 1");
        }
        if self.sender.live_share_percent > 90 {
            out.add(at, "sender.live_share_percent", "must be 0-90");
        }
        let m = &self.monitor;
        if m.check_s == 0 || m.check_s > 3600 {
            out.add(at, "monitor.check_s", "must be 1-3600");
        }
        if m.log_max_lines == 0 || m.log_max_lines > 10_000 {
            out.add(at, "monitor.log_max_lines", "must be 1-10000");
        }
        if m.log_max_bytes < 1024 || m.log_max_bytes > 4 << 20 {
            out.add(at, "monitor.log_max_bytes", "must be 1024-4194304");
        }
        let tz = self.registration.timezone.as_bytes();
        let tz_ok = tz.len() == 6 && matches!(tz[0], b'+' | b'-') && tz[3] == b':' && [1, 2, 4, 5].iter().all(|&i| tz[i].is_ascii_digit());
        if !tz_ok {
            out.add(at, "registration.timezone", "must be a UTC offset such as +08:00 or -05:00");
        }
        if !(1..=3600).contains(&self.registration.poll_s) {
            out.add(at, "registration.poll_s", "must be 1-3600");
        }
        let mut seen = HashSet::new();
        for (i, s) in self.sub_devices.iter().enumerate() {
            if !seen.insert(s.device.as_str()) {
                out.add(at, format!("sub_device[{i}].device"), format!("duplicate device {:?}", s.device));
            }
            if let Err(e) = s.secret(i) {
                out.0.push(e);
            }
        }
        out
    }
}

/// The uplink's configuration file: where it was loaded from and where a change is written (the
/// web center's cloud settings, the cloud's `setParameter`), one writer at a time.
pub struct ConfigFile {
    /// The file the uplink loaded (the starting point of a change while `path` does not exist).
    pub loaded: PathBuf,
    /// Where a change is written: `--config`, else `/data/enos/config/uplink/uplink.toml` (the
    /// operator's copy, which a start prefers to the image's).
    pub path: PathBuf,
    /// Held from reading the file to writing it.
    pub writing: tokio::sync::Mutex<()>,
}

impl ConfigFile {
    pub fn new(loaded: PathBuf, path: PathBuf) -> ConfigFile {
        ConfigFile { loaded, path, writing: Default::default() }
    }

    /// The text a change starts from: the written copy, else the file loaded.
    pub fn text(&self) -> Result<String, String> {
        std::fs::read_to_string(&self.path)
            .or_else(|_| std::fs::read_to_string(&self.loaded))
            .map_err(|e| format!("cannot read {}: {e}", self.loaded.display()))
    }

    /// Writes `text` (already validated as `cfg`) atomically: readable by the group unless it
    /// holds a sub-device's secret inline.
    pub fn write(&self, text: &str, cfg: &UplinkConfig) -> std::io::Result<()> {
        let mode = if cfg.sub_devices.iter().any(|s| s.device_secret.is_some()) { 0o600 } else { 0o640 };
        enos_runtime::fs::write_atomic(&self.path, text.as_bytes(), mode)
    }
}

/// The settings the sender reads while it runs, so the cloud can change them live.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuning {
    pub sender: SenderConfig,
    pub max_in_flight: usize,
}

impl Tuning {
    pub fn of(cfg: &UplinkConfig) -> Tuning {
        Tuning { sender: cfg.sender.clone(), max_in_flight: cfg.cloud.max_in_flight }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_tcp_must_be_asked_for() {
        let t = "[cloud]\nuri = \"tcp://127.0.0.1:1883\"\nproduct_key = \"pk\"\ndevice_key = \"dk\"\ndevice_secret = \"s\"\n";
        let e = UplinkConfig::from_str_at(Path::new("u.toml"), t).unwrap_err().to_string();
        assert!(e.starts_with("u.toml: cloud.uri: plain TCP"), "{e}");
        let ok = t.replace("[cloud]\n", "[cloud]\nallow_plain = true\n");
        UplinkConfig::from_str_at(Path::new("u.toml"), &ok).unwrap();
        let nosecret = ok.replace("device_secret = \"s\"\n", "");
        let c = UplinkConfig::from_str_at(Path::new("u.toml"), &nosecret).expect("an unprovisioned box still runs (and caches)");
        assert_eq!(
            c.cloud.secret().unwrap_err().to_string(),
            "cloud.device_secret: missing (set cloud.device_secret or cloud.device_secret_file)"
        );
    }
}
