//! The MQTT session: connect with the EnOS sign, log the sub-devices in, report the version,
//! then hand over to the sender until the connection drops; reconnect with backoff and jitter.

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
    let _ = NEXT_ID.compare_exchange(0, enos_model::now_ms() % 1_000_000_000 * 1000, Ordering::Relaxed, Ordering::Relaxed);
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

pub struct Conn {
    pub cli: mqtt::AsyncClient,
    pub replies: mpsc::UnboundedReceiver<(String, Reply)>,
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
    let mut backoff = c.reconnect_min_ms;
    loop {
        shared.set_cloud_state("connecting", "");
        match connect(&shared, &gw).await {
            Ok(conn) => {
                backoff = c.reconnect_min_ms;
                *shared.mqtt.lock().expect("mqtt") = Some(conn.cli.clone());
                let reason = sender::run(&shared, conn).await;
                *shared.mqtt.lock().expect("mqtt") = None;
                shared.set_cloud_state("disconnected", &reason);
            }
            Err(e) => {
                shared.set_cloud_state("disconnected", &e);
                let jitter = rand::rng().random_range(0..=backoff / 2);
                tokio::time::sleep(Duration::from_millis(backoff + jitter)).await;
                backoff = (backoff * 2).min(c.reconnect_max_ms);
            }
        }
    }
}

async fn connect(shared: &Arc<Shared>, gw: &Identity) -> Result<Conn, String> {
    let c = &shared.cfg.cloud;
    let f = sign::connect_fields(gw, enos_model::now_ms());
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
    let (tx, mut replies) = mpsc::unbounded_channel();
    {
        let shared = shared.clone();
        let cli = cli.clone();
        tokio::spawn(async move {
            while let Ok(msg) = stream.recv().await {
                let Some(msg) = msg else { break };
                let topic = msg.topic().to_string();
                if topic.ends_with("_reply") {
                    match Reply::parse(msg.payload()) {
                        Some(r) => {
                            let _ = tx.send((topic, r));
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

    shared.subs_logged_in.store(false, Ordering::Relaxed);
    if !shared.cfg.sub_devices.is_empty() {
        login_sub_devices(shared, &cli, &mut replies).await?;
    }
    shared.subs_logged_in.store(true, Ordering::Relaxed);
    let version = match shared.cfg.cloud.firmware_version.clone() {
        Some(v) => v,
        None => crate::ota::running_version(shared).await.unwrap_or_else(os_version),
    };
    let inform = topics::sys(pk, dk, topics::OTA_INFORM);
    drop(cli.publish(mqtt::Message::new(
        inform,
        enos_cloud::request(next_id(), "ota.device.inform", serde_json::json!({"version": version})),
        1,
    )));
    shared.set_cloud_state("connected", "");
    Ok(Conn { cli, replies })
}

/// Built in a plain function: paho's option builders hold raw pointers and must not live
/// across an await.
pub(crate) fn connect_options(c: &enos_model::config::CloudConfig, f: &sign::ConnectFields) -> Result<mqtt::ConnectOptions, String> {
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
async fn login_sub_devices(
    shared: &Arc<Shared>,
    cli: &mqtt::AsyncClient,
    replies: &mut mpsc::UnboundedReceiver<(String, Reply)>,
) -> Result<(), String> {
    let c = &shared.cfg.cloud;
    let ts = enos_model::now_ms().to_string();
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
    let n = r.data.get("loginedSubDevices").and_then(|v| v.as_array()).map(|a| a.len()).unwrap_or(0);
    if let Some(failed) = r.data.get("failedSubDevices").and_then(|v| v.as_array()).filter(|a| !a.is_empty()) {
        log::warn!("sub-device login failed for {failed:?}");
    }
    shared.cloud.lock().expect("cloud").sub_devices_logged_in = n;
    Ok(())
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, replies.recv()).await {
            Ok(Some((t, r))) if t == want && r.id == id.to_string() => {
                return if r.code == 200 { Ok(r) } else { Err(format!("{method} refused: code {} {}", r.code, r.message)) };
            }
            Ok(Some(_)) => continue,
            Ok(None) => return Err("connection lost during login".into()),
            Err(_) => return Err(format!("{method}: no reply in 30 s")),
        }
    }
}

fn os_version() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VERSION_ID=").map(|v| v.trim_matches('"').to_string())))
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string())
}
