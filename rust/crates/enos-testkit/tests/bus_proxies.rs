//! The other side of the contract: every proxy of `enos-bus` is checked against
//! `enos_bus::contract` by a stand-in that owns the services' names on a private bus. It records
//! the interface, member and argument signature of each call a proxy sends and answers with a
//! value of the contract's reply signature, which the proxy must decode; it emits each signal
//! with the contract's signature, which the proxy's stream must decode. With
//! `bus_contract.rs` (the servers against the same table), a change on one side alone fails.

use enos_bus::contract::SERVICES;
use enos_testkit::harness::Bus;
use futures::StreamExt;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Answers every call with a value of the reply signature the contract gives it (the empty
/// string, or 0 for `t`), after recording `interface member (args)`.
async fn stand_in(addr: &str, seen: Arc<Mutex<BTreeSet<String>>>) -> zbus::Connection {
    let mut b = zbus::connection::Builder::address(addr);
    for s in SERVICES {
        b = b.name(s.bus_name);
    }
    let conn = b.build().await.unwrap();
    let mut calls = zbus::MessageStream::from(&conn);
    let c = conn.clone();
    tokio::spawn(async move {
        while let Some(Ok(m)) = calls.next().await {
            let h = m.header();
            if h.message_type() != zbus::message::Type::MethodCall {
                continue;
            }
            let (iface, member) =
                (h.interface().map(|i| i.to_string()).unwrap_or_default(), h.member().map(|m| m.to_string()).unwrap_or_default());
            // zbus shows a body of several arguments as one structure, "(sas)"; the contract
            // (which has no structure arguments) lists them bare.
            let args = m.body().signature().to_string();
            let args = args.strip_prefix('(').and_then(|a| a.strip_suffix(')')).unwrap_or(&args).to_string();
            seen.lock().unwrap().insert(format!("{iface} {member} ({args})"));
            let reply = SERVICES
                .iter()
                .flat_map(|s| s.interfaces)
                .filter(|i| i.name == iface)
                .flat_map(|i| i.methods)
                .find(|x| x.name == member)
                .map(|x| x.reply);
            let _ = match reply {
                Some("t") => c.reply(&h, &0u64).await,
                Some("s") => c.reply(&h, &"").await,
                Some(other) => panic!("the stand-in cannot answer a reply of signature {other}: teach it"),
                None => c.reply_error(&h, "org.freedesktop.DBus.Error.UnknownMethod", &"not in the contract").await,
            };
        }
    });
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_proxy_sends_and_decodes_what_the_contract_says() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let server = stand_in(&bus.address, seen.clone()).await;
    let conn = zbus::connection::Builder::address(bus.address.as_str()).build().await.unwrap();

    // Every method of every proxy, once: each must decode the contract's reply.
    let col = enos_bus::CollectorProxy::new(&conn).await.unwrap();
    col.list_devices().await.unwrap();
    col.read_points("d", &["p"]).await.unwrap();
    col.write_point("d", "p", "1").await.unwrap();
    col.stats().await.unwrap();
    col.get_config().await.unwrap();
    col.validate_config("{}").await.unwrap();
    col.apply_config("{}").await.unwrap();
    col.list_device_models().await.unwrap();
    col.list_plugins().await.unwrap();
    col.read_raw("d", "{}").await.unwrap();
    col.live_values("d", 0).await.unwrap();
    col.install_package(&[1, 2]).await.unwrap();
    col.packages().await.unwrap();
    col.set_log_level("info").await.unwrap();
    col.list_opcua_certificates("d").await.unwrap();
    col.trust_opcua_certificate("d", "ab").await.unwrap();
    col.remove_opcua_certificate("d", "ab").await.unwrap();
    let up = enos_bus::UplinkProxy::new(&conn).await.unwrap();
    up.push_telemetry(&[1, 2]).await.unwrap();
    up.status().await.unwrap();
    let set = enos_bus::UplinkSettingsProxy::new(&conn).await.unwrap();
    set.get_cloud_settings().await.unwrap();
    set.set_cloud_settings("{}").await.unwrap();
    set.test_connection("{}").await.unwrap();
    let inspect = enos_bus::UplinkInspectProxy::new(&conn).await.unwrap();
    inspect.last_sent("d").await.unwrap();
    inspect.device_model("d", true).await.unwrap();
    let ota = enos_bus::OtaProxy::new(&conn).await.unwrap();
    ota.start_job("{}").await.unwrap();
    ota.install_file("/f").await.unwrap();
    ota.status().await.unwrap();
    ota.history().await.unwrap();
    ota.rollback().await.unwrap();
    ota.set_log_level("info").await.unwrap();
    enos_bus::WebProxy::new(&conn).await.unwrap().set_log_level("info").await.unwrap();

    let want: BTreeSet<String> = SERVICES
        .iter()
        .flat_map(|s| s.interfaces)
        .flat_map(|i| i.methods.iter().map(move |m| format!("{} {} ({})", i.name, m.name, m.args)))
        .collect();
    let seen = seen.lock().unwrap().clone();
    let (missing, extra): (Vec<_>, Vec<_>) = (want.difference(&seen).collect(), seen.difference(&want).collect());
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the proxies differ from enos_bus::contract:\n  in the contract, never sent: {missing:#?}\n  sent, not in the contract: {extra:#?}"
    );

    // Every signal, emitted with the contract's signature, decoded by the proxy's stream.
    let (mut dev, mut cloud, mut progress, mut version) = (
        col.receive_device_state_changed().await.unwrap(),
        up.receive_cloud_state_changed().await.unwrap(),
        ota.receive_progress().await.unwrap(),
        ota.receive_version_changed().await.unwrap(),
    );
    let emit = |path: &'static str, iface: &'static str, name: &'static str| (path, iface, name);
    for (path, iface, name) in [
        emit(enos_bus::COLLECTOR_PATH, enos_bus::COLLECTOR_IFACE, "DeviceStateChanged"),
        emit(enos_bus::UPLINK_PATH, enos_bus::UPLINK_IFACE, "CloudStateChanged"),
        emit(enos_bus::OTA_PATH, enos_bus::OTA_IFACE, "Progress"),
        emit(enos_bus::OTA_PATH, enos_bus::OTA_IFACE, "VersionChanged"),
    ] {
        let sig = SERVICES.iter().flat_map(|s| s.interfaces).filter(|i| i.name == iface).flat_map(|i| i.signals).find(|s| s.name == name);
        let r = match sig.map(|s| s.args) {
            Some("sss") => server.emit_signal(None::<&str>, path, iface, name, &("a", "b", "c")).await,
            Some("ss") => server.emit_signal(None::<&str>, path, iface, name, &("a", "b")).await,
            Some("sis") => server.emit_signal(None::<&str>, path, iface, name, &("a", 5i32, "c")).await,
            other => panic!("{iface}.{name}: the test cannot emit signature {other:?}: teach it"),
        };
        r.unwrap();
    }
    let d =
        tokio::time::timeout(Duration::from_secs(10), dev.next()).await.expect("the DeviceStateChanged signal reaching the proxy").unwrap();
    assert_eq!(d.args().unwrap().reason(), &"c");
    let c = tokio::time::timeout(Duration::from_secs(10), cloud.next())
        .await
        .expect("the CloudStateChanged signal reaching the proxy")
        .unwrap();
    assert_eq!(c.args().unwrap().reason(), &"b");
    let p = tokio::time::timeout(Duration::from_secs(10), progress.next()).await.expect("the Progress signal reaching the proxy").unwrap();
    assert_eq!(*p.args().unwrap().step(), 5);
    let v =
        tokio::time::timeout(Duration::from_secs(10), version.next()).await.expect("the VersionChanged signal reaching the proxy").unwrap();
    assert_eq!(v.args().unwrap().reason(), &"b");
}
