//! Property tests of package verification (docs/fault-campaign.md, "Fuzzing"): any bytes, any
//! envelope, and any manifest text signed with the right key are a verified package or a refusal
//! in words, never a panic; a verified package holds only items whose paths stay in their
//! type's directory, each with the bytes its digest names.
//!
//! Cases per property: `PROPTEST_CASES` (256 by default); long runs by hand, e.g.
//! `PROPTEST_CASES=20000 cargo test -p enos-package --test fuzz --release`.

use base64::Engine;
use enos_package::build::{build, Source};
use enos_package::format::Envelope;
use enos_package::{key, verify, ItemType};
use proptest::prelude::*;
use std::sync::OnceLock;

/// One key pair for all cases (making one costs more than a case).
fn keys() -> &'static (ring::signature::Ed25519KeyPair, [u8; 32]) {
    static KEYS: OnceLock<(ring::signature::Ed25519KeyPair, [u8; 32])> = OnceLock::new();
    KEYS.get_or_init(|| {
        let (private, public) = key::generate();
        (key::private_from_pem(&private).unwrap(), key::public_from_pem(&public).unwrap())
    })
}

/// A message for people: no Rust debug output in it (the input it echoes may hold anything,
/// so only what debug output of ours would add is looked for).
fn assert_words(s: &str) {
    assert!(!s.is_empty());
    for debug in ["Some(", "None", "Ok(", "Err("] {
        assert!(!s.contains(debug), "message with Rust debug output: {s}");
    }
}

fn kind() -> impl Strategy<Value = ItemType> {
    prop::sample::select(vec![
        ItemType::CollectorConfig,
        ItemType::PointTable,
        ItemType::DeviceModel,
        ItemType::Certificate,
        ItemType::Plugin,
    ])
}

fn path() -> impl Strategy<Value = String> {
    let dir = prop::sample::select(vec!["", "points/", "models/", "certs/", "plugins/", "../", "points/../", "/", "points//"]);
    let name =
        prop_oneof![Just("collector.toml".to_string()), Just("..".to_string()), Just(".hidden".to_string()), "[a-z0-9._/\\\\ -]{0,12}"];
    (dir, name).prop_map(|(d, n)| format!("{d}{n}"))
}

fn sign(manifest: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(keys().0.sign(manifest.as_bytes()).as_ref())
}

/// Checks what `verify` says of `bytes`.
fn verified_or_refused(bytes: &[u8]) -> Result<(), TestCaseError> {
    match verify(bytes, &keys().1) {
        Ok(v) => {
            prop_assert_eq!(v.files.len(), v.manifest.items.len());
            for item in &v.manifest.items {
                let (dir, name) = item.path.rsplit_once('/').unwrap_or(("", &item.path));
                prop_assert_eq!(dir, item.kind.dir());
                prop_assert!(!name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\']), "{}", item.path);
            }
        }
        Err(e) => assert_words(&e.to_string()),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// Packages signed with the gateway's key, of any items at any paths and any version.
    #[test]
    fn signed_packages_verify_or_are_refused(items in prop::collection::vec((path(), kind(), prop::collection::vec(any::<u8>(), 0..20)), 0..5),
                                             version in prop_oneof![Just("1.2.0".to_string()), "[0-9.a-z]{0,8}"]) {
        let sources: Vec<Source> = items.into_iter().map(|(path, kind, data)| Source { path, kind, data }).collect();
        verified_or_refused(&build("site", &version, &sources, Some(&keys().0)))?;
    }

    /// A manifest of any text, signed: the signature holds, so the manifest's parser is what
    /// meets it.
    #[test]
    fn any_signed_manifest_text_is_refused_in_words(manifest in prop_oneof![
            "[ -~]{0,80}",
            Just(r#"{"format":1,"name":"x","version":"1","items":[]}"#.to_string()),
            Just(r#"{"format":2,"name":"x","version":"1","items":[{"path":"collector.toml","type":"collector-config","sha256":"00"}]}"#.to_string()),
            Just(r#"{"format":1,"name":"x","version":"99999999999999999999","items":[{"path":"collector.toml","type":"collector-config","sha256":"00"}]}"#.to_string()),
            Just(r#"{"format":1,"name":"x","version":"1","items":[{"path":"collector.toml","type":"firmware","sha256":"00"}]}"#.to_string())],
        files in prop::collection::btree_map(path(), "[A-Za-z0-9+/=]{0,12}", 0..3)) {
        let env = Envelope { signature: Some(sign(&manifest)), manifest, files };
        verified_or_refused(&serde_json::to_vec(&env).unwrap())?;
    }

    /// Any bytes, and a real package cut or with a byte changed.
    #[test]
    fn damaged_packages_are_refused_in_words(bytes in prop::collection::vec(any::<u8>(), 0..200), at in any::<usize>(), byte in any::<u8>(), cut in any::<bool>()) {
        verified_or_refused(&bytes)?;
        let sources = vec![Source { path: "collector.toml".into(), kind: ItemType::CollectorConfig, data: b"[push]\n".to_vec() }];
        let mut good = build("site", "1.0", &sources, Some(&keys().0));
        let n = good.len();
        if cut {
            good.truncate(at % n);
        } else {
            good[at % n] = byte;
        }
        verified_or_refused(&good)?;
    }
}
