//! The sender: drains the cache into the cloud while connected.
//!
//! Live records (enqueued less than `resume_after_s` ago) go first, oldest of them first, as
//! `post/batch`; the backlog drains oldest first as `resume/batch` within the rest of the window,
//! with `live_share_percent` of the window kept free for live data. A record leaves the cache only
//! when every message made from it was answered with code 200. No answer in time: sent again.
//! A non-200 answer: retried with backoff up to `max_attempts`, then dropped or dead-lettered.

use crate::session::{next_id, Conn};
use crate::state::Shared;
use enos_cache::RecordMeta;
use enos_cloud::telemetry::{pack, Stream};
use enos_cloud::topics;
use enos_model::batch::DecodedBatch;
use enos_model::config::RejectPolicy;
use paho_mqtt as mqtt;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const PUBLISH_RETRY_MS: u64 = 200;

struct Unit {
    seqs: Vec<u64>,
    remaining: usize,
    stream: Stream,
}

struct Msg {
    unit: u64,
    topic: String,
    payload: Arc<Vec<u8>>,
    points: u64,
    sent_at: Instant,
    attempts: u32,
    retry_at: Option<Instant>,
}

struct Sender<'a> {
    shared: &'a Arc<Shared>,
    cli: mqtt::AsyncClient,
    units: HashMap<u64, Unit>,
    next_unit: u64,
    msgs: HashMap<String, Msg>,
    taken: HashSet<u64>,
}

/// Runs until the connection is lost; returns why.
pub async fn run(shared: &Arc<Shared>, conn: Conn) -> String {
    let Conn { cli, mut replies } = conn;
    let mut s = Sender { shared, cli, units: HashMap::new(), next_unit: 0, msgs: HashMap::new(), taken: HashSet::new() };
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        if !s.cli.is_connected() {
            return "connection lost".into();
        }
        s.fill();
        tokio::select! {
            r = replies.recv() => match r {
                Some((topic, reply)) => s.on_reply(&topic, reply),
                None => return "connection lost".into(),
            },
            _ = shared.new_data.notified() => {}
            _ = tick.tick() => s.on_tick(),
        }
        let inflight = s.msgs.len();
        shared.sender_stats(|st| st.in_flight = inflight);
    }
}

