//! The handle the engine holds and the channel task behind it: connect, reconnect with backoff,
//! and per outstation the startup sequence (disable unsolicited, integrity poll, enable
//! unsolicited), scheduled polls, IIN handling and commands. One request is outstanding on a
//! channel at a time; unsolicited responses are taken (and confirmed) whenever they arrive.

use crate::app::{self, func, Classes, Iin};
use crate::error::{DecodeError, Hex};
use crate::link::{self, Frame};
use crate::objects::{self, status_words, Crob, Measurement, Object, OutputValue};
use crate::transport::{self, Reassembler};
use crate::{Event, LinkState};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout, Instant};

/// One outstation of a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct OutstationSettings {
    /// Its link address.
    pub address: u16,
    /// Integrity poll (class 1, 2, 3 and 0) after every connect and outstation restart, and then
    /// this often (zero: not on a schedule).
    pub integrity_interval: Duration,
    /// Event polls of class 1, 2 and 3 this often (zero: never on a schedule).
    pub class_intervals: [Duration; 3],
    /// Enable unsolicited responses after the integrity poll (they are disabled at startup).
    pub unsolicited: bool,
    /// Set the outstation's clock when it asks (IIN NEED_TIME): the LAN procedure (record
    /// current time, write g50v3).
    pub time_sync: bool,
}

impl OutstationSettings {
    pub fn new(address: u16) -> Self {
        OutstationSettings {
            address,
            integrity_interval: Duration::from_secs(3600),
            class_intervals: [Duration::from_secs(5); 3],
            unsolicited: false,
            time_sync: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `host:port` of the outstations' TCP server (with `start_with`: the name of what it opens,
    /// such as the serial port, for messages).
    pub address: String,
    /// This master's link address.
    pub master_address: u16,
    pub outstations: Vec<OutstationSettings>,
    /// Each response (and each fragment of it) must arrive within this.
    pub response_timeout: Duration,
    pub connect_timeout: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Each step of a command (select, operate) must be answered within this.
    pub command_timeout: Duration,
    /// The largest fragment taken from an outstation.
    pub max_fragment: usize,
    pub event_capacity: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            address: String::new(),
            master_address: 1,
            outstations: Vec::new(),
            response_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(30),
            command_timeout: Duration::from_secs(5),
            max_fragment: 65536,
            event_capacity: 4096,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("no outstation is configured")]
    NoOutstation,
    #[error("outstation address {0} is configured twice on one channel")]
    DuplicateOutstation(u16),
    #[error("link address {0} is reserved (0xFFF0 and above)")]
    Reserved(u16),
    #[error("the outstation address {0} is the master's own")]
    SameAsMaster(u16),
    #[error("{0} must be more than zero")]
    Zero(&'static str),
}

impl Settings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.outstations.is_empty() {
            return Err(SettingsError::NoOutstation);
        }
        if self.master_address >= 0xFFF0 {
            return Err(SettingsError::Reserved(self.master_address));
        }
        let mut seen = std::collections::HashSet::new();
        for o in &self.outstations {
            if o.address >= 0xFFF0 {
                return Err(SettingsError::Reserved(o.address));
            }
            if o.address == self.master_address {
                return Err(SettingsError::SameAsMaster(o.address));
            }
            if !seen.insert(o.address) {
                return Err(SettingsError::DuplicateOutstation(o.address));
            }
        }
        for (name, d) in [
            ("the response timeout", self.response_timeout),
            ("the connect timeout", self.connect_timeout),
            ("the command timeout", self.command_timeout),
            ("the reconnect delay", self.reconnect_min),
        ] {
            if d.is_zero() {
                return Err(SettingsError::Zero(name));
            }
        }
        Ok(())
    }
}

/// Counters of one channel (since it started).
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections established.
    pub connects: AtomicU64,
    /// Connection attempts that failed and connections that ended.
    pub link_failures: AtomicU64,
    /// Link frames, segments and fragments that could not be decoded (dropped, logged).
    pub malformed: AtomicU64,
    /// Frames for another master or from an unknown outstation (dropped).
    pub wrong_address: AtomicU64,
    /// Requests the outstation did not answer in time.
    pub timeouts: AtomicU64,
    pub unsolicited: AtomicU64,
}

/// The step of a command that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Select,
    Operate,
    DirectOperate,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Select => "select",
            Step::Operate => "operate",
            Step::DirectOperate => "direct operate",
        })
    }
}

