//! enos-collector: polls field devices and hands telemetry batches to the uplink.

mod bus;
mod pusher;

use anyhow::Context;
use clap::Parser;
use enos_drivers::{Command, DriverContext, StatusBoard};
use enos_model::config::CollectorConfig;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Parser)]
#[command(version, about = "EnOS Edge collector: field devices to telemetry batches")]
struct Args {
    /// Config file (default: /data/enos/config/collector.toml, else /etc/enos/collector.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Check the config file (and its CSV point tables) and exit.
    #[arg(long)]
    check: bool,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    enos_runtime::init_logging("enos-collector");
    enos_runtime::exit_on_error("enos-collector", run().await);
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let path = args.config.unwrap_or_else(|| enos_model::config::default_config_path("collector"));
    let cfg = CollectorConfig::load(&path)?;
    if args.check {
        let points: usize = cfg.devices.iter().map(|d| d.points.len()).sum();
        println!("{}: ok ({} devices, {points} points)", path.display(), cfg.devices.len());
        return Ok(());
    }
    let status = Arc::new(StatusBoard::default());
    let (frames_tx, frames_rx) = mpsc::channel(4096);
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let mut routes: HashMap<String, mpsc::Sender<Command>> = HashMap::new();
    for driver in enos_drivers::modbus::drivers(&cfg) {
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        for d in driver.devices() {
            routes.insert(d, cmd_tx.clone());
        }
        let ctx = DriverContext { frames: frames_tx.clone(), events: events_tx.clone(), status: status.clone(), commands: cmd_rx };
        tokio::spawn(driver.run(ctx));
    }
    drop(frames_tx);
    let stats = Arc::new(pusher::Stats::default());
    let conn = bus::serve(bus::Collector { routes, status: status.clone(), stats: stats.clone(), devices: cfg.devices.len() })
        .await
        .context("registering org.enos.Edge.Collector on the bus")?;
    tokio::spawn(bus::forward_events(conn.clone(), events_rx));
    tokio::spawn(pusher::run(conn.clone(), cfg.push.clone(), frames_rx, stats));
    log::info!("collecting from {} devices", cfg.devices.len());
    enos_runtime::notify_ready();
    enos_runtime::shutdown_signal().await;
    enos_runtime::notify_stopping();
    Ok(())
}