impl Sender<'_> {
    fn cfg(&self) -> &enos_model::config::UplinkConfig {
        &self.shared.cfg
    }

    fn fill(&mut self) {
        let max = self.cfg().cloud.max_in_flight;
        if self.msgs.len() >= max {
            return;
        }
        let now = enos_model::now_ms();
        let threshold = now.saturating_sub(self.cfg().sender.resume_after_s * 1000);
        let taken = &self.taken;
        let mut live = self.shared.cache.newest_since(threshold, max - self.msgs.len(), |m| !taken.contains(&m.seq));
        live.reverse();
        self.send_records(live, Stream::Live);
        let reserve = max * self.cfg().sender.live_share_percent as usize / 100;
        let room = max.saturating_sub(reserve).saturating_sub(self.msgs.len());
        if room == 0 {
            return;
        }
        let taken = &self.taken;
        let backlog = self.shared.cache.oldest(room * 8, |m| !taken.contains(&m.seq) && m.enqueued_ms < threshold);
        self.send_records(backlog, Stream::Resume);
    }

    /// Groups consecutive small records into one unit, packs, publishes.
    fn send_records(&mut self, records: Vec<RecordMeta>, stream: Stream) {
        let budget = self.cfg().sender.max_message_bytes / 10;
        let mut group: Vec<RecordMeta> = Vec::new();
        let mut bytes = 0u64;
        for r in records {
            if self.msgs.len() >= self.cfg().cloud.max_in_flight {
                break;
            }
            if !group.is_empty() && (bytes + r.bytes > budget as u64 || group.len() >= 32) {
                self.send_unit(std::mem::take(&mut group), stream);
                bytes = 0;
            }
            bytes += r.bytes;
            group.push(r);
        }
        if !group.is_empty() {
            self.send_unit(group, stream);
        }
    }

    fn send_unit(&mut self, records: Vec<RecordMeta>, stream: Stream) {
        let mut batches = Vec::new();
        let mut seqs = Vec::new();
        for r in &records {
            match self.shared.cache.read(r.seq) {
                Ok(Some(bytes)) => match DecodedBatch::decode(&bytes) {
                    Ok(b) => {
                        batches.push(b);
                        seqs.push(r.seq);
                    }
                    Err(e) => {
                        log::error!("cache record {} cannot be decoded ({e}); moving it to the dead-letter store", r.seq);
                        let _ = self.shared.cache.dead_letter(r.seq);
                    }
                },
                Ok(None) => {}
                Err(e) => log::error!("reading cache record {}: {e}", r.seq),
            }
        }
        if seqs.is_empty() {
            return;
        }
        let (pk, dk) = (&self.cfg().cloud.product_key, &self.cfg().cloud.device_key);
        let topic = topics::sys(pk, dk, stream.topic_suffix());
        let mut ids = Vec::new();
        let packed = pack(
            &batches,
            &self.shared.keys,
            stream,
            &mut || {
                let id = next_id();
                ids.push(id);
                id
            },
            self.cfg().sender.max_message_bytes,
        );
        if packed.unroutable > 0 {
            log::warn!(
                "{} points belong to devices without an EnOS identity (add a [[sub_device]]); they are not uploaded",
                packed.unroutable
            );
            self.shared.sender_stats(|s| s.unroutable_points += packed.unroutable);
        }
        if packed.messages.is_empty() {
            for s in &seqs {
                let _ = self.shared.cache.remove(*s);
            }
            return;
        }
        let unit = self.next_unit;
        self.next_unit += 1;
        for s in &seqs {
            self.taken.insert(*s);
        }
        self.units.insert(unit, Unit { seqs, remaining: packed.messages.len(), stream });
        for ((payload, points), id) in packed.messages.into_iter().zip(ids) {
            let mut m = Msg {
                unit,
                topic: topic.clone(),
                payload: Arc::new(payload),
                points,
                sent_at: Instant::now(),
                attempts: 0,
                retry_at: None,
            };
            log::debug!("message {id} ({stream:?}, unit {unit}) carries records {:?}", self.units[&unit].seqs);
            self.publish(&mut m);
            self.msgs.insert(id.to_string(), m);
        }
    }

    /// Hands the message to paho. Paho refuses at once when its in-flight window is full or the
    /// connection just dropped; the message is then tried again shortly instead of waiting out
    /// a whole reply timeout for an answer to something never sent.
    fn publish(&self, m: &mut Msg) {
        match self.cli.try_publish(mqtt::Message::new(m.topic.as_str(), m.payload.as_slice(), 1)) {
            Ok(tok) => {
                drop(tok);
                self.shared.sender_stats(|s| s.messages_sent += 1);
            }
            Err(e) => {
                log::debug!("publish refused by the MQTT client ({e}); trying again shortly");
                m.retry_at = Some(Instant::now() + Duration::from_millis(PUBLISH_RETRY_MS));
                self.shared.sender_stats(|s| s.publish_refused += 1);
            }
        }
    }

    fn on_reply(&mut self, topic: &str, reply: enos_cloud::Reply) {
        let Some(base) = topic.strip_suffix("_reply") else { return };
        let Some(m) = self.msgs.get(&reply.id) else { return };
        if m.topic != base {
            return;
        }
        let mut m = self.msgs.remove(&reply.id).expect("present");
        if reply.code == 200 {
            crate::last_sent::acked(&m.payload);
            let stream = self.units.get(&m.unit).map(|u| u.stream);
            self.shared.sender_stats(|s| {
                s.messages_acked += 1;
                s.points_acked += m.points;
                match stream {
                    Some(Stream::Live) => s.points_acked_live += m.points,
                    _ => s.points_acked_resume += m.points,
                }
            });
            let done = match self.units.get_mut(&m.unit) {
                Some(u) => {
                    u.remaining -= 1;
                    u.remaining == 0
                }
                None => false,
            };
            if done {
                let u = self.units.remove(&m.unit).expect("unit");
                log::debug!("message {} acked: records {:?} delivered", reply.id, u.seqs);
                for s in u.seqs {
                    if let Err(e) = self.shared.cache.remove(s) {
                        log::error!("removing delivered record {s}: {e}");
                    }
                    self.taken.remove(&s);
                }
            }
            return;
        }
        m.attempts += 1;
        self.shared.sender_stats(|s| s.rejected += 1);
        log::warn!("cloud refused message {} (attempt {}): code {} {}", reply.id, m.attempts, reply.code, reply.message);
        if m.attempts < self.cfg().sender.max_attempts {
            let backoff = Duration::from_millis((500u64 << m.attempts.min(7)).min(60_000));
            m.retry_at = Some(Instant::now() + backoff);
            self.msgs.insert(reply.id, m);
            return;
        }
        // Give up on the whole unit: its records leave the outbox per policy.
        let unit = m.unit;
        self.msgs.retain(|_, x| x.unit != unit);
        if let Some(u) = self.units.remove(&unit) {
            let policy = self.cfg().sender.on_reject;
            let mut points = 0;
            for s in &u.seqs {
                points += self.shared.cache.oldest(usize::MAX, |r| r.seq == *s).first().map(|r| r.points).unwrap_or(0);
                let r = match policy {
                    RejectPolicy::DeadLetter => self.shared.cache.dead_letter(*s),
                    RejectPolicy::Drop => self.shared.cache.remove(*s),
                };
                if let Err(e) = r {
                    log::error!("record {s}: {e}");
                }
                self.taken.remove(s);
            }
            log::error!("gave up on {} records ({points} points) after {} refusals: {:?}", u.seqs.len(), m.attempts, policy);
            self.shared.sender_stats(|s| match policy {
                RejectPolicy::DeadLetter => s.dead_lettered_points += points,
                RejectPolicy::Drop => s.dropped_rejected_points += points,
            });
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        let timeout = Duration::from_secs(self.cfg().sender.reply_timeout_s);
        let mut resend = Vec::new();
        for (id, m) in self.msgs.iter_mut() {
            match m.retry_at {
                Some(t) if t <= now => {
                    m.retry_at = None;
                    m.sent_at = now;
                    resend.push(id.clone());
                }
                None if m.sent_at + timeout <= now => {
                    m.sent_at = now;
                    resend.push(id.clone());
                    log::debug!("message {id}: no reply in time, sent again");
                    self.shared.sender_stats(|s| s.timeouts += 1);
                }
                _ => {}
            }
        }
        for id in resend {
            if let Some(mut m) = self.msgs.remove(&id) {
                self.publish(&mut m);
                self.msgs.insert(id, m);
            }
        }
    }
}
