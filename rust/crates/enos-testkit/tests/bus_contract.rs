//! The D-Bus contract is checked: every service, running on a private bus, is introspected and
//! what it serves (interfaces, methods and signals with their signatures) is compared with the
//! table in `enos_bus::contract` both ways, so a change on one side without the other fails.
//! Refusals are typed errors (`org.enos.Edge.Error.*`) whose messages reach people without
//! D-Bus names.

use enos_bus::contract::{Service, SERVICES};
use enos_testkit::harness::{run_tool, spawn_idle_ota, spawn_idle_web, spawn_service, Bus, Proc};
use enos_testkit::wait_for;
use std::collections::BTreeSet;

/// The three services on a private bus: a collector without devices, an uplink not provisioned
/// (no cloud to reach), the update agent with harmless programs.
struct Services {
    bus: Bus,
    log: std::path::PathBuf,
    /// collector, uplink, ota
    procs: Vec<Proc>,
    _dir: tempfile::TempDir,
}

async fn start() -> Services {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bus = Bus::start(d);
    std::fs::write(d.join("collector.toml"), "").unwrap();
    std::fs::write(
        d.join("uplink.toml"),
        format!(
            "[cloud]\nuri = \"tcp://127.0.0.1:9\"\nallow_plain = true\nproduct_key = \"pk\"\ndevice_key = \"gw\"\n[cache]\ndir = \"{}\"\n[health]\ninterval_s = 0\n",
            d.join("cache").display()
        ),
    )
    .unwrap();
    let log = d.join("services.log");
    let procs = vec![
        spawn_service("enos-collector", &d.join("collector.toml"), &bus.address, &log),
        spawn_service("enos-uplink", &d.join("uplink.toml"), &bus.address, &log),
        spawn_idle_ota(d, &bus.address, &log),
        spawn_idle_web(d, &bus.address, &log),
    ];
    let conn = zbus::connection::Builder::address(bus.address.as_str()).build().await.unwrap();
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
    for s in SERVICES {
        let name = zbus::names::BusName::try_from(s.bus_name).unwrap();
        for _ in 0..400 {
            if dbus.name_has_owner(name.clone()).await.unwrap() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(
            dbus.name_has_owner(name).await.unwrap(),
            "{} is not on the bus: {}",
            s.bus_name,
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    Services { bus, log, procs, _dir: dir }
}

/// `interface member kind(in)->(out)` for every member of our interfaces in introspection XML.
fn served(xml: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let (mut iface, mut member, mut kind) = (String::new(), String::new(), "");
    let (mut ins, mut outs) = (String::new(), String::new());
    let attr = |tag: &str, k: &str| -> Option<String> {
        let start = tag.find(&format!(" {k}=\""))? + k.len() + 3;
        Some(tag[start..][..tag[start..].find('"')?].to_string())
    };
    for raw in xml.split('<').skip(1) {
        let tag = &raw[..raw.find('>').unwrap_or(raw.len())];
        let closes = tag.ends_with('/');
        match tag.split_whitespace().next().unwrap_or("") {
            "interface" => iface = attr(tag, "name").unwrap_or_default(),
            "method" | "signal" => {
                kind = if tag.starts_with("method") { "method" } else { "signal" };
                member = attr(tag, "name").unwrap_or_default();
                ins.clear();
                outs.clear();
                if closes && !iface.starts_with("org.freedesktop.") {
                    out.insert(format!("{iface} {member} {kind}()->()"));
                }
            }
            "arg" => {
                let ty = attr(tag, "type").unwrap_or_default();
                match attr(tag, "direction").as_deref() {
                    Some("out") => outs.push_str(&ty),
                    _ => ins.push_str(&ty),
                }
            }
            "/method" | "/signal" if !iface.starts_with("org.freedesktop.") => {
                out.insert(format!("{iface} {member} {kind}({ins})->({outs})"));
            }
            _ => {}
        }
    }
    out
}

fn expected(s: &Service) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for i in s.interfaces {
        for m in i.methods {
            out.insert(format!("{} {} method({})->({})", i.name, m.name, m.args, m.reply));
        }
        for sig in i.signals {
            out.insert(format!("{} {} signal({})->()", i.name, sig.name, sig.args));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_serves_exactly_the_contract() {
    let e = start().await;
    let conn = zbus::connection::Builder::address(e.bus.address.as_str()).build().await.unwrap();
    for s in SERVICES {
        let p = zbus::fdo::IntrospectableProxy::builder(&conn).destination(s.bus_name).path(s.path).build().await.unwrap();
        let xml = p.introspect().await.unwrap();
        let (have, want) = (served(&xml), expected(s));
        assert!(!have.is_empty(), "nothing parsed from {}'s introspection:\n{xml}", s.bus_name);
        let missing: Vec<_> = want.difference(&have).collect();
        let extra: Vec<_> = have.difference(&want).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{} differs from enos_bus::contract:\n  in the contract, not served: {missing:#?}\n  served, not in the contract: {extra:#?}",
            s.bus_name
        );
    }
}

/// A refusal is a typed error with its reason; `enosctl` prints the reason, never a D-Bus name.
/// `SetCloudSettings` used to answer a refused change with `{"ok": false}` where `TestConnection`
/// raised `InvalidArgs` for the same change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_typed_errors_in_words() {
    let mut e = start().await;
    let conn = zbus::connection::Builder::address(e.bus.address.as_str()).build().await.unwrap();
    let cloud = enos_bus::UplinkSettingsProxy::new(&conn).await.unwrap();
    let no_key = serde_json::json!({ "uri": "tcp://127.0.0.1:1883", "allow_plain": true, "product_key": " ", "device_key": "gw" });
    for (what, r) in [
        ("SetCloudSettings", cloud.set_cloud_settings(&no_key.to_string()).await),
        ("TestConnection", cloud.test_connection(&no_key.to_string()).await),
    ] {
        match r {
            Err(enos_bus::Error::InvalidArgs(m)) => assert!(m.contains("product_key"), "{what}: {m}"),
            other => panic!("{what}: an empty product key must be InvalidArgs, got {other:?}"),
        }
    }
    let plain = serde_json::json!({ "uri": "tcp://127.0.0.1:1883", "allow_plain": false, "product_key": "pk", "device_key": "gw" });
    match cloud.set_cloud_settings(&plain.to_string()).await {
        Err(enos_bus::Error::InvalidArgs(m)) => assert!(m.contains("cloud.uri"), "{m}"),
        other => panic!("a plain connection without allow_plain must be InvalidArgs, got {other:?}"),
    }
    let collector = enos_bus::CollectorProxy::new(&conn).await.unwrap();
    match collector.read_points("nosuch", &[]).await {
        Err(enos_bus::Error::NotFound(m)) => assert!(m.contains("nosuch"), "{m}"),
        other => panic!("an unknown device must be NotFound, got {other:?}"),
    }
    let (ok, _, err) = run_tool("enosctl", &["read", "nosuch", "p"], &e.bus.address);
    assert!(!ok);
    assert!(err.contains("no device \"nosuch\""), "{err}");
    assert!(!err.contains("org.enos.Edge.Error") && !err.contains("org.freedesktop"), "a D-Bus name in what people read: {err}");
    let ota = enos_bus::OtaProxy::new(&conn).await.unwrap();
    match ota.start_job("{}").await {
        Err(enos_bus::Error::InvalidArgs(m)) => assert!(m.contains("version"), "{m}"),
        other => panic!("a job without a version must be InvalidArgs, got {other:?}"),
    }
    // An absent service is named in words.
    e.procs[0].terminate();
    let (ok, _, err) = run_tool("enosctl", &["read", "inv01", "p"], &e.bus.address);
    assert!(!ok);
    assert_eq!(err.trim(), "enosctl: the enos-collector service is not running");
}

/// Every call that changes something is logged with who asked, as the bus daemon vouches for it
/// (the test's own user), refused or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_logged_with_the_callers_identity() {
    let e = start().await;
    let conn = zbus::connection::Builder::address(e.bus.address.as_str()).build().await.unwrap();
    let collector = enos_bus::CollectorProxy::new(&conn).await.unwrap();
    let cloud = enos_bus::UplinkSettingsProxy::new(&conn).await.unwrap();
    let ota = enos_bus::OtaProxy::new(&conn).await.unwrap();
    let _ = collector.write_point("nosuch", "p", "1").await;
    let _ = collector.apply_config("not a document").await;
    let _ = cloud.set_cloud_settings("{}").await;
    let _ = ota.start_job("{}").await;
    let _ = ota.install_file("/nonexistent.swu").await;
    let _ = ota.rollback().await;
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let name = passwd.lines().find(|l| l.split(':').nth(2) == Some(&uid.to_string())).and_then(|l| l.split(':').next()).unwrap();
    let me = format!("{name} (uid {uid})");
    let lines = [
        format!("write nosuch.p = 1 by {me}"),
        format!("a new configuration from {me}"),
        format!("cloud settings from {me} refused"),
        format!("StartJob asked by {me}"),
        format!("InstallFile asked by {me}"),
        format!("Rollback asked by {me}"),
    ];
    wait_for(10, "every write in the log with its caller", || {
        let log = std::fs::read_to_string(&e.log).unwrap_or_default();
        lines.iter().all(|l| log.contains(l.as_str())).then_some(())
    })
    .await;
}

/// Signals go out through the emitters of the declared `#[zbus(signal)]`s and reach a proxy's
/// stream with their arguments: a job reports its first step as `Progress`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_reach_a_proxys_stream() {
    use futures::StreamExt;
    let e = start().await;
    let conn = zbus::connection::Builder::address(e.bus.address.as_str()).build().await.unwrap();
    let ota = enos_bus::OtaProxy::new(&conn).await.unwrap();
    let mut progress = ota.receive_progress().await.unwrap();
    let job =
        serde_json::json!({ "version": "9.9", "fileUrl": "http://127.0.0.1:9/b.swu", "fileSize": 10, "sign": "00", "signMethod": "md5" });
    let id = ota.start_job(&job.to_string()).await.unwrap();
    let desc = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(s) = progress.next().await {
            let a = s.args().unwrap();
            if a.job() == &id {
                return a.desc().to_string();
            }
        }
        panic!("the signal stream ended");
    })
    .await
    .expect("a Progress signal of the job");
    assert!(!desc.is_empty(), "a step without its description");
}
