//! IEC 60870-5-104 controlled stations (RTUs, protection relays, substation gateways). Points by
//! common address and information object address (IOA).

use crate::fields::{Field, FieldKind as K};
use crate::line::{check_backoff, check_host_port};
use crate::point::{Access, Point, PointAddress, PointMeta};
use enos_config::{Findings, Scope};
use serde::{Deserialize, Serialize};

pub type Iec104Point = Point<Iec104Address>;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Iec104Device {
    /// `host:port` of the station (the standard's port is 2404; 19998 with TLS).
    pub address: String,
    /// A second address of the same station (redundant front end), used when the first fails.
    #[serde(default)]
    pub redundant_address: Option<String>,
    /// The station's common address (ASDU address), for points that name none.
    #[serde(default = "d_ca")]
    pub common_address: u16,
    /// Unacknowledged I-frames sent before waiting (the standard's k).
    #[serde(default = "d_k")]
    pub k: u16,
    /// I-frames received before acknowledging (the standard's w).
    #[serde(default = "d_w")]
    pub w: u16,
    /// The standard's timeouts in seconds: t0 connect, t1 acknowledgement, t2 acknowledge
    /// without data, t3 test frame on an idle link.
    #[serde(default = "d_t0")]
    pub t0_s: u32,
    #[serde(default = "d_t1")]
    pub t1_s: u32,
    #[serde(default = "d_t2")]
    pub t2_s: u32,
    #[serde(default = "d_t3")]
    pub t3_s: u32,
    #[serde(default = "d_backoff_min")]
    pub reconnect_min_ms: u64,
    #[serde(default = "d_backoff_max")]
    pub reconnect_max_ms: u64,
    /// General interrogation after every connect and then this often (0: after connect only).
    #[serde(default)]
    pub interrogation_interval_s: u64,
    /// Counter interrogation this often (0: never).
    #[serde(default)]
    pub counter_interval_s: u64,
    /// Set the station's clock after every connect...
    #[serde(default)]
    pub clock_sync: bool,
    /// ...and this often (0: only after connect).
    #[serde(default)]
    pub clock_sync_interval_s: u64,
    /// Each step of a command (select, execute, termination) must be confirmed within this.
    #[serde(default = "d_cmd_timeout")]
    pub command_timeout_ms: u64,
    /// TLS per IEC 62351-3 (mutual authentication).
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    #[serde(default, rename = "point")]
    pub points: Vec<Iec104Point>,
}
fn d_ca() -> u16 {
    1
}
fn d_k() -> u16 {
    12
}
fn d_w() -> u16 {
    8
}
fn d_t0() -> u32 {
    30
}
fn d_t1() -> u32 {
    15
}
fn d_t2() -> u32 {
    10
}
fn d_t3() -> u32 {
    20
}
fn d_backoff_min() -> u64 {
    1000
}
fn d_backoff_max() -> u64 {
    30_000
}
fn d_cmd_timeout() -> u64 {
    10_000
}

/// Certificates and key for a mutually authenticated TLS link (PEM files).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The CA that signed the station's certificate.
    pub ca: String,
    /// This gateway's certificate and key, presented to the station.
    pub cert: String,
    pub key: String,
    /// The name in the station's certificate (default: the host of `address`).
    #[serde(default)]
    pub server_name: Option<String>,
}

/// The monitored information types (each with or without a time tag on the wire).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum InfoType {
    /// Single point (M_SP_NA_1 / M_SP_TB_1).
    #[serde(rename = "M_SP", alias = "M_SP_NA_1", alias = "M_SP_TB_1")]
    Single,
    /// Double point (M_DP_NA_1 / M_DP_TB_1).
    #[serde(rename = "M_DP", alias = "M_DP_NA_1", alias = "M_DP_TB_1")]
    Double,
    /// Step position (M_ST_NA_1 / M_ST_TB_1).
    #[serde(rename = "M_ST", alias = "M_ST_NA_1", alias = "M_ST_TB_1")]
    Step,
    /// Bitstring of 32 bits (M_BO_NA_1 / M_BO_TB_1).
    #[serde(rename = "M_BO", alias = "M_BO_NA_1", alias = "M_BO_TB_1")]
    Bitstring,
    /// Measured value, normalized (M_ME_NA_1 / M_ME_TD_1).
    #[serde(rename = "M_ME_NA", alias = "M_ME_NA_1", alias = "M_ME_TD_1")]
    Normalized,
    /// Measured value, scaled (M_ME_NB_1 / M_ME_TE_1).
    #[serde(rename = "M_ME_NB", alias = "M_ME_NB_1", alias = "M_ME_TE_1")]
    Scaled,
    /// Measured value, short float (M_ME_NC_1 / M_ME_TF_1).
    #[serde(rename = "M_ME_NC", alias = "M_ME_NC_1", alias = "M_ME_TF_1")]
    Float,
    /// Integrated totals (M_IT_NA_1 / M_IT_TB_1).
    #[serde(rename = "M_IT", alias = "M_IT_NA_1", alias = "M_IT_TB_1")]
    Counter,
}

