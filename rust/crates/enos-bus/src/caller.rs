//! Who made a call: the unix user the bus daemon vouches for (it read the sender's credentials
//! from the socket), so a service can say in its journal whether a write came from the cloud
//! (through `enos-uplink`), the web center or an operator's `enosctl`.

use zbus::message::Header;

pub struct Caller {
    /// The sender's unique bus name (`:1.42`).
    pub sender: String,
    pub uid: Option<u32>,
    pub user: Option<String>,
}

impl Caller {
    /// Asks the bus for the sender's uid (`GetConnectionUnixUser`); what it cannot tell stays
    /// `None` rather than failing the call being served.
    pub async fn of(conn: &zbus::Connection, hdr: &Header<'_>) -> Caller {
        let sender = hdr.sender().map(|s| s.to_string()).unwrap_or_default();
        let uid = match (hdr.sender(), zbus::fdo::DBusProxy::new(conn).await) {
            (Some(s), Ok(p)) => p.get_connection_unix_user(s.clone().into()).await.ok(),
            _ => None,
        };
        let user = uid.and_then(|u| nix::unistd::User::from_uid(u.into()).ok().flatten()).map(|u| u.name);
        Caller { sender, uid, user }
    }

    /// The request came from the uplink: a command of the cloud.
    pub fn is_cloud(&self) -> bool {
        self.user.as_deref() == Some("enos-uplink")
    }
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.user, self.uid) {
            (Some(u), Some(id)) if u == "enos-uplink" => write!(f, "the cloud through {u} (uid {id})"),
            (Some(u), Some(id)) => write!(f, "{u} (uid {id})"),
            (None, Some(id)) => write!(f, "uid {id}"),
            _ => write!(f, "an unknown caller ({})", self.sender),
        }
    }
}
