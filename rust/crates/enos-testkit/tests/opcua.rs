//! OPC UA end to end: an asyncua server (peers/opcua_server.py), the collector's OPC UA driver,
//! the uplink and the cloud simulator. Subscribed values with their source timestamps and
//! qualities reach the cloud, a polled point is read, writes go through the cloud's
//! measurepoint/set and enosctl, the session comes back after the server restarts; with
//! Basic256Sha256 SignAndEncrypt and a user name, an untrusted server certificate is refused
//! (put in rejected/, said in the device's last error with its thumbprint, listed over the bus)
//! until an administrator trusts it with enosctl, and a server with another certificate is
//! refused again; after a network break (a TCP proxy cut) the session
//! survives, it is resumed and every change of the break reaches the cloud, in order, at its
//! source time (those the server sent to the dead connection by Republish).

use enos_testkit::cloud_sim::CloudSim;
use enos_testkit::harness::{run_tool, spawn_service, uplink_toml_one_device, Bus, Mosquitto};
use enos_testkit::opcua_server::Server;
use enos_testkit::wait_for;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

const POINTS: &str = "[[device.point]]\nname = \"P\"\nnode = \"ns=2;s=P\"\n\
     [[device.point]]\nname = \"count\"\nnode = \"nsu=urn:enos:test;i=1001\"\nqueue_size = 10\n\
     [[device.point]]\nname = \"F\"\nnode = \"ns=2;g=09087e75-8e5e-499b-954f-f2a9603db28a\"\n\
     [[device.point]]\nname = \"polled\"\nnode = \"ns=2;b=AQID\"\nmode = \"poll\"\nscale = 0.5\n\
     [[device.point]]\nname = \"setpoint\"\nnode = \"ns=2;s=Setpoint\"\naccess = \"rw\"\nmin = 0\nmax = 100\n\
     [[device.point]]\nname = \"locked\"\nnode = \"ns=2;s=Locked\"\naccess = \"rw\"\nmin = 0\nmax = 100\n";

struct Edge {
    dir: tempfile::TempDir,
    bus: Bus,
    _broker: Mosquitto,
    cloud: CloudSim,
    _services: Vec<enos_testkit::harness::Proc>,
}

impl Edge {
    /// The services with one OPC UA device "plc" of these settings.
    async fn start(dir: tempfile::TempDir, settings: &str) -> Edge {
        Edge::start_with(dir, settings, POINTS).await
    }

    /// The same with these points.
    async fn start_with(dir: tempfile::TempDir, settings: &str, points: &str) -> Edge {
        let bus = Bus::start(dir.path());
        let broker = Mosquitto::start(dir.path());
        let cloud = CloudSim::start(broker.port, HashMap::from([("gw01".to_string(), "s".to_string())])).await;
        std::fs::write(
            dir.path().join("collector.toml"),
            format!(
                "[push]\ninterval_ms = 100\n[[device]]\nid = \"plc\"\nprotocol = \"opcua\"\n{settings}\n\
                 publishing_interval_ms = 100\npoll_interval_ms = 200\nreconnect_min_ms = 200\nreconnect_max_ms = 1000\n{points}"
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("uplink.toml"), uplink_toml_one_device(&cloud.uri(), &dir.path().join("cache"), "plc")).unwrap();
        let log = dir.path().join("services.log");
        let uplink = spawn_service("enos-uplink", &dir.path().join("uplink.toml"), &bus.address, &log);
        let collector = spawn_service("enos-collector", &dir.path().join("collector.toml"), &bus.address, &log);
        Edge { dir, bus, _broker: broker, cloud, _services: vec![uplink, collector] }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("services.log")).unwrap_or_default()
    }

