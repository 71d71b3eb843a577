//! What the gateway tells the cloud about itself besides telemetry: its attributes
//! (`thing.attribute.update`), events of its model (`thing.event.{id}.post`), log lines asked for
//! by the cloud (`thing.log.post`) and its network status (`network.status.report`).
//! docs/cloud-protocol.md, "Monitoring", lists every attribute, event and field.

use crate::requests::Request;
use crate::{request, topics};
use serde_json::json;

pub const ATTRIBUTE_UPDATE: &str = "thing/attribute/update";
pub const LOG_POST: &str = "thing/log/post";
pub const NETWORK_STATUS: &str = "network/status/report";

/// The events of the gateway's model (docs/cloud-protocol.md).
pub mod event {
    /// A device stopped answering (offline, failed): `{device, state, reason}`.
    pub const DEVICE_STOPPED: &str = "deviceStopped";
    /// A device answers again: `{device, state}`.
    pub const DEVICE_ANSWERING: &str = "deviceAnswering";
    /// The cloud refused a sub-device (registration, login): `{device, reason}`.
    pub const SUB_DEVICE_REFUSED: &str = "subDeviceRefused";
}

/// The topic of event `id`: `thing/event/{id}/post`.
pub fn event_topic(id: &str) -> String {
    format!("thing/event/{id}/post")
}

/// A reply to an attribute update or an event post: the monitor waits for these, and sends
/// again what the cloud did not answer (events are published at QoS 0, a dropped link loses them).
pub fn is_monitor_reply(topic: &str) -> bool {
    topics::request_of(topic).is_some_and(|t| {
        t.ends_with(&format!("/{ATTRIBUTE_UPDATE}"))
            || t.rsplit_once("/thing/event/").is_some_and(|(_, rest)| rest.strip_suffix("/post").is_some_and(|id| !id.contains('/')))
    })
}

fn make(topic: String, id: u64, method: &'static str, params: serde_json::Value) -> Request {
    Request { topic, id, method, payload: request(id, method, params) }
}

/// `thing.attribute.update`: `attributes` (an object) are the gateway's attributes now.
pub fn attribute_update(pk: &str, dk: &str, id: u64, attributes: serde_json::Value) -> Request {
    make(topics::sys(pk, dk, ATTRIBUTE_UPDATE), id, "thing.attribute.update", json!({ "attributes": attributes }))
}

/// `thing.event.{event}.post` with the event's output values at `time_ms`.
pub fn event_post(pk: &str, dk: &str, id: u64, event: &str, values: serde_json::Value, time_ms: u64) -> Request {
    let method = format!("thing.event.{event}.post");
    Request {
        topic: topics::sys(pk, dk, &event_topic(event)),
        id,
        method: "thing.event.post",
        payload: request(id, &method, json!({ "events": values, "time": time_ms })),
    }
}

/// One journal line as the cloud gets it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub time_ms: u64,
    /// The service that wrote it (`enos-collector`, ...).
    pub module: String,
    /// `error`, `warn`, `info`, `debug`, `trace`.
    pub level: String,
    pub content: String,
}

/// `thing.log.post`: `lines` as one message, each `{logs: {traceId, level, module, content}, time}`;
/// `trace_id` ties the messages of one upload to the request that asked for it.
pub fn log_post(pk: &str, dk: &str, id: u64, trace_id: &str, lines: &[LogLine]) -> Request {
    let params: Vec<_> = lines
        .iter()
        .map(|l| json!({"logs": {"traceId": trace_id, "level": l.level, "module": l.module, "content": l.content}, "time": l.time_ms}))
        .collect();
    make(topics::sys(pk, dk, LOG_POST), id, "thing.log.post", serde_json::Value::Array(params))
}

/// The gateway's network as `network.status.report` says it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NetworkStatus {
    /// The interface the route to the broker leaves by (`eth0`), when known.
    pub interface: Option<String>,
    pub addresses: Vec<String>,
    /// `up`, `down` or `unknown`.
    pub link: String,
    /// Round trip of a TCP connect to the broker (ms), when measured.
    pub rtt_ms: Option<u64>,
}

/// `network.status.report`.
pub fn network_status(pk: &str, dk: &str, id: u64, s: &NetworkStatus, time_ms: u64) -> Request {
    let params = json!({"interface": s.interface, "addresses": s.addresses, "link": s.link, "rttMs": s.rtt_ms, "time": time_ms});
    make(topics::sys(pk, dk, NETWORK_STATUS), id, "network.status.report", params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: &Request) -> serde_json::Value {
        serde_json::from_slice(&r.payload).unwrap()
    }

    #[test]
    fn the_replies_the_monitor_waits_for() {
        assert!(is_monitor_reply("/sys/pk/gw/thing/attribute/update_reply"));
        assert!(is_monitor_reply("/sys/pk/gw/thing/event/deviceStopped/post_reply"));
        assert!(!is_monitor_reply("/sys/pk/gw/thing/event/deviceStopped/post"));
        assert!(!is_monitor_reply("/sys/pk/gw/thing/measurepoint/post/batch_reply"));
        assert!(!is_monitor_reply("/sys/pk/gw/thing/event/a/b/post_reply"));
        assert!(!is_monitor_reply("/sys/pk/gw/thing/log/post_reply"));
    }

    #[test]
    fn topics_methods_and_params() {
        let a = attribute_update("pk", "gw", 1, json!({"version": "1.2"}));
        assert_eq!(a.topic, "/sys/pk/gw/thing/attribute/update");
        assert_eq!(body(&a)["params"], json!({"attributes": {"version": "1.2"}}));
        let e = event_post("pk", "gw", 2, event::DEVICE_STOPPED, json!({"device": "inv01"}), 5);
        assert_eq!(e.topic, "/sys/pk/gw/thing/event/deviceStopped/post");
        assert_eq!(body(&e)["method"], "thing.event.deviceStopped.post");
        assert_eq!(body(&e)["params"], json!({"events": {"device": "inv01"}, "time": 5}));
        let l = LogLine { time_ms: 7, module: "enos-uplink".into(), level: "info".into(), content: "hello".into() };
        let p = log_post("pk", "gw", 3, "t1", &[l]);
        assert_eq!(p.topic, "/sys/pk/gw/thing/log/post");
        assert_eq!(
            body(&p)["params"],
            json!([{"logs": {"traceId": "t1", "level": "info", "module": "enos-uplink", "content": "hello"}, "time": 7}])
        );
        let n = network_status("pk", "gw", 4, &NetworkStatus { link: "up".into(), rtt_ms: Some(3), ..Default::default() }, 9);
        assert_eq!(n.topic, "/sys/pk/gw/network/status/report");
        assert_eq!(body(&n)["params"]["rttMs"], 3);
    }
}
