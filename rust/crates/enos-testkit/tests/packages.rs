//! Resource packages end to end (`docs/packages.md`): the cloud asks the gateway's service
//! `applyResourcePackage`, the cloud simulator serves the package, the uplink downloads it and
//! the collector verifies, validates, applies, checks the devices collect and rolls back. Bad
//! packages are refused in words and leave the box exactly as it was; an apply killed at any
//! step leaves the old configuration or the whole new one, never a mix.
//!
//! The key pair is made by the test (never a private key in the repository).

use enos_package::build::{build, Source};
use enos_package::ItemType;
use enos_testkit::edge::{collector_toml, uplink_toml, Edge, GW, PK, POINTS_CSV};
use enos_testkit::harness::{run_tool, spawn_service_env};
use enos_testkit::wait_for;
use serde_json::Value;
use std::path::PathBuf;

/// The uplink's download limit in these tests.
const MAX_BYTES: u64 = 64 << 10;
/// The collector's health deadline in these tests (a device that does not answer is seen as
/// not collecting after `offline_after` = 2 failed cycles).
const HEALTH_S: &str = "4";

struct Box_ {
    e: Edge,
    /// The private key (PEM), in memory only; the box gets the public key's file.
    key: String,
    key_file: PathBuf,
    next_id: u32,
    /// Break the next package transfer half way (the download must resume).
    cut_next: bool,
    /// The Range headers the package server saw for the last package.
    last_ranges: Vec<String>,
}

impl Box_ {
    async fn start() -> Box_ {
        let mut e = Edge::start().await;
        let (private, public) = enos_package::key::generate();
        let key_file = e.dir.path().join("package-key.pem");
        std::fs::write(&key_file, public).unwrap();
        let mut uplink = uplink_toml(&e.cloud.uri(), &e.dir.path().join("cache"));
        uplink = uplink.replace(
            "[[sub_device]]",
            &format!(
                "[packages]\ndir = \"{}\"\nmax_bytes = {MAX_BYTES}\nallow_http = true\n\n[[sub_device]]",
                e.dir.path().join("downloads").display()
            ),
        );
        std::fs::write(e.dir.path().join("uplink.toml"), uplink).unwrap();
        e.uplink.terminate();
        e.start_uplink();
        let mut b = Box_ { e, key: private, key_file, next_id: 0, cut_next: false, last_ranges: Vec::new() };
        b.restart_collector(None);
        wait_for(40, "the session up and values flowing", || (b.e.received().len() >= 3).then_some(())).await;
        b
    }

    fn restart_collector(&mut self, crash_at: Option<&str>) {
        self.e.collector.terminate();
        let key = self.key_file.display().to_string();
        let mut env = vec![("ENOS_PACKAGE_KEY", key.as_str()), ("ENOS_PACKAGE_HEALTH_TIMEOUT_S", HEALTH_S)];
        if let Some(step) = crash_at {
            env.push(("ENOS_PACKAGE_CRASH_AT", step));
        }
        let cfg = self.e.dir.path().join("collector.toml");
        self.e.collector = spawn_service_env("enos-collector", &cfg, &self.e.bus.address, &self.e.log(), &env);
    }

    fn config_file(&self) -> String {
        std::fs::read_to_string(self.e.dir.path().join("collector.toml")).unwrap()
    }

    /// inv01's state as the collector reports it.
    fn state(&self) -> String {
        let (_, out, _) = run_tool("enosctl", &["--json", "devices"], &self.e.bus.address);
        let v: Value = serde_json::from_str(&out).unwrap_or_default();
        v.as_array().and_then(|a| a.iter().find(|d| d["id"] == "inv01")).and_then(|d| d["state"].as_str()).unwrap_or("").to_string()
    }

    async fn collecting(&self) {
        wait_for(30, "inv01 online", || (self.state() == "online").then_some(())).await;
    }

