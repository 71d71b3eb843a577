//! DL/T 645-2007 energy meters on an RS-485 line or behind a serial device server (TCP,
//! transparent mode). Points by data identifier.

use crate::fields::{Field, FieldKind as K, POINT_GROUP, POLL_GROUPS};
use crate::line::{check_groups, check_host_port, default_group, default_groups, PollGroup, SerialConfig};
use crate::point::{Access, Point, PointAddress, PointMeta};
use enos_config::{Findings, Scope};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub type Dlt645Point = Point<Dlt645Address>;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Dlt645Device {
    /// `host:port` of a serial device server; or `serial` for a line on this box.
    #[serde(default)]
    pub address: Option<String>,
    /// The line (DL/T 645 meters usually run 2400 baud, even parity).
    #[serde(default)]
    pub serial: Option<SerialConfig>,
    /// The meter's address as printed on it: 12 decimal digits.
    pub meter: String,
    /// `standard` sends the address low byte first, as the standard says; `as-written` in the
    /// order printed (some meters and simulators).
    #[serde(default)]
    pub address_order: AddressOrder,
    /// Wake-up bytes (FE) sent before each frame.
    #[serde(default = "d_preamble")]
    pub preamble: u8,
    #[serde(default = "d_timeout")]
    pub timeout_ms: u64,
    #[serde(default = "d_retries")]
    pub retries: u32,
    /// Consecutive failed poll cycles before the meter is marked offline.
    #[serde(default = "d_offline_after")]
    pub offline_after: u32,
    /// Broadcast the time to the line this often (0: never).
    #[serde(default)]
    pub time_sync_interval_s: u64,
    #[serde(default = "default_groups")]
    pub poll_groups: Vec<PollGroup>,
    #[serde(default, rename = "point")]
    pub points: Vec<Dlt645Point>,
}
fn d_preamble() -> u8 {
    4
}
fn d_timeout() -> u64 {
    2000
}
fn d_retries() -> u32 {
    1
}
fn d_offline_after() -> u32 {
    3
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AddressOrder {
    #[default]
    Standard,
    AsWritten,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Dlt645Address {
    /// The data identifier, 8 hex digits as the standard writes it (`02010100`: voltage A).
    pub di: DataId,
    /// The value's format where the identifier is not one the gateway knows, or to override it:
    /// `XXX.X` (digits and decimals), a leading `-` for signed BCD (sign in the top bit).
    /// Shared: the meters of a site repeat the same few.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Arc<str>>,
    #[serde(default = "default_group")]
    pub group: Arc<str>,
}

/// A data identifier as configured: parsed when it is one, else kept as written so that
/// validation can name it. Parsed, a point holds 16 bytes and no text of its own: a site
/// configures 100,000 points and more.
#[derive(Clone, PartialEq, Eq)]
pub enum DataId {
    Id(enos_dlt645::Identifier),
    Invalid(Box<str>),
}

impl DataId {
    pub fn parse(text: &str) -> DataId {
        match enos_dlt645::Identifier::parse(text) {
            Ok(id) => DataId::Id(id),
            Err(_) => DataId::Invalid(text.into()),
        }
    }
}

impl std::fmt::Display for DataId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataId::Id(id) => id.fmt(f),
            DataId::Invalid(text) => f.write_str(text),
        }
    }
}

impl std::fmt::Debug for DataId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl Serialize for DataId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DataId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DataId, D::Error> {
        // Borrowed where the format allows, else owned: either way no text is kept for a valid one.
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        Ok(DataId::parse(&text))
    }
}

impl Dlt645Address {
    /// The identifier, when it is one (validation refuses the others).
    pub fn identifier(&self) -> Option<enos_dlt645::Identifier> {
        match self.di {
            DataId::Id(id) => Some(id),
            DataId::Invalid(_) => None,
        }
    }

    /// What to read and how to decode it; an error in words when the identifier or format is
    /// not one (validation refuses both, so the driver's check is a guard).
    pub fn point(&self) -> Result<enos_dlt645::Point, String> {
        match self.identifier() {
            Some(id) => enos_dlt645::Point::configured(id, self.format.as_deref()),
            None => Err(format!("\"{}\" is not a data identifier (8 hex digits, e.g. 02010100)", self.di)),
        }
    }
}

/// Checks a `format` such as `XXX.X`, `-XX.XXXX`, `YYMMDDWW` or `hhmmss`, with the meter
/// reader's own parser (`enos_dlt645::Format`), so what passes here decodes there.
pub fn format_finding(f: &str) -> Option<String> {
    let unsigned = f.strip_prefix('-');
    enos_dlt645::Format::parse(unsigned.unwrap_or(f), unsigned.is_some()).err()
}

impl PointAddress for Dlt645Address {
    fn share_strings(&mut self, pool: &mut crate::point::StringPool) {
        pool.share(&mut self.group);
        if let Some(f) = &mut self.format {
            pool.share(f);
        }
    }

    fn check(&self, meta: &PointMeta, at: &Scope, out: &mut Findings) {
        if let DataId::Invalid(text) = &self.di {
            out.add(at, "di", format!("\"{text}\" is not a data identifier (8 hex digits, e.g. 02010100)"));
        }
        if let Some(reason) = self.format.as_deref().and_then(format_finding) {
            out.add(at, "format", reason);
        }
        // An identifier the meter reader does not know needs its format.
        if let (Some(id), None) = (self.identifier(), &self.format) {
            if let Err(reason) = enos_dlt645::Point::configured(id, None) {
                out.add(at, "format", reason);
            }
        }
        if meta.access == Access::Rw {
            out.add(at, "access", "the gateway reads DL/T 645 meters; writing to them is not supported");
        }
    }
}

