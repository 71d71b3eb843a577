//! Connections to one Modbus endpoint: a queue of requests served by one or more workers, each
//! owning a connection, reconnecting with exponential backoff.

use super::frame::{self, Reply};
use super::transport::{Conn, Failed};
use enos_collector_config::{line::SerialConfig, modbus::Area};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant};

#[derive(Debug, Clone)]
pub enum Endpoint {
    Tcp(String),
    RtuOverTcp(String),
    Serial(SerialConfig),
}

impl Endpoint {
    pub fn key(&self) -> String {
        match self {
            Endpoint::Tcp(a) => format!("tcp:{a}"),
            Endpoint::RtuOverTcp(a) => format!("rtu-tcp:{a}"),
            Endpoint::Serial(s) => format!("serial:{}", s.port),
        }
    }
    pub fn is_serial(&self) -> bool {
        matches!(self, Endpoint::Serial(_))
    }
}

/// Why a request did not produce data. The distinction drives sample quality.
#[derive(Debug, Clone, PartialEq)]
pub enum ReqError {
    /// The device answered with this exception code.
    Exception(u8),
    /// No answer in time; with what arrived instead and was discarded, if anything.
    Timeout(Option<String>),
    /// Could not connect, or the connection broke.
    Link(String),
}

impl std::fmt::Display for ReqError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReqError::Exception(c) => write!(f, "device exception {c:#04x} ({})", frame::exception_text(*c)),
            ReqError::Timeout(None) => write!(f, "no answer (timeout)"),
            ReqError::Timeout(Some(other)) => write!(f, "no answer to the request (timeout); the device sent {other}, which was discarded"),
            ReqError::Link(m) => write!(f, "link: {m}"),
        }
    }
}

#[derive(Debug)]
pub enum Op {
    Read {
        area: Area,
        start: u16,
        count: u16,
    },
    /// FC5, or FC15 when `multiple`.
    WriteCoil {
        addr: u16,
        on: bool,
        multiple: bool,
    },
    /// FC6 for one register, FC16 for more or when `multiple`.
    WriteRegisters {
        addr: u16,
        words: Vec<u16>,
        multiple: bool,
    },
}

#[derive(Debug, PartialEq)]
pub enum Answer {
    Words(Vec<u16>),
    Bits(Vec<bool>),
    Written,
}

/// What one device's requests met on the link, for its device document.
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Frames discarded while its requests waited: late, foreign or damaged answers.
    pub discarded: AtomicU64,
    /// Attempts that got no answer in time (retries included).
    pub unanswered: AtomicU64,
}

/// Timeouts in a row, with nothing at all arriving, after which a TCP connection is opened
/// again: a connection the other end or a middlebox dropped without a reset would otherwise
/// be waited on for ever (a late answer never needs this: it is told apart and discarded).
const SILENT_BEFORE_RECONNECT: u32 = 3;

pub struct Job {
    pub unit: u8,
    pub op: Op,
    pub timeout: Duration,
    pub retries: u32,
    /// The requesting device's counters.
    pub counters: Arc<LinkCounters>,
    pub reply: oneshot::Sender<Result<Answer, ReqError>>,
}

/// A handle to submit requests to an endpoint.
#[derive(Clone)]
pub struct Link {
    tx: mpsc::Sender<Job>,
}

impl Link {
    /// Starts `workers` connections (1 on a serial line). The workers run in the returned set:
    /// its owner notices a worker that ends (it never should) instead of the line going silent.
    pub fn start(ep: Endpoint, workers: usize, backoff: (u64, u64), requests: Arc<AtomicU64>) -> (Link, JoinSet<()>) {
        let (tx, rx) = mpsc::channel::<Job>(1024);
        let rx = Arc::new(Mutex::new(rx));
        let workers = if ep.is_serial() { 1 } else { workers.max(1) };
        let mut set = JoinSet::new();
        for _ in 0..workers {
            let w = Worker {
                ep: ep.clone(),
                conn: None,
                backoff_ms: backoff.0,
                backoff,
                next_try: Instant::now(),
                last_err: String::new(),
                requests: requests.clone(),
                silent: 0,
            };
            set.spawn(w.run(rx.clone()));
        }
        (Link { tx }, set)
    }

    pub async fn call(&self, unit: u8, op: Op, tmo: Duration, retries: u32, counters: &Arc<LinkCounters>) -> Result<Answer, ReqError> {
        let stopped = || ReqError::Link("the connection's worker has stopped; the driver is restarting".into());
        let (reply, rx) = oneshot::channel();
        let job = Job { unit, op, timeout: tmo, retries, counters: counters.clone(), reply };
        self.tx.send(job).await.map_err(|_| stopped())?;
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }
}

struct Worker {
    ep: Endpoint,
    conn: Option<Conn>,
    backoff_ms: u64,
    backoff: (u64, u64),
    next_try: Instant,
    last_err: String,
    requests: Arc<AtomicU64>,
    /// Timeouts in a row on this connection with nothing arriving at all.
    silent: u32,
}

impl Worker {
    async fn run(mut self, rx: Arc<Mutex<mpsc::Receiver<Job>>>) {
        loop {
            let job = { rx.lock().await.recv().await };
            let Some(job) = job else { return };
            let res = self.execute(&job).await;
            let _ = job.reply.send(res);
        }
    }

