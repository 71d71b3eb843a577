//! Frames → encoded batches → `PushTelemetry` on the uplink.
//!
//! Two tasks share one [`Pending`] store. The intake takes every frame as it comes (it never
//! waits for the uplink) and adds it to the batch being built. The hand-off pushes one batch at a
//! time: at least every `interval_ms` when there is data, at once when the batch holds
//! `max_samples`, and while a push is under way the next batch keeps growing, up to
//! [`window`] samples. So under load each call carries what arrived during the previous one:
//! the per-call cost (a D-Bus round trip, one fsync in the uplink) is shared by more samples
//! instead of several calls being in flight. One call at a time is what keeps the order: zbus
//! runs the uplink's method calls as concurrent tasks, so two calls in flight could be stored
//! the other way round, and a series' records must be appended in acquisition order.
//!
//! Bounded: what waits in memory (the batch being built, sealed batches, the one in flight) is
//! at most `buffer_max_samples`; beyond that the oldest sealed batches are shed and counted
//! (`samples_dropped`). Oldest first, not a slower poll schedule: the buffer exists to ride out
//! an uplink restart, the newest values are the ones that matter for alarms, and a stretched
//! poll interval would change every device's sampling without the cloud being able to tell.
//! The frame channel in front is small (`FRAME_QUEUE` frames); if even the intake cannot keep
//! up, the drivers wait on it and their polls slip (that costs CPU time, not memory).
//!
//! A batch counts as delivered only when the uplink answered, which it does after storing it
//! durably; an unanswered batch is pushed again (so a crash of the uplink at the wrong moment
//! gives a duplicate, never a loss). On an orderly stop (SIGTERM: reboot, update, restart) what
//! was read so far is handed on within [`FINAL_PUSH`]; what could not be is counted in the log.

use enos_batch::{BatchBuilder, Flags, Quality};
use enos_bus::UplinkProxy;
use enos_collector_config::PushConfig;
use enos_drivers::Frame;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

/// Frames between the drivers and the intake.
pub const FRAME_QUEUE: usize = 256;

/// How long an orderly stop may spend handing the last samples to the uplink (the unit orders
/// the collector's stop before the uplink's, so the uplink is still there).
const FINAL_PUSH: Duration = Duration::from_secs(5);

/// Overload (or a failing uplink) is logged at most this often.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// A push the uplink did not answer is tried again after this long.
const RETRY_AFTER: Duration = Duration::from_millis(500);

#[derive(Default)]
pub struct Stats {
    pub samples_collected: AtomicU64,
    pub batches_pushed: AtomicU64,
    pub samples_pushed: AtomicU64,
    pub push_failures: AtomicU64,
    pub samples_buffered: AtomicU64,
    /// Shed (oldest first) because the buffer was full, or refused by the uplink as invalid.
    pub samples_dropped: AtomicU64,
    /// The last push failed (the uplink is not answering).
    pub uplink_failing: AtomicBool,
    /// When batches last waited behind the one in flight, or samples were shed (ms, 0 = never).
    pub last_overload_ms: AtomicU64,
    /// `buffer_max_samples` of the running configuration.
    pub buffer_max_samples: AtomicU64,
}

impl Stats {
    /// `ok`, `overloaded` (in the last `REPORT_EVERY`: the uplink answers but does not keep up)
    /// or `uplink-unreachable`.
    pub fn state(&self) -> &'static str {
        if self.uplink_failing.load(Relaxed) {
            "uplink-unreachable"
        } else if self.recently_overloaded() {
            "overloaded"
        } else {
            "ok"
        }
    }

    fn recently_overloaded(&self) -> bool {
        let last = self.last_overload_ms.load(Relaxed);
        last != 0 && enos_batch::now_ms().saturating_sub(last) < REPORT_EVERY.as_millis() as u64
    }

    fn mark_overload(&self) {
        self.last_overload_ms.store(enos_batch::now_ms(), Relaxed);
    }
}

/// The largest batch: `max_samples` normally, up to 8 times that while a push is under way, and
/// never more than a quarter of the buffer (so the batch being built and the one in flight
/// always fit in it, and the bound holds by shedding sealed batches alone).
pub fn window(cfg: &PushConfig) -> usize {
    (cfg.max_samples.max(1) * 8).min(cfg.buffer_max_samples / 4).max(1)
}

struct Waiting {
    bytes: Vec<u8>,
    samples: u64,
}

/// Everything read and not yet answered by the uplink, oldest first: sealed batches, then the
/// batch being built. The batch in flight is counted in `in_flight`.
#[derive(Default)]
struct Pending {
    builder: BatchBuilder,
    sealed: VecDeque<Waiting>,
    sealed_samples: u64,
    in_flight: u64,
    stopping: bool,
}

impl Pending {
    fn buffered(&self) -> u64 {
        self.builder.len() as u64 + self.sealed_samples + self.in_flight
    }

