//! The gateway's own measure points: CPU, memory, disk, cache depth and device counts, cached
//! and sent like any other telemetry (so they also survive an outage).

use crate::state::{Shared, GATEWAY_DEVICE};
use enos_batch::{BatchBuilder, Quality, Value};
use std::sync::Arc;
use std::time::Duration;

pub async fn run(shared: Arc<Shared>) {
    let every = shared.cfg.health.interval_s;
    if every == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(every));
    let mut last_cpu = cpu_times();
    loop {
        tick.tick().await;
        let _ = shared.cache.expire(enos_batch::now_ms());
        let now = enos_batch::now_ms();
        let cpu = cpu_times();
        let mut b = BatchBuilder::new();
        let mut put = |name: &str, v: Value| b.push(GATEWAY_DEVICE, name, now, v, Quality::Good);
        if let (Some((i0, t0)), Some((i1, t1))) = (last_cpu, cpu) {
            if t1 > t0 {
                put("cpu_percent", Value::Float(round1(100.0 * (1.0 - (i1 - i0) as f64 / (t1 - t0) as f64))));
            }
        }
        last_cpu = cpu;
        if let Some((total, avail)) = meminfo() {
            put("mem_used_percent", Value::Float(round1(100.0 * (1.0 - avail as f64 / total as f64))));
        }
        if let Some(p) = disk_used_percent(&shared.cfg.cache.dir) {
            put("disk_used_percent", Value::Float(round1(p)));
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

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// (idle, total) jiffies from /proc/stat.
fn cpu_times() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = s.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    Some((v.get(3)? + v.get(4).unwrap_or(&0), v.iter().sum()))
}

fn meminfo() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let get = |k: &str| s.lines().find(|l| l.starts_with(k)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<u64>().ok());
    Some((get("MemTotal:")?, get("MemAvailable:")?))
}

fn disk_used_percent(path: &std::path::Path) -> Option<f64> {
    let s = nix::sys::statvfs::statvfs(path).ok()?;
    let total = s.blocks() as f64 * s.fragment_size() as f64;
    let avail = s.blocks_available() as f64 * s.fragment_size() as f64;
    (total > 0.0).then(|| 100.0 * (1.0 - avail / total))
}
