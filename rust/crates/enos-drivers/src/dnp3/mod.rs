//! DNP3: the devices of one address or serial port share one `enos_dnp3::Master` (one TCP
//! connection or line), each device one outstation with its own link address. Values are forwarded as they arrive, one frame per
//! value, stamped with the outstation's time when it sent one.

mod comm;
mod map;

use crate::on_demand::{write_target, Latest};
use crate::{Command, DeviceEvent, Driver, DriverContext, DriverFuture, Frame, SharedDevice};
use enos_batch::Flags;
use enos_collector_config::dnp3::{Dnp3Device, PointType};
use enos_collector_config::{DeviceConfig, ProtocolConfig};
use enos_dnp3::{CommandError, Event, LinkState, Master, Mode, OutstationSettings, PointKind, Settings};
use enos_model::device::{DeviceStatus, WriteFailure, WriteOutcome};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::JoinSet;

struct Device {
    id: Arc<str>,
    cfg: SharedDevice<Dnp3Device>,
    /// The latest reading of each point (on-demand reads answer from here).
    latest: Latest,
}

/// A value without the outstation's time gets its arrival time, but at least 1 ms after the
/// point's previous value: the events of one response arrive within a millisecond, and values
/// of one point at one time would be one value at the cloud (a breaker's trip and close in one
/// poll must stay two changes, in order).
fn arrival_time(now: u64, previous: Option<u64>) -> u64 {
    previous.map_or(now, |ts| now.max(ts + 1))
}

pub struct Dnp3Driver {
    devices: Vec<Device>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Dnp3Driver {
    /// `None` unless every device is a DNP3 one.
    pub fn new(all: &Arc<[DeviceConfig]>) -> Option<Self> {
        fn pick(p: &ProtocolConfig) -> Option<&Dnp3Device> {
            match p {
                ProtocolConfig::Dnp3(c) => Some(c),
                _ => None,
            }
        }
        let devices = (0..all.len())
            .map(|i| {
                let cfg = SharedDevice::new(all, i, pick)?;
                Some(Device { id: Arc::from(all[i].id.as_str()), latest: Latest::new(cfg.points.len()), cfg })
            })
            .collect::<Option<Vec<_>>>()?;
        (!devices.is_empty()).then_some(Dnp3Driver { devices })
    }

    /// The channel's settings: the shared ones from the first device (validation makes the
    /// devices of one address agree), one outstation per device.
    fn settings(&self) -> Settings {
        let c = &self.devices[0].cfg;
        let ms = Duration::from_millis;
        Settings {
            // a TCP address, or the serial port (for the channel's messages)
            address: c.address.clone().or_else(|| c.serial.as_ref().map(|s| s.port.clone())).unwrap_or_default(),
            master_address: c.master_address,
            outstations: self
                .devices
                .iter()
                .map(|d| OutstationSettings {
                    address: d.cfg.outstation_address,
                    integrity_interval: Duration::from_secs(d.cfg.integrity_interval_s),
                    class_intervals: [ms(d.cfg.class1_interval_ms), ms(d.cfg.class2_interval_ms), ms(d.cfg.class3_interval_ms)],
                    unsolicited: d.cfg.unsolicited,
                    time_sync: d.cfg.time_sync,
                })
                .collect(),
            response_timeout: ms(c.response_timeout_ms),
            command_timeout: ms(c.command_timeout_ms),
            reconnect_min: ms(c.reconnect_min_ms),
            reconnect_max: ms(c.reconnect_max_ms),
            ..Settings::default()
        }
    }
}

impl Driver for Dnp3Driver {
    fn devices(&self) -> Vec<String> {
        self.devices.iter().map(|d| d.id.to_string()).collect()
    }

