//! The protocol registry of the configuration: per protocol, its name, label, device settings and
//! point fields. The web center builds its device form and point grid from `describe()`, CSV
//! tables take their columns from it, and the driver registry (`enos_drivers::registry`) maps the
//! same protocols to drivers. Adding a protocol: its module here, a `ProtocolConfig` variant, an
//! entry below, and its driver.

use crate::device::Protocol;
use crate::fields::{Field, POINT_COMMON, POINT_NAME};
use crate::point::{Point, PointAddress};
use crate::{dlt645, dnp3, iec104, modbus, opcua, plugin};
use enos_config::{Findings, Scope};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub struct ProtocolSpec {
    pub protocol: Protocol,
    pub label: &'static str,
    pub device_fields: &'static [Field],
    /// The protocol's point address fields (the common ones come from `fields::POINT_COMMON`).
    pub address_fields: &'static [Field],
    /// One point given as a JSON document (a CSV row, a grid row): its findings and the point
    /// as the files write it (defaults filled in), or why it is not a point of this protocol.
    pub check_point: fn(serde_json::Value) -> Result<(Findings, serde_json::Value), String>,
}

fn check_point<A: PointAddress + DeserializeOwned + Serialize>(v: serde_json::Value) -> Result<(Findings, serde_json::Value), String> {
    let p: Point<A> = crate::doc::read(v)?;
    let mut out = Findings::default();
    p.check(&Scope::root(), &mut out);
    Ok((out, serde_json::to_value(&p).map_err(|e| e.to_string())?))
}

pub const ALL: &[ProtocolSpec] = &[
    ProtocolSpec {
        protocol: Protocol::ModbusTcp,
        label: "Modbus TCP",
        device_fields: modbus::DEVICE_FIELDS,
        address_fields: modbus::POINT_FIELDS,
        check_point: check_point::<modbus::ModbusAddress>,
    },
    ProtocolSpec {
        protocol: Protocol::ModbusRtu,
        label: "Modbus RTU (serial line)",
        device_fields: modbus::DEVICE_FIELDS,
        address_fields: modbus::POINT_FIELDS,
        check_point: check_point::<modbus::ModbusAddress>,
    },
    ProtocolSpec {
        protocol: Protocol::ModbusRtuOverTcp,
        label: "Modbus RTU over TCP",
        device_fields: modbus::DEVICE_FIELDS,
        address_fields: modbus::POINT_FIELDS,
        check_point: check_point::<modbus::ModbusAddress>,
    },
    ProtocolSpec {
        protocol: Protocol::Iec104,
        label: "IEC 60870-5-104",
        device_fields: iec104::DEVICE_FIELDS,
        address_fields: iec104::POINT_FIELDS,
        check_point: check_point::<iec104::Iec104Address>,
    },
    ProtocolSpec {
        protocol: Protocol::Dlt645,
        label: "DL/T 645-2007 meter",
        device_fields: dlt645::DEVICE_FIELDS,
        address_fields: dlt645::POINT_FIELDS,
        check_point: check_point::<dlt645::Dlt645Address>,
    },
    ProtocolSpec {
        protocol: Protocol::Dnp3,
        label: "DNP3 (IEEE 1815) outstation",
        device_fields: dnp3::DEVICE_FIELDS,
        address_fields: dnp3::POINT_FIELDS,
        check_point: check_point::<dnp3::Dnp3Address>,
    },
    ProtocolSpec {
        protocol: Protocol::Opcua,
        label: "OPC UA server",
        device_fields: opcua::DEVICE_FIELDS,
        address_fields: opcua::POINT_FIELDS,
        check_point: check_point::<opcua::OpcuaAddress>,
    },
    ProtocolSpec {
        protocol: Protocol::Plugin,
        label: "Protocol plugin (WebAssembly)",
        device_fields: plugin::DEVICE_FIELDS,
        address_fields: plugin::POINT_FIELDS,
        check_point: check_point::<plugin::PluginAddress>,
    },
];

pub fn spec(p: Protocol) -> &'static ProtocolSpec {
    ALL.iter().find(|s| s.protocol == p).expect("every protocol has an entry (tested)")
}

impl ProtocolSpec {
    /// Every field of a point in the order tables show them: name, address, the rest.
    pub fn point_fields(&self) -> Vec<&'static Field> {
        std::iter::once(&POINT_NAME).chain(self.address_fields).chain(POINT_COMMON).collect()
    }
}

/// One protocol as the web center sees it (`GET /api/protocols`).
#[derive(Debug, Serialize)]
pub struct ProtocolInfo {
    pub name: &'static str,
    pub label: &'static str,
    pub device_fields: &'static [Field],
    pub point_fields: Vec<&'static Field>,
}

pub fn describe() -> Vec<ProtocolInfo> {
    ALL.iter()
        .map(|s| ProtocolInfo { name: s.protocol.name(), label: s.label, device_fields: s.device_fields, point_fields: s.point_fields() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceConfig;

    #[test]
    fn every_protocol_has_one_entry_and_its_fields_are_the_files_keys() {
        for p in Protocol::ALL {
            assert_eq!(ALL.iter().filter(|s| s.protocol == p).count(), 1, "{p}");
        }
        // A device with every point field set serialises to exactly the described keys: the
        // descriptions cannot drift from the types.
        let point = |extra: &str| {
            format!("name = \"p\"\nscale = 2.0\noffset = 1.0\nunit = \"kW\"\naccess = \"rw\"\nmin = 0\nmax = 9\ndecimals = 2\n{extra}")
        };
        let cases = [
            ("modbus-tcp", "address = \"h:1\"", "area = \"holding\"\naddress = 1\ntype = \"bit\"\nbit = 3\nlength = 1\ngroup = \"default\"\nnew_block = true\norder = \"CDAB\""),
            ("iec104", "address = \"h:1\"", "ca = 2\nioa = 7\ntype = \"M_SP\"\ncommand = \"C_SC\"\ncommand_ioa = 9\nselect_before_operate = true\nqualifier = 1"),
            ("dlt645", "address = \"h:1\"\nmeter = \"000000000001\"", "di = \"02010100\"\nformat = \"XXX.X\"\ngroup = \"default\""),
            ("dnp3", "address = \"h:1\"", "type = \"BO\"\nindex = 3\ncommand = \"pulse\"\nselect_before_operate = true\npulse_ms = 500"),
            ("opcua", "endpoint = \"opc.tcp://h:1\"\nsecurity_policy = \"None\"", "node = \"ns=2;i=5\"\nmode = \"poll\"\nsampling_ms = 100\nqueue_size = 4\ndeadband = 0.5\ndeadband_type = \"percent\""),
            ("plugin", "plugin = \"m\"", "address = \"1.8.0\"\nselect_before_operate = true"),
        ];
        for (proto, settings, addr) in cases {
            let text = format!("id = \"d\"\nprotocol = \"{proto}\"\n{settings}\n[[point]]\n{}\n", point(addr));
            let d: DeviceConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{proto}: {e}"));
            let got: Vec<String> = d.proto.points_json()[0].as_object().unwrap().keys().cloned().collect();
            let mut want: Vec<String> = spec(d.protocol()).point_fields().iter().map(|f| f.key.to_string()).collect();
            let mut got_sorted = got.clone();
            got_sorted.sort();
            want.sort();
            assert_eq!(got_sorted, want, "{proto}");
        }
    }
}
