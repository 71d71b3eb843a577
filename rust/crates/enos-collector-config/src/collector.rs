//! The collector's configuration: devices, their connections, poll groups and point tables.

use crate::device::{DeviceConfig, Endpoint};
use crate::points_csv;
use enos_config::{parse_toml, read_file, ConfigError, Finding, Findings, Scope};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CollectorConfig {
    #[serde(default)]
    pub push: PushConfig,
    #[serde(default, rename = "device")]
    pub devices: Vec<DeviceConfig>,
}

/// How samples are handed to the uplink.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct PushConfig {
    /// A batch goes out at least this often when there is data.
    pub interval_ms: u64,
    /// ...or as soon as it holds this many samples.
    pub max_samples: usize,
    /// Samples kept in memory while the uplink is unreachable; beyond this the oldest are dropped
    /// and counted.
    pub buffer_max_samples: usize,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig { interval_ms: 200, max_samples: 20_000, buffer_max_samples: 5_000_000 }
    }
}

/// A device's settings are read after the TOML parser (by key, `doc.rs`), so its errors come
/// back pointing at the first `[[device]]`, whichever device it was. They name the device, maybe
/// the point, and the key; this finds that key in the document's spans and puts its line in
/// front instead of the parser's misleading diagram (the device's `id` line when the key is not
/// written, e.g. a missing one).
fn at_device_line(e: ConfigError, text: &str) -> ConfigError {
    let ConfigError::Syntax { file, message } = e else { return e };
    // The reason is the parser's last line; only a device's own reason begins with its name.
    let last = message.lines().last().unwrap_or_default();
    let Some(rest) = last.strip_prefix("device \"") else { return ConfigError::Syntax { file, message } };
    let Some((id, rest)) = rest.split_once("\": ") else { return ConfigError::Syntax { file, message } };
    let (point, rest) = match rest.strip_prefix("point \"").and_then(|r| r.split_once("\": ")) {
        Some((name, rest)) => (Some(name), rest),
        None => (None, rest),
    };
    let key = rest.split_once(": ").map(|(k, _)| k).filter(|k| !k.contains(' '));
    match key_offset(text, id, point, key) {
        Some(at) => {
            let line = text[..at].matches('\n').count() + 1;
            ConfigError::Syntax { file, message: format!("line {line}: {last}") }
        }
        None => ConfigError::Syntax { file, message },
    }
}

/// Where in `text` the key (dotted: `serial.baud`) of device `id` (of its point `point`) is
/// written; else the device's `id`.
fn key_offset(text: &str, id: &str, point: Option<&str>, key: Option<&str>) -> Option<usize> {
    let doc = DeTable::parse(text).ok()?;
    let devices = doc.get_ref().iter().find(|(k, _)| k.get_ref() == "device").map(|(_, v)| v)?;
    let device = named(devices, "id", id)?;
    let id_at = field(device, "id").map(|(at, _)| at);
    let mut table = device;
    if let Some(name) = point {
        match field(table, "point").and_then(|(_, p)| named(p, "name", name)) {
            Some(p) => table = p,
            None => return id_at,
        }
    }
    let mut at = None;
    for part in key.into_iter().flat_map(|k| k.split('.')) {
        let Some((offset, v)) = field(table, part) else { break };
        at = Some(offset);
        table = v;
    }
    at.or(id_at)
}

/// The table of array `arr` whose `key` is the text `want`.
fn named<'a, 'i>(arr: &'a Spanned<DeValue<'i>>, key: &str, want: &str) -> Option<&'a Spanned<DeValue<'i>>> {
    let DeValue::Array(a) = arr.get_ref() else { return None };
    a.iter().find(|v| matches!(field(v, key), Some((_, s)) if matches!(s.get_ref(), DeValue::String(s) if s == want)))
}

/// Key `key` of table `t`: where the key is written, and its value.
fn field<'a, 'i>(t: &'a Spanned<DeValue<'i>>, key: &str) -> Option<(usize, &'a Spanned<DeValue<'i>>)> {
    let DeValue::Table(t) = t.get_ref() else { return None };
    t.iter().find(|(k, _)| k.get_ref() == key).map(|(k, v)| (k.span().start, v))
}

impl CollectorConfig {
    /// Reads, parses, merges CSV point tables and validates a collector config file.
    pub fn load(file: &Path) -> Result<CollectorConfig, ConfigError> {
        let text = read_file(file)?;
        Self::from_str_at(file, &text)
    }

