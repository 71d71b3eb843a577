//! The cloud settings as the web center and the uplink exchange them over D-Bus: what may be
//! shown (never the secret) and what may be changed.

use crate::Refused;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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
    /// The change on its own (the uplink validates the file it makes of it).
    pub fn check(&self) -> Result<(), Refused> {
        for (k, v) in [("uri", &self.uri), ("product_key", &self.product_key), ("device_key", &self.device_key)] {
            if v.trim().is_empty() || v.len() > 256 || v.chars().any(|c| c.is_control()) {
                return Err(Refused::field(k, "must be 1-256 printable characters"));
            }
        }
        if let Some(s) = &self.device_secret {
            if s.len() > 256 || s.chars().any(|c| c.is_control()) {
                return Err(Refused::field("device_secret", "at most 256 printable characters"));
            }
        }
        for (k, p) in [("ca_file", &self.ca_file), ("cert_file", &self.cert_file), ("key_file", &self.key_file)] {
            if let Some(p) = p.as_ref().filter(|p| !p.as_os_str().is_empty()) {
                if p.is_relative() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                    return Err(Refused::field(k, "must be an absolute path without .."));
                }
            }
        }
        Ok(())
    }
}
