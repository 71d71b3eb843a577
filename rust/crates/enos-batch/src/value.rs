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
}

impl Quality {
    pub fn from_u8(v: u8) -> Option<Quality> {
        Some(match v {
            0 => Quality::Good,
            1 => Quality::DeviceException,
            2 => Quality::CommFailure,
            3 => Quality::DecodeError,
            4 => Quality::Offline,
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
        }
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
        for v in 0..=4 {
            let q = Quality::from_u8(v).unwrap();
            assert_eq!(serde_json::to_string(&q).unwrap(), format!("\"{q}\""));
        }
    }
}
