//! A line to meters: a serial port (RS-485, several meters, one request at a time) or a TCP
//! connection to a serial device server in transparent mode. Requests carry a timeout and
//! retries. What arrives that is not the answer (a frame for another address, function or
//! identifier, a wrong checksum, line noise) is discarded, counted and logged with its bytes,
//! and the request keeps waiting for its answer until the timeout.

use crate::error::Error;
use crate::format::{to_bcd, Date, Reading, TimeOfDay};
use crate::frame::{control, hex, scan, Address, FieldOrder, Frame, Scan};
use crate::ident::{Identifier, Point};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;
use tokio::time::{timeout_at, Instant};

/// Where the meters are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// `host:port` of a serial device server (transparent mode).
    Tcp(String),
    Serial(Serial),
}

/// Serial settings; meters ship at 2400 baud, 8 data bits, even parity, 1 stop bit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Serial {
    pub port: String,
    pub baud: u32,
    pub parity: Parity,
    pub data_bits: u8,
    pub stop_bits: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parity {
    None,
    Even,
    Odd,
}

impl Serial {
    pub fn new(port: &str) -> Serial {
        Serial { port: port.into(), baud: 2400, parity: Parity::Even, data_bits: 8, stop_bits: 1 }
    }
}

#[derive(Clone, Debug)]
pub struct LineConfig {
    pub link: Link,
    /// How long one attempt waits for its answer.
    pub timeout: Duration,
    /// Attempts after the first one without an answer.
    pub retries: u32,
    /// Wake-up bytes FE sent before each frame (0 to 4).
    pub preamble: u8,
}

impl LineConfig {
    pub fn new(link: Link) -> LineConfig {
        LineConfig { link, timeout: Duration::from_millis(1000), retries: 1, preamble: 4 }
    }
}

/// One meter on the line: its address and the order its address goes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meter {
    pub address: Address,
    pub order: FieldOrder,
}

/// How long one attempt waits, and how many attempts follow a timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub timeout: Duration,
    pub retries: u32,
}

/// What the line counted since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames and runs of bytes that arrived and were not the answer waited for.
    pub discarded: u64,
    /// Attempts that met no answer within the timeout.
    pub timeouts: u64,
}

impl Counters {
    /// What was added since `before`.
    pub fn since(self, before: Counters) -> Counters {
        Counters { discarded: self.discarded - before.discarded, timeouts: self.timeouts - before.timeouts }
    }
}

/// Requests in a row without a byte in answer after which a TCP connection is opened again.
const SILENT_BEFORE_RECONNECT: u32 = 3;

/// The most follow-up frames one read takes (the sequence number is one byte).
const MAX_FOLLOW_UPS: u32 = 255;

pub struct Line {
    cfg: LineConfig,
    /// Held for a whole request: one request at a time on the line.
    conn: Mutex<Option<Conn>>,
    discarded: AtomicU64,
    timeouts: AtomicU64,
}

impl Line {
    /// A line; the port or connection is opened by the first request (and again after it broke).
    pub fn new(cfg: LineConfig) -> Line {
        Line { cfg, conn: Mutex::new(None), discarded: AtomicU64::new(0), timeouts: AtomicU64::new(0) }
    }

    pub fn counters(&self) -> Counters {
        Counters { discarded: self.discarded.load(Relaxed), timeouts: self.timeouts.load(Relaxed) }
    }

    /// The line in words, for messages ("/dev/ttyS1", "10.0.0.5:4001").
    pub fn name(&self) -> &str {
        match &self.cfg.link {
            Link::Tcp(a) => a,
            Link::Serial(s) => &s.port,
        }
    }

    /// Reads one point of `meter`, following up while the meter says more frames follow.
    pub async fn read(&self, meter: &Meter, point: &Point) -> Result<Reading, Error> {
        self.read_counted(meter, point).await.0
    }

    /// [`Line::read`], with what this read alone added to the line's counters (the meter's
    /// share: other meters' reads wait for the line meanwhile).
    pub async fn read_counted(&self, meter: &Meter, point: &Point) -> (Result<Reading, Error>, Counters) {
        self.read_timed(meter, point, self.timing()).await
    }

