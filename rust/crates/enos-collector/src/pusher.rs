//! Frames → encoded batches → `PushTelemetry` on the uplink.
//!
//! A batch is built for `interval_ms` or until `max_samples`, then pushed. While the uplink is
//! unreachable (restarting, say), batches wait in memory in order, bounded by
//! `buffer_max_samples` (oldest dropped and counted beyond that), and are pushed again, oldest
//! first. A batch counts as delivered only when the uplink answered, which it does after storing
//! it durably; an unanswered batch is pushed again (so a crash of the uplink at the wrong moment
//! gives a duplicate, never a loss). On an orderly stop (SIGTERM: reboot, update, restart) what
//! was read so far is handed on before the process ends.

use enos_bus::UplinkProxy;
use enos_drivers::Frame;
use enos_model::config::PushConfig;
use enos_model::BatchBuilder;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Default)]
pub struct Stats {
    pub samples_collected: AtomicU64,
    pub batches_pushed: AtomicU64,
    pub samples_pushed: AtomicU64,
    pub push_failures: AtomicU64,
    pub samples_buffered: AtomicU64,
    pub samples_dropped: AtomicU64,
}

/// How long an orderly stop may spend handing the last samples to the uplink (the unit orders
/// the collector's stop before the uplink's, so the uplink is still there).
const FINAL_PUSH: Duration = Duration::from_secs(5);

/// Batches waiting for the uplink's answer, oldest first.
struct Outbox {
    batches: VecDeque<Waiting>,
    samples: u64,
    proxy: Option<UplinkProxy<'static>>,
}

struct Waiting {
    bytes: Vec<u8>,
    samples: u64,
    oldest_ts: u64,
}

impl Outbox {
    fn add(&mut self, builder: &mut BatchBuilder, max_samples: u64, stats: &Stats) {
        if builder.is_empty() {
            return;
        }
        let samples = builder.len() as u64;
        let oldest_ts = builder.oldest_ts().unwrap_or(0);
        self.batches.push_back(Waiting { bytes: builder.finish(), samples, oldest_ts });
        self.samples += samples;
        while self.samples > max_samples && self.batches.len() > 1 {
            let w = self.batches.pop_front().expect("non-empty");
            self.samples -= w.samples;
            stats.samples_dropped.fetch_add(w.samples, Relaxed);
            log::warn!("uplink unreachable and the buffer is full: dropped {} oldest samples", w.samples);
        }
    }

    /// Pushes oldest first until done (true) or the uplink fails to answer (false).
    async fn push_all(&mut self, conn: &zbus::Connection, stats: &Stats) -> bool {
        while let Some(w) = self.batches.front() {
            if self.proxy.is_none() {
                self.proxy = UplinkProxy::new(conn).await.ok();
            }
            let Some(p) = &self.proxy else { return false };
            match p.push_telemetry(&w.bytes).await {
                Ok(seq) => {
                    log::debug!("pushed {} samples (oldest ts {}): cache record {seq}", w.samples, w.oldest_ts);
                    stats.batches_pushed.fetch_add(1, Relaxed);
                    stats.samples_pushed.fetch_add(w.samples, Relaxed);
                }
                Err(zbus::Error::MethodError(name, msg, _)) if name.as_str() == "org.freedesktop.DBus.Error.InvalidArgs" => {
                    // The uplink says this batch can never be stored: keeping it would block all
                    // later data. It is a bug if it ever happens; say so loudly.
                    log::error!("uplink refused a batch of {} samples as invalid: {}", w.samples, msg.unwrap_or_default());
                    stats.samples_dropped.fetch_add(w.samples, Relaxed);
                }
                Err(e) => {
                    stats.push_failures.fetch_add(1, Relaxed);
                    log::warn!("push to uplink failed ({e}); {} samples wait in memory", self.samples);
                    return false;
                }
            }
            self.samples -= w.samples;
            self.batches.pop_front();
        }
        true
    }
}

pub async fn run(
    conn: zbus::Connection,
    cfg: PushConfig,
    mut frames: mpsc::Receiver<Frame>,
    stats: Arc<Stats>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut builder = BatchBuilder::new();
    let mut outbox = Outbox { batches: VecDeque::new(), samples: 0, proxy: None };
    let max_buffered = cfg.buffer_max_samples as u64;
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut retry_after = tokio::time::Instant::now();
    let add_frame = |builder: &mut BatchBuilder, f: Frame| {
        stats.samples_collected.fetch_add(f.samples.len() as u64, Relaxed);
        for (p, v, q) in f.samples {
            builder.push(&f.device, &p, f.ts_ms, v, q);
        }
    };
    loop {
        let flush = tokio::select! {
            f = frames.recv() => match f {
                Some(f) => {
                    add_frame(&mut builder, f);
                    builder.len() >= cfg.max_samples
                }
                None => return,
            },
            _ = tick.tick() => true,
            _ = &mut stop => {
                // Orderly stop: what was read so far goes to the uplink, not down with us.
                while let Ok(f) = frames.try_recv() {
                    add_frame(&mut builder, f);
                }
                outbox.add(&mut builder, max_buffered, &stats);
                let done = tokio::time::timeout(FINAL_PUSH, outbox.push_all(&conn, &stats)).await.unwrap_or(false);
                if done {
                    log::info!("stopping: every sample handed to the uplink");
                } else {
                    log::warn!("stopping: {} samples could not be handed to the uplink and are lost", outbox.samples);
                }
                return;
            }
        };
        if !flush {
            continue;
        }
        outbox.add(&mut builder, max_buffered, &stats);
        if tokio::time::Instant::now() >= retry_after && !outbox.push_all(&conn, &stats).await {
            retry_after = tokio::time::Instant::now() + Duration::from_millis(500);
        }
        stats.samples_buffered.store(outbox.samples, Relaxed);
    }
}
