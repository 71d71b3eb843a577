//! What the PyPI peer cannot do (follow-up frames, the standard's broadcast time order, read
//! address with a low-byte-first answer, answers to another identifier, a late answer, a dropped
//! connection), against a raw meter written here: it records every frame it gets and answers
//! with the bytes a test gives it.

use enos_dlt645::frame::{scan, Frame, Scan};
use enos_dlt645::{Address, Date, Error, FieldOrder, Format, Identifier, Line, LineConfig, Link, Meter, Point, Reading, TimeOfDay};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every request as it arrived (bytes, frame).
type Seen = Arc<Mutex<Vec<(Vec<u8>, Frame)>>>;

/// A raw meter on 127.0.0.1: `answer(n, request)` gives the bytes to send for the n-th request
/// (counting from 0), or `None` to close the connection.
async fn raw_meter(answer: impl Fn(usize, &Frame) -> Option<Vec<u8>> + Send + Sync + 'static) -> (String, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            'conn: loop {
                let mut chunk = [0u8; 512];
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                while let Scan::Frame { frame, used } = scan(&buf) {
                    let raw: Vec<u8> = buf.drain(..used).collect();
                    let n = {
                        let mut l = log.lock().unwrap();
                        l.push((raw, frame.clone()));
                        l.len() - 1
                    };
                    match answer(n, &frame) {
                        Some(bytes) => s.write_all(&bytes).await.unwrap(),
                        None => break 'conn,
                    }
                }
            }
        }
    });
    (addr, seen)
}

const ADDR: &str = "123456789012";

fn meter() -> Meter {
    Meter { address: Address::parse(ADDR).unwrap(), order: FieldOrder::LowFirst }
}

fn wire_addr() -> [u8; 6] {
    FieldOrder::LowFirst.wire(Address::parse(ADDR).unwrap().0)
}

/// A normal answer: `control`, then `data` (identifier included).
fn reply(control: u8, data: Vec<u8>) -> Vec<u8> {
    Frame { address: wire_addr(), control, data }.encode(4)
}

fn line(addr: &str, timeout_ms: u64, retries: u32) -> Line {
    let mut cfg = LineConfig::new(Link::Tcp(addr.into()));
    cfg.timeout = Duration::from_millis(timeout_ms);
    cfg.retries = retries;
    Line::new(cfg)
}

fn di(id: &str) -> Vec<u8> {
    Identifier::parse(id).unwrap().wire().to_vec()
}

#[tokio::test]
async fn follow_up_frames_are_read_until_the_meter_says_no_more() {
    // 0001FF00: forward active energy, total and tariffs 1-4 (5 x XXXXXX.XX), in three frames.
    let values: Vec<u8> =
        [[0x00, 0x05, 0x00, 0x00], [0x00, 0x01, 0x00, 0x00], [0x00, 0x02, 0x00, 0x00], [0x00, 0x01, 0x00, 0x00], [0x00, 0x01, 0x00, 0x00]]
            .concat();
    let v = values.clone();
    let (addr, seen) = raw_meter(move |_, req| {
        let mut data = req.data[..4].to_vec();
        Some(match (req.control, req.data.get(4)) {
            (0x11, None) => reply(0xB1, [data, v[..8].to_vec()].concat()),
            (0x12, Some(1)) => reply(0xB2, [data, v[8..16].to_vec(), vec![1]].concat()),
            (0x12, Some(2)) => {
                data.extend_from_slice(&v[16..]);
                data.push(2);
                reply(0x92, data)
            }
            _ => panic!("unexpected request {req:?}"),
        })
    })
    .await;
    let line = line(&addr, 1000, 0);
    let data = line.read_raw(&meter(), Identifier::parse("0001FF00").unwrap()).await.unwrap();
    assert_eq!(data, values, "the three frames' data in order, identifiers and sequence numbers taken off");
    let energy = Format::parse("XXXXXX.XX", false).unwrap();
    let read: Vec<f64> = data.chunks(4).map(|c| energy.decode(c).unwrap().as_f64().unwrap()).collect();
    assert_eq!(read, [5.0, 1.0, 2.0, 1.0, 1.0]);
    let requests: Vec<(u8, Vec<u8>)> = seen.lock().unwrap().iter().map(|(_, f)| (f.control, f.data.clone())).collect();
    let id = di("0001FF00");
    assert_eq!(requests, [(0x11, id.clone()), (0x12, [id.clone(), vec![1]].concat()), (0x12, [id, vec![2]].concat())]);
}

