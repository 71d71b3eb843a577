//! Real parts for tests: a private dbus-daemon, a mosquitto on 127.0.0.1, the service binaries.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Kills the child on drop, so a failing test leaves nothing behind.
pub struct Proc {
    pub child: Option<Child>,
    pub name: String,
}

impl Proc {
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM);
            let _ = c.wait();
        }
    }
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A private bus (the session configuration: any name may be owned, anyone may call).
pub struct Bus {
    pub address: String,
    _proc: Proc,
}

impl Bus {
    pub fn start(dir: &Path) -> Bus {
        let sock = dir.join("bus.sock");
        let mut child = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address"])
            .arg(format!("--address=unix:path={}", sock.display()))
            .stdout(Stdio::piped())
            .spawn()
            .expect("dbus-daemon (apt install dbus)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("bus address");
        Bus { address: line.trim().to_string(), _proc: Proc { child: Some(child), name: "dbus-daemon".into() } }
    }
}

pub struct Mosquitto {
    pub port: u16,
    conf: PathBuf,
    proc: Proc,
}

impl Mosquitto {
    pub fn start(dir: &Path) -> Mosquitto {
        let port = crate::free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages 1000\nmax_queued_messages 100000\nlog_dest none\n")).unwrap();
        let mut m = Mosquitto { port, conf, proc: Proc { child: None, name: "mosquitto".into() } };
        m.restart();
        m
    }

    pub fn stop(&mut self) {
        self.proc.kill9();
    }

    pub fn restart(&mut self) {
        self.proc.kill9();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto (apt install mosquitto)");
        self.proc.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("mosquitto did not listen on {}", self.port);
    }
}

/// Where the service binaries are: `ENOS_BIN_DIR`, else the cargo target dir of this test.
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("ENOS_BIN_DIR") {
        return d.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("deps dir");
    if dir.ends_with("deps") {
        dir.parent().expect("target dir").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

pub fn spawn_service(name: &str, config: &Path, bus: &str, log: &Path) -> Proc {
    let bin = bin_dir().join(name);
    assert!(bin.exists(), "{} not built (cargo build --workspace --bins)", bin.display());
    let logf = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let child = Command::new(bin)
        .arg("--config")
        .arg(config)
        .env("ENOS_BUS_ADDRESS", bus)
        .env("ENOS_LOG", std::env::var("ENOS_LOG").unwrap_or_else(|_| "info".into()))
        .env_remove("JOURNAL_STREAM")
        .stdout(logf.try_clone().unwrap())
        .stderr(logf)
        .spawn()
        .expect("spawn service");
    Proc { child: Some(child), name: name.into() }
}

/// Runs a tool (enosctl) against the bus and returns (exit ok, stdout, stderr).
pub fn run_tool(name: &str, args: &[&str], bus: &str) -> (bool, String, String) {
    let out = Command::new(bin_dir().join(name)).args(args).env("ENOS_BUS_ADDRESS", bus).output().expect("run tool");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}
