//! State shared by the bus interface, the session, the sender and the health reporter.

use crate::config::UplinkConfig;
use crate::sub_devices::SubDevices;
use enos_bus::{CloudStatus, SenderStatus};
use enos_cache::Cache;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::Notify;

/// Sends the session's new state (state, reason) to whoever listens, without waiting.
pub type CloudStateSignal = Box<dyn Fn(&str, &str) + Send + Sync>;

pub struct Shared {
    /// The configuration as loaded; what the cloud changed since is in `tuning` and the cache
    /// (`effective_cfg`).
    pub cfg: UplinkConfig,
    /// The sender's settings, changeable while it runs (`setParameter`).
    pub tuning: Mutex<crate::config::Tuning>,
    /// The configuration file and its one writer.
    pub file: Arc<crate::config::ConfigFile>,
    pub cache: Arc<Cache>,
    /// Woken when a batch enters the cache.
    pub new_data: Notify,
    pub cloud: Mutex<CloudStatus>,
    pub sender: Mutex<SenderStatus>,
    pub rate: Mutex<Rate>,
    bus: OnceLock<zbus::Connection>,
    /// Tells listeners the session's new state (the bus adapter's signal); set with the bus.
    cloud_state_signal: OnceLock<CloudStateSignal>,
    /// The MQTT client while a session is up (for publishers outside the sender).
    pub mqtt: Mutex<Option<crate::mqtt::Client>>,
    /// The sub-devices: their identities, states and routes.
    pub subs: Mutex<SubDevices>,
    /// Woken when a sub-device changed (configured, removed, registered, logged in): the
    /// registrar has work, the sender may send what it held back.
    pub subs_changed: Notify,
    /// Devices whose model was asked for (`UplinkInspect1.DeviceModel`), and why a fetch failed.
    pub models_wanted: Mutex<std::collections::HashSet<String>>,
    pub models_failed: Mutex<HashMap<String, String>>,
    /// Counts sub-device changes (the sender looks again at what it held back).
    pub subs_generation: AtomicU64,
    /// Command ids each device got lately (across reconnects), so a repeated one is not run again.
    pub recent_commands: Mutex<HashMap<String, crate::recent_ids::RecentIds>>,
    /// The newest acquisition time sent live per point since the uplink started, across
    /// reconnects: what a record re-sent after a lost link may not go below on the live path.
    pub live_floor: Mutex<crate::order::LiveFloor>,
    /// Replies to the monitor's attribute updates and event posts: the session routes them in,
    /// the monitor takes them out.
    pub monitor_reply_tx: tokio::sync::mpsc::UnboundedSender<enos_cloud::Reply>,
    pub monitor_replies: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<enos_cloud::Reply>>,
    /// The update agent's progress reports and version changes made while no session was up
    /// (`ota::publish`), sent after the next connect.
    pub ota_unsent: Mutex<std::collections::VecDeque<enos_cloud::requests::Request>>,
}

/// Ingest rate over a sliding window, for "how many hours of outage fit".
#[derive(Default)]
pub struct Rate {
    window: std::collections::VecDeque<(u64, u64, u64)>, // (ms, bytes, points)
}

impl Rate {
    pub fn add(&mut self, now: u64, bytes: u64, points: u64) {
        self.window.push_back((now, bytes, points));
        while self.window.front().is_some_and(|f| f.0 + 60_000 < now) {
            self.window.pop_front();
        }
    }
    /// (bytes/s, points/s) over the last minute.
    pub fn per_second(&self, now: u64) -> (f64, f64) {
        let Some(first) = self.window.front() else { return (0.0, 0.0) };
        let span = ((now.saturating_sub(first.0)) as f64 / 1000.0).max(1.0);
        let (b, p) = self.window.iter().fold((0u64, 0u64), |a, x| (a.0 + x.1, a.1 + x.2));
        (b as f64 / span, p as f64 / span)
    }
}

pub const GATEWAY_DEVICE: &str = "gateway";

