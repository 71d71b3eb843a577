//! The dnp3py outstation peer (enos-testkit/peers/dnp3_outstation.py) and event helpers.
#![allow(dead_code)]

use enos_dnp3::{Event, OutstationSettings, Settings};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};

pub const WAIT: Duration = Duration::from_secs(20);

/// The outstation process, answering each stdin line on stdout.
pub struct Peer {
    child: Child,
    stdin: ChildStdin,
    lines: std_mpsc::Receiver<String>,
    pub port: u16,
}

impl Peer {
    pub fn start(spec: &str) -> Peer {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..");
        let python = std::env::var_os("ENOS_VENV").map_or(repo.join("build/venv/bin/python3"), |v| PathBuf::from(v).join("bin/python3"));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new(python)
            .arg(repo.join("rust/crates/enos-testkit/peers/dnp3_outstation.py"))
            .arg(port.to_string())
            .arg(spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the dnp3py outstation");
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std_mpsc::channel();
        std::thread::spawn(move || out.lines().map_while(Result::ok).try_for_each(|l| tx.send(l)));
        let p = Peer { child, stdin, lines, port };
        p.expect("ready");
        p
    }

    /// The next line starting with `prefix` (others are skipped).
    pub fn expect(&self, prefix: &str) -> String {
        loop {
            match self.lines.recv_timeout(WAIT) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(_) => {}
                Err(e) => panic!("the outstation did not print {prefix:?}: {e}"),
            }
        }
    }

    pub fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        let got = loop {
            match self.lines.recv_timeout(WAIT) {
                Ok(l) if l.starts_with("ok ") || l.starts_with("error ") => break l,
                Ok(_) => {}
                Err(e) => panic!("no answer to {line:?}: {e}"),
            }
        };
        assert_eq!(got, format!("ok {line}"));
    }

    pub fn settings(&self, outstation: u16) -> Settings {
        let mut o = OutstationSettings::new(outstation);
        o.class_intervals = [Duration::from_millis(200); 3];
        Settings {
            address: format!("127.0.0.1:{}", self.port),
            master_address: 1,
            outstations: vec![o],
            reconnect_min: Duration::from_millis(100),
            response_timeout: Duration::from_secs(3),
            ..Settings::default()
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Events until one matches `done` (included), within `WAIT`.
pub async fn until(events: &mut mpsc::Receiver<Event>, what: &str, mut done: impl FnMut(&Event) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        match timeout_at(deadline, events.recv()).await {
            Ok(Some(e)) => {
                let stop = done(&e);
                seen.push(e);
                if stop {
                    return seen;
                }
            }
            Ok(None) => panic!("the channel ended before {what}: {seen:#?}"),
            Err(_) => panic!("no {what} within {WAIT:?}: {seen:#?}"),
        }
    }
}

pub fn integrity_done(e: &Event) -> bool {
    matches!(e, Event::Poll { what: "integrity poll", result: Ok(()), .. })
}
