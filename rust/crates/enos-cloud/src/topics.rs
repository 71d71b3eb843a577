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
/// A reply to the sub-devices' login (topology add or batch login), not to telemetry.
pub fn is_login_reply(topic: &str) -> bool {
    request_of(topic).is_some_and(|t| t.ends_with(TOPO_ADD) || t.ends_with(LOGIN_BATCH))
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

/// What a gateway subscribes to after every connect: the replies to its requests, and the
/// commands for itself and each sub-device (`devices`: (product key, device key)).
pub fn subscriptions(gw_pk: &str, gw_dk: &str, devices: &[(&str, &str)]) -> Vec<String> {
    let mut subs: Vec<String> = [POST_BATCH, RESUME_BATCH, TOPO_ADD, OTA_INFORM].iter().map(|t| reply_of(&sys(gw_pk, gw_dk, t))).collect();
    subs.push(reply_of(&session(gw_pk, gw_dk, LOGIN_BATCH)));
    for (p, d) in std::iter::once((gw_pk, gw_dk)).chain(devices.iter().copied()) {
        subs.push(sys(p, d, MEASUREPOINT_SET));
        subs.push(sys(p, d, &format!("{SERVICE_PREFIX}+")));
    }
    subs.push(sys(gw_pk, gw_dk, OTA_UPGRADE));
    subs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_subscriptions() {
        assert_eq!(request_of("/sys/pk/gw/thing/topo/add_reply"), Some("/sys/pk/gw/thing/topo/add"));
        assert!(is_login_reply("/sys/pk/gw/thing/topo/add_reply") && is_login_reply("/ext/session/pk/gw/combine/login/batch_reply"));
        assert!(!is_login_reply("/sys/pk/gw/thing/measurepoint/post/batch_reply") && !is_login_reply("/sys/pk/gw/thing/topo/add"));
        let s = subscriptions("pk", "gw", &[("pk2", "inv")]);
        assert!(s.contains(&"/sys/pk2/inv/thing/service/+".to_string()) && s.contains(&"/sys/pk/gw/ota/device/upgrade".to_string()));
        assert!(s.contains(&"/ext/session/pk/gw/combine/login/batch_reply".to_string()));
    }
}