    /// [`Line::read_counted`] with this meter's own timeout and retries (meters on one line may
    /// answer at different speeds).
    pub async fn read_timed(&self, meter: &Meter, point: &Point, timing: Timing) -> (Result<Reading, Error>, Counters) {
        let mut guard = self.conn.lock().await;
        let before = self.counters();
        let r = self.raw(&mut guard, meter, point.id, timing, None).await.and_then(|data| {
            point.format.decode(&data).map_err(|reason| Error::Decode { meter: meter.address, what: what(point.id), reason })
        });
        (r, self.counters().since(before))
    }

    /// The data of identifier `id` (after the identifier, follow-up frames appended), undecoded.
    pub async fn read_raw(&self, meter: &Meter, id: Identifier) -> Result<Vec<u8>, Error> {
        let mut guard = self.conn.lock().await;
        self.raw(&mut guard, meter, id, self.timing(), None).await
    }

    /// [`Line::read_raw`] with `timing`, and every request of it with the answer taken for it
    /// (the communication test shows them).
    pub async fn read_traced(&self, meter: &Meter, id: Identifier, timing: Timing) -> (Result<Vec<u8>, Error>, Vec<Exchange>) {
        let mut guard = self.conn.lock().await;
        let mut trace = Vec::new();
        let r = self.raw(&mut guard, meter, id, timing, Some(&mut trace)).await;
        (r, trace)
    }

    fn timing(&self) -> Timing {
        Timing { timeout: self.cfg.timeout, retries: self.cfg.retries }
    }

    async fn raw(
        &self,
        guard: &mut Option<Conn>,
        meter: &Meter,
        id: Identifier,
        timing: Timing,
        mut trace: Option<&mut Vec<Exchange>>,
    ) -> Result<Vec<u8>, Error> {
        let addr = meter.order.wire(meter.address.0);
        let req = Frame { address: addr, control: control::READ, data: id.wire().to_vec() };
        let mut reply = self.request(guard, meter.address, &what(id), &req, timing, trace.as_deref_mut()).await?;
        let mut data = reply.data.split_off(4);
        let mut seq = 0u32;
        while reply.control & control::MORE_FOLLOWS != 0 {
            seq += 1;
            if seq > MAX_FOLLOW_UPS {
                let reason = format!("the meter announced more than {MAX_FOLLOW_UPS} follow-up frames");
                return Err(Error::Decode { meter: meter.address, what: what(id), reason });
            }
            let mut follow = id.wire().to_vec();
            follow.push(seq as u8);
            let req = Frame { address: addr, control: control::READ_FOLLOW_UP, data: follow };
            let what = format!("follow-up frame {seq} of {}", what(id));
            reply = self.request(guard, meter.address, &what, &req, timing, trace.as_deref_mut()).await?;
            // DI, the data, then the frame's sequence number.
            data.extend_from_slice(&reply.data[4..reply.data.len() - 1]);
        }
        Ok(data)
    }

    /// Sets every meter's clock (broadcast time sync, no answer). `order`: how the meters
    /// expect the six fields (standard: seconds first).
    pub async fn broadcast_time(&self, date: Date, time: TimeOfDay, order: FieldOrder) -> Result<(), Error> {
        let mut guard = self.conn.lock().await;
        let written = [(date.year % 100) as u8, date.month, date.day, time.hour, time.minute, time.second].map(to_bcd);
        let frame = Frame { address: Address::BROADCAST.0, control: control::BROADCAST_TIME, data: order.wire(written).to_vec() };
        let conn = self.open(&mut guard).await?;
        conn.settle(&mut |why, bytes| self.discard(why, bytes)).await.map_err(|e| self.broken(&mut guard, e))?;
        let conn = guard.as_mut().expect("opened above");
        conn.send(&frame.encode(self.cfg.preamble)).await.map_err(|e| self.broken(&mut guard, e))
    }

    /// The address of the only meter on the line (wildcard request).
    pub async fn read_address(&self, order: FieldOrder) -> Result<Address, Error> {
        let mut guard = self.conn.lock().await;
        let req = Frame { address: Address::WILDCARD.0, control: control::READ_ADDRESS, data: vec![] };
        let reply = self.request(&mut guard, Address::WILDCARD, "reading the meter address", &req, self.timing(), None).await?;
        match <[u8; 6]>::try_from(&reply.data[..]) {
            Ok(a) => Ok(Address(order.wire(a))),
            Err(_) => Err(Error::Decode {
                meter: Address::WILDCARD,
                what: "reading the meter address".into(),
                reason: format!("the answer holds {} bytes, an address takes 6", reply.data.len()),
            }),
        }
    }

