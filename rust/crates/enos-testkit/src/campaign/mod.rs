//! The fault campaign: one edge (`crate::edge::Edge`: the real services, a real broker, RocksDB
//! on disk, a Modbus device whose `counter` point counts up at every read) and many cycles of
//! "let data flow, inject a fault at a random moment (`fault`: kill -9 of a service, or a broker
//! or cloud outage of random length), wait until everything served before the fault's end is in
//! the cloud". At the end the device is unplugged, everything is let through, and every counter
//! value the device served is sorted into delivered or lost with its reason (`tally`). See
//! `docs/fault-campaign.md` for what each figure means.

mod fault;
mod tally;

pub use fault::{Fault, REFUSAL_CODE};
pub use tally::{KindFigures, Loss, Report};

use crate::edge::Edge;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::time::{Duration, Instant};
use tally::{Cycle, Seen};

/// How a campaign runs.
#[derive(Clone, Debug)]
pub struct Plan {
    pub cycles: usize,
    /// Stop starting cycles after this long (the cycles run so far are counted).
    pub minutes: Option<f64>,
    /// The kinds, in turn.
    pub kinds: Vec<Fault>,
    pub seed: u64,
    /// The fault comes at a random moment in 0..this after the previous cycle's recovery.
    pub max_delay_ms: u64,
    /// Values the device served this long before a collector kill (and up to it) may be lost:
    /// the collector's memory (one push interval of 100 ms, a push in flight, a read in flight).
    pub memory_window_ms: u64,
    /// Outage lengths are drawn log-uniformly from this range (ms): as many short as long ones.
    pub outage_ms: Range<u64>,
}

impl Plan {
    /// The kill -9 kinds only, as the first campaign ran them.
    pub fn kills(cycles: usize, seed: u64) -> Plan {
        Plan {
            cycles,
            minutes: None,
            kinds: Fault::KILLS.to_vec(),
            seed,
            max_delay_ms: 1000,
            memory_window_ms: 500,
            outage_ms: 500..60_000,
        }
    }
}

/// splitmix64: small, seedable, and the same sequence on every machine.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Log-uniform in `r`: an outage of 1 s is as likely as one of 10 s or 100 s.
    fn log_uniform(&mut self, r: &Range<u64>) -> u64 {
        let (lo, hi) = (r.start.max(1) as f64, r.end.max(r.start + 1) as f64);
        let u = self.next() as f64 / u64::MAX as f64;
        (lo * (hi / lo).powf(u)) as u64
    }
}

/// A seed from the clock, for a campaign not given one (it is printed, so any run can be replayed
/// as far as a machine's timing allows).
pub fn clock_seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
}

fn served_len(e: &Edge) -> usize {
    e.sim.with(|s| s.served.get(&0).map_or(0, Vec::len))
}

fn served_range(e: &Edge, r: Range<usize>) -> Vec<u32> {
    e.sim.with(|s| s.served.get(&0).map(|v| v[r.start.min(v.len())..r.end.min(v.len())].to_vec()).unwrap_or_default())
}

/// Served values not in the cloud and not excused (a collector kill's window, a refusal),
/// found incrementally: (index, value).
#[derive(Default)]
struct Missing {
    scanned: usize,
    open: BTreeMap<usize, u32>,
}

impl Missing {
    fn refresh(&mut self, e: &Edge, upto: usize, seen: &Seen, windows: &[(Range<usize>, Fault)]) {
        if upto > self.scanned {
            for (n, v) in served_range(e, self.scanned..upto).into_iter().enumerate() {
                self.open.insert(self.scanned + n, v);
            }
            self.scanned = upto;
        }
        self.open.retain(|i, v| !seen.got(*v) && !seen.refused.contains(&(*v as u64)) && !windows.iter().any(|w| w.0.contains(i)));
    }
}

