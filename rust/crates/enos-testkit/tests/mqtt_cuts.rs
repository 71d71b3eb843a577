//! The MQTT client library with the gateway's publish QoS survives links reset under load
//! (`enos-mqtt-cuts`; with QoS 1 paho.mqtt.c aborts with a double free within seconds, which is
//! why the gateway publishes at QoS 0: `enos_cloud::topics::PUBLISH_QOS`).

use std::process::Command;

#[test]
fn publishing_through_reset_links_does_not_crash_the_mqtt_client() {
    let out = Command::new(env!("CARGO_BIN_EXE_enos-mqtt-cuts"))
        .args(["--seconds", "10", "--max-cut-ms", "150", "--seed", "11"])
        .output()
        .expect("enos-mqtt-cuts runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the MQTT client did not survive cut links ({}): {text}", out.status);
    // it measured something: many links were cut while publishes were being taken
    let n = |what: &str| -> u64 {
        let at = text.find(what).unwrap_or_else(|| panic!("no '{what}' in: {text}"));
        text[..at].split_whitespace().last().and_then(|w| w.parse().ok()).expect("a count")
    };
    assert!(n("connections cut") >= 20, "{text}");
    assert!(n("publishes taken") >= 1000, "{text}");
}
