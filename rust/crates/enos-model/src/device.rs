//! Device-facing documents every layer shares: device state, readings, write outcomes, and the
//! status documents the services publish over D-Bus as JSON.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeviceStatus {
    pub id: String,
    pub protocol: String,
    /// `online`; `refusing` (answering, but only with exceptions); `offline`; `connecting`;
    /// `failed` (its driver stopped and is being restarted); `disabled`.
    pub state: String,
    pub last_ok_ms: Option<u64>,
    /// The failure of the latest poll in words (what was read, and why it failed); none once
    /// the device answers every read again.
    pub last_error: Option<String>,
    /// Polls that brought data, and polls that did not.
    pub polls_ok: u64,
    pub polls_failed: u64,
    pub points: usize,
    /// Answers discarded while this device's requests waited: late answers to earlier requests,
    /// answers of another unit id, function, size or transaction, damaged frames.
    #[serde(default)]
    pub discarded_answers: u64,
    /// Requests (each attempt) that got no answer in time. A value the device served for such a
    /// request never reached the gateway: counted, so it is never mistaken for a loss later on.
    #[serde(default)]
    pub requests_unanswered: u64,
    /// Reads split because the device kept refusing them as coalesced (in words).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub split_reads: Vec<String>,
    /// The cloud product the device is configured under (`product_key`), if any: what the
    /// uplink registers it as, read from this list instead of the whole configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_key: Option<String>,
}

