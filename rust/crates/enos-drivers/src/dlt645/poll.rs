//! Poll schedules, meter liveness, and on-demand reads for the meters of one line.

use super::MeterCfg;
use crate::{Command, DeviceEvent, DriverContext, Frame, StatusBoard};
use enos_batch::{now_ms, Flags, Quality, Value};
use enos_dlt645 as dlt;
use enos_model::comm_test::{CommAnswer, CommTest};
use enos_model::device::{DeviceStatus, PointReading, WriteFailure, WriteOutcome};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

struct Meter {
    cfg: MeterCfg,
    id: Arc<str>,
    line: Arc<dlt::Line>,
    health: Mutex<Health>,
}

#[derive(Default)]
struct Health {
    online: Option<bool>,
    failed_cycles: u32,
    /// The latest cycle of each poll group (a list: a meter has one or two; a map's node is
    /// ~800 bytes a meter).
    groups: Vec<(String, Outcome)>,
}

impl Health {
    fn state(&self) -> &'static str {
        match self.online {
            None => "connecting",
            Some(false) => "offline",
            // Answering, but the latest cycle of every group brought only abnormal replies.
            Some(true) if !self.groups.is_empty() && self.groups.iter().all(|(_, g)| !g.any_data) => "refusing",
            Some(true) => "online",
        }
    }
}

/// What one cycle of reads brought.
#[derive(Clone, Default)]
struct Outcome {
    answered: bool,
    any_data: bool,
    error: Option<String>,
    counted: dlt::Counters,
}

/// The values of one cycle: (point index, value, quality), and apart, for the points without a
/// value, why. Every meter of a line holds its cycle's values until the line has read them all:
/// 32 bytes a point (an error beside each would double it).
#[derive(Default)]
struct Values {
    read: Vec<(u32, Value, Quality)>,
    why: Vec<(u32, String)>,
}

impl Values {
    fn push(&mut self, i: u32, v: Value, q: Quality, why: Option<String>) {
        self.read.push((i, v, q));
        if let Some(w) = why {
            self.why.push((i, w));
        }
    }
}

/// A reading as the batch carries it: numbers scaled, dates and times as text (the meter's local
/// time, which the gateway cannot place in a zone).
fn value_of(m: &enos_collector_config::PointMeta, r: dlt::Reading) -> Value {
    match r {
        dlt::Reading::Number(v) if m.scale == 1.0 && m.offset == 0.0 && m.decimals.is_none() => Value::Float(v),
        dlt::Reading::Number(v) => {
            let y = v * m.scale + m.offset;
            let p = 10f64.powi(m.decimals.unwrap_or(9) as i32);
            Value::Float((y * p).round() / p)
        }
        other => Value::Str(other.to_string()),
    }
}

impl Meter {
    /// Reads the points `which`, one request each; after a read without an answer the rest of the
    /// cycle is not asked (the line is shared).
    async fn read(&self, which: &[u32]) -> (Values, Outcome) {
        let mut out = Values { read: Vec::with_capacity(which.len()), why: Vec::new() };
        let mut o = Outcome::default();
        let mut silent: Option<String> = None;
        for &i in which {
            if let Some(why) = &silent {
                out.push(i, Value::Null, Quality::CommFailure, Some(why.clone()));
                continue;
            }
            let cfg = &self.cfg.cfg.points[i as usize];
            // resolved per read, not kept: parsing a format is nothing beside a line's round trip
            let point = match cfg.at.point() {
                Ok(p) => p,
                Err(e) => {
                    out.push(i, Value::Null, Quality::DecodeError, Some(e));
                    continue;
                }
            };
            let (r, counted) = self.line.read_timed(&self.cfg.meter, &point, self.cfg.timing).await;
            o.counted.discarded += counted.discarded;
            o.counted.timeouts += counted.timeouts;
            match r {
                Ok(reading) => {
                    o.answered = true;
                    o.any_data = true;
                    out.push(i, value_of(&cfg.meta, reading), Quality::Good, None);
                }
                Err(e) => {
                    let q = match e {
                        dlt::Error::Exception { .. } => Quality::DeviceException,
                        dlt::Error::Decode { .. } => Quality::DecodeError,
                        dlt::Error::Timeout { .. } | dlt::Error::Link { .. } => Quality::CommFailure,
                    };
                    if q == Quality::CommFailure {
                        silent = Some(e.to_string());
                    } else {
                        o.answered = true;
                        o.any_data |= q == Quality::DecodeError;
                    }
                    o.error.get_or_insert(e.to_string());
                    out.push(i, Value::Null, q, Some(e.to_string()));
                }
            }
        }
        (out, o)
    }

