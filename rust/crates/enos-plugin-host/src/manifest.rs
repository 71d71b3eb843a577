//! `plugin.toml`: what a plugin is, what it needs and what it may use. It sits in the plugin's
//! directory next to its component; a resource package can later carry the directory as one item
//! (the manifest names every file the plugin consists of).

use crate::schema::Schema;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The driver interface this host serves (`rust/wit/enos-driver`).
pub const INTERFACE: &str = "enos:driver";
pub const INTERFACE_VERSION: (u64, u64, u64) = (1, 0, 0);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    /// `enos:driver@1.0.0`: the interface the component was built against.
    pub interface: String,
    /// The oldest gateway version that runs it.
    #[serde(default)]
    pub min_gateway: Option<String>,
    /// The component file, relative to the manifest.
    #[serde(default = "d_component")]
    pub component: String,
    /// The protocol names devices write (`protocol = "..."`) to use this plugin.
    pub protocols: Vec<String>,
    /// How point addresses are written, for people.
    #[serde(default)]
    pub point_address: String,
    #[serde(default)]
    pub capabilities: Capabilities,
    #[serde(default)]
    pub limits: Limits,
    /// The device settings' JSON Schema (the subset `schema` checks), as a TOML table.
    #[serde(default)]
    pub config_schema: Option<toml::Value>,
}

fn d_component() -> String {
    "plugin.wasm".into()
}

/// What the plugin asks to use; anything not asked for is refused at run time.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Connections to TCP endpoints its devices name.
    #[serde(default)]
    pub tcp: bool,
    /// Serial ports its devices name.
    #[serde(default)]
    pub serial: bool,
    /// The persistent key-value store.
    #[serde(default)]
    pub kv: bool,
}

/// Per-instance limits; the host caps what a manifest may ask for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "d_memory")]
    pub memory_mib: u32,
    /// The time budget of one call (init, poll, on-data, command).
    #[serde(default = "d_call")]
    pub call_ms: u32,
    #[serde(default = "d_kv")]
    pub kv_bytes: u32,
    #[serde(default = "d_log")]
    pub log_lines_per_minute: u32,
    #[serde(default = "d_conns")]
    pub connections: u32,
}

fn d_memory() -> u32 {
    16
}
fn d_call() -> u32 {
    5000
}
fn d_kv() -> u32 {
    16 * 1024
}
fn d_log() -> u32 {
    60
}
fn d_conns() -> u32 {
    4
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_mib: d_memory(), call_ms: d_call(), kv_bytes: d_kv(), log_lines_per_minute: d_log(), connections: d_conns() }
    }
}

/// The most any manifest may ask for.
const MAX: Limits = Limits { memory_mib: 256, call_ms: 60_000, kv_bytes: 1024 * 1024, log_lines_per_minute: 600, connections: 16 };

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Manifest {
    /// Reads and checks `<dir>/plugin.toml`.
    pub fn load(dir: &Path) -> Result<Manifest, ManifestError> {
        let path = dir.join("plugin.toml");
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read { path: path.clone(), source })?;
        Manifest::parse(&text).map_err(|message| ManifestError::Invalid { path, message })
    }

    pub fn parse(text: &str) -> Result<Manifest, String> {
        let m: Manifest = toml::from_str(text).map_err(|e| e.message().to_string())?;
        m.check()?;
        Ok(m)
    }

    fn check(&self) -> Result<(), String> {
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(format!("name: \"{}\" must be 1 or more of A-Z a-z 0-9 - _ .", self.name));
        }
        check_interface(&self.interface).map_err(|e| format!("plugin \"{}\": {e}", self.name))?;
        if let Some(v) = &self.min_gateway {
            let want = parse_version(v).ok_or_else(|| format!("min_gateway: \"{v}\" is not a version such as 1.2.0"))?;
            let have = parse_version(env!("CARGO_PKG_VERSION")).expect("our own version parses");
            if want > have {
                return Err(format!("plugin \"{}\" needs gateway {v} or newer; this is {}", self.name, env!("CARGO_PKG_VERSION")));
            }
        }
        if self.protocols.is_empty() {
            return Err("protocols: name at least one protocol the plugin serves".into());
        }
        if self.component.contains('/') || self.component.starts_with('.') {
            return Err(format!("component: \"{}\" must be a file name in the plugin's directory", self.component));
        }
        let l = &self.limits;
        for (key, v, max) in [
            ("memory_mib", l.memory_mib, MAX.memory_mib),
            ("call_ms", l.call_ms, MAX.call_ms),
            ("kv_bytes", l.kv_bytes, MAX.kv_bytes),
            ("log_lines_per_minute", l.log_lines_per_minute, MAX.log_lines_per_minute),
            ("connections", l.connections, MAX.connections),
        ] {
            if v == 0 || v > max {
                return Err(format!("limits.{key}: {v} is outside 1-{max}"));
            }
        }
        self.schema()?;
        Ok(())
    }

    /// The settings schema (an empty schema takes any object).
    pub fn schema(&self) -> Result<Schema, String> {
        match &self.config_schema {
            None => Ok(Schema::any()),
            Some(v) => {
                let json = serde_json::to_value(v).map_err(|e| format!("config_schema: {e}"))?;
                Schema::parse(&json).map_err(|e| format!("config_schema: {e}"))
            }
        }
    }
}

/// `enos:driver@1.x.y` with x no newer than ours: a component built against an older minor
/// version imports nothing we lack.
pub fn check_interface(text: &str) -> Result<(), String> {
    let (a, b, c) = INTERFACE_VERSION;
    let ours = format!("{INTERFACE}@{a}.{b}.{c}");
    let refuse = |why: &str| Err(format!("it is built for the driver interface \"{text}\"{why}; this gateway serves {ours}"));
    let Some((name, version)) = text.split_once('@') else { return refuse(" (no version after @)") };
    if name != INTERFACE {
        return refuse(", not an EnOS driver interface");
    }
    match parse_version(version) {
        None => refuse(" (not a version such as 1.0.0)"),
        Some((major, minor, _)) if major != a || minor > b => refuse(""),
        Some(_) => Ok(()),
    }
}

fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let mut it = v.split('.').map(|p| p.parse::<u64>().ok());
    let r = (it.next()??, it.next()??, it.next().unwrap_or(Some(0))?);
    it.next().is_none().then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "name = \"m\"\nversion = \"1.0.0\"\ninterface = \"enos:driver@1.0.0\"\nprotocols = [\"m\"]\n";

    #[test]
    fn a_wrong_interface_version_is_refused_in_words() {
        assert!(Manifest::parse(OK).is_ok());
        let e = Manifest::parse(&OK.replace("@1.0.0", "@2.0.0")).unwrap_err();
        assert_eq!(e, "plugin \"m\": it is built for the driver interface \"enos:driver@2.0.0\"; this gateway serves enos:driver@1.0.0");
        let e = Manifest::parse(&OK.replace("enos:driver@1.0.0", "wasi:cli@0.2.0")).unwrap_err();
        assert!(e.contains("not an EnOS driver interface"), "{e}");
        let e = Manifest::parse(&format!("{OK}min_gateway = \"99.0.0\"\n")).unwrap_err();
        assert!(e.contains("needs gateway 99.0.0 or newer"), "{e}");
        let e = Manifest::parse(&format!("{OK}[limits]\nmemory_mib = 4096\n")).unwrap_err();
        assert_eq!(e, "limits.memory_mib: 4096 is outside 1-256");
    }
}
