//! The PyPI `dlt645` peer (rust/crates/enos-testkit/peers/dlt645_peer.py) and a socat PTY pair.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..").canonicalize().unwrap()
}

/// `$ENOS_VENV/bin/python3`, else the venv `scripts/setup-host` makes in `build/venv`.
fn python() -> PathBuf {
    let venv = std::env::var_os("ENOS_VENV").map(PathBuf::from).unwrap_or_else(|| repo().join("build/venv"));
    venv.join("bin/python3")
}

/// A running peer; its stdout lines after "ready" arrive on `lines`.
pub struct Peer {
    child: Child,
    lines: Receiver<String>,
    /// The TCP port it listens on (0 for a serial peer).
    pub port: u16,
}

impl Peer {
    /// Starts the peer with `config` (JSON, see the script) and waits for its "ready" line.
    pub fn start(config: &str) -> Peer {
        let script = repo().join("rust/crates/enos-testkit/peers/dlt645_peer.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e} (scripts/setup-host installs the venv)", python().display()));
        let (tx, lines) = channel();
        let out = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut peer = Peer { child, lines, port: 0 };
        let ready = peer.next_line(Duration::from_secs(20)).expect("the peer ended or hung before it said ready (its stderr is above)");
        let port = ready.strip_prefix("ready").unwrap_or_else(|| panic!("the peer said {ready:?} instead of ready"));
        peer.port = port.trim().parse().unwrap_or(0);
        peer
    }

    pub fn next_line(&self, within: Duration) -> Option<String> {
        self.lines.recv_timeout(within).ok()
    }

    /// Waits for a line that `pred` accepts, skipping others, until `within` has passed.
    pub fn wait_line(&self, within: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let end = Instant::now() + within;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.next_line(left) {
                Some(l) if pred(&l) => return Some(l),
                Some(_) => continue,
                None => return None,
            }
        }
        None
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A socat PTY pair: (the process, one end, the other end).
pub struct Pty {
    child: Child,
    pub a: String,
    pub b: String,
}

impl Pty {
    pub fn pair(dir: &Path) -> Pty {
        let (a, b) = (dir.join("ttyA").display().to_string(), dir.join("ttyB").display().to_string());
        let child = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={a}"))
            .arg(format!("pty,raw,echo=0,link={b}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat (apt install socat)");
        let end = Instant::now() + Duration::from_secs(5);
        while !(Path::new(&a).exists() && Path::new(&b).exists()) {
            assert!(Instant::now() < end, "socat made no PTY pair");
            std::thread::sleep(Duration::from_millis(10));
        }
        Pty { child, a, b }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
