//! enos-ota: cloud-triggered and local A/B updates through SWUpdate, with a health check on the
//! new slot and automatic rollback.

mod agent;
mod bootslot;
mod bus;
mod download;
mod health;

use anyhow::Context;
use clap::Parser;
use enos_model::config::OtaConfig;
use std::path::PathBuf;

#[derive(Parser)]
#[command(version, about = "EnOS Edge update agent")]
struct Args {
    /// Config file (default: /data/enos/config/ota.toml, else /etc/enos/ota.toml; built-in defaults when neither exists).
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    check: bool,
}

fn main() {
    enos_runtime::run_service("enos-ota", run);
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let path = args.config.unwrap_or_else(|| enos_model::config::default_config_path("ota"));
    let cfg = if path.exists() { OtaConfig::load(&path)? } else { OtaConfig::default() };
    if args.check {
        println!("{}: ok", path.display());
        return Ok(());
    }
    std::fs::create_dir_all(&cfg.dir).with_context(|| format!("creating {}", cfg.dir.display()))?;
    let agent = agent::Agent::new(cfg);
    let conn = enos_bus::builder()
        .name(enos_bus::OTA_NAME)
        .serve_at(enos_bus::OTA_PATH, bus::Ota { agent: agent.clone() })
        .build()
        .await
        .context("registering org.enos.Edge.Ota on the bus")?;
    agent.set_conn(conn);
    enos_runtime::notify_ready();
    tokio::spawn(agent.clone().resume());
    enos_runtime::shutdown_signal().await;
    enos_runtime::notify_stopping();
    Ok(())
}
