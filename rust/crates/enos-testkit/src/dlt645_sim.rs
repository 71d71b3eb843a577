//! A DL/T 645-2007 line of meters for the benchmark (the tests use the PyPI `dlt645` meter):
//! one TCP endpoint, as a serial device server in transparent mode, behind which every meter
//! address answers. A read of a known identifier gets a value in its standard format, any other
//! identifier three bytes (a `XXXX.XX` value): a benchmark configures unknown identifiers with
//! that format.

use enos_dlt645::frame::{scan, Frame, Scan};
use enos_dlt645::ident::{known, Identifier};
use enos_dlt645::Format;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Read (0x11), answered by 0x91 (a normal reply without follow-up frames).
const READ: u8 = 0x11;
const REPLY: u8 = 0x91;

pub struct Dlt645Sim {
    pub addr: String,
    /// Reads answered so far.
    pub reads: Arc<AtomicU64>,
}

impl Dlt645Sim {
    pub async fn start() -> Dlt645Sim {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        let reads = Arc::new(AtomicU64::new(0));
        let counter = reads.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(serve(s, counter.clone()));
            }
        });
        Dlt645Sim { addr, reads }
    }
}

/// The value bytes of `id`, low byte first as on the wire (offset 0x33 not yet added).
fn value(id: Identifier) -> Vec<u8> {
    match known(id).map(|k| k.format) {
        Some(Format::Date) => vec![0x01, 0x07, 0x12, 0x26], // 2026-12-07, Monday
        Some(Format::Time) => vec![0x00, 0x00, 0x12],       // 12:00:00
        Some(f) => vec![0x12; f.len()],                     // BCD 1212..., sign bit clear
        None => vec![0x12; 3],
    }
}

async fn serve(mut s: TcpStream, reads: Arc<AtomicU64>) {
    let (mut buf, mut chunk) = (Vec::new(), [0u8; 512]);
    while let Ok(n @ 1..) = s.read(&mut chunk).await {
        buf.extend_from_slice(&chunk[..n]);
        loop {
            match scan(&buf) {
                Scan::Frame { frame, used } => {
                    buf.drain(..used);
                    if frame.control != READ || frame.data.len() != 4 {
                        continue; // a broadcast time or anything else: meters do not answer
                    }
                    let id = Identifier(u32::from_le_bytes([frame.data[0], frame.data[1], frame.data[2], frame.data[3]]));
                    let data = [frame.data.clone(), value(id)].concat();
                    // The meter answers with its address as it came: either byte order works.
                    if s.write_all(&Frame { address: frame.address, control: REPLY, data }.encode(4)).await.is_err() {
                        return;
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
                Scan::Junk { len, .. } => {
                    buf.drain(..len);
                }
                Scan::Incomplete => break,
            }
        }
    }
}
