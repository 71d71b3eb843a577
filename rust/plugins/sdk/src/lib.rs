//! The developer kit for EnOS Edge protocol drivers written as WebAssembly components.
//!
//! A driver implements [`Driver`] and names its type with [`plugin!`]; `scripts/plugin build`
//! compiles it for `wasm32-wasip2` and packs it with its `plugin.toml`. The host runs one
//! instance per device, so a driver's state is simply its `Driver` value.
//!
//! ```ignore
//! struct Meter { conn: enos_plugin_sdk::Connection }
//! impl enos_plugin_sdk::Driver for Meter { /* describe, init, poll */ }
//! enos_plugin_sdk::plugin!(Meter);
//! ```

#![allow(clippy::missing_safety_doc)]

wit_bindgen::generate!({
    path: "../../wit/enos-driver",
    world: "plugin",
    pub_export_macro: true,
    default_bindings_module: "enos_plugin_sdk",
});

pub use enos::driver::connections::{self, Handle, IoError};
pub use enos::driver::host::{self, Level};
pub use enos::driver::types::{
    CommandKind, CommandRequest as Command, Description, DeviceConfig, Event, PointConfig, Quality, Sample, Severity, Value,
};
pub use exports::enos::driver::driver::Guest;

use std::any::Any;
use std::cell::RefCell;
use std::fmt;

/// A protocol driver serving one device.
pub trait Driver: Sized + 'static {
    /// What the driver serves; called before `init` (also by `scripts/plugin` to check a build).
    fn describe() -> Description;
    /// Opens what the device needs; an error leaves the device failed with these words.
    fn init(config: DeviceConfig) -> Result<Self, String>;
    /// Reads the device's points and [`emit`]s them.
    fn poll(&mut self, now_ms: u64) -> Result<(), String>;
    /// Bytes that arrived on `h` while no call ran.
    fn on_data(&mut self, _h: Handle, _data: Vec<u8>) -> Result<(), String> {
        Ok(())
    }
    fn command(&mut self, _cmd: Command) -> Result<String, String> {
        Err("this driver takes no commands".into())
    }
    fn shutdown(&mut self) {}
}

thread_local! {
    static STATE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

fn with<T: Driver, R>(f: impl FnOnce(&mut T) -> Result<R, String>) -> Result<R, String> {
    STATE.with(|s| match s.borrow_mut().as_mut().and_then(|b| b.downcast_mut::<T>()) {
        Some(d) => f(d),
        None => Err("the driver was not initialised".into()),
    })
}

/// The glue [`plugin!`] expands to; not for drivers to call.
#[doc(hidden)]
pub mod glue {
    use super::*;

    pub fn init<T: Driver>(config: DeviceConfig) -> Result<(), String> {
        // A panic becomes a trap; say first why, so the device's state shows the message.
        std::panic::set_hook(Box::new(|info| host::log(Level::Error, &format!("panic: {info}"))));
        let d = T::init(config)?;
        STATE.with(|s| *s.borrow_mut() = Some(Box::new(d)));
        Ok(())
    }
    pub fn poll<T: Driver>(now_ms: u64) -> Result<(), String> {
        with::<T, _>(|d| d.poll(now_ms))
    }
    pub fn on_data<T: Driver>(h: Handle, data: Vec<u8>) -> Result<(), String> {
        with::<T, _>(|d| d.on_data(h, data))
    }
    pub fn command<T: Driver>(cmd: Command) -> Result<String, String> {
        with::<T, _>(|d| d.command(cmd))
    }
    pub fn shutdown<T: Driver>() {
        let _ = with::<T, _>(|d| {
            d.shutdown();
            Ok(())
        });
        STATE.with(|s| *s.borrow_mut() = None);
    }
}

/// Exports `$t` (a [`Driver`]) as this component's driver.
#[macro_export]
macro_rules! plugin {
    ($t:ty) => {
        struct __EnosPlugin;
        impl $crate::Guest for __EnosPlugin {
            fn describe() -> $crate::Description {
                <$t as $crate::Driver>::describe()
            }
            fn init(config: $crate::DeviceConfig) -> Result<(), String> {
                $crate::glue::init::<$t>(config)
            }
            fn poll(now_ms: u64) -> Result<(), String> {
                $crate::glue::poll::<$t>(now_ms)
            }
            fn on_data(h: $crate::Handle, data: Vec<u8>) -> Result<(), String> {
                $crate::glue::on_data::<$t>(h, data)
            }
            fn command(cmd: $crate::Command) -> Result<String, String> {
                $crate::glue::command::<$t>(cmd)
            }
            fn shutdown() {
                $crate::glue::shutdown::<$t>()
            }
        }
        $crate::export!(__EnosPlugin with_types_in $crate);
    };
}

/// Writes to the collector's log (rate-limited by the host).
pub fn log(level: Level, message: impl AsRef<str>) {
    host::log(level, message.as_ref())
}

pub fn now_ms() -> u64 {
    host::now_ms()
}

pub fn emit(samples: &[Sample]) {
    host::emit(samples)
}

/// A connection's error, said in words (the generated `IoError`'s own display is for debugging).
#[derive(Debug, Clone)]
pub struct ConnError(pub IoError);

impl From<IoError> for ConnError {
    fn from(e: IoError) -> Self {
        ConnError(e)
    }
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            IoError::NotPermitted(e) => write!(f, "not permitted: {e}"),
            IoError::Unavailable(e) => write!(f, "unavailable: {e}"),
            IoError::TimedOut => f.write_str("timed out"),
            IoError::Closed => f.write_str("connection closed"),
        }
    }
}

/// An open connection to one of the device's endpoints; closed when dropped.
pub struct Connection(Handle);

impl Connection {
    /// Opens the endpoint the device configuration names `endpoint`.
    pub fn open(endpoint: &str) -> Result<Self, ConnError> {
        Ok(Connection(connections::open(endpoint)?))
    }
    pub fn handle(&self) -> Handle {
        self.0
    }
    pub fn write(&self, data: &[u8]) -> Result<(), ConnError> {
        Ok(connections::write(self.0, data)?)
    }
    /// Up to `max` bytes, waiting at most `deadline_ms` for them.
    pub fn read(&self, max: u32, deadline_ms: u32) -> Result<Vec<u8>, ConnError> {
        Ok(connections::read(self.0, max, deadline_ms)?)
    }
    /// Reads until `done` says the bytes so far are complete, or the deadline passes.
    pub fn read_until(&self, deadline_ms: u32, mut done: impl FnMut(&[u8]) -> bool) -> Result<Vec<u8>, ConnError> {
        let end = now_ms() + u64::from(deadline_ms);
        let mut buf = Vec::new();
        while !done(&buf) {
            let left = end.saturating_sub(now_ms());
            if left == 0 {
                return Err(IoError::TimedOut.into());
            }
            buf.extend(self.read(1024, left as u32)?);
        }
        Ok(buf)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        connections::close(self.0)
    }
}
