//! The collector's devices, as its configuration names them (`Collector1.GetConfig`, every
//! `registration.poll_s`): a device with a `product_key` and no `[[sub_device]]` in
//! `uplink.toml` is one the gateway registers; one that left the configuration is logged out.
//! Read by polling: the collector signals device states, not configuration changes.

use crate::state::Shared;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// The parts of the collector's configuration read here.
#[derive(Deserialize)]
struct Configured {
    #[serde(default, rename = "device")]
    devices: Vec<Device>,
}

#[derive(Deserialize)]
struct Device {
    id: String,
    #[serde(default)]
    product_key: Option<String>,
}

/// (device id, product key) of every device that names a product.
fn wanted(config_json: &str) -> Result<Vec<(String, String)>, String> {
    let c: Configured = serde_json::from_str(config_json).map_err(|e| format!("the collector's configuration is not readable: {e}"))?;
    Ok(c.devices.into_iter().filter_map(|d| Some((d.id, d.product_key.filter(|p| !p.is_empty())?))).collect())
}

pub async fn run(shared: Arc<Shared>) {
    let every = Duration::from_secs(shared.cfg.registration.poll_s);
    let mut said: Option<String> = None;
    loop {
        match read(&shared).await {
            Ok(w) => {
                said = None;
                if shared.subs().configured(&w) {
                    shared.subs_changed();
                }
            }
            // the collector may not be up yet: said once, not every round
            Err(e) if said.as_ref() != Some(&e) => {
                log::info!("the collector's devices are not known yet: {e}");
                said = Some(e);
            }
            Err(_) => {}
        }
        tokio::time::sleep(every).await;
    }
}

async fn read(shared: &Shared) -> Result<Vec<(String, String)>, String> {
    let conn = shared.bus().ok_or("not on the bus yet")?;
    let p = enos_bus::CollectorProxy::new(conn).await.map_err(|e| e.to_string())?;
    wanted(&p.get_config().await.map_err(|e| e.to_string())?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn devices_that_name_a_product() {
        let j = r#"{"device": [{"id": "a", "product_key": "pk"}, {"id": "b"}, {"id": "c", "product_key": ""}], "push": {}}"#;
        assert_eq!(super::wanted(j).unwrap(), vec![("a".to_string(), "pk".to_string())]);
        assert!(super::wanted("1").unwrap_err().starts_with("the collector's configuration is not readable"));
    }
}
