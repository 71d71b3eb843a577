//! The sender: drains the cache into the cloud while connected.
//!
//! What goes which way and in which order is `order`'s policy: live records (every sample
//! younger than `resume_after_s`) as `post/batch`, oldest acquisition first; the backlog the
//! same way as `resume/batch` within the rest of the window, with `live_share_percent` of the
//! window kept free for live data. A record leaves the cache only when every message made from
//! it was answered with code 200. No answer in time: sent again. A busy or failing cloud (429,
//! 5xx: `codes::is_transient`): sent again with backoff until taken. Any other refusal: retried
//! with backoff up to `max_attempts`, then dropped or dead-lettered.
//!
//! Order on the wire: messages are handed to paho in the order they were made, and a publish
//! paho refuses holds back every later one until it is taken. A live message sent again (no
//! reply in time, or refused) after a newer live message went out goes through `resume/batch`
//! (`to_resume`), and the live floor (`order`) outlives the connection: the live path stays in
//! acquisition order per point. What can still reach the cloud out of order, on `resume/batch`
//! only (EnOS files it by time), is a re-delivery: a message sent again after its reply timed
//! out (the cloud usually has it already: a duplicate) or one the cloud refused.
//! While a sub-device's first registration is under way, records with its samples wait; while
//! its login is, its live records wait (`resume/batch` allows offline sub-devices). Once an
//! attempt failed nothing waits for it any more: its samples are not uploaded (counted as
//! unroutable), the others' go (`sub_devices`).

use crate::config::RejectPolicy;
use crate::mqtt::{self, next_id, Client, Replies};
use crate::order;
use crate::state::Shared;
use enos_batch::DecodedBatch;
use enos_cache::RecordMeta;
use enos_cloud::telemetry::{pack_where, Stream};
use enos_cloud::topics;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const PUBLISH_RETRY_MS: u64 = 200;
/// At most this many records go into one unit.
const GROUP_RECORDS: usize = 32;

/// Records sent together; they leave the cache when all their messages are acknowledged.
struct Unit {
    seqs: Vec<u64>,
    remaining: usize,
}

struct Msg {
    unit: u64,
    stream: Stream,
    topic: String,
    payload: Arc<Vec<u8>>,
    points: u64,
    sent_at: Instant,
    attempts: u32,
    /// Refusals that said the message is wrong (not the cloud busy): these count towards
    /// `max_attempts`.
    wrong: u32,
    retry_at: Option<Instant>,
    /// Not yet taken by paho (it refused the publish, or an earlier message is still refused).
    unpublished: bool,
}

struct Sender<'a> {
    shared: &'a Arc<Shared>,
    cli: Client,
    units: HashMap<u64, Unit>,
    next_unit: u64,
    /// By request id: ids grow, so key order is the order the messages were made.
    msgs: BTreeMap<u64, Msg>,
    taken: HashSet<u64>,
    /// The id of the newest live message handed to paho on this connection.
    newest_live: u64,
    /// Records of sub-devices waiting for their registration or login.
    held: HashSet<u64>,
    /// The sub-devices' generation `held` was decided at.
    subs_seen: u64,
    /// When unroutable points were last said in the log.
    unroutable_said: Option<Instant>,
    /// The settings, looked at again on every turn (the cloud may change them).
    t: crate::config::Tuning,
}

