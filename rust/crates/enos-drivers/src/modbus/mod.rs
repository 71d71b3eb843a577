//! Modbus TCP, RTU on a serial line, and RTU over TCP.
//!
//! Devices that share an endpoint (a TCP gateway with several unit ids, or an RS-485 line) share
//! one driver instance and its connections. A connection carries one request at a time, so
//! `max_in_flight` is realised as that many connections to the endpoint (TCP only; a serial line
//! always has exactly one); validation makes the devices of an endpoint agree on it.

pub mod codec;
mod frame;
#[cfg(test)]
mod fuzz;
mod link;
pub mod plan;
mod poll;
mod raw;
pub(crate) mod transport;

pub use link::{Endpoint, ReqError};

use crate::{Driver, DriverContext, DriverFuture};
use enos_collector_config::modbus::{ModbusDevice, Transport};
use enos_collector_config::{DeviceConfig, Protocol};
use std::sync::Arc;

/// A Modbus device as the driver serves it: its entry in the shared device list.
#[derive(Debug, Clone)]
pub struct Unit {
    pub id: String,
    pub protocol: Protocol,
    all: Arc<[DeviceConfig]>,
    index: usize,
}

/// A unit is its Modbus settings with an id: the poll code reads them as the device's own.
impl std::ops::Deref for Unit {
    type Target = ModbusDevice;
    fn deref(&self) -> &ModbusDevice {
        self.all[self.index].proto.modbus().expect("a unit is made of Modbus devices only (ModbusDriver::new)").1
    }
}

pub struct ModbusDriver {
    endpoint: Endpoint,
    devices: Vec<Unit>,
}

impl ModbusDriver {
    /// The driver of devices sharing one endpoint; `None` when they are not Modbus devices or
    /// have no endpoint (validation refuses both).
    pub fn new(all: &Arc<[DeviceConfig]>) -> Option<Self> {
        let (transport, first) = all.first()?.proto.modbus()?;
        let endpoint = match transport {
            Transport::Tcp => Endpoint::Tcp(first.address.clone()?),
            Transport::RtuOverTcp => Endpoint::RtuOverTcp(first.address.clone()?),
            Transport::Rtu => Endpoint::Serial(first.serial.clone()?),
        };
        let devices = all
            .iter()
            .enumerate()
            .map(|(index, d)| d.proto.modbus().map(|_| Unit { id: d.id.clone(), protocol: d.protocol(), all: all.clone(), index }))
            .collect::<Option<Vec<_>>>()?;
        Some(ModbusDriver { endpoint, devices })
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