/// Why a command did not succeed; the engine maps the kind to a reply code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    #[error("the outstation did not answer the {step} within {} ms", .after.as_millis())]
    Timeout { step: Step, after: Duration },
    #[error("the outstation refused the {step}: {reason}")]
    Refused { step: Step, reason: String },
    #[error("the outstation's answer to the {step} does not echo the command ({what})")]
    Mismatch { step: Step, what: String },
    #[error("the link to the outstation is down: {0}")]
    LinkDown(String),
    #[error("outstation {0} is not on this channel")]
    UnknownOutstation(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    DirectOperate,
    SelectBeforeOperate,
}

/// A command to one output point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Command {
    Crob { outstation: u16, index: u16, crob: Crob, mode: Mode },
    Analog { outstation: u16, index: u16, value: OutputValue, mode: Mode },
}

/// What a poll on demand read: the values in the outstation's order (they go on the event
/// stream too) and the IIN of its last fragment.
#[derive(Debug, Clone, PartialEq)]
pub struct PollReply {
    pub iin: Iin,
    pub values: Vec<Measurement>,
}

/// Why a poll on demand got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollError {
    #[error("the outstation did not answer the poll within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("the link to the outstation is down: {0}")]
    LinkDown(String),
    #[error("outstation {0} is not on this channel")]
    UnknownOutstation(u16),
}

enum Request {
    Command(Command, oneshot::Sender<Result<(), CommandError>>),
    Poll { outstation: u16, classes: Classes, reply: oneshot::Sender<Result<PollReply, PollError>> },
    Close(oneshot::Sender<()>),
}

/// One channel (one TCP connection) to one or more outstations. Dropping it ends the channel
/// without waiting; [`Master::close`] waits for it.
pub struct Master {
    requests: mpsc::Sender<Request>,
    stats: Arc<Stats>,
    task: JoinHandle<()>,
}

type Connect<S> = Box<dyn FnMut() -> Pin<Box<dyn Future<Output = io::Result<S>> + Send>> + Send>;

impl Master {
    /// Starts the channel over TCP to `settings.address`; events come on the receiver.
    pub fn start(settings: Settings) -> Result<(Master, mpsc::Receiver<Event>), SettingsError> {
        let address = settings.address.clone();
        Master::start_with(
            settings,
            Box::new(move || {
                let a = address.clone();
                Box::pin(async move {
                    let s = TcpStream::connect(a).await?;
                    let _ = s.set_nodelay(true);
                    Ok(s)
                })
            }),
        )
    }

    /// Starts the channel over any byte stream `connect` opens (a serial port, a test pipe).
    pub fn start_with<S>(settings: Settings, connect: Connect<S>) -> Result<(Master, mpsc::Receiver<Event>), SettingsError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        settings.validate()?;
        let stats = Arc::new(Stats::default());
        let (ev_tx, ev_rx) = mpsc::channel(settings.event_capacity);
        let (req_tx, req_rx) = mpsc::channel(64);
        let task = tokio::spawn(run(Arc::new(settings), stats.clone(), ev_tx, req_rx, connect));
        Ok((Master { requests: req_tx, stats, task }, ev_rx))
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Runs a command: direct operate, or select then operate, each step answered within the
    /// command timeout and echoing the command with status success.
    pub async fn command(&self, c: Command) -> Result<(), CommandError> {
        let (tx, rx) = oneshot::channel();
        let ended = || CommandError::LinkDown("the channel has ended".into());
        self.requests.send(Request::Command(c, tx)).await.map_err(|_| ended())?;
        rx.await.unwrap_or_else(|_| Err(ended()))
    }

    /// Polls `outstation` now, between the scheduled tasks: an integrity poll (classes 1, 2, 3
    /// and 0) or its events (classes 1, 2 and 3). A communication test, not a schedule: the
    /// scheduled polls stay as they are.
    pub async fn poll(&self, outstation: u16, integrity: bool) -> Result<PollReply, PollError> {
        let (reply, rx) = oneshot::channel();
        let classes = if integrity { Classes::INTEGRITY } else { Classes::EVENTS };
        let ended = || PollError::LinkDown("the channel has ended".into());
        self.requests.send(Request::Poll { outstation, classes, reply }).await.map_err(|_| ended())?;
        rx.await.unwrap_or_else(|_| Err(ended()))
    }

