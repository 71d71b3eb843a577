//! The documents EnOS Edge's services exchange over D-Bus as JSON: device state and readings,
//! write outcomes, raw reads, the services' status, OTA jobs and the cloud settings.

pub mod cloud;
pub mod comm_test;
pub mod device;
pub mod raw_read;
pub mod refused;

pub use refused::Refused;
