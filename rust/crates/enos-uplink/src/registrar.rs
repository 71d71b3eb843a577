//! The sub-devices' work on one cloud session (states in `sub_devices`): register the devices
//! that have no identity (`thing.device.register`, up to 1000 at once), add the registered ones
//! to the topology and log them in (`thing.topo.add`, `combine.login.batch`), log out and take out
//! of the topology the ones no longer configured, and answer the cloud's
//! `combine.enable/disable/delete`. A request refused or unanswered is asked again with backoff
//! (from 5 s after a refusal, 1 s after a lost reply, doubling to 10 minutes), never in a tight
//! loop; its reason is the device's state.

use crate::mqtt::{self, Client};
use crate::state::Shared;
use crate::sub_devices::State;
use enos_cloud::requests::{self, Request};
use enos_cloud::subdevices::{self, Downstream, NewDevice};
use enos_cloud::{codes, topics, Identity, Reply};
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long a request waits for its reply.
const REPLY_S: u64 = 5;

/// Replies to the sub-device requests: (reply topic, the reply or why it is none).
pub type SubReplies = mpsc::UnboundedReceiver<(String, Result<Reply, String>)>;

/// Why a request got no usable answer.
#[derive(Debug)]
pub enum CallError {
    /// The cloud answered with a code other than 200.
    Refused {
        code: i64,
        message: String,
    },
    /// Nothing usable in time; `seen`: what arrived instead (a wrong id, not JSON), in words.
    NoReply {
        seen: Vec<String>,
    },
    Publish(String),
    SessionEnded,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Refused { code, message } if message.is_empty() => write!(f, "refused by the cloud with code {code}"),
            CallError::Refused { code, message } => write!(f, "refused by the cloud with code {code}: {message}"),
            CallError::NoReply { seen } if seen.is_empty() => write!(f, "no reply in {REPLY_S} s"),
            CallError::NoReply { seen } => write!(f, "no usable reply in {REPLY_S} s ({})", seen.join("; ")),
            CallError::Publish(e) => write!(f, "not sent: {e}"),
            CallError::SessionEnded => f.write_str("the session ended"),
        }
    }
}

