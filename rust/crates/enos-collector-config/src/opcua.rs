//! OPC UA servers (PLCs, SCADA and historian gateways, inverter plant controllers). Points by node
//! id, each either subscribed (the server reports changes) or polled (read on an interval).
//!
//! The node id syntax has its one home here (`NodeRef::parse`): validation, CSV tables and the
//! driver all read it through this.

use crate::fields::{Field, FieldKind as K};
use crate::point::{Point, PointAddress, PointMeta};
use enos_config::{Findings, Scope};
use serde::{Deserialize, Serialize};
use std::fmt;

pub type OpcuaPoint = Point<OpcuaAddress>;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OpcuaDevice {
    /// `opc.tcp://host:port/path` of the server.
    pub endpoint: String,
    /// Required, so that an unprotected session is always a written choice (`None`).
    pub security_policy: SecurityPolicy,
    /// Default: `SignAndEncrypt` with a policy, `None` without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_mode: Option<SecurityMode>,
    /// How the session's user is identified.
    #[serde(default)]
    pub auth: Auth,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A user certificate (DER or PEM) and its private key (PEM), for `auth = "certificate"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_cert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_key: Option<String>,
    /// The gateway's application certificate (`own/`, `private/`, made on first start), the
    /// trusted server certificates (`trusted/`) and the refused ones (`rejected/`).
    #[serde(default = "d_pki_dir")]
    pub pki_dir: String,
    #[serde(default = "d_session_timeout")]
    pub session_timeout_ms: u32,
    /// The subscription's publishing interval: how often the server sends what changed.
    #[serde(default = "d_interval")]
    pub publishing_interval_ms: u32,
    /// How often points with `mode = "poll"` are read.
    #[serde(default = "d_interval")]
    pub poll_interval_ms: u32,
    /// A read, a write or a session request without an answer after this fails.
    #[serde(default = "d_request_timeout")]
    pub request_timeout_ms: u32,
    #[serde(default = "d_backoff_min")]
    pub reconnect_min_ms: u64,
    #[serde(default = "d_backoff_max")]
    pub reconnect_max_ms: u64,
    #[serde(default, rename = "point")]
    pub points: Vec<OpcuaPoint>,
}
pub const DEFAULT_PKI_DIR: &str = "/data/enos/collector/opcua-pki";
fn d_pki_dir() -> String {
    DEFAULT_PKI_DIR.into()
}
fn d_session_timeout() -> u32 {
    60_000
}
fn d_interval() -> u32 {
    1000
}
fn d_request_timeout() -> u32 {
    10_000
}
fn d_backoff_min() -> u64 {
    1000
}
fn d_backoff_max() -> u64 {
    30_000
}

/// The security policies offered (the deprecated Basic128Rsa15 and Basic256 are not).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum SecurityPolicy {
    None,
    Basic256Sha256,
    #[serde(rename = "Aes128_Sha256_RsaOaep")]
    Aes128Sha256RsaOaep,
    #[serde(rename = "Aes256_Sha256_RsaPss")]
    Aes256Sha256RsaPss,
}

impl SecurityPolicy {
    /// The name as the OPC UA specification writes it (and this file).
    pub fn name(self) -> &'static str {
        match self {
            SecurityPolicy::None => "None",
            SecurityPolicy::Basic256Sha256 => "Basic256Sha256",
            SecurityPolicy::Aes128Sha256RsaOaep => "Aes128_Sha256_RsaOaep",
            SecurityPolicy::Aes256Sha256RsaPss => "Aes256_Sha256_RsaPss",
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum SecurityMode {
    None,
    Sign,
    SignAndEncrypt,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    #[default]
    Anonymous,
    Username,
    Certificate,
}

/// How a point's values are had.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReadMode {
    /// A monitored item of the device's subscription: the server reports changes.
    #[default]
    Subscribe,
    /// Read every `poll_interval_ms`.
    Poll,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeadbandType {
    /// A change smaller than `deadband` (in the value's units) is not reported.
    #[default]
    Absolute,
    /// ... smaller than `deadband` percent of the node's EURange.
    Percent,
}

/// A point's node and how its values are had. Kept small (32 bytes): a server can have 10,000
/// points and more, and few set a sampling interval or a deadband, so those are allocated only
/// when set. Read and written as `AddressFields`, the keys as they are.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(from = "AddressFields", into = "AddressFields")]
pub struct OpcuaAddress {
    /// `ns=2;i=5`, `ns=2;s=Name`, `ns=2;g=<guid>`, `ns=2;b=<base64>`, or `nsu=<uri>;...`.
    pub node: NodeText,
    pub mode: ReadMode,
    queue_size: u32,
    /// `None`: no sampling interval, no deadband.
    filter: Option<Box<Filter>>,
}

/// The rarely set part of a monitored item's settings: sampling interval, deadband and its type.
type Filter = (Option<u32>, Option<f64>, DeadbandType);

/// A monitored item's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ItemSettings {
    /// How often the server samples the node (default: the publishing interval).
    pub sampling_ms: Option<u32>,
    /// Changes the server keeps for the point between two publishes (not across a break).
    pub queue_size: u32,
    pub deadband: Option<f64>,
    pub deadband_type: DeadbandType,
}

impl Default for ItemSettings {
    fn default() -> ItemSettings {
        ItemSettings { sampling_ms: None, queue_size: d_queue(), deadband: None, deadband_type: DeadbandType::default() }
    }
}

impl OpcuaAddress {
    pub fn new(node: &str, mode: ReadMode, item: ItemSettings) -> OpcuaAddress {
        let ItemSettings { sampling_ms, queue_size, deadband, deadband_type } = item;
        let set = sampling_ms.is_some() || deadband.is_some() || deadband_type != DeadbandType::default();
        OpcuaAddress { node: NodeText::new(node), mode, queue_size, filter: set.then(|| Box::new((sampling_ms, deadband, deadband_type))) }
    }

    /// The monitored item's settings.
    pub fn item(&self) -> ItemSettings {
        let (sampling_ms, deadband, deadband_type) = self.filter.as_deref().copied().unwrap_or_default();
        ItemSettings { sampling_ms, queue_size: self.queue_size, deadband, deadband_type }
    }
}

/// A point's node id text, held in the point itself when short (numeric ids, short string
/// ids: most tables), else in a box. A box of its own was a 32-byte heap block per point,
/// allocated while the table was read, for 13-byte ids (`enos-bench --opcua`); inline the
/// point grows by 8 bytes instead.
#[derive(Clone, PartialEq)]
pub enum NodeText {
    /// The length, then the text, zero-padded (so equal texts compare equal).
    Inline(u8, [u8; NODE_INLINE]),
    Boxed(Box<str>),
}

/// The longest node id text held inline: the enum stays 24 bytes, a `Box<str>`'s 16 and its tag.
const NODE_INLINE: usize = 22;

impl NodeText {
    pub fn new(s: &str) -> NodeText {
        if s.len() <= NODE_INLINE {
            let mut b = [0; NODE_INLINE];
            b[..s.len()].copy_from_slice(s.as_bytes());
            NodeText::Inline(s.len() as u8, b)
        } else {
            NodeText::Boxed(s.into())
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            // made from a &str whole, so always UTF-8
            NodeText::Inline(n, b) => std::str::from_utf8(&b[..usize::from(*n)]).unwrap_or_default(),
            NodeText::Boxed(s) => s,
        }
    }
}

impl std::ops::Deref for NodeText {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for NodeText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for NodeText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// `OpcuaAddress` as the files have it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressFields {
    node: String,
    #[serde(default, skip_serializing_if = "is_default")]
    mode: ReadMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sampling_ms: Option<u32>,
    #[serde(default = "d_queue", skip_serializing_if = "is_one")]
    queue_size: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deadband: Option<f64>,
    #[serde(default, skip_serializing_if = "is_default")]
    deadband_type: DeadbandType,
}

impl From<AddressFields> for OpcuaAddress {
    fn from(f: AddressFields) -> OpcuaAddress {
        let AddressFields { node, mode, sampling_ms, queue_size, deadband, deadband_type } = f;
        OpcuaAddress::new(&node, mode, ItemSettings { sampling_ms, queue_size, deadband, deadband_type })
    }
}

impl From<OpcuaAddress> for AddressFields {
    fn from(a: OpcuaAddress) -> AddressFields {
        let ItemSettings { sampling_ms, queue_size, deadband, deadband_type } = a.item();
        AddressFields { node: a.node.to_string(), mode: a.mode, sampling_ms, queue_size, deadband, deadband_type }
    }
}

fn d_queue() -> u32 {
    1
}
fn is_one(v: &u32) -> bool {
    *v == 1
}
fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// A node id's namespace: its index on the server, or its URI (looked up once connected).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Namespace {
    Index(u16),
    Uri(String),
}

/// A node id's identifier, checked for its form (a GUID's groups, base64's alphabet).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identifier {
    Numeric(u32),
    String(String),
    Guid(String),
    /// Base64 text of the bytes.
    Opaque(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeRef {
    pub ns: Namespace,
    pub id: Identifier,
}

const NODE_FORMS: &str = "ns=2;i=5, ns=2;s=Name, ns=2;g=<guid>, ns=2;b=<base64> or nsu=<uri>;s=Name";

impl NodeRef {
    /// Reads the text form of a node id (OPC UA Part 6, 5.3.1.10), or says what is wrong with it.
    pub fn parse(text: &str) -> Result<NodeRef, String> {
        let (ns, rest) = match text.split_once(';') {
            Some((first, rest)) if first.starts_with("ns=") => {
                let n = &first[3..];
                (Namespace::Index(n.parse().map_err(|_| format!("namespace index {n:?} is not a number 0-65535"))?), rest)
            }
            Some((first, rest)) if first.starts_with("nsu=") => {
                let uri = &first[4..];
                if uri.is_empty() {
                    return Err("the namespace URI after nsu= is empty".into());
                }
                (Namespace::Uri(uri.into()), rest)
            }
            _ => (Namespace::Index(0), text),
        };
        let Some((kind, value)) = rest.split_once('=') else {
            return Err(format!("{text:?} is not a node id (forms: {NODE_FORMS})"));
        };
        let id = match kind {
            "i" => {
                Identifier::Numeric(value.parse().map_err(|_| format!("the numeric identifier {value:?} is not a number 0-4294967295"))?)
            }
            "s" if !value.is_empty() => Identifier::String(value.into()),
            "s" => return Err("the string identifier after s= is empty".into()),
            "g" if is_guid(value) => Identifier::Guid(value.into()),
            "g" => return Err(format!("{value:?} is not a GUID (8-4-4-4-12 hex digits)")),
            "b" if is_base64(value) => Identifier::Opaque(value.into()),
            "b" => return Err(format!("{value:?} is not base64 text")),
            _ => return Err(format!("{text:?} is not a node id (forms: {NODE_FORMS})")),
        };
        Ok(NodeRef { ns, id })
    }
}

fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12]) && groups.iter().all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn is_base64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !s.is_empty()
        && s.len().is_multiple_of(4)
        && s.len() - body.len() <= 2
        && body.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.ns {
            Namespace::Index(0) => {}
            Namespace::Index(n) => write!(f, "ns={n};")?,
            Namespace::Uri(u) => write!(f, "nsu={u};")?,
        }
        match &self.id {
            Identifier::Numeric(n) => write!(f, "i={n}"),
            Identifier::String(s) => write!(f, "s={s}"),
            Identifier::Guid(g) => write!(f, "g={g}"),
            Identifier::Opaque(b) => write!(f, "b={b}"),
        }
    }
}

impl PointAddress for OpcuaAddress {
    fn check(&self, _meta: &PointMeta, at: &Scope, out: &mut Findings) {
        if let Err(e) = NodeRef::parse(&self.node) {
            out.add(at, "node", e);
        }
        let item = self.item();
        if matches!(item.sampling_ms, Some(s) if s > 3_600_000) {
            out.add(at, "sampling_ms", "must be at most 3600000 (an hour)");
        }
        if item.queue_size == 0 || item.queue_size > 10_000 {
            out.add(at, "queue_size", "must be 1-10000");
        }
        match item.deadband {
            Some(d) if !d.is_finite() || d < 0.0 => out.add(at, "deadband", "must be a number of 0 or more"),
            Some(d) if item.deadband_type == DeadbandType::Percent && d > 100.0 => out.add(at, "deadband", "a percentage: 0-100"),
            _ => {}
        }
        if self.mode == ReadMode::Poll {
            for (key, set) in
                [("sampling_ms", item.sampling_ms.is_some()), ("queue_size", item.queue_size != 1), ("deadband", item.deadband.is_some())]
            {
                if set {
                    out.add(at, key, "applies to subscribed points only (this one has mode = \"poll\")");
                }
            }
        }
    }
}

impl OpcuaDevice {
    /// The security mode in effect (the default follows the policy).
    pub fn mode(&self) -> SecurityMode {
        self.security_mode.unwrap_or(match self.security_policy {
            SecurityPolicy::None => SecurityMode::None,
            _ => SecurityMode::SignAndEncrypt,
        })
    }

    pub fn check(&self, at: &Scope, out: &mut Findings) {
        check_endpoint(&self.endpoint, at, out);
        match (self.security_policy, self.mode()) {
            (SecurityPolicy::None, SecurityMode::None) => {}
            (SecurityPolicy::None, _) => out.add(at, "security_mode", "Sign and SignAndEncrypt need a security policy other than None"),
            (_, SecurityMode::None) => {
                out.add(at, "security_mode", "None sends everything in clear: set security_policy = \"None\" to mean that")
            }
            _ => {}
        }
        let needs = |key: &str, v: &Option<String>, why: &str, out: &mut Findings| {
            if v.as_deref().is_none_or(str::is_empty) {
                out.add(at, key, format!("required with {why}"));
            }
        };
        match self.auth {
            Auth::Anonymous => {}
            Auth::Username => {
                needs("username", &self.username, "auth = \"username\"", out);
                needs("password", &self.password, "auth = \"username\"", out);
            }
            Auth::Certificate => {
                needs("user_cert", &self.user_cert, "auth = \"certificate\"", out);
                needs("user_key", &self.user_key, "auth = \"certificate\"", out);
            }
        }
        if self.auth != Auth::Username && (self.username.is_some() || self.password.is_some()) {
            out.add(at, "auth", "username and password are used only with auth = \"username\"");
        }
        for (key, v) in [("user_cert", &self.user_cert), ("user_key", &self.user_key), ("pki_dir", &Some(self.pki_dir.clone()))] {
            if matches!(v, Some(p) if !p.starts_with('/')) {
                out.add(at, key, "must be an absolute path");
            }
        }
        if !(10_000..=3_600_000).contains(&self.session_timeout_ms) {
            out.add(at, "session_timeout_ms", "must be 10000-3600000");
        }
        for (key, v) in [("publishing_interval_ms", self.publishing_interval_ms), ("poll_interval_ms", self.poll_interval_ms)] {
            if !(10..=3_600_000).contains(&v) {
                out.add(at, key, "must be 10-3600000");
            }
        }
        if !(100..=600_000).contains(&self.request_timeout_ms) {
            out.add(at, "request_timeout_ms", "must be 100-600000");
        }
        crate::line::check_backoff(self.reconnect_min_ms, self.reconnect_max_ms, at, out);
        let mut seen = std::collections::HashMap::new();
        for (i, p) in self.points.iter().enumerate() {
            let Ok(node) = NodeRef::parse(&p.at.node) else { continue };
            if let Some(other) = seen.insert(node, p.name()) {
                out.add(&at.point(i, p.name()), "node", format!("{} is already point \"{other}\"", p.at.node));
            }
        }
    }

    /// What the devices of one server must agree on: their session's settings. The password
    /// is compared by a digest, so a mismatch never prints it.
    pub fn session_settings(&self) -> Vec<(&'static str, String)> {
        use std::hash::{Hash, Hasher};
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let password = self.password.as_ref().map_or(String::new(), |p| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            p.hash(&mut h);
            format!("(a password, digest {:04x})", h.finish() & 0xffff)
        });
        vec![
            ("security_policy", self.security_policy.name().into()),
            ("security_mode", format!("{:?}", self.mode())),
            ("auth", format!("{:?}", self.auth).to_lowercase()),
            ("username", opt(&self.username)),
            ("password", password),
            ("user_cert", opt(&self.user_cert)),
            ("user_key", opt(&self.user_key)),
            ("pki_dir", self.pki_dir.clone()),
            ("session_timeout_ms", self.session_timeout_ms.to_string()),
            ("request_timeout_ms", self.request_timeout_ms.to_string()),
            ("reconnect_min_ms", self.reconnect_min_ms.to_string()),
            ("reconnect_max_ms", self.reconnect_max_ms.to_string()),
        ]
    }

    pub fn point(&self, name: &str) -> Option<&OpcuaPoint> {
        self.points.iter().find(|p| *p.meta.name == *name)
    }
}

/// `opc.tcp://host[:port][/path]`.
fn check_endpoint(url: &str, at: &Scope, out: &mut Findings) {
    let Some(rest) = url.strip_prefix("opc.tcp://") else {
        out.add(at, "endpoint", format!("{url:?} is not an opc.tcp:// URL (e.g. opc.tcp://10.0.0.5:4840)"));
        return;
    };
    let host_port = rest.split('/').next().unwrap_or_default();
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (host_port, None),
    };
    if host.is_empty() {
        out.add(at, "endpoint", "names no host");
    }
    if let Some(p) = port {
        if p.parse::<u16>().ok().filter(|p| *p != 0).is_none() {
            out.add(at, "endpoint", format!("port {p:?} is not 1-65535"));
        }
    }
}