#[tokio::test]
async fn a_value_split_over_a_follow_up_frame_decodes_whole() {
    let (addr, _) = raw_meter(|_, req| {
        let d = req.data[..4].to_vec();
        Some(match req.control {
            0x11 => reply(0xB1, [d, vec![0x67, 0x45]].concat()),
            _ => reply(0x92, [d, vec![0x23, 0x01, 1]].concat()),
        })
    })
    .await;
    let got = line(&addr, 1000, 0).read(&meter(), &Point::new("00010000", None, None).unwrap()).await.unwrap();
    assert_eq!(got, Reading::Number(12345.67));
}

#[tokio::test]
async fn broadcast_time_goes_to_99_seconds_first_with_the_configured_preamble() {
    let (addr, seen) = raw_meter(|_, _| Some(vec![])).await;
    for (preamble, order) in [(0u8, FieldOrder::LowFirst), (2, FieldOrder::AsWritten)] {
        let mut cfg = LineConfig::new(Link::Tcp(addr.clone()));
        cfg.preamble = preamble;
        let line = Line::new(cfg);
        let date = Date { year: 2026, month: 12, day: 6, weekday: None };
        line.broadcast_time(date, TimeOfDay { hour: 15, minute: 4, second: 59 }, order).await.unwrap();
    }
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < 2 {
        assert!(tokio::time::Instant::now() < end, "the raw meter got both broadcasts");
        tokio::task::yield_now().await;
    }
    let seen = seen.lock().unwrap();
    let (raw, f) = &seen[0];
    assert_eq!(raw[0], 0x68, "no preamble when 0 is configured");
    assert_eq!((f.address, f.control), ([0x99; 6], 0x08));
    assert_eq!(f.data, [0x59, 0x04, 0x15, 0x06, 0x12, 0x26], "ss mm hh DD MM YY: the low byte first");
    let (raw, f) = &seen[1];
    assert_eq!(&raw[..3], &[0xFE, 0xFE, 0x68]);
    assert_eq!(f.data, [0x26, 0x12, 0x06, 0x15, 0x04, 0x59], "as written, for meters that take it so");
}

#[tokio::test]
async fn read_address_asks_the_wildcard() {
    let (addr, seen) = raw_meter(|_, _| Some(Frame { address: wire_addr(), control: 0x93, data: wire_addr().to_vec() }.encode(0))).await;
    let got = line(&addr, 1000, 0).read_address(FieldOrder::LowFirst).await.unwrap();
    assert_eq!(got.to_string(), ADDR);
    let f = &seen.lock().unwrap()[0].1;
    assert_eq!((f.address, f.control, f.data.len()), ([0xAA; 6], 0x13, 0));
}

#[tokio::test]
async fn answers_to_another_identifier_or_function_and_echoes_are_discarded() {
    let (addr, _) = raw_meter(|_, req| {
        let mut out = reply(0x91, [di("02010200"), vec![0x00, 0x23]].concat()); // another identifier
        out.extend(reply(0x94, vec![])); // another function
        out.extend(Frame { address: wire_addr(), control: req.control, data: req.data.clone() }.encode(0)); // the echo
        out.extend(reply(0x91, [req.data.clone(), vec![0x14, 0x23]].concat()));
        Some(out)
    })
    .await;
    let line = line(&addr, 1000, 0);
    assert_eq!(line.read(&meter(), &Point::new("02010100", None, None).unwrap()).await.unwrap(), Reading::Number(231.4));
    assert_eq!(line.counters().discarded, 3);
}

#[tokio::test]
async fn a_late_answer_is_discarded_and_never_taken_for_the_next_one() {
    // The first request gets no answer in time; its answer comes in front of the second one's.
    let (addr, _) = raw_meter(|n, req| match n {
        0 => Some(vec![]),
        _ => Some(
            [reply(0x91, [di("02010100"), vec![0x14, 0x23]].concat()), reply(0x91, [req.data.clone(), vec![0x01, 0x50]].concat())].concat(),
        ),
    })
    .await;
    let line = line(&addr, 200, 0);
    let e = line.read(&meter(), &Point::new("02010100", None, None).unwrap()).await.unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    let f = line.read(&meter(), &Point::new("02800002", None, None).unwrap()).await.unwrap();
    assert_eq!(f, Reading::Number(50.01), "the frequency, not the late voltage");
    assert_eq!(line.counters(), enos_dlt645::Counters { discarded: 1, timeouts: 1 });
}

#[tokio::test]
async fn a_dropped_connection_is_said_in_words_and_opened_again() {
    let (addr, _) = raw_meter(|n, req| match n {
        0 => None,
        _ => Some(reply(0x91, [req.data.clone(), vec![0x01, 0x50]].concat())),
    })
    .await;
    let line = line(&addr, 1000, 0);
    let p = Point::new("02800002", None, None).unwrap();
    let e = line.read(&meter(), &p).await.unwrap_err();
    assert_eq!(e.to_string(), format!("line {addr}: the connection was closed by the other end"));
    assert_eq!(line.read(&meter(), &p).await.unwrap(), Reading::Number(50.01));
}

