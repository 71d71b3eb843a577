//! Devices served by protocol plugins: each device runs its own sandboxed instance of its
//! plugin (`enos-plugin-host`) on a thread of its own; a plugin that crashes, overruns its time
//! budget or memory is stopped and restarted by the host, and its device shows why.
//!
//! On-demand requests take the same path as every protocol's: a read and the communication
//! test (`plugin-read`) poll the driver now; a write is the driver's `command` (direct, or
//! select then execute), its answer in the driver's words under the usual reply codes.
//!
//! Plugins are directories under `ENOS_PLUGINS_DIR` (default `/data/enos/plugins`); compiled
//! code is cached in its `.cache`.

use crate::on_demand::write_target;
use crate::{Command, DeviceEvent, Driver, DriverContext, DriverFuture, Frame, StatusBoard};
use enos_batch::{now_ms, Flags, Quality, Value};
use enos_collector_config::line::Parity;
use enos_collector_config::plugin::{PluginDevice, PluginPoint};
use enos_collector_config::{DeviceConfig, PointMeta, ProtocolConfig};
use enos_model::comm_test::{CommAnswer, CommTest, PluginReadAnswer, PluginValue};
use enos_model::device::{DeviceStatus, PointReading, WriteFailure, WriteOutcome};
use enos_plugin_host as host;
use enos_plugin_host::supervisor::{Request, Running};
use enos_plugin_host::CallError;
pub use enos_plugin_host::{plugins_dir, Manifest};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

pub struct PluginDriver {
    devices: Arc<[DeviceConfig]>,
}

fn settings(p: &ProtocolConfig) -> Option<&PluginDevice> {
    match p {
        ProtocolConfig::Plugin(d) => Some(d),
        _ => None,
    }
}

impl PluginDriver {
    pub fn new(devices: &Arc<[DeviceConfig]>) -> Option<Self> {
        devices.iter().all(|d| settings(&d.proto).is_some()).then(|| PluginDriver { devices: devices.clone() })
    }
}

/// The one engine of this process (its epoch thread times every plugin call).
fn runtime() -> Result<Arc<host::Runtime>, String> {
    static RT: OnceLock<Result<Arc<host::Runtime>, String>> = OnceLock::new();
    RT.get_or_init(|| host::Runtime::new(Some(plugins_dir().join(".cache")))).clone()
}

/// Loads the plugin in `dir` the way its devices will (manifest, component translated and
/// cached): a resource package's plugin is checked with this before anything changes.
pub fn load(dir: &std::path::Path) -> Result<Arc<host::Plugin>, String> {
    runtime()?.load(dir).map_err(|e| e.to_string())
}

impl Driver for PluginDriver {
    fn devices(&self) -> Vec<String> {
        self.devices.iter().map(|d| d.id.clone()).collect()
    }

    fn run(self: Box<Self>, mut ctx: DriverContext) -> DriverFuture {
        Box::pin(async move {
            let devices = self.devices.clone();
            let status = ctx.status.clone();
            let (frames, events) = (ctx.frames.clone(), ctx.events.clone());
            // Loading compiles (or reads the cache): not on the engine's threads.
            let started = tokio::task::spawn_blocking(move || start_all(&devices, frames, events, status)).await;
            let running: BTreeMap<String, Served> = match started {
                Ok(Ok(r)) => r,
                Ok(Err(reason)) => return reason,
                Err(e) => return format!("the plugin loader stopped: {e}"),
            };
            while let Some(cmd) = ctx.commands.recv().await {
                on_demand(&running, cmd);
            }
            std::future::pending::<String>().await
        })
    }
}

/// A started device: its configuration, its plugin and its running instance.
struct Served {
    cfg: PluginDevice,
    plugin: String,
    running: Arc<Running>,
}

/// The caller stopped waiting for the driver's answer.
#[derive(Debug)]
struct TimedOut(Duration);

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the driver did not answer within {} ms", self.0.as_millis())
    }
}

