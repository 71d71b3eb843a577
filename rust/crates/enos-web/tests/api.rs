//! The web center's API against the real services: enos-web, enos-collector and enos-uplink on a
//! private dbus-daemon, a simulated Modbus device, mosquitto behind the EnOS cloud simulator.
//! Requests go over plain TCP sockets written by hand, so a test can send exactly the bytes an
//! attacker would (raw paths, lying Content-Length, chunked bodies).

use enos_testkit::cloud_sim::CloudSim;
use enos_testkit::free_port;
use enos_testkit::harness::{spawn_service, spawn_service_env, Bus, Mosquitto, Proc};
use enos_testkit::modbus_sim::SimServer;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const PASSWORD: &str = "first-boot-secret";

// ---- a tiny HTTP/1.1 client ----

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn parse_response(raw: &[u8]) -> Resp {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("no header end: {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    let body = raw[end + 4..].to_vec();
    Resp { status, headers, body }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, request: &[u8]) -> Resp {
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut buf)).await.expect("answer within 60 s");
    // The server may close while we still send a body it refused; what it answered counts.
    if let Err(e) = r {
        assert!(!buf.is_empty(), "read: {e}");
    }
    parse_response(&buf)
}

async fn raw(port: u16, request: &[u8]) -> Resp {
    let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    exchange(s, request).await
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        r.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(b);
    }
    bytes
}

/// A browser's view: the session cookie and the CSRF token it was given.
#[derive(Clone)]
struct Client {
    port: u16,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl Client {
    fn new(port: u16) -> Client {
        Client { port, cookie: None, csrf: None }
    }

    async fn send(&self, method: &str, path: &str, body: Option<&Value>, with_csrf: bool) -> Resp {
        let mut h: Vec<(&str, &str)> = Vec::new();
        if let Some(c) = &self.cookie {
            h.push(("Cookie", c));
        }
        if with_csrf {
            if let Some(t) = &self.csrf {
                h.push(("X-CSRF-Token", t));
            }
        }
        let b = body.map(|v| serde_json::to_vec(v).unwrap());
        if b.is_some() {
            h.push(("Content-Type", "application/json"));
        }
        raw(self.port, &request(method, path, &h, b.as_deref())).await
    }

    async fn get(&self, path: &str) -> Resp {
        self.send("GET", path, None, false).await
    }

    async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send("POST", path, Some(body), true).await
    }

    /// Takes the session from a sign-in answer.
    fn adopt(&mut self, r: &Resp) {
        let sc = r.header("set-cookie").unwrap_or_else(|| panic!("no cookie: {} {}", r.status, r.text()));
        self.cookie = Some(sc.split(';').next().unwrap().to_string());
        self.csrf = Some(r.json()["csrf"].as_str().unwrap().to_string());
    }

    async fn sign_in(port: u16, name: &str, password: &str) -> Client {
        let mut c = Client::new(port);
        let r = c.post("/api/login", &json!({ "name": name, "password": password })).await;
        assert_eq!(r.status, 200, "{}", r.text());
        c.adopt(&r);
        c
    }
}

// ---- the edge ----

fn collector_toml(addr: &str) -> String {
    format!(
        r#"
[push]
interval_ms = 100

[[device]]
id = "inv01"
protocol = "modbus-tcp"
address = "{addr}"
timeout_ms = 1000
retries = 0
offline_after = 2
reconnect_min_ms = 100
reconnect_max_ms = 400
poll_groups = [{{ name = "fast", interval_ms = 200 }}]
points_csv = "inv01.csv"
"#
    )
}

const POINTS_CSV: &str = "name,area,address,type,order,scale,group,access,min,max,unit\n\
counter,holding,0,u32,ABCD,,fast,r,,,Wh\n\
power,holding,2,f32,CDAB,,fast,r,,,kW\n\
setpoint,holding,10,u16,,0.1,fast,rw,0,100,kW\n\
broken,holding,20,u16,,,fast,rw,,,\n";

fn uplink_toml(uri: &str, cache: &Path) -> String {
    format!(
        r#"
[cloud]
uri = "{uri}"
allow_plain = true
product_key = "pkGW"
device_key = "gw01"
device_secret = "gw-secret"
reconnect_min_ms = 200
reconnect_max_ms = 1000

[cache]
dir = "{}"

[health]
interval_s = 1

[[sub_device]]
device = "inv01"
product_key = "pkInv"
device_key = "inv01"
device_secret = "inv-secret"
"#,
        cache.display()
    )
}

struct Services {
    _broker: Mosquitto,
    _cloud: CloudSim,
    sim: SimServer,
    _collector: Proc,
    _uplink: Proc,
}

struct Edge {
    dir: tempfile::TempDir,
    bus: Bus,
    port: u16,
    web: Proc,
    services: Option<Services>,
    /// The private package key (PEM) matching the collector's `ENOS_PACKAGE_KEY` (full edge only).
    package_key: String,
}

/// Until the simulated device inv01 is online, as `who` sees it in the device list.
async fn inv01_online(who: &Client) {
    until(30, "inv01 online", || async { device_state(&who.get("/api/devices").await.json(), "inv01").filter(|d| d["state"] == "online") })
        .await;
}

impl Edge {
    /// The web center alone on a private bus (the other services absent).
    fn web_only(extra: &str) -> Edge {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::start(dir.path());
        let mut e = Edge { port: 0, web: Proc { child: None, name: String::new() }, dir, bus, services: None, package_key: String::new() };
        e.start_web(extra);
        e
    }

    /// The whole edge: simulated device, collector, uplink, broker, cloud simulator, web center.
    async fn full(extra: &str) -> Edge {
        let mut e = Edge::web_only(extra);
        let d = e.dir.path().to_path_buf();
        let broker = Mosquitto::start(&d);
        let cloud = CloudSim::start(broker.port, HashMap::from([("gw01".to_string(), "gw-secret".to_string())])).await;
        let sim = SimServer::start(1).await;
        sim.with(|s| {
            s.counters.push(0);
            s.holding.insert(2, 0x6666); // power = 231.4 as f32, CDAB
            s.holding.insert(3, 0x4367);
            s.forbidden.push(20);
        });
        std::fs::write(d.join("collector.toml"), collector_toml(&sim.addr.to_string())).unwrap();
        std::fs::write(d.join("inv01.csv"), POINTS_CSV).unwrap();
        std::fs::write(d.join("uplink.toml"), uplink_toml(&cloud.uri(), &d.join("cache"))).unwrap();
        let log = d.join("services.log");
        let uplink = spawn_service("enos-uplink", &d.join("uplink.toml"), &e.bus.address, &log);
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../meta-enos-edge/recipes-enos/enos-edge/files/device-models");
        let models = models.to_string_lossy().into_owned();
        // The box's package key; its private half stays in this process (the package tests).
        let (private, public) = enos_package::key::generate();
        std::fs::write(d.join("package-key.pem"), public).unwrap();
        e.package_key = private;
        let key = d.join("package-key.pem").to_string_lossy().into_owned();
        let collector = spawn_service_env(
            "enos-collector",
            &d.join("collector.toml"),
            &e.bus.address,
            &log,
            &[("ENOS_DEVICE_MODELS", models.as_str()), ("ENOS_PACKAGE_KEY", key.as_str()), ("ENOS_PACKAGE_HEALTH_TIMEOUT_S", "3")],
        );
        e.services = Some(Services { _broker: broker, _cloud: cloud, sim, _collector: collector, _uplink: uplink });
        e
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("web-state")
    }

    /// Starts enos-web (again on the same port after the first start).
    fn start_web(&mut self, extra: &str) {
        if self.port == 0 {
            self.port = free_port();
        }
        let cfg = self.dir.path().join("web.toml");
        let plain = if extra.contains("plain_http") { "" } else { "plain_http = true\n" };
        std::fs::write(
            &cfg,
            format!("listen = \"127.0.0.1:{}\"\nstate_dir = \"{}\"\n{plain}{extra}\n", self.port, self.state_dir().display()),
        )
        .unwrap();
        self.web = spawn_service("enos-web", &cfg, &self.bus.address, &self.dir.path().join("web.log"));
        // Every address it was given: the kiosk's listener may come up after the main one (the
        // kiosk test once got "connection refused").
        let kiosk = extra.split("kiosk_listen = \"127.0.0.1:").nth(1).and_then(|r| r.split('"').next()?.parse::<u16>().ok());
        for port in std::iter::once(self.port).chain(kiosk) {
            self.wait_listening(port);
        }
    }

    fn wait_listening(&mut self, port: u16) {
        for _ in 0..400 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            assert!(self.web.is_running(), "enos-web exited: {}", self.web_log());
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("enos-web did not listen on port {port}: {}", self.web_log());
    }

    fn web_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("web.log")).unwrap_or_default()
    }

    fn sim(&self) -> &SimServer {
        &self.services.as_ref().expect("full edge").sim
    }

    /// Claims the box: the first visit sets the admin password.
    async fn admin(&self) -> Client {
        let mut c = Client::new(self.port);
        let r = c.post("/api/setup", &json!({ "password": PASSWORD })).await;
        assert_eq!(r.status, 200, "{}", r.text());
        c.adopt(&r);
        c
    }

    async fn add_user(&self, admin: &Client, name: &str, role: &str) -> Client {
        let pw = format!("{name}-password-1");
        let r = admin.post("/api/users", &json!({ "name": name, "password": pw, "role": role })).await;
        assert_eq!(r.status, 201, "{}", r.text());
        Client::sign_in(self.port, name, &pw).await
    }
}

