//! A Modbus TCP field device: registers and coils in memory, counters that advance on every
//! read (so a test knows exactly what was served), programmable exceptions, late answers, and
//! unplugging.

use std::collections::HashMap;
use std::future::{self, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_modbus::prelude::*;
use tokio_modbus::server::tcp::{accept_tcp_connection, Server};

#[derive(Default)]
pub struct State {
    pub holding: HashMap<u16, u16>,
    pub input: HashMap<u16, u16>,
    pub coils: HashMap<u16, bool>,
    /// Holding registers (pairs, big-endian u32) that count the reads covering them.
    pub counters: Vec<u16>,
    /// Every counter value served, in order, per counter address.
    pub served: HashMap<u16, Vec<u32>>,
    /// Reads or writes touching these register addresses (holding or input: a hole in the
    /// register map) answer IllegalDataAddress.
    pub forbidden: Vec<u16>,
    /// Writes received: (address, words).
    pub writes: Vec<(u16, Vec<u16>)>,
    /// When each write arrived (ms since the epoch), parallel to `writes`.
    pub write_ms: Vec<u64>,
    pub unit: u8,
    pub requests: u64,
    /// Like devices that implement only FC15/FC16: FC5/FC6 answer IllegalFunction.
    pub multiple_only: bool,
    /// Reads starting at this address are answered only after this many milliseconds (a slow
    /// device whose answer arrives after the master's timeout). The device is busy meanwhile:
    /// requests behind it wait, as on a real line.
    pub late: Option<(u16, u64)>,
    /// Every request is answered with this exception (a device refusing everything).
    pub refuse_all: Option<ExceptionCode>,
    /// Register reads of more than this many registers answer IllegalDataValue (03), like
    /// devices with a small request buffer.
    pub max_read: Option<u16>,
    /// Every request is answered after this many milliseconds (a slow device, e.g. behind a busy
    /// gateway), unless `late` says otherwise for a read's address.
    pub slow_ms: Option<u64>,
}

#[derive(Clone)]
pub struct SimDevice {
    pub state: Arc<Mutex<State>>,
}

impl tokio_modbus::server::Service for SimDevice {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Answer;

    fn call(&self, req: Self::Request) -> Self::Future {
        let late = {
            let s = self.state.lock().unwrap();
            match req.request {
                Request::ReadHoldingRegisters(a, _) | Request::ReadInputRegisters(a, _) if req.slave == s.unit => {
                    s.late.filter(|&(start, _)| start == a).map(|(_, ms)| ms).or(s.slow_ms)
                }
                // a slow device is slow for everything (coils too)
                _ if req.slave == s.unit => s.slow_ms,
                _ => None,
            }
        };
        let answer = self.answer(req);
        match late {
            Some(ms) => Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                answer.await
            }),
            None => Box::pin(answer),
        }
    }
}

/// A simulated device's answer (boxed: some are late).
pub type Answer = Pin<Box<dyn Future<Output = Result<Option<Response>, ExceptionCode>> + Send>>;