    pub async fn close(self) {
        let (tx, rx) = oneshot::channel();
        if self.requests.send(Request::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let _ = self.task.await;
    }
}

fn now_unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

enum End {
    Lost(String),
    Closed(Option<oneshot::Sender<()>>),
}

async fn run<S>(
    settings: Arc<Settings>,
    stats: Arc<Stats>,
    events: mpsc::Sender<Event>,
    mut requests: mpsc::Receiver<Request>,
    mut connect: Connect<S>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut backoff = settings.reconnect_min;
    loop {
        let (end, was_up) = match timeout(settings.connect_timeout, connect()).await {
            Err(_) => (
                End::Lost(format!("connecting to {} took longer than {} ms", settings.address, settings.connect_timeout.as_millis())),
                false,
            ),
            Ok(Err(e)) => (End::Lost(format!("connecting to {} failed: {e}", settings.address)), false),
            Ok(Ok(io)) => {
                stats.connects.fetch_add(1, Ordering::Relaxed);
                if events.send(Event::Link { state: LinkState::Up, reason: format!("connected to {}", settings.address) }).await.is_err() {
                    return;
                }
                let mut ch = Channel::new(io, &settings, &stats, &events);
                (ch.serve(&mut requests).await, true)
            }
        };
        let reason = match end {
            End::Closed(reply) => {
                let _ = events.send(Event::Link { state: LinkState::Closed, reason: "closed on request".into() }).await;
                if let Some(r) = reply {
                    let _ = r.send(());
                }
                return;
            }
            End::Lost(r) => r,
        };
        stats.link_failures.fetch_add(1, Ordering::Relaxed);
        log::warn!("DNP3 {}: {reason}", settings.address);
        if events.send(Event::Link { state: LinkState::Down, reason: reason.clone() }).await.is_err() {
            return;
        }
        if was_up {
            backoff = settings.reconnect_min;
        }
        let wait = backoff;
        backoff = (backoff * 2).min(settings.reconnect_max);
        // Answer requests while waiting, so no caller waits for a link that is down.
        let until = Instant::now() + wait;
        loop {
            tokio::select! {
                _ = sleep_until(until) => break,
                req = requests.recv() => match req {
                    None => return,
                    Some(Request::Close(reply)) => {
                        let _ = events.send(Event::Link { state: LinkState::Closed, reason: "closed on request".into() }).await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(Request::Command(_, reply)) => {
                        let _ = reply.send(Err(CommandError::LinkDown(reason.clone())));
                    }
                    Some(Request::Poll { reply, .. }) => {
                        let _ = reply.send(Err(PollError::LinkDown(reason.clone())));
                    }
                },
            }
        }
    }
}

/// What an outstation needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    ClearRestart,
    DisableUnsolicited,
    Integrity,
    TimeSync,
    EnableUnsolicited,
    Events(Classes),
}

struct Outstation {
    cfg: OutstationSettings,
    clear_restart: bool,
    disable_unsolicited: bool,
    integrity_due: Option<Instant>,
    time_sync: bool,
    enable_unsolicited: bool,
    class_due: [Option<Instant>; 3],
    /// No task before this (after a failed one).
    hold_until: Instant,
    /// IIN bits already reported (restart, overflow), so each is said once while it stays set.
    reported: u16,
    /// The next request sequence.
    seq: u8,
}

impl Outstation {
    fn new(cfg: &OutstationSettings, now: Instant) -> Self {
        Outstation {
            clear_restart: false,
            disable_unsolicited: true,
            integrity_due: Some(now),
            time_sync: false,
            enable_unsolicited: cfg.unsolicited,
            class_due: cfg.class_intervals.map(|d| (!d.is_zero()).then(|| now + d)),
            hold_until: now,
            reported: 0,
            seq: 0,
            cfg: cfg.clone(),
        }
    }

    fn next_task(&self, now: Instant) -> Option<Task> {
        if self.hold_until > now {
            return None;
        }
        if self.clear_restart {
            return Some(Task::ClearRestart);
        }
        if self.disable_unsolicited {
            return Some(Task::DisableUnsolicited);
        }
        if self.integrity_due.is_some_and(|t| t <= now) {
            return Some(Task::Integrity);
        }
        if self.time_sync {
            return Some(Task::TimeSync);
        }
        if self.enable_unsolicited {
            return Some(Task::EnableUnsolicited);
        }
        let due = |i: usize| self.class_due[i].is_some_and(|t| t <= now);
        (due(0) || due(1) || due(2)).then(|| Task::Events(Classes { class0: false, class1: due(0), class2: due(1), class3: due(2) }))
    }

