//! A device of any protocol: its id, whether it runs, and its protocol's settings and points.

use crate::dlt645::Dlt645Device;
use crate::dnp3::Dnp3Device;
use crate::doc;
use crate::iec104::Iec104Device;
use crate::modbus::{ModbusDevice, Transport};
use crate::opcua::OpcuaDevice;
use crate::plugin::PluginDevice;
use crate::point::{Point, PointAddress, PointMeta};
use enos_config::{Findings, Scope};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::HashSet;
use std::fmt;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeviceConfig {
    /// Stable id of the device on this gateway (used on D-Bus and mapped to EnOS keys by the uplink).
    pub id: String,
    pub enabled: bool,
    /// A CSV point table (relative to the config file's directory); its points are added to the
    /// device's points at load.
    #[serde(default)]
    pub points_csv: Option<String>,
    /// The EnOS product this device is registered under by the gateway (its cloud identity is
    /// the uplink's); none: the device is not registered (or the uplink names its keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_key: Option<String>,
    /// `protocol = "..."` and that protocol's settings and points, in the same table.
    #[serde(flatten)]
    pub proto: ProtocolConfig,
}

/// Read by key: the common keys, then `protocol`, then that protocol's settings from the rest of
/// the table (see `doc` for why not with serde's `flatten`). Errors name the device and the key.
impl<'de> Deserialize<'de> for DeviceConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut m = doc::table::<D::Error>(serde_json::Value::deserialize(d)?, "a device")?;
        let id = match m.remove("id") {
            Some(serde_json::Value::String(s)) => s,
            Some(_) => return Err(D::Error::custom("a device's id must be text")),
            None => return Err(D::Error::custom("a device needs an id")),
        };
        let fail = |e: String| D::Error::custom(format!("device \"{id}\": {e}"));
        let enabled = match m.remove("enabled") {
            None | Some(serde_json::Value::Null) => true,
            Some(serde_json::Value::Bool(b)) => b,
            Some(_) => return Err(fail("enabled: must be true or false".into())),
        };
        let points_csv = match m.remove("points_csv") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s),
            Some(_) => return Err(fail("points_csv: must be a file name".into())),
        };
        let product_key = match m.remove("product_key") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) if s.is_empty() => None,
            Some(serde_json::Value::String(s)) => Some(s),
            Some(_) => return Err(fail("product_key: must be text".into())),
        };
        let protocol = match m.remove("protocol") {
            Some(serde_json::Value::String(p)) => Protocol::ALL
                .into_iter()
                .find(|x| x.name() == p)
                .ok_or_else(|| fail(format!("protocol: \"{p}\" is not one of {}", Protocol::ALL.map(|p| p.name()).join(", "))))?,
            _ => return Err(fail(format!("protocol: required, one of {}", Protocol::ALL.map(|p| p.name()).join(", ")))),
        };
        let rest = serde_json::Value::Object(m);
        let proto = match protocol {
            Protocol::ModbusTcp => ProtocolConfig::ModbusTcp(doc::read(rest).map_err(fail)?),
            Protocol::ModbusRtu => ProtocolConfig::ModbusRtu(doc::read(rest).map_err(fail)?),
            Protocol::ModbusRtuOverTcp => ProtocolConfig::ModbusRtuOverTcp(doc::read(rest).map_err(fail)?),
            Protocol::Iec104 => ProtocolConfig::Iec104(doc::read(rest).map_err(fail)?),
            Protocol::Dlt645 => ProtocolConfig::Dlt645(doc::read(rest).map_err(fail)?),
            Protocol::Dnp3 => ProtocolConfig::Dnp3(doc::read(rest).map_err(fail)?),
            Protocol::Opcua => ProtocolConfig::Opcua(doc::read(rest).map_err(fail)?),
            Protocol::Plugin => ProtocolConfig::Plugin(doc::read(rest).map_err(fail)?),
        };
        Ok(DeviceConfig { id, enabled, points_csv, product_key, proto })
    }
}

