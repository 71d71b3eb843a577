//! Poll schedules, device liveness, and on-demand reads and writes for the devices of one
//! endpoint.

use super::codec::{self, WireWrite};
use super::link::{Answer, Endpoint, Link, Op, ReqError};
use super::plan::{plan, Block};
use super::Unit as DeviceConfig;
use crate::{Command, DeviceEvent, DriverContext, Frame};
use enos_batch::{now_ms, Flags, Quality, Value};
use enos_collector_config::{modbus::Area, Access};
use enos_model::comm_test::{CommAnswer, CommTest};
use enos_model::device::{DeviceStatus, PointReading, WriteFailure, WriteOutcome};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

struct Device {
    cfg: DeviceConfig,
    id: Arc<str>,
    link: Link,
    /// What this device's requests met on the link (discarded answers, timeouts).
    counters: Arc<super::link::LinkCounters>,
    health: Mutex<Health>,
    /// Where a read must start a new block, learned from blocks the device kept refusing with
    /// exception 02 or 03 (kept for the life of the driver).
    cuts: Mutex<BTreeSet<(Area, u16)>>,
}

/// Consecutive cycles a coalesced block must answer 02 or 03 before it is split.
const SPLIT_AFTER: u32 = 3;

#[derive(Default)]
struct Health {
    online: Option<bool>,
    failed_cycles: u32,
    /// The latest cycle of each poll group.
    groups: BTreeMap<String, Outcome>,
}

impl Health {
    fn state(&self) -> &'static str {
        match self.online {
            None => "connecting",
            Some(false) => "offline",
            // Answering, but the latest cycle of every group brought no data: only exceptions.
            Some(true) if !self.groups.is_empty() && self.groups.values().all(|g| !g.any_data) => "refusing",
            Some(true) => "online",
        }
    }
}

/// What one cycle of reads brought.
#[derive(Clone, Default)]
struct Outcome {
    /// The device answered at least one read (data or an exception).
    answered: bool,
    /// At least one read brought data.
    any_data: bool,
    /// The first failure of the cycle, in words (what was read, and why it failed).
    error: Option<String>,
}

/// The values of one cycle: (point index, value, quality, why it is missing).
type Values = Vec<(usize, Value, Quality, Option<String>)>;

/// What was read, in words: "reading 10 holding registers from 0 (function 3)".
fn describe(b: &Block) -> String {
    let what = match b.area {
        Area::Coil => "coils",
        Area::Discrete => "discrete inputs",
        Area::Input => "input registers",
        Area::Holding => "holding registers",
    };
    let fc = super::frame::function(&Op::Read { area: b.area, start: b.start, count: b.count });
    format!("reading {} {what} from {} (function {fc})", b.count, b.start)
}

impl Device {
    fn tmo(&self) -> Duration {
        Duration::from_millis(self.cfg.timeout_ms)
    }

    /// The reads of these points, honouring the table's block boundaries and the learned cuts.
    fn plan(&self, which: &[usize]) -> Vec<Block> {
        plan(&self.cfg.points, which, self.cfg.max_gap, self.cfg.max_registers, &self.cuts.lock().expect("cuts"))
    }

    async fn read_block(&self, b: &Block) -> Result<Answer, ReqError> {
        let op = Op::Read { area: b.area, start: b.start, count: b.count };
        self.link.call(self.cfg.unit_id, op, self.tmo(), self.cfg.retries, &self.counters).await
    }

    /// Reads the blocks and decodes every point of them; also says which blocks answered with an
    /// exception (block index, code).
    async fn read_points(&self, blocks: &[Block]) -> (Values, Outcome, Vec<(usize, u8)>) {
        let mut out = Vec::new();
        let mut o = Outcome::default();
        let mut refused = Vec::new();
        for (bi, b) in blocks.iter().enumerate() {
            match self.read_block(b).await {
                Ok(ans) => {
                    o.answered = true;
                    o.any_data = true;
                    for &i in &b.points {
                        let p = &self.cfg.points[i];
                        let off = (p.at.address - b.start) as usize;
                        let decoded = match &ans {
                            Answer::Words(w) => codec::decode(p, w.get(off..).unwrap_or(&[]), &[]),
                            Answer::Bits(bits) => codec::decode(p, &[], bits.get(off..).unwrap_or(&[])),
                            Answer::Written => Err("the device answered a read with a write acknowledgement".into()),
                        };
                        match decoded {
                            Ok(v) => out.push((i, v, Quality::Good, None)),
                            Err(e) => out.push((i, Value::Null, Quality::DecodeError, Some(e))),
                        }
                    }
                }
                Err(e) => {
                    let q = match e {
                        ReqError::Exception(code) => {
                            o.answered = true;
                            refused.push((bi, code));
                            Quality::DeviceException
                        }
                        _ => Quality::CommFailure,
                    };
                    let why = format!("{}: {e}", describe(b));
                    for &i in &b.points {
                        out.push((i, Value::Null, q, Some(why.clone())));
                    }
                    o.error.get_or_insert(why);
                }
            }
        }
        (out, o, refused)
    }

