//! The edge configured and watched from the cloud, end to end (real services, mosquitto behind
//! the cloud simulator): the gateway's services `getConfig`, `setParameter`, `uploadLogs`; its
//! attributes, events and network status (docs/cloud-protocol.md, "Remote configuration" and
//! "Monitoring").

use enos_testkit::edge::{Edge, GW, PK};
use enos_testkit::harness::{run_tool, spawn_idle_ota, spawn_idle_web};
use enos_testkit::wait_for;
use serde_json::{json, Value};
use std::time::Duration;

/// Quick monitoring for tests; the log upload reads the services' log file.
const MONITOR_TOML: &str = "\n[monitor]\ncheck_s = 1\nnetwork_report_s = 1\nlog_file = \"{dir}/services.log\"\nlog_max_lines = 50\n\
     log_max_bytes = 4096\nota_config = \"{dir}/ota.toml\"\nweb_config = \"{dir}/web.toml\"\n";

async fn edge() -> Edge {
    let e = Edge::start_with(MONITOR_TOML).await;
    wait_for(30, "the attributes after connecting", || e.cloud.with(|r| (!r.attribute_updates().is_empty()).then_some(()))).await;
    e
}

/// Calls a service of the gateway and waits for its reply.
async fn call(e: &Edge, id: &str, service: &str, params: Value) -> Value {
    let body = json!({"id": id, "version": "1.0", "method": format!("thing.service.{service}"), "params": params});
    e.cloud.command(&format!("/sys/{PK}/{GW}/thing/service/{service}"), body.to_string().as_bytes()).await;
    wait_for(30, &format!("the reply to {id}"), || {
        e.cloud.with(|r| r.command_replies.iter().find(|(_, v)| v["id"] == id).map(|(_, v)| v.clone()))
    })
    .await
}

/// Reads of the `fast` group (the counter) in `secs`.
async fn reads_in(e: &Edge, secs: u64) -> usize {
    let n = e.served().len();
    tokio::time::sleep(Duration::from_secs(secs)).await; // a measuring window, not a synchronisation
    e.served().len() - n
}