/// Asks the device's thread and waits for the answer (within `timeout` when given).
async fn ask<T: Send + 'static>(
    running: &Running,
    timeout: Option<Duration>,
    make: impl FnOnce(Box<dyn FnOnce(Result<T, CallError>) + Send>) -> Request,
) -> Result<Result<T, CallError>, TimedOut> {
    let (tx, rx) = oneshot::channel();
    running.request(make(Box::new(move |r| {
        let _ = tx.send(r);
    })));
    let ended = |_| Err(CallError::NotRunning("the driver has ended".into()));
    match timeout {
        None => Ok(rx.await.unwrap_or_else(ended)),
        Some(t) => tokio::time::timeout(t, rx).await.map(|r| r.unwrap_or_else(ended)).map_err(|_| TimedOut(t)),
    }
}

fn on_demand(running: &BTreeMap<String, Served>, cmd: Command) {
    match cmd {
        Command::Read { device, points, reply } => {
            let Some(d) = running.get(&device) else {
                let _ = reply.send(Err(format!("there is no device \"{device}\"")));
                return;
            };
            let asked = match chosen(&device, &d.cfg, &points) {
                Ok(a) => a,
                Err(e) => {
                    let _ = reply.send(Err(e));
                    return;
                }
            };
            let (cfg, r) = (d.cfg.clone(), d.running.clone());
            tokio::spawn(async move {
                let polled = ask(&r, None, |reply| Request::Read { reply }).await.expect("no timeout");
                let _ = reply.send(Ok(readings(&cfg, &asked, &polled)));
            });
        }
        Command::RawRead { device, request, reply } => {
            let Some(d) = running.get(&device) else {
                let _ = reply.send(Err(format!("there is no device \"{device}\"")));
                return;
            };
            let CommTest::PluginRead(req) = request else {
                let _ = reply.send(Err(format!("device \"{device}\" is served by a plugin: its communication test is plugin-read")));
                return;
            };
            let asked = match chosen(&device, &d.cfg, &req.points) {
                Ok(a) => a,
                Err(e) => {
                    let _ = reply.send(Err(e));
                    return;
                }
            };
            let (cfg, plugin, r) = (d.cfg.clone(), d.plugin.clone(), d.running.clone());
            tokio::spawn(async move {
                let t0 = Instant::now();
                let polled = ask(&r, None, |reply| Request::Read { reply }).await.expect("no timeout");
                let took_ms = t0.elapsed().as_millis() as u64;
                let _ = reply.send(Ok(CommAnswer::PluginRead(test_answer(&cfg, plugin, &asked, &polled, took_ms))));
            });
        }
        Command::Write { device, point, value, reply } => {
            let d = running.get(&device);
            let (p, select) = match write_target(&device, d.map(|d| &d.cfg.points[..]), &point, |a| Some(a.select_before_operate)) {
                Ok(t) => t,
                Err(refused) => {
                    let _ = reply.send(refused);
                    return;
                }
            };
            let d = d.expect("write_target found the device");
            let v = match to_driver(&p.meta, &value) {
                Ok(v) => v,
                Err((failure, why)) => {
                    let _ = reply.send(WriteOutcome::failed(failure, why));
                    return;
                }
            };
            let (r, timeout, name) = (d.running.clone(), Duration::from_millis(d.cfg.command_timeout_ms), p.meta.name.to_string());
            tokio::spawn(async move {
                let _ = reply.send(command(&r, &name, v, select, timeout).await);
            });
        }
    }
}

