//! Poll schedules, device liveness, and on-demand reads and writes for the devices of one
//! endpoint.

use super::codec::{self, WireWrite};
use super::link::{Answer, Endpoint, Link, Op, ReqError};
use super::plan::{plan, Block};
use crate::{Command, DeviceEvent, DriverContext, Frame};
use enos_model::config::{Access, Area, DeviceConfig};
use enos_model::device::{DeviceStatus, PointReading, WriteFailure, WriteOutcome};
use enos_model::{now_ms, Quality, Value};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

struct Device {
    cfg: DeviceConfig,
    names: Vec<Arc<str>>,
    id: Arc<str>,
    link: Link,
    live: Mutex<Liveness>,
}

#[derive(Default)]
struct Liveness {
    online: Option<bool>,
    failed_cycles: u32,
}

impl Device {
    fn tmo(&self) -> Duration {
        Duration::from_millis(self.cfg.timeout_ms)
    }

    async fn read_block(&self, b: &Block) -> Result<Answer, ReqError> {
        self.link.call(self.cfg.unit_id, Op::Read { area: b.area, start: b.start, count: b.count }, self.tmo(), self.cfg.retries).await
    }

    /// Reads the blocks and decodes every point of them: (point index, value, quality, error).
    async fn read_points(&self, blocks: &[Block]) -> (Vec<(usize, Value, Quality, Option<String>)>, bool, Option<ReqError>) {
        let mut out = Vec::new();
        let mut any_answer = false;
        let mut last_err = None;
        for b in blocks {
            match self.read_block(b).await {
                Ok(ans) => {
                    any_answer = true;
                    for &i in &b.points {
                        let p = &self.cfg.points[i];
                        let off = (p.address - b.start) as usize;
                        let decoded = match &ans {
                            Answer::Words(w) => codec::decode(p, w.get(off..).unwrap_or(&[]), &[]),
                            Answer::Bits(bits) => codec::decode(p, &[], bits.get(off..).unwrap_or(&[])),
                            Answer::Written => Err("unexpected answer".into()),
                        };
                        match decoded {
                            Ok(v) => out.push((i, v, Quality::Good, None)),
                            Err(e) => out.push((i, Value::Null, Quality::DecodeError, Some(e))),
                        }
                    }
                }
                Err(e) => {
                    let q = match e {
                        ReqError::Exception(..) => {
                            any_answer = true;
                            Quality::DeviceException
                        }
                        _ => Quality::CommFailure,
                    };
                    for &i in &b.points {
                        out.push((i, Value::Null, q, Some(e.to_string())));
                    }
                    last_err = Some(e);
                }
            }
        }
        (out, any_answer, last_err)
    }

    /// Records a poll cycle's outcome; returns the state change to announce, if any.
    fn record_cycle(&self, answered: bool, err: Option<&ReqError>, status: &crate::StatusBoard) -> Option<DeviceEvent> {
        let mut l = self.live.lock().expect("liveness");
        let was = l.online;
        if answered {
            l.failed_cycles = 0;
            l.online = Some(true);
        } else {
            l.failed_cycles += 1;
            if l.failed_cycles >= self.cfg.offline_after {
                l.online = Some(false);
            }
        }
        let now_online = l.online;
        drop(l);
        status.update(&self.cfg.id, |s| {
            if answered {
                s.polls_ok += 1;
                s.last_ok_ms = Some(now_ms());
            } else {
                s.polls_failed += 1;
            }
            if let Some(e) = err {
                s.last_error = Some(e.to_string());
            }
            s.state = match now_online {
                Some(true) => "online",
                Some(false) => "offline",
                None => "connecting",
            }
            .into();
        });
        if was != now_online {
            if let Some(on) = now_online {
                let reason = if on { "answering".to_string() } else { err.map(|e| e.to_string()).unwrap_or_else(|| "no answer".into()) };
                return Some(DeviceEvent { device: self.cfg.id.clone(), state: if on { "online" } else { "offline" }.into(), reason });
            }
        }
        None
    }

    fn is_offline(&self) -> bool {
        self.live.lock().expect("liveness").online == Some(false)
    }
}

pub(super) async fn run(ep: Endpoint, devices: Vec<DeviceConfig>, mut ctx: DriverContext) {
    let requests = Arc::new(AtomicU64::new(0));
    let workers = devices.iter().map(|d| d.max_in_flight).max().unwrap_or(1);
    let backoff = devices.first().map(|d| (d.reconnect_min_ms, d.reconnect_max_ms)).unwrap_or((500, 30_000));
    let link = Link::start(ep.clone(), workers, backoff, requests);
    let mut by_id: HashMap<String, Arc<Device>> = HashMap::new();
    // The poll groups end with this task (a JoinSet aborts its tasks when dropped).
    let mut groups = tokio::task::JoinSet::new();
    for cfg in devices {
        ctx.status.set(DeviceStatus {
            id: cfg.id.clone(),
            protocol: format!("{:?}", cfg.protocol),
            state: "connecting".into(),
            last_ok_ms: None,
            last_error: None,
            polls_ok: 0,
            polls_failed: 0,
            points: cfg.points.len(),
        });
        let dev = Arc::new(Device {
            names: cfg.points.iter().map(|p| Arc::from(p.name.as_str())).collect(),
            id: Arc::from(cfg.id.as_str()),
            live: Mutex::new(Liveness::default()),
            link: link.clone(),
            cfg,
        });
        for g in &dev.cfg.poll_groups {
            let which: Vec<usize> = dev.cfg.points.iter().enumerate().filter(|(_, p)| p.group == g.name).map(|(i, _)| i).collect();
            if which.is_empty() {
                continue;
            }
            let blocks = plan(&dev.cfg.points, &which, dev.cfg.max_gap, dev.cfg.max_registers);
            groups.spawn(poll_group(
                dev.clone(),
                blocks,
                Duration::from_millis(g.interval_ms),
                ctx.frames.clone(),
                ctx.events.clone(),
                ctx.status.clone(),
            ));
        }
        by_id.insert(dev.cfg.id.clone(), dev);
    }
    let by_id = Arc::new(by_id);
    while let Some(cmd) = ctx.commands.recv().await {
        let by_id = by_id.clone();
        tokio::spawn(async move {
            match cmd {
                Command::Read { device, points, reply } => {
                    let _ = reply.send(on_demand_read(&by_id, &device, &points).await);
                }
                Command::Write { device, point, value, reply } => {
                    let out = match by_id.get(&device) {
                        Some(d) => write(d, &point, &value).await,
                        None => WriteOutcome::failed(WriteFailure::UnknownDevice, format!("no device {device:?}")),
                    };
                    let _ = reply.send(out);
                }
                Command::RawRead { device, request, reply } => {
                    let out = match by_id.get(&device) {
                        Some(d) => Ok(super::raw::read(&d.link, &d.cfg, &request).await),
                        None => Err(format!("no device {device:?}")),
                    };
                    let _ = reply.send(out);
                }
            }
        });
    }
}

