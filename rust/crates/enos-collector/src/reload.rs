//! The running drivers and how a new configuration replaces them without a restart of the
//! process: devices are grouped by endpoint (one driver task each, as at start); a group whose
//! devices are exactly as before keeps running untouched (its connections, counters and poll
//! phase), any other group is stopped and started again with the new settings. Samples already
//! handed on are never lost: a stopped driver's frames still drain to the pusher.
//!
//! Every driver runs under a supervisor: a driver that ends or panics (it never should) is
//! started again after a backoff, and meanwhile its devices are `failed` with the reason in
//! words, instead of a line going quiet until the process restarts.
//!
//! It also keeps the recent values of the devices someone is watching (the web center's live
//! page): a driver's frames pass through a small forwarder that copies them only while a watch
//! is on, so an unwatched device costs one atomic load per frame.

use enos_batch::{Flags, Quality, Value};
use enos_collector_config::{CollectorConfig, DeviceConfig, PushConfig};
use enos_drivers::{panic_text, registry, Command, DeviceEvent, Driver, DriverContext, Frame, StatusBoard};
use enos_model::device::DeviceStatus;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What a caller hears when the device's driver stopped while serving it (it is restarted).
pub const DRIVER_STOPPED: &str = "the device's driver stopped while serving the request; it is being started again";

/// One driver task and what it serves.
struct Running {
    key: String,
    /// Shared with the supervisor and the driver: one copy of the devices' settings and points.
    devices: Arc<[DeviceConfig]>,
    commands: mpsc::Sender<Command>,
    status: Arc<StatusBoard>,
    /// The driver's supervisor (and through it the driver).
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // Ends the driver and its poll groups; its connections close when the last request ends.
        self.task.abort();
    }
}

pub struct Engine {
    push: PushConfig,
    /// Device ids in the file's order, and whether each runs. A running device's settings and
    /// points live in its driver's shared list, a disabled one's in `disabled`: one copy of
    /// every point (100k points are tens of MB a copy).
    order: Vec<(String, bool)>,
    disabled: Vec<DeviceConfig>,
    drivers: Vec<Running>,
    frames: mpsc::Sender<Frame>,
    events: mpsc::UnboundedSender<DeviceEvent>,
    pub live: Arc<Live>,
}

/// What an apply did, by device id.
#[derive(Debug, Default, PartialEq)]
pub struct Applied {
    pub started: Vec<String>,
    pub restarted: Vec<String>,
    pub stopped: Vec<String>,
    pub unchanged: Vec<String>,
}

/// The enabled devices grouped by endpoint, as the drivers serve them, and the disabled ones.
fn groups(devices: Vec<DeviceConfig>) -> (BTreeMap<String, Vec<DeviceConfig>>, Vec<DeviceConfig>) {
    let mut by_ep: BTreeMap<String, Vec<DeviceConfig>> = BTreeMap::new();
    let mut disabled = Vec::new();
    for d in devices {
        if !d.enabled {
            disabled.push(d);
            continue;
        }
        // Validation refuses a device without an endpoint; alone, it is failed with the reason.
        let key = d.proto.endpoint().map(|e| e.key).unwrap_or_else(|| format!("device:{}", d.id));
        by_ep.entry(key).or_default().push(d);
    }
    (by_ep, disabled)
}

impl Engine {
    pub fn start(cfg: CollectorConfig, frames: mpsc::Sender<Frame>, events: mpsc::UnboundedSender<DeviceEvent>) -> Engine {
        let mut e = Engine {
            push: cfg.push.clone(),
            order: Vec::new(),
            disabled: Vec::new(),
            drivers: Vec::new(),
            frames,
            events,
            live: Arc::default(),
        };
        e.apply(cfg);
        e
    }

    /// The running configuration (assembled: a copy, for the rare caller that needs it whole).
    pub fn config(&self) -> CollectorConfig {
        let devices = self.order.iter().filter_map(|(id, _)| self.device(id).cloned()).collect();
        CollectorConfig { push: self.push.clone(), devices }
    }