    fn seal(&mut self) {
        if !self.builder.is_empty() {
            let samples = self.builder.len() as u64;
            self.sealed.push_back(Waiting { bytes: self.builder.finish(), samples });
            self.sealed_samples += samples;
        }
    }

    /// Drops the oldest sealed batches while more than `max` samples wait; the number shed.
    fn shed(&mut self, max: u64) -> u64 {
        let mut shed = 0;
        while self.buffered() > max {
            let Some(w) = self.sealed.pop_front() else { break };
            self.sealed_samples -= w.samples;
            shed += w.samples;
        }
        shed
    }
}

struct Shared {
    pending: Mutex<Pending>,
    /// Wakes the hand-off: a full batch, a sealed one, or the stop.
    wake: Notify,
    stats: Arc<Stats>,
    max_buffered: u64,
    max_samples: usize,
    window: usize,
    /// The gateway's clock is not set (`clock.rs`): every value taken is marked.
    clock_unset: Arc<AtomicBool>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().expect("pusher state")
    }

    fn add(&self, f: Frame) {
        self.stats.samples_collected.fetch_add(f.samples.len() as u64, Relaxed);
        let unset = self.clock_unset.load(Relaxed);
        let mut p = self.lock();
        for (point, v, mut q, mut flags) in f.samples {
            if unset {
                // its time is a guess: doubtful, so the flag reaches the cloud (good values go plain)
                flags |= Flags::CLOCK_UNSET;
                if q.is_good() {
                    q = Quality::Doubtful;
                }
            }
            p.builder.push_shared(&f.device, &point, f.ts_ms, v, q, flags);
        }
        if p.builder.len() >= self.window {
            p.seal();
        }
        let shed = p.shed(self.max_buffered);
        if shed > 0 {
            self.stats.samples_dropped.fetch_add(shed, Relaxed);
            self.stats.mark_overload();
        }
        self.stats.samples_buffered.store(p.buffered(), Relaxed);
        let due = !p.sealed.is_empty() || p.builder.len() >= self.max_samples;
        drop(p);
        if due {
            self.wake.notify_one();
        }
    }
}

/// Runs the intake and the hand-off until `stop`, then hands on what is left within
/// [`FINAL_PUSH`].
pub async fn run(
    conn: zbus::Connection,
    cfg: PushConfig,
    mut frames: mpsc::Receiver<Frame>,
    stats: Arc<Stats>,
    clock_unset: Arc<AtomicBool>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    stats.buffer_max_samples.store(cfg.buffer_max_samples as u64, Relaxed);
    let shared = Arc::new(Shared {
        pending: Mutex::default(),
        wake: Notify::new(),
        stats: stats.clone(),
        max_buffered: cfg.buffer_max_samples as u64,
        max_samples: cfg.max_samples.max(1),
        window: window(&cfg),
        clock_unset,
    });
    let mut hand_off = tokio::spawn(hand_off(conn, shared.clone(), Duration::from_millis(cfg.interval_ms)));
    let report = tokio::spawn(report(shared.clone()));
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            f = frames.recv() => match f {
                Some(f) => shared.add(f),
                None => break,
            },
        }
    }
    // Orderly stop: what was read so far goes to the uplink, not down with us. Only the frames
    // already queued: the drivers keep polling until the process ends.
    for _ in 0..frames.len() {
        match frames.try_recv() {
            Ok(f) => shared.add(f),
            Err(_) => break,
        }
    }
    {
        let mut p = shared.lock();
        p.seal();
        p.stopping = true;
    }
    shared.wake.notify_one();
    report.abort();
    match tokio::time::timeout(FINAL_PUSH, &mut hand_off).await {
        Ok(_) => log::info!("stopping: every sample handed to the uplink"),
        Err(_) => {
            hand_off.abort();
            let p = shared.lock();
            log::warn!(
                "stopping: {} samples could not be handed to the uplink within {} s and are lost{}",
                p.buffered(),
                FINAL_PUSH.as_secs(),
                if p.in_flight > 0 {
                    format!(" (the uplink may still store the {} of the batch in flight)", p.in_flight)
                } else {
                    String::new()
                }
            );
        }
    }
}