    /// Records a poll cycle of `group`; returns the state change to announce, if any.
    fn record_cycle(&self, group: &str, o: Outcome, status: &crate::StatusBoard) -> Option<DeviceEvent> {
        let mut h = self.health.lock().expect("health");
        let before = h.state();
        if o.answered {
            h.failed_cycles = 0;
            h.online = Some(true);
        } else {
            h.failed_cycles += 1;
            if h.failed_cycles >= self.cfg.offline_after {
                h.online = Some(false);
            }
        }
        h.groups.insert(group.to_string(), o.clone());
        let state = h.state();
        // The error of a group's latest cycle; none once every group had a clean cycle.
        let last_error = h.groups.values().find_map(|g| g.error.clone());
        drop(h);
        status.update(&self.cfg.id, |s| {
            if o.any_data {
                s.polls_ok += 1;
            } else {
                s.polls_failed += 1;
            }
            if o.answered {
                s.last_ok_ms = Some(now_ms());
            }
            s.last_error = last_error;
            s.state = state.into();
            s.discarded_answers = self.counters.discarded.load(Ordering::Relaxed);
            s.requests_unanswered = self.counters.unanswered.load(Ordering::Relaxed);
        });
        if state == before || state == "connecting" {
            return None;
        }
        let reason = match state {
            "online" => "answering".to_string(),
            _ => o.error.unwrap_or_else(|| "no answer".into()),
        };
        Some(DeviceEvent { device: self.cfg.id.clone(), state: state.into(), reason })
    }

    fn is_offline(&self) -> bool {
        self.health.lock().expect("health").online == Some(false)
    }

    /// Splits a coalesced block the device keeps refusing with 02 (a hole in its register map)
    /// or 03 (more registers than it takes at once) in two, for the life of the driver; says so
    /// once in the log and in the device document. False when the block cannot be split.
    fn split(&self, b: &Block, code: u8, status: &crate::StatusBoard) -> bool {
        let addr = |i: usize| self.cfg.points[i].at.address;
        let first = addr(b.points[0]);
        // The middle point that starts at another address than the block (points may share one).
        let Some(mid) = (b.points.len() / 2..b.points.len()).chain(1..b.points.len() / 2).map(|k| addr(b.points[k])).find(|&a| a != first)
        else {
            return false;
        };
        self.cuts.lock().expect("cuts").insert((b.area, mid));
        let text = format!(
            "{} kept answering exception {code:#04x} ({}): split at register {mid}",
            describe(b),
            super::frame::exception_text(code)
        );
        log::warn!("device {}: {text}", self.cfg.id);
        status.update(&self.cfg.id, |s| s.split_reads.push(text));
        true
    }
}

pub(super) async fn run(ep: Endpoint, devices: Vec<DeviceConfig>, mut ctx: DriverContext) -> String {
    let requests = Arc::new(AtomicU64::new(0));
    // Endpoint settings: validation makes the devices of one endpoint agree on them.
    let workers = devices.first().map(|d| d.max_in_flight).unwrap_or(1);
    let backoff = devices.first().map(|d| (d.reconnect_min_ms, d.reconnect_max_ms)).unwrap_or((500, 30_000));
    let (link, mut workers) = Link::start(ep.clone(), workers, backoff, requests);
    let mut by_id: HashMap<String, Arc<Device>> = HashMap::new();
    // The poll groups end with this task (a JoinSet aborts its tasks when dropped).
    let mut groups = tokio::task::JoinSet::new();
    for cfg in devices {
        ctx.status.set(DeviceStatus::new(&cfg.id, cfg.protocol.name(), "connecting", cfg.points.len()));
        let dev = Arc::new(Device {
            id: Arc::from(cfg.id.as_str()),
            health: Mutex::new(Health::default()),
            link: link.clone(),
            counters: Arc::default(),
            cuts: Mutex::default(),
            cfg,
        });
        for g in &dev.cfg.poll_groups {
            let which: Vec<usize> = dev.cfg.points.iter().enumerate().filter(|(_, p)| *p.at.group == *g.name).map(|(i, _)| i).collect();
            if which.is_empty() {
                continue;
            }
            groups.spawn(poll_group(
                dev.clone(),
                g.name.clone(),
                which,
                Duration::from_millis(g.interval_ms),
                ctx.frames.clone(),
                ctx.events.clone(),
                ctx.status.clone(),
            ));
        }
        by_id.insert(dev.cfg.id.clone(), dev);
    }
    let by_id = Arc::new(by_id);
    // Serves commands; a connection worker or poll group that ends (it never should) ends the
    // driver, so the engine restarts it and the devices say why, instead of going quiet.
    loop {
        tokio::select! {
            cmd = ctx.commands.recv() => match cmd {
                Some(cmd) => serve(by_id.clone(), cmd),
                None => return "the engine let go of the driver".into(),
            },
            Some(r) = workers.join_next() => return ended(&format!("the connection worker of {}", ep.key()), r),
            Some(r) = groups.join_next() => return ended("a poll group", r),
        }
    }
}

