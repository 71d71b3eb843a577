//! The gateway watched from the cloud: its attributes (`thing.attribute.update`: version, boot
//! slot, device inventory, protocols), posted after every connect and whenever they change, and
//! its devices' state changes as events of its model (`thing.event.{id}.post`). Looked at every
//! `monitor.check_s`; events that happen while the session is down wait (bounded) for the next.

use crate::mqtt;
use crate::state::Shared;
use enos_bus::{CollectorProxy, DeviceStatus, OtaProxy};
use enos_cloud::monitor::{self, event};
use enos_cloud::{codes, requests::Request};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Events kept while the session is down; beyond, the oldest go (the attributes say the state).
const MAX_PENDING_EVENTS: usize = 200;

/// How long the cloud has to answer an attribute update or an event post; unanswered, it is
/// sent again on the next look (QoS 0: a message written just before the link drops is lost).
const REPLY_WAIT: Duration = Duration::from_secs(10);

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

/// Sends `reqs` and waits (up to `REPLY_WAIT`) for their replies. Says for each whether the cloud
/// has it: answered 200, or refused for good (sending it again would change nothing). A busy or
/// failing cloud's refusal, no reply, or a publish paho would not take: sent again later.
async fn post_and_wait(shared: &Shared, cli: &mqtt::Client, reqs: &[Request]) -> Vec<bool> {
    let mut has_it = vec![false; reqs.len()];
    let mut replies = shared.monitor_replies.lock().await;
    while replies.try_recv().is_ok() {} // late answers to earlier tries: those are sent again
    let mut waiting: HashMap<String, usize> = HashMap::new();
    for (i, r) in reqs.iter().enumerate() {
        if mqtt::publish_sent(cli, &r.topic, &r.payload).await.is_err() {
            break;
        }
        waiting.insert(r.id.to_string(), i);
    }
    let deadline = tokio::time::Instant::now() + REPLY_WAIT;
    while !waiting.is_empty() {
        let Ok(Some(reply)) = tokio::time::timeout_at(deadline, replies.recv()).await else { break };
        let Some(i) = waiting.remove(&reply.id) else { continue };
        if reply.code == codes::OK {
            has_it[i] = true;
        } else if codes::is_transient(reply.code) {
            log::info!("the cloud is busy ({}: {}); {} will be sent again", reply.code, reply.message, said(&reqs[i]));
        } else {
            log::warn!("the cloud refused {} ({}: {}); it is not sent again", said(&reqs[i]), reply.code, reply.message);
            has_it[i] = true;
        }
    }
    has_it
}

/// What a monitor request is, in words: "the attributes", "the event deviceStopped".
fn said(r: &Request) -> String {
    match r.topic.strip_suffix("/post").and_then(|t| t.rsplit_once("/event/")) {
        Some((_, id)) => format!("the event {id}"),
        None => "the gateway's attributes".into(),
    }
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
            let attrs = match &devices {
                Some(d) => Some(attributes(&shared, d).await).filter(|a| posted.as_ref() != Some(&(connects, a.clone()))),
                None => None,
            };
            let mut reqs: Vec<Request> = Vec::new();
            if let Some(a) = &attrs {
                reqs.push(monitor::attribute_update(&c.product_key, &c.device_key, mqtt::next_id(), a.clone()));
            }
            let first_event = reqs.len();
            reqs.extend(
                pending.iter().map(|(e, v, t)| monitor::event_post(&c.product_key, &c.device_key, mqtt::next_id(), e, v.clone(), *t)),
            );
            let has_it = post_and_wait(&shared, &cli, &reqs).await;
            if let Some(a) = attrs.filter(|_| has_it[0]) {
                posted = Some((connects, a));
            }
            let mut answered = has_it[first_event..].iter();
            pending.retain(|(e, v, _)| {
                let done = answered.next().copied().unwrap_or(false);
                if done {
                    log::info!("event {e} posted: {v}");
                }
                !done
            });
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
