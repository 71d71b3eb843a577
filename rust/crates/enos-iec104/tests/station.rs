//! The client against a real controlled station (c104 on 127.0.0.1).

mod common;

use common::{interrogation, link, settings, until, Peer};
use enos_iec104::{Command, CommandError, CommandValue, Cot, DoublePoint, Event, LinkState, Quality, Station, Step, TypeId, Value};
use std::collections::HashMap;

const POINTS: &str = r#"{"ca": 1, "points": [
  {"ioa": 1, "type": "M_SP_NA_1", "value": true},
  {"ioa": 2, "type": "M_DP_NA_1", "value": 2},
  {"ioa": 3, "type": "M_ST_NA_1", "value": -3},
  {"ioa": 4, "type": "M_BO_NA_1", "value": 305419896},
  {"ioa": 5, "type": "M_ME_NA_1", "value": 0.5},
  {"ioa": 6, "type": "M_ME_NB_1", "value": -7},
  {"ioa": 7, "type": "M_ME_NC_1", "value": 231.5},
  {"ioa": 8, "type": "M_IT_NA_1", "value": 99},
  {"ioa": 20, "type": "M_ME_NC_1", "value": 1, "quality": ["Invalid"]},
  {"ioa": 21, "type": "M_ME_NC_1", "value": 1, "quality": ["NonTopical"]},
  {"ioa": 22, "type": "M_ME_NC_1", "value": 1, "quality": ["Substituted"]},
  {"ioa": 23, "type": "M_ME_NC_1", "value": 1, "quality": ["Blocked"]},
  {"ioa": 24, "type": "M_ME_NC_1", "value": 1, "quality": ["Overflow"]},
  {"ioa": 25, "type": "M_SP_NA_1", "value": false, "quality": ["Invalid", "Blocked"]},
  {"ioa": 30, "type": "M_SP_TB_1", "value": false},
  {"ioa": 31, "type": "M_ME_TF_1", "value": 0}
 ],
 "commands": [
  {"ioa": 100, "type": "C_SC_NA_1", "sbo": true},
  {"ioa": 101, "type": "C_SE_NC_1", "sbo": true},
  {"ioa": 102, "type": "C_DC_NA_1"},
  {"ioa": 103, "type": "C_SC_NA_1", "sbo": true},
  {"ioa": 104, "type": "C_SC_NA_1", "sbo": true},
  {"ioa": 105, "type": "C_SC_NA_1", "sbo": true}
 ]}"#;

async fn connected(peer: &Peer) -> (Station, tokio::sync::mpsc::Receiver<enos_iec104::Event>) {
    let (station, mut rx) = Station::start(settings(&[peer.address()])).unwrap();
    link(&mut rx, LinkState::Up).await;
    (station, rx)
}