/// Runs until the connection is lost; returns why.
pub async fn run(shared: &Arc<Shared>, cli: Client, mut replies: Replies) -> String {
    let mut s = Sender {
        shared,
        cli,
        units: HashMap::new(),
        next_unit: 0,
        msgs: BTreeMap::new(),
        taken: HashSet::new(),
        newest_live: 0,
        held: HashSet::new(),
        subs_seen: 0,
        unroutable_said: None,
        t: shared.tuning(),
    };
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        if !mqtt::is_connected(&s.cli) {
            return "connection lost".into();
        }
        s.t = shared.tuning();
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
    fn fill(&mut self) {
        let max = self.t.max_in_flight;
        if self.msgs.len() >= max {
            return;
        }
        let generation = self.shared.subs_generation.load(Ordering::Relaxed);
        if generation != self.subs_seen {
            // a sub-device registered, logged in or failed: what waited for it is looked at again
            self.subs_seen = generation;
            self.held.clear();
        }
        let threshold = order::threshold(enos_batch::now_ms(), self.t.sender.resume_after_s);
        let (taken, held) = (&self.taken, &self.held);
        let live = order::live_records(&self.shared.cache, threshold, (max - self.msgs.len()) * GROUP_RECORDS, |m| {
            taken.contains(&m.seq) || held.contains(&m.seq)
        });
        self.send_records(live, Stream::Live);
        let reserve = max * self.t.sender.live_share_percent as usize / 100;
        let room = max.saturating_sub(reserve).saturating_sub(self.msgs.len());
        if room == 0 {
            return;
        }
        let (taken, held) = (&self.taken, &self.held);
        let backlog = order::backlog_records(&self.shared.cache, threshold, room * GROUP_RECORDS, |m| {
            taken.contains(&m.seq) || held.contains(&m.seq)
        });
        self.send_records(backlog, Stream::Resume);
    }

    /// Groups consecutive small records into one unit, packs, publishes.
    fn send_records(&mut self, records: Vec<RecordMeta>, stream: Stream) {
        let budget = self.t.sender.max_message_bytes / 10;
        let mut group: Vec<RecordMeta> = Vec::new();
        let mut bytes = 0u64;
        for r in records {
            if self.msgs.len() >= self.t.max_in_flight {
                break;
            }
            if !group.is_empty() && (bytes + r.bytes > budget as u64 || group.len() >= GROUP_RECORDS) {
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
        let waiting = self.shared.subs().waiting(stream);
        let parked = self.shared.subs().parked();
        for r in &records {
            match self.shared.cache.read(r.seq) {
                Ok(Some(bytes)) => match DecodedBatch::decode(&bytes) {
                    Ok(b) if !waiting.is_empty() && b.series.iter().any(|s| waiting.iter().any(|w| w == b.name(s.device))) => {
                        self.held.insert(r.seq);
                    }
                    Ok(b) if !parked.is_empty() && b.series.iter().any(|s| parked.iter().any(|w| w == b.name(s.device))) => {
                        match self.park(b, &parked) {
                            Some(rest) => {
                                batches.push(rest);
                                seqs.push(r.seq);
                            }
                            None => drop(self.held.insert(r.seq)),
                        }
                    }
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
        // Live samples older than what went live already for their point go through resume.
        let late = match stream {
            Stream::Live => self.shared.live_floor.lock().expect("live floor").claim(&batches),
            Stream::Resume => None,
        };
        // Live samples of a sub-device that is registered but not logged in go through resume,
        // which allows offline sub-devices (a live batch is all or nothing).
        let offline = match stream {
            Stream::Live => self.shared.subs().offline(),
            Stream::Resume => Vec::new(),
        };
        let divert = |d: &str, p: &str, t: u64| late.as_ref().is_some_and(|l| l.is_late(d, p, t)) || offline.iter().any(|o| o == d);
        let mut parts = Vec::new();
        let mut unroutable = 0;
        let max_bytes = self.t.sender.max_message_bytes;
        if late.is_some() || !offline.is_empty() {
            let p = self.pack(&batches, Stream::Resume, max_bytes, divert);
            log::debug!(
                "{} live samples arrived after newer ones went live or belong to sub-devices not logged in; sending them through resume",
                p.1.iter().map(|m| m.2).sum::<u64>()
            );
            unroutable += p.0;
            parts.push((Stream::Resume, p.1));
        }
        let p = self.pack(&batches, stream, max_bytes, |d, p, t| !divert(d, p, t));
        unroutable += p.0;
        parts.push((stream, p.1));
        if unroutable > 0 {
            // said once a minute, not with every message: the status names each device and why
            if self.unroutable_said.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                self.unroutable_said = Some(Instant::now());
                log::warn!(
                    "{unroutable} points belong to devices that have no cloud identity or may not upload now (see the \
                     sub-devices in the uplink's status); they are not uploaded"
                );
            }
            self.shared.sender_stats(|s| s.unroutable_points += unroutable);
        }
        let count: usize = parts.iter().map(|(_, m)| m.len()).sum();
        if count == 0 {
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
        log::debug!("unit {unit} ({stream:?}) carries records {seqs:?}");
        self.units.insert(unit, Unit { seqs, remaining: count });
        for (stream, messages) in parts {
            let topic = topics::sys(&self.shared.cfg.cloud.product_key, &self.shared.cfg.cloud.device_key, stream.topic_suffix());
            for (id, payload, points) in messages {
                let mut m = Msg {
                    unit,
                    stream,
                    topic: topic.clone(),
                    payload: Arc::new(payload),
                    points,
                    sent_at: Instant::now(),
                    attempts: 0,
                    wrong: 0,
                    retry_at: None,
                    unpublished: false,
                };
                self.publish(id, &mut m);
                self.msgs.insert(id, m);
            }
        }
    }

    /// Samples of devices waiting for their cloud identity stay in the cache: a record that holds
    /// only theirs waits whole (`None`); from a mixed one their samples are copied into a record of
    /// their own and the rest goes now. A crash in between can send the others twice, never lose
    /// the parked ones.
    fn park(&mut self, mut b: DecodedBatch, parked: &[String]) -> Option<DecodedBatch> {
        let is_parked = |b: &DecodedBatch, s: &enos_batch::Series| parked.iter().any(|p| p == b.name(s.device));
        if b.series.iter().all(|s| is_parked(&b, s)) {
            return None;
        }
        let mut own = enos_batch::BatchBuilder::new();
        for s in b.series.iter().filter(|s| is_parked(&b, s)) {
            for i in 0..s.ts.len() {
                let flags = s.flags.get(i).copied().unwrap_or_default();
                own.push_flagged(b.name(s.device), b.name(s.point), s.ts[i], s.values[i].clone(), s.quality[i], flags);
            }
        }
        match self.shared.cache.append(&own.finish(), enos_batch::now_ms()) {
            Ok(m) => log::debug!("{} samples of devices waiting for their registration parked as record {}", m.points, m.seq),
            Err(e) => {
                // not parked: the whole record waits rather than lose them
                log::warn!("samples of devices waiting for their registration could not be parked ({e}); their record waits");
                return None;
            }
        }
        let keep: Vec<bool> = b.series.iter().map(|s| !is_parked(&b, s)).collect();
        let mut k = keep.into_iter();
        b.series.retain(|_| k.next().unwrap_or(true));
        Some(b)
    }

    /// Packs the kept samples of `batches`: (unroutable points, [(id, payload, points)]).
    #[allow(clippy::type_complexity)]
    fn pack(
        &self,
        batches: &[DecodedBatch],
        stream: Stream,
        max_bytes: usize,
        keep: impl FnMut(&str, &str, u64) -> bool,
    ) -> (u64, Vec<(u64, Vec<u8>, u64)>) {
        let mut ids = Vec::new();
        let routes = self.shared.subs().key_map(stream);
        let packed = pack_where(
            batches,
            &routes,
            stream,
            &mut || {
                let id = next_id();
                ids.push(id);
                id
            },
            max_bytes,
            keep,
        );
        (packed.unroutable, ids.into_iter().zip(packed.messages).map(|(id, (p, n))| (id, p, n)).collect())
    }

    /// Hands the message to paho. Paho refuses at once when the connection just dropped (or its
    /// queue is full); the message is then tried again shortly instead of waiting out
    /// a whole reply timeout for an answer to something never sent. While an earlier message
    /// waits so, later ones wait behind it: they must not overtake it.
    fn publish(&mut self, id: u64, m: &mut Msg) {
        if self.msgs.range(..id).any(|(_, x)| x.unpublished) {
            m.unpublished = true;
            m.retry_at = Some(Instant::now() + Duration::from_millis(PUBLISH_RETRY_MS));
            return;
        }
        match mqtt::try_publish(&self.cli, &m.topic, &m.payload) {
            Ok(()) => {
                m.unpublished = false;
                if m.stream == Stream::Live {
                    self.newest_live = self.newest_live.max(id);
                }
                self.shared.sender_stats(|s| s.messages_sent += 1);
            }
            Err(e) => {
                log::debug!("publish refused by the MQTT client ({e}); trying again shortly");
                m.unpublished = true;
                m.retry_at = Some(Instant::now() + Duration::from_millis(PUBLISH_RETRY_MS));
                self.shared.sender_stats(|s| s.publish_refused += 1);
            }
        }
    }

    fn on_reply(&mut self, topic: &str, reply: enos_cloud::Reply) {
        let Some(base) = topics::request_of(topic) else { return };
        let Ok(id) = reply.id.parse::<u64>() else { return };
        let Some(m) = self.msgs.get(&id) else { return };
        if m.topic != base {
            return;
        }
        let mut m = self.msgs.remove(&id).expect("present");
        if reply.code == enos_cloud::codes::OK {
            crate::last_sent::acked(&m.payload);
            self.shared.sender_stats(|s| {
                s.messages_acked += 1;
                s.points_acked += m.points;
                match m.stream {
                    Stream::Live => s.points_acked_live += m.points,
                    Stream::Resume => s.points_acked_resume += m.points,
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
        let transient = enos_cloud::codes::is_transient(reply.code);
        let said = format!("cloud refused message {} (attempt {}): code {} {}", reply.id, m.attempts, reply.code, reply.message);
        if transient && m.attempts > self.t.sender.max_attempts {
            log::debug!("{said}"); // said at warn level up to max_attempts; it goes on for as long as the cloud is busy
        } else {
            log::warn!("{said}");
        }
        // A busy or failing cloud (429, 5xx) is waited out: what it refuses so stays in the cache
        // and is sent again, at most once a minute, until it is taken.
        if !transient {
            m.wrong += 1;
        }
        if m.wrong < self.t.sender.max_attempts {
            let backoff = Duration::from_millis((500u64 << m.attempts.min(7)).min(60_000));
            m.retry_at = Some(Instant::now() + backoff);
            self.msgs.insert(id, m);
            return;
        }
        // Give up on the whole unit: its records leave the outbox per policy.
        let unit = m.unit;
        self.msgs.retain(|_, x| x.unit != unit);
        if let Some(u) = self.units.remove(&unit) {
            let policy = self.t.sender.on_reject;
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
            let whereto = match policy {
                RejectPolicy::DeadLetter => "moved to the dead-letter store",
                RejectPolicy::Drop => "dropped (on_reject = \"drop\")",
            };
            log::error!("gave up on {} records ({points} points) after {} refusals by the cloud: {whereto}", u.seqs.len(), m.wrong);
            self.shared.sender_stats(|s| match policy {
                RejectPolicy::DeadLetter => s.dead_lettered_points += points,
                RejectPolicy::Drop => s.dropped_rejected_points += points,
            });
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        let timeout = Duration::from_secs(self.t.sender.reply_timeout_s);
        let mut resend = Vec::new();
        for (id, m) in self.msgs.iter_mut() {
            match m.retry_at {
                Some(t) if t <= now => {
                    m.retry_at = None;
                    m.sent_at = now;
                    resend.push(*id);
                }
                None if m.sent_at + timeout <= now => {
                    m.sent_at = now;
                    resend.push(*id);
                    log::debug!("message {id}: no reply in time, sent again");
                    self.shared.sender_stats(|s| s.timeouts += 1);
                }
                _ => {}
            }
        }
        // in the order the messages were made (BTreeMap order)
        for id in resend {
            if let Some(mut m) = self.msgs.remove(&id) {
                if !m.unpublished && m.stream == Stream::Live && self.newest_live > id {
                    self.to_resume(id, &mut m);
                }
                // only an earlier message still refused holds it back
                m.unpublished = false;
                self.publish(id, &mut m);
                self.msgs.insert(id, m);
            }
        }
    }

    /// A live message sent again after a newer live message went out would reach the cloud as
    /// older current data after newer (an inversion on the live path, which feeds alerts and
    /// latest values): it goes through `resume/batch`, same id, same rows.
    fn to_resume(&self, id: u64, m: &mut Msg) {
        match enos_cloud::telemetry::restream(&m.payload, Stream::Resume) {
            Some(p) => {
                log::debug!("message {id} sent again after newer live data: through resume");
                m.payload = Arc::new(p);
                m.stream = Stream::Resume;
                m.topic = topics::sys(&self.shared.cfg.cloud.product_key, &self.shared.cfg.cloud.device_key, Stream::Resume.topic_suffix());
                self.shared.sender_stats(|s| s.resent_through_resume += 1);
            }
            None => log::error!("message {id} could not be re-addressed to resume/batch; sent again as it was"),
        }
    }
}
