//! enos-uplink: the RocksDB cache, the one MQTT session to EnOS, breakpoint resumption and the
//! routing of cloud commands to the collector.

mod bus;
mod commands;
mod health;
mod last_sent;
mod ota;
mod sender;
mod session;
mod state;

use anyhow::Context;
use clap::Parser;
use enos_cache::{Cache, Sync};
use enos_model::config::{SyncPolicy, UplinkConfig};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(version, about = "EnOS Edge uplink: cache and cloud session")]
struct Args {
    /// Config file (default: /data/enos/config/uplink.toml, else /etc/enos/uplink.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Check the config file and exit.
    #[arg(long)]
    check: bool,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    enos_runtime::init_logging("enos-uplink");
    enos_runtime::exit_on_error("enos-uplink", run().await);
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let path = args.config.unwrap_or_else(|| enos_model::config::default_config_path("uplink"));
    let cfg = UplinkConfig::load(&path)?;
    if args.check {
        println!("{}: ok", path.display());
        return Ok(());
    }
    std::fs::create_dir_all(&cfg.cache.dir).with_context(|| format!("creating {}", cfg.cache.dir.display()))?;
    let sync = match cfg.cache.sync {
        SyncPolicy::Always => Sync::Always,
        SyncPolicy::Never => Sync::Never,
    };
    let cache = Arc::new(Cache::open(&cfg.cache.dir, cfg.cache.max_bytes, cfg.cache.max_age_hours * 3_600_000, sync)?);
    let st = cache.stats();
    log::info!("cache {}: {} records, {} points, {} bytes waiting", cfg.cache.dir.display(), st.records, st.points, st.bytes);
    let shared = state::Shared::new(cfg, cache);
    let conn = bus::serve(shared.clone()).await.context("registering org.enos.Edge.Uplink on the bus")?;
    last_sent::serve(&conn, shared.clone()).await.context("registering org.enos.Edge.UplinkInspect1 on the bus")?;
    shared.set_bus(conn.clone());
    tokio::spawn(session::run(shared.clone()));
    tokio::spawn(health::run(shared.clone()));
    tokio::spawn(ota::relay(shared.clone()));
    enos_runtime::notify_ready();
    enos_runtime::shutdown_signal().await;
    enos_runtime::notify_stopping();
    log::info!("stopping");
    Ok(())
}