impl SimDevice {
    fn answer(&self, req: SlaveRequest<'static>) -> future::Ready<Result<Option<Response>, ExceptionCode>> {
        let mut s = self.state.lock().unwrap();
        s.requests += 1;
        if req.slave != s.unit {
            return future::ready(Ok(None)); // wrong unit id: silence, like a real RS-485 line
        }
        if let Some(e) = s.refuse_all {
            return future::ready(Err(e));
        }
        let too_many = |s: &State, n: u16| s.max_read.is_some_and(|m| n > m);
        if let Request::ReadHoldingRegisters(_, n) | Request::ReadInputRegisters(_, n) = req.request {
            if too_many(&s, n) {
                return future::ready(Err(ExceptionCode::IllegalDataValue));
            }
        }
        let hits = |s: &State, a: u16, n: u16| s.forbidden.iter().any(|&f| f >= a && f < a.saturating_add(n));
        let r = match req.request {
            Request::ReadHoldingRegisters(a, n) => {
                if hits(&s, a, n) {
                    return future::ready(Err(ExceptionCode::IllegalDataAddress));
                }
                let counters = s.counters.clone();
                for c in counters {
                    if c >= a && c + 1 < a + n {
                        let v = ((*s.holding.get(&c).unwrap_or(&0) as u32) << 16 | *s.holding.get(&(c + 1)).unwrap_or(&0) as u32) + 1;
                        s.holding.insert(c, (v >> 16) as u16);
                        s.holding.insert(c + 1, v as u16);
                        s.served.entry(c).or_default().push(v);
                    }
                }
                Response::ReadHoldingRegisters((a..a + n).map(|i| *s.holding.get(&i).unwrap_or(&0)).collect())
            }
            Request::ReadInputRegisters(a, n) => {
                if hits(&s, a, n) {
                    return future::ready(Err(ExceptionCode::IllegalDataAddress));
                }
                Response::ReadInputRegisters((a..a + n).map(|i| *s.input.get(&i).unwrap_or(&0)).collect())
            }
            Request::ReadCoils(a, n) => Response::ReadCoils((a..a + n).map(|i| *s.coils.get(&i).unwrap_or(&false)).collect()),
            Request::ReadDiscreteInputs(a, n) => {
                Response::ReadDiscreteInputs((a..a + n).map(|i| *s.coils.get(&(i + 10000)).unwrap_or(&false)).collect())
            }
            Request::WriteSingleRegister(_, _) if s.multiple_only => return future::ready(Err(ExceptionCode::IllegalFunction)),
            Request::WriteSingleCoil(_, _) if s.multiple_only => return future::ready(Err(ExceptionCode::IllegalFunction)),
            Request::WriteSingleRegister(a, v) => {
                if hits(&s, a, 1) {
                    return future::ready(Err(ExceptionCode::IllegalDataAddress));
                }
                s.holding.insert(a, v);
                s.writes.push((a, vec![v]));
                s.write_ms.push(enos_batch::now_ms());
                Response::WriteSingleRegister(a, v)
            }
            Request::WriteMultipleRegisters(a, ref words) => {
                let n = words.len() as u16;
                if hits(&s, a, n) {
                    return future::ready(Err(ExceptionCode::IllegalDataAddress));
                }
                for (i, w) in words.iter().enumerate() {
                    s.holding.insert(a + i as u16, *w);
                }
                s.writes.push((a, words.to_vec()));
                s.write_ms.push(enos_batch::now_ms());
                Response::WriteMultipleRegisters(a, n)
            }
            Request::WriteMultipleCoils(a, ref coils) => {
                for (i, on) in coils.iter().enumerate() {
                    s.coils.insert(a + i as u16, *on);
                }
                s.writes.push((a, coils.iter().map(|&c| c as u16).collect()));
                s.write_ms.push(enos_batch::now_ms());
                Response::WriteMultipleCoils(a, coils.len() as u16)
            }
            Request::WriteSingleCoil(a, on) => {
                s.coils.insert(a, on);
                s.writes.push((a, vec![on as u16]));
                s.write_ms.push(enos_batch::now_ms());
                Response::WriteSingleCoil(a, on)
            }
            _ => return future::ready(Err(ExceptionCode::IllegalFunction)),
        };
        future::ready(Ok(Some(r)))
    }
}

/// Several devices on one line (RS-485 multi-drop, or a TCP gateway), chosen by unit id; an
/// unknown unit id gets silence.
#[derive(Clone)]
pub struct MultiDrop(pub Vec<SimDevice>);

impl tokio_modbus::server::Service for MultiDrop {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Answer;

    fn call(&self, req: Self::Request) -> Self::Future {
        match self.0.iter().find(|d| d.state.lock().unwrap().unit == req.slave) {
            Some(d) => d.call(req),
            None => Box::pin(future::ready(Ok(None))),
        }
    }
}

impl SimDevice {
    pub fn new(unit: u8) -> SimDevice {
        SimDevice { state: Arc::new(Mutex::new(State { unit, ..Default::default() })) }
    }
}

/// Serves `line` as Modbus RTU on a serial device (one end of a socat PTY pair in tests).
pub fn serve_rtu_serial(path: &str, line: MultiDrop) -> std::io::Result<JoinHandle<()>> {
    let server = tokio_modbus::server::rtu::Server::new_from_path(path, 19200)?;
    Ok(tokio::spawn(async move {
        let _ = server.serve_forever(line).await;
    }))
}

/// Serves `line` as Modbus RTU framing over TCP (serial-to-Ethernet converters) on 127.0.0.1.
pub async fn serve_rtu_over_tcp(line: MultiDrop) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let server = tokio_modbus::server::rtu_over_tcp::Server::new(listener);
        let new_service = |_a| Ok(Some(line.clone()));
        let on_connected = |stream, a| async move { tokio_modbus::server::rtu_over_tcp::accept_tcp_connection(stream, a, new_service) };
        let _ = server.serve(&on_connected, |_e| {}).await;
    });
    (addr, task)
}

/// A simulated device listening on 127.0.0.1; `unplug` closes it, `plug` brings it back on the
/// same port.
pub struct SimServer {
    pub dev: SimDevice,
    pub addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl SimServer {
    pub async fn start(unit: u8) -> SimServer {
        let state = State { unit, ..Default::default() };
        let dev = SimDevice { state: Arc::new(Mutex::new(state)) };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut s = SimServer { dev, addr, task: None };
        s.serve(listener);
        s
    }

    fn serve(&mut self, listener: TcpListener) {
        let dev = self.dev.clone();
        self.task = Some(tokio::spawn(async move {
            let server = Server::new(listener);
            let new_service = |_a| Ok(Some(dev.clone()));
            let on_connected = |stream, a| async move { accept_tcp_connection(stream, a, new_service) };
            let _ = server.serve(&on_connected, |_e| {}).await;
        }));
    }

    /// The device disappears: the listener and every connection close.
    pub fn unplug(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    pub async fn plug(&mut self) {
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        };
        self.serve(listener);
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.dev.state.lock().unwrap())
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.unplug();
    }
}
