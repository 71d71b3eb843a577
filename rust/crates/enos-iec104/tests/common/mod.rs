//! The test station: `enos-testkit/peers/iec104_station.py` (c104) driven over its stdin/stdout,
//! and helpers to wait for events with a deadline.
#![allow(dead_code)]

use enos_iec104::{Event, LinkState, Settings};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};

pub const WAIT: Duration = Duration::from_secs(20);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

pub fn python() -> PathBuf {
    match std::env::var_os("ENOS_VENV") {
        Some(v) => PathBuf::from(v).join("bin/python3"),
        None => repo().join("build/venv/bin/python3"),
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct Peer {
    pub port: u16,
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Peer {
    pub async fn start(port: u16, spec: &str, tls: Option<[&std::path::Path; 3]>) -> Peer {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../enos-testkit/peers/iec104_station.py");
        let mut cmd = Command::new(python());
        cmd.arg(script).arg(port.to_string()).arg(spec);
        if let Some([cert, key, ca]) = tls {
            cmd.arg("--tls").arg(cert).arg(key).arg(ca);
        }
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).kill_on_drop(true).spawn().expect("start the c104 station");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut peer = Peer { port, child, stdin, lines };
        peer.expect("ready").await;
        peer
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The next line starting with `prefix` (others are skipped), within the deadline.
    pub async fn expect(&mut self, prefix: &str) -> String {
        let until = Instant::now() + WAIT;
        loop {
            match timeout_at(until, self.lines.next_line()).await {
                Err(_) => panic!("the station did not print {prefix:?} within {WAIT:?}"),
                Ok(Ok(Some(l))) if l.starts_with(prefix) => return l,
                Ok(Ok(Some(_))) => {}
                Ok(r) => panic!("the station ended before printing {prefix:?}: {r:?}"),
            }
        }
    }

    /// Sends a line and waits for the station's "ok".
    pub async fn send(&mut self, line: &str) {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        let until = Instant::now() + WAIT;
        let answer = loop {
            match timeout_at(until, self.lines.next_line()).await {
                Ok(Ok(Some(l))) if l.starts_with("ok ") || l.starts_with("error ") => break l,
                Ok(Ok(Some(_))) => {}
                r => panic!("no answer from the station to {line:?}: {r:?}"),
            }
        };
        assert_eq!(answer, format!("ok {line}"), "the station's answer to {line:?}");
    }

    pub async fn send_until(&mut self, line: &str, expect: &str) -> String {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        self.expect(expect).await
    }

    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}

/// Settings with short timers for tests.
pub fn settings(addresses: &[String]) -> Settings {
    Settings {
        addresses: addresses.to_vec(),
        common_addresses: vec![1],
        t1: Duration::from_secs(5),
        t2: Duration::from_secs(1),
        t3: Duration::from_secs(10),
        reconnect_min: Duration::from_millis(100),
        reconnect_max: Duration::from_millis(800),
        command_timeout: Duration::from_secs(2),
        ..Settings::default()
    }
}

/// Events until one matches `pred` (returned with those before it), within the deadline.
pub async fn until(rx: &mut mpsc::Receiver<Event>, what: &str, pred: impl Fn(&Event) -> bool) -> (Vec<Event>, Event) {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        match timeout_at(deadline, rx.recv()).await {
            Err(_) => panic!("no {what} within {WAIT:?}; last events: {:?}", &seen[seen.len().saturating_sub(5)..]),
            Ok(None) => panic!("the event stream ended before {what}"),
            Ok(Some(e)) if pred(&e) => return (seen, e),
            Ok(Some(e)) => seen.push(e),
        }
    }
}

pub async fn link(rx: &mut mpsc::Receiver<Event>, want: LinkState) -> (String, String) {
    match until(rx, &format!("link {want:?}"), |e| matches!(e, Event::Link { state, .. } if *state == want)).await.1 {
        Event::Link { address, reason, .. } => (address, reason),
        _ => unreachable!(),
    }
}

/// Values of one general interrogation up to its termination.
pub async fn interrogation(rx: &mut mpsc::Receiver<Event>) -> Vec<Event> {
    let (seen, _) = until(rx, "interrogation done", |e| matches!(e, Event::InterrogationDone { ca: 1 })).await;
    seen.into_iter().filter(|e| matches!(e, Event::Value { .. })).collect()
}
