//! IEC 104 end to end: a c104 station (peers/iec104_station.py), the collector's IEC 104 driver,
//! the uplink and the cloud simulator. Values of the interrogation and a spontaneous change with
//! the station's time tag reach the cloud; writes become select-before-operate commands.

use enos_testkit::cloud_sim::CloudSim;
use enos_testkit::harness::{run_tool, spawn_service, uplink_toml_one_device, Bus, Mosquitto};
use enos_testkit::wait_for;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const SPEC: &str = r#"{"ca": 1, "points": [
  {"ioa": 7, "type": "M_ME_NC_1", "value": 231.5},
  {"ioa": 30, "type": "M_SP_TB_1", "value": false}],
 "commands": [{"ioa": 100, "type": "C_SC_NA_1", "sbo": true}, {"ioa": 101, "type": "C_SC_NA_1", "sbo": true}]}"#;

/// The c104 station, answering each stdin line on stdout.
struct Station {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Station {
    fn start(port: u16) -> Station {
        Station::start_with(port, SPEC)
    }

    fn start_with(port: u16, spec: &str) -> Station {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..");
        let python = std::env::var_os("ENOS_VENV").map_or(repo.join("build/venv/bin/python3"), |v| PathBuf::from(v).join("bin/python3"));
        let mut child = Command::new(python)
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers/iec104_station.py"))
            .arg(port.to_string())
            .arg(spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the c104 station");
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || out.lines().map_while(Result::ok).try_for_each(|l| tx.send(l)));
        let s = Station { child, stdin, lines };
        s.expect("ready");
        s
    }

    fn expect(&self, prefix: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(20)) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(_) => {}
                Err(e) => panic!("the station did not print {prefix:?}: {e}"),
            }
        }
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        assert_eq!(self.expect("ok ").trim(), format!("ok {line}"));
    }
}

