//! The gateway watched from the cloud: its attributes (`thing.attribute.update`: version, boot
//! slot, device inventory, protocols), posted after every connect and whenever they change, and
//! its devices' state changes as events of its model (`thing.event.{id}.post`). Looked at every
//! `monitor.check_s`; events that happen while the session is down wait (bounded) for the next.

use crate::mqtt;
use crate::state::Shared;
use enos_bus::{CollectorProxy, DeviceStatus, OtaProxy};
use enos_cloud::monitor::{self, event};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Events kept while the session is down; beyond, the oldest go (the attributes say the state).
const MAX_PENDING_EVENTS: usize = 200;

/// Device states in which a device answers.
fn answering(state: &str) -> bool {
    matches!(state, "online" | "refusing")
}

/// The attributes of the gateway now.
pub async fn attributes(shared: &Arc<Shared>, devices: &[DeviceStatus]) -> Value {
    let version = crate::ota::product_version(shared).await;
    let mut boot_slot = String::new();
    if let Some(conn) = shared.bus() {
        if let Ok(p) = OtaProxy::new(conn).await {
            if let Ok(Ok(s)) = p.status().await.map(|j| serde_json::from_str::<enos_model::device::OtaStatus>(&j)) {
                boot_slot = s.booted_slot;
            }
        }
    }
    let protocols: BTreeSet<&str> = devices.iter().map(|d| d.protocol.as_str()).collect();
    json!({
        "version": version,
        "bootSlot": boot_slot,
        "deviceCount": devices.len(),
        "deviceIds": devices.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        "deviceProtocols": devices.iter().map(|d| d.protocol.as_str()).collect::<Vec<_>>(),
        "protocols": protocols,
    })
}

/// The events a change from `before` to `now` makes (device id → (state, reason)).
fn device_events(before: &HashMap<String, (String, String)>, now: &[DeviceStatus]) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    for d in now {
        let Some((was, _)) = before.get(&d.id) else { continue };
        let reason = d.last_error.clone().unwrap_or_default();
        if answering(was) && !answering(&d.state) && d.state != "disabled" {
            out.push((event::DEVICE_STOPPED, json!({"device": d.id, "state": d.state, "reason": reason})));
        } else if !answering(was) && answering(&d.state) {
            out.push((event::DEVICE_ANSWERING, json!({"device": d.id, "state": d.state})));
        }
    }
    out
}

pub async fn run(shared: Arc<Shared>) {
    let every = Duration::from_secs(shared.cfg.monitor.check_s);
    let mut states: Option<HashMap<String, (String, String)>> = None;
    let mut refused: BTreeSet<String> = BTreeSet::new();
    let mut pending: VecDeque<(&'static str, Value, u64)> = VecDeque::new();
    // (connects count, attributes) last posted: a new session posts them again
    let mut posted: Option<(u64, Value)> = None;
    loop {
        let devices = match shared.bus() {
            Some(conn) => match CollectorProxy::new(conn).await {
                Ok(p) => p.list_devices().await.ok().and_then(|j| serde_json::from_str::<Vec<DeviceStatus>>(&j).ok()),
                Err(_) => None,
            },
            None => None,
        };
        let now = enos_batch::now_ms();
        if let Some(devices) = &devices {
            if let Some(before) = &states {
                pending.extend(device_events(before, devices).into_iter().map(|(e, v)| (e, v, now)));
            }
            states = Some(devices.iter().map(|d| (d.id.clone(), (d.state.clone(), d.last_error.clone().unwrap_or_default()))).collect());
        }
        for s in shared.subs().status() {
            if s.state == "refused" {
                if refused.insert(s.device.clone()) {
                    pending.push_back((
                        event::SUB_DEVICE_REFUSED,
                        json!({"device": s.device, "reason": s.reason.unwrap_or_default()}),
                        now,
                    ));
                }
            } else {
                refused.remove(&s.device);
            }
        }
        while pending.len() > MAX_PENDING_EVENTS {
            pending.pop_front();
        }
        let (cli, connects) = {
            let cli = shared.mqtt.lock().expect("mqtt").clone();
            let c = shared.cloud.lock().expect("cloud");
            (cli.filter(|_| c.state == "connected"), c.connects)
        };
        if let Some(cli) = cli {
            let c = &shared.cfg.cloud;
            if let Some(devices) = &devices {
                let attrs = attributes(&shared, devices).await;
                if posted.as_ref() != Some(&(connects, attrs.clone())) {
                    let r = monitor::attribute_update(&c.product_key, &c.device_key, mqtt::next_id(), attrs.clone());
                    if mqtt::publish_sent(&cli, &r.topic, &r.payload).await.is_ok() {
                        posted = Some((connects, attrs));
                    }
                }
            }
            while let Some((e, v, t)) = pending.front() {
                let r = monitor::event_post(&c.product_key, &c.device_key, mqtt::next_id(), e, v.clone(), *t);
                if mqtt::publish_sent(&cli, &r.topic, &r.payload).await.is_err() {
                    break;
                }
                log::info!("event {e} posted: {v}");
                pending.pop_front();
            }
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(id: &str, state: &str) -> DeviceStatus {
        DeviceStatus { last_error: Some("no answer".into()), ..DeviceStatus::new(id, "modbus-tcp", state, 1) }
    }

    #[test]
    fn a_device_that_stops_or_starts_answering_is_an_event() {
        let before: HashMap<String, (String, String)> = [("a", "online"), ("b", "offline"), ("c", "online")]
            .iter()
            .map(|(i, s)| (i.to_string(), (s.to_string(), String::new())))
            .collect();
        let ev = device_events(&before, &[dev("a", "offline"), dev("b", "online"), dev("c", "online"), dev("new", "offline")]);
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert_eq!(ev[0], (event::DEVICE_STOPPED, json!({"device": "a", "state": "offline", "reason": "no answer"})));
        assert_eq!(ev[1], (event::DEVICE_ANSWERING, json!({"device": "b", "state": "online"})));
    }
}
