//! The MQTT session: connect with the EnOS sign, report the version, hand over to the sender
//! until the connection drops, and log the sub-devices in meanwhile (a lost login reply is asked
//! again on the same session: the gateway's own data keeps flowing). Reconnect: a prompt,
//! jittered first retries after losing a session that was up, then exponential backoff.

use crate::sender;
use crate::state::Shared;
use enos_cloud::{sign, topics, Identity, Reply};
use paho_mqtt as mqtt;
use rand::Rng;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Request ids: unique across restarts (seeded from the clock), matched on reply topic + id.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);
pub fn next_id() -> u64 {
    let _ = NEXT_ID.compare_exchange(0, enos_batch::now_ms() % 1_000_000_000 * 1000, Ordering::Relaxed, Ordering::Relaxed);
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

pub struct Conn {
    pub cli: mqtt::AsyncClient,
    pub replies: mpsc::UnboundedReceiver<(String, Reply)>,
}

/// How long a login request waits for its reply before it is asked again.
const LOGIN_REPLY_S: u64 = 5;
/// Retries after a session was lost come this soon (ms, uniformly drawn: a fleet that lost the
/// same broker does not come back in step), this many times, before the exponential backoff.
const PROMPT_RETRY_MS: std::ops::RangeInclusive<u64> = 500..=1500;
const PROMPT_RETRIES: u32 = 5;

/// Delays between connection attempts.
struct Backoff {
    min_ms: u64,
    max_ms: u64,
    next_ms: u64,
    prompt_left: u32,
}

impl Backoff {
    fn new(min_ms: u64, max_ms: u64) -> Backoff {
        Backoff { min_ms, max_ms, next_ms: min_ms, prompt_left: 0 }
    }

    /// A session that was up was lost: the broker was there a moment ago and likely returns soon.
    fn session_lost(&mut self) {
        self.next_ms = self.min_ms;
        self.prompt_left = PROMPT_RETRIES;
    }

    /// The wait before the next attempt.
    fn next(&mut self) -> Duration {
        let mut rng = rand::rng();
        if self.prompt_left > 0 {
            self.prompt_left -= 1;
            return Duration::from_millis(rng.random_range(PROMPT_RETRY_MS));
        }
        let d = self.next_ms + rng.random_range(0..=self.next_ms / 2);
        self.next_ms = (self.next_ms * 2).min(self.max_ms);
        Duration::from_millis(d)
    }
}

pub async fn run(shared: Arc<Shared>) {
    let c = &shared.cfg.cloud;
    let secret = match c.secret() {
        Ok(s) => s,
        Err(e) => {
            // Not provisioned: telemetry keeps going into the cache; a restart with credentials
            // (web center, provisioning) starts the session and drains it.
            shared.set_cloud_state("unconfigured", &e.to_string());
            return;
        }
    };
    let gw = Identity { product_key: c.product_key.clone(), device_key: c.device_key.clone(), secret };
    let mut backoff = Backoff::new(c.reconnect_min_ms, c.reconnect_max_ms);
    loop {
        shared.set_cloud_state("connecting", "");
        match connect(&shared, &gw).await {
            Ok(conn) => {
                *shared.mqtt.lock().expect("mqtt") = Some(conn.cli.clone());
                let login = tokio::spawn(login_sub_devices(shared.clone(), conn.cli.clone(), conn.logins));
                let reason = sender::run(&shared, Conn { cli: conn.cli, replies: conn.replies }).await;
                login.abort();
                *shared.mqtt.lock().expect("mqtt") = None;
                shared.set_cloud_state("disconnected", &reason);
                backoff.session_lost();
            }
            Err(e) => shared.set_cloud_state("disconnected", &e),
        }
        tokio::time::sleep(backoff.next()).await;
    }
}

/// A fresh connection: replies for the sender, replies to the login requests.
struct Connected {
    cli: mqtt::AsyncClient,
    replies: mpsc::UnboundedReceiver<(String, Reply)>,
    logins: mpsc::UnboundedReceiver<(String, Reply)>,
}

async fn connect(shared: &Arc<Shared>, gw: &Identity) -> Result<Connected, String> {
    let c = &shared.cfg.cloud;
    let f = sign::connect_fields(gw, enos_batch::now_ms());
    let mut cli = mqtt::CreateOptionsBuilder::new_v3()
        .server_uri(c.uri.replace("mqtts://", "ssl://").replace("mqtt://", "tcp://"))
        .client_id(&f.client_id)
        // The outbox is RocksDB; paho must not keep (and later replay) its own copies.
        .persistence(mqtt::PersistenceType::None)
        .create_client()
        .map_err(|e| format!("creating MQTT client: {e}"))?;
    let stream = cli.get_stream(10_000);
    let opts = connect_options(c, &f)?;
    if let Err(e) = cli.connect(opts).await {
        // not dropped here: paho may still hold it in a callback (see cloud_settings::GRAVEYARD)
        crate::cloud_settings::bury(cli);
        return Err(format!("connect to {}: {e}", c.uri));
    }

    // Replies and commands: replies go to whoever waits (login, then the sender), commands are
    // handled on their own tasks so a slow device never holds up the data flow.
    let (tx, replies) = mpsc::unbounded_channel();
    let (login_tx, logins) = mpsc::unbounded_channel();
    {
        let shared = shared.clone();
        let cli = cli.clone();
        tokio::spawn(async move {
            while let Ok(msg) = stream.recv().await {
                let Some(msg) = msg else { break };
                let topic = msg.topic().to_string();
                if topic.ends_with("_reply") {
                    let login = topic.ends_with(topics::TOPO_ADD_REPLY) || topic.ends_with(topics::LOGIN_BATCH_REPLY);
                    match Reply::parse(msg.payload()) {
                        Some(r) => {
                            let _ = if login { login_tx.send((topic, r)) } else { tx.send((topic, r)) };
                        }
                        None => log::warn!("unparsable reply on {topic}"),
                    }
                } else {
                    tokio::spawn(crate::commands::handle(shared.clone(), cli.clone(), topic, msg.payload().to_vec()));
                }
            }
            // The stream ends (or yields None) when the connection is lost.
        });
    }

    let (pk, dk) = (&c.product_key, &c.device_key);
    let mut subs: Vec<String> = [topics::POST_BATCH, topics::RESUME_BATCH, topics::TOPO_ADD, topics::OTA_INFORM]
        .iter()
        .map(|t| topics::reply_of(&topics::sys(pk, dk, t)))
        .collect();
    subs.push(topics::reply_of(&topics::session(pk, dk, topics::LOGIN_BATCH)));
    let mut devices = vec![(pk.clone(), dk.clone())];
    devices.extend(shared.cfg.sub_devices.iter().map(|s| (s.product_key.clone(), s.device_key.clone())));
    for (p, d) in &devices {
        subs.push(topics::sys(p, d, topics::MEASUREPOINT_SET));
        subs.push(topics::sys(p, d, "thing/service/+"));
    }
    subs.push(topics::sys(pk, dk, topics::OTA_UPGRADE));
    cli.subscribe_many_same_qos(&subs, 1).await.map_err(|e| format!("subscribe: {e}"))?;

    shared.subs_logged_in.store(shared.cfg.sub_devices.is_empty(), Ordering::Relaxed);
    let version = crate::ota::product_version(shared).await;
    let inform = topics::sys(pk, dk, topics::OTA_INFORM);
    drop(cli.publish(mqtt::Message::new(
        inform,
        enos_cloud::request(next_id(), "ota.device.inform", serde_json::json!({"version": version})),
        1,
    )));
    shared.set_cloud_state("connected", "");
    Ok(Connected { cli, replies, logins })
}

/// Built in a plain function: paho's option builders hold raw pointers and must not live
/// across an await.
pub(crate) fn connect_options(c: &crate::config::CloudConfig, f: &sign::ConnectFields) -> Result<mqtt::ConnectOptions, String> {
    let mut opts = mqtt::ConnectOptionsBuilder::new_v3();
    opts.keep_alive_interval(Duration::from_secs(c.keepalive_s))
        .clean_session(true)
        .user_name(&f.username)
        .password(f.password.clone())
        .connect_timeout(Duration::from_secs(15))
        .max_inflight(c.max_in_flight as i32 + 16);
    if c.is_tls() {
        let mut ssl = mqtt::SslOptionsBuilder::new();
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

/// Topology add, then a batch login, after every connect (logins do not survive a reconnect).
/// A request without a reply in time, or refused, is asked again with backoff on the same
/// session; the sender meanwhile sends what needs no login.
async fn login_sub_devices(shared: Arc<Shared>, cli: mqtt::AsyncClient, mut replies: mpsc::UnboundedReceiver<(String, Reply)>) {
    if shared.cfg.sub_devices.is_empty() {
        return;
    }
    let mut wait = Backoff::new(1000, 30_000);
    loop {
        match login_once(&shared, &cli, &mut replies).await {
            Ok(n) => {
                shared.cloud.lock().expect("cloud").sub_devices_logged_in = n;
                shared.subs_logged_in.store(true, Ordering::Relaxed);
                shared.new_data.notify_one();
                return;
            }
            Err(e) => {
                let d = wait.next();
                log::warn!("sub-device login: {e}; asking again in {:.1} s", d.as_secs_f64());
                tokio::time::sleep(d).await;
            }
        }
    }
}

async fn login_once(
    shared: &Arc<Shared>,
    cli: &mqtt::AsyncClient,
    replies: &mut mpsc::UnboundedReceiver<(String, Reply)>,
) -> Result<usize, String> {
    let c = &shared.cfg.cloud;
    let ts = enos_batch::now_ms().to_string();
    let mut topo = Vec::new();
    let mut subs = Vec::new();
    for (i, s) in shared.cfg.sub_devices.iter().enumerate() {
        let secret = s.secret(i).map_err(|e| e.to_string())?;
        let client_id = format!("{}.{}.{ts}", s.product_key, s.device_key);
        let four = |cid: &str| {
            sign::sign(&[("clientId", cid), ("deviceKey", &s.device_key), ("productKey", &s.product_key), ("timestamp", &ts)], &secret)
        };
        topo.push(serde_json::json!({"productKey": s.product_key, "deviceKey": s.device_key, "clientId": client_id, "timestamp": ts, "signMethod": "sha256", "sign": four(&client_id)}));
        subs.push(
            serde_json::json!({"productKey": s.product_key, "deviceKey": s.device_key, "secureMode": "2", "sign": four("login.batch")}),
        );
    }
    let topo_topic = topics::sys(&c.product_key, &c.device_key, topics::TOPO_ADD);
    call(cli, replies, &topo_topic, "thing.topo.add", serde_json::Value::Array(topo)).await?;
    let login_topic = topics::session(&c.product_key, &c.device_key, topics::LOGIN_BATCH);
    let r = call(
        cli,
        replies,
        &login_topic,
        "combine.login.batch",
        serde_json::json!({"clientId": "login.batch", "timestamp": ts, "signMethod": "sha256", "subDevices": subs}),
    )
    .await?;
    if let Some(failed) = r.data.get("failedSubDevices").and_then(|v| v.as_array()).filter(|a| !a.is_empty()) {
        log::warn!("sub-device login failed for {failed:?}");
    }
    Ok(r.data.get("loginedSubDevices").and_then(|v| v.as_array()).map(|a| a.len()).unwrap_or(0))
}

async fn call(
    cli: &mqtt::AsyncClient,
    replies: &mut mpsc::UnboundedReceiver<(String, Reply)>,
    topic: &str,
    method: &str,
    params: serde_json::Value,
) -> Result<Reply, String> {
    let id = next_id();
    cli.publish(mqtt::Message::new(topic, enos_cloud::request(id, method, params), 1)).await.map_err(|e| format!("{method}: {e}"))?;
    let want = topics::reply_of(topic);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(LOGIN_REPLY_S);
    loop {
        match tokio::time::timeout_at(deadline, replies.recv()).await {
            Ok(Some((t, r))) if t == want && r.id == id.to_string() => {
                return if r.code == 200 { Ok(r) } else { Err(format!("{method} refused: code {} {}", r.code, r.message)) };
            }
            Ok(Some(_)) => continue, // a late reply to an earlier attempt
            Ok(None) => return Err("connection lost".into()),
            Err(_) => return Err(format!("{method}: no reply in {LOGIN_REPLY_S} s")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_session_gets_prompt_jittered_retries_then_backoff() {
        let mut b = Backoff::new(1000, 8000);
        let ms = |d: Duration| d.as_millis() as u64;
        // never connected yet: the configured backoff
        assert!((1000..=1500).contains(&ms(b.next())));
        assert!((2000..=3000).contains(&ms(b.next())));
        b.session_lost();
        let prompt: Vec<u64> = (0..PROMPT_RETRIES).map(|_| ms(b.next())).collect();
        assert!(prompt.iter().all(|d| PROMPT_RETRY_MS.contains(d)), "{prompt:?}");
        assert!(prompt.windows(2).any(|w| w[0] != w[1]), "jittered: {prompt:?}");
        assert!((1000..=1500).contains(&ms(b.next())), "then the backoff from its start");
        for _ in 0..10 {
            b.next();
        }
        assert!((8000..=12000).contains(&ms(b.next())), "bounded by the maximum (plus jitter)");
    }
}
