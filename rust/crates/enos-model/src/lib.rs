//! The shared vocabulary of EnOS Edge.
//!
//! Everything two services must agree on lives here: what a sample is, how quality is expressed,
//! the configuration types (so `enosctl`, the web center and the services validate the same way)
//! and the compact binary telemetry batch that travels over D-Bus and rests in the cache.

pub mod batch;
pub mod cloud;
pub mod cloud_edit;
pub mod config;
pub mod config_edit;
pub mod device;
pub mod points_csv;
pub mod raw_read;
pub mod value;

pub use batch::{BatchBuilder, BatchError, DecodedBatch, Series};
pub use value::{Quality, Sample, Value};

/// Milliseconds since the Unix epoch, the timestamp unit of the whole product and of EnOS.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
