//! enos-uplink: the RocksDB cache, the one MQTT session to EnOS, breakpoint resumption and the
//! routing of cloud commands to the collector.

mod bus;
mod cloud_edit;
mod cloud_settings;
mod commands;
mod config;
mod gateway_services;
mod health;
mod last_sent;
mod local_devices;
mod log_upload;
mod models;
mod monitor;
mod mqtt;
mod network;
mod order;
mod ota;
mod packages;
mod recent_ids;
mod registrar;
mod remote_config;
mod sender;
mod session;
mod state;
mod sub_devices;
mod uplink_tuning;
mod write_policy;

use crate::config::{SyncPolicy, UplinkConfig};
use anyhow::Context;
use clap::Parser;
use enos_cache::{Cache, Sync};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(version, about = "EnOS Edge uplink: cache and cloud session")]
struct Args {
    /// Config file (default: /data/enos/config/uplink/uplink.toml, else /etc/enos/uplink.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Check the config file and exit.
    #[arg(long)]
    check: bool,
}

fn main() {
    enos_runtime::run_service("enos-uplink", run);
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    // SetCloudSettings writes the file given, else the operator's copy on the data partition.
    let writes = args.config.clone().unwrap_or_else(|| enos_config::operator_config_path("uplink"));
    let path = args.config.unwrap_or_else(|| enos_config::default_config_path("uplink"));
    let cfg = UplinkConfig::load(&path)?;
    if args.check {
        println!("{}: ok", path.display());
        return Ok(());
    }
    cloud_settings::warn_inline_secrets(&path, &cfg);
    std::fs::create_dir_all(&cfg.cache.dir).with_context(|| format!("creating {}", cfg.cache.dir.display()))?;
    let sync = match cfg.cache.sync {
        SyncPolicy::Always => Sync::Always,
        SyncPolicy::Never => Sync::Never,
    };
    // A damaged database is moved aside and replaced (what reads is kept) rather than ending the
    // service: exiting would only make systemd start it into the same damage, forever.
    let (cache, recovery) =
        Cache::open_or_recover(&cfg.cache.dir, cfg.cache.max_bytes, cfg.cache.max_age_hours * 3_600_000, sync, enos_batch::now_ms())?;
    if let Some(r) = recovery {
        log::error!("{r}");
    }
    cache.keep_free(cfg.cache.keep_free_bytes);
    let cache = Arc::new(cache);
    let st = cache.stats();
    log::info!("cache {}: {} records, {} points, {} bytes waiting", cfg.cache.dir.display(), st.records, st.points, st.bytes);
    let identities = sub_devices::store_file(&writes);
    // Beside the operator's configuration, as the collector keeps its own: the last time this
    // box knew to be right, so the health points are judged by the same floor as the devices'.
    let clock_floor = writes.with_file_name("clock-floor");
    let file = Arc::new(config::ConfigFile::new(path, writes));
    let mut shared = state::Shared::new(cfg, cache.clone(), identities.clone(), file.clone());
    let conn = bus::serve(shared.clone()).await.context("registering org.enos.Edge.Uplink on the bus")?;
    last_sent::serve(&conn, shared.clone()).await.context("registering org.enos.Edge.UplinkInspect1 on the bus")?;
    let settings = Arc::new(cloud_settings::Settings::new(shared.clone()));
    cloud_settings::serve(&conn, settings.clone()).await.context("registering org.enos.Edge.UplinkSettings1 on the bus")?;
    shared.set_bus(conn.clone(), bus::cloud_state_signal(&conn));
    let spawn = |shared: &Arc<state::Shared>| {
        vec![
            tokio::spawn(session::run(shared.clone())),
            tokio::spawn(health::run(shared.clone(), clock_floor.clone())),
            tokio::spawn(ota::relay(shared.clone())),
            tokio::spawn(local_devices::run(shared.clone())),
            tokio::spawn(monitor::run(shared.clone())),
            tokio::spawn(network::run(shared.clone())),
        ]
    };
    let mut tasks = spawn(&shared);
    enos_runtime::notify_ready();
    let shutdown = enos_runtime::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = settings.reload.notified() => {
                // New cloud settings: the session starts again from the file; the cache stays open.
                let cfg = match UplinkConfig::load(&file.path) {
                    Ok(c) => c,
                    Err(e) => {
                        log::error!("{e}; the session keeps its settings");
                        continue;
                    }
                };
                tasks.drain(..).for_each(|t| t.abort());
                // the old client is kept (not dropped) until paho is surely done with it
                if let Some(c) = shared.mqtt.lock().expect("mqtt").take() {
                    mqtt::stop_delivery(&c);
                    mqtt::bury(c);
                }
                shared = state::Shared::new(cfg, cache.clone(), identities.clone(), file.clone());
                shared.set_bus(conn.clone(), bus::cloud_state_signal(&conn));
                bus::replace(&conn, shared.clone()).await?;
                last_sent::replace(&conn, shared.clone()).await?;
                settings.set_current(shared.clone());
                tasks = spawn(&shared);
            }
        }
    }
    enos_runtime::notify_stopping();
    log::info!("stopping");
    // Replies and commands still arriving must not meet the closed stream of an ended task
    // (paho logs that as an error): stop the delivery first, then the tasks, then say goodbye.
    let cli = shared.mqtt.lock().expect("mqtt").take();
    if let Some(c) = &cli {
        mqtt::stop_delivery(c);
    }
    tasks.drain(..).for_each(|t| t.abort());
    if let Some(c) = cli {
        // in-flight command answers get a second
        mqtt::disconnect(c, std::time::Duration::from_secs(1)).await;
    }
    Ok(())
}