/// The protocol of a device and its settings. The variant's name is the `protocol` key.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "protocol", rename_all = "kebab-case")]
pub enum ProtocolConfig {
    ModbusTcp(ModbusDevice),
    ModbusRtu(ModbusDevice),
    ModbusRtuOverTcp(ModbusDevice),
    Iec104(Iec104Device),
    Dlt645(Dlt645Device),
    Dnp3(Dnp3Device),
    Opcua(OpcuaDevice),
    /// Served by a protocol plugin (a WebAssembly component).
    Plugin(PluginDevice),
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    ModbusTcp,
    ModbusRtu,
    ModbusRtuOverTcp,
    Iec104,
    Dlt645,
    Dnp3,
    Opcua,
    Plugin,
}

impl Protocol {
    pub const ALL: [Protocol; 8] = [
        Protocol::ModbusTcp,
        Protocol::ModbusRtu,
        Protocol::ModbusRtuOverTcp,
        Protocol::Iec104,
        Protocol::Dlt645,
        Protocol::Dnp3,
        Protocol::Opcua,
        Protocol::Plugin,
    ];

    /// The name used in configuration files and shown to people.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::ModbusTcp => "modbus-tcp",
            Protocol::ModbusRtu => "modbus-rtu",
            Protocol::ModbusRtuOverTcp => "modbus-rtu-over-tcp",
            Protocol::Iec104 => "iec104",
            Protocol::Dlt645 => "dlt645",
            Protocol::Dnp3 => "dnp3",
            Protocol::Opcua => "opcua",
            Protocol::Plugin => "plugin",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The connection a device is served over. Devices with the same key share one driver and its
/// connections (an RS-485 line, a Modbus gateway, one IEC 104 station link), so they must agree
/// on `shared` settings.
pub struct Endpoint {
    pub key: String,
    /// Where, in words ("serial port /dev/ttyS1").
    pub place: String,
    pub shared: Vec<(&'static str, String)>,
}

impl ProtocolConfig {
    pub fn protocol(&self) -> Protocol {
        match self {
            ProtocolConfig::ModbusTcp(_) => Protocol::ModbusTcp,
            ProtocolConfig::ModbusRtu(_) => Protocol::ModbusRtu,
            ProtocolConfig::ModbusRtuOverTcp(_) => Protocol::ModbusRtuOverTcp,
            ProtocolConfig::Iec104(_) => Protocol::Iec104,
            ProtocolConfig::Dlt645(_) => Protocol::Dlt645,
            ProtocolConfig::Dnp3(_) => Protocol::Dnp3,
            ProtocolConfig::Opcua(_) => Protocol::Opcua,
            ProtocolConfig::Plugin(_) => Protocol::Plugin,
        }
    }

    /// The Modbus settings and transport, for Modbus devices.
    pub fn modbus(&self) -> Option<(Transport, &ModbusDevice)> {
        match self {
            ProtocolConfig::ModbusTcp(m) => Some((Transport::Tcp, m)),
            ProtocolConfig::ModbusRtu(m) => Some((Transport::Rtu, m)),
            ProtocolConfig::ModbusRtuOverTcp(m) => Some((Transport::RtuOverTcp, m)),
            _ => None,
        }
    }

    /// The common part of every point, in the table's order.
    pub fn points(&self) -> Vec<&PointMeta> {
        fn metas<A>(p: &[Point<A>]) -> Vec<&PointMeta> {
            p.iter().map(|p| &p.meta).collect()
        }
        match self {
            ProtocolConfig::ModbusTcp(m) | ProtocolConfig::ModbusRtu(m) | ProtocolConfig::ModbusRtuOverTcp(m) => metas(&m.points),
            ProtocolConfig::Iec104(d) => metas(&d.points),
            ProtocolConfig::Dlt645(d) => metas(&d.points),
            ProtocolConfig::Dnp3(d) => metas(&d.points),
            ProtocolConfig::Opcua(d) => metas(&d.points),
            ProtocolConfig::Plugin(d) => metas(&d.points),
        }
    }