    /// Sends `req` and waits for its answer, `retries` more times after a timeout; `trace` gets
    /// the request and the answer taken (none after a timeout).
    async fn request(
        &self,
        guard: &mut Option<Conn>,
        meter: Address,
        what: &str,
        req: &Frame,
        timing: Timing,
        trace: Option<&mut Vec<Exchange>>,
    ) -> Result<Frame, Error> {
        let r = self.attempts(guard, meter, what, req, timing).await;
        if let Some(t) = trace {
            t.push(Exchange { request: req.encode(self.cfg.preamble), response: r.as_ref().ok().map(|f| f.encode(0)) });
        }
        match r? {
            reply if reply.control & control::ABNORMAL != 0 => {
                Err(Error::Exception { meter, what: what.into(), code: reply.data.first().copied().unwrap_or(0) })
            }
            reply => Ok(reply),
        }
    }

    /// The answer to `req` (an abnormal reply too), trying again after a timeout.
    async fn attempts(&self, guard: &mut Option<Conn>, meter: Address, what: &str, req: &Frame, timing: Timing) -> Result<Frame, Error> {
        let attempts = timing.retries + 1;
        let mut arrived = None;
        for _ in 0..attempts {
            let conn = self.open(guard).await?;
            let deadline = Instant::now() + timing.timeout;
            let mut note = |why: &str, bytes: &[u8]| {
                arrived = Some(why.to_string());
                self.discard(why, bytes)
            };
            match conn.exchange(req, self.cfg.preamble, deadline, &mut note).await {
                Ok(reply) => return Ok(reply),
                Err(Broken::Timeout) => {
                    self.timeouts.fetch_add(1, Relaxed);
                    // A TCP connection dropped without a reset would be waited on for ever.
                    if conn.quiet.is_none() && conn.silent >= SILENT_BEFORE_RECONNECT {
                        log::info!(
                            "DL/T 645 line {}: {SILENT_BEFORE_RECONNECT} requests in a row met silence: connecting again",
                            self.name()
                        );
                        *guard = None;
                    }
                }
                Err(e @ Broken::Io(_)) => return Err(self.broken(guard, e)),
            }
        }
        Err(Error::Timeout { meter, what: what.into(), timeout: timing.timeout, attempts, arrived })
    }

    async fn open<'a>(&self, guard: &'a mut Option<Conn>) -> Result<&'a mut Conn, Error> {
        if guard.is_none() {
            let link = |reason: String| Error::Link { line: self.name().into(), reason };
            *guard = Some(match &self.cfg.link {
                Link::Tcp(addr) => Conn::tcp(addr).await.map_err(link)?,
                Link::Serial(s) => Conn::serial(s).map_err(link)?,
            });
        }
        Ok(guard.as_mut().expect("opened above"))
    }

    /// A broken connection is dropped; the next request opens it again.
    fn broken(&self, guard: &mut Option<Conn>, e: Broken) -> Error {
        *guard = None;
        let reason = match e {
            Broken::Io(r) => r,
            Broken::Timeout => "timed out".into(),
        };
        Error::Link { line: self.name().into(), reason }
    }

    fn discard(&self, why: &str, bytes: &[u8]) {
        self.discarded.fetch_add(1, Relaxed);
        log::warn!("DL/T 645 line {}: discarded {why}: {}", self.name(), hex(bytes));
    }
}

/// One request as sent (wake-up bytes included) and the answer taken for it, as it was framed
/// (without the meter's wake-up bytes); `None` when no answer came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    pub request: Vec<u8>,
    pub response: Option<Vec<u8>>,
}

fn what(id: Identifier) -> String {
    format!("reading {id}")
}

/// Where an exchange hands what it discards (why, the bytes). `Send`: reads run in spawned tasks.
type Discard<'a> = dyn FnMut(&str, &[u8]) + Send + 'a;

