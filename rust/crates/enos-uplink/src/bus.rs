//! `org.enos.Edge.Uplink1` on the bus.

use crate::state::Shared;
use enos_bus::{Error, Result};
use std::sync::Arc;
use zbus::object_server::SignalEmitter;

struct Uplink {
    shared: Arc<Shared>,
}

#[zbus::interface(name = "org.enos.Edge.Uplink1")]
impl Uplink {
    /// Stores a telemetry batch durably before answering.
    async fn push_telemetry(&self, batch: Vec<u8>) -> Result<u64> {
        let shared = self.shared.clone();
        let len = batch.len() as u64;
        let now = enos_batch::now_ms();
        let meta = tokio::task::spawn_blocking(move || shared.cache.append(&batch, now))
            .await
            .map_err(|e| Error::Failed(format!("cache task: {e}")))?
            .map_err(|e| match e {
                enos_cache::CacheError::BadBatch(_) | enos_cache::CacheError::EmptyBatch => Error::InvalidArgs(e.to_string()),
                e => Error::Failed(e.to_string()),
            })?;
        log::debug!("stored {} samples (oldest ts {}) as record {}", meta.points, meta.oldest_ts, meta.seq);
        self.shared.rate.lock().expect("rate").add(now, len, meta.points);
        self.shared.new_data.notify_one();
        Ok(meta.seq)
    }

    async fn status(&self) -> Result<String> {
        serde_json::to_string(&self.shared.status()).map_err(|e| Error::Failed(e.to_string()))
    }

    #[zbus(signal)]
    async fn cloud_state_changed(emitter: &SignalEmitter<'_>, state: &str, reason: &str) -> zbus::Result<()>;
}

pub async fn serve(shared: Arc<Shared>) -> zbus::Result<zbus::Connection> {
    enos_bus::builder().name(enos_bus::UPLINK_NAME).serve_at(enos_bus::UPLINK_PATH, Uplink { shared }).build().await
}

/// Serves `shared` from now on (the session started again with new cloud settings).
pub async fn replace(conn: &zbus::Connection, shared: Arc<Shared>) -> zbus::Result<()> {
    let iface = conn.object_server().interface::<_, Uplink>(enos_bus::UPLINK_PATH).await?;
    iface.get_mut().await.shared = shared;
    Ok(())
}

/// The cloud session's new state as `Uplink1.CloudStateChanged` (for the web center, enosctl),
/// sent in the background so the session never waits for the bus.
pub fn cloud_state_signal(conn: &zbus::Connection) -> crate::state::CloudStateSignal {
    let conn = conn.clone();
    Box::new(move |state: &str, reason: &str| {
        let (conn, state, reason) = (conn.clone(), state.to_string(), reason.to_string());
        tokio::spawn(async move {
            let sent = match SignalEmitter::new(&conn, enos_bus::UPLINK_PATH) {
                Ok(e) => Uplink::cloud_state_changed(&e, &state, &reason).await,
                Err(e) => Err(e),
            };
            if let Err(e) = sent {
                log::debug!("the cloud state {state} was not signalled on the bus: {e}");
            }
        });
    })
}

#[cfg(test)]
mod tests {
    use zbus::object_server::Interface;

    #[test]
    fn serves_the_contracts_interfaces() {
        assert_eq!(super::Uplink::name().as_str(), enos_bus::UPLINK_IFACE);
        assert_eq!(crate::cloud_settings::Iface::name().as_str(), enos_bus::UPLINK_SETTINGS_IFACE);
        assert_eq!(crate::last_sent::Inspect::name().as_str(), enos_bus::UPLINK_INSPECT_IFACE);
    }
}
