//! DNP3 (IEEE 1815) outstations over TCP or a serial line (RTUs, IEDs, substation gateways).
//! Points by type and index: `type = "AI"`, `index = 5` (the group numbers are accepted too:
//! `type = "g30"`).

use crate::fields::{Field, FieldKind as K};
use crate::line::{check_backoff, check_host_port, SerialConfig};
use crate::point::{Access, Point, PointAddress, PointMeta};
use enos_config::{Findings, Scope};
use serde::{Deserialize, Serialize};

pub type Dnp3Point = Point<Dnp3Address>;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Dnp3Device {
    /// `host:port` of the outstation (the standard's port is 20000); or `serial` for an RS-485/232
    /// line on this box. Devices with one address or port share the channel, each with its own
    /// outstation address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<SerialConfig>,
    /// This gateway's link address.
    #[serde(default = "d_master")]
    pub master_address: u16,
    /// The outstation's link address.
    #[serde(default = "d_outstation")]
    pub outstation_address: u16,
    /// Integrity poll (classes 1, 2, 3 and 0) after every connect and outstation restart, and
    /// then this often (0: not on a schedule).
    #[serde(default = "d_integrity")]
    pub integrity_interval_s: u64,
    /// Event polls per class (0: never; unsolicited responses may bring them instead).
    #[serde(default = "d_class")]
    pub class1_interval_ms: u64,
    #[serde(default = "d_class")]
    pub class2_interval_ms: u64,
    #[serde(default = "d_class")]
    pub class3_interval_ms: u64,
    /// Let the outstation send its events unsolicited (enabled after the integrity poll).
    #[serde(default)]
    pub unsolicited: bool,
    /// Set the outstation's clock when it asks for the time (IIN NEED_TIME).
    #[serde(default = "d_true")]
    pub time_sync: bool,
    #[serde(default = "d_timeout")]
    pub response_timeout_ms: u64,
    /// Each step of a command (select, operate) must be answered within this.
    #[serde(default = "d_timeout")]
    pub command_timeout_ms: u64,
    #[serde(default = "d_backoff_min")]
    pub reconnect_min_ms: u64,
    #[serde(default = "d_backoff_max")]
    pub reconnect_max_ms: u64,
    #[serde(default, rename = "point")]
    pub points: Vec<Dnp3Point>,
}
fn d_master() -> u16 {
    1
}
fn d_outstation() -> u16 {
    1024
}
fn d_integrity() -> u64 {
    3600
}
fn d_class() -> u64 {
    5000
}
fn d_true() -> bool {
    true
}
fn d_timeout() -> u64 {
    5000
}
fn d_backoff_min() -> u64 {
    1000
}
fn d_backoff_max() -> u64 {
    30_000
}

/// The point types (static group / event group).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum PointType {
    /// Binary input (g1 / g2).
    #[serde(rename = "BI", alias = "g1", alias = "g2")]
    BinaryInput,
    /// Double-bit binary input (g3 / g4): 0 intermediate, 1 off, 2 on, 3 indeterminate.
    #[serde(rename = "DBI", alias = "g3", alias = "g4")]
    DoubleBitInput,
    /// Binary output status (g10), commanded with a CROB (g12).
    #[serde(rename = "BO", alias = "g10", alias = "g12")]
    BinaryOutput,
    /// Counter (g20 / g22).
    #[serde(rename = "CNT", alias = "g20", alias = "g22")]
    Counter,
    /// Frozen counter (g21 / g23).
    #[serde(rename = "FCNT", alias = "g21", alias = "g23")]
    FrozenCounter,
    /// Analog input (g30 / g32).
    #[serde(rename = "AI", alias = "g30", alias = "g32")]
    AnalogInput,
    /// Analog output status (g40), commanded with g41.
    #[serde(rename = "AO", alias = "g40", alias = "g41")]
    AnalogOutput,
}

/// How a writable point is commanded.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum CommandType {
    /// CROB LATCH_ON for true, LATCH_OFF for false.
    Latch,
    /// CROB PULSE_ON of `pulse_ms` (the value must be true).
    Pulse,
    /// CROB pulse with the trip/close code: CLOSE for true, TRIP for false.
    TripClose,
    /// Analog output g41v1 (32-bit integer).
    Int32,
    /// g41v2 (16-bit integer).
    Int16,
    /// g41v3 (single-precision float).
    Float32,
    /// g41v4 (double-precision float).
    Float64,
}