/// Why an attempt ended without an answer.
enum Broken {
    Timeout,
    Io(String),
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

struct Conn {
    io: Box<dyn Stream>,
    /// Bytes received and not yet taken as a frame.
    buf: Vec<u8>,
    /// Serial lines only: how long the line must be quiet before a request after a failed one
    /// (a late answer may still be arriving).
    quiet: Option<Duration>,
    /// The last exchange ended without its answer.
    dirty: bool,
    /// Exchanges in a row during which nothing at all arrived.
    silent: u32,
}

impl Conn {
    async fn tcp(addr: &str) -> Result<Conn, String> {
        let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("cannot connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        Ok(Conn { io: Box::new(stream), buf: Vec::new(), quiet: None, dirty: false, silent: 0 })
    }

    fn serial(s: &Serial) -> Result<Conn, String> {
        use tokio_serial::{SerialPort, SerialPortBuilderExt};
        let port = tokio_serial::new(&s.port, s.baud)
            .parity(match s.parity {
                Parity::None => tokio_serial::Parity::None,
                Parity::Even => tokio_serial::Parity::Even,
                Parity::Odd => tokio_serial::Parity::Odd,
            })
            .data_bits(match s.data_bits {
                7 => tokio_serial::DataBits::Seven,
                _ => tokio_serial::DataBits::Eight,
            })
            .stop_bits(if s.stop_bits == 2 { tokio_serial::StopBits::Two } else { tokio_serial::StopBits::One })
            .open_native_async()
            .map_err(|e| format!("cannot open the serial port: {e}"))?;
        // Whatever arrived before the port was opened belongs to nobody.
        let _ = port.clear(tokio_serial::ClearBuffer::Input);
        // Ten characters of 11 bits, at least 10 ms.
        let quiet = Duration::from_micros((110_000_000 / s.baud.max(1) as u64).max(10_000));
        Ok(Conn { io: Box::new(port), buf: Vec::new(), quiet: Some(quiet), dirty: false, silent: 0 })
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), Broken> {
        self.io.write_all(bytes).await.map_err(|e| Broken::Io(format!("cannot send: {e}")))?;
        self.io.flush().await.map_err(|e| Broken::Io(format!("cannot send: {e}")))
    }

    async fn fill(&mut self, deadline: Instant) -> Result<(), Broken> {
        let mut chunk = [0u8; 512];
        match timeout_at(deadline, self.io.read(&mut chunk)).await {
            Err(_) => Err(Broken::Timeout),
            Ok(Ok(0)) => Err(Broken::Io("the connection was closed by the other end".into())),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                self.silent = 0;
                Ok(())
            }
            Ok(Err(e)) => Err(Broken::Io(format!("cannot receive: {e}"))),
        }
    }

    /// Before a request: what is left of earlier traffic is dropped; on a serial line after a
    /// failed exchange, also what arrives until the line has been quiet for a while.
    async fn settle(&mut self, discard: &mut Discard<'_>) -> Result<(), Broken> {
        let mut stale = std::mem::take(&mut self.buf);
        if let (true, Some(quiet)) = (self.dirty, self.quiet) {
            let give_up = Instant::now() + 50 * quiet;
            loop {
                match self.fill((Instant::now() + quiet).min(give_up)).await {
                    Ok(()) => stale.append(&mut self.buf),
                    Err(Broken::Timeout) => break,
                    Err(e) => return Err(e),
                }
            }
        }
        self.dirty = false;
        if !stale.is_empty() {
            discard("bytes left on the line by earlier traffic (a late answer?)", &stale);
        }
        Ok(())
    }

    /// Sends `req` and returns the first frame that answers it; others are handed to `discard`.
    async fn exchange(&mut self, req: &Frame, preamble: u8, deadline: Instant, discard: &mut Discard<'_>) -> Result<Frame, Broken> {
        self.settle(discard).await?;
        self.send(&req.encode(preamble)).await?;
        self.silent += 1; // until a byte arrives
        let r = self.answer(req, deadline, discard).await;
        self.dirty = r.is_err();
        r
    }

