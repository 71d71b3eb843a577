//! A resource package's plugins (`plugins/<plugin>/<file>` items): checked whole in the staging
//! directory the way their devices will load them, then swapped into the plugins directory one
//! by one. The installed version waits beside it (`.<plugin>.previous`) until the package's
//! devices collect, and is put back otherwise, also at the next start after a cut apply.

use enos_collector_config::{CollectorConfig, ProtocolConfig};
use enos_package::{ItemType, Verified};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Checks every plugin of the package staged in `dir`: its manifest (interface and gateway
/// versions, limits, schema), that it names exactly its files, that its component loads, and
/// that the devices of `cfg` (the package's configuration, else the running one) that use it
/// have settings its schema accepts. Returns the plugins' names.
pub fn check_staged(dir: &Path, pkg: &Verified, cfg: &CollectorConfig) -> Result<Vec<String>, String> {
    let mut plugins: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for item in pkg.manifest.items.iter().filter(|i| i.kind == ItemType::Plugin) {
        // The path's form was checked with the signature: plugins/<plugin>/<file>.
        let mut parts = item.path.splitn(3, '/').skip(1);
        let (Some(plugin), Some(file)) = (parts.next(), parts.next()) else { continue };
        plugins.entry(plugin).or_default().push(file);
    }
    for (name, files) in &plugins {
        let manifest_path = format!("plugins/{name}/plugin.toml");
        let text = pkg.files.get(&manifest_path).ok_or_else(|| format!("plugin \"{name}\": the package has no {manifest_path}"))?;
        let text = std::str::from_utf8(text).map_err(|_| format!("item \"{manifest_path}\": not UTF-8 text"))?;
        // Some of the manifest's findings name the plugin, which the item's path already does.
        let m = enos_drivers::plugin::Manifest::parse(text)
            .map_err(|e| format!("item \"{manifest_path}\": {}", e.trim_start_matches(&format!("plugin \"{name}\": "))))?;
        if m.name != *name {
            return Err(format!("item \"{manifest_path}\": it names the plugin \"{}\", its directory is \"{name}\"", m.name));
        }
        if !files.contains(&m.component.as_str()) {
            return Err(format!("plugin \"{name}\": its component \"{}\" is not in the package", m.component));
        }
        if let Some(extra) = files.iter().find(|f| **f != "plugin.toml" && **f != m.component) {
            return Err(format!(
                "item \"plugins/{name}/{extra}\": not a file of plugin \"{name}\" (its manifest names plugin.toml and {})",
                m.component
            ));
        }
        let staged = dir.join("plugins").join(name);
        // Its errors name the plugin; the staging directory means nothing to the reader.
        let plugin = enos_drivers::plugin::load(&staged).map_err(|e| e.replace(&format!("{}/", staged.display()), ""))?;
        for d in cfg.devices.iter().filter(|d| d.enabled) {
            let ProtocolConfig::Plugin(p) = &d.proto else { continue };
            if p.plugin == *name {
                plugin.check_settings(&p.settings).map_err(|findings| {
                    format!("device \"{}\": plugin \"{name}\" {} does not accept its settings: {}", d.id, m.version, findings.join("; "))
                })?;
            }
        }
    }
    Ok(plugins.keys().map(|p| p.to_string()).collect())
}

fn previous(into: &Path, name: &str) -> PathBuf {
    into.join(format!(".{name}.previous"))
}

fn fail(what: &str, p: &Path, e: std::io::Error) -> String {
    format!("{what} {}: {e}", p.display())
}

/// Puts the staged plugin `from` in place as `<into>/<name>`, the installed one (if any) moved
/// to `.<name>.previous`: each step one rename, so a cut leaves one of the two whole.
pub fn swap_in(into: &Path, from: &Path, name: &str) -> Result<(), String> {
    std::fs::create_dir_all(into).map_err(|e| fail("creating", into, e))?;
    let new = into.join(format!(".{name}.new"));
    let _ = std::fs::remove_dir_all(&new);
    std::fs::create_dir(&new).map_err(|e| fail("creating", &new, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| fail("reading", from, e))? {
        let entry = entry.map_err(|e| fail("reading", from, e))?;
        let to = new.join(entry.file_name());
        std::fs::copy(entry.path(), &to).map_err(|e| fail("copying to", &to, e))?;
        std::fs::File::open(&to).and_then(|f| f.sync_all()).map_err(|e| fail("writing", &to, e))?;
    }
    let dest = into.join(name);
    if dest.exists() {
        let prev = previous(into, name);
        let _ = std::fs::remove_dir_all(&prev);
        std::fs::rename(&dest, &prev).map_err(|e| fail("moving aside", &dest, e))?;
    }
    std::fs::rename(&new, &dest).map_err(|e| fail("installing", &dest, e))?;
    super::sync_dir(into);
    Ok(())
}

/// Undoes [`swap_in`] (or a part of it): the previous version back, or the plugin removed when
/// there was none (`had` says whether there was).
pub fn put_back(into: &Path, name: &str, had: bool) -> Result<(), String> {
    let (prev, dest) = (previous(into, name), into.join(name));
    if prev.exists() {
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::rename(&prev, &dest).map_err(|e| fail("putting back", &dest, e))?;
    } else if !had && dest.exists() {
        std::fs::remove_dir_all(&dest).map_err(|e| fail("removing", &dest, e))?;
    }
    let _ = std::fs::remove_dir_all(into.join(format!(".{name}.new")));
    super::sync_dir(into);
    Ok(())
}

/// The package is healthy: the version it replaced is not needed any more.
pub fn forget_previous(into: &Path, name: &str) {
    let _ = std::fs::remove_dir_all(previous(into, name));
}
