//! What polled, line-based protocols share: a serial line's settings, `host:port` addresses and
//! named poll groups.

use enos_config::{Findings, Scope};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SerialConfig {
    pub port: String,
    #[serde(default = "d_baud")]
    pub baud: u32,
    #[serde(default)]
    pub parity: Parity,
    #[serde(default = "d_data_bits")]
    pub data_bits: u8,
    #[serde(default = "d_stop_bits")]
    pub stop_bits: u8,
}
fn d_baud() -> u32 {
    9600
}
fn d_data_bits() -> u8 {
    8
}
fn d_stop_bits() -> u8 {
    1
}

impl SerialConfig {
    pub fn check(&self, at: &Scope, out: &mut Findings) {
        if self.port.is_empty() {
            out.add(at, "serial.port", "required (e.g. /dev/ttyS1)");
        }
        if !(5..=8).contains(&self.data_bits) {
            out.add(at, "serial.data_bits", "must be 5-8");
        }
        if !(1..=2).contains(&self.stop_bits) {
            out.add(at, "serial.stop_bits", "must be 1 or 2");
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    #[default]
    None,
    Even,
    Odd,
}

impl fmt::Display for Parity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Parity::None => "none",
            Parity::Even => "even",
            Parity::Odd => "odd",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PollGroup {
    pub name: String,
    pub interval_ms: u64,
}

pub fn default_groups() -> Vec<PollGroup> {
    vec![PollGroup { name: "default".into(), interval_ms: 1000 }]
}

pub fn default_group() -> std::sync::Arc<str> {
    "default".into()
}

/// Checks the groups and returns their names (for the points' `group`).
pub fn check_groups<'a>(groups: &'a [PollGroup], at: &Scope, out: &mut Findings) -> HashSet<&'a str> {
    let mut names = HashSet::new();
    for (i, g) in groups.iter().enumerate() {
        if g.interval_ms < 10 {
            out.add(at, format!("poll_groups[{i}].interval_ms"), "must be at least 10");
        }
        if !names.insert(g.name.as_str()) {
            out.add(at, format!("poll_groups[{i}].name"), format!("duplicate group {:?}", g.name));
        }
    }
    names
}

/// A `host:port` finding, if any.
pub fn check_host_port(address: Option<&str>, at: &Scope, out: &mut Findings, key: &str) {
    match address {
        None => out.add(at, key, "required (host:port)"),
        Some(a) if a.rsplit_once(':').and_then(|(h, p)| p.parse::<u16>().ok().filter(|_| !h.is_empty())).is_none() => {
            out.add(at, key, format!("\"{a}\" is not host:port"))
        }
        Some(_) => {}
    }
}

/// Reconnect backoff bounds.
pub fn check_backoff(min_ms: u64, max_ms: u64, at: &Scope, out: &mut Findings) {
    if min_ms == 0 || min_ms > max_ms {
        out.add(at, "reconnect_min_ms", "must be > 0 and <= reconnect_max_ms");
    }
}
