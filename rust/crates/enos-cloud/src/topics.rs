//! Topic names.

pub fn sys(pk: &str, dk: &str, rest: &str) -> String {
    format!("/sys/{pk}/{dk}/{rest}")
}
pub fn session(gw_pk: &str, gw_dk: &str, rest: &str) -> String {
    format!("/ext/session/{gw_pk}/{gw_dk}/{rest}")
}

const REPLY: &str = "_reply";

pub fn reply_of(topic: &str) -> String {
    format!("{topic}{REPLY}")
}
/// The request topic a reply topic answers; `None` when `topic` is no reply.
pub fn request_of(topic: &str) -> Option<&str> {
    topic.strip_suffix(REPLY)
}
/// A reply to a request about sub-devices (registration, topology, login, device model), not
/// to telemetry: the sub-device manager waits for these.
pub fn is_sub_device_reply(topic: &str) -> bool {
    request_of(topic).is_some_and(|t| SUB_DEVICE_REQUESTS.iter().any(|r| t.ends_with(r)))
}

pub const POST_BATCH: &str = "thing/measurepoint/post/batch";
pub const RESUME_BATCH: &str = "thing/measurepoint/resume/batch";
pub const TOPO_ADD: &str = "thing/topo/add";
pub const LOGIN_BATCH: &str = "combine/login/batch";
pub const OTA_INFORM: &str = "ota/device/inform";
pub const OTA_PROGRESS: &str = "ota/device/progress";
pub const MEASUREPOINT_SET: &str = "thing/service/measurepoint/set";
pub const SERVICE_PREFIX: &str = "thing/service/";
pub const OTA_UPGRADE: &str = "ota/device/upgrade";
pub const DEVICE_REGISTER: &str = "thing/device/register";
pub const TOPO_DELETE: &str = "thing/topo/delete";
pub const TOPO_GET: &str = "thing/topo/get";
pub const LOGIN: &str = "combine/login";
pub const LOGOUT: &str = "combine/logout";
pub const TSL_GET: &str = "thing/tsltemplate/get";
/// Downstream, on the gateway's session topics: the cloud enables, disables or deletes one of
/// its sub-devices (`combine/enable`, `combine/disable`, `combine/delete`).
pub const COMBINE_PREFIX: &str = "combine/";
/// The requests whose replies the sub-device manager takes.
const SUB_DEVICE_REQUESTS: [&str; 8] = [DEVICE_REGISTER, TOPO_ADD, TOPO_DELETE, TOPO_GET, LOGIN_BATCH, LOGIN, LOGOUT, TSL_GET];

/// What a gateway subscribes to after every connect: the replies to its requests, and the
/// commands for itself and each sub-device (`devices`: (product key, device key)).
pub fn subscriptions(gw_pk: &str, gw_dk: &str, devices: &[(&str, &str)]) -> Vec<String> {
    let mut subs: Vec<String> = [POST_BATCH, RESUME_BATCH, TOPO_ADD, OTA_INFORM].iter().map(|t| reply_of(&sys(gw_pk, gw_dk, t))).collect();
    for t in [DEVICE_REGISTER, TOPO_DELETE, TOPO_GET] {
        subs.push(reply_of(&sys(gw_pk, gw_dk, t)));
    }
    for t in [LOGIN_BATCH, LOGIN, LOGOUT] {
        subs.push(reply_of(&session(gw_pk, gw_dk, t)));
    }
    // the gateway's attributes and events: kept and sent again until answered
    subs.push(reply_of(&sys(gw_pk, gw_dk, crate::monitor::ATTRIBUTE_UPDATE)));
    subs.push(reply_of(&sys(gw_pk, gw_dk, &crate::monitor::event_topic("+"))));
    // the cloud's enable/disable/delete of a sub-device
    subs.push(session(gw_pk, gw_dk, &format!("{COMBINE_PREFIX}+")));
    for (p, d) in std::iter::once((gw_pk, gw_dk)).chain(devices.iter().copied()) {
        subs.extend(device_subscriptions(p, d));
    }
    subs.push(sys(gw_pk, gw_dk, OTA_UPGRADE));
    subs
}

/// What a gateway subscribes to for one of its devices: its commands, its device model's reply.
pub fn device_subscriptions(pk: &str, dk: &str) -> [String; 3] {
    [sys(pk, dk, MEASUREPOINT_SET), sys(pk, dk, &format!("{SERVICE_PREFIX}+")), reply_of(&sys(pk, dk, TSL_GET))]
}

/// The QoS of everything the gateway publishes: 0. Delivery is the cloud's `_reply` (code 200 for
/// that id), and the gateway keeps and sends again whatever was not answered, so QoS 1 adds no
/// guarantee here (a clean session; paho keeps no copies). It did add a crash: paho.mqtt.c frees a
/// QoS 1 publication twice when its write fails on a reset connection, and the process aborts
/// (`enos-mqtt-cuts`: QoS 1 aborts within 2 s of cut links, QoS 0 ran 240 s; docs/cloud-protocol.md).
pub const PUBLISH_QOS: i32 = 0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_subscriptions() {
        assert_eq!(request_of("/sys/pk/gw/thing/topo/add_reply"), Some("/sys/pk/gw/thing/topo/add"));
        assert!(
            is_sub_device_reply("/sys/pk/gw/thing/topo/add_reply") && is_sub_device_reply("/ext/session/pk/gw/combine/login/batch_reply")
        );
        assert!(
            is_sub_device_reply("/sys/pk/gw/thing/device/register_reply") && is_sub_device_reply("/sys/p/d/thing/tsltemplate/get_reply")
        );
        assert!(
            !is_sub_device_reply("/sys/pk/gw/thing/measurepoint/post/batch_reply") && !is_sub_device_reply("/sys/pk/gw/thing/topo/add")
        );
        let s = subscriptions("pk", "gw", &[("pk2", "inv")]);
        assert!(s.contains(&"/sys/pk2/inv/thing/service/+".to_string()) && s.contains(&"/sys/pk/gw/ota/device/upgrade".to_string()));
        assert!(s.contains(&"/ext/session/pk/gw/combine/login/batch_reply".to_string()));
        assert!(s.contains(&"/sys/pk/gw/thing/event/+/post_reply".to_string()));
        assert!(s.contains(&"/sys/pk/gw/thing/attribute/update_reply".to_string()));
    }
}