fn ended(what: &str, r: Result<(), tokio::task::JoinError>) -> String {
    match r {
        Err(e) if e.is_panic() => format!("{what} failed: {}", crate::panic_text(e.into_panic())),
        _ => format!("{what} ended"),
    }
}

fn serve(by_id: Arc<HashMap<String, Arc<Device>>>, cmd: Command) {
    tokio::spawn(async move {
        match cmd {
            Command::Read { device, points, reply } => {
                let _ = reply.send(on_demand_read(&by_id, &device, &points).await);
            }
            Command::Write { device, point, value, reply } => {
                let out = match by_id.get(&device) {
                    Some(d) => write(d, &point, &value).await,
                    None => WriteOutcome::failed(WriteFailure::UnknownDevice, format!("there is no device \"{device}\"")),
                };
                let _ = reply.send(out);
            }
            Command::RawRead { device, request, reply } => {
                let out = match (by_id.get(&device), request) {
                    (Some(d), CommTest::ModbusRegisters(r)) => {
                        Ok(CommAnswer::ModbusRegisters(super::raw::read(&d.link, &d.cfg, &d.counters, &r).await))
                    }
                    (Some(_), _) => Err(format!("device \"{device}\" is a Modbus device: its communication test reads registers")),
                    (None, _) => Err(format!("there is no device \"{device}\"")),
                };
                let _ = reply.send(out);
            }
        }
    });
}

async fn poll_group(
    dev: Arc<Device>,
    group: String,
    which: Vec<usize>,
    every: Duration,
    frames: mpsc::Sender<Frame>,
    events: mpsc::UnboundedSender<DeviceEvent>,
    status: Arc<crate::StatusBoard>,
) {
    let mut blocks = dev.plan(&which);
    // Consecutive 02/03 answers of each coalesced block, by (area, start, count).
    let mut strikes: HashMap<(Area, u16, u16), u32> = HashMap::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut first = true;
    loop {
        let started = tick.tick().await;
        if std::mem::take(&mut first) {
            // The first poll at once; the next ones at this group's own phase within the interval.
            let at = phase(&dev.id, &group, every);
            tick.reset_at(started + if at >= every / 2 { at } else { at + every });
        }
        // One timestamp per cycle: the acquisition time of the whole group.
        let ts = now_ms();
        let was_offline = dev.is_offline();
        let (values, outcome, refused) = dev.read_points(&blocks).await;
        let answered = outcome.answered;
        let mut replan = false;
        strikes.retain(|k, _| refused.iter().any(|&(bi, _)| (blocks[bi].area, blocks[bi].start, blocks[bi].count) == *k));
        for &(bi, code) in &refused {
            let b = &blocks[bi];
            if !(code == 2 || code == 3) || b.points.len() < 2 {
                continue;
            }
            let n = strikes.entry((b.area, b.start, b.count)).or_default();
            *n += 1;
            if *n >= SPLIT_AFTER && dev.split(b, code, &status) {
                replan = true;
            }
        }
        if replan {
            blocks = dev.plan(&which);
            strikes.clear();
        }
        let event = dev.record_cycle(&group, outcome, &status);
        let went_offline = matches!(&event, Some(e) if e.state == "offline");
        if let Some(e) = event {
            log::info!("device {} is {}: {}", e.device, e.state, e.reason);
            let _ = events.send(e);
        }
        // An offline device reports once (quality offline), then stays quiet until it answers.
        if was_offline && !answered {
            continue;
        }
        let samples = values
            .into_iter()
            .map(|(i, v, q, _)| {
                (dev.cfg.points[i].meta.name.clone(), v, if went_offline && !q.is_good() { Quality::Offline } else { q }, Flags::NONE)
            })
            .collect();
        if frames.send(Frame { device: dev.id.clone(), ts_ms: ts, samples }).await.is_err() {
            return;
        }
    }
}

