//! The package file and its manifest.
//!
//! A package is one JSON object: `manifest` (the manifest as text: the signature covers exactly
//! these bytes, so no re-serialisation can change what was signed), `signature` (base64 of the
//! ed25519 signature of the manifest text; absent in an unsigned package, which is refused) and
//! `files` (item path → base64 of its bytes). JSON rather than tar: the packages are small text
//! files, the envelope needs no archive crate, and a technician can read it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The package envelope as stored and sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub manifest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

/// What the package holds, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The format of this manifest (1).
    pub format: u32,
    /// The package's name, e.g. "site-config".
    pub name: String,
    /// The package's version; a package older than (or equal to) the installed one is refused.
    pub version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub items: Vec<Item>,
}

pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// The item's path in the package (and in the installed generation): `collector.toml`,
    /// `points/<name>.csv`, `models/<name>.toml`, `certs/<name>.pem`, `plugins/<plugin>/<file>`.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: ItemType,
    /// The item's own version (informative: the package's version decides).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Lower-case hex sha256 of the item's bytes.
    pub sha256: String,
}

/// What an item is, and so where it may live and how it is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemType {
    /// The collector's configuration (`collector.toml`), checked like an `ApplyConfig`.
    CollectorConfig,
    /// A CSV point table the configuration names (`points_csv`), read by the same parser.
    PointTable,
    /// A device-model library entry, checked like the shipped ones.
    DeviceModel,
    /// A PEM certificate for a device connection (IEC 104 TLS, OPC UA).
    Certificate,
    /// A file of a protocol plugin (`plugins/<plugin>/plugin.toml` and its component): the
    /// collector checks the plugin whole and installs it into the plugins directory.
    Plugin,
}

impl ItemType {
    /// The directory an item of this type lives in ("" for the configuration at the top).
    pub fn dir(self) -> &'static str {
        match self {
            ItemType::CollectorConfig => "",
            ItemType::PointTable => "points",
            ItemType::DeviceModel => "models",
            ItemType::Certificate => "certs",
            ItemType::Plugin => "plugins",
        }
    }

    /// The word used in manifests and messages.
    pub fn word(self) -> &'static str {
        match self {
            ItemType::CollectorConfig => "collector-config",
            ItemType::PointTable => "point-table",
            ItemType::DeviceModel => "device-model",
            ItemType::Certificate => "certificate",
            ItemType::Plugin => "plugin",
        }
    }
}