    fn run(self: Box<Self>, ctx: DriverContext) -> DriverFuture {
        Box::pin(run(*self, ctx))
    }
}

/// Where a value of (outstation, kind, index) goes: device and point index.
type Routes = HashMap<(u16, PointKind, u32), (usize, usize)>;

async fn run(mut drv: Dnp3Driver, mut ctx: DriverContext) -> String {
    let mut routes = Routes::new();
    for (di, d) in drv.devices.iter().enumerate() {
        for (pi, p) in d.cfg.points.iter().enumerate() {
            routes.insert((d.cfg.outstation_address, map::kind(p.at.kind), u32::from(p.at.index)), (di, pi));
        }
        ctx.status.set(DeviceStatus::new(&d.id, "dnp3", "connecting", d.cfg.points.len()));
    }
    let started = match (&drv.devices[0].cfg.address, &drv.devices[0].cfg.serial) {
        (_, Some(line)) => {
            // the line is opened again after every failure, like a TCP connection
            let line = line.clone();
            Master::start_with(
                drv.settings(),
                Box::new(move || {
                    let port = crate::modbus::transport::serial(&line).map_err(std::io::Error::other);
                    Box::pin(async move { port })
                }),
            )
        }
        _ => Master::start(drv.settings()),
    };
    let (master, mut events) = match started {
        Ok(m) => m,
        Err(e) => return format!("the DNP3 settings cannot work: {e}"),
    };
    let master = Arc::new(master);
    // commands wait for the outstation's answers: they run beside the event loop
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(ev) => {
                    if !on_event(&mut drv, &routes, &ctx, &master, ev).await {
                        return "the collector stopped taking values".into();
                    }
                }
                None => return "the DNP3 channel ended".into(),
            },
            cmd = ctx.commands.recv() => match cmd {
                Some(cmd) => serve(&drv, &master, &mut running, cmd),
                None => return "the command queue closed".into(),
            },
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    }
}

/// Forwards one event; `false` when the frame sink is gone.
async fn on_event(drv: &mut Dnp3Driver, routes: &Routes, ctx: &DriverContext, master: &Master, ev: Event) -> bool {
    match ev {
        Event::Value { outstation, m } => {
            let Some(&(di, pi)) = routes.get(&(outstation, m.kind, m.index)) else { return true };
            let d = &mut drv.devices[di];
            let p = &d.cfg.points[pi];
            let v = map::value(p, m.value);
            let (q, mut flags) = map::quality(m.kind, m.flags);
            let now = now_ms();
            // the outstation's time unless it cannot be right (a clock never set)
            let ts = match m.time {
                Some(t) if t <= now + crate::iec104::FUTURE_MS && t + crate::iec104::PAST_MS >= now => t,
                Some(_) => {
                    flags |= Flags::TIME_INVALID;
                    arrival_time(now, d.latest.ts_ms(pi))
                }
                None => arrival_time(now, d.latest.ts_ms(pi)),
            };
            d.latest.record(pi, &v, q, ts, flags, None);
            let frame = Frame { device: d.id.clone(), ts_ms: ts, samples: vec![(d.cfg.points[pi].meta.name.clone(), v, q, flags)] };
            ctx.status.update(&d.id, |s| s.last_ok_ms = Some(now));
            ctx.frames.send(frame).await.is_ok()
        }
        Event::Poll { outstation, what, result } => {
            let st = master.stats();
            let discarded = st.malformed.load(Ordering::Relaxed) + st.wrong_address.load(Ordering::Relaxed);
            let unanswered = st.timeouts.load(Ordering::Relaxed);
            for d in drv.devices.iter().filter(|d| d.cfg.outstation_address == outstation) {
                let mut changed = false;
                ctx.status.update(&d.id, |s| {
                    // the channel's counts: which outstation a garbled frame was for is unknown
                    s.discarded_answers = discarded;
                    s.requests_unanswered = unanswered;
                    let state = if result.is_ok() { "online" } else { "refusing" };
                    changed = s.state != state;
                    s.state = state.into();
                    match &result {
                        Ok(()) => {
                            s.polls_ok += 1;
                            s.last_error = None;
                        }
                        Err(why) => {
                            s.polls_failed += 1;
                            s.last_error = Some(format!("{what}: {why}"));
                        }
                    }
                });
                if changed {
                    let reason = result.clone().err().unwrap_or_else(|| format!("{what} answered"));
                    let _ = ctx.events.send(DeviceEvent {
                        device: d.id.to_string(),
                        state: if result.is_ok() { "online" } else { "refusing" }.into(),
                        reason,
                    });
                }
            }
            true
        }
        Event::Notice { .. } => true, // logged by the session
        Event::Link { state, reason } => {
            let (name, error) = match state {
                // online once an integrity poll answered
                LinkState::Up => ("connecting", None),
                LinkState::Down | LinkState::Closed => ("offline", Some(reason.clone())),
            };
            for d in &drv.devices {
                let mut changed = false;
                ctx.status.update(&d.id, |s| {
                    changed = s.state != name;
                    s.state = name.into();
                    if error.is_some() {
                        s.polls_failed += 1;
                        s.last_error = error.clone();
                    }
                });
                if changed {
                    let _ = ctx.events.send(DeviceEvent { device: d.id.to_string(), state: name.into(), reason: reason.clone() });
                }
            }
            true
        }
    }
}