/// Pushes batches oldest first, one call at a time; returns when stopping and nothing is left.
async fn hand_off(conn: zbus::Connection, shared: Arc<Shared>, interval: Duration) {
    let stats = &shared.stats;
    let mut proxy: Option<UplinkProxy<'static>> = None;
    let mut due = Instant::now() + interval;
    let mut failing_since: Option<Instant> = None;
    let mut last_failure_log: Option<Instant> = None;
    loop {
        // Wait until a batch is due: a sealed one, a full one, the interval, or the stop.
        let taken = {
            let mut p = shared.lock();
            let now = Instant::now();
            if p.builder.is_empty() && now >= due {
                due = now + interval;
            }
            if let Some(w) = p.sealed.pop_front() {
                p.sealed_samples -= w.samples;
                p.in_flight = w.samples;
                Some(Ok(w))
            } else if !p.builder.is_empty() && (p.builder.len() >= shared.max_samples || now >= due || p.stopping) {
                p.in_flight = p.builder.len() as u64;
                Some(Err(std::mem::take(&mut p.builder)))
            } else if p.stopping {
                return;
            } else {
                None
            }
        };
        let Some(taken) = taken else {
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = shared.wake.notified() => {}
            }
            continue;
        };
        due = Instant::now() + interval;
        // Encoding happens outside the lock, so the intake goes on meanwhile.
        let w = taken.unwrap_or_else(|mut b| {
            let samples = b.len() as u64;
            Waiting { bytes: b.finish(), samples }
        });
        if proxy.is_none() {
            proxy = UplinkProxy::new(&conn).await.ok();
        }
        let result = match &proxy {
            Some(p) => p.push_telemetry(&w.bytes).await,
            None => Err(enos_bus::Error::Failed("no proxy for the uplink".into())),
        };
        match result {
            Ok(seq) => {
                log::debug!("pushed {} samples: cache record {seq}", w.samples);
                stats.batches_pushed.fetch_add(1, Relaxed);
                stats.samples_pushed.fetch_add(w.samples, Relaxed);
                if let Some(since) = failing_since.take() {
                    log::info!("the uplink answers again after {:.1} s", since.elapsed().as_secs_f64());
                }
                stats.uplink_failing.store(false, Relaxed);
                let mut p = shared.lock();
                p.in_flight = 0;
                // Batches waited behind this one: the uplink answers, but not as fast as we read.
                if !p.sealed.is_empty() {
                    stats.mark_overload();
                }
                stats.samples_buffered.store(p.buffered(), Relaxed);
            }
            Err(enos_bus::Error::InvalidArgs(msg)) => {
                // The uplink says this batch can never be stored: keeping it would block all
                // later data. It is a bug if it ever happens; say so loudly.
                log::error!("uplink refused a batch of {} samples as invalid: {msg}", w.samples);
                stats.samples_dropped.fetch_add(w.samples, Relaxed);
                shared.lock().in_flight = 0;
            }
            Err(e) => {
                stats.push_failures.fetch_add(1, Relaxed);
                stats.uplink_failing.store(true, Relaxed);
                let now = Instant::now();
                failing_since.get_or_insert(now);
                let buffered = {
                    let mut p = shared.lock();
                    p.in_flight = 0;
                    p.sealed_samples += w.samples;
                    p.sealed.push_front(w);
                    p.buffered()
                };
                if last_failure_log.is_none_or(|t| now - t >= REPORT_EVERY) {
                    last_failure_log = Some(now);
                    log::warn!("push to the uplink failed ({e}); {buffered} samples wait in memory, trying again");
                }
                proxy = None;
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

/// Says in the log, at most every `REPORT_EVERY`, while the uplink does not keep up.
async fn report(shared: Arc<Shared>) {
    let stats = &shared.stats;
    let mut tick = tokio::time::interval(REPORT_EVERY);
    tick.tick().await;
    let (mut collected, mut pushed, mut shed) = (0, 0, 0);
    let mut was_overloaded = false;
    loop {
        tick.tick().await;
        let (c, p, s) = (stats.samples_collected.load(Relaxed), stats.samples_pushed.load(Relaxed), stats.samples_dropped.load(Relaxed));
        let secs = REPORT_EVERY.as_secs_f64();
        let overloaded = stats.state() == "overloaded";
        if overloaded {
            log::warn!(
                "overloaded: read {:.0} samples/s, the uplink took {:.0}/s; {} wait in memory (limit {}), {} oldest shed in the last {} s ({} in all)",
                (c - collected) as f64 / secs,
                (p - pushed) as f64 / secs,
                stats.samples_buffered.load(Relaxed),
                shared.max_buffered,
                s - shed,
                REPORT_EVERY.as_secs(),
                s
            );
        } else if was_overloaded {
            log::info!("no longer overloaded: {} samples wait in memory", stats.samples_buffered.load(Relaxed));
        }
        was_overloaded = overloaded;
        (collected, pushed, shed) = (c, p, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use enos_batch::{Quality, Value};

    #[test]
    fn shedding_keeps_the_limit_and_drops_the_oldest_batches_first() {
        let cfg = PushConfig { interval_ms: 100, max_samples: 10, buffer_max_samples: 100 };
        assert_eq!(window(&cfg), 25, "a quarter of the buffer when that is less than 8 batches");
        let mut p = Pending::default();
        let mut shed = 0;
        for t in 0..1000u64 {
            p.builder.push("d", "x", t, Value::Int(t as i64), Quality::Good);
            if p.builder.len() >= window(&cfg) {
                p.seal();
            }
            shed += p.shed(100);
            assert!(p.buffered() <= 100, "{} buffered at t={t}", p.buffered());
        }
        assert_eq!(shed + p.buffered(), 1000);
        // what is left is the newest
        let first = enos_batch::batch::DecodedBatch::decode(&p.sealed[0].bytes).unwrap();
        assert_eq!(first.series[0].ts[0], 1000 - p.buffered());
    }
}