pub const DEVICE_FIELDS: &[Field] =
    &[
        Field::new("endpoint", "Endpoint URL", K::Text, "opc.tcp://host:port/path of the server").required(),
        Field::new("security_policy", "Security policy", K::Choice, "None sends in clear; choose it only on purpose")
            .required()
            .choices(&["None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"]),
        Field::new("security_mode", "Security mode", K::Choice, "Default: SignAndEncrypt with a policy").choices(&[
            "None",
            "Sign",
            "SignAndEncrypt",
        ]),
        Field::new("auth", "User", K::Choice, "How the session's user is identified")
            .choices(&["anonymous", "username", "certificate"])
            .default("anonymous"),
        Field::new("username", "User name", K::Text, "With auth = username"),
        Field::new("password", "Password", K::Text, "With auth = username"),
        Field::new("user_cert", "User certificate", K::Text, "With auth = certificate: the certificate file (DER or PEM)"),
        Field::new("user_key", "User key", K::Text, "With auth = certificate: its private key (PEM)"),
        Field::new("pki_dir", "PKI directory", K::Text, "This gateway's certificate, trusted/ and rejected/ server certificates")
            .default(DEFAULT_PKI_DIR),
        Field::new("session_timeout_ms", "Session timeout (ms)", K::Integer, "The server keeps the session this long across a break")
            .default("60000")
            .range(10_000.0, 3_600_000.0),
        Field::new("publishing_interval_ms", "Publishing interval (ms)", K::Integer, "How often the server sends changes")
            .default("1000")
            .range(10.0, 3_600_000.0),
        Field::new("poll_interval_ms", "Poll interval (ms)", K::Integer, "How often polled points are read")
            .default("1000")
            .range(10.0, 3_600_000.0),
        Field::new("request_timeout_ms", "Request timeout (ms)", K::Integer, "Reads, writes, session requests")
            .default("10000")
            .range(100.0, 600_000.0),
        Field::new("reconnect_min_ms", "Reconnect after (ms)", K::Integer, "First reconnect delay").default("1000"),
        Field::new("reconnect_max_ms", "Reconnect at most (ms)", K::Integer, "Longest reconnect delay").default("30000"),
    ];