impl CommandType {
    fn is_crob(self) -> bool {
        matches!(self, CommandType::Latch | CommandType::Pulse | CommandType::TripClose)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Dnp3Address {
    #[serde(rename = "type")]
    pub kind: PointType,
    pub index: u16,
    /// Makes a BO or AO point writable with this command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandType>,
    /// Select, then operate (each answered by the outstation) instead of a direct operate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub select_before_operate: bool,
    /// The on-time of a pulse (ms).
    #[serde(default = "d_pulse", skip_serializing_if = "is_default_pulse")]
    pub pulse_ms: u32,
}
fn d_pulse() -> u32 {
    1000
}
fn is_default_pulse(v: &u32) -> bool {
    *v == d_pulse()
}

impl PointAddress for Dnp3Address {
    fn check(&self, meta: &PointMeta, at: &Scope, out: &mut Findings) {
        match (meta.access, self.command) {
            (Access::Rw, None) => out.add(
                at,
                "access",
                "a writable point needs `command` (latch, pulse, trip-close for BO; int32, int16, float32, float64 for AO)",
            ),
            (Access::R, Some(_)) => out.add(at, "command", "the point is read-only (access = \"r\"); set access = \"rw\" to write it"),
            _ => {}
        }
        match (self.kind, self.command) {
            (PointType::BinaryOutput, Some(c)) if !c.is_crob() => out.add(at, "command", "a BO point takes latch, pulse or trip-close"),
            (PointType::AnalogOutput, Some(c)) if c.is_crob() => {
                out.add(at, "command", "an AO point takes int32, int16, float32 or float64")
            }
            (PointType::BinaryOutput | PointType::AnalogOutput, _) | (_, None) => {}
            (_, Some(_)) => out.add(at, "command", "only BO and AO points can be commanded"),
        }
        if self.command.is_none() && self.select_before_operate {
            out.add(at, "command", "select_before_operate needs `command`");
        }
        if self.pulse_ms == 0 {
            out.add(at, "pulse_ms", "must be more than 0");
        }
    }
}

impl Dnp3Device {
    pub fn check(&self, at: &Scope, out: &mut Findings) {
        match (&self.address, &self.serial) {
            (Some(_), Some(_)) => out.add(at, "serial", "give either address (TCP) or serial (a line on this box), not both"),
            (None, None) => out.add(at, "address", "required: address (host:port of the outstation) or serial"),
            (a @ Some(_), None) => check_host_port(a.as_deref(), at, out, "address"),
            (None, Some(s)) => s.check(at, out),
        }
        for (key, a) in [("master_address", self.master_address), ("outstation_address", self.outstation_address)] {
            if a >= 0xFFF0 {
                out.add(at, key, "must be 0-65519 (65520 and above are reserved)");
            }
        }
        if self.master_address == self.outstation_address {
            out.add(at, "outstation_address", "must differ from master_address");
        }
        for (key, v) in [("response_timeout_ms", self.response_timeout_ms), ("command_timeout_ms", self.command_timeout_ms)] {
            if v == 0 || v > 120_000 {
                out.add(at, key, "must be 1-120000");
            }
        }
        check_backoff(self.reconnect_min_ms, self.reconnect_max_ms, at, out);
        let mut seen = std::collections::HashMap::new();
        for (i, p) in self.points.iter().enumerate() {
            if let Some(other) = seen.insert((p.at.kind, p.at.index), p.name()) {
                out.add(&at.point(i, p.name()), "index", format!("this type and index are already point \"{other}\""));
            }
        }
    }
}

pub const DEVICE_FIELDS: &[Field] = &[
    Field::new("address", "Address", K::Text, "host:port of the outstation (20000)"),
    Field::new("serial", "Serial line", K::Serial, "An RS-485/232 port on this box (instead of an address)"),
    Field::new("master_address", "Master address", K::Integer, "This gateway's link address").default("1").range(0.0, 65519.0),
    Field::new("outstation_address", "Outstation address", K::Integer, "The outstation's link address").default("1024").range(0.0, 65519.0),
    Field::new("integrity_interval_s", "Integrity poll every (s)", K::Integer, "0: after connect and restart only").default("3600"),
    Field::new("class1_interval_ms", "Class 1 poll every (ms)", K::Integer, "0: never").default("5000"),
    Field::new("class2_interval_ms", "Class 2 poll every (ms)", K::Integer, "0: never").default("5000"),
    Field::new("class3_interval_ms", "Class 3 poll every (ms)", K::Integer, "0: never").default("5000"),
    Field::new("unsolicited", "Unsolicited responses", K::Bool, "Enabled after the integrity poll").default("false"),
    Field::new("time_sync", "Set the outstation's clock", K::Bool, "When it asks (NEED_TIME)").default("true"),
    Field::new("response_timeout_ms", "Response timeout (ms)", K::Integer, "Each response fragment").default("5000").range(1.0, 120000.0),
    Field::new("command_timeout_ms", "Command step timeout (ms)", K::Integer, "Select, operate").default("5000").range(1.0, 120000.0),
    Field::new("reconnect_min_ms", "Reconnect after (ms)", K::Integer, "First reconnect delay").default("1000"),
    Field::new("reconnect_max_ms", "Reconnect at most (ms)", K::Integer, "Longest reconnect delay").default("30000"),
];

pub const POINT_FIELDS: &[Field] = &[
    Field::new("type", "Type", K::Choice, "BI, DBI, BO, CNT, FCNT, AI, AO (or the group: g1, g30, ...)")
        .required()
        .choices(&["BI", "DBI", "BO", "CNT", "FCNT", "AI", "AO"])
        .aliases(&[
            ("g1", "BI"),
            ("g2", "BI"),
            ("g3", "DBI"),
            ("g4", "DBI"),
            ("g10", "BO"),
            ("g12", "BO"),
            ("g20", "CNT"),
            ("g22", "CNT"),
            ("g21", "FCNT"),
            ("g23", "FCNT"),
            ("g30", "AI"),
            ("g32", "AI"),
            ("g40", "AO"),
            ("g41", "AO"),
        ]),
    Field::new("index", "Index", K::Integer, "The point's index in the outstation").required().range(0.0, 65535.0),
    Field::new("command", "Command", K::Choice, "Makes a BO or AO point writable").choices(&[
        "latch",
        "pulse",
        "trip-close",
        "int32",
        "int16",
        "float32",
        "float64",
    ]),
    Field::new("select_before_operate", "Select before operate", K::Bool, "Select, then operate").default("false"),
    Field::new("pulse_ms", "Pulse (ms)", K::Integer, "On-time of pulse and trip-close").default("1000").range(1.0, 4294967295.0),
];
