//! The EnOS cloud, simulated: a front that checks the CONNECT sign before passing the session to
//! a real mosquitto, and a responder on that broker that answers logins and posts, records what
//! it received, and sends commands.

use enos_cloud::sign;
use paho_mqtt as mqtt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One telemetry point as the cloud stored it.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub product_key: Option<String>,
    pub device_key: Option<String>,
    pub point: String,
    pub value: serde_json::Value,
    pub time: u64,
    pub resume: bool,
    /// When the simulator got it (ms since the epoch).
    pub arrived_ms: u64,
}

#[derive(Default)]
pub struct Record {
    pub points: Vec<Point>,
    /// Every request received: (topic, payload JSON).
    pub requests: Vec<(String, serde_json::Value)>,
    /// Replies the gateway sent to our commands, by topic.
    pub command_replies: Vec<(String, serde_json::Value)>,
    pub connects_ok: u64,
    pub connects_refused: u64,
    /// Codes to answer the next telemetry messages with (front first); 200 when empty.
    pub next_codes: Vec<i64>,
    /// While true, telemetry requests get no reply at all.
    pub silent: bool,
    /// While true, attribute updates and event posts are lost on the way: neither kept nor
    /// answered (they still count in `arrivals`).
    pub lose_monitoring: bool,
    pub telemetry_messages: u64,
    /// Benchmarks: count points instead of keeping them.
    pub drop_points: bool,
    pub points_total: u64,
    pub points_resume: u64,
    /// Arrival time minus acquisition time (ms) of every 10th point.
    pub latencies_ms: Vec<u64>,
    /// (reply id, arrival ms) of command replies.
    pub command_reply_ms: Vec<(String, u64)>,
    /// The topic of every message the simulator got from the broker, in arrival order.
    pub arrivals: Vec<String>,
    /// How many of the next `thing.topo.add` requests get no reply (a reply lost on the way).
    pub unanswered_topo_add: u32,
    /// Sub-devices registered by a gateway: (product key, device key) → (secret, asset id).
    pub devices: HashMap<(String, String), (String, String)>,
    /// The next registrations are answered with this instead of 200 (code, message).
    pub refuse_register: Option<(i64, String)>,
    /// The next registrations are answered in a hostile way.
    pub hostile_register: Option<Hostile>,
    /// Sub-devices in the gateway's topology, and logged in.
    pub topo: std::collections::BTreeSet<(String, String)>,
    pub online: std::collections::BTreeSet<(String, String)>,
    /// Device models by product key: the `data` of a `thing.tsltemplate.get` reply.
    pub models: HashMap<String, serde_json::Value>,
    /// While set, every telemetry message is answered with this code (a cloud outage that answers).
    pub refusing: Option<i64>,
    /// The points of telemetry messages answered with a code other than 200, in arrival order.
    pub refused: Vec<Point>,
    /// Notified to cut every gateway connection through the front (`CloudSim::cut_links`).
    pub cut_links: Arc<tokio::sync::Notify>,
    /// While true, the front answers every CONNECT "server unavailable" (the cloud's own
    /// subscription stays up: nothing published meanwhile is lost for want of a listener).
    pub refuse_connects: bool,
    /// Request ids of telemetry messages not stored (refused, or not answered while silent).
    pub unstored_ids: std::collections::HashSet<String>,
    /// Index ranges into `points` stored from a message sent again (see `handle`).
    pub redelivered: Vec<std::ops::Range<usize>>,
    /// (product key, device key, point, time) of every sample that arrived in a message not
    /// stored: a later arrival of the same sample is a re-delivery, under whatever id the
    /// gateway packed it again (after a reconnect its records are packed anew).
    pub unstored_samples: std::collections::HashSet<(Option<String>, Option<String>, String, u64)>,
    /// The highest request id stored per telemetry topic.
    pub newest_stored_id: HashMap<String, u64>,
}

/// A reply no real cloud should send, to see the gateway cope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    /// A payload that is not JSON.
    NotJson,
    /// A reply with an id that was never asked.
    WrongId,
    /// Code 200 without the devices' keys.
    EmptyData,
}

