//! Modbus TCP, RTU on a serial line, and RTU over TCP.
//!
//! Devices that share an endpoint (a TCP gateway with several unit ids, or an RS-485 line) share
//! one driver instance and its connections. A connection carries one request at a time, so
//! `max_in_flight` is realised as that many connections to the endpoint (TCP only; a serial line
//! always has exactly one); validation makes the devices of an endpoint agree on it.

pub mod codec;
mod frame;
mod link;
pub mod plan;
mod poll;
mod raw;
mod transport;

pub use link::{Endpoint, ReqError};

use crate::{Driver, DriverContext, DriverFuture};
use enos_collector_config::DeviceConfig;

pub struct ModbusDriver {
    endpoint: Endpoint,
    devices: Vec<DeviceConfig>,
}

impl ModbusDriver {
    pub fn new(endpoint: Endpoint, devices: Vec<DeviceConfig>) -> Self {
        ModbusDriver { endpoint, devices }
    }
}

impl Driver for ModbusDriver {
    fn devices(&self) -> Vec<String> {
        self.devices.iter().map(|d| d.id.clone()).collect()
    }
    fn run(self: Box<Self>, ctx: DriverContext) -> DriverFuture {
        Box::pin(poll::run(self.endpoint, self.devices, ctx))
    }
}
