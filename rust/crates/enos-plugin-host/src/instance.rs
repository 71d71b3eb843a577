//! One plugin instance serving one device: its store (the sandbox's state: connections, key-value
//! store, log budget, memory limit) and the calls into it, each with a time budget.

use crate::bindings::enos::driver::{connections, host, types};
use crate::bindings::Plugin as Bindings;
use crate::conn::{Conn, Endpoint};
use crate::runtime::{Plugin, Runtime, TICK};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{ResourceLimiter, Store, Trap};

pub use types::{Event, Sample};

/// The device an instance serves, as the collector's configuration gives it.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    pub id: String,
    /// Checked against the plugin's schema (`Plugin::check_settings`), defaults filled in.
    pub settings: serde_json::Value,
    /// Point name and address.
    pub points: Vec<(String, String)>,
    /// What the driver may open, by id.
    pub endpoints: BTreeMap<String, Endpoint>,
    /// Where the key-value store is kept (none: in memory only).
    pub kv_file: Option<PathBuf>,
}

/// Why a call did not return normally.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The driver answered with an error (the device is offline or failed with these words).
    #[error("{0}")]
    Failed(String),
    /// The instance was stopped (a trap, the time budget, the memory limit); it must be
    /// instantiated again.
    #[error("{0}")]
    Stopped(String),
    /// No instance runs to take an on-demand request (it is being restarted, or has ended).
    #[error("{0}")]
    NotRunning(String),
}

pub(crate) struct State {
    device: String,
    endpoints: BTreeMap<String, Endpoint>,
    tcp: bool,
    serial: bool,
    conns: BTreeMap<u32, Conn>,
    next_handle: u32,
    max_conns: usize,
    /// The end of the running call's time budget: reads wait no longer.
    call_end: Instant,
    kv: crate::kv::Kv,
    log: crate::log_budget::LogBudget,
    /// The last error-level line (a panic's message, logged by the SDK before it traps).
    pub(crate) last_error: Option<String>,
    memory_limit: usize,
    memory_refused: bool,
    out: Vec<Sample>,
    events: Vec<Event>,
}

impl ResourceLimiter for State {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        let ok = desired <= self.memory_limit;
        self.memory_refused |= !ok;
        Ok(ok)
    }
    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl types::Host for State {}

impl host::Host for State {
    fn now_ms(&mut self) -> u64 {
        now_ms()
    }
    fn log(&mut self, level: host::Level, message: String) {
        let message: String = message.chars().take(1000).collect();
        if level == host::Level::Error {
            self.last_error = Some(message.clone());
        }
        let level = match level {
            host::Level::Debug => log::Level::Debug,
            host::Level::Info => log::Level::Info,
            host::Level::Warn => log::Level::Warn,
            host::Level::Error => log::Level::Error,
        };
        self.log.write(&self.device, level, &message);
    }
    fn kv_get(&mut self, key: String) -> Option<Vec<u8>> {
        self.kv.get(&key)
    }
    fn kv_set(&mut self, key: String, value: Vec<u8>) -> Result<(), String> {
        self.kv.set(key, value)
    }
    fn kv_delete(&mut self, key: String) {
        self.kv.delete(&key)
    }
    fn emit(&mut self, samples: Vec<Sample>) {
        self.out.extend(samples);
    }
    fn emit_event(&mut self, e: Event) {
        self.events.push(e);
    }
}

