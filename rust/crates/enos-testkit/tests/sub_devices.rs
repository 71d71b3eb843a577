//! Sub-devices the gateway registers itself, end to end with real parts: the service binaries on
//! a private dbus-daemon, a real mosquitto behind the cloud simulator, a simulated Modbus device.
//! A device given a product key (over D-Bus, as the web center does) is registered, logged in and
//! uploads; a restart registers nothing again; the cloud's refusal and hostile replies are said in
//! words while the rest keeps flowing; the cloud's disable stops that device; a removal logs out.

use enos_testkit::cloud_sim::{CloudSim, Hostile};
use enos_testkit::harness::{run_tool, spawn_service, Bus, Mosquitto, Proc};
use enos_testkit::modbus_sim::SimServer;
use enos_testkit::wait_for;
use std::collections::HashMap;
use std::path::PathBuf;

const PK: &str = "pkGW";
const GW: &str = "gw01";
const SUB_PK: &str = "pkInv";
/// The device key the gateway proposes for its device `inv01`.
const SUB_DK: &str = "gw01_inv01";

struct Edge {
    dir: tempfile::TempDir,
    bus: Bus,
    _broker: Mosquitto,
    cloud: CloudSim,
    _sim: SimServer,
    _collector: Proc,
    uplink: Proc,
}

fn collector_toml(addr: &str, product_key: Option<&str>) -> String {
    let pk = product_key.map(|p| format!("product_key = \"{p}\"\n")).unwrap_or_default();
    format!(
        "[push]\ninterval_ms = 100\n\n[[device]]\nid = \"inv01\"\n{pk}protocol = \"modbus-tcp\"\naddress = \"{addr}\"\n\
         timeout_ms = 2000\npoll_groups = [{{ name = \"fast\", interval_ms = 200 }}]\n\n\
         [[device.point]]\nname = \"counter\"\narea = \"holding\"\naddress = 0\ntype = \"u32\"\ngroup = \"fast\"\n\n\
         [[device.point]]\nname = \"sp\"\narea = \"holding\"\naddress = 10\ntype = \"u16\"\naccess = \"rw\"\nmin = 0\nmax = 100\n\
         group = \"fast\"\n\n[[device.point]]\nname = \"extra\"\narea = \"holding\"\naddress = 20\ntype = \"u16\"\ngroup = \"fast\"\n"
    )
}

fn uplink_toml(uri: &str, cache: &std::path::Path) -> String {
    format!(
        "[cloud]\nuri = \"{uri}\"\nallow_plain = true\nproduct_key = \"{PK}\"\ndevice_key = \"{GW}\"\ndevice_secret = \"gw-secret\"\n\
         reconnect_min_ms = 200\nreconnect_max_ms = 1000\n\n[cache]\ndir = \"{}\"\n\n[sender]\nresume_after_s = 5\n\n\
         [health]\ninterval_s = 1\n\n[registration]\ntimezone = \"+08:00\"\npoll_s = 1\n",
        cache.display()
    )
}

impl Edge {
    async fn start(product_key: Option<&str>, setup: impl FnOnce(&CloudSim)) -> Edge {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::start(dir.path());
        let broker = Mosquitto::start(dir.path());
        let cloud = CloudSim::start(broker.port, HashMap::from([(GW.to_string(), "gw-secret".to_string())])).await;
        setup(&cloud);
        let sim = SimServer::start(1).await;
        sim.with(|s| s.counters.push(0));
        std::fs::write(dir.path().join("collector.toml"), collector_toml(&sim.addr.to_string(), product_key)).unwrap();
        std::fs::write(dir.path().join("uplink.toml"), uplink_toml(&cloud.uri(), &dir.path().join("cache"))).unwrap();
        let log = dir.path().join("services.log");
        let uplink = spawn_service("enos-uplink", &dir.path().join("uplink.toml"), &bus.address, &log);
        let collector = spawn_service("enos-collector", &dir.path().join("collector.toml"), &bus.address, &log);
        Edge { dir, bus, _broker: broker, cloud, _sim: sim, _collector: collector, uplink }
    }

