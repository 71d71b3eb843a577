//! The collector's configuration: devices, their connections, poll groups and point tables.

use crate::points_csv;
use enos_config::{parse_toml, read_file, ConfigError, Finding, Findings, Scope};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    #[serde(default)]
    pub push: PushConfig,
    #[serde(default, rename = "device")]
    pub devices: Vec<DeviceConfig>,
}

/// How samples are handed to the uplink.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
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

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    ModbusTcp,
    ModbusRtu,
    ModbusRtuOverTcp,
}

impl Protocol {
    /// The name used in configuration files and shown to people.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::ModbusTcp => "modbus-tcp",
            Protocol::ModbusRtu => "modbus-rtu",
            Protocol::ModbusRtuOverTcp => "modbus-rtu-over-tcp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SerialConfig {
    pub port: String,
    #[serde(default = "d_baud")]
    pub baud: u32,
    #[serde(default)]
    pub parity: Parity,
    #[serde(default = "d_data_bits")]
    pub data_bits: u8,
    #[serde(default = "d_stop_bits")]
    pub stop_bits: u8,
}
fn d_baud() -> u32 {
    9600
}
fn d_data_bits() -> u8 {
    8
}
fn d_stop_bits() -> u8 {
    1
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    #[default]
    None,
    Even,
    Odd,
}

impl fmt::Display for Parity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Parity::None => "none",
            Parity::Even => "even",
            Parity::Odd => "odd",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PollGroup {
    pub name: String,
    pub interval_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Stable id of the device on this gateway (used on D-Bus and mapped to EnOS keys by the uplink).
    pub id: String,
    pub protocol: Protocol,
    /// `host:port` for TCP-based protocols.
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub serial: Option<SerialConfig>,
    #[serde(default = "d_unit")]
    pub unit_id: u8,
    #[serde(default = "d_timeout")]
    pub timeout_ms: u64,
    /// Extra attempts after a timeout before a request counts as failed.
    #[serde(default = "d_retries")]
    pub retries: u32,
    /// Connections to the device's endpoint, each carrying one request at a time. A setting of
    /// the endpoint: devices behind one gateway or converter must agree on it (validated), and a
    /// serial line always has one.
    #[serde(default = "d_in_flight")]
    pub max_in_flight: usize,
    /// Largest hole (in registers or bits) bridged when coalescing adjacent points into one read.
    #[serde(default = "d_gap")]
    pub max_gap: u16,
    /// Most registers in one read (the protocol allows 125).
    #[serde(default = "d_max_regs")]
    pub max_registers: u16,
    /// Consecutive failed poll cycles before the device is marked offline.
    #[serde(default = "d_offline_after")]
    pub offline_after: u32,
    #[serde(default = "d_backoff_min")]
    pub reconnect_min_ms: u64,
    #[serde(default = "d_backoff_max")]
    pub reconnect_max_ms: u64,
    /// Write with FC15/FC16 even for one coil or one register (devices without FC5/FC6).
    #[serde(default)]
    pub multiple_writes_only: bool,
    #[serde(default = "d_groups")]
    pub poll_groups: Vec<PollGroup>,
    /// A CSV point table (relative to the config file's directory); its points are added to `points`.
    #[serde(default)]
    pub points_csv: Option<String>,
    #[serde(default, rename = "point")]
    pub points: Vec<PointConfig>,
    #[serde(default = "d_true")]
    pub enabled: bool,
}
fn d_unit() -> u8 {
    1
}
fn d_timeout() -> u64 {
    1000
}
fn d_retries() -> u32 {
    1
}
fn d_in_flight() -> usize {
    1
}
fn d_gap() -> u16 {
    8
}
fn d_max_regs() -> u16 {
    125
}
fn d_offline_after() -> u32 {
    3
}
fn d_backoff_min() -> u64 {
    500
}
fn d_backoff_max() -> u64 {
    30_000
}
fn d_true() -> bool {
    true
}
fn d_groups() -> Vec<PollGroup> {
    vec![PollGroup { name: "default".into(), interval_ms: 1000 }]
}