    /// When something is next due (a hold counts as due at its end).
    fn next_time(&self) -> Option<Instant> {
        let pending = self.clear_restart || self.disable_unsolicited || self.time_sync || self.enable_unsolicited;
        let due = self.integrity_due.into_iter().chain(self.class_due.iter().flatten().copied()).min();
        if pending {
            Some(self.hold_until)
        } else {
            due.map(|d| d.max(self.hold_until))
        }
    }

    /// `task`, started at `started`, was answered.
    fn done(&mut self, task: Task, started: Instant) {
        match task {
            Task::ClearRestart => self.clear_restart = false,
            Task::DisableUnsolicited => self.disable_unsolicited = false,
            Task::Integrity => {
                // unless the answer itself asked for another (a restart, an overflow)
                if self.integrity_due.is_some_and(|t| t <= started) {
                    let iv = self.cfg.integrity_interval;
                    self.integrity_due = (!iv.is_zero()).then(|| started + iv);
                }
            }
            Task::TimeSync => self.time_sync = false,
            Task::EnableUnsolicited => self.enable_unsolicited = false,
            Task::Events(c) => {
                for (k, on) in [c.class1, c.class2, c.class3].into_iter().enumerate() {
                    if on {
                        self.class_due[k] = Some(started + self.cfg.class_intervals[k]);
                    }
                }
            }
        }
    }
}

/// Why a request got no usable answer.
enum Failure {
    Timeout,
    Lost(End),
}

struct Reply {
    iin: Iin,
    objects: Vec<Object>,
}

struct Channel<'a, S> {
    io: S,
    settings: &'a Settings,
    stats: &'a Stats,
    events: &'a mpsc::Sender<Event>,
    decoder: link::Decoder,
    reassembly: HashMap<u16, Reassembler>,
    /// Transport sequence per destination.
    tx_seq: HashMap<u16, u8>,
    outs: Vec<Outstation>,
    /// Octets to send before anything else (link answers), written in a cancel-safe way.
    out: Vec<u8>,
    /// The values of the response being collected for a poll on demand.
    kept: Option<Vec<Measurement>>,
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Channel<'a, S> {
    fn new(io: S, settings: &'a Settings, stats: &'a Stats, events: &'a mpsc::Sender<Event>) -> Self {
        let now = Instant::now();
        Channel {
            io,
            settings,
            stats,
            events,
            decoder: link::Decoder::default(),
            reassembly: HashMap::new(),
            tx_seq: HashMap::new(),
            outs: settings.outstations.iter().map(|o| Outstation::new(o, now)).collect(),
            out: Vec::new(),
            kept: None,
        }
    }

    async fn serve(&mut self, requests: &mut mpsc::Receiver<Request>) -> End {
        loop {
            let now = Instant::now();
            if let Some((i, task)) = self.outs.iter().enumerate().find_map(|(i, o)| o.next_task(now).map(|t| (i, t))) {
                if let Err(Failure::Lost(end)) = self.task(i, task).await {
                    return end;
                }
                continue;
            }
            let next = self.outs.iter().filter_map(Outstation::next_time).min();
            let next = next.unwrap_or_else(|| now + Duration::from_secs(3600));
            tokio::select! {
                f = self.fragment() => match f {
                    Ok((src, frag)) => {
                        if let Err(end) = self.unexpected(src, &frag).await {
                            return end;
                        }
                    }
                    Err(end) => return end,
                },
                req = requests.recv() => match req {
                    None => return End::Closed(None),
                    Some(Request::Close(reply)) => return End::Closed(Some(reply)),
                    Some(Request::Poll { outstation, classes, reply }) => match self.poll_now(outstation, classes).await {
                        Ok(r) => {
                            let _ = reply.send(r);
                        }
                        Err(end) => {
                            let _ = reply.send(Err(PollError::LinkDown(end_words(&end))));
                            return end;
                        }
                    },
                    Some(Request::Command(c, reply)) => match self.command(c).await {
                        Ok(r) => {
                            let _ = reply.send(r);
                        }
                        Err(end) => {
                            let _ = reply.send(Err(CommandError::LinkDown(end_words(&end))));
                            return end;
                        }
                    },
                },
                _ = sleep_until(next) => {}
            }
        }
    }