fn by_ioa(values: Vec<Event>) -> HashMap<u32, (TypeId, Value, Quality, Cot)> {
    values
        .into_iter()
        .map(|e| match e {
            Event::Value { ioa, type_id, value, quality, cot, ca: 1, .. } => (ioa, (type_id, value, quality, cot)),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn general_interrogation_returns_every_point_with_value_and_quality() {
    let mut peer = Peer::start(common::free_port(), POINTS, None).await;
    let (station, mut rx) = connected(&peer).await;
    peer.expect("connected").await;
    let v = by_ioa(interrogation(&mut rx).await);
    // counters (IOA 8) answer the counter interrogation, not the general one
    assert_eq!(v.len(), 15, "{v:?}");
    let good = Quality::default();
    assert_eq!(v[&1], (TypeId::M_SP_NA_1, Value::Single(true), good, Cot::INTERROGATED));
    assert_eq!(v[&2].1, Value::Double(DoublePoint::On));
    assert_eq!(v[&3].1, Value::Step { position: -3, transient: false });
    assert_eq!(v[&4].1, Value::Bitstring(0x1234_5678));
    assert_eq!(v[&5].1, Value::Analog(0.5));
    assert_eq!(v[&6].1, Value::Analog(-7.0));
    assert_eq!(v[&7].1, Value::Analog(231.5));
    for (ioa, flag) in [(20, Quality::IV), (21, Quality::NT), (22, Quality::SB), (23, Quality::BL), (24, Quality::OV)] {
        assert_eq!(v[&ioa].2, Quality(flag), "IOA {ioa}");
    }
    assert_eq!(v[&25].2, Quality(Quality::IV | Quality::BL));
    assert_eq!(v[&25].2.to_string(), "invalid, blocked");
    // a second interrogation on request gives the same
    station.interrogate(1).await.unwrap();
    assert_eq!(by_ioa(interrogation(&mut rx).await).len(), 15);
    station.counter_interrogation(1).await.unwrap();
    let (seen, _) = until(&mut rx, "counter interrogation done", |e| matches!(e, Event::CounterInterrogationDone { ca: 1 })).await;
    let counters = by_ioa(seen);
    assert_eq!(counters[&8], (TypeId::M_IT_NA_1, Value::Counter { value: 99, sequence: 0 }, Quality::default(), Cot::COUNTER_INTERROGATED));
    station.close().await;
    assert_eq!(link(&mut rx, LinkState::Closed).await.1, "closed on request");
}

#[tokio::test]
async fn spontaneous_change_carries_the_station_time_tag() {
    let mut peer = Peer::start(common::free_port(), POINTS, None).await;
    let (station, mut rx) = connected(&peer).await;
    interrogation(&mut rx).await;
    let at = 1_709_214_312_345i64;
    peer.send(&format!("set 31 42.25 - {at}")).await;
    peer.send("spontaneous 31").await;
    peer.send(&format!("set 30 true Substituted {}", at + 1)).await;
    peer.send("spontaneous 30").await;
    let (_, e) = until(&mut rx, "the spontaneous float", |e| matches!(e, Event::Value { ioa: 31, .. })).await;
    let Event::Value { type_id, value, time, cot, .. } = e else { unreachable!() };
    assert_eq!((type_id, value, cot), (TypeId::M_ME_TF_1, Value::Analog(42.25), Cot::SPONTANEOUS));
    assert_eq!(time.expect("a time tag").unix_ms, at);
    let (_, e) = until(&mut rx, "the spontaneous single point", |e| matches!(e, Event::Value { ioa: 30, .. })).await;
    let Event::Value { value, quality, time, .. } = e else { unreachable!() };
    assert_eq!((value, quality), (Value::Single(true), Quality(Quality::SB)));
    assert_eq!(time.unwrap().unix_ms, at + 1);
    station.close().await;
}

#[tokio::test]
async fn clock_sync_reaches_the_station() {
    let mut peer = Peer::start(common::free_port(), POINTS, None).await;
    let (station, mut rx) = connected(&peer).await;
    interrogation(&mut rx).await;
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    station.clock_sync(1).await.unwrap();
    let line = peer.expect("clock ").await;
    let after = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let t: i64 = line["clock ".len()..].parse().unwrap();
    assert!((before..=after).contains(&t), "the station was set to {t}, we sent between {before} and {after}");
    station.close().await;
}

fn command(ioa: u32, value: CommandValue, sbo: bool) -> Command {
    Command { ca: 1, ioa, value, qualifier: 0, select_before_operate: sbo }
}

#[tokio::test]
async fn select_before_operate_succeeds_and_each_failure_is_said() {
    let mut peer = Peer::start(common::free_port(), POINTS, None).await;
    let (station, mut rx) = connected(&peer).await;
    interrogation(&mut rx).await;

    station.command(command(100, CommandValue::Single(true), true)).await.unwrap();
    // c104 answers the select itself; its callback sees the execute
    assert_eq!(peer.expect("command 100").await, "command 100 execute True");
    station.command(command(101, CommandValue::Float(12.5), true)).await.unwrap();
    peer.expect("command 101 execute 12.5").await;

    // One point per case: c104 terminates a select-before-operate command a tick (100 ms)
    // after its execute and deselects the point then, which can cancel a new select on it.
    peer.send("refuse 103").await;
    let e = station.command(command(103, CommandValue::Single(false), true)).await.unwrap_err();
    assert_eq!(e, CommandError::Refused { step: Step::Select, reason: "negative confirmation".into() });
    assert_eq!(e.to_string(), "the station refused the select (negative confirmation)");

    // (a select left unanswered: `raw_station.rs`, c104 answers every select)
    peer.send("ignore 104").await;
    let e = station.command(command(104, CommandValue::Single(false), true)).await.unwrap_err();
    assert!(matches!(e, CommandError::Timeout { step: Step::Execute, .. }), "{e:?}");
    assert_eq!(e.to_string(), "the station did not confirm the execute within 2 s");

    // an object the station does not have
    // (c104 answers it with a negative ACTCON rather than cause 47)
    let e = station.command(command(999, CommandValue::Single(true), false)).await.unwrap_err();
    assert!(matches!(e, CommandError::Refused { step: Step::Execute, .. }), "{e:?}");
    // the link survived all of it
    station.command(command(105, CommandValue::Single(true), true)).await.unwrap();
    station.close().await;
}

#[tokio::test]
async fn termination_is_awaited_when_configured() {
    let mut peer = Peer::start(common::free_port(), POINTS, None).await;
    let s = enos_iec104::Settings { await_termination: true, ..settings(&[peer.address()]) };
    let (station, mut rx) = Station::start(s).unwrap();
    interrogation(&mut rx).await;
    peer.send("terminate 102").await;
    station.command(command(102, CommandValue::Double(false), false)).await.unwrap();
    peer.send("accept 102").await;
    let e = station.command(command(102, CommandValue::Double(true), false)).await.unwrap_err();
    assert_eq!(e.to_string(), "no termination of the execute from the station within 2 s");
    station.close().await;
}

#[tokio::test]
async fn direct_execute() {
    let mut peer = Peer::start(common::free_port(), POINTS, None).await;
    let (station, mut rx) = connected(&peer).await;
    interrogation(&mut rx).await;
    station.command(command(102, CommandValue::Double(true), false)).await.unwrap();
    assert_eq!(peer.expect("command 102").await, "command 102 execute Double.ON");
    station.close().await;
}

#[tokio::test]
async fn a_bad_value_is_refused_before_anything_is_sent() {
    let peer = Peer::start(common::free_port(), POINTS, None).await;
    let (station, mut rx) = connected(&peer).await;
    interrogation(&mut rx).await;
    let e = station.command(command(4, CommandValue::Bitstring(1), true)).await.unwrap_err();
    assert_eq!(e.to_string(), "the command cannot be sent: a bitstring command (C_BO_NA_1) has no select; send it as a direct command");
    station.close().await;
}

#[tokio::test]
async fn interrogation_and_clock_sync_run_on_their_schedules() {
    let mut peer = Peer::start(common::free_port(), POINTS, None).await;
    let s = enos_iec104::Settings {
        interrogation_interval: std::time::Duration::from_millis(300),
        clock_sync_interval: std::time::Duration::from_millis(300),
        ..settings(&[peer.address()])
    };
    let (station, mut rx) = Station::start(s).unwrap();
    interrogation(&mut rx).await; // after connect
    interrogation(&mut rx).await; // scheduled
    interrogation(&mut rx).await;
    peer.expect("clock ").await; // nobody called clock_sync
    station.close().await;
}
