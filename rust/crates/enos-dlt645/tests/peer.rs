//! Against the PyPI `dlt645` 3.2.0 meters (their own codec, data map and answers) on 127.0.0.1
//! and on a socat PTY pair.

mod common;

use common::{Peer, Pty};
use enos_dlt645::ident::KNOWN;
use enos_dlt645::{Address, Counters, Date, Error, FieldOrder, Line, LineConfig, Link, Meter, Point, Reading, Serial, TimeOfDay};
use std::time::Duration;

/// A value for every identifier of the table, as the peer takes it and as we expect to read it.
fn values() -> Vec<(&'static str, &'static str, Reading)> {
    let n = Reading::Number;
    vec![
        ("00000000", "-12.5", n(-12.5)),
        ("00010000", "12345.67", n(12345.67)),
        ("00010100", "100.01", n(100.01)),
        ("00010200", "200.02", n(200.02)),
        ("00010300", "0", n(0.0)),
        ("00010400", "799999.99", n(799999.99)),
        ("00020000", "7.25", n(7.25)),
        ("00150000", "1.5", n(1.5)),
        ("00290000", "2.5", n(2.5)),
        ("003D0000", "3.75", n(3.75)),
        ("02010100", "231.4", n(231.4)),
        ("02010200", "229.9", n(229.9)),
        ("02010300", "0.1", n(0.1)),
        ("02020100", "5.123", n(5.123)),
        ("02020200", "-5.123", n(-5.123)),
        ("02020300", "0.001", n(0.001)),
        ("02030000", "12.3456", n(12.3456)),
        ("02030100", "-1.0001", n(-1.0001)),
        ("02030200", "4.5", n(4.5)),
        ("02030300", "-79.9999", n(-79.9999)),
        ("02040000", "1.2", n(1.2)),
        ("02040100", "-0.3", n(-0.3)),
        ("02040200", "0.0001", n(0.0001)),
        ("02040300", "-2.25", n(-2.25)),
        ("02050000", "13.5", n(13.5)),
        ("02050100", "-4.5", n(-4.5)),
        ("02050200", "4.5001", n(4.5001)),
        ("02050300", "0.0002", n(0.0002)),
        ("02060000", "0.999", n(0.999)),
        ("02060100", "-0.5", n(-0.5)),
        ("02060200", "0.876", n(0.876)),
        ("02060300", "0.001", n(0.001)),
        ("02800001", "-0.042", n(-0.042)),
        ("02800002", "50.01", n(50.01)),
        ("04000101", "\"26120701\"", Reading::Date(Date { year: 2026, month: 12, day: 7, weekday: Some(1) })),
        ("04000102", "\"153012\"", Reading::Time(TimeOfDay { hour: 15, minute: 30, second: 12 })),
    ]
}

