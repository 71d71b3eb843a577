//! The kill -9 fault campaign: one edge (`crate::edge::Edge`: the real services, a real broker,
//! RocksDB on disk, a Modbus device whose `counter` point counts up at every read) and many
//! cycles of "let data flow, `kill -9` the uplink, the collector or both at a random moment,
//! start them again, wait until data flows past the kill". At the end the device is unplugged,
//! everything is let through, and every counter value the device served is looked for in the
//! cloud. See `docs/fault-campaign.md` for what each figure means.

use crate::edge::Edge;
use std::collections::{BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::ops::Range;
use std::time::{Duration, Instant};

/// What is killed in one cycle.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fault {
    Uplink,
    Collector,
    Both,
}

impl Fault {
    pub const ALL: [Fault; 3] = [Fault::Uplink, Fault::Collector, Fault::Both];
    pub fn label(self) -> &'static str {
        match self {
            Fault::Uplink => "kill -9 uplink",
            Fault::Collector => "kill -9 collector",
            Fault::Both => "kill -9 both",
        }
    }
    fn kills_collector(self) -> bool {
        self != Fault::Uplink
    }
}

/// How a campaign runs.
#[derive(Clone, Debug)]
pub struct Plan {
    pub cycles: usize,
    pub seed: u64,
    /// The kill comes at a random moment in 0..this after the previous cycle's recovery.
    pub max_delay_ms: u64,
    /// Values the device served this long before a collector kill (and up to it) may be lost:
    /// the collector's memory (one push interval of 100 ms, a push in flight, a read in flight).
    pub memory_window_ms: u64,
}

/// Per fault kind.
#[derive(Clone, Debug, Default)]
pub struct KindFigures {
    pub cycles: usize,
    pub lost_from_memory: usize,
    pub max_lost_from_memory: usize,
    pub duplicates: usize,
    pub max_duplicates: usize,
}

/// The campaign's figures; `passed()` says whether the gateway kept its promise.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub kinds: Vec<(Fault, KindFigures)>,
    pub served: usize,
    pub acknowledged: usize,
    pub reached: usize,
    /// Not in the cloud, outside any collector kill's window, beyond the reads that failed.
    pub lost_after_ack: Vec<u32>,
    pub lost_from_memory: usize,
    /// Reads the collector gave up on (timeouts): served by the device, never collected.
    pub failed_reads: usize,
    pub duplicates: usize,
    pub max_duplicates: usize,
    /// Samples (any series) that arrived after a newer one of their series on the same path.
    pub out_of_order: Vec<String>,
    pub minutes: f64,
    /// Set when a cycle did not recover or the end did not settle: the campaign stopped there.
    pub stalled: Option<String>,
    /// Where the services' log and the cache of a failed campaign were kept.
    pub evidence: Option<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.lost_after_ack.is_empty() && self.out_of_order.is_empty() && self.stalled.is_none()
    }
    pub fn cycles(&self) -> usize {
        self.kinds.iter().map(|k| k.1.cycles).sum()
    }

    /// The table (markdown, as it goes into the README).
    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "| fault | cycles | lost from collector memory (total / max per kill) | duplicates (total / max per cycle) |");
        let _ = writeln!(t, "|---|---:|---:|---:|");
        for (f, k) in &self.kinds {
            let mem = if f.kills_collector() { format!("{} / {}", k.lost_from_memory, k.max_lost_from_memory) } else { "-".into() };
            let _ = writeln!(t, "| {} | {} | {mem} | {} / {} |", f.label(), k.cycles, k.duplicates, k.max_duplicates);
        }
        let _ = writeln!(t);
        let rows = [
            ("values served by the device", self.served.to_string()),
            ("values acknowledged by the uplink", self.acknowledged.to_string()),
            ("values that reached the cloud", self.reached.to_string()),
            ("lost after acknowledgement (must be 0)", self.lost_after_ack.len().to_string()),
            ("lost from collector memory (allowed)", self.lost_from_memory.to_string()),
            ("reads the collector gave up on (not collected)", self.failed_reads.to_string()),
            ("duplicates (total / max per cycle)", format!("{} / {}", self.duplicates, self.max_duplicates)),
            ("out of order (must be 0)", self.out_of_order.len().to_string()),
            ("cycles per minute", format!("{:.1}", self.cycles() as f64 / self.minutes.max(1e-9))),
            ("seed", self.seed.to_string()),
        ];
        let _ = writeln!(t, "| figure | value |\n|---|---:|");
        for (k, v) in rows {
            let _ = writeln!(t, "| {k} | {v} |");
        }
        if let Some(d) = &self.evidence {
            let _ = writeln!(t, "\nthe services' log and cache are kept in {d}");
        }
        if let Some(s) = &self.stalled {
            let _ = writeln!(t, "\nSTOPPED: {s}");
        }
        if !self.lost_after_ack.is_empty() {
            let _ = writeln!(t, "\nlost after acknowledgement: {:?}", &self.lost_after_ack[..self.lost_after_ack.len().min(20)]);
        }
        for o in self.out_of_order.iter().take(10) {
            let _ = writeln!(t, "out of order: {o}");
        }
        t
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
}