impl Dlt645Device {
    pub fn check(&self, at: &Scope, out: &mut Findings) {
        match (&self.address, &self.serial) {
            (Some(_), Some(_)) => {
                out.add(at, "serial", "give either address (a serial device server) or serial (a line on this box), not both")
            }
            (None, None) => out.add(at, "address", "required: address (host:port of a serial device server) or serial"),
            (Some(a), None) => check_host_port(Some(a), at, out, "address"),
            (None, Some(s)) => s.check(at, out),
        }
        if self.meter.len() != 12 || !self.meter.bytes().all(|b| b.is_ascii_digit()) {
            out.add(at, "meter", format!("\"{}\" is not a meter address (12 digits as printed on the meter)", self.meter));
        }
        if self.preamble > 4 {
            out.add(at, "preamble", "at most 4 wake-up bytes");
        }
        if self.timeout_ms == 0 || self.timeout_ms > 60_000 {
            out.add(at, "timeout_ms", "must be 1-60000");
        }
        let groups = check_groups(&self.poll_groups, at, out);
        for (i, p) in self.points.iter().enumerate() {
            if !groups.contains(&*p.at.group) {
                out.add(&at.point(i, p.name()), "group", format!("no poll group {:?} on this device", p.at.group));
            }
        }
    }

    pub fn point(&self, name: &str) -> Option<&Dlt645Point> {
        self.points.iter().find(|p| *p.meta.name == *name)
    }
}

pub const DEVICE_FIELDS: &[Field] = &[
    Field::new("meter", "Meter address", K::Text, "12 digits as printed on the meter").required(),
    Field::new("address", "Address", K::Text, "host:port of a serial device server (transparent mode)"),
    Field::new("serial", "Serial line", K::Serial, "An RS-485 port on this box (usually 2400 baud, even parity)"),
    Field::new("address_order", "Address byte order", K::Choice, "standard: low byte first")
        .choices(&["standard", "as-written"])
        .default("standard"),
    Field::new("preamble", "Wake-up bytes", K::Integer, "FE bytes before each frame").default("4").range(0.0, 4.0),
    Field::new("timeout_ms", "Timeout (ms)", K::Integer, "Wait for an answer this long").default("2000").range(1.0, 60000.0),
    Field::new("retries", "Retries", K::Integer, "Extra attempts after a timeout").default("1").range(0.0, 10.0),
    Field::new("offline_after", "Offline after", K::Integer, "Failed poll cycles before offline").default("3"),
    Field::new("time_sync_interval_s", "Broadcast time every (s)", K::Integer, "0: never").default("0"),
    POLL_GROUPS,
];

pub const POINT_FIELDS: &[Field] = &[
    Field::new("di", "Data identifier", K::Text, "8 hex digits, e.g. 02010100 (voltage A)").required(),
    Field::new("format", "Format", K::Text, "e.g. XXX.X; -XX.XXXX for signed; empty for known identifiers"),
    POINT_GROUP,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProtocolConfig;

    fn device(points: &str) -> crate::DeviceConfig {
        let text = format!("id = \"m\"\nprotocol = \"dlt645\"\naddress = \"127.0.0.1:8899\"\nmeter = \"000000000001\"\n{points}");
        toml::from_str(&text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn findings(cfg: &crate::DeviceConfig) -> Vec<String> {
        let mut out = Findings::default();
        cfg.check(&Scope::root().device(0, "m"), &mut out);
        out.0.iter().map(|f| f.to_string()).collect()
    }

    #[test]
    fn an_identifier_is_kept_parsed_and_written_back_as_its_eight_digits() {
        assert_eq!(std::mem::size_of::<Dlt645Point>(), 120, "the per-point cost docs/protocols/dlt645.md (Memory) counts");
        let cfg = device("[[point]]\nname = \"Ua\"\ndi = \"0201ff00\"\nformat = \"XXX.X\"\n[[point]]\nname = \"E\"\ndi = \"00000000\"");
        let ProtocolConfig::Dlt645(d) = &cfg.proto else { panic!("not DL/T 645") };
        assert_eq!(d.points[0].at.di, DataId::Id(enos_dlt645::Identifier(0x0201FF00)));
        assert_eq!(d.points[0].at.point().unwrap().format, enos_dlt645::Format::Number { digits: 4, decimals: 1, signed: false });
        assert_eq!(findings(&cfg), Vec::<String>::new());
        let back = serde_json::to_value(&d.points[0]).unwrap();
        assert_eq!((back["di"].as_str(), back["format"].as_str()), (Some("0201FF00"), Some("XXX.X")));
        assert!(back.get("format").is_some() && serde_json::to_value(&d.points[1]).unwrap().get("format").is_none());
    }

    #[test]
    fn a_bad_identifier_is_named_by_validation_as_written() {
        let cfg = device("[[point]]\nname = \"Ua\"\ndi = \"0201010G\"\n[[point]]\nname = \"X\"\ndi = \"02990100\"");
        let f = findings(&cfg);
        assert_eq!(f.len(), 2, "{f:#?}");
        assert!(f[0].contains("point \"Ua\"") && f[0].contains("di") && f[0].contains("\"0201010G\" is not a data identifier"), "{}", f[0]);
        assert!(f[1].contains("point \"X\"") && f[1].contains("format") && f[1].contains("give its format"), "{}", f[1]);
        let ProtocolConfig::Dlt645(d) = &cfg.proto else { panic!("not DL/T 645") };
        assert!(d.points[0].at.point().unwrap_err().contains("\"0201010G\" is not a data identifier"));
        assert_eq!(serde_json::to_value(&d.points[0]).unwrap()["di"], "0201010G", "kept as written");
    }
}
