//! One open connection to an endpoint and one request/answer exchange on it, discarding whatever
//! arrives that is not the answer: late answers to earlier requests (after a timeout), answers of
//! another unit id, another function, another size, another TCP transaction, and line noise.
//!
//! The connection stays open after a timeout: on TCP a late answer carries an old transaction id;
//! on a serial line the input is flushed and the line must be quiet for the silent interval before
//! the next request goes out. RTU has no transaction id, so an answer of exactly the shape of the
//! next request's (same unit, function and size) that arrives after that quiet time cannot be told
//! apart; everything else is discarded and counted.

use super::frame::{self, Mismatch, Reply};
use super::link::{Endpoint, Op};
use enos_collector_config::line::{Parity, SerialConfig};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};

/// Why an exchange gave no answer.
#[derive(Debug)]
pub enum Failed {
    /// Nothing that answers the request arrived in time.
    Timeout,
    /// The connection broke; it must be opened again.
    Io(String),
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

enum Framing {
    Tcp {
        next_tid: u16,
    },
    /// `quiet`: the silent interval between frames (3.5 characters, at least 1.75 ms).
    Rtu {
        quiet: Duration,
    },
}

pub struct Conn {
    io: Box<dyn Stream>,
    framing: Framing,
    /// Bytes received and not yet taken as a frame.
    buf: Vec<u8>,
    /// The last exchange ended without its answer: a late one may still be on its way.
    dirty: bool,
}

impl Conn {
    pub async fn open(ep: &Endpoint) -> Result<Conn, String> {
        let (io, framing): (Box<dyn Stream>, Framing) = match ep {
            Endpoint::Tcp(addr) => (Box::new(tcp(addr).await?), Framing::Tcp { next_tid: 1 }),
            Endpoint::RtuOverTcp(addr) => (Box::new(tcp(addr).await?), Framing::Rtu { quiet: Duration::from_micros(1750) }),
            Endpoint::Serial(s) => (Box::new(serial(s)?), Framing::Rtu { quiet: silent_interval(s.baud) }),
        };
        Ok(Conn { io, framing, buf: Vec::new(), dirty: false })
    }

    /// Sends `op` to `unit` and waits until `deadline` for its answer. Frames that are not its
    /// answer are discarded; `discarded` gets why, one entry each.
    pub async fn exchange(&mut self, unit: u8, op: &Op, deadline: Instant, discarded: &mut Vec<String>) -> Result<Reply, Failed> {
        let pdu = frame::request_pdu(op);
        let r = match self.framing {
            Framing::Tcp { ref mut next_tid } => {
                let tid = *next_tid;
                *next_tid = next_tid.wrapping_add(1);
                self.send(&frame::tcp_frame(tid, unit, &pdu)).await?;
                self.tcp_answer(tid, unit, op, deadline, discarded).await
            }
            Framing::Rtu { quiet } => {
                self.settle(quiet, deadline, discarded).await?;
                self.send(&frame::rtu_frame(unit, &pdu)).await?;
                self.rtu_answer(unit, op, deadline, discarded).await
            }
        };
        self.dirty = r.is_err();
        r
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), Failed> {
        self.io.write_all(bytes).await.map_err(|e| Failed::Io(format!("cannot send: {e}")))?;
        self.io.flush().await.map_err(|e| Failed::Io(format!("cannot send: {e}")))
    }

    /// Reads more bytes into `buf`; `Timeout` at the deadline.
    async fn fill(&mut self, deadline: Instant) -> Result<(), Failed> {
        let mut chunk = [0u8; 512];
        match timeout_at(deadline, self.io.read(&mut chunk)).await {
            Err(_) => Err(Failed::Timeout),
            Ok(Ok(0)) => Err(Failed::Io("the connection was closed by the other end".into())),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Ok(Err(e)) => Err(Failed::Io(format!("cannot receive: {e}"))),
        }
    }

