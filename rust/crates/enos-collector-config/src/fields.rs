//! Descriptions of settings and point fields, per protocol: what the web center's forms and point
//! grid show, and what a CSV point table's columns are. Data, so that a protocol adds its fields
//! in its own module and no form or table names them again.

use serde::Serialize;

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum FieldKind {
    Text,
    Integer,
    Number,
    /// One of `choices`.
    Choice,
    Bool,
    /// A nested `serial = { port, baud, parity, data_bits, stop_bits }` table.
    Serial,
    /// The list `poll_groups = [{ name, interval_ms }]`.
    PollGroups,
    /// A nested `tls = { ca, cert, key, server_name }` table (file paths).
    Tls,
    /// A plugin device's `settings` table: its fields come from the installed plugin's schema
    /// (`GET /api/plugins`).
    PluginSettings,
    /// A plugin device's `endpoints`: rows of id and `{ address }` or `{ serial = { port, baud,
    /// parity } }`.
    Endpoints,
}

#[derive(Debug, Clone, Serialize)]
pub struct Field {
    /// The key in the TOML file, the JSON document and the CSV header.
    pub key: &'static str,
    pub label: &'static str,
    pub kind: FieldKind,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub choices: &'static [&'static str],
    /// Shown when the field is left empty (in the file's words).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<&'static str>,
    /// Inclusive bounds of a number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    pub help: &'static str,
    /// Other spellings a CSV table may use for a choice (`4x` for `holding`): (alias, choice).
    #[serde(skip)]
    pub aliases: &'static [(&'static str, &'static str)],
}

impl Field {
    pub const fn new(key: &'static str, label: &'static str, kind: FieldKind, help: &'static str) -> Field {
        Field { key, label, kind, required: false, choices: &[], default: None, min: None, max: None, help, aliases: &[] }
    }
    pub const fn required(mut self) -> Field {
        self.required = true;
        self
    }
    pub const fn choices(mut self, c: &'static [&'static str]) -> Field {
        self.choices = c;
        self
    }
    pub const fn default(mut self, d: &'static str) -> Field {
        self.default = Some(d);
        self
    }
    pub const fn range(mut self, min: f64, max: f64) -> Field {
        self.min = Some(min);
        self.max = Some(max);
        self
    }
    pub const fn aliases(mut self, a: &'static [(&'static str, &'static str)]) -> Field {
        self.aliases = a;
        self
    }
}

/// The fields of `PointMeta`, in the order tables show them (the name first, the rest after
/// the protocol's address fields).
pub const POINT_NAME: Field = Field::new("name", "Name", FieldKind::Text, "Unique on the device; 1-64 characters").required();
pub const POINT_COMMON: &[Field] = &[
    Field::new("scale", "Scale", FieldKind::Number, "Engineering value = raw × scale + offset").default("1"),
    Field::new("offset", "Offset", FieldKind::Number, "Added after scaling").default("0"),
    Field::new("unit", "Unit", FieldKind::Text, "Shown with the value, e.g. kW"),
    Field::new("access", "Access", FieldKind::Choice, "rw lets the cloud, the web center and enosctl write it")
        .choices(&["r", "rw"])
        .default("r")
        .aliases(&[("ro", "r"), ("read", "r"), ("w", "rw"), ("write", "rw"), ("readwrite", "rw")]),
    Field::new("min", "Min", FieldKind::Number, "Lowest value a write may set (engineering units)"),
    Field::new("max", "Max", FieldKind::Number, "Highest value a write may set (engineering units)"),
    Field::new("decimals", "Decimals", FieldKind::Integer, "Decimals kept after scaling").range(0.0, 9.0),
];

/// Settings of a polled device's timing, shared by the polled protocols.
pub const POLL_GROUPS: Field =
    Field::new("poll_groups", "Poll groups", FieldKind::PollGroups, "Named poll intervals; each point names its group");
pub const POINT_GROUP: Field = Field::new("group", "Poll group", FieldKind::Text, "One of the device's poll groups").default("default");