    pub fn point_count(&self) -> usize {
        match self {
            ProtocolConfig::ModbusTcp(m) | ProtocolConfig::ModbusRtu(m) | ProtocolConfig::ModbusRtuOverTcp(m) => m.points.len(),
            ProtocolConfig::Iec104(d) => d.points.len(),
            ProtocolConfig::Dlt645(d) => d.points.len(),
            ProtocolConfig::Dnp3(d) => d.points.len(),
            ProtocolConfig::Opcua(d) => d.points.len(),
            ProtocolConfig::Plugin(d) => d.points.len(),
        }
    }

    /// The points as JSON documents (the point grid, CSV export).
    pub fn points_json(&self) -> Vec<serde_json::Value> {
        fn json<A: Serialize>(p: &[Point<A>]) -> Vec<serde_json::Value> {
            p.iter().map(|p| serde_json::to_value(p).unwrap_or_default()).collect()
        }
        match self {
            ProtocolConfig::ModbusTcp(m) | ProtocolConfig::ModbusRtu(m) | ProtocolConfig::ModbusRtuOverTcp(m) => json(&m.points),
            ProtocolConfig::Iec104(d) => json(&d.points),
            ProtocolConfig::Dlt645(d) => json(&d.points),
            ProtocolConfig::Dnp3(d) => json(&d.points),
            ProtocolConfig::Opcua(d) => json(&d.points),
            ProtocolConfig::Plugin(d) => json(&d.points),
        }
    }

    /// Appends points given as JSON documents (a CSV table's rows); the first that is not a point
    /// of this protocol is the error, in words.
    pub fn extend_points(&mut self, rows: Vec<serde_json::Value>) -> Result<(), String> {
        let mut pool = crate::point::StringPool::default();
        self.reserve_points(rows.len());
        rows.into_iter().try_for_each(|r| self.push_point(r, &mut pool))
    }

    /// Adds one point given as its document (a CSV row), its repeated strings shared through
    /// `pool` at once: shared only later, the copies would be freed between the points that
    /// stay, and the holes keep those pages resident.
    pub fn push_point(&mut self, row: serde_json::Value, pool: &mut crate::point::StringPool) -> Result<(), String> {
        fn add<A: PointAddress + serde::de::DeserializeOwned>(
            to: &mut Vec<Point<A>>,
            row: serde_json::Value,
            pool: &mut crate::point::StringPool,
        ) -> Result<(), String> {
            let mut p = doc::read(row)?;
            pool.share_point(&mut p);
            to.push(p);
            Ok(())
        }
        match self {
            ProtocolConfig::ModbusTcp(m) | ProtocolConfig::ModbusRtu(m) | ProtocolConfig::ModbusRtuOverTcp(m) => {
                add(&mut m.points, row, pool)
            }
            ProtocolConfig::Iec104(d) => add(&mut d.points, row, pool),
            ProtocolConfig::Dlt645(d) => add(&mut d.points, row, pool),
            ProtocolConfig::Dnp3(d) => add(&mut d.points, row, pool),
            ProtocolConfig::Opcua(d) => add(&mut d.points, row, pool),
            ProtocolConfig::Plugin(d) => add(&mut d.points, row, pool),
        }
    }

    /// Room for `n` more points, so that a table read row by row does not grow the list by
    /// doubling (each step a copy, and the old block a hole among the points).
    pub fn reserve_points(&mut self, n: usize) {
        match self {
            ProtocolConfig::ModbusTcp(m) | ProtocolConfig::ModbusRtu(m) | ProtocolConfig::ModbusRtuOverTcp(m) => m.points.reserve_exact(n),
            ProtocolConfig::Iec104(d) => d.points.reserve_exact(n),
            ProtocolConfig::Dlt645(d) => d.points.reserve_exact(n),
            ProtocolConfig::Dnp3(d) => d.points.reserve_exact(n),
            ProtocolConfig::Opcua(d) => d.points.reserve_exact(n),
            ProtocolConfig::Plugin(d) => d.points.reserve_exact(n),
        }
    }

