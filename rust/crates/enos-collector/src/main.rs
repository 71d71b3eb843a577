//! enos-collector: polls field devices and hands telemetry batches to the uplink.

mod bus;
mod clock;
mod config_api;
mod config_edit;
mod opcua_trust;
mod packages;
mod pusher;
mod reload;

use anyhow::Context;
use clap::Parser;
use enos_collector_config::CollectorConfig;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

#[derive(Parser)]
#[command(version, about = "EnOS Edge collector: field devices to telemetry batches")]
struct Args {
    /// Config file (default: /data/enos/config/collector/collector.toml, else /etc/enos/collector.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Check the config file (and its CSV point tables) and exit.
    #[arg(long)]
    check: bool,
    /// The device-model library offered as templates (else $ENOS_DEVICE_MODELS, else
    /// /usr/share/enos/device-models).
    #[arg(long)]
    device_models: Option<PathBuf>,
    /// The OEM's public key resource packages are checked with (else $ENOS_PACKAGE_KEY, else
    /// /etc/enos/package-key.pem, on the read-only root).
    #[arg(long)]
    package_key: Option<PathBuf>,
    /// Seconds the devices of a package's configuration have to start collecting before the
    /// previous configuration is put back (else $ENOS_PACKAGE_HEALTH_TIMEOUT_S, else 60).
    #[arg(long)]
    package_health_timeout_s: Option<u64>,
}

fn main() {
    enos_runtime::run_service("enos-collector", run);
}

/// Polls and batches allocate and free all the time on several threads; glibc keeps what was
/// freed in its arenas, so the process's RSS climbs to several times its live heap (100k points:
/// 17 MB of heap by heaptrack, ~100 MB of RSS). Handing the free pages back every few seconds
/// costs a walk of the free lists; with blocks of 64 KiB and more mapped on their own (`run`),
/// `scripts/bench --point-memory` went from 927 to about 600 bytes per configured point.
async fn release_free_memory_now_and_then() {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        every.tick().await;
        enos_runtime::sys::release_free_memory();
    }
}

async fn run() -> anyhow::Result<()> {
    enos_runtime::sys::malloc_mmap_threshold(64 << 10);
    let args = Args::parse();
    // ApplyConfig writes the file given, else the operator's copy on the data partition.
    let writes = args.config.clone().unwrap_or_else(|| enos_config::operator_config_path("collector"));
    // Packages live beside the file ApplyConfig writes (the collector's own directory); an apply
    // a power cut or a kill interrupted is undone before anything is read.
    let packages_dir = writes.parent().unwrap_or(std::path::Path::new(".")).join("packages");
    if !args.check {
        packages::recover(&packages_dir, &writes);
    }
    let path = args.config.unwrap_or_else(|| enos_config::default_config_path("collector"));
    let cfg = CollectorConfig::load(&path)?;
    if args.check {
        let points: usize = cfg.devices.iter().map(|d| d.proto.point_count()).sum();
        println!("{}: ok ({} devices, {points} points)", path.display(), cfg.devices.len());
        return Ok(());
    }
    // Beside the operator's configuration on the data partition: the last time known to be right.
    let clock_unset = clock::watch(writes.parent().unwrap_or(std::path::Path::new(".")).join("clock-floor"));
    let (frames_tx, frames_rx) = mpsc::channel(pusher::FRAME_QUEUE);
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let devices = cfg.devices.len();
    let push = cfg.push.clone();
    let engine = Arc::new(Mutex::new(reload::Engine::start(cfg, frames_tx, events_tx)));
    let models_dir = args
        .device_models
        .or_else(|| std::env::var_os("ENOS_DEVICE_MODELS").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/usr/share/enos/device-models"));
    let packages = packages::Packages {
        dir: packages_dir,
        key_file: args
            .package_key
            .or_else(|| std::env::var_os("ENOS_PACKAGE_KEY").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/etc/enos/package-key.pem")),
        health_timeout: std::time::Duration::from_secs(
            args.package_health_timeout_s.or_else(|| std::env::var("ENOS_PACKAGE_HEALTH_TIMEOUT_S").ok()?.parse().ok()).unwrap_or(60),
        ),
    };
    let api = Arc::new(config_api::ConfigApi { engine, file: writes, models_dir, applying: Default::default(), packages });
    let stats = Arc::new(pusher::Stats::default());
    let conn = bus::serve(bus::Collector { api, stats: stats.clone() }).await.context("registering org.enos.Edge.Collector on the bus")?;
    tokio::spawn(bus::forward_events(conn.clone(), events_rx));
    let (stop_pusher, stop) = tokio::sync::oneshot::channel();
    let pusher = tokio::spawn(pusher::run(conn.clone(), push, frames_rx, stats, clock_unset, stop));
    tokio::spawn(release_free_memory_now_and_then());
    log::info!("collecting from {devices} devices");
    enos_runtime::notify_ready();
    enos_runtime::shutdown_signal().await;
    enos_runtime::notify_stopping();
    let _ = stop_pusher.send(());
    let _ = pusher.await;
    Ok(())
}
