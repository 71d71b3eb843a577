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