/// Modbus data areas.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    /// Function code 1 (read), 5/15 (write).
    Coil,
    /// Function code 2, read only.
    Discrete,
    /// Function code 4, read only.
    Input,
    /// Function code 3 (read), 6/16 (write).
    Holding,
}

impl Area {
    pub fn is_bits(self) -> bool {
        matches!(self, Area::Coil | Area::Discrete)
    }
    pub fn writable(self) -> bool {
        matches!(self, Area::Coil | Area::Holding)
    }
}

/// The names used in configuration files and CSV tables.
impl fmt::Display for Area {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Area::Coil => "coil",
            Area::Discrete => "discrete",
            Area::Input => "input",
            Area::Holding => "holding",
        })
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    Bool,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    /// One bit of a 16-bit register (`bit` = 0..15, 0 = least significant).
    Bit,
    /// `length` registers of text, two bytes per register.
    String,
}

impl DataType {
    /// Registers occupied (for register areas).
    pub fn registers(self, length: Option<u16>) -> u16 {
        match self {
            DataType::Bool | DataType::U16 | DataType::I16 | DataType::Bit => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
            DataType::String => length.unwrap_or(1),
        }
    }
    pub fn is_integer(self) -> bool {
        matches!(self, DataType::U16 | DataType::I16 | DataType::U32 | DataType::I32 | DataType::U64 | DataType::I64)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataType::Bool => "bool",
            DataType::U16 => "u16",
            DataType::I16 => "i16",
            DataType::U32 => "u32",
            DataType::I32 => "i32",
            DataType::U64 => "u64",
            DataType::I64 => "i64",
            DataType::F32 => "f32",
            DataType::F64 => "f64",
            DataType::Bit => "bit",
            DataType::String => "string",
        })
    }
}

/// Byte and word order in the classic notation: the letters name the bytes of a 32-bit value
/// from most to least significant as they appear on the wire. ABCD is big-endian (Modbus
/// standard), CDAB swaps words, BADC swaps bytes in each word, DCBA is little-endian.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, Default)]
pub enum ByteOrder {
    #[default]
    ABCD,
    CDAB,
    BADC,
    DCBA,
}

impl ByteOrder {
    pub fn swap_words(self) -> bool {
        matches!(self, ByteOrder::CDAB | ByteOrder::DCBA)
    }
    pub fn swap_bytes(self) -> bool {
        matches!(self, ByteOrder::BADC | ByteOrder::DCBA)
    }
}

impl fmt::Display for ByteOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ByteOrder::ABCD => "ABCD",
            ByteOrder::CDAB => "CDAB",
            ByteOrder::BADC => "BADC",
            ByteOrder::DCBA => "DCBA",
        })
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    #[default]
    R,
    Rw,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::R => "r",
            Access::Rw => "rw",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PointConfig {
    pub name: String,
    pub area: Area,
    pub address: u16,
    #[serde(rename = "type")]
    pub data_type: DataType,
    #[serde(default)]
    pub order: ByteOrder,
    #[serde(default)]
    pub bit: Option<u8>,
    #[serde(default)]
    pub length: Option<u16>,
    #[serde(default = "d_scale")]
    pub scale: f64,
    #[serde(default)]
    pub offset: f64,
    /// A read never reaches across to this point from the points before it: it starts a new
    /// block (a hole in the device's register map, or a range it serves separately).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub new_block: bool,
    #[serde(default = "d_group")]
    pub group: String,
    #[serde(default)]
    pub access: Access,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    /// Decimals kept after scaling (default: the decimals of `scale` and `offset`).
    #[serde(default)]
    pub decimals: Option<u8>,
    #[serde(default)]
    pub unit: String,
}
fn d_scale() -> f64 {
    1.0
}
fn d_group() -> String {
    "default".into()
}

impl PointConfig {
    pub fn registers(&self) -> u16 {
        if self.area.is_bits() {
            1
        } else {
            self.data_type.registers(self.length)
        }
    }