    fn restart_uplink(&mut self) {
        self.uplink.terminate();
        let log = self.dir.path().join("services.log");
        self.uplink = spawn_service("enos-uplink", &self.dir.path().join("uplink.toml"), &self.bus.address, &log);
    }

    fn identities(&self) -> PathBuf {
        self.dir.path().join("sub-devices.json")
    }

    /// `enosctl cloud`'s output (what it says when the uplink is not up yet, too).
    fn cloud_table(&self) -> String {
        let (_, out, err) = run_tool("enosctl", &["cloud"], &self.bus.address);
        out + &err
    }

    /// Samples of `point` the cloud stored under the sub-device's keys, and of the gateway's own.
    fn stored(&self, point: &str) -> usize {
        self.cloud.with(|r| r.points.iter().filter(|p| p.point == point && p.device_key.as_deref() == Some(SUB_DK)).count())
    }
    /// Whether the cloud has a sample of `point` of the sub-device acquired before `ms`.
    fn stored_before(&self, point: &str, ms: u64) -> bool {
        self.cloud.with(|r| r.points.iter().any(|p| p.point == point && p.device_key.as_deref() == Some(SUB_DK) && p.time < ms))
    }
    fn gateway_points(&self) -> usize {
        self.cloud.with(|r| r.points.iter().filter(|p| p.device_key.is_none()).count())
    }