impl Shared {
    /// `identities`: the file of the sub-device identities the gateway registered.
    /// `file`: where the configuration came from and where changes go.
    pub fn new(cfg: UplinkConfig, cache: Arc<Cache>, identities: PathBuf, file: Arc<crate::config::ConfigFile>) -> Arc<Shared> {
        let (monitor_reply_tx, monitor_replies) = tokio::sync::mpsc::unbounded_channel();
        Arc::new(Shared {
            monitor_reply_tx,
            monitor_replies: tokio::sync::Mutex::new(monitor_replies),
            cloud: Mutex::new(CloudStatus { state: "disconnected".into(), uri: cfg.cloud.uri.clone(), ..Default::default() }),
            sender: Mutex::new(SenderStatus::default()),
            rate: Mutex::new(Rate::default()),
            new_data: Notify::new(),
            bus: OnceLock::new(),
            cloud_state_signal: OnceLock::new(),
            mqtt: Mutex::new(None),
            subs: Mutex::new(SubDevices::new(&cfg, identities)),
            subs_changed: Notify::new(),
            subs_generation: AtomicU64::new(1),
            models_wanted: Mutex::default(),
            models_failed: Mutex::default(),
            recent_commands: Mutex::default(),
            live_floor: Mutex::default(),
            ota_unsent: Mutex::default(),
            tuning: Mutex::new(crate::config::Tuning::of(&cfg)),
            file,
            cfg,
            cache,
        })
    }

    /// Once on the bus: the connection (calls to the collector) and how a new session state is
    /// signalled (`bus::cloud_state_signal`; the state does not know the bus adapter).
    pub fn set_bus(&self, c: zbus::Connection, cloud_state_signal: CloudStateSignal) {
        let _ = self.bus.set(c);
        let _ = self.cloud_state_signal.set(cloud_state_signal);
    }
    pub fn bus(&self) -> Option<&zbus::Connection> {
        self.bus.get()
    }

    pub fn subs(&self) -> std::sync::MutexGuard<'_, SubDevices> {
        self.subs.lock().expect("sub-devices")
    }

    /// A sub-device changed: the registrar and the sender look again.
    pub fn subs_changed(&self) {
        let n = self.subs().logged_in();
        self.cloud.lock().expect("cloud").sub_devices_logged_in = n;
        self.subs_generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.subs_changed.notify_waiters();
        self.new_data.notify_one();
    }

    /// The configuration in effect: as loaded, with what was changed while running.
    pub fn effective_cfg(&self) -> UplinkConfig {
        let mut c = self.cfg.clone();
        let t = self.tuning();
        (c.sender, c.cloud.max_in_flight) = (t.sender, t.max_in_flight);
        c.cache.max_bytes = self.cache.max_bytes();
        c.cache.max_age_hours = self.cache.max_age_ms() / 3_600_000;
        c.cache.keep_free_bytes = self.cache.keep_free_bytes();
        c
    }

    pub fn tuning(&self) -> crate::config::Tuning {
        self.tuning.lock().expect("tuning").clone()
    }

    pub fn sender_stats(&self, f: impl FnOnce(&mut SenderStatus)) {
        f(&mut self.sender.lock().expect("sender stats"))
    }

    pub fn set_cloud_state(&self, state: &str, reason: &str) {
        {
            let mut c = self.cloud.lock().expect("cloud status");
            if c.state == state {
                return;
            }
            c.state = state.into();
            c.since_ms = enos_batch::now_ms();
            if state == "connected" {
                c.connects += 1;
                c.last_error = None;
            } else if !reason.is_empty() {
                c.last_error = Some(reason.into());
            }
        }
        log::info!("cloud session {state}{}", if reason.is_empty() { String::new() } else { format!(": {reason}") });
        if let Some(signal) = self.cloud_state_signal.get() {
            signal(state, reason);
        }
    }

    pub fn status(&self) -> enos_bus::UplinkStatus {
        let now = enos_batch::now_ms();
        let st = self.cache.stats();
        let (bps, pps) = self.rate.lock().expect("rate").per_second(now);
        let free = self.cache.max_bytes().saturating_sub(st.bytes) as f64;
        enos_bus::UplinkStatus {
            cloud: self.cloud.lock().expect("cloud").clone(),
            cache: enos_bus::CacheStatus {
                records: st.records,
                points: st.points,
                bytes: st.bytes,
                max_bytes: self.cache.max_bytes(),
                oldest_ts_ms: st.oldest_ts,
                dropped_points: st.dropped_points,
                ingest_bytes_per_s: bps,
                ingest_points_per_s: pps,
                outage_hours_capacity: (bps > 0.0).then(|| free / bps / 3600.0),
                dead_letter_records: st.dead_letter_records,
                schema_version: enos_cache::SCHEMA_VERSION,
                recovered: self.cache.recovery().map(|r| r.to_string()),
                disk_low: st.disk_low,
            },
            sender: self.sender.lock().expect("sender").clone(),
            sub_devices: self.subs().status(),
        }
    }
}
