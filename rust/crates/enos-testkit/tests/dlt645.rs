//! DL/T 645 end to end: two meters of the PyPI `dlt645` 3.2.0 library (peers/dlt645_peer.py)
//! behind one serial device server address, read by the real collector through the dlt645
//! driver; the values reach the cloud simulator through the real uplink, an abnormal reply is a
//! device exception in words.

use enos_testkit::cloud_sim::CloudSim;
use enos_testkit::harness::{run_tool, spawn_service, uplink_toml_devices, Bus, Mosquitto};
use enos_testkit::wait_for;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The peer, killed when dropped; its stdout lines after "ready" arrive on the channel.
struct Peer(Child, std::sync::mpsc::Receiver<String>);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the peer with `config` (JSON, see the script) and returns it with its TCP port, once
/// it said "ready".
fn peer(config: &str) -> (Peer, u16) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let venv = std::env::var_os("ENOS_VENV").map(PathBuf::from).unwrap_or_else(|| repo.join("build/venv"));
    let mut child = Command::new(venv.join("bin/python3"))
        .arg(repo.join("rust/crates/enos-testkit/peers/dlt645_peer.py"))
        .arg(config)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the venv's python3 (scripts/setup-host)");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let port = line.strip_prefix("ready ").and_then(|p| p.trim().parse().ok());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || out.lines().map_while(Result::ok).try_for_each(|l| tx.send(l)));
    let p = Peer(child, rx);
    (p, port.unwrap_or_else(|| panic!("the peer said {line:?} instead of ready PORT")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meter_values_reach_the_cloud_and_an_abnormal_reply_is_a_device_exception() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let broker = Mosquitto::start(dir.path());
    let cloud = CloudSim::start(broker.port, HashMap::from([("gw01".to_string(), "s".to_string())])).await;
    let (peer, port) = peer(
        r#"{"tcp": true, "meters": [
            {"address": "123456789012", "values": {"02010100": 231.4, "02020100": -5.123, "00010000": 12345.67, "04000102": "153012"}},
            {"address": "000000000042", "low_first": true, "values": {"02800002": 50.01}}]}"#,
    );
    std::fs::write(
        dir.path().join("collector.toml"),
        format!(
            r#"[push]
interval_ms = 100

[[device]]
id = "m1"
protocol = "dlt645"
address = "127.0.0.1:{port}"
meter = "123456789012"
address_order = "as-written"
timeout_ms = 1000
time_sync_interval_s = 1
poll_groups = [{{ name = "fast", interval_ms = 300 }}]

[[device.point]]
name = "Ua"
di = "02010100"
group = "fast"

[[device.point]]
name = "Ia"
di = "02020100"
group = "fast"

[[device.point]]
name = "E"
di = "00010000"
scale = 1000
unit = "Wh"
group = "fast"

[[device.point]]
name = "clock"
di = "04000102"
group = "fast"

[[device.point]]
name = "missing"
di = "02990100"
format = "XXX.X"
group = "fast"

[[device]]
id = "m2"
protocol = "dlt645"
address = "127.0.0.1:{port}"
meter = "000000000042"
timeout_ms = 1000
poll_groups = [{{ name = "fast", interval_ms = 300 }}]

[[device.point]]
name = "f"
di = "02800002"
group = "fast"
"#
        ),
    )
    .unwrap();
    let uplink = uplink_toml_devices(&cloud.uri(), &dir.path().join("cache"), &[("m1", "pkM", "m"), ("m2", "pkM", "m")]);
    std::fs::write(dir.path().join("uplink.toml"), uplink).unwrap();
    let log = dir.path().join("services.log");
    let _uplink = spawn_service("enos-uplink", &dir.path().join("uplink.toml"), &bus.address, &log);
    let _collector = spawn_service("enos-collector", &dir.path().join("collector.toml"), &bus.address, &log);

    let want = [("m1", "Ua"), ("m1", "Ia"), ("m1", "E"), ("m1", "clock"), ("m1", "missing"), ("m2", "f")];
    let got = wait_for(60, "every meter point at the cloud", || {
        let got: HashMap<(String, String), (serde_json::Value, u64)> = cloud.with(|r| {
            r.points.iter().filter_map(|p| Some(((p.device_key.clone()?, p.point.clone()), (p.value.clone(), p.time)))).collect()
        });
        want.iter().all(|(d, p)| got.contains_key(&(d.to_string(), p.to_string()))).then_some(got)
    })
    .await;
    let v = |d: &str, p: &str| got[&(d.to_string(), p.to_string())].clone();
    assert_eq!(v("m1", "Ua").0, serde_json::json!(231.4));
    assert_eq!(v("m1", "Ia").0, serde_json::json!(-5.123));
    assert_eq!(v("m1", "E").0.as_f64(), Some(12_345_670.0), "kWh scaled to Wh");
    assert_eq!(v("m1", "clock").0, serde_json::json!("15:30:12"));
    assert_eq!(v("m2", "f").0, serde_json::json!(50.01), "the second meter, its address low byte first");
    // The abnormal reply: the quality form, device exception (quality 1 at the cloud).
    assert_eq!(v("m1", "missing").0, serde_json::json!({"value": null, "quality": 1}));
    // Timestamps: the acquisition time, within the last minute.
    let now = enos_batch::now_ms();
    for (d, p) in want {
        let ts = v(d, p).1;
        assert!(ts <= now && ts + 60_000 > now, "{d}.{p}: ts {ts}, now {now}");
    }

    // Broadcast time sync: the peer's meters got the gateway's local time (YY first: as written).
    let synced =
        wait_for(30, "a broadcast time sync at the peer", || peer.1.try_iter().find(|l| l.starts_with("time-sync 123456789012 "))).await;
    let (date, time) = {
        let out = Command::new("date").arg("+%Y-%m-%dT%H:%M:%S").output().unwrap();
        let now = String::from_utf8(out.stdout).unwrap();
        (now[..10].to_string(), now[11..19].to_string())
    };
    let stamp = synced.rsplit(' ').next().unwrap();
    assert_eq!(&stamp[..10], date, "{synced}");
    let secs = |t: &str| t.split(':').map(|x| x.parse::<i64>().unwrap()).fold(0, |a, x| a * 60 + x);
    assert!((secs(&time) - secs(&stamp[11..])).abs() < 5, "{synced} at {time}");

    // enosctl read: the exception in words; the meters online.
    let (ok, out, err) = run_tool("enosctl", &["--json", "read", "m1", "missing"], &bus.address);
    assert!(ok, "{err}");
    let r: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(r[0]["quality"], "device-exception", "{out}");
    assert_eq!(r[0]["error"], "meter 123456789012: reading 02990100: device exception 0x02 (no requested data)", "{out}");
    let (ok, out, _) = run_tool("enosctl", &["--json", "devices"], &bus.address);
    assert!(ok);
    let devices: serde_json::Value = serde_json::from_str(&out).unwrap();
    for d in devices.as_array().unwrap() {
        assert_eq!(d["state"], "online", "{d}");
    }
}

