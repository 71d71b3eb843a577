//! Values and their quality.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A decoded field value. Integers stay integers so that 64-bit counters survive exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    /// No value: the read failed; the sample's quality says why.
    Null,
}

impl Value {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Int(i) => Some(*i as f64),
            Value::UInt(u) => Some(*u as f64),
            Value::Float(f) => Some(*f),
            Value::Str(_) | Value::Null => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::UInt(u) => write!(f, "{u}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Null => write!(f, "null"),
        }
    }
}

/// Why a sample is (or is not) trustworthy. The distinction between "the device said no" and
/// "the link broke" is kept all the way to the cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
#[repr(u8)]
pub enum Quality {
    Good = 0,
    /// The device answered with a protocol exception (e.g. Modbus illegal data address).
    DeviceException = 1,
    /// No answer: timeout, connection refused or broken.
    CommFailure = 2,
    /// The device answered, but the answer could not be decoded as configured.
    DecodeError = 3,
    /// The device is marked offline and was not polled this cycle.
    Offline = 4,
    /// The device itself marks the value invalid (IEC 104 IV, DNP3 not online, ...); `Flags`
    /// say how.
    Invalid = 5,
    /// The device flags the value as questionable (not topical, substituted, blocked, overflow,
    /// ...); `Flags` say how.
    Doubtful = 6,
}

impl Quality {
    pub fn from_u8(v: u8) -> Option<Quality> {
        Some(match v {
            0 => Quality::Good,
            1 => Quality::DeviceException,
            2 => Quality::CommFailure,
            3 => Quality::DecodeError,
            4 => Quality::Offline,
            5 => Quality::Invalid,
            6 => Quality::Doubtful,
            _ => return None,
        })
    }
    pub fn is_good(self) -> bool {
        self == Quality::Good
    }
    /// The word people and JSON see (`decode-error`).
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Good => "good",
            Quality::DeviceException => "device-exception",
            Quality::CommFailure => "comm-failure",
            Quality::DecodeError => "decode-error",
            Quality::Offline => "offline",
            Quality::Invalid => "invalid",
            Quality::Doubtful => "doubtful",
        }
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The raw quality flags a device sent with a value, in one vocabulary for every protocol (each
/// driver maps its protocol's bits here). They travel with the sample to the cache, the cloud
/// (in the quality code's upper bits) and the web center, so people can see why a value is
/// doubtful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Flags(pub u16);

impl Flags {
    pub const NONE: Flags = Flags(0);
    /// The value is invalid (IEC 104 IV).
    pub const INVALID: Flags = Flags(1);
    /// Not updated successfully at the last refresh (IEC 104 NT).
    pub const NOT_TOPICAL: Flags = Flags(1 << 1);
    /// Set by an operator or an automatic source, not acquired (IEC 104 SB).
    pub const SUBSTITUTED: Flags = Flags(1 << 2);
    /// Blocked for transmission (IEC 104 BL).
    pub const BLOCKED: Flags = Flags(1 << 3);
    /// Beyond the measuring range (IEC 104 OV, DNP3 over-range).
    pub const OVERFLOW: Flags = Flags(1 << 4);
    /// A counter wrapped since the last reading (IEC 104 CY, DNP3 rollover).
    pub const CARRY: Flags = Flags(1 << 5);
    /// A counter was adjusted since the last reading (IEC 104 CA).
    pub const ADJUSTED: Flags = Flags(1 << 6);
    /// The device's time tag is invalid (IEC 104 CP56Time2a IV).
    pub const TIME_INVALID: Flags = Flags(1 << 7);
    /// The device restarted (DNP3 RESTART).
    pub const RESTART: Flags = Flags(1 << 8);
    /// The device lost its own source of the value (DNP3 COMM_LOST).
    pub const SOURCE_LOST: Flags = Flags(1 << 9);
    /// Forced at the device or remotely (DNP3 LOCAL/REMOTE_FORCED).
    pub const FORCED: Flags = Flags(1 << 10);
    /// The first value after a break in which changes may have been lost (OPC UA: the server
    /// lost the session or no longer had what it sent): the current value, not every change.
    pub const AFTER_GAP: Flags = Flags(1 << 11);
    /// The gateway's clock was not set when the value was stamped (no time synchronisation yet,
    /// no battery-backed clock to believe): its time is the gateway's guess. Set by the
    /// collector for every value, whatever its source; such data is never dropped for its age.
    pub const CLOCK_UNSET: Flags = Flags(1 << 12);

    const NAMES: [(Flags, &'static str); 13] = [
        (Flags::INVALID, "invalid"),
        (Flags::NOT_TOPICAL, "not topical"),
        (Flags::SUBSTITUTED, "substituted"),
        (Flags::BLOCKED, "blocked"),
        (Flags::OVERFLOW, "overflow"),
        (Flags::CARRY, "carry"),
        (Flags::ADJUSTED, "adjusted"),
        (Flags::TIME_INVALID, "time invalid"),
        (Flags::RESTART, "restarted"),
        (Flags::SOURCE_LOST, "source lost"),
        (Flags::FORCED, "forced"),
        (Flags::AFTER_GAP, "after a gap"),
        (Flags::CLOCK_UNSET, "gateway clock unset"),
    ];

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn contains(self, f: Flags) -> bool {
        self.0 & f.0 == f.0
    }
    /// The set flags in words, in a fixed order.
    pub fn names(self) -> Vec<&'static str> {
        Flags::NAMES.iter().filter(|(f, _)| self.contains(*f)).map(|(_, n)| *n).collect()
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, o: Flags) -> Flags {
        Flags(self.0 | o.0)
    }
}

impl std::ops::BitOrAssign for Flags {
    fn bitor_assign(&mut self, o: Flags) {
        self.0 |= o.0
    }
}

/// One point's value at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub device: String,
    pub point: String,
    pub ts_ms: u64,
    pub value: Value,
    pub quality: Quality,
}

#[cfg(test)]
mod tests {
    use super::Quality;

    #[test]
    fn quality_words_match_the_json_names() {
        for v in 0..=6 {
            let q = Quality::from_u8(v).unwrap();
            assert_eq!(serde_json::to_string(&q).unwrap(), format!("\"{q}\""));
        }
    }
}
