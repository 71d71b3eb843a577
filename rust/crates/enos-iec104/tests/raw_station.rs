//! A station written here on raw TCP, to send what c104 never would: malformed frames, wrong
//! sequence numbers, silence. Each fault is counted, resets the link, and never panics.

mod common;

use common::{link, settings};
use enos_iec104::apci::{self, encode_i};
use enos_iec104::{Command, CommandError, CommandValue, Event, LinkState, Station, Step};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

struct Raw {
    listener: TcpListener,
}

impl Raw {
    async fn new() -> Raw {
        Raw { listener: TcpListener::bind("127.0.0.1:0").await.unwrap() }
    }

    fn address(&self) -> String {
        self.listener.local_addr().unwrap().to_string()
    }

    /// Accepts the client, confirms its STARTDT and reads its general interrogation.
    async fn accept(&self) -> TcpStream {
        let (mut s, _) = timeout(WAIT, self.listener.accept()).await.expect("the client connects").unwrap();
        assert_eq!(read_frame(&mut s).await, apci::encode_u(apci::UFunction::StartDtAct));
        s.write_all(&apci::encode_u(apci::UFunction::StartDtCon)).await.unwrap();
        let gi = read_frame(&mut s).await;
        assert_eq!(&gi[6..8], &[100, 1], "C_IC_NA_1 first: {gi:02x?}");
        s
    }
}

async fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut head = [0u8; 2];
    timeout(WAIT, s.read_exact(&mut head)).await.expect("a frame from the client").unwrap();
    let mut rest = vec![0u8; head[1] as usize];
    timeout(WAIT, s.read_exact(&mut rest)).await.unwrap().unwrap();
    [head.to_vec(), rest].concat()
}