/// The collector's communication test over D-Bus (`ReadRaw`, as the web center calls it).
async fn comm_test(conn: &zbus::Connection, device: &str, request: serde_json::Value) -> serde_json::Value {
    let p = enos_bus::CollectorProxy::new(conn).await.unwrap();
    serde_json::from_str(&p.read_raw(device, &request.to_string()).await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_communication_test_shows_frames_and_decoded_values_and_an_abnormal_reply_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let (_peer, port) =
        peer(r#"{"tcp": true, "meters": [{"address": "123456789012", "values": {"02010100": 231.4, "00010000": 12345.67}}]}"#);
    std::fs::write(
        dir.path().join("collector.toml"),
        format!(
            r#"[[device]]
id = "m1"
protocol = "dlt645"
address = "127.0.0.1:{port}"
meter = "123456789012"
address_order = "as-written"
timeout_ms = 1000
poll_groups = [{{ name = "slow", interval_ms = 60000 }}]

[[device.point]]
name = "Ua"
di = "02010100"
group = "slow"

[[device]]
id = "gone"
protocol = "dlt645"
address = "127.0.0.1:{port}"
meter = "000000000077"
timeout_ms = 200
retries = 0
offline_after = 1
poll_groups = [{{ name = "fast", interval_ms = 300 }}]

[[device.point]]
name = "Ua"
di = "02010100"
group = "fast"
"#
        ),
    )
    .unwrap();
    let log = dir.path().join("services.log");
    let _collector = spawn_service("enos-collector", &dir.path().join("collector.toml"), &bus.address, &log);
    let conn = zbus::connection::Builder::address(bus.address.as_str()).build().await.unwrap();
    let state = |id: &str| {
        let (ok, out, _) = run_tool("enosctl", &["--json", "devices"], &bus.address);
        let v: serde_json::Value = if ok { serde_json::from_str(&out).unwrap() } else { serde_json::Value::Null };
        v.as_array().and_then(|a| a.iter().find(|d| d["id"] == id)).map(|d| d["state"].as_str().unwrap_or("").to_string())
    };
    wait_for(30, "the unserved meter offline", || (state("gone").as_deref() == Some("offline")).then_some(())).await;

    let a =
        comm_test(&conn, "m1", serde_json::json!({"kind": "dlt645-identifiers", "identifiers": ["02-01-01-00", "00010000", "02990100"]}))
            .await;
    assert_eq!((a["kind"].as_str(), a["meter"].as_str()), (Some("dlt645-identifiers"), Some("123456789012")), "{a}");
    let reads = a["reads"].as_array().unwrap();
    let r = |di: &str| reads.iter().find(|r| r["di"] == di).unwrap_or_else(|| panic!("{di} missing in {a}"));
    assert_eq!((r("02010100")["value"].clone(), r("02010100")["text"].as_str()), (serde_json::json!(231.4), Some("231.4 V")), "{a}");
    assert_eq!(r("02010100")["name"], "voltage, phase A");
    // the request as sent: wake-up bytes, the address as written, read (11), length 4, the DI + 33
    let f = &r("02010100")["frames"][0];
    assert_eq!(f["request"], "FE FE FE FE 68 12 34 56 78 90 12 68 11 04 33 34 34 35 6B 16", "{a}");
    let resp = f["response"].as_str().unwrap();
    assert!(resp.starts_with("68 12 34 56 78 90 12 68 91 ") && resp.ends_with(" 16"), "the meter's answer (control 91): {resp}");
    assert_eq!(r("00010000")["text"], "12345.67 kWh");
    // an identifier the meter does not have: its abnormal reply (control D1), in words
    let x = r("02990100");
    assert_eq!((x["ok"].as_bool(), x["failure"].as_str()), (Some(false), Some("exception")), "{a}");
    assert_eq!(x["text"], "meter 123456789012: reading 02990100: device exception 0x02 (no requested data)");
    assert!(x["frames"][0]["response"].as_str().unwrap().starts_with("68 12 34 56 78 90 12 68 D1 01 35 "), "{a}");
    assert_eq!((a["ok"].as_bool(), a["message"].as_str()), (Some(false), Some("2 of 3 identifiers read")));

    // a meter that does not answer: the test says it is offline, and the request went out
    let a = comm_test(&conn, "gone", serde_json::json!({"kind": "dlt645-identifiers", "identifiers": ["02010100", "00010000"]})).await;
    assert_eq!((a["ok"].as_bool(), a["failure"].as_str()), (Some(false), Some("offline")), "{a}");
    assert!(
        a["message"].as_str().unwrap().starts_with("the meter is offline, and did not answer now either: meter 000000000077: no answer"),
        "{a}"
    );
    assert_eq!(a["reads"][0]["frames"][0]["response"], "", "{a}");
    assert_eq!(a["reads"][1]["text"], "not asked: the meter did not answer the read before", "{a}");
}