fn serve(drv: &Dnp3Driver, master: &Arc<Master>, running: &mut JoinSet<()>, cmd: Command) {
    let find = |id: &str| drv.devices.iter().find(|d| &*d.id == id);
    match cmd {
        Command::Read { device, points, reply } => {
            let r = match find(&device) {
                Some(d) => d.latest.read(&device, &d.cfg.points, &points, "the outstation has not sent this point yet"),
                None => Err(format!("there is no device \"{device}\"")),
            };
            let _ = reply.send(r);
        }
        Command::RawRead { device, request, reply } => {
            let Some(d) = find(&device) else {
                let _ = reply.send(Err(format!("there is no device \"{device}\"")));
                return;
            };
            let enos_model::comm_test::CommTest::Dnp3Poll(req) = request else {
                let _ = reply.send(Err(format!("device \"{device}\" is a DNP3 outstation: its communication test is dnp3-poll")));
                return;
            };
            let (master, outstation, names) = (master.clone(), d.cfg.outstation_address, comm::names(&d.cfg));
            running.spawn(async move {
                let _ = reply.send(Ok(comm::poll(master, outstation, req, names).await));
            });
        }
        Command::Write { device, point, value, reply } => {
            let fail = |f, why: String| WriteOutcome::failed(f, why);
            let d = find(&device);
            let (p, kind) = match write_target(&device, d.map(|d| &d.cfg.points[..]), &point, |a| a.command) {
                Ok(t) => t,
                Err(refused) => {
                    let _ = reply.send(refused);
                    return;
                }
            };
            let (outstation, index) = (d.map_or(0, |d| d.cfg.outstation_address), p.at.index);
            let mode = if p.at.select_before_operate { Mode::SelectBeforeOperate } else { Mode::DirectOperate };
            let c = match map::command(p, kind, &value) {
                Ok(map::Output::Crob(crob)) if p.at.kind == PointType::BinaryOutput => {
                    enos_dnp3::Command::Crob { outstation, index, crob, mode }
                }
                Ok(map::Output::Analog(value)) if p.at.kind == PointType::AnalogOutput => {
                    enos_dnp3::Command::Analog { outstation, index, value, mode }
                }
                Ok(_) => {
                    let _ = reply.send(fail(WriteFailure::ReadOnly, format!("point \"{point}\" cannot take its command")));
                    return;
                }
                Err((range, why)) => {
                    let _ = reply.send(fail(if range { WriteFailure::OutOfRange } else { WriteFailure::BadValue }, why));
                    return;
                }
            };
            let master = master.clone();
            running.spawn(async move {
                let out = match master.command(c).await {
                    Ok(()) => WriteOutcome::ok(),
                    Err(e) => {
                        let failure = match e {
                            CommandError::Timeout { .. } => WriteFailure::DeviceTimeout,
                            CommandError::Refused { .. } | CommandError::Mismatch { .. } => WriteFailure::DeviceException,
                            CommandError::LinkDown(_) => WriteFailure::DeviceOffline,
                            CommandError::UnknownOutstation(_) => WriteFailure::Internal,
                        };
                        WriteOutcome::failed(failure, e.to_string())
                    }
                };
                let _ = reply.send(out);
            });
        }
    }
}