/// The client closed the connection (after the STOPDT of an orderly close, or a reset).
async fn closed_by_client(s: &mut TcpStream) {
    let mut buf = [0u8; 64];
    loop {
        match timeout(WAIT, s.read(&mut buf)).await.expect("the client closes") {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// An M_SP_NA_1 I frame for IOA 1 with the given sequence numbers.
fn single_point(send: u16, recv: u16) -> Vec<u8> {
    let mut f = Vec::new();
    encode_i(send, recv, &[1, 1, 3, 0, 1, 0, 1, 0, 0, 1], &mut f);
    f
}

/// An orderly close: STOPDT act answered with STOPDT con, then the client hangs up.
async fn close(station: Station, s: &mut TcpStream) {
    let closing = tokio::spawn(station.close());
    loop {
        let f = read_frame(s).await;
        if f == apci::encode_u(apci::UFunction::StopDtAct) {
            break;
        }
    }
    s.write_all(&apci::encode_u(apci::UFunction::StopDtCon)).await.unwrap();
    closing.await.unwrap();
    closed_by_client(s).await;
}

async fn down(rx: &mut mpsc::Receiver<Event>) -> String {
    link(rx, LinkState::Up).await;
    link(rx, LinkState::Down).await.1
}

#[tokio::test]
async fn malformed_frames_and_sequence_errors_are_counted_and_reset_the_link() {
    let raw = Raw::new().await;
    let (station, mut rx) = Station::start(settings(&[raw.address()])).unwrap();
    let stats = station.stats();

    // a length octet below 4
    let mut s = raw.accept().await;
    s.write_all(&[0x68, 0x02, 0x01, 0x00]).await.unwrap();
    assert_eq!(down(&mut rx).await, "the station sent a malformed frame: the length octet 2 is outside 4..=253 in APDU 68 02 01 00");
    closed_by_client(&mut s).await;
    assert_eq!(stats.malformed_frames.load(Ordering::Relaxed), 1);

    // an unknown type id in a well-framed I frame
    let mut s = raw.accept().await;
    let mut f = Vec::new();
    encode_i(0, 1, &[200, 1, 3, 0, 1, 0, 1, 0, 0, 0], &mut f);
    s.write_all(&f).await.unwrap();
    assert_eq!(
        down(&mut rx).await,
        "the station sent a malformed frame: unknown type id 200 in APDU 68 0e 00 00 02 00 c8 01 03 00 01 00 01 00 00 00"
    );
    closed_by_client(&mut s).await;
    assert_eq!(stats.malformed_frames.load(Ordering::Relaxed), 2);

    // a good frame, then one that skips N(S)=1
    let mut s = raw.accept().await;
    s.write_all(&single_point(0, 1)).await.unwrap();
    s.write_all(&single_point(2, 1)).await.unwrap();
    let (seen, _) = common::until(&mut rx, "the link down", |e| matches!(e, Event::Link { state: LinkState::Down, .. })).await;
    assert!(seen.iter().any(|e| matches!(e, Event::Value { ioa: 1, .. })), "the good frame was delivered: {seen:?}");
    closed_by_client(&mut s).await;
    assert_eq!(stats.sequence_errors.load(Ordering::Relaxed), 1);

    // an acknowledgement of frames never sent
    let mut s = raw.accept().await;
    s.write_all(&apci::encode_s(7)).await.unwrap();
    assert_eq!(down(&mut rx).await, "the station acknowledged our I frames up to N(R)=7, but our next N(S) is 1");
    closed_by_client(&mut s).await;
    assert_eq!(stats.sequence_errors.load(Ordering::Relaxed), 2);

    // and a good link still works after all that
    let mut s = raw.accept().await;
    s.write_all(&single_point(0, 1)).await.unwrap();
    common::until(&mut rx, "a value", |e| matches!(e, Event::Value { ioa: 1, .. })).await;
    drop(s);
    station.close().await;
}

#[tokio::test]
async fn an_unanswered_select_times_out_in_words() {
    let raw = Raw::new().await;
    let (station, mut rx) = Station::start(settings(&[raw.address()])).unwrap();
    let mut s = raw.accept().await;
    link(&mut rx, LinkState::Up).await;
    let c = Command { ca: 1, ioa: 7, value: CommandValue::Single(true), qualifier: 0, select_before_operate: true };
    let (result, select) = tokio::join!(station.command(c), read_frame(&mut s));
    assert_eq!(&select[6..], &[45, 1, 6, 0, 1, 0, 7, 0, 0, 0x81], "a select of IOA 7");
    let e = result.unwrap_err();
    assert_eq!(e, CommandError::Timeout { step: Step::Select, after: Duration::from_secs(2) });
    assert_eq!(e.to_string(), "the station did not confirm the select within 2 s");
    close(station, &mut s).await;
}

#[tokio::test]
async fn unacknowledged_frames_close_the_link_after_t1() {
    let raw = Raw::new().await;
    let s = enos_iec104::Settings { t1: Duration::from_secs(1), t2: Duration::from_millis(500), ..settings(&[raw.address()]) };
    let (station, mut rx) = Station::start(s).unwrap();
    let mut s = raw.accept().await; // the interrogation is never acknowledged
    assert_eq!(down(&mut rx).await, "the station did not acknowledge an I frame within t1 (1 s)");
    closed_by_client(&mut s).await;
    assert_eq!(station.stats().t1_timeouts.load(Ordering::Relaxed), 1);
    station.close().await;
}

#[tokio::test]
async fn windows_k_and_w_and_test_frames() {
    let raw = Raw::new().await;
    let s = enos_iec104::Settings { k: 2, w: 2, common_addresses: vec![1, 2, 3], ..settings(&[raw.address()]) };
    let (station, mut rx) = Station::start(s).unwrap();
    let mut s = raw.accept().await; // the interrogation of CA 1
    let second = read_frame(&mut s).await;
    assert_eq!(&second[2..6], &[2, 0, 0, 0], "N(S)=1");
    // k=2 frames unacknowledged: the third interrogation waits. The client answers TESTFR at
    // once, so if it had sent the third frame it would arrive before the TESTFR con.
    s.write_all(&apci::encode_u(apci::UFunction::TestFrAct)).await.unwrap();
    assert_eq!(read_frame(&mut s).await, apci::encode_u(apci::UFunction::TestFrCon));
    s.write_all(&apci::encode_s(2)).await.unwrap();
    let third = read_frame(&mut s).await;
    assert_eq!((&third[2..4], &third[10..12]), (&[4u8, 0][..], &[3u8, 0][..]), "N(S)=2 for CA 3");
    // w=2: the second I frame received is acknowledged at once with an S frame
    for n in 0..2 {
        s.write_all(&single_point(n, 3)).await.unwrap();
    }
    assert_eq!(read_frame(&mut s).await, apci::encode_s(2));
    link(&mut rx, LinkState::Up).await;
    close(station, &mut s).await;
    assert_eq!(link(&mut rx, LinkState::Closed).await.1, "closed on request");
}

#[tokio::test]
async fn idle_link_is_tested_and_values_keep_order() {
    let raw = Raw::new().await;
    let s = enos_iec104::Settings { t3: Duration::from_millis(300), ..settings(&[raw.address()]) };
    let (station, mut rx) = Station::start(s).unwrap();
    let mut s = raw.accept().await;
    s.write_all(&apci::encode_s(1)).await.unwrap();
    // t3 without a frame from the station: the client tests the link
    assert_eq!(read_frame(&mut s).await, apci::encode_u(apci::UFunction::TestFrAct));
    s.write_all(&apci::encode_u(apci::UFunction::TestFrCon)).await.unwrap();
    // three changes of one IOA in one ASDU (the same instant): all arrive, in order
    let mut f = Vec::new();
    encode_i(0, 1, &[1, 3, 3, 0, 1, 0, 9, 0, 0, 1, 9, 0, 0, 0, 9, 0, 0, 1], &mut f);
    s.write_all(&f).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        if let (_, Event::Value { value: enos_iec104::Value::Single(v), .. }) =
            common::until(&mut rx, "a value of IOA 9", |e| matches!(e, Event::Value { ioa: 9, .. })).await
        {
            got.push(v);
        }
    }
    assert_eq!(got, [true, false, true]);
    // end of initialisation: the station restarted, so it is interrogated again
    let mut f = Vec::new();
    encode_i(1, 1, &[70, 1, 4, 0, 1, 0, 0, 0, 0, 0], &mut f);
    s.write_all(&f).await.unwrap();
    let gi = read_frame(&mut s).await;
    assert_eq!(&gi[6..], &[100, 1, 6, 0, 1, 0, 0, 0, 0, 20], "a general interrogation of CA 1");
    assert_eq!(station.stats().link_failures.load(Ordering::Relaxed), 0);
    close(station, &mut s).await;
}
