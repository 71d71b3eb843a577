//! DL/T 645-2007 master (meter reader): the frame codec ([`frame`]), data identifiers with their
//! formats ([`ident`], [`format`]) and a line client ([`line::Line`]) that reads meters on a
//! serial line or through a serial device server over TCP. See `docs/protocols/dlt645.md`.

pub mod error;
pub mod format;
pub mod frame;
pub mod ident;
#[cfg(feature = "line")]
pub mod line;

pub use error::Error;
pub use format::{Date, Format, Reading, TimeOfDay};
pub use frame::{Address, FieldOrder};
pub use ident::{Identifier, Point};
#[cfg(feature = "line")]
pub use line::{Counters, Exchange, Line, LineConfig, Link, Meter, Parity, Serial, Timing};

#[cfg(all(test, feature = "line"))]
mod tests {
    /// The engine runs reads in spawned tasks: a line is shared between them and its futures move
    /// between threads.
    #[test]
    fn a_line_and_its_futures_are_send_and_sync() {
        fn send<T: Send>(_: &T) {}
        fn sync<T: Sync>() {}
        sync::<crate::Line>();
        let line = crate::Line::new(crate::LineConfig::new(crate::Link::Tcp("127.0.0.1:9".into())));
        let meter = crate::Meter { address: crate::Address::WILDCARD, order: crate::FieldOrder::LowFirst };
        let point = crate::Point::new("02010100", None, None).unwrap();
        send(&line.read(&meter, &point));
        send(&line.read_counted(&meter, &point));
        send(&line.read_address(crate::FieldOrder::LowFirst));
        let (d, t) = (crate::Date { year: 2026, month: 1, day: 1, weekday: None }, crate::TimeOfDay { hour: 0, minute: 0, second: 0 });
        send(&line.broadcast_time(d, t, crate::FieldOrder::LowFirst));
    }
}
