//! The collector's devices and the cloud product each is configured under
//! (`Collector1.ListDevices`, every `registration.poll_s`): a device with a `product_key` and no
//! `[[sub_device]]` in `uplink.toml` is one the gateway registers; one that left the
//! configuration is logged out. Read by polling: the collector signals device states, not
//! configuration changes. The device list, not `GetConfig`: the whole configuration of 100,000
//! points every few seconds cost the collector megabytes of churn for two fields per device.

use crate::state::Shared;
use enos_bus::DeviceStatus;
use std::sync::Arc;
use std::time::Duration;

/// (device id, product key) of every device that names a product.
fn wanted(devices_json: &str) -> Result<Vec<(String, String)>, String> {
    let list: Vec<DeviceStatus> =
        serde_json::from_str(devices_json).map_err(|e| format!("the collector's device list is not readable: {e}"))?;
    Ok(list.into_iter().filter_map(|d| Some((d.id, d.product_key.filter(|p| !p.is_empty())?))).collect())
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
    wanted(&p.list_devices().await.map_err(|e| e.to_string())?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn devices_that_name_a_product() {
        let j = r#"[{"id": "a", "protocol": "modbus-tcp", "state": "online", "last_ok_ms": null, "last_error": null,
            "polls_ok": 1, "polls_failed": 0, "points": 2, "product_key": "pk"},
            {"id": "b", "protocol": "modbus-tcp", "state": "online", "last_ok_ms": null, "last_error": null,
            "polls_ok": 1, "polls_failed": 0, "points": 2},
            {"id": "c", "protocol": "modbus-tcp", "state": "disabled", "last_ok_ms": null, "last_error": null,
            "polls_ok": 0, "polls_failed": 0, "points": 2, "product_key": ""}]"#;
        assert_eq!(super::wanted(j).unwrap(), vec![("a".to_string(), "pk".to_string())]);
        assert!(super::wanted("1").unwrap_err().starts_with("the collector's device list is not readable"));
    }
}