    /// Calls the gateway's service and returns its reply.
    async fn service(&mut self, service: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = format!("p{}", self.next_id);
        let body = serde_json::json!({ "id": id, "version": "1.0", "method": format!("thing.service.{service}"), "params": params });
        self.e.cloud.command(&format!("/sys/{PK}/{GW}/thing/service/{service}"), body.to_string().as_bytes()).await;
        wait_for(30, "the service's reply", || {
            self.e.cloud.with(|r| r.command_replies.iter().map(|(_, v)| v.clone()).find(|v| v["id"] == id.as_str()))
        })
        .await
    }

    /// The progress events of `version` so far.
    fn progress(&self, version: &str) -> Vec<Value> {
        self.e.cloud.with(|r| {
            r.requests_on("/thing/event/resourcePackageProgress/post")
                .into_iter()
                .map(|v| v["params"]["value"].clone())
                .filter(|v| v["version"] == version)
                .collect()
        })
    }

    /// Serves `pkg`, asks the gateway to apply it and returns the last progress event (a final
    /// step: 100 or negative). `announce` changes what the cloud says (digest, size).
    async fn apply(&mut self, version: &str, pkg: Vec<u8>, announce: impl FnOnce(&mut Value)) -> Value {
        let before = self.progress(version).len();
        let mut params = serde_json::json!({
            "version": version,
            "sha256": sha256(&pkg),
            "size": pkg.len(),
        });
        let cut = std::mem::take(&mut self.cut_next).then_some(pkg.len() / 2);
        let (url, server) = self.e.cloud.serve_package(pkg, cut).await;
        params["url"] = url.into();
        announce(&mut params);
        let reply = self.service("applyResourcePackage", params).await;
        assert_eq!(reply["code"], 200, "{reply}");
        assert_eq!(reply["data"]["accepted"], true, "{reply}");
        let last = wait_for(40, "the package's final step", || {
            let p = self.progress(version);
            p.get(before..).and_then(|p| p.iter().find(|v| v["step"].as_i64().is_some_and(|s| s == 100 || s < 0)).cloned())
        })
        .await;
        self.last_ranges = server.log.lock().unwrap().ranges.clone();
        last
    }

    fn package(&self, version: &str, config: &str, table: &str) -> Vec<u8> {
        let items = [
            Source { path: "collector.toml".into(), kind: ItemType::CollectorConfig, data: config.as_bytes().to_vec() },
            Source { path: "points/inv01.csv".into(), kind: ItemType::PointTable, data: table.as_bytes().to_vec() },
        ];
        build("site", version, &items, Some(&enos_package::key::private_from_pem(&self.key).unwrap()))
    }

    /// The box's configuration for the simulator, with the point table in the package.
    fn site_config(&self) -> String {
        collector_toml(&self.e.sim.addr.to_string()).replace("points_csv = \"inv01.csv\"", "points_csv = \"points/inv01.csv\"")
    }
}

