//! Editing the collector's configuration from outside the file (the web center over D-Bus): the
//! file written back as TOML, and the library of device models (templates) shipped with the image.

use enos_collector_config::{CollectorConfig, DeviceConfig};
use enos_config::{parse_toml, ConfigError};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The configuration as a TOML file the collector loads: points inline (`[[device.point]]`), so
/// the whole configuration is one file and replacing it is one atomic rename.
pub fn to_toml(cfg: &CollectorConfig) -> Result<String, toml::ser::Error> {
    let mut c = cfg.clone();
    for d in &mut c.devices {
        d.points_csv = None;
    }
    let body = toml::to_string(&c)?;
    Ok(format!(
        "# EnOS Edge collector configuration, written by the collector (ApplyConfig: web center, enosctl).\n\
         # Edits by hand are fine; `enos-collector --check` validates them.\n\n{body}"
    ))
}

/// A device model of the library (`/usr/share/enos/device-models/*.toml`): a device's protocol
/// settings, poll groups and point table, to start a new device from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceModel {
    /// The file's stem (`pv-inverter-sunspec`).
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub vendor: String,
    #[serde(default)]
    pub description: String,
    /// The device to start from; its `id` and `address` are placeholders to replace.
    pub device: DeviceConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    model: ModelMeta,
    device: toml::Table,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelMeta {
    name: String,
    #[serde(default)]
    vendor: String,
    #[serde(default)]
    description: String,
}

/// Parses one model file: `[model]` (name, vendor, description) and `[device]` as in
/// `collector.toml` without `id` (and `address` optional), points as `[[device.point]]`.
pub fn parse_model(file: &Path, text: &str) -> Result<DeviceModel, ConfigError> {
    let id = file.file_stem().and_then(|s| s.to_str()).unwrap_or("model").to_string();
    let m: ModelFile = parse_toml(file, text)?;
    let mut dev = m.device;
    dev.entry("id").or_insert_with(|| toml::Value::String(id.clone()));
    // A model names no address of a real box; a TCP device gets a placeholder to edit.
    let placeholder = match dev.get("protocol").and_then(|v| v.as_str()) {
        Some("modbus-tcp") | Some("modbus-rtu-over-tcp") => Some("192.168.1.10:502"),
        Some("iec104") => Some("192.168.1.10:2404"),
        _ => None,
    };
    if let Some(a) = placeholder {
        dev.entry("address").or_insert_with(|| toml::Value::String(a.into()));
    }
    let device: DeviceConfig = toml::Value::Table(dev).try_into().map_err(|e: toml::de::Error| ConfigError::Syntax {
        file: file.to_owned(),
        message: format!("device: {}", e.to_string().trim()),
    })?;
    let probe = CollectorConfig { push: Default::default(), devices: vec![device.clone()] };
    probe.findings().into_result(file)?;
    Ok(DeviceModel { id, name: m.model.name, vendor: m.model.vendor, description: m.model.description, device })
}

/// Every `*.toml` model of a directory, by name; files that do not parse are reported, not fatal.
pub fn load_models(dir: &Path) -> (Vec<DeviceModel>, Vec<String>) {
    let mut models = Vec::new();
    let mut errors = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return (models, errors) };
    let mut files: Vec<_> = rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "toml")).collect();
    files.sort();
    for f in files {
        match std::fs::read_to_string(&f) {
            Ok(t) => match parse_model(&f, &t) {
                Ok(m) => models.push(m),
                Err(e) => errors.push(e.to_string()),
            },
            Err(e) => errors.push(format!("{}: {e}", f.display())),
        }
    }
    (models, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"
[[device]]
id = "inv01"
protocol = "modbus-tcp"
address = "127.0.0.1:502"

[[device.point]]
name = "P"
area = "holding"
address = 0
type = "f32"
scale = 0.1

[[device.point]]
name = "Q"
area = "coil"
address = 1
type = "u16"

[[device]]
id = "m2"
protocol = "modbus-tcp"
address = "nowhere"

[[device.point]]
name = "E"
area = "input"
address = 0
type = "u32"
group = "slow"
"#;

    #[test]
    fn every_finding_names_device_point_and_field() {
        let cfg: CollectorConfig = toml::from_str(DOC).unwrap();
        let f = cfg.findings().0;
        let shown: Vec<String> = f.iter().map(|f| f.to_string()).collect();
        assert_eq!(f.len(), 3, "{shown:#?}");
        assert_eq!((f[0].device.as_deref(), f[0].point.as_deref(), f[0].field.as_str()), (Some("inv01"), Some("Q"), "type"));
        assert_eq!((f[1].device.as_deref(), f[1].point.as_deref(), f[1].field.as_str()), (Some("m2"), None, "address"));
        assert!(shown[1].contains("\"nowhere\" is not host:port"), "{}", shown[1]);
        assert_eq!(f[2].field, "group");
        assert_eq!(f[2].key, "device[1].point[0].group");
    }

    #[test]
    fn written_toml_loads_back_the_same() {
        let mut cfg: CollectorConfig = toml::from_str(DOC).unwrap();
        let enos_collector_config::ProtocolConfig::ModbusTcp(m) = &mut cfg.devices[0].proto else { panic!("a Modbus TCP device") };
        m.points.pop();
        m.points[0].meta.range = enos_collector_config::Range::new(Some(-5.0), None);
        cfg.devices.pop();
        let text = to_toml(&cfg).unwrap();
        let back = CollectorConfig::from_str_at(Path::new("c.toml"), &text).unwrap();
        assert_eq!(back, cfg, "{text}");
    }

    #[test]
    fn the_shipped_models_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../meta-enos-edge/recipes-enos/enos-edge/files/device-models");
        let (models, errors) = load_models(&dir);
        assert_eq!(errors, Vec::<String>::new());
        assert!(models.len() >= 4, "{}", dir.display());
        for p in ["modbus-rtu", "iec104", "dlt645", "dnp3"] {
            assert!(models.iter().any(|m| m.device.protocol().name() == p), "a model for {p}");
        }
        assert!(models.iter().all(|m| m.device.proto.point_count() > 0));
    }

    #[test]
    fn a_bad_model_says_file_and_field() {
        let e = parse_model(Path::new("/x/m.toml"), "[model]\nname = \"M\"\n[device]\nprotocol = \"modbus-tcp\"\nunit_id = 300\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/x/m.toml: device:") && e.contains("unit_id"), "{e}");
    }
}
