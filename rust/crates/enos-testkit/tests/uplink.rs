//! What the uplink sends, in which order, and its words, checked by a strict cloud simulator:
//! per-point acquisition order on each path across outages, stale data never live, a lost login
//! reply, an update declined without the update agent, an orderly stop; cloud commands in the
//! order sent, once, never from a retained message, and only to points with a range.

use enos_testkit::cloud_sim::{CloudSim, OrderReport};
use enos_testkit::harness::{spawn_service, Bus, Mosquitto, Proc};
use enos_testkit::modbus_sim::SimServer;
use enos_testkit::wait_for;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

const PK: &str = "pkGW";
const GW: &str = "gw01";
const SUB_PK: &str = "pkInv";
/// `sender.resume_after_s` of these tests.
const RESUME_AFTER_MS: u64 = 3000;
/// How much older than `resume_after_s` a live sample may be when the cloud gets it: the time
/// from the sender's choice to the simulator (a local broker, a loaded 2-core machine).
const LIVE_AGE_TOLERANCE_MS: u64 = 1000;

const COLLECTOR_TOML: &str = r#"
[push]
interval_ms = 100

[[device]]
id = "inv01"
protocol = "modbus-tcp"
address = "ADDR"
timeout_ms = 2000
retries = 0
offline_after = 2
reconnect_min_ms = 100
reconnect_max_ms = 400
poll_groups = [{ name = "fast", interval_ms = 100 }]
points_csv = "inv01.csv"
"#;

/// `free` has no range (the cloud may not write it), `wide` neither, but the uplink's config lets
/// the cloud write its whole u16 range.
const POINTS_CSV: &str = "name,area,address,type,order,scale,group,access,min,max\n\
counter,holding,0,u32,ABCD,,fast,r,,\n\
power,holding,2,f32,CDAB,,fast,r,,\n\
sp_a,holding,10,u16,,,fast,rw,0,1000\n\
sp_b,holding,11,u16,,,fast,rw,0,1000\n\
free,holding,12,u16,,,fast,rw,,\n\
wide,holding,13,u16,,,fast,rw,,\n";

/// A small in-flight window: after an outage the live records outnumber it many times, so the
/// order in which the sender picks them shows.
fn uplink_toml(uri: &str, cache: &std::path::Path, sub_device_extra: &str) -> String {
    format!(
        r#"
[cloud]
uri = "{uri}"
allow_plain = true
product_key = "{PK}"
device_key = "{GW}"
device_secret = "gw-secret"
reconnect_min_ms = 200
reconnect_max_ms = 1000
max_in_flight = 8

[cache]
dir = "{}"

[sender]
resume_after_s = {}
reply_timeout_s = 3
max_attempts = 3

[health]
interval_s = 1

[[sub_device]]
device = "inv01"
product_key = "{SUB_PK}"
device_key = "inv01"
device_secret = "inv-secret"
{sub_device_extra}
"#,
        cache.display(),
        RESUME_AFTER_MS / 1000
    )
}

struct Edge {
    dir: tempfile::TempDir,
    bus: Bus,
    broker: Mosquitto,
    cloud: CloudSim,
    sim: SimServer,
    _collector: Proc,
    uplink: Proc,
}

