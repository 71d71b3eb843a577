//! The data path end to end with real parts: the service binaries on a private dbus-daemon, a
//! real mosquitto behind the cloud simulator, RocksDB in a temp dir, a simulated Modbus device.

use enos_testkit::edge::{collector_toml, uplink_toml, Edge, POINTS_CSV, SUB_PK};
use enos_testkit::harness::run_tool;
use enos_testkit::wait_for;
use std::collections::BTreeSet;

fn dupes(received: &[(u64, u64, bool)]) -> usize {
    let set: BTreeSet<u64> = received.iter().map(|r| r.0).collect();
    received.len() - set.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_flow_values_timestamps_devices_and_quality() {
    let t0 = enos_batch::now_ms();
    let mut e = Edge::start().await;
    wait_for(30, "20 counter values in the cloud", || (e.received().len() >= 20).then_some(())).await;
    let (served, got) = e.settle().await;
    assert!(served.len() >= 20);
    assert_eq!(dupes(&got), 0, "no duplicates without faults");
    // timestamps: acquisition times within the test, increasing with the counter
    let mut by_val: Vec<_> = got.clone();
    by_val.sort();
    let now = enos_batch::now_ms();
    for w in by_val.windows(2) {
        assert!(w[0].1 <= w[1].1, "timestamps follow the counter: {w:?}");
    }
    assert!(by_val.iter().all(|r| r.1 >= t0 && r.1 <= now));
    let power: Vec<serde_json::Value> = e.cloud.with(|r| r.points.iter().filter(|p| p.point == "power").map(|p| p.value.clone()).collect());
    assert!(power.iter().any(|v| v.as_f64() == Some(231.4)), "CDAB float decoded: {:?}", power.first());
    // the exception point arrives with the exception quality, not as a broken link
    let broken: Vec<serde_json::Value> =
        e.cloud.with(|r| r.points.iter().filter(|p| p.point == "broken").map(|p| p.value.clone()).collect());
    assert!(broken.iter().any(|v| v["quality"] == 1 && v["value"].is_null()), "{:?}", broken.first());
    // the gateway's own health points (no keys)
    assert!(e.cloud.with(|r| r.points.iter().any(|p| p.device_key.is_none() && p.point == "cache_points")));
    // the CONNECT sign was checked and accepted; sub-device logged in
    assert!(e.cloud.with(|r| r.connects_ok) >= 1);
    assert!(e.cloud.with(|r| r.requests.iter().any(|(t, _)| t.ends_with("/combine/login/batch"))));
    assert!(e.cloud.with(|r| r.requests.iter().any(|(t, v)| t.ends_with("/ota/device/inform") && v["params"]["version"].is_string())));
    // the device went offline when unplugged; plug back, it comes back on its own
    let (ok, out, _) = run_tool("enosctl", &["devices"], &e.bus.address);
    assert!(ok && out.contains("inv01") && out.contains("offline"), "{out}");
    e.sim.plug().await;
    wait_for(20, "the device back online", || {
        let (_, out, _) = run_tool("enosctl", &["devices"], &e.bus.address);
        out.contains("online").then_some(())
    })
    .await;
    let (ok, out, err) = run_tool("enosctl", &["status"], &e.bus.address);
    assert!(ok && out.contains("cloud       connected") && out.contains("hours of outage"), "{out}{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_commands_write_devices_and_bad_ones_get_error_replies() {
    let e = Edge::start().await;
    wait_for(30, "the session up", || (e.received().len() >= 3).then_some(())).await;
    let set =
        |id: &str, body: &str| format!(r#"{{"id":"{id}","version":"1.0","method":"thing.service.measurepoint.set","params":{body}}}"#);
    let topic = format!("/sys/{SUB_PK}/inv01/thing/service/measurepoint/set");
    e.cloud.command(&topic, set("1", r#"{"setpoint":42.5,"switch":true}"#).as_bytes()).await;
    e.cloud.command(&topic, set("2", r#"{"broken":1}"#).as_bytes()).await;
    e.cloud.command(&topic, set("3", r#"{"setpoint":101}"#).as_bytes()).await;
    e.cloud.command(&topic, b"{this is not json").await;
    e.cloud.command(&topic, set("5", r#"{"nosuch":1}"#).as_bytes()).await;
    let huge = set("6", &format!(r#"{{"setpoint":"{}"}}"#, "9".repeat(70_000)));
    e.cloud.command(&topic, huge.as_bytes()).await;
    let replies = wait_for(20, "six command replies", || {
        let r = e.cloud.with(|r| r.command_replies.clone());
        (r.len() >= 6).then_some(r)
    })
    .await;
    let code = |id: &str| {
        replies
            .iter()
            .find(|(_, v)| v["id"] == id)
            .map(|(_, v)| v["code"].as_i64().unwrap())
            .unwrap_or_else(|| panic!("no reply {id}: {replies:?}"))
    };
    assert_eq!(code("1"), 200);
    assert_eq!(code("2"), 2006, "a device exception is a field-side failure");
    assert_eq!(code("3"), 2005, "out of the configured range");
    assert_eq!(code(""), 1220, "malformed JSON");
    assert_eq!(code("5"), 2002);
    assert_eq!(code("6"), 1008, "an oversized command is refused");
    assert!(replies.iter().all(|(t, _)| t == &format!("{topic}_reply")));
    // the device got exactly the valid writes: 42.5 / 0.1 = 425 and the coil
    let writes = e.sim.with(|s| s.writes.clone());
    assert_eq!(writes, vec![(10, vec![425]), (0, vec![1])]);
    // enosctl writes too, and reports a refusal with a non-zero exit
    let (ok, out, _) = run_tool("enosctl", &["write", "inv01", "setpoint", "7"], &e.bus.address);
    assert!(ok, "{out}");
    let (ok, _, err) = run_tool("enosctl", &["write", "inv01", "power", "7"], &e.bus.address);
    assert!(!ok && err.contains("is read-only") && !err.contains("ReadOnly"), "{err}");
    let (ok, out, _) = run_tool("enosctl", &["read", "inv01", "setpoint"], &e.bus.address);
    assert!(ok && out.split_whitespace().nth(1) == Some("7"), "{out}");
    assert_eq!(e.sim.with(|s| s.writes.last().cloned()), Some((10, vec![70])), "7 in engineering units is 70 raw");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_is_resumed_old_to_new_and_live_data_comes_first() {
    let mut e = Edge::start().await;
    wait_for(30, "live data", || (e.received().len() >= 10).then_some(())).await;
    e.broker.stop();
    let before = e.served().len();
    wait_for(30, "data captured during the outage", || (e.served().len() >= before + 60).then_some(())).await;
    let (ok, out, _) = run_tool("enosctl", &["status"], &e.bus.address);
    assert!(ok && !out.contains("backlog     0 points"), "the cache holds the backlog: {out}");
    let outage_max = *e.served().last().unwrap() as u64;
    let requests_before = e.cloud.with(|r| r.requests.len());
    e.broker.restart();
    wait_for(30, "live data newer than the outage", || e.received().iter().any(|r| !r.2 && r.0 > outage_max).then_some(())).await;
    let (served, got) = e.settle().await;
    let resumed: Vec<&(u64, u64, bool)> = got.iter().filter(|r| r.2).collect();
    // ~6 s of outage at 10 polls/s; what was younger than resume_after_s (2 s) when the session
    // came back goes out live, the rest (at least ~40 values) through resume.
    assert!(resumed.len() >= 25, "outage data came through resume: {}", resumed.len());
    // old to new: the resume stream delivers each point in increasing time order
    let resumed_vals: Vec<u64> = resumed.iter().map(|r| r.0).collect();
    let mut sorted = resumed_vals.clone();
    sorted.sort();
    sorted.dedup();
    let mut firsts = resumed_vals.clone();
    firsts.dedup();
    assert_eq!(
        firsts.iter().filter(|v| **v <= outage_max).copied().collect::<BTreeSet<_>>().len(),
        sorted.iter().filter(|v| **v <= outage_max).count()
    );
    assert!(resumed_vals.windows(2).filter(|w| w[1] < w[0]).count() <= 2, "resume goes old to new: {resumed_vals:?}");
    // live data did not wait behind the backlog: the first telemetry after the reconnect is live
    let first = e.cloud.with(|r| r.requests[requests_before..].iter().find(|(t, _)| t.contains("/measurepoint/")).map(|(t, _)| t.clone()));
    assert!(first.as_deref().is_some_and(|t| t.ends_with("/post/batch")), "live first, got {first:?}");
    assert!(served.len() as u64 >= outage_max);
    eprintln!("outage: {} values resumed, {} duplicates", resumed.len(), dupes(&got));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_either_service_loses_nothing_acknowledged() {
    let mut e = Edge::start().await;
    wait_for(30, "data flowing", || (e.received().len() >= 10).then_some(())).await;
    for _ in 0..2 {
        let n = e.served().len();
        e.uplink.kill9();
        wait_for(20, "the collector polling on", || (e.served().len() >= n + 15).then_some(())).await;
        e.start_uplink();
        let m = e.received().len();
        wait_for(30, "flow after the uplink restart", || (e.received().len() >= m + 10).then_some(())).await;
    }
    // Every served value arrives, except one per failed poll (a read the collector gave up on,
    // e.g. a timeout on a loaded machine: the device counted it, the collector never got it).
    let failed = e.failed_polls();
    let (served, got) = e.settle().await;
    let got_set: BTreeSet<u64> = got.iter().map(|r| r.0).collect();
    let not_collected: Vec<u32> = served.iter().copied().filter(|v| !got_set.contains(&(*v as u64))).collect();
    if !not_collected.is_empty() {
        eprintln!("not collected: {not_collected:?}, failed polls: {failed}");
    }
    let d = dupes(&got);
    eprintln!("uplink kill -9 x2: {} values served, {} received, {d} duplicates", served.len(), got.len());
    assert!(d <= 60, "duplicates are bounded: {d}");

    // The collector: what it was answered for survives; what it held unanswered in memory at
    // the kill is the only gap, bounded by one push interval of polls.
    e.sim.plug().await;
    wait_for(20, "polling again", || (e.served().len() >= served.len() + 10).then_some(())).await;
    let before_kill = e.served();
    e.collector.kill9();
    let at_kill = e.served().len();
    e.start_collector();
    let n = e.served().len();
    wait_for(20, "polling after the restart", || (e.served().len() >= n + 30).then_some(())).await;
    // The failed polls of the killed process are gone with it; the window below bounds the loss.
    let (served, got) = e.settle_allowing(5).await;
    let got_set: BTreeSet<u64> = got.iter().map(|r| r.0).collect();
    let lost: Vec<u32> = served.iter().copied().filter(|v| !got_set.contains(&(*v as u64))).collect();
    // What the old process had answered by the uplink is all there; at most the samples of the
    // last push interval (one or two polls) and a read in flight at the kill are gone.
    let window: BTreeSet<u32> = served[before_kill.len().saturating_sub(5)..at_kill].iter().copied().collect();
    eprintln!("collector kill -9: lost {lost:?} (allowed: some of {window:?})");
    assert!(lost.iter().all(|v| window.contains(v)), "lost {lost:?}, but only values of {window:?} (the kill's push interval) may be");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orderly_stop_of_the_collector_hands_on_what_it_read() {
    // A reboot or an update stops the collector with SIGTERM before the uplink: the samples of
    // the current push interval must reach the cache, not die with the process.
    let mut e = Edge::start().await;
    wait_for(30, "data flowing", || (e.received().len() >= 10).then_some(())).await;
    let failed = e.failed_polls();
    e.collector.terminate();
    let log = std::fs::read_to_string(e.log()).unwrap_or_default();
    assert!(log.contains("stopping: every sample handed to the uplink"), "no final hand-over in the log");
    // Every value served arrives (settle: none missing beyond failed polls and a read in flight).
    let (served, got) = e.settle().await;
    eprintln!("orderly stop: {} values served, {} received, {failed} failed polls", served.len(), got.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_unanswered_batches_are_retried_then_delivered() {
    let mut e = Edge::start().await;
    wait_for(30, "data flowing", || (e.received().len() >= 5).then_some(())).await;
    e.cloud.with(|r| r.next_codes = vec![500, 429]);
    let before = e.cloud.with(|r| r.telemetry_messages);
    wait_for(20, "the refusals consumed", || {
        (e.cloud.with(|r| r.next_codes.is_empty() && r.telemetry_messages > before + 4)).then_some(())
    })
    .await;
    // no reply at all for a while: the uplink must send again after reply_timeout_s
    e.cloud.with(|r| r.silent = true);
    let n = e.served().len();
    wait_for(20, "data while the cloud is silent", || (e.served().len() >= n + 20).then_some(())).await;
    e.cloud.with(|r| r.silent = false);
    let (_served, _got) = e.settle().await;
    let (ok, out, _) = run_tool("enosctl", &["--json", "status"], &e.bus.address);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["uplink"]["sender"]["rejected"].as_u64().unwrap() >= 2, "{v}");
    assert!(v["uplink"]["sender"]["timeouts"].as_u64().unwrap() >= 1, "{v}");
}

/// A busy or failing cloud (5xx, 429) is waited out, however long; a refusal that says the data
/// is wrong is given up after `max_attempts` (3 here) into the dead-letter store, in words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_cloud_is_waited_out_and_only_data_it_calls_wrong_is_set_aside() {
    let e = Edge::start().await;
    wait_for(30, "data flowing", || (e.received().len() >= 5).then_some(())).await;
    let sender = |e: &Edge| {
        let (ok, out, _) = run_tool("enosctl", &["--json", "status"], &e.bus.address);
        assert!(ok, "{out}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["uplink"]["sender"].clone()
    };
    // 503 for 10 s, three times what max_attempts' backoff (1 s + 2 s) took before a unit was
    // given up: the length of the outage is the fault here, not a wait for something
    e.cloud.with(|r| r.refusing = Some(503));
    let rejected = sender(&e)["rejected"].as_u64().unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    assert!(sender(&e)["rejected"].as_u64().unwrap() >= rejected + 6, "the cloud refused nothing: {}", sender(&e));
    e.cloud.with(|r| r.refusing = None);
    let s = sender(&e);
    assert_eq!(s["dead_lettered_points"], 0, "a failing cloud made the gateway give data up: {s}");
    // 460 (parameter error) at every attempt: given up and kept aside, said in words
    e.cloud.with(|r| r.refusing = Some(460));
    wait_for(30, "a unit given up after 3 refusals", || (sender(&e)["dead_lettered_points"].as_u64().unwrap() > 0).then_some(())).await;
    e.cloud.with(|r| r.refusing = None);
    let log = std::fs::read_to_string(e.log()).unwrap();
    assert!(log.contains("after 3 refusals by the cloud: moved to the dead-letter store"), "the log does not say it in words");
    let (ok, out, _) = run_tool("enosctl", &["--json", "status"], &e.bus.address);
    assert!(
        ok && serde_json::from_str::<serde_json::Value>(&out).unwrap()["uplink"]["cache"]["dead_letter_records"].as_u64().unwrap() > 0,
        "{out}"
    );
    // and data flows again: a value served after the refusals ended arrives
    let last = *e.served().last().expect("values served") as u64;
    wait_for(30, "a value served after the refusals", || e.received().iter().any(|r| r.0 > last).then_some(())).await;
}

/// The data partition fills up under the uplink (its cache on a 48 MiB tmpfs that another
/// program fills): the uplink keeps running and says so, the collector holds what cannot be
/// stored, and once space returns everything served reaches the cloud. Needs root (mount).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_ridden_out_and_costs_nothing_once_space_returns() {
    let mut e = Edge::start_on_small_disk().await;
    let status = |e: &Edge| {
        let (ok, out, _) = run_tool("enosctl", &["--json", "status"], &e.bus.address);
        assert!(ok, "{out}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    wait_for(30, "data flowing", || (e.received().len() >= 5).then_some(())).await;

    // another program takes all but 1 MiB: below half of what the cache keeps free
    e.small_disk.as_ref().unwrap().fill_leaving(1 << 20);
    let low =
        wait_for(30, "the uplink to say the disk is full", || status(&e)["uplink"]["cache"]["disk_low"].as_str().map(String::from)).await;
    assert!(low.contains("the disk is nearly full"), "{low}");
    let n = e.served().len();
    wait_for(30, "values served while nothing can be stored", || (e.served().len() >= n + 30).then_some(())).await;
    let col = status(&e)["collector"].clone();
    assert!(col["push_failures"].as_u64().unwrap_or(0) > 0, "the uplink stored batches on a full disk? {col}");

    e.small_disk.as_ref().unwrap().unfill();
    wait_for(30, "the uplink to see the space back", || status(&e)["uplink"]["cache"]["disk_low"].is_null().then_some(())).await;
    let (served, got) = e.settle().await;
    eprintln!("disk full: {} values served, {} received", served.len(), got.len());
    let log = std::fs::read_to_string(e.log()).unwrap();
    assert!(log.contains("the disk is full") && log.contains("nothing written"), "the refusal is not said in words");
}

#[test]
fn a_broken_config_names_file_key_and_reason_and_the_service_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("collector.toml");
    std::fs::write(&cfg, collector_toml("127.0.0.1:1").replace("timeout_ms = 2000", "timeout_ms = 0")).unwrap();
    std::fs::write(dir.path().join("inv01.csv"), POINTS_CSV).unwrap();
    let bin = enos_testkit::harness::bin_dir().join("enos-collector");
    let out = std::process::Command::new(&bin).arg("--config").arg(&cfg).arg("--check").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("{}: device \"inv01\", timeout_ms: must be 1-60000", cfg.display())), "{err}");

    // A TOML syntax error: said once, its caret diagram on lines of their own under the line quoted.
    std::fs::write(&cfg, collector_toml("127.0.0.1:1").replace("protocol = \"modbus-tcp\"", "protocol = modbus-tcp")).unwrap();
    let out = std::process::Command::new(&bin).arg("--config").arg(&cfg).arg("--check").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.matches("string values must be quoted").count(), 1, "{err}");
    let lines: Vec<&str> = err.lines().collect();
    let at = lines.iter().position(|l| l.ends_with("| protocol = modbus-tcp")).unwrap_or_else(|| panic!("{err}"));
    assert!(lines[at + 1].trim_end().ends_with("^^^^^^^^^^"), "{err}");

    std::fs::write(&cfg, collector_toml("127.0.0.1:1")).unwrap();
    std::fs::write(dir.path().join("inv01.csv"), format!("{POINTS_CSV}bad,holding,x,u16,,,slow,r,,\n")).unwrap();
    let out = std::process::Command::new(&bin).arg("--config").arg(&cfg).arg("--check").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("inv01.csv: line 7, column \"address\": \"x\" is not a whole number"), "{err}");

    let up = dir.path().join("uplink.toml");
    std::fs::write(&up, uplink_toml("tcp://127.0.0.1:1", dir.path()).replace("allow_plain = true\n", "")).unwrap();
    let bin = enos_testkit::harness::bin_dir().join("enos-uplink");
    let out = std::process::Command::new(&bin).arg("--config").arg(&up).arg("--check").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("cloud.uri: plain TCP"), "{err}");
}