async fn poll_group(
    dev: Arc<Device>,
    blocks: Vec<Block>,
    every: Duration,
    frames: mpsc::Sender<Frame>,
    events: mpsc::UnboundedSender<DeviceEvent>,
    status: Arc<crate::StatusBoard>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        // One timestamp per cycle: the acquisition time of the whole group.
        let ts = now_ms();
        let was_offline = dev.is_offline();
        let (values, answered, err) = dev.read_points(&blocks).await;
        let event = dev.record_cycle(answered, err.as_ref(), &status);
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
            .map(|(i, v, q, _)| (dev.names[i].clone(), v, if went_offline && !q.is_good() { Quality::Offline } else { q }))
            .collect();
        if frames.send(Frame { device: dev.id.clone(), ts_ms: ts, samples }).await.is_err() {
            return;
        }
    }
}

async fn on_demand_read(by_id: &HashMap<String, Arc<Device>>, device: &str, points: &[String]) -> Result<Vec<PointReading>, String> {
    let dev = by_id.get(device).ok_or_else(|| format!("no device {device:?}"))?;
    let mut which = Vec::new();
    for name in points {
        which.push(dev.cfg.points.iter().position(|p| &p.name == name).ok_or_else(|| format!("device {device:?} has no point {name:?}"))?);
    }
    if points.is_empty() {
        which = (0..dev.cfg.points.len()).collect();
    }
    let blocks = plan(&dev.cfg.points, &which, dev.cfg.max_gap, dev.cfg.max_registers);
    let ts = now_ms();
    let (vals, _, _) = dev.read_points(&blocks).await;
    Ok(vals
        .into_iter()
        .map(|(i, value, quality, error)| PointReading { point: dev.cfg.points[i].name.clone(), value, quality, ts_ms: ts, error })
        .collect())
}

fn failure_of(e: ReqError) -> WriteOutcome {
    match e {
        ReqError::Exception(..) => WriteOutcome::failed(WriteFailure::DeviceException, e.to_string()),
        ReqError::Timeout => WriteOutcome::failed(WriteFailure::DeviceTimeout, e.to_string()),
        ReqError::Link(_) => WriteOutcome::failed(WriteFailure::DeviceOffline, e.to_string()),
    }
}

async fn write(dev: &Device, point: &str, value: &serde_json::Value) -> WriteOutcome {
    let Some(p) = dev.cfg.point(point) else {
        return WriteOutcome::failed(WriteFailure::UnknownPoint, format!("device {:?} has no point {point:?}", dev.cfg.id));
    };
    if p.access != Access::Rw {
        return WriteOutcome::failed(WriteFailure::ReadOnly, format!("point {point:?} is read-only"));
    }
    let wire = match codec::encode(p, value) {
        Ok(w) => w,
        Err((true, m)) => return WriteOutcome::failed(WriteFailure::OutOfRange, m),
        Err((false, m)) => return WriteOutcome::failed(WriteFailure::BadValue, m),
    };
    let (unit, tmo, retries) = (dev.cfg.unit_id, dev.tmo(), 0); // writes are not retried blindly
    let multiple = dev.cfg.multiple_writes_only;
    let op = match wire {
        WireWrite::Coil(on) => Op::WriteCoil { addr: p.address, on, multiple },
        WireWrite::Registers(words) => Op::WriteRegisters { addr: p.address, words, multiple },
        WireWrite::RegisterBit { bit, on } => {
            let cur = match dev.link.call(unit, Op::Read { area: Area::Holding, start: p.address, count: 1 }, tmo, dev.cfg.retries).await {
                Ok(Answer::Words(w)) if !w.is_empty() => w[0],
                Ok(_) => return WriteOutcome::failed(WriteFailure::Internal, "empty answer reading the register"),
                Err(e) => return failure_of(e),
            };
            let words = vec![if on { cur | (1 << bit) } else { cur & !(1 << bit) }];
            Op::WriteRegisters { addr: p.address, words, multiple }
        }
    };
    match dev.link.call(unit, op, tmo, retries).await {
        Ok(_) => WriteOutcome::ok(),
        Err(e) => failure_of(e),
    }
}
