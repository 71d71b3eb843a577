//! The communication test of a device, one request/answer pair per kind of test, tagged by
//! `kind` so the D-Bus method (`ReadRaw`) stays the same when a protocol adds its own test:
//! `modbus-registers` (chosen registers or bits, `raw_read`), `iec104-interrogation` (a general
//! interrogation of the station, every object it sends) and `dlt645-identifiers` (chosen data
//! identifiers, with the frames on the wire) and `dnp3-poll` (an integrity or event poll of the
//! outstation on demand, every object it answers and its IIN in words) and `opcua-browse` (the
//! nodes under one node of the server's address space, a variable with its data type, access
//! and value) and `plugin-read` (chosen points of a plugin device read now through its driver,
//! each value or why it is missing). Which kind a protocol answers is [`for_protocol`];
//! the web center offers it from `GET /api/protocols`.

use crate::raw_read::{RawAnswer, RawRead};
use crate::Refused;
use enos_collector_config::Protocol;
use serde::{Deserialize, Serialize};

/// A communication test. A request without `kind` is a Modbus register read (the only test
/// before the kinds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CommTest {
    ModbusRegisters(RawRead),
    Iec104Interrogation(Interrogation),
    Dlt645Identifiers(IdentifierRead),
    Dnp3Poll(Dnp3Poll),
    OpcuaBrowse(OpcuaBrowse),
    PluginRead(PluginRead),
}

/// The answer, tagged like the request; a test that failed is an answer with `ok: false`, a
/// `failure` and a `message` in words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CommAnswer {
    ModbusRegisters(RawAnswer),
    Iec104Interrogation(InterrogationAnswer),
    Dlt645Identifiers(IdentifierAnswer),
    Dnp3Poll(Dnp3PollAnswer),
    OpcuaBrowse(OpcuaBrowseAnswer),
    PluginRead(PluginReadAnswer),
}

/// The kinds of test, as `kind` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    ModbusRegisters,
    Iec104Interrogation,
    Dlt645Identifiers,
    Dnp3Poll,
    OpcuaBrowse,
    PluginRead,
}

impl Kind {
    const ALL: [Kind; 6] =
        [Kind::ModbusRegisters, Kind::Iec104Interrogation, Kind::Dlt645Identifiers, Kind::Dnp3Poll, Kind::OpcuaBrowse, Kind::PluginRead];

    pub fn name(self) -> &'static str {
        match self {
            Kind::ModbusRegisters => "modbus-registers",
            Kind::Iec104Interrogation => "iec104-interrogation",
            Kind::Dlt645Identifiers => "dlt645-identifiers",
            Kind::Dnp3Poll => "dnp3-poll",
            Kind::OpcuaBrowse => "opcua-browse",
            Kind::PluginRead => "plugin-read",
        }
    }

    /// What the test does, in words (the page's card title).
    pub fn label(self) -> &'static str {
        match self {
            Kind::ModbusRegisters => "Raw registers",
            Kind::Iec104Interrogation => "Interrogation",
            Kind::Dlt645Identifiers => "Read data identifiers",
            Kind::Dnp3Poll => "Poll now",
            Kind::OpcuaBrowse => "Browse the server",
            Kind::PluginRead => "Read points now",
        }
    }
}

/// The test a device of protocol `p` answers; `None`: its driver has none yet.
pub fn kind_of(p: Protocol) -> Option<Kind> {
    match p {
        Protocol::ModbusTcp | Protocol::ModbusRtu | Protocol::ModbusRtuOverTcp => Some(Kind::ModbusRegisters),
        Protocol::Iec104 => Some(Kind::Iec104Interrogation),
        Protocol::Dlt645 => Some(Kind::Dlt645Identifiers),
        Protocol::Dnp3 => Some(Kind::Dnp3Poll),
        Protocol::Opcua => Some(Kind::OpcuaBrowse),
        Protocol::Plugin => Some(Kind::PluginRead),
        #[allow(unreachable_patterns)] // protocols added later have no test until they add one here
        _ => None,
    }
}

