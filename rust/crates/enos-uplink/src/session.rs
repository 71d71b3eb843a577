//! The MQTT session: connect with the EnOS sign, report the version, hand over to the sender
//! until the connection drops, and let the registrar register and log the sub-devices in
//! meanwhile (a lost reply is asked again on the same session: the gateway's own data keeps
//! flowing). Reconnect: a prompt,
//! jittered first retries after losing a session that was up, then exponential backoff.

use crate::mqtt::{self, Client, Replies};
use crate::registrar::{self, SubReplies};
use crate::sender;
use crate::state::Shared;
use enos_cloud::{subdevices, topics, Identity, Reply};
use rand::Rng;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

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
                // what the update agent reported while no session was up, then the version
                crate::ota::session_started(&shared).await;
                let subs = tokio::spawn(registrar::run(shared.clone(), conn.cli.clone(), conn.sub_replies, conn.subscribed));
                let reason = sender::run(&shared, conn.cli, conn.replies).await;
                subs.abort();
                *shared.mqtt.lock().expect("mqtt") = None;
                shared.subs().session_started();
                shared.subs_changed();
                shared.set_cloud_state("disconnected", &reason);
                backoff.session_lost();
            }
            Err(e) => shared.set_cloud_state("disconnected", &e),
        }
        tokio::time::sleep(backoff.next()).await;
    }
}

/// A fresh connection: replies for the sender, replies for the sub-device requests.
struct Connected {
    cli: Client,
    replies: Replies,
    sub_replies: SubReplies,
    /// The sub-devices whose command topics are subscribed to.
    subscribed: HashSet<(String, String)>,
}

async fn connect(shared: &Arc<Shared>, gw: &Identity) -> Result<Connected, String> {
    let c = &shared.cfg.cloud;
    let (cli, mut inbox) = mqtt::connect(c, gw).await?;

    // Replies and commands: replies go to whoever waits (the registrar, the sender), commands to
    // their device's queue, so a slow device never holds up the data flow or another device.
    let (tx, replies) = mpsc::unbounded_channel();
    let (sub_tx, sub_replies) = mpsc::unbounded_channel();
    {
        let shared = shared.clone();
        let cli = cli.clone();
        tokio::spawn(async move {
            let mut commands = crate::commands::Dispatcher::new(shared.clone(), cli.clone());
            // ends when the connection is lost
            while let Some(m) = inbox.next().await {
                if topics::request_of(&m.topic).is_some() {
                    let parsed = serde_json::from_slice::<Reply>(&m.payload);
                    if topics::is_sub_device_reply(&m.topic) {
                        let _ = sub_tx.send((m.topic, parsed.map_err(|e| format!("not a JSON reply ({e})"))));
                    } else if enos_cloud::monitor::is_monitor_reply(&m.topic) {
                        match parsed {
                            Ok(r) => drop(shared.monitor_reply_tx.send(r)),
                            Err(e) => log::warn!("unparsable reply on {} ({e})", m.topic),
                        }
                    } else {
                        match parsed {
                            Ok(r) => drop(tx.send((m.topic, r))),
                            Err(e) => log::warn!("unparsable reply on {} ({e})", m.topic),
                        }
                    }
                } else if let Some(d) = subdevices::parse_downstream(&m.topic, &m.payload) {
                    registrar::downstream(&shared, &cli, d);
                } else {
                    commands.deliver(&m.topic, &m.payload, m.retained);
                }
            }
        });
    }

    let subscribed: HashSet<(String, String)> =
        shared.subs().devices.values().filter_map(|s| s.identity.as_ref().map(|i| (i.product_key.clone(), i.device_key.clone()))).collect();
    let devices: Vec<(&str, &str)> = subscribed.iter().map(|(p, d)| (p.as_str(), d.as_str())).collect();
    mqtt::subscribe(&cli, &topics::subscriptions(&c.product_key, &c.device_key, &devices)).await?;

    shared.set_cloud_state("connected", "");
    Ok(Connected { cli, replies, sub_replies, subscribed })
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
