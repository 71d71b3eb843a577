//! Everything checked before a package is staged: the envelope, the signature against the OEM's
//! key, the manifest, each item's place and digest. A package that passes is [`Verified`]: its
//! manifest and its items' bytes, nothing else.

use crate::format::{Envelope, ItemType, Manifest, FORMAT};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The largest package accepted (the envelope as received).
pub const MAX_PACKAGE_BYTES: usize = 16 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PackageError {
    #[error("the package is not a resource package: {0}")]
    Malformed(String),
    #[error("the package is larger than {limit} bytes ({size} bytes)")]
    TooLarge { size: usize, limit: usize },
    #[error("the package is not signed")]
    Unsigned,
    #[error("the package's signature does not match the manifest and the gateway's package key (tampered with, or signed by another key)")]
    BadSignature,
    #[error("the manifest: {0}")]
    Manifest(String),
    #[error("item \"{path}\": {reason}")]
    Item { path: String, reason: String },
}

/// A package whose signature and digests held.
#[derive(Debug, Clone)]
pub struct Verified {
    pub manifest: Manifest,
    /// Item path → bytes, for every item of the manifest and nothing else.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Verifies `bytes` against the ed25519 public key `key`.
pub fn verify(bytes: &[u8], key: &[u8; 32]) -> Result<Verified, PackageError> {
    if bytes.len() > MAX_PACKAGE_BYTES {
        return Err(PackageError::TooLarge { size: bytes.len(), limit: MAX_PACKAGE_BYTES });
    }
    let env: Envelope = serde_json::from_slice(bytes).map_err(|e| PackageError::Malformed(e.to_string()))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let sig = env.signature.as_deref().filter(|s| !s.trim().is_empty()).ok_or(PackageError::Unsigned)?;
    let sig = b64.decode(sig.trim()).map_err(|_| PackageError::BadSignature)?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
        .verify(env.manifest.as_bytes(), &sig)
        .map_err(|_| PackageError::BadSignature)?;
    let manifest: Manifest = serde_json::from_str(&env.manifest).map_err(|e| PackageError::Manifest(e.to_string()))?;
    if manifest.format != FORMAT {
        return Err(PackageError::Manifest(format!("format {} is not known to this gateway (it reads format {FORMAT})", manifest.format)));
    }
    crate::version::parse(&manifest.version).map_err(PackageError::Manifest)?;
    if manifest.items.is_empty() {
        return Err(PackageError::Manifest("it names no items".into()));
    }
    let mut files = BTreeMap::new();
    for item in &manifest.items {
        let fail = |reason: String| PackageError::Item { path: item.path.clone(), reason };
        check_path(&item.path, item.kind).map_err(fail)?;
        if files.contains_key(&item.path) {
            return Err(fail("listed twice".into()));
        }
        let data = env.files.get(&item.path).ok_or_else(|| fail("listed in the manifest but not in the package".into()))?;
        let data = b64.decode(data).map_err(|_| fail("its content is not base64".into()))?;
        let digest = hex::encode(Sha256::digest(&data));
        if !digest.eq_ignore_ascii_case(item.sha256.trim()) {
            return Err(fail(format!("sha256 is {digest}, the manifest says {}", item.sha256)));
        }
        files.insert(item.path.clone(), data);
    }
    if let Some(extra) = env.files.keys().find(|p| !files.contains_key(*p)) {
        return Err(PackageError::Item { path: extra.clone(), reason: "in the package but not in the manifest".into() });
    }
    if manifest.items.iter().filter(|i| i.kind == ItemType::CollectorConfig).count() > 1 {
        return Err(PackageError::Manifest("more than one collector-config item".into()));
    }
    Ok(Verified { manifest, files })
}

/// An item lives in its type's directory under a plain name: nothing can be written outside the
/// generation being staged.
fn check_path(path: &str, kind: ItemType) -> Result<(), String> {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    if kind == ItemType::Plugin {
        // A plugin is a directory of files: `plugins/<plugin>/<file>`.
        let plugin = dir.strip_prefix("plugins/").filter(|p| plain(p));
        if plugin.is_none() || !plain(name) {
            return Err("a plugin item must be \"plugins/<plugin>/<file>\", names of letters, digits, '.', '-' and '_'".into());
        }
        return Ok(());
    }
    if dir != kind.dir() {
        let want = if kind.dir().is_empty() { "at the top of the package".to_string() } else { format!("in \"{}/\"", kind.dir()) };
        return Err(format!("a {} item must be {want}", kind.word()));
    }
    if !plain(name) {
        return Err("a file name may hold only letters, digits, '.', '-' and '_' (and not start with '.')".into());
    }
    if kind == ItemType::CollectorConfig && name != "collector.toml" {
        return Err("the collector-config item is \"collector.toml\"".into());
    }
    Ok(())
}

/// A name that stays in its directory: letters, digits, `.`, `-`, `_`, not starting with `.`.
fn plain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{build, Source};
    use crate::format::{Envelope, ItemType};

