//! The EnOS device MQTT protocol as a gateway speaks it (docs/cloud-protocol.md):
//! the CONNECT sign, topics, request/reply envelopes, telemetry payloads built from cached
//! batches, and parsing of cloud commands. No I/O here: the uplink owns the session.

pub mod codes;
pub mod command;
pub mod monitor;
pub mod requests;
pub mod sign;
pub mod subdevices;
pub mod telemetry;
pub mod topics;
pub mod tsl;

use serde::{Deserialize, Serialize};

/// Keys and secret of one EnOS device (the gateway or a sub-device).
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub product_key: String,
    pub device_key: String,
    pub secret: String,
}

/// A reply from the cloud to one of our requests, or ours to a cloud command.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Reply {
    pub id: String,
    pub code: i64,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Reply {
    pub fn parse(payload: &[u8]) -> Option<Reply> {
        serde_json::from_slice(payload).ok()
    }
}

/// `{"id":..,"version":"1.0","method":..,"params":..}` as bytes.
pub fn request(id: u64, method: &str, params: serde_json::Value) -> Vec<u8> {
    request_version(id, method, "1.0", params)
}

/// A request of a method whose version is not 1.0 (`thing.device.register` is 1.1).
pub fn request_version(id: u64, method: &str, version: &str, params: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"id": id.to_string(), "version": version, "method": method, "params": params})).expect("json")
}

pub fn reply(id: &str, code: i64, message: &str, data: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&Reply { id: id.into(), code, message: message.into(), data }).expect("json")
}
