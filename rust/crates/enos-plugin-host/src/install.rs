//! Installed plugins: where they live and how one is installed from a local directory (a packed
//! `scripts/plugin build` output). Cloud delivery will hand the same directory over.

use crate::manifest::Manifest;
use std::path::{Path, PathBuf};

/// Where installed plugins are: `ENOS_PLUGINS_DIR`, else `/data/enos/plugins`. Each plugin is
/// the directory named after it; `.cache` holds compiled code, `.data` the key-value stores.
pub fn plugins_dir() -> PathBuf {
    std::env::var_os("ENOS_PLUGINS_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/data/enos/plugins"))
}

/// Checks `from` (its manifest, and that its component is a WebAssembly component) and copies
/// it to `<into>/<name>`, replacing an installed version whole. Returns the manifest.
pub fn install(from: &Path, into: &Path) -> Result<Manifest, String> {
    let m = Manifest::load(from).map_err(|e| e.to_string())?;
    let component = from.join(&m.component);
    let bytes = std::fs::read(&component).map_err(|e| format!("{}: {e}", component.display()))?;
    // `\0asm`, then the component model's version and layer (a core module has layer 0).
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" || bytes[6..8] != [1, 0] {
        return Err(format!("{}: not a WebAssembly component (build it with scripts/plugin build)", component.display()));
    }
    let fail = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
    std::fs::create_dir_all(into).map_err(|e| fail("creating", into, e))?;
    let tmp = into.join(format!(".{}.new", m.name));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).map_err(|e| fail("creating", &tmp, e))?;
    for f in ["plugin.toml", m.component.as_str()] {
        std::fs::copy(from.join(f), tmp.join(f)).map_err(|e| fail("copying", &from.join(f), e))?;
    }
    hand_over(into, &tmp, &["plugin.toml", m.component.as_str()]).map_err(|e| fail("handing over", &tmp, e))?;
    let dest = into.join(&m.name);
    let old = into.join(format!(".{}.old", m.name));
    let _ = std::fs::remove_dir_all(&old);
    if dest.exists() {
        std::fs::rename(&dest, &old).map_err(|e| fail("moving aside", &dest, e))?;
    }
    std::fs::rename(&tmp, &dest).map_err(|e| fail("installing", &dest, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(m)
}

/// Root installing by hand (`enosctl plugin install`) gives the files to the owner of the
/// plugins directory (the collector on the box), which replaces them when a package brings a
/// new version.
fn hand_over(into: &Path, dir: &Path, files: &[&str]) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: no arguments, no memory.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let owner = std::fs::metadata(into)?;
    std::os::unix::fs::chown(dir, Some(owner.uid()), Some(owner.gid()))?;
    for f in files {
        std::os::unix::fs::chown(dir.join(f), Some(owner.uid()), Some(owner.gid()))?;
    }
    Ok(())
}