/// Where in `every` a group's polls fall after its first (the second poll comes half an interval
/// to one and a half after the first): spread by the device's and the group's names, the same at
/// every start. Devices started together with the same interval would otherwise poll, and hand
/// on their samples, in the same instant, every time: the collector would hold all their samples
/// at once, and the uplink would get them as one burst.
fn phase(device: &str, group: &str, every: Duration) -> Duration {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same phase at every start of this build.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (device, group).hash(&mut h);
    every.mul_f64((h.finish() % 10_000) as f64 / 10_000.0)
}

async fn on_demand_read(by_id: &HashMap<String, Arc<Device>>, device: &str, points: &[String]) -> Result<Vec<PointReading>, String> {
    let dev = by_id.get(device).ok_or_else(|| format!("there is no device \"{device}\""))?;
    let mut which = Vec::new();
    for name in points {
        which.push(
            dev.cfg
                .points
                .iter()
                .position(|p| *p.meta.name == **name)
                .ok_or_else(|| format!("device \"{device}\" has no point \"{name}\""))?,
        );
    }
    if points.is_empty() {
        which = (0..dev.cfg.points.len()).collect();
    }
    let blocks = dev.plan(&which);
    let ts = now_ms();
    let (vals, _, _) = dev.read_points(&blocks).await;
    Ok(vals
        .into_iter()
        .map(|(i, value, quality, error)| PointReading {
            point: dev.cfg.points[i].meta.name.to_string(),
            value,
            quality,
            ts_ms: ts,
            error,
            flags: Vec::new(),
        })
        .collect())
}

fn failure_of(e: ReqError) -> WriteOutcome {
    match e {
        ReqError::Exception(..) => WriteOutcome::failed(WriteFailure::DeviceException, e.to_string()),
        ReqError::Timeout(_) => WriteOutcome::failed(WriteFailure::DeviceTimeout, e.to_string()),
        ReqError::Link(_) => WriteOutcome::failed(WriteFailure::DeviceOffline, e.to_string()),
    }
}

async fn write(dev: &Device, point: &str, value: &serde_json::Value) -> WriteOutcome {
    let Some(p) = dev.cfg.point(point) else {
        return WriteOutcome::failed(WriteFailure::UnknownPoint, format!("device \"{}\" has no point \"{point}\"", dev.cfg.id));
    };
    if p.meta.access != Access::Rw {
        return WriteOutcome::failed(WriteFailure::ReadOnly, format!("point \"{point}\" is read-only"));
    }
    let wire = match codec::encode(p, value) {
        Ok(w) => w,
        Err((true, m)) => return WriteOutcome::failed(WriteFailure::OutOfRange, m),
        Err((false, m)) => return WriteOutcome::failed(WriteFailure::BadValue, m),
    };
    let (unit, tmo, retries) = (dev.cfg.unit_id, dev.tmo(), 0); // writes are not retried blindly
    let multiple = dev.cfg.multiple_writes_only;
    let op = match wire {
        WireWrite::Coil(on) => Op::WriteCoil { addr: p.at.address, on, multiple },
        WireWrite::Registers(words) => Op::WriteRegisters { addr: p.at.address, words, multiple },
        WireWrite::RegisterBit { bit, on } => {
            let read = Op::Read { area: Area::Holding, start: p.at.address, count: 1 };
            let cur = match dev.link.call(unit, read, tmo, dev.cfg.retries, &dev.counters).await {
                Ok(Answer::Words(w)) if !w.is_empty() => w[0],
                Ok(_) => return WriteOutcome::failed(WriteFailure::Internal, "empty answer reading the register"),
                Err(e) => return failure_of(e),
            };
            let words = vec![if on { cur | (1 << bit) } else { cur & !(1 << bit) }];
            Op::WriteRegisters { addr: p.at.address, words, multiple }
        }
    };
    match dev.link.call(unit, op, tmo, retries, &dev.counters).await {
        Ok(_) => WriteOutcome::ok(),
        Err(e) => failure_of(e),
    }
}

#[cfg(test)]
mod tests {
    use super::phase;
    use std::time::Duration;

    #[test]
    fn groups_started_together_poll_at_their_own_phases_the_same_at_every_start() {
        let every = Duration::from_secs(1);
        let at: Vec<Duration> = (0..100).map(|d| phase(&format!("m{d:03}"), "default", every)).collect();
        assert!(at.iter().all(|p| *p < every));
        assert_eq!(at, (0..100).map(|d| phase(&format!("m{d:03}"), "default", every)).collect::<Vec<_>>(), "the same at every start");
        // 100 devices over ten tenths of the interval: none holds more than a quarter of them
        let mut tenths = [0; 10];
        for p in &at {
            tenths[(p.as_millis() / 100) as usize] += 1;
        }
        assert!(tenths.iter().all(|n| *n <= 25), "spread over the interval: {tenths:?}");
        assert_ne!(phase("m000", "fast", every), phase("m000", "slow", every), "a device's groups have their own phases");
    }
}
