//! The update agent's configuration.

use enos_config::{parse_toml, read_file, ConfigError, Findings, Scope};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct OtaConfig {
    /// Downloads, job state and history (on the data partition: they cross the reboot).
    pub dir: PathBuf,
    /// Bundles larger than this are refused before download.
    pub max_bundle_bytes: u64,
    /// Free space a download must leave on the data partition: the uplink's telemetry cache
    /// keeps this much free (its `cache.keep_free_bytes`), so an update never costs data.
    pub keep_free_bytes: u64,
    /// Plain `http://` downloads; only for tests and local networks (bundles are signed anyway).
    pub allow_http: bool,
    /// The slot tool of the layer (`enos-bootslot`), or the socket of the root helper that runs it
    /// for an agent without root (`enos-bootslot-control.socket`, the default).
    pub bootslot: PathBuf,
    /// What reboots the box. The default asks `enos-ota-reboot.path` (the agent has no root).
    pub reboot_command: Vec<String>,
    /// Reboot right after a successful install; otherwise wait for `enosctl ota reboot`.
    pub reboot_after_install: bool,
    /// Root's consent to install one release that is not newer than the running one (a
    /// deliberate rollback): a file naming that version, which only root can create (the default
    /// is on /run: it lasts until the next boot). Without it such a bundle is refused.
    pub downgrade_consent: PathBuf,
    pub health: OtaHealth,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct OtaHealth {
    /// Units that must be active after the boot into the new slot.
    pub units: Vec<String>,
    /// Require the cloud session to come up.
    pub require_cloud: bool,
    /// Require the collector to be collecting (samples increasing).
    pub require_collecting: bool,
    /// A command that must exit 0 (site-specific checks).
    pub hook: Option<Vec<String>>,
    /// Give up (and roll back) after this long.
    pub timeout_s: u64,
}

impl Default for OtaConfig {
    fn default() -> Self {
        OtaConfig {
            dir: "/data/enos/ota".into(),
            max_bundle_bytes: 2 << 30,
            keep_free_bytes: 64 << 20,
            allow_http: false,
            bootslot: "/run/enos-bootslot/control".into(),
            reboot_command: vec!["touch".into(), "/run/enos-ota/reboot".into()],
            reboot_after_install: true,
            downgrade_consent: "/run/enos-ota-allow-downgrade".into(),
            health: OtaHealth::default(),
        }
    }
}

impl Default for OtaHealth {
    fn default() -> Self {
        OtaHealth {
            units: vec!["enos-collector.service".into(), "enos-uplink.service".into()],
            require_cloud: true,
            require_collecting: true,
            hook: None,
            timeout_s: 300,
        }
    }
}

impl OtaConfig {
    pub fn load(file: &Path) -> Result<OtaConfig, ConfigError> {
        let cfg: OtaConfig = parse_toml(file, &read_file(file)?)?;
        cfg.findings().into_result(file)?;
        Ok(cfg)
    }

    pub fn findings(&self) -> Findings {
        let mut out = Findings::default();
        let at = &Scope::root();
        if self.reboot_command.is_empty() {
            out.add(at, "reboot_command", "must name a command");
        }
        if self.health.timeout_s < 10 {
            out.add(at, "health.timeout_s", "must be at least 10");
        }
        if matches!(&self.health.hook, Some(h) if h.is_empty()) {
            out.add(at, "health.hook", "must name a command or be left out");
        }
        out
    }
}
