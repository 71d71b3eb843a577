//! The gateway's own measure points: CPU, memory, disk, cache depth and device counts, cached
//! and sent like any other telemetry (so they also survive an outage).

use crate::state::{Shared, GATEWAY_DEVICE};
use enos_batch::{BatchBuilder, Flags, Quality, Value};
use enos_runtime::clock::{Clock, Trust};
use enos_runtime::sys::{CpuTimes, Disk, Memory};
use std::sync::Arc;
use std::time::Duration;

/// `clock_floor`: the file that keeps the last time known to be right (`enos_runtime::clock`).
pub async fn run(shared: Arc<Shared>, clock_floor: std::path::PathBuf) {
    let every = shared.cfg.health.interval_s;
    if every == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(every));
    let mut last_cpu = CpuTimes::read();
    // Stamped with the same clock as the devices' values, so marked the same way while it is not set.
    let mut clock = Clock::from_env(Some(clock_floor));
    loop {
        tick.tick().await;
        let _ = shared.cache.expire(enos_batch::now_ms());
        let now = enos_batch::now_ms();
        let cpu = CpuTimes::read();
        let (q, flags) = match clock.check(now) {
            Trust::Unset(_) => (Quality::Doubtful, Flags::CLOCK_UNSET),
            _ => (Quality::Good, Flags::NONE),
        };
        let mut b = BatchBuilder::new();
        let mut put = |name: &str, v: Value| b.push_flagged(GATEWAY_DEVICE, name, now, v, q, flags);
        if let Some(p) = cpu.zip(last_cpu).and_then(|(now, before)| now.busy_percent_since(before)) {
            put("cpu_percent", Value::Float(p));
        }
        last_cpu = cpu;
        if let Some(p) = Memory::read().and_then(|m| m.used_percent()) {
            put("mem_used_percent", Value::Float(p));
        }
        if let Some(p) = Disk::of(&shared.cfg.cache.dir).and_then(|d| d.used_percent()) {
            put("disk_used_percent", Value::Float(p));
        }
        let st = shared.status();
        put("cache_points", Value::Int(st.cache.points as i64));
        put("cache_bytes", Value::Int(st.cache.bytes as i64));
        put("cache_dropped_points", Value::Int(st.cache.dropped_points as i64));
        if let Some(conn) = shared.bus() {
            if let Ok(p) = enos_bus::CollectorProxy::new(conn).await {
                if let Ok(Ok(devs)) = p.list_devices().await.map(|j| serde_json::from_str::<Vec<enos_bus::DeviceStatus>>(&j)) {
                    put("devices_total", Value::Int(devs.len() as i64));
                    put("devices_online", Value::Int(devs.iter().filter(|d| d.state == "online").count() as i64));
                }
            }
        }
        let bytes = b.finish();
        if let Err(e) = shared.cache.append(&bytes, now) {
            log::warn!("health sample not cached: {e}");
        }
        shared.new_data.notify_one();
    }
}
