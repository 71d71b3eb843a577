//! Modbus RTU on a serial line (a socat PTY pair, as tokio-modbus tests it), RTU over TCP, and
//! several unit ids on one line, read through the real collector over a private bus.

use enos_testkit::harness::{pty_pair, run_tool, spawn_service, Bus};
use enos_testkit::modbus_sim::{serve_rtu_over_tcp, serve_rtu_serial, MultiDrop, SimDevice};
use enos_testkit::wait_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtu_serial_multi_drop_and_rtu_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let (_socat, tty_collector, tty_devices) = pty_pair(dir.path());
    let (d1, d2, d3) = (SimDevice::new(1), SimDevice::new(2), SimDevice::new(7));
    d1.state.lock().unwrap().holding.insert(0, 1111);
    d2.state.lock().unwrap().holding.insert(0, 2222);
    d3.state.lock().unwrap().input.extend([(5, 0x4142), (6, 0x4300)]);
    d3.state.lock().unwrap().multiple_only = true; // a device that knows FC15/FC16 only
    let _line = serve_rtu_serial(&tty_devices, MultiDrop(vec![d1.clone(), d2.clone()])).unwrap();
    let (rtu_tcp, _t) = serve_rtu_over_tcp(MultiDrop(vec![d3.clone()])).await;
    let cfg = format!(
        r#"
[[device]]
id = "meter1"
protocol = "modbus-rtu"
serial = {{ port = "{tty_collector}", baud = 19200 }}
unit_id = 1
timeout_ms = 500
[[device.point]]
name = "v"
area = "holding"
address = 0
type = "u16"
access = "rw"

[[device]]
id = "meter2"
protocol = "modbus-rtu"
serial = {{ port = "{tty_collector}", baud = 19200 }}
unit_id = 2
timeout_ms = 500
[[device.point]]
name = "v"
area = "holding"
address = 0
type = "u16"

[[device]]
id = "ghost"
protocol = "modbus-rtu"
serial = {{ port = "{tty_collector}", baud = 19200 }}
unit_id = 9
timeout_ms = 200
retries = 0
[[device.point]]
name = "v"
area = "holding"
address = 0
type = "u16"

[[device]]
id = "converter"
protocol = "modbus-rtu-over-tcp"
address = "{rtu_tcp}"
unit_id = 7
multiple_writes_only = true
[[device.point]]
name = "tag"
area = "input"
address = 5
type = "string"
length = 2
[[device.point]]
name = "sp"
area = "holding"
address = 8
type = "u16"
access = "rw"
[[device.point]]
name = "relay"
area = "coil"
address = 3
type = "bool"
access = "rw"
"#
    );
    std::fs::write(dir.path().join("collector.toml"), cfg).unwrap();
    let _c = spawn_service("enos-collector", &dir.path().join("collector.toml"), &bus.address, &dir.path().join("log"));
    let read = |dev: &str| run_tool("enosctl", &["read", dev], &bus.address);
    let (_, out, _) = wait_for(20, "meter1 on the serial line", || {
        let r = read("meter1");
        r.1.contains("1111").then_some(r)
    })
    .await;
    assert!(out.contains(" good"), "{out}");
    let (_, out, _) = read("meter2");
    assert!(out.contains("2222") && out.contains(" good"), "two unit ids share one line: {out}");
    let (_, out, _) = read("converter");
    assert!(out.contains("\"ABC\""), "RTU over TCP: {out}");
    let (_, out, _) = read("ghost");
    assert!(out.contains("comm-failure") && out.contains("no answer (timeout)"), "a wrong unit id is a timeout in plain words: {out}");
    let (ok, out, err) = run_tool("enosctl", &["write", "meter1", "v", "4321"], &bus.address);
    assert!(ok, "{out}{err}");
    assert_eq!(d1.state.lock().unwrap().writes, vec![(0, vec![4321])]);
    for (p, v) in [("sp", "5"), ("relay", "true")] {
        let (ok, out, err) = run_tool("enosctl", &["write", "converter", p, v], &bus.address);
        assert!(ok, "FC15/FC16 for a single value: {out}{err}");
    }
    assert_eq!(d3.state.lock().unwrap().writes, vec![(8, vec![5]), (3, vec![1])]);
    wait_for(20, "the device with the wrong unit id marked offline", || {
        let (_, out, _) = run_tool("enosctl", &["devices"], &bus.address);
        out.lines().any(|l| l.starts_with("ghost") && l.contains("offline")).then_some(())
    })
    .await;
}

