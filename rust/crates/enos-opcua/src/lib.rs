//! The collector's OPC UA client, on async-opcua (client only, RustCrypto, no OpenSSL).
//!
//! One [`Client`] is one session to one server, with any number of subscriptions (the
//! collector makes one per device). async-opcua keeps the session alive and, after a break,
//! reactivates it (the server kept it: its subscriptions go on) or creates a new one, for which
//! this crate makes the subscriptions again; after a reactivation it asks for what the server
//! sent to the dead connection (Republish) and keeps every subscription's messages in order
//! (`order`); it turns all that into [`Event`]s in words,
//! resolves `nsu=` namespaces, and keeps the gateway's certificate store (`pki`).

mod browse;
mod client;
mod order;
mod pki;
mod status;
pub mod trust;

pub use browse::{access_words, class_name, Browsed, Children, MAX_REFERENCES};
pub use client::{Client, Deadband, Event, Identity, Item, Items, Settings, SubscriptionSpec};
pub use opcua;
pub use status::words;

/// Why a session could not be set up, in words.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server did not answer GetEndpoints (down, wrong address, not OPC UA).
    #[error("cannot reach the OPC UA server at {url}: {why}")]
    Unreachable { url: String, why: String },
    /// The server offers no endpoint with the configured security.
    #[error("the server at {url} offers no endpoint with security policy {policy} and mode {mode} (it offers: {offered})")]
    NoEndpoint { url: String, policy: String, mode: String, offered: String },
    /// A file of the configuration (user certificate or key) or the PKI directory.
    #[error("{0}")]
    Setup(String),
    /// A service call failed; the status code in words.
    #[error("{0}")]
    Service(String),
}