/// Runs for the life of one session (aborted when it ends). `subscribed`: the devices whose
/// command topics the session subscribed to at connect.
pub async fn run(shared: Arc<Shared>, cli: Client, mut replies: SubReplies, mut subscribed: HashSet<(String, String)>) {
    shared.subs().session_started();
    shared.subs_changed();
    // products whose model was fetched on this session
    let mut models: HashSet<String> = HashSet::new();
    loop {
        let changed = shared.subs_changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if let Err(CallError::SessionEnded) = step(&shared, &cli, &mut replies, &mut subscribed).await {
            return;
        }
        if let Err(CallError::SessionEnded) = fetch_models(&shared, &cli, &mut replies, &mut models).await {
            return;
        }
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// One round: registrations, then logins, then removals, each for the devices due.
async fn step(
    shared: &Arc<Shared>,
    cli: &Client,
    replies: &mut SubReplies,
    subscribed: &mut HashSet<(String, String)>,
) -> Result<(), CallError> {
    let (gw_pk, gw_dk) = (shared.cfg.cloud.product_key.clone(), shared.cfg.cloud.device_key.clone());
    let tz = shared.cfg.registration.timezone.clone();
    let now = std::time::Instant::now();
    let due = |s: &crate::sub_devices::Sub| s.ready_to_ask(now);

    let new: Vec<(String, NewDevice)> = shared
        .subs()
        .devices
        .iter()
        .filter(|(_, s)| s.identity.is_none() && matches!(s.state, State::Registering | State::Refused) && due(s))
        .take(subdevices::MAX_REGISTER)
        .map(|(id, s)| {
            let d = NewDevice {
                product_key: s.product_key.clone(),
                device_key: subdevices::proposed_device_key(&gw_dk, id),
                name: id.clone(),
                timezone: tz.clone(),
            };
            (id.clone(), d)
        })
        .collect();
    if !new.is_empty() {
        let asked: Vec<NewDevice> = new.iter().map(|(_, d)| d.clone()).collect();
        let r = call(cli, replies, subdevices::register(&gw_pk, &gw_dk, mqtt::next_id(), &asked)).await;
        let outcome = r.as_ref().map_err(|e| e.to_string()).and_then(|r| subdevices::registered(r, &asked));
        {
            let mut subs = shared.subs();
            match outcome {
                Ok(list) => {
                    for ((id, _), reg) in new.iter().zip(list) {
                        let keys = format!("{}/{}", reg.product_key, reg.device_key);
                        match subs.registered(id, reg) {
                            Ok(()) => log::info!("device {id} registered in the cloud as {keys}"),
                            Err(e) => {
                                let why = format!("registered as {keys}, but its identity could not be stored: {e}");
                                log::error!("device {id}: {why}");
                                fail(&mut subs, id, State::Refused, why);
                            }
                        }
                    }
                }
                Err(e) => {
                    // refused: the cloud said no; anything else: nothing usable came back
                    let state = if matches!(r, Err(CallError::Refused { .. })) { State::Refused } else { State::Registering };
                    for (id, _) in &new {
                        fail(&mut subs, id, state, format!("registration: {e}"));
                    }
                }
            }
        }
        shared.subs_changed();
        if let Err(CallError::SessionEnded) = r {
            return Err(CallError::SessionEnded);
        }
    }

    let login: Vec<(String, Identity)> = shared
        .subs()
        .devices
        .iter()
        .filter(|(_, s)| matches!(s.state, State::Registered | State::Refused) && due(s))
        .filter_map(|(id, s)| Some((id.clone(), s.identity.clone()?)))
        .collect();
    if !login.is_empty() {
        let fresh: Vec<String> = login
            .iter()
            .map(|(_, i)| (i.product_key.clone(), i.device_key.clone()))
            .filter(|k| subscribed.insert(k.clone()))
            .flat_map(|(p, d)| topics::device_subscriptions(&p, &d))
            .collect();
        if !fresh.is_empty() {
            mqtt::subscribe(cli, &fresh).await.map_err(CallError::Publish)?;
        }
        let ids: Vec<Identity> = login.iter().map(|(_, i)| i.clone()).collect();
        let ts = enos_batch::now_ms();
        let r = match call(cli, replies, requests::topo_add(&gw_pk, &gw_dk, mqtt::next_id(), &ids, ts)).await {
            Ok(_) => call(cli, replies, requests::login_batch(&gw_pk, &gw_dk, mqtt::next_id(), &ids, ts)).await,
            Err(e) => Err(e),
        };
        {
            let mut subs = shared.subs();
            match &r {
                Ok(reply) => {
                    let failed = requests::login_failures(reply);
                    for (id, i) in &login {
                        match failed.iter().find(|(dk, _)| dk == &i.device_key) {
                            Some((_, why)) => fail(&mut subs, id, State::Refused, format!("login refused by the cloud: {why}")),
                            None => subs.set(id, State::LoggedIn, None),
                        }
                    }
                }
                Err(e) => {
                    let state = if matches!(e, CallError::Refused { .. }) { State::Refused } else { State::Registered };
                    for (id, _) in &login {
                        fail(&mut subs, id, state, format!("login: {e}"));
                    }
                }
            }
        }
        shared.subs_changed();
        if let Err(CallError::SessionEnded) = r {
            return Err(CallError::SessionEnded);
        }
    }

    let gone: Vec<(String, Identity)> = shared
        .subs()
        .devices
        .iter()
        .filter(|(_, s)| s.state == State::Removing && due(s))
        .filter_map(|(id, s)| Some((id.clone(), s.identity.clone()?)))
        .collect();
    for (id, i) in gone {
        let r = match call(cli, replies, subdevices::logout(&gw_pk, &gw_dk, mqtt::next_id(), &i.product_key, &i.device_key)).await {
            Ok(_) => call(cli, replies, subdevices::topo_delete(&gw_pk, &gw_dk, mqtt::next_id(), &[(&i.product_key, &i.device_key)])).await,
            Err(e) => Err(e),
        };
        match r {
            Ok(_) => {
                log::info!("device {id} logged out and taken out of the gateway's topology ({}/{})", i.product_key, i.device_key);
                shared.subs().removed(&id);
            }
            Err(CallError::SessionEnded) => return Err(CallError::SessionEnded),
            Err(e) => fail(&mut shared.subs(), &id, State::Removing, format!("logout: {e}")),
        }
        shared.subs_changed();
    }
    Ok(())
}

/// The device models (TSL) of logged-in devices' products: once per session (the cloud never
/// says a model changed), and again for the devices someone asked about.
async fn fetch_models(shared: &Arc<Shared>, cli: &Client, replies: &mut SubReplies, done: &mut HashSet<String>) -> Result<(), CallError> {
    let wanted: HashSet<String> = std::mem::take(&mut *shared.models_wanted.lock().expect("models wanted"));
    let due: Vec<(String, Identity)> = {
        let subs = shared.subs();
        let mut seen = HashSet::new();
        subs.devices
            .iter()
            .filter(|(id, s)| s.state == State::LoggedIn && (wanted.contains(*id) || !done.contains(&s.product_key)))
            .filter_map(|(id, s)| Some((id.clone(), s.identity.clone()?)))
            .filter(|(_, i)| seen.insert(i.product_key.clone()))
            .collect()
    };
    for id in wanted.iter().filter(|w| !due.iter().any(|(d, _)| d == *w)) {
        let why = "the device is not logged in on a cloud session now".to_string();
        shared.models_failed.lock().expect("models failed").insert(id.clone(), why);
    }
    for (id, i) in due {
        let r = call(cli, replies, enos_cloud::tsl::get(&i.product_key, &i.device_key, mqtt::next_id())).await;
        let outcome = match &r {
            Ok(reply) => enos_cloud::tsl::model(reply)
                .and_then(|m| crate::models::store(shared, &i.product_key, m).map_err(|e| format!("not kept: {e}"))),
            Err(CallError::SessionEnded) => return Err(CallError::SessionEnded),
            Err(e) => Err(e.to_string()),
        };
        done.insert(i.product_key.clone());
        if let Err(e) = outcome {
            log::warn!("the device model of {} (asked for {id}): {e}", i.product_key);
            shared.models_failed.lock().expect("models failed").insert(id, e);
        }
    }
    Ok(())
}

fn fail(subs: &mut crate::sub_devices::SubDevices, id: &str, state: State, why: String) {
    if let Some(s) = subs.devices.get_mut(id) {
        log::warn!("device {id}: {why}");
        s.failed(state, why, std::time::Instant::now());
    }
}

/// Sends a request and waits for its reply: the one on its reply topic with its id.
async fn call(cli: &Client, replies: &mut SubReplies, req: Request) -> Result<Reply, CallError> {
    if !mqtt::is_connected(cli) {
        return Err(CallError::SessionEnded);
    }
    mqtt::publish_sent(cli, &req.topic, &req.payload).await.map_err(CallError::Publish)?;
    let want = topics::reply_of(&req.topic);
    let id = req.id.to_string();
    let deadline = Instant::now() + Duration::from_secs(REPLY_S);
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, replies.recv()).await {
            Ok(Some((t, _))) if t != want => continue, // a reply to another request, late
            Ok(Some((_, Ok(r)))) if r.id == id => {
                return if r.code == codes::OK { Ok(r) } else { Err(CallError::Refused { code: r.code, message: r.message }) };
            }
            Ok(Some((_, Ok(r)))) => seen.push(format!("a reply with id {:?}, not {id}", r.id)),
            Ok(Some((_, Err(e)))) => seen.push(format!("a reply that is not one: {e}")),
            Ok(None) => return Err(CallError::SessionEnded),
            Err(_) => {
                if !mqtt::is_connected(cli) {
                    return Err(CallError::SessionEnded);
                }
                return Err(CallError::NoReply { seen });
            }
        }
    }
}

/// The cloud enables, disables or deletes one of the gateway's sub-devices: its state says so
/// (a disabled or deleted device uploads nothing), and the cloud gets its answer.
pub fn downstream(shared: &Arc<Shared>, cli: &Client, d: Result<Downstream, (String, String, i64, String)>) {
    let (topic, id, code, msg) = match d {
        Ok(d) => {
            let device = shared.subs().cloud_action(&d.product_key, &d.device_key, d.action);
            match device {
                Some(dev) => {
                    log::warn!("the cloud {} device {dev} ({}/{})", d.action.said(), d.product_key, d.device_key);
                    shared.subs_changed();
                    (d.reply_topic, d.id, codes::OK, String::new())
                }
                None => (
                    d.reply_topic,
                    d.id,
                    codes::write_failed(Some(enos_model::device::WriteFailure::UnknownDevice)),
                    "unknown device".into(),
                ),
            }
        }
        Err((id, topic, code, msg)) => (topic, id, code, msg),
    };
    let payload = enos_cloud::reply(&id, code, &msg, serde_json::json!({}));
    let cli = cli.clone();
    tokio::spawn(async move { mqtt::publish_persistently(&cli, &topic, &payload, "sub-device answer", Duration::from_secs(10)).await });
}