    pub fn push_config(&self) -> &PushConfig {
        &self.push
    }

    pub fn device(&self, id: &str) -> Option<&DeviceConfig> {
        self.drivers.iter().flat_map(|r| r.devices.iter()).chain(&self.disabled).find(|d| d.id == id)
    }

    fn spawn(&self, key: String, devices: Vec<DeviceConfig>) -> Running {
        let devices: Arc<[DeviceConfig]> = devices.into();
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        // Small: frames waiting here are outside the pusher's buffer limit (one per driver).
        let (ftx, frx) = mpsc::channel(16);
        let status = Arc::new(StatusBoard::default());
        let make = {
            let devices = devices.clone();
            move || registry::driver(&devices)
        };
        let ctx = Supervised {
            name: key.clone(),
            devices: devices.clone(),
            commands: cmd_rx,
            frames: ftx,
            events: self.events.clone(),
            status: status.clone(),
        };
        let task = tokio::spawn(supervise(make, ctx, RESTART_MIN));
        tokio::spawn(forward(frx, self.frames.clone(), self.live.clone()));
        Running { key, devices, commands: cmd_tx, status, task }
    }

    /// Replaces the running configuration by `cfg` (already validated), restarting only the
    /// driver groups that changed.
    pub fn apply(&mut self, mut cfg: CollectorConfig) -> Applied {
        // The points of a CSV table were merged at load: the running config has them inline.
        for d in &mut cfg.devices {
            d.points_csv = None;
        }
        cfg.compact();
        let order: Vec<(String, bool)> = cfg.devices.iter().map(|d| (d.id.clone(), d.enabled)).collect();
        self.push = cfg.push;
        let (mut want, disabled) = groups(cfg.devices);
        self.disabled = disabled;
        let mut out = Applied::default();
        for r in std::mem::take(&mut self.drivers) {
            if want.get(&r.key).is_some_and(|devs| devs[..] == r.devices[..]) {
                out.unchanged.extend(r.devices.iter().map(|d| d.id.clone()));
                want.remove(&r.key);
                self.drivers.push(r);
            }
            // any other driver ends here (dropped)
        }
        let enabled_in = |order: &[(String, bool)], id: &str| order.iter().any(|(i, on)| *on && i == id);
        let was_enabled = |id: &str| enabled_in(&self.order, id);
        for devs in want.values() {
            for d in devs {
                if was_enabled(&d.id) {
                    out.restarted.push(d.id.clone());
                } else {
                    out.started.push(d.id.clone());
                }
            }
        }
        out.stopped = self.order.iter().filter(|(id, on)| *on && !enabled_in(&order, id)).map(|(id, _)| id.clone()).collect();
        for (key, devs) in want {
            let r = self.spawn(key, devs);
            self.drivers.push(r);
        }
        for v in [&mut out.started, &mut out.restarted, &mut out.stopped, &mut out.unchanged] {
            v.sort();
        }
        self.order = order;
        enos_runtime::sys::release_free_memory();
        out
    }

    /// Stops and starts again every driver that serves a device `pick` chooses (their code
    /// changed under an unchanged configuration: a plugin's new version). Returns those devices.
    pub fn restart(&mut self, pick: impl Fn(&DeviceConfig) -> bool) -> Vec<String> {
        let mut ids = Vec::new();
        for r in std::mem::take(&mut self.drivers) {
            if !r.devices.iter().any(&pick) {
                self.drivers.push(r);
                continue;
            }
            ids.extend(r.devices.iter().map(|d| d.id.clone()));
            let (key, devices) = (r.key.clone(), r.devices.to_vec());
            drop(r); // a plugin instance of the new driver waits for the old one to end (its lease)
            let fresh = self.spawn(key, devices);
            self.drivers.push(fresh);
        }
        ids.sort();
        ids
    }