    fn key() -> (ring::signature::Ed25519KeyPair, [u8; 32]) {
        let (private, public) = crate::key::generate();
        (crate::key::private_from_pem(&private).unwrap(), crate::key::public_from_pem(&public).unwrap())
    }

    fn sources() -> Vec<Source> {
        vec![
            Source { path: "collector.toml".into(), kind: ItemType::CollectorConfig, data: b"[push]\n".to_vec() },
            Source { path: "points/a.csv".into(), kind: ItemType::PointTable, data: b"name\n".to_vec() },
        ]
    }

    #[test]
    fn a_signed_package_verifies() {
        let (pair, public) = key();
        let bytes = build("site", "1.2.0", &sources(), Some(&pair));
        let v = verify(&bytes, &public).unwrap();
        assert_eq!(v.manifest.version, "1.2.0");
        assert_eq!(v.files["points/a.csv"], b"name\n");
    }

    #[test]
    fn unsigned_tampered_and_wrong_digest_are_refused() {
        let (pair, public) = key();
        let unsigned = build("site", "1", &sources(), None);
        assert_eq!(verify(&unsigned, &public).unwrap_err(), PackageError::Unsigned);

        let (_, other) = key();
        let signed = build("site", "1", &sources(), Some(&pair));
        assert_eq!(verify(&signed, &other).unwrap_err(), PackageError::BadSignature);

        let mut env: Envelope = serde_json::from_slice(&signed).unwrap();
        env.manifest = env.manifest.replace("\"1\"", "\"9\"");
        assert_eq!(verify(&serde_json::to_vec(&env).unwrap(), &public).unwrap_err(), PackageError::BadSignature);

        let mut env: Envelope = serde_json::from_slice(&signed).unwrap();
        env.files.insert("points/a.csv".into(), base64::engine::general_purpose::STANDARD.encode("name\nx\n"));
        let e = verify(&serde_json::to_vec(&env).unwrap(), &public).unwrap_err().to_string();
        assert!(e.starts_with("item \"points/a.csv\": sha256 is "), "{e}");
    }

    #[test]
    fn items_stay_in_their_directory() {
        let (pair, public) = key();
        for (path, kind) in [
            ("../collector.toml", ItemType::CollectorConfig),
            ("points/../../x.csv", ItemType::PointTable),
            ("a.csv", ItemType::PointTable),
            ("plugins/meter.wasm", ItemType::Plugin),
            ("plugins/../x/plugin.wasm", ItemType::Plugin),
            ("plugins/a/b/plugin.wasm", ItemType::Plugin),
        ] {
            let s = vec![Source { path: path.into(), kind, data: vec![] }];
            let e = verify(&build("x", "1", &s, Some(&pair)), &public).unwrap_err();
            assert!(matches!(e, PackageError::Item { .. }), "{path}: {e}");
        }
        let s = vec![Source { path: "plugins/meter/plugin.wasm".into(), kind: ItemType::Plugin, data: vec![] }];
        verify(&build("x", "1", &s, Some(&pair)), &public).unwrap();
    }
}
