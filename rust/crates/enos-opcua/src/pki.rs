//! The gateway's certificate store, as async-opcua lays it out under the PKI directory:
//! `own/cert.der` and `private/private.pem` (this gateway, made on first start),
//! `trusted/` (server certificates an administrator trusts, DER) and `rejected/` (those refused,
//! copied there by async-opcua so an administrator can move them to `trusted/`).

use opcua::crypto::{CertificateStore, X509Data};
use opcua::types::{ApplicationDescription, DateTime};
use std::path::{Path, PathBuf};

/// The gateway's own certificate is valid five years. Every new certificate has to be trusted
/// again by hand on every server (there is no CA in these plants), so a short validity costs an
/// outage per server per renewal; five years is within a substation's maintenance cycle and
/// keeps a stolen key's useful life bounded.
pub const VALIDITY_DAYS: u32 = 5 * 365 + 1;
/// A certificate with fewer days left is made anew at the next connect (the servers have to
/// trust the new one: a warning says so).
pub const RENEW_DAYS: i64 = 30;

/// Makes the gateway's certificate and key in `own/` and `private/` when there is none or the
/// one there expires within [`RENEW_DAYS`]; `Ok(true)` when one was made.
pub fn ensure_own(dir: &Path, name: &str, uri: &str) -> Result<bool, String> {
    let (cert, key) = (dir.join("own/cert.der"), dir.join("private/private.pem"));
    let days_left =
        CertificateStore::read_cert(&cert).ok().and_then(|c| c.not_after().ok()).map(|end| (end - DateTime::now().as_chrono()).num_days());
    if days_left.is_some_and(|d| d >= RENEW_DAYS) && key.exists() {
        return Ok(false);
    }
    let app = ApplicationDescription { application_name: name.into(), application_uri: uri.into(), ..Default::default() };
    let mut x509 = X509Data::from((app, None));
    x509.certificate_duration_days = VALIDITY_DAYS;
    CertificateStore::create_certificate_and_key(&x509, true, &cert, &key)
        .map_err(|e| format!("cannot make the gateway's OPC UA certificate in {}: {e}", dir.display()))?;
    if let Some(d) = days_left {
        log::warn!(
            "the gateway's OPC UA certificate had {d} days left: a new one (valid {VALIDITY_DAYS} days) is in {}; \
             every server must trust it",
            cert.display()
        );
    }
    Ok(true)
}

/// Creates the directories, the private key's readable by this service only.
pub fn prepare(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    for sub in ["own", "private", "trusted", "rejected"] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| format!("cannot create the OPC UA PKI directory {}: {e}", d.display()))?;
    }
    let private = dir.join("private");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot restrict {}: {e}", private.display()))
}

/// The most recently refused server certificate, if any.
pub fn newest_rejected(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir.join("rejected"))
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_own_certificate_is_made_valid_five_years_and_made_anew_before_it_expires() {
        let dir = std::env::temp_dir().join(format!("enos-opcua-pki-{}", std::process::id()));
        prepare(&dir).unwrap();
        let days = |d: &Path| {
            let c = CertificateStore::read_cert(&d.join("own/cert.der")).unwrap();
            (c.not_after().unwrap() - DateTime::now().as_chrono()).num_days()
        };
        assert!(ensure_own(&dir, "EnOS Edge collector", "urn:enos-edge:collector").unwrap());
        assert!(days(&dir) >= i64::from(VALIDITY_DAYS) - 1, "{}", days(&dir));
        assert!(!ensure_own(&dir, "EnOS Edge collector", "urn:enos-edge:collector").unwrap(), "kept while valid");
        // one that expires in 10 days is replaced
        let mut short = X509Data::from((ApplicationDescription::default(), None));
        short.certificate_duration_days = 10;
        CertificateStore::create_certificate_and_key(&short, true, &dir.join("own/cert.der"), &dir.join("private/private.pem")).unwrap();
        assert!(ensure_own(&dir, "EnOS Edge collector", "urn:enos-edge:collector").unwrap());
        assert!(days(&dir) >= i64::from(VALIDITY_DAYS) - 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