impl Edge {
    async fn start() -> Edge {
        Edge::start_with("").await
    }
    /// `sub_device_extra`: more settings of the sub-device in uplink.toml.
    async fn start_with(sub_device_extra: &str) -> Edge {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::start(dir.path());
        let broker = Mosquitto::start(dir.path());
        let cloud = CloudSim::start(broker.port, HashMap::from([(GW.to_string(), "gw-secret".to_string())])).await;
        let sim = SimServer::start(1).await;
        sim.with(|s| s.counters.push(0));
        std::fs::write(dir.path().join("collector.toml"), COLLECTOR_TOML.replace("ADDR", &sim.addr.to_string())).unwrap();
        std::fs::write(dir.path().join("inv01.csv"), POINTS_CSV).unwrap();
        std::fs::write(dir.path().join("uplink.toml"), uplink_toml(&cloud.uri(), &dir.path().join("cache"), sub_device_extra)).unwrap();
        let log = dir.path().join("services.log");
        let uplink = spawn_service("enos-uplink", &dir.path().join("uplink.toml"), &bus.address, &log);
        let collector = spawn_service("enos-collector", &dir.path().join("collector.toml"), &bus.address, &log);
        Edge { dir, bus, broker, cloud, sim, _collector: collector, uplink }
    }
    fn log(&self) -> PathBuf {
        self.dir.path().join("services.log")
    }
    fn start_uplink(&mut self) {
        self.uplink = spawn_service("enos-uplink", &self.dir.path().join("uplink.toml"), &self.bus.address, &self.log());
    }
    fn served(&self) -> Vec<u32> {
        self.sim.with(|s| s.served.get(&0).cloned().unwrap_or_default())
    }
    /// Counter values the cloud stored: (value, acquisition ms, came through resume).
    fn received(&self) -> Vec<(u64, u64, bool)> {
        self.cloud.with(|r| {
            r.points
                .iter()
                .filter(|p| p.point == "counter" && p.device_key.as_deref() == Some("inv01"))
                .filter_map(|p| p.value.as_u64().map(|v| (v, p.time, p.resume)))
                .collect()
        })
    }
    fn report(&self) -> OrderReport {
        self.cloud.with(|r| r.order_report())
    }
    /// The log lines of the uplink at error level.
    fn uplink_errors(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        text.lines().filter(|l| l.contains(" enos-uplink ERROR")).map(String::from).collect()
    }
    /// Sends `measurepoint/set` to the sub-device.
    async fn set(&self, id: &str, params: &str) {
        let body = format!(r#"{{"id":"{id}","version":"1.0","method":"thing.service.measurepoint.set","params":{params}}}"#);
        self.cloud.command(&format!("/sys/{SUB_PK}/inv01/thing/service/measurepoint/set"), body.as_bytes()).await;
    }
    /// The replies to the commands with these ids (waits for one to each).
    async fn replies(&self, ids: &[&str]) -> HashMap<String, serde_json::Value> {
        wait_for(30, "the command replies", || {
            let got: HashMap<String, serde_json::Value> = self
                .cloud
                .with(|r| r.command_replies.iter().filter_map(|(_, v)| Some((v["id"].as_str()?.to_string(), v.clone()))).collect());
            ids.iter().all(|i| got.contains_key(*i)).then_some(got)
        })
        .await
    }
    /// Waits until the cloud got a live counter value newer than `than`.
    async fn live_newer_than(&self, than: u64, what: &str) {
        wait_for(40, what, || self.received().iter().any(|r| !r.2 && r.0 > than).then_some(())).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_path_keeps_per_point_acquisition_order_and_stale_data_never_goes_live() {
    let mut e = Edge::start().await;
    wait_for(30, "live data", || (e.received().len() >= 10).then_some(())).await;

    // 1. The uplink is away for twice resume_after_s: the collector keeps its batches and hands
    //    them over when the uplink is back. They arrive in the cache now, but were acquired
    //    seconds ago: backlog, not live data.
    e.uplink.terminate();
    let n = e.served().len();
    wait_for(30, "polls while the uplink is away", || (e.served().len() >= n + 60).then_some(())).await;
    e.start_uplink();
    let last = *e.served().last().unwrap() as u64;
    e.live_newer_than(last, "live data after the uplink's restart").await;

    // 2. The broker is away for twice resume_after_s: the cache holds the backlog and, when the
    //    session is back, many more live records than the in-flight window.
    e.broker.stop();
    let n = e.served().len();
    wait_for(30, "polls while the broker is away", || (e.served().len() >= n + 60).then_some(())).await;
    let outage_last = *e.served().last().unwrap() as u64;
    e.broker.restart();
    e.live_newer_than(outage_last, "live data after the broker's return").await;

    // Everything served so far reaches the cloud (the backlog drains).
    let served: BTreeSet<u64> = e.served().iter().map(|&v| v as u64).collect();
    let want = *served.iter().next_back().unwrap();
    wait_for(60, "the backlog drained", || {
        let got: BTreeSet<u64> = e.received().iter().map(|r| r.0).collect();
        (served.iter().filter(|v| **v <= want && !got.contains(v)).count() <= 2).then_some(())
    })
    .await;

    let rep = e.report();
    eprintln!(
        "live {} resume {} duplicates {} oldest live {} ms, {} inversions",
        rep.live_samples,
        rep.resume_samples,
        rep.duplicates,
        rep.live_max_age_ms,
        rep.inversions.len()
    );
    assert!(rep.resume_samples >= 100 && rep.live_samples >= 100, "both paths exercised: {rep:?}");
    assert!(
        rep.inversions.is_empty(),
        "{} per-point inversions, first: {:?}",
        rep.inversions.len(),
        &rep.inversions[..rep.inversions.len().min(5)]
    );
    assert!(
        rep.live_max_age_ms <= RESUME_AFTER_MS + LIVE_AGE_TOLERANCE_MS,
        "a post/batch sample was {} ms old when the cloud got it (resume_after_s is {} s)",
        rep.live_max_age_ms,
        RESUME_AFTER_MS / 1000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_login_reply_keeps_the_session_and_the_gateway_data_flowing() {
    let mut e = Edge::start().await;
    wait_for(30, "live data", || (e.received().len() >= 10).then_some(())).await;
    let connects = e.cloud.with(|r| r.connects_ok);
    e.cloud.with(|r| r.unanswered_topo_add = 1);
    e.broker.stop();
    let n = e.served().len();
    wait_for(30, "polls while the broker is away", || (e.served().len() >= n + 30).then_some(())).await;
    let outage_last = *e.served().last().unwrap() as u64;
    let from = e.cloud.with(|r| r.arrivals.len());
    e.broker.restart();
    // The first thing.topo.add after the return gets no reply: the uplink asks again on the same
    // session, and the gateway's own data goes out in the meantime.
    let topo_adds = |a: &[String]| a.iter().enumerate().filter(|(_, t)| t.ends_with("/thing/topo/add")).map(|(i, _)| i).collect::<Vec<_>>();
    let arrivals = wait_for(20, "thing.topo.add asked again", || {
        let a = e.cloud.with(|r| r.arrivals[from..].to_vec());
        (topo_adds(&a).len() >= 2).then_some(a)
    })
    .await;
    let t = topo_adds(&arrivals);
    assert!(
        arrivals[t[0]..t[1]].iter().any(|t| t.ends_with("/measurepoint/post/batch")),
        "no live data while the login waited: {:?}",
        &arrivals[t[0]..t[1]]
    );
    e.live_newer_than(outage_last, "the sub-device's live data after its login").await;
    assert_eq!(e.cloud.with(|r| r.connects_ok), connects + 1, "one reconnect after the outage, the session kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_without_the_update_agent_is_declined_in_words_reply_first() {
    // No enos-ota on this bus.
    let e = Edge::start().await;
    wait_for(30, "the session up", || (e.received().len() >= 3).then_some(())).await;
    let informed =
        e.cloud.with(|r| r.requests.iter().find(|(t, _)| t.ends_with("/ota/device/inform")).map(|(_, v)| v["params"]["version"].clone()));
    let product = option_env!("ENOS_VERSION").unwrap_or(env!("CARGO_PKG_VERSION"));
    assert_eq!(informed, Some(serde_json::json!(product)), "the product's version, not the host's");
    let from = e.cloud.with(|r| r.arrivals.len());
    let job = r#"{"id":"77","version":"1.0","method":"ota.device.upgrade","params":{"version":"9.9.9","fileUrl":"http://127.0.0.1:1/x.swu","md5":"00000000000000000000000000000000","fileSize":1}}"#;
    e.cloud.command(&format!("/sys/{PK}/{GW}/ota/device/upgrade"), job.as_bytes()).await;
    let (reply, progress) = wait_for(20, "the reply and the progress", || {
        e.cloud.with(|r| {
            let reply = r.command_replies.iter().find(|(_, v)| v["id"] == "77").map(|(_, v)| v.clone())?;
            let progress = r.requests.iter().find(|(t, _)| t.ends_with("/ota/device/progress")).map(|(_, v)| v.clone())?;
            Some((reply, progress))
        })
    })
    .await;
    assert_eq!(reply["code"], 2010, "{reply}");
    let words = reply["message"].as_str().unwrap_or_default();
    assert!(words.contains("the update agent is not running") && !words.contains("org.freedesktop"), "{words}");
    assert_eq!(progress["params"]["step"], "-5", "{progress}");
    let desc = progress["params"]["desc"].as_str().unwrap_or_default();
    assert!(desc.contains("the update agent is not running") && !desc.contains("org.freedesktop"), "{desc}");
    let arrivals = e.cloud.with(|r| r.arrivals[from..].to_vec());
    let at = |end: &str| arrivals.iter().position(|t| t.ends_with(end));
    assert!(at("/ota/device/upgrade_reply") < at("/ota/device/progress"), "the reply before the progress: {arrivals:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orderly_stop_of_the_uplink_logs_no_error() {
    let mut e = Edge::start().await;
    wait_for(30, "data flowing", || (e.received().len() >= 20).then_some(())).await;
    // Commands keep coming while the uplink stops: messages arrive after its tasks ended.
    let topic = format!("/sys/{PK}/{GW}/thing/service/measurepoint/set");
    let set = |id: usize| format!(r#"{{"id":"{id}","version":"1.0","method":"thing.service.measurepoint.set","params":{{"x":1}}}}"#);
    let pid = nix::unistd::Pid::from_raw(e.uplink.child.as_ref().unwrap().id() as i32);
    for i in 0..2000 {
        if i == 200 {
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        }
        e.cloud.command(&topic, set(i).as_bytes()).await;
    }
    e.uplink.terminate();
    let log = std::fs::read_to_string(e.log()).unwrap_or_default();
    assert!(log.contains("enos-uplink INFO: stopping"), "the uplink did not stop in order");
    let errors = e.uplink_errors();
    assert!(errors.is_empty(), "errors logged by an orderly stop: {errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_reach_a_device_in_the_order_sent_and_points_in_the_cloud_order() {
    let e = Edge::start().await;
    wait_for(30, "the session up", || (e.received().len() >= 3).then_some(())).await;
    let ids: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
    for (i, id) in ids.iter().enumerate() {
        // sp_b first: the order the cloud wrote, not the alphabet's
        e.set(id, &format!(r#"{{"sp_b":{i},"sp_a":{i}}}"#)).await;
    }
    let replies = e.replies(&ids.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert!(replies.values().all(|r| r["code"] == 200), "{replies:?}");
    let writes = e.sim.with(|s| s.writes.clone());
    let want: Vec<(u16, Vec<u16>)> = (0..20u16).flat_map(|i| [(11, vec![i]), (10, vec![i])]).collect();
    assert_eq!(writes, want, "the device got the commands out of order, or a command's points out of the cloud's order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_and_repeated_commands_are_not_executed_again() {
    let mut e = Edge::start().await;
    wait_for(30, "the session up", || (e.received().len() >= 3).then_some(())).await;
    // A command left retained on the broker while the uplink is away: the uplink gets it when it
    // subscribes, flagged retained, and must not run it.
    e.uplink.terminate();
    let cli = paho_mqtt::CreateOptionsBuilder::new_v3()
        .server_uri(format!("tcp://127.0.0.1:{}", e.broker.port))
        .client_id("retainer")
        .persistence(paho_mqtt::PersistenceType::None)
        .create_client()
        .unwrap();
    cli.connect(None).await.unwrap();
    let stale = r#"{"id":"r1","version":"1.0","method":"thing.service.measurepoint.set","params":{"sp_a":500}}"#;
    let topic = format!("/sys/{SUB_PK}/inv01/thing/service/measurepoint/set");
    cli.publish(paho_mqtt::Message::new_retained(topic.as_str(), stale, 1)).await.unwrap();
    cli.disconnect(None).await.unwrap();
    // The uplink informs its version right after it subscribed: commands sent before that would
    // find no subscriber (a connect alone is too early; this test timed out under load).
    let informs = |c: &CloudSim| c.with(|r| r.arrivals.iter().filter(|t| t.ends_with("/ota/device/inform")).count());
    let before = informs(&e.cloud);
    e.start_uplink();
    wait_for(30, "the uplink back and subscribed", || (informs(&e.cloud) > before).then_some(())).await;

    // The same id twice (a resend by the cloud, a QoS 1 re-delivery), then another command.
    e.set("d1", r#"{"sp_a":7}"#).await;
    e.set("d1", r#"{"sp_a":7}"#).await;
    e.set("d2", r#"{"sp_a":8}"#).await;
    e.set("d1", r#"{"sp_a":7}"#).await;
    e.set("end", r#"{"sp_b":1}"#).await;
    let replies = e.replies(&["d1", "d2", "end"]).await;
    assert!(["d1", "d2", "end"].iter().all(|i| replies[*i]["code"] == 200), "{replies:?}");
    let writes = e.sim.with(|s| s.writes.clone());
    assert_eq!(writes, vec![(10, vec![7]), (10, vec![8]), (11, vec![1])], "retained or repeated commands ran");
    assert!(e.cloud.with(|r| r.command_replies.iter().all(|(_, v)| v["id"] != "r1")), "the retained command was answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_write_to_a_point_without_a_range_is_refused_in_words() {
    let e = Edge::start_with(r#"type_range_points = ["wide"]"#).await;
    wait_for(30, "the session up", || (e.received().len() >= 3).then_some(())).await;
    e.set("1", r#"{"free":5}"#).await;
    e.set("2", r#"{"sp_a":9,"free":1}"#).await;
    e.set("3", r#"{"wide":6}"#).await;
    let replies = e.replies(&["1", "2", "3"]).await;
    for id in ["1", "2"] {
        assert_eq!(replies[id]["code"], 2005, "{replies:?}");
        let words = replies[id]["message"].as_str().unwrap_or_default();
        assert!(words.starts_with("free: the cloud may not write a point without a configured range"), "{words}");
    }
    assert_eq!(replies["3"]["code"], 200, "the config allows wide's whole type range: {replies:?}");
    let writes = e.sim.with(|s| s.writes.clone());
    assert_eq!(writes, vec![(13, vec![6])], "a refused command wrote something");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_of_the_gateway_it_does_not_have_is_refused_in_words() {
    let e = Edge::start().await;
    wait_for(30, "the session up", || (e.received().len() >= 3).then_some(())).await;
    let body = r#"{"id":"g1","version":"1.0","method":"thing.service.noSuchService","params":{"a":1}}"#;
    e.cloud.command(&format!("/sys/{PK}/{GW}/thing/service/noSuchService"), body.as_bytes()).await;
    let replies = e.replies(&["g1"]).await;
    let r = &replies["g1"];
    assert_eq!(r["code"], enos_cloud::codes::NO_HANDLER, "{r}");
    assert_eq!(r["message"], "the gateway has no service \"noSuchService\"", "{r}");
}
