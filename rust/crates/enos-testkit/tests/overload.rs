//! The collector when the uplink does not keep up: its memory stays within
//! `buffer_max_samples` (the oldest samples shed and counted), the overload is visible in its
//! status and its log, and a stop is bounded and says what it could not hand on.
//!
//! The uplink is frozen with SIGSTOP: it takes the push and never answers, the harshest "slow".

use enos_testkit::cloud_sim::CloudSim;
use enos_testkit::harness::{spawn_service, uplink_toml_one_device, Bus, Mosquitto};
use enos_testkit::modbus_sim::SimServer;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const LIMIT: u64 = 3000;

async fn stats(conn: &zbus::Connection) -> serde_json::Value {
    let p = enos_bus::CollectorProxy::new(conn).await.unwrap();
    serde_json::from_str(&p.stats().await.unwrap()).unwrap()
}

/// Polls the collector's stats until `f` holds; every answer must keep the buffer in bounds.
async fn until(conn: &zbus::Connection, secs: u64, what: &str, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = stats(conn).await;
        assert!(s["samples_buffered"].as_u64().unwrap() <= LIMIT, "more than the limit of {LIMIT} samples buffered: {s}");
        if f(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "timed out after {secs} s waiting for {what}: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn signal(p: &enos_testkit::harness::Proc, s: Signal) {
    kill(Pid::from_raw(p.child.as_ref().unwrap().id() as i32), s).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_uplink_sheds_oldest_within_the_limit_shows_overload_and_the_stop_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let broker = Mosquitto::start(dir.path());
    let cloud = CloudSim::start(broker.port, HashMap::from([("gw01".to_string(), "s".to_string())])).await;
    let sim = SimServer::start(1).await;
    // 100 registers every 50 ms: 2000 samples/s, the limit fills in under two seconds.
    let mut csv = String::from("name,area,address,type,group,access\n");
    for a in 0..100 {
        csv.push_str(&format!("r{a},holding,{a},u16,fast,r\n"));
    }
    std::fs::write(dir.path().join("points.csv"), csv).unwrap();
    std::fs::write(
        dir.path().join("collector.toml"),
        format!(
            "[push]\ninterval_ms = 100\nmax_samples = 200\nbuffer_max_samples = {LIMIT}\n\
             [[device]]\nid = \"meter\"\nprotocol = \"modbus-tcp\"\naddress = \"{}\"\n\
             poll_groups = [{{ name = \"fast\", interval_ms = 50 }}]\npoints_csv = \"points.csv\"\n",
            sim.addr
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("uplink.toml"), uplink_toml_one_device(&cloud.uri(), &dir.path().join("cache"), "meter")).unwrap();
    let log = dir.path().join("services.log");
    let uplink = spawn_service("enos-uplink", &dir.path().join("uplink.toml"), &bus.address, &log);
    let conn = zbus::connection::Builder::address(bus.address.as_str()).build().await.unwrap();
    // The uplink answers before the collector starts, so no batch waits at the start (that
    // would rightly count as overload for a while).
    let deadline = Instant::now() + Duration::from_secs(20);
    while enos_bus::UplinkProxy::new(&conn).await.unwrap().status().await.is_err() {
        assert!(Instant::now() < deadline, "the uplink never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut collector = spawn_service("enos-collector", &dir.path().join("collector.toml"), &bus.address, &log);
    let wait_collector = async {
        for _ in 0..200 {
            if enos_bus::CollectorProxy::new(&conn).await.unwrap().stats().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the collector never answered");
    };
    wait_collector.await;
    let s = until(&conn, 30, "samples handed to the uplink", |s| s["samples_pushed"].as_u64() > Some(1000)).await;
    assert_eq!(s["state"], "ok", "{s}");
    assert_eq!(s["buffer_max_samples"], LIMIT, "{s}");

    // The uplink stops answering: the collector keeps reading, sheds the oldest, says so.
    signal(&uplink, Signal::SIGSTOP);
    let s = until(&conn, 20, "samples shed", |s| s["samples_dropped"].as_u64() > Some(2 * LIMIT)).await;
    assert_eq!(s["state"], "overloaded", "{s}");
    let collected = s["samples_collected"].as_u64().unwrap();
    let (pushed, shed, buffered) =
        (s["samples_pushed"].as_u64().unwrap(), s["samples_dropped"].as_u64().unwrap(), s["samples_buffered"].as_u64().unwrap());
    // Every sample read is accounted for: handed on, shed, or waiting (the stats are one snapshot
    // of counters that move, so allow the frames of one poll).
    assert!(pushed + shed + buffered + 200 >= collected && pushed + shed + buffered <= collected + 200, "{s}");
    // Polling goes on at full speed: memory, not the poll schedule, absorbs the stall.
    let polls = sim.with(|st| st.requests);
    until(&conn, 10, "more polls while stalled", |_| sim.with(|st| st.requests) > polls + 20).await;
    // ... and the log says it, once per period, with the numbers.
    let deadline = Instant::now() + Duration::from_secs(20);
    let line = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.contains("overloaded: read")) {
            break l.to_string();
        }
        assert!(Instant::now() < deadline, "no overload line in the log");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(line.contains(&format!("(limit {LIMIT})")) && line.contains("oldest shed"), "{line}");

    // A stop while the uplink hangs: bounded by the final-push deadline, and it says what is lost.
    signal(&collector, Signal::SIGTERM);
    let child = collector.child.as_mut().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the collector did not stop within 30 s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    collector.child = None;
    let text = std::fs::read_to_string(&log).unwrap();
    let lost = text.lines().find(|l| l.contains("could not be handed to the uplink")).expect("the stop says what it could not hand on");
    let n: u64 = lost.split("stopping: ").nth(1).and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(n > 0 && n <= LIMIT, "{lost}");
    signal(&uplink, Signal::SIGCONT);
}