/// The JSON device documents of `enosctl devices --json`, by id.
fn devices(bus: &str) -> std::collections::HashMap<String, serde_json::Value> {
    let (_, out, _) = run_tool("enosctl", &["devices", "--json"], bus);
    let v: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_default();
    v.into_iter().map(|d| (d["id"].as_str().unwrap_or_default().to_string(), d)).collect()
}

/// The values `enosctl read --json DEVICE POINT` got (null when the read failed).
fn read_value(bus: &str, dev: &str, point: &str) -> Option<serde_json::Value> {
    let (_, out, _) = run_tool("enosctl", &["read", "--json", dev, point], bus);
    let v: Vec<serde_json::Value> = serde_json::from_str(&out).ok()?;
    v.first().map(|r| r["value"].clone())
}

/// A device on an RS-485 line that answers one block after the master's timeout (issue 10.1):
/// its late answer arrives while the master waits for the next request's answer. It must be
/// discarded and counted, never decoded as that answer, and the line must keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_answer_on_a_serial_line_is_discarded_and_the_line_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let (_socat, tty_collector, tty_devices) = pty_pair(dir.path());
    let (slow, meter) = (SimDevice::new(3), SimDevice::new(2));
    slow.state.lock().unwrap().holding.extend((0..10).map(|i| (i, 1000 + i)));
    slow.state.lock().unwrap().holding.insert(100, 4242);
    slow.state.lock().unwrap().late = Some((0, 120)); // the 10-register block: always after the timeout
    meter.state.lock().unwrap().holding.insert(0, 2222);
    let _line = serve_rtu_serial(&tty_devices, MultiDrop(vec![slow.clone(), meter.clone()])).unwrap();
    let cfg = format!(
        r#"
[[device]]
id = "slow"
protocol = "modbus-rtu"
serial = {{ port = "{tty_collector}", baud = 19200 }}
unit_id = 3
timeout_ms = 40
retries = 0
poll_groups = [{{ name = "a", interval_ms = 150 }}, {{ name = "b", interval_ms = 50 }}]
[[device.point]]
name = "block"
area = "holding"
address = 0
type = "string"
length = 10
group = "a"
[[device.point]]
name = "b"
area = "holding"
address = 100
type = "u16"
group = "b"

[[device]]
id = "meter"
protocol = "modbus-rtu"
serial = {{ port = "{tty_collector}", baud = 19200 }}
unit_id = 2
timeout_ms = 500
poll_groups = [{{ name = "default", interval_ms = 50 }}]
[[device.point]]
name = "v"
area = "holding"
address = 0
type = "u16"
"#
    );
    std::fs::write(dir.path().join("collector.toml"), cfg).unwrap();
    let _c = spawn_service("enos-collector", &dir.path().join("collector.toml"), &bus.address, &dir.path().join("log"));
    wait_for(20, "the collector answering", || read_value(&bus.address, "meter", "v")).await;
    // Until late answers have been discarded several times, every value read is the right one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (mut good_b, mut good_meter) = (0, 0);
    loop {
        match read_value(&bus.address, "slow", "b") {
            Some(serde_json::Value::Null) | None => {}
            Some(v) => {
                assert_eq!(v, serde_json::json!(4242), "slow.b decoded from another request's answer");
                good_b += 1;
            }
        }
        match read_value(&bus.address, "meter", "v") {
            Some(serde_json::Value::Null) | None => {}
            Some(v) => {
                assert_eq!(v, serde_json::json!(2222), "meter.v decoded from another request's answer");
                good_meter += 1;
            }
        }
        let devs = devices(&bus.address);
        for d in devs.values() {
            let err = d["last_error"].as_str().unwrap_or_default();
            assert!(!err.contains("driver stopped"), "the line's worker ended: {d}");
        }
        let discarded = devs.get("slow").and_then(|d| d["discarded_answers"].as_u64()).unwrap_or(0)
            + devs.get("meter").and_then(|d| d["discarded_answers"].as_u64()).unwrap_or(0);
        if discarded >= 3 && good_b >= 3 && good_meter >= 3 {
            assert_eq!(devs["meter"]["state"], "online", "{}", devs["meter"]);
            // every late answer was first a request without an answer in time, and is counted so
            let unanswered = devs["slow"]["requests_unanswered"].as_u64().unwrap_or(0);
            assert!(unanswered >= 3, "the slow device's timed-out requests are counted: {}", devs["slow"]);
            assert_eq!(devs["meter"]["requests_unanswered"].as_u64(), Some(0), "{}", devs["meter"]);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no progress: {discarded} answers discarded, {good_b} good reads of slow.b, {good_meter} of meter.v; {devs:?}"
        );
    }
}

