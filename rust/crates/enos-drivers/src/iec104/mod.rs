//! IEC 60870-5-104: the devices of one station address share one `enos_iec104::Station`
//! (one connection; each device names its own common address). Values are forwarded as they
//! arrive, one frame per information object, stamped with the station's time tag when it sent one.

mod comm;
mod map;
#[cfg(test)]
mod tests;

// the plausible window of a device time tag, shared with the DNP3 driver
pub(crate) use map::{FUTURE_MS, PAST_MS};

use crate::on_demand::{write_target, Latest};
use crate::{Command, DeviceEvent, Driver, DriverContext, DriverFuture, Frame, SharedDevice};
use enos_batch::Flags;
use enos_collector_config::iec104::{Iec104Device, Iec104Point};
use enos_collector_config::{DeviceConfig, ProtocolConfig};
use enos_iec104::{CommandError, Event, LinkState, Settings, Station, TlsSettings};
use enos_model::comm_test::CommTest;
use enos_model::device::{DeviceStatus, WriteFailure, WriteOutcome};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::JoinSet;

struct Device {
    id: Arc<str>,
    cfg: SharedDevice<Iec104Device>,
    /// The latest reading of each point (on-demand reads answer from here).
    latest: Latest,
    /// When an implausible time tag of this station was last logged (at most once an hour).
    clock_warned_ms: u64,
}

pub struct Iec104Driver {
    devices: Vec<Device>,
    /// Why the station is not connected (`None`: data flows), for the communication test.
    down: Option<String>,
    /// Interrogations asked for by communication tests.
    tests: Vec<comm::Pending>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Iec104Driver {
    /// `None` unless every device is an IEC 104 one.
    pub fn new(all: &Arc<[DeviceConfig]>) -> Option<Self> {
        fn pick(p: &ProtocolConfig) -> Option<&Iec104Device> {
            match p {
                ProtocolConfig::Iec104(c) => Some(c),
                _ => None,
            }
        }
        let devices = (0..all.len())
            .map(|i| {
                let cfg = SharedDevice::new(all, i, pick)?;
                Some(Device { id: Arc::from(all[i].id.as_str()), latest: Latest::new(cfg.points.len()), clock_warned_ms: 0, cfg })
            })
            .collect::<Option<Vec<_>>>()?;
        (!devices.is_empty()).then_some(Iec104Driver {
            devices,
            down: Some("the first connection is still being made".into()),
            tests: Vec::new(),
        })
    }

    /// The station's settings: the endpoint's shared ones from the first device (validation
    /// makes the devices of one address agree), every device's common address.
    fn settings(&self) -> Settings {
        let c = &self.devices[0].cfg;
        let s = |secs: u32| Duration::from_secs(u64::from(secs));
        let mut common: Vec<u16> = self.devices.iter().map(|d| d.cfg.common_address).collect();
        common.sort_unstable();
        common.dedup();
        Settings {
            addresses: std::iter::once(c.address.clone()).chain(c.redundant_address.clone()).collect(),
            common_addresses: common,
            k: c.k,
            w: c.w,
            t0: s(c.t0_s),
            t1: s(c.t1_s),
            t2: s(c.t2_s),
            t3: s(c.t3_s),
            reconnect_min: Duration::from_millis(c.reconnect_min_ms),
            reconnect_max: Duration::from_millis(c.reconnect_max_ms),
            interrogation_interval: Duration::from_secs(c.interrogation_interval_s),
            counter_interval: Duration::from_secs(c.counter_interval_s),
            clock_sync_interval: if c.clock_sync { Duration::from_secs(c.clock_sync_interval_s) } else { Duration::ZERO },
            command_timeout: Duration::from_millis(c.command_timeout_ms),
            tls: c.tls.as_ref().map(|t| TlsSettings {
                ca_file: t.ca.clone().into(),
                cert_file: t.cert.clone().into(),
                key_file: t.key.clone().into(),
                server_name: t.server_name.clone(),
            }),
            ..Settings::default()
        }
    }
}

impl Driver for Iec104Driver {
    fn devices(&self) -> Vec<String> {
        self.devices.iter().map(|d| d.id.to_string()).collect()
    }

