//! The engine (one per collector) and loaded plugins.
//!
//! Plugins run in wasmtime's Pulley interpreter ([`Execution::Interpreted`]): Cranelift
//! translates a component to Pulley bytecode, which is data, never mapped executable. So the
//! collector keeps `MemoryDenyWriteExecute=yes` (no memory is ever writable and executable, no
//! mapping becomes executable later), the rule a JIT would have to break (`docs/plugins.md`).
//! [`Execution::Native`] (machine code) is kept for the benchmark's comparison.
//!
//! Translation happens on the box the first time a component is loaded and the result is kept
//! in the cache directory under a key made of the component's SHA-256 and the engine's
//! compatibility hash (wasmtime version, settings, target). A precompiled artifact from
//! elsewhere would have to match all three exactly, so plugins are shipped as portable
//! components only.

use crate::manifest::{Manifest, ManifestError};
use crate::schema::Schema;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

/// One epoch tick: the granularity of the per-call time budget.
pub const TICK: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("plugin \"{name}\": {path}: {source}")]
    Read { name: String, path: PathBuf, source: std::io::Error },
    #[error("plugin \"{name}\": {path} is not a WebAssembly component for this gateway: {reason}")]
    Compile { name: String, path: PathBuf, reason: String },
}

/// How plugin code runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execution {
    /// Pulley bytecode in wasmtime's interpreter: no executable memory (the gateway's choice).
    Interpreted,
    /// Machine code from Cranelift: faster, but needs memory made executable at load, which
    /// `MemoryDenyWriteExecute` forbids (the benchmark's comparison).
    Native,
}

/// The wasmtime engine and the thread that advances its epoch (stopped when dropped).
pub struct Runtime {
    pub(crate) engine: Engine,
    cache: Option<PathBuf>,
    stop: Arc<AtomicBool>,
}

impl Runtime {
    /// The gateway's runtime: interpreted. `cache`: where translated components are kept
    /// (none: translate at every load).
    pub fn new(cache: Option<PathBuf>) -> Result<Arc<Runtime>, String> {
        Runtime::with(cache, Execution::Interpreted)
    }

    pub fn with(cache: Option<PathBuf>, execution: Execution) -> Result<Arc<Runtime>, String> {
        let mut c = Config::new();
        c.wasm_component_model(true).epoch_interruption(true);
        if execution == Execution::Interpreted {
            let pulley = if cfg!(target_pointer_width = "64") { "pulley64" } else { "pulley32" };
            c.target(pulley).map_err(|e| format!("the WebAssembly interpreter is not available: {e}"))?;
        }
        let engine = Engine::new(&c).map_err(|e| format!("the WebAssembly engine did not start: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (e, s) = (engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    e.increment_epoch();
                }
            })
            .map_err(|e| format!("the plugin clock thread did not start: {e}"))?;
        Ok(Arc::new(Runtime { engine, cache, stop }))
    }

    /// Reads a plugin directory: its manifest, then its component (compiled or from the cache).
    pub fn load(&self, dir: &Path) -> Result<Arc<Plugin>, LoadError> {
        let manifest = Manifest::load(dir)?;
        let name = manifest.name.clone();
        let path = dir.join(&manifest.component);
        let bytes = std::fs::read(&path).map_err(|source| LoadError::Read { name: name.clone(), path: path.clone(), source })?;
        let compile_error = |e: wasmtime::Error| LoadError::Compile { name: name.clone(), path: path.clone(), reason: e.to_string() };
        let cached = self.cache.as_ref().map(|d| d.join(format!("{}.cwasm", self.cache_key(&bytes))));
        // Read into memory rather than mapped from the file: /data is mounted noexec.
        // SAFETY: the file was written by `serialize` below into the gateway's own cache
        // directory, under a key that includes the engine's compatibility hash; a damaged one
        // fails its checks and is compiled again.
        let from_cache =
            cached.as_ref().and_then(|p| std::fs::read(p).ok()).and_then(|c| unsafe { Component::deserialize(&self.engine, c) }.ok());
        let fresh = from_cache.is_none();
        let component = match from_cache {
            Some(c) => c,
            None => Component::new(&self.engine, &bytes).map_err(compile_error)?,
        };
        if let Some(p) = cached.filter(|_| fresh) {
            // A cache that cannot be written costs a compile at the next start, nothing else.
            if let Err(e) = write_atomic(&p, &component.serialize().map_err(compile_error)?) {
                log::warn!("plugin \"{name}\": compiled code not cached at {}: {e}", p.display());
            }
        }
        let schema = manifest.schema().expect("checked when the manifest was read");
        Ok(Arc::new(Plugin { manifest, component, schema, dir: dir.to_path_buf() }))
    }

    fn cache_key(&self, bytes: &[u8]) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        format!("{}-{:016x}", hex::encode(&Sha256::digest(bytes)[..16]), h.finish())
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn write_atomic(p: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d)?;
    }
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(tmp, p)
}

/// A plugin ready to instantiate: its manifest, compiled component and settings schema.
pub struct Plugin {
    pub manifest: Manifest,
    pub(crate) component: Component,
    pub schema: Schema,
    pub dir: PathBuf,
}
