//! A serial line (socat PTY pair) with two raw meters written here, one of which answers after
//! the timeout, when the next request is already on the line: its late answer is discarded and
//! the other meter's read still gets its value.

#[allow(dead_code)] // the PyPI peer is not used here
mod common;

use enos_dlt645::frame::{scan, Frame, Scan};
use enos_dlt645::{Address, Error, FieldOrder, Line, LineConfig, Link, Meter, Point, Reading, Serial};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_serial::SerialPortBuilderExt;

fn meter(address: &str) -> Meter {
    Meter { address: Address::parse(address).unwrap(), order: FieldOrder::LowFirst }
}

#[tokio::test]
async fn a_late_answer_on_a_serial_line_is_discarded_and_the_next_meter_reads() {
    let dir = tempfile::tempdir().unwrap();
    let pty = common::Pty::pair(dir.path());
    let (slow, fast) = (meter("1"), meter("2"));
    let mut port = tokio_serial::new(&pty.b, 2400).open_native_async().unwrap();
    tokio::spawn(async move {
        let (mut buf, mut late) = (Vec::new(), None);
        let mut chunk = [0u8; 256];
        while let Ok(n @ 1..) = port.read(&mut chunk).await {
            buf.extend_from_slice(&chunk[..n]);
            while let Scan::Frame { frame, used } = scan(&buf) {
                buf.drain(..used);
                let data = [frame.data.clone(), vec![0x01, 0x50]].concat();
                let answer = Frame { address: frame.address, control: 0x91, data }.encode(4);
                // The slow meter's answer goes out only when the next request is on the line.
                if frame.address == slow.order.wire(slow.address.0) {
                    late = Some(answer);
                    continue;
                }
                if let Some(l) = late.take() {
                    port.write_all(&l).await.unwrap();
                }
                port.write_all(&answer).await.unwrap();
            }
        }
    });
    let mut cfg = LineConfig::new(Link::Serial(Serial::new(&pty.a)));
    cfg.timeout = Duration::from_millis(100);
    cfg.retries = 0;
    let line = Line::new(cfg);
    let p = Point::new("02800002", None, None).unwrap();
    let e = line.read(&slow, &p).await.unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    let mut counted = vec![];
    for _ in 0..3 {
        let (value, c) = line.read_counted(&fast, &p).await;
        assert_eq!(value.unwrap(), Reading::Number(50.01));
        counted.push(c.discarded);
    }
    assert_eq!(counted, [1, 0, 0], "the slow meter's late answer, discarded once, in the read it disturbed");
    assert_eq!(line.counters().discarded, 1);
    assert_eq!(line.counters().timeouts, 1);
}
