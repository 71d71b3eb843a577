//! The raw-register communication test: a read of chosen registers or bits, answered with the
//! words as they came off the wire, decoded values, and failures in plain words.

use crate::Refused;
use enos_collector_config::modbus::{ByteOrder, DataType};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRead {
    /// Modbus function code: 1 coils, 2 discrete inputs, 3 holding registers, 4 input registers.
    pub function: u8,
    /// 0-based protocol address.
    pub address: u16,
    /// Registers (1-125) or bits (1-2000).
    pub count: u16,
    /// Unit id to ask (default: the device's).
    #[serde(default)]
    pub unit_id: Option<u8>,
    /// How to decode the words (default u16); the answer carries one value per `type`-sized step.
    #[serde(default, rename = "type")]
    pub data_type: Option<DataType>,
    #[serde(default)]
    pub order: Option<ByteOrder>,
}

impl RawRead {
    pub fn check(&self) -> Result<(), Refused> {
        let max = match self.function {
            1 | 2 => 2000,
            3 | 4 => 125,
            f => {
                return Err(Refused::field(
                    "function",
                    format!("{f} is not a read (use 1 coils, 2 discrete inputs, 3 holding registers, 4 input registers)"),
                ))
            }
        };
        if self.count == 0 || self.count > max {
            return Err(Refused::field("count", format!("must be 1-{max} for function {}", self.function)));
        }
        if self.address as u32 + self.count as u32 > 65536 {
            return Err(Refused::field("count", "the read runs past address 65535"));
        }
        if matches!(self.data_type, Some(DataType::Bool | DataType::Bit | DataType::String)) {
            return Err(Refused::field("type", "decode registers as u16, i16, u32, i32, u64, i64, f32 or f64"));
        }
        Ok(())
    }
}

/// One decoded value of a raw read, at `offset` registers from the start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawValue {
    pub offset: u16,
    pub address: u16,
    pub value: enos_batch::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RawAnswer {
    pub ok: bool,
    pub unit_id: u8,
    pub function: u8,
    pub address: u16,
    /// Register words as received (functions 3 and 4).
    #[serde(default)]
    pub words: Vec<u16>,
    /// Bits as received (functions 1 and 2).
    #[serde(default)]
    pub bits: Vec<bool>,
    #[serde(default)]
    pub values: Vec<RawValue>,
    /// `timeout`, `exception` or `link` when the read failed.
    #[serde(default)]
    pub failure: Option<String>,
    /// The Modbus exception code the device answered with.
    #[serde(default)]
    pub exception_code: Option<u8>,
    /// What went wrong and what to check, in plain words.
    #[serde(default)]
    pub message: String,
    pub took_ms: u64,
}
