//! Third-party protocol drivers as sandboxed WebAssembly components (`enos:driver@1.0.0`, the
//! WIT package in `rust/wit/enos-driver`).
//!
//! A plugin is a directory: `plugin.toml` ([`manifest`]) and its component. The [`Runtime`]
//! compiles it (cached per wasmtime version and settings); the [`supervisor`] runs one
//! [`Instance`] per device on a thread of its own, within its manifest's limits: memory (a
//! `ResourceLimiter`), a time budget per call (epoch interruption), connections only to the
//! endpoints its device names. A trap stops that instance only; it is started again after a
//! backoff and the reason is the device's state.

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/enos-driver",
        world: "plugin",
        additional_derives: [PartialEq],
    });
}

mod conn;
mod install;
mod instance;
mod kv;
mod log_budget;
pub mod manifest;
mod runtime;
pub mod schema;
pub mod supervisor;

pub use bindings::enos::driver::types::{CommandKind, CommandRequest, Description, Event, Quality, Sample, Severity, Value};
pub use conn::Endpoint;
pub use install::{install, plugins_dir};
pub use instance::{CallError, DeviceSpec, Instance};
pub use manifest::Manifest;
pub use runtime::{Execution, LoadError, Plugin, Runtime};
pub use supervisor::{DeviceState, Report, Request, Schedule};

impl Plugin {
    /// The device's settings checked against the manifest's schema, defaults filled in; or
    /// every finding in words.
    pub fn check_settings(&self, settings: &serde_json::Value) -> Result<serde_json::Value, Vec<String>> {
        self.schema.check(settings)
    }
}
