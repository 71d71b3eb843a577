//! Cloud → edge commands: parsed, routed over D-Bus to the collector, answered exactly once.

use crate::state::{Shared, GATEWAY_DEVICE};
use enos_bus::{CollectorProxy, WriteOutcome};
use enos_cloud::command::{self, CommandKind};
use paho_mqtt as mqtt;
use std::sync::Arc;

const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// How long a command's answer is offered to a busy MQTT client before it is given up (logged).
const REPLY_RETRY_S: u64 = 10;

pub async fn handle(shared: Arc<Shared>, cli: mqtt::AsyncClient, topic: String, payload: Vec<u8>) {
    shared.sender_stats(|s| s.commands_received += 1);
    let answer = |topic: &str, id: &str, code: i64, msg: &str| {
        // The cloud waits for this answer (and holds later commands behind it): a failed publish
        // must be visible, not lost with a dropped token.
        let m = mqtt::Message::new(topic, enos_cloud::reply(id, code, msg, serde_json::json!({})), 1);
        tokio::spawn(publish_reply(cli.clone(), m, id.to_string()));
        if code != 200 {
            shared.sender_stats(|s| s.commands_failed += 1);
            log::warn!("command on {topic} (id {id}) answered {code}: {msg}");
        }
    };
    if payload.len() > MAX_COMMAND_BYTES {
        // Still echo the id when there is one, so the cloud can match the refusal.
        let id =
            serde_json::from_slice::<serde_json::Value>(&payload).ok().and_then(|v| v["id"].as_str().map(String::from)).unwrap_or_default();
        answer(&enos_cloud::topics::reply_of(&topic), &id, 1008, "command larger than 64 KiB");
        return;
    }
    let cmd = match command::parse(&topic, &payload) {
        Ok(Some(c)) => c,
        Ok(None) => return,
        Err(m) => {
            if let Some(t) = &m.reply_topic {
                answer(t, &m.id, m.code, &m.message);
            }
            return;
        }
    };
    let Some(device) = shared.by_keys.get(&(cmd.product_key.clone(), cmd.device_key.clone())).cloned() else {
        answer(&cmd.reply_topic, &cmd.id, 2001, "unknown device");
        return;
    };
    let writes = match cmd.kind {
        CommandKind::SetPoints(m) => m,
        // A service call on a field device is a set of point writes named by its input parameters.
        CommandKind::Service { params: serde_json::Value::Object(m), .. } if !m.is_empty() => m,
        CommandKind::Service { service, .. } => {
            answer(&cmd.reply_topic, &cmd.id, 1101, &format!("no handler for service {service:?} (expects point: value parameters)"));
            return;
        }
        CommandKind::OtaUpgrade(params) => {
            match crate::ota::start(&shared, &params).await {
                Ok(job) => {
                    log::info!("OTA job {job} accepted");
                    answer(&cmd.reply_topic, &cmd.id, 200, "");
                }
                Err(why) => {
                    // The cloud matches the failed progress to the job it was answered about:
                    // the reply goes first (both QoS 1 on one client, so in this order).
                    shared.sender_stats(|s| s.commands_failed += 1);
                    log::warn!("update declined: {why}");
                    let m = mqtt::Message::new(
                        cmd.reply_topic.as_str(),
                        enos_cloud::reply(&cmd.id, 2010, &format!("update declined: {why}"), serde_json::json!({})),
                        1,
                    );
                    publish_reply(cli.clone(), m, cmd.id.clone()).await;
                    crate::ota::publish_progress(&shared, -5, &why);
                }
            }
            return;
        }
    };
    if device == GATEWAY_DEVICE {
        answer(&cmd.reply_topic, &cmd.id, 2002, "the gateway has no writable points");
        return;
    }
    let Some(conn) = shared.bus() else {
        answer(&cmd.reply_topic, &cmd.id, 2099, "bus not ready");
        return;
    };
    let proxy = match CollectorProxy::new(conn).await {
        Ok(p) => p,
        Err(e) => {
            answer(&cmd.reply_topic, &cmd.id, 2099, &format!("collector unreachable: {e}"));
            return;
        }
    };
    for (point, value) in writes {
        let outcome = match proxy.write_point(&device, &point, &value.to_string()).await {
            Ok(json) => serde_json::from_str::<WriteOutcome>(&json)
                .unwrap_or_else(|e| WriteOutcome::failed(enos_bus::WriteFailure::Internal, e.to_string())),
            Err(e) => WriteOutcome::failed(enos_bus::WriteFailure::Internal, format!("collector unreachable: {e}")),
        };
        if !outcome.ok {
            let code = outcome.failure.map(|f| f.cloud_code()).unwrap_or(2099) as i64;
            answer(&cmd.reply_topic, &cmd.id, code, &format!("{point}: {}", outcome.message));
            return;
        }
    }
    answer(&cmd.reply_topic, &cmd.id, 200, "");
}

/// Publishes a command's answer. Paho refuses a publish at once while its in-flight window is
/// full (the sender's telemetry under heavy load): the answer is offered again for a while
/// rather than lost.
async fn publish_reply(cli: mqtt::AsyncClient, m: mqtt::Message, id: String) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(REPLY_RETRY_S);
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
            log::warn!("reply to command {id} on {} not delivered: the cloud session ended ({err})", m.topic());
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            log::error!("reply to command {id} on {} not delivered: {err}", m.topic());
            return;
        }
        log::debug!("reply to command {id} refused by the MQTT client ({err}); trying again");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
