//! HTTPS: the configured certificate, or a self-signed one generated on first start into
//! `<state_dir>/tls/` (key mode 0600) and reused after.

use crate::config::WebConfig;
use anyhow::{bail, Context};
use enos_runtime::fs::write_atomic;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub fn generated_paths(state_dir: &Path) -> (PathBuf, PathBuf) {
    let d = state_dir.join("tls");
    (d.join("cert.pem"), d.join("key.pem"))
}

pub fn host_name() -> Option<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let h = h.trim();
    (!h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))).then(|| h.to_string())
}

/// Names the generated certificate is valid for.
fn subject_names(cfg: &WebConfig) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if let Some(h) = host_name() {
        names.push(h.clone());
        if !h.contains('.') {
            names.push(format!("{h}.local"));
        }
    }
    let ip = cfg.listen_addr().ip();
    if !ip.is_unspecified() && !ip.is_loopback() {
        names.push(ip.to_string());
    }
    names.extend(cfg.tls.hostnames.iter().cloned());
    names.dedup();
    names
}

/// Generates the self-signed certificate unless it exists already.
pub fn ensure_self_signed(cfg: &WebConfig) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (cert, key) = generated_paths(&cfg.state_dir);
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let names = subject_names(cfg);
    let mut params = rcgen::CertificateParams::new(names.clone()).context("certificate names")?;
    params.distinguished_name.push(rcgen::DnType::CommonName, format!("EnOS Edge {}", host_name().unwrap_or_else(|| "gateway".into())));
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "EnOS Edge (self-signed)");
    let key_pair = rcgen::KeyPair::generate().context("generating the TLS key")?;
    let c = params.self_signed(&key_pair).context("self-signing the TLS certificate")?;
    let dir = key.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create the directory", dir.display()))?;
    // Key first: a cert without its key is regenerated, a key without its cert too.
    write_atomic(&key, key_pair.serialize_pem().as_bytes(), 0o600).with_context(|| format!("writing {}", key.display()))?;
    write_atomic(&cert, c.pem().as_bytes(), 0o644).with_context(|| format!("writing {}", cert.display()))?;
    log::info!("generated a self-signed TLS certificate for {} in {}", names.join(", "), cert.display());
    Ok((cert, key))
}

/// SHA-256 of a certificate, as browsers show it (`AB:CD:...`), so that a technician on the LAN
/// can compare what the browser got with what the box's screen and log show.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(cert.as_ref()).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// The server's TLS configuration and its certificate's fingerprint.
pub fn server_config(cfg: &WebConfig) -> anyhow::Result<(Arc<rustls::ServerConfig>, String)> {
    let (cert_file, key_file) = match (&cfg.tls.cert_file, &cfg.tls.key_file) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => ensure_self_signed(cfg)?,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_file)
        .with_context(|| format!("{}: cannot read the certificate", cert_file.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: not a PEM certificate chain", cert_file.display()))?;
    if certs.is_empty() {
        bail!("{}: no certificate in the file", cert_file.display());
    }
    let print = fingerprint(&certs[0]);
    let key = PrivateKeyDer::from_pem_file(&key_file).with_context(|| format!("{}: not a PEM private key", key_file.display()))?;
    let mut sc = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| format!("{} and {} do not make a usable certificate and key", cert_file.display(), key_file.display()))?;
    sc.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(sc), print))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generates_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = WebConfig { state_dir: dir.path().to_path_buf(), ..Default::default() };
        let (_, print) = server_config(&cfg).unwrap();
        assert_eq!(print.len(), 32 * 3 - 1, "{print}");
        let (cert, key) = generated_paths(dir.path());
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        let first = std::fs::read(&cert).unwrap();
        server_config(&cfg).unwrap();
        assert_eq!(std::fs::read(&cert).unwrap(), first, "reused, not regenerated");
    }

    #[test]
    fn bad_configured_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("c.pem");
        std::fs::write(&c, "nothing").unwrap();
        let mut cfg = WebConfig { state_dir: dir.path().to_path_buf(), ..Default::default() };
        cfg.tls.cert_file = Some(c.clone());
        cfg.tls.key_file = Some(dir.path().join("missing.key"));
        let e = format!("{:#}", server_config(&cfg).unwrap_err());
        assert!(e.contains("c.pem"), "{e}");
    }
}