/// What the page needs to offer a protocol's test (`GET /api/protocols`, `comm_test`).
#[derive(Debug, Clone, Serialize)]
pub struct TestInfo {
    pub kind: &'static str,
    pub label: &'static str,
    /// DL/T 645: the identifiers of the standard's table to choose from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<KnownIdentifier>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KnownIdentifier {
    pub di: String,
    pub name: &'static str,
    pub unit: &'static str,
}

pub fn for_protocol(p: Protocol) -> Option<TestInfo> {
    let kind = kind_of(p)?;
    let identifiers = match kind {
        Kind::Dlt645Identifiers => {
            enos_dlt645::ident::KNOWN.iter().map(|k| KnownIdentifier { di: k.id.to_string(), name: k.name, unit: k.unit }).collect()
        }
        _ => Vec::new(),
    };
    Some(TestInfo { kind: kind.name(), label: kind.label(), identifiers })
}

impl CommTest {
    /// Reads a request from JSON; without `kind` it is a Modbus register read. Errors in words.
    pub fn parse(json: &str) -> Result<CommTest, Refused> {
        let mut v: serde_json::Value = serde_json::from_str(json).map_err(|e| Refused::whole(format!("the request is not JSON: {e}")))?;
        let Some(obj) = v.as_object_mut() else { return Err(Refused::whole("the request must be a JSON object")) };
        match obj.get("kind") {
            None => {
                obj.insert("kind".into(), Kind::ModbusRegisters.name().into());
            }
            Some(serde_json::Value::String(k)) if Kind::ALL.iter().any(|x| x.name() == k) => {}
            Some(k) => {
                let names: Vec<&str> = Kind::ALL.iter().map(|x| x.name()).collect();
                let (last, rest) = names.split_last().expect("kinds");
                return Err(Refused::field("kind", format!("{k} is not a communication test ({} or {last})", rest.join(", "))));
            }
        }
        let t: CommTest = serde_json::from_value(v).map_err(|e| Refused::whole(format!("bad request: {e}")))?;
        t.check()?;
        Ok(t)
    }

    pub fn kind(&self) -> Kind {
        match self {
            CommTest::ModbusRegisters(_) => Kind::ModbusRegisters,
            CommTest::Iec104Interrogation(_) => Kind::Iec104Interrogation,
            CommTest::Dlt645Identifiers(_) => Kind::Dlt645Identifiers,
            CommTest::Dnp3Poll(_) => Kind::Dnp3Poll,
            CommTest::OpcuaBrowse(_) => Kind::OpcuaBrowse,
            CommTest::PluginRead(_) => Kind::PluginRead,
        }
    }

    pub fn check(&self) -> Result<(), Refused> {
        match self {
            CommTest::ModbusRegisters(r) => r.check(),
            CommTest::Iec104Interrogation(r) => r.check(),
            CommTest::Dlt645Identifiers(r) => r.check().map(|_| ()),
            CommTest::Dnp3Poll(_) => Ok(()),
            CommTest::OpcuaBrowse(r) => r.check(),
            CommTest::PluginRead(r) => r.check(),
        }
    }
}

impl CommAnswer {
    pub fn kind(&self) -> Kind {
        match self {
            CommAnswer::ModbusRegisters(_) => Kind::ModbusRegisters,
            CommAnswer::Iec104Interrogation(_) => Kind::Iec104Interrogation,
            CommAnswer::Dlt645Identifiers(_) => Kind::Dlt645Identifiers,
            CommAnswer::Dnp3Poll(_) => Kind::Dnp3Poll,
            CommAnswer::OpcuaBrowse(_) => Kind::OpcuaBrowse,
            CommAnswer::PluginRead(_) => Kind::PluginRead,
        }
    }