/// The driver's `command`: select then execute, or direct; each step within `timeout`.
async fn command(r: &Running, point: &str, value: host::Value, select: bool, timeout: Duration) -> WriteOutcome {
    let timeout_ms = timeout.as_millis().try_into().unwrap_or(u32::MAX);
    let step = |kind| host::CommandRequest { point: point.into(), value: value.clone(), kind, timeout_ms };
    let steps = if select {
        vec![("select", host::CommandKind::Select), ("execute", host::CommandKind::Execute)]
    } else {
        vec![("", host::CommandKind::Direct)]
    };
    let mut said = String::new();
    for (what, kind) in steps {
        let cmd = step(kind);
        let of = if what.is_empty() { String::new() } else { format!("{what}: ") };
        let answer = match ask(r, Some(timeout), |reply| Request::Command { cmd, reply }).await {
            Ok(a) => a,
            Err(t) => return WriteOutcome::failed(WriteFailure::DeviceTimeout, format!("{of}{t}")),
        };
        match answer {
            Ok(words) => said = words,
            Err(CallError::Failed(e)) => return WriteOutcome::failed(WriteFailure::DeviceException, format!("{of}{e}")),
            Err(CallError::NotRunning(e)) => return WriteOutcome::failed(WriteFailure::DeviceOffline, format!("{of}{e}")),
            Err(CallError::Stopped(e)) => return WriteOutcome::failed(WriteFailure::Internal, format!("{of}{e}")),
        }
    }
    WriteOutcome { ok: true, failure: None, message: if said.is_empty() { "written".into() } else { said } }
}

/// The value a write gives, as the driver takes it: scale and offset undone for numbers.
fn to_driver(m: &PointMeta, v: &serde_json::Value) -> Result<host::Value, (WriteFailure, String)> {
    let unscaled = m.scale == 1.0 && m.offset == 0.0;
    match v {
        serde_json::Value::Bool(b) => Ok(host::Value::Boolean(*b)),
        serde_json::Value::String(t) => Ok(host::Value::Text(t.clone())),
        serde_json::Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if let Some(why) = m.out_of_range(x) {
                return Err((WriteFailure::OutOfRange, why));
            }
            Ok(match n.as_i64() {
                Some(i) if unscaled => host::Value::Integer(i),
                _ => host::Value::Float((x - m.offset) / m.scale),
            })
        }
        _ => Err((WriteFailure::BadValue, format!("point \"{}\" takes true/false, a number or text, not {v}", m.name))),
    }
}

/// The points asked (none: all), by index; or which one the device does not have.
fn chosen(device: &str, cfg: &PluginDevice, asked: &[String]) -> Result<Vec<usize>, String> {
    if asked.is_empty() {
        return Ok((0..cfg.points.len()).collect());
    }
    asked
        .iter()
        .map(|n| cfg.points.iter().position(|p| *p.meta.name == **n).ok_or_else(|| format!("device \"{device}\" has no point \"{n}\"")))
        .collect()
}

/// Why a point has no value from an on-demand poll, in words.
fn missing(polled: &Result<Vec<host::Sample>, CallError>) -> String {
    match polled {
        Ok(_) => "the driver sent no value for it in this poll".into(),
        Err(CallError::Failed(e)) => format!("the driver's poll failed: {e}"),
        Err(CallError::Stopped(e) | CallError::NotRunning(e)) => e.clone(),
    }
}

fn sample_of<'a>(polled: &'a Result<Vec<host::Sample>, CallError>, p: &PluginPoint) -> Option<&'a host::Sample> {
    polled.as_ref().ok()?.iter().rev().find(|s| s.point == *p.meta.name)
}

fn readings(cfg: &PluginDevice, asked: &[usize], polled: &Result<Vec<host::Sample>, CallError>) -> Vec<PointReading> {
    asked
        .iter()
        .map(|&i| {
            let p = &cfg.points[i];
            match sample_of(polled, p) {
                Some(s) => PointReading {
                    point: p.meta.name.to_string(),
                    value: batch_value(&s.value, &p.meta),
                    quality: batch_quality(s.quality),
                    ts_ms: s.timestamp_ms,
                    error: None,
                    flags: Vec::new(),
                },
                None => PointReading {
                    point: p.meta.name.to_string(),
                    value: Value::Null,
                    quality: Quality::CommFailure,
                    ts_ms: now_ms(),
                    error: Some(missing(polled)),
                    flags: Vec::new(),
                },
            }
        })
        .collect()
}

