//! The collector's configuration: devices of every protocol, their connections, poll groups and
//! points, CSV point tables, and their validation. The web center and `enosctl` edit the same
//! types over D-Bus.

mod collector;
mod device;
pub mod dlt645;
pub mod dnp3;
mod doc;
pub mod fields;
pub mod iec104;
pub mod line;
pub mod modbus;
pub mod opcua;
pub mod plugin;
pub mod point;
pub mod points_csv;
pub mod protocols;

pub use collector::*;
pub use device::*;
pub use point::{Access, Point, PointMeta, Range};