    /// Before an RTU request: drops what is left of earlier frames and, after a failed exchange,
    /// waits until the line has been quiet for the silent interval (a late answer may be arriving).
    async fn settle(&mut self, quiet: Duration, deadline: Instant, discarded: &mut Vec<String>) -> Result<(), Failed> {
        let mut dropped = std::mem::take(&mut self.buf).len();
        if self.dirty {
            loop {
                let until = (Instant::now() + quiet).min(deadline);
                match self.fill(until).await {
                    Ok(()) => dropped += std::mem::take(&mut self.buf).len(),
                    Err(Failed::Timeout) => break,
                    Err(e) => return Err(e),
                }
                if Instant::now() >= deadline {
                    return Err(Failed::Timeout);
                }
            }
        }
        if dropped > 0 {
            discarded.push(format!("{dropped} bytes left on the line by an earlier exchange (a late answer)"));
        }
        Ok(())
    }

    async fn rtu_answer(&mut self, unit: u8, op: &Op, deadline: Instant, discarded: &mut Vec<String>) -> Result<Reply, Failed> {
        loop {
            // A frame: unit id, PDU, two CRC bytes.
            let len = match frame::answer_pdu_len(self.buf.get(1..).unwrap_or(&[])) {
                Ok(Some(n)) if self.buf.len() >= n + 3 => n,
                Ok(_) => {
                    self.fill(deadline).await?;
                    continue;
                }
                Err(Mismatch(why)) => {
                    // Not the start of an answer: resynchronise by dropping what we have.
                    discarded.push(why);
                    self.buf.clear();
                    self.fill(deadline).await?;
                    continue;
                }
            };
            let f: Vec<u8> = self.buf.drain(..len + 3).collect();
            let (body, crc) = f.split_at(len + 1);
            if frame::crc16(body).to_le_bytes() != [crc[0], crc[1]] {
                // Dropped as long as its own header says it is; if that was damaged too, what
                // follows does not parse and is dropped as well.
                discarded.push("a frame with a wrong CRC (a damaged or misaligned answer)".into());
                continue;
            }
            if body[0] != unit {
                discarded.push(format!("an answer from unit id {} while unit id {unit} was asked", body[0]));
                continue;
            }
            match frame::parse_answer(op, &body[1..]) {
                Ok(r) => return Ok(r),
                Err(Mismatch(why)) => discarded.push(why),
            }
        }
    }

    async fn tcp_answer(&mut self, tid: u16, unit: u8, op: &Op, deadline: Instant, discarded: &mut Vec<String>) -> Result<Reply, Failed> {
        loop {
            if self.buf.len() < 7 {
                self.fill(deadline).await?;
                continue;
            }
            let word = |i: usize| u16::from_be_bytes([self.buf[i], self.buf[i + 1]]);
            let (got_tid, proto, len) = (word(0), word(2), word(4) as usize);
            if proto != 0 || !(2..=254).contains(&len) {
                return Err(Failed::Io(format!("the stream is not Modbus TCP (protocol id {proto}, length {len})")));
            }
            if self.buf.len() < 6 + len {
                self.fill(deadline).await?;
                continue;
            }
            let f: Vec<u8> = self.buf.drain(..6 + len).collect();
            if got_tid != tid {
                discarded.push(format!("an answer to transaction {got_tid} while transaction {tid} was waiting (a late answer)"));
                continue;
            }
            if f[6] != unit {
                discarded.push(format!("an answer from unit id {} while unit id {unit} was asked", f[6]));
                continue;
            }
            match frame::parse_answer(op, &f[7..]) {
                Ok(r) => return Ok(r),
                Err(Mismatch(why)) => discarded.push(why),
            }
        }
    }
}

/// 3.5 character times at `baud` (11 bits a character), at least 1.75 ms as the standard says
/// for fast lines.
fn silent_interval(baud: u32) -> Duration {
    Duration::from_micros((3_500_000u64 * 11 / baud.max(1) as u64).max(1750))
}

async fn tcp(addr: &str) -> Result<tokio::net::TcpStream, String> {
    let sa =
        tokio::net::lookup_host(addr).await.map_err(|e| format!("{addr}: {e}"))?.next().ok_or_else(|| format!("{addr}: no address"))?;
    let stream = tokio::net::TcpStream::connect(sa).await.map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Opens a serial port with its settings (the DNP3 driver uses it too).
pub(crate) fn serial(s: &SerialConfig) -> Result<tokio_serial::SerialStream, String> {
    use tokio_serial::{SerialPort, SerialPortBuilderExt};
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
    // Whatever arrived before we opened the port belongs to nobody.
    let _ = port.clear(tokio_serial::ClearBuffer::Input);
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::modbus::link::{Answer, ReqError};
    use enos_collector_config::modbus::Area;
    use tokio::net::TcpListener;

    /// A device on a real local socket that answers each request with the given frames.
    async fn device(answers: Vec<Vec<Vec<u8>>>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            for frames in answers {
                let mut req = [0u8; 64];
                let _ = s.read(&mut req).await.unwrap();
                for f in frames {
                    s.write_all(&f).await.unwrap();
                }
            }
            let _ = s.read(&mut [0u8; 1]).await;
        });
        addr
    }

