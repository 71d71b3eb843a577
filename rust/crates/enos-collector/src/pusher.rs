//! Frames → encoded batches → `PushTelemetry` on the uplink.
//!
//! A batch is built for `interval_ms` or until `max_samples`, then pushed. While the uplink is
//! unreachable (restarting, say), batches wait in memory in order, bounded by
//! `buffer_max_samples` (oldest dropped and counted beyond that), and are pushed again, oldest
//! first. A batch counts as delivered only when the uplink answered, which it does after storing
//! it durably; an unanswered batch is pushed again (so a crash of the uplink at the wrong moment
//! gives a duplicate, never a loss).

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

pub async fn run(conn: zbus::Connection, cfg: PushConfig, mut frames: mpsc::Receiver<Frame>, stats: Arc<Stats>) {
    let mut builder = BatchBuilder::new();
    let mut pending: VecDeque<(Vec<u8>, u64, u64)> = VecDeque::new();
    let mut pending_samples = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut retry_after = tokio::time::Instant::now();
    let mut proxy: Option<UplinkProxy<'static>> = None;
    loop {
        let flush = tokio::select! {
            f = frames.recv() => match f {
                Some(f) => {
                    stats.samples_collected.fetch_add(f.samples.len() as u64, Relaxed);
                    for (p, v, q) in f.samples {
                        builder.push(&f.device, &p, f.ts_ms, v, q);
                    }
                    builder.len() >= cfg.max_samples
                }
                None => return,
            },
            _ = tick.tick() => true,
        };
        if !flush {
            continue;
        }
        if !builder.is_empty() {
            let n = builder.len() as u64;
            let oldest = builder.oldest_ts().unwrap_or(0);
            pending.push_back((builder.finish(), n, oldest));
            pending_samples += n;
            while pending_samples > cfg.buffer_max_samples as u64 && pending.len() > 1 {
                let (_, n, _) = pending.pop_front().expect("non-empty");
                pending_samples -= n;
                stats.samples_dropped.fetch_add(n, Relaxed);
                log::warn!("uplink unreachable and the buffer is full: dropped {n} oldest samples");
            }
        }
        if tokio::time::Instant::now() < retry_after {
            stats.samples_buffered.store(pending_samples, Relaxed);
            continue;
        }
        while let Some((batch, n, oldest)) = pending.front() {
            if proxy.is_none() {
                proxy = UplinkProxy::new(&conn).await.ok();
            }
            let Some(p) = &proxy else { break };
            match p.push_telemetry(batch).await {
                Ok(seq) => {
                    log::debug!("pushed {n} samples (oldest ts {oldest}): cache record {seq}");
                    stats.batches_pushed.fetch_add(1, Relaxed);
                    stats.samples_pushed.fetch_add(*n, Relaxed);
                    pending_samples -= *n;
                    pending.pop_front();
                }
                Err(zbus::Error::MethodError(name, msg, _)) if name.as_str() == "org.freedesktop.DBus.Error.InvalidArgs" => {
                    // The uplink says this batch can never be stored: keeping it would block all
                    // later data. It is a bug if it ever happens; say so loudly.
                    log::error!("uplink refused a batch of {n} samples as invalid: {}", msg.unwrap_or_default());
                    stats.samples_dropped.fetch_add(*n, Relaxed);
                    pending_samples -= *n;
                    pending.pop_front();
                }
                Err(e) => {
                    stats.push_failures.fetch_add(1, Relaxed);
                    log::warn!("push to uplink failed ({e}); {pending_samples} samples wait in memory");
                    retry_after = tokio::time::Instant::now() + Duration::from_millis(500);
                    break;
                }
            }
        }
        stats.samples_buffered.store(pending_samples, Relaxed);
    }
}
