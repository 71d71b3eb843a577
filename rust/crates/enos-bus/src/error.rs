//! The one error type of the contract: what a service answers when a call fails, and what a
//! caller gets back, the bus's own failures included. On the bus a service's error is named
//! `org.enos.Edge.Error.<Kind>` and carries its message in words; callers print the message
//! only (`Display`), never the D-Bus name.

/// A failed call. The service kinds carry the message the service gave, meant for people.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.enos.Edge.Error", impl_display = false)]
pub enum Error {
    /// The bus or the connection failed (the service is not running, the bus policy refused the
    /// call, no answer), or a service that is not ours answered.
    #[zbus(error)]
    Bus(zbus::Error),
    /// The request is wrong: a malformed document, a value out of range; the message names what.
    InvalidArgs(String),
    /// The device, point or file the request names does not exist.
    NotFound(String),
    /// Refused in the service's present state (an update already running).
    Busy(String),
    /// Asked for something this build does not do.
    NotSupported(String),
    /// The service tried and failed (a driver stopped, the disk); the message says where.
    Failed(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// The well-known D-Bus error names callers tell apart.
const SERVICE_UNKNOWN: &str = "org.freedesktop.DBus.Error.ServiceUnknown";
const NAME_HAS_NO_OWNER: &str = "org.freedesktop.DBus.Error.NameHasNoOwner";
const ACCESS_DENIED: &str = "org.freedesktop.DBus.Error.AccessDenied";
const NO_REPLY: &str = "org.freedesktop.DBus.Error.NoReply";
const UNKNOWN_METHOD: &str = "org.freedesktop.DBus.Error.UnknownMethod";
const UNKNOWN_INTERFACE: &str = "org.freedesktop.DBus.Error.UnknownInterface";
const UNKNOWN_OBJECT: &str = "org.freedesktop.DBus.Error.UnknownObject";

impl Error {
    /// The D-Bus error name and message of a bus failure, whichever form zbus gave it.
    fn bus_name(e: &zbus::Error) -> Option<(String, Option<String>)> {
        use zbus::DBusError;
        match e {
            zbus::Error::MethodError(name, desc, _) => Some((name.to_string(), desc.clone())),
            zbus::Error::FDO(f) => Some((f.name().to_string(), f.description().map(str::to_string))),
            _ => None,
        }
    }

    /// The service is not on the bus (not running, or still starting).
    pub fn is_absent(&self) -> bool {
        matches!(self, Error::Bus(e) if Self::bus_name(e).is_some_and(|(n, _)| n == SERVICE_UNKNOWN || n == NAME_HAS_NO_OWNER))
    }

    /// The bus policy refused the call (`docs/security.md`).
    pub fn is_denied(&self) -> bool {
        matches!(self, Error::Bus(e) if Self::bus_name(e).is_some_and(|(n, _)| n == ACCESS_DENIED))
    }

    /// The service did not answer in time.
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Bus(e) => {
                matches!(e, zbus::Error::InputOutput(_))
                    || Self::bus_name(e).is_some_and(|(n, _)| n == NO_REPLY || n.ends_with(".Timeout") || n.ends_with(".TimedOut"))
            }
            _ => false,
        }
    }
}

/// Our service a bus daemon's message names ("The name org.enos.Edge.Ota was not provided…").
fn service_named(desc: Option<&str>) -> Option<&'static str> {
    let names = [(crate::COLLECTOR_NAME, "enos-collector"), (crate::UPLINK_NAME, "enos-uplink"), (crate::OTA_NAME, "enos-ota")];
    let words = desc?.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-'));
    words.filter_map(|w| names.iter().find(|(n, _)| *n == w)).map(|(_, s)| *s).next()
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidArgs(m) | Error::NotFound(m) | Error::Busy(m) | Error::NotSupported(m) | Error::Failed(m) => f.write_str(m),
            Error::Bus(e) if self.is_absent() => match Self::bus_name(e).and_then(|(_, d)| service_named(d.as_deref())) {
                Some(s) => write!(f, "{s} is not running"),
                None => f.write_str("the service is not running"),
            },
            Error::Bus(_) if self.is_denied() => f.write_str("the bus policy does not allow this caller to make this call"),
            Error::Bus(e) => match Self::bus_name(e) {
                Some((n, _)) if n == NO_REPLY => f.write_str("the service did not answer"),
                Some((n, _)) if n == UNKNOWN_METHOD || n == UNKNOWN_INTERFACE || n == UNKNOWN_OBJECT => {
                    f.write_str("the service does not know this call (a different version of it?)")
                }
                Some((_, Some(m))) if !m.is_empty() => f.write_str(&m),
                Some((n, _)) => write!(f, "the call failed ({n})"),
                None => write!(f, "the bus: {e}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::DBusError;

    #[test]
    fn names_carry_the_prefix_and_messages_stay_words() {
        let e = Error::InvalidArgs("port: 70000 is not a port".into());
        assert_eq!(e.name().as_str(), "org.enos.Edge.Error.InvalidArgs");
        assert_eq!(e.to_string(), "port: 70000 is not a port");
    }

    #[test]
    fn a_method_error_comes_back_as_its_kind() {
        let name = zbus::names::OwnedErrorName::try_from("org.enos.Edge.Error.NotFound").unwrap();
        let msg = zbus::message::Message::method_call("/a", "M").build(&()).unwrap();
        let e = Error::from(zbus::Error::MethodError(name, Some("no device \"x\"".into()), msg.clone()));
        assert!(matches!(&e, Error::NotFound(m) if m == "no device \"x\""), "{e:?}");
        let absent = zbus::names::OwnedErrorName::try_from(SERVICE_UNKNOWN).unwrap();
        let e = Error::from(zbus::Error::MethodError(absent.clone(), Some("The name is not activatable".into()), msg.clone()));
        assert!(e.is_absent());
        assert_eq!(e.to_string(), "the service is not running");
        let text = "The name org.enos.Edge.Ota was not provided by any .service files";
        let e = Error::from(zbus::Error::MethodError(absent, Some(text.into()), msg.clone()));
        assert_eq!(e.to_string(), "enos-ota is not running");
        let denied = zbus::names::OwnedErrorName::try_from(ACCESS_DENIED).unwrap();
        let e = Error::from(zbus::Error::MethodError(denied, Some("Rejected send message, 2 matched rules; ...".into()), msg));
        assert!(e.is_denied());
        assert!(!e.to_string().contains("org.freedesktop"), "{e}");
    }
}
