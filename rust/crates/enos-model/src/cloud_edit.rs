//! Cloud settings of the uplink edited from outside the file (the web center over D-Bus): what
//! may be shown (never the secret), what may be changed, and the `[cloud]` table of `uplink.toml`
//! rewritten with the rest of the file kept.

use crate::config::{CloudConfig, UplinkConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What the web center shows: the secret only as "set" or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudView {
    pub uri: String,
    pub allow_plain: bool,
    pub product_key: String,
    pub device_key: String,
    pub secret_set: bool,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub verify_hostname: bool,
}

impl CloudView {
    pub fn of(c: &CloudConfig) -> CloudView {
        CloudView {
            uri: c.uri.clone(),
            allow_plain: c.allow_plain,
            product_key: c.product_key.clone(),
            device_key: c.device_key.clone(),
            secret_set: c.secret().is_ok(),
            ca_file: c.ca_file.clone(),
            cert_file: c.cert_file.clone(),
            key_file: c.key_file.clone(),
            verify_hostname: c.verify_hostname,
        }
    }
}

/// A change of the cloud settings. `device_secret` absent or empty keeps the secret there is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudChange {
    pub uri: String,
    pub product_key: String,
    pub device_key: String,
    #[serde(default)]
    pub device_secret: Option<String>,
    #[serde(default)]
    pub allow_plain: Option<bool>,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub verify_hostname: Option<bool>,
}

impl CloudChange {
    /// The current settings with this change applied (`secret_file`: where a new secret goes).
    pub fn applied_to(&self, cur: &CloudConfig, secret_file: &Path) -> CloudConfig {
        let mut c = cur.clone();
        c.uri = self.uri.trim().to_string();
        c.product_key = self.product_key.trim().to_string();
        c.device_key = self.device_key.trim().to_string();
        if let Some(b) = self.allow_plain {
            c.allow_plain = b;
        }
        if let Some(b) = self.verify_hostname {
            c.verify_hostname = b;
        }
        let path = |p: &Option<PathBuf>| p.clone().filter(|p| !p.as_os_str().is_empty());
        c.ca_file = path(&self.ca_file);
        c.cert_file = path(&self.cert_file);
        c.key_file = path(&self.key_file);
        if self.device_secret.as_deref().is_some_and(|s| !s.is_empty()) {
            c.device_secret = None;
            c.device_secret_file = Some(secret_file.to_owned());
        }
        c
    }

    pub fn check(&self) -> Result<(), String> {
        for (k, v) in [("uri", &self.uri), ("product_key", &self.product_key), ("device_key", &self.device_key)] {
            if v.trim().is_empty() || v.len() > 256 || v.chars().any(|c| c.is_control()) {
                return Err(format!("{k}: must be 1-256 printable characters"));
            }
        }
        if let Some(s) = &self.device_secret {
            if s.len() > 256 || s.chars().any(|c| c.is_control()) {
                return Err("device_secret: at most 256 printable characters".into());
            }
        }
        for (k, p) in [("ca_file", &self.ca_file), ("cert_file", &self.cert_file), ("key_file", &self.key_file)] {
            if let Some(p) = p.as_ref().filter(|p| !p.as_os_str().is_empty()) {
                if p.is_relative() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                    return Err(format!("{k}: must be an absolute path without .."));
                }
            }
        }
        Ok(())
    }
}

/// `text` (an `uplink.toml`) with its `[cloud]` table replaced by `cloud`; every other table
/// is kept as it was (comments are not).
pub fn replace_cloud(text: &str, cloud: &CloudConfig) -> Result<String, String> {
    let mut doc: toml::Table = toml::from_str(text).map_err(|e| format!("the current file does not parse: {e}"))?;
    let c = toml::Table::try_from(cloud).map_err(|e| e.to_string())?;
    doc.insert("cloud".into(), toml::Value::Table(c));
    let body = toml::to_string(&doc).map_err(|e| e.to_string())?;
    Ok(format!("# EnOS Edge uplink configuration; [cloud] written by the uplink (SetCloudSettings: web center).\n\n{body}"))
}

/// Checks the new file as the uplink will load it (errors name key and reason).
pub fn check_file(file: &Path, text: &str) -> Result<UplinkConfig, String> {
    let cfg = UplinkConfig::from_str_at(file, text).map_err(|e| e.to_string())?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[cloud]
uri = "ssl://broker:18883"
product_key = "pk"
device_key = "gw"
device_secret = "old"

[cache]
dir = "/tmp/x"
max_bytes = 10000000
"#;

    #[test]
    fn the_cloud_table_changes_and_the_rest_stays() {
        let cfg = UplinkConfig::from_str_at(Path::new("u.toml"), FILE).unwrap();
        let ch = CloudChange {
            uri: "tcp://10.0.0.1:11883".into(),
            product_key: "pk2".into(),
            device_key: "gw2".into(),
            device_secret: Some("new".into()),
            allow_plain: Some(true),
            ca_file: None,
            cert_file: None,
            key_file: None,
            verify_hostname: None,
        };
        ch.check().unwrap();
        let dir = std::env::temp_dir().join(format!("enos-cloud-edit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sf = dir.join("gateway.secret");
        std::fs::write(&sf, "new").unwrap();
        let text = replace_cloud(FILE, &ch.applied_to(&cfg.cloud, &sf)).unwrap();
        let back = check_file(Path::new("u.toml"), &text).unwrap();
        assert_eq!(back.cloud.uri, "tcp://10.0.0.1:11883");
        assert_eq!(back.cloud.secret().unwrap(), "new");
        assert!(!text.contains("\"old\""), "{text}");
        assert_eq!(back.cache.max_bytes, 10_000_000);
        let shown = serde_json::to_string(&CloudView::of(&back.cloud)).unwrap();
        assert!(shown.contains("\"secret_set\":true") && !shown.contains("\"new\""), "{shown}");
        std::fs::remove_dir_all(dir).unwrap();
        let bad = CloudChange { ca_file: Some("../etc/x".into()), ..ch };
        assert!(bad.check().unwrap_err().starts_with("ca_file"));
    }
}
