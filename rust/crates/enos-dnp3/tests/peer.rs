//! The master against dnp3py's outstation (a python peer on 127.0.0.1): integrity poll values
//! with their flags, events in order with their times, commands, a dropped link.

mod common;

use common::{integrity_done, until, Peer};
use enos_dnp3::objects::flags;
use enos_dnp3::{Command, CommandError, Crob, Event, LinkState, Master, Measurement, Mode, OutputValue, PointKind, Step, Value};

const SPEC: &str = r#"{"address": 10, "master": 1, "bi": {"0": true, "3": false}, "ai": {"5": 231},
 "counter": {"2": 7}, "bo": [0, 1], "ao": [1]}"#;

fn values(events: &[Event]) -> Vec<Measurement> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Value { m, .. } => Some(*m),
            _ => None,
        })
        .collect()
}

fn find(ms: &[Measurement], kind: PointKind, index: u32) -> Measurement {
    *ms.iter().rev().find(|m| m.kind == kind && m.index == index).unwrap_or_else(|| panic!("{kind} {index} in {ms:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrity_poll_events_commands_and_a_dropped_link() {
    let mut peer = Peer::start(SPEC);
    let (master, mut events) = Master::start(peer.settings(10)).unwrap();

    // startup: the integrity poll brings every static value with its flags; the outstation
    // says it restarted, which is cleared, and it needs the time, which is set
    let seen = until(&mut events, "the first integrity poll", integrity_done).await;
    assert!(matches!(&seen[0], Event::Link { state: LinkState::Up, .. }), "{seen:#?}");
    let ms = values(&seen);
    let bi = find(&ms, PointKind::BinaryInput, 0);
    assert_eq!((bi.value, bi.flags & 0x7f, bi.event), (Value::Bool(true), flags::ONLINE, false));
    assert_eq!(find(&ms, PointKind::BinaryInput, 3).value, Value::Bool(false));
    assert_eq!(find(&ms, PointKind::AnalogInput, 5).value, Value::Int(231));
    assert_eq!(find(&ms, PointKind::Counter, 2).value, Value::Int(7));
    assert!(seen.iter().any(|e| matches!(e, Event::Notice { what, .. } if what.starts_with("the outstation restarted"))), "{seen:#?}");
    let set: u64 = peer.expect("time ")[5..].parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(set <= now && set + 5_000 > now, "the clock was set to ours: {set} vs {now}");

    // events: three binary changes in one burst arrive in order; a counter's with its time
    peer.send("bi 3 true");
    peer.send("bi 3 false");
    peer.send("bi 3 true");
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64 - 61_234;
    peer.send(&format!("counter 2 9 {at}"));
    peer.send("ai 5 -40 OVER_RANGE");
    let (mut analog, mut counter) = (false, false);
    let seen = until(&mut events, "the events", |e| {
        if let Event::Value { m, .. } = e {
            analog |= m.kind == PointKind::AnalogInput && m.event;
            counter |= m.kind == PointKind::Counter && m.event;
        }
        analog && counter
    })
    .await;
    let ms = values(&seen);
    let bi3: Vec<Value> = ms.iter().filter(|m| m.kind == PointKind::BinaryInput && m.index == 3 && m.event).map(|m| m.value).collect();
    assert_eq!(bi3, [Value::Bool(true), Value::Bool(false), Value::Bool(true)], "{ms:#?}");
    let c = find(&ms, PointKind::Counter, 2);
    assert_eq!((c.value, c.time, c.event), (Value::Int(9), Some(at), true));
    let ai = find(&ms, PointKind::AnalogInput, 5);
    assert_eq!((ai.value, ai.flags), (Value::Int(-40), flags::ONLINE | flags::BIT5));

    // commands: direct operate, select before operate, a refused one with its status in words
    let latch = Crob { code: Crob::LATCH_ON, count: 1, on_ms: 0, off_ms: 0, status: 0 };
    master.command(Command::Crob { outstation: 10, index: 0, crob: latch, mode: Mode::DirectOperate }).await.unwrap();
    assert_eq!(peer.expect("command"), "command crob 0 direct 3");
    master.command(Command::Crob { outstation: 10, index: 1, crob: latch, mode: Mode::SelectBeforeOperate }).await.unwrap();
    assert_eq!(peer.expect("command"), "command crob 1 select 3");
    assert_eq!(peer.expect("command"), "command crob 1 operate 3");
    master
        .command(Command::Analog { outstation: 10, index: 1, value: OutputValue::F32(12.5), mode: Mode::SelectBeforeOperate })
        .await
        .unwrap();
    assert_eq!(peer.expect("command"), "command ao 1 select 12.5");
    peer.send("refuse 1 7");
    let e = master.command(Command::Crob { outstation: 10, index: 1, crob: latch, mode: Mode::SelectBeforeOperate }).await.unwrap_err();
    assert_eq!(e, CommandError::Refused { step: Step::Select, reason: "the point is under local control (status 7)".into() });
    assert_eq!(e.to_string(), "the outstation refused the select: the point is under local control (status 7)");

    // the link drops: the master reconnects and polls everything again
    peer.send("drop");
    let seen = until(&mut events, "the integrity poll after the reconnect", integrity_done).await;
    assert!(seen.iter().any(|e| matches!(e, Event::Link { state: LinkState::Down, .. })), "{seen:#?}");
    assert!(seen.iter().any(|e| matches!(e, Event::Link { state: LinkState::Up, .. })), "{seen:#?}");
    assert_eq!(find(&values(&seen), PointKind::Counter, 2).value, Value::Int(9));
    assert_eq!(master.stats().malformed.load(std::sync::atomic::Ordering::Relaxed), 0);
    // the restart indication was cleared once: no second notice over the whole session
    let more = until(&mut events, "an event poll", |e| matches!(e, Event::Poll { what: "event poll", .. })).await;
    assert!(!more.iter().any(|e| matches!(e, Event::Notice { .. })), "{more:#?}");
    master.close().await;
}
