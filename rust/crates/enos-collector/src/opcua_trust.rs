//! The trust list of an OPC UA device's server certificates over the bus
//! (`ListOpcuaCertificates`, `TrustOpcuaCertificate`, `RemoveOpcuaCertificate`): the device names
//! the PKI directory (its `pki_dir`), the request names a certificate by its SHA-256 thumbprint
//! only, so a caller can never reach a file outside `trusted/` and `rejected/`.
//!
//! Nothing is restarted: async-opcua reads `trusted/` at every connect attempt, so a trusted
//! server is accepted at the device's next attempt (at most `reconnect_max_ms` away).

use crate::reload::Engine;
use enos_bus::{Error, OpcuaCertificate, OpcuaCertificates};
use enos_collector_config::ProtocolConfig;
use enos_opcua::trust;
use std::path::PathBuf;
use std::sync::Mutex;

/// The PKI directory of OPC UA device `device`, or why there is none.
pub fn pki_dir(engine: &Mutex<Engine>, device: &str) -> enos_bus::Result<PathBuf> {
    let engine = engine.lock().expect("engine");
    let d = engine.device(device).ok_or_else(|| Error::NotFound(format!("there is no device \"{device}\"")))?;
    match &d.proto {
        ProtocolConfig::Opcua(o) => Ok(PathBuf::from(&o.pki_dir)),
        p => Err(Error::InvalidArgs(format!(
            "device \"{device}\" is a {} device: only OPC UA devices have server certificates",
            p.protocol()
        ))),
    }
}

fn said(c: trust::Certificate) -> OpcuaCertificate {
    OpcuaCertificate {
        state: c.list.name().into(),
        file: c.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        sha256: c.sha256,
        subject: c.subject,
        issuer: c.issuer,
        not_before_ms: c.not_before_ms,
        not_after_ms: c.not_after_ms,
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> enos_bus::Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Failed(e.to_string()))
}

fn refused(e: trust::TrustError) -> Error {
    match e {
        trust::TrustError::Unknown(_) => Error::NotFound(e.to_string()),
        trust::TrustError::Io(m) => Error::Failed(m),
    }
}

/// A thumbprint is 64 hex digits (colons allowed, any case); anything else is said before the
/// directories are read.
fn check_thumbprint(sha256: &str) -> enos_bus::Result<()> {
    if trust::thumbprint(sha256).is_some() {
        Ok(())
    } else {
        Err(Error::InvalidArgs(format!(
            "\"{}\" is not a SHA-256 thumbprint (64 hexadecimal digits)",
            sha256.chars().take(80).collect::<String>()
        )))
    }
}

pub fn list(engine: &Mutex<Engine>, device: &str) -> enos_bus::Result<String> {
    let dir = pki_dir(engine, device)?;
    let certificates = trust::list(&dir).into_iter().map(said).collect();
    to_json(&OpcuaCertificates { device: device.into(), pki_dir: dir.display().to_string(), certificates })
}

pub fn trust(engine: &Mutex<Engine>, device: &str, sha256: &str, who: &str) -> enos_bus::Result<String> {
    check_thumbprint(sha256)?;
    let dir = pki_dir(engine, device)?;
    let c = trust::trust(&dir, sha256).map_err(refused)?;
    log::warn!("AUDIT OPC UA server certificate {} ({}) of device {device} trusted by {who}", c.sha256, c.subject);
    to_json(&said(c))
}

pub fn remove(engine: &Mutex<Engine>, device: &str, sha256: &str, who: &str) -> enos_bus::Result<String> {
    check_thumbprint(sha256)?;
    let dir = pki_dir(engine, device)?;
    let c = trust::delete(&dir, sha256).map_err(refused)?;
    log::warn!("AUDIT OPC UA server certificate {} ({}, {}) of device {device} removed by {who}", c.sha256, c.subject, c.list.name());
    to_json(&said(c))
}

#[cfg(test)]
mod tests {
    #[test]
    fn thumbprints_are_checked_in_words() {
        assert!(super::check_thumbprint(&"aB".repeat(32)).is_ok());
        assert!(super::check_thumbprint(&"ab:".repeat(32)).is_ok());
        let e = super::check_thumbprint("../../etc/passwd").unwrap_err();
        assert_eq!(e.to_string(), "\"../../etc/passwd\" is not a SHA-256 thumbprint (64 hexadecimal digits)");
    }
}
