//! The trust list: the server certificates in the PKI directory's `trusted/` (this gateway talks
//! to those servers) and `rejected/` (refused at a connect, kept for an administrator to look at),
//! each said with what a person checks before trusting one: subject, issuer, validity and SHA-256
//! thumbprint. A certificate is named by its thumbprint, never by a path, so a request can only
//! ever name a file of these two directories.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use x509_cert::der::Decode;

/// Which list a certificate is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Trusted,
    Rejected,
}

impl List {
    pub fn name(self) -> &'static str {
        match self {
            List::Trusted => "trusted",
            List::Rejected => "rejected",
        }
    }
}

/// One server certificate of the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Certificate {
    pub list: List,
    /// Its file (in `trusted/` or `rejected/`).
    pub path: PathBuf,
    /// SHA-256 of the DER, lower-case hex.
    pub sha256: String,
    pub subject: String,
    pub issuer: String,
    /// Validity, Unix ms.
    pub not_before_ms: u64,
    pub not_after_ms: u64,
}

/// Why a trust-list request failed, in words.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TrustError {
    #[error("no certificate with SHA-256 thumbprint {0} in the OPC UA trust list")]
    Unknown(String),
    #[error("{0}")]
    Io(String),
}

/// Every certificate in `trusted/` and `rejected/` (files that are not certificates are left
/// out: async-opcua reads only DER and PEM ones too).
pub fn list(dir: &Path) -> Vec<Certificate> {
    let mut out = Vec::new();
    for l in [List::Trusted, List::Rejected] {
        let Ok(entries) = std::fs::read_dir(dir.join(l.name())) else { continue };
        for e in entries.filter_map(Result::ok) {
            if let Some(c) = read(&e.path(), l) {
                out.push(c);
            }
        }
    }
    out.sort_by(|a, b| (a.list.name(), &a.subject, &a.sha256).cmp(&(b.list.name(), &b.subject, &b.sha256)));
    out
}

fn read(path: &Path, list: List) -> Option<Certificate> {
    let bytes = std::fs::read(path).ok()?;
    let der = match bytes.starts_with(b"-----BEGIN") {
        true => pem_der(&bytes)?,
        false => bytes,
    };
    let cert = x509_cert::Certificate::from_der(&der).ok()?;
    let tbs = &cert.tbs_certificate;
    let ms = |t: &x509_cert::time::Time| t.to_unix_duration().as_millis() as u64;
    Some(Certificate {
        list,
        path: path.to_path_buf(),
        sha256: hex::encode(Sha256::digest(&der)),
        subject: tbs.subject.to_string(),
        issuer: tbs.issuer.to_string(),
        not_before_ms: ms(&tbs.validity.not_before),
        not_after_ms: ms(&tbs.validity.not_after),
    })
}

/// The DER inside a PEM `CERTIFICATE` block.
fn pem_der(pem: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(pem).ok()?;
    let body: String =
        text.lines().skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE")).skip(1).take_while(|l| !l.starts_with("-----END")).collect();
    opcua::types::ByteString::from_base64(&body).and_then(|b| b.value)
}

/// A SHA-256 thumbprint as a person gives it (colons allowed, any case) in the form certificates
/// are known by here (64 lower-case hex digits); `None` when it is not one.
pub fn thumbprint(given: &str) -> Option<String> {
    let hex = given.trim().to_ascii_lowercase().replace(':', "");
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(hex)
}

fn find(dir: &Path, sha256: &str) -> Result<Certificate, TrustError> {
    let want = thumbprint(sha256);
    list(dir).into_iter().find(|c| Some(&c.sha256) == want.as_ref()).ok_or_else(|| TrustError::Unknown(sha256.trim().to_string()))
}

/// Moves a rejected certificate to `trusted/`: the next connect to its server succeeds. Trusting
/// one already trusted changes nothing.
pub fn trust(dir: &Path, sha256: &str) -> Result<Certificate, TrustError> {
    let c = find(dir, sha256)?;
    if c.list == List::Trusted {
        return Ok(c);
    }
    let name = c.path.file_name().map(PathBuf::from).unwrap_or_else(|| PathBuf::from(format!("{}.der", c.sha256)));
    let to = dir.join("trusted").join(name);
    std::fs::rename(&c.path, &to).map_err(|e| TrustError::Io(format!("cannot move {} to {}: {e}", c.path.display(), to.display())))?;
    Ok(Certificate { list: List::Trusted, path: to, ..c })
}

/// Deletes a certificate from either list: a trusted server is refused again at its next
/// connect; a rejected one is forgotten (its server's next refusal puts it back).
pub fn delete(dir: &Path, sha256: &str) -> Result<Certificate, TrustError> {
    let c = find(dir, sha256)?;
    std::fs::remove_file(&c.path).map_err(|e| TrustError::Io(format!("cannot delete {}: {e}", c.path.display())))?;
    Ok(c)
}

