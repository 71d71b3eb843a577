//! Devices served by protocol plugins: each device runs its own sandboxed instance of its
//! plugin (`enos-plugin-host`) on a thread of its own; a plugin that crashes, overruns its time
//! budget or memory is stopped and restarted by the host, and its device shows why.
//!
//! Plugins are directories under `ENOS_PLUGINS_DIR` (default `/data/enos/plugins`); compiled
//! code is cached in its `.cache`.

use crate::{Command, DeviceEvent, Driver, DriverContext, DriverFuture, Frame, StatusBoard};
use enos_batch::{now_ms, Flags, Quality, Value};
use enos_collector_config::line::Parity;
use enos_collector_config::plugin::PluginDevice;
use enos_collector_config::{DeviceConfig, ProtocolConfig};
use enos_model::device::DeviceStatus;
use enos_plugin_host as host;
pub use enos_plugin_host::{plugins_dir, Manifest};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;

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
            let _running = match started {
                Ok(Ok(r)) => r,
                Ok(Err(reason)) => return reason,
                Err(e) => return format!("the plugin loader stopped: {e}"),
            };
            while let Some(cmd) = ctx.commands.recv().await {
                refuse(cmd);
            }
            std::future::pending::<String>().await
        })
    }
}

/// On-demand reads, writes and the communication test are not part of this first version.
fn refuse(cmd: Command) {
    let no = "devices served by plugins do not take on-demand reads, writes or tests yet".to_string();
    match cmd {
        Command::Read { reply, .. } => {
            let _ = reply.send(Err(no));
        }
        Command::Write { reply, .. } => {
            let _ = reply.send(enos_model::device::WriteOutcome::failed(enos_model::device::WriteFailure::Internal, no));
        }
        Command::RawRead { reply, .. } => {
            let _ = reply.send(Err(no));
        }
    }
}

fn start_all(
    devices: &Arc<[DeviceConfig]>,
    frames: mpsc::Sender<Frame>,
    events: mpsc::UnboundedSender<DeviceEvent>,
    status: Arc<StatusBoard>,
) -> Result<Vec<host::supervisor::Running>, String> {
    let rt = runtime()?;
    let mut running = Vec::new();
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
        running.push(host::supervisor::spawn(rt.clone(), plugin, spec, schedule, move |r| out.report(r)).map_err(|e| e.to_string())?);
    }
    Ok(running)
}

/// Turns one device's reports into frames, status and events (runs on its plugin's thread).
struct Output {
    device: Arc<str>,
    /// Point name → its configured name (shared) and scale/offset.
    points: BTreeMap<String, (Arc<str>, f64, f64)>,
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
        let points = p.points.iter().map(|x| (x.meta.name.to_string(), (x.meta.name.clone(), x.meta.scale, x.meta.offset))).collect();
        Output { device: Arc::from(d.id.as_str()), points, frames, events, status }
    }

    fn report(&self, r: host::Report) {
        match r {
            host::Report::Samples(samples) => {
                // One frame per timestamp the driver gave.
                let mut by_ts: BTreeMap<u64, Vec<_>> = BTreeMap::new();
                for s in samples {
                    let Some((name, scale, offset)) = self.points.get(&s.point) else { continue };
                    let value = match s.value {
                        host::Value::Float(x) if *scale == 1.0 && *offset == 0.0 => Value::Float(x),
                        host::Value::Float(x) => Value::Float(x * scale + offset),
                        host::Value::Integer(i) => Value::Int(i),
                        host::Value::Boolean(b) => Value::Bool(b),
                        host::Value::Text(t) => Value::Str(t),
                    };
                    let q = match s.quality {
                        host::Quality::Good => Quality::Good,
                        host::Quality::Uncertain | host::Quality::Bad => Quality::Invalid,
                    };
                    by_ts.entry(s.timestamp_ms).or_default().push((name.clone(), value, q, Flags::NONE));
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