#[tokio::test]
async fn data_that_does_not_fit_the_format_is_a_decode_error_in_words() {
    let (addr, _) = raw_meter(|n, req| {
        let value = if n == 0 { vec![0x23, 0x51] } else { vec![0x23, 0x5A, 0x00] };
        Some(reply(0x91, [req.data.clone(), value].concat()))
    })
    .await;
    let line = line(&addr, 1000, 0);
    let p = Point::new("02020100", None, None).unwrap();
    let e = line.read(&meter(), &p).await.unwrap_err();
    assert_eq!(e.to_string(), "meter 123456789012: reading 02020100: 2 bytes arrived for format signed XXX.XXX, which takes 3");
    let e = line.read(&meter(), &p).await.unwrap_err();
    assert_eq!(e.to_string(), "meter 123456789012: reading 02020100: byte 5A is not a BCD number");
}

#[tokio::test]
async fn a_timeout_says_what_arrived_instead() {
    let (addr, _) = raw_meter(|_, req| {
        let mut other = FieldOrder::LowFirst.wire(Address::parse("999999999998").unwrap().0);
        other[0] = 0x01;
        Some(Frame { address: other, control: 0x91, data: [req.data.clone(), vec![0x14, 0x23]].concat() }.encode(4))
    })
    .await;
    let line = line(&addr, 150, 1);
    let e = line.read(&meter(), &Point::new("02010100", None, None).unwrap()).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "meter 123456789012: no answer to reading 02010100 within 150 ms (2 attempts); what arrived instead: an answer from another address"
    );
    assert_eq!(line.counters(), enos_dlt645::Counters { discarded: 2, timeouts: 2 });
}

/// Random bytes (fixed seed) in front of every answer, cut into random pieces: every read still
/// gets its value, nothing panics, and the junk is counted.
#[tokio::test]
async fn random_bytes_before_every_answer_never_break_the_line() {
    let seed = Arc::new(Mutex::new(0x9E37_79B9_7F4A_7C15u64));
    let (addr, _) = raw_meter(move |_, req| {
        let mut s = seed.lock().unwrap();
        let mut next = || {
            *s ^= *s << 13;
            *s ^= *s >> 7;
            *s ^= *s << 17;
            *s
        };
        let n = 1 + next() % 200;
        let mut out: Vec<u8> = (0..n).map(|_| next() as u8).collect();
        // A truncated copy of the answer in the noise too: a frame start that never completes.
        let answer = reply(0x91, [req.data.clone(), vec![0x14, 0x23]].concat());
        out.extend_from_slice(&answer[..(next() as usize) % answer.len()]);
        out.extend(answer);
        Some(out)
    })
    .await;
    let line = line(&addr, 2000, 0);
    for _ in 0..200 {
        assert_eq!(line.read(&meter(), &Point::new("02010100", None, None).unwrap()).await.unwrap(), Reading::Number(231.4));
    }
    let c = line.counters();
    assert!(c.discarded >= 200, "{c:?}");
    assert_eq!(c.timeouts, 0);
}

#[tokio::test]
async fn a_port_that_cannot_be_opened_is_said_in_words() {
    let line = Line::new(LineConfig::new(Link::Serial(enos_dlt645::Serial::new("/nonexistent/ttyRS485"))));
    let e = line.read(&meter(), &Point::new("02010100", None, None).unwrap()).await.unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with("line /nonexistent/ttyRS485: cannot open the serial port: "), "{text}");
    assert!(matches!(e, Error::Link { .. }), "{e:?}");
}

/// A device server whose connection went silent (dropped without a reset): after three requests
/// in a row without a byte in answer the line connects again, and the new connection answers.
#[tokio::test]
async fn a_silent_tcp_connection_is_opened_again_after_three_unanswered_requests() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut dead, _) = listener.accept().await.unwrap();
        tokio::spawn(async move { while let Ok(1..) = dead.read(&mut [0u8; 512]).await {} });
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 512];
        while let Ok(n @ 1..) = s.read(&mut chunk).await {
            buf.extend_from_slice(&chunk[..n]);
            while let Scan::Frame { frame, used } = scan(&buf) {
                buf.drain(..used);
                s.write_all(&reply(0x91, [frame.data, vec![0x01, 0x50]].concat())).await.unwrap();
            }
        }
    });
    let line = line(&addr, 100, 3);
    assert_eq!(line.read(&meter(), &Point::new("02800002", None, None).unwrap()).await.unwrap(), Reading::Number(50.01));
    assert_eq!(line.counters().timeouts, 3);
}