impl Record {
    /// How many `thing.device.register` requests arrived.
    pub fn registrations(&self) -> usize {
        self.requests.iter().filter(|(t, _)| t.ends_with("/thing/device/register")).count()
    }
    /// The attributes of every `thing.attribute.update`, in arrival order.
    pub fn attribute_updates(&self) -> Vec<serde_json::Value> {
        self.requests_on("/thing/attribute/update").into_iter().map(|v| v["params"]["attributes"].clone()).collect()
    }
    /// The values of every `thing.event.{event}.post`, in arrival order.
    pub fn events(&self, event: &str) -> Vec<serde_json::Value> {
        self.requests_on(&format!("/thing/event/{event}/post")).into_iter().map(|v| v["params"]["events"].clone()).collect()
    }
    /// Every log line of `thing.log.post` messages with `trace_id` (the service call's id).
    pub fn log_lines(&self, trace_id: &str) -> Vec<serde_json::Value> {
        let posts = self.requests_on("/thing/log/post");
        posts
            .iter()
            .flat_map(|v| v["params"].as_array().cloned().unwrap_or_default())
            .filter(|l| l["logs"]["traceId"] == trace_id)
            .collect()
    }
    /// The requests that arrived on topics ending with `suffix`.
    pub fn requests_on(&self, suffix: &str) -> Vec<serde_json::Value> {
        self.requests.iter().filter(|(t, _)| t.ends_with(suffix)).map(|(_, v)| v.clone()).collect()
    }
}

/// What a strict cloud-side checker makes of the telemetry stored so far.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct OrderReport {
    /// Samples that arrived after a newer sample of the same (device, point) on the same path
    /// (`post/batch` or `resume/batch`) and were not a re-delivery of one already received:
    /// (device, point, path, acquisition ms, newest acquisition ms received before on that path).
    pub inversions: Vec<(String, String, &'static str, u64, u64)>,
    /// Re-deliveries of a (device, point, acquisition time) already received on either path:
    /// QoS 1 is at least once (a reply lost, a reconnect), and EnOS keeps one value per time.
    pub duplicates: u64,
    /// The largest age (arrival minus acquisition) of a `post/batch` sample at its first arrival.
    pub live_max_age_ms: u64,
    pub live_samples: u64,
    pub resume_samples: u64,
}

impl Record {
    /// Checks every stored sample, per (device, point) and path, in arrival order.
    pub fn order_report(&self) -> OrderReport {
        let mut rep = OrderReport::default();
        let mut newest: HashMap<(String, String, bool), u64> = HashMap::new();
        let mut seen: std::collections::HashSet<(String, String, u64)> = std::collections::HashSet::new();
        for p in &self.points {
            let dev = format!("{}/{}", p.product_key.as_deref().unwrap_or("-"), p.device_key.as_deref().unwrap_or("gateway"));
            if !seen.insert((dev.clone(), p.point.clone(), p.time)) {
                rep.duplicates += 1;
                continue;
            }
            let path = if p.resume { "resume/batch" } else { "post/batch" };
            if p.resume {
                rep.resume_samples += 1;
            } else {
                rep.live_samples += 1;
                rep.live_max_age_ms = rep.live_max_age_ms.max(p.arrived_ms.saturating_sub(p.time));
            }
            let last = newest.entry((dev.clone(), p.point.clone(), p.resume)).or_insert(0);
            if p.time < *last {
                rep.inversions.push((dev, p.point.clone(), path, p.time, *last));
            } else {
                *last = p.time;
            }
        }
        rep
    }
}

pub struct CloudSim {
    pub record: Arc<Mutex<Record>>,
    pub front_port: u16,
    cli: mqtt::AsyncClient,
}

/// Secrets the cloud knows, by device key.
pub type Secrets = HashMap<String, String>;

/// The responder's client is never destroyed. paho-mqtt keeps a client handle in a pending
/// connect's token; when the test (and its runtime) ends first, that token is the last handle,
/// and a later connect failure drops it on paho's receive thread, which destroys the client
/// under paho's global lock it already holds: every client in the test process then deadlocks
/// (seen: a CI run hung in `enosctl::an_unreachable_cloud_is_said_so` creating the next test's
/// client). A leaked handle per simulator costs a few KiB in a test process.
impl Drop for CloudSim {
    fn drop(&mut self) {
        std::mem::forget(self.cli.clone());
    }
}