    fn run(self: Box<Self>, ctx: DriverContext) -> DriverFuture {
        Box::pin(run(*self, ctx))
    }
}

/// Where a (common address, IOA) goes: device and point index.
type Routes = HashMap<(u16, u32), (usize, usize)>;

fn point_ca(d: &Device, p: &Iec104Point) -> u16 {
    p.at.ca.unwrap_or(d.cfg.common_address)
}

async fn run(mut drv: Iec104Driver, mut ctx: DriverContext) -> String {
    let mut routes = Routes::new();
    for (di, d) in drv.devices.iter().enumerate() {
        for (pi, p) in d.cfg.points.iter().enumerate() {
            routes.insert((point_ca(d, p), p.at.ioa), (di, pi));
        }
        ctx.status.set(DeviceStatus::new(&d.id, "iec104", "connecting", d.cfg.points.len()));
    }
    let (station, mut events) = match Station::start(drv.settings()) {
        Ok(s) => s,
        Err(e) => return format!("the IEC 104 settings cannot work: {e}"),
    };
    let station = Arc::new(station);
    // a test's interrogation that failed or ran out of time: (test id, why)
    let (test_end_tx, mut test_ends) = tokio::sync::mpsc::unbounded_channel::<(u64, &'static str, String)>();
    let mut next_test = 0u64;
    // commands wait for the station's confirmations: they run beside the event loop and end
    // with the driver
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(ev) => {
                    if !on_event(&mut drv, &routes, &ctx, ev).await {
                        return "the collector stopped taking values".into();
                    }
                }
                None => return "the IEC 104 session ended".into(),
            },
            cmd = ctx.commands.recv() => match cmd {
                Some(Command::RawRead { device, request, reply }) => {
                    next_test += 1;
                    interrogate(&mut drv, &station, &mut running, &test_end_tx, next_test, &device, request, reply);
                }
                Some(cmd) => serve(&drv, &station, &mut running, cmd),
                None => return "the command queue closed".into(),
            },
            Some((id, failure, why)) = test_ends.recv() => {
                if let Some(i) = drv.tests.iter().position(|t| t.id == id) {
                    drv.tests.swap_remove(i).finish(Some((failure, why)));
                }
            }
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    }
}

/// Forwards one event; `false` when the frame sink is gone.
async fn on_event(drv: &mut Iec104Driver, routes: &Routes, ctx: &DriverContext, ev: Event) -> bool {
    match ev {
        Event::Value { ca, ioa, value, quality, time, cot, type_id } => {
            let point = routes.get(&(ca, ioa)).map(|&(di, pi)| drv.devices[di].cfg.points[pi].meta.name.clone());
            for t in &mut drv.tests {
                t.offer(ca, cot, || comm::object(ioa, type_id, value, quality, time, point.as_deref().map(String::from)), ioa);
            }
            let Some(&(di, pi)) = routes.get(&(ca, ioa)) else { return true };
            let d = &mut drv.devices[di];
            let p = &d.cfg.points[pi];
            let Some(v) = map::value(p, value) else { return true };
            let (q, mut flags) = map::quality(quality, time);
            let (ts, refused) = map::timestamp(time, now_ms());
            if refused {
                flags |= Flags::TIME_INVALID;
                if let Some(t) = time.filter(|t| !t.invalid && ts > d.clock_warned_ms + 3_600_000) {
                    d.clock_warned_ms = ts;
                    log::warn!(
                        "device {}: IOA {ioa} came with the time tag {} (Unix ms), more than 5 minutes ahead of this gateway's clock \
                         or 7 days behind it: is the station's clock set? Such values keep their arrival time and the flag \"time invalid\" \
                         (said once an hour)",
                        d.id,
                        t.unix_ms
                    );
                }
            }
            d.latest.record(pi, &v, q, ts, flags, None);
            let frame = Frame { device: d.id.clone(), ts_ms: ts, samples: vec![(d.cfg.points[pi].meta.name.clone(), v, q, flags)] };
            let id = d.id.to_string();
            ctx.status.update(&id, |s| {
                s.last_ok_ms = Some(now_ms());
            });
            ctx.frames.send(frame).await.is_ok()
        }
        Event::InterrogationStarted { ca, requested } => {
            // tests of one address are sent in the order asked: the first waiting one is this
            if let Some(t) = drv.tests.iter_mut().find(|t| requested && t.ca == ca && !t.active) {
                t.active = true;
            }
            true
        }
        Event::InterrogationDone { ca } => {
            for t in std::mem::take(&mut drv.tests) {
                match t.active && t.ca == ca {
                    true => t.finish(None),
                    false => drv.tests.push(t),
                }
            }
            for d in drv.devices.iter().filter(|d| d.cfg.common_address == ca) {
                ctx.status.update(&d.id, |s| s.polls_ok += 1);
            }
            true
        }
        Event::CounterInterrogationDone { .. } => true,
        Event::Link { state, reason, .. } => {
            let (name, error) = match state {
                LinkState::Up => ("online", None),
                LinkState::Down => ("offline", Some(reason.clone())),
                LinkState::Closed => ("offline", Some(reason.clone())),
            };
            drv.down = error.clone();
            if let Some(why) = &error {
                for t in std::mem::take(&mut drv.tests) {
                    t.finish(Some(("offline", format!("the link to the station went down during the interrogation: {why}"))));
                }
            }
            for d in &drv.devices {
                let mut changed = false;
                ctx.status.update(&d.id, |s| {
                    changed = s.state != name;
                    s.state = name.into();
                    if error.is_some() {
                        s.polls_failed += 1;
                    }
                    s.last_error = error.clone();
                });
                if changed {
                    let _ = ctx.events.send(DeviceEvent { device: d.id.to_string(), state: name.into(), reason: reason.clone() });
                }
            }
            true
        }
    }
}

