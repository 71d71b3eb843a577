//! DNP3 end to end: a dnp3py outstation (peers/dnp3_outstation.py), the collector's DNP3 driver,
//! the uplink and the cloud simulator. The integrity poll's values, events in order with the
//! outstation's time and flags reach the cloud; writes become CROBs; a dropped link comes back.
//! On a serial line (a socat PTY pair) two outstations share the line, each by its link address.

use enos_testkit::cloud_sim::CloudSim;
use enos_testkit::harness::{pty_pair, run_tool, spawn_service, uplink_toml_one_device, Bus, Mosquitto};
use enos_testkit::wait_for;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const SPEC: &str = r#"{"address": 10, "master": 1, "bi": {"0": true}, "ai": {"5": 231}, "counter": {"2": 7}, "bo": [0, 1]}"#;

/// The dnp3py outstation, answering each stdin line on stdout.
struct Outstation {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Outstation {
    /// `at`: a TCP port, or a serial port's path; `spec` as the peer's JSON.
    fn start(at: &str, spec: &str) -> Outstation {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let python =
            std::env::var_os("ENOS_VENV").map_or(dir.join("../../../build/venv/bin/python3"), |v| PathBuf::from(v).join("bin/python3"));
        let mut child = Command::new(python)
            .arg(dir.join("peers/dnp3_outstation.py"))
            .arg(at)
            .arg(spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the dnp3py outstation");
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || out.lines().map_while(Result::ok).try_for_each(|l| tx.send(l)));
        let o = Outstation { child, stdin, lines };
        o.expect("ready");
        o
    }

    fn expect(&self, prefix: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(20)) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(_) => {}
                Err(e) => panic!("the outstation did not print {prefix:?}: {e}"),
            }
        }
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        assert_eq!(self.expect("ok ").trim(), format!("ok {line}"));
    }
}