    /// Every finding of this point on its own (the device checks names and groups).
    pub fn check(&self, at: &Scope, out: &mut Findings) {
        if self.name.is_empty() || self.name.len() > 64 || self.name.chars().any(|c| c.is_control() || c == '"') {
            out.add(at, "name", "must be 1-64 printable characters without quotes");
        }
        if self.area.is_bits() && self.data_type != DataType::Bool {
            out.add(at, "type", format!("area {} holds single bits; the type must be bool", self.area));
        }
        if !self.area.is_bits() && self.data_type == DataType::Bool {
            out.add(at, "type", "bool is for coil/discrete areas; use bit with `bit` for a bit in a register");
        }
        match (self.data_type, self.bit) {
            (DataType::Bit, None) => out.add(at, "bit", "type bit needs `bit` (0-15)"),
            (DataType::Bit, Some(b)) if b > 15 => out.add(at, "bit", format!("{b} is not a bit of a 16-bit register (0-15)")),
            (t, Some(_)) if t != DataType::Bit => out.add(at, "bit", "only type bit takes `bit`"),
            _ => {}
        }
        if self.data_type == DataType::String && !matches!(self.length, Some(l) if (1..=125).contains(&l)) {
            out.add(at, "length", "type string needs `length` in registers (1-125)");
        }
        if (self.address as u32) + (self.registers() as u32) > 65536 {
            out.add(at, "address", "the point runs past register 65535");
        }
        if !self.scale.is_finite() || self.scale == 0.0 {
            out.add(at, "scale", "must be a finite, non-zero number");
        }
        if !self.offset.is_finite() {
            out.add(at, "offset", "must be a finite number");
        }
        if self.access == Access::Rw && !self.area.writable() {
            out.add(at, "access", format!("{} area is read-only", self.area));
        }
        if matches!((self.min, self.max), (Some(lo), Some(hi)) if lo > hi) {
            out.add(at, "min", "min is greater than max");
        }
        if matches!(self.decimals, Some(d) if d > 9) {
            out.add(at, "decimals", "at most 9");
        }
    }
}

impl DeviceConfig {
    /// Every finding of this device: its settings, poll groups and points.
    pub fn check(&self, at: &Scope, out: &mut Findings) {
        if self.id.is_empty() || self.id.len() > 64 || !self.id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            out.add(at, "id", "must be 1-64 characters of A-Z a-z 0-9 - _ .");
        }
        match self.protocol {
            Protocol::ModbusTcp | Protocol::ModbusRtuOverTcp => match &self.address {
                None => out.add(at, "address", "required for TCP protocols (host:port)"),
                Some(a) if a.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none() => {
                    out.add(at, "address", format!("{a:?} is not host:port"))
                }
                Some(_) => {}
            },
            Protocol::ModbusRtu => match &self.serial {
                None => out.add(at, "serial", "required for modbus-rtu (port, baud, ...)"),
                Some(s) => {
                    if !(5..=8).contains(&s.data_bits) {
                        out.add(at, "serial.data_bits", "must be 5-8");
                    }
                    if !(1..=2).contains(&s.stop_bits) {
                        out.add(at, "serial.stop_bits", "must be 1 or 2");
                    }
                }
            },
        }
        if self.timeout_ms == 0 || self.timeout_ms > 60_000 {
            out.add(at, "timeout_ms", "must be 1-60000");
        }
        if self.max_in_flight == 0 || self.max_in_flight > 64 {
            out.add(at, "max_in_flight", "must be 1-64");
        } else if self.protocol == Protocol::ModbusRtu && self.max_in_flight != 1 {
            out.add(at, "max_in_flight", "a serial line carries one request at a time: must be 1 for modbus-rtu");
        }
        if self.max_registers == 0 || self.max_registers > 125 {
            out.add(at, "max_registers", "must be 1-125 (the Modbus limit)");
        }
        if self.reconnect_min_ms == 0 || self.reconnect_min_ms > self.reconnect_max_ms {
            out.add(at, "reconnect_min_ms", "must be > 0 and <= reconnect_max_ms");
        }
        let mut groups = HashSet::new();
        for (i, g) in self.poll_groups.iter().enumerate() {
            if g.interval_ms < 10 {
                out.add(at, format!("poll_groups[{i}].interval_ms"), "must be at least 10");
            }
            if !groups.insert(g.name.as_str()) {
                out.add(at, format!("poll_groups[{i}].name"), format!("duplicate group {:?}", g.name));
            }
        }
        let mut names = HashSet::new();
        for (i, p) in self.points.iter().enumerate() {
            let pat = at.point(i, &p.name);
            p.check(&pat, out);
            if !names.insert(p.name.as_str()) {
                out.add(&pat, "name", format!("duplicate point {:?}", p.name));
            }
            if !groups.contains(p.group.as_str()) {
                out.add(&pat, "group", format!("no poll group {:?} on this device", p.group));
            }
        }
    }

    pub fn point(&self, name: &str) -> Option<&PointConfig> {
        self.points.iter().find(|p| p.name == name)
    }
}

