//! `org.enos.Edge.Ota1` on the bus.

use crate::agent::Agent;
use enos_model::device::OtaJob;
use std::sync::Arc;
use zbus::fdo;

pub struct Ota {
    pub agent: Arc<Agent>,
}

fn field<'a>(v: &'a serde_json::Value, k: &str) -> Option<&'a serde_json::Value> {
    v.get(k).filter(|x| !x.is_null())
}

#[zbus::interface(name = "org.enos.Edge.Ota1")]
impl Ota {
    async fn start_job(&self, params: &str) -> fdo::Result<String> {
        let v: serde_json::Value = serde_json::from_str(params).map_err(|e| fdo::Error::InvalidArgs(format!("job is not JSON: {e}")))?;
        let s = |k: &str| field(&v, k).and_then(|x| x.as_str()).map(str::to_string);
        let version = s("version")
            .filter(|x| !x.is_empty() && x.len() <= 64)
            .ok_or_else(|| fdo::Error::InvalidArgs("version missing or too long".into()))?;
        let url = s("fileUrl").ok_or_else(|| fdo::Error::InvalidArgs("fileUrl missing".into()))?;
        if url.starts_with("enos-connect://") {
            return Err(fdo::Error::NotSupported("enos-connect:// file URIs need the EnOS HTTP file API, not implemented yet".into()));
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
        let job = self.agent.accept(job).map_err(fdo::Error::Failed)?;
        tokio::spawn(self.agent.clone().run(job.clone(), None));
        Ok(job.id)
    }

    async fn install_file(&self, path: &str) -> fdo::Result<String> {
        let p = std::path::PathBuf::from(path);
        if !p.is_absolute() || !p.is_file() {
            return Err(fdo::Error::InvalidArgs(format!("{path}: not an absolute path to a file")));
        }
        // The bundle's own version (its sw-description), not the file's name: what a downgrade
        // check compares.
        let version = crate::bundle::version(&p).map_err(|e| fdo::Error::InvalidArgs(e.to_string()))?;
        let job = OtaJob { source: "local".into(), version, ..Default::default() };
        let job = self.agent.accept(job).map_err(fdo::Error::Failed)?;
        tokio::spawn(self.agent.clone().run(job.clone(), Some(p)));
        Ok(job.id)
    }

    async fn status(&self) -> fdo::Result<String> {
        Ok(serde_json::to_string(&self.agent.status()).expect("json"))
    }

    async fn history(&self) -> fdo::Result<String> {
        Ok(serde_json::to_string(&self.agent.history()).expect("json"))
    }

    async fn rollback(&self) -> fdo::Result<String> {
        self.agent.operator_rollback().map_err(fdo::Error::Failed)
    }

    #[zbus(signal)]
    async fn progress(emitter: &zbus::object_server::SignalEmitter<'_>, job: &str, step: i32, desc: &str) -> zbus::Result<()>;
    #[zbus(signal)]
    async fn version_changed(emitter: &zbus::object_server::SignalEmitter<'_>, version: &str, reason: &str) -> zbus::Result<()>;
}
