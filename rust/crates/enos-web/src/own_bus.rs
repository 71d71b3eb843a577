//! `org.enos.Edge.Web`: the web center's own name on the bus, for the one thing another service
//! asks of it: `Web1.SetLogLevel` (the cloud's `setParameter web.log_level`, through the uplink;
//! the policy allows the uplink, root and operators). Everything else the web center does on the
//! bus, it asks of the others.

use enos_bus::{Caller, Error, Result};

pub struct Web;

#[zbus::interface(name = "org.enos.Edge.Web1")]
impl Web {
    /// The level of the web center's own log lines until it stops; answers the one it had.
    async fn set_log_level(
        &self,
        level: &str,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
    ) -> Result<String> {
        enos_runtime::set_log_level_by(level, Caller::of(conn, &hdr).await).map_err(Error::InvalidArgs)
    }
}

/// Serves `Web1` on the web center's connection. A bus that refuses the name (a policy file
/// missing) costs only this method, not the pages: said in the log, and the web center goes on.
pub async fn serve(conn: &zbus::Connection) {
    let served = match conn.object_server().at(enos_bus::WEB_PATH, Web).await {
        Ok(_) => conn.request_name(enos_bus::WEB_NAME).await,
        Err(e) => Err(e),
    };
    if let Err(e) = served {
        log::warn!("{} not taken on the bus ({e}): the cloud cannot change the web center's log level", enos_bus::WEB_NAME);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn serves_the_contracts_interface() {
        use zbus::object_server::Interface;
        assert_eq!(super::Web::name().as_str(), enos_bus::WEB_IFACE);
    }
}