    /// Records a poll cycle of `group`; returns the state change to announce, if any.
    fn record_cycle(&self, group: &str, o: Outcome, status: &StatusBoard) -> Option<DeviceEvent> {
        let mut h = self.health.lock().expect("health");
        let before = h.state();
        if o.answered {
            h.failed_cycles = 0;
            h.online = Some(true);
        } else {
            h.failed_cycles += 1;
            if h.failed_cycles >= self.cfg.cfg.offline_after {
                h.online = Some(false);
            }
        }
        match h.groups.iter_mut().find(|(g, _)| g == group) {
            Some((_, latest)) => *latest = o.clone(),
            None => h.groups.push((group.to_string(), o.clone())),
        }
        let state = h.state();
        let last_error = h.groups.iter().find_map(|(_, g)| g.error.clone());
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
            s.discarded_answers += o.counted.discarded;
            s.requests_unanswered += o.counted.timeouts;
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
}

pub(super) async fn run(line: dlt::LineConfig, meters: Vec<MeterCfg>, mut ctx: DriverContext) -> String {
    let line = Arc::new(dlt::Line::new(line));
    let mut by_id: HashMap<String, Arc<Meter>> = HashMap::new();
    // The poll groups end with this task (a JoinSet aborts its tasks when dropped).
    let mut groups = tokio::task::JoinSet::new();
    for cfg in meters {
        ctx.status.set(DeviceStatus::new(&cfg.id, "dlt645", "connecting", cfg.cfg.points.len()));
        let m = Arc::new(Meter { id: Arc::from(cfg.id.as_str()), line: line.clone(), health: Mutex::default(), cfg });
        for g in &m.cfg.cfg.poll_groups {
            let mut which: Vec<u32> = (0..).zip(&m.cfg.cfg.points).filter(|(_, p)| *p.at.group == *g.name).map(|(i, _)| i).collect();
            which.shrink_to_fit(); // held for good: 4 bytes a point
            if which.is_empty() {
                continue;
            }
            let every = Duration::from_millis(g.interval_ms);
            groups.spawn(poll_group(m.clone(), g.name.clone(), which, every, ctx.frames.clone(), ctx.events.clone(), ctx.status.clone()));
        }
        by_id.insert(m.cfg.id.clone(), m);
    }
    let by_id = Arc::new(by_id);
    for (order, every) in time_syncs(&by_id) {
        groups.spawn(time_sync(line.clone(), order, every));
    }
    loop {
        tokio::select! {
            cmd = ctx.commands.recv() => match cmd {
                Some(cmd) => serve(by_id.clone(), cmd),
                None => return "the engine let go of the driver".into(),
            },
            Some(r) = groups.join_next() => return match r {
                Err(e) if e.is_panic() => format!("a poll group failed: {}", crate::panic_text(e.into_panic())),
                _ => "a poll group ended".into(),
            },
        }
    }
}

fn serve(by_id: Arc<HashMap<String, Arc<Meter>>>, cmd: Command) {
    tokio::spawn(async move {
        match cmd {
            Command::Read { device, points, reply } => {
                let _ = reply.send(on_demand_read(&by_id, &device, &points).await);
            }
            Command::Write { device, point, reply, .. } => {
                let out = match by_id.get(&device) {
                    Some(_) => WriteOutcome::failed(
                        WriteFailure::ReadOnly,
                        format!("point \"{point}\": the gateway reads DL/T 645 meters; writing to them is not supported"),
                    ),
                    None => WriteOutcome::failed(WriteFailure::UnknownDevice, format!("there is no device \"{device}\"")),
                };
                let _ = reply.send(out);
            }
            Command::RawRead { device, request, reply } => {
                let out = match (by_id.get(&device), request) {
                    (Some(m), CommTest::Dlt645Identifiers(r)) => {
                        Ok(CommAnswer::Dlt645Identifiers(super::comm::read(&m.line, &m.cfg, m.is_offline(), &r).await))
                    }
                    (Some(_), _) => Err(format!("device \"{device}\" is a DL/T 645 meter: its communication test reads data identifiers")),
                    (None, _) => Err(format!("there is no device \"{device}\"")),
                };
                let _ = reply.send(out);
            }
        }
    });
}

async fn poll_group(
    m: Arc<Meter>,
    group: String,
    which: Vec<u32>,
    every: Duration,
    frames: mpsc::Sender<Frame>,
    events: mpsc::UnboundedSender<DeviceEvent>,
    status: Arc<StatusBoard>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        // One timestamp per cycle: the acquisition time of the whole group.
        let ts = now_ms();
        let was_offline = m.is_offline();
        let (values, outcome) = m.read(&which).await;
        let answered = outcome.answered;
        let event = m.record_cycle(&group, outcome, &status);
        let went_offline = matches!(&event, Some(e) if e.state == "offline");
        if let Some(e) = event {
            log::info!("device {} is {}: {}", e.device, e.state, e.reason);
            let _ = events.send(e);
        }
        // An offline meter reports once (quality offline), then stays quiet until it answers.
        if was_offline && !answered {
            continue;
        }
        let samples = values
            .read
            .into_iter()
            .map(|(i, v, q)| {
                let q = if went_offline && !q.is_good() { Quality::Offline } else { q };
                (m.cfg.cfg.points[i as usize].meta.name.clone(), v, q, Flags::NONE)
            })
            .collect();
        if frames.send(Frame { device: m.id.clone(), ts_ms: ts, samples }).await.is_err() {
            return;
        }
    }
}

