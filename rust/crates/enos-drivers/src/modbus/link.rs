//! Connections to one Modbus endpoint: a queue of requests served by one or more workers, each
//! owning a connection, reconnecting with exponential backoff.

use enos_model::config::{Area, Parity, SerialConfig};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::time::{timeout, Instant};
use tokio_modbus::client::{Context, Reader, Writer};
use tokio_modbus::prelude::*;

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
    /// The device answered with an exception code.
    Exception(u8, String),
    /// No answer in time.
    Timeout,
    /// Could not connect, or the connection broke.
    Link(String),
}

impl std::fmt::Display for ReqError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReqError::Exception(c, m) => write!(f, "device exception {c:#04x} ({m})"),
            ReqError::Timeout => write!(f, "no answer (timeout)"),
            ReqError::Link(m) => write!(f, "link: {m}"),
        }
    }
}

fn exception_text(e: ExceptionCode) -> String {
    match e {
        ExceptionCode::IllegalFunction => "illegal function: the device does not support this function code".into(),
        ExceptionCode::IllegalDataAddress => "illegal data address: the register does not exist on the device".into(),
        ExceptionCode::IllegalDataValue => "illegal data value: the device refused the value or count".into(),
        ExceptionCode::ServerDeviceFailure => "server device failure".into(),
        ExceptionCode::Acknowledge => "acknowledge: the device is busy with a long operation".into(),
        ExceptionCode::ServerDeviceBusy => "server device busy".into(),
        ExceptionCode::GatewayPathUnavailable => "gateway path unavailable".into(),
        ExceptionCode::GatewayTargetDevice => "gateway target device failed to respond (wrong unit id?)".into(),
        other => format!("{other:?}"),
    }
}

fn exception_code(e: ExceptionCode) -> u8 {
    u8::from(e)
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

pub struct Job {
    pub unit: u8,
    pub op: Op,
    pub timeout: Duration,
    pub retries: u32,
    pub reply: oneshot::Sender<Result<Answer, ReqError>>,
}

/// A handle to submit requests to an endpoint.
#[derive(Clone)]
pub struct Link {
    tx: mpsc::Sender<Job>,
}

impl Link {
    /// Starts `workers` connections (1 on a serial line).
    pub fn start(ep: Endpoint, workers: usize, backoff: (u64, u64), requests: Arc<std::sync::atomic::AtomicU64>) -> Link {
        let (tx, rx) = mpsc::channel::<Job>(1024);
        let rx = Arc::new(Mutex::new(rx));
        let workers = if ep.is_serial() { 1 } else { workers.max(1) };
        for _ in 0..workers {
            let w = Worker {
                ep: ep.clone(),
                ctx: None,
                backoff_ms: backoff.0,
                backoff,
                next_try: Instant::now(),
                last_err: String::new(),
                requests: requests.clone(),
            };
            tokio::spawn(w.run(rx.clone()));
        }
        Link { tx }
    }

    pub async fn call(&self, unit: u8, op: Op, tmo: Duration, retries: u32) -> Result<Answer, ReqError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Job { unit, op, timeout: tmo, retries, reply }).await.map_err(|_| ReqError::Link("driver stopped".into()))?;
        rx.await.unwrap_or_else(|_| Err(ReqError::Link("driver stopped".into())))
    }
}