    pub fn from_str_at(file: &Path, text: &str) -> Result<CollectorConfig, ConfigError> {
        let mut cfg: CollectorConfig = parse_toml(file, text).map_err(|e| at_device_line(e, text))?;
        let dir = file.parent().unwrap_or(Path::new("."));
        // One pool for every table: identical devices share their point names as they are read.
        let mut pool = crate::point::StringPool::default();
        for d in &mut cfg.devices {
            if let Some(csv) = &d.points_csv {
                let path = dir.join(csv);
                let text = read_file(&path)?;
                let table = |errors| ConfigError::PointTable { file: path.clone(), errors };
                let mut added = Ok(());
                d.proto.reserve_points(text.lines().count().saturating_sub(1)); // the header
                points_csv::parse_each(d.protocol(), &text, |row| {
                    if added.is_ok() {
                        added = d.proto.push_point(row, &mut pool);
                    }
                })
                .map_err(table)?;
                added.map_err(|reason| table(vec![enos_config::RowError { line: 0, column: String::new(), reason }]))?;
            }
        }
        cfg.findings().into_result(file)?;
        Ok(cfg)
    }

    /// The running form: strings that many points repeat held once, point lists without spare
    /// capacity. The engine calls it on every configuration it applies; the 100,000-point
    /// benchmark (`enos-bench --point-memory`) shows what it saves.
    pub fn compact(&mut self) {
        let mut pool = crate::point::StringPool::default();
        for d in &mut self.devices {
            d.proto.compact(&mut pool);
        }
    }

    /// The first finding, if any (see `findings`).
    pub fn validate(&self) -> Result<(), Finding> {
        self.findings().first()
    }

    /// Every finding of the configuration: each device's own settings, each point, duplicate
    /// ids and names, and the settings devices sharing an endpoint must agree on. None means the
    /// collector accepts it.
    pub fn findings(&self) -> Findings {
        let mut out = Findings::default();
        let root = Scope::root();
        if self.push.interval_ms == 0 || self.push.max_samples == 0 {
            out.add(&root, "push", "interval_ms and max_samples must be > 0");
        }
        let mut ids = HashSet::new();
        for (i, d) in self.devices.iter().enumerate() {
            let at = root.device(i, &d.id);
            d.check(&at, &mut out);
            if !ids.insert(d.id.as_str()) {
                out.add(&at, "id", format!("duplicate device {:?}", d.id));
            }
        }
        self.check_endpoints(&mut out);
        out
    }

    /// Devices that share an endpoint (an RS-485 line, a TCP gateway, a station link) share its
    /// connections, so they must agree on the endpoint's settings: the first device's would
    /// otherwise silently apply to all.
    fn check_endpoints(&self, out: &mut Findings) {
        let mut first: HashMap<String, (usize, Endpoint)> = HashMap::new();
        for (i, d) in self.devices.iter().enumerate() {
            let Some(ep) = d.proto.endpoint() else { continue };
            let at = Scope::root().device(i, &d.id);
            let Some((j, theirs)) = first.get(&ep.key) else {
                first.insert(ep.key.clone(), (i, ep));
                continue;
            };
            let o = &self.devices[*j];
            let place = &ep.place;
            if o.protocol() != d.protocol() {
                out.add(
                    &at,
                    "protocol",
                    format!("device \"{}\" uses {} at {place}, but device \"{}\" uses {} there", d.id, d.protocol(), o.id, o.protocol()),
                );
                continue;
            }
            for ((setting, mine), (_, other)) in ep.shared.iter().zip(&theirs.shared).filter(|((_, a), (_, b))| a != b) {
                out.add(
                    &at,
                    *setting,
                    format!(
                        "device \"{}\" sets {setting} = {mine} and device \"{}\" sets {other}; devices on the same {place} share \
                         one connection and must agree",
                        d.id, o.id
                    ),
                );
            }
        }
    }

