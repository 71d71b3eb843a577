//! enos-ota: cloud-triggered and local A/B updates through SWUpdate, with a health check on the
//! new slot and automatic rollback.

mod agent;
mod bootslot;
mod bundle;
mod bus;
mod config;
mod health;
mod jobfile;
mod resume;
mod trusted;
mod version;

use crate::config::OtaConfig;
use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;

#[derive(Parser)]
#[command(version, about = "EnOS Edge update agent")]
struct Args {
    /// Config file (default: /etc/enos/ota.toml, built-in defaults when it does not exist). Never
    /// one on /data: the agent steers the boot slots and takes its configuration only from root.
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
    let path = args.config.unwrap_or_else(|| trusted::CONFIG_FILE.into());
    let cfg = if path.exists() {
        trusted::config_file(&path)?;
        OtaConfig::load(&path)?
    } else {
        OtaConfig::default()
    };
    // Refused at start, with the reason, rather than at the reboot of an update.
    trusted::config_programs(&cfg).with_context(|| format!("{}", path.display()))?;
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
    agent.set_bus(conn.clone(), Box::new(bus::Signals(conn)));
    enos_runtime::notify_ready();
    tokio::spawn(agent.clone().resume());
    enos_runtime::shutdown_signal().await;
    enos_runtime::notify_stopping();
    Ok(())
}
