//! A box whose clock is wrong when it starts (no battery-backed clock, no time synchronisation
//! yet), then set: libfaketime moves both services' clocks 20,000 days back and then to the real
//! time, and a mark file stands for systemd-timesyncd's. Every value stamped before is marked
//! "gateway clock unset" and kept (the cache's age bound would drop all of it the moment the
//! clock jumps), and once the clock is synchronised values go plain again. Nothing served is lost.

use enos_testkit::edge::{Edge, SUB_PK};
use enos_testkit::harness::run_tool;
use enos_testkit::wait_for;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
/// Doubtful (6), with the flag "gateway clock unset" (4096) above the code.
const CLOCK_UNSET_QUALITY: u64 = 6 + (4096 << 8);
/// 2001-09-09: every real stamp is later, every stamp of the wrong clock (1972) earlier.
const Y2001_MS: u64 = 1_000_000_000_000;

/// Counter values of inv01 the cloud stored: value → (time, quality; `None` when sent plain).
fn counters(e: &Edge) -> BTreeMap<u64, (u64, Option<u64>)> {
    e.cloud.with(|r| {
        let mut out = BTreeMap::new();
        for p in r.points.iter().filter(|p| p.point == "counter" && p.device_key.as_deref() == Some("inv01")) {
            assert_eq!(p.product_key.as_deref(), Some(SUB_PK));
            let v = match &p.value {
                Value::Number(n) => n.as_u64().map(|v| (v, None)),
                Value::Object(o) => o.get("value").and_then(Value::as_u64).map(|v| (v, o.get("quality").and_then(Value::as_u64))),
                _ => None,
            };
            if let Some((v, q)) = v {
                out.insert(v, (p.time, q));
            }
        }
        out
    })
}

/// Replaced whole, so a service never reads half a line.
fn set_fake_time(dir: &Path, offset: &str) {
    std::fs::write(dir.join("faketime.new"), format!("{offset}\n")).unwrap();
    std::fs::rename(dir.join("faketime.new"), dir.join("faketime")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_that_starts_with_a_wrong_clock_keeps_and_marks_what_it_stamped() {
    assert!(Path::new(FAKETIME).exists(), "{FAKETIME} missing: scripts/setup-host installs Debian's libfaketime");
    let mut e = Edge::start_prepared("", |dir| {
        set_fake_time(dir, "-20000d");
        let p = |f: &str| dir.join(f).display().to_string();
        [
            ("ENOS_CLOCK", "auto".to_string()),
            ("ENOS_TIMESYNC_MARK", p("synchronized")),
            ("ENOS_RTC", p("no-rtc")),
            ("LD_PRELOAD", FAKETIME.to_string()),
            ("FAKETIME_TIMESTAMP_FILE", p("faketime")),
            ("FAKETIME_NO_CACHE", "1".to_string()),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    })
    .await;
    let dir = e.dir.path().to_path_buf();
    // No cloud while the clock is wrong (a real box's TLS fails then): what is stamped waits in
    // the cache, where the jump of the clock would make it 55 years old.
    e.cloud.with(|r| r.silent = true);
    wait_for(30, "values served while the clock is wrong", || (e.served().len() >= 20).then_some(())).await;
    let log = std::fs::read_to_string(e.log()).unwrap();
    assert!(
        log.contains("the clock is not set (it reads earlier than this release was made") && log.contains("\"gateway clock unset\""),
        "not said in words"
    );
    let unset_served = e.served().len();

    // Time synchronisation: the clock jumps to the real time, then the daemon's mark appears.
    set_fake_time(&dir, "+0");
    std::fs::write(dir.join("synchronized"), "").unwrap();
    wait_for(30, "the collector to see the clock synchronised", || {
        std::fs::read_to_string(e.log()).unwrap().contains("the clock is synchronised").then_some(())
    })
    .await;
    let synced_served = e.served().len();
    wait_for(30, "values served with the clock set", || (e.served().len() >= synced_served + 20).then_some(())).await;
    e.cloud.with(|r| r.silent = false);
    wait_for(30, "the values stamped so far delivered", || {
        let got = counters(&e);
        e.served()[synced_served + 5..synced_served + 20].iter().all(|v| got.contains_key(&(*v as u64))).then_some(())
    })
    .await;

    // A correction steps the clock an hour back: what is stamped now is older than what the
    // cloud already has; it is not dropped.
    set_fake_time(&dir, "-3600");
    let stepped_served = e.served().len();
    wait_for(30, "values served after the step back", || (e.served().len() >= stepped_served + 20).then_some(())).await;

    // Every value served arrives: the first ones marked, with their 1972 times; the last plain.
    // a value whose poll failed (answered too late) is never collected; nor is the last read,
    // answered as the device was unplugged
    let allowance = e.failed_polls() + 1;
    e.sim.unplug();
    let served: Vec<u64> = e.served().iter().map(|v| *v as u64).collect();
    let got = wait_for(60, "every value served to reach the cloud", || {
        let got = counters(&e);
        (served.iter().filter(|v| !got.contains_key(v)).count() <= allowance).then_some(got)
    })
    .await;
    for v in &served[..unset_served] {
        let Some((time, q)) = got.get(v) else { continue };
        assert!(*time < Y2001_MS, "value {v} stamped by the wrong clock at {time}");
        assert_eq!(*q, Some(CLOCK_UNSET_QUALITY), "value {v} stamped by the wrong clock is not marked");
    }
    for v in &served[synced_served + 5..served.len() - 1] {
        let (time, q) = got[v];
        assert!(time > Y2001_MS && q.is_none(), "value {v} stamped after the synchronisation: time {time}, quality {q:?}");
    }
    let before_step = got[&served[stepped_served - 1]].0;
    for v in &served[stepped_served + 5..served.len() - 1] {
        assert!(got[v].0 < before_step, "value {v} stamped after the step back is not older: {} vs {before_step}", got[v].0);
    }
    assert!(served[..unset_served].iter().filter(|v| got.contains_key(v)).count() >= 15, "the marked values arrived");
    let (ok, out, _) = run_tool("enosctl", &["--json", "status"], &e.bus.address);
    assert!(ok, "{out}");
    let st: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(st["uplink"]["cache"]["dropped_points"], 0, "dropped as too old when the clock jumped: {}", st["uplink"]["cache"]);
}
