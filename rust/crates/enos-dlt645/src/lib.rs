//! DL/T 645-2007 master (meter reader): the frame codec ([`frame`]), data identifiers with their
//! formats ([`ident`], [`format`]) and a line client ([`line::Line`]) that reads meters on a
//! serial line or through a serial device server over TCP. See `docs/protocols/dlt645.md`.

pub mod error;
pub mod format;
pub mod frame;
pub mod ident;
pub mod line;

pub use error::Error;
pub use format::{Date, Format, Reading, TimeOfDay};
pub use frame::{Address, FieldOrder};
pub use ident::{Identifier, Point};
pub use line::{Counters, Line, LineConfig, Link, Meter, Parity, Serial};