/// The command a writable point sends.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum CommandType {
    #[serde(rename = "C_SC", alias = "C_SC_NA_1")]
    Single,
    #[serde(rename = "C_DC", alias = "C_DC_NA_1")]
    Double,
    #[serde(rename = "C_RC", alias = "C_RC_NA_1")]
    Regulating,
    #[serde(rename = "C_SE_NA", alias = "C_SE_NA_1")]
    SetpointNormalized,
    #[serde(rename = "C_SE_NB", alias = "C_SE_NB_1")]
    SetpointScaled,
    #[serde(rename = "C_SE_NC", alias = "C_SE_NC_1")]
    SetpointFloat,
    #[serde(rename = "C_BO", alias = "C_BO_NA_1")]
    Bitstring,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Iec104Address {
    /// Common address, when not the device's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<u16>,
    pub ioa: u32,
    #[serde(rename = "type")]
    pub info: InfoType,
    /// Makes the point writable with this command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandType>,
    /// Where the command goes, when not to `ioa` (stations often take commands on their own IOAs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_ioa: Option<u32>,
    /// Select, then execute (each confirmed by the station) instead of a direct execute.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub select_before_operate: bool,
    /// The command's qualifier (QU: 0 default, 1 short pulse, 2 long pulse, 3 persistent).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub qualifier: u8,
}
fn is_zero(v: &u8) -> bool {
    *v == 0
}

const IOA_MAX: u32 = 0xFF_FFFF;

impl PointAddress for Iec104Address {
    fn check(&self, meta: &PointMeta, at: &Scope, out: &mut Findings) {
        if self.ioa > IOA_MAX {
            out.add(at, "ioa", format!("{} is above the largest information object address ({IOA_MAX})", self.ioa));
        }
        if matches!(self.command_ioa, Some(c) if c > IOA_MAX) {
            out.add(at, "command_ioa", format!("above the largest information object address ({IOA_MAX})"));
        }
        if self.qualifier > 31 {
            out.add(at, "qualifier", "must be 0-31");
        }
        match (meta.access, self.command) {
            (Access::Rw, None) => {
                out.add(at, "access", "a writable point needs `command` (C_SC, C_DC, C_RC, C_SE_NA, C_SE_NB, C_SE_NC, C_BO)")
            }
            (Access::R, Some(_)) => out.add(at, "command", "the point is read-only (access = \"r\"); set access = \"rw\" to write it"),
            _ => {}
        }
        if self.command.is_none() && (self.command_ioa.is_some() || self.select_before_operate) {
            out.add(at, "command", "command_ioa and select_before_operate need `command`");
        }
    }
}

impl Iec104Device {
    pub fn check(&self, at: &Scope, out: &mut Findings) {
        check_host_port(Some(&self.address), at, out, "address");
        if let Some(r) = &self.redundant_address {
            check_host_port(Some(r), at, out, "redundant_address");
        }
        if self.k == 0 || self.k > 32767 {
            out.add(at, "k", "must be 1-32767");
        }
        if self.w == 0 || self.w > self.k {
            out.add(at, "w", "must be 1 and at most k (the standard advises w ≈ 2/3 k)");
        }
        for (key, v) in [("t0_s", self.t0_s), ("t1_s", self.t1_s), ("t2_s", self.t2_s), ("t3_s", self.t3_s)] {
            if v == 0 || v > 255 {
                out.add(at, key, "must be 1-255 seconds");
            }
        }
        if self.t2_s >= self.t1_s {
            out.add(at, "t2_s", "must be less than t1_s (the standard requires t2 < t1)");
        }
        check_backoff(self.reconnect_min_ms, self.reconnect_max_ms, at, out);
        if self.command_timeout_ms == 0 || self.command_timeout_ms > 120_000 {
            out.add(at, "command_timeout_ms", "must be 1-120000");
        }
        if let Some(t) = &self.tls {
            for (key, v) in [("tls.ca", &t.ca), ("tls.cert", &t.cert), ("tls.key", &t.key)] {
                if !v.starts_with('/') {
                    out.add(at, key, "must be an absolute path to a PEM file");
                }
            }
        }
        let mut seen = std::collections::HashMap::new();
        for (i, p) in self.points.iter().enumerate() {
            let key = (p.at.ca.unwrap_or(self.common_address), p.at.ioa);
            if let Some(other) = seen.insert(key, p.name()) {
                out.add(&at.point(i, p.name()), "ioa", format!("common address {} IOA {} is already point \"{other}\"", key.0, key.1));
            }
        }
    }

