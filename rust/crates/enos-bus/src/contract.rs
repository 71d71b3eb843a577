//! The contract as data: every service's name, object, interfaces and their members with their
//! D-Bus signatures. The proxies in `lib.rs` and the servers in the services are written against
//! it; `enos-testkit/tests/bus_contract.rs` introspects every running service and compares what it
//! serves with this table (both ways), `bus_proxies.rs` records what every proxy sends and decodes
//! against it, and the proxies' names are checked against it below.

/// A method: name, argument signature, reply signature.
pub struct Method {
    pub name: &'static str,
    pub args: &'static str,
    pub reply: &'static str,
}

/// A signal: name, argument signature.
pub struct Signal {
    pub name: &'static str,
    pub args: &'static str,
}

pub struct Interface {
    pub name: &'static str,
    pub methods: &'static [Method],
    pub signals: &'static [Signal],
}

pub struct Service {
    pub bus_name: &'static str,
    pub path: &'static str,
    pub interfaces: &'static [Interface],
}

const fn m(name: &'static str, args: &'static str, reply: &'static str) -> Method {
    Method { name, args, reply }
}

const fn s(name: &'static str, args: &'static str) -> Signal {
    Signal { name, args }
}

pub const COLLECTOR_NAME: &str = "org.enos.Edge.Collector";
pub const COLLECTOR_PATH: &str = "/org/enos/Edge/Collector";
pub const COLLECTOR_IFACE: &str = "org.enos.Edge.Collector1";
pub const UPLINK_NAME: &str = "org.enos.Edge.Uplink";
pub const UPLINK_PATH: &str = "/org/enos/Edge/Uplink";
pub const UPLINK_IFACE: &str = "org.enos.Edge.Uplink1";
pub const UPLINK_SETTINGS_IFACE: &str = "org.enos.Edge.UplinkSettings1";
pub const UPLINK_INSPECT_IFACE: &str = "org.enos.Edge.UplinkInspect1";
pub const OTA_NAME: &str = "org.enos.Edge.Ota";
pub const OTA_PATH: &str = "/org/enos/Edge/Ota";
pub const OTA_IFACE: &str = "org.enos.Edge.Ota1";
pub const WEB_NAME: &str = "org.enos.Edge.Web";
pub const WEB_PATH: &str = "/org/enos/Edge/Web";
pub const WEB_IFACE: &str = "org.enos.Edge.Web1";
/// Prefix of the services' D-Bus errors (`crate::Error`).
pub const ERROR_PREFIX: &str = "org.enos.Edge.Error";

pub const COLLECTOR1: Interface = Interface {
    name: COLLECTOR_IFACE,
    methods: &[
        m("ListDevices", "", "s"),
        m("ReadPoints", "sas", "s"),
        m("WritePoint", "sss", "s"),
        m("Stats", "", "s"),
        m("GetConfig", "", "s"),
        m("ValidateConfig", "s", "s"),
        m("ApplyConfig", "s", "s"),
        m("ListDeviceModels", "", "s"),
        m("ListPlugins", "", "s"),
        m("ReadRaw", "ss", "s"),
        m("LiveValues", "st", "s"),
        m("InstallPackage", "ay", "s"),
        m("Packages", "", "s"),
        m("SetLogLevel", "s", "s"),
        m("ListOpcuaCertificates", "s", "s"),
        m("TrustOpcuaCertificate", "ss", "s"),
        m("RemoveOpcuaCertificate", "ss", "s"),
    ],
    signals: &[s("DeviceStateChanged", "sss")],
};

pub const UPLINK1: Interface = Interface {
    name: UPLINK_IFACE,
    methods: &[m("PushTelemetry", "ay", "t"), m("Status", "", "s")],
    signals: &[s("CloudStateChanged", "ss")],
};

pub const UPLINK_SETTINGS1: Interface = Interface {
    name: UPLINK_SETTINGS_IFACE,
    methods: &[m("GetCloudSettings", "", "s"), m("SetCloudSettings", "s", "s"), m("TestConnection", "s", "s")],
    signals: &[],
};

pub const UPLINK_INSPECT1: Interface =
    Interface { name: UPLINK_INSPECT_IFACE, methods: &[m("LastSent", "s", "s"), m("DeviceModel", "sb", "s")], signals: &[] };

pub const OTA1: Interface = Interface {
    name: OTA_IFACE,
    methods: &[
        m("StartJob", "s", "s"),
        m("InstallFile", "s", "s"),
        m("Status", "", "s"),
        m("History", "", "s"),
        m("Rollback", "", "s"),
        m("SetLogLevel", "s", "s"),
    ],
    signals: &[s("Progress", "sis"), s("VersionChanged", "ss")],
};

/// The web center serves pages, not the bus: its name is only for what the cloud may change in it.
pub const WEB1: Interface = Interface { name: WEB_IFACE, methods: &[m("SetLogLevel", "s", "s")], signals: &[] };

/// Every service on the bus, as the policies in `meta-enos-edge` and `docs/security.md` know them.
pub const SERVICES: &[Service] = &[
    Service { bus_name: COLLECTOR_NAME, path: COLLECTOR_PATH, interfaces: &[COLLECTOR1] },
    Service { bus_name: UPLINK_NAME, path: UPLINK_PATH, interfaces: &[UPLINK1, UPLINK_SETTINGS1, UPLINK_INSPECT1] },
    Service { bus_name: OTA_NAME, path: OTA_PATH, interfaces: &[OTA1] },
    Service { bus_name: WEB_NAME, path: WEB_PATH, interfaces: &[WEB1] },
];

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::proxy::Defaults;

    fn check<P: Defaults>(service: &str, path: &str, iface: &Interface) {
        assert_eq!(P::DESTINATION.as_ref().map(|n| n.to_string()).as_deref(), Some(service));
        assert_eq!(P::PATH.as_ref().map(|p| p.to_string()).as_deref(), Some(path));
        assert_eq!(P::INTERFACE.as_ref().map(|i| i.to_string()).as_deref(), Some(iface.name));
    }

    /// The proxy attributes need literals; this ties them to the names above.
    #[test]
    fn proxies_use_the_contracts_names() {
        check::<crate::CollectorProxy>(COLLECTOR_NAME, COLLECTOR_PATH, &COLLECTOR1);
        check::<crate::UplinkProxy>(UPLINK_NAME, UPLINK_PATH, &UPLINK1);
        check::<crate::UplinkSettingsProxy>(UPLINK_NAME, UPLINK_PATH, &UPLINK_SETTINGS1);
        check::<crate::UplinkInspectProxy>(UPLINK_NAME, UPLINK_PATH, &UPLINK_INSPECT1);
        check::<crate::OtaProxy>(OTA_NAME, OTA_PATH, &OTA1);
        check::<crate::WebProxy>(WEB_NAME, WEB_PATH, &WEB1);
    }
}