    pub fn ok(&self) -> bool {
        match self {
            CommAnswer::ModbusRegisters(a) => a.ok,
            CommAnswer::Iec104Interrogation(a) => a.ok,
            CommAnswer::Dlt645Identifiers(a) => a.ok,
            CommAnswer::Dnp3Poll(a) => a.ok,
            CommAnswer::OpcuaBrowse(a) => a.ok,
            CommAnswer::PluginRead(a) => a.ok,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            CommAnswer::ModbusRegisters(a) => &a.message,
            CommAnswer::Iec104Interrogation(a) => &a.message,
            CommAnswer::Dlt645Identifiers(a) => &a.message,
            CommAnswer::Dnp3Poll(a) => &a.message,
            CommAnswer::OpcuaBrowse(a) => &a.message,
            CommAnswer::PluginRead(a) => &a.message,
        }
    }
}

/// IEC 104: a general interrogation of common address `ca` (default: the device's), the objects
/// the station sends for it, optionally only those in `ioa_from..=ioa_to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Interrogation {
    #[serde(default)]
    pub ca: Option<u16>,
    #[serde(default)]
    pub ioa_from: Option<u32>,
    #[serde(default)]
    pub ioa_to: Option<u32>,
}

/// The largest information object address (3 octets).
pub const IOA_MAX: u32 = 0xff_ffff;

impl Interrogation {
    pub fn check(&self) -> Result<(), Refused> {
        for (f, v) in [("ioa_from", self.ioa_from), ("ioa_to", self.ioa_to)] {
            if v.is_some_and(|v| v > IOA_MAX) {
                return Err(Refused::field(f, format!("an information object address is 0-{IOA_MAX}")));
            }
        }
        if let (Some(a), Some(b)) = (self.ioa_from, self.ioa_to) {
            if a > b {
                return Err(Refused::field("ioa_to", format!("the range ends ({b}) before it starts ({a})")));
            }
        }
        Ok(())
    }

    /// Whether object `ioa` is in the range asked.
    pub fn wants(&self, ioa: u32) -> bool {
        self.ioa_from.is_none_or(|a| ioa >= a) && self.ioa_to.is_none_or(|b| ioa <= b)
    }
}

/// One information object as the station sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfoObject {
    pub ioa: u32,
    /// The standard's type name, e.g. `M_ME_NC_1`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The type in words, e.g. "measured value, short float".
    pub type_words: String,
    /// The value as sent (a number, true/false for a single point, a word for a double point).
    pub value: serde_json::Value,
    /// The value in words ("on", "231.5", "position 3, transient").
    pub text: String,
    /// The quality descriptor in words; empty when good.
    pub flags: Vec<String>,
    /// The station's time tag (Unix ms), for the time-tagged types.
    #[serde(default)]
    pub time_ms: Option<i64>,
    /// The time tag is marked invalid by the station.
    #[serde(default)]
    pub time_invalid: bool,
    /// The configured point at this address, if any.
    #[serde(default)]
    pub point: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct InterrogationAnswer {
    pub ok: bool,
    pub ca: u16,
    pub objects: Vec<InfoObject>,
    /// `offline`, `refused`, `timeout` or `request` when the test failed.
    #[serde(default)]
    pub failure: Option<String>,
    pub message: String,
    pub took_ms: u64,
}

/// DL/T 645: read these data identifiers ("02010100" or "02-01-01-00"), one request each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentifierRead {
    pub identifiers: Vec<String>,
}

/// The most identifiers one test reads (each is a request on a shared line).
pub const IDENTIFIERS_MAX: usize = 16;

