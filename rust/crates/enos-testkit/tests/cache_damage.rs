//! A damaged cache end to end: values cached while the cloud was away, the uplink stopped, its
//! RocksDB damaged on disk, the uplink started again. It comes up (before: it exited at every
//! start, forever), says so in its log and its status, and what still reads reaches the cloud.
//! The corruption kinds one by one (truncated and bit-flipped tables, a lost MANIFEST, WAL or
//! CURRENT) are `enos-cache/tests/corruption.rs`.

use enos_testkit::edge::Edge;
use enos_testkit::wait_for;
use std::time::{Duration, Instant};

async fn uplink_status(address: &str) -> Option<serde_json::Value> {
    let conn = zbus::connection::Builder::address(address).build().await.ok()?;
    let p = enos_bus::UplinkProxy::new(&conn).await.ok()?;
    serde_json::from_str(&p.status().await.ok()?).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_cache_is_set_aside_and_what_reads_reaches_the_cloud() {
    let mut e = Edge::start().await;
    e.broker.stop();
    wait_for(30, "30 counter values served while the cloud is away", || (e.served().len() >= 30).then_some(())).await;
    // orderly stops: the collector hands its last batch on, so every served value is cached
    e.collector.terminate();
    e.uplink.terminate();
    let cache = e.dir.path().join("cache");
    std::fs::write(cache.join("CURRENT"), b"").unwrap();

    e.broker.restart();
    e.start_uplink();
    e.start_collector();
    let deadline = Instant::now() + Duration::from_secs(30);
    let recovered = loop {
        if let Some(s) = uplink_status(&e.bus.address).await {
            if let Some(r) = s["cache"]["recovered"].as_str() {
                break r.to_string();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the uplink did not come up with a recovered cache; log:\n{}",
            std::fs::read_to_string(e.log()).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(recovered.starts_with("the cache was damaged (Corruption: CURRENT file does not end with newline); moved to "), "{recovered}");
    assert!(recovered.contains("fresh cache") && !recovered.contains("could not be read"), "{recovered}");
    let damaged: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .filter_map(|d| d.ok())
        .filter(|d| d.file_name().to_string_lossy().starts_with("damaged-"))
        .collect();
    assert_eq!(damaged.len(), 1, "one damaged copy kept");
    let log = std::fs::read_to_string(e.log()).unwrap();
    assert!(log.contains("the cache was damaged"), "the journal says it in words");

    // everything served, before the damage and after, reaches the cloud
    e.settle().await;
    assert!(e.uplink.is_running(), "the uplink is up");
}