    /// Shares the points' repeated strings through `pool` (see `CollectorConfig::compact`).
    pub fn compact(&mut self, pool: &mut crate::point::StringPool) {
        match self {
            ProtocolConfig::ModbusTcp(m) | ProtocolConfig::ModbusRtu(m) | ProtocolConfig::ModbusRtuOverTcp(m) => {
                pool.compact(&mut m.points)
            }
            ProtocolConfig::Iec104(d) => pool.compact(&mut d.points),
            ProtocolConfig::Dlt645(d) => pool.compact(&mut d.points),
            ProtocolConfig::Dnp3(d) => pool.compact(&mut d.points),
            ProtocolConfig::Opcua(d) => pool.compact(&mut d.points),
            ProtocolConfig::Plugin(d) => pool.compact(&mut d.points),
        }
    }

    pub fn clear_points(&mut self) {
        match self {
            ProtocolConfig::ModbusTcp(m) | ProtocolConfig::ModbusRtu(m) | ProtocolConfig::ModbusRtuOverTcp(m) => m.points.clear(),
            ProtocolConfig::Iec104(d) => d.points.clear(),
            ProtocolConfig::Dlt645(d) => d.points.clear(),
            ProtocolConfig::Dnp3(d) => d.points.clear(),
            ProtocolConfig::Opcua(d) => d.points.clear(),
            ProtocolConfig::Plugin(d) => d.points.clear(),
        }
    }

    fn check(&self, at: &Scope, out: &mut Findings) {
        fn each<A: PointAddress>(points: &[Point<A>], at: &Scope, out: &mut Findings) {
            let mut names = HashSet::new();
            for (i, p) in points.iter().enumerate() {
                let pat = at.point(i, p.name());
                p.check(&pat, out);
                if !names.insert(p.name()) {
                    out.add(&pat, "name", format!("duplicate point {:?}", p.name()));
                }
            }
        }
        match self {
            ProtocolConfig::ModbusTcp(m) | ProtocolConfig::ModbusRtu(m) | ProtocolConfig::ModbusRtuOverTcp(m) => {
                let (t, _) = self.modbus().expect("a Modbus variant");
                m.check(t, at, out);
                each(&m.points, at, out);
            }
            ProtocolConfig::Iec104(d) => {
                d.check(at, out);
                each(&d.points, at, out);
            }
            ProtocolConfig::Dlt645(d) => {
                d.check(at, out);
                each(&d.points, at, out);
            }
            ProtocolConfig::Dnp3(d) => {
                d.check(at, out);
                each(&d.points, at, out);
            }
            ProtocolConfig::Opcua(d) => {
                d.check(at, out);
                each(&d.points, at, out);
            }
            ProtocolConfig::Plugin(d) => {
                d.check(at, out);
                each(&d.points, at, out);
            }
        }
    }

