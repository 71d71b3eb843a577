//! A driver's small persistent key-value store: one JSON file per device, bounded in bytes.

use std::collections::BTreeMap;
use std::path::PathBuf;

pub(crate) struct Kv {
    file: Option<PathBuf>,
    map: BTreeMap<String, Vec<u8>>,
    limit: usize,
    allowed: bool,
}

impl Kv {
    pub(crate) fn open(file: Option<PathBuf>, limit: usize, allowed: bool) -> Kv {
        let map = file
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|b| serde_json::from_slice::<BTreeMap<String, String>>(&b).ok())
            .map(|m| m.into_iter().filter_map(|(k, v)| Some((k, hex::decode(v).ok()?))).collect())
            .unwrap_or_default();
        Kv { file, map, limit, allowed }
    }

    fn used(&self) -> usize {
        self.map.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    pub(crate) fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.map.get(key).cloned()
    }

    pub(crate) fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), String> {
        if !self.allowed {
            return Err("the plugin's manifest does not ask for the key-value store (capabilities.kv)".into());
        }
        if key.is_empty() || key.len() > 128 {
            return Err("a key is 1-128 bytes".into());
        }
        let old = self.map.get(&key).map_or(0, |v| key.len() + v.len());
        let used = self.used() - old + key.len() + value.len();
        if used > self.limit {
            return Err(format!("the store would hold {used} bytes, more than its limit of {}", self.limit));
        }
        self.map.insert(key, value);
        self.save()
    }

    pub(crate) fn delete(&mut self, key: &str) {
        if self.map.remove(key).is_some() {
            let _ = self.save();
        }
    }

    fn save(&self) -> Result<(), String> {
        let Some(f) = &self.file else { return Ok(()) };
        let m: BTreeMap<&String, String> = self.map.iter().map(|(k, v)| (k, hex::encode(v))).collect();
        let text = serde_json::to_vec(&m).map_err(|e| e.to_string())?;
        let tmp = f.with_extension("tmp");
        std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, f)).map_err(|e| format!("the store was not saved: {e}"))
    }
}
