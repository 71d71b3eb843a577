//! Reads per second on one line, against an in-process raw meter over TCP on 127.0.0.1 (the
//! line's own cost: framing, checks, decoding; no serial baud rate). A measurement, not a test:
//! `cargo run --release -p enos-dlt645 --example dlt645_reads -- [seconds]`.

use enos_dlt645::frame::{scan, Frame, Scan};
use enos_dlt645::{Address, FieldOrder, Line, LineConfig, Link, Meter, Point};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let seconds: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let meter = Meter { address: Address::parse("123456789012").unwrap(), order: FieldOrder::LowFirst };
    let wire = meter.order.wire(meter.address.0);
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 512];
        while let Ok(n @ 1..) = s.read(&mut chunk).await {
            buf.extend_from_slice(&chunk[..n]);
            while let Scan::Frame { frame, used } = scan(&buf) {
                buf.drain(..used);
                let data = [frame.data.clone(), vec![0x14, 0x23]].concat();
                s.write_all(&Frame { address: wire, control: 0x91, data }.encode(4)).await.unwrap();
            }
        }
    });
    let line = Line::new(LineConfig { timeout: Duration::from_secs(1), ..LineConfig::new(Link::Tcp(addr)) });
    let point = Point::new("02010100", None, None).unwrap();
    let (start, mut reads) = (Instant::now(), 0u64);
    while start.elapsed() < Duration::from_secs(seconds) {
        line.read(&meter, &point).await.unwrap();
        reads += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!("dlt645 reads on one TCP line: {reads} in {secs:.1} s = {:.0} reads/s", reads as f64 / secs);
}
