//! Topic names.

pub fn sys(pk: &str, dk: &str, rest: &str) -> String {
    format!("/sys/{pk}/{dk}/{rest}")
}
pub fn session(gw_pk: &str, gw_dk: &str, rest: &str) -> String {
    format!("/ext/session/{gw_pk}/{gw_dk}/{rest}")
}
pub fn reply_of(topic: &str) -> String {
    format!("{topic}_reply")
}

pub const POST_BATCH: &str = "thing/measurepoint/post/batch";
pub const RESUME_BATCH: &str = "thing/measurepoint/resume/batch";
pub const TOPO_ADD: &str = "thing/topo/add";
pub const LOGIN_BATCH: &str = "combine/login/batch";
pub const TOPO_ADD_REPLY: &str = "thing/topo/add_reply";
pub const LOGIN_BATCH_REPLY: &str = "combine/login/batch_reply";
pub const OTA_INFORM: &str = "ota/device/inform";
pub const MEASUREPOINT_SET: &str = "thing/service/measurepoint/set";
pub const SERVICE_PREFIX: &str = "thing/service/";
pub const OTA_UPGRADE: &str = "ota/device/upgrade";
