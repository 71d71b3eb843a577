//! DL/T 645-2007 meters (the `enos-dlt645` crate) on an RS-485 line or behind a serial device
//! server. The meters of one endpoint share one `Line`: one request at a time, whatever the
//! number of meters and poll groups.
//!
//! Each poll group of each meter is a task that reads its points one by one (DL/T 645 reads one
//! identifier per request) and hands them on as one frame with the cycle's time. A meter that
//! does not answer a point's read is not asked for the rest of that cycle: its timeouts would
//! hold the line for every other meter.

mod comm;
mod poll;

use crate::{Driver, DriverContext, DriverFuture, SharedDevice};
use enos_collector_config::dlt645::{AddressOrder, Dlt645Device};
use enos_collector_config::line::Parity;
use enos_collector_config::{DeviceConfig, ProtocolConfig};
use enos_dlt645 as dlt;
use std::sync::Arc;
use std::time::Duration;

/// A meter as the driver serves it: its settings, and its address and timing resolved once. Its
/// points are the configuration's, not copies: a site configures 100,000 and more.
pub(crate) struct MeterCfg {
    pub id: String,
    pub cfg: SharedDevice<Dlt645Device>,
    pub meter: dlt::Meter,
    pub timing: dlt::Timing,
}

pub struct Dlt645Driver {
    line: dlt::LineConfig,
    meters: Vec<MeterCfg>,
}

fn settings(p: &ProtocolConfig) -> Option<&Dlt645Device> {
    match p {
        ProtocolConfig::Dlt645(m) => Some(m),
        _ => None,
    }
}

impl Dlt645Driver {
    /// The driver of the meters of one endpoint; `None` when they are not DL/T 645 devices or
    /// name no endpoint (validation refuses both).
    pub fn new(devices: &Arc<[DeviceConfig]>) -> Option<Self> {
        let first = settings(&devices.first()?.proto)?;
        let link = match (&first.address, &first.serial) {
            (Some(a), _) => dlt::Link::Tcp(a.clone()),
            (None, Some(s)) => dlt::Link::Serial(dlt::Serial {
                port: s.port.clone(),
                baud: s.baud,
                parity: match s.parity {
                    Parity::None => dlt::Parity::None,
                    Parity::Even => dlt::Parity::Even,
                    Parity::Odd => dlt::Parity::Odd,
                },
                data_bits: s.data_bits,
                stop_bits: s.stop_bits,
            }),
            (None, None) => return None,
        };
        let mut line = dlt::LineConfig::new(link);
        line.preamble = first.preamble; // an endpoint setting: the devices agree (validated)
        let meters = devices
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let cfg = SharedDevice::new(devices, i, settings)?;
                let order = match cfg.address_order {
                    AddressOrder::Standard => dlt::FieldOrder::LowFirst,
                    AddressOrder::AsWritten => dlt::FieldOrder::AsWritten,
                };
                let meter = dlt::Meter { address: dlt::Address::parse(&cfg.meter).ok()?, order };
                let timing = dlt::Timing { timeout: Duration::from_millis(cfg.timeout_ms), retries: cfg.retries };
                Some(MeterCfg { id: d.id.clone(), cfg, meter, timing })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Dlt645Driver { line, meters })
    }
}

impl Driver for Dlt645Driver {
    fn devices(&self) -> Vec<String> {
        self.meters.iter().map(|m| m.id.clone()).collect()
    }
    fn run(self: Box<Self>, ctx: DriverContext) -> DriverFuture {
        Box::pin(poll::run(self.line, self.meters, ctx))
    }
}
