//! Modbus devices: TCP, RTU on a serial line, RTU over TCP. Points by data area and 0-based
//! protocol address.

use crate::fields::{Field, FieldKind as K, POINT_GROUP, POLL_GROUPS};
use crate::line::{check_backoff, check_groups, check_host_port, default_group, default_groups, PollGroup, SerialConfig};
use crate::point::{Access, Point, PointAddress, PointMeta};
use enos_config::{Findings, Scope};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

pub type ModbusPoint = Point<ModbusAddress>;

/// How a Modbus device is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    Rtu,
    RtuOverTcp,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModbusDevice {
    /// `host:port` for the TCP transports.
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
    #[serde(default = "default_groups")]
    pub poll_groups: Vec<PollGroup>,
    #[serde(default, rename = "point")]
    pub points: Vec<ModbusPoint>,
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

/// Where a Modbus point lives and how its registers make a value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModbusAddress {
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
    /// A read never reaches across to this point from the points before it: it starts a new
    /// block (a hole in the device's register map, or a range it serves separately).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub new_block: bool,
    #[serde(default = "default_group")]
    pub group: Arc<str>,
}

impl ModbusAddress {
    /// An address with the defaults of the file (ABCD, group `default`).
    pub fn new(area: Area, address: u16, data_type: DataType) -> ModbusAddress {
        ModbusAddress {
            area,
            address,
            data_type,
            order: ByteOrder::ABCD,
            bit: None,
            length: None,
            new_block: false,
            group: default_group(),
        }
    }

    pub fn registers(&self) -> u16 {
        if self.area.is_bits() {
            1
        } else {
            self.data_type.registers(self.length)
        }
    }
}

impl PointAddress for ModbusAddress {
    fn share_strings(&mut self, pool: &mut crate::point::StringPool) {
        pool.share(&mut self.group);
    }

    fn check(&self, meta: &PointMeta, at: &Scope, out: &mut Findings) {
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
        if meta.access == Access::Rw && !self.area.writable() {
            out.add(at, "access", format!("{} area is read-only", self.area));
        }
    }
}

impl ModbusDevice {
    pub fn check(&self, transport: Transport, at: &Scope, out: &mut Findings) {
        match transport {
            Transport::Tcp | Transport::RtuOverTcp => check_host_port(self.address.as_deref(), at, out, "address"),
            Transport::Rtu => match &self.serial {
                None => out.add(at, "serial", "required for modbus-rtu (port, baud, ...)"),
                Some(s) => s.check(at, out),
            },
        }
        if self.timeout_ms == 0 || self.timeout_ms > 60_000 {
            out.add(at, "timeout_ms", "must be 1-60000");
        }
        if self.max_in_flight == 0 || self.max_in_flight > 64 {
            out.add(at, "max_in_flight", "must be 1-64");
        } else if transport == Transport::Rtu && self.max_in_flight != 1 {
            out.add(at, "max_in_flight", "a serial line carries one request at a time: must be 1 for modbus-rtu");
        }
        if self.max_registers == 0 || self.max_registers > 125 {
            out.add(at, "max_registers", "must be 1-125 (the Modbus limit)");
        }
        check_backoff(self.reconnect_min_ms, self.reconnect_max_ms, at, out);
        let groups = check_groups(&self.poll_groups, at, out);
        for (i, p) in self.points.iter().enumerate() {
            if !groups.contains(&*p.at.group) {
                out.add(&at.point(i, p.name()), "group", format!("no poll group {:?} on this device", p.at.group));
            }
        }
    }

    pub fn point(&self, name: &str) -> Option<&ModbusPoint> {
        self.points.iter().find(|p| *p.meta.name == *name)
    }
}

/// The settings of a Modbus device (without its points), for forms.
pub const DEVICE_FIELDS: &[Field] = &[
    Field::new("address", "Address", K::Text, "host:port of the device or gateway (TCP transports)"),
    Field::new("serial", "Serial line", K::Serial, "The RS-485/RS-232 port and its settings (modbus-rtu)"),
    Field::new("unit_id", "Unit id", K::Integer, "The device's Modbus address").default("1").range(0.0, 255.0),
    Field::new("timeout_ms", "Timeout (ms)", K::Integer, "Wait for an answer this long").default("1000").range(1.0, 60000.0),
    Field::new("retries", "Retries", K::Integer, "Extra attempts after a timeout").default("1").range(0.0, 10.0),
    Field::new("max_in_flight", "Requests in flight", K::Integer, "Connections to the endpoint (TCP)").default("1").range(1.0, 64.0),
    Field::new("max_gap", "Largest gap", K::Integer, "Registers bridged when joining reads").default("8").range(0.0, 125.0),
    Field::new("max_registers", "Registers per read", K::Integer, "At most 125").default("125").range(1.0, 125.0),
    Field::new("offline_after", "Offline after", K::Integer, "Failed poll cycles before offline").default("3"),
    Field::new("reconnect_min_ms", "Reconnect after (ms)", K::Integer, "First reconnect delay").default("500"),
    Field::new("reconnect_max_ms", "Reconnect at most (ms)", K::Integer, "Longest reconnect delay").default("30000"),
    Field::new("multiple_writes_only", "Multiple writes only", K::Bool, "Write with FC15/FC16 only").default("false"),
    POLL_GROUPS,
];

/// The address fields of a Modbus point, for the point grid and CSV tables.
pub const POINT_FIELDS: &[Field] = &[
    Field::new("area", "Area", K::Choice, "Coils and discrete inputs hold bits; input and holding registers words")
        .required()
        .choices(&["coil", "discrete", "input", "holding"])
        .aliases(&[
            ("coils", "coil"),
            ("0x", "coil"),
            ("discrete_input", "discrete"),
            ("1x", "discrete"),
            ("input_register", "input"),
            ("3x", "input"),
            ("holding_register", "holding"),
            ("4x", "holding"),
        ]),
    Field::new("address", "Address", K::Integer, "0-based protocol address (not 40001-style)").required().range(0.0, 65535.0),
    Field::new("type", "Type", K::Choice, "How the registers make a value")
        .required()
        .choices(&["bool", "u16", "i16", "u32", "i32", "u64", "i64", "f32", "f64", "bit", "string"])
        .aliases(&[
            ("uint16", "u16"),
            ("int16", "i16"),
            ("uint32", "u32"),
            ("int32", "i32"),
            ("uint64", "u64"),
            ("int64", "i64"),
            ("float", "f32"),
            ("float32", "f32"),
            ("double", "f64"),
            ("float64", "f64"),
            ("str", "string"),
            ("coil", "bool"),
            ("discrete", "bool"),
        ]),
    Field::new("order", "Byte order", K::Choice, "ABCD is the Modbus standard (big-endian)")
        .choices(&["ABCD", "CDAB", "BADC", "DCBA"])
        .default("ABCD")
        .aliases(&[("big", "ABCD"), ("little", "DCBA")]),
    Field::new("bit", "Bit", K::Integer, "For type bit: 0-15, 0 = least significant").range(0.0, 15.0),
    Field::new("length", "Length", K::Integer, "For type string: registers").range(1.0, 125.0),
    POINT_GROUP,
    Field::new("new_block", "New block", K::Bool, "No read reaches across to this point from the ones before").default("false"),
];