pub const POINT_FIELDS: &[Field] = &[
    Field::new("node", "Node id", K::Text, "ns=2;i=5, ns=2;s=Name, ns=2;g=<guid>, ns=2;b=<base64>, nsu=<uri>;s=Name").required(),
    Field::new("mode", "Mode", K::Choice, "subscribe: the server reports changes; poll: read every poll interval")
        .choices(&["subscribe", "poll"])
        .default("subscribe"),
    Field::new("sampling_ms", "Sampling (ms)", K::Integer, "How often the server samples it (default: the publishing interval)")
        .range(0.0, 3_600_000.0),
    Field::new("queue_size", "Queue size", K::Integer, "Changes kept between publishes").default("1").range(1.0, 10_000.0),
    Field::new("deadband", "Deadband", K::Number, "Smaller changes are not reported"),
    Field::new("deadband_type", "Deadband type", K::Choice, "absolute (value units) or percent (of the EU range)")
        .choices(&["absolute", "percent"])
        .default("absolute"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_in_every_form_and_what_is_wrong_with_bad_ones() {
        let ok = |s: &str| NodeRef::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(ok("ns=2;i=5"), NodeRef { ns: Namespace::Index(2), id: Identifier::Numeric(5) });
        assert_eq!(ok("i=2258"), NodeRef { ns: Namespace::Index(0), id: Identifier::Numeric(2258) });
        assert_eq!(ok("ns=3;s=Line 1;P"), NodeRef { ns: Namespace::Index(3), id: Identifier::String("Line 1;P".into()) });
        assert_eq!(ok("ns=1;g=09087e75-8e5e-499b-954f-f2a9603db28a").id, Identifier::Guid("09087e75-8e5e-499b-954f-f2a9603db28a".into()));
        assert_eq!(ok("ns=1;b=M/RbKBsRVkePCePcx24oRA==").id, Identifier::Opaque("M/RbKBsRVkePCePcx24oRA==".into()));
        assert_eq!(ok("nsu=urn:plant:inv;s=P").ns, Namespace::Uri("urn:plant:inv".into()));
        for s in ["ns=2;i=5", "ns=3;s=Line 1;P", "nsu=urn:x;b=AAEC"] {
            assert_eq!(ok(s).to_string(), s);
        }
        let err = |s: &str| NodeRef::parse(s).unwrap_err();
        assert_eq!(err("ns=x;i=5"), "namespace index \"x\" is not a number 0-65535");
        assert_eq!(err("ns=2;i=-1"), "the numeric identifier \"-1\" is not a number 0-4294967295");
        assert_eq!(err("ns=2;g=1234"), "\"1234\" is not a GUID (8-4-4-4-12 hex digits)");
        assert_eq!(err("ns=2;b=@@"), "\"@@\" is not base64 text");
        assert!(err("Temperature").starts_with("\"Temperature\" is not a node id (forms: ns=2;i=5"), "{}", err("Temperature"));
        assert!(err("ns=2;x=5").contains("is not a node id"));
    }

    #[test]
    fn a_short_node_id_is_held_in_the_point_a_long_one_boxed() {
        let short = "ns=2;s=Line1.Power.PV"; // 21 bytes
        let long = "ns=3;s=\"DB_Data\".\"Temperature\"";
        assert!(matches!(NodeText::new(short), NodeText::Inline(..)));
        assert!(matches!(NodeText::new(long), NodeText::Boxed(_)));
        for s in [short, long, "", "ns=2;s=Ünïcødé"] {
            let t = NodeText::new(s);
            assert_eq!((&*t, t.to_string(), format!("{t:?}")), (s, s.to_string(), format!("{s:?}")));
            assert!(t == NodeText::new(s));
        }
        let p: OpcuaPoint = serde_json::from_value(serde_json::json!({"name": "P", "node": long})).unwrap();
        assert_eq!(serde_json::to_value(&p).unwrap()["node"], long);
    }

    #[test]
    fn a_point_with_the_defaults_allocates_no_settings_and_writes_no_keys_for_them() {
        assert_eq!(std::mem::size_of::<OpcuaPoint>(), 112, "the per-point cost docs/protocols/opcua.md (Memory) counts");
        let read = |json: serde_json::Value| serde_json::from_value::<OpcuaPoint>(json).unwrap();
        let plain = read(serde_json::json!({"name": "P", "node": "ns=2;i=5"}));
        assert!(plain.at.filter.is_none() && plain.meta.range == crate::Range::default());
        assert_eq!(serde_json::to_value(&plain).unwrap()["queue_size"], serde_json::Value::Null);
        let queued = read(serde_json::json!({"name": "P", "node": "ns=2;i=5", "queue_size": 10}));
        assert!(queued.at.filter.is_none(), "a queue size alone is kept in the point");
        let set = serde_json::json!({"name": "P", "node": "ns=2;i=5", "queue_size": 4, "deadband": 0.5, "min": 0.0});
        let tuned = read(set.clone());
        assert_eq!(
            (tuned.at.item().queue_size, tuned.at.item().deadband, tuned.meta.min(), tuned.meta.max()),
            (4, Some(0.5), Some(0.0), None)
        );
        let back = serde_json::to_value(&tuned).unwrap();
        assert!(set.as_object().unwrap().iter().all(|(k, v)| back[k] == *v), "{back}");
    }

    fn findings(settings: &str, point: &str) -> Vec<String> {
        let text = format!("id = \"plc\"\nprotocol = \"opcua\"\n{settings}\n[[point]]\nname = \"P\"\n{point}\n");
        let cfg: crate::DeviceConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        let mut out = Findings::default();
        cfg.check(&Scope::root().device(0, "plc"), &mut out);
        out.0.iter().map(|f| f.to_string()).collect()
    }

    #[test]
    fn settings_are_checked_by_name() {
        let base = "endpoint = \"opc.tcp://127.0.0.1:4840\"\nsecurity_policy = \"None\"";
        assert_eq!(findings(base, "node = \"ns=2;i=5\""), Vec::<String>::new());
        let f = findings(
            "endpoint = \"http://plc:4840\"\nsecurity_policy = \"Basic256Sha256\"\nsecurity_mode = \"None\"",
            "node = \"ns=2;i=5\"",
        );
        assert_eq!(f.len(), 2, "{f:#?}");
        assert!(f[0].contains("endpoint") && f[0].contains("is not an opc.tcp:// URL"), "{}", f[0]);
        assert!(f[1].contains("security_mode") && f[1].contains("set security_policy = \"None\""), "{}", f[1]);
        let f = findings(&format!("{base}\nauth = \"username\"\nusername = \"op\""), "node = \"ns=2;s=\"\nmode = \"poll\"\nqueue_size = 5");
        assert_eq!(f.len(), 3, "{f:#?}");
        assert!(f.iter().any(|f| f.contains("password") && f.contains("required with auth = \"username\"")), "{f:#?}");
        assert!(f.iter().any(|f| f.contains("point \"P\"") && f.contains("node") && f.contains("empty")), "{f:#?}");
        assert!(f.iter().any(|f| f.contains("queue_size") && f.contains("subscribed points only")), "{f:#?}");
    }

    #[test]
    fn a_missing_policy_is_refused_in_words() {
        let text = "id = \"plc\"\nprotocol = \"opcua\"\nendpoint = \"opc.tcp://h:4840\"\n";
        let e = toml::from_str::<crate::DeviceConfig>(text).unwrap_err().to_string();
        assert!(e.contains("device \"plc\"") && e.contains("security_policy"), "{e}");
    }
}