/// A service that ended without being killed: said in words, started again (as systemd would).
fn check_crashes(e: &mut Edge, crashes: &mut Vec<String>, when: &str) {
    use std::os::unix::process::ExitStatusExt;
    for uplink in [true, false] {
        let p = if uplink { &mut e.uplink } else { &mut e.collector };
        let Some(Ok(Some(status))) = p.child.as_mut().map(|c| c.try_wait()) else { continue };
        let how = match status.signal() {
            Some(s) => format!("killed by signal {s}"),
            None => format!("exit code {}", status.code().unwrap_or(-1)),
        };
        let name = p.name.clone();
        crashes.push(format!("{name} ended ({how}) {when}"));
        if uplink {
            e.start_uplink();
        } else {
            e.start_collector();
        }
    }
}

/// Runs the campaign; `progress` is told after every cycle (cycle number, fault).
pub async fn run(plan: &Plan, mut progress: impl FnMut(usize, Fault)) -> Report {
    let mut rng = Rng(plan.seed);
    let mut rep = Report { seed: plan.seed, ..Default::default() };
    // the full disk needs the cache on a file system of its own (a tmpfs: root)
    let mut e = if plan.kinds.contains(&Fault::DiskFull) { Edge::start_on_small_disk().await } else { Edge::start().await };
    let mut seen = Seen::default();
    let mut missing = Missing::default();
    let mut windows: Vec<(Range<usize>, Fault)> = Vec::new();
    let mut cycles: Vec<Cycle> = Vec::new();
    // Reads the collector gave up on: summed over its lives (its count starts at 0 at a restart).
    let (mut failed_done, mut failed_base) = (0usize, 0usize);
    let start_deadline = Instant::now() + Duration::from_secs(60);
    while seen.counts.len() < 10 && Instant::now() < start_deadline {
        seen.update(&e);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if seen.counts.len() < 10 {
        rep.stalled = Some("no data reached the cloud within 60 s of the start".into());
        return rep;
    }
    let started = Instant::now();
    // (when, values served by then), kept across cycles: a kill soon after the previous cycle's
    // recovery still gets its whole window.
    let mut timeline: VecDeque<(Instant, usize)> = VecDeque::new();
    for i in 0..plan.cycles {
        if plan.minutes.is_some_and(|m| started.elapsed().as_secs_f64() >= m * 60.0) {
            break;
        }
        let fault = plan.kinds[i % plan.kinds.len()];
        let (start_idx, start_ms) = (if i == 0 { 0 } else { served_len(&e) }, enos_batch::now_ms());
        // The random moment; while waiting, note how many values were served when, so a collector
        // kill's window can be cut by time.
        let fault_at = Instant::now() + Duration::from_millis(rng.below(plan.max_delay_ms));
        loop {
            let now = Instant::now();
            timeline.push_back((now, served_len(&e)));
            while timeline.len() > 2 && timeline[1].0 + Duration::from_millis(plan.memory_window_ms) <= now {
                timeline.pop_front();
            }
            if now >= fault_at {
                break;
            }
            tokio::time::sleep((fault_at - now).min(Duration::from_millis(10))).await;
        }
        let mut outage_ms = 0;
        let ended = if fault.is_outage() {
            let length = Duration::from_millis(rng.log_uniform(&plan.outage_ms));
            outage_ms = length.as_millis() as u64;
            let extra = match fault {
                Fault::LinkDrops => 1 + rng.below(3) as usize,
                Fault::BrokerRestarts => 3 + rng.below(6) as usize,
                _ => 0,
            };
            let mut gaps: Vec<Duration> = (0..extra).map(|_| Duration::from_millis(rng.below(1000))).collect();
            fault::outage(&mut e, fault, length, extra, || gaps.pop().unwrap_or_default()).await
        } else {
            let from = timeline.front().map(|t| t.1).unwrap_or(0);
            if fault.kills_collector() {
                let before = e.failed_polls();
                e.collector.kill9();
                failed_done += before.saturating_sub(failed_base);
                failed_base = 0;
            }
            if fault.kills_uplink() {
                e.uplink.kill9();
            }
            if fault.kills_collector() {
                windows.push((from..served_len(&e), fault));
            }
            if fault.kills_uplink() {
                e.start_uplink();
            }
            if fault.kills_collector() {
                e.start_collector();
            }
            Instant::now()
        };
        // Recovered: everything served before the fault ended is in the cloud (or excused).
        let upto = served_len(&e);
        let deadline = ended + Duration::from_secs(60) + Duration::from_millis(outage_ms * 2);
        let mut failed_now = failed_base;
        let mut asked = Instant::now() - Duration::from_secs(10);
        let recovered = loop {
            check_crashes(&mut e, &mut rep.crashes, &format!("in cycle {} ({})", i + 1, fault.label()));
            seen.update(&e);
            missing.refresh(&e, upto, &seen, &windows);
            if !missing.open.is_empty() && missing.open.len() <= failed_done + failed_now + 3 && asked.elapsed() > Duration::from_secs(1) {
                failed_now = e.failed_polls();
                asked = Instant::now();
            }
            if missing.open.len() <= failed_done + failed_now.saturating_sub(failed_base) {
                break Some(ended.elapsed());
            }
            if Instant::now() >= deadline {
                break None;
            }
            timeline.push_back((Instant::now(), served_len(&e)));
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let Some(recovery) = recovered else {
            rep.stalled = Some(format!(
                "cycle {} ({}): {} values served before the fault's end were not in the cloud {} s after it",
                i + 1,
                fault.label(),
                missing.open.len(),
                deadline.duration_since(ended).as_secs()
            ));
            break;
        };
        let now_failed = e.failed_polls();
        failed_done += now_failed.saturating_sub(failed_base);
        failed_base = now_failed;
        cycles.push(Cycle { fault, start_idx, start_ms, outage_ms, recovery_ms: recovery.as_millis() as u64 });
        progress(i + 1, fault);
    }
    rep.minutes = started.elapsed().as_secs_f64() / 60.0;
    failed_done += e.failed_polls().saturating_sub(failed_base);
    settle(&mut e, &mut rep, &mut seen, &windows, failed_done).await;
    let served = e.served();
    let (inversions, redelivered) = e.cloud.with(|r| {
        let again = r.redelivered.iter().flat_map(|s| r.points[s.clone()].iter());
        let again = again.map(|p| {
            let dev = format!("{}/{}", p.product_key.as_deref().unwrap_or("-"), p.device_key.as_deref().unwrap_or("gateway"));
            (dev, p.point.clone(), p.time)
        });
        (r.order_report().inversions, again.collect::<std::collections::HashSet<_>>())
    });
    let run = tally::Run {
        served: &served,
        seen: &seen,
        windows: &windows,
        cycles: &cycles,
        failed_reads: failed_done,
        inversions: &inversions,
        redelivered: &redelivered,
    };
    tally::count(&run, &mut rep, &plan.kinds);
    if !rep.passed() {
        keep_evidence(&e, &mut rep);
    }
    rep
}

/// The edge's temp dir goes with it: a failed campaign keeps the services' log and the cache.
fn keep_evidence(e: &Edge, rep: &mut Report) {
    let keep = std::env::temp_dir().join(format!("enos-campaign-{}-{}", rep.seed, std::process::id()));
    let copied = std::process::Command::new("cp").arg("-a").arg(e.dir.path()).arg(&keep).status().is_ok_and(|s| s.success());
    if copied {
        rep.evidence = Some(keep.display().to_string());
    }
}

/// Unplugs the device and lets everything through: every served value is in the cloud or
/// excused (up to 120 s; the sender may still be resuming the backlog of the last faults).
async fn settle(e: &mut Edge, rep: &mut Report, seen: &mut Seen, windows: &[(Range<usize>, Fault)], failed_reads: usize) {
    e.sim.unplug();
    let mut last = usize::MAX;
    let quiet_by = Instant::now() + Duration::from_secs(10);
    while Instant::now() < quiet_by {
        let n = served_len(e);
        if n == last {
            break;
        }
        last = n;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let n = served_len(e);
    let mut missing = Missing::default();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        check_crashes(e, &mut rep.crashes, "while the last backlog drained");
        seen.update(e);
        missing.refresh(e, n, seen, windows);
        // the very last read may be answered while the device was being unplugged
        if missing.open.len() <= failed_reads + 1 {
            break;
        }
        if Instant::now() >= deadline {
            rep.stalled.get_or_insert_with(|| format!("the backlog did not drain within 120 s ({} values missing)", missing.open.len()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