    /// A poll on demand: its values go on the event stream as always and are kept for the reply.
    async fn poll_now(&mut self, outstation: u16, classes: Classes) -> Result<Result<PollReply, PollError>, End> {
        let Some(i) = self.outs.iter().position(|o| o.cfg.address == outstation) else {
            return Ok(Err(PollError::UnknownOutstation(outstation)));
        };
        self.kept = Some(Vec::new());
        let r = self.transact(i, |s| app::read_classes(s, classes)).await;
        let values = self.kept.take().unwrap_or_default();
        match r {
            Ok(reply) => Ok(Ok(PollReply { iin: reply.iin, values })),
            Err(Failure::Timeout) => Ok(Err(PollError::Timeout(self.settings.response_timeout))),
            Err(Failure::Lost(end)) => Err(end),
        }
    }

    /// Runs one task of outstation `i`; a failure holds its tasks for a while.
    async fn task(&mut self, i: usize, task: Task) -> Result<(), Failure> {
        let addr = self.outs[i].cfg.address;
        let now = Instant::now();
        let what = match task {
            Task::ClearRestart => "clearing the restart indication",
            Task::DisableUnsolicited => "disabling unsolicited responses",
            Task::Integrity => "integrity poll",
            Task::TimeSync => "time synchronisation",
            Task::EnableUnsolicited => "enabling unsolicited responses",
            Task::Events(_) => "event poll",
        };
        let result = match task {
            Task::ClearRestart => self.transact(i, app::clear_restart).await,
            Task::DisableUnsolicited => self.transact(i, |s| app::unsolicited(s, false, Classes::EVENTS)).await,
            Task::Integrity => self.transact(i, |s| app::read_classes(s, Classes::INTEGRITY)).await,
            Task::TimeSync => self.time_sync(i).await,
            Task::EnableUnsolicited => self.transact(i, |s| app::unsolicited(s, true, Classes::EVENTS)).await,
            Task::Events(c) => self.transact(i, |s| app::read_classes(s, c)).await,
        };
        if result.is_ok() {
            self.outs[i].done(task, now);
        }
        let outcome = match result {
            Ok(r) => match r.iin.refusal() {
                // an outstation that cannot disable/enable unsolicited or be told the time is
                // not asked again; a refused poll is a failure
                Some(why) if matches!(task, Task::Integrity | Task::Events(_)) => Err(why.to_string()),
                Some(why) => {
                    log::warn!("DNP3 outstation {addr}: {what}: {why}");
                    Ok(())
                }
                None => Ok(()),
            },
            Err(Failure::Timeout) => Err(format!("no answer to the {what} within {} ms", self.settings.response_timeout.as_millis())),
            Err(lost) => return Err(lost),
        };
        if let Err(why) = &outcome {
            log::warn!("DNP3 outstation {addr}: {why}");
            self.outs[i].hold_until = Instant::now() + self.settings.reconnect_min;
        }
        if matches!(task, Task::Integrity | Task::Events(_)) || outcome.is_err() {
            let ev = Event::Poll { outstation: addr, what, result: outcome };
            if self.events.send(ev).await.is_err() {
                return Err(Failure::Lost(End::Closed(None)));
            }
        }
        Ok(())
    }

    /// The LAN procedure: RECORD_CURRENT_TIME, then WRITE g50v3 with the time it was sent.
    async fn time_sync(&mut self, i: usize) -> Result<Reply, Failure> {
        let at = now_unix_ms();
        let r = self.transact(i, app::record_current_time).await?;
        if r.iin.refusal().is_some() {
            return Ok(r);
        }
        self.transact(i, |s| app::write_recorded_time(s, at)).await
    }

    /// Sends a request to outstation `i` and collects its response (every fragment, each
    /// within the response timeout), taking unsolicited responses that arrive meanwhile.
    async fn transact(&mut self, i: usize, build: impl FnOnce(u8) -> Vec<u8>) -> Result<Reply, Failure> {
        self.transact_within(i, build, self.settings.response_timeout).await
    }

