//! What the cloud last acknowledged per device and point, for the web center's live page
//! ("what did the cloud get?"): `org.enos.Edge.UplinkInspect1.LastSent(device)`.
//!
//! Only devices someone asked about in the last minute are recorded: the sender hands every
//! acknowledged message to [`acked`], which returns after one atomic load while nobody watches,
//! so the data path pays nothing for this in normal running.

use crate::state::Shared;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const WATCH_FOR: Duration = Duration::from_secs(60);

type Key = (String, String);

#[derive(Default)]
struct Store {
    /// (product key, device key) → until when it is recorded, and its points.
    watched: HashMap<Key, (Instant, BTreeMap<String, Sent>)>,
}

#[derive(Clone)]
struct Sent {
    value: serde_json::Value,
    ts_ms: u64,
    acked_ms: u64,
}

static WATCHING: AtomicUsize = AtomicUsize::new(0);

fn store() -> &'static Mutex<Store> {
    static S: OnceLock<Mutex<Store>> = OnceLock::new();
    S.get_or_init(Mutex::default)
}

/// A message the cloud answered with 200: records the values of watched devices in it.
pub fn acked(payload: &[u8]) {
    if WATCHING.load(Ordering::Relaxed) == 0 {
        return;
    }
    let rows = enos_cloud::telemetry::rows(payload);
    let now = enos_batch::now_ms();
    let mut st = store().lock().expect("last sent");
    for r in rows {
        let Some((_, points)) = st.watched.get_mut(&(r.product_key, r.device_key)) else { continue };
        for (name, v) in r.points {
            let newer = points.get(&name).is_none_or(|old| old.ts_ms <= r.time);
            if newer {
                points.insert(name, Sent { value: v, ts_ms: r.time, acked_ms: now });
            }
        }
    }
}

/// The device's last acknowledged values; starts or extends the watch of it.
fn last_sent(shared: &Shared, device: &str) -> enos_bus::Result<serde_json::Value> {
    let keys = shared.subs().keys_of(device);
    let keys = match keys {
        Some(Some(k)) => k,
        Some(None) => return Err(enos_bus::Error::InvalidArgs(format!("{device:?} is the gateway itself"))),
        None => {
            return Ok(serde_json::json!({ "device": device, "routed": false, "points": [],
                "note": "this device has no EnOS identity (give it a product key in the device editor, or a [[sub_device]] in uplink.toml): its data is not uploaded" }))
        }
    };
    let now = Instant::now();
    let mut st = store().lock().expect("last sent");
    st.watched.retain(|_, (until, _)| *until > now);
    let entry = st.watched.entry(keys.clone()).or_insert_with(|| (now, BTreeMap::new()));
    entry.0 = now + WATCH_FOR;
    let points: Vec<_> = entry
        .1
        .iter()
        .map(|(n, s)| serde_json::json!({ "point": n, "value": s.value, "ts_ms": s.ts_ms, "acked_ms": s.acked_ms }))
        .collect();
    WATCHING.store(st.watched.len(), Ordering::Relaxed);
    Ok(serde_json::json!({ "device": device, "routed": true, "product_key": keys.0, "device_key": keys.1, "points": points }))
}

pub struct Inspect {
    pub shared: Arc<Shared>,
}

#[zbus::interface(name = "org.enos.Edge.UplinkInspect1")]
impl Inspect {
    /// JSON `{"device", "routed", "product_key", "device_key", "points": [{"point", "value",
    /// "ts_ms", "acked_ms"}]}`: the newest values of the device the cloud acknowledged since the
    /// watch began (a call starts a 60 s watch; the first answer is usually empty).
    async fn last_sent(&self, device: &str) -> enos_bus::Result<String> {
        Ok(last_sent(&self.shared, device)?.to_string())
    }

    /// The device's model and how its points disagree with it (`crate::models`).
    async fn device_model(&self, device: &str, fetch: bool) -> enos_bus::Result<String> {
        Ok(crate::models::answer(&self.shared, device, fetch).await?.to_string())
    }
}

/// Points the interface at the new state after the session started again.
pub async fn replace(conn: &zbus::Connection, shared: Arc<Shared>) -> zbus::Result<()> {
    let iface = conn.object_server().interface::<_, Inspect>(enos_bus::UPLINK_PATH).await?;
    iface.get_mut().await.shared = shared;
    Ok(())
}

/// Serves the interface next to `org.enos.Edge.Uplink1` on the same object.
pub async fn serve(conn: &zbus::Connection, shared: Arc<Shared>) -> zbus::Result<()> {
    conn.object_server().at(enos_bus::UPLINK_PATH, Inspect { shared }).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_watched_devices_are_recorded() {
        let msg = br#"{"id":"1","params":[{"productKey":"pk","deviceKey":"a","measurepoints":{"P":1.5,"Q":2},"time":10},
            {"productKey":"pk","deviceKey":"b","measurepoints":{"P":9},"time":10},
            {"productKey":"pk","deviceKey":"a","measurepoints":{"P":1.7},"time":20},
            {"productKey":"pk","deviceKey":"a","measurepoints":{"P":1.6},"time":15}]}"#;
        acked(msg); // nobody watches: nothing kept
        assert!(store().lock().unwrap().watched.is_empty());
        store().lock().unwrap().watched.insert(("pk".into(), "a".into()), (Instant::now() + WATCH_FOR, BTreeMap::new()));
        WATCHING.store(1, Ordering::Relaxed);
        acked(msg);
        let st = store().lock().unwrap();
        let a = &st.watched[&("pk".to_string(), "a".to_string())].1;
        assert_eq!(a["P"].value, serde_json::json!(1.7), "the newest by time, whatever the order");
        assert_eq!(a["Q"].ts_ms, 10);
        assert!(!st.watched.contains_key(&("pk".to_string(), "b".to_string())));
    }
}