    /// The latest sample of `point` at the cloud that `ok` accepts (the services' log if none).
    async fn at_cloud(
        &self,
        point: &str,
        what: &str,
        ok: impl Fn(&enos_testkit::cloud_sim::Point) -> bool,
    ) -> enos_testkit::cloud_sim::Point {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(p) = self.cloud.with(|r| r.points.iter().rev().find(|p| p.point == point && ok(p)).cloned()) {
                return p;
            }
            assert!(tokio::time::Instant::now() < deadline, "{what}: not at the cloud\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The device's trust list, as `enosctl --json opcua-certs list plc` says it.
    fn certificates(&self) -> serde_json::Value {
        let (ok, out, err) = run_tool("enosctl", &["--json", "opcua-certs", "list", "plc"], &self.bus.address);
        assert!(ok, "{out}{err}");
        serde_json::from_str(&out).unwrap()
    }

    /// The device's last error, once `ok` accepts it.
    async fn last_error(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let log = || self.log();
        let found = tokio::time::timeout(
            Duration::from_secs(40),
            wait_for(60, what, || {
                let (_, out, _) = run_tool("enosctl", &["--json", "devices"], &self.bus.address);
                let devs: Vec<serde_json::Value> = serde_json::from_str(&out).ok()?;
                let e = devs.iter().find(|d| d["id"] == "plc")?["last_error"].as_str()?.to_string();
                ok(&e).then_some(e)
            }),
        )
        .await;
        found.unwrap_or_else(|_| panic!("{what}: not said\n{}", log()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribed_values_qualities_writes_and_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = Server::start(port, &dir.path().join("server"), &[]);
    let pki = dir.path().join("pki");
    let e = Edge::start(
        dir,
        &format!("endpoint = \"opc.tcp://127.0.0.1:{port}/enos/test\"\nsecurity_policy = \"None\"\npki_dir = \"{}\"", pki.display()),
    )
    .await;

    // the values the server has when the subscription is made, in every node id form
    let p = e.at_cloud("P", "P's first value", |p| p.value == serde_json::json!(231.5)).await;
    assert_eq!(p.device_key.as_deref(), Some("plc"));
    e.at_cloud("count", "the nsu= node", |p| p.value == serde_json::json!(7)).await;
    e.at_cloud("F", "the GUID node (a Float as its decimal)", |p| p.value == serde_json::json!(1.25)).await;
    e.at_cloud("polled", "the polled ByteString node, scaled", |p| p.value == serde_json::json!(1.5)).await;

    // a change with the source's timestamp (a recent instant: the cache drops older samples)
    let at = now_ms() - 61_234;
    server.send(&format!("set ns=2;s=P 232.25 - {at}"));
    let p = e.at_cloud("P", "the change", |p| p.value == serde_json::json!(232.25)).await;
    assert_eq!(p.time, at, "the source timestamp is the sample's time");

    // status codes: Uncertain is doubtful (its value kept), Bad invalid (a Bad value means
    // nothing), with the flags that say why
    server.send(&format!("set ns=2;s=P 233 UncertainLastUsableValue {}", now_ms()));
    e.at_cloud("P", "a doubtful value", |p| p.value == serde_json::json!({"value": 233, "quality": 6 + (2 << 8)})).await;
    server.send(&format!("set ns=2;s=P 0 BadSensorFailure {}", now_ms()));
    e.at_cloud("P", "an invalid value", |p| p.value == serde_json::json!({"value": null, "quality": 5 + (1 << 8)})).await;
    let (ok, out, err) = run_tool("enosctl", &["--json", "read", "plc", "P"], &e.bus.address);
    assert!(ok, "{err}");
    let r: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(r[0]["quality"], "invalid", "{out}");
    assert!(r[0]["error"].as_str().unwrap().contains("sensor failure (BadSensorFailure, 0x808C0000)"), "{out}");

    // a write from the cloud reaches the node as its type; a node the server will not write is
    // refused with the server's reason
    let set =
        |id: &str, body: &str| format!(r#"{{"id":"{id}","version":"1.0","method":"thing.service.measurepoint.set","params":{body}}}"#);
    let topic = "/sys/pkM/plc/thing/service/measurepoint/set";
    e.cloud.command(topic, set("1", r#"{"setpoint":42.5}"#).as_bytes()).await;
    e.cloud.command(topic, set("2", r#"{"locked":1}"#).as_bytes()).await;
    let replies = wait_for(30, "two command replies", || {
        let r = e.cloud.with(|r| r.command_replies.clone());
        (r.len() >= 2).then_some(r)
    })
    .await;
    let code = |id: &str| replies.iter().find(|(_, v)| v["id"] == id).map(|(_, v)| v["code"].as_i64().unwrap());
    assert_eq!((code("1"), code("2")), (Some(200), Some(2006)), "{replies:?}\n{}", e.log());
    assert_eq!(server.send("get ns=2;s=Setpoint"), "ok get ns=2;s=Setpoint 42.5");
    let (ok, _, err) = run_tool("enosctl", &["write", "plc", "locked", "5"], &e.bus.address);
    // (asyncua answers a node that is not writable with BadUserAccessDenied)
    assert!(!ok && err.contains("this user may not do that on the server (BadUserAccessDenied, 0x801F0000)"), "{err}");

    // the server stops and comes back with other values: the session is made again, the
    // subscription recreated, and the values the server has now reach the cloud
    drop(server);
    e.last_error("the break said", |s| s.contains("connection to the server")).await;
    let _server = Server::start(port, &e.dir.path().join("server"), &["--init", "ns=2;s=P=240.5", "ns=2;i=1001=8"]);
    e.at_cloud("P", "P after the restart", |p| p.value == serde_json::json!(240.5)).await;
    e.at_cloud("count", "count after the restart", |p| p.value == serde_json::json!(8)).await;
    // the server lost the session and with it what changed meanwhile: the value after the
    // restart is marked as the first after a gap
    let (ok, out, err) = run_tool("enosctl", &["--json", "read", "plc", "count"], &e.bus.address);
    assert!(ok, "{err}");
    let r: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(r[0]["flags"], serde_json::json!(["after a gap"]), "{out}");
}

/// Polled points are read in calls of at most 500 nodes (so only one call's values are held at
/// a time): every point of 1,000 reaches the cloud, across the calls' edges; a point whose
/// namespace the server does not have, in the second call, is said in its reading while the
/// rest of its call is read; a subscribed point after them neither stops them nor makes an
/// empty read (a failed poll).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polled_points_beyond_one_read_call_are_all_read() {
    const N: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = Server::start(port, &dir.path().join("server"), &["--bench", &N.to_string()]);
    let pki = dir.path().join("pki");
    let mut points = String::new();
    for i in 0..N {
        let node = if i == 600 { "nsu=urn:nowhere;s=B00600".to_string() } else { format!("ns=2;s=B{i:05}") };
        points.push_str(&format!("[[device.point]]\nname = \"B{i:05}\"\nnode = \"{node}\"\nmode = \"poll\"\n"));
    }
    points.push_str("[[device.point]]\nname = \"P\"\nnode = \"ns=2;s=P\"\n");
    let e = Edge::start_with(
        dir,
        &format!("endpoint = \"opc.tcp://127.0.0.1:{port}/enos/test\"\nsecurity_policy = \"None\"\npki_dir = \"{}\"", pki.display()),
        &points,
    )
    .await;
    let wanted: std::collections::BTreeSet<String> = (0..N).filter(|&i| i != 600).map(|i| format!("B{i:05}")).collect();
    let seen = tokio::time::timeout(
        Duration::from_secs(60),
        wait_for(100, "every polled point at the cloud", || {
            let seen: std::collections::BTreeSet<String> =
                e.cloud.with(|r| r.points.iter().filter(|p| p.value.as_f64() == Some(0.0)).map(|p| p.point.clone()).collect());
            wanted.is_subset(&seen).then_some(seen)
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("not every polled point reached the cloud\n{}", e.log()));
    assert!(!seen.contains("B00600"), "the point in a namespace the server lacks was not sent");
    e.at_cloud("P", "the subscribed point after the polled ones", |p| p.value == serde_json::json!(231.5)).await;
    let (ok, out, err) = run_tool("enosctl", &["--json", "read", "plc", "B00600", "B00599", "B00601"], &e.bus.address);
    assert!(ok, "{err}");
    let r: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(r[0]["quality"], "device-exception", "{out}");
    assert_eq!(r[0]["error"], "the server has no namespace \"urn:nowhere\"", "{out}");
    assert_eq!((r[1]["quality"].as_str(), r[2]["quality"].as_str()), (Some("good"), Some("good")), "{out}");
    // two whole polls, neither failed
    let dev = tokio::time::timeout(
        Duration::from_secs(30),
        wait_for(60, "two polls", || {
            let (_, out, _) = run_tool("enosctl", &["--json", "devices"], &e.bus.address);
            let devs: Vec<serde_json::Value> = serde_json::from_str(&out).ok()?;
            devs.into_iter().find(|d| d["id"] == "plc" && d["polls_ok"].as_u64() >= Some(2))
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("no two polls\n{}", e.log()));
    assert_eq!(dev["last_error"], serde_json::Value::Null, "{dev}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_and_encrypt_with_a_user_refuses_an_untrusted_server_until_it_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server_dir = dir.path().join("server");
    let server = Server::start(port, &server_dir, &["--secure", "--user", "operator:s3cret"]);
    let pki = dir.path().join("pki");
    let e = Edge::start(
        dir,
        &format!(
            "endpoint = \"opc.tcp://127.0.0.1:{port}/enos/test\"\nsecurity_policy = \"Basic256Sha256\"\n\
             auth = \"username\"\nusername = \"operator\"\npassword = \"s3cret\"\npki_dir = \"{}\"",
            pki.display()
        ),
    )
    .await;

    // the gateway made its certificate; the server's is not trusted yet: refused, kept in
    // rejected/ and said in the device's last error with its thumbprint
    let server_sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(server_dir.join("server_cert.der")).unwrap()))
    };
    let why = e.last_error("the untrusted server said", |s| s.contains("not trusted")).await;
    assert!(why.contains(&pki.join("rejected").display().to_string()) && why.contains(&server_sha256), "{why}");
    assert!(why.contains("enosctl opcua-certs trust") && why.contains("move it to"), "{why}");
    assert!(pki.join("own/cert.der").exists() && pki.join("private/private.pem").exists());
    let rejected: Vec<PathBuf> = std::fs::read_dir(pki.join("rejected")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(e.cloud.with(|r| r.points.iter().all(|p| p.point != "P")), "no value from an untrusted server");

    // the administrator sees it over the bus (enosctl): rejected, the server's subject, validity,
    // the thumbprint of the certificate the server presents
    let certs = e.certificates();
    assert_eq!(certs["pki_dir"], pki.display().to_string());
    let list = certs["certificates"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{certs}");
    let c = &list[0];
    assert_eq!((c["state"].as_str(), c["sha256"].as_str()), (Some("rejected"), Some(server_sha256.as_str())), "{c}");
    assert!(c["subject"].as_str().unwrap().contains("CN=EnOS test server"), "{c}");
    assert!(c["not_before_ms"].as_u64().unwrap() < now_ms() && now_ms() < c["not_after_ms"].as_u64().unwrap(), "{c}");
    let (ok, out, _) = run_tool("enosctl", &["opcua-certs", "list", "plc"], &e.bus.address);
    assert!(ok && out.contains("rejected") && out.contains(&server_sha256) && out.contains("CN=EnOS test server"), "{out}");

    // wrong requests are refused in words and change nothing
    let (ok, _, err) = run_tool("enosctl", &["opcua-certs", "trust", "plc", "../trusted/x"], &e.bus.address);
    assert!(!ok && err.contains("\"../trusted/x\" is not a SHA-256 thumbprint"), "{err}");
    let (ok, _, err) = run_tool("enosctl", &["opcua-certs", "trust", "plc", &"0".repeat(64)], &e.bus.address);
    assert!(!ok && err.contains(&format!("no certificate with SHA-256 thumbprint {} in the OPC UA trust list", "0".repeat(64))), "{err}");
    let (ok, _, err) = run_tool("enosctl", &["opcua-certs", "list", "nothere"], &e.bus.address);
    assert!(!ok && err.contains("there is no device \"nothere\""), "{err}");
    assert!(!err.contains("NotFound") && !err.contains("org.enos"), "words for people: {err}");
    assert_eq!(std::fs::read_dir(pki.join("rejected")).unwrap().count(), 1);

    // trusted by the administrator with enosctl (upper case, as some tools print it): the next
    // attempt connects, encrypted, as the user, without a restart; the change is audited
    let (ok, out, err) = run_tool("enosctl", &["opcua-certs", "trust", "plc", &server_sha256.to_ascii_uppercase()], &e.bus.address);
    assert!(ok && out.starts_with("trusted "), "{out}{err}");
    e.at_cloud("P", "P over SignAndEncrypt", |p| p.value == serde_json::json!(231.5)).await;
    assert!(e.log().contains(&format!("AUDIT OPC UA server certificate {server_sha256} (")), "{}", e.log());
    let certs = e.certificates();
    assert_eq!(certs["certificates"][0]["state"], "trusted", "{certs}");

    // another server (another certificate) at the same address is refused again, and listed
    // beside the trusted one; removing the old one leaves only the new, still refused
    drop(server);
    let other_dir = e.dir.path().join("other-server");
    let _other = Server::start(port, &other_dir, &["--secure", "--user", "operator:s3cret"]);
    let why = e.last_error("the other server refused", |s| s.contains("not trusted")).await;
    assert!(why.contains("rejected"), "{why}");
    let states: Vec<(String, String)> = e.certificates()["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["state"].as_str().unwrap().to_string(), c["sha256"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(states.len(), 2, "{states:?}");
    assert!(states.contains(&("trusted".into(), server_sha256.clone())), "{states:?}");
    let (ok, out, err) = run_tool("enosctl", &["opcua-certs", "remove", "plc", &server_sha256], &e.bus.address);
    assert!(ok && out.contains("from the trusted certificates of plc"), "{out}{err}");
    let left = e.certificates();
    assert_eq!(left["certificates"].as_array().unwrap().len(), 1, "{left}");
    assert_eq!(left["certificates"][0]["state"], "rejected", "{left}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_certificate_is_accepted_and_a_strangers_refused_in_words() {
    // the server and the gateway's PKI outlive the two gateways started in turn
    let keep = tempfile::tempdir().unwrap();
    let port = free_port();
    let server_dir = keep.path().join("server");
    let _server = Server::start(port, &server_dir, &["--secure", "--user-cert"]);
    let pki = keep.path().join("pki");
    let edge = |who: &str| {
        let settings = format!(
            "endpoint = \"opc.tcp://127.0.0.1:{port}/enos/test\"\nsecurity_policy = \"Basic256Sha256\"\n\
             auth = \"certificate\"\nuser_cert = \"{}\"\nuser_key = \"{}\"\npki_dir = \"{}\"",
            server_dir.join(format!("{who}_cert.der")).display(),
            server_dir.join(format!("{who}_key.pem")).display(),
            pki.display()
        );
        async move { Edge::start(tempfile::tempdir().unwrap(), &settings).await }
    };

    // a stranger's certificate (the server trusted first): refused, said in words
    let e = edge("stranger").await;
    e.last_error("the untrusted server said", |s| s.contains("not trusted")).await;
    let rejected: Vec<PathBuf> = std::fs::read_dir(pki.join("rejected")).unwrap().map(|e| e.unwrap().path()).collect();
    std::fs::rename(&rejected[0], pki.join("trusted").join(rejected[0].file_name().unwrap())).unwrap();
    let why = e.last_error("the stranger refused", |s| !s.contains("not trusted")).await;
    assert!(why.contains("this user may not do that on the server (BadUserAccessDenied, 0x801F0000)"), "{why}");
    assert!(e.cloud.with(|r| r.points.iter().all(|p| p.point != "P")), "no value for a stranger");
    drop(e);

    // the user's certificate: values arrive
    let e = edge("user").await;
    e.at_cloud("P", "P as the certificate's user", |p| p.value == serde_json::json!(231.5)).await;
}

/// Every security policy the collector offers, in Sign and in SignAndEncrypt, against a server
/// with the six endpoints: the session comes up on the endpoint configured (the client takes no
/// other: `Error::NoEndpoint`) and values arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_security_policy_in_sign_and_in_sign_and_encrypt() {
    // the server and the gateway's PKI outlive the gateways started in turn
    let keep = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = Server::start(port, &keep.path().join("server"), &["--secure", "--all-policies"]);
    let pki = keep.path().join("pki");
    let edge = |policy: &str, mode: &str| {
        let settings = format!(
            "endpoint = \"opc.tcp://127.0.0.1:{port}/enos/test\"\nsecurity_policy = \"{policy}\"\n\
             security_mode = \"{mode}\"\npki_dir = \"{}\"",
            pki.display()
        );
        async move { Edge::start(tempfile::tempdir().unwrap(), &settings).await }
    };
    let mut trusted = false;
    for policy in ["Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"] {
        for mode in ["Sign", "SignAndEncrypt"] {
            let e = edge(policy, mode).await;
            if !trusted {
                // the server's certificate, refused at first, trusted as an administrator would
                e.last_error("the untrusted server said", |s| s.contains("not trusted")).await;
                let rejected: Vec<PathBuf> = std::fs::read_dir(pki.join("rejected")).unwrap().map(|e| e.unwrap().path()).collect();
                std::fs::rename(&rejected[0], pki.join("trusted").join(rejected[0].file_name().unwrap())).unwrap();
                trusted = true;
            }
            e.at_cloud("P", &format!("P over {policy} {mode}"), |p| p.value == serde_json::json!(231.5)).await;
        }
    }
}

/// A "server" that answers every Hello with hostile bytes, each connection the next of
/// `answers` in turn.
async fn hostile_server(answers: Vec<Vec<u8>>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        for answer in answers.iter().cycle() {
            let Ok((mut s, _)) = listener.accept().await else { return };
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut hello = [0u8; 256];
                let _ = s.read(&mut hello).await;
                let _ = s.write_all(&answer).await;
                let _ = s.read(&mut hello).await; // held open until the client gives up
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_server_is_an_error_in_words_counted_and_nothing_else_stops() {
    // garbage, an acknowledge claiming a 4 GB message, a message type that does not exist
    let mut ack = b"ACKF".to_vec();
    ack.extend_from_slice(&28u32.to_le_bytes());
    ack.extend_from_slice(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
    let answers = vec![b"\x00\xffnot OPC UA at all\r\n".repeat(40), ack, b"XYZF\x10\x00\x00\x00garbage!".to_vec()];
    let port = hostile_server(answers).await;
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let e = Edge::start(
        dir,
        &format!(
            "endpoint = \"opc.tcp://127.0.0.1:{port}/enos/test\"\nsecurity_policy = \"None\"\npki_dir = \"{}\"\nrequest_timeout_ms = 1000",
            pki.display()
        ),
    )
    .await;
    let why = e.last_error("the hostile server said", |s| s.starts_with("cannot reach the OPC UA server")).await;
    assert!(why.contains(&format!("opc.tcp://127.0.0.1:{port}/enos/test")), "{why}");
    assert!(!why.contains("Some(") && !why.contains("{ "), "words for people: {why}");
    // every answer tried, each attempt counted, the collector still serving
    let failed = wait_for(60, "three failed attempts counted", || {
        let (_, out, _) = run_tool("enosctl", &["--json", "devices"], &e.bus.address);
        let devs: Vec<serde_json::Value> = serde_json::from_str(&out).ok()?;
        let n = devs.iter().find(|d| d["id"] == "plc")?["polls_failed"].as_u64()?;
        (n >= 4).then_some(n)
    })
    .await;
    assert!(failed >= 4);
    let (ok, out, err) = run_tool("enosctl", &["--json", "read", "plc", "P"], &e.bus.address);
    assert!(ok && out.contains("the server has not sent this point yet"), "{out}{err}\n{}", e.log());
    assert!(!e.log().contains("panicked"), "{}", e.log());
}

/// A TCP proxy between the gateway and the server: it can fall silent (a network break neither
/// side notices yet; what the server sends meanwhile is kept, never delivered) and cut its
/// connections (the gateway sees the break; the server does not restart).
struct Proxy {
    port: u16,
    silent: Arc<AtomicBool>,
    cut: Arc<AtomicBool>,
    /// bytes the server sent while the proxy was silent
    lost: Arc<Mutex<Vec<u8>>>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start(to: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let p = Proxy { port, silent: Default::default(), cut: Default::default(), lost: Default::default(), conns: Default::default() };
        let (silent, cut, lost, conns) = (p.silent.clone(), p.cut.clone(), p.lost.clone(), p.conns.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if cut.load(SeqCst) {
                    continue; // dropped: the gateway sees the connection closed
                }
                let Ok(outbound) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await else { continue };
                let (client_rx, client_tx) = inbound.into_split();
                let (server_rx, server_tx) = outbound.into_split();
                let up = tokio::spawn(Self::pump(client_rx, server_tx, silent.clone(), None));
                let down = tokio::spawn(Self::pump(server_rx, client_tx, silent.clone(), Some(lost.clone())));
                conns.lock().unwrap().extend([up.abort_handle(), down.abort_handle()]);
            }
        });
        p
    }

    /// Copies one direction; while silent, drops what it reads (keeping it in `lost` if given).
    async fn pump(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        silent: Arc<AtomicBool>,
        lost: Option<Arc<Mutex<Vec<u8>>>>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if silent.load(SeqCst) {
                if let Some(lost) = &lost {
                    lost.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            } else if to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }

    /// Stops delivering in both directions; the connections stay open.
    fn fall_silent(&self) {
        self.silent.store(true, SeqCst);
    }

    /// Whether the server has sent `bytes` into the silence.
    fn lost_contains(&self, bytes: &[u8]) -> bool {
        self.lost.lock().unwrap().windows(bytes.len()).any(|w| w == bytes)
    }

    /// Drops every connection and refuses new ones until `restore`.
    fn cut(&self) {
        self.cut.store(true, SeqCst);
        self.conns.lock().unwrap().drain(..).for_each(|c| c.abort());
    }

    fn restore(&self) {
        self.silent.store(false, SeqCst);
        self.cut.store(false, SeqCst);
    }
}

/// An OPC UA DateTime as it goes on the wire: 100 ns ticks since 1601, little-endian.
fn opcua_datetime(unix_ms: u64) -> [u8; 8] {
    ((unix_ms as i64 + 11_644_473_600_000) * 10_000).to_le_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_network_break_every_change_of_the_break_arrives_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = Server::start(port, &dir.path().join("server"), &[]);
    let proxy = Proxy::start(port).await;
    let pki = dir.path().join("pki");
    let e = Edge::start(
        dir,
        &format!(
            "endpoint = \"opc.tcp://127.0.0.1:{}/enos/test\"\nsecurity_policy = \"None\"\npki_dir = \"{}\"",
            proxy.port,
            pki.display()
        ),
    )
    .await;
    e.at_cloud("count", "count's first value", |p| p.value == serde_json::json!(7)).await;

    let before = e.cloud.with(|r| r.points.len());
    // the network falls silent before anyone notices: the server answers the publish requests
    // still pending with the first changes (lost on the wire, kept by the server for
    // Republish) and queues the rest for the session
    proxy.fall_silent();
    let t0 = now_ms() - 10_000;
    let changes: Vec<(i64, u64)> = (8..=13).enumerate().map(|(i, v)| (v, t0 + i as u64 * 1000)).collect();
    for (v, at) in &changes {
        server.send(&format!("set ns=2;i=1001 {v} - {at}"));
    }
    wait_for(20, "the server sent the break's first change into the silence", || proxy.lost_contains(&opcua_datetime(t0)).then_some(()))
        .await;
    proxy.cut();
    e.last_error("the break said", |s| s.contains("connection to the server")).await;
    proxy.restore();
    wait_for(40, "the session resumed (the server kept it)", || e.log().contains("session resumed").then_some(())).await;
    e.at_cloud("count", "the last change of the break", |p| p.value == serde_json::json!(13)).await;
    // every change of the break, once each, in order, at its source timestamp
    let got: Vec<(i64, u64)> =
        e.cloud.with(|r| r.points[before..].iter().filter(|p| p.point == "count").map(|p| (p.value.as_i64().unwrap(), p.time)).collect());
    assert_eq!(got, changes, "{}", e.log());
    // the recovery logs what it got once the server has no more, a round trip after the last
    wait_for(20, "the dead connection's messages came by Republish", || e.log().contains("received by Republish").then_some(())).await;
    // and the subscription goes on: a change after the break arrives by Publish (async-opcua
    // publishes on a reactivated session only when told to)
    let at = now_ms();
    server.send(&format!("set ns=2;i=1001 14 - {at}"));
    let p = e.at_cloud("count", "a change after the break", |p| p.value == serde_json::json!(14)).await;
    assert_eq!(p.time, at);
}

/// The communication test browses the server: the Objects folder by default, then a node's
/// children, every node id form, a variable's data type, access level and value, the configured
/// point on it; a node the server does not have is refused in words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_communication_test_browses_the_address_space() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = Server::start(port, &dir.path().join("server"), &[]);
    let pki = dir.path().join("pki");
    let e = Edge::start(
        dir,
        &format!("endpoint = \"opc.tcp://127.0.0.1:{port}/enos/test\"\nsecurity_policy = \"None\"\npki_dir = \"{}\"", pki.display()),
    )
    .await;
    e.at_cloud("P", "P's first value", |p| p.value == serde_json::json!(231.5)).await;
    let browse = |req: Option<&str>| {
        let mut args = vec!["--json", "comm-test", "plc"];
        args.extend(req);
        let (ok, out, err) = run_tool("enosctl", &args, &e.bus.address);
        let a: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}\n{err}"));
        (ok, a)
    };

    let (ok, a) = browse(None);
    assert!(ok, "{a}");
    assert_eq!((a["kind"].as_str(), a["node"].as_str()), (Some("opcua-browse"), Some("i=85")), "{a}");
    let plant = a["nodes"].as_array().unwrap().iter().find(|n| n["browse_name"] == "2:Plant").unwrap_or_else(|| panic!("{a}"));
    assert_eq!((plant["node_id"].as_str(), plant["node_class"].as_str()), (Some("ns=2;s=Plant"), Some("Object")), "{plant}");
    assert_eq!(plant["nsu_id"], "nsu=urn:enos:test;s=Plant");

    let (ok, a) = browse(Some(r#"{"node": "nsu=urn:enos:test;s=Plant"}"#));
    assert!(ok, "{a}");
    let nodes = a["nodes"].as_array().unwrap();
    let row = |id: &str| nodes.iter().find(|n| n["node_id"] == id).unwrap_or_else(|| panic!("{id} not in {a}")).clone();
    let summary = |n: &serde_json::Value| {
        (n["node_class"].clone(), n["data_type"].clone(), n["access"].clone(), n["value"].clone(), n["point"].clone())
    };
    let j = |v: serde_json::Value| v;
    assert_eq!(summary(&row("ns=2;s=P")), (j("Variable".into()), j("Double".into()), j("read".into()), j(231.5.into()), j("P".into())));
    assert_eq!(summary(&row("ns=2;i=1001")), (j("Variable".into()), j("Int32".into()), j("read".into()), j(7.into()), j("count".into())));
    assert_eq!(row("ns=2;i=1001")["nsu_id"], "nsu=urn:enos:test;i=1001");
    let guid = row("ns=2;g=09087e75-8e5e-499b-954f-f2a9603db28a");
    assert_eq!((guid["data_type"].as_str(), guid["value"].as_f64()), (Some("Float"), Some(1.25)), "{guid}");
    let opaque = row("ns=2;b=AQID");
    assert_eq!(
        (opaque["data_type"].as_str(), opaque["value"].as_u64(), opaque["point"].as_str()),
        (Some("UInt16"), Some(3), Some("polled"))
    );
    let setpoint = row("ns=2;s=Setpoint");
    assert_eq!((setpoint["access"].as_str(), setpoint["writable"].as_bool()), (Some("read, write"), Some(true)), "{setpoint}");
    assert_eq!(row("ns=2;s=Locked")["writable"], false);

    // refused in words: a node the server does not have, a text that is no node id
    let (ok, a) = browse(Some(r#"{"node": "ns=2;s=Nowhere"}"#));
    assert!(!ok);
    assert_eq!(a["failure"], "refused", "{a}");
    assert!(a["message"].as_str().unwrap().contains("the server has no such node (BadNodeId"), "{a}");
    let (ok, out, err) = run_tool("enosctl", &["comm-test", "plc", r#"{"node": "ns=2;x=1"}"#], &e.bus.address);
    assert!(!ok);
    assert!(err.contains("node: \"ns=2;x=1\" is not a node id"), "{out}{err}");

    // the plain text table names each node, its type and value
    let (ok, out, err) = run_tool("enosctl", &["comm-test", "plc", r#"{"node": "ns=2;s=Plant"}"#], &e.bus.address);
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l.starts_with("ns=2;s=Setpoint") && l.contains("Double") && l.contains("read, write")), "{out}");
}