    async fn transact_within(&mut self, i: usize, build: impl FnOnce(u8) -> Vec<u8>, within: Duration) -> Result<Reply, Failure> {
        let addr = self.outs[i].cfg.address;
        let seq = self.outs[i].seq;
        self.outs[i].seq = (seq + 1) & 0x0f;
        self.send(addr, &build(seq)).await.map_err(Failure::Lost)?;
        let mut want = seq;
        let mut objects = Vec::new();
        let mut first = true;
        loop {
            let (src, frag) = match timeout(within, self.fragment()).await {
                Err(_) => {
                    self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                    return Err(Failure::Timeout);
                }
                Ok(Err(end)) => return Err(Failure::Lost(end)),
                Ok(Ok(f)) => f,
            };
            let r = match app::parse_response(&frag) {
                Ok(r) => r,
                Err(e) => {
                    self.malformed(src, &e);
                    continue;
                }
            };
            if r.unsolicited() || src != addr || r.seq() != want || (first && !r.fir()) {
                if !r.unsolicited() {
                    log::info!(
                        "DNP3 outstation {src}: a response with sequence {} while waiting for {want} from {addr} was dropped",
                        r.seq()
                    );
                }
                self.unexpected(src, &frag).await.map_err(Failure::Lost)?;
                continue;
            }
            first = false;
            let (iin, con, fin) = (r.iin, r.con(), r.fin());
            match objects::parse(r.objects) {
                Ok(o) => {
                    if let Some(kept) = &mut self.kept {
                        kept.extend(o.iter().filter_map(|o| match o {
                            Object::Measurement(m) => Some(*m),
                            _ => None,
                        }));
                    }
                    objects.extend(self.deliver(addr, o).await.map_err(Failure::Lost)?)
                }
                Err(e) => self.malformed(src, &e),
            }
            self.on_iin(i, iin).await.map_err(Failure::Lost)?;
            if con {
                self.send(addr, &app::confirm(want, false)).await.map_err(Failure::Lost)?;
            }
            if fin {
                return Ok(Reply { iin, objects });
            }
            want = (want + 1) & 0x0f;
        }
    }

    /// A fragment outside a transaction: an unsolicited response (delivered, confirmed) or a
    /// late response (dropped).
    async fn unexpected(&mut self, src: u16, frag: &[u8]) -> Result<(), End> {
        let r = match app::parse_response(frag) {
            Ok(r) => r,
            Err(e) => {
                self.malformed(src, &e);
                return Ok(());
            }
        };
        let Some(i) = self.outs.iter().position(|o| o.cfg.address == src) else { return Ok(()) };
        if !r.unsolicited() {
            log::info!("DNP3 outstation {src}: a response nobody waited for was dropped: {}", Hex(frag));
            return Ok(());
        }
        self.stats.unsolicited.fetch_add(1, Ordering::Relaxed);
        let (iin, con, seq) = (r.iin, r.con(), r.seq());
        match objects::parse(r.objects) {
            Ok(o) => {
                self.deliver(src, o).await?;
            }
            Err(e) => self.malformed(src, &e),
        }
        if con {
            self.send(src, &app::confirm(seq, true)).await?;
        }
        self.on_iin(i, iin).await
    }

    /// Hands the measurements on in order; returns the other objects (command echoes, times).
    async fn deliver(&mut self, outstation: u16, objects: Vec<Object>) -> Result<Vec<Object>, End> {
        let mut rest = Vec::new();
        for o in objects {
            match o {
                Object::Measurement(m) => {
                    if self.events.send(Event::Value { outstation, m }).await.is_err() {
                        return Err(End::Closed(None));
                    }
                }
                o => rest.push(o),
            }
        }
        Ok(rest)
    }

    /// Acts on what the outstation indicates: a restart is cleared and followed by an
    /// integrity poll (and a time sync), a lost event buffer by an integrity poll.
    async fn on_iin(&mut self, i: usize, iin: Iin) -> Result<(), End> {
        let now = Instant::now();
        let o = &mut self.outs[i];
        let mut notices = Vec::new();
        if iin.has(Iin::DEVICE_RESTART) && !o.clear_restart {
            o.clear_restart = true;
            o.integrity_due = Some(now);
            o.disable_unsolicited = true;
            o.enable_unsolicited = o.cfg.unsolicited;
            if o.reported & Iin::DEVICE_RESTART == 0 {
                notices.push("the outstation restarted: its restart indication is cleared and an integrity poll follows".to_string());
            }
        }
        if iin.has(Iin::NEED_TIME) && o.cfg.time_sync {
            o.time_sync = true;
        }
        if iin.has(Iin::EVENT_BUFFER_OVERFLOW) && o.reported & Iin::EVENT_BUFFER_OVERFLOW == 0 {
            o.integrity_due = Some(now);
            notices.push("the outstation's event buffer overflowed: events were lost; an integrity poll follows".to_string());
        }
        for (bit, c) in [(Iin::CLASS1_EVENTS, 0), (Iin::CLASS2_EVENTS, 1), (Iin::CLASS3_EVENTS, 2)] {
            // events waiting in a class that is polled: poll it now rather than at its time
            if iin.has(bit) && o.class_due[c].is_some() {
                o.class_due[c] = Some(now);
            }
        }
        o.reported = iin.0 & (Iin::DEVICE_RESTART | Iin::EVENT_BUFFER_OVERFLOW);
        let addr = o.cfg.address;
        for what in notices {
            log::warn!("DNP3 outstation {addr}: {what}");
            if self.events.send(Event::Notice { outstation: addr, what }).await.is_err() {
                return Err(End::Closed(None));
            }
        }
        Ok(())
    }

