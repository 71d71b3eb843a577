//! Runs one device's instance on a thread of its own: init, polls on the schedule, spontaneous
//! data to `on-data`; after a trap (a crash, the time budget, the memory limit) the instance is
//! dropped and a fresh one started after a backoff, the reason reported in the device's state.
//! On-demand requests (a read now, a command) are served on the same thread between calls, so
//! the driver never runs two calls at once.

use crate::instance::{CallError, DeviceSpec, Event, Instance, Sample};
use crate::runtime::{Plugin, Runtime};
use crate::CommandRequest;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
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

/// Asked of a running device between its scheduled calls; the answer goes to `reply`.
pub enum Request {
    /// A poll now: the samples it emitted (they also go on like a scheduled poll's).
    Read { reply: Box<dyn FnOnce(Result<Vec<Sample>, CallError>) + Send> },
    /// The driver's `command`: its answer in words.
    Command { cmd: CommandRequest, reply: Box<dyn FnOnce(Result<String, CallError>) + Send> },
}

impl Request {
    fn refuse(self, e: CallError) {
        match self {
            Request::Read { reply } => reply(Err(e)),
            Request::Command { reply, .. } => reply(Err(e)),
        }
    }
}

/// A running device; dropping it asks the driver to shut down and waits for its thread.
pub struct Running {
    stop: Arc<AtomicBool>,
    requests: mpsc::Sender<Request>,
    /// One byte per request: wakes the device's thread from its wait for the next poll.
    wake: UnixStream,
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

impl Running {
    /// Hands `r` to the device's thread; answered at once when the thread has ended.
    pub fn request(&self, r: Request) {
        if let Err(mpsc::SendError(r)) = self.requests.send(r) {
            r.refuse(CallError::NotRunning("the driver has ended".into()));
            return;
        }
        // A full socket buffer already holds a wake-up.
        let _ = (&self.wake).write(&[1]);
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
    let (requests, rx) = mpsc::channel();
    let (wake, woken) = UnixStream::pair()?;
    wake.set_nonblocking(true)?;
    woken.set_nonblocking(true)?;
    let thread = std::thread::Builder::new()
        .name(format!("plugin {}", device.id))
        .spawn(move || Device { rt, plugin, device, schedule, report, stop: s, last: None, requests: rx, woken }.run())?;
    Ok(Running { stop, requests, wake, thread: Some(thread), _lease: lease })
}

struct Device<F> {
    rt: Arc<Runtime>,
    plugin: Arc<Plugin>,
    device: DeviceSpec,
    schedule: Schedule,
    report: F,
    stop: Arc<AtomicBool>,
    last: Option<(DeviceState, String)>,
    requests: mpsc::Receiver<Request>,
    woken: UnixStream,
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
            CallError::Stopped(e) | CallError::NotRunning(e) => e,
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
            match self.poll(inst) {
                Ok(_) => polled = true,
                Err(CallError::Stopped(_)) => return polled,
                Err(_) => {}
            }
            next += self.schedule.poll;
            let now = Instant::now();
            if next < now {
                next = now + self.schedule.poll;
            }
        }
        polled
    }

    /// One poll, its samples forwarded (and returned) and the device's state set from it.
    fn poll(&mut self, inst: &mut Instance) -> Result<Vec<Sample>, CallError> {
        let r = inst.poll(crate::instance::now_ms());
        let samples = self.forward(inst);
        match &r {
            Ok(()) => self.state(DeviceState::Online, String::new()),
            Err(CallError::Failed(e)) => self.state(DeviceState::Offline, e.clone()),
            Err(CallError::Stopped(e) | CallError::NotRunning(e)) => self.state(DeviceState::Failed, e.clone()),
        }
        r.map(|()| samples)
    }