impl CollectorConfig {
    /// Reads, parses, merges CSV point tables and validates a collector config file.
    pub fn load(file: &Path) -> Result<CollectorConfig, ConfigError> {
        let text = read_file(file)?;
        Self::from_str_at(file, &text)
    }

    pub fn from_str_at(file: &Path, text: &str) -> Result<CollectorConfig, ConfigError> {
        let mut cfg: CollectorConfig = parse_toml(file, text)?;
        let dir = file.parent().unwrap_or(Path::new("."));
        for d in &mut cfg.devices {
            if let Some(csv) = &d.points_csv {
                let path = dir.join(csv);
                let text = read_file(&path)?;
                let pts = points_csv::parse(&text).map_err(|errors| ConfigError::PointTable { file: path.clone(), errors })?;
                d.points.extend(pts);
            }
        }
        cfg.findings().into_result(file)?;
        Ok(cfg)
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

    /// Devices that share an endpoint (an RS-485 line, a TCP gateway) share its connections, so
    /// they must agree on the endpoint's settings: the first device's would otherwise silently
    /// apply to all.
    fn check_endpoints(&self, out: &mut Findings) {
        let mut first: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (i, d) in self.devices.iter().enumerate() {
            let at = Scope::root().device(i, &d.id);
            let (ep, place) = match (&d.serial, &d.address) {
                (Some(s), _) if d.protocol == Protocol::ModbusRtu => (format!("serial:{}", s.port), format!("serial port {}", s.port)),
                (_, Some(a)) if d.protocol != Protocol::ModbusRtu => (format!("tcp:{a}"), format!("address {a}")),
                _ => continue,
            };
            let Some(&j) = first.get(&ep) else {
                first.insert(ep, i);
                continue;
            };
            let o = &self.devices[j];
            if o.protocol != d.protocol {
                out.add(
                    &at,
                    "protocol",
                    format!("device \"{}\" uses {} at {place}, but device \"{}\" uses {} there", d.id, d.protocol, o.id, o.protocol),
                );
                continue;
            }
            let mut checks = vec![
                ("max_in_flight", d.max_in_flight.to_string(), o.max_in_flight.to_string()),
                ("reconnect_min_ms", d.reconnect_min_ms.to_string(), o.reconnect_min_ms.to_string()),
                ("reconnect_max_ms", d.reconnect_max_ms.to_string(), o.reconnect_max_ms.to_string()),
            ];
            if let (Some(a), Some(b)) = (&d.serial, &o.serial) {
                checks.extend([
                    ("serial.baud", a.baud.to_string(), b.baud.to_string()),
                    ("serial.parity", a.parity.to_string(), b.parity.to_string()),
                    ("serial.data_bits", a.data_bits.to_string(), b.data_bits.to_string()),
                    ("serial.stop_bits", a.stop_bits.to_string(), b.stop_bits.to_string()),
                ]);
            }
            for (setting, mine, theirs) in checks.into_iter().filter(|(_, mine, theirs)| mine != theirs) {
                out.add(
                    &at,
                    setting,
                    format!(
                        "device \"{}\" sets {setting} = {mine} and device \"{}\" sets {theirs}; devices on the same {place} share \
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
        same(&[Protocol::ModbusTcp, Protocol::ModbusRtu, Protocol::ModbusRtuOverTcp]);
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
        assert_eq!(c.devices[0].points[0].order, ByteOrder::CDAB);
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
