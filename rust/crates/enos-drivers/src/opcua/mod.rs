//! OPC UA: the devices of one server share one session (`enos_opcua::Client`); each device has
//! its own subscription (its publishing interval) holding its subscribed points, and its polled
//! points are read every `poll_interval_ms`. Changes are forwarded as they arrive, one frame per
//! value, stamped with the source timestamp (else the server's).

mod comm;
mod map;

use crate::on_demand::Latest;
use crate::{Command, DeviceEvent, Driver, DriverContext, DriverFuture, Frame, SharedDevice};
use enos_batch::Quality;
use enos_collector_config::opcua::{self as cfg, NodeRef, OpcuaDevice, ReadMode};
use enos_collector_config::{Access, DeviceConfig, ProtocolConfig};
use enos_model::device::{DeviceStatus, PointReading, WriteFailure, WriteOutcome};
use enos_opcua::opcua::crypto::SecurityPolicy;
use enos_opcua::opcua::types::{DataValue, MessageSecurityMode, NodeId, StatusCode, VariantScalarTypeId};
use enos_opcua::{words, Client, Deadband, Event, Identity, Item, Items, Settings, SubscriptionSpec};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Per point, only what a value needs on arrival (the memory per configured point is a
/// benchmark row, `enos-bench --opcua`): node ids are converted from the configuration when
/// they are used (a subscribed point's when its monitored item is made, a polled point's at each
/// read, a written point's at the write), never kept beside it.
struct Device {
    id: Arc<str>,
    /// Its settings and points in the engine's device list (not a copy).
    cfg: SharedDevice<OpcuaDevice>,
    /// The point of each item of the device's subscription (`OpcuaDriver::subs`).
    subscribed: Arc<[u32]>,
    /// Whether any point is polled (they are found in the configuration at each poll: no
    /// index list held).
    polls: bool,
    /// When its next poll is due; `None` while one runs.
    next_poll: Option<Instant>,
    /// The latest reading of each point (on-demand reads answer from here) and its value's
    /// type (a write sends that type).
    latest: Latest,
    kinds: Kinds,
}

/// Each point's value type as async-opcua numbers it (1-25; 0: none seen yet), a byte a point
/// instead of the 4 of an `Option<VariantScalarTypeId>`.
struct Kinds(Vec<u8>);

impl Kinds {
    fn get(&self, pi: usize) -> Option<VariantScalarTypeId> {
        // 0 is not asked: async-opcua logs an error for a number it does not know
        match self.0[pi] {
            0 => None,
            k => VariantScalarTypeId::try_from(u32::from(k)).ok(),
        }
    }
    fn set(&mut self, pi: usize, k: VariantScalarTypeId) {
        self.0[pi] = u8::try_from(k as u32).unwrap_or(0);
    }
}

pub struct OpcuaDriver {
    devices: Vec<Device>,
    /// One subscription per device, its items in the order of `Device::subscribed`; shared
    /// with the session, which makes them again after a new session.
    subs: Arc<[SubscriptionSpec]>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl OpcuaDriver {
    /// `None` unless every device is an OPC UA one.
    pub fn new(all: &Arc<[DeviceConfig]>) -> Option<Self> {
        fn pick(p: &ProtocolConfig) -> Option<&OpcuaDevice> {
            match p {
                ProtocolConfig::Opcua(c) => Some(c),
                _ => None,
            }
        }
        let mut subs = Vec::with_capacity(all.len());
        let devices = (0..all.len())
            .map(|i| {
                let cfg = SharedDevice::new(all, i, pick)?;
                let (mut subscribed, mut polls) = (Vec::new(), false);
                // a point whose node id does not convert is left out (validation refuses such
                // configurations)
                for (pi, p) in cfg.points.iter().enumerate().filter(|(_, p)| node_of(p).is_ok()) {
                    match p.at.mode {
                        ReadMode::Subscribe => subscribed.push(pi as u32),
                        ReadMode::Poll => polls = true,
                    }
                }
                let subscribed: Arc<[u32]> = subscribed.into();
                subs.push(SubscriptionSpec {
                    publishing_interval: Duration::from_millis(u64::from(cfg.publishing_interval_ms)),
                    items: Arc::new(Subscribed { cfg: cfg.clone(), points: subscribed.clone() }),
                });
                Some(Device {
                    id: Arc::from(all[i].id.as_str()),
                    subscribed,
                    polls,
                    next_poll: Some(Instant::now()),
                    latest: Latest::new(cfg.points.len()),
                    kinds: Kinds(vec![0; cfg.points.len()]),
                    cfg,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        (!devices.is_empty()).then_some(OpcuaDriver { devices, subs: subs.into() })
    }

    /// The session's settings: the first device's (validation makes the devices of one server agree).
    fn settings(&self) -> Settings {
        let c = &self.devices[0].cfg;
        let ms = |v: u32| Duration::from_millis(u64::from(v));
        Settings {
            endpoint: c.endpoint.clone(),
            policy: match c.security_policy {
                cfg::SecurityPolicy::None => SecurityPolicy::None,
                cfg::SecurityPolicy::Basic256Sha256 => SecurityPolicy::Basic256Sha256,
                cfg::SecurityPolicy::Aes128Sha256RsaOaep => SecurityPolicy::Aes128Sha256RsaOaep,
                cfg::SecurityPolicy::Aes256Sha256RsaPss => SecurityPolicy::Aes256Sha256RsaPss,
            },
            mode: match c.mode() {
                cfg::SecurityMode::None => MessageSecurityMode::None,
                cfg::SecurityMode::Sign => MessageSecurityMode::Sign,
                cfg::SecurityMode::SignAndEncrypt => MessageSecurityMode::SignAndEncrypt,
            },
            identity: match c.auth {
                cfg::Auth::Anonymous => Identity::Anonymous,
                cfg::Auth::Username => {
                    Identity::UserName { user: c.username.clone().unwrap_or_default(), password: c.password.clone().unwrap_or_default() }
                }
                cfg::Auth::Certificate => Identity::Certificate {
                    cert: c.user_cert.clone().unwrap_or_default().into(),
                    key: c.user_key.clone().unwrap_or_default().into(),
                },
            },
            pki_dir: c.pki_dir.clone().into(),
            session_timeout: ms(c.session_timeout_ms),
            request_timeout: ms(c.request_timeout_ms),
            reconnect_min: Duration::from_millis(c.reconnect_min_ms),
            reconnect_max: Duration::from_millis(c.reconnect_max_ms),
        }
    }
}

/// The node id of a point for async-opcua, and the namespace URI of an `nsu=` one.
fn node_of(p: &cfg::OpcuaPoint) -> Result<(NodeId, Option<String>), String> {
    NodeRef::parse(&p.at.node).and_then(|r| map::node(&r))
}

/// A device's subscribed points as monitored items, made from the configuration when the
/// session makes the subscription.
struct Subscribed {
    cfg: SharedDevice<OpcuaDevice>,
    points: Arc<[u32]>,
}

impl Items for Subscribed {
    fn len(&self) -> usize {
        self.points.len()
    }

    fn item(&self, index: usize) -> Result<Item, String> {
        let p = &self.cfg.points[self.points[index] as usize];
        let (node, namespace_uri) = node_of(p)?;
        let at = p.at.item();
        Ok(Item {
            node,
            namespace_uri,
            sampling: at.sampling_ms.map(|s| Duration::from_millis(u64::from(s))),
            queue_size: at.queue_size,
            deadband: at.deadband.map(|v| match at.deadband_type {
                cfg::DeadbandType::Absolute => Deadband::Absolute(v),
                cfg::DeadbandType::Percent => Deadband::Percent(v),
            }),
        })
    }
}

impl Driver for OpcuaDriver {
    fn devices(&self) -> Vec<String> {
        self.devices.iter().map(|d| d.id.to_string()).collect()
    }

    fn run(self: Box<Self>, ctx: DriverContext) -> DriverFuture {
        Box::pin(run(*self, ctx))
    }
}

async fn run(mut drv: OpcuaDriver, mut ctx: DriverContext) -> String {
    for d in &drv.devices {
        ctx.status.set(DeviceStatus::new(&d.id, "opcua", "connecting", d.cfg.points.len()));
    }
    let settings = drv.settings();
    let Some((client, mut events)) = connect(&drv, &mut ctx, &settings).await else {
        return "the command queue closed".into();
    };
    let mut client = Arc::new(client);
    let mut online = false;
    let mut running = JoinSet::new();
    // A poll runs beside the loop, so that commands and subscriptions' values are not held up
    // by a long one; its values come back a read call at a time. One poll at a time per server:
    // the server gets one read at a time from the gateway (servers limit concurrent requests),
    // and one call's values at most are in flight (ten devices' polls at once, 100,000 points:
    // 204 bytes a point against 184-194, `enos-bench --opcua`).
    let mut polls = JoinSet::new();
    let mut polling = false;
    let (polled_tx, mut polled) = tokio::sync::mpsc::channel(1);
    loop {
        let next_poll = drv.devices.iter().filter(|d| d.polls).filter_map(|d| d.next_poll).min();
        tokio::select! {
            ev = events.recv() => match ev {
                // the client gave up its session (the server's certificate changed): a new one
                Some(Event::Ended { reason }) => {
                    online = false;
                    set_state(&drv, &ctx, "offline", Some(reason));
                    let Some((c, e)) = connect(&drv, &mut ctx, &settings).await else {
                        return "the command queue closed".into();
                    };
                    (client, events) = (Arc::new(c), e);
                }
                Some(ev) => {
                    if let Event::Up { .. } = ev { online = true }
                    if let Event::Down { .. } = ev { online = false }
                    if !on_event(&mut drv, &ctx, ev).await {
                        return "the collector stopped taking values".into();
                    }
                }
                None => return "the OPC UA session ended".into(),
            },
            _ = tokio::time::sleep_until(next_poll.unwrap_or_else(Instant::now)), if next_poll.is_some() && !polling => {
                let now = Instant::now();
                // the device due longest first; the others stay due for after it
                let due = drv.devices.iter().enumerate().filter(|(_, d)| d.polls).filter_map(|(di, d)| Some((d.next_poll?, di))).min();
                if let Some((_, di)) = due.filter(|(t, _)| *t <= now) {
                    let d = &mut drv.devices[di];
                    if online {
                        d.next_poll = None;
                        polling = true;
                        polls.spawn(read_polled(client.clone(), d.cfg.clone(), di, now, polled_tx.clone()));
                    } else {
                        d.next_poll = Some(now + Duration::from_millis(u64::from(d.cfg.poll_interval_ms)));
                    }
                }
            }
            Some(news) = polled.recv() => {
                polling &= !matches!(news, PollNews::Done { .. });
                if !on_polled(&mut drv, &ctx, news).await {
                    return "the collector stopped taking values".into();
                }
            }
            Some(ended) = polls.join_next(), if !polls.is_empty() => {
                // a poll that panicked sent no Done: its device is the one without a next poll
                if let Err(e) = ended {
                    log::error!("an OPC UA poll of {} ended abnormally: {e}", drv.devices[0].cfg.endpoint);
                    polling = false;
                    for d in drv.devices.iter_mut().filter(|d| d.polls && d.next_poll.is_none()) {
                        d.next_poll = Some(Instant::now());
                    }
                }
            }
            cmd = ctx.commands.recv() => match cmd {
                Some(cmd) => serve(&drv, &client, &mut running, cmd),
                None => return "the command queue closed".into(),
            },
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    }
}

/// A client, once the server answers GetEndpoints with the configured endpoint: until then
/// tried again with backoff, commands answered meanwhile. `None` when the command queue closed.
async fn connect(
    drv: &OpcuaDriver,
    ctx: &mut DriverContext,
    settings: &Settings,
) -> Option<(Client, tokio::sync::mpsc::UnboundedReceiver<Event>)> {
    let mut backoff = settings.reconnect_min;
    loop {
        match Client::connect(settings, drv.subs.clone()).await {
            Ok(c) => return Some(c),
            Err(e) => set_state(drv, ctx, "offline", Some(e.to_string())),
        }
        let until = Instant::now() + backoff;
        backoff = (backoff * 2).min(settings.reconnect_max);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                cmd = ctx.commands.recv() => match cmd {
                    Some(cmd) => refuse(drv, cmd, "the OPC UA server is not connected"),
                    None => return None,
                },
            }
        }
    }
}

fn set_state(drv: &OpcuaDriver, ctx: &DriverContext, state: &str, error: Option<String>) {
    for d in &drv.devices {
        let mut changed = false;
        ctx.status.update(&d.id, |s| {
            changed = s.state != state;
            s.state = state.into();
            if error.is_some() {
                s.polls_failed += 1;
            }
            s.last_error = error.clone();
        });
        if changed {
            let reason = error.clone().unwrap_or_default();
            let _ = ctx.events.send(DeviceEvent { device: d.id.to_string(), state: state.into(), reason });
        }
    }
}

/// Records and forwards one value; `false` when the frame sink is gone.
async fn forward(d: &mut Device, pi: usize, v: &DataValue, after_gap: bool, ctx: &DriverContext) -> bool {
    let p = &d.cfg.points[pi];
    let code = v.status.unwrap_or(StatusCode::Good);
    let (mut q, mut flags) = map::quality(code);
    if after_gap {
        flags |= enos_batch::Flags::AFTER_GAP;
    }
    let ts = map::timestamp(v, now_ms());
    let mut note = (!code.is_good()).then(|| words(code));
    let value = match v.value.as_ref().map(|x| map::value(p, x)) {
        // a Bad status's value means nothing (Part 4, 7.7.1)
        _ if code.is_bad() => enos_batch::Value::Null,
        Some(Ok(x)) => x,
        None => enos_batch::Value::Null,
        Some(Err(why)) => {
            q = Quality::DecodeError;
            note = Some(why);
            enos_batch::Value::Null
        }
    };
    if let Some(k) = v.value.as_ref().and_then(|x| x.scalar_type_id()) {
        d.kinds.set(pi, k);
    }
    d.latest.record(pi, &value, q, ts, flags, note);
    ctx.status.update(&d.id, |s| s.last_ok_ms = Some(now_ms()));
    let frame = Frame { device: d.id.clone(), ts_ms: ts, samples: vec![(p.meta.name.clone(), value, q, flags)] };
    ctx.frames.send(frame).await.is_ok()
}

async fn on_event(drv: &mut OpcuaDriver, ctx: &DriverContext, ev: Event) -> bool {
    match ev {
        Event::Up { resumed } => {
            log::info!(
                "OPC UA server {}: session {}",
                drv.devices[0].cfg.endpoint,
                if resumed { "resumed" } else { "up (subscriptions made or transferred)" }
            );
            set_state(drv, ctx, "online", None);
            true
        }
        Event::Down { reason } => {
            log::warn!("OPC UA server {}: {reason}", drv.devices[0].cfg.endpoint);
            set_state(drv, ctx, "offline", Some(reason));
            true
        }
        Event::ItemRefused { subscription, item, reason } => {
            let d = &mut drv.devices[subscription];
            let pi = d.subscribed[item] as usize;
            let why = format!("point \"{}\" ({}): {reason}", d.cfg.points[pi].meta.name, d.cfg.points[pi].at.node);
            log::warn!("device {}: {why}", d.id);
            refused(&mut d.latest, pi, why.clone());
            ctx.status.update(&d.id, |s| s.last_error = Some(why));
            true
        }
        Event::Value { subscription, item, value, after_gap } => {
            let d = &mut drv.devices[subscription];
            let pi = d.subscribed[item] as usize;
            forward(d, pi, &value, after_gap, ctx).await
        }
        Event::Lost { subscription, messages } => {
            let d = &drv.devices[subscription];
            let why = format!(
                "after a break the server no longer had {messages} notification messages: changes of the break are missing; \
                 each point's next value is marked \"after a gap\""
            );
            log::warn!("device {}: {why}", d.id);
            ctx.status.update(&d.id, |s| s.last_error = Some(why));
            true
        }
        Event::Ended { .. } => true,
    }
}

/// A point the server refused (a monitored item, a namespace): its reading says why.
fn refused(latest: &mut Latest, pi: usize, why: String) {
    latest.record(pi, &enos_batch::Value::Null, Quality::DeviceException, now_ms(), enos_batch::Flags::NONE, Some(why));
}

/// What a poll, running beside the driver's loop, sends back.
enum PollNews {
    /// One read call's values, and the points of the call whose node could not be named.
    Values { device: usize, values: Vec<(usize, DataValue)>, refused: Vec<(usize, String)> },
    /// The poll is over (started at `started`), or failed in a call.
    Done { device: usize, started: Instant, failed: Option<String> },
}

/// Reads a device's polled points in calls of [`Client::nodes_per_read`] nodes, each call's
/// node ids converted from the configuration just before it, so that only a call's nodes and
/// values are held at a time (10,000 points polled every second read at once held them all:
/// 330-620 bytes a point, `enos-bench --opcua`).
async fn read_polled(
    client: Arc<Client>,
    cfg: SharedDevice<OpcuaDevice>,
    device: usize,
    started: Instant,
    news: tokio::sync::mpsc::Sender<PollNews>,
) {
    let per_call = client.nodes_per_read().await;
    let mut next = 0;
    let mut failed = None;
    while next < cfg.points.len() {
        let (mut which, mut nodes, mut refused) = (Vec::with_capacity(per_call), Vec::with_capacity(per_call), Vec::new());
        let mut taken = 0;
        while next < cfg.points.len() && taken < per_call {
            let (pi, p) = (next, &cfg.points[next]);
            next += 1;
            if p.at.mode != ReadMode::Poll {
                continue;
            }
            taken += 1;
            let resolved = match node_of(p) {
                // most node ids name their namespace by index: nothing to look up (no copy)
                Ok((node, None)) => Ok(node),
                Ok((node, Some(uri))) => client.resolve(&node, Some(&uri)).await.map_err(|code| match code.sub_code().name() {
                    "BadNoMatch" => format!("the server has no namespace \"{uri}\""),
                    _ => format!("the namespace of node {} could not be looked up: {}", p.at.node, words(code)),
                }),
                Err(why) => Err(why),
            };
            match resolved {
                Ok(n) => {
                    which.push(pi);
                    nodes.push(n);
                }
                Err(why) => refused.push((pi, why)),
            }
        }
        // a Read of no nodes is refused (BadNothingToDo): the last points were not polled
        // ones, or every one of this call's was refused
        let values = if nodes.is_empty() {
            Vec::new()
        } else {
            match client.read(nodes).await {
                Ok(values) => which.into_iter().zip(values).collect(),
                Err(code) => {
                    failed = Some(format!("reading the polled points failed: {}", words(code)));
                    Vec::new()
                }
            }
        };
        if news.send(PollNews::Values { device, values, refused }).await.is_err() || failed.is_some() {
            break;
        }
    }
    let _ = news.send(PollNews::Done { device, started, failed }).await;
}

/// Takes what a poll sent back; `false` when the frame sink is gone.
async fn on_polled(drv: &mut OpcuaDriver, ctx: &DriverContext, news: PollNews) -> bool {
    match news {
        PollNews::Values { device, values, refused } => {
            let d = &mut drv.devices[device];
            for (pi, why) in refused {
                self::refused(&mut d.latest, pi, why);
            }
            for (pi, v) in values {
                if !forward(d, pi, &v, false, ctx).await {
                    return false;
                }
            }
        }
        PollNews::Done { device, started, failed } => {
            let d = &mut drv.devices[device];
            // every interval from the poll's start; at once when the poll took longer
            d.next_poll = Some((started + Duration::from_millis(u64::from(d.cfg.poll_interval_ms))).max(Instant::now()));
            ctx.status.update(&d.id, |s| match failed {
                None => s.polls_ok += 1,
                Some(why) => {
                    s.polls_failed += 1;
                    s.last_error = Some(why);
                }
            });
        }
    }
    true
}

/// Answers a command while there is no session.
fn refuse(drv: &OpcuaDriver, cmd: Command, why: &str) {
    match cmd {
        Command::Read { device, points, reply } => {
            let _ = reply.send(read(drv.devices.iter().find(|d| *d.id == device), &device, &points));
        }
        Command::Write { reply, .. } => {
            let _ = reply.send(WriteOutcome::failed(WriteFailure::DeviceOffline, why));
        }
        Command::RawRead { request, reply, .. } => {
            let _ = reply.send(match request {
                enos_model::comm_test::CommTest::OpcuaBrowse(req) => Ok(comm::offline(&req, why)),
                _ => Err(why.into()),
            });
        }
    }
}

fn serve(drv: &OpcuaDriver, client: &Arc<Client>, running: &mut JoinSet<()>, cmd: Command) {
    let find = |id: &str| drv.devices.iter().find(|d| &*d.id == id);
    match cmd {
        Command::Read { device, points, reply } => {
            let _ = reply.send(read(find(&device), &device, &points));
        }
        Command::RawRead { device, request, reply } => {
            let Some(d) = find(&device) else {
                let _ = reply.send(Err(format!("there is no device \"{device}\"")));
                return;
            };
            let enos_model::comm_test::CommTest::OpcuaBrowse(req) = request else {
                let _ = reply.send(Err(format!("device \"{device}\" is on an OPC UA server: its communication test is opcua-browse")));
                return;
            };
            let (client, names) = (client.clone(), comm::names(&d.cfg));
            running.spawn(async move {
                let _ = reply.send(Ok(comm::browse(client, req, names).await));
            });
        }
        Command::Write { device, point, value, reply } => {
            let Some(d) = find(&device) else {
                let _ = reply.send(WriteOutcome::failed(WriteFailure::UnknownDevice, format!("there is no device \"{device}\"")));
                return;
            };
            let Some(pi) = d.cfg.points.iter().position(|p| *p.meta.name == *point) else {
                let _ =
                    reply.send(WriteOutcome::failed(WriteFailure::UnknownPoint, format!("device \"{device}\" has no point \"{point}\"")));
                return;
            };
            let p = d.cfg.points[pi].clone();
            if p.meta.access != Access::Rw {
                let _ = reply.send(WriteOutcome::failed(WriteFailure::ReadOnly, format!("point \"{point}\" is read-only")));
                return;
            }
            let Ok((node, uri)) = node_of(&p) else {
                let _ = reply.send(WriteOutcome::failed(WriteFailure::BadValue, format!("point \"{point}\" has no usable node id")));
                return;
            };
            let (client, kind) = (client.clone(), d.kinds.get(pi));
            running.spawn(async move {
                let _ = reply.send(write(&client, &p, node, uri, kind, &value).await);
            });
        }
    }
}

/// Writes one value: as the node's type (from its latest value, else read first), then the
/// server's answer in words.
async fn write(
    client: &Client,
    p: &cfg::OpcuaPoint,
    node: NodeId,
    uri: Option<String>,
    kind: Option<VariantScalarTypeId>,
    value: &serde_json::Value,
) -> WriteOutcome {
    let failed = |code: StatusCode| {
        let failure = match code.sub_code().name() {
            "BadTimeout" | "BadRequestTimeout" => WriteFailure::DeviceTimeout,
            "BadNotConnected" | "BadConnectionClosed" | "BadCommunicationError" | "BadSessionClosed" => WriteFailure::DeviceOffline,
            "BadTypeMismatch" => WriteFailure::BadValue,
            "BadOutOfRange" => WriteFailure::OutOfRange,
            _ => WriteFailure::DeviceException,
        };
        WriteOutcome::failed(failure, words(code))
    };
    let node = match client.resolve(&node, uri.as_deref()).await {
        Ok(n) => n,
        Err(code) => return failed(code),
    };
    let kind = match kind {
        Some(k) => Some(k),
        None => match client.read(vec![node.clone()]).await {
            Ok(v) => v.first().and_then(|v| v.value.as_ref()).and_then(|v| v.scalar_type_id()),
            Err(code) => return failed(code),
        },
    };
    let v = match map::command(p, kind, value) {
        Ok(v) => v,
        Err((range, why)) => return WriteOutcome::failed(if range { WriteFailure::OutOfRange } else { WriteFailure::BadValue }, why),
    };
    match client.write(node, v).await {
        Ok(()) => WriteOutcome::ok(),
        Err(code) => failed(code),
    }
}

/// The latest value of each point asked (all when none are named).
fn read(d: Option<&Device>, device: &str, points: &[String]) -> Result<Vec<PointReading>, String> {
    let d = d.ok_or_else(|| format!("there is no device \"{device}\""))?;
    d.latest.read(device, &d.cfg.points, points, "the server has not sent this point yet")
}

#[cfg(test)]
mod tests {
    use super::*;
    use enos_collector_config::CollectorConfig;

    #[test]
    fn the_driver_reads_its_devices_in_the_engines_list() {
        let text = "[[device]]\nid = \"plc\"\nprotocol = \"opcua\"\nendpoint = \"opc.tcp://127.0.0.1:4840\"\n\
                    security_policy = \"None\"\npki_dir = \"/tmp/pki\"\n\
                    [[device.point]]\nname = \"P\"\nnode = \"ns=2;s=P\"\n\
                    [[device.point]]\nname = \"Q\"\nnode = \"ns=2;i=7\"\nmode = \"poll\"\n";
        let cfg = CollectorConfig::from_str_at(std::path::Path::new("/tmp/collector.toml"), text).unwrap();
        let all: Arc<[DeviceConfig]> = cfg.devices.into();
        let drv = OpcuaDriver::new(&all).unwrap();
        let ProtocolConfig::Opcua(c) = &all[0].proto else { panic!("an OPC UA device") };
        // the same points, not a copy of them
        assert!(std::ptr::eq(&drv.devices[0].cfg.points[0], &c.points[0]));
        assert_eq!(*drv.devices[0].subscribed, [0]);
        assert!(drv.devices[0].polls);
        assert_eq!(drv.subs[0].items.len(), 1);
    }
}
