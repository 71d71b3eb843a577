//! The asyncua OPC UA server of the tests and the benchmark (`peers/opcua_server.py`), driven by
//! stdin lines it answers on stdout (`ok LINE`), so callers synchronise on its output.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Server {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Server {
    /// Starts it on `port` with its PKI and state in `dir` and the peer's `args` (`--secure`,
    /// `--bench N`, ...); returns once it listens. Python is `$ENOS_VENV/bin/python3`, else the
    /// repository's `build/venv`.
    pub fn start(port: u16, dir: &Path, args: &[&str]) -> Server {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..");
        let python = std::env::var_os("ENOS_VENV").map_or(repo.join("build/venv/bin/python3"), |v| PathBuf::from(v).join("bin/python3"));
        let mut child = Command::new(python)
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers/opcua_server.py"))
            .arg(port.to_string())
            .arg(dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the asyncua server");
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || out.lines().map_while(Result::ok).try_for_each(|l| tx.send(l)));
        let s = Server { child, stdin, lines };
        s.expect("ready");
        s
    }

    /// The next line starting with `prefix` (or an error line); panics after 120 s of silence
    /// (a server of 10,000 variables takes a while to start).
    pub fn expect(&self, prefix: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(120)) {
                Ok(l) if l.starts_with(prefix) || l.starts_with("error") => return l,
                Ok(_) => {}
                Err(e) => panic!("the server did not print {prefix:?}: {e}"),
            }
        }
    }

    /// Sends a command line and returns its answer, which must be `ok LINE...`.
    pub fn send(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}").unwrap();
        let answer = self.expect("ok ");
        assert!(answer.starts_with(&format!("ok {line}")), "{answer}");
        answer
    }

    /// The process id (for its CPU time and memory).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
