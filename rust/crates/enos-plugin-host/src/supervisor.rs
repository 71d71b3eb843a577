//! Runs one device's instance on a thread of its own: init, polls on the schedule, spontaneous
//! data to `on-data`; after a trap (a crash, the time budget, the memory limit) the instance is
//! dropped and a fresh one started after a backoff, the reason reported in the device's state.

use crate::instance::{CallError, DeviceSpec, Event, Instance, Sample};
use crate::runtime::{Plugin, Runtime};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    Online,
    /// The driver runs but its last poll failed (the device did not answer).
    Offline,
    /// The driver could not start or was stopped; it is started again after a backoff.
    Failed,
}

#[derive(Debug, Clone)]
pub enum Report {
    Samples(Vec<Sample>),
    Event(Event),
    /// Sent when the state or its reason changes.
    State(DeviceState, String),
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub poll: Duration,
    /// The wait before restarting a stopped driver, doubling up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule { poll: Duration::from_secs(1), backoff_min: Duration::from_secs(1), backoff_max: Duration::from_secs(60) }
    }
}

/// A running device; dropping it asks the driver to shut down and waits for its thread.
pub struct Running {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Released after the thread ended (fields drop after `drop` ran).
    _lease: Lease,
}

/// At most one instance per device id in this process: a new version of a plugin (or a
/// restarted driver) starts a device only after its previous instance ended, so two versions
/// never talk to the same device at once.
struct Lease(String);

static LEASES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
static RELEASED: std::sync::Condvar = std::sync::Condvar::new();

/// The longest a previous instance may take to end: its longest call and its shutdown.
const LEASE_WAIT: Duration = Duration::from_secs(130);