    fn malformed(&self, src: u16, e: &DecodeError) {
        self.stats.malformed.fetch_add(1, Ordering::Relaxed);
        log::warn!("DNP3 {} (link address {src}): dropped: {e}", self.settings.address);
    }

    async fn command(&mut self, c: Command) -> Result<Result<(), CommandError>, End> {
        let (outstation, mode) = match c {
            Command::Crob { outstation, mode, .. } | Command::Analog { outstation, mode, .. } => (outstation, mode),
        };
        let Some(i) = self.outs.iter().position(|o| o.cfg.address == outstation) else {
            return Ok(Err(CommandError::UnknownOutstation(outstation)));
        };
        let steps: &[(Step, u8)] = match mode {
            Mode::DirectOperate => &[(Step::DirectOperate, func::DIRECT_OPERATE)],
            Mode::SelectBeforeOperate => &[(Step::Select, func::SELECT), (Step::Operate, func::OPERATE)],
        };
        for &(step, f) in steps {
            let build = |seq| match c {
                Command::Crob { index, crob, .. } => app::crob(f, seq, index, &crob),
                Command::Analog { index, value, .. } => app::analog_output(f, seq, index, value),
            };
            let after = self.settings.command_timeout;
            let r = match self.transact_within(i, build, after).await {
                Ok(r) => r,
                Err(Failure::Timeout) => return Ok(Err(CommandError::Timeout { step, after })),
                Err(Failure::Lost(end)) => return Err(end),
            };
            if let Err(e) = check_echo(step, &c, &r) {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }

    /// Sends one fragment to `dest` (segmented, unconfirmed user data).
    async fn send(&mut self, dest: u16, fragment: &[u8]) -> Result<(), End> {
        let seq = self.tx_seq.entry(dest).or_insert(0);
        for s in transport::segments(fragment, seq) {
            let f = Frame {
                control: link::DIR | link::PRM | link::func::UNCONFIRMED_USER_DATA,
                dest,
                src: self.settings.master_address,
                data: s,
            };
            self.out.extend(f.encode());
        }
        self.flush().await
    }

    /// Writes what is queued; cancel-safe (what was written is removed as it goes).
    async fn flush(&mut self) -> Result<(), End> {
        while !self.out.is_empty() {
            match self.io.write(&self.out).await {
                Ok(0) => return Err(End::Lost("the connection closed while sending".into())),
                Ok(n) => drop(self.out.drain(..n)),
                Err(e) => return Err(End::Lost(format!("sending failed: {e}"))),
            }
        }
        Ok(())
    }

    /// The next complete fragment from one of our outstations; answers link-layer requests on
    /// the way, drops (and counts) what is malformed or not for us. Cancel-safe.
    async fn fragment(&mut self) -> Result<(u16, Vec<u8>), End> {
        let mut buf = [0u8; 2048];
        loop {
            self.flush().await?;
            while let Some(r) = self.decoder.next_frame() {
                let f = match r {
                    Ok(f) => f,
                    Err(e) => {
                        self.malformed(0, &e);
                        continue;
                    }
                };
                if f.dest != self.settings.master_address || !self.outs.iter().any(|o| o.cfg.address == f.src) {
                    self.stats.wrong_address.fetch_add(1, Ordering::Relaxed);
                    log::warn!(
                        "DNP3 {}: a frame from link address {} to {} is not for this master ({}) from a configured outstation: dropped",
                        self.settings.address,
                        f.src,
                        f.dest,
                        self.settings.master_address
                    );
                    continue;
                }
                if !f.is_primary() {
                    continue; // an answer to a link request we did not make
                }
                let answer = |func| Frame { control: func, dest: f.src, src: self.settings.master_address, data: Vec::new() }.encode();
                match f.function() {
                    link::func::RESET_LINK_STATES | link::func::TEST_LINK_STATES => self.out.extend(answer(link::func::ACK)),
                    link::func::REQUEST_LINK_STATUS => self.out.extend(answer(link::func::LINK_STATUS)),
                    link::func::CONFIRMED_USER_DATA => self.out.extend(answer(link::func::ACK)),
                    link::func::UNCONFIRMED_USER_DATA => {}
                    other => {
                        self.out.extend(answer(link::func::NOT_SUPPORTED));
                        log::info!("DNP3 outstation {}: link function {other} is not supported", f.src);
                    }
                }
                if !matches!(f.function(), link::func::CONFIRMED_USER_DATA | link::func::UNCONFIRMED_USER_DATA) {
                    continue;
                }
                let max = self.settings.max_fragment;
                match self.reassembly.entry(f.src).or_insert_with(|| Reassembler::new(max)).push(&f.data) {
                    Ok(Some(frag)) => return Ok((f.src, frag)),
                    Ok(None) => {}
                    Err(e) => self.malformed(f.src, &e),
                }
            }
            self.flush().await?;
            match self.io.read(&mut buf).await {
                Ok(0) => return Err(End::Lost("the outstation closed the connection".into())),
                Ok(n) => self.decoder.push(&buf[..n]),
                Err(e) => return Err(End::Lost(format!("reading failed: {e}"))),
            }
        }
    }
}

fn end_words(end: &End) -> String {
    match end {
        End::Lost(why) => why.clone(),
        End::Closed(_) => "the channel is closing".into(),
    }
}

/// The answer to a command step must echo it with status success.
fn check_echo(step: Step, c: &Command, r: &Reply) -> Result<(), CommandError> {
    if let Some(why) = r.iin.refusal() {
        return Err(CommandError::Refused { step, reason: why.into() });
    }
    let (index, found) = match c {
        Command::Crob { index, crob, .. } => (
            *index,
            r.objects.iter().find_map(|o| match o {
                Object::Crob { index: i, crob: e } if *i == u32::from(*index) => Some((e.status, e.code == crob.code)),
                _ => None,
            }),
        ),
        Command::Analog { index, value, .. } => (
            *index,
            r.objects.iter().find_map(|o| match o {
                Object::Output { index: i, value: v, status } if *i == u32::from(*index) => Some((*status, v == value)),
                _ => None,
            }),
        ),
    };
    match found {
        None => Err(CommandError::Mismatch { step, what: format!("no echo of index {index}") }),
        Some((0, true)) => Ok(()),
        Some((0, false)) => Err(CommandError::Mismatch { step, what: format!("the echo of index {index} carries another value") }),
        Some((status, _)) => Err(CommandError::Refused { step, reason: status_words(status) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_order_then_schedules_and_a_hold_after_a_failure() {
        let now = Instant::now();
        let mut cfg = OutstationSettings::new(10);
        cfg.unsolicited = true;
        cfg.class_intervals = [Duration::from_secs(1), Duration::ZERO, Duration::from_secs(1)];
        let mut o = Outstation::new(&cfg, now);
        let mut order = Vec::new();
        while let Some(t) = o.next_task(now) {
            order.push(t);
            o.done(t, now);
        }
        assert_eq!(order, [Task::DisableUnsolicited, Task::Integrity, Task::EnableUnsolicited]);
        assert_eq!(o.integrity_due, Some(now + Duration::from_secs(3600)));
        let later = now + Duration::from_secs(1);
        let events = Classes { class0: false, class1: true, class2: false, class3: true };
        assert_eq!(o.next_task(later), Some(Task::Events(events)), "the due classes in one read; class 2 is never polled");
        o.hold_until = later + Duration::from_secs(1);
        assert_eq!(o.next_task(later), None, "held after a failure");
        assert_eq!(o.next_time(), Some(later + Duration::from_secs(1)));
        o.clear_restart = true;
        o.time_sync = true;
        assert_eq!(o.next_task(later + Duration::from_secs(1)), Some(Task::ClearRestart), "a restart is cleared first");
    }
}