    pub fn route(&self, device: &str) -> Option<mpsc::Sender<Command>> {
        self.drivers.iter().find(|r| r.devices.iter().any(|d| d.id == device)).map(|r| r.commands.clone())
    }

    pub fn device_count(&self) -> usize {
        self.order.len()
    }

    /// Every configured device and its state (disabled ones too).
    pub fn statuses(&self) -> Vec<DeviceStatus> {
        let mut all: Vec<DeviceStatus> = self.drivers.iter().flat_map(|r| r.status.all()).collect();
        for d in &self.disabled {
            all.push(DeviceStatus::new(&d.id, d.protocol().name(), "disabled", d.proto.point_count()));
        }
        for s in &mut all {
            s.product_key = self.device(&s.id).and_then(|d| d.product_key.clone()).filter(|p| !p.is_empty());
        }
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }
}

/// The first wait before a failed driver is started again; it doubles up to `RESTART_MAX` and
/// starts over once a driver ran for `RESTART_STABLE`.
const RESTART_MIN: Duration = Duration::from_secs(1);
const RESTART_MAX: Duration = Duration::from_secs(60);
const RESTART_STABLE: Duration = Duration::from_secs(120);

/// Devices no driver can serve (a protocol this build lacks): failed with the reason until the
/// configuration changes; their commands are dropped, so callers hear the driver stopped.
async fn unserved(mut s: Supervised, why: &str) {
    let reason = format!("{} cannot be served: {why}", s.name);
    log::error!("{reason}");
    for d in s.devices.iter() {
        s.status.set(DeviceStatus {
            last_error: Some(reason.clone()),
            ..DeviceStatus::new(&d.id, d.protocol().name(), "failed", d.proto.point_count())
        });
        let _ = s.events.send(DeviceEvent { device: d.id.clone(), state: "failed".into(), reason: reason.clone() });
    }
    while s.commands.recv().await.is_some() {}
}

/// What a supervised driver is given, kept across its restarts.
struct Supervised {
    /// The endpoint, for messages.
    name: String,
    devices: Arc<[DeviceConfig]>,
    commands: mpsc::Receiver<Command>,
    frames: mpsc::Sender<Frame>,
    events: mpsc::UnboundedSender<DeviceEvent>,
    status: Arc<StatusBoard>,
}

/// Aborts a task when dropped (the supervisor's own task is aborted when the driver is stopped).
struct AbortOnDrop(JoinHandle<String>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the driver `make` builds for as long as the engine holds the command channel, starting
/// it again (after `first_wait`, doubling) whenever it ends or panics.
async fn supervise(make: impl Fn() -> Result<Box<dyn Driver>, String>, mut s: Supervised, first_wait: Duration) {
    let mut wait = first_wait;
    loop {
        let driver = match make() {
            Ok(d) => d,
            Err(why) => return unserved(s, &why).await,
        };
        let devices = driver.devices();
        let (tx, rx) = mpsc::channel(64);
        let ctx = DriverContext { frames: s.frames.clone(), events: s.events.clone(), status: s.status.clone(), commands: rx };
        let started = Instant::now();
        let mut task = AbortOnDrop(tokio::spawn(driver.run(ctx)));
        let why = loop {
            tokio::select! {
                cmd = s.commands.recv() => match cmd {
                    // If the driver ends meanwhile, the command is dropped and its caller hears so.
                    Some(cmd) => { let _ = tx.send(cmd).await; }
                    None => return,
                },
                r = &mut task.0 => break match r {
                    Ok(why) => why,
                    Err(e) if e.is_panic() => panic_text(e.into_panic()),
                    Err(e) => e.to_string(),
                },
            }
        };
        if s.frames.is_closed() {
            return; // the collector is stopping: nobody takes samples any more
        }
        if started.elapsed() >= RESTART_STABLE {
            wait = first_wait;
        }
        let reason = format!("the driver of {} stopped ({why}); starting it again in {} s", s.name, wait.as_secs_f32());
        log::error!("{reason}");
        for d in &devices {
            s.status.update(d, |st| {
                st.state = "failed".into();
                st.last_error = Some(reason.clone());
            });
            let _ = s.events.send(DeviceEvent { device: d.clone(), state: "failed".into(), reason: reason.clone() });
        }
        // Commands that arrive meanwhile are dropped: their callers hear the driver stopped.
        let pause = tokio::time::sleep(wait);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                cmd = s.commands.recv() => if cmd.is_none() { return },
            }
        }
        wait = (wait * 2).min(RESTART_MAX);
    }
}