    async fn connect(&mut self, tmo: Duration) -> Result<(), ReqError> {
        if self.conn.is_some() {
            return Ok(());
        }
        if Instant::now() < self.next_try {
            return Err(ReqError::Link(format!("{} (reconnecting in {} ms)", self.last_err, (self.next_try - Instant::now()).as_millis())));
        }
        match timeout(tmo.max(Duration::from_secs(1)), Conn::open(&self.ep)).await {
            Ok(Ok(conn)) => {
                self.conn = Some(conn);
                self.backoff_ms = self.backoff.0;
                Ok(())
            }
            Ok(Err(e)) => Err(self.failed_connect(e)),
            Err(_) => Err(self.failed_connect("connect timed out".into())),
        }
    }

    fn failed_connect(&mut self, e: String) -> ReqError {
        // Jitter keeps many gateways (or many links) from reconnecting in lockstep.
        let jitter = rand_jitter(self.backoff_ms / 4 + 1);
        self.next_try = Instant::now() + Duration::from_millis(self.backoff_ms + jitter);
        self.backoff_ms = (self.backoff_ms * 2).min(self.backoff.1);
        self.last_err = format!("cannot connect to {}: {e}", self.ep.key());
        ReqError::Link(self.last_err.clone())
    }

    async fn execute(&mut self, job: &Job) -> Result<Answer, ReqError> {
        let mut attempt = 0;
        // What arrived instead of the answer, for the timeout's message.
        let mut instead = None;
        loop {
            self.connect(job.timeout).await?;
            let conn = self.conn.as_mut().expect("connected");
            self.requests.fetch_add(1, Ordering::Relaxed);
            let mut discarded = Vec::new();
            let r = conn.exchange(job.unit, &job.op, Instant::now() + job.timeout, &mut discarded).await;
            if let Some(last) = discarded.last() {
                instead = Some(last.clone());
                self.silent = 0;
                job.counters.discarded.fetch_add(discarded.len() as u64, Ordering::Relaxed);
                log::debug!("{}: discarded {}", self.ep.key(), discarded.join("; "));
            }
            if r.is_ok() {
                self.silent = 0;
            }
            if matches!(r, Err(Failed::Timeout)) {
                job.counters.unanswered.fetch_add(1, Ordering::Relaxed);
                log::debug!(
                    "{}: no answer from unit id {} within {} ms (attempt {})",
                    self.ep.key(),
                    job.unit,
                    job.timeout.as_millis(),
                    attempt + 1
                );
                self.silent += 1;
                if self.silent >= SILENT_BEFORE_RECONNECT && !self.ep.is_serial() {
                    log::info!("{}: no answer to {} requests in a row: opening the connection again", self.ep.key(), self.silent);
                    self.conn = None;
                    self.silent = 0;
                }
            }
            match r {
                Ok(Reply::Data(a)) => return Ok(a),
                Ok(Reply::Exception(code)) => return Err(ReqError::Exception(code)),
                Err(Failed::Io(e)) => {
                    // The connection broke: open it again for the next attempt.
                    self.conn = None;
                    self.last_err = e.clone();
                    if attempt >= job.retries {
                        return Err(ReqError::Link(e));
                    }
                }
                // The connection stays: a late answer is told apart and discarded (transport.rs).
                Err(Failed::Timeout) if attempt >= job.retries => return Err(ReqError::Timeout(instead)),
                Err(Failed::Timeout) => {}
            }
            attempt += 1;
        }
    }
}

fn rand_jitter(max: u64) -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos() as u64).unwrap_or(0);
    nanos % max.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// A "device" that accepts connections and reads requests but never answers (a connection a
    /// middlebox dropped without a reset looks like this): the link opens a new connection after
    /// three silent requests in a row, and counts every one as unanswered.
    #[tokio::test]
    async fn a_silent_tcp_connection_is_opened_again_and_its_requests_are_counted() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicU64::new(0));
        let seen = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                seen.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move { while s.read(&mut [0u8; 256]).await.unwrap_or(0) > 0 {} });
            }
        });
        let (link, _workers) = Link::start(Endpoint::Tcp(addr), 1, (10, 100), Arc::default());
        let counters = Arc::new(LinkCounters::default());
        let op = || Op::Read { area: Area::Holding, start: 0, count: 1 };
        for _ in 0..SILENT_BEFORE_RECONNECT {
            let r = link.call(1, op(), Duration::from_millis(30), 0, &counters).await;
            assert!(matches!(r, Err(ReqError::Timeout(None))), "{r:?}");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection while the silences add up");
        let r = link.call(1, op(), Duration::from_millis(30), 0, &counters).await;
        assert!(matches!(r, Err(ReqError::Timeout(None))), "{r:?}");
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "a new connection after {SILENT_BEFORE_RECONNECT} silent requests");
        assert_eq!(counters.unanswered.load(Ordering::SeqCst), u64::from(SILENT_BEFORE_RECONNECT) + 1);
        assert_eq!(counters.discarded.load(Ordering::SeqCst), 0);
    }
}