fn keys_of(d: &serde_json::Value) -> (String, String) {
    (d["productKey"].as_str().unwrap_or_default().to_string(), d["deviceKey"].as_str().unwrap_or_default().to_string())
}

fn reply_with(cli: &mqtt::AsyncClient, topic: &str, id: &str, code: i64, message: &str, data: serde_json::Value) {
    let reply = serde_json::json!({"id": id, "code": code, "message": message, "data": data});
    drop(cli.publish(mqtt::Message::new(format!("{topic}_reply"), serde_json::to_vec(&reply).unwrap(), 0)));
}

impl CloudSim {
    /// Starts the CONNECT-checking front on a free port, forwarding to mosquitto on `broker_port`,
    /// and the responder connected to mosquitto directly.
    pub async fn start(broker_port: u16, secrets: Secrets) -> CloudSim {
        let record = Arc::new(Mutex::new(Record::default()));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind front");
        let front_port = listener.local_addr().unwrap().port();
        let (rec, sec) = (record.clone(), Arc::new(secrets));
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(front(sock, broker_port, sec.clone(), rec.clone()));
            }
        });
        let cli = mqtt::CreateOptionsBuilder::new_v3()
            .server_uri(format!("tcp://127.0.0.1:{broker_port}"))
            .client_id(format!("cloud-sim-{front_port}"))
            .persistence(mqtt::PersistenceType::None)
            .create_client()
            .expect("cloud client");
        let rec = record.clone();
        let c2 = cli.clone();
        tokio::spawn(responder(c2, rec));
        CloudSim { record, front_port, cli }
    }

    pub fn uri(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.front_port)
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Record) -> T) -> T {
        f(&mut self.record.lock().unwrap())
    }

    /// Sends a command; the reply shows up in `command_replies`.
    pub async fn command(&self, topic: &str, payload: &[u8]) {
        for _ in 0..100 {
            if self.cli.is_connected() {
                let _ = self.cli.publish(mqtt::Message::new(topic, payload, 1)).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("cloud simulator not connected to the broker");
    }
}

/// Reads the CONNECT packet, checks the EnOS sign, then splices the connection to mosquitto.
async fn front(mut sock: TcpStream, broker_port: u16, secrets: Arc<Secrets>, rec: Arc<Mutex<Record>>) {
    let mut buf = vec![0u8; 5];
    if sock.read_exact(&mut buf[..2]).await.is_err() || buf[0] != 0x10 {
        return;
    }
    // remaining length varint
    let mut len = (buf[1] & 0x7f) as usize;
    let mut shift = 7;
    let mut b = buf[1];
    while b & 0x80 != 0 {
        let mut one = [0u8];
        if sock.read_exact(&mut one).await.is_err() {
            return;
        }
        buf.push(one[0]);
        b = one[0];
        len |= ((b & 0x7f) as usize) << shift;
        shift += 7;
    }
    let mut head: Vec<u8> = buf[..2].to_vec();
    head.extend_from_slice(&buf[5..]);
    let mut body = vec![0u8; len];
    if sock.read_exact(&mut body).await.is_err() {
        return;
    }
    if rec.lock().unwrap().refuse_connects {
        let _ = sock.write_all(&[0x20, 0x02, 0x00, 0x03]).await; // server unavailable
        return;
    }
    let ok = check_connect(&body, &secrets).unwrap_or(false);
    if !ok {
        rec.lock().unwrap().connects_refused += 1;
        let _ = sock.write_all(&[0x20, 0x02, 0x00, 0x05]).await; // not authorized
        return;
    }
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", broker_port)).await else { return };
    rec.lock().unwrap().connects_ok += 1;
    head.extend_from_slice(&body);
    if up.write_all(&head).await.is_err() {
        return;
    }
    let cut = rec.lock().unwrap().cut_links.clone();
    let cut = cut.notified();
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut sock, &mut up) => {}
        _ = cut => {} // both sockets close: the gateway and the broker see the link drop
    }
}