    async fn answer(&mut self, req: &Frame, deadline: Instant, discard: &mut Discard<'_>) -> Result<Frame, Broken> {
        // Adjacent skipped bytes are one discard, named by the first reason, reported before
        // the next frame or at the end.
        let mut junk = Junk::default();
        let r = loop {
            match scan(&self.buf) {
                Scan::Incomplete => {
                    if let Err(e) = self.fill(deadline).await {
                        break Err(e);
                    }
                }
                Scan::Junk { len, why } => {
                    junk.why.get_or_insert(why);
                    junk.bytes.extend(self.buf.drain(..len));
                }
                Scan::Frame { frame, used } => {
                    junk.flush(discard);
                    let bytes: Vec<u8> = self.buf.drain(..used).collect();
                    match judge(req, &frame) {
                        Ok(()) => break Ok(frame),
                        Err(why) => discard(why, &bytes),
                    }
                }
            }
        };
        // A timeout leaves the start of a frame that never completed: junk too.
        if r.is_err() && !self.buf.is_empty() {
            junk.why.get_or_insert("the start of a frame that never completed");
            junk.bytes.append(&mut self.buf);
        }
        junk.flush(discard);
        r
    }
}

#[derive(Default)]
struct Junk {
    bytes: Vec<u8>,
    why: Option<&'static str>,
}

impl Junk {
    fn flush(&mut self, discard: &mut Discard<'_>) {
        if let Some(why) = self.why.take() {
            discard(why, &self.bytes);
            self.bytes.clear();
        }
    }
}

/// Whether `reply` answers `req`, or why not.
fn judge(req: &Frame, reply: &Frame) -> Result<(), &'static str> {
    if reply.control & control::REPLY == 0 {
        return Err("a request, not an answer (an echo or another master)");
    }
    if reply.control & control::FUNCTION != req.control & control::FUNCTION {
        return Err("an answer to another function");
    }
    // An AA byte in the request's address matches any (a wildcard, whole or partial).
    if req.address.iter().zip(reply.address).any(|(q, r)| *q != 0xAA && *q != r) {
        return Err("an answer from another address");
    }
    if reply.control & control::ABNORMAL != 0 {
        return match reply.data.len() {
            1 => Ok(()),
            _ => Err("an abnormal answer without its one error byte"),
        };
    }
    match req.control {
        control::READ if reply.data.get(..4) != Some(&req.data[..4]) => Err("an answer for another data identifier"),
        control::READ_FOLLOW_UP if reply.data.len() < 5 || reply.data[..4] != req.data[..4] => {
            Err("a follow-up answer for another data identifier")
        }
        control::READ_FOLLOW_UP if reply.data.last() != req.data.last() => Err("an answer to another follow-up frame"),
        control::READ_ADDRESS if reply.data.len() != 6 => Err("an address answer that does not hold 6 bytes"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_counts_as_the_answer() {
        let req = Frame { address: [0x12, 0x90, 0x78, 0x56, 0x34, 0x12], control: control::READ, data: vec![0, 1, 1, 2] };
        let ok = |control, address, data: Vec<u8>| judge(&req, &Frame { address, control, data });
        assert_eq!(ok(0x91, req.address, vec![0, 1, 1, 2, 0x14, 0x23]), Ok(()));
        assert_eq!(ok(0xD1, req.address, vec![0x02]), Ok(()), "an abnormal answer is an answer");
        assert_eq!(ok(0x91, [0x13, 0x90, 0x78, 0x56, 0x34, 0x12], vec![0, 1, 1, 2]), Err("an answer from another address"));
        assert_eq!(ok(0x91, req.address, vec![0, 2, 1, 2]), Err("an answer for another data identifier"));
        assert_eq!(ok(0x91, req.address, vec![0, 1]), Err("an answer for another data identifier"));
        assert_eq!(ok(0x11, req.address, vec![0, 1, 1, 2]), Err("a request, not an answer (an echo or another master)"));
        assert_eq!(ok(0x92, req.address, vec![0, 1, 1, 2]), Err("an answer to another function"));
        assert_eq!(ok(0xD1, req.address, vec![]), Err("an abnormal answer without its one error byte"));
        // A partial wildcard (the high digits AA) takes any meter whose low digits match.
        let wild = Frame { address: [0x12, 0x90, 0xAA, 0xAA, 0xAA, 0xAA], control: control::READ_ADDRESS, data: vec![] };
        let any = |address| judge(&wild, &Frame { address, control: 0x93, data: vec![0; 6] });
        assert_eq!(any(req.address), Ok(()));
        assert_eq!(any([0x13, 0x90, 0x78, 0x56, 0x34, 0x12]), Err("an answer from another address"));
    }
}