fn meter_json(address: &str, low_first: bool, noise: bool) -> String {
    let vals: Vec<String> = values().iter().map(|(id, v, _)| format!("\"{id}\": {v}")).collect();
    format!(r#"{{"address": "{address}", "low_first": {low_first}, "noise": {noise}, "values": {{{}}}}}"#, vals.join(", "))
}

fn meter(address: &str, order: FieldOrder) -> Meter {
    Meter { address: Address::parse(address).unwrap(), order }
}

fn tcp_line(port: u16) -> Line {
    let mut cfg = LineConfig::new(Link::Tcp(format!("127.0.0.1:{port}")));
    cfg.timeout = Duration::from_millis(1500);
    Line::new(cfg)
}

#[tokio::test]
async fn every_identifier_of_the_table_reads_the_value_set_in_the_peer_in_both_address_orders() {
    let _ = env_logger::builder().is_test(true).try_init();
    assert_eq!(values().len(), KNOWN.len(), "a value for every identifier of the table");
    let peer = Peer::start(&format!(
        r#"{{"tcp": true, "meters": [{}, {}]}}"#,
        meter_json("123456789012", false, false),
        meter_json("000000000042", true, false)
    ));
    let line = tcp_line(peer.port);
    for m in [meter("123456789012", FieldOrder::AsWritten), meter("42", FieldOrder::LowFirst)] {
        for (id, _, want) in values() {
            let got = line.read(&m, &Point::new(id, None, None).unwrap()).await;
            assert_eq!(got.as_ref().ok(), Some(&want), "meter {} {id}: {got:?}", m.address);
        }
    }
    assert_eq!(line.counters().discarded, 0);
    // The wrong order for a meter addresses nobody: no meter answers.
    let mut cfg = LineConfig::new(Link::Tcp(format!("127.0.0.1:{}", peer.port)));
    cfg.timeout = Duration::from_millis(200);
    cfg.retries = 0;
    let strict = Line::new(cfg);
    let e = strict.read(&meter("42", FieldOrder::AsWritten), &Point::new("02010100", None, None).unwrap()).await.unwrap_err();
    assert_eq!(e.to_string(), "meter 000000000042: no answer to reading 02010100 within 200 ms (1 attempt)");
    assert_eq!(strict.counters().timeouts, 1);
}

#[tokio::test]
async fn an_abnormal_reply_is_a_device_exception_in_words() {
    let peer = Peer::start(&format!(r#"{{"tcp": true, "meters": [{}]}}"#, meter_json("123456789012", false, false)));
    let line = tcp_line(peer.port);
    let m = meter("123456789012", FieldOrder::AsWritten);
    // 02990100: an identifier the peer's meter does not have.
    let e = line.read(&m, &Point::new("02990100", Some("XXX.X"), None).unwrap()).await.unwrap_err();
    assert!(e.is_exception(), "{e:?}");
    assert_eq!(e.to_string(), "meter 123456789012: reading 02990100: device exception 0x02 (no requested data)");
    // The line goes on.
    assert_eq!(line.read(&m, &Point::new("02010100", None, None).unwrap()).await.unwrap(), Reading::Number(231.4));
}

#[tokio::test]
async fn another_address_a_bad_checksum_and_garbage_are_discarded_and_counted_while_the_answer_arrives() {
    let _ = env_logger::builder().is_test(true).try_init();
    let peer = Peer::start(&format!(r#"{{"tcp": true, "meters": [{}]}}"#, meter_json("123456789012", false, true)));
    let line = tcp_line(peer.port);
    let m = meter("123456789012", FieldOrder::AsWritten);
    for round in 1..=3u64 {
        let (value, counted) = line.read_counted(&m, &Point::new("02020200", None, None).unwrap()).await;
        assert_eq!(value.unwrap(), Reading::Number(-5.123));
        assert_eq!(counted, Counters { discarded: 3, timeouts: 0 }, "garbage, another address, a wrong checksum per answer");
        assert_eq!(line.counters().discarded, 3 * round);
    }
    assert_eq!(line.counters().timeouts, 0);
}

#[tokio::test]
async fn broadcast_time_sync_reaches_the_peer() {
    let peer = Peer::start(&format!(
        r#"{{"tcp": true, "meters": [{}, {}]}}"#,
        meter_json("123456789012", false, false),
        meter_json("000000000042", true, false)
    ));
    let line = tcp_line(peer.port);
    let (date, time) = (Date { year: 2026, month: 12, day: 6, weekday: None }, TimeOfDay { hour: 15, minute: 4, second: 59 });
    // The peer reads the six fields in written order (YY first); the standard's order is checked
    // against a raw server in raw_server.rs.
    line.broadcast_time(date, time, FieldOrder::AsWritten).await.unwrap();
    for address in ["123456789012", "000000000042"] {
        let want = format!("time-sync {address} 2026-12-06T15:04:59");
        assert_eq!(peer.wait_line(Duration::from_secs(10), |l| l.contains(address)).as_deref(), Some(&*want));
    }
}

#[tokio::test]
async fn two_meters_on_one_serial_line_through_a_pty_pair() {
    let _ = env_logger::builder().is_test(true).try_init();
    let dir = tempfile::tempdir().unwrap();
    let pty = Pty::pair(dir.path());
    let _peer = Peer::start(&format!(
        r#"{{"serial": "{}", "meters": [{}, {}]}}"#,
        pty.b,
        meter_json("123456789012", true, false),
        meter_json("000000000042", true, false)
    ));
    let mut cfg = LineConfig::new(Link::Serial(Serial::new(&pty.a)));
    cfg.timeout = Duration::from_millis(1500);
    let line = Line::new(cfg);
    let (m1, m2) = (meter("123456789012", FieldOrder::LowFirst), meter("42", FieldOrder::LowFirst));
    for (id, _, want) in values().into_iter().step_by(3) {
        for m in [&m1, &m2] {
            assert_eq!(line.read(m, &Point::new(id, None, None).unwrap()).await.unwrap(), want, "meter {} {id}", m.address);
        }
    }
    // A meter that is not on the line: every attempt times out, in words; the line goes on.
    let mut cfg = LineConfig::new(Link::Serial(Serial::new(&pty.a)));
    cfg.timeout = Duration::from_millis(150);
    cfg.retries = 2;
    drop(line);
    let line = Line::new(cfg);
    let e = line.read(&meter("7", FieldOrder::LowFirst), &Point::new("02010100", None, None).unwrap()).await.unwrap_err();
    assert!(matches!(e, Error::Timeout { attempts: 3, .. }), "{e:?}");
    assert_eq!(e.to_string(), "meter 000000000007: no answer to reading 02010100 within 150 ms (3 attempts)");
    assert_eq!(line.counters().timeouts, 3);
    assert_eq!(line.read(&m2, &Point::new("02800002", None, None).unwrap()).await.unwrap(), Reading::Number(50.01));
}

#[tokio::test]
async fn read_address_of_the_only_meter_on_the_line() {
    let peer = Peer::start(&format!(r#"{{"tcp": true, "meters": [{}]}}"#, meter_json("000000000042", true, false)));
    let line = tcp_line(peer.port);
    assert_eq!(line.read_address(FieldOrder::LowFirst).await.unwrap(), Address::parse("42").unwrap());
    assert_eq!(line.counters().discarded, 0);
}