// ---- tests ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_boot_sets_the_admin_password_once() {
    let e = Edge::web_only("");
    let anon = Client::new(e.port);
    let s = anon.get("/api/session").await.json();
    assert_eq!(s["setup_required"], true);
    assert_eq!(s["signed_in"], false);
    assert!(s.get("csrf").is_none());

    // no default account: nothing to sign in to
    let r = anon.post("/api/login", &json!({ "name": "admin", "password": "admin" })).await;
    assert_eq!(r.status, 409, "{}", r.text());
    // the API is closed before setup too
    assert_eq!(anon.get("/api/status").await.status, 401);
    // a short password is refused, in words
    let r = anon.post("/api/setup", &json!({ "password": "short" })).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("at least 10 characters"));
    // a form post from elsewhere is refused (not JSON)
    let r = raw(
        e.port,
        &request("POST", "/api/setup", &[("Content-Type", "application/x-www-form-urlencoded")], Some(b"password=0123456789ab")),
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.text());

    let r = anon.post("/api/setup", &json!({ "password": PASSWORD })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = r.header("set-cookie").unwrap().to_string();
    assert!(cookie.starts_with("enos_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP (kiosk on loopback): no Secure flag");
    let doc = r.json();
    assert_eq!(doc["role"], "admin");
    assert_eq!(doc["csrf"].as_str().unwrap().len(), 64);

    // the box is claimed: a second setup is refused
    let r = anon.post("/api/setup", &json!({ "password": "another-password" })).await;
    assert_eq!(r.status, 409);
    assert_eq!(anon.get("/api/session").await.json()["setup_required"], false);

    // stored hashed, private, no plain text
    let f = e.state_dir().join("accounts.json");
    let text = std::fs::read_to_string(&f).unwrap();
    assert!(text.contains("$argon2id$") && !text.contains(PASSWORD), "{text}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!e.web_log().contains(PASSWORD), "the password is never logged");

    // sign out ends the session; sign in again
    let mut admin = Client::new(e.port);
    admin.adopt(&r_setup_like(&cookie, &doc));
    let r = admin.post("/api/logout", &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(admin.get("/api/devices").await.status, 401, "the old cookie is dead");
    let admin = Client::sign_in(e.port, "admin", PASSWORD).await;
    let s = admin.get("/api/session").await.json();
    assert_eq!(s["user"], "admin");
    assert_eq!(s["csrf"], admin.csrf.clone().unwrap());
    // the collector is not running: said in words
    let r = admin.get("/api/devices").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "the collector service is not running");
    // the same survives a restart (accounts on disk, sessions not)
    let mut e = e;
    e.web.terminate();
    e.start_web("");
    assert_eq!(admin.get("/api/status").await.status, 401, "sessions end with the process");
    Client::sign_in(e.port, "admin", PASSWORD).await;
}

/// A `Resp` carrying a cookie and session document, for `Client::adopt`.
fn r_setup_like(cookie: &str, doc: &Value) -> Resp {
    Resp { status: 200, headers: vec![("set-cookie".into(), cookie.into())], body: serde_json::to_vec(doc).unwrap() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_first_visits_at_once_only_one_claims_the_box() {
    let e = Edge::web_only("metrics_public = true");
    let (alice, bob) = (Client::new(e.port), Client::new(e.port));
    let (ja, jb) = (json!({ "name": "alice", "password": "alice-password-1" }), json!({ "name": "bob", "password": "bob-password-1" }));
    let (a, b) = tokio::join!(alice.post("/api/setup", &ja), bob.post("/api/setup", &jb));
    let mut codes = [a.status, b.status];
    codes.sort();
    assert_eq!(codes, [200, 409], "{} / {}", a.text(), b.text());
    let winner = if a.status == 200 { "alice" } else { "bob" };
    Client::sign_in(e.port, winner, &format!("{winner}-password-1")).await;
    // metrics_public: a scraper needs no session (and gets no account data)
    let m = Client::new(e.port).get("/metrics").await;
    assert_eq!(m.status, 200);
    assert!(m.text().contains("enos_web_signins_total 1"), "{}", m.text());
    assert_eq!(Client::new(e.port).get("/api/status").await.status, 401, "the API still needs one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_ends_the_other_sessions() {
    let e = Edge::web_only("");
    let admin = e.admin().await;
    let other = Client::sign_in(e.port, "admin", PASSWORD).await;
    let r = admin.post("/api/password", &json!({ "current": "not-it-at-all", "new": "changed-password-1" })).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = admin.post("/api/password", &json!({ "current": PASSWORD, "new": "short" })).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = admin.post("/api/password", &json!({ "current": PASSWORD, "new": "changed-password-1" })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut admin = admin;
    let old_csrf = admin.csrf.clone();
    admin.adopt(&r);
    assert_ne!(admin.csrf, old_csrf, "a new session, a new CSRF token");
    assert_eq!(admin.get("/api/users").await.status, 200, "the new session works");
    assert_eq!(other.get("/api/users").await.status, 401, "the other session has ended");
    let r = Client::new(e.port).post("/api/login", &json!({ "name": "admin", "password": PASSWORD })).await;
    assert_eq!(r.status, 401, "the old password is gone");
    Client::sign_in(e.port, "admin", "changed-password-1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_are_refused_then_locked_out() {
    let e = Edge::web_only("[auth]\nmax_failed_signins = 3\nlockout_s = 2");
    e.admin().await;
    let anon = Client::new(e.port);
    for i in 0..3 {
        let r = anon.post("/api/login", &json!({ "name": "admin", "password": format!("wrong-{i}-password") })).await;
        assert_eq!(r.status, 401, "{}", r.text());
        assert_eq!(r.json()["error"], "wrong account name or password");
        assert!(r.header("set-cookie").is_none());
    }
    // locked: even the right password is refused, with the time to wait
    let r = anon.post("/api/login", &json!({ "name": "admin", "password": PASSWORD })).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    assert!(r.json()["error"].as_str().unwrap().starts_with("too many failed sign-ins"));
    // an unknown name from the same address is locked too (the address is)
    let r = anon.post("/api/login", &json!({ "name": "nobody", "password": "whatever-it-is" })).await;
    assert_eq!(r.status, 429);
    // unknown names answer like wrong passwords once the lockout is over
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let r = anon.post("/api/login", &json!({ "name": "nobody", "password": "whatever-it-is" })).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "wrong account name or password");
    Client::sign_in(e.port, "admin", PASSWORD).await;
    let m = Client::sign_in(e.port, "admin", PASSWORD).await.get("/metrics").await.text();
    assert!(m.contains("enos_web_lockouts_total 1"), "{m}");
    assert!(e.web_log().contains("sign-in locked"), "{}", e.web_log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_needs_a_session_and_the_csrf_token() {
    let e = Edge::full("").await;
    let admin = e.admin().await;
    let changes: Vec<(&str, String, Value)> = vec![
        ("POST", "/api/logout".into(), json!({})),
        ("POST", "/api/password".into(), json!({ "current": PASSWORD, "new": "new-password-123" })),
        ("POST", "/api/users".into(), json!({ "name": "eve", "password": "eve-password-1", "role": "admin" })),
        ("DELETE", "/api/users/admin".into(), json!({})),
        ("POST", "/api/devices/inv01/read".into(), json!({})),
        ("POST", "/api/devices/inv01/points/setpoint/write".into(), json!({ "value": 12.5 })),
        ("PUT", "/api/devices/inv02/config".into(), json!({ "id": "inv02", "protocol": "modbus-tcp", "address": "127.0.0.1:1" })),
        ("DELETE", "/api/devices/inv01/config".into(), json!({})),
        ("POST", "/api/points-csv".into(), json!({ "csv": "name,area,address,type\nx,holding,0,u16\n" })),
        ("POST", "/api/devices/inv01/raw-read".into(), json!({ "function": 3, "address": 0, "count": 1 })),
        ("POST", "/api/update/upload".into(), json!({})),
        ("POST", "/api/services/enos-uplink/restart".into(), json!({})),
        ("POST", "/api/system/reboot".into(), json!({})),
        ("POST", "/api/cloud".into(), json!({ "uri": "tcp://127.0.0.1:1", "product_key": "p", "device_key": "d" })),
        ("POST", "/api/cloud/test".into(), json!({ "uri": "tcp://127.0.0.1:1", "product_key": "p", "device_key": "d" })),
    ];
    let anon = Client::new(e.port);
    let mut wrong = admin.clone();
    wrong.csrf = Some("0".repeat(64));
    for (method, path, body) in &changes {
        let r = anon.send(method, path, Some(body), false).await;
        assert_eq!(r.status, 401, "{method} {path} without a session: {}", r.text());
        let r = admin.send(method, path, Some(body), false).await;
        assert_eq!(r.status, 403, "{method} {path} without the CSRF token: {}", r.text());
        assert!(r.json()["error"].as_str().unwrap().contains("CSRF"));
        let r = wrong.send(method, path, Some(body), true).await;
        assert_eq!(r.status, 403, "{method} {path} with a wrong CSRF token: {}", r.text());
        // right token, but the browser says the page is from another site
        let mut h = vec![("Cookie", admin.cookie.as_deref().unwrap()), ("X-CSRF-Token", admin.csrf.as_deref().unwrap())];
        h.push(("Origin", "https://evil.example"));
        h.push(("Content-Type", "application/json"));
        let b = serde_json::to_vec(body).unwrap();
        let r = raw(e.port, &request(method, path, &h, Some(&b))).await;
        assert_eq!(r.status, 403, "{method} {path} cross-origin: {}", r.text());
    }
    // nothing happened: no write reached the device, no account was made, the session lives
    assert!(e.sim().with(|s| s.writes.is_empty()));
    let users = admin.get("/api/users").await.json();
    assert_eq!(users.as_array().unwrap().len(), 1, "{users}");
    let devs: Vec<String> =
        admin.get("/api/config").await.json()["device"].as_array().unwrap().iter().map(|d| d["id"].to_string()).collect();
    assert_eq!(devs, ["\"inv01\""], "the device configuration is as it was");
    assert_eq!(admin.get("/api/status").await.status, 200);
    // reads need a session too
    for path in ["/api/status", "/api/devices", "/api/users", "/metrics"] {
        assert_eq!(anon.get(path).await.status, 401, "{path}");
    }
    // and with the token, the same requests work (same origin stated is fine)
    let h = [
        ("Cookie", admin.cookie.as_deref().unwrap()),
        ("X-CSRF-Token", admin.csrf.as_deref().unwrap()),
        ("Origin", "http://127.0.0.1"),
        ("Content-Type", "application/json"),
    ];
    let r = raw(e.port, &request("POST", "/api/devices/inv01/read", &h, Some(b"{}"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_read_operators_write_to_the_device() {
    let e = Edge::full("").await;
    let admin = e.admin().await;
    let viewer = e.add_user(&admin, "vic", "viewer").await;
    let operator = e.add_user(&admin, "olga", "operator").await;
    // a viewer is not an admin
    assert_eq!(viewer.get("/api/users").await.status, 403);
    let r = viewer.post("/api/users", &json!({ "name": "x", "password": "x-password-1", "role": "admin" })).await;
    assert_eq!(r.status, 403);

    // the device comes online; the dashboard sees it
    let mut online = false;
    for _ in 0..150 {
        let d = viewer.get("/api/devices").await.json();
        if d[0]["state"] == "online" {
            online = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(online, "inv01 never came online");
    // its cloud side next to it: the identity uplink.toml names, and that its data is uploaded
    let mut cloud = Value::Null;
    for _ in 0..150 {
        cloud = viewer.get("/api/devices").await.json()[0]["cloud"].clone();
        if cloud.is_object() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!((cloud["product_key"].as_str(), cloud["device_key"].as_str()), (Some("pkInv"), Some("inv01")), "{cloud}");
    assert_eq!((cloud["source"].as_str(), cloud["uploading"].as_bool()), (Some("config"), Some(true)), "{cloud}");

    // communication test: values, quality, errors in words
    let r = viewer.post("/api/devices/inv01/read", &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let doc = r.json();
    let by: HashMap<String, Value> =
        doc["readings"].as_array().unwrap().iter().map(|p| (p["point"].as_str().unwrap().to_string(), p.clone())).collect();
    assert_eq!(by["power"]["value"], 231.4);
    assert_eq!(by["power"]["quality"], "good");
    assert_eq!(by["broken"]["quality"], "device-exception");
    assert!(by["broken"]["text"].as_str().unwrap().starts_with("the device answered with an error"), "{}", by["broken"]);
    assert_eq!(doc["total"], 4);
    let r = viewer.post("/api/devices/inv01/read", &json!({ "points": ["power"] })).await.json();
    assert_eq!(r["readings"].as_array().unwrap().len(), 1);
    let r = viewer.post("/api/devices/nosuch/read", &json!({})).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("nosuch"));

    // a viewer cannot write
    let r = viewer.post("/api/devices/inv01/points/setpoint/write", &json!({ "value": 42.5 })).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("viewer"));
    assert!(e.sim().with(|s| s.writes.is_empty()));

    // an operator can: 42.5 in engineering units is 425 in the register (scale 0.1)
    let r = operator.post("/api/devices/inv01/points/setpoint/write", &json!({ "value": 42.5 })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let w = r.json();
    assert_eq!(w["ok"], true, "{w}");
    assert_eq!(w["code"], 200);
    assert_eq!(e.sim().with(|s| s.writes.clone()), vec![(10u16, vec![425u16])]);
    // the device's refusals come back as answers, with the cloud's codes
    let w = operator.post("/api/devices/inv01/points/setpoint/write", &json!({ "value": 101 })).await.json();
    assert_eq!((w["ok"].clone(), w["failure"].clone(), w["code"].clone()), (json!(false), json!("out-of-range"), json!(2005)), "{w}");
    // who refused, in words: the gateway's own checks never reached the device
    assert_eq!(w["text"], "the gateway refused it, nothing was sent to the device: 101 is above the maximum 100", "{w}");
    let w = operator.post("/api/devices/inv01/points/broken/write", &json!({ "value": 1 })).await.json();
    assert_eq!((w["failure"].clone(), w["code"].clone()), (json!("device-exception"), json!(2006)), "{w}");
    assert!(w["text"].as_str().is_some_and(|t| t.starts_with("the device did not take it: ")), "{w}");
    let w = operator.post("/api/devices/inv01/points/power/write", &json!({ "value": 1 })).await.json();
    assert_eq!(w["failure"], "read-only", "{w}");
    let r = operator.post("/api/devices/inv01/points/setpoint/write", &json!({ "value": [1] })).await;
    assert_eq!(r.status, 400);
    assert_eq!(e.sim().with(|s| s.writes.len()), 1, "refused writes never reached the device");

    // removing the operator ends their session
    let r = admin.send("DELETE", "/api/users/olga", None, true).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(operator.get("/api/devices").await.status, 401);

    // status and metrics carry the services' figures
    let s = admin.get("/api/status").await.json();
    assert_eq!(s["collector"]["devices_online"], 1, "{s}");
    assert!(s["uplink"]["cache"].is_object(), "{s}");
    let m = admin.get("/metrics").await;
    assert!(m.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"));
    let m = m.text();
    for needle in [
        "enos_service_up{service=\"collector\"} 1",
        "enos_devices_online 1",
        "enos_device_online{device=\"inv01\"} 1",
        "enos_cache_points ",
        "enos_sender_points_acked_total{path=\"live\"}",
        "enos_web_writes_total 4",
    ] {
        assert!(m.contains(needle), "{needle} missing in\n{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_embedded_pages_are_served() {
    let e = Edge::web_only("");
    let r = raw(e.port, &request("GET", "/", &[], None)).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.header("content-security-policy").unwrap().contains("default-src 'none'"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    for p in ["/app.js", "/app.css", "/icon.svg"] {
        assert_eq!(raw(e.port, &request("GET", p, &[], None)).await.status, 200, "{p}");
    }
    // the state dir holds the accounts; the source tree is next to the binary in a dev build
    e.admin().await;
    for p in [
        "/../Cargo.toml",
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/app.js/../../src/main.rs",
        "//etc/passwd",
        "/assets/..%2f..%2fCargo.toml",
        "/web-state/accounts.json",
        "/accounts.json",
        "/..%5c..%5cCargo.toml",
        "/api/../accounts.json",
        "/app.js%00.html",
        "/./app.js/.",
    ] {
        let r = raw(e.port, &request("GET", p, &[], None)).await;
        assert!(r.status == 404 || r.status == 400, "{p}: {} {}", r.status, r.text());
        let body = r.text();
        assert!(!body.contains("root:") && !body.contains("argon2") && !body.contains("[package]"), "{p}: {body}");
    }
    // other methods on pages
    assert_eq!(raw(e.port, &request("POST", "/", &[], Some(b"x"))).await.status, 405);
    // DNS rebinding: a page of another site reaching the box under that site's name is refused;
    // addresses and localhost are fine
    let host = |h: &str| format!("GET /api/session HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n").into_bytes();
    for bad in ["evil.example", "evil.example:80", "localhost.evil.example", "127.0.0.1.nip.io", "[::1", "127.0.0.1:x"] {
        let r = raw(e.port, &host(bad)).await;
        assert_eq!(r.status, 421, "{bad}: {}", r.text());
    }
    for good in ["127.0.0.1", "localhost", "LOCALHOST:8443", "[::1]:8443", "192.168.1.20"] {
        let r = raw(e.port, &host(good)).await;
        assert_eq!(r.status, 200, "{good}: {}", r.text());
    }
    let r = raw(e.port, b"GET /api/session HTTP/1.0\r\n\r\n").await;
    assert_eq!(r.status, 421, "no Host at all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused() {
    let e = Edge::web_only("[limits]\nmax_body_bytes = 4096");
    let admin = e.admin().await;
    let big = vec![b'a'; 100_000];
    // by Content-Length, before the body is read, with and without a session
    let r = raw(e.port, &request("POST", "/api/login", &[("Content-Type", "application/json")], Some(&big))).await;
    assert_eq!(r.status, 413, "{}", r.text());
    let h = [
        ("Cookie", admin.cookie.as_deref().unwrap()),
        ("X-CSRF-Token", admin.csrf.as_deref().unwrap()),
        ("Content-Type", "application/json"),
    ];
    let r = raw(e.port, &request("POST", "/api/devices/inv01/points/setpoint/write", &h, Some(&big))).await;
    assert_eq!(r.status, 413, "{}", r.text());
    // chunked, no length announced: refused while reading
    let mut req = b"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..10 {
        req.extend_from_slice(b"1000\r\n");
        req.extend_from_slice(&[b' '; 0x1000]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let r = raw(e.port, &req).await;
    assert_eq!(r.status, 413, "{}", r.text());
    // a huge header is refused by the server too
    let long = "x".repeat(100_000);
    let r = raw(e.port, &request("GET", "/api/session", &[("X-Long", &long)], None)).await;
    assert!(r.status == 431 || r.status == 400, "{}", r.status);
    // a password longer than the limit is refused before hashing
    let r = admin.post("/api/users", &json!({ "name": "long", "password": "p".repeat(300), "role": "viewer" })).await;
    assert_eq!(r.status, 400);
    // the server still serves
    assert_eq!(admin.get("/api/session").await.json()["signed_in"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_certificate_made_on_first_start() {
    let e = Edge::web_only("plain_http = false");
    let cert = e.state_dir().join("tls/cert.pem");
    assert!(cert.exists());
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(&cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let web_port = e.port;
    let https = |req: Vec<u8>| {
        let connector = connector.clone();
        let port = web_port;
        async move {
            let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let tls = connector
                .connect(rustls::pki_types::ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .expect("TLS with the generated cert");
            exchange(tls, &req).await
        }
    };
    // Over the network (HTTPS) an unclaimed box asks for its one-time setup code, and shows the
    // certificate's fingerprint so the browser's can be compared.
    let s = https(request("GET", "/api/session", &[], None)).await.json();
    assert_eq!(s["setup_required"], true);
    assert_eq!(s["setup_code_required"], true);
    let der = rustls::pki_types::CertificateDer::pem_file_iter(&cert).unwrap().next().unwrap().unwrap();
    let want: String = {
        use sha2::Digest;
        sha2::Sha256::digest(der.as_ref()).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
    };
    assert_eq!(s["tls_fingerprint"], want.as_str());
    assert!(e.web_log().contains(&want), "the fingerprint is in the log: {}", e.web_log());
    let code_file = e.state_dir().join("setup-code");
    let code = std::fs::read_to_string(&code_file).unwrap().trim().to_string();
    assert!(e.web_log().contains(&code), "the code is in the log (the console): {}", e.web_log());
    let setup = |body: Value| {
        let body = serde_json::to_vec(&body).unwrap();
        https(request("POST", "/api/setup", &[("Content-Type", "application/json")], Some(&body)))
    };
    let r = setup(json!({ "password": PASSWORD })).await;
    assert_eq!(r.status, 403, "no code: {}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("one-time setup code"), "{}", r.text());
    let r = setup(json!({ "password": PASSWORD, "setup_code": "AAAA-AAAA-AAAA" })).await;
    assert_eq!(r.status, 403, "a wrong code: {}", r.text());
    let r = setup(json!({ "password": PASSWORD, "setup_code": code.to_lowercase() })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!code_file.exists(), "the code is spent");
    let c = r.header("set-cookie").unwrap();
    assert!(
        c.starts_with("__Host-enos_session=") && c.contains("; Secure") && c.contains("HttpOnly") && c.contains("SameSite=Strict"),
        "{c}"
    );
    // the session works over TLS
    let cookie = c.split(';').next().unwrap().to_string();
    let r = https(request("GET", "/api/session", &[("Cookie", &cookie)], None)).await;
    assert_eq!(r.json()["signed_in"], true);
    // plain HTTP to the TLS port gets nothing useful
    let mut s = TcpStream::connect(("127.0.0.1", e.port)).await.unwrap();
    s.write_all(&request("GET", "/api/session", &[], None)).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).contains("signed_in"));
    // the certificate is kept across restarts; a kiosk listener adds plain HTTP on loopback
    let before = std::fs::read(&cert).unwrap();
    let mut e = e;
    e.web.terminate();
    let kiosk = free_port();
    e.start_web(&format!("plain_http = false\nkiosk_listen = \"127.0.0.1:{kiosk}\""));
    assert_eq!(std::fs::read(&cert).unwrap(), before);
    let k = Client::sign_in(kiosk, "admin", PASSWORD).await;
    let c = k.cookie.clone().unwrap();
    assert!(c.starts_with("enos_session="), "{c}");
    assert_eq!(k.get("/api/session").await.json()["tls"], false);
    let r = https(request("GET", "/api/session", &[], None)).await;
    assert_eq!(r.json()["tls"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisioning_file_claims_the_box() {
    let dir = tempfile::tempdir().unwrap();
    let prov = dir.path().join("admin-password");
    std::fs::write(&prov, "provisioned-secret-42\n").unwrap();
    let e = Edge::web_only(&format!("[auth]\nprovisioning_file = \"{}\"", prov.display()));
    assert!(!prov.exists(), "used once, then removed");
    let anon = Client::new(e.port);
    assert_eq!(anon.get("/api/session").await.json()["setup_required"], false);
    assert_eq!(anon.post("/api/setup", &json!({ "password": "someone-else-1" })).await.status, 409);
    Client::sign_in(e.port, "admin", "provisioned-secret-42").await;
    assert!(!e.web_log().contains("provisioned-secret-42"));
}

#[test]
fn a_bad_config_is_refused_with_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("web.toml");
    std::fs::write(&cfg, "listen = \"0.0.0.0:8080\"\nplain_http = true\n").unwrap();
    let out = std::process::Command::new(enos_testkit::harness::bin_dir().join("enos-web"))
        .arg("--config")
        .arg(&cfg)
        .arg("--check")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("web.toml: plain_http: plain HTTP is only allowed on a loopback address"), "{err}");
}

/// Polls `f` every 100 ms until it returns `Some`, or panics with `what` after `secs`.
async fn until<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn device_state(list: &Value, id: &str) -> Option<Value> {
    list.as_array()?.iter().find(|d| d["id"] == id).cloned()
}

const METER_CSV: &str = "name,area,address,type,order,scale,unit\nvoltage,holding,0,u16,,0.1,V\nenergy,holding,2,u32,ABCD,,kWh\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_are_added_edited_and_removed_without_a_restart() {
    let e = Edge::full("").await;
    let admin = e.admin().await;
    let viewer = e.add_user(&admin, "vic", "viewer").await;
    let operator = e.add_user(&admin, "olga", "operator").await;
    inv01_online(&viewer).await;
    let cfg_file = e.dir.path().join("collector.toml");
    let original = std::fs::read_to_string(&cfg_file).unwrap();

    // the running configuration, points inline
    let cfg = viewer.get("/api/config").await.json();
    assert_eq!(cfg["device"][0]["id"], "inv01");
    assert_eq!(cfg["device"][0]["point"].as_array().unwrap().len(), 4, "{cfg}");
    assert_eq!(cfg["device"][0]["points_csv"], Value::Null);
    // the device-model library
    let lib = viewer.get("/api/device-models").await.json();
    let ids: Vec<&str> = lib["models"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"pv-inverter-sunspec") && ids.contains(&"energy-meter-3ph"), "{lib}");

    // a point table with mistakes: each row and column named
    let bad = "name,area,address,type\nv,holding,0,u16\nw,holding,40001x,u16\nx,coil,1,f32\n";
    let r = admin.post("/api/points-csv", &json!({ "csv": bad })).await;
    assert_eq!(r.status, 422, "{}", r.text());
    let errs = r.json()["errors"].clone();
    assert_eq!(errs.as_array().unwrap().len(), 2, "{errs}");
    assert_eq!((errs[0]["line"].clone(), errs[0]["column"].clone()), (json!(3), json!("address")));
    assert_eq!((errs[1]["line"].clone(), errs[1]["column"].clone()), (json!(4), json!("type")));
    let points = admin.post("/api/points-csv", &json!({ "csv": METER_CSV })).await.json()["points"].clone();
    assert_eq!(points.as_array().unwrap().len(), 2);

    // a second device on its own simulator
    let sim2 = SimServer::start(3).await;
    sim2.with(|s| {
        s.holding.insert(0, 2314);
        s.holding.insert(3, 77);
    });
    let meter = json!({ "id": "meter02", "protocol": "modbus-tcp", "address": sim2.addr.to_string(), "unit_id": 3,
        "timeout_ms": 500, "retries": 0, "poll_groups": [{ "name": "default", "interval_ms": 200 }], "point": points });
    // refused without a session, without CSRF, and for a viewer or an operator
    assert_eq!(Client::new(e.port).send("PUT", "/api/devices/meter02/config", Some(&meter), false).await.status, 401);
    assert_eq!(admin.send("PUT", "/api/devices/meter02/config", Some(&meter), false).await.status, 403);
    for who in [&viewer, &operator] {
        let r = who.send("PUT", "/api/devices/meter02/config", Some(&meter), true).await;
        assert_eq!(r.status, 403, "{}", r.text());
    }
    assert_eq!(std::fs::read_to_string(&cfg_file).unwrap(), original, "nothing written");
    let polls_before = device_state(&admin.get("/api/devices").await.json(), "inv01").unwrap()["polls_ok"].as_u64().unwrap();
    let r = admin.send("PUT", "/api/devices/meter02/config", Some(&meter), true).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let applied = r.json()["applied"].clone();
    assert_eq!(applied["started"], json!(["meter02"]), "{applied}");
    assert_eq!(applied["unchanged"], json!(["inv01"]), "{applied}");
    let m = until(30, "meter02 online", || async {
        device_state(&viewer.get("/api/devices").await.json(), "meter02").filter(|d| d["state"] == "online")
    })
    .await;
    assert_eq!(m["points"], 2);
    let r = viewer.post("/api/devices/meter02/read", &json!({})).await.json();
    assert_eq!(r["readings"][0]["value"], 231.4, "{r}");
    assert_eq!(r["readings"][1]["value"], 77, "{r}");
    // inv01 kept running (its counters went on), the file holds both and loads
    // (a restarted driver would count from zero again)
    let inv = device_state(&admin.get("/api/devices").await.json(), "inv01").unwrap();
    assert!(inv["polls_ok"].as_u64().unwrap() >= polls_before, "inv01 was restarted: {inv} (had {polls_before} polls)");
    until(10, "inv01 polls on", || async {
        device_state(&admin.get("/api/devices").await.json(), "inv01").filter(|d| d["polls_ok"].as_u64().unwrap() > polls_before)
    })
    .await;
    let on_disk = enos_collector_config::CollectorConfig::load(&cfg_file).unwrap();
    assert_eq!(on_disk.devices.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["inv01", "meter02"]);
    assert_eq!(on_disk.devices[0].proto.point_count(), 4, "the CSV points are inline now");

    // a bad value is refused whole: nothing written, nothing applied, every problem named
    let mut broken = meter.clone();
    broken["timeout_ms"] = json!(0);
    broken["point"][1]["scale"] = json!(0.0);
    broken["point"][0]["group"] = json!("nosuch");
    let written = std::fs::read_to_string(&cfg_file).unwrap();
    let r = admin.send("PUT", "/api/devices/meter02/config", Some(&broken), true).await;
    assert_eq!(r.status, 422, "{}", r.text());
    let errs = r.json()["errors"].clone();
    let named: Vec<(Value, Value, Value)> =
        errs.as_array().unwrap().iter().map(|f| (f["device"].clone(), f["point"].clone(), f["field"].clone())).collect();
    assert_eq!(
        named,
        vec![
            (json!("meter02"), Value::Null, json!("timeout_ms")),
            (json!("meter02"), json!("voltage"), json!("group")),
            (json!("meter02"), json!("energy"), json!("scale")),
        ],
        "{errs}"
    );
    assert_eq!(std::fs::read_to_string(&cfg_file).unwrap(), written);
    assert_eq!(admin.get("/api/devices/meter02/config").await.json()["timeout_ms"], 500);
    let r = admin.send("PUT", "/api/devices/meter02/config", Some(&json!({ "id": "other", "protocol": "modbus-tcp" })), true).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = admin.send("PUT", "/api/devices/meter02/config", Some(&json!({ "id": "meter02", "protocol": "bacnet" })), true).await;
    assert_eq!(r.status, 400, "{}", r.text());

    // an edit restarts only that device
    let mut faster = admin.get("/api/devices/inv01/config").await.json();
    faster["poll_groups"][0]["interval_ms"] = json!(300);
    let r = admin.send("PUT", "/api/devices/inv01/config", Some(&faster), true).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["applied"]["restarted"], json!(["inv01"]));
    assert_eq!(r.json()["applied"]["unchanged"], json!(["meter02"]));

    // the point table exported as CSV imports back to the same points
    let r = viewer.get("/api/devices/meter02/points.csv").await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    assert!(r.header("content-disposition").unwrap().contains("meter02-points.csv"));
    let back = admin.post("/api/points-csv", &json!({ "csv": r.text() })).await.json()["points"].clone();
    assert_eq!(back, points);

    // removed: polling stops, the file no longer has it
    assert_eq!(viewer.send("DELETE", "/api/devices/meter02/config", None, true).await.status, 403);
    assert_eq!(admin.send("DELETE", "/api/devices/meter02/config", None, false).await.status, 403);
    let r = admin.send("DELETE", "/api/devices/meter02/config", None, true).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["applied"]["stopped"], json!(["meter02"]));
    assert!(device_state(&admin.get("/api/devices").await.json(), "meter02").is_none());
    let served = sim2.with(|s| s.requests);
    until(5, "polling of meter02 stops", || async {
        let a = sim2.with(|s| s.requests);
        tokio::time::sleep(Duration::from_millis(600)).await;
        (sim2.with(|s| s.requests) == a).then_some(())
    })
    .await;
    assert!(served > 0);
    assert_eq!(admin.send("DELETE", "/api/devices/meter02/config", None, true).await.status, 404);
    assert!(!std::fs::read_to_string(&cfg_file).unwrap().contains("meter02"));
    assert!(e.web_log().contains("\"admin\" removed device \"meter02\""), "{}", e.web_log());

    // names that are paths are not devices
    for path in ["/api/devices/..%2f..%2fetc/config", "/api/devices/%2e%2e/config", "/api/devices/a%2fb/points.csv"] {
        if path.ends_with("/config") {
            assert_eq!(admin.send("PUT", path, Some(&meter), true).await.status, 404, "{path}");
        }
        assert_eq!(admin.get(path).await.status, 404, "{path}");
    }
    // a table larger than the limit is refused before it is read
    let h = [
        ("Cookie", admin.cookie.as_deref().unwrap()),
        ("X-CSRF-Token", admin.csrf.as_deref().unwrap()),
        ("Content-Type", "application/json"),
        ("Content-Length", "5242880"),
    ];
    let r = raw(e.port, &request("PUT", "/api/devices/x/config", &h, None)).await;
    assert_eq!(r.status, 413, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_registers_and_live_values() {
    let e = Edge::full("").await;
    let admin = e.admin().await;
    let viewer = e.add_user(&admin, "vic", "viewer").await;
    inv01_online(&viewer).await;
    let path = "/api/devices/inv01/raw-read";
    assert_eq!(Client::new(e.port).post(path, &json!({ "function": 3, "address": 2, "count": 2 })).await.status, 401);
    assert_eq!(viewer.send("POST", path, Some(&json!({ "function": 3, "address": 2, "count": 2 })), false).await.status, 403);

    // the words as they came, and decoded
    let r = viewer.post(path, &json!({ "function": 3, "address": 2, "count": 2, "type": "f32", "order": "CDAB" })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let a = r.json();
    assert_eq!(a["ok"], true, "{a}");
    assert_eq!(a["words"], json!([0x6666, 0x4367]));
    assert_eq!(a["values"][0]["value"], 231.4);
    assert_eq!(a["unit_id"], 1);
    // a register the device refuses: the exception and its meaning
    let a = viewer.post(path, &json!({ "function": 3, "address": 18, "count": 4 })).await.json();
    assert_eq!((a["ok"].clone(), a["failure"].clone(), a["exception_code"].clone()), (json!(false), json!("exception"), json!(2)), "{a}");
    assert!(a["message"].as_str().unwrap().contains("illegal data address"), "{a}");
    // another unit id: the device stays silent, said in words
    let a = viewer.post(path, &json!({ "function": 3, "address": 0, "count": 1, "unit_id": 7 })).await.json();
    assert_eq!(a["failure"], "timeout", "{a}");
    assert!(a["message"].as_str().unwrap().contains("unit id 7"), "{a}");
    // coils
    e.sim().with(|s| {
        s.coils.insert(1, true);
    });
    let a = viewer.post(path, &json!({ "function": 1, "address": 0, "count": 3 })).await.json();
    assert_eq!(a["bits"], json!([false, true, false]), "{a}");
    // requests that are not reads are refused before the bus
    for bad in [
        json!({ "function": 5, "address": 0, "count": 1 }),
        json!({ "function": 3, "address": 0, "count": 126 }),
        json!({ "function": 3, "address": 65535, "count": 2 }),
    ] {
        let r = viewer.post(path, &bad).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    assert_eq!(viewer.post("/api/devices/nosuch/raw-read", &json!({ "function": 3, "address": 0, "count": 1 })).await.status, 404);
    // the test of another protocol, a kind that does not exist: refused in words
    let r = viewer.post(path, &json!({ "kind": "iec104-interrogation" })).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text().contains("device \\\"inv01\\\" (modbus-tcp): its communication test is modbus-registers, not iec104-interrogation"),
        "{}",
        r.text()
    );
    let r = viewer.post(path, &json!({ "kind": "opcua-read" })).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("is not a communication test"), "{}", r.text());
    // the device is still polled after the tests (the timeout dropped the connection only)
    until(10, "inv01 online", || async {
        device_state(&viewer.get("/api/devices").await.json(), "inv01").filter(|d| d["state"] == "online")
    })
    .await;

    // live values: the counter moves, its history grows
    let first = until(10, "live values", || async {
        let v = viewer.get("/api/devices/inv01/live").await.json();
        let p = v["points"].as_array()?.iter().find(|p| p["point"] == "counter")?.clone();
        (p["history"].as_array()?.len() >= 2).then_some(p)
    })
    .await;
    assert_eq!(first["quality"], "good");
    let ts = first["ts_ms"].as_u64().unwrap();
    let later = until(10, "a newer counter value", || async {
        let v = viewer.get(&format!("/api/devices/inv01/live?since_ms={ts}")).await.json();
        let p = v["points"].as_array()?.iter().find(|p| p["point"] == "counter")?.clone();
        (p["ts_ms"].as_u64()? > ts).then_some(p)
    })
    .await;
    assert!(later["value"].as_u64().unwrap() > first["value"].as_u64().unwrap());
    assert!(later["history"].as_array().unwrap().iter().all(|h| h[0].as_u64().unwrap() > ts), "since_ms filters the history");
    assert_eq!(viewer.get("/api/devices/inv01/live?since_ms=x").await.status, 400);

    // what the cloud acknowledged: recorded once someone asks, newer values follow
    let sent = until(20, "a value the cloud acknowledged", || async {
        let v = viewer.get("/api/devices/inv01/last-sent").await.json();
        assert_eq!(v["routed"], true, "{v}");
        v["points"].as_array()?.iter().find(|p| p["point"] == "counter").cloned()
    })
    .await;
    let got = sent["value"].as_u64().unwrap();
    assert!(e.sim().with(|s| s.served[&0].contains(&(got as u32))), "the cloud got a value the device served: {sent}");
    until(20, "a newer acknowledged value", || async {
        let v = viewer.get("/api/devices/inv01/last-sent").await.json();
        v["points"].as_array()?.iter().find(|p| p["point"] == "counter" && p["value"].as_u64().unwrap() > got).cloned()
    })
    .await;
    assert_eq!(Client::new(e.port).get("/api/devices/inv01/last-sent").await.status, 401);
    assert_eq!(viewer.get("/api/devices/nosuch/live").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_and_the_write_dialog_get_units_ranges_and_why_in_words() {
    let e = Edge::full("").await;
    let admin = e.admin().await;
    let viewer = e.add_user(&admin, "vic", "viewer").await;
    assert_eq!(Client::new(e.port).get("/api/live").await.status, 401);
    assert_eq!(Client::new(e.port).get("/api/devices/inv01/writable").await.status, 401);

    // every point of every device, in the table's order, with its unit; a doubtful one says why
    let live = until(30, "live values of inv01's four points", || async {
        let v = viewer.get("/api/live").await.json();
        (v["points"].as_array()?.len() == 4).then_some(v)
    })
    .await;
    let names: Vec<&str> = live["points"].as_array().unwrap().iter().map(|p| p["point"].as_str().unwrap()).collect();
    assert_eq!(names, ["counter", "power", "setpoint", "broken"], "{live}");
    let by = |name: &str| live["points"].as_array().unwrap().iter().find(|p| p["point"] == name).unwrap().clone();
    let counter = by("counter");
    assert_eq!(
        (counter["device"].as_str(), counter["unit"].as_str(), counter["quality"].as_str()),
        (Some("inv01"), Some("Wh"), Some("good"))
    );
    assert_eq!(
        (counter["doubtful"].clone(), counter["why"].clone(), counter["device_error"].clone()),
        (json!(false), Value::Null, Value::Null)
    );
    assert!(counter["value"].as_u64().is_some() && counter["ts_ms"].as_u64().is_some(), "{counter}");
    assert!(counter.get("history").is_none() && counter.get("flags").is_none(), "no history, no flags the reading lacks: {counter}");
    let broken = by("broken");
    assert_eq!((broken["quality"].as_str(), broken["doubtful"].as_bool()), (Some("device-exception"), Some(true)), "{broken}");
    assert_eq!(broken["why"], "the device answered with an error");
    assert!(broken["device_error"].as_str().is_some_and(|t| t.contains("illegal data address")), "{broken}");
    assert_eq!(live["errors"], json!({}));

    // the write dialog's facts: only writable points, their unit, range and kind
    let r = viewer.get("/api/devices/inv01/writable").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({ "device": "inv01", "points": [
            { "point": "setpoint", "unit": "kW", "type": "u16", "kind": "number", "min": 0.0, "max": 100.0 },
            { "point": "broken", "unit": "", "type": "u16", "kind": "number", "min": null, "max": null }] })
    );
    assert_eq!(viewer.get("/api/devices/nosuch/writable").await.status, 404);

    // the protocols the device form and the point grid are built from
    assert_eq!(Client::new(e.port).get("/api/protocols").await.status, 401);
    let r = viewer.get("/api/protocols").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let list = r.json();
    let tcp = list.as_array().unwrap().iter().find(|p| p["name"] == "modbus-tcp").unwrap_or_else(|| panic!("{list}")).clone();
    assert_eq!(tcp["label"], "Modbus TCP");
    let keys: Vec<&str> = tcp["point_fields"].as_array().unwrap().iter().map(|f| f["key"].as_str().unwrap()).collect();
    assert_eq!(keys.first(), Some(&"name"), "{keys:?}");
    for k in ["area", "address", "type", "scale", "unit", "access", "min", "max"] {
        assert!(keys.contains(&k), "{k} missing in {keys:?}");
    }
    let area = tcp["point_fields"].as_array().unwrap().iter().find(|f| f["key"] == "area").unwrap();
    assert_eq!((area["kind"].as_str(), area["required"].as_bool()), (Some("choice"), Some(true)), "{area}");
    assert!(area["choices"].as_array().unwrap().contains(&json!("holding")), "{area}");
    assert!(tcp["device_fields"].as_array().unwrap().iter().any(|f| f["key"] == "poll_groups" && f["kind"] == "poll-groups"), "{tcp}");
    assert!(list.as_array().unwrap().iter().any(|p| p["name"] == "iec104"), "{list}");
    // each protocol's communication test, which the device page offers
    let test_of = |name: &str| list.as_array().unwrap().iter().find(|p| p["name"] == name).map(|p| p["comm_test"].clone()).unwrap();
    assert_eq!(test_of("modbus-tcp")["kind"], "modbus-registers");
    assert_eq!(test_of("iec104")["kind"], "iec104-interrogation");
    assert_eq!(test_of("plugin")["kind"], "plugin-read");
    let dlt = test_of("dlt645");
    assert_eq!(dlt["kind"], "dlt645-identifiers");
    assert!(
        dlt["identifiers"].as_array().unwrap().contains(&json!({ "di": "02010100", "name": "voltage, phase A", "unit": "V" })),
        "{dlt}"
    );
}

/// A cpio (new ASCII) archive whose first member is a sw-description of `version`, padded to
/// `len` bytes: what the web center checks before it hands a bundle to the agent.
fn bundle_of(version: &str, len: usize) -> Vec<u8> {
    let desc = format!("software = {{\n  version = \"{version}\";\n}}\n");
    let name = "sw-description\0";
    let mut b = format!(
        "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
        1,
        0o100644,
        0,
        0,
        1,
        0,
        desc.len(),
        0,
        0,
        0,
        0,
        name.len(),
        0
    )
    .into_bytes();
    b.extend_from_slice(name.as_bytes());
    b.resize(b.len().div_ceil(4) * 4, 0);
    b.extend_from_slice(desc.as_bytes());
    b.resize(b.len().div_ceil(4) * 4, 0);
    b.resize(len.max(b.len()), b'0');
    b
}

fn fake_bundle(len: usize) -> Vec<u8> {
    bundle_of("2.0.0", len)
}

/// An upload of `chunks` × 64 KiB of bundle that announces no length (chunked), as `c`.
fn chunked_upload(c: &Client, chunks: usize) -> Vec<u8> {
    let mut req = format!(
        "POST /api/update/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nCookie: {}\r\nX-CSRF-Token: {}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
        c.cookie.as_deref().unwrap(),
        c.csrf.as_deref().unwrap()
    )
    .into_bytes();
    for _ in 0..chunks {
        req.extend_from_slice(b"10000\r\n");
        req.extend_from_slice(&fake_bundle(0x10000));
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_says_plainly_what_is_not_there() {
    let e = Edge::web_only("[limits]\nmax_upload_bytes = 2097152");
    let admin = e.admin().await;
    let viewer = e.add_user(&admin, "vic", "viewer").await;
    let upload = |c: &Client, ct: &str, body: Vec<u8>, csrf: bool| {
        let mut h: Vec<(String, String)> = vec![("Content-Type".into(), ct.into())];
        if let Some(k) = &c.cookie {
            h.push(("Cookie".into(), k.clone()));
        }
        if csrf {
            h.push(("X-CSRF-Token".into(), c.csrf.clone().unwrap_or_default()));
        }
        let port = c.port;
        async move {
            let hr: Vec<(&str, &str)> = h.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            raw(port, &request("POST", "/api/update/upload", &hr, Some(&body))).await
        }
    };
    let octet = "application/octet-stream";
    assert_eq!(upload(&Client::new(e.port), octet, fake_bundle(1000), false).await.status, 401);
    assert_eq!(upload(&admin, octet, fake_bundle(1000), false).await.status, 403, "no CSRF token");
    assert_eq!(upload(&viewer, octet, fake_bundle(1000), true).await.status, 403, "a viewer");
    assert_eq!(upload(&admin, "application/json", fake_bundle(1000), true).await.status, 415);
    let r = upload(&admin, octet, b"PK\x03\x04 a zip file".to_vec(), true).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("not a SWUpdate bundle"));
    let r = upload(&admin, octet, b"070701 but not an archive".to_vec(), true).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = upload(&admin, octet, bundle_of("../../etc/x", 1000), true).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("not a plain version"), "{}", r.text());
    // larger than the limit: refused by its length before a byte is read
    let h = [
        ("Cookie", admin.cookie.as_deref().unwrap()),
        ("X-CSRF-Token", admin.csrf.as_deref().unwrap()),
        ("Content-Type", octet),
        ("Content-Length", "3000000"),
    ];
    let r = raw(e.port, &request("POST", "/api/update/upload", &h, None)).await;
    assert_eq!(r.status, 413, "{}", r.text());
    // and while streaming when no length is announced
    let r = raw(e.port, &chunked_upload(&admin, 40)).await;
    assert_eq!(r.status, 413, "{}", r.text());
    // a good bundle with no enos-ota on the bus: said so, and the file is not left behind
    let r = upload(&admin, octet, fake_bundle(100_000), true).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("update service (enos-ota) is not running"), "{}", r.text());
    let left: Vec<_> = std::fs::read_dir(e.state_dir().join("upload")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    let r = viewer.get("/api/update").await;
    assert_eq!(r.status, 503);

    // no systemd on a private bus: restart and reboot say they are not available
    let r = admin.post("/api/services/enos-collector/restart", &json!({})).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("not available here"), "{}", r.text());
    assert_eq!(admin.post("/api/system/reboot", &json!({})).await.status, 503);
    assert_eq!(admin.post("/api/services/sshd/restart", &json!({})).await.status, 404);
    assert_eq!(admin.post("/api/services/..%2f..%2fsshd/restart", &json!({})).await.status, 404);
    assert_eq!(viewer.post("/api/services/enos-web/restart", &json!({})).await.status, 403);
    assert_eq!(viewer.post("/api/system/reboot", &json!({})).await.status, 403);
    assert!(e.web_log().contains("\"admin\" reboots the gateway"), "{}", e.web_log());

    // logs: fixed services and levels only
    for q in ["service=sshd", "service=enos-web;rm", "level=loud", "lines=0", "lines=99999"] {
        assert_eq!(admin.get(&format!("/api/logs?{q}")).await.status, 400, "{q}");
    }
    let r = admin.get("/api/logs?service=enos-web&level=warning&lines=5").await;
    assert!(r.status == 200 || r.status == 503 || r.status == 502, "{} {}", r.status, r.text());
    assert_eq!(viewer.get("/api/logs").await.status, 403);

    // the box's figures; the missing OTA agent named
    let s = viewer.get("/api/system").await.json();
    assert!(s["errors"]["ota"].as_str().unwrap().contains("enos-ota"), "{s}");
    assert!(s["memory"]["total_bytes"].as_u64().unwrap() > 0, "{s}");
    assert!(s["disk"]["free_bytes"].as_u64().is_some(), "{s}");
    let states: Vec<(String, String)> = s["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["service"].as_str().unwrap().into(), x["state"].as_str().unwrap().into()))
        .collect();
    assert!(
        states.contains(&("enos-collector".into(), "not running".into())) && states.contains(&("enos-web".into(), "running".into())),
        "{s}"
    );

    // diagnostics: a tar.gz without secrets
    assert_eq!(viewer.get("/api/diagnostics").await.status, 403);
    let r = admin.get("/api/diagnostics").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/gzip"));
    assert_eq!(&r.body[..2], &[0x1f, 0x8b]);
    let f = e.dir.path().join("diag.tar.gz");
    std::fs::write(&f, &r.body).unwrap();
    let out = std::process::Command::new("tar").arg("tzf").arg(&f).output().unwrap();
    assert!(out.status.success());
    let list = String::from_utf8_lossy(&out.stdout);
    for name in ["status.json", "system.json", "collector-config.json", "accounts.txt", "journal.txt"] {
        assert!(list.contains(name), "{name} missing: {list}");
    }
    let text = String::from_utf8_lossy(&r.body);
    assert!(text.contains("vic viewer") && !text.contains("argon2") && !text.contains(PASSWORD), "secrets in the bundle");
    // the web center's settings as they are written in web.toml, not as Rust prints an Option
    let out = std::process::Command::new("tar")
        .arg("xzf")
        .arg(&f)
        .arg("-C")
        .arg(e.dir.path())
        .arg("--wildcards")
        .arg("*/web.txt")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let web_txt = glob_one(e.dir.path(), "web.txt");
    assert!(!web_txt.contains("None") && !web_txt.contains("Some("), "{web_txt}");
    assert!(web_txt.contains("# kiosk_listen is not set") && web_txt.contains("listen = \"127.0.0.1:"), "{web_txt}");
}

/// The text of the one file named `name` in a directory below `dir` (an unpacked bundle).
fn glob_one(dir: &Path, name: &str) -> String {
    let sub = std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()).map(|e| e.path().join(name)).find(|p| p.exists());
    std::fs::read_to_string(sub.unwrap_or_else(|| panic!("no {name} below {}", dir.display()))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_settings_are_tested_changed_and_the_session_reconnects_without_losing_the_cache() {
    let e = Edge::full("").await;
    let admin = e.admin().await;
    let viewer = e.add_user(&admin, "vic", "viewer").await;
    let connected = || async {
        let s = admin.get("/api/status").await.json();
        (s["uplink"]["cloud"]["state"] == "connected").then_some(s)
    };
    until(30, "cloud connected", connected).await;
    let c = viewer.get("/api/cloud").await;
    assert_eq!(c.status, 200, "{}", c.text());
    let cur = c.json();
    assert_eq!(cur["device_key"], "gw01");
    assert_eq!(cur["secret_set"], true);
    assert!(!c.text().contains("gw-secret"), "the secret is never shown: {}", c.text());
    let uri = cur["uri"].as_str().unwrap().to_string();
    let base = json!({ "uri": uri, "product_key": "pkGW", "device_key": "gw01", "allow_plain": true });

    // tests: a wrong secret is refused by the cloud, the one set works
    let mut wrong = base.clone();
    wrong["device_secret"] = json!("not-the-secret");
    assert_eq!(viewer.post("/api/cloud/test", &wrong).await.status, 403);
    let r = admin.post("/api/cloud/test", &wrong).await.json();
    assert_eq!(r["ok"], false, "{r}");
    assert!(r["message"].as_str().unwrap().contains("refused the sign-in"), "{r}");
    let mut nowhere = base.clone();
    nowhere["uri"] = json!(format!("tcp://127.0.0.1:{}", free_port()));
    let r = admin.post("/api/cloud/test", &nowhere).await.json();
    assert!(r["ok"] == false && r["message"].as_str().unwrap().contains("could not be reached"), "{r}");
    let r = admin.post("/api/cloud/test", &base).await.json();
    assert_eq!(r["ok"], true, "{r}");
    // refused changes leave everything as it was
    let cfg_file = e.dir.path().join("uplink.toml");
    let before = std::fs::read_to_string(&cfg_file).unwrap();
    let mut plain = base.clone();
    plain["allow_plain"] = json!(false);
    let r = admin.post("/api/cloud", &plain).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("cloud.uri"), "{}", r.text());
    let mut traversal = base.clone();
    traversal["ca_file"] = json!("../../etc/shadow");
    assert_eq!(admin.post("/api/cloud", &traversal).await.status, 400);
    assert_eq!(viewer.post("/api/cloud", &base).await.status, 403);
    assert_eq!(std::fs::read_to_string(&cfg_file).unwrap(), before);

    // a change: the secret goes to its own 0600 file, the session starts again, the data flows on
    let acked_before = admin.get("/api/status").await.json()["uplink"]["sender"]["points_acked"].as_u64().unwrap();
    let mut change = base.clone();
    change["device_secret"] = json!("gw-secret");
    let r = admin.post("/api/cloud", &change).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = std::fs::read_to_string(&cfg_file).unwrap();
    assert!(!text.contains("gw-secret") && text.contains("device_secret_file"), "{text}");
    assert!(text.contains("[[sub_device]]") && text.contains("[cache]"), "the rest of the file stays: {text}");
    let sf = e.dir.path().join("gateway.secret");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&sf).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&sf).unwrap(), "gw-secret");
    // the new session: counters start again, delivery goes on
    until(30, "a new session delivering", || async {
        let s = admin.get("/api/status").await.json();
        let acked = s["uplink"]["sender"]["points_acked"].as_u64()?;
        (s["uplink"]["cloud"]["state"] == "connected" && acked > 0 && acked < acked_before + 1_000_000).then_some(())
    })
    .await;
    let s = admin.get("/api/status").await.json();
    assert_eq!(s["uplink"]["cache"]["dropped_points"], 0, "{s}");
    assert!(e.web_log().contains("\"admin\" changed the cloud settings"), "{}", e.web_log());
    assert!(!e.web_log().contains("gw-secret"), "no secret in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_bundle_is_installed_by_enos_ota_and_a_real_swupdate() {
    use enos_testkit::swu::{bundle, signing_key, Daemon};
    let e = Edge::web_only("");
    let admin = e.admin().await;
    let d = e.dir.path().to_path_buf();
    std::fs::create_dir_all(d.join("swu")).unwrap();
    let cert = signing_key(&d, "signer");
    let _daemon = Daemon::start(&d.join("swu"), &cert);
    // enos-ota below the bootloader as in enos-testkit/tests/ota.rs: the layer's enos-bootslot on
    // a GRUB environment block in a file, the reboot a `touch`
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../meta-enos-edge/recipes-bsp/enos-bootslot/files/enos-bootslot");
    let env = [
        ("TMPDIR".to_string(), format!("{}/swu", d.display())),
        ("ENOS_BOOTSLOT_BACKEND".to_string(), "grub".to_string()),
        ("ENOS_BOOTSLOT_GRUBENV".to_string(), format!("{}/grubenv", d.display())),
        ("ENOS_BOOTSLOT_CMDLINE".to_string(), format!("{}/cmdline", d.display())),
        ("ENOS_OS_RELEASE".to_string(), format!("{}/os-release", d.display())),
    ];
    let slot_tool = |args: &[&str], grubenv: &Path| {
        let out = std::process::Command::new("sh")
            .arg(&tool)
            .args(args)
            .envs(env.iter().cloned())
            .env("ENOS_BOOTSLOT_GRUBENV", grubenv)
            .output()
            .unwrap();
        assert!(out.status.success(), "enos-bootslot {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    std::fs::write(d.join("cmdline"), "BOOT_IMAGE=/boot/vmlinuz root=PARTLABEL=enos-root-a ro\n").unwrap();
    std::fs::write(d.join("os-release"), "ID=enos\nVERSION_ID=\"1.0.0\"\n").unwrap();
    slot_tool(&["env-set", "enos_slot=A", "upgrade_available=0", "bootcount=0", "bootlimit=3", "enos_rollback=0"], &d.join("grubenv"));
    slot_tool(&["env-set", "enos_slot=B", "upgrade_available=1", "bootcount=0", "bootlimit=3", "enos_rollback=0"], &d.join("armed-B"));
    let armed = std::fs::read(d.join("armed-B")).unwrap();
    let swu = bundle(&d, "to-b", &armed, &armed, "signer", &d.join("grubenv"));
    std::fs::write(
        d.join("ota.toml"),
        format!(
            "dir = \"{p}/ota\"\nbootslot = \"{t}\"\nreboot_command = [\"touch\", \"{p}/rebooted\"]\n[health]\nunits = []\nrequire_cloud = false\nrequire_collecting = false\ntimeout_s = 10\n",
            p = d.display(),
            t = tool.display()
        ),
    )
    .unwrap();
    let envs: Vec<(&str, &str)> = env.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let _ota = spawn_service_env("enos-ota", &d.join("ota.toml"), &e.bus.address, &d.join("ota.log"), &envs);
    let st = until(20, "enos-ota on the bus", || async {
        let r = admin.get("/api/update").await;
        (r.status == 200).then(|| r.json())
    })
    .await;
    assert_eq!(st["status"]["state"], "idle", "{st}");

    // the upload: streamed, named after the bundle's version, installed by the daemon
    let h = [
        ("Cookie", admin.cookie.as_deref().unwrap()),
        ("X-CSRF-Token", admin.csrf.as_deref().unwrap()),
        ("Content-Type", "application/octet-stream"),
    ];
    let r = raw(e.port, &request("POST", "/api/update/upload", &h, Some(&std::fs::read(&swu).unwrap()))).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["version"], "1.0.1");
    // a second upload while the job runs is refused
    let again = raw(e.port, &request("POST", "/api/update/upload", &h, Some(&std::fs::read(&swu).unwrap()))).await;
    assert!(again.status == 409 || again.status == 202, "{}", again.text());
    let steps = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let (a, dd, steps_ref) = (&admin, &d, &steps);
    let job = until(90, "the install and the reboot", || async move {
        let u = a.get("/api/update").await.json();
        if let Some(s) = u["status"]["job"]["step"].as_i64() {
            steps_ref.lock().unwrap().insert(s);
        }
        let last = u["history"].as_array().and_then(|h| h.last().cloned());
        if let Some(j) = last.filter(|j| j["state"] == "failed") {
            panic!("the install failed: {j}\n{}", std::fs::read_to_string(dd.join("ota.log")).unwrap_or_default());
        }
        (dd.join("rebooted").exists() && u["status"]["state"] == "rebooting").then_some(u)
    })
    .await;
    let steps = steps.into_inner().unwrap();
    assert_eq!(job["status"]["job"]["version"], "1.0.1", "{job}");
    assert!(steps.iter().any(|s| *s > 0 && *s < 100), "progress was followed: {steps:?}");
    let st = slot_tool(&["status"], &d.join("grubenv"));
    assert!(st.contains("selected=B") && st.contains("upgrade_available=1"), "the other slot is armed: {st}");
    assert!(e.web_log().contains("uploaded an update bundle, version 1.0.1"), "{}", e.web_log());
}

/// Plain HTTP from a chosen loopback source address (127.0.0.2, ...): several "clients" of the
/// network while every packet stays on this machine's loopback.
async fn raw_from(src: &str, port: u16, request: &[u8]) -> Resp {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{src}:0").parse().unwrap()).unwrap();
    let s = sock.connect(format!("127.0.0.1:{port}").parse().unwrap()).await.unwrap();
    exchange(s, request).await
}

async fn sign_in_from(src: &str, port: u16, name: &str, password: &str) -> Resp {
    let body = serde_json::to_vec(&json!({ "name": name, "password": password })).unwrap();
    raw_from(src, port, &request("POST", "/api/login", &[("Content-Type", "application/json")], Some(&body))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kiosk_claims_a_fresh_box_without_the_code() {
    let kiosk = free_port();
    let e = Edge::web_only(&format!("plain_http = false\nkiosk_listen = \"127.0.0.1:{kiosk}\""));
    let k = Client::new(kiosk);
    let s = k.get("/api/session").await.json();
    assert_eq!(s["setup_required"], true);
    assert_eq!(s["setup_code_required"], false, "the person at the box needs no code");
    let r = k.post("/api/setup", &json!({ "password": PASSWORD })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!e.state_dir().join("setup-code").exists(), "the code is spent once the box is claimed");
    assert!(e.web_log().contains("on the box itself"), "{}", e.web_log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_from_one_address_do_not_lock_the_account_out_elsewhere() {
    let e = Edge::web_only("[auth]\nmax_failed_signins = 3\nlockout_s = 600");
    e.admin().await;
    for _ in 0..3 {
        assert_eq!(sign_in_from("127.0.0.2", e.port, "admin", "not-the-password").await.status, 401);
    }
    let r = sign_in_from("127.0.0.2", e.port, "admin", PASSWORD).await;
    assert_eq!(r.status, 429, "the guessing address is locked out, even with the right password: {}", r.text());
    assert!(r.header("retry-after").is_some());
    assert_eq!(sign_in_from("127.0.0.2", e.port, "someone", "x-password-1").await.status, 429, "for any name");
    let r = sign_in_from("127.0.0.3", e.port, "admin", PASSWORD).await;
    assert_eq!(r.status, 200, "admin from another address still signs in: {}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_network_listener_leaves_room_for_the_kiosk() {
    let kiosk = free_port();
    let e = Edge::web_only(&format!("kiosk_listen = \"127.0.0.1:{kiosk}\"\n[limits]\nmax_connections = 2"));
    // idle connections take every slot of the network listener, one more waits in the backlog
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(("127.0.0.1", e.port)).await.unwrap());
    }
    // the kiosk is served meanwhile, again and again (with one shared cap, a slot freed by the
    // kiosk went to the waiting network connection, and the kiosk's next request waited)
    for _ in 0..3 {
        let s = Client::new(kiosk).get("/api/session").await;
        assert_eq!(s.status, 200);
    }
    // and the idle ones were not dropped to make room: they still get their answer
    let r = exchange(idle.remove(0), &request("GET", "/api/session", &[], None)).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_without_a_length_stops_before_the_data_partition_fills() {
    // The web center's state on a small disk of its own (what else writes to the machine's disk
    // would move the free space under the test); keep-free just below what is free there, so
    // the upload must stop part way.
    let dir = tempfile::tempdir().unwrap();
    let disk = enos_testkit::edge::SmallDisk::mount(dir.path().join("web-state"));
    let bus = Bus::start(dir.path());
    let mut e = Edge { port: 0, web: Proc { child: None, name: String::new() }, dir, bus, services: None, package_key: String::new() };
    assert_eq!(e.state_dir(), disk.dir);
    let keep_free = disk.free() - (12 << 20);
    e.start_web(&format!("[limits]\nmin_free_bytes = {keep_free}\nmax_upload_bytes = 1073741824"));
    let admin = e.admin().await;
    let req = chunked_upload(&admin, 1024);
    // 64 MiB: the server answers and closes long before it is all sent, so send without caring
    let s = TcpStream::connect(("127.0.0.1", e.port)).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let sending = tokio::spawn(async move {
        let _ = wr.write_all(&req).await;
    });
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(60), rd.read_to_end(&mut buf)).await.expect("an answer within 60 s");
    sending.abort();
    let r = parse_response(&buf);
    assert_eq!(r.status, 507, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("must stay free"), "{}", r.text());
    let left: Vec<_> = std::fs::read_dir(e.state_dir().join("upload")).unwrap().collect();
    assert!(left.is_empty(), "the part is removed: {left:?}");
}

// ---- resource packages uploaded in the web center ----

impl Edge {
    /// A package of the box's configuration with `table` as inv01's point table.
    fn package(&self, version: &str, config: &str, table: &str, signed: bool) -> Vec<u8> {
        use enos_package::build::{build, Source};
        use enos_package::ItemType;
        let items = [
            Source { path: "collector.toml".into(), kind: ItemType::CollectorConfig, data: config.as_bytes().to_vec() },
            Source { path: "points/inv01.csv".into(), kind: ItemType::PointTable, data: table.as_bytes().to_vec() },
        ];
        let key = signed.then(|| enos_package::key::private_from_pem(&self.package_key).unwrap());
        build("site", version, &items, key.as_ref())
    }

    /// The box's configuration, its point table taken from the package.
    fn site_config(&self) -> String {
        collector_toml(&self.sim().addr.to_string()).replace("points_csv = \"inv01.csv\"", "points_csv = \"points/inv01.csv\"")
    }
}

/// Uploads a package file as the page does.
async fn upload_package(c: &Client, body: &[u8], content_type: &str) -> Resp {
    let mut h: Vec<(&str, &str)> = vec![("Content-Type", content_type)];
    if let Some(k) = &c.cookie {
        h.push(("Cookie", k));
    }
    if let Some(t) = &c.csrf {
        h.push(("X-CSRF-Token", t));
    }
    raw(c.port, &request("POST", "/api/packages", &h, Some(body))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packages_are_uploaded_verified_applied_rolled_back_and_listed() {
    let e = Edge::full("").await;
    let admin = e.admin().await;
    let viewer = e.add_user(&admin, "vic", "viewer").await;
    inv01_online(&viewer).await;
    e.sim().with(|s| {
        s.holding.insert(30, 4242);
    });
    let cfg_file = e.dir.path().join("collector.toml");
    let before = std::fs::read_to_string(&cfg_file).unwrap();
    let empty = viewer.get("/api/packages").await;
    assert_eq!(empty.status, 200, "{}", empty.text());
    assert_eq!(empty.json()["installed"], Value::Null);

    let extra = format!("{POINTS_CSV}extra,holding,30,u16,,,fast,r,,,\n");
    let good = e.package("1.0.0", &e.site_config(), &extra, true);
    // only an admin, with the CSRF token, of the right type, not empty
    assert_eq!(upload_package(&viewer, &good, "application/octet-stream").await.status, 403);
    assert_eq!(upload_package(&Client { csrf: None, ..admin.clone() }, &good, "application/octet-stream").await.status, 403);
    let r = upload_package(&admin, &good, "text/plain").await;
    assert_eq!(r.status, 415, "{}", r.text());
    let r = upload_package(&admin, b"", "application/octet-stream").await;
    assert_eq!((r.status, r.json()["error"].clone()), (400, json!("the upload is empty: choose a package file")));

    // refused in words, nothing changed
    let unsigned = e.package("1.0.0", &e.site_config(), &extra, false);
    let mut tampered: Value = serde_json::from_slice(&good).unwrap();
    tampered["manifest"] = tampered["manifest"].as_str().unwrap().replace("\"1.0.0\"", "\"9.0.0\"").into();
    let tampered = serde_json::to_vec(&tampered).unwrap();
    let invalid_table = e.package("1.0.0", &e.site_config(), &format!("{POINTS_CSV}extra,holding,30,u17,,,fast,r,,,\n"), true);
    let invalid_device = e.package("1.0.0", &e.site_config().replace("retries = 0", "retries = \"often\""), &extra, true);
    for (what, pkg, words) in [
        ("unsigned", &unsigned, "the package was refused: the package is not signed"),
        ("tampered", &tampered, "was refused: the package's signature does not match"),
        ("invalid table", &invalid_table, "package site 1.0.0 was refused: item \"collector.toml\""),
        ("invalid device", &invalid_device, "package site 1.0.0 was refused: item \"collector.toml\""),
        ("not a package", &b"{\"hello\": 1}".to_vec(), "was refused"),
    ] {
        let r = upload_package(&admin, pkg, "application/octet-stream").await;
        assert_eq!(r.status, 422, "{what}: {}", r.text());
        let msg = r.json()["error"].as_str().unwrap().to_string();
        assert!(msg.contains(words), "{what}: {msg}");
        assert!(!msg.contains("org.enos") && !msg.contains("Some("), "{what}: words only: {msg}");
        if what == "invalid table" {
            assert!(
                msg.contains("points/inv01.csv") && msg.contains("column \"type\"") && msg.contains("u17"),
                "names table, column, value: {msg}"
            );
        }
        if what == "invalid device" {
            assert!(msg.contains("device \"inv01\"") && msg.contains("retries"), "names device and field: {msg}");
        }
        assert_eq!(std::fs::read_to_string(&cfg_file).unwrap(), before, "{what}: the configuration changed");
    }

    // installed: the new point is collected
    let r = upload_package(&admin, &good, "application/octet-stream").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!((r.json()["outcome"].clone(), r.json()["version"].clone()), (json!("installed"), json!("1.0.0")));
    until(20, "the new point read", || async {
        let live = viewer.get("/api/live").await.json();
        live.to_string().contains("extra").then_some(())
    })
    .await;

    // a configuration whose device does not answer: rolled back after the health deadline
    let dead = e.site_config().replace(&e.sim().addr.to_string(), "127.0.0.1:9");
    let r = upload_package(&admin, &e.package("2.0.0", &dead, &extra, true), "application/octet-stream").await;
    assert_eq!(r.status, 422, "{}", r.text());
    let msg = r.json()["error"].as_str().unwrap().to_string();
    assert!(msg.starts_with("package site 2.0.0 was rolled back: device \"inv01\" was not collecting"), "{msg}");
    assert!(std::fs::read_to_string(&cfg_file).unwrap().contains(&e.sim().addr.to_string()), "the working configuration is back");

    // the history, newest last, as every signed-in user sees it
    let list = viewer.get("/api/packages").await.json();
    assert_eq!(list["installed"]["version"], "1.0.0", "{list}");
    let outcomes: Vec<&str> = list["history"].as_array().unwrap().iter().map(|h| h["outcome"].as_str().unwrap()).collect();
    // (the first two refusals came before the collector's packages directory existed: they were
    // missing from the history until save_state made it)
    assert_eq!(outcomes, ["refused", "refused", "refused", "refused", "refused", "installed", "rolled-back"], "{list}");
    assert!(e.web_log().contains("uploaded a resource package"), "the upload is logged with its user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_alone_see_trust_and_remove_an_opcua_devices_server_certificates() {
    let e = Edge::full("").await;
    let admin = e.admin().await;
    let viewer = e.add_user(&admin, "vic", "viewer").await;
    let operator = e.add_user(&admin, "olga", "operator").await;
    // an OPC UA device (its server is not there: the trust list is the PKI directory's) and a
    // server certificate refused at a connect, as async-opcua leaves it in rejected/
    let pki = e.dir.path().join("opcua-pki");
    std::fs::create_dir_all(pki.join("rejected")).unwrap();
    std::fs::create_dir_all(pki.join("trusted")).unwrap();
    let der = pki.join("rejected/plc-7 [0011].der");
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=plc-7/O=Plant", "-outform", "DER"])
        .arg("-keyout")
        .arg(e.dir.path().join("plc-7.key"))
        .arg("-out")
        .arg(&der)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::copy(&der, e.dir.path().join("plc-7.der")).unwrap();
    let sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(&der).unwrap()))
    };
    let device = json!({ "id": "plc1", "protocol": "opcua", "endpoint": "opc.tcp://127.0.0.1:9", "security_policy": "None",
        "pki_dir": pki.to_string_lossy(), "point": [{ "name": "P", "node": "ns=2;s=P" }] });
    let r = admin.send("PUT", "/api/devices/plc1/config", Some(&device), true).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let list = "/api/devices/plc1/opcua-certificates";
    let trust = format!("{list}/{sha256}/trust");
    let remove = format!("{list}/{sha256}/remove");

    // viewers and operators may not see or change them
    assert_eq!(viewer.get(list).await.status, 403);
    assert_eq!(operator.get(list).await.status, 403);
    assert_eq!(operator.post(&trust, &json!({})).await.status, 403);
    assert_eq!(viewer.post(&remove, &json!({})).await.status, 403);
    // an admin must send the CSRF token like every change
    assert_eq!(admin.send("POST", &trust, Some(&json!({})), false).await.status, 403);
    assert!(der.exists(), "nothing changed");

    // the admin sees it: rejected, subject, issuer, validity, thumbprint
    let r = admin.get(list).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["pki_dir"], pki.to_string_lossy().as_ref());
    let c = &v["certificates"][0];
    assert_eq!(v["certificates"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!((c["state"].as_str(), c["sha256"].as_str()), (Some("rejected"), Some(sha256.as_str())), "{c}");
    assert!(c["subject"].as_str().unwrap().contains("CN=plc-7") && c["issuer"] == c["subject"], "{c}");
    let days = (c["not_after_ms"].as_u64().unwrap() - c["not_before_ms"].as_u64().unwrap()) / 86_400_000;
    assert_eq!(days, 30, "{c}");

    // wrong requests, in words
    let r = admin.post(&format!("{list}/not-a-thumbprint/trust"), &json!({})).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["error"], "\"not-a-thumbprint\" is not a SHA-256 thumbprint (64 hexadecimal digits)");
    let r = admin.post(&format!("{list}/{}/trust", "a".repeat(64)), &json!({})).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["error"], format!("no certificate with SHA-256 thumbprint {} in the OPC UA trust list", "a".repeat(64)));
    let r = admin.get("/api/devices/inv01/opcua-certificates").await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["error"], "device \"inv01\" is a modbus-tcp device: only OPC UA devices have server certificates");
    assert_eq!(admin.get("/api/devices/nothere/opcua-certificates").await.status, 404);

    // trusted: moved to trusted/ (the next connect accepts the server), audited with the user
    let r = admin.post(&trust, &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["state"], "trusted");
    assert!(!der.exists());
    // (the device's connect attempts may rename it to async-opcua's own name: the content counts)
    let trusted: Vec<Vec<u8>> =
        std::fs::read_dir(pki.join("trusted")).unwrap().map(|f| std::fs::read(f.unwrap().path()).unwrap()).collect();
    assert_eq!(trusted, vec![std::fs::read(e.dir.path().join("plc-7.der")).unwrap()]);
    assert_eq!(admin.get(list).await.json()["certificates"][0]["state"], "trusted");
    assert!(e.web_log().contains(&format!("\"admin\" trusted OPC UA server certificate {sha256} (")), "{}", e.web_log());

    // removed: the list is empty
    let r = admin.post(&remove, &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(admin.get(list).await.json()["certificates"].as_array().unwrap().is_empty());
    assert_eq!(std::fs::read_dir(pki.join("trusted")).unwrap().count(), 0);
}