fn test_answer(
    cfg: &PluginDevice,
    plugin: String,
    asked: &[usize],
    polled: &Result<Vec<host::Sample>, CallError>,
    took_ms: u64,
) -> PluginReadAnswer {
    let values: Vec<PluginValue> = asked
        .iter()
        .map(|&i| {
            let p = &cfg.points[i];
            let (point, address) = (p.meta.name.to_string(), p.at.address.clone());
            match sample_of(polled, p) {
                Some(s) => {
                    let v = batch_value(&s.value, &p.meta);
                    let unit = if p.meta.unit.is_empty() { String::new() } else { format!(" {}", p.meta.unit) };
                    let quality = match s.quality {
                        host::Quality::Good => "good",
                        host::Quality::Uncertain => "uncertain",
                        host::Quality::Bad => "bad",
                    };
                    PluginValue {
                        point,
                        address,
                        ok: true,
                        text: format!("{v}{unit}"),
                        value: serde_json::to_value(&v).unwrap_or_default(),
                        quality: quality.into(),
                    }
                }
                None => {
                    PluginValue { point, address, ok: false, value: serde_json::Value::Null, text: missing(polled), quality: String::new() }
                }
            }
        })
        .collect();
    let got = values.iter().filter(|v| v.ok).count();
    let (failure, message) = match polled {
        Ok(_) => (None, format!("{got} of {} points read", values.len())),
        Err(CallError::Failed(e)) => (Some("offline"), format!("the driver's poll failed: {e}")),
        Err(CallError::Stopped(e)) => (Some("stopped"), e.clone()),
        Err(CallError::NotRunning(e)) => (Some("not-running"), e.clone()),
    };
    PluginReadAnswer { ok: polled.is_ok() && got == values.len(), plugin, values, failure: failure.map(String::from), message, took_ms }
}

/// A driver's value as the batch carries it (numbers scaled by the point's table).
fn batch_value(v: &host::Value, m: &PointMeta) -> Value {
    match v {
        host::Value::Float(x) if m.scale == 1.0 && m.offset == 0.0 => Value::Float(*x),
        host::Value::Float(x) => Value::Float(x * m.scale + m.offset),
        host::Value::Integer(i) => Value::Int(*i),
        host::Value::Boolean(b) => Value::Bool(*b),
        host::Value::Text(t) => Value::Str(t.clone()),
    }
}

fn batch_quality(q: host::Quality) -> Quality {
    match q {
        host::Quality::Good => Quality::Good,
        host::Quality::Uncertain | host::Quality::Bad => Quality::Invalid,
    }
}

fn start_all(
    devices: &Arc<[DeviceConfig]>,
    frames: mpsc::Sender<Frame>,
    events: mpsc::UnboundedSender<DeviceEvent>,
    status: Arc<StatusBoard>,
) -> Result<BTreeMap<String, Served>, String> {
    let rt = runtime()?;
    let mut running = BTreeMap::new();
    for d in devices.iter() {
        let p = settings(&d.proto).expect("checked in new");
        status.set(DeviceStatus::new(&d.id, "plugin", "connecting", p.points.len()));
        let plugin = rt.load(&plugins_dir().join(&p.plugin)).map_err(|e| format!("device \"{}\": {e}", d.id))?;
        let checked = plugin.check_settings(&p.settings).map_err(|f| format!("device \"{}\": {}", d.id, f.join("; ")))?;
        let endpoints = p
            .endpoints
            .iter()
            .map(|(id, e)| {
                let ep = match (&e.address, &e.serial) {
                    (Some(a), _) => host::Endpoint::Tcp(a.clone()),
                    (None, Some(s)) => host::Endpoint::Serial {
                        port: s.port.clone().into(),
                        baud: s.baud,
                        parity: match s.parity {
                            Parity::None => 'N',
                            Parity::Even => 'E',
                            Parity::Odd => 'O',
                        },
                    },
                    (None, None) => host::Endpoint::Tcp(String::new()),
                };
                (id.clone(), ep)
            })
            .collect();
        let spec = host::DeviceSpec {
            id: d.id.clone(),
            settings: checked,
            points: p.points.iter().map(|x| (x.meta.name.to_string(), x.at.address.clone())).collect(),
            endpoints,
            kv_file: Some(plugins_dir().join(".data").join(format!("{}.json", d.id))),
        };
        let schedule = host::Schedule { poll: Duration::from_millis(p.poll_interval_ms), ..host::Schedule::default() };
        let out = Output::new(d, p, frames.clone(), events.clone(), status.clone());
        let name = format!("{} {}", plugin.manifest.name, plugin.manifest.version);
        let r = host::supervisor::spawn(rt.clone(), plugin, spec, schedule, move |r| out.report(r)).map_err(|e| e.to_string())?;
        running.insert(d.id.clone(), Served { cfg: p.clone(), plugin: name, running: Arc::new(r) });
    }
    Ok(running)
}

