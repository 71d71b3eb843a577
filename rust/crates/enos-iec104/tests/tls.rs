//! Mutual TLS (IEC 62351-3) to a c104 station with a PKI generated here.

mod common;

use common::{interrogation, link, settings, Peer};
use enos_iec104::{LinkState, Settings, Station, TlsSettings};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};
use std::path::{Path, PathBuf};

const ONE: &str = r#"{"ca": 1, "points": [{"ioa": 1, "type": "M_SP_NA_1", "value": true}]}"#;

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(dir: &Path, name: &str, sans: &[&str], issuer: &CertifiedIssuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    let cert = p.signed_by(&key, issuer).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
}

/// A CA with the station's and our certificate, and a stranger CA with a certificate of its own.
fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let (ours, stranger) = (ca("test CA"), ca("stranger CA"));
    std::fs::write(dir.path().join("ca.pem"), ours.pem()).unwrap();
    std::fs::write(dir.path().join("stranger-ca.pem"), stranger.pem()).unwrap();
    leaf(dir.path(), "station", &["127.0.0.1", "localhost"], &ours);
    leaf(dir.path(), "client", &["gateway"], &ours);
    leaf(dir.path(), "stranger", &["gateway"], &stranger);
    Pki { dir }
}

async fn tls_station(pki: &Pki) -> Peer {
    let (cert, key, ca) = (pki.path("station.pem"), pki.path("station.key"), pki.path("ca.pem"));
    Peer::start(common::free_port(), ONE, Some([&cert, &key, &ca])).await
}

fn tls_settings(peer: &Peer, pki: &Pki, ca: &str, client: &str) -> Settings {
    Settings {
        tls: Some(TlsSettings {
            ca_file: pki.path(ca),
            cert_file: pki.path(&format!("{client}.pem")),
            key_file: pki.path(&format!("{client}.key")),
            server_name: None,
        }),
        ..settings(&[peer.address()])
    }
}

#[tokio::test]
async fn mutual_tls_carries_the_session() {
    let pki = pki();
    let peer = tls_station(&pki).await;
    let (station, mut rx) = Station::start(tls_settings(&peer, &pki, "ca.pem", "client")).unwrap();
    link(&mut rx, LinkState::Up).await;
    assert_eq!(interrogation(&mut rx).await.len(), 1);
    station.close().await;
}

#[tokio::test]
async fn a_station_signed_by_another_ca_is_refused() {
    let pki = pki();
    let peer = tls_station(&pki).await;
    let (station, mut rx) = Station::start(tls_settings(&peer, &pki, "stranger-ca.pem", "client")).unwrap();
    let (_, reason) = link(&mut rx, LinkState::Down).await;
    assert_eq!(
        reason,
        format!("the TLS handshake with {} failed: the station's certificate is not signed by the configured CA", peer.address())
    );
    station.close().await;
}

#[tokio::test]
async fn the_station_refuses_a_client_certificate_of_another_ca() {
    let pki = pki();
    let peer = tls_station(&pki).await;
    let (station, mut rx) = Station::start(tls_settings(&peer, &pki, "ca.pem", "stranger")).unwrap();
    let (_, reason) = link(&mut rx, LinkState::Down).await;
    assert_eq!(
        reason,
        format!(
            "the TLS handshake with {} failed: the station refused the handshake (our certificate or the TLS parameters)",
            peer.address()
        )
    );
    assert_eq!(station.stats().connects.load(std::sync::atomic::Ordering::Relaxed), 0);
    station.close().await;
}

#[tokio::test]
async fn a_missing_key_file_is_named() {
    let pki = pki();
    let peer = tls_station(&pki).await;
    let mut s = tls_settings(&peer, &pki, "ca.pem", "client");
    s.tls.as_mut().unwrap().key_file = pki.path("nope.key");
    let (_station, mut rx) = Station::start(s).unwrap();
    let (_, reason) = link(&mut rx, LinkState::Closed).await;
    assert!(reason.starts_with(&format!("reading the client key {}: ", pki.path("nope.key").display())), "{reason}");
}