impl DeviceStatus {
    /// A device with no poll yet: `state` (connecting, disabled, failed), no counters.
    pub fn new(id: &str, protocol: &str, state: &str, points: usize) -> DeviceStatus {
        DeviceStatus {
            id: id.into(),
            protocol: protocol.into(),
            state: state.into(),
            last_ok_ms: None,
            last_error: None,
            polls_ok: 0,
            polls_failed: 0,
            points,
            discarded_answers: 0,
            requests_unanswered: 0,
            split_reads: Vec::new(),
            product_key: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PointReading {
    pub point: String,
    pub value: enos_batch::Value,
    pub quality: enos_batch::Quality,
    pub ts_ms: u64,
    /// Why the value is missing, in plain words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The raw quality flags the device sent with it, in words (`enos_batch::Flags::names`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
}

/// Why a write did not reach the device, with the code EnOS gets in the command reply (≥ 2000).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum WriteFailure {
    UnknownDevice,
    UnknownPoint,
    ReadOnly,
    BadValue,
    OutOfRange,
    DeviceException,
    DeviceTimeout,
    DeviceOffline,
    Internal,
}

impl WriteFailure {
    pub fn cloud_code(self) -> u32 {
        match self {
            WriteFailure::UnknownDevice => 2001,
            WriteFailure::UnknownPoint => 2002,
            WriteFailure::ReadOnly => 2003,
            WriteFailure::BadValue => 2004,
            WriteFailure::OutOfRange => 2005,
            WriteFailure::DeviceException => 2006,
            WriteFailure::DeviceTimeout => 2007,
            WriteFailure::DeviceOffline => 2008,
            WriteFailure::Internal => 2099,
        }
    }

    /// Who refused, in words for people: the gateway's own checks (nothing reached the device),
    /// or the device.
    pub fn who_refused(self) -> &'static str {
        match self {
            WriteFailure::UnknownDevice
            | WriteFailure::UnknownPoint
            | WriteFailure::ReadOnly
            | WriteFailure::BadValue
            | WriteFailure::OutOfRange => "the gateway refused it, nothing was sent to the device",
            WriteFailure::DeviceException | WriteFailure::DeviceTimeout | WriteFailure::DeviceOffline => "the device did not take it",
            WriteFailure::Internal => "the gateway failed to write it",
        }
    }
}

/// In words, for people (`enosctl`, the web center, logs).
impl std::fmt::Display for WriteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WriteFailure::UnknownDevice => "unknown device",
            WriteFailure::UnknownPoint => "unknown point",
            WriteFailure::ReadOnly => "the point is read-only",
            WriteFailure::BadValue => "not a value for this point",
            WriteFailure::OutOfRange => "out of range",
            WriteFailure::DeviceException => "the device refused it (exception)",
            WriteFailure::DeviceTimeout => "the device did not answer",
            WriteFailure::DeviceOffline => "the device is offline",
            WriteFailure::Internal => "internal error",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WriteOutcome {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<WriteFailure>,
    pub message: String,
}

impl WriteOutcome {
    pub fn ok() -> Self {
        WriteOutcome { ok: true, failure: None, message: "written".into() }
    }
    pub fn failed(failure: WriteFailure, message: impl Into<String>) -> Self {
        WriteOutcome { ok: false, failure: Some(failure), message: message.into() }
    }
    /// The outcome as a person reads it: "written", or who refused and why.
    pub fn text(&self) -> String {
        match self.failure {
            _ if self.ok => self.message.clone(),
            Some(f) => format!("{}: {}", f.who_refused(), self.message),
            None => format!("the write failed: {}", self.message),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CollectorStats {
    pub devices: usize,
    pub devices_online: usize,
    pub samples_collected: u64,
    pub batches_pushed: u64,
    pub samples_pushed: u64,
    pub push_failures: u64,
    /// Samples held in memory, not yet answered by the uplink (at most `buffer_max_samples`).
    pub samples_buffered: u64,
    /// Samples shed, oldest first, because that buffer was full (or refused by the uplink).
    pub samples_dropped: u64,
    pub requests: u64,
    /// The hand-off to the uplink: `ok`, `overloaded` (the uplink answers but does not keep
    /// up: batches wait, samples may be shed) or `uplink-unreachable`.
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub buffer_max_samples: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CloudStatus {
    /// `connected`, `connecting`, `disconnected`.
    pub state: String,
    pub uri: String,
    pub since_ms: u64,
    pub last_error: Option<String>,
    pub connects: u64,
    pub sub_devices_logged_in: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CacheStatus {
    pub records: u64,
    pub points: u64,
    pub bytes: u64,
    pub max_bytes: u64,
    pub oldest_ts_ms: Option<u64>,
    /// Points dropped because the cache was full or data was too old.
    pub dropped_points: u64,
    /// Bytes per second entering the cache (recent average).
    pub ingest_bytes_per_s: f64,
    pub ingest_points_per_s: f64,
    /// How long an outage the free space holds at the current rate.
    pub outage_hours_capacity: Option<f64>,
    pub dead_letter_records: u64,
    pub schema_version: u32,
    /// Set when the cache was found damaged at start and replaced: where the damaged files
    /// went and what was kept, in words.
    #[serde(default)]
    pub recovered: Option<String>,
    /// Set while the data partition has less free space than `cache.keep_free_bytes`: in words.
    #[serde(default)]
    pub disk_low: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SenderStatus {
    pub messages_sent: u64,
    pub messages_acked: u64,
    pub points_acked: u64,
    pub points_acked_live: u64,
    pub points_acked_resume: u64,
    pub timeouts: u64,
    pub rejected: u64,
    pub dead_lettered_points: u64,
    pub dropped_rejected_points: u64,
    pub unroutable_points: u64,
    pub in_flight: usize,
    pub commands_received: u64,
    pub commands_failed: u64,
    /// Publishes the MQTT client refused at once (its in-flight window full, a dropped link);
    /// tried again shortly.
    #[serde(default)]
    pub publish_refused: u64,
    /// Live messages sent again after newer live data went out, so through `resume/batch`.
    #[serde(default)]
    pub resent_through_resume: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UplinkStatus {
    pub cloud: CloudStatus,
    pub cache: CacheStatus,
    pub sender: SenderStatus,
    /// The collector's devices the uplink knows a cloud identity for, or registers.
    #[serde(default)]
    pub sub_devices: Vec<SubDeviceStatus>,
}

/// One sub-device's cloud identity and where it stands (`enos-uplink` `sub_devices.rs`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SubDeviceStatus {
    /// The collector's device id.
    pub device: String,
    pub product_key: String,
    /// Known once registered (or named in `uplink.toml`).
    pub device_key: Option<String>,
    pub asset_id: Option<String>,
    /// `config` (keys in `uplink.toml`) or `registered` (the gateway registered it).
    pub source: String,
    /// `registering`, `registered` (not logged in on this session), `logged-in`, `refused`,
    /// `disabled` or `deleted` (by the cloud), `removing` (no longer configured).
    pub state: String,
    /// Why, in words, when the device's data cannot be uploaded (or is late).
    pub reason: Option<String>,
    /// Whether its samples reach the cloud now.
    pub uploading: bool,
    pub since_ms: u64,
}

/// One update job, as the agent persists it and reports it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OtaJob {
    pub id: String,
    /// `cloud` or `local`.
    pub source: String,
    pub version: String,
    pub url: Option<String>,
    pub file_size: Option<u64>,
    pub sign_method: Option<String>,
    pub sign: Option<String>,
    /// `downloading`, `installing`, `rebooting`, `verifying`, `committed`, `rolled-back`, `failed`.
    pub state: String,
    /// Last progress step (0..100, negative = EnOS failure code).
    pub step: i32,
    pub desc: String,
    pub from_version: String,
    pub from_slot: String,
    pub to_slot: String,
    pub started_ms: u64,
    pub updated_ms: u64,
    /// Per phase, milliseconds: download, install, reboot, health.
    #[serde(default)]
    pub timings_ms: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OtaStatus {
    /// `idle` or the running job's state.
    pub state: String,
    pub version: String,
    pub booted_slot: String,
    pub job: Option<OtaJob>,
}

/// One server certificate of an OPC UA device's trust list (`Collector1.ListOpcuaCertificates`),
/// with what a person checks before trusting it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OpcuaCertificate {
    /// `trusted` (the gateway talks to this server) or `rejected` (refused at a connect, kept for
    /// an administrator to look at).
    pub state: String,
    /// SHA-256 of the certificate (DER), lower-case hex: how a request names it.
    pub sha256: String,
    pub subject: String,
    pub issuer: String,
    /// Validity, Unix ms.
    pub not_before_ms: u64,
    pub not_after_ms: u64,
    /// Its file name in `trusted/` or `rejected/`.
    pub file: String,
}

/// An OPC UA device's trust list.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OpcuaCertificates {
    pub device: String,
    /// The device's PKI directory (`pki_dir`).
    pub pki_dir: String,
    pub certificates: Vec<OpcuaCertificate>,
}