fn check_connect(body: &[u8], secrets: &Secrets) -> Option<bool> {
    let rd = |o: usize| -> Option<(String, usize)> {
        let l = u16::from_be_bytes([*body.get(o)?, *body.get(o + 1)?]) as usize;
        Some((String::from_utf8(body.get(o + 2..o + 2 + l)?.to_vec()).ok()?, o + 2 + l))
    };
    let (proto, o) = rd(0)?;
    if proto != "MQTT" || body.get(o)? != &4 {
        return Some(false); // EnOS speaks MQTT 3.1.1 only
    }
    let flags = *body.get(o + 1)?;
    let (client_id, mut o) = rd(o + 4)?;
    if flags & 0x04 != 0 {
        o = rd(o)?.1;
        o = rd(o)?.1;
    }
    let (user, o) = if flags & 0x80 != 0 { rd(o)? } else { return Some(false) };
    let (pass, _) = if flags & 0x40 != 0 { rd(o)? } else { return Some(false) };
    let (id, mode, method, ts) = sign::parse_client_id(&client_id)?;
    let (dk, pk) = user.split_once('&')?;
    if mode != "2" || !(method == "sha256" || method == "hmacsha256") {
        return Some(false);
    }
    let secret = secrets.get(dk)?;
    let want = sign::sign(&[("clientId", &id), ("deviceKey", dk), ("productKey", pk), ("timestamp", &ts)], secret);
    Some(want.eq_ignore_ascii_case(&pass))
}

async fn responder(cli: mqtt::AsyncClient, rec: Arc<Mutex<Record>>) {
    let mut cli = cli;
    let stream = cli.get_stream(100_000);
    loop {
        let opts = mqtt::ConnectOptionsBuilder::new_v3().clean_session(true).keep_alive_interval(Duration::from_secs(5)).finalize();
        if cli.connect(opts).await.is_err() || cli.subscribe_many_same_qos(&["/sys/#", "/ext/session/#"], 1).await.is_err() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        while let Ok(Some(msg)) = stream.recv().await {
            handle(&cli, &rec, msg.topic(), msg.payload());
        }
    }
}

