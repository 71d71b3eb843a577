//! A device serving NaN or ±infinity in float registers: not a good value anywhere, neither in
//! `enosctl read` nor at the cloud (the quality form, decode error), with the words kept.

use enos_testkit::cloud_sim::CloudSim;
use enos_testkit::harness::{run_tool, spawn_service, uplink_toml_one_device, Bus, Mosquitto};
use enos_testkit::modbus_sim::SimServer;
use enos_testkit::wait_for;
use std::collections::HashMap;

const CSV: &str = "name,area,address,type,order,group,access\n\
ok,holding,0,f32,ABCD,fast,r\n\
nan,holding,2,f32,ABCD,fast,r\n\
inf,holding,4,f32,ABCD,fast,r\n\
neg_inf,holding,6,f32,ABCD,fast,r\n\
nan64,holding,8,f64,ABCD,fast,r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nan_and_infinity_travel_as_decode_errors_not_as_good_nulls() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let broker = Mosquitto::start(dir.path());
    let cloud = CloudSim::start(broker.port, HashMap::from([("gw01".to_string(), "s".to_string())])).await;
    let sim = SimServer::start(1).await;
    sim.with(|s| {
        for (a, w) in [(0, 0x4367), (1, 0x6666), (2, 0x7FC0), (3, 0), (4, 0x7F80), (5, 0), (6, 0xFF80), (7, 0), (8, 0x7FF8)] {
            s.holding.insert(a, w);
        }
    });
    std::fs::write(dir.path().join("points.csv"), CSV).unwrap();
    std::fs::write(
        dir.path().join("collector.toml"),
        format!(
            "[push]\ninterval_ms = 100\n[[device]]\nid = \"meter\"\nprotocol = \"modbus-tcp\"\naddress = \"{}\"\n\
             poll_groups = [{{ name = \"fast\", interval_ms = 200 }}]\npoints_csv = \"points.csv\"\n",
            sim.addr
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("uplink.toml"), uplink_toml_one_device(&cloud.uri(), &dir.path().join("cache"), "meter")).unwrap();
    let log = dir.path().join("services.log");
    let _uplink = spawn_service("enos-uplink", &dir.path().join("uplink.toml"), &bus.address, &log);
    let _collector = spawn_service("enos-collector", &dir.path().join("collector.toml"), &bus.address, &log);

    // The cloud: the good float plain, every non-finite one in the quality form as a decode error.
    let names = ["ok", "nan", "inf", "neg_inf", "nan64"];
    let got = wait_for(30, "every point at the cloud", || {
        let got: HashMap<String, serde_json::Value> = cloud.with(|r| {
            r.points.iter().filter(|p| p.device_key.as_deref() == Some("meter")).map(|p| (p.point.clone(), p.value.clone())).collect()
        });
        names.iter().all(|n| got.contains_key(*n)).then_some(got)
    })
    .await;
    assert_eq!(got["ok"], serde_json::json!(231.4));
    for n in &names[1..] {
        assert_eq!(got[*n], serde_json::json!({"value": null, "quality": 3}), "{n} at the cloud");
    }

    // enosctl read: no value, quality decode-error, and why with the words the device sent.
    let (ok, out, err) = run_tool("enosctl", &["--json", "read", "meter"], &bus.address);
    assert!(ok, "{err}");
    let readings: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let by_name = |n: &str| readings.iter().find(|r| r["point"] == n).cloned().unwrap_or_else(|| panic!("{n} missing in {out}"));
    assert_eq!(by_name("ok")["quality"], "good");
    let want = [
        ("nan", "not a number (NaN) (registers 7FC0 0000)"),
        ("inf", "not a finite number (+infinity) (registers 7F80 0000)"),
        ("neg_inf", "not a finite number (-infinity) (registers FF80 0000)"),
        ("nan64", "not a number (NaN) (registers 7FF8 0000 0000 0000)"),
    ];
    for (n, why) in want {
        let r = by_name(n);
        assert_eq!(r["quality"], "decode-error", "{n}: {r}");
        assert!(r["value"].is_null(), "{n}: {r}");
        assert_eq!(r["error"], why, "{n}: {r}");
    }
    let (ok, out, _) = run_tool("enosctl", &["read", "meter", "nan"], &bus.address);
    assert!(ok);
    assert!(out.contains("decode-error") && out.contains("not a number (NaN) (registers 7FC0 0000)"), "{out}");
}