impl IdentifierRead {
    /// The identifiers as 8 hex digits, upper case; or which one is not an identifier.
    pub fn check(&self) -> Result<Vec<String>, Refused> {
        if self.identifiers.is_empty() || self.identifiers.len() > IDENTIFIERS_MAX {
            return Err(Refused::field("identifiers", format!("give 1 to {IDENTIFIERS_MAX} data identifiers")));
        }
        self.identifiers
            .iter()
            .map(|t| {
                let digits: String = t.chars().filter(|c| !matches!(c, '-' | ' ' | '.')).collect();
                match digits.len() == 8 && digits.chars().all(|c| c.is_ascii_hexdigit()) {
                    true => Ok(digits.to_ascii_uppercase()),
                    false => Err(Refused::field(
                        "identifiers",
                        format!("\"{t}\" is not a data identifier: 8 hexadecimal digits, such as 02010100 or 02-01-01-00"),
                    )),
                }
            })
            .collect()
    }
}

/// One identifier's read: the frames on the wire and the value decoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct IdentifierResult {
    /// 8 hex digits, DI3 first.
    pub di: String,
    /// What it is, from the standard's table (empty when not in it).
    pub name: String,
    pub unit: String,
    /// Each request frame as sent and the answer as received, hex (several with follow-ups).
    pub frames: Vec<FramePair>,
    pub ok: bool,
    /// The decoded value (a number, or text for dates and times); null when not decoded.
    #[serde(default)]
    pub value: serde_json::Value,
    /// The value with its unit, or what went wrong, in words.
    pub text: String,
    /// `timeout`, `exception`, `link`, `decode` when it failed.
    #[serde(default)]
    pub failure: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FramePair {
    pub request: String,
    /// Empty when nothing acceptable arrived.
    pub response: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct IdentifierAnswer {
    /// Every identifier was read.
    pub ok: bool,
    /// The meter's address as configured.
    pub meter: String,
    pub reads: Vec<IdentifierResult>,
    /// `offline` when the meter did not answer at all, `request` for a bad request.
    #[serde(default)]
    pub failure: Option<String>,
    pub message: String,
    pub took_ms: u64,
}

/// A plugin device: these configured points (none: all) read now, by a poll of its driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PluginRead {
    #[serde(default)]
    pub points: Vec<String>,
}

/// The most points one test names.
pub const PLUGIN_POINTS_MAX: usize = 64;

impl PluginRead {
    pub fn check(&self) -> Result<(), Refused> {
        if self.points.len() > PLUGIN_POINTS_MAX {
            return Err(Refused::field("points", format!("name at most {PLUGIN_POINTS_MAX} points (none: all)")));
        }
        Ok(())
    }
}