fn log_text(e: &Edge) -> String {
    std::fs::read_to_string(e.log()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloud_reads_the_configuration_without_secrets() {
    let e = edge().await;
    let r = call(&e, "c1", "getConfig", json!({})).await;
    assert_eq!(r["code"], 200, "{r}");
    let text = r.to_string();
    assert!(!text.contains("gw-secret") && !text.contains("inv-secret"), "a secret in {text}");
    assert_eq!(r["data"]["uplink"]["cloud"]["device_secret"], "(secret)", "{r}");
    assert_eq!(r["data"]["uplink"]["sub_device"][0]["device_secret"], "(secret)", "{r}");
    let dev = &r["data"]["collector"]["device"][0];
    assert_eq!((dev["id"].as_str(), dev["points"].as_u64()), (Some("inv01"), Some(5)), "{r}");
    assert_eq!(dev["poll_groups"][0], json!({"name": "fast", "interval_ms": 100}), "{r}");
    // the update agent and the web center: their files, secrets replaced; no file is the defaults
    assert_eq!(r["data"]["ota"], json!({"file": e.dir.path().join("ota.toml"), "settings": {}}), "{r}");
    std::fs::write(e.dir.path().join("ota.toml"), "allow_http = false\nhealth_timeout_s = 300\n").unwrap();
    std::fs::write(e.dir.path().join("web.toml"), "listen = \"0.0.0.0:443\"\n[provisioning]\nadmin_password = \"web-secret\"\n").unwrap();
    let r = call(&e, "c1b", "getConfig", json!({})).await;
    assert_eq!(r["data"]["ota"]["settings"]["health_timeout_s"], 300, "{r}");
    assert_eq!(r["data"]["web"]["settings"]["listen"], "0.0.0.0:443", "{r}");
    assert_eq!(r["data"]["web"]["settings"]["provisioning"]["admin_password"], "(secret)", "{r}");
    assert!(!r.to_string().contains("web-secret"), "a secret in {r}");
    std::fs::write(e.dir.path().join("web.toml"), "listen = [").unwrap();
    let r = call(&e, "c1c", "getConfig", json!({})).await;
    let why = r["data"]["web"]["unavailable"].as_str().unwrap_or_default();
    assert!(why.contains("web.toml: not valid TOML"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_that_stops_the_device_collecting_is_rolled_back_and_the_cloud_hears_why() {
    let e = edge().await;
    // A device that answers in 300 ms: fine with the 2 s timeout, never with 50 ms.
    e.sim.with(|s| s.slow_ms = Some(300));
    wait_for(30, "inv01 collecting", || e.cloud.with(|r| (r.points.iter().filter(|p| p.point == "counter").count() > 3).then_some(())))
        .await;
    let name = "collector.device.inv01.timeout_ms";
    let r = call(&e, "t1", "setParameter", json!({"name": name, "value": 50})).await;
    assert_eq!(r["code"], enos_cloud::codes::write_failed(None), "{r}");
    let msg = r["message"].as_str().unwrap();
    assert!(msg.starts_with("collector.device.inv01.timeout_ms: device \"inv01\" did not come up with 50 ("), "{msg}");
    assert!(msg.ends_with("; rolled back to 2000"), "{msg}");
    let log = log_text(&e);
    assert!(log.contains(&format!("AUDIT the cloud (request t1) set {name}: 2000 -> 50")), "the change is audited");
    assert!(log.contains(&format!("AUDIT the cloud (request t1) set {name}: 50 -> 2000 (rolled back to 2000)")), "the rollback is audited");
    // the old value is in force again: the file as it was, the device collecting
    let now = std::fs::read_to_string(e.dir.path().join("collector.toml")).unwrap();
    assert!(now.contains("timeout_ms = 2000") && !now.contains("timeout_ms = 50\n"), "the file does not hold the old value:\n{now}");
    let n = e.cloud.with(|r| r.points.iter().filter(|p| p.point == "counter").count());
    wait_for(30, "inv01 collecting again", || {
        e.cloud.with(|r| (r.points.iter().filter(|p| p.point == "counter").count() > n + 3).then_some(()))
    })
    .await;
    let r = call(&e, "t2", "getConfig", json!({})).await;
    assert_eq!(r["data"]["collector"]["device"][0]["timeout_ms"], 2000, "{r}");
}

/// `setParameter {name}` (a service's log level) to debug, a word that is no level, and back:
/// the answers say the old and new level, the uplink audits the change; `service` (when it is
/// not the uplink itself) audits it too, with the caller; `debug_line` (a line the service logs
/// at debug all the time) appears at debug and stops again at info.
async fn log_level_round_trip(e: &Edge, name: &str, service: Option<&str>, debug_line: Option<&str>) {
    let count = |l: &str| log_text(e).matches(l).count();
    if let Some(l) = debug_line {
        assert_eq!(count(l), 0, "{name}: debug lines at level info");
    }
    let r = call(e, &format!("{name}-1"), "setParameter", json!({"name": name, "value": "debug"})).await;
    assert_eq!(r["data"], json!({"name": name, "old": "info", "new": "debug", "changed": true}), "{r}");
    let log = log_text(e);
    let audit = format!("AUDIT the cloud (request {name}-1) set {name}: \"info\" -> \"debug\"");
    assert!(log.contains(&audit), "no audit line {audit:?} in the uplink");
    if let Some(service) = service {
        // the caller as the bus vouches for it (here every service runs as this test's user)
        let own = log.lines().find(|l| l.contains(&format!(" {service} WARN: AUDIT the log level set by ")));
        assert!(own.is_some_and(|l| l.ends_with(": info -> debug")), "no audit line in {service}: {own:?}");
    }
    let r = call(e, &format!("{name}-2"), "setParameter", json!({"name": name, "value": "loud"})).await;
    assert_eq!(r["code"], enos_cloud::codes::BAD_PARAMS, "{r}");
    assert_eq!(r["message"], format!("{name}: \"loud\" is not a log level (error, warn, info, debug, trace)"), "{r}");
    if let Some(l) = debug_line {
        wait_for(30, "the debug lines", || (count(l) > 2).then_some(())).await;
    }
    let r = call(e, &format!("{name}-3"), "setParameter", json!({"name": name, "value": "INFO"})).await;
    assert_eq!(r["data"], json!({"name": name, "old": "debug", "new": "info", "changed": true}), "{r}");
    if let Some(l) = debug_line {
        // what is delivered after this reply is not logged at debug any more
        let n = count(l);
        let delivered = e.cloud.with(|r| r.points.len());
        wait_for(30, "more deliveries", || e.cloud.with(|r| (r.points.len() > delivered + 10).then_some(()))).await;
        assert!(count(l) <= n + 1, "{name}: debug lines after going back to info");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_uplink_log_level_is_changed_at_run_time() {
    let e = edge().await;
    log_level_round_trip(&e, "uplink.log_level", None, Some("acked: records")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_interval_changed_by_the_cloud_takes_effect_with_an_audit_line() {
    let e = edge().await;
    wait_for(30, "polls", || (e.served().len() > 10).then_some(())).await;
    let before = reads_in(&e, 2).await;
    assert!(before >= 8, "100 ms polls: {before} reads in 2 s");
    let name = "collector.device.inv01.poll_group.fast.interval_ms";
    let r = call(&e, "p1", "setParameter", json!({"name": name, "value": 1000})).await;
    assert_eq!(r["code"], 200, "{r}");
    assert_eq!(r["data"], json!({"name": name, "old": 100, "new": 1000, "changed": true}), "{r}");
    let after = reads_in(&e, 3).await;
    assert!(after <= 5, "1 s polls: {after} reads in 3 s");
    let audit = format!("AUDIT the cloud (request p1) set {name}: 100 -> 1000");
    assert!(log_text(&e).contains(&audit), "no audit line {audit:?} in the log");
    let r = call(&e, "c2", "getConfig", json!({})).await;
    assert_eq!(r["data"]["collector"]["device"][0]["poll_groups"][0]["interval_ms"], 1000, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_or_out_of_bounds_parameter_is_refused_in_words_and_nothing_changes() {
    let e = edge().await;
    let file = std::fs::read(e.dir.path().join("collector.toml")).unwrap();
    let cases = [
        (
            "collector.device.inv01.retries",
            json!(5),
            "\"collector.device.inv01.retries\" is not a parameter the cloud may change (these are: ",
        ),
        ("uplink.log_level", json!("loud"), "uplink.log_level: \"loud\" is not a log level (error, warn, info, debug, trace)"),
        (
            "collector.device.inv01.poll_group.fast.interval_ms",
            json!(5),
            "collector.device.inv01.poll_group.fast.interval_ms: 5 is out of bounds (10-86400000)",
        ),
        (
            "collector.device.inv01.poll_group.fast.interval_ms",
            json!("soon"),
            "collector.device.inv01.poll_group.fast.interval_ms: \"soon\" is not a whole number",
        ),
        ("collector.device.nope.poll_group.fast.interval_ms", json!(500), "the collector has no device \"nope\""),
        ("collector.device.inv01.poll_group.other.interval_ms", json!(500), "device \"inv01\" has no poll group \"other\""),
    ];
    for (i, (name, value, words)) in cases.iter().enumerate() {
        let id = format!("r{i}");
        let r = call(&e, &id, "setParameter", json!({"name": name, "value": value})).await;
        assert_eq!(r["code"], enos_cloud::codes::BAD_PARAMS, "{r}");
        let msg = r["message"].as_str().unwrap();
        assert!(msg.starts_with(words), "{msg:?} does not start with {words:?}");
    }
    assert_eq!(std::fs::read(e.dir.path().join("collector.toml")).unwrap(), file, "a refused change wrote the file");
    let r = call(&e, "c3", "getConfig", json!({})).await;
    assert_eq!(r["data"]["collector"]["device"][0]["poll_groups"][0]["interval_ms"], 100, "{r}");
    assert!(!log_text(&e).contains("AUDIT"), "a refused change was audited as done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_on_connect_and_after_a_change_events_and_the_network_status() {
    let mut e = edge().await;
    let first = e.cloud.with(|r| r.attribute_updates()[0].clone());
    assert_eq!(first["deviceCount"], 1, "{first}");
    assert_eq!(first["deviceIds"], json!(["inv01"]), "{first}");
    assert_eq!(first["protocols"], json!(["modbus-tcp"]), "{first}");
    assert!(first["version"].as_str().is_some_and(|v| !v.is_empty()), "{first}");

    // a second device: the inventory changed
    let conn = zbus::connection::Builder::address(e.bus.address.as_str()).build().await.unwrap();
    let p = enos_bus::CollectorProxy::new(&conn).await.unwrap();
    let mut cfg: Value = serde_json::from_str(&p.get_config().await.unwrap()).unwrap();
    let mut second = cfg["device"][0].clone();
    second["id"] = json!("inv02");
    second["enabled"] = json!(false);
    cfg["device"].as_array_mut().unwrap().push(second);
    let a: Value = serde_json::from_str(&p.apply_config(&cfg.to_string()).await.unwrap()).unwrap();
    assert_eq!(a["ok"], true, "{a}");
    let latest = wait_for(20, "the attributes after the change", || {
        e.cloud.with(|r| r.attribute_updates().into_iter().find(|a| a["deviceCount"] == 2))
    })
    .await;
    assert_eq!(latest["deviceIds"], json!(["inv01", "inv02"]), "{latest}");

    // the device stops answering
    e.sim.unplug();
    let ev = wait_for(30, "the device-stopped event", || e.cloud.with(|r| r.events("deviceStopped").into_iter().next())).await;
    assert_eq!(ev["device"], "inv01", "{ev}");
    assert!(ev["state"] == "offline" || ev["state"] == "connecting", "{ev}");

    let n = wait_for(20, "a network status report", || e.cloud.with(|r| r.requests_on("/network/status/report").into_iter().next())).await;
    assert_eq!(n["method"], "network.status.report", "{n}");
    assert_eq!((n["params"]["interface"].as_str(), n["params"]["link"].as_str()), (Some("lo"), Some("up")), "{n}");
    assert!(n["params"]["rttMs"].is_u64(), "{n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_upload_is_bounded_in_lines_and_bytes() {
    let e = edge().await;
    wait_for(30, "log lines", || (log_text(&e).lines().count() > 6).then_some(())).await;
    let r = call(&e, "l1", "uploadLogs", json!({"max_lines": 3})).await;
    assert_eq!(r["code"], 200, "{r}");
    assert_eq!((r["data"]["lines"].as_u64(), r["data"]["truncated"].as_bool()), (Some(3), Some(true)), "{r}");
    let lines = wait_for(20, "the log lines", || e.cloud.with(|r| Some(r.log_lines("l1")).filter(|l| l.len() >= 3))).await;
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l["logs"]["module"].as_str().is_some_and(|m| m.starts_with("enos-")) && l["time"].is_u64()), "{lines:?}");

    // more lines than the box's bound: bounded by log_max_lines (50) and log_max_bytes (4096)
    let r = call(&e, "l2", "uploadLogs", json!({"max_lines": 100000, "level": "trace"})).await;
    assert_eq!(r["code"], 200, "{r}");
    assert!(r["data"]["lines"].as_u64().unwrap() <= 50, "{r}");
    let lines = wait_for(20, "the log lines", || {
        e.cloud.with(|x| Some(x.log_lines("l2")).filter(|l| l.len() as u64 >= r["data"]["lines"].as_u64().unwrap()))
    })
    .await;
    let bytes: usize = lines.iter().map(|l| l["logs"]["content"].as_str().unwrap().len()).sum();
    assert!(bytes <= 4096, "{bytes} bytes of text");

    let r = call(&e, "l3", "uploadLogs", json!({"level": "loud"})).await;
    assert_eq!(r["code"], enos_cloud::codes::BAD_PARAMS, "{r}");
    assert_eq!(r["message"], "level: \"loud\" is not one of error, warn, info, debug, trace", "{r}");
}

/// Events go out at QoS 0: one lost on the way (a link that drops as it is written, a broker
/// that restarts) is not answered, and the monitor sends it again until the cloud has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_cloud_did_not_answer_is_sent_again() {
    let mut e = edge().await;
    e.cloud.with(|r| r.lose_monitoring = true);
    e.sim.unplug();
    let sent = |r: &enos_testkit::cloud_sim::Record| r.arrivals.iter().filter(|t| t.ends_with("/thing/event/deviceStopped/post")).count();
    wait_for(30, "the device-stopped event sent (and lost)", || e.cloud.with(|r| (sent(r) >= 1).then_some(()))).await;
    assert!(e.cloud.with(|r| r.events("deviceStopped").is_empty()), "a lost event was kept");
    e.cloud.with(|r| r.lose_monitoring = false);
    let ev = wait_for(40, "the device-stopped event sent again", || e.cloud.with(|r| r.events("deviceStopped").into_iter().next())).await;
    assert_eq!(ev["device"], "inv01", "{ev}");
    assert!(e.cloud.with(|r| sent(r)) >= 2, "kept, so it was sent more than once");
}

/// The collector's log level, through its own D-Bus method: changed, audited by both services,
/// and a word that is no level refused in words with nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collectors_log_level_is_changed_at_run_time() {
    let e = edge().await;
    log_level_round_trip(&e, "collector.log_level", Some("enos-collector"), Some("samples: cache record")).await;
}

/// The update agent's log level, through its own `Ota1.SetLogLevel`: as the collector's (the
/// agent logs nothing at debug while idle: its answers and its audit line are the proof).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_update_agents_log_level_is_changed_at_run_time() {
    let e = edge().await;
    let _agent = spawn_idle_ota(e.dir.path(), &e.bus.address, &e.log());
    wait_for(30, "the update agent on the bus", || run_tool("enosctl", &["ota", "status"], &e.bus.address).0.then_some(())).await;
    log_level_round_trip(&e, "ota.log_level", Some("enos-ota"), None).await;
}

/// The web center's log level, through the small bus name it has for this (`Web1.SetLogLevel`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_centers_log_level_is_changed_at_run_time() {
    let e = edge().await;
    let _web = spawn_idle_web(e.dir.path(), &e.bus.address, &e.log());
    wait_for(30, "the web center on the bus", || log_text(&e).contains(" enos-web INFO: serving on ").then_some(())).await;
    log_level_round_trip(&e, "web.log_level", Some("enos-web"), None).await;
}

/// Stands in for the update agent on the bus: only its signals.
struct AgentSignals;

#[zbus::interface(name = "org.enos.Edge.Ota1")]
impl AgentSignals {
    #[zbus(signal)]
    async fn progress(e: &zbus::object_server::SignalEmitter<'_>, job: &str, step: i32, desc: &str) -> zbus::Result<()>;
    #[zbus(signal)]
    async fn version_changed(e: &zbus::object_server::SignalEmitter<'_>, version: &str, reason: &str) -> zbus::Result<()>;
}

/// An update commits after the reboot before the network is back (the usual case on a slow
/// link): the agent's last progress (100) and its version change are kept by the uplink and sent
/// first once the session is up, before the version it informs on connecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_of_an_update_reported_while_offline_reaches_the_cloud_in_order() {
    let e = edge().await;
    let agent = zbus::connection::Builder::address(e.bus.address.as_str())
        .name(enos_bus::OTA_NAME)
        .serve_at(enos_bus::OTA_PATH, AgentSignals)
        .build()
        .await
        .unwrap();
    let cloud_state = |e: &Edge| {
        let (_, out, _) = enos_testkit::harness::run_tool("enosctl", &["--json", "status"], &e.bus.address);
        serde_json::from_str::<Value>(&out).ok().and_then(|v| v["uplink"]["cloud"]["state"].as_str().map(String::from))
    };
    e.cloud.with(|r| r.refuse_connects = true);
    e.cloud.cut_links();
    wait_for(30, "the uplink to see the session down", || cloud_state(&e).filter(|s| s != "connected")).await;
    let emitter = zbus::object_server::SignalEmitter::new(&agent, enos_bus::OTA_PATH).unwrap();
    AgentSignals::progress(&emitter, "job7", 95, "checking health").await.unwrap();
    AgentSignals::progress(&emitter, "job7", 100, "committed").await.unwrap();
    AgentSignals::version_changed(&emitter, "2.0.0", "committed").await.unwrap();
    let before = e.cloud.with(|r| r.requests.len());
    wait_for(30, "the uplink to keep the reports", || {
        log_text(&e).contains("ota.device.progress kept until the cloud session is up").then_some(())
    })
    .await;
    e.cloud.with(|r| r.refuse_connects = false);
    let ota = wait_for(60, "the reports after the reconnect", || {
        let got: Vec<Value> =
            e.cloud.with(|r| r.requests[before..].iter().filter(|(t, _)| t.contains("/ota/device/")).map(|(_, v)| v.clone()).collect());
        (got.iter().filter(|v| v["method"] == "ota.device.inform").count() >= 2).then_some(got)
    })
    .await;
    let said: Vec<String> = ota
        .iter()
        .map(|v| match v["method"].as_str().unwrap() {
            "ota.device.progress" => format!("progress {}", v["params"]["step"]),
            m => format!("{m} {}", v["params"]["version"]),
        })
        .collect();
    assert_eq!(said[..3], ["progress \"95\"", "progress \"100\"", "ota.device.inform \"2.0.0\""][..], "{said:?}");
    // then the version it informs on every connect (here no agent answers: the build's)
    assert!(said[3].starts_with("ota.device.inform"), "{said:?}");
}

/// The uplink's own settings: taken by the running uplink at once (its status, `getConfig`),
/// written to its file with an audit line and kept across a restart; a bad value (negative, zero,
/// a reserve the disk cannot give, not a number, a setting not on the list) is refused in words
/// naming the parameter, with the file and the running uplink unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_uplinks_cache_and_sender_settings_change_at_once_and_survive_a_restart() {
    let mut e = edge().await;
    let file = e.dir.path().join("uplink.toml");
    let before = std::fs::read(&file).unwrap();
    let free = enos_runtime::sys::Disk::of(&e.dir.path().join("cache")).unwrap().free_bytes;
    let too_much = free + (1 << 30);
    let cases = [
        ("uplink.cache.max_bytes", json!(-5), "uplink.cache.max_bytes: -5 is not a whole number".to_string()),
        ("uplink.cache.max_bytes", json!(0), "uplink.cache.max_bytes: 0 is out of bounds (1048576-1099511627776)".into()),
        ("uplink.cache.keep_free_bytes", json!(0), "uplink.cache.keep_free_bytes: 0 is out of bounds (1048576-1099511627776)".into()),
        ("uplink.cache.keep_free_bytes", json!(too_much), format!("uplink.cache.keep_free_bytes: {too_much} is more than ")),
        ("uplink.sender.live_share_percent", json!("half"), "uplink.sender.live_share_percent: \"half\" is not a whole number".into()),
        ("uplink.sender.live_share_percent", json!(95), "uplink.sender.live_share_percent: 95 is out of bounds (0-90)".into()),
        ("uplink.cache.dir", json!("/tmp"), "\"uplink.cache.dir\" is not a parameter the cloud may change (these are: ".into()),
    ];
    for (i, (name, value, words)) in cases.iter().enumerate() {
        let r = call(&e, &format!("bad{i}"), "setParameter", json!({"name": name, "value": value})).await;
        assert_eq!(r["code"], enos_cloud::codes::BAD_PARAMS, "{r}");
        let msg = r["message"].as_str().unwrap();
        assert!(msg.starts_with(words.as_str()), "{msg:?} does not start with {words:?}");
    }
    assert_eq!(std::fs::read(&file).unwrap(), before, "a refused change wrote the file");
    assert!(!log_text(&e).contains("AUDIT"), "a refused change was audited as done");
    let max_bytes = |e: &Edge| {
        let (ok, out, err) = run_tool("enosctl", &["--json", "status"], &e.bus.address);
        assert!(ok, "{err}");
        serde_json::from_str::<Value>(&out).unwrap()["uplink"]["cache"]["max_bytes"].as_u64()
    };
    assert_eq!(max_bytes(&e), Some(2 << 30));

    let r = call(&e, "u1", "setParameter", json!({"name": "uplink.cache.max_bytes", "value": 8 << 20})).await;
    assert_eq!(r["data"], json!({"name": "uplink.cache.max_bytes", "old": 2u64 << 30, "new": 8 << 20, "changed": true}), "{r}");
    assert_eq!(max_bytes(&e), Some(8 << 20), "the running cache did not take it");
    let r = call(&e, "u2", "setParameter", json!({"name": "uplink.sender.max_message_bytes", "value": "65536"})).await;
    assert_eq!(r["data"], json!({"name": "uplink.sender.max_message_bytes", "old": 480 * 1024, "new": 65536, "changed": true}), "{r}");
    let r = call(&e, "u3", "setParameter", json!({"name": "uplink.sender.max_message_bytes", "value": 65536})).await;
    assert_eq!(r["data"]["changed"], false, "{r}");
    for (i, (name, value)) in [("uplink.cache.keep_free_bytes", 32 << 20), ("uplink.cloud.max_in_flight", 8)].iter().enumerate() {
        let r = call(&e, &format!("u4{i}"), "setParameter", json!({"name": name, "value": value})).await;
        assert_eq!((r["code"].as_i64(), &r["data"]["changed"]), (Some(200), &json!(true)), "{r}");
    }
    let audit = format!("AUDIT the cloud (request u1) set uplink.cache.max_bytes: 2147483648 -> 8388608 (written to {})", file.display());
    assert!(log_text(&e).contains(&audit), "no audit line {audit:?}");
    // the sender goes on with its new setting
    let delivered = e.cloud.with(|r| r.points.len());
    wait_for(30, "deliveries after the change", || e.cloud.with(|r| (r.points.len() > delivered + 10).then_some(()))).await;
    let settings: toml::Table = toml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(settings["cache"]["max_bytes"].as_integer(), Some(8 << 20), "{settings}");
    assert_eq!(settings["sender"]["max_message_bytes"].as_integer(), Some(65536), "{settings}");
    assert_eq!(settings["sender"]["reply_timeout_s"].as_integer(), Some(3), "the rest of the file is kept: {settings}");

    // a restart starts from the file
    let connects = e.cloud.with(|r| r.attribute_updates().len());
    e.uplink.terminate();
    e.start_uplink();
    wait_for(30, "the uplink back in the cloud", || e.cloud.with(|r| (r.attribute_updates().len() > connects).then_some(()))).await;
    assert_eq!(max_bytes(&e), Some(8 << 20), "lost at the restart");
    let r = call(&e, "c1", "getConfig", json!({})).await;
    assert_eq!(r["data"]["uplink"]["sender"]["max_message_bytes"], 65536, "{r}");
    assert_eq!(r["data"]["uplink"]["cache"]["max_bytes"], 8 << 20, "{r}");
    assert_eq!(r["data"]["uplink"]["cache"]["keep_free_bytes"], 32 << 20, "{r}");
    assert_eq!(r["data"]["uplink"]["cloud"]["max_in_flight"], 8, "{r}");
    assert_eq!(r["data"]["uplink"]["cloud"]["product_key"], PK, "{r}");
    assert_eq!(r["data"]["uplink"]["cloud"]["device_secret"], "(secret)", "{r}");
}
