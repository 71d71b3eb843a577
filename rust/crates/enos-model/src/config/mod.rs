//! Configuration types of every service, and the one way they are loaded and validated.
//!
//! Errors always name the file, the key (as a path like `devices[2].points[5].bit`) and what is
//! wrong, so a technician can fix a file without reading code.

mod collector;
mod ota;
mod uplink;

pub use collector::*;
pub use ota::*;
pub use uplink::*;

use serde::de::DeserializeOwned;
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read { file: PathBuf, source: std::io::Error },
    #[error("{file}: {message}")]
    Syntax { file: PathBuf, message: String },
    #[error("{file}: {key}: {reason}")]
    Invalid { file: PathBuf, key: String, reason: String },
    #[error("{file}: {}", .errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    PointTable { file: PathBuf, errors: Vec<crate::points_csv::RowError> },
}

/// A validation finding before it is tied to a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub key: String,
    pub reason: String,
}

impl Invalid {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Invalid { key: key.into(), reason: reason.into() }
    }
    pub fn in_file(self, file: &Path) -> ConfigError {
        ConfigError::Invalid { file: file.to_owned(), key: self.key, reason: self.reason }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

/// Parses TOML text into `T`, with errors that carry the file name, line and key.
pub fn parse_toml<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Syntax { file: file.to_owned(), message: e.to_string().trim_end().replace('\n', " | ") })
}

pub fn read_file(file: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(file).map_err(|source| ConfigError::Read { file: file.to_owned(), source })
}

/// Where a service looks for its config when none is given: the operator's copy in the
/// service's own directory on the data partition, then where a release before that layout kept
/// it, then the image's default.
pub fn default_config_path(service: &str) -> PathBuf {
    let candidates =
        [operator_config_path(service), format!("/data/enos/config/{service}.toml").into(), format!("/etc/enos/{service}.toml").into()];
    candidates.iter().find(|p| p.exists()).cloned().unwrap_or_else(|| candidates[2].clone())
}

/// The operator's copy, which only the service itself writes (`/data/enos/config/<service>/`,
/// owned by the service's user: the layer's tmpfiles).
pub fn operator_config_path(service: &str) -> PathBuf {
    format!("/data/enos/config/{service}/{service}.toml").into()
}