async fn forward(mut rx: mpsc::Receiver<Frame>, to: mpsc::Sender<Frame>, live: Arc<Live>) {
    while let Some(f) = rx.recv().await {
        if live.watching.load(Ordering::Relaxed) > 0 {
            live.record(&f);
        }
        if to.send(f).await.is_err() {
            return;
        }
    }
}

/// How long a watch lasts after the last `LiveValues` call.
const WATCH_FOR: Duration = Duration::from_secs(60);
/// Recent values kept per point while watched.
const KEEP: Duration = Duration::from_secs(600);
const KEEP_MAX: usize = 600;

#[derive(Default)]
pub struct Live {
    watching: AtomicUsize,
    inner: Mutex<HashMap<String, Watched>>,
}

struct Watched {
    until: Instant,
    points: BTreeMap<String, VecDeque<(u64, Value, Quality, Flags)>>,
}

pub struct LivePoint {
    pub point: String,
    pub value: Value,
    pub quality: Quality,
    /// The raw quality flags the device sent with the latest value.
    pub flags: Flags,
    pub ts_ms: u64,
    /// `[ts_ms, number or null]`, oldest first, newer than the `since_ms` asked for.
    pub history: Vec<(u64, Option<f64>)>,
}

impl LivePoint {
    pub fn to_json(&self) -> serde_json::Value {
        let mut j = serde_json::json!({ "point": self.point, "value": self.value, "quality": self.quality, "ts_ms": self.ts_ms, "history": self.history });
        if !self.flags.is_empty() {
            j["flags"] = serde_json::json!(self.flags.names());
        }
        j
    }
}

impl Live {
    fn record(&self, f: &Frame) {
        let mut m = self.inner.lock().expect("live");
        let Some(w) = m.get_mut(&*f.device) else { return };
        let cutoff = f.ts_ms.saturating_sub(KEEP.as_millis() as u64);
        for (name, v, q, flags) in &f.samples {
            let h = w.points.entry(name.to_string()).or_default();
            h.push_back((f.ts_ms, v.clone(), *q, *flags));
            while h.len() > KEEP_MAX || h.front().is_some_and(|x| x.0 < cutoff) {
                h.pop_front();
            }
        }
    }

