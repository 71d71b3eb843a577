//! The one MQTT adapter: everything that touches paho lives here (creating a client, its
//! connect options with the EnOS sign and TLS, request ids, publishing, and keeping clients alive
//! until paho is done with them). The rest of the uplink speaks in topics and payloads.

use crate::config::CloudConfig;
use enos_cloud::{sign, Identity};
use paho_mqtt as paho;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub type Client = paho::AsyncClient;

/// `enos_cloud::topics::PUBLISH_QOS` (0): why is said there.
const QOS: i32 = enos_cloud::topics::PUBLISH_QOS;

/// Replies to our requests, (reply topic, reply), for whoever waits for them.
pub type Replies = tokio::sync::mpsc::UnboundedReceiver<(String, enos_cloud::Reply)>;

/// Request ids: unique across restarts (seeded from the clock), matched on reply topic + id.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);
pub fn next_id() -> u64 {
    let _ = NEXT_ID.compare_exchange(0, enos_batch::now_ms() % 1_000_000_000 * 1000, Ordering::Relaxed, Ordering::Relaxed);
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// A message from the broker.
pub struct Incoming {
    pub topic: String,
    pub payload: Vec<u8>,
    /// Kept by the broker for whoever subscribes next, not sent now.
    pub retained: bool,
}

/// The messages of one connection; ends when the connection is lost or delivery stopped.
pub struct Inbox(paho::AsyncReceiver<Option<paho::Message>>);

impl Inbox {
    pub async fn next(&mut self) -> Option<Incoming> {
        let m = self.0.recv().await.ok()??;
        Some(Incoming { topic: m.topic().to_string(), payload: m.payload().to_vec(), retained: m.retained() })
    }
}

/// A fresh client (the sign carries a timestamp, so one per connect), connected.
pub async fn connect(c: &CloudConfig, gw: &Identity) -> Result<(Client, Inbox), String> {
    let f = sign::connect_fields(gw, enos_batch::now_ms());
    let mut cli = create(c, &f.client_id)?;
    let inbox = Inbox(cli.get_stream(10_000));
    let opts = connect_options(c, &f)?;
    if let Err(e) = cli.connect(opts).await {
        bury(cli);
        return Err(format!("connect to {}: {e}", c.uri));
    }
    Ok((cli, inbox))
}

/// A CONNECT with these settings apart from any session, then goodbye: why it failed in words.
pub async fn try_connect(c: &CloudConfig, gw: &Identity) -> Result<(), String> {
    let f = sign::connect_fields(gw, enos_batch::now_ms());
    let cli = create(c, &f.client_id)?;
    let opts = connect_options(c, &f)?;
    let r = cli.connect(opts).await;
    if r.is_ok() {
        let _ = cli.disconnect(None).await;
    }
    bury(cli);
    r.map(|_| ()).map_err(|e| {
        let e = e.to_string();
        if e.contains("password") || e.contains("authori") || e.trim() == "(0)" || e.is_empty() {
            format!("the cloud refused the sign-in: check the product key, device key and secret ({e})")
        } else {
            format!("the broker could not be reached or refused: {e}")
        }
    })
}

fn create(c: &CloudConfig, client_id: &str) -> Result<Client, String> {
    paho::CreateOptionsBuilder::new_v3()
        .server_uri(c.uri.replace("mqtts://", "ssl://").replace("mqtt://", "tcp://"))
        .client_id(client_id)
        // The outbox is RocksDB; paho must not keep (and later replay) its own copies.
        .persistence(paho::PersistenceType::None)
        .create_client()
        .map_err(|e| format!("creating MQTT client: {e}"))
}

/// Built in a plain function: paho's option builders hold raw pointers and must not live
/// across an await.
fn connect_options(c: &CloudConfig, f: &sign::ConnectFields) -> Result<paho::ConnectOptions, String> {
    let mut opts = paho::ConnectOptionsBuilder::new_v3();
    opts.keep_alive_interval(Duration::from_secs(c.keepalive_s))
        .clean_session(true)
        .user_name(&f.username)
        .password(f.password.clone())
        .connect_timeout(Duration::from_secs(15))
        .max_inflight(c.max_in_flight as i32 + 16);
    if c.is_tls() {
        let mut ssl = paho::SslOptionsBuilder::new();
        if let Some(ca) = &c.ca_file {
            ssl.trust_store(ca).map_err(|e| format!("cloud.ca_file {}: {e}", ca.display()))?;
        }
        if let (Some(cert), Some(key)) = (&c.cert_file, &c.key_file) {
            ssl.key_store(cert).map_err(|e| format!("cloud.cert_file {}: {e}", cert.display()))?;
            ssl.private_key(key).map_err(|e| format!("cloud.key_file {}: {e}", key.display()))?;
        }
        ssl.enable_server_cert_auth(true).verify(c.verify_hostname);
        opts.ssl_options(ssl.finalize());
    }
    Ok(opts.finalize())
}

pub async fn subscribe(cli: &Client, topics: &[String]) -> Result<(), String> {
    cli.subscribe_many_same_qos(topics, 1).await.map(|_| ()).map_err(|e| format!("subscribe: {e}"))
}

/// Not waited for: the cloud's reply (or its absence) is what counts.
pub fn publish(cli: &Client, topic: &str, payload: &[u8]) {
    drop(cli.publish(paho::Message::new(topic, payload, QOS)));
}

/// Waited until paho has written it.
pub async fn publish_sent(cli: &Client, topic: &str, payload: &[u8]) -> Result<(), String> {
    cli.publish(paho::Message::new(topic, payload, QOS)).await.map_err(|e| e.to_string())
}

/// Hands a message to paho now, or says why it would not take it (the link just dropped).
pub fn try_publish(cli: &Client, topic: &str, payload: &[u8]) -> Result<(), String> {
    cli.try_publish(paho::Message::new(topic, payload, QOS)).map(drop).map_err(|e| e.to_string())
}

/// Publishes a message someone waits for (a command's answer). Paho refuses a publish at once
/// while it cannot take it (a link that just dropped and is back, a full queue): it is offered
/// again for up to `retry_for` rather than lost; a failure is logged (`what` names it).
pub async fn publish_persistently(cli: &Client, topic: &str, payload: &[u8], what: &str, retry_for: Duration) {
    let m = paho::Message::new(topic, payload, QOS);
    let deadline = tokio::time::Instant::now() + retry_for;
    loop {
        let err = match cli.try_publish(m.clone()) {
            Ok(tok) => match tok.await {
                Ok(()) => return,
                Err(e) => e,
            },
            Err(e) => e,
        };
        if !cli.is_connected() {
            // the session ended (a lost link, a stop): that is reported where it happens
            log::warn!("{what} on {topic} not delivered: the cloud session ended ({err})");
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            log::error!("{what} on {topic} not delivered: {err}");
            return;
        }
        log::debug!("{what} refused by the MQTT client ({err}); trying again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn is_connected(cli: &Client) -> bool {
    cli.is_connected()
}

/// Stops delivering incoming messages (before the tasks that take them end).
pub fn stop_delivery(cli: &Client) {
    cli.stop_stream();
}

/// Says goodbye; paho waits up to `timeout` for publications in flight (command answers).
pub async fn disconnect(cli: Client, timeout: Duration) {
    let opts = paho::DisconnectOptionsBuilder::new().timeout(timeout).finalize();
    let _ = tokio::time::timeout(timeout * 2, cli.disconnect(opts)).await;
}

/// Clients kept until paho is surely done with them. Paho destroys a client when its last
/// reference goes; if that last reference is the one a connect callback holds, the destroy runs
/// on paho's own receive thread, which holds paho's global lock: a deadlock that stops every
/// client of the process (seen with gdb: `MQTTAsync_destroy` in `MQTTAsync_rcv`). So a client
/// that may still be in a callback (a failed connect, a test connection, the session replaced by
/// new settings) is never dropped at once: it waits here and goes later, from our thread.
static GRAVEYARD: Mutex<Vec<(Instant, Client)>> = Mutex::new(Vec::new());

pub fn bury(cli: Client) {
    let old: Vec<_> = {
        let mut g = GRAVEYARD.lock().expect("graveyard");
        let (old, keep): (Vec<_>, Vec<_>) = g.drain(..).partition(|(t, _)| t.elapsed() > Duration::from_secs(60));
        *g = keep;
        g.push((Instant::now(), cli));
        old
    };
    drop(old);
}