async fn on_demand_read(by_id: &HashMap<String, Arc<Meter>>, device: &str, points: &[String]) -> Result<Vec<PointReading>, String> {
    let m = by_id.get(device).ok_or_else(|| format!("there is no device \"{device}\""))?;
    let mut which = Vec::new();
    for name in points {
        which.push(
            (0..)
                .zip(&m.cfg.cfg.points)
                .find(|(_, p)| *p.meta.name == **name)
                .map(|(i, _)| i)
                .ok_or_else(|| format!("device \"{device}\" has no point \"{name}\""))?,
        );
    }
    if points.is_empty() {
        which = (0..m.cfg.cfg.points.len() as u32).collect();
    }
    let ts = now_ms();
    let (vals, _) = m.read(&which).await;
    let why: HashMap<u32, String> = vals.why.into_iter().collect();
    Ok(vals
        .read
        .into_iter()
        .map(|(i, value, quality)| PointReading {
            point: m.cfg.cfg.points[i as usize].meta.name.to_string(),
            value,
            quality,
            ts_ms: ts,
            error: why.get(&i).cloned(),
            flags: Vec::new(),
        })
        .collect())
}

/// The broadcast time syncs the meters ask for: one per address order (the six fields go in the
/// meter's order), at the shortest interval configured for it.
fn time_syncs(by_id: &HashMap<String, Arc<Meter>>) -> Vec<(dlt::FieldOrder, Duration)> {
    let mut out: Vec<(dlt::FieldOrder, Duration)> = Vec::new();
    for m in by_id.values().filter(|m| m.cfg.cfg.time_sync_interval_s > 0) {
        let every = Duration::from_secs(m.cfg.cfg.time_sync_interval_s);
        match out.iter_mut().find(|(o, _)| *o == m.cfg.meter.order) {
            Some((_, e)) => *e = (*e).min(every),
            None => out.push((m.cfg.meter.order, every)),
        }
    }
    out
}

/// Sets the meters' clocks to the gateway's local time (meters keep local time) every `every`.
async fn time_sync(line: Arc<dlt::Line>, order: dlt::FieldOrder, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let Some((date, time)) = local_now() else {
            log::warn!("DL/T 645 line {}: no local time to broadcast", line.name());
            continue;
        };
        if let Err(e) = line.broadcast_time(date, time, order).await {
            log::warn!("DL/T 645 broadcast time sync: {e}");
        }
    }
}

/// The local date and time of day (the box's time zone).
fn local_now() -> Option<(dlt::Date, dlt::TimeOfDay)> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which lives on this stack frame.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&now, &mut tm) }.is_null() {
        return None;
    }
    let date = dlt::Date { year: (tm.tm_year + 1900) as u16, month: (tm.tm_mon + 1) as u8, day: tm.tm_mday as u8, weekday: None };
    Some((date, dlt::TimeOfDay { hour: tm.tm_hour as u8, minute: tm.tm_min as u8, second: tm.tm_sec.min(59) as u8 }))
}
