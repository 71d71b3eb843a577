//! Cloud → edge commands: parsed, routed over D-Bus to the collector, answered exactly once.
//!
//! One ordered queue per device: the commands of a device run one after the other in the order
//! they arrived (two `measurepoint/set` must not reach the device the other way round), the
//! points of one command in the order the cloud wrote them. A command the broker hands over as
//! retained is stale (it was sent to whoever subscribes next) and is not executed; an id the
//! device got lately is not executed again (see `recent_ids`).

use crate::mqtt::{self, Client};
use crate::recent_ids::Seen;
use crate::state::{Shared, GATEWAY_DEVICE};
use crate::write_policy::PointTable;
use enos_bus::{CollectorProxy, WriteFailure, WriteOutcome};
use enos_cloud::codes;
use enos_cloud::command::{self, Command, CommandKind, Writes};
use enos_cloud::requests::OTA_STEP_DECLINED;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;

const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// How long a command's answer is offered to a busy MQTT client before it is given up (logged).
const REPLY_RETRY_S: u64 = 10;

/// Takes the commands of one connection and hands each to its device's queue.
pub struct Dispatcher {
    shared: Arc<Shared>,
    cli: Client,
    /// collector device id → its queue (a worker task drains it; it ends with the connection).
    queues: HashMap<String, mpsc::UnboundedSender<Command>>,
}

impl Dispatcher {
    pub fn new(shared: Arc<Shared>, cli: Client) -> Dispatcher {
        Dispatcher { shared, cli, queues: HashMap::new() }
    }

    /// A message on a command topic.
    pub fn deliver(&mut self, topic: &str, payload: &[u8], retained: bool) {
        if retained {
            log::info!("a retained message on {topic} is not executed: a command is meant for the moment it is sent");
            return;
        }
        self.shared.sender_stats(|s| s.commands_received += 1);
        let answer = |topic: &str, id: &str, code: i64, msg: &str| answer(&self.shared, &self.cli, topic, id, code, msg);
        if payload.len() > MAX_COMMAND_BYTES {
            // Still echo the id when there is one, so the cloud can match the refusal.
            answer(&enos_cloud::topics::reply_of(topic), &command::id_of(payload), codes::TOO_LARGE, "command larger than 64 KiB");
            return;
        }
        let cmd = match command::parse(topic, payload) {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(m) => {
                if let Some(t) = &m.reply_topic {
                    answer(t, &m.id, m.code, &m.message);
                }
                return;
            }
        };
        let device = self.shared.subs().device_of(&cmd.product_key, &cmd.device_key);
        let Some(device) = device else {
            answer(&cmd.reply_topic, &cmd.id, codes::write_failed(Some(WriteFailure::UnknownDevice)), "unknown device");
            return;
        };
        let seen = self.shared.recent_commands.lock().expect("recent commands").entry(device.clone()).or_default().arrive(&cmd.id);
        match seen {
            Seen::New => {}
            Seen::Running => {
                log::info!("command {} for {device} came again while it runs; its answer follows", cmd.id);
                return;
            }
            Seen::Answered(code, msg) => {
                log::info!("command {} for {device} came again; it ran already, its answer is sent again", cmd.id);
                tokio::spawn(publish_reply(self.cli.clone(), cmd.reply_topic.clone(), cmd.id.clone(), code, msg));
                return;
            }
        }
        let queue = self.queues.entry(device.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(run_queue(self.shared.clone(), self.cli.clone(), device, rx));
            tx
        });
        let _ = queue.send(cmd);
    }
}

/// Runs one device's commands in arrival order until its connection ends.
async fn run_queue(shared: Arc<Shared>, cli: Client, device: String, mut rx: mpsc::UnboundedReceiver<Command>) {
    while let Some(cmd) = rx.recv().await {
        let (code, msg) = execute(&shared, &cli, &device, &cmd).await;
        shared.recent_commands.lock().expect("recent commands").entry(device.clone()).or_default().answered(&cmd.id, code, &msg);
    }
}

