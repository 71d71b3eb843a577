//! The MQTT session: connect with the EnOS sign, report the version, hand over to the sender
//! until the connection drops, and log the sub-devices in meanwhile (a lost login reply is asked
//! again on the same session: the gateway's own data keeps flowing). Reconnect: a prompt,
//! jittered first retries after losing a session that was up, then exponential backoff.

use crate::mqtt::{self, Client, Replies};
use crate::sender;
use crate::state::Shared;
use enos_cloud::{requests, topics, Identity, Reply};
use rand::Rng;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

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
                let reason = sender::run(&shared, conn.cli, conn.replies).await;
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
    cli: Client,
    replies: Replies,
    logins: Replies,
}

async fn connect(shared: &Arc<Shared>, gw: &Identity) -> Result<Connected, String> {
    let c = &shared.cfg.cloud;
    let (cli, mut inbox) = mqtt::connect(c, gw).await?;

    // Replies and commands: replies go to whoever waits (login, then the sender), commands to
    // their device's queue, so a slow device never holds up the data flow or another device.
    let (tx, replies) = mpsc::unbounded_channel();
    let (login_tx, logins) = mpsc::unbounded_channel();
    {
        let shared = shared.clone();
        let cli = cli.clone();
        tokio::spawn(async move {
            let mut commands = crate::commands::Dispatcher::new(shared.clone(), cli.clone());
            // ends when the connection is lost
            while let Some(m) = inbox.next().await {
                if topics::request_of(&m.topic).is_some() {
                    match Reply::parse(&m.payload) {
                        Some(r) => {
                            let to = if topics::is_login_reply(&m.topic) { &login_tx } else { &tx };
                            let _ = to.send((m.topic, r));
                        }
                        None => log::warn!("unparsable reply on {}", m.topic),
                    }
                } else {
                    commands.deliver(&m.topic, &m.payload, m.retained);
                }
            }
        });
    }

    let devices: Vec<(&str, &str)> = shared.cfg.sub_devices.iter().map(|s| (s.product_key.as_str(), s.device_key.as_str())).collect();
    mqtt::subscribe(&cli, &topics::subscriptions(&c.product_key, &c.device_key, &devices)).await?;

    shared.subs_logged_in.store(shared.cfg.sub_devices.is_empty(), Ordering::Relaxed);
    let version = crate::ota::product_version(shared).await;
    let inform = requests::ota_inform(&c.product_key, &c.device_key, mqtt::next_id(), &version);
    mqtt::publish(&cli, &inform.topic, &inform.payload);
    shared.set_cloud_state("connected", "");
    Ok(Connected { cli, replies, logins })
}

/// Topology add, then a batch login, after every connect (logins do not survive a reconnect).
/// A request without a reply in time, or refused, is asked again with backoff on the same
/// session; the sender meanwhile sends what needs no login.
async fn login_sub_devices(shared: Arc<Shared>, cli: Client, mut replies: Replies) {
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

async fn login_once(shared: &Arc<Shared>, cli: &Client, replies: &mut Replies) -> Result<usize, String> {
    let c = &shared.cfg.cloud;
    let ts = enos_batch::now_ms();
    let subs = shared
        .cfg
        .sub_devices
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let secret = s.secret(i).map_err(|e| e.to_string())?;
            Ok(Identity { product_key: s.product_key.clone(), device_key: s.device_key.clone(), secret })
        })
        .collect::<Result<Vec<_>, String>>()?;
    call(cli, replies, requests::topo_add(&c.product_key, &c.device_key, mqtt::next_id(), &subs, ts)).await?;
    let r = call(cli, replies, requests::login_batch(&c.product_key, &c.device_key, mqtt::next_id(), &subs, ts)).await?;
    let (n, failed) = requests::login_result(&r);
    if !failed.is_empty() {
        log::warn!("sub-device login failed for {}", serde_json::Value::Array(failed));
    }
    Ok(n)
}

async fn call(cli: &Client, replies: &mut Replies, req: requests::Request) -> Result<Reply, String> {
    let method = req.method;
    mqtt::publish_sent(cli, &req.topic, &req.payload).await.map_err(|e| format!("{method}: {e}"))?;
    let want = topics::reply_of(&req.topic);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(LOGIN_REPLY_S);
    loop {
        match tokio::time::timeout_at(deadline, replies.recv()).await {
            Ok(Some((t, r))) if t == want && r.id == req.id.to_string() => {
                return if r.code == enos_cloud::codes::OK {
                    Ok(r)
                } else {
                    Err(format!("{method} refused: code {} {}", r.code, r.message))
                };
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
