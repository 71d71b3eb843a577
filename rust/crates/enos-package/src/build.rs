//! Makes a package: the manifest from the items, signed with the OEM's private key (tests and
//! the `enos-package` tool; `scripts/package` wraps the tool).

use crate::format::{Envelope, Item, ItemType, Manifest, FORMAT};
use base64::Engine;
use sha2::{Digest, Sha256};

/// One item to pack.
pub struct Source {
    pub path: String,
    pub kind: ItemType,
    pub data: Vec<u8>,
}

/// The package's bytes; `key` None makes an unsigned package (refused by every gateway: tests).
pub fn build(name: &str, version: &str, items: &[Source], key: Option<&ring::signature::Ed25519KeyPair>) -> Vec<u8> {
    let manifest = Manifest {
        format: FORMAT,
        name: name.into(),
        version: version.into(),
        description: String::new(),
        items: items
            .iter()
            .map(|s| Item { path: s.path.clone(), kind: s.kind, version: version.into(), sha256: hex::encode(Sha256::digest(&s.data)) })
            .collect(),
    };
    let text = serde_json::to_string_pretty(&manifest).expect("manifest");
    let b64 = base64::engine::general_purpose::STANDARD;
    let signature = key.map(|k| b64.encode(k.sign(text.as_bytes()).as_ref()));
    let files = items.iter().map(|s| (s.path.clone(), b64.encode(&s.data))).collect();
    serde_json::to_vec_pretty(&Envelope { manifest: text, signature, files }).expect("envelope")
}

/// The type an item's path implies (`points/x.csv` → point table), for the tool.
pub fn kind_of_path(path: &str) -> Option<ItemType> {
    match path.split_once('/').map(|(d, _)| d) {
        None if path == "collector.toml" => Some(ItemType::CollectorConfig),
        Some("points") => Some(ItemType::PointTable),
        Some("models") => Some(ItemType::DeviceModel),
        Some("certs") => Some(ItemType::Certificate),
        Some("plugins") => Some(ItemType::Plugin),
        _ => None,
    }
}
