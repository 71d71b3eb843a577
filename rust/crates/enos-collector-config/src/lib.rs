//! The collector's configuration: devices, their connections, poll groups and points, CSV point
//! tables, and their validation. The web center and `enosctl` edit the same types over D-Bus.

mod collector;
pub mod points_csv;

pub use collector::*;