    pub fn point(&self, name: &str) -> Option<&Iec104Point> {
        self.points.iter().find(|p| *p.meta.name == *name)
    }
}

pub const DEVICE_FIELDS: &[Field] = &[
    Field::new("address", "Address", K::Text, "host:port of the station (2404; 19998 with TLS)").required(),
    Field::new("redundant_address", "Redundant address", K::Text, "host:port of the station's second front end"),
    Field::new("common_address", "Common address", K::Integer, "The station's ASDU address").default("1").range(1.0, 65534.0),
    Field::new("k", "k", K::Integer, "Unacknowledged frames sent before waiting").default("12").range(1.0, 32767.0),
    Field::new("w", "w", K::Integer, "Frames received before acknowledging").default("8").range(1.0, 32767.0),
    Field::new("t0_s", "t0 (s)", K::Integer, "Connect timeout").default("30").range(1.0, 255.0),
    Field::new("t1_s", "t1 (s)", K::Integer, "Acknowledgement timeout").default("15").range(1.0, 255.0),
    Field::new("t2_s", "t2 (s)", K::Integer, "Acknowledge without data after").default("10").range(1.0, 255.0),
    Field::new("t3_s", "t3 (s)", K::Integer, "Test an idle link after").default("20").range(1.0, 255.0),
    Field::new("reconnect_min_ms", "Reconnect after (ms)", K::Integer, "First reconnect delay").default("1000"),
    Field::new("reconnect_max_ms", "Reconnect at most (ms)", K::Integer, "Longest reconnect delay").default("30000"),
    Field::new("interrogation_interval_s", "Interrogation every (s)", K::Integer, "0: after each connect only").default("0"),
    Field::new("counter_interval_s", "Counter interrogation every (s)", K::Integer, "0: never").default("0"),
    Field::new("clock_sync", "Set the station's clock", K::Bool, "After each connect").default("false"),
    Field::new("clock_sync_interval_s", "Clock sync every (s)", K::Integer, "0: after connect only").default("0"),
    Field::new("command_timeout_ms", "Command step timeout (ms)", K::Integer, "Select, execute, termination").default("10000"),
    Field::new("tls", "TLS", K::Tls, "IEC 62351-3: CA, certificate and key files"),
];

pub const POINT_FIELDS: &[Field] = &[
    Field::new("ca", "Common address", K::Integer, "When not the device's").range(1.0, 65534.0),
    Field::new("ioa", "IOA", K::Integer, "Information object address").required().range(0.0, 16777215.0),
    Field::new("type", "Type", K::Choice, "The information type (with or without time tag)")
        .required()
        .choices(&["M_SP", "M_DP", "M_ST", "M_BO", "M_ME_NA", "M_ME_NB", "M_ME_NC", "M_IT"])
        .aliases(&[
            ("M_SP_NA_1", "M_SP"),
            ("M_SP_TB_1", "M_SP"),
            ("M_DP_NA_1", "M_DP"),
            ("M_DP_TB_1", "M_DP"),
            ("M_ST_NA_1", "M_ST"),
            ("M_ST_TB_1", "M_ST"),
            ("M_BO_NA_1", "M_BO"),
            ("M_BO_TB_1", "M_BO"),
            ("M_ME_NA_1", "M_ME_NA"),
            ("M_ME_TD_1", "M_ME_NA"),
            ("M_ME_NB_1", "M_ME_NB"),
            ("M_ME_TE_1", "M_ME_NB"),
            ("M_ME_NC_1", "M_ME_NC"),
            ("M_ME_TF_1", "M_ME_NC"),
            ("M_IT_NA_1", "M_IT"),
            ("M_IT_TB_1", "M_IT"),
        ]),
    Field::new("command", "Command", K::Choice, "Makes the point writable with this command")
        .choices(&["C_SC", "C_DC", "C_RC", "C_SE_NA", "C_SE_NB", "C_SE_NC", "C_BO"])
        .aliases(&[
            ("C_SC_NA_1", "C_SC"),
            ("C_DC_NA_1", "C_DC"),
            ("C_RC_NA_1", "C_RC"),
            ("C_SE_NA_1", "C_SE_NA"),
            ("C_SE_NB_1", "C_SE_NB"),
            ("C_SE_NC_1", "C_SE_NC"),
            ("C_BO_NA_1", "C_BO"),
        ]),
    Field::new("command_ioa", "Command IOA", K::Integer, "When commands go to another IOA").range(0.0, 16777215.0),
    Field::new("select_before_operate", "Select before operate", K::Bool, "Select, then execute").default("false"),
    Field::new("qualifier", "Qualifier", K::Integer, "QU: 0 default, 1 short, 2 long pulse, 3 persistent").default("0").range(0.0, 31.0),
];