/// Turns one device's reports into frames, status and events (runs on its plugin's thread).
struct Output {
    device: Arc<str>,
    /// Point name → its table entry.
    points: BTreeMap<String, PointMeta>,
    frames: mpsc::Sender<Frame>,
    events: mpsc::UnboundedSender<DeviceEvent>,
    status: Arc<StatusBoard>,
}

impl Output {
    fn new(
        d: &DeviceConfig,
        p: &PluginDevice,
        frames: mpsc::Sender<Frame>,
        events: mpsc::UnboundedSender<DeviceEvent>,
        status: Arc<StatusBoard>,
    ) -> Output {
        let points = p.points.iter().map(|x| (x.meta.name.to_string(), x.meta.clone())).collect();
        Output { device: Arc::from(d.id.as_str()), points, frames, events, status }
    }

    fn report(&self, r: host::Report) {
        match r {
            host::Report::Samples(samples) => {
                // One frame per timestamp the driver gave.
                let mut by_ts: BTreeMap<u64, Vec<_>> = BTreeMap::new();
                for s in samples {
                    let Some(m) = self.points.get(&s.point) else { continue };
                    let (value, q) = (batch_value(&s.value, m), batch_quality(s.quality));
                    by_ts.entry(s.timestamp_ms).or_default().push((m.name.clone(), value, q, Flags::NONE));
                }
                self.status.update(&self.device, |st| {
                    st.polls_ok += 1;
                    st.last_ok_ms = Some(now_ms());
                });
                for (ts_ms, samples) in by_ts {
                    if self.frames.blocking_send(Frame { device: self.device.clone(), ts_ms, samples }).is_err() {
                        return;
                    }
                }
            }
            host::Report::Event(e) => log::info!("device \"{}\" reports: {}", self.device, e.message),
            host::Report::State(s, reason) => {
                let state = match s {
                    host::DeviceState::Online => "online",
                    host::DeviceState::Offline => "offline",
                    host::DeviceState::Failed => "failed",
                };
                self.status.update(&self.device, |st| {
                    st.state = state.into();
                    st.last_error = (!reason.is_empty()).then(|| reason.clone());
                    if s != host::DeviceState::Online {
                        st.polls_failed += 1;
                    }
                });
                let reason = if reason.is_empty() { "answering".into() } else { reason };
                let _ = self.events.send(DeviceEvent { device: self.device.to_string(), state: state.into(), reason });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_value_reaches_the_driver_unscaled_and_a_bad_one_is_refused_in_words() {
        let plain = PointMeta::named("n");
        assert_eq!(to_driver(&plain, &serde_json::json!(7)), Ok(host::Value::Integer(7)), "an integer stays one");
        assert_eq!(to_driver(&plain, &serde_json::json!(true)), Ok(host::Value::Boolean(true)));
        let scaled = PointMeta {
            scale: 1000.0,
            offset: 10.0,
            range: enos_collector_config::Range::new(Some(0.0), Some(5000.0)),
            ..PointMeta::named("e")
        };
        assert_eq!(to_driver(&scaled, &serde_json::json!(2010)), Ok(host::Value::Float(2.0)));
        assert_eq!(
            to_driver(&scaled, &serde_json::json!(6000)),
            Err((WriteFailure::OutOfRange, "6000 is outside the point's range 0..5000".into()))
        );
        assert_eq!(
            to_driver(&plain, &serde_json::json!([1])),
            Err((WriteFailure::BadValue, "point \"n\" takes true/false, a number or text, not [1]".into()))
        );
    }
}
