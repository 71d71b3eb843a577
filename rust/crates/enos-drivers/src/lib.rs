//! Field-protocol drivers behind one trait.
//!
//! A driver owns the connections to a set of devices and runs as one task. It is handed a
//! [`DriverContext`]: a sink for samples, a board for device state, and a queue of commands
//! (on-demand reads and writes). The same shape fits both kinds of protocol the product needs:
//! polled ones (Modbus: the driver schedules its own polls) and spontaneous ones (IEC 60870-5-104,
//! DNP3 unsolicited responses, OPC UA subscriptions: the driver forwards what arrives). The
//! engine above never knows which kind it runs.

pub mod dlt645;
pub mod dnp3;
pub mod iec104;
pub mod modbus;
mod on_demand;
pub mod opcua;
pub mod plugin;
pub mod registry;

use enos_batch::{Flags, Quality, Value};
use enos_model::device::{DeviceStatus, PointReading, WriteOutcome};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Samples of one device taken at one instant (one poll of a group, or one spontaneous report).
/// `ts_ms` is the device's own time tag when the protocol sent one, else the acquisition time.
#[derive(Debug, Clone)]
pub struct Frame {
    pub device: Arc<str>,
    pub ts_ms: u64,
    /// Point, value, quality and the raw quality flags the device sent with it.
    pub samples: Vec<(Arc<str>, Value, Quality, Flags)>,
}

/// A request from outside the driver (D-Bus, cloud commands, the web center).
pub enum Command {
    Read {
        device: String,
        points: Vec<String>,
        reply: oneshot::Sender<Result<Vec<PointReading>, String>>,
    },
    Write {
        device: String,
        point: String,
        value: serde_json::Value,
        reply: oneshot::Sender<WriteOutcome>,
    },
    /// The communication test (`enos_model::comm_test`: each protocol its kind); the answer
    /// says any failure of the device, `Err` a request this driver cannot run.
    RawRead {
        device: String,
        request: enos_model::comm_test::CommTest,
        reply: oneshot::Sender<Result<enos_model::comm_test::CommAnswer, String>>,
    },
}

/// A device changed state; the engine turns these into D-Bus signals.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceEvent {
    pub device: String,
    pub state: String,
    pub reason: String,
}

/// Shared, always-current state of every device, read by D-Bus calls without asking drivers.
#[derive(Default)]
pub struct StatusBoard {
    inner: Mutex<HashMap<String, DeviceStatus>>,
}

impl StatusBoard {
    pub fn set(&self, s: DeviceStatus) {
        self.inner.lock().expect("status board").insert(s.id.clone(), s);
    }
    pub fn update(&self, id: &str, f: impl FnOnce(&mut DeviceStatus)) {
        if let Some(s) = self.inner.lock().expect("status board").get_mut(id) {
            f(s)
        }
    }
    pub fn all(&self) -> Vec<DeviceStatus> {
        let mut v: Vec<_> = self.inner.lock().expect("status board").values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }
}

pub struct DriverContext {
    pub frames: mpsc::Sender<Frame>,
    pub events: mpsc::UnboundedSender<DeviceEvent>,
    pub status: Arc<StatusBoard>,
    pub commands: mpsc::Receiver<Command>,
}

/// A running driver. It runs until dropped; if it ends, its output says why, in words (the
/// engine restarts it and shows the reason in its devices' state).
pub type DriverFuture = Pin<Box<dyn Future<Output = String> + Send>>;

/// One protocol implementation serving one or more devices.
pub trait Driver: Send {
    /// The devices this instance serves (commands for them are routed here).
    fn devices(&self) -> Vec<String>;
    /// Runs until the task is dropped.
    fn run(self: Box<Self>, ctx: DriverContext) -> DriverFuture;
}

/// One device's protocol settings inside the engine's shared device list: a driver reads its
/// devices' points there instead of keeping a copy (a configured point is held once).
pub struct SharedDevice<T: 'static> {
    all: Arc<[enos_collector_config::DeviceConfig]>,
    index: usize,
    pick: fn(&enos_collector_config::ProtocolConfig) -> Option<&T>,
}

impl<T> SharedDevice<T> {
    /// `None` when device `index` is not of the kind `pick` takes.
    pub fn new(
        all: &Arc<[enos_collector_config::DeviceConfig]>,
        index: usize,
        pick: fn(&enos_collector_config::ProtocolConfig) -> Option<&T>,
    ) -> Option<Self> {
        pick(&all.get(index)?.proto)?;
        Some(SharedDevice { all: all.clone(), index, pick })
    }
}

impl<T> Clone for SharedDevice<T> {
    fn clone(&self) -> Self {
        SharedDevice { all: self.all.clone(), index: self.index, pick: self.pick }
    }
}

impl<T> std::ops::Deref for SharedDevice<T> {
    type Target = T;
    fn deref(&self) -> &T {
        (self.pick)(&self.all[self.index].proto).expect("checked in SharedDevice::new")
    }
}

/// The message of a panic payload (a task that panicked), for people.
pub fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    match p.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => p.downcast_ref::<&str>().map(|s| s.to_string()).unwrap_or_else(|| "a panic without a message".into()),
    }
}