    /// Serves the requests waiting; `Err` with the reason when one stopped the instance.
    fn serve_requests(&mut self, inst: &mut Instance) -> Result<(), String> {
        self.drain_wake();
        while let Ok(req) = self.requests.try_recv() {
            let stopped = match req {
                Request::Read { reply } => {
                    let r = self.poll(inst);
                    let stopped = stopped_reason(&r);
                    reply(r);
                    stopped
                }
                Request::Command { cmd, reply } => {
                    let r = inst.command(&cmd);
                    self.forward(inst);
                    let stopped = stopped_reason(&r);
                    if let Some(e) = &stopped {
                        self.state(DeviceState::Failed, e.clone());
                    }
                    reply(r);
                    stopped
                }
            };
            if let Some(e) = stopped {
                return Err(e);
            }
        }
        Ok(())
    }

    fn drain_wake(&mut self) {
        let mut buf = [0u8; 64];
        while matches!(self.woken.read(&mut buf), Ok(n) if n > 0) {}
    }

    /// Waits for the next poll, handing what arrives on open connections to `on-data` and
    /// serving on-demand requests.
    fn idle_until(&mut self, inst: &mut Instance, until: Instant) -> Result<(), String> {
        loop {
            self.serve_requests(inst)?;
            let now = Instant::now();
            if now >= until || self.stopped() {
                return Ok(());
            }
            // Wake at least every 100 ms to notice a stop.
            let wait = (until - now).min(Duration::from_millis(100));
            let conns = inst.open_connections();
            let Some(h) = wait_any(&conns, self.woken.as_raw_fd(), wait) else { continue };
            let data = match inst.read_ready(h) {
                Ok(d) => d,
                // Closed by the peer: the driver finds out at its next read.
                Err(_) => {
                    wait_any(&[], self.woken.as_raw_fd(), wait);
                    continue;
                }
            };
            let r = inst.on_data(h, &data);
            self.forward(inst);
            match r {
                Ok(()) => {}
                Err(CallError::Failed(e)) => self.state(DeviceState::Offline, e),
                Err(CallError::Stopped(e) | CallError::NotRunning(e)) => return Err(e),
            }
        }
    }

    /// Reports what the driver emitted; returns the samples.
    fn forward(&mut self, inst: &mut Instance) -> Vec<Sample> {
        let (samples, events) = inst.take_output();
        if !samples.is_empty() {
            (self.report)(Report::Samples(samples.clone()));
        }
        for e in events {
            (self.report)(Report::Event(e));
        }
        samples
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

    /// Waits (the backoff before a restart), refusing requests meanwhile: no instance runs.
    fn sleep_until(&mut self, t: Instant) {
        while !self.stopped() {
            self.drain_wake();
            while let Ok(req) = self.requests.try_recv() {
                let why = self.last.as_ref().map(|(_, r)| r.as_str()).filter(|r| !r.is_empty()).unwrap_or("it is starting");
                req.refuse(CallError::NotRunning(format!("the driver is not running ({why}); it is started again shortly")));
            }
            let now = Instant::now();
            if now >= t {
                return;
            }
            wait_any(&[], self.woken.as_raw_fd(), (t - now).min(Duration::from_millis(100)));
        }
    }
}

fn stopped_reason<T>(r: &Result<T, CallError>) -> Option<String> {
    match r {
        Err(CallError::Stopped(e)) => Some(e.clone()),
        _ => None,
    }
}

/// The first of `conns` with something to read within `wait`, else none (having waited, or
/// woken early by `wake`).
fn wait_any(conns: &[(u32, std::os::fd::RawFd)], wake: std::os::fd::RawFd, wait: Duration) -> Option<u32> {
    let mut fds: Vec<libc::pollfd> = conns.iter().map(|(_, fd)| libc::pollfd { fd: *fd, events: libc::POLLIN, revents: 0 }).collect();
    fds.push(libc::pollfd { fd: wake, events: libc::POLLIN, revents: 0 });
    // SAFETY: `fds` is a valid array of `fds.len()` pollfds for the duration of the call.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait.as_millis() as i32) };
    if n <= 0 {
        return None;
    }
    fds.iter().zip(conns).find(|(p, _)| p.revents != 0).map(|(_, (h, _))| *h)
}
