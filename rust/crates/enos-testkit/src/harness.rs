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

/// A socat PTY pair in `dir`: the process and the two ends of one serial line (`ttyA`, `ttyB`).
pub fn pty_pair(dir: &Path) -> (Proc, String, String) {
    let (a, b) = (dir.join("ttyA").display().to_string(), dir.join("ttyB").display().to_string());
    let child = Command::new("socat")
        .arg(format!("pty,raw,echo=0,link={a}"))
        .arg(format!("pty,raw,echo=0,link={b}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat (scripts/setup-host)");
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while !(Path::new(&a).exists() && Path::new(&b).exists()) {
        assert!(std::time::Instant::now() < end, "socat made no PTY pair");
        std::thread::sleep(Duration::from_millis(10));
    }
    (Proc { child: Some(child), name: "socat".into() }, a, b)
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
    /// A mutual-TLS listener, when started with `start_tls`.
    pub tls_port: Option<u16>,
    conf: PathBuf,
    proc: Proc,
}

/// A throw-away PKI for TLS tests: CA, server certificate for 127.0.0.1, client certificate.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Pki {
    pub fn create(dir: &Path) -> Pki {
        let d = dir.join("pki");
        std::fs::create_dir_all(&d).unwrap();
        openssl(
            &d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=enos test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        );
        std::fs::write(d.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
        for who in ["server", "client"] {
            openssl(
                &d,
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-subj",
                    &format!("/CN={who}"),
                    "-keyout",
                    &format!("{who}.key"),
                    "-out",
                    &format!("{who}.csr"),
                ],
            );
            openssl(
                &d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{who}.csr"),
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-extfile",
                    "san.ext",
                    "-out",
                    &format!("{who}.pem"),
                ],
            );
        }
        Pki {
            ca: d.join("ca.pem"),
            server_cert: d.join("server.pem"),
            server_key: d.join("server.key"),
            client_cert: d.join("client.pem"),
            client_key: d.join("client.key"),
        }
    }
}

impl Mosquitto {
    pub fn start(dir: &Path) -> Mosquitto {
        Self::start_with(dir, None)
    }

    /// Plain listener plus a listener that requires a client certificate signed by the PKI's CA.
    pub fn start_tls(dir: &Path, pki: &Pki) -> Mosquitto {
        Self::start_with(dir, Some(pki))
    }

    fn start_with(dir: &Path, pki: Option<&Pki>) -> Mosquitto {
        let port = crate::free_port();
        let conf = dir.join("mosquitto.conf");
        // `user root`: when the tests run as root, mosquitto must not drop to a user that cannot read
        // the temp dir holding its TLS keys.
        let mut text = format!("user root\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages 1000\nmax_queued_messages 100000\nlog_dest none\n");
        let mut tls_port = None;
        if let Some(p) = pki {
            let tp = crate::free_port();
            text.push_str(&format!(
                "listener {tp} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
                p.ca.display(),
                p.server_cert.display(),
                p.server_key.display()
            ));
            tls_port = Some(tp);
        }
        std::fs::write(&conf, text).unwrap();
        let mut m = Mosquitto { port, tls_port, conf, proc: Proc { child: None, name: "mosquitto".into() } };
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
    spawn_service_env(name, config, bus, log, &[])
}

/// As `spawn_service`, with extra environment (sockets dirs, tool paths of a test).
pub fn spawn_service_env(name: &str, config: &Path, bus: &str, log: &Path, env: &[(&str, &str)]) -> Proc {
    let bin = bin_dir().join(name);
    assert!(bin.exists(), "{} not built (cargo build --workspace --bins)", bin.display());
    let logf = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let child = Command::new(bin)
        .arg("--config")
        .arg(config)
        .env("ENOS_BUS_ADDRESS", bus)
        .env("ENOS_LOG", std::env::var("ENOS_LOG").unwrap_or_else(|_| "info".into()))
        .env_remove("JOURNAL_STREAM")
        // This machine's clock is right and nothing on it says so (a container: no time daemon's
        // mark, no clock device); tests of a wrong clock set ENOS_CLOCK=auto (tests/clock.rs).
        .env("ENOS_CLOCK", "trusted")
        .envs(env.iter().copied())
        .stdout(logf.try_clone().unwrap())
        .stderr(logf)
        .spawn()
        .expect("spawn service");
    Proc { child: Some(child), name: name.into() }
}

/// The update agent on `bus`, idle and touching nothing of this machine (`true` stands in for
/// the slot tool and the reboot), running release 1.0.0; its files in `dir`.
pub fn spawn_idle_ota(dir: &Path, bus: &str, log: &Path) -> Proc {
    std::fs::write(
        dir.join("ota.toml"),
        format!(
            "dir = \"{}\"\nallow_http = true\nbootslot = \"/usr/bin/true\"\nreboot_command = [\"/usr/bin/true\"]\n[health]\nunits = []\nrequire_cloud = false\nrequire_collecting = false\n",
            dir.join("ota").display()
        ),
    )
    .unwrap();
    // The release the agent runs (it refuses jobs that are not newer), not the host's.
    std::fs::write(dir.join("os-release"), "ID=enos\nVERSION_ID=\"1.0.0\"\n").unwrap();
    let os_release = dir.join("os-release").display().to_string();
    spawn_service_env("enos-ota", &dir.join("ota.toml"), bus, log, &[("ENOS_OS_RELEASE", &os_release)])
}

/// The web center on `bus`, plain HTTP on a port of loopback the system picks (for what it
/// does on the bus, not its pages); its state in `dir/web`.
pub fn spawn_idle_web(dir: &Path, bus: &str, log: &Path) -> Proc {
    let cfg = dir.join("web.toml");
    std::fs::write(&cfg, format!("listen = \"127.0.0.1:0\"\nplain_http = true\nstate_dir = \"{}\"\n", dir.join("web").display())).unwrap();
    spawn_service("enos-web", &cfg, bus, log)
}

/// Runs a tool (enosctl) against the bus and returns (exit ok, stdout, stderr).
pub fn run_tool(name: &str, args: &[&str], bus: &str) -> (bool, String, String) {
    let out = Command::new(bin_dir().join(name)).args(args).env("ENOS_BUS_ADDRESS", bus).output().expect("run tool");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// `uplink.toml` for tests that need only "the data reaches the cloud": the gateway `gw01` of
/// product `pkGW` on a plain local cloud simulator, one sub-device `device` (product `pkM`), its
/// cache in `cache`, no health points.
pub fn uplink_toml_one_device(cloud_uri: &str, cache: &Path, device: &str) -> String {
    uplink_toml_devices(cloud_uri, cache, &[(device, "pkM", "m")])
}

/// [`uplink_toml_one_device`] with several sub-devices: (collector device id, product key,
/// device secret) each; the device key is the device id.
pub fn uplink_toml_devices(cloud_uri: &str, cache: &Path, devices: &[(&str, &str, &str)]) -> String {
    let mut toml = format!(
        "[cloud]\nuri = \"{cloud_uri}\"\nallow_plain = true\nproduct_key = \"pkGW\"\ndevice_key = \"gw01\"\ndevice_secret = \"s\"\n\
         [cache]\ndir = \"{}\"\n[health]\ninterval_s = 0\n",
        cache.display()
    );
    for (device, product_key, secret) in devices {
        toml += &format!(
            "[[sub_device]]\ndevice = \"{device}\"\nproduct_key = \"{product_key}\"\ndevice_key = \"{device}\"\ndevice_secret = \"{secret}\"\n"
        );
    }
    toml
}
