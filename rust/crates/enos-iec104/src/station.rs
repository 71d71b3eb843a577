//! The handle the engine holds, the task behind it (connect, reconnect with backoff, switch to
//! the redundant address) and the command sequences.

use crate::asdu::{self, CommandValue, Cot, EncodeError, TypeId};
use crate::link::{self, End};
use crate::reconnect::Reconnect;
use crate::settings::{words, Settings, SettingsError};
use crate::{time, tls, Event, LinkState};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, Instant};

pub(crate) fn now_unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Counters of one station session (since it started).
#[derive(Debug, Default)]
pub struct Stats {
    /// Links that reached STARTDT con.
    pub connects: AtomicU64,
    /// Connection attempts that failed and established links that ended.
    pub link_failures: AtomicU64,
    pub malformed_frames: AtomicU64,
    pub sequence_errors: AtomicU64,
    pub t1_timeouts: AtomicU64,
    /// Values delivered without their (impossible) time tag.
    pub bad_time_tags: AtomicU64,
}

/// What the station confirmed for a command or system request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Confirmation {
    pub cot: Cot,
    pub negative: bool,
    pub select: bool,
}

/// Confirmations for (type, CA, IOA) go to `tx` until its receiver is dropped.
pub(crate) struct Waiter {
    pub type_id: TypeId,
    pub ca: u16,
    pub ioa: u32,
    pub tx: mpsc::Sender<Confirmation>,
}

pub(crate) enum Request {
    Send { asdu: Vec<u8>, waiter: Option<Waiter> },
    Close(oneshot::Sender<()>),
}

/// The step of a command or request that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Select,
    Execute,
    /// The ACTTERM after a confirmed execute.
    Termination,
    Interrogation,
    CounterInterrogation,
    ClockSync,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Select => "select",
            Step::Execute => "execute",
            Step::Termination => "execute",
            Step::Interrogation => "general interrogation",
            Step::CounterInterrogation => "counter interrogation",
            Step::ClockSync => "clock synchronisation",
        })
    }
}

/// Why a command (or interrogation, clock sync) did not succeed; the engine maps the kind to
/// a reply code: timeout, refused, link down, bad value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    #[error("{}", timeout_words(*.step, *.after))]
    Timeout { step: Step, after: Duration },
    #[error("the station refused the {step} ({reason})")]
    Refused { step: Step, reason: String },
    #[error("the link to the station is down: {0}")]
    LinkDown(String),
    #[error("the command cannot be sent: {0}")]
    BadValue(#[from] EncodeError),
}

fn timeout_words(step: Step, after: Duration) -> String {
    let after = words(after);
    match step {
        Step::Termination => format!("no termination of the execute from the station within {after}"),
        _ => format!("the station did not confirm the {step} within {after}"),
    }
}

/// A command to one information object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Command {
    pub ca: u16,
    pub ioa: u32,
    pub value: CommandValue,
    /// QU (0-31: 0 none, 1 short pulse, 2 long pulse, 3 persistent) for single, double and step
    /// commands; QL (0-127) for set-points; 0 for bitstrings.
    pub qualifier: u8,
    /// Select, then execute; otherwise direct execute.
    pub select_before_operate: bool,
}

/// One connection to one controlled station. Dropping it closes the session too, without
/// waiting; [`Station::close`] sends STOPDT first.
pub struct Station {
    requests: mpsc::Sender<Request>,
    stats: Arc<Stats>,
    settings: Arc<Settings>,
    task: JoinHandle<()>,
}