fn handle(cli: &mqtt::AsyncClient, rec: &Arc<Mutex<Record>>, topic: &str, payload: &[u8]) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else { return };
    let mut r = rec.lock().unwrap();
    r.arrivals.push(topic.to_string());
    if topic.ends_with("_reply") {
        // ours to the gateway's requests, echoed by the broker
        const OURS: [&str; 12] = [
            "/post/batch_reply",
            "/resume/batch_reply",
            "topo/add_reply",
            "topo/delete_reply",
            "login/batch_reply",
            "combine/logout_reply",
            "inform_reply",
            "device/register_reply",
            "tsltemplate/get_reply",
            // monitoring: attributes, events and log lines (`/post_reply`), network status
            "attribute/update_reply",
            "/post_reply",
            "status/report_reply",
        ];
        if !OURS.iter().any(|o| topic.ends_with(o)) {
            r.command_replies.push((topic.to_string(), v));
        }
        return;
    }
    let is_command = topic.contains("/thing/service/")
        || topic.ends_with("/ota/device/upgrade")
        || ["/combine/enable", "/combine/disable", "/combine/delete"].iter().any(|c| topic.ends_with(c));
    if is_command {
        return; // ours, echoed by the broker
    }
    if r.lose_monitoring && (topic.contains("/thing/event/") || topic.ends_with("/thing/attribute/update")) {
        return;
    }
    if !r.drop_points {
        r.requests.push((topic.to_string(), v.clone()));
    }
    let id = v["id"].as_str().unwrap_or("").to_string();
    let telemetry = topic.ends_with("/measurepoint/post/batch") || topic.ends_with("/measurepoint/resume/batch");
    let mut code = 200;
    let mut data = serde_json::json!({});
    if telemetry {
        if r.silent {
            let unstored = points_of(&v, false, 0).into_iter().map(|p| (p.product_key, p.device_key, p.point, p.time));
            r.unstored_samples.extend(unstored);
            r.unstored_ids.insert(id);
            return;
        }
        let stored_before = r.points.len();
        // Sent again: not stored once (refused, unanswered), or made before one already stored on
        // this topic (ids grow in the order the gateway made its messages: one lost in a broker
        // and sent again after its reply timed out).
        let n: u64 = id.parse().unwrap_or(0);
        let redelivery = r.unstored_ids.contains(&id) || r.newest_stored_id.get(topic).is_some_and(|m| n < *m);
        r.telemetry_messages += 1;
        if !r.next_codes.is_empty() {
            code = r.next_codes.remove(0);
        } else if let Some(c) = r.refusing {
            code = c;
        }
        if code != 200 {
            let resume = topic.ends_with("resume/batch");
            let refused = points_of(&v, resume, enos_batch::now_ms());
            let unstored = refused.iter().map(|p| (p.product_key.clone(), p.device_key.clone(), p.point.clone(), p.time));
            let unstored: Vec<_> = unstored.collect();
            r.unstored_samples.extend(unstored);
            r.refused.extend(refused);
            r.unstored_ids.insert(id.clone());
        }
        if code == 200 {
            let resume = topic.ends_with("resume/batch");
            let now = enos_batch::now_ms();
            for e in v["params"].as_array().into_iter().flatten() {
                let time = e["time"].as_u64().unwrap_or(0);
                let n = e["measurepoints"].as_object().map(|m| m.len() as u64).unwrap_or(0);
                let before = r.points_total;
                r.points_total += n;
                if resume {
                    r.points_resume += n;
                }
                if before / 10 != r.points_total / 10 {
                    r.latencies_ms.push(now.saturating_sub(time));
                }
                if r.drop_points {
                    continue;
                }
                for (k, val) in e["measurepoints"].as_object().into_iter().flatten() {
                    r.points.push(Point {
                        product_key: e["productKey"].as_str().map(String::from),
                        device_key: e["deviceKey"].as_str().map(String::from),
                        point: k.clone(),
                        value: val.clone(),
                        time,
                        resume,
                        arrived_ms: now,
                    });
                }
            }
            if redelivery {
                let stored = stored_before..r.points.len();
                r.redelivered.push(stored);
            } else if !r.unstored_samples.is_empty() {
                for i in stored_before..r.points.len() {
                    let p = &r.points[i];
                    if r.unstored_samples.contains(&(p.product_key.clone(), p.device_key.clone(), p.point.clone(), p.time)) {
                        r.redelivered.push(i..i + 1);
                    }
                }
            }
            let newest = r.newest_stored_id.entry(topic.to_string()).or_default();
            *newest = (*newest).max(n);
        }
    } else if topic.ends_with("/thing/topo/add") && r.unanswered_topo_add > 0 {
        r.unanswered_topo_add -= 1;
        return;
    } else if topic.ends_with("/thing/device/register") {
        if let Some((c, m)) = r.refuse_register.clone() {
            return reply_with(cli, topic, &id, c, &m, serde_json::json!([]));
        }
        match r.hostile_register {
            Some(Hostile::NotJson) => {
                drop(cli.publish(mqtt::Message::new(format!("{topic}_reply"), &b"<html>bad gateway</html>"[..], 0)));
                return;
            }
            Some(Hostile::WrongId) => return reply_with(cli, topic, "999999", 200, "", serde_json::json!([])),
            Some(Hostile::EmptyData) => return reply_with(cli, topic, &id, 200, "", serde_json::json!({})),
            None => {}
        }
        let mut out = Vec::new();
        for d in v["params"].as_array().into_iter().flatten() {
            let pk = d["productKey"].as_str().unwrap_or_default().to_string();
            let n = r.devices.len();
            let dk = d["deviceKey"].as_str().map(String::from).unwrap_or_else(|| format!("sim{n}"));
            let entry = r.devices.entry((pk.clone(), dk.clone())).or_insert_with(|| (format!("secret-{dk}-{n}"), format!("asset{n}")));
            out.push(serde_json::json!({"productKey": pk, "deviceKey": dk, "deviceSecret": entry.0, "assetId": entry.1}));
        }
        data = serde_json::Value::Array(out);
    } else if topic.ends_with("/thing/topo/add") {
        for d in v["params"].as_array().into_iter().flatten() {
            r.topo.insert(keys_of(d));
        }
    } else if topic.ends_with("/thing/topo/delete") {
        for d in v["params"].as_array().into_iter().flatten() {
            r.topo.remove(&keys_of(d));
        }
    } else if topic.ends_with("/combine/logout") {
        let k = keys_of(&v["params"]);
        r.online.remove(&k);
    } else if topic.ends_with("/combine/login/batch") {
        // a device the simulator registered must sign with the secret it was given
        let ts = v["params"]["timestamp"].as_str().unwrap_or_default().to_string();
        let client = v["params"]["clientId"].as_str().unwrap_or_default().to_string();
        let (mut ok, mut failed) = (Vec::new(), Vec::new());
        for d in v["params"]["subDevices"].as_array().into_iter().flatten() {
            let k = keys_of(d);
            let good = match r.devices.get(&k) {
                Some((secret, _)) => {
                    let want = sign::sign(&[("clientId", &client), ("deviceKey", &k.1), ("productKey", &k.0), ("timestamp", &ts)], secret);
                    d["sign"].as_str() == Some(want.as_str())
                }
                None => true, // configured by hand: the simulator does not know its secret
            };
            if good {
                r.online.insert(k);
                ok.push(d.clone());
            } else {
                failed.push(serde_json::json!({"productKey": k.0, "deviceKey": k.1, "code": 1002, "message": "bad sign"}));
            }
        }
        data = serde_json::json!({"loginedSubDevices": ok, "failedSubDevices": failed});
    } else if topic.ends_with("/thing/tsltemplate/get") {
        let pk = topic.split('/').nth(2).unwrap_or_default();
        match r.models.get(pk) {
            Some(m) => data = m.clone(),
            None => code = 1102,
        }
    }
    drop(r);
    let reply =
        serde_json::json!({"id": id, "code": code, "message": if code == 200 { "" } else { "refused by the simulator" }, "data": data});
    // QoS 0: paho.mqtt.c can crash with a double free when a connection drops while it holds many
    // QoS 1 publications in flight (eclipse-paho/paho.mqtt.c#1532, #1621; seen here in the
    // bench's broker stop at 100k points/s). A lost reply is a timeout the uplink handles anyway.
    drop(cli.publish(mqtt::Message::new(format!("{topic}_reply"), serde_json::to_vec(&reply).unwrap(), 0)));
}

