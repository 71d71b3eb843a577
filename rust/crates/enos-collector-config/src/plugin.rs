//! Devices served by a protocol plugin (a sandboxed WebAssembly component, `enos-plugin-host`):
//! which plugin, the endpoints its driver may open (by id), its poll interval, its settings (the
//! plugin's manifest describes and checks them when the driver starts) and its points, each
//! addressed in the plugin's own format.

use crate::fields::{Field, FieldKind as K};
use crate::line::{check_host_port, SerialConfig};
use crate::point::{Point, PointAddress, PointMeta};
use enos_config::{Findings, Scope};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub type PluginPoint = Point<PluginAddress>;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginDevice {
    /// The plugin's name: its directory in the plugins directory.
    pub plugin: String,
    /// What the driver may open, by id: `line = { address = "host:port" }` or
    /// `line = { serial = { port = "/dev/ttyS1", baud = 9600 } }`.
    #[serde(default)]
    pub endpoints: BTreeMap<String, PluginEndpoint>,
    #[serde(default = "d_poll")]
    pub poll_interval_ms: u64,
    /// A write waits this long for the driver's answer (each step: select, execute).
    #[serde(default = "d_command_timeout")]
    pub command_timeout_ms: u64,
    /// The plugin's own settings, checked against its manifest's schema.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub settings: serde_json::Value,
    #[serde(default, rename = "point")]
    pub points: Vec<PluginPoint>,
}

fn d_poll() -> u64 {
    1000
}

fn d_command_timeout() -> u64 {
    10_000
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginEndpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<SerialConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginAddress {
    /// In the plugin's format (its manifest's `point_address` says how).
    pub address: String,
    /// A write (the point's access `rw`) first selects, then executes (`command` of the
    /// driver with kind select, then execute); else it operates directly.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub select_before_operate: bool,
}

impl PointAddress for PluginAddress {
    fn check(&self, _meta: &PointMeta, at: &Scope, out: &mut Findings) {
        if self.address.trim().is_empty() {
            out.add(at, "address", "required, in the plugin's point address format");
        }
    }
}

impl PluginDevice {
    pub fn check(&self, at: &Scope, out: &mut Findings) {
        if self.plugin.is_empty()
            || !self.plugin.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || self.plugin.starts_with('.')
        {
            out.add(at, "plugin", format!("\"{}\" is not a plugin name (A-Z a-z 0-9 - _ .)", self.plugin));
        }
        for (id, e) in &self.endpoints {
            let key = format!("endpoints.{id}");
            match (&e.address, &e.serial) {
                (Some(a), None) => check_host_port(Some(a), at, out, &key),
                (None, Some(s)) => s.check(at, out),
                _ => out.add(at, &key, "give either address (host:port) or serial"),
            }
        }
        if !(10..=86_400_000).contains(&self.poll_interval_ms) {
            out.add(at, "poll_interval_ms", "must be 10-86400000");
        }
        if !(1..=120_000).contains(&self.command_timeout_ms) {
            out.add(at, "command_timeout_ms", "must be 1-120000");
        }
        if !(self.settings.is_null() || self.settings.is_object()) {
            out.add(at, "settings", "must be a table");
        }
    }

    /// What groups devices into one driver: the plugin and its first endpoint.
    pub fn endpoint_key(&self) -> String {
        let first = self.endpoints.values().next().map(|e| match (&e.address, &e.serial) {
            (Some(a), _) => format!("tcp:{a}"),
            (_, Some(s)) => format!("serial:{}", s.port),
            _ => String::new(),
        });
        format!("{}:{}", self.plugin, first.unwrap_or_default())
    }
}

pub const DEVICE_FIELDS: &[Field] = &[
    Field::new("plugin", "Plugin", K::Text, "The installed plugin's name").required(),
    Field::new("endpoints", "Endpoints", K::Endpoints, "id = { address = \"host:port\" } or id = { serial = { port, baud } }"),
    Field::new("poll_interval_ms", "Poll every (ms)", K::Integer, "How often the driver polls").default("1000").range(10.0, 86_400_000.0),
    Field::new("command_timeout_ms", "Command step timeout (ms)", K::Integer, "A write waits this long for the driver (select, execute)")
        .default("10000")
        .range(1.0, 120_000.0),
    Field::new("settings", "Settings", K::PluginSettings, "The plugin's own settings (its manifest describes them)"),
];

pub const POINT_FIELDS: &[Field] = &[
    Field::new("address", "Address", K::Text, "In the plugin's point address format").required(),
    Field::new("select_before_operate", "Select before operate", K::Bool, "A write selects, then executes").default("false"),
];