/// Puts every certificate an OEM or installer dropped into `trusted/` (any file name, DER or PEM)
/// under the name async-opcua looks for (`<common name> [<SHA-1 thumbprint>].der`, DER), so
/// pre-seeded trust works without knowing that rule. Files that are not certificates are left.
pub fn normalise_trusted(dir: &Path) -> Result<usize, String> {
    let trusted = dir.join("trusted");
    let Ok(entries) = std::fs::read_dir(&trusted) else { return Ok(0) };
    let mut moved = 0;
    for e in entries.filter_map(Result::ok) {
        let path = e.path();
        let Some(c) = read(&path, List::Trusted) else { continue };
        let der = match std::fs::read(&path) {
            Ok(b) if b.starts_with(b"-----BEGIN") => pem_der(&b).unwrap_or_default(),
            Ok(b) => b,
            Err(_) => continue,
        };
        let Ok(x509) = opcua::crypto::X509::from_der(&der) else { continue };
        let want = trusted.join(opcua::crypto::CertificateStore::cert_file_name(&x509));
        if want == path {
            continue;
        }
        std::fs::write(&want, &der).map_err(|e| format!("cannot write {}: {e}", want.display()))?;
        std::fs::remove_file(&path).map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
        log::info!("OPC UA trust list: {} ({}) is now {}", path.display(), c.subject, want.display());
        moved += 1;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opcua::crypto::{CertificateStore, X509Data};
    use opcua::types::ApplicationDescription;

    /// A server certificate (DER) with common name `cn`, as async-opcua names it.
    fn server_cert(cn: &str, scratch: &Path) -> (Vec<u8>, String) {
        let app = ApplicationDescription { application_name: cn.into(), application_uri: format!("urn:{cn}").into(), ..Default::default() };
        let x = X509Data::from((app, None));
        let (cert, key) = (scratch.join(format!("{cn}.der")), scratch.join(format!("{cn}.pem")));
        CertificateStore::create_certificate_and_key(&x, true, &cert, &key).unwrap();
        let der = std::fs::read(&cert).unwrap();
        let name = CertificateStore::cert_file_name(&opcua::crypto::X509::from_der(&der).unwrap());
        (der, name)
    }

    #[test]
    fn a_rejected_certificate_is_listed_in_words_trusted_and_deleted_by_its_thumbprint() {
        let dir = std::env::temp_dir().join(format!("enos-opcua-trust-{}", std::process::id()));
        crate::pki::prepare(&dir).unwrap();
        let (der, name) = server_cert("plc-7", &dir);
        std::fs::write(dir.join("rejected").join(&name), &der).unwrap();
        std::fs::write(dir.join("rejected/notes.txt"), "not a certificate").unwrap();

        let l = list(&dir);
        assert_eq!(l.len(), 1, "{l:?}");
        let c = &l[0];
        assert_eq!(c.list, List::Rejected);
        assert!(c.subject.contains("CN=plc-7"), "{}", c.subject);
        assert_eq!(c.issuer, c.subject, "self-signed");
        assert_eq!(c.sha256, hex::encode(Sha256::digest(&der)));
        assert!(c.not_before_ms < c.not_after_ms);

        let upper = c.sha256.to_ascii_uppercase();
        let t = trust(&dir, &upper).unwrap();
        assert_eq!(t.list, List::Trusted);
        assert!(dir.join("trusted").join(&name).exists(), "under the name async-opcua looks for");
        assert!(!dir.join("rejected").join(&name).exists());
        assert_eq!(trust(&dir, &c.sha256).unwrap().list, List::Trusted, "trusting twice changes nothing");

        delete(&dir, &c.sha256).unwrap();
        assert!(list(&dir).is_empty());
        assert_eq!(delete(&dir, "abc").unwrap_err().to_string(), "no certificate with SHA-256 thumbprint abc in the OPC UA trust list");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_pre_seeded_certificate_of_any_name_is_put_where_async_opcua_looks() {
        let dir = std::env::temp_dir().join(format!("enos-opcua-seed-{}", std::process::id()));
        crate::pki::prepare(&dir).unwrap();
        let (der, name) = server_cert("scada-1", &dir);
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            opcua::types::ByteString::from(der.clone()).as_base64()
        );
        std::fs::write(dir.join("trusted/oem-scada.pem"), pem).unwrap();
        assert_eq!(normalise_trusted(&dir).unwrap(), 1);
        assert_eq!(std::fs::read(dir.join("trusted").join(&name)).unwrap(), der);
        assert!(!dir.join("trusted/oem-scada.pem").exists());
        assert_eq!(normalise_trusted(&dir).unwrap(), 0, "once is enough");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