impl Drop for Outstation {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_events_and_commands_reach_the_cloud_and_the_outstation() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let broker = Mosquitto::start(dir.path());
    let cloud = CloudSim::start(broker.port, HashMap::from([("gw01".to_string(), "s".to_string())])).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut outstation = Outstation::start(&port.to_string(), SPEC);
    std::fs::write(
        dir.path().join("collector.toml"),
        format!(
            "[push]\ninterval_ms = 100\n[[device]]\nid = \"rtu\"\nprotocol = \"dnp3\"\naddress = \"127.0.0.1:{port}\"\n\
             outstation_address = 10\nclass1_interval_ms = 200\nreconnect_min_ms = 200\n\
             [[device.point]]\nname = \"P\"\ntype = \"AI\"\nindex = 5\n\
             [[device.point]]\nname = \"breaker\"\ntype = \"BI\"\nindex = 0\n\
             [[device.point]]\nname = \"energy\"\ntype = \"CNT\"\nindex = 2\n\
             [[device.point]]\nname = \"switch\"\ntype = \"BO\"\nindex = 0\ncommand = \"latch\"\naccess = \"rw\"\n\
             [[device.point]]\nname = \"switch2\"\ntype = \"BO\"\nindex = 1\ncommand = \"latch\"\nselect_before_operate = true\naccess = \"rw\"\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("uplink.toml"), uplink_toml_one_device(&cloud.uri(), &dir.path().join("cache"), "rtu")).unwrap();
    let log = dir.path().join("services.log");
    let _uplink = spawn_service("enos-uplink", &dir.path().join("uplink.toml"), &bus.address, &log);
    let _collector = spawn_service("enos-collector", &dir.path().join("collector.toml"), &bus.address, &log);

    let series = |name: &'static str| {
        let cloud = &cloud;
        move || {
            cloud.with(|r| {
                r.points.iter().filter(|p| p.device_key.as_deref() == Some("rtu") && p.point == name).cloned().collect::<Vec<_>>()
            })
        }
    };
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    // the integrity poll's values
    let p = wait_for(30, "the integrity poll's value at the cloud", || series("P")().pop()).await;
    assert_eq!(p.value, serde_json::json!(231), "{}", logs());
    let e = wait_for(30, "the counter at the cloud", || series("energy")().pop()).await;
    assert_eq!(e.value, serde_json::json!(7));

    // events: two binary changes in order; a counter event with the outstation's time; an
    // analog over range: doubtful (6) with the flag overflow (16 << 8)
    outstation.send("bi 0 false");
    outstation.send("bi 0 true");
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64 - 61_234;
    outstation.send(&format!("counter 2 9 {at}"));
    outstation.send("ai 5 -40 OVER_RANGE");
    let b = wait_for(30, "both binary events at the cloud", || {
        let s: Vec<serde_json::Value> = series("breaker")().into_iter().map(|p| p.value).collect();
        (s.len() >= 3).then_some(s)
    })
    .await;
    assert_eq!(b[b.len() - 2..], [serde_json::json!(false), serde_json::json!(true)], "in order: {b:?}");
    let e =
        wait_for(30, "the counter event at the cloud", || series("energy")().into_iter().find(|p| p.value == serde_json::json!(9))).await;
    assert_eq!(e.time, at, "the outstation's time is the sample's time");
    let p = wait_for(30, "the over-range value at the cloud", || series("P")().into_iter().find(|p| p.value.is_object())).await;
    assert_eq!(p.value["quality"], serde_json::json!(6 + (16 << 8)), "{}", p.value);

    // a read answers the latest values with quality and flags in words
    let (ok, out, err) = run_tool("enosctl", &["--json", "read", "rtu"], &bus.address);
    assert!(ok, "{err}");
    let readings: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let by_name = |n: &str| readings.iter().find(|r| r["point"] == n).cloned().unwrap_or_else(|| panic!("{n} missing in {out}"));
    assert_eq!(
        (by_name("P")["quality"].clone(), by_name("P")["flags"].clone()),
        (serde_json::json!("doubtful"), serde_json::json!(["overflow"]))
    );
    assert_eq!(by_name("energy")["ts_ms"], serde_json::json!(at));

    // writes: a direct operate; a select-before-operate the outstation refuses, said in words
    let (ok, out, err) = run_tool("enosctl", &["write", "rtu", "switch", "true"], &bus.address);
    assert!(ok, "{out}{err}");
    assert_eq!(outstation.expect("command"), "command crob 0 direct 3");
    outstation.send("refuse 1 7");
    let (ok, _, err) = run_tool("enosctl", &["write", "rtu", "switch2", "false"], &bus.address);
    assert!(!ok && err.contains("the outstation refused the select: the point is under local control (status 7)"), "{err}");

    // the link drops: the driver reconnects and values flow again
    outstation.send("drop");
    outstation.send("ai 5 77");
    wait_for(30, "a value after the reconnect", || series("P")().into_iter().find(|p| p.value == serde_json::json!(77))).await;
    assert!(logs().contains("the outstation closed the connection"), "{}", logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_outstations_on_one_serial_line_are_polled_and_commanded_by_link_address() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let (_socat, tty_collector, tty_outstations) = pty_pair(dir.path());
    let spec = r#"{"outstations": [{"address": 10, "ai": {"5": 231}}, {"address": 11, "ai": {"5": 400}, "bo": [3]}]}"#;
    let mut outstations = Outstation::start(&tty_outstations, spec);
    let device = |id: &str, address: u16, extra: &str| {
        format!(
            "[[device]]\nid = \"{id}\"\nprotocol = \"dnp3\"\nserial = {{ port = \"{}\", baud = 19200 }}\n\
             outstation_address = {address}\nclass1_interval_ms = 200\nreconnect_min_ms = 200\nresponse_timeout_ms = 1000\n\
             [[device.point]]\nname = \"P\"\ntype = \"AI\"\nindex = 5\n{extra}",
            tty_collector
        )
    };
    let cfg = device("rtu10", 10, "")
        + &device("rtu11", 11, "[[device.point]]\nname = \"switch\"\ntype = \"BO\"\nindex = 3\ncommand = \"latch\"\naccess = \"rw\"\n");
    std::fs::write(dir.path().join("collector.toml"), cfg).unwrap();
    let log = dir.path().join("services.log");
    let _collector = spawn_service("enos-collector", &dir.path().join("collector.toml"), &bus.address, &log);

    let value = |device: &str| {
        let (ok, out, _) = run_tool("enosctl", &["--json", "read", device, "P"], &bus.address);
        let r: Vec<serde_json::Value> = if ok { serde_json::from_str(&out).unwrap() } else { Vec::new() };
        r.first().map(|r| r["value"].clone())
    };
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    // each device has its own outstation's integrity poll values
    let v = wait_for(30, "outstation 10's value", || value("rtu10").filter(|v| !v.is_null())).await;
    assert_eq!(v, serde_json::json!(231), "{}", logs());
    let v = wait_for(30, "outstation 11's value", || value("rtu11").filter(|v| !v.is_null())).await;
    assert_eq!(v, serde_json::json!(400), "{}", logs());
    // an event of one outstation reaches its device only
    outstations.send("@11 ai 5 401");
    wait_for(30, "outstation 11's event", || value("rtu11").filter(|v| *v == serde_json::json!(401))).await;
    assert_eq!(value("rtu10"), Some(serde_json::json!(231)));
    // a write goes to its device's outstation on the line
    let (ok, out, err) = run_tool("enosctl", &["write", "rtu11", "switch", "true"], &bus.address);
    assert!(ok, "{out}{err}");
    assert_eq!(outstations.expect("command"), "command crob 3 direct 3");

    // the communication test: a poll now, every object with its flags in words (JSON for tools)
    outstations.send("@11 ai 5 402 OVER_RANGE");
    let (ok, out, err) = run_tool("enosctl", &["--json", "comm-test", "rtu11"], &bus.address);
    assert!(ok, "{out}{err}");
    let a: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((a["kind"].as_str(), a["outstation"].as_u64()), (Some("dnp3-poll"), Some(11)), "{a}");
    let objects = a["objects"].as_array().unwrap();
    let ai = objects.iter().find(|o| o["type"] == "AI" && o["event"] == false).unwrap_or_else(|| panic!("no static AI: {a}"));
    assert_eq!(
        (ai["index"].as_u64(), ai["value"].as_f64(), ai["flags"].clone(), ai["point"].as_str()),
        (Some(5), Some(402.0), serde_json::json!(["over range"]), Some("P")),
        "{a}"
    );
    assert!(objects.iter().any(|o| o["type"] == "BO" && o["index"] == 3), "the binary output's status too: {a}");
    // and as a table for people; an event poll of an outstation with nothing new
    let (ok, out, err) = run_tool("enosctl", &["comm-test", "rtu10"], &bus.address);
    assert!(ok, "{out}{err}");
    assert!(out.starts_with("integrity poll of outstation 10: "), "{out}");
    assert!(out.lines().any(|l| l.starts_with("AI") && l.contains(" 231 ") && l.ends_with(" P")), "{out}");
    let (ok, out, err) = run_tool("enosctl", &["comm-test", "rtu10", r#"{"poll": "events"}"#], &bus.address);
    assert!(ok && out.starts_with("event poll of outstation 10: 0 objects"), "{out}{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_buffer_overflow_is_reported_and_answered_with_an_integrity_poll() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let broker = Mosquitto::start(dir.path());
    let cloud = CloudSim::start(broker.port, HashMap::from([("gw01".to_string(), "s".to_string())])).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // room for 4 events per class
    let mut outstation = Outstation::start(&port.to_string(), r#"{"address": 10, "master": 1, "bi": {"0": true}, "events": 4}"#);
    // no periodic integrity poll (only after the connect), class 1 polled every 300 ms
    std::fs::write(
        dir.path().join("collector.toml"),
        format!(
            "[push]\ninterval_ms = 100\n[[device]]\nid = \"rtu\"\nprotocol = \"dnp3\"\naddress = \"127.0.0.1:{port}\"\n\
             outstation_address = 10\nintegrity_interval_s = 0\nclass1_interval_ms = 300\nreconnect_min_ms = 200\n\
             [[device.point]]\nname = \"breaker\"\ntype = \"BI\"\nindex = 0\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("uplink.toml"), uplink_toml_one_device(&cloud.uri(), &dir.path().join("cache"), "rtu")).unwrap();
    let log = dir.path().join("services.log");
    let _uplink = spawn_service("enos-uplink", &dir.path().join("uplink.toml"), &bus.address, &log);
    let _collector = spawn_service("enos-collector", &dir.path().join("collector.toml"), &bus.address, &log);
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    let breaker = || cloud.with(|r| r.points.iter().filter(|p| p.device_key.as_deref() == Some("rtu") && p.point == "breaker").count());
    let overflow = "DNP3 outstation 10: the outstation's event buffer overflowed: events were lost; an integrity poll follows";

    // the integrity poll after the connect, its value at the cloud
    outstation.expect("integrity poll");
    wait_for(30, "the integrity poll's value at the cloud", || (breaker() > 0).then_some(())).await;
    let before = breaker();

    // 20 changes in one go, between two event polls: the buffer keeps the last 4 and says it
    // overflowed (IIN2.3) in its next answer; the master reports it and polls class 0 at once
    outstation.send("bi-burst 0 20");
    assert_eq!(outstation.expect("integrity poll"), "integrity poll", "the master answers the overflow with an integrity poll");
    wait_for(30, "the overflow reported", || logs().contains(overflow).then_some(())).await;
    // what reached the cloud: the 4 events left (the others were lost at the outstation) and the
    // integrity poll's value, the last state, true
    let got = wait_for(30, "the events and the integrity value at the cloud", || {
        let s: Vec<serde_json::Value> = cloud.with(|r| {
            r.points.iter().filter(|p| p.device_key.as_deref() == Some("rtu") && p.point == "breaker").map(|p| p.value.clone()).collect()
        });
        (s.len() >= before + 5).then_some(s)
    })
    .await;
    assert!(got.len() < before + 20, "more than the buffer held reached the cloud: {got:?}");
    assert_eq!(got.last(), Some(&serde_json::json!(true)), "{got:?}");

    // dnp3py never clears IIN2.3, so every later answer still carries it: said once, one
    // integrity poll, while later events go on as usual
    outstation.send("bi 0 false");
    wait_for(30, "a later event at the cloud", || {
        cloud
            .with(|r| r.points.iter().rev().find(|p| p.point == "breaker").map(|p| p.value.clone()))
            .filter(|v| v == &serde_json::json!(false))
    })
    .await;
    assert_eq!(logs().matches(overflow).count(), 1, "{}", logs());
}
