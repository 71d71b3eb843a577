//! Is the new slot good? The data-path services run, the cloud session is up, the collector is
//! collecting, and the site's hook agrees.

use crate::config::OtaHealth;
use enos_bus::{CollectorProxy, CollectorStats, UplinkProxy, UplinkStatus};
use std::time::Duration;

/// The uplink's cloud session state, if the uplink answers.
pub async fn cloud_state(conn: &zbus::Connection) -> Option<String> {
    let p = UplinkProxy::new(conn).await.ok()?;
    let s = tokio::time::timeout(Duration::from_secs(5), p.status()).await.ok()?.ok()?;
    serde_json::from_str::<UplinkStatus>(&s).ok().map(|s| s.cloud.state)
}

/// Ok when every check passed before the timeout; else the checks that did not. Without a bus
/// connection only the checks that need none can pass.
pub async fn check(cfg: &OtaHealth, conn: Option<&zbus::Connection>) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(cfg.timeout_s);
    let mut first_samples = None;
    loop {
        let mut failing = Vec::new();
        for unit in &cfg.units {
            let ok = tokio::process::Command::new("systemctl")
                .args(["is-active", "--quiet", unit])
                .status()
                .await
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                failing.push(format!("{unit} is not active"));
            }
        }
        if (cfg.require_cloud || cfg.require_collecting) && conn.is_none() {
            failing.push("not connected to the bus".into());
        }
        if let (true, Some(conn)) = (cfg.require_cloud, conn) {
            let st = async {
                serde_json::from_str::<UplinkStatus>(&UplinkProxy::new(conn).await?.status().await?)
                    .map_err(|e| enos_bus::Error::Failed(e.to_string()))
            }
            .await;
            match st {
                Ok(s) if s.cloud.state == "connected" => {}
                // A box not provisioned yet has no session to wait for; it must not roll back.
                Ok(s) if s.cloud.state == "unconfigured" => {}
                Ok(s) => failing.push(format!("cloud session {}", s.cloud.state)),
                Err(e) => failing.push(format!("uplink not answering: {e}")),
            }
        }
        if let (true, Some(conn)) = (cfg.require_collecting, conn) {
            let st = async {
                serde_json::from_str::<CollectorStats>(&CollectorProxy::new(conn).await?.stats().await?)
                    .map_err(|e| enos_bus::Error::Failed(e.to_string()))
            }
            .await;
            match (st, first_samples) {
                // No devices configured: nothing to collect, nothing to hold against the update.
                (Ok(s), _) if s.devices == 0 => {}
                (Ok(s), None) => {
                    first_samples = Some(s.samples_collected);
                    failing.push("collector: waiting for samples".into());
                }
                (Ok(s), Some(n)) if s.samples_collected > n => {}
                (Ok(_), Some(_)) => failing.push("collector is not collecting".into()),
                (Err(e), _) => failing.push(format!("collector not answering: {e}")),
            }
        }
        if let Some(hook) = &cfg.hook {
            match crate::trusted::command("health.hook", hook) {
                Ok(cmd) => {
                    let ok = tokio::process::Command::from(cmd).status().await.map(|s| s.success()).unwrap_or(false);
                    if !ok {
                        failing.push(format!("health hook {} failed", hook.join(" ")));
                    }
                }
                Err(e) => failing.push(e.to_string()),
            }
        }
        if failing.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(failing.join("; "));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