    pub fn device(&self, id: &str) -> Option<&DeviceConfig> {
        self.devices.iter().find(|d| d.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::Parity;
    use crate::modbus::{Area, ByteOrder, DataType};
    use crate::{Access, Protocol, ProtocolConfig};
    use std::fmt;
    use std::sync::Arc;

    /// Two identical devices share their point names, units and poll groups after `compact`, and
    /// their point lists hold no spare capacity; the configuration is otherwise unchanged.
    #[test]
    fn compact_shares_repeated_strings_and_changes_nothing_else() {
        let dev = |id: &str| {
            let points: String = (0..5)
                .map(|i| format!("{{ name = \"P{i}\", area = \"holding\", address = {i}, type = \"u16\", unit = \"kW\" }},"))
                .collect();
            format!("[[device]]\nid = \"{id}\"\nprotocol = \"modbus-tcp\"\naddress = \"127.0.0.1:502\"\npoint = [{points}]\n")
        };
        let mut cfg = CollectorConfig::from_str_at(Path::new("c.toml"), &(dev("a") + &dev("b"))).unwrap();
        let before = cfg.clone();
        cfg.compact();
        assert_eq!(cfg, before);
        let modbus = |i: usize| match &cfg.devices[i].proto {
            ProtocolConfig::ModbusTcp(m) => m,
            _ => unreachable!(),
        };
        let (a, b) = (&modbus(0).points, &modbus(1).points);
        assert_eq!(a.capacity(), a.len());
        for (x, y) in a.iter().zip(b) {
            assert!(Arc::ptr_eq(&x.meta.name, &y.meta.name), "name {}", x.meta.name);
            assert!(Arc::ptr_eq(&x.meta.unit, &a[0].meta.unit));
            assert!(Arc::ptr_eq(&x.at.group, &b[0].at.group));
        }
    }

    /// The rows of CSV tables are shared as they are read, across tables, into lists sized to
    /// the table: nothing is left for `compact` to free between the points that stay.
    #[test]
    fn csv_rows_are_shared_as_read_into_lists_of_their_size() {
        let dir = std::env::temp_dir().join(format!("enos-csv-shared-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rows: String = (0..5).map(|i| format!("P{i},02010{i}00,XXX.X,kV,slow\n")).collect();
        std::fs::write(dir.join("m.csv"), format!("name,di,format,unit,group\n{rows}")).unwrap();
        let dev = |id: &str, meter: &str| {
            format!(
                "[[device]]\nid = \"{id}\"\nprotocol = \"dlt645\"\naddress = \"127.0.0.1:8899\"\nmeter = \"{meter}\"\n\
                 poll_groups = [{{ name = \"slow\", interval_ms = 60000 }}]\npoints_csv = \"m.csv\"\n"
            )
        };
        let file = dir.join("c.toml");
        std::fs::write(&file, dev("a", "000000000001") + &dev("b", "000000000002")).unwrap();
        let cfg = CollectorConfig::load(&file);
        std::fs::remove_dir_all(&dir).unwrap();
        let cfg = cfg.unwrap();
        let points = |i: usize| match &cfg.devices[i].proto {
            ProtocolConfig::Dlt645(d) => &d.points,
            _ => unreachable!(),
        };
        let (a, b) = (points(0), points(1));
        assert_eq!((a.len(), a.capacity(), b.capacity()), (5, 5, 5));
        for (x, y) in a.iter().zip(b) {
            assert!(Arc::ptr_eq(&x.meta.name, &y.meta.name), "name {}", x.meta.name);
            assert!(Arc::ptr_eq(&x.meta.unit, &b[0].meta.unit) && &*x.meta.unit == "kV");
            assert!(Arc::ptr_eq(&x.at.group, &b[0].at.group));
            assert!(Arc::ptr_eq(x.at.format.as_ref().unwrap(), b[0].at.format.as_ref().unwrap()));
        }
    }

    const GOOD: &str = r#"
[[device]]
id = "inv01"
protocol = "modbus-tcp"
address = "127.0.0.1:5020"
poll_groups = [{ name = "fast", interval_ms = 100 }]

[[device.point]]
name = "P"
area = "holding"
address = 0
type = "f32"
order = "CDAB"
group = "fast"
"#;

    #[test]
    fn the_words_shown_are_the_words_of_the_file() {
        fn same<T: Serialize + fmt::Display>(all: &[T]) {
            for v in all {
                assert_eq!(serde_json::to_string(v).unwrap(), format!("\"{v}\""));
            }
        }
        same(&Protocol::ALL);
        same(&[Parity::None, Parity::Even, Parity::Odd]);
        same(&[Area::Coil, Area::Discrete, Area::Input, Area::Holding]);
        use DataType::*;
        same(&[Bool, U16, I16, U32, I32, U64, I64, F32, F64, Bit, String]);
        same(&[ByteOrder::ABCD, ByteOrder::CDAB, ByteOrder::BADC, ByteOrder::DCBA]);
        same(&[Access::R, Access::Rw]);
    }

    #[test]
    fn a_good_file_loads() {
        let c = CollectorConfig::from_str_at(Path::new("c.toml"), GOOD).unwrap();
        let ProtocolConfig::ModbusTcp(m) = &c.devices[0].proto else { panic!("{:?}", c.devices[0]) };
        assert_eq!(m.points[0].at.order, ByteOrder::CDAB);
        assert_eq!(c.push, PushConfig::default());
    }

    #[test]
    fn devices_on_one_line_or_gateway_must_agree_on_its_settings() {
        let dev = |id: &str, unit: u8, serial: &str, extra: &str| {
            format!(
                "[[device]]\nid = \"{id}\"\nprotocol = \"modbus-rtu\"\nunit_id = {unit}\nserial = {{ port = \"/dev/ttyS1\", {serial} }}\n{extra}\n"
            )
        };
        let ok = [dev("m1", 1, "baud = 19200, parity = \"even\"", ""), dev("m2", 2, "baud = 19200, parity = \"even\"", "")].concat();
        CollectorConfig::from_str_at(Path::new("c.toml"), &ok).unwrap();

        let baud = [dev("m1", 1, "baud = 19200", ""), dev("m2", 2, "baud = 9600", "")].concat();
        let e = CollectorConfig::from_str_at(Path::new("c.toml"), &baud).unwrap_err().to_string();
        assert_eq!(
            e,
            "c.toml: device \"m2\", serial.baud: device \"m2\" sets serial.baud = 9600 and device \"m1\" sets 19200; devices on the same \
             serial port /dev/ttyS1 share one connection and must agree"
        );
        let parity = [dev("m1", 1, "parity = \"even\"", ""), dev("m2", 2, "parity = \"none\"", "")].concat();
        let e = CollectorConfig::from_str_at(Path::new("c.toml"), &parity).unwrap_err().to_string();
        assert!(e.contains("device \"m2\", serial.parity: device \"m2\" sets serial.parity = none and device \"m1\" sets even"), "{e}");

        let serial_in_flight = dev("m1", 1, "baud = 9600", "max_in_flight = 4");
        let e = CollectorConfig::from_str_at(Path::new("c.toml"), &serial_in_flight).unwrap_err().to_string();
        assert_eq!(e, "c.toml: device \"m1\", max_in_flight: a serial line carries one request at a time: must be 1 for modbus-rtu");

        let tcp =
            |id: &str, extra: &str| format!("[[device]]\nid = \"{id}\"\nprotocol = \"modbus-tcp\"\naddress = \"10.0.0.9:502\"\n{extra}\n");
        let gw = [tcp("a", "max_in_flight = 4"), tcp("b", "")].concat();
        let e = CollectorConfig::from_str_at(Path::new("c.toml"), &gw).unwrap_err().to_string();
        assert!(e.contains("device \"b\", max_in_flight: device \"b\" sets max_in_flight = 1 and device \"a\" sets 4"), "{e}");
        let mixed = [tcp("a", ""), tcp("b", "").replace("modbus-tcp", "modbus-rtu-over-tcp")].concat();
        let e = CollectorConfig::from_str_at(Path::new("c.toml"), &mixed).unwrap_err().to_string();
        assert!(e.contains("device \"b\", protocol: device \"b\" uses modbus-rtu-over-tcp at address 10.0.0.9:502"), "{e}");
    }

    #[test]
    fn errors_name_the_file_the_key_and_the_reason() {
        let bad = GOOD.replace("type = \"f32\"", "type = \"bit\"\nbit = 16");
        let e = CollectorConfig::from_str_at(Path::new("/etc/enos/collector.toml"), &bad).unwrap_err().to_string();
        assert_eq!(e, "/etc/enos/collector.toml: device \"inv01\", point \"P\", bit: 16 is not a bit of a 16-bit register (0-15)");

        let typo = GOOD.replace("interval_ms = 100", "intervall_ms = 100");
        let e = CollectorConfig::from_str_at(Path::new("c.toml"), &typo).unwrap_err().to_string();
        assert!(e.starts_with("c.toml: ") && e.contains("intervall_ms") && e.contains("line"), "{e}");

        let nogroup = GOOD.replace("group = \"fast\"", "group = \"slow\"");
        let e = CollectorConfig::from_str_at(Path::new("c.toml"), &nogroup).unwrap_err().to_string();
        assert_eq!(e, "c.toml: device \"inv01\", point \"P\", group: no poll group \"slow\" on this device");

        let dup = format!("{GOOD}\n{}", &GOOD[GOOD.find("[[device.point]]").unwrap()..]);
        let e = CollectorConfig::from_str_at(Path::new("c.toml"), &dup).unwrap_err().to_string();
        assert!(e.contains("device \"inv01\", point \"P\", name: duplicate point \"P\""), "{e}");
    }
}