    /// The endpoint, when the settings name one (validation reports a missing address).
    pub fn endpoint(&self) -> Option<Endpoint> {
        let proto = self.protocol();
        let serial_shared = |s: &crate::line::SerialConfig| {
            vec![
                ("serial.baud", s.baud.to_string()),
                ("serial.parity", s.parity.to_string()),
                ("serial.data_bits", s.data_bits.to_string()),
                ("serial.stop_bits", s.stop_bits.to_string()),
            ]
        };
        let backoff = |min: u64, max: u64| vec![("reconnect_min_ms", min.to_string()), ("reconnect_max_ms", max.to_string())];
        // a device server's TCP address, or a serial port on this box (and its line settings)
        let tcp_or_serial =
            |address: &Option<String>, serial: &Option<crate::line::SerialConfig>, mut shared: Vec<_>| match (address, serial) {
                (Some(a), None) => Some(Endpoint { key: format!("tcp:{a}"), place: format!("address {a}"), shared }),
                (None, Some(s)) => {
                    shared.extend(serial_shared(s));
                    Some(Endpoint { key: format!("serial:{}", s.port), place: format!("serial port {}", s.port), shared })
                }
                _ => None,
            };
        match self {
            ProtocolConfig::ModbusRtu(m) => {
                let s = m.serial.as_ref()?;
                let mut shared = serial_shared(s);
                shared.extend(backoff(m.reconnect_min_ms, m.reconnect_max_ms));
                shared.push(("max_in_flight", m.max_in_flight.to_string()));
                Some(Endpoint { key: format!("serial:{}", s.port), place: format!("serial port {}", s.port), shared })
            }
            ProtocolConfig::ModbusTcp(m) | ProtocolConfig::ModbusRtuOverTcp(m) => {
                let a = m.address.as_ref()?;
                let mut shared = backoff(m.reconnect_min_ms, m.reconnect_max_ms);
                shared.push(("max_in_flight", m.max_in_flight.to_string()));
                Some(Endpoint { key: format!("tcp:{a}"), place: format!("address {a}"), shared })
            }
            ProtocolConfig::Iec104(d) => {
                let mut shared = backoff(d.reconnect_min_ms, d.reconnect_max_ms);
                shared.extend([
                    ("redundant_address", d.redundant_address.clone().unwrap_or_default()),
                    ("k", d.k.to_string()),
                    ("w", d.w.to_string()),
                    ("t1_s", d.t1_s.to_string()),
                    ("tls", if d.tls.is_some() { "on" } else { "off" }.to_string()),
                ]);
                Some(Endpoint { key: format!("tcp:{}", d.address), place: format!("address {}", d.address), shared })
            }
            ProtocolConfig::Dlt645(d) => {
                // A line that failed is tried again at the next poll; no backoff settings.
                tcp_or_serial(&d.address, &d.serial, vec![("preamble", d.preamble.to_string())])
            }
            ProtocolConfig::Dnp3(d) => {
                // one channel (connection or line); each device is one outstation on it
                let mut shared = backoff(d.reconnect_min_ms, d.reconnect_max_ms);
                shared
                    .extend([("master_address", d.master_address.to_string()), ("response_timeout_ms", d.response_timeout_ms.to_string())]);
                tcp_or_serial(&d.address, &d.serial, shared)
            }
            // The devices of one server share one session (each has its own subscription).
            ProtocolConfig::Opcua(d) => Some(Endpoint {
                key: format!("session:{}", d.endpoint),
                place: format!("OPC UA server {}", d.endpoint),
                shared: d.session_settings(),
            }),
            // Each device runs its own sandboxed instance; devices of one plugin and endpoint
            // share a driver.
            ProtocolConfig::Plugin(d) => {
                Some(Endpoint { key: d.endpoint_key(), place: format!("plugin {}", d.plugin), shared: Vec::new() })
            }
        }
        .map(|mut e| {
            // Devices of different protocols never share an endpoint; the key says which.
            e.key = format!("{}:{}", proto_family(proto), e.key);
            e
        })
    }
}

/// Protocols that can share one connection (Modbus TCP and RTU-over-TCP cannot, but they are
/// refused together at one address by the endpoint check, which names both).
fn proto_family(p: Protocol) -> &'static str {
    match p {
        Protocol::ModbusTcp | Protocol::ModbusRtu | Protocol::ModbusRtuOverTcp => "modbus",
        Protocol::Iec104 => "iec104",
        Protocol::Dlt645 => "dlt645",
        Protocol::Dnp3 => "dnp3",
        Protocol::Opcua => "opcua",
        Protocol::Plugin => "plugin",
    }
}

impl DeviceConfig {
    pub fn protocol(&self) -> Protocol {
        self.proto.protocol()
    }

    pub fn point(&self, name: &str) -> Option<&PointMeta> {
        self.proto.points().into_iter().find(|p| *p.name == *name)
    }

    /// Every finding of this device: its settings, poll groups and points.
    pub fn check(&self, at: &Scope, out: &mut Findings) {
        if self.id.is_empty() || self.id.len() > 64 || !self.id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            out.add(at, "id", "must be 1-64 characters of A-Z a-z 0-9 - _ .");
        }
        if let Some(pk) = &self.product_key {
            if pk.len() > 64 || pk.contains(['/', '+', '#', '&', '|']) || pk.chars().any(char::is_whitespace) {
                out.add(at, "product_key", "must be an EnOS product key: at most 64 characters, no spaces or / + # & |");
            }
        }
        self.proto.check(at, out);
    }
}