impl Station {
    /// Starts the session task; events come on the returned receiver in arrival order.
    pub fn start(settings: Settings) -> Result<(Station, mpsc::Receiver<Event>), SettingsError> {
        settings.validate()?;
        let settings = Arc::new(settings);
        let stats = Arc::new(Stats::default());
        let (ev_tx, ev_rx) = mpsc::channel(settings.event_capacity);
        let (req_tx, req_rx) = mpsc::channel(64);
        let task = tokio::spawn(run(settings.clone(), stats.clone(), ev_tx, req_rx));
        Ok((Station { requests: req_tx, stats, settings, task }, ev_rx))
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// General interrogation of `ca`; returns once the station confirms it (the values and
    /// `Event::InterrogationDone` follow on the event stream).
    pub async fn interrogate(&self, ca: u16) -> Result<(), CommandError> {
        let asdu = asdu::interrogation(ca, self.settings.originator);
        self.confirmed(asdu, TypeId::C_IC_NA_1, ca, 0, Step::Interrogation).await
    }

    pub async fn counter_interrogation(&self, ca: u16) -> Result<(), CommandError> {
        let asdu = asdu::counter_interrogation(ca, self.settings.originator);
        self.confirmed(asdu, TypeId::C_CI_NA_1, ca, 0, Step::CounterInterrogation).await
    }

    /// Sets the station's clock to ours (UTC plus the configured station offset).
    pub async fn clock_sync(&self, ca: u16) -> Result<(), CommandError> {
        let t = time::encode(now_unix_ms(), self.settings.station_utc_offset_minutes)
            .ok_or(CommandError::BadValue(EncodeError::ClockOutOfRange))?;
        let asdu = asdu::clock_sync(ca, self.settings.originator, t);
        self.confirmed(asdu, TypeId::C_CS_NA_1, ca, 0, Step::ClockSync).await
    }

    async fn confirmed(&self, asdu: Vec<u8>, type_id: TypeId, ca: u16, ioa: u32, step: Step) -> Result<(), CommandError> {
        let mut rx = self.send(asdu, type_id, ca, ioa).await?;
        self.expect(&mut rx, step, Cot::ACTIVATION_CON, None).await
    }

    /// Direct execute, or select-before-operate: select → ACTCON → execute → ACTCON, then
    /// ACTTERM when `await_termination` is set; each step within `command_timeout`.
    pub async fn command(&self, c: Command) -> Result<(), CommandError> {
        let orig = self.settings.originator;
        let type_id = c.value.type_id();
        // Encode both frames first: a bad value fails before anything is sent.
        let select = c.select_before_operate.then(|| asdu::command(c.value, c.ca, c.ioa, c.qualifier, true, orig)).transpose()?;
        let execute = asdu::command(c.value, c.ca, c.ioa, c.qualifier, false, orig)?;
        if let Some(select) = select {
            let mut rx = self.send(select, type_id, c.ca, c.ioa).await?;
            self.expect(&mut rx, Step::Select, Cot::ACTIVATION_CON, Some(true)).await?;
        }
        let mut rx = self.send(execute, type_id, c.ca, c.ioa).await?;
        self.expect(&mut rx, Step::Execute, Cot::ACTIVATION_CON, Some(false)).await?;
        if self.settings.await_termination {
            self.expect(&mut rx, Step::Termination, Cot::ACTIVATION_TERM, None).await?;
        }
        Ok(())
    }

    async fn send(&self, asdu: Vec<u8>, type_id: TypeId, ca: u16, ioa: u32) -> Result<mpsc::Receiver<Confirmation>, CommandError> {
        let (tx, rx) = mpsc::channel(4);
        let waiter = Waiter { type_id, ca, ioa, tx };
        self.requests.send(Request::Send { asdu, waiter: Some(waiter) }).await.map_err(|_| closed())?;
        Ok(rx)
    }

    /// Waits for `want` (and the S/E bit, when given) from the station within the timeout.
    async fn expect(&self, rx: &mut mpsc::Receiver<Confirmation>, step: Step, want: Cot, select: Option<bool>) -> Result<(), CommandError> {
        let after = self.settings.command_timeout;
        let until = Instant::now() + after;
        loop {
            let c = match timeout(until.saturating_duration_since(Instant::now()), rx.recv()).await {
                Err(_) => return Err(CommandError::Timeout { step, after }),
                Ok(None) => return Err(CommandError::LinkDown("the link was lost before the station answered".into())),
                Ok(Some(c)) => c,
            };
            if c.cot.is_unknown_reply() {
                return Err(CommandError::Refused { step, reason: c.cot.to_string() });
            }
            if c.cot != want || select.is_some_and(|s| s != c.select) {
                continue; // e.g. a late confirmation of an earlier step
            }
            if c.negative {
                let reason = if step == Step::Termination { "negative termination" } else { "negative confirmation" };
                return Err(CommandError::Refused { step, reason: reason.into() });
            }
            return Ok(());
        }
    }

    /// STOPDT, then the connection closes and the task ends.
    pub async fn close(self) {
        let (tx, rx) = oneshot::channel();
        if self.requests.send(Request::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let _ = self.task.await;
    }
}

fn closed() -> CommandError {
    CommandError::LinkDown("the session has ended".into())
}

/// The session task: connect to the active address, run the link, and after it ends try
/// again as `Reconnect` says.
async fn run(settings: Arc<Settings>, stats: Arc<Stats>, events: mpsc::Sender<Event>, mut requests: mpsc::Receiver<Request>) {
    let tls = match settings.tls.as_ref().map(tls::connector).transpose() {
        Ok(t) => t,
        Err(why) => {
            let ev = Event::Link { state: LinkState::Closed, address: settings.addresses[0].clone(), reason: why };
            let _ = events.send(ev).await;
            return;
        }
    };
    let mut reconnect = Reconnect::new(settings.addresses.len(), settings.reconnect_min, settings.reconnect_max);
    loop {
        let address = &settings.addresses[reconnect.active()];
        let role = if reconnect.active() == 0 { "primary address" } else { "redundant address" };
        let attempt = async {
            let tcp = match timeout(settings.t0, TcpStream::connect(address.as_str())).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return (End::Lost(format!("connecting to {address} failed: {e}")), false),
                Err(_) => return (End::Lost(format!("connecting to {address} took longer than t0 ({})", words(settings.t0))), false),
            };
            let _ = tcp.set_nodelay(true);
            match &tls {
                None => link::run(tcp, &settings, &stats, &events, &mut requests, address, role).await,
                Some(c) => match timeout(settings.t0, tls::handshake(c, settings.tls.as_ref().expect("tls set"), address, tcp)).await {
                    Ok(Ok(s)) => link::run(s, &settings, &stats, &events, &mut requests, address, role).await,
                    Ok(Err(why)) => (End::Lost(why), false),
                    Err(_) => (End::Lost(format!("the TLS handshake with {address} took longer than t0 ({})", words(settings.t0))), false),
                },
            }
        };
        let (end, was_up) = attempt.await;
        let reason = match end {
            End::NoListener => return,
            End::Closed(reply) => {
                let ev = Event::Link { state: LinkState::Closed, address: address.clone(), reason: "closed on request".into() };
                let _ = events.send(ev).await;
                if let Some(r) = reply {
                    let _ = r.send(());
                }
                return;
            }
            End::Lost(reason) => reason,
        };
        stats.link_failures.fetch_add(1, Ordering::Relaxed);
        log::warn!("IEC 104 {address}: {reason}");
        let ev = Event::Link { state: LinkState::Down, address: address.clone(), reason: reason.clone() };
        if events.send(ev).await.is_err() {
            return;
        }
        // Answer requests while waiting, so no caller waits for a link that is down.
        if let Some(w) = reconnect.next(was_up) {
            if let Some(reply) = refuse_while_down(&mut requests, &reason, w).await {
                let ev = Event::Link { state: LinkState::Closed, address: address.clone(), reason: "closed on request".into() };
                let _ = events.send(ev).await;
                let _ = reply.map(|r| r.send(()));
                return;
            }
        }
    }
}

/// Answers requests with "link down" for `wait`; `Some` when asked to close (or abandoned).
async fn refuse_while_down(requests: &mut mpsc::Receiver<Request>, reason: &str, wait: Duration) -> Option<Option<oneshot::Sender<()>>> {
    let until = Instant::now() + wait;
    loop {
        tokio::select! {
            _ = sleep(until.saturating_duration_since(Instant::now())) => return None,
            req = requests.recv() => match req {
                None => return Some(None),
                Some(Request::Close(reply)) => return Some(Some(reply)),
                // Dropping the waiter tells the caller the link is down.
                Some(Request::Send { .. }) => log::info!("IEC 104: a request while the link is down ({reason}) was not sent"),
            },
        }
    }
}