/// Devices that answer, but with exceptions (issue 10.5 and 10.6): one refusing everything with
/// 0B, one whose register map has a hole inside a coalesced block (02), one that takes at most 4
/// registers a read (03), and one whose point table marks the hole (`new_block`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusing_devices_are_told_apart_and_refused_blocks_are_split() {
    use enos_testkit::modbus_sim::SimServer;
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let (refuser, holey, small, marked) =
        (SimServer::start(1).await, SimServer::start(1).await, SimServer::start(1).await, SimServer::start(1).await);
    refuser.with(|s| s.refuse_all = Some(tokio_modbus::ExceptionCode::GatewayTargetDevice));
    for d in [&holey, &small, &marked] {
        d.with(|s| s.holding.extend((0..10).map(|a| (a, 100 + a))));
    }
    holey.with(|s| s.forbidden = vec![5]);
    marked.with(|s| s.forbidden = vec![5]);
    small.with(|s| s.max_read = Some(4));
    // Points at 0-4 and 6-9: one coalesced read of 10 registers (max_gap bridges the hole at 5).
    let points = |mark: bool| {
        [0, 1, 2, 3, 4, 6, 7, 8, 9]
            .iter()
            .map(|a| {
                let nb = if mark && *a == 6 { "new_block = true\n" } else { "" };
                format!("[[device.point]]\nname = \"r{a}\"\narea = \"holding\"\naddress = {a}\ntype = \"u16\"\n{nb}")
            })
            .collect::<String>()
    };
    let device = |id: &str, addr: std::net::SocketAddr, pts: String| {
        format!(
            "[[device]]\nid = \"{id}\"\nprotocol = \"modbus-tcp\"\naddress = \"{addr}\"\ntimeout_ms = 500\n\
             poll_groups = [{{ name = \"default\", interval_ms = 50 }}]\n{pts}\n"
        )
    };
    let cfg = [
        device("refuser", refuser.addr, points(false)),
        device("holey", holey.addr, points(false)),
        device("small", small.addr, points(false)),
        device("marked", marked.addr, points(true)),
    ]
    .concat();
    std::fs::write(dir.path().join("collector.toml"), cfg).unwrap();
    let _c = spawn_service("enos-collector", &dir.path().join("collector.toml"), &bus.address, &dir.path().join("log"));

    // Answering but refusing everything is not "online"; the error says what failed and why.
    let d = wait_for(20, "the refusing device shown as refusing", || {
        devices(&bus.address).remove("refuser").filter(|d| d["state"] == "refusing")
    })
    .await;
    let err = d["last_error"].as_str().unwrap_or_default().to_string();
    assert!(
        err.starts_with("reading 10 holding registers from 0 (function 3): device exception 0x0b (gateway target device failed to respond"),
        "{err}"
    );
    // Healthy again: online, and the old error is gone.
    refuser.with(|s| s.refuse_all = None);
    wait_for(20, "the device online with its error cleared", || {
        devices(&bus.address).remove("refuser").filter(|d| d["state"] == "online" && d["last_error"].is_null())
    })
    .await;

    // A block that keeps answering 02 or 03 is split until every point reads; the splits are shown.
    for (id, code) in [("holey", "0x02"), ("small", "0x03")] {
        let d = wait_for(30, "the refused block split until every point reads", || {
            let (_, out, _) = run_tool("enosctl", &["read", "--json", id], &bus.address);
            let r: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_default();
            let all_good = r.len() == 9 && r.iter().all(|p| p["quality"] == "good");
            let d = devices(&bus.address).remove(id)?;
            (all_good && d["state"] == "online" && d["last_error"].is_null()).then_some((d, r))
        })
        .await;
        let (d, r) = d;
        let splits: Vec<&str> = d["split_reads"].as_array().unwrap().iter().filter_map(|s| s.as_str()).collect();
        assert!(!splits.is_empty() && splits.iter().all(|s| s.contains(&format!("kept answering exception {code}"))), "{id}: {splits:?}");
        for p in r {
            let a: u64 = p["point"].as_str().unwrap()[1..].parse().unwrap();
            assert_eq!(p["value"], serde_json::json!(100 + a), "{id}: {p}");
        }
    }
    // A hole marked in the point table is never read across.
    let d = devices(&bus.address).remove("marked").unwrap();
    assert_eq!((d["state"].as_str(), d["polls_failed"].as_u64(), d["split_reads"].is_null()), (Some("online"), Some(0), true), "{d}");
}
