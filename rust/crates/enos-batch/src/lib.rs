//! What a sample is (value, quality, time) and the telemetry batch: one binary, columnar,
//! versioned encoding used on D-Bus and on disk.

pub mod batch;
pub mod calendar;
pub mod value;

pub use batch::{BatchBuilder, BatchError, DecodedBatch, Series};
pub use value::{Flags, Quality, Sample, Value};

/// Milliseconds since the Unix epoch, the timestamp unit of the whole product and of EnOS.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
