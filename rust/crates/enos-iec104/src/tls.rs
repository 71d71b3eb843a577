//! Mutual TLS per IEC 62351-3 around the same stream: the station's certificate must chain to
//! the configured CA and name the station; we present our certificate. TLS 1.2 and 1.3 only
//! (rustls's safe defaults, ring provider), which the standard's profile requires as a minimum.

use crate::settings::TlsSettings;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

fn certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading the {what} {}: {e}", path.display()))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the {what} {} is not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("the {what} {} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// Builds the connector once per session; a bad file is said in words, naming it.
pub(crate) fn connector(s: &TlsSettings) -> Result<TlsConnector, String> {
    let mut roots = RootCertStore::empty();
    for c in certs(&s.ca_file, "CA certificate")? {
        roots.add(c).map_err(|e| format!("the CA certificate {} cannot be used: {e}", s.ca_file.display()))?;
    }
    let chain = certs(&s.cert_file, "client certificate")?;
    let key_bytes = std::fs::read(&s.key_file).map_err(|e| format!("reading the client key {}: {e}", s.key_file.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes)
        .map_err(|e| format!("the client key {} holds no usable private key: {e}", s.key_file.display()))?;
    let config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("the client certificate {} does not match its key: {e}", s.cert_file.display()))?;
    Ok(TlsConnector::from(Arc::new(config)))
}

pub(crate) async fn handshake(c: &TlsConnector, s: &TlsSettings, address: &str, tcp: TcpStream) -> Result<TlsStream<TcpStream>, String> {
    let host = match &s.server_name {
        Some(n) => n.clone(),
        None => address.rsplit_once(':').map_or(address, |(h, _)| h).trim_matches(['[', ']']).to_string(),
    };
    let name = ServerName::try_from(host.clone()).map_err(|_| format!("{host:?} is not a valid TLS server name"))?;
    c.connect(name, tcp).await.map_err(|e| format!("the TLS handshake with {address} failed: {}", in_words(&e)))
}

/// rustls says certificate faults with its variant names; the common ones in words.
fn in_words(e: &std::io::Error) -> String {
    use rustls::{CertificateError as C, Error as E};
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<E>()) else { return e.to_string() };
    match tls {
        E::InvalidCertificate(C::UnknownIssuer) => "the station's certificate is not signed by the configured CA".into(),
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            "the station's certificate does not carry the station's name (see server_name)".into()
        }
        E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => "the station's certificate has expired".into(),
        E::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => "the station's certificate is not valid yet".into(),
        E::AlertReceived(_) => "the station refused the handshake (our certificate or the TLS parameters)".into(),
        other => other.to_string(),
    }
}
