//! An outstation written here on raw TCP, to send what dnp3py never would: bad CRCs, a segment
//! out of sequence, a frame from a stranger, an unsolicited response that wants a confirm, a
//! command answered with silence or with another value. Each fault is counted and dropped; the
//! channel goes on.

use enos_dnp3::app::func;
use enos_dnp3::link::{self, Frame};
use enos_dnp3::transport::{self, Reassembler};
use enos_dnp3::{Command, CommandError, Crob, Event, Master, Mode, OutstationSettings, PointKind, Settings, Step, Value};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);
const ME: u16 = 10;

struct Raw<S> {
    s: S,
    decoder: link::Decoder,
    reassembly: Reassembler,
    seq: u8,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Raw<S> {
    /// The master's next request: (control, function, objects).
    async fn request(&mut self) -> (u8, u8, Vec<u8>) {
        let mut buf = [0u8; 1024];
        loop {
            while let Some(f) = self.decoder.next_frame() {
                let f = f.expect("the master's frames decode");
                assert_eq!((f.dest, f.src, f.control & 0xC0), (ME, 1, 0xC0), "DIR and PRM set, to us from 1");
                if let Some(frag) = self.reassembly.push(&f.data).unwrap() {
                    return (frag[0], frag[1], frag[2..].to_vec());
                }
            }
            let n = timeout(WAIT, self.s.read(&mut buf)).await.expect("a request").unwrap();
            assert!(n > 0, "the master closed the connection");
            self.decoder.push(&buf[..n]);
        }
    }

    fn frames(&mut self, fragment: &[u8], src: u16) -> Vec<u8> {
        transport::segments(fragment, &mut self.seq)
            .into_iter()
            .flat_map(|s| Frame { control: 0x44, dest: 1, src, data: s }.encode())
            .collect()
    }

    async fn respond(&mut self, control: u8, function: u8, iin: [u8; 2], objects: &[u8]) {
        let mut f = vec![control, function, iin[0], iin[1]];
        f.extend_from_slice(objects);
        let bytes = self.frames(&f, ME);
        self.s.write_all(&bytes).await.unwrap();
    }
}

fn settings(port: u16) -> Settings {
    let mut o = OutstationSettings::new(ME);
    o.class_intervals = [Duration::ZERO; 3];
    o.integrity_interval = Duration::ZERO;
    o.unsolicited = true;
    Settings {
        address: format!("127.0.0.1:{port}"),
        outstations: vec![o],
        command_timeout: Duration::from_millis(300),
        ..Settings::default()
    }
}

async fn value(events: &mut mpsc::Receiver<Event>) -> (PointKind, u32, Value, Option<u64>) {
    loop {
        match timeout(WAIT, events.recv()).await.expect("a value").expect("the channel runs") {
            Event::Value { m, .. } => return (m.kind, m.index, m.value, m.time),
            _ => continue,
        }
    }
}

#[tokio::test]
async fn garbled_frames_are_counted_and_dropped_and_the_channel_goes_on() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (master, mut events) = Master::start(settings(listener.local_addr().unwrap().port())).unwrap();
    let (s, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
    let mut o = Raw { s, decoder: link::Decoder::default(), reassembly: Reassembler::new(4096), seq: 0 };

    let (c, f, objs) = o.request().await;
    assert_eq!((f, objs.as_slice()), (func::DISABLE_UNSOLICITED, &[60, 2, 6, 60, 3, 6, 60, 4, 6][..]));
    o.respond(0xC0 | (c & 0x0f), func::RESPONSE, [0, 0], &[]).await;
    let (c, f, _) = o.request().await;
    assert_eq!(f, func::READ, "the integrity poll");

    let answer = [0xC0 | (c & 0x0f), func::RESPONSE, 0, 0, 30, 1, 0x00, 0, 0, 0x01, 42, 0, 0, 0];
    // a header CRC broken, a block CRC broken, a stranger's frame, a segment out of sequence
    let good = o.frames(&answer, ME);
    let mut bad_header = good.clone();
    bad_header[8] ^= 0xff;
    let mut bad_block = good.clone();
    bad_block[12] ^= 0x01;
    let stranger = o.frames(&answer, 99);
    let first = Frame { control: 0x44, dest: 1, src: ME, data: vec![transport::FIR | 5, 0xC0, 0x81] }.encode();
    let skipped = Frame { control: 0x44, dest: 1, src: ME, data: vec![transport::FIN | 7, 0, 0] }.encode();
    for b in [bad_header, bad_block, stranger, first, skipped, good] {
        o.s.write_all(&b).await.unwrap();
    }
    assert_eq!(value(&mut events).await, (PointKind::AnalogInput, 0, Value::Int(42), None), "only the good answer counts");
    // unsolicited responses are enabled after the integrity poll; the answer says the event
    // buffer overflowed: a notice, and the integrity poll again
    let (c, f, objs) = o.request().await;
    assert_eq!((f, objs.as_slice()), (func::ENABLE_UNSOLICITED, &[60, 2, 6, 60, 3, 6, 60, 4, 6][..]));
    o.respond(0xC0 | (c & 0x0f), func::RESPONSE, [0, 0x08], &[]).await;
    let notice = loop {
        match timeout(WAIT, events.recv()).await.expect("a notice").expect("the channel runs") {
            Event::Notice { what, .. } => break what,
            _ => continue,
        }
    };
    assert_eq!(notice, "the outstation's event buffer overflowed: events were lost; an integrity poll follows");
    let (c, f, objs) = o.request().await;
    assert_eq!((f, objs.as_slice()), (func::READ, &[60, 2, 6, 60, 3, 6, 60, 4, 6, 60, 1, 6][..]), "the integrity poll again");
    o.respond(0xC0 | (c & 0x0f), func::RESPONSE, [0, 0], &[]).await;

    let stats = master.stats();
    assert!(stats.malformed.load(Ordering::Relaxed) >= 3, "header CRC, block CRC, sequence: {stats:?}");
    assert_eq!(stats.wrong_address.load(Ordering::Relaxed), 1);

    // an unsolicited response asking for a confirm: delivered, and confirmed with its sequence
    let unsolicited = [0xF3, func::UNSOLICITED_RESPONSE, 0, 0, 2, 2, 0x17, 1, 4, 0x81, 0x10, 0x27, 0, 0, 0, 0];
    let bytes = o.frames(&unsolicited, ME);
    o.s.write_all(&bytes).await.unwrap();
    assert_eq!(value(&mut events).await, (PointKind::BinaryInput, 4, Value::Bool(true), Some(10_000)));
    assert_eq!(o.request().await, (0xD3, func::CONFIRM, vec![]), "CONFIRM with UNS and sequence 3");

    // a command nobody answers, then one answered with another value
    let crob = Crob { code: Crob::LATCH_ON, count: 1, on_ms: 0, off_ms: 0, status: 0 };
    let cmd = Command::Crob { outstation: ME, index: 2, crob, mode: Mode::DirectOperate };
    let m = &master;
    let (e, req) = tokio::join!(m.command(cmd), o.request());
    assert_eq!(req.1, func::DIRECT_OPERATE);
    assert_eq!(e, Err(CommandError::Timeout { step: Step::DirectOperate, after: Duration::from_millis(300) }));
    assert_eq!(e.unwrap_err().to_string(), "the outstation did not answer the direct operate within 300 ms");
    let answer_other = async {
        let (c, _, mut objs) = o.request().await;
        objs[7] = Crob::LATCH_OFF; // the echo's control code
        o.respond(0xC0 | (c & 0x0f), func::RESPONSE, [0, 0], &objs).await;
    };
    let (e, ()) = tokio::join!(m.command(cmd), answer_other);
    assert_eq!(
        e.unwrap_err().to_string(),
        "the outstation's answer to the direct operate does not echo the command (the echo of index 2 carries another value)"
    );
    master.close().await;
}

/// The channel is generic over the byte stream: the same master over a serial line, here the
/// two ends of a socat PTY pair (opened as files).
#[tokio::test]
async fn the_same_master_runs_over_a_serial_line() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("master"), dir.path().join("outstation"));
    let mut socat = std::process::Command::new("socat")
        .arg(format!("pty,raw,echo=0,link={}", a.display()))
        .arg(format!("pty,raw,echo=0,link={}", b.display()))
        .spawn()
        .expect("socat");
    let deadline = std::time::Instant::now() + WAIT;
    while !(a.exists() && b.exists()) {
        assert!(std::time::Instant::now() < deadline, "socat made no PTY pair");
        tokio::time::sleep(Duration::from_millis(10)).await; // polling for the links, with a deadline
    }
    let open = |p: std::path::PathBuf| async move { tokio::fs::OpenOptions::new().read(true).write(true).open(p).await };
    let mut s = settings(1);
    s.outstations[0].unsolicited = false;
    let path = a.clone();
    let (master, mut events) = Master::start_with(s, Box::new(move || Box::pin(open(path.clone())))).unwrap();
    let mut o = Raw { s: open(b).await.unwrap(), decoder: link::Decoder::default(), reassembly: Reassembler::new(4096), seq: 0 };
    let (c, f, _) = o.request().await;
    assert_eq!(f, func::DISABLE_UNSOLICITED);
    o.respond(0xC0 | (c & 0x0f), func::RESPONSE, [0, 0], &[]).await;
    let (c, f, _) = o.request().await;
    assert_eq!(f, func::READ);
    o.respond(0xC0 | (c & 0x0f), func::RESPONSE, [0, 0], &[30, 5, 0x00, 3, 3, 0x01, 0x00, 0x00, 0x60, 0x43]).await;
    assert_eq!(value(&mut events).await, (PointKind::AnalogInput, 3, Value::Float(224.0), None));
    drop(master);
    let _ = socat.kill();
    let _ = socat.wait();
}
