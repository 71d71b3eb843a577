//! Between the cloud and the update agent: upgrade jobs go to `enos-ota`; its progress and
//! version changes come back as signals and go out as the cloud's progress and version reports
//! (`enos_cloud::requests`).

use crate::mqtt;
use crate::state::Shared;
use enos_bus::OtaProxy;
use enos_cloud::requests::{self, Request};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;

pub async fn start(shared: &Arc<Shared>, params: &serde_json::Value) -> Result<String, String> {
    let conn = shared.bus().ok_or("the uplink is not on the bus yet")?;
    let p = OtaProxy::new(conn).await.map_err(|e| in_words(&e.into()))?;
    p.start_job(&params.to_string()).await.map_err(|e| in_words(&e))
}

/// A failed call to the update agent in words for the cloud's operator: the agent's own refusal
/// (one job at a time, bad parameters) as it said it, an absent agent as such; never D-Bus names.
fn in_words(e: &enos_bus::Error) -> String {
    if e.is_absent() {
        "the update agent is not running on this box".into()
    } else if e.is_timeout() {
        "the update agent did not answer".into()
    } else if let enos_bus::Error::Bus(b) = e {
        log::warn!("asking the update agent: {b}");
        "the update agent could not be asked (see the uplink's log)".into()
    } else {
        e.to_string()
    }
}

/// The version reported to the cloud after every connect and every version change: `cloud.firmware_version` when set, else what
/// the update agent reports (the committed slot's), else the product version this build was
/// stamped with (`ENOS_VERSION` at build time; the crate version without it). `/etc/os-release`
/// is the product's only on the product image, where the agent answers anyway.
pub async fn product_version(shared: &Arc<Shared>) -> String {
    if let Some(v) = &shared.cfg.cloud.firmware_version {
        return v.clone();
    }
    match running_version(shared).await {
        Some(v) => v,
        None => option_env!("ENOS_VERSION").unwrap_or(env!("CARGO_PKG_VERSION")).to_string(),
    }
}

/// The version the update agent reports (what the box really runs).
async fn running_version(shared: &Arc<Shared>) -> Option<String> {
    let p = OtaProxy::new(shared.bus()?).await.ok()?;
    let st: enos_bus::OtaStatus = serde_json::from_str(&tokio::time::timeout(Duration::from_secs(2), p.status()).await.ok()?.ok()?).ok()?;
    (st.version != "unknown").then_some(st.version)
}

/// Progress reports and version changes kept while no session is up, at most this many (the
/// newest): a commit after a reboot often comes before the network does.
const MAX_UNSENT: usize = 32;

/// Sent now, or kept for the next session (`session_started`): the cloud must hear the end of a
/// job (progress 100, the new version) even when the box committed before it was online.
fn publish(shared: &Arc<Shared>, req: impl FnOnce(&str, &str, u64) -> Request) {
    let c = &shared.cfg.cloud;
    let req = req(&c.product_key, &c.device_key, mqtt::next_id());
    let session = shared.mqtt.lock().expect("mqtt");
    match session.as_ref() {
        Some(cli) => mqtt::publish(cli, &req.topic, &req.payload),
        None => {
            log::info!("{} kept until the cloud session is up", req.method);
            let mut unsent = shared.ota_unsent.lock().expect("ota unsent");
            if unsent.len() == MAX_UNSENT {
                unsent.pop_front();
            }
            unsent.push_back(req);
        }
    }
}

/// A session just started: what was kept goes first, in order, then the version the box runs.
pub async fn session_started(shared: &Arc<Shared>) {
    let version = product_version(shared).await;
    let c = &shared.cfg.cloud;
    let inform = requests::ota_inform(&c.product_key, &c.device_key, mqtt::next_id(), &version);
    // under the session's lock, so a report made meanwhile is neither lost nor sent out of order
    let session = shared.mqtt.lock().expect("mqtt");
    let Some(cli) = session.as_ref() else { return };
    for r in shared.ota_unsent.lock().expect("ota unsent").drain(..) {
        mqtt::publish(cli, &r.topic, &r.payload);
    }
    mqtt::publish(cli, &inform.topic, &inform.payload);
}

pub fn publish_progress(shared: &Arc<Shared>, step: i32, desc: &str) {
    publish(shared, |pk, dk, id| requests::ota_progress(pk, dk, id, step, desc));
}

/// Forwards the agent's signals for as long as the uplink runs.
pub async fn relay(shared: Arc<Shared>) {
    let Some(conn) = shared.bus().cloned() else { return };
    let Ok(p) = OtaProxy::new(&conn).await else { return };
    let (Ok(mut progress), Ok(mut versions)) = (p.receive_progress().await, p.receive_version_changed().await) else {
        log::warn!("cannot follow the update agent's signals");
        return;
    };
    loop {
        tokio::select! {
            // The agent signals progress 100 before the version change, and the bus keeps that
            // order, but two streams ready at once would be taken in random order: the cloud
            // must hear the commit before the new version (the QEMU tier caught it the other way).
            biased;
            Some(s) = progress.next() => if let Ok(a) = s.args() {
                publish_progress(&shared, a.step, a.desc);
            },
            Some(s) = versions.next() => if let Ok(a) = s.args() {
                publish(&shared, |pk, dk, id| requests::ota_inform(pk, dk, id, a.version));
            },
            else => return,
        }
    }
}
