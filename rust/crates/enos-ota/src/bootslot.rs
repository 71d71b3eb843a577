//! The layer's slot tool (`enos-bootslot`): one place knows GRUB and U-Boot; the agent asks it.

use std::collections::HashMap;
use std::path::Path;

pub fn run(tool: &Path, args: &[&str]) -> Result<String, String> {
    let mut cmd = crate::trusted::command("bootslot", &[tool.as_os_str()]).map_err(|e| e.to_string())?;
    let out = cmd.args(args).output().map_err(|e| format!("{}: {e}", tool.display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!("{} {}: {}", tool.display(), args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// `enos-bootslot status` as a map (current, selected, upgrade_available, bootcount, rollback...).
pub fn status(tool: &Path) -> Result<HashMap<String, String>, String> {
    let text = run(tool, &["status"])?;
    Ok(text
        .split_whitespace()
        .chain(text.lines())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

/// What the bootloader environment says about this boot: the one source of truth for where an
/// update stands (the job file can lag behind it by one step after a power cut).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Boot {
    /// The slot running now.
    pub current: String,
    /// The slot the bootloader boots next.
    pub selected: String,
    /// `upgrade_available=1`: `selected` is on trial, not committed.
    pub trial: bool,
    /// `enos_rollback=1`: the bootloader (or a rollback) came back to this slot.
    pub rollback: bool,
}

impl Boot {
    pub fn read(tool: &Path) -> Result<Boot, String> {
        Ok(Boot::from_status(&status(tool)?))
    }

    pub fn from_status(s: &HashMap<String, String>) -> Boot {
        let get = |k: &str| s.get(k).cloned().unwrap_or_default();
        Boot {
            current: get("current"),
            selected: get("selected"),
            trial: get("upgrade_available") == "1",
            rollback: get("rollback") == "1",
        }
    }

    /// A trial of this very boot's slot, waiting for its health check.
    pub fn on_trial(&self) -> bool {
        self.trial && self.selected == self.current
    }

    /// The other slot is armed for a trial but not booted yet.
    pub fn armed_other(&self) -> bool {
        self.trial && self.selected != self.current
    }
}