impl connections::Host for State {
    fn open(&mut self, endpoint: String) -> Result<u32, connections::IoError> {
        use connections::IoError;
        let Some(ep) = self.endpoints.get(&endpoint) else {
            let named: Vec<&str> = self.endpoints.keys().map(String::as_str).collect();
            let named = if named.is_empty() { "none".to_string() } else { named.join(", ") };
            return Err(IoError::NotPermitted(format!("device \"{}\" names no endpoint \"{endpoint}\" (it names {named})", self.device)));
        };
        let allowed = match ep {
            Endpoint::Tcp(_) => self.tcp,
            Endpoint::Serial { .. } => self.serial,
        };
        if !allowed {
            return Err(IoError::NotPermitted(format!("the plugin's manifest does not ask for {} connections", ep.kind())));
        }
        if self.conns.len() >= self.max_conns {
            return Err(IoError::NotPermitted(format!("at most {} connections are open at once", self.max_conns)));
        }
        let timeout = self.call_end.saturating_duration_since(Instant::now());
        let conn = Conn::open(ep, timeout).map_err(IoError::Unavailable)?;
        self.next_handle += 1;
        self.conns.insert(self.next_handle, conn);
        Ok(self.next_handle)
    }
    fn read(&mut self, h: u32, max: u32, deadline_ms: u32) -> Result<Vec<u8>, connections::IoError> {
        let budget = self.call_end.saturating_duration_since(Instant::now());
        let wait = Duration::from_millis(deadline_ms.into()).min(budget);
        let c = self.conns.get_mut(&h).ok_or(connections::IoError::Closed)?;
        c.read(max.min(64 * 1024) as usize, wait)
    }
    fn write(&mut self, h: u32, data: Vec<u8>) -> Result<(), connections::IoError> {
        self.conns.get_mut(&h).ok_or(connections::IoError::Closed)?.write(&data)
    }
    fn close(&mut self, h: u32) {
        self.conns.remove(&h);
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A live instance. Dropping it closes its connections and frees its memory.
pub struct Instance {
    plugin: Arc<Plugin>,
    store: Store<State>,
    bindings: Bindings,
}

impl Instance {
    /// Instantiates `plugin` for `device` (nothing of the driver runs yet: see `init`).
    pub fn new(rt: &Runtime, plugin: &Arc<Plugin>, device: &DeviceSpec) -> Result<Instance, String> {
        let m = &plugin.manifest;
        let state = State {
            device: device.id.clone(),
            endpoints: device.endpoints.clone(),
            tcp: m.capabilities.tcp,
            serial: m.capabilities.serial,
            conns: BTreeMap::new(),
            next_handle: 0,
            max_conns: m.limits.connections as usize,
            call_end: Instant::now(),
            kv: crate::kv::Kv::open(device.kv_file.clone().filter(|_| m.capabilities.kv), m.limits.kv_bytes as usize, m.capabilities.kv),
            log: crate::log_budget::LogBudget::new(m.limits.log_lines_per_minute),
            last_error: None,
            memory_limit: m.limits.memory_mib as usize * 1024 * 1024,
            memory_refused: false,
            out: Vec::new(),
            events: Vec::new(),
        };
        let mut store = Store::new(&rt.engine, state);
        store.limiter(|s| s);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(budget_ticks(m.limits.call_ms));
        let mut linker = Linker::<State>::new(&rt.engine);
        Bindings::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s).map_err(|e| e.to_string())?;
        // WASI imports a guest's standard library brings along: present, but trap when called.
        linker.define_unknown_imports_as_traps(&plugin.component).map_err(|e| e.to_string())?;
        let bindings = Bindings::instantiate(&mut store, &plugin.component, &linker)
            .map_err(|e| format!("plugin \"{}\" does not fit the driver interface: {}", m.name, root(&e)))?;
        Ok(Instance { plugin: plugin.clone(), store, bindings })
    }

    pub fn describe(&mut self) -> Result<types::Description, CallError> {
        self.call("describe", |b, s| b.enos_driver_driver().call_describe(s).map(Ok))
    }

    pub fn init(&mut self, device: &DeviceSpec) -> Result<(), CallError> {
        let config = types::DeviceConfig {
            id: device.id.clone(),
            settings: device.settings.to_string(),
            points: device.points.iter().map(|(n, a)| types::PointConfig { name: n.clone(), address: a.clone() }).collect(),
            endpoints: device.endpoints.keys().cloned().collect(),
        };
        self.call("init", |b, s| b.enos_driver_driver().call_init(s, &config))
    }

    pub fn poll(&mut self, now_ms: u64) -> Result<(), CallError> {
        self.call("poll", |b, s| b.enos_driver_driver().call_poll(s, now_ms))
    }

    pub fn on_data(&mut self, h: u32, data: &[u8]) -> Result<(), CallError> {
        self.call("on-data", |b, s| b.enos_driver_driver().call_on_data(s, h, data))
    }

    pub fn command(&mut self, cmd: &types::CommandRequest) -> Result<String, CallError> {
        self.call("command", |b, s| b.enos_driver_driver().call_command(s, cmd))
    }

    pub fn shutdown(&mut self) -> Result<(), CallError> {
        self.call("shutdown", |b, s| b.enos_driver_driver().call_shutdown(s).map(Ok))
    }

    /// Samples and events the driver emitted since the last take.
    pub fn take_output(&mut self) -> (Vec<Sample>, Vec<Event>) {
        let s = self.store.data_mut();
        (std::mem::take(&mut s.out), std::mem::take(&mut s.events))
    }

    /// The open connections' handles and descriptors (watched for spontaneous data).
    pub fn open_connections(&self) -> Vec<(u32, std::os::fd::RawFd)> {
        self.store.data().conns.iter().map(|(h, c)| (*h, c.fd())).collect()
    }

    /// Reads what arrived on `h` without waiting (for `on_data`).
    pub fn read_ready(&mut self, h: u32) -> Result<Vec<u8>, connections::IoError> {
        let c = self.store.data_mut().conns.get_mut(&h).ok_or(connections::IoError::Closed)?;
        c.read(64 * 1024, Duration::ZERO)
    }

    /// Runs one export with the manifest's time budget; a trap becomes `Stopped` with its
    /// reason in words.
    fn call<R>(
        &mut self,
        what: &str,
        f: impl FnOnce(&Bindings, &mut Store<State>) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<R, CallError> {
        let call_ms = self.plugin.manifest.limits.call_ms;
        self.store.set_epoch_deadline(budget_ticks(call_ms));
        self.store.data_mut().call_end = Instant::now() + Duration::from_millis(call_ms.into());
        match f(&self.bindings, &mut self.store) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(CallError::Failed(e)),
            Err(e) => Err(CallError::Stopped(self.trap_reason(what, &e))),
        }
    }

    fn trap_reason(&self, what: &str, e: &wasmtime::Error) -> String {
        let s = self.store.data();
        let m = &self.plugin.manifest;
        let trap = e.downcast_ref::<Trap>().copied();
        if trap == Some(Trap::Interrupt) {
            return format!("the driver ran past its time budget of {} ms in {what} and was stopped", m.limits.call_ms);
        }
        if s.memory_refused {
            return format!("the driver asked for more than its {} MiB of memory in {what} and was stopped", m.limits.memory_mib);
        }
        match (&s.last_error, trap) {
            (Some(msg), Some(Trap::UnreachableCodeReached)) => format!("the driver crashed in {what}: {msg}"),
            (_, Some(t)) => format!("the driver crashed in {what}: {t}"),
            (_, None) => format!("the driver was stopped in {what}: {}", root(e)),
        }
    }
}

/// The innermost message of an error chain (wasmtime wraps the cause in context).
fn root(e: &wasmtime::Error) -> String {
    e.chain().last().map(|c| c.to_string()).unwrap_or_else(|| e.to_string())
}

fn budget_ticks(call_ms: u32) -> u64 {
    u64::from(call_ms).div_ceil(TICK.as_millis() as u64).max(1)
}
