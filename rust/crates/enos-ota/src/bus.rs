//! `org.enos.Edge.Ota1` on the bus.

use crate::agent::Agent;
use enos_bus::{Caller, Error, Result};
use enos_model::device::OtaJob;
use std::sync::Arc;
use zbus::object_server::SignalEmitter;

pub struct Ota {
    pub agent: Arc<Agent>,
}

fn field<'a>(v: &'a serde_json::Value, k: &str) -> Option<&'a serde_json::Value> {
    v.get(k).filter(|x| !x.is_null())
}

#[zbus::interface(name = "org.enos.Edge.Ota1")]
impl Ota {
    async fn start_job(
        &self,
        params: &str,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
    ) -> Result<String> {
        log::info!("StartJob asked by {}", Caller::of(conn, &hdr).await);
        let v: serde_json::Value = serde_json::from_str(params).map_err(|e| Error::InvalidArgs(format!("job is not JSON: {e}")))?;
        let s = |k: &str| field(&v, k).and_then(|x| x.as_str()).map(str::to_string);
        let version = s("version")
            .filter(|x| !x.is_empty() && x.len() <= 64)
            .ok_or_else(|| Error::InvalidArgs("version missing or too long".into()))?;
        let url = s("fileUrl").ok_or_else(|| Error::InvalidArgs("fileUrl missing".into()))?;
        if url.starts_with("enos-connect://") {
            return Err(Error::NotSupported("enos-connect:// file URIs need the EnOS HTTP file API, not implemented yet".into()));
        }
        let file_size = field(&v, "fileSize").and_then(|x| x.as_u64().or_else(|| x.as_str()?.parse().ok()));
        let job = OtaJob {
            source: "cloud".into(),
            version,
            url: Some(url),
            file_size,
            sign_method: s("signMethod"),
            sign: s("sign"),
            ..Default::default()
        };
        let job = self.agent.accept(job).map_err(Error::Failed)?;
        tokio::spawn(self.agent.clone().run(job.clone(), None));
        Ok(job.id)
    }

    async fn install_file(
        &self,
        path: &str,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
    ) -> Result<String> {
        log::info!("InstallFile asked by {}", Caller::of(conn, &hdr).await);
        let p = std::path::PathBuf::from(path);
        if !p.is_absolute() || !p.is_file() {
            return Err(Error::InvalidArgs(format!("{path}: not an absolute path to a file")));
        }
        // The bundle's own version (its sw-description), not the file's name: what a downgrade
        // check compares.
        let version = crate::bundle::version(&p).map_err(|e| Error::InvalidArgs(e.to_string()))?;
        let job = OtaJob { source: "local".into(), version, ..Default::default() };
        let job = self.agent.accept(job).map_err(Error::Failed)?;
        tokio::spawn(self.agent.clone().run(job.clone(), Some(p)));
        Ok(job.id)
    }

    async fn status(&self) -> Result<String> {
        Ok(serde_json::to_string(&self.agent.status()).expect("json"))
    }

    async fn history(&self) -> Result<String> {
        Ok(serde_json::to_string(&self.agent.history()).expect("json"))
    }

    async fn rollback(
        &self,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
    ) -> Result<String> {
        log::info!("Rollback asked by {}", Caller::of(conn, &hdr).await);
        self.agent.operator_rollback().map_err(Error::Failed)
    }

    /// The level of the agent's own log lines until it stops; answers the one it had.
    async fn set_log_level(
        &self,
        level: &str,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
    ) -> Result<String> {
        enos_runtime::set_log_level_by(level, Caller::of(conn, &hdr).await).map_err(Error::InvalidArgs)
    }

    #[zbus(signal)]
    async fn progress(emitter: &SignalEmitter<'_>, job: &str, step: i32, desc: &str) -> zbus::Result<()>;
    #[zbus(signal)]
    async fn version_changed(emitter: &SignalEmitter<'_>, version: &str, reason: &str) -> zbus::Result<()>;
}

/// The agent's announcements as this interface's signals (`Ota1.Progress`,
/// `Ota1.VersionChanged`); a signal that cannot be sent is only logged.
pub struct Signals(pub zbus::Connection);

impl crate::agent::Announce for Signals {
    fn progress<'a>(&'a self, job: &'a str, step: i32, desc: &'a str) -> crate::agent::Announcing<'a> {
        Box::pin(async move {
            let sent = match SignalEmitter::new(&self.0, enos_bus::OTA_PATH) {
                Ok(e) => Ota::progress(&e, job, step, desc).await,
                Err(e) => Err(e),
            };
            if let Err(e) = sent {
                log::warn!("the progress of job {job} was not signalled on the bus: {e}");
            }
        })
    }

    fn version_changed<'a>(&'a self, version: &'a str, reason: &'a str) -> crate::agent::Announcing<'a> {
        Box::pin(async move {
            let sent = match SignalEmitter::new(&self.0, enos_bus::OTA_PATH) {
                Ok(e) => Ota::version_changed(&e, version, reason).await,
                Err(e) => Err(e),
            };
            if let Err(e) = sent {
                log::warn!("the running version {version} was not signalled on the bus: {e}");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn serves_the_contracts_interface() {
        use zbus::object_server::Interface;
        assert_eq!(super::Ota::name().as_str(), enos_bus::OTA_IFACE);
    }
}
