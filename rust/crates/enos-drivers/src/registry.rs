//! The driver registry: which driver serves the devices of one endpoint. The configuration's
//! registry (`enos_collector_config::protocols`) holds each protocol's settings, point fields and
//! validation; this is the one place that maps a protocol to its driver.

use crate::dlt645::Dlt645Driver;
use crate::dnp3::Dnp3Driver;
use crate::iec104::Iec104Driver;
use crate::modbus::ModbusDriver;
use crate::opcua::OpcuaDriver;
use crate::plugin::PluginDriver;
use crate::Driver;
use enos_collector_config::{DeviceConfig, Protocol};
use std::sync::Arc;

/// The driver for devices that share one endpoint (the same `ProtocolConfig::endpoint` key,
/// hence one protocol family), or why there is none, in words. The driver keeps `devices`
/// (shared with the engine: one copy of the points however often the driver restarts).
pub fn driver(devices: &Arc<[DeviceConfig]>) -> Result<Box<dyn Driver>, String> {
    let first = devices.first().ok_or("no devices to serve")?;
    let none = || format!("device \"{}\": its {} settings name no endpoint", first.id, first.protocol());
    match first.protocol() {
        Protocol::ModbusTcp | Protocol::ModbusRtu | Protocol::ModbusRtuOverTcp => {
            Ok(Box::new(ModbusDriver::new(devices).ok_or_else(none)?))
        }
        Protocol::Iec104 => Ok(Box::new(Iec104Driver::new(devices).ok_or_else(none)?)),
        Protocol::Dlt645 => Ok(Box::new(Dlt645Driver::new(devices).ok_or_else(none)?)),
        Protocol::Dnp3 => Ok(Box::new(Dnp3Driver::new(devices).ok_or_else(none)?)),
        Protocol::Opcua => Ok(Box::new(OpcuaDriver::new(devices).ok_or_else(none)?)),
        Protocol::Plugin => Ok(Box::new(PluginDriver::new(devices).ok_or_else(none)?)),
    }
}