fn sha256(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// The point table of the box plus a new point, `extra` (holding register 30).
fn table_with_extra() -> String {
    format!("{POINTS_CSV}extra,holding,30,u16,,,fast,r,,\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_with_a_new_point_table_reaches_collecting_and_the_cloud() {
    let mut b = Box_::start().await;
    b.e.sim.with(|s| {
        s.holding.insert(30, 4242);
    });
    let pkg = b.package("1.0.0", &b.site_config(), &table_with_extra());
    let half = pkg.len() / 2;
    b.cut_next = true;
    let last = b.apply("1.0.0", pkg, |_| {}).await;
    assert_eq!(last["step"], 100, "{last}");
    assert_eq!(b.last_ranges, vec![String::new(), format!("{half}-")], "the broken download resumed where it stopped");
    assert_eq!(last["outcome"], "installed", "{last}");
    let steps: Vec<i64> = b.progress("1.0.0").iter().filter_map(|v| v["step"].as_i64()).collect();
    assert_eq!(steps, vec![0, 40, 100]);
    wait_for(30, "the new point's value in the cloud", || {
        b.e.cloud.with(|r| r.points.iter().any(|p| p.point == "extra" && p.value == 4242).then_some(()))
    })
    .await;
    assert!(b.config_file().contains("name = \"extra\""), "the configuration file holds the new point");
    let listed = b.service("getResourcePackages", serde_json::json!({})).await;
    assert_eq!(listed["code"], 200, "{listed}");
    assert_eq!(listed["data"]["installed"]["version"], "1.0.0", "{listed}");
    assert_eq!(listed["data"]["history"][0]["outcome"], "installed", "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_packages_are_refused_in_words_and_change_nothing() {
    let mut b = Box_::start().await;
    let good = b.site_config();
    let before = b.config_file();
    let table = table_with_extra();

    let unsigned = build(
        "site",
        "1.0.0",
        &[
            Source { path: "collector.toml".into(), kind: ItemType::CollectorConfig, data: good.as_bytes().to_vec() },
            Source { path: "points/inv01.csv".into(), kind: ItemType::PointTable, data: table.as_bytes().to_vec() },
        ],
        None,
    );
    let mut tampered: Value = serde_json::from_slice(&b.package("1.0.0", &good, &table)).unwrap();
    tampered["manifest"] = tampered["manifest"].as_str().unwrap().replace("\"1.0.0\"", "\"9.0.0\"").into();
    let tampered = serde_json::to_vec(&tampered).unwrap();
    let invalid = b.package("1.0.0", &good, &format!("{POINTS_CSV}extra,holding,30,u17,,,fast,r,,\n"));

    let cases: Vec<(&str, Vec<u8>, i64, &str)> = vec![
        ("unsigned", unsigned, -3, "the package is not signed"),
        ("tampered", tampered, -3, "the package's signature does not match"),
        ("invalid point table", invalid, -3, "item \"collector.toml\""),
    ];
    for (what, pkg, step, words) in cases {
        let last = b.apply("1.0.0", pkg, |_| {}).await;
        assert_eq!(last["step"], step, "{what}: {last}");
        assert!(last["message"].as_str().unwrap().contains(words), "{what}: {last}");
        assert_eq!(b.config_file(), before, "{what}: the configuration file changed");
        assert_eq!(b.state(), "online", "{what}: inv01 stopped collecting");
    }
    let invalid = b.progress("1.0.0").last().unwrap()["message"].as_str().unwrap().to_string();
    assert!(invalid.contains("u17"), "the validation names what is wrong: {invalid}");

    // The cloud announced another digest than the package's.
    let pkg = b.package("1.0.0", &good, &table);
    let last = b.apply("1.0.0", pkg, |p| p["sha256"] = "0".repeat(64).into()).await;
    assert_eq!(last["step"], -2, "{last}");
    assert!(last["message"].as_str().unwrap().contains("the cloud announced 0000"), "{last}");

    // Larger than the gateway takes: refused in the reply, before any download.
    let reply = b
        .service(
            "applyResourcePackage",
            serde_json::json!({"url": "http://127.0.0.1:9/x", "version": "1.0.0", "sha256": "0".repeat(64), "size": MAX_BYTES + 1}),
        )
        .await;
    assert_eq!(reply["code"], enos_cloud::codes::TOO_LARGE, "{reply}");
    assert_eq!(reply["message"], format!("the package of {} bytes exceeds the gateway's limit of {MAX_BYTES} bytes", MAX_BYTES + 1));
    // A server sending more than announced is cut off.
    let pkg = b.package("1.0.0", &good, &table);
    let last = b.apply("1.0.0", pkg, |p| p["size"] = 100.into()).await;
    assert_eq!(last["step"], -1, "{last}");
    assert!(last["message"].as_str().unwrap().contains("more than the announced 100 bytes"), "{last}");
    assert_eq!(b.config_file(), before, "a refused download changed the configuration");

    // Older than the installed one.
    let last = b.apply("2.0.0", b.package("2.0.0", &good, &table), |_| {}).await;
    assert_eq!(last["step"], 100, "{last}");
    let installed = b.config_file();
    let last = b.apply("1.5.0", b.package("1.5.0", &good, POINTS_CSV), |_| {}).await;
    assert_eq!(last["step"], -3, "{last}");
    assert_eq!(last["message"], "version 1.5.0 is not newer than the installed 2.0.0", "{last}");
    assert_eq!(b.config_file(), installed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_whose_device_does_not_collect_is_rolled_back() {
    let mut b = Box_::start().await;
    // Nothing listens on port 9 of 127.0.0.1 (discard, not served here).
    let dead = b.site_config().replace(&b.e.sim.addr.to_string(), "127.0.0.1:9");
    let last = b.apply("1.0.0", b.package("1.0.0", &dead, POINTS_CSV), |_| {}).await;
    assert_eq!(last["step"], -4, "{last}");
    assert_eq!(last["outcome"], "rolled-back", "{last}");
    let msg = last["message"].as_str().unwrap();
    assert!(msg.starts_with(&format!("device \"inv01\" was not collecting {HEALTH_S} s after the apply")), "{msg}");
    assert!(msg.ends_with("the previous configuration was put back"), "{msg}");
    let restored = b.config_file();
    assert!(restored.contains(&b.e.sim.addr.to_string()) && !restored.contains("127.0.0.1:9"), "not rolled back:\n{restored}");
    b.collecting().await;
    let n = b.e.received().len();
    wait_for(20, "values after the rollback", || (b.e.received().len() > n).then_some(())).await;
    let listed = b.service("getResourcePackages", serde_json::json!({})).await;
    assert_eq!(listed["data"]["installed"], Value::Null, "{listed}");
    assert_eq!(listed["data"]["history"][0]["outcome"], "rolled-back", "{listed}");
}

/// Power cut mid-apply: the collector is stopped (abort) at each step of an install; after the
/// next start the configuration is the old one whole (the package is installed only once its
/// last step is recorded), the devices collect, and a later install still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_killed_at_any_step_leaves_the_old_configuration_whole() {
    let mut b = Box_::start().await;
    let conn = zbus::connection::Builder::address(b.e.bus.address.as_str()).build().await.unwrap();
    let table = table_with_extra();
    for step in ["staged", "generation", "journal", "applied", "healthy"] {
        b.restart_collector(Some(step));
        b.collecting().await;
        let col = enos_bus::CollectorProxy::new(&conn).await.unwrap();
        let r = col.install_package(&b.package("1.0.0", &b.site_config(), &table)).await;
        assert!(r.is_err(), "{step}: the collector did not stop: {r:?}");
        b.restart_collector(None);
        b.collecting().await;
        let now = b.config_file();
        assert!(!now.contains("name = \"extra\""), "{step}: the package's configuration survived a cut apply:\n{now}");
        let col = enos_bus::CollectorProxy::new(&conn).await.unwrap();
        let listed: Value = serde_json::from_str(&col.packages().await.unwrap()).unwrap();
        assert_eq!(listed["installed"], Value::Null, "{step}: {listed}");
        if matches!(step, "journal" | "applied" | "healthy") {
            let h = listed["history"].as_array().unwrap();
            assert_eq!(h.last().unwrap()["outcome"], "interrupted", "{step}: {listed}");
        }
    }
    // The same package from a technician's enosctl.
    let file = b.e.dir.path().join("site-1.0.0.json");
    std::fs::write(&file, b.package("1.0.0", &b.site_config(), &table)).unwrap();
    let (ok, out, err) = run_tool("enosctl", &["package", "install", file.to_str().unwrap()], &b.e.bus.address);
    assert!(ok, "{out}{err}");
    assert_eq!(out.trim(), "package site 1.0.0 installed");
    assert!(b.config_file().contains("name = \"extra\""));
    let (_, out, _) = run_tool("enosctl", &["package", "history"], &b.e.bus.address);
    assert!(out.contains("site 1.0.0 interrupted by start: the collector stopped during the apply"), "{out}");
    assert!(out.trim_end().ends_with("site 1.0.0 installed by root (uid 0)"), "{out}");
    let (ok, _, err) = run_tool("enosctl", &["package", "install", file.to_str().unwrap()], &b.e.bus.address);
    assert!(!ok);
    assert_eq!(err.trim(), "enosctl: package refused 1.0.0: version 1.0.0 is not newer than the installed 1.0.0");
}
