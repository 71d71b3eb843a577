//! The simulators for a local run: a Modbus field device with moving values and the EnOS cloud
//! (CONNECT check + responder) on a mosquitto that is already running.

use clap::Parser;
use enos_testkit::cloud_sim::CloudSim;
use enos_testkit::modbus_sim::SimServer;
use std::collections::HashMap;
use std::time::Duration;

#[derive(Parser)]
struct Args {
    /// Port of the local mosquitto.
    #[arg(long)]
    broker_port: u16,
    /// Gateway device key and secret the cloud accepts.
    #[arg(long, default_value = "gw01")]
    device_key: String,
    #[arg(long, default_value = "local-dev-secret")]
    device_secret: String,
    /// Where to write the ports the simulators listen on (`modbus=...`, `cloud=...`).
    #[arg(long)]
    ports_file: std::path::PathBuf,
}

#[tokio::main]
async fn main() {
    let a = Args::parse();
    let sim = SimServer::start(1).await;
    let cloud = CloudSim::start(a.broker_port, HashMap::from([(a.device_key.clone(), a.device_secret.clone())])).await;
    std::fs::write(&a.ports_file, format!("modbus={}\ncloud={}\n", sim.addr.port(), cloud.front_port)).expect("ports file");
    sim.with(|s| s.counters.push(0));
    let mut t = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        t += 1;
        // A slowly moving power value (f32 ABCD at 2) and voltage (u16 x0.1 at 4).
        let p = 230.0 + 20.0 * ((t as f32) / 20.0).sin();
        let bits = p.to_bits();
        sim.with(|s| {
            s.holding.insert(2, (bits >> 16) as u16);
            s.holding.insert(3, bits as u16);
            s.holding.insert(4, 2300 + (t % 7) as u16);
        });
        if t.is_multiple_of(20) {
            let (n, last) = cloud.with(|r| (r.points.len(), r.points.last().map(|p| format!("{}={}", p.point, p.value))));
            println!("cloud simulator: {n} points received, last {}", last.unwrap_or_default());
        }
    }
}
