//! The uplink's settings edited from outside the file (the web center over D-Bus, the cloud's
//! `setParameter`): the view of the running cloud settings, a change applied, and `uplink.toml`
//! rewritten with one table or one key changed and the rest of the file kept.

use crate::config::CloudConfig;
use enos_config::{parse_toml, ConfigError};
use enos_model::cloud::{CloudChange, CloudView};
use std::path::{Path, PathBuf};

/// What the web center may see of the running settings.
pub fn view(c: &CloudConfig) -> CloudView {
    CloudView {
        uri: c.uri.clone(),
        allow_plain: c.allow_plain,
        product_key: c.product_key.clone(),
        device_key: c.device_key.clone(),
        secret_set: c.secret().is_ok(),
        ca_file: c.ca_file.clone(),
        cert_file: c.cert_file.clone(),
        key_file: c.key_file.clone(),
        verify_hostname: c.verify_hostname,
    }
}

/// The current settings with `ch` applied (`secret_file`: where a new secret goes).
pub fn applied(ch: &CloudChange, cur: &CloudConfig, secret_file: &Path) -> CloudConfig {
    let mut c = cur.clone();
    c.uri = ch.uri.trim().to_string();
    c.product_key = ch.product_key.trim().to_string();
    c.device_key = ch.device_key.trim().to_string();
    if let Some(b) = ch.allow_plain {
        c.allow_plain = b;
    }
    if let Some(b) = ch.verify_hostname {
        c.verify_hostname = b;
    }
    let path = |p: &Option<PathBuf>| p.clone().filter(|p| !p.as_os_str().is_empty());
    c.ca_file = path(&ch.ca_file);
    c.cert_file = path(&ch.cert_file);
    c.key_file = path(&ch.key_file);
    if ch.device_secret.as_deref().is_some_and(|s| !s.is_empty()) {
        c.device_secret = None;
        c.device_secret_file = Some(secret_file.to_owned());
    }
    c
}

/// `text` (an `uplink.toml`) with its `[cloud]` table replaced by `cloud`; every other table
/// is kept as it was (comments are not).
pub fn replace_cloud(file: &Path, text: &str, cloud: &CloudConfig) -> Result<String, ConfigError> {
    let mut doc: toml::Table = parse_toml(file, text)?;
    let table = toml::Table::try_from(cloud).map_err(|e| unwritable(file, e))?;
    doc.insert("cloud".into(), toml::Value::Table(table));
    written(file, &doc)
}

/// `text` with `[table] key = value` set (the table made when it is missing); the rest is kept
/// as it was (comments are not).
pub fn set_value(file: &Path, text: &str, table: &str, key: &str, value: toml::Value) -> Result<String, ConfigError> {
    let mut doc: toml::Table = parse_toml(file, text)?;
    match doc.entry(table).or_insert_with(|| toml::Value::Table(Default::default())) {
        toml::Value::Table(t) => t.insert(key.into(), value),
        _ => return Err(ConfigError::Unwritable { file: file.to_owned(), message: format!("{table} is a value, not a table") }),
    };
    written(file, &doc)
}

fn unwritable(file: &Path, e: toml::ser::Error) -> ConfigError {
    ConfigError::Unwritable { file: file.to_owned(), message: e.to_string() }
}

fn written(file: &Path, doc: &toml::Table) -> Result<String, ConfigError> {
    let body = toml::to_string(doc).map_err(|e| unwritable(file, e))?;
    Ok(format!(
        "# EnOS Edge uplink configuration; written by the uplink (the web center's cloud settings, the cloud's setParameter).\n\n{body}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UplinkConfig;

    const FILE: &str = r#"
[cloud]
uri = "ssl://broker:18883"
product_key = "pk"
device_key = "gw"
device_secret = "old"

[cache]
dir = "/tmp/x"
max_bytes = 10000000
"#;

    #[test]
    fn the_cloud_table_changes_and_the_rest_stays() {
        let cfg = UplinkConfig::from_str_at(Path::new("u.toml"), FILE).unwrap();
        let ch = CloudChange {
            uri: "tcp://10.0.0.1:11883".into(),
            product_key: "pk2".into(),
            device_key: "gw2".into(),
            device_secret: Some("new".into()),
            allow_plain: Some(true),
            ca_file: None,
            cert_file: None,
            key_file: None,
            verify_hostname: None,
        };
        ch.check().unwrap();
        let dir = std::env::temp_dir().join(format!("enos-cloud-edit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sf = dir.join("gateway.secret");
        std::fs::write(&sf, "new").unwrap();
        let text = replace_cloud(Path::new("u.toml"), FILE, &applied(&ch, &cfg.cloud, &sf)).unwrap();
        let back = UplinkConfig::from_str_at(Path::new("u.toml"), &text).unwrap();
        assert_eq!(back.cloud.uri, "tcp://10.0.0.1:11883");
        assert_eq!(back.cloud.secret().unwrap(), "new");
        assert!(!text.contains("\"old\""), "{text}");
        assert_eq!(back.cache.max_bytes, 10_000_000);
        let shown = serde_json::to_string(&view(&back.cloud)).unwrap();
        assert!(shown.contains("\"secret_set\":true") && !shown.contains("\"new\""), "{shown}");
        std::fs::remove_dir_all(dir).unwrap();
        let bad = CloudChange { ca_file: Some("../etc/x".into()), ..ch };
        assert!(bad.check().unwrap_err().to_string().starts_with("ca_file"));
    }

    #[test]
    fn one_value_changes_and_the_rest_stays() {
        let text = set_value(Path::new("u.toml"), FILE, "cache", "max_bytes", toml::Value::Integer(1 << 20)).unwrap();
        let text = set_value(Path::new("u.toml"), &text, "sender", "max_message_bytes", toml::Value::Integer(65536)).unwrap();
        let back = UplinkConfig::from_str_at(Path::new("u.toml"), &text).unwrap();
        assert_eq!((back.cache.max_bytes, back.sender.max_message_bytes), (1 << 20, 65536));
        assert_eq!((back.cache.dir.to_str(), back.cloud.secret().unwrap().as_str()), (Some("/tmp/x"), "old"));
        let e = set_value(Path::new("u.toml"), "cache = 5\n", "cache", "max_bytes", toml::Value::Integer(1)).unwrap_err();
        assert_eq!(e.to_string(), "u.toml: cannot be written as TOML: cache is a value, not a table");
    }
}
