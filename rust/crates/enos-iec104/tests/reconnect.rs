//! Link loss, reconnect with re-interrogation, the redundant address, and a large station.

mod common;

use common::{interrogation, link, settings, until, Peer};
use enos_iec104::{Event, LinkState, Station, Value};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

const ONE: &str = r#"{"ca": 1, "points": [{"ioa": 1, "type": "M_SP_NA_1", "value": true}]}"#;
const ONE_OFF: &str = r#"{"ca": 1, "points": [{"ioa": 1, "type": "M_SP_NA_1", "value": false}]}"#;

fn single(values: &[Event]) -> bool {
    match values {
        [Event::Value { ioa: 1, value: Value::Single(v), .. }] => *v,
        other => panic!("expected IOA 1 alone, got {other:?}"),
    }
}

#[tokio::test]
async fn link_loss_reconnects_with_backoff_and_interrogates_again() {
    let port = common::free_port();
    let peer = Peer::start(port, ONE, None).await;
    let (station, mut rx) = Station::start(settings(&[peer.address()])).unwrap();
    link(&mut rx, LinkState::Up).await;
    assert!(single(&interrogation(&mut rx).await));

    peer.kill().await;
    let (_, reason) = link(&mut rx, LinkState::Down).await;
    assert_eq!(reason, "the station closed the connection");
    // attempts fail while the station is away (connection refused), then it is back
    let (_, reason) = link(&mut rx, LinkState::Down).await;
    assert!(reason.starts_with(&format!("connecting to 127.0.0.1:{port} failed: ")), "{reason}");
    let mut peer = Peer::start(port, ONE_OFF, None).await;
    let (address, _) = link(&mut rx, LinkState::Up).await;
    assert_eq!(address, peer.address());
    assert!(!single(&interrogation(&mut rx).await), "the value of the new station, from a new interrogation");
    peer.expect("connected").await;
    let stats = station.stats();
    assert_eq!(stats.connects.load(Ordering::Relaxed), 2);
    assert!(stats.link_failures.load(Ordering::Relaxed) >= 2);
    station.close().await;
}

#[tokio::test]
async fn the_redundant_address_takes_over_when_the_first_fails() {
    let a = Peer::start(common::free_port(), ONE, None).await;
    let b = Peer::start(common::free_port(), ONE_OFF, None).await;
    let (station, mut rx) = Station::start(settings(&[a.address(), b.address()])).unwrap();
    let (address, reason) = link(&mut rx, LinkState::Up).await;
    assert_eq!((address.as_str(), reason), (a.address().as_str(), format!("connected to {} (primary address)", a.address())));
    assert!(single(&interrogation(&mut rx).await));

    a.kill().await;
    link(&mut rx, LinkState::Down).await;
    let (address, reason) = link(&mut rx, LinkState::Up).await;
    assert_eq!(address, b.address());
    assert_eq!(reason, format!("connected to {} (redundant address)", b.address()));
    assert!(!single(&interrogation(&mut rx).await), "values now come from the redundant station");
    station.close().await;
}

/// Nothing is lost on our side either: a gap would be a sequence error and a reset.
#[tokio::test]
async fn ten_thousand_objects_all_arrive_in_one_interrogation() {
    let spec = r#"{"ca": 1, "k": 1000, "points": [{"ioa": 1000, "count": 10000, "type": "M_ME_NC_1", "value": 2.5}]}"#;
    let peer = Peer::start(common::free_port(), spec, None).await;
    let (station, mut rx) = Station::start(settings(&[peer.address()])).unwrap();
    let mut ioas = BTreeSet::new();
    let (seen, _) = until(&mut rx, "interrogation done", |e| matches!(e, Event::InterrogationDone { ca: 1 })).await;
    for e in seen {
        if let Event::Value { ioa, value, .. } = e {
            assert_eq!(value, Value::Analog(2.5));
            assert!(ioas.insert(ioa), "IOA {ioa} twice");
        }
    }
    assert_eq!(ioas.len(), 10_000);
    assert_eq!((ioas.first(), ioas.last()), (Some(&1000), Some(&10_999)));
    assert_eq!(station.stats().link_failures.load(Ordering::Relaxed), 0);
    station.close().await;
}