impl Lease {
    fn take(id: &str) -> std::io::Result<Lease> {
        let deadline = Instant::now() + LEASE_WAIT;
        let mut held = LEASES.lock().expect("leases");
        while held.iter().any(|h| h == id) {
            let left = deadline.checked_duration_since(Instant::now()).ok_or_else(|| {
                std::io::Error::other(format!("the previous instance of device \"{id}\" did not stop within {} s", LEASE_WAIT.as_secs()))
            })?;
            held = RELEASED.wait_timeout(held, left).expect("leases").0;
        }
        held.push(id.to_string());
        Ok(Lease(id.to_string()))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        LEASES.lock().expect("leases").retain(|h| h != &self.0);
        RELEASED.notify_all();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn spawn(
    rt: Arc<Runtime>,
    plugin: Arc<Plugin>,
    device: DeviceSpec,
    schedule: Schedule,
    report: impl FnMut(Report) + Send + 'static,
) -> std::io::Result<Running> {
    let lease = Lease::take(&device.id)?;
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::Builder::new()
        .name(format!("plugin {}", device.id))
        .spawn(move || Device { rt, plugin, device, schedule, report, stop: s, last: None }.run())?;
    Ok(Running { stop, thread: Some(thread), _lease: lease })
}

struct Device<F> {
    rt: Arc<Runtime>,
    plugin: Arc<Plugin>,
    device: DeviceSpec,
    schedule: Schedule,
    report: F,
    stop: Arc<AtomicBool>,
    last: Option<(DeviceState, String)>,
}

impl<F: FnMut(Report)> Device<F> {
    fn run(mut self) {
        let mut backoff = self.schedule.backoff_min;
        while !self.stopped() {
            match self.start() {
                Ok(mut inst) => {
                    if self.serve(&mut inst) {
                        backoff = self.schedule.backoff_min;
                    }
                    if self.stopped() {
                        let _ = inst.shutdown();
                        return;
                    }
                }
                Err(reason) => self.state(DeviceState::Failed, reason),
            }
            self.sleep_until(Instant::now() + backoff);
            backoff = (backoff * 2).min(self.schedule.backoff_max);
        }
    }

    fn start(&mut self) -> Result<Instance, String> {
        let mut inst = Instance::new(&self.rt, &self.plugin, &self.device)?;
        let r = inst.init(&self.device);
        self.forward(&mut inst);
        r.map_err(|e| match e {
            CallError::Failed(e) => format!("the driver did not start: {e}"),
            CallError::Stopped(e) => e,
        })?;
        Ok(inst)
    }

    /// Polls until the instance is stopped or the device is; true when a poll succeeded.
    fn serve(&mut self, inst: &mut Instance) -> bool {
        let mut polled = false;
        let mut next = Instant::now();
        while !self.stopped() {
            if let Err(reason) = self.idle_until(inst, next) {
                self.state(DeviceState::Failed, reason);
                return polled;
            }
            if self.stopped() {
                break;
            }
            let r = inst.poll(crate::instance::now_ms());
            self.forward(inst);
            match r {
                Ok(()) => {
                    polled = true;
                    self.state(DeviceState::Online, String::new())
                }
                Err(CallError::Failed(e)) => self.state(DeviceState::Offline, e),
                Err(CallError::Stopped(e)) => {
                    self.state(DeviceState::Failed, e);
                    return polled;
                }
            }
            next += self.schedule.poll;
            let now = Instant::now();
            if next < now {
                next = now + self.schedule.poll;
            }
        }
        polled
    }

    /// Waits for the next poll, handing what arrives on open connections to `on-data`.
    fn idle_until(&mut self, inst: &mut Instance, until: Instant) -> Result<(), String> {
        loop {
            let now = Instant::now();
            if now >= until || self.stopped() {
                return Ok(());
            }
            // Wake at least every 100 ms to notice a stop.
            let wait = (until - now).min(Duration::from_millis(100));
            let conns = inst.open_connections();
            let Some(h) = wait_any(&conns, wait) else { continue };
            let data = match inst.read_ready(h) {
                Ok(d) => d,
                // Closed by the peer: the driver finds out at its next read.
                Err(_) => {
                    self.sleep_until(Instant::now() + wait);
                    continue;
                }
            };
            let r = inst.on_data(h, &data);
            self.forward(inst);
            match r {
                Ok(()) => {}
                Err(CallError::Failed(e)) => self.state(DeviceState::Offline, e),
                Err(CallError::Stopped(e)) => return Err(e),
            }
        }
    }

    fn forward(&mut self, inst: &mut Instance) {
        let (samples, events) = inst.take_output();
        if !samples.is_empty() {
            (self.report)(Report::Samples(samples));
        }
        for e in events {
            (self.report)(Report::Event(e));
        }
    }

    fn state(&mut self, s: DeviceState, reason: String) {
        let now = Some((s, reason));
        if self.last != now {
            let (s, reason) = now.clone().expect("just set");
            if s != DeviceState::Online {
                log::warn!("device \"{}\": plugin \"{}\": {reason}", self.device.id, self.plugin.manifest.name);
            }
            (self.report)(Report::State(s, reason));
            self.last = now;
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn sleep_until(&self, t: Instant) {
        while !self.stopped() {
            let now = Instant::now();
            if now >= t {
                return;
            }
            std::thread::sleep((t - now).min(Duration::from_millis(100)));
        }
    }
}

/// The first of `conns` with something to read within `wait`, else none (having waited).
fn wait_any(conns: &[(u32, std::os::fd::RawFd)], wait: Duration) -> Option<u32> {
    if conns.is_empty() {
        std::thread::sleep(wait);
        return None;
    }
    let mut fds: Vec<libc::pollfd> = conns.iter().map(|(_, fd)| libc::pollfd { fd: *fd, events: libc::POLLIN, revents: 0 }).collect();
    // SAFETY: `fds` is a valid array of `fds.len()` pollfds for the duration of the call.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait.as_millis() as i32) };
    if n <= 0 {
        return None;
    }
    fds.iter().zip(conns).find(|(p, _)| p.revents != 0).map(|(_, (h, _))| *h)
}
