//! The MQTT client library under cut links: one paho client publishes as fast as paho takes it,
//! through a TCP relay to a local mosquitto that resets the connection at random moments, and
//! connects again, for `--seconds`. It measures what decides the uplink's publish QoS
//! (docs/architecture.md, "Sender"): paho.mqtt.c frees a QoS 1 publication twice when its write
//! fails on a reset socket, and the process aborts. Exit 0 and a line of counts if it survived;
//! a crash is the kernel's (SIGABRT, SIGSEGV).
//!   enos-mqtt-cuts --seconds 600       # the gateway's QoS
//!   enos-mqtt-cuts --qos 1 --seconds 60

use clap::Parser;
use enos_testkit::harness::Mosquitto;
use paho_mqtt as paho;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser)]
struct Args {
    /// QoS of the publishes (0 or 1); the gateway's by default.
    #[arg(long, default_value_t = enos_cloud::topics::PUBLISH_QOS)]
    qos: i32,
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Connections are reset at a random moment up to this long after they came up.
    #[arg(long, default_value_t = 300)]
    max_cut_ms: u64,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 2048)]
    bytes: usize,
    /// Seed of the cut moments.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// A relay to the broker; `cut` resets every connection through it (RST: linger 0).
async fn relay(listener: TcpListener, broker: u16, cut: Arc<tokio::sync::Notify>) {
    loop {
        let Ok((mut a, _)) = listener.accept().await else { return };
        let cut = cut.clone();
        tokio::spawn(async move {
            let Ok(mut b) = TcpStream::connect(("127.0.0.1", broker)).await else { return };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut a, &mut b) => {}
                _ = cut.notified() => {
                    let _ = a.set_zero_linger();
                    let _ = b.shutdown().await;
                }
            }
        });
    }
}

/// xorshift: reproducible cut moments without a crate.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[tokio::main]
async fn main() {
    let a = Args::parse();
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = Mosquitto::start(dir.path());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
    let port = listener.local_addr().expect("relay address").port();
    let cut = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(relay(listener, broker.port, cut.clone()));

    let payload = vec![b'x'; a.bytes];
    let (mut connections, mut published, mut refused) = (0u64, 0u64, 0u64);
    let mut seed = a.seed.max(1);
    // Clients are never destroyed here: paho may still hold them in a callback (see the uplink's
    // `mqtt::bury`); a few hundred leaked handles are nothing for a run of minutes.
    let mut keep = Vec::new();
    let end = Instant::now() + Duration::from_secs(a.seconds);
    while Instant::now() < end {
        let cli = paho::CreateOptionsBuilder::new_v3()
            .server_uri(format!("tcp://127.0.0.1:{port}"))
            .client_id(format!("cuts-{connections}"))
            .persistence(paho::PersistenceType::None)
            .create_client()
            .expect("client");
        let opts = paho::ConnectOptionsBuilder::new_v3().clean_session(true).max_inflight(100).finalize();
        if cli.connect(opts).await.is_err() {
            keep.push(cli);
            continue;
        }
        connections += 1;
        let stop = Arc::new(AtomicBool::new(false));
        let (cut2, stop2) = (cut.clone(), stop.clone());
        let after = Duration::from_millis(next(&mut seed) % a.max_cut_ms.max(1));
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            cut2.notify_waiters();
            stop2.store(true, Ordering::Relaxed);
        });
        // publish until paho says the link is gone (and a little after: that is the race)
        let mut grace = 50;
        while grace > 0 {
            if stop.load(Ordering::Relaxed) || !cli.is_connected() {
                grace -= 1;
            }
            match cli.try_publish(paho::Message::new("cuts/t", payload.clone(), a.qos)) {
                Ok(t) => {
                    drop(t);
                    published += 1;
                }
                Err(_) => {
                    refused += 1;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            if published % 64 == 0 {
                tokio::task::yield_now().await;
            }
        }
        keep.push(cli);
    }
    println!("qos {}: survived {} s, {connections} connections cut, {published} publishes taken, {refused} refused", a.qos, a.seconds);
    std::mem::forget(keep);
    // exit skips destructors: the broker and its directory go first
    drop(broker);
    drop(dir);
    std::process::exit(0);
}