/// A seed from the clock, for a campaign not given one (it is printed, so any run can be replayed
/// as far as a machine's timing allows).
pub fn clock_seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
}

fn max_received(e: &Edge) -> Option<u64> {
    e.cloud.with(|r| {
        r.points.iter().filter(|p| p.point == "counter" && p.device_key.as_deref() == Some("inv01")).filter_map(|p| p.value.as_u64()).max()
    })
}

fn counter_duplicates(e: &Edge) -> usize {
    let got = e.received();
    got.len() - got.iter().map(|r| r.0).collect::<BTreeSet<_>>().len()
}

/// Polls `f` every 20 ms until true or `secs` pass.
async fn until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

/// Runs the campaign; `progress` is told after every cycle (cycle number, fault).
pub async fn run(plan: &Plan, mut progress: impl FnMut(usize, Fault)) -> Report {
    let mut rng = Rng(plan.seed);
    let mut rep =
        Report { seed: plan.seed, kinds: Fault::ALL.iter().map(|f| (*f, KindFigures::default())).collect(), ..Default::default() };
    let mut e = Edge::start().await;
    // (values served before a collector kill may be lost from its memory: index range into `served`, kind)
    let mut windows: Vec<(Range<usize>, Fault)> = Vec::new();
    let mut failed_reads = 0;
    if !until(60, || e.received().len() >= 10).await {
        rep.stalled = Some("no data reached the cloud within 60 s of the start".into());
        return rep;
    }
    let started = Instant::now();
    let mut dupes_before = counter_duplicates(&e);
    // (when, values served by then), kept across cycles: a kill soon after the previous cycle's
    // recovery still gets its whole window.
    let mut timeline: VecDeque<(Instant, usize)> = VecDeque::new();
    for i in 0..plan.cycles {
        let fault = Fault::ALL[i % 3];
        // The random moment; while waiting, note how many values were served when, so a collector
        // kill's window can be cut by time.
        let kill_at = Instant::now() + Duration::from_millis(rng.next() % plan.max_delay_ms.max(1));
        let failed_before = if fault.kills_collector() { e.failed_polls() } else { 0 };
        loop {
            let now = Instant::now();
            timeline.push_back((now, e.served().len()));
            while timeline.len() > 2 && timeline[1].0 + Duration::from_millis(plan.memory_window_ms) <= now {
                timeline.pop_front();
            }
            if now >= kill_at {
                break;
            }
            tokio::time::sleep((kill_at - now).min(Duration::from_millis(10))).await;
        }
        let from = timeline.front().map(|t| t.1).unwrap_or(0);
        if fault.kills_collector() {
            e.collector.kill9();
            failed_reads += failed_before;
        }
        if fault != Fault::Collector {
            e.uplink.kill9();
        }
        let served_at_kill = e.served();
        if fault.kills_collector() {
            windows.push((from..served_at_kill.len(), fault));
        }
        if fault != Fault::Collector {
            e.start_uplink();
        }
        if fault.kills_collector() {
            e.start_collector();
        }
        // Recovered: a value read after the restart reached the cloud.
        let last = served_at_kill.iter().copied().max().unwrap_or(0) as u64;
        if !until(60, || {
            timeline.push_back((Instant::now(), e.served().len()));
            max_received(&e).is_some_and(|m| m > last)
        })
        .await
        {
            rep.stalled = Some(format!("cycle {} ({}): no new value reached the cloud within 60 s", i + 1, fault.label()));
            break;
        }
        let dupes = counter_duplicates(&e);
        let k = &mut rep.kinds.iter_mut().find(|k| k.0 == fault).expect("every kind").1;
        k.cycles += 1;
        k.duplicates += dupes - dupes_before;
        k.max_duplicates = k.max_duplicates.max(dupes - dupes_before);
        dupes_before = dupes;
        progress(i + 1, fault);
    }
    rep.minutes = started.elapsed().as_secs_f64() / 60.0;
    failed_reads += e.failed_polls();
    settle_and_count(&mut e, &mut rep, &windows, failed_reads).await;
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

/// Unplugs the device, lets everything through, and sorts every served value into reached,
/// lost from memory, not collected, or lost after acknowledgement.
async fn settle_and_count(e: &mut Edge, rep: &mut Report, windows: &[(Range<usize>, Fault)], failed_reads: usize) {
    e.sim.unplug();
    let mut last = usize::MAX;
    until(10, || {
        let n = e.served().len();
        let quiet = n == last;
        last = n;
        std::thread::sleep(Duration::from_millis(300));
        quiet
    })
    .await;
    let served = e.served();
    let in_window = |idx: usize| windows.iter().find(|w| w.0.contains(&idx)).map(|w| w.1);
    let allowed_missing = windows.iter().map(|w| w.0.len()).sum::<usize>() + failed_reads + 1;
    let missing = |e: &Edge| {
        let got: BTreeSet<u64> = e.received().iter().map(|r| r.0).collect();
        served.iter().enumerate().filter(|(_, v)| !got.contains(&(**v as u64))).map(|(i, v)| (i, *v)).collect::<Vec<_>>()
    };
    // Everything served is either in the cloud or allowed to be missing; the sender may still be
    // resuming the backlog of the last kills.
    if !until(120, || missing(e).len() <= allowed_missing && max_received(e) >= served.iter().max().map(|m| *m as u64)).await {
        rep.stalled.get_or_insert_with(|| "the backlog did not drain within 120 s".to_string());
    }
    let missing = missing(e);
    rep.served = served.len();
    rep.reached = served.len() - missing.len();
    let mut unexplained = Vec::new();
    for (i, v) in missing {
        match in_window(i) {
            Some(f) => {
                rep.lost_from_memory += 1;
                rep.kinds.iter_mut().find(|k| k.0 == f).expect("every kind").1.lost_from_memory += 1;
            }
            // The very last read, answered while the device was being unplugged.
            None if i + 1 == served.len() => rep.failed_reads += 1,
            None => unexplained.push(v),
        }
    }
    let got: BTreeSet<u64> = e.received().iter().map(|r| r.0).collect();
    for w in windows {
        let lost = w.0.clone().filter(|i| !got.contains(&(served[*i] as u64))).count();
        let k = &mut rep.kinds.iter_mut().find(|k| k.0 == w.1).expect("every kind").1;
        k.max_lost_from_memory = k.max_lost_from_memory.max(lost);
    }
    // A read that failed (a timeout) was served and never collected; the collector counts them.
    let excused = unexplained.len().min(failed_reads);
    rep.failed_reads += excused;
    rep.lost_after_ack = unexplained.split_off(excused);
    rep.acknowledged = rep.served - rep.lost_from_memory - rep.failed_reads;
    rep.duplicates = counter_duplicates(e);
    rep.max_duplicates = rep.kinds.iter().map(|k| k.1.max_duplicates).max().unwrap_or(0);
    let order = e.cloud.with(|r| r.order_report());
    rep.out_of_order = order
        .inversions
        .iter()
        .map(|(dev, point, path, t, newest)| format!("{dev} {point} on {path}: acquired {t} after {newest}"))
        .collect();
}
