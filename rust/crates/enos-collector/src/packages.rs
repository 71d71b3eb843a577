//! Resource packages applied by the collector (`Collector1.InstallPackage`, `Packages`): the
//! collector owns what a package changes (its configuration, point tables, device models,
//! connection certificates, all under its own `/data/enos/config/collector`), so no other
//! service, and never root, writes there for it.
//!
//! Steps, each leaving the box either as it was or with the whole package (`docs/packages.md`):
//! 1. verify (signature against the key on the read-only root, digests, paths; `enos-package`),
//!    refuse a version not newer than the installed one;
//! 2. stage into `packages/.staging`, validate it whole the way a local edit is (the
//!    configuration with its CSV point tables, each device model, each certificate);
//! 3. rename the staging directory to `gen-<version>` (one rename);
//! 4. journal: the running configuration saved as `previous.toml`, then `state.json` says
//!    `applying`;
//! 5. write `collector.toml` (one `write_atomic`) and swap the drivers;
//! 6. health: every enabled device of the package `online` within the deadline, else the
//!    previous configuration is written and applied again (rolled back);
//! 7. `state.json` names the new version, `current` points at its generation (symlink replaced
//!    by a rename).
//!
//! A collector that starts with `applying` in the journal was cut off in steps 4-6: it puts the
//! previous configuration back before it loads anything ([`recover`]).

mod plugin_files;

use crate::config_api::ConfigApi;
use crate::config_edit;
use enos_collector_config::CollectorConfig;
use enos_package::{ItemType, Verified};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// History entries kept.
const HISTORY: usize = 50;

pub struct Packages {
    /// `<the configuration's directory>/packages`.
    pub dir: PathBuf,
    /// The OEM's public key (`--package-key`, default `/etc/enos/package-key.pem`).
    pub key_file: PathBuf,
    /// How long the devices of a new configuration have to come online.
    pub health_timeout: Duration,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub installed: Option<Installed>,
    /// Set while a package's configuration is being put in place (the journal).
    #[serde(default)]
    pub applying: Option<Pending>,
    #[serde(default)]
    pub history: Vec<Entry>,
}

/// The package being applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub name: String,
    pub version: String,
    /// The plugins it replaces, and whether each had an installed version (to put back).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<(String, bool)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Installed {
    pub name: String,
    pub version: String,
    pub at_ms: u64,
    pub items: Vec<enos_package::Item>,
}

/// One attempt: `installed`, `refused`, `rolled-back` or `interrupted`, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    pub version: String,
    pub outcome: String,
    #[serde(default)]
    pub reason: String,
    pub origin: String,
    pub at_ms: u64,
}