/// Executes one command and answers it; returns the answer.
async fn execute(shared: &Arc<Shared>, cli: &Client, device: &str, cmd: &Command) -> (i64, String) {
    if let (GATEWAY_DEVICE, CommandKind::Service { service, writes }) = (device, &cmd.kind) {
        let params = serde_json::Value::Object(writes.iter().flatten().cloned().collect());
        let a = crate::gateway_services::call(shared, &cmd.id, service, &params).await;
        // A repeated id gets the code and message again, not the output parameters (the cloud
        // asks again with a new id for fresh data).
        answer_with(shared, cli, &cmd.reply_topic, &cmd.id, a.code, &a.message, a.data);
        return (a.code, a.message);
    }
    let (code, msg) = match &cmd.kind {
        CommandKind::SetPoints(w) => write_points(shared, device, w).await,
        // A service call on a field device is a set of point writes named by its input parameters.
        CommandKind::Service { writes: Some(w), .. } => write_points(shared, device, w).await,
        CommandKind::Service { service, writes: None } => {
            (codes::NO_HANDLER, format!("no handler for service {service:?} (expects point: value parameters)"))
        }
        CommandKind::OtaUpgrade(params) => {
            match crate::ota::start(shared, params).await {
                Ok(job) => {
                    log::info!("OTA job {job} accepted");
                    (codes::OK, String::new())
                }
                Err(why) => {
                    // The cloud matches the failed progress to the job it was answered about:
                    // the reply goes first (both QoS 1 on one client, so in this order).
                    shared.sender_stats(|s| s.commands_failed += 1);
                    log::warn!("update declined: {why}");
                    let msg = format!("update declined: {why}");
                    publish_reply(cli.clone(), cmd.reply_topic.clone(), cmd.id.clone(), codes::UPDATE_DECLINED, msg.clone()).await;
                    crate::ota::publish_progress(shared, OTA_STEP_DECLINED, &why);
                    return (codes::UPDATE_DECLINED, msg);
                }
            }
        }
    };
    answer(shared, cli, &cmd.reply_topic, &cmd.id, code, &msg);
    (code, msg)
}

/// Writes the points in the cloud's order, stopping at the first failure.
async fn write_points(shared: &Arc<Shared>, device: &str, writes: &Writes) -> (i64, String) {
    let internal = |m: String| (codes::write_failed(None), m);
    if device == GATEWAY_DEVICE {
        return (codes::write_failed(Some(WriteFailure::UnknownPoint)), "the gateway has no writable points".into());
    }
    let Some(conn) = shared.bus() else { return internal("bus not ready".into()) };
    let proxy = match CollectorProxy::new(conn).await {
        Ok(p) => p,
        Err(e) => return internal(format!("collector unreachable: {e}")),
    };
    // Every point is checked before the first is written: a refused command changes nothing.
    let table = match proxy.get_config().await.map(|j| serde_json::from_str::<PointTable>(&j)) {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return internal(format!("the collector's point table could not be read: {e}")),
        Err(e) => return internal(format!("collector unreachable: {e}")),
    };
    let allowed = shared.cfg.sub_devices.iter().find(|s| s.device == device).map(|s| s.type_range_points.as_slice()).unwrap_or(&[]);
    if let Some(why) = writes.iter().find_map(|(p, _)| table.refusal(device, p, allowed)) {
        return (codes::write_failed(Some(WriteFailure::OutOfRange)), why);
    }
    for (point, value) in writes {
        let outcome = match proxy.write_point(device, point, &value.to_string()).await {
            Ok(json) => {
                serde_json::from_str::<WriteOutcome>(&json).unwrap_or_else(|e| WriteOutcome::failed(WriteFailure::Internal, e.to_string()))
            }
            Err(e) => WriteOutcome::failed(WriteFailure::Internal, format!("collector unreachable: {e}")),
        };
        if !outcome.ok {
            return (codes::write_failed(outcome.failure), format!("{point}: {}", outcome.message));
        }
    }
    (codes::OK, String::new())
}

/// Sends an answer on its own task (the cloud waits for it and holds later commands behind it:
/// a failed publish must be visible, not lost with a dropped token).
fn answer(shared: &Shared, cli: &Client, topic: &str, id: &str, code: i64, msg: &str) {
    answer_with(shared, cli, topic, id, code, msg, serde_json::json!({}));
}

/// [`answer`] with output parameters (a gateway service's `data`).
fn answer_with(shared: &Shared, cli: &Client, topic: &str, id: &str, code: i64, msg: &str, data: serde_json::Value) {
    tokio::spawn(publish_reply_with(cli.clone(), topic.to_string(), id.to_string(), code, msg.to_string(), data));
    if code != codes::OK {
        shared.sender_stats(|s| s.commands_failed += 1);
        log::warn!("command on {topic} (id {id}) answered {code}: {msg}");
    }
}

async fn publish_reply(cli: Client, topic: String, id: String, code: i64, msg: String) {
    publish_reply_with(cli, topic, id, code, msg, serde_json::json!({})).await
}

async fn publish_reply_with(cli: Client, topic: String, id: String, code: i64, msg: String, data: serde_json::Value) {
    let payload = enos_cloud::reply(&id, code, &msg, data);
    let what = format!("reply to command {id}");
    mqtt::publish_persistently(&cli, &topic, &payload, &what, std::time::Duration::from_secs(REPLY_RETRY_S)).await;
}