struct Worker {
    ep: Endpoint,
    ctx: Option<Context>,
    backoff_ms: u64,
    backoff: (u64, u64),
    next_try: Instant,
    last_err: String,
    requests: Arc<std::sync::atomic::AtomicU64>,
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
        if self.ctx.is_some() {
            return Ok(());
        }
        if Instant::now() < self.next_try {
            return Err(ReqError::Link(format!("{} (reconnecting in {} ms)", self.last_err, (self.next_try - Instant::now()).as_millis())));
        }
        let r = timeout(tmo.max(Duration::from_secs(1)), open(&self.ep)).await;
        match r {
            Ok(Ok(ctx)) => {
                self.ctx = Some(ctx);
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
        loop {
            self.connect(job.timeout).await?;
            let ctx = self.ctx.as_mut().expect("connected");
            ctx.set_slave(Slave(job.unit));
            self.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let r = timeout(job.timeout, call(ctx, &job.op)).await;
            match r {
                Ok(Ok(Ok(a))) => return Ok(a),
                Ok(Ok(Err(exc))) => return Err(ReqError::Exception(exception_code(exc), exception_text(exc))),
                Ok(Err(e)) => {
                    // The transport failed: drop the connection, reconnect on the next request.
                    self.ctx = None;
                    self.last_err = e.to_string();
                    if attempt >= job.retries {
                        return Err(ReqError::Link(e.to_string()));
                    }
                }
                Err(_) => {
                    // A late answer would be read as the answer to the next request: start over.
                    self.ctx = None;
                    if attempt >= job.retries {
                        return Err(ReqError::Timeout);
                    }
                }
            }
            attempt += 1;
        }
    }
}

fn rand_jitter(max: u64) -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos() as u64).unwrap_or(0);
    nanos % max.max(1)
}

async fn open(ep: &Endpoint) -> Result<Context, String> {
    match ep {
        Endpoint::Tcp(addr) => {
            let sa = resolve(addr).await?;
            tokio_modbus::client::tcp::connect(sa).await.map_err(|e| e.to_string())
        }
        Endpoint::RtuOverTcp(addr) => {
            let sa = resolve(addr).await?;
            let stream = tokio::net::TcpStream::connect(sa).await.map_err(|e| e.to_string())?;
            let _ = stream.set_nodelay(true);
            Ok(tokio_modbus::client::rtu::attach(stream))
        }
        Endpoint::Serial(s) => {
            use tokio_serial::SerialPortBuilderExt;
            let builder = tokio_serial::new(&s.port, s.baud)
                .parity(match s.parity {
                    Parity::None => tokio_serial::Parity::None,
                    Parity::Even => tokio_serial::Parity::Even,
                    Parity::Odd => tokio_serial::Parity::Odd,
                })
                .data_bits(match s.data_bits {
                    5 => tokio_serial::DataBits::Five,
                    6 => tokio_serial::DataBits::Six,
                    7 => tokio_serial::DataBits::Seven,
                    _ => tokio_serial::DataBits::Eight,
                })
                .stop_bits(if s.stop_bits == 2 { tokio_serial::StopBits::Two } else { tokio_serial::StopBits::One });
            let port = builder.open_native_async().map_err(|e| format!("{}: {e}", s.port))?;
            Ok(tokio_modbus::client::rtu::attach(port))
        }
    }
}

async fn resolve(addr: &str) -> Result<std::net::SocketAddr, String> {
    tokio::net::lookup_host(addr).await.map_err(|e| format!("{addr}: {e}"))?.next().ok_or_else(|| format!("{addr}: no address"))
}

async fn call(ctx: &mut Context, op: &Op) -> tokio_modbus::Result<Answer> {
    Ok(match op {
        Op::Read { area: Area::Holding, start, count } => ctx.read_holding_registers(*start, *count).await?.map(Answer::Words),
        Op::Read { area: Area::Input, start, count } => ctx.read_input_registers(*start, *count).await?.map(Answer::Words),
        Op::Read { area: Area::Coil, start, count } => ctx.read_coils(*start, *count).await?.map(Answer::Bits),
        Op::Read { area: Area::Discrete, start, count } => ctx.read_discrete_inputs(*start, *count).await?.map(Answer::Bits),
        Op::WriteCoil { addr, on, multiple: false } => ctx.write_single_coil(*addr, *on).await?.map(|_| Answer::Written),
        Op::WriteCoil { addr, on, multiple: true } => ctx.write_multiple_coils(*addr, &[*on]).await?.map(|_| Answer::Written),
        Op::WriteRegisters { addr, words, multiple: false } if words.len() == 1 => {
            ctx.write_single_register(*addr, words[0]).await?.map(|_| Answer::Written)
        }
        Op::WriteRegisters { addr, words, .. } => ctx.write_multiple_registers(*addr, words).await?.map(|_| Answer::Written),
    })
}