fn serve(drv: &Iec104Driver, station: &Arc<Station>, running: &mut JoinSet<()>, cmd: Command) {
    let find = |id: &str| drv.devices.iter().find(|d| &*d.id == id);
    match cmd {
        Command::Read { device, points, reply } => {
            let r = match find(&device) {
                Some(d) => d.latest.read(&device, &d.cfg.points, &points, "the station has not sent this point yet"),
                None => Err(format!("there is no device \"{device}\"")),
            };
            let _ = reply.send(r);
        }
        // the event loop takes communication tests before they get here (they wait for events)
        Command::RawRead { reply, .. } => {
            let _ = reply.send(Err("the communication test could not be started".into()));
        }
        Command::Write { device, point, value, reply } => {
            let Some(d) = find(&device) else {
                let _ = reply.send(WriteOutcome::failed(WriteFailure::UnknownDevice, format!("there is no device \"{device}\"")));
                return;
            };
            let (p, kind) = match write_target(&device, Some(&d.cfg.points[..]), &point, |a| a.command) {
                Ok(t) => t,
                Err(refused) => {
                    let _ = reply.send(refused);
                    return;
                }
            };
            let c = match map::command(p, kind, &value) {
                Ok(v) => enos_iec104::Command {
                    ca: point_ca(d, p),
                    ioa: p.at.command_ioa.unwrap_or(p.at.ioa),
                    value: v,
                    qualifier: p.at.qualifier,
                    select_before_operate: p.at.select_before_operate,
                },
                Err((range, why)) => {
                    let _ = reply.send(WriteOutcome::failed(if range { WriteFailure::OutOfRange } else { WriteFailure::BadValue }, why));
                    return;
                }
            };
            let station = station.clone();
            running.spawn(async move {
                let out = match station.command(c).await {
                    Ok(()) => WriteOutcome::ok(),
                    Err(e) => {
                        let failure = match e {
                            CommandError::Timeout { .. } => WriteFailure::DeviceTimeout,
                            CommandError::Refused { .. } => WriteFailure::DeviceException,
                            CommandError::LinkDown(_) => WriteFailure::DeviceOffline,
                            CommandError::BadValue(_) => WriteFailure::BadValue,
                        };
                        WriteOutcome::failed(failure, e.to_string())
                    }
                };
                let _ = reply.send(out);
            });
        }
    }
}

/// The communication test: a general interrogation of the device's common address (or the one
/// asked), answered once the station terminates it; at once when the station is not connected.
#[allow(clippy::too_many_arguments)]
fn interrogate(
    drv: &mut Iec104Driver,
    station: &Arc<Station>,
    running: &mut JoinSet<()>,
    ends: &tokio::sync::mpsc::UnboundedSender<(u64, &'static str, String)>,
    id: u64,
    device: &str,
    request: CommTest,
    reply: comm::Reply,
) {
    let Some(d) = drv.devices.iter().find(|d| &*d.id == device) else {
        let _ = reply.send(Err(format!("there is no device \"{device}\"")));
        return;
    };
    let CommTest::Iec104Interrogation(req) = request else {
        let _ = reply.send(Err(format!("device \"{device}\" is an IEC 104 station: its communication test is an interrogation")));
        return;
    };
    let ca = req.ca.unwrap_or(d.cfg.common_address);
    if let Some(why) = &drv.down {
        comm::refuse(reply, ca, "offline", format!("device \"{device}\" is offline: the station is not connected ({why})"));
        return;
    }
    drv.tests.push(comm::Pending { id, ca, active: false, req, objects: Vec::new(), reply, started: std::time::Instant::now() });
    let (station, ends) = (station.clone(), ends.clone());
    running.spawn(async move {
        let end = match station.interrogate(ca).await {
            Ok(()) => {
                tokio::time::sleep(comm::LIMIT).await;
                (
                    "timeout",
                    format!(
                        "the station confirmed the interrogation of common address {ca} but did not terminate it within {} s",
                        comm::LIMIT.as_secs()
                    ),
                )
            }
            Err(e @ CommandError::Refused { .. }) => ("refused", e.to_string()),
            Err(e @ CommandError::LinkDown(_)) => ("offline", e.to_string()),
            Err(e) => ("timeout", e.to_string()),
        };
        let _ = ends.send((id, end.0, end.1));
    });
}