    fn read(start: u16, count: u16) -> Op {
        Op::Read { area: Area::Holding, start, count }
    }

    #[tokio::test]
    async fn tcp_answers_of_another_transaction_or_unit_are_discarded() {
        let pdu = |v: u16| [vec![3, 2], v.to_be_bytes().to_vec()].concat();
        let addr = device(vec![
            // A late answer (an earlier transaction) and one from another unit id: no answer.
            vec![frame::tcp_frame(0, 1, &pdu(666)), frame::tcp_frame(1, 4, &pdu(667))],
            // The late answer to transaction 1, then the answer to 2.
            vec![frame::tcp_frame(1, 1, &pdu(668)), frame::tcp_frame(2, 1, &pdu(42))],
        ])
        .await;
        let mut c = Conn::open(&Endpoint::Tcp(addr)).await.unwrap();
        let mut d = Vec::new();
        let r = c.exchange(1, &read(0, 1), Instant::now() + Duration::from_millis(300), &mut d).await;
        assert!(matches!(r, Err(Failed::Timeout)), "{r:?}");
        assert_eq!(
            d,
            vec![
                "an answer to transaction 0 while transaction 1 was waiting (a late answer)".to_string(),
                "an answer from unit id 4 while unit id 1 was asked".to_string()
            ]
        );
        let e = ReqError::Timeout(d.pop());
        assert_eq!(
            e.to_string(),
            "no answer to the request (timeout); the device sent an answer from unit id 4 while unit id 1 was asked, which was discarded"
        );
        let mut d = Vec::new();
        let r = c.exchange(1, &read(0, 1), Instant::now() + Duration::from_secs(5), &mut d).await.unwrap();
        assert_eq!(r, Reply::Data(Answer::Words(vec![42])), "never the late answer's 668");
        assert_eq!(d.len(), 1);
    }

    #[tokio::test]
    async fn rtu_late_damaged_and_foreign_answers_are_discarded() {
        // What the line carries after a timeout: the late 10-register answer of unit 3, a
        // damaged frame, unit 2's answer, and only then the answer to our 1-register read.
        let late: Vec<u8> = [3, 20].into_iter().chain(0..20).collect();
        let mut damaged = frame::rtu_frame(3, &[3, 2, 0, 9]);
        damaged[4] ^= 0xff;
        let addr = device(vec![vec![
            frame::rtu_frame(3, &late),
            damaged,
            frame::rtu_frame(2, &[3, 2, 0, 7]),
            frame::rtu_frame(3, &[3, 2, 0x10, 0x92]),
        ]])
        .await;
        let mut c = Conn::open(&Endpoint::RtuOverTcp(addr)).await.unwrap();
        let mut d = Vec::new();
        let r = c.exchange(3, &read(100, 1), Instant::now() + Duration::from_secs(5), &mut d).await.unwrap();
        assert_eq!(r, Reply::Data(Answer::Words(vec![4242])));
        assert_eq!(d[0], "an answer with 20 bytes of data where 2 were asked");
        assert_eq!(d[1], "a frame with a wrong CRC (a damaged or misaligned answer)");
    }

    #[test]
    fn the_silent_interval_is_three_and_a_half_characters() {
        assert_eq!(silent_interval(9600), Duration::from_micros(4010));
        assert_eq!(silent_interval(115_200), Duration::from_micros(1750));
    }
}