impl Drop for Station {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_and_time_tags_reach_the_cloud_and_writes_become_commands() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let broker = Mosquitto::start(dir.path());
    let cloud = CloudSim::start(broker.port, HashMap::from([("gw01".to_string(), "s".to_string())])).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut station = Station::start(port);
    std::fs::write(
        dir.path().join("collector.toml"),
        format!(
            "[push]\ninterval_ms = 100\n[[device]]\nid = \"rtu\"\nprotocol = \"iec104\"\naddress = \"127.0.0.1:{port}\"\n\
             reconnect_min_ms = 200\n\
             [[device.point]]\nname = \"P\"\nioa = 7\ntype = \"M_ME_NC_1\"\n\
             [[device.point]]\nname = \"breaker\"\nioa = 30\ntype = \"M_SP_TB_1\"\n\
             [[device.point]]\nname = \"switch\"\nioa = 100\ntype = \"M_SP\"\ncommand = \"C_SC\"\nselect_before_operate = true\naccess = \"rw\"\n\
             [[device.point]]\nname = \"switch2\"\nioa = 101\ntype = \"M_SP\"\ncommand = \"C_SC\"\nselect_before_operate = true\naccess = \"rw\"\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("uplink.toml"), uplink_toml_one_device(&cloud.uri(), &dir.path().join("cache"), "rtu")).unwrap();
    let log = dir.path().join("services.log");

    let _uplink = spawn_service("enos-uplink", &dir.path().join("uplink.toml"), &bus.address, &log);
    let _collector = spawn_service("enos-collector", &dir.path().join("collector.toml"), &bus.address, &log);

    let at_cloud = |name: &'static str| {
        let cloud = &cloud;
        move || cloud.with(|r| r.points.iter().rev().find(|p| p.device_key.as_deref() == Some("rtu") && p.point == name).cloned())
    };
    let p = wait_for(30, "the interrogated value at the cloud", at_cloud("P")).await;
    assert_eq!(p.value, serde_json::json!(231.5), "{}", std::fs::read_to_string(&log).unwrap_or_default());

    // a recent instant (the cache drops samples older than its max age), not now
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64 - 61_234;
    station.send(&format!("set 30 true - {at}"));
    station.send("spontaneous 30");
    let changed = |v: &serde_json::Value| *v == serde_json::json!(true) || *v == serde_json::json!(1);
    let b = wait_for(30, "the spontaneous change at the cloud", || at_cloud("breaker")().filter(|p| changed(&p.value))).await;
    assert_eq!(b.time, at, "the station's time tag is the sample's time");

    // a read answers the latest values the station sent, with their qualities
    let (ok, out, err) = run_tool("enosctl", &["--json", "read", "rtu"], &bus.address);
    assert!(ok, "{err}");
    let readings: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let by_name = |n: &str| readings.iter().find(|r| r["point"] == n).cloned().unwrap_or_else(|| panic!("{n} missing in {out}"));
    assert_eq!((by_name("P")["value"].clone(), by_name("P")["quality"].clone()), (serde_json::json!(231.5), serde_json::json!("good")));
    assert_eq!(by_name("breaker")["ts_ms"], serde_json::json!(at));
    assert_eq!(by_name("switch")["error"], "the station has not sent this point yet");

    // a write is a select-before-operate command; a refusal is said as the station's
    let (ok, out, err) = run_tool("enosctl", &["write", "rtu", "switch", "true"], &bus.address);
    assert!(ok, "{out}{err}");
    assert_eq!(station.expect("command 100"), "command 100 execute True");
    station.send("refuse 101");
    let (ok, _, err) = run_tool("enosctl", &["write", "rtu", "switch2", "true"], &bus.address);
    assert!(!ok && err.contains("the station refused the select (negative confirmation)"), "{err}");
}

/// The collector's communication test over D-Bus (`ReadRaw`, as the web center calls it).
async fn comm_test(conn: &zbus::Connection, device: &str, request: serde_json::Value) -> Result<serde_json::Value, String> {
    let p = enos_bus::CollectorProxy::new(conn).await.unwrap();
    p.read_raw(device, &request.to_string()).await.map(|a| serde_json::from_str(&a).unwrap()).map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_communication_test_interrogates_the_station_and_says_when_it_is_offline() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut station = Station::start_with(
        port,
        r#"{"ca": 1, "points": [
          {"ioa": 7, "type": "M_ME_NC_1", "value": 231.5},
          {"ioa": 8, "type": "M_ME_NC_1", "value": 1.25, "quality": ["Invalid", "NonTopical"]},
          {"ioa": 30, "type": "M_SP_TB_1", "value": true},
          {"ioa": 40, "type": "M_DP_NA_1", "value": 2}]}"#,
    );
    // a slow periodic interrogation: the test's own is the one answered
    std::fs::write(
        dir.path().join("collector.toml"),
        format!(
            "[[device]]\nid = \"rtu\"\nprotocol = \"iec104\"\naddress = \"127.0.0.1:{port}\"\nreconnect_min_ms = 200\n\
             interrogation_interval_s = 3600\n\
             [[device.point]]\nname = \"P\"\nioa = 7\ntype = \"M_ME_NC_1\"\nunit = \"kW\"\n"
        ),
    )
    .unwrap();
    let log = dir.path().join("services.log");
    let _collector = spawn_service("enos-collector", &dir.path().join("collector.toml"), &bus.address, &log);
    let conn = zbus::connection::Builder::address(bus.address.as_str()).build().await.unwrap();
    let online = || {
        let (ok, out, _) = run_tool("enosctl", &["--json", "devices"], &bus.address);
        (ok && out.contains("\"online\"")).then_some(())
    };
    wait_for(30, "the station online", online).await;
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64 - 61_234;
    station.send(&format!("set 30 true - {at}"));

    let a = comm_test(&conn, "rtu", serde_json::json!({"kind": "iec104-interrogation"})).await.unwrap();
    assert_eq!((a["kind"].as_str(), a["ok"].as_bool()), (Some("iec104-interrogation"), Some(true)), "{a}");
    assert_eq!(a["ca"], 1);
    let objects = a["objects"].as_array().unwrap();
    let ioas: Vec<u64> = objects.iter().map(|o| o["ioa"].as_u64().unwrap()).collect();
    assert_eq!(ioas, [7, 8, 30, 40], "every object of the station, in address order: {a}");
    let o = |ioa: u64| objects.iter().find(|o| o["ioa"] == ioa).unwrap();
    assert_eq!(o(7)["type"], "M_ME_NC_1");
    assert_eq!(o(7)["type_words"], "measured value, short float");
    assert_eq!((o(7)["value"].clone(), o(7)["point"].clone()), (serde_json::json!(231.5), serde_json::json!("P")));
    assert_eq!(o(7)["flags"], serde_json::json!([]));
    assert_eq!(o(8)["flags"], serde_json::json!(["invalid", "not topical"]), "{a}");
    assert_eq!(o(8)["point"], serde_json::Value::Null, "no point is configured at IOA 8");
    assert_eq!((o(30)["text"].as_str(), o(30)["time_ms"].as_u64()), (Some("on"), Some(at)), "the time tag as the station sent it: {a}");
    assert_eq!(o(30)["type_words"], "single point, with time tag");
    assert_eq!((o(40)["value"].as_str(), o(40)["type_words"].as_str()), (Some("on"), Some("double point")));
    assert!(a["message"].as_str().unwrap().starts_with("4 objects from common address 1"), "{a}");

    // one range of addresses
    let a = comm_test(&conn, "rtu", serde_json::json!({"kind": "iec104-interrogation", "ioa_from": 8, "ioa_to": 30})).await.unwrap();
    let ioas: Vec<u64> = a["objects"].as_array().unwrap().iter().map(|o| o["ioa"].as_u64().unwrap()).collect();
    assert_eq!(ioas, [8, 30], "{a}");

    // the same from a shell: enosctl comm-test, the request's kind from the device's protocol
    let (ok, out, err) = run_tool("enosctl", &["comm-test", "rtu", r#"{"ioa_from": 7, "ioa_to": 8}"#], &bus.address);
    assert!(ok, "{out}{err}");
    assert!(out.starts_with("2 objects from common address 1"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("8 ") && l.contains("M_ME_NC_1") && l.contains("invalid, not topical")), "{out}");

    // another protocol's test is refused in words
    let e = comm_test(&conn, "rtu", serde_json::json!({"kind": "dlt645-identifiers", "identifiers": ["02010100"]})).await.unwrap_err();
    assert!(e.ends_with("device \"rtu\" (iec104): its communication test is iec104-interrogation, not dlt645-identifiers"), "{e}");
    assert!(!e.contains("org.enos"), "no D-Bus error name in {e}");

    // the station gone: the test says the device is offline, at once
    drop(station);
    wait_for(30, "the station offline", || {
        let (ok, out, _) = run_tool("enosctl", &["--json", "devices"], &bus.address);
        (ok && out.contains("\"offline\"")).then_some(())
    })
    .await;
    let a = comm_test(&conn, "rtu", serde_json::json!({"kind": "iec104-interrogation"})).await.unwrap();
    assert_eq!((a["ok"].as_bool(), a["failure"].as_str()), (Some(false), Some("offline")), "{a}");
    assert!(a["message"].as_str().unwrap().starts_with("device \"rtu\" is offline: the station is not connected"), "{a}");
    let (ok, out, _) = run_tool("enosctl", &["comm-test", "rtu"], &bus.address);
    assert!(!ok && out.contains("is offline") && out.contains("the test failed"), "a failed test exits 1: {out}");
}
