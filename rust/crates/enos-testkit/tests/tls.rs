//! The cloud session over mutual TLS to a real mosquitto, and what happens without a client
//! certificate or with an untrusted broker.

use enos_testkit::cloud_sim::CloudSim;
use enos_testkit::harness::{run_tool, spawn_service, Bus, Mosquitto, Pki};
use enos_testkit::modbus_sim::SimServer;
use enos_testkit::wait_for;
use std::collections::HashMap;

fn uplink(uri: &str, cache: &std::path::Path, tls: &str) -> String {
    format!(
        "[cloud]\nuri = \"{uri}\"\nproduct_key = \"pk\"\ndevice_key = \"gw\"\ndevice_secret = \"s\"\nreconnect_min_ms = 200\nreconnect_max_ms = 500\n{tls}\n[cache]\ndir = \"{}\"\n[health]\ninterval_s = 0\n[[sub_device]]\ndevice = \"d\"\nproduct_key = \"pkD\"\ndevice_key = \"d\"\ndevice_secret = \"x\"\n",
        cache.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_carries_the_session_and_a_missing_client_cert_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(dir.path());
    let bus = Bus::start(dir.path());
    let broker = Mosquitto::start_tls(dir.path(), &pki);
    let cloud = CloudSim::start(broker.port, HashMap::new()).await;
    let sim = SimServer::start(1).await;
    sim.with(|s| s.holding.insert(0, 77));
    let coll = format!("[push]\ninterval_ms = 100\n[[device]]\nid = \"d\"\nprotocol = \"modbus-tcp\"\naddress = \"{}\"\npoll_groups = [{{ name = \"default\", interval_ms = 200 }}]\n[[device.point]]\nname = \"x\"\narea = \"holding\"\naddress = 0\ntype = \"u16\"\n", sim.addr);
    std::fs::write(dir.path().join("c.toml"), coll).unwrap();
    let uri = format!("ssl://127.0.0.1:{}", broker.tls_port.unwrap());

    // No client certificate: the broker refuses the handshake; the uplink says why and retries.
    let no_cert = format!("ca_file = \"{}\"", pki.ca.display());
    std::fs::write(dir.path().join("u1.toml"), uplink(&uri, &dir.path().join("cache1"), &no_cert)).unwrap();
    let mut u = spawn_service("enos-uplink", &dir.path().join("u1.toml"), &bus.address, &dir.path().join("log"));
    let status = wait_for(20, "a refused TLS session", || {
        let (_, out, _) = run_tool("enosctl", &["status"], &bus.address);
        (out.contains("disconnected") && out.contains("connect to ssl://")).then_some(out)
    })
    .await;
    assert!(!status.contains("cloud       connected"), "{status}");
    u.kill9();

    // With the client certificate: connected, data flows.
    let mtls = format!(
        "ca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"",
        pki.ca.display(),
        pki.client_cert.display(),
        pki.client_key.display()
    );
    std::fs::write(dir.path().join("u2.toml"), uplink(&uri, &dir.path().join("cache2"), &mtls)).unwrap();
    let _u = spawn_service("enos-uplink", &dir.path().join("u2.toml"), &bus.address, &dir.path().join("log"));
    let _c = spawn_service("enos-collector", &dir.path().join("c.toml"), &bus.address, &dir.path().join("log"));
    wait_for(30, "points over mutual TLS", || cloud.with(|r| r.points.iter().any(|p| p.point == "x" && p.value == 77)).then_some(())).await;

    // A plain-TCP URI without allow_plain is refused at start.
    std::fs::write(dir.path().join("u3.toml"), uplink(&format!("tcp://127.0.0.1:{}", broker.port), &dir.path().join("cache3"), ""))
        .unwrap();
    let (ok, _, err) = {
        let out = std::process::Command::new(enos_testkit::harness::bin_dir().join("enos-uplink"))
            .args(["--check", "--config"])
            .arg(dir.path().join("u3.toml"))
            .output()
            .unwrap();
        (out.status.success(), String::new(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    assert!(!ok && err.contains("cloud.uri: plain TCP"), "{err}");
}