/// The answer of `InstallPackage`.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub ok: bool,
    pub name: String,
    pub version: String,
    /// `installed`, `refused` or `rolled-back`.
    pub outcome: String,
    pub reason: String,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Packages {
    pub fn state(&self) -> State {
        read_state(&self.dir)
    }

    fn save(&self, st: &State) -> Result<(), String> {
        save_state(&self.dir, st)
    }

    /// The models a package installed (listed with the library's).
    pub fn models_dir(&self) -> PathBuf {
        self.dir.join("current").join("models")
    }

    fn record(&self, st: &mut State, e: Entry) {
        st.history.push(e);
        let over = st.history.len().saturating_sub(HISTORY);
        st.history.drain(..over);
    }

    /// Installs a package (its bytes) for `origin` (who asked: the cloud, the web center, enosctl).
    pub async fn install(&self, api: &ConfigApi, bytes: &[u8], origin: &str) -> Outcome {
        let _one = api.applying.lock().await;
        let (outcome, name, version) = match self.try_install(api, bytes).await {
            Ok((name, version)) => (Ok(()), name, version),
            Err((kind, reason, name, version)) => (Err((kind, reason)), name, version),
        };
        let mut st = self.state();
        let (ok, word, reason) = match outcome {
            Ok(()) => (true, "installed", String::new()),
            Err((word, reason)) => (false, word, reason),
        };
        self.record(
            &mut st,
            Entry {
                name: name.clone(),
                version: version.clone(),
                outcome: word.into(),
                reason: reason.clone(),
                origin: origin.into(),
                at_ms: now_ms(),
            },
        );
        if let Err(e) = self.save(&st) {
            log::error!("package history: {e}");
        }
        if ok {
            log::info!("package {name} {version} installed (asked by {origin})");
        } else {
            log::warn!("package {name} {version} {word} (asked by {origin}): {reason}");
        }
        Outcome { ok, name, version, outcome: word.into(), reason }
    }

    /// Ok((name, version)) or Err((outcome, reason, name, version)).
    async fn try_install(&self, api: &ConfigApi, bytes: &[u8]) -> Result<(String, String), (&'static str, String, String, String)> {
        let refuse = |r: String| ("refused", r, String::new(), String::new());
        let pem =
            std::fs::read_to_string(&self.key_file).map_err(|e| refuse(format!("no package key at {}: {e}", self.key_file.display())))?;
        let key =
            enos_package::key::public_from_pem(&pem).map_err(|e| refuse(format!("the package key {}: {e}", self.key_file.display())))?;
        let pkg = enos_package::verify(bytes, &key).map_err(|e| refuse(e.to_string()))?;
        let (name, version) = (pkg.manifest.name.clone(), pkg.manifest.version.clone());
        let refuse = |r: String| ("refused", r, name.clone(), version.clone());
        let st = self.state();
        if let Some(inst) = &st.installed {
            let (new, old) =
                (enos_package::version::parse(&version).map_err(refuse)?, enos_package::version::parse(&inst.version).unwrap_or_default());
            if enos_package::version::compare(&new, &old).is_le() {
                return Err(refuse(format!("version {version} is not newer than the installed {}", inst.version)));
            }
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| refuse(format!("{}: {e}", self.dir.display())))?;
        let staging = self.dir.join(".staging");
        let running = api.engine.lock().expect("engine").config();
        // Staging translates plugins (seconds on a small CPU): not on the collector's threads.
        let (cfg, plugins) = {
            let (staging, pkg, running) = (staging.clone(), pkg.clone(), running.clone());
            tokio::task::spawn_blocking(move || stage(&staging, &pkg, &running)).await.map_err(|e| refuse(e.to_string()))?
        }
        .map_err(refuse)?;
        crash_point("staged");
        let generation = self.dir.join(format!("gen-{version}"));
        let _ = std::fs::remove_dir_all(&generation); // a failed attempt at this version
        std::fs::rename(&staging, &generation).map_err(|e| refuse(format!("{}: {e}", generation.display())))?;
        sync_dir(&self.dir);
        crash_point("generation");

        if cfg.is_some() || !plugins.is_empty() {
            let previous = config_edit::to_toml(&running).map_err(|e| refuse(format!("saving the running configuration: {e}")))?;
            enos_runtime::fs::write_atomic(&self.dir.join("previous.toml"), previous.as_bytes(), 0o640)
                .map_err(|e| refuse(format!("saving the running configuration: {e}")))?;
            let into = enos_drivers::plugin::plugins_dir();
            for p in &plugins {
                plugin_files::forget_previous(&into, p); // left by an earlier cut, if any
            }
            let swaps: Vec<(String, bool)> = plugins.iter().map(|p| (p.clone(), into.join(p).exists())).collect();
            let mut journal = st.clone();
            journal.applying = Some(Pending { name: name.clone(), version: version.clone(), plugins: swaps.clone() });
            self.save(&journal).map_err(refuse)?;
            crash_point("journal");
            let new_cfg = cfg.unwrap_or_else(|| running.clone());
            let enabled: Vec<String> = new_cfg.devices.iter().filter(|d| d.enabled).map(|d| d.id.clone()).collect();
            let mut ids = Vec::new();
            let put = async {
                for p in &plugins {
                    plugin_files::swap_in(&into, &generation.join("plugins").join(p), p)?;
                }
                let mut applied = api.put_in_place(new_cfg).await?;
                // Devices of a replaced plugin whose configuration did not change run the old
                // code: start them again (the new instance waits for the old one to end).
                let uses = |d: &enos_collector_config::DeviceConfig| plugin_of(d).is_some_and(|p| plugins.iter().any(|x| x == p));
                let again = api
                    .engine
                    .lock()
                    .expect("engine")
                    .restart(|d| uses(d) && !applied.started.contains(&d.id) && !applied.restarted.contains(&d.id));
                applied.restarted.extend(again);
                Ok::<_, String>(applied)
            };
            let applied = put.await;
            // The swap is done: a good poll from now on is the new configuration's.
            let since = now_ms();
            let outcome = match applied {
                Ok(applied) => {
                    // A device the package did not change kept running: only new and restarted
                    // ones must show a good poll since the apply.
                    ids.extend(enabled.into_iter().filter(|id| applied.started.contains(id) || applied.restarted.contains(id)));
                    crash_point("applied");
                    self.wait_collecting(api, &ids, since).await
                }
                Err(e) => Err(e),
            };
            if let Err(why) = outcome {
                let put_back = if plugins.is_empty() {
                    "the previous configuration was put back"
                } else {
                    "the previous configuration and plugins were put back"
                };
                self.roll_back(api, &running, &into, &swaps).await;
                let _ = std::fs::remove_dir_all(&generation);
                return Err(("rolled-back", format!("{why}; {put_back}"), name, version));
            }
            for p in &plugins {
                plugin_files::forget_previous(&into, p);
            }
        }
        let mut st = self.state();
        st.applying = None;
        st.installed = Some(Installed { name: name.clone(), version: version.clone(), at_ms: now_ms(), items: pkg.manifest.items.clone() });
        crash_point("healthy");
        self.point_current_at(&generation).map_err(refuse)?;
        self.save(&st).map_err(refuse)?;
        self.prune(&generation);
        Ok((name, version))
    }

    /// Every enabled device of the package `online` with a good poll since the apply (a status
    /// from before the swap does not count) before the deadline.
    async fn wait_collecting(&self, api: &ConfigApi, ids: &[String], since_ms: u64) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + self.health_timeout;
        loop {
            let statuses = api.engine.lock().expect("engine").statuses();
            // A device the new driver has not reported yet is not collecting either.
            let lagging: Vec<(&String, String, Option<String>)> = ids
                .iter()
                .filter_map(|id| match statuses.iter().find(|s| &s.id == id) {
                    None => Some((id, "starting".to_string(), None)),
                    Some(s) if s.state == "online" && s.last_ok_ms.is_some_and(|t| t >= since_ms) => None,
                    Some(s) => Some((id, s.state.clone(), s.last_error.clone())),
                })
                .collect();
            if lagging.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let (id, state, error) = &lagging[0];
                let why = error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
                return Err(format!(
                    "device \"{id}\" was not collecting {} s after the apply (state {state}{why})",
                    self.health_timeout.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn roll_back(&self, api: &ConfigApi, running: &CollectorConfig, plugins_dir: &Path, swaps: &[(String, bool)]) {
        for (p, had) in swaps {
            if let Err(e) = plugin_files::put_back(plugins_dir, p, *had) {
                log::error!("rolling back plugin \"{p}\": {e}");
                return; // the journal stays: the next start puts it back
            }
        }
        if let Err(e) = api.put_in_place(running.clone()).await {
            log::error!("rolling back the package's configuration: {e}");
            return; // the journal stays: the next start puts previous.toml back
        }
        // Devices of a put-back plugin run the rolled-back code until started again.
        let names: Vec<&str> = swaps.iter().map(|(p, _)| p.as_str()).collect();
        api.engine.lock().expect("engine").restart(|d| plugin_of(d).is_some_and(|p| names.contains(&p)));
        let mut st = self.state();
        st.applying = None;
        if let Err(e) = self.save(&st) {
            log::error!("package journal: {e}");
        }
    }

    /// `current` → the generation, replaced in one rename.
    fn point_current_at(&self, generation: &Path) -> Result<(), String> {
        let tmp = self.dir.join(".current.tmp");
        let _ = std::fs::remove_file(&tmp);
        let target = generation.file_name().expect("generation name");
        std::os::unix::fs::symlink(target, &tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, self.dir.join("current")).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        sync_dir(&self.dir);
        Ok(())
    }

    /// Keeps the installed generation and the one before it.
    fn prune(&self, keep: &Path) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else { return };
        let mut gens: Vec<(std::time::SystemTime, PathBuf)> = rd
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("gen-") && e.path() != keep)
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        gens.sort();
        for (_, p) in gens.iter().rev().skip(1) {
            let _ = std::fs::remove_dir_all(p);
        }
    }

    /// `Packages`: the installed package and the history, newest last.
    pub fn list(&self) -> serde_json::Value {
        let st = self.state();
        serde_json::json!({ "installed": st.installed, "history": st.history })
    }
}

fn read_state(dir: &Path) -> State {
    std::fs::read(dir.join("state.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

fn save_state(dir: &Path, st: &State) -> Result<(), String> {
    // The first package may be refused before anything made the directory: its refusal is history too.
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let text = serde_json::to_vec_pretty(st).expect("state");
    enos_runtime::fs::write_atomic(&dir.join("state.json"), &text, 0o640).map_err(|e| format!("{}: {e}", dir.join("state.json").display()))
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Test hook: `ENOS_PACKAGE_CRASH_AT=<step>` ends the process at that step, as a power cut would
/// (the tests kill the apply at each step and check the box after the next start). Compiled into
/// debug builds only (the end-to-end tests run those): a release build, what the image ships, has
/// no such variable, so nothing in a gateway's environment can make an apply stop half way.
#[cfg(debug_assertions)]
fn crash_point(step: &str) {
    if std::env::var("ENOS_PACKAGE_CRASH_AT").is_ok_and(|s| s == step) {
        log::warn!("ENOS_PACKAGE_CRASH_AT={step}: stopping here");
        std::process::abort();
    }
}

#[cfg(not(debug_assertions))]
fn crash_point(_step: &str) {}

/// Writes the package's items under `dir` and validates them whole, as a local edit would be:
/// the configuration with its point tables (`CollectorConfig::load`), every device model, every
/// certificate. Returns the configuration, if the package has one.
fn stage(dir: &Path, pkg: &Verified, running: &CollectorConfig) -> Result<(Option<CollectorConfig>, Vec<String>), String> {
    let _ = std::fs::remove_dir_all(dir);
    for (path, data) in &pkg.files {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().expect("item dir")).map_err(|e| format!("staging: {e}"))?;
        enos_runtime::fs::write_atomic(&file, data, 0o640).map_err(|e| format!("staging {path}: {e}"))?;
    }
    let mut cfg = None;
    for item in &pkg.manifest.items {
        let file = dir.join(&item.path);
        let text = || String::from_utf8(pkg.files[&item.path].clone()).map_err(|_| format!("item \"{}\": not UTF-8 text", item.path));
        match item.kind {
            ItemType::CollectorConfig => {
                cfg = Some(
                    CollectorConfig::load(&file)
                        .map_err(|e| format!("item \"{}\": {}", item.path, e.to_string().replace(&format!("{}", dir.display()), "")))?,
                )
            }
            ItemType::DeviceModel => {
                config_edit::parse_model(&file, &text()?).map_err(|e| format!("item \"{}\": {e}", item.path))?;
            }
            ItemType::Certificate => {
                if !text()?.contains("-----BEGIN CERTIFICATE-----") {
                    return Err(format!("item \"{}\": not a PEM certificate", item.path));
                }
            }
            ItemType::PointTable | ItemType::Plugin => {}
        }
    }
    let plugins = plugin_files::check_staged(dir, pkg, cfg.as_ref().unwrap_or(running))?;
    let tables = pkg.manifest.items.iter().filter(|i| i.kind == ItemType::PointTable);
    if cfg.is_none() {
        if let Some(t) = tables.clone().next() {
            return Err(format!("item \"{}\": a point table comes with the collector.toml that names it", t.path));
        }
    } else if let Some(c) = &cfg {
        for t in tables {
            if !c.devices.iter().any(|d| d.points_csv.as_deref() == Some(t.path.as_str())) {
                return Err(format!("item \"{}\": no device of collector.toml names it (points_csv)", t.path));
            }
        }
    }
    Ok((cfg, plugins))
}

/// The plugin a device runs, if it is a plugin device.
fn plugin_of(d: &enos_collector_config::DeviceConfig) -> Option<&str> {
    match &d.proto {
        enos_collector_config::ProtocolConfig::Plugin(p) => Some(p.plugin.as_str()),
        _ => None,
    }
}

/// At start, before the configuration is read: an apply cut off (power, kill) after the journal
/// said `applying` is undone, the previous configuration written back over `config_file`.
pub fn recover(dir: &Path, config_file: &Path) {
    let mut st = read_state(dir);
    let Some(Pending { name, version, plugins }) = st.applying.clone() else { return };
    let into = enos_drivers::plugin::plugins_dir();
    for (p, had) in &plugins {
        if let Err(e) = plugin_files::put_back(&into, p, *had) {
            log::error!("putting plugin \"{p}\" before package {version} back: {e}");
            return;
        }
    }
    let previous = dir.join("previous.toml");
    match std::fs::read(&previous) {
        Ok(text) => {
            if let Err(e) = crate::config_api::write_config(config_file, &String::from_utf8_lossy(&text)) {
                log::error!("putting the configuration before package {version} back: {e}");
                return;
            }
        }
        Err(e) => log::error!("package {version} was cut off mid-apply and {} is unreadable: {e}", previous.display()),
    }
    st.applying = None;
    st.history.push(Entry {
        name,
        version: version.clone(),
        outcome: "interrupted".into(),
        reason: if plugins.is_empty() {
            "the collector stopped during the apply; the previous configuration was put back".into()
        } else {
            "the collector stopped during the apply; the previous configuration and plugins were put back".into()
        },
        origin: "start".into(),
        at_ms: now_ms(),
    });
    let _ = std::fs::remove_dir_all(dir.join(format!("gen-{version}")));
    match save_state(dir, &st) {
        Ok(()) => log::warn!("package {version} was cut off mid-apply: the previous configuration was put back"),
        Err(e) => log::error!("package journal: {e}"),
    }
}