/// One point's value from the driver, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PluginValue {
    pub point: String,
    /// The point's address, in the plugin's format.
    pub address: String,
    pub ok: bool,
    /// As the batch carries it (scaled); null when missing.
    #[serde(default)]
    pub value: serde_json::Value,
    /// The value, or why it is missing, in words.
    pub text: String,
    /// `good`, `uncertain`, `bad` as the driver said.
    #[serde(default)]
    pub quality: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PluginReadAnswer {
    /// The poll succeeded and every point asked got a value.
    pub ok: bool,
    /// The plugin serving the device, and its version.
    pub plugin: String,
    pub values: Vec<PluginValue>,
    /// `offline` (the driver's poll failed), `stopped` (the driver was stopped: a crash, its
    /// time or memory limit) or `not-running` when the test failed.
    #[serde(default)]
    pub failure: Option<String>,
    pub message: String,
    pub took_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_without_kind_is_a_modbus_register_read() {
        let t = CommTest::parse(r#"{"function": 3, "address": 0, "count": 2}"#).unwrap();
        assert_eq!(t.kind(), Kind::ModbusRegisters);
        let t = CommTest::parse(r#"{"kind": "iec104-interrogation", "ioa_from": 5}"#).unwrap();
        assert_eq!(t, CommTest::Iec104Interrogation(Interrogation { ioa_from: Some(5), ..Default::default() }));
        let t = CommTest::parse(r#"{"kind": "dlt645-identifiers", "identifiers": ["02-01-01-00"]}"#).unwrap();
        assert_eq!(t.kind(), Kind::Dlt645Identifiers);
        let t = CommTest::parse(r#"{"kind": "dnp3-poll"}"#).unwrap();
        assert_eq!(t, CommTest::Dnp3Poll(Dnp3Poll { poll: Dnp3PollKind::Integrity }));
    }

    #[test]
    fn bad_requests_are_refused_in_words() {
        let e = CommTest::parse(r#"{"kind": "opcua-read"}"#).unwrap_err().to_string();
        assert_eq!(
            e,
            "kind: \"opcua-read\" is not a communication test (modbus-registers, iec104-interrogation, dlt645-identifiers, \
             dnp3-poll, opcua-browse or plugin-read)"
        );
        let t = CommTest::parse(r#"{"kind": "plugin-read", "points": ["energy"]}"#).unwrap();
        assert_eq!(t, CommTest::PluginRead(PluginRead { points: vec!["energy".into()] }));
        let many: Vec<String> = (0..65).map(|i| format!("p{i}")).collect();
        let e = CommTest::parse(&serde_json::json!({"kind": "plugin-read", "points": many}).to_string()).unwrap_err().to_string();
        assert_eq!(e, "points: name at most 64 points (none: all)");
        let e = CommTest::parse(r#"{"kind": "opcua-browse", "node": "ns=2;x=1"}"#).unwrap_err().to_string();
        assert!(e.starts_with("node: \"ns=2;x=1\" is not a node id"), "{e}");
        let e = CommTest::parse(r#"{"kind": "dnp3-poll", "poll": "class0"}"#).unwrap_err().to_string();
        assert!(e.contains("unknown variant `class0`, expected `integrity` or `events`"), "{e}");
        let e = CommTest::parse(r#"{"kind": "dlt645-identifiers", "identifiers": ["0201010G"]}"#).unwrap_err().to_string();
        assert!(e.contains("\"0201010G\" is not a data identifier"), "{e}");
        let e = CommTest::parse(r#"{"kind": "dlt645-identifiers", "identifiers": []}"#).unwrap_err().to_string();
        assert_eq!(e, "identifiers: give 1 to 16 data identifiers");
        let e = CommTest::parse(r#"{"kind": "iec104-interrogation", "ioa_from": 9, "ioa_to": 3}"#).unwrap_err().to_string();
        assert_eq!(e, "ioa_to: the range ends (3) before it starts (9)");
        let e = CommTest::parse("[1]").unwrap_err().to_string();
        assert_eq!(e, "the request must be a JSON object");
    }

    #[test]
    fn identifiers_are_normalised() {
        let r = IdentifierRead { identifiers: vec!["02-01-01-00".into(), "0001ff00".into()] };
        assert_eq!(r.check().unwrap(), ["02010100", "0001FF00"]);
    }

    #[test]
    fn answers_carry_their_kind_beside_the_fields() {
        let a = CommAnswer::Iec104Interrogation(InterrogationAnswer { ok: true, ca: 1, ..Default::default() });
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["kind"], "iec104-interrogation");
        assert_eq!(v["ca"], 1);
        let a = CommAnswer::ModbusRegisters(RawAnswer { ok: true, function: 3, ..Default::default() });
        assert_eq!(serde_json::to_value(&a).unwrap()["function"], 3, "the Modbus answer keeps its fields at the top");
    }

    #[test]
    fn every_protocol_says_its_test() {
        for p in Protocol::ALL {
            let _ = for_protocol(p);
        }
        let d = for_protocol(Protocol::Dlt645).unwrap();
        assert_eq!(d.kind, "dlt645-identifiers");
        assert!(d.identifiers.iter().any(|k| k.di == "02010100" && k.unit == "V"));
        assert_eq!(for_protocol(Protocol::Iec104).unwrap().kind, "iec104-interrogation");
        assert_eq!(for_protocol(Protocol::Plugin).unwrap().kind, "plugin-read");
    }
}

/// DNP3: a poll of the device's outstation on demand: `integrity` (classes 1, 2, 3 and 0, the
/// default) or `events` (classes 1, 2 and 3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Dnp3Poll {
    #[serde(default)]
    pub poll: Dnp3PollKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Dnp3PollKind {
    #[default]
    Integrity,
    Events,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Dnp3PollAnswer {
    pub ok: bool,
    /// The outstation's link address.
    pub outstation: u16,
    /// In the order the outstation sent them (events of one point stay separate).
    pub objects: Vec<Dnp3Object>,
    /// The internal indications of the (last fragment of the) response, in words.
    pub iin: Vec<String>,
    /// `offline`, `timeout` or `refused` when the test failed.
    #[serde(default)]
    pub failure: Option<String>,
    pub message: String,
    pub took_ms: u64,
}

/// One object of a DNP3 response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dnp3Object {
    /// The point type as configured: BI, DBI, BO, CNT, FCNT, AI, AO.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The type in words, e.g. "analog input".
    pub type_words: String,
    pub index: u32,
    /// An event (g2, g4, g22, g32, ...) rather than a static value.
    pub event: bool,
    /// The value as sent (unscaled).
    pub value: serde_json::Value,
    /// The point's flags in words; empty when just online.
    pub flags: Vec<String>,
    /// The outstation's time of the value (Unix ms), for the time-tagged variations.
    #[serde(default)]
    pub time_ms: Option<u64>,
    /// The configured point of this type and index, if any.
    #[serde(default)]
    pub point: Option<String>,
}

/// OPC UA: browse the server's address space from `node` (any node id form, `nsu=` too; default
/// the Objects folder, `i=85`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OpcuaBrowse {
    #[serde(default)]
    pub node: Option<String>,
}

impl OpcuaBrowse {
    /// The node to browse, as written (`i=85` when none is given).
    pub fn node(&self) -> &str {
        self.node.as_deref().map(str::trim).filter(|n| !n.is_empty()).unwrap_or("i=85")
    }

    pub fn check(&self) -> Result<(), Refused> {
        enos_collector_config::opcua::NodeRef::parse(self.node()).map(|_| ()).map_err(|e| Refused::field("node", e.to_string()))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct OpcuaBrowseAnswer {
    pub ok: bool,
    /// The node browsed, as asked.
    pub node: String,
    pub nodes: Vec<OpcuaNode>,
    /// The server had more children than one browse shows.
    #[serde(default)]
    pub more: bool,
    /// `offline`, `refused` or `timeout` when the test failed.
    #[serde(default)]
    pub failure: Option<String>,
    pub message: String,
    pub took_ms: u64,
}

/// A node found by a browse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct OpcuaNode {
    /// With the server's namespace index: `ns=2;s=P`, `i=2253`, `ns=2;g=…`, `ns=2;b=…`.
    pub node_id: String,
    /// With the namespace's URI (`nsu=urn:…;s=P`), stable when the server renumbers its
    /// namespaces; absent in namespace 0.
    #[serde(default)]
    pub nsu_id: Option<String>,
    pub browse_name: String,
    pub display_name: String,
    /// Object, Variable, Method, ObjectType, VariableType, ReferenceType, DataType or View.
    pub node_class: String,
    /// A variable's data type ("Double"), access level in words ("read, write") and value.
    #[serde(default)]
    pub data_type: Option<String>,
    #[serde(default)]
    pub access: Option<String>,
    /// Whether a point may write it (the access level's write bit).
    #[serde(default)]
    pub writable: bool,
    #[serde(default)]
    pub value: serde_json::Value,
    /// The value in words, or why there is none (the server's status code).
    #[serde(default)]
    pub text: String,
    /// The configured point of this node, if any.
    #[serde(default)]
    pub point: Option<String>,
}