/// The cloud's package server: resource packages (`applyResourcePackage`'s `url`) served over
/// HTTP on 127.0.0.1 with Range support, like the OTA file server.
impl CloudSim {
    /// Serves `body` and returns its URL and the server (kept alive by the caller);
    /// `break_first_at` cuts the first transfer to prove the resume.
    pub async fn serve_package(&self, body: Vec<u8>, break_first_at: Option<usize>) -> (String, crate::http_file::FileServer) {
        let server = crate::http_file::FileServer::start(body, break_first_at).await;
        (format!("http://127.0.0.1:{}/packages/package.json", server.port), server)
    }
}

/// Cloud outages for the fault campaign.
impl CloudSim {
    /// Drops every gateway connection through the front now (the broker's own stay up).
    pub fn cut_links(&self) {
        self.with(|r| r.cut_links.clone()).notify_waiters();
    }
}

/// The points of a telemetry message.
fn points_of(v: &serde_json::Value, resume: bool, now: u64) -> Vec<Point> {
    let mut out = Vec::new();
    for e in v["params"].as_array().into_iter().flatten() {
        for (k, val) in e["measurepoints"].as_object().into_iter().flatten() {
            out.push(Point {
                product_key: e["productKey"].as_str().map(String::from),
                device_key: e["deviceKey"].as_str().map(String::from),
                point: k.clone(),
                value: val.clone(),
                time: e["time"].as_u64().unwrap_or(0),
                resume,
                arrived_ms: now,
            });
        }
    }
    out
}