    /// Changes the collector's configuration over D-Bus, as the web center does.
    async fn edit_device(&self, f: impl FnOnce(&mut serde_json::Value)) {
        let conn = zbus::connection::Builder::address(self.bus.address.as_str()).build().await.unwrap();
        let c = enos_bus::CollectorProxy::new(&conn).await.unwrap();
        let mut doc: serde_json::Value = serde_json::from_str(&c.get_config().await.unwrap()).unwrap();
        f(&mut doc);
        let answer = c.apply_config(&doc.to_string()).await.unwrap();
        assert!(answer.contains("\"ok\":true"), "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_given_a_product_key_is_registered_once_uploads_and_is_logged_out_when_removed() {
    let mut e = Edge::start(None, |_| {}).await;
    wait_for(30, "the gateway's own points in the cloud", || (e.gateway_points() > 0).then_some(())).await;
    wait_for(10, "the collector's devices read by the uplink", || e.cloud_table().starts_with("no sub-devices").then_some(())).await;

    // the operator gives the device a product key (the web center's device editor)
    e.edit_device(|d| d["device"][0]["product_key"] = SUB_PK.into()).await;
    wait_for(30, "the device's first point accepted under its registered keys", || (e.stored("counter") > 0).then_some(())).await;
    let reg = e.cloud.with(|r| r.requests_on("/thing/device/register"));
    assert_eq!(reg.len(), 1, "{reg:?}");
    assert_eq!(reg[0]["version"], "1.1");
    assert_eq!(reg[0]["params"][0]["deviceName"]["defaultValue"], "inv01");
    assert_eq!(reg[0]["params"][0]["timezone"], "+08:00");
    let key = (SUB_PK.to_string(), SUB_DK.to_string());
    assert!(e.cloud.with(|r| r.topo.contains(&key) && r.online.contains(&key)), "in the topology and logged in (with its secret)");
    // its identity is kept like the gateway's secret: a file only the uplink reads
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(e.identities()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let secret = e.cloud.with(|r| r.devices[&key].0.clone());
    assert!(std::fs::read_to_string(e.identities()).unwrap().contains(&secret));
    let table = e.cloud_table();
    assert!(table.contains("inv01") && table.contains(SUB_DK) && table.contains("logged-in") && table.contains(" yes "), "{table}");

    // a restart: logged in again with the stored identity, never registered again
    let logins = e.cloud.with(|r| r.requests_on("/combine/login/batch").len());
    e.restart_uplink();
    wait_for(30, "the login after the restart", || (e.cloud.with(|r| r.requests_on("/combine/login/batch").len()) > logins).then_some(()))
        .await;
    let before = e.stored("counter");
    wait_for(30, "points after the restart", || (e.stored("counter") > before).then_some(())).await;
    assert_eq!(e.cloud.with(|r| r.registrations()), 1, "registered once only");

    // the cloud disables it: answered, said, and its data stops while the gateway's goes on
    let disable = format!(r#"{{"id":"77","method":"combine.disable","params":{{"productKey":"{SUB_PK}","deviceKey":"{SUB_DK}"}}}}"#);
    e.cloud.command(&format!("/ext/session/{PK}/{GW}/combine/disable"), disable.as_bytes()).await;
    wait_for(10, "the answer to the disable", || {
        e.cloud.with(|r| r.command_replies.iter().find(|(t, _)| t.ends_with("/combine/disable_reply")).map(|(_, v)| v.clone()))
    })
    .await;
    wait_for(10, "the disabled state", || e.cloud_table().contains("the cloud disabled this device").then_some(())).await;
    // what was already on its way may still land; after that nothing more of this device
    let settled = e.stored("counter");
    let gw = e.gateway_points();
    wait_for(10, "more of the gateway's points", || (e.gateway_points() > gw + 2).then_some(())).await;
    let after = e.stored("counter");
    let gw = e.gateway_points();
    wait_for(10, "more of the gateway's points", || (e.gateway_points() > gw + 2).then_some(())).await;
    assert_eq!(e.stored("counter"), after, "a disabled device uploads nothing (settled from {settled})");

    // removed from the configuration: logged out and out of the topology; its identity kept
    e.edit_device(|d| d["device"].as_array_mut().unwrap().clear()).await;
    wait_for(20, "the logout and topology delete", || {
        e.cloud.with(|r| (!r.topo.contains(&key) && !r.requests_on("/combine/logout").is_empty()).then_some(()))
    })
    .await;
    wait_for(10, "the device gone from the list", || e.cloud_table().starts_with("no sub-devices").then_some(())).await;
    assert!(std::fs::read_to_string(e.identities()).unwrap().contains("removed_ms"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_registration_is_said_with_the_clouds_code_retried_later_and_stops_nothing_else() {
    let e = Edge::start(Some(SUB_PK), |c| c.with(|r| r.refuse_register = Some((1000, "product pkInv not found".into())))).await;
    let table = wait_for(30, "the refusal in words", || {
        let t = e.cloud_table();
        t.contains("refused").then_some(t)
    })
    .await;
    assert!(table.contains("registration: refused by the cloud with code 1000: product pkInv not found"), "{table}");
    let refused_at = enos_batch::now_ms();
    assert!(table.contains(" no "), "{table}");
    let (ok, status, _) = run_tool("enosctl", &["status"], &e.bus.address);
    assert!(ok && status.contains("sub-devices 0 of 1 uploading, 1 not"), "{status}");
    // the cloud's operator hears of it as an event of the gateway (monitor.check_s, 5 s by default)
    let ev = wait_for(30, "the subDeviceRefused event", || e.cloud.with(|r| r.events("subDeviceRefused").into_iter().next())).await;
    assert_eq!(ev["device"], "inv01", "{ev}");
    assert!(ev["reason"].as_str().is_some_and(|r| r.contains("code 1000: product pkInv not found")), "{ev}");
    // the gateway's own data keeps going
    let gw = e.gateway_points();
    wait_for(15, "the gateway's points while the device is refused", || (e.gateway_points() > gw + 2).then_some(())).await;
    // asked again with backoff, not every second
    assert!(e.cloud.with(|r| r.registrations()) <= 2, "{} registrations", e.cloud.with(|r| r.registrations()));
    // the cloud takes it now: registered at the next attempt, and it uploads
    e.cloud.with(|r| r.refuse_register = None);
    wait_for(40, "the device's points after the refusal ended", || (e.stored("counter") > 0).then_some(())).await;
    // what it read while refused waited in the cache and follows (back-fill), nothing lost
    wait_for(30, "the device's samples from while it was refused", || e.stored_before("counter", refused_at).then_some(())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_registration_replies_are_said_and_the_data_path_goes_on() {
    let e = Edge::start(Some(SUB_PK), |c| c.with(|r| r.hostile_register = Some(Hostile::NotJson))).await;
    let t = wait_for(30, "a reply that is no JSON, in words", || {
        let t = e.cloud_table();
        t.contains("not a JSON reply").then_some(t)
    })
    .await;
    assert!(t.contains("registering") && t.contains("asking again in"), "{t}");
    let failed_at = enos_batch::now_ms();
    e.cloud.with(|r| r.hostile_register = Some(Hostile::WrongId));
    let t = wait_for(30, "a reply with a wrong id, in words", || {
        let t = e.cloud_table();
        t.contains("a reply with id \"999999\"").then_some(t)
    })
    .await;
    assert!(!t.contains("not a JSON reply"), "{t}");
    let gw = e.gateway_points();
    wait_for(15, "the gateway's points meanwhile", || (e.gateway_points() > gw + 2).then_some(())).await;
    assert!(e.cloud.with(|r| r.devices.is_empty()));
    e.cloud.with(|r| r.hostile_register = None);
    wait_for(40, "the device's points once the cloud answers well", || (e.stored("counter") > 0).then_some(())).await;
    assert!(e.cloud.with(|r| r.registrations()) >= 3);
    // what it read meanwhile waited in the cache: nothing of it lost
    wait_for(30, "the device's samples from the hostile replies' time", || e.stored_before("counter", failed_at).then_some(())).await;
}

/// A model the simulated cloud holds for the sub-device's product.
fn model(version: &str, counter_type: &str) -> serde_json::Value {
    serde_json::json!({"version": version,
        "tslMeasurepointMap": {"counter": {"dataDefinition": {"type": counter_type}}, "sp": {"dataType": "INT", "accessMode": "r"},
                               "power": {"dataType": "FLOAT"}},
        "tslAttributeMap": {}, "tslEventMap": {}, "tslServiceMap": {}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_model_is_fetched_on_login_kept_and_checked_against_the_points() {
    let e = Edge::start(Some(SUB_PK), |c| c.with(|r| drop(r.models.insert(SUB_PK.into(), model("7", "STRING"))))).await;
    let check = |fetch: bool| {
        let args: &[&str] = if fetch { &["model", "check", "inv01", "--fetch"] } else { &["model", "check", "inv01"] };
        let (_, out, err) = run_tool("enosctl", args, &e.bus.address);
        out + &err
    };
    let out = wait_for(30, "the model fetched after the login", || {
        let o = check(false);
        o.contains("version 7").then_some(o)
    })
    .await;
    assert!(out.contains("counter: configured as u32 (an integer value), the device model says STRING"), "{out}");
    assert!(out.contains("sp: writable here, read-only in the device model"), "{out}");
    assert!(out.contains("extra: the device model has no measure point extra"), "{out}");
    // kept on disk, so a box offline still knows it
    let kept = e.dir.path().join("device-models").join(format!("{SUB_PK}.json"));
    assert!(std::fs::read_to_string(&kept).unwrap().contains("\"version\": \"7\""));

    // the cloud changes the model: no push, so asked for
    e.cloud.with(|r| drop(r.models.insert(SUB_PK.into(), model("8", "LONG"))));
    let out = check(true);
    assert!(out.contains("version 8") && !out.contains("counter:"), "{out}");

    // a skeleton point table for the device's protocol
    let (ok, csv, err) = run_tool("enosctl", &["model", "skeleton", "inv01"], &e.bus.address);
    assert!(ok, "{err}");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[0], "name");
    let t = header.iter().position(|h| *h == "type").unwrap();
    let power: Vec<&str> = csv.lines().find(|l| l.starts_with("power,")).unwrap().split(',').collect();
    assert_eq!(power[t], "f32", "{csv}");

    // the cloud refuses the model now: said, and the kept one still answered
    e.cloud.with(|r| r.models.clear());
    let out = check(true);
    assert!(out.contains("not fetched now: refused by the cloud with code 1102") && out.contains("version 8"), "{out}");
}