    /// The device's recent values (starting a watch of it, or extending it).
    pub fn values(&self, device: &str, since_ms: u64) -> Vec<LivePoint> {
        let now = Instant::now();
        let mut m = self.inner.lock().expect("live");
        m.retain(|_, w| w.until > now);
        let w = m.entry(device.to_string()).or_insert_with(|| Watched { until: now, points: BTreeMap::new() });
        w.until = now + WATCH_FOR;
        let out = w
            .points
            .iter()
            .filter_map(|(name, h)| {
                let (ts, v, q, flags) = h.back()?;
                Some(LivePoint {
                    point: name.clone(),
                    value: v.clone(),
                    quality: *q,
                    flags: *flags,
                    ts_ms: *ts,
                    history: h
                        .iter()
                        .filter(|x| x.0 > since_ms)
                        .map(|(t, v, q, _)| (*t, if q.is_good() { v.as_f64() } else { None }))
                        .collect(),
                })
            })
            .collect();
        self.watching.store(m.len(), Ordering::Relaxed);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A driver that panics on its first run (as tokio-modbus's client did on a late answer)
    /// and serves reads after that.
    struct Flaky(Arc<AtomicUsize>);

    impl Driver for Flaky {
        fn devices(&self) -> Vec<String> {
            vec!["meter".into()]
        }
        fn run(self: Box<Self>, mut ctx: DriverContext) -> enos_drivers::DriverFuture {
            Box::pin(async move {
                let run = self.0.fetch_add(1, Ordering::SeqCst);
                ctx.status.set(DeviceStatus::new("meter", "modbus-rtu", "online", 1));
                if run == 0 {
                    panic!("assertion `left == right` failed\n  left: 10\n right: 1");
                }
                while let Some(cmd) = ctx.commands.recv().await {
                    if let Command::Read { reply, .. } = cmd {
                        let _ = reply.send(Ok(Vec::new()));
                    }
                }
                "its commands ended".into()
            })
        }
    }

    #[tokio::test]
    async fn a_driver_that_panics_is_restarted_and_its_devices_say_why() {
        let runs = Arc::new(AtomicUsize::new(0));
        let (cmd_tx, commands) = mpsc::channel(8);
        let (frames, _frames) = mpsc::channel(8);
        let (events, mut events_rx) = mpsc::unbounded_channel();
        let status = Arc::new(StatusBoard::default());
        let s = Supervised { name: "serial:/dev/ttyS1".into(), devices: Arc::new([]), commands, frames, events, status: status.clone() };
        let make = {
            let runs = runs.clone();
            move || Ok(Box::new(Flaky(runs.clone())) as Box<dyn Driver>)
        };
        let sup = tokio::spawn(supervise(make, s, Duration::from_millis(20)));

        let e = tokio::time::timeout(Duration::from_secs(10), events_rx.recv()).await.expect("an event").expect("event");
        assert_eq!((e.device.as_str(), e.state.as_str()), ("meter", "failed"));
        assert!(e.reason.starts_with("the driver of serial:/dev/ttyS1 stopped (assertion `left == right` failed"), "{}", e.reason);
        assert!(e.reason.ends_with("starting it again in 0.02 s"), "{}", e.reason);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (reply, rx) = tokio::sync::oneshot::channel();
            cmd_tx.send(Command::Read { device: "meter".into(), points: Vec::new(), reply }).await.unwrap();
            if let Ok(Ok(_)) = rx.await {
                break;
            }
            assert!(Instant::now() < deadline, "the driver was not started again");
            tokio::task::yield_now().await;
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(status.all()[0].state, "online", "the new run owns the device's state");
        drop(cmd_tx);
        tokio::time::timeout(Duration::from_secs(10), sup).await.expect("the supervisor ends with the engine's channel").unwrap();
    }

    #[test]
    fn only_watched_devices_are_kept_and_history_is_bounded() {
        let live = Live::default();
        let frame = |d: &str, ts: u64, v: f64| Frame {
            device: Arc::from(d),
            ts_ms: ts,
            samples: vec![(Arc::from("P"), Value::Float(v), Quality::Good, Flags::NONE)],
        };
        live.record(&frame("a", 1, 1.0));
        assert!(live.values("a", 0).is_empty(), "nothing recorded before the watch");
        for i in 0..(KEEP_MAX as u64 + 10) {
            live.record(&frame("a", 1_000_000 + i, i as f64));
            live.record(&frame("b", 1_000_000 + i, i as f64));
        }
        let v = live.values("a", 0);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].history.len(), KEEP_MAX);
        assert_eq!(v[0].value, Value::Float((KEEP_MAX + 9) as f64));
        assert_eq!(live.values("a", 1_000_000 + KEEP_MAX as u64 + 7)[0].history.len(), 2, "since_ms");
        assert!(!live.inner.lock().unwrap().contains_key("b"));
    }
}
