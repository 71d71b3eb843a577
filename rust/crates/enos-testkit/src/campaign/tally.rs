//! The campaign's accounting: every counter value the device served is sorted into delivered or
//! lost (with the reason), per fault kind, and the table is printed from that.

use super::fault::{Fault, REFUSAL_CODE};
use crate::edge::Edge;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::ops::Range;

/// What the cloud received so far, read incrementally (the records only grow).
#[derive(Default)]
pub(super) struct Seen {
    at: usize,
    refused_at: usize,
    /// Counter value -> how many times it arrived.
    pub counts: HashMap<u64, u32>,
    /// Counter values the cloud refused at least once.
    pub refused: HashSet<u64>,
}

fn is_counter(p: &crate::cloud_sim::Point) -> bool {
    p.point == "counter" && p.device_key.as_deref() == Some("inv01") && p.product_key.as_deref() == Some(crate::edge::SUB_PK)
}

impl Seen {
    pub fn update(&mut self, e: &Edge) {
        e.cloud.with(|r| {
            for p in r.points[self.at..].iter().filter(|p| is_counter(p)) {
                if let Some(v) = p.value.as_u64() {
                    *self.counts.entry(v).or_default() += 1;
                }
            }
            self.at = r.points.len();
            self.refused.extend(r.refused[self.refused_at..].iter().filter(|p| is_counter(p)).filter_map(|p| p.value.as_u64()));
            self.refused_at = r.refused.len();
        });
    }
    pub fn got(&self, v: u32) -> bool {
        self.counts.contains_key(&(v as u64))
    }
}

/// One cycle as run.
pub(super) struct Cycle {
    pub fault: Fault,
    /// Index into the served values where the cycle began (its values run to the next cycle's).
    pub start_idx: usize,
    /// When it began (ms since the epoch, the services' clock), to place a sample by its time.
    pub start_ms: u64,
    pub outage_ms: u64,
    /// From the end of the fault until everything served before that end was in the cloud.
    pub recovery_ms: u64,
}

/// Why a served value is not in the cloud.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Loss {
    /// Served in the window before a collector kill: the collector's memory (allowed).
    CollectorMemory,
    /// Refused by the cloud at every attempt: the uplink's `on_reject` policy (dead letter store).
    DeadLettered,
    /// The collector's read timed out (served, never collected), or the very last read.
    NotCollected,
    /// None of the above: a broken promise.
    AfterAck,
}

impl Loss {
    fn words(self) -> String {
        match self {
            Loss::CollectorMemory => "collector memory".into(),
            Loss::DeadLettered => format!("dead-lettered (cloud answered {REFUSAL_CODE} at every attempt)"),
            Loss::NotCollected => "not collected (read timed out)".into(),
            Loss::AfterAck => "**after acknowledgement**".into(),
        }
    }
}

/// Per fault kind.
#[derive(Clone, Debug, Default)]
pub struct KindFigures {
    pub cycles: usize,
    pub served: usize,
    pub acknowledged: usize,
    pub delivered: usize,
    pub lost: std::collections::BTreeMap<Loss, usize>,
    pub max_lost_per_kill: usize,
    /// Extra arrivals of values served in this kind's cycles.
    pub duplicates: usize,
    pub max_duplicates: usize,
    /// Samples that arrived on the live path after a newer one of their series: must be 0 (the
    /// live path feeds EnOS's latest values and alerts).
    pub reordered: usize,
    /// On the resume path (EnOS files it by time: allowed, counted), a sample that came again
    /// (its first arrival not stored: refused, not answered) after newer ones
    /// (`CloudSim`'s `redelivered`).
    pub reordered_by_redelivery: usize,
    /// On the resume path, any other sample after a newer one (one lost in a broker that went
    /// away and sent again, or backlog sent after newer samples took the resume path).
    pub reordered_on_resume: usize,
    pub recovery_ms: Vec<u64>,
    pub outage_ms: Vec<u64>,
}

impl KindFigures {
    pub fn lost(&self, l: Loss) -> usize {
        self.lost.get(&l).copied().unwrap_or(0)
    }
}

/// The campaign's figures; `passed()` says whether the gateway kept its promise.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub kinds: Vec<(Fault, KindFigures)>,
    pub served: usize,
    pub acknowledged: usize,
    pub reached: usize,
    /// Not in the cloud, with no reason: outside any collector kill's window, never refused,
    /// beyond the reads that failed.
    pub lost_after_ack: Vec<u32>,
    pub lost_from_memory: usize,
    pub dead_lettered: usize,
    /// Reads the collector gave up on (timeouts): served by the device, never collected.
    pub failed_reads: usize,
    pub duplicates: usize,
    pub max_duplicates: usize,
    /// Samples (any series) that arrived on the live path after a newer one of their series.
    pub out_of_order: Vec<String>,
    /// On the resume path (see `KindFigures`): re-delivered, and any other.
    pub reordered_by_redelivery: Vec<String>,
    pub reordered_on_resume: Vec<String>,
    /// Services that ended without being killed (a crash), in words.
    pub crashes: Vec<String>,
    pub minutes: f64,
    /// Set when a cycle did not recover or the end did not settle: the campaign stopped there.
    pub stalled: Option<String>,
    /// Where the services' log and the cache of a failed campaign were kept.
    pub evidence: Option<String>,
}

/// Nearest-rank percentile.
fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

impl Report {
    pub fn passed(&self) -> bool {
        self.lost_after_ack.is_empty() && self.out_of_order.is_empty() && self.stalled.is_none() && self.crashes.is_empty()
    }
    pub fn cycles(&self) -> usize {
        self.kinds.iter().map(|k| k.1.cycles).sum()
    }
    pub fn kind(&self, f: Fault) -> Option<&KindFigures> {
        self.kinds.iter().find(|k| k.0 == f).map(|k| &k.1)
    }

    /// The table (markdown, as it goes into the README).
    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "| fault | cycles | outage (median / max) | served | acknowledged | delivered | lost (why) | duplicated (total / max per cycle) | reordered: live (must be 0) / resume re-delivered / resume other | recovery p50 / p99 |");
        let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|");
        for (f, k) in &self.kinds {
            let mut lost: Vec<String> = Vec::new();
            for (l, n) in k.lost.iter().filter(|(_, n)| **n > 0) {
                let max = if *l == Loss::CollectorMemory { format!(" (max {} per kill)", k.max_lost_per_kill) } else { String::new() };
                lost.push(format!("{n} {}{max}", l.words()));
            }
            let lost = if lost.is_empty() { "0".to_string() } else { lost.join("; ") };
            let mut o = k.outage_ms.clone();
            o.sort_unstable();
            let outage =
                if f.is_outage() { format!("{} / {}", secs(pct(&o, 0.5)), secs(o.last().copied().unwrap_or(0))) } else { "-".into() };
            let mut r = k.recovery_ms.clone();
            r.sort_unstable();
            let _ = writeln!(
                t,
                "| {} | {} | {outage} | {} | {} | {} | {lost} | {} / {} | {} / {} / {} | {} / {} |",
                f.label(),
                k.cycles,
                k.served,
                k.acknowledged,
                k.delivered,
                k.duplicates,
                k.max_duplicates,
                k.reordered,
                k.reordered_by_redelivery,
                k.reordered_on_resume,
                secs(pct(&r, 0.5)),
                secs(pct(&r, 0.99)),
            );
        }
        let _ = writeln!(t);
        let rows = [
            ("values served by the device", self.served.to_string()),
            ("values acknowledged by the uplink", self.acknowledged.to_string()),
            ("values that reached the cloud", self.reached.to_string()),
            ("lost after acknowledgement (must be 0)", self.lost_after_ack.len().to_string()),
            ("lost from collector memory (allowed)", self.lost_from_memory.to_string()),
            ("dead-lettered after the cloud's refusals (policy)", self.dead_lettered.to_string()),
            ("reads the collector gave up on (not collected)", self.failed_reads.to_string()),
            ("duplicates (total / max per cycle)", format!("{} / {}", self.duplicates, self.max_duplicates)),
            ("out of order on post/batch, the live path (must be 0)", self.out_of_order.len().to_string()),
            ("out of order on resume/batch, re-deliveries (allowed)", self.reordered_by_redelivery.len().to_string()),
            ("out of order on resume/batch, other (allowed)", self.reordered_on_resume.len().to_string()),
            ("services crashed (must be 0)", self.crashes.len().to_string()),
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
        for c in self.crashes.iter().take(10) {
            let _ = writeln!(t, "crashed: {c}");
        }
        if !self.lost_after_ack.is_empty() {
            let _ = writeln!(t, "\nlost after acknowledgement: {:?}", &self.lost_after_ack[..self.lost_after_ack.len().min(20)]);
        }
        for o in self.out_of_order.iter().take(10) {
            let _ = writeln!(t, "out of order: {o}");
        }
        for o in self.reordered_by_redelivery.iter().take(3) {
            let _ = writeln!(t, "out of order on resume (re-delivered): {o}");
        }
        for o in self.reordered_on_resume.iter().take(3) {
            let _ = writeln!(t, "out of order on resume: {o}");
        }
        t
    }
}

/// What the run collected, for `count`.
pub(super) struct Run<'a> {
    pub served: &'a [u32],
    pub seen: &'a Seen,
    /// Values served before a collector kill that may be lost with its memory: index range, kind.
    pub windows: &'a [(Range<usize>, Fault)],
    pub cycles: &'a [Cycle],
    pub failed_reads: usize,
    pub inversions: &'a [(String, String, &'static str, u64, u64)],
    /// (device, point, acquisition ms) of samples stored from a re-delivery.
    pub redelivered: &'a HashSet<(String, String, u64)>,
}

/// Sorts every served value into delivered or lost-with-a-reason, per kind.
pub(super) fn count(run: &Run, rep: &mut Report, kinds: &[Fault]) {
    let mut per: HashMap<Fault, KindFigures> = kinds.iter().map(|f| (*f, KindFigures::default())).collect();
    let cycle_of = |i: usize| run.cycles.partition_point(|c| c.start_idx <= i).saturating_sub(1);
    let kind_of = |i: usize| run.cycles.get(cycle_of(i)).map(|c| c.fault);
    for c in run.cycles {
        let k = per.entry(c.fault).or_default();
        k.cycles += 1;
        k.recovery_ms.push(c.recovery_ms);
        k.outage_ms.push(c.outage_ms);
    }
    let in_window = |i: usize| run.windows.iter().find(|w| w.0.contains(&i)).map(|w| w.1);
    let mut unexplained = Vec::new();
    let mut dupes_per_cycle = vec![0usize; run.cycles.len()];
    for (i, v) in run.served.iter().enumerate() {
        let Some(cycle_kind) = kind_of(i) else { continue };
        // A collector kill's window can reach back into the cycle before (a kill soon after a
        // recovery): its values are that kill's, served and lost alike (counted under the
        // cycle's kind instead, a kind could lose more than it served).
        let kind = in_window(i).unwrap_or(cycle_kind);
        let k = per.entry(kind).or_default();
        k.served += 1;
        match run.seen.counts.get(&(*v as u64)) {
            Some(n) => {
                k.delivered += 1;
                k.duplicates += *n as usize - 1;
                dupes_per_cycle[cycle_of(i)] += *n as usize - 1;
            }
            None => match in_window(i) {
                Some(_) => *k.lost.entry(Loss::CollectorMemory).or_default() += 1,
                None if run.seen.refused.contains(&(*v as u64)) => *k.lost.entry(Loss::DeadLettered).or_default() += 1,
                None => unexplained.push(i),
            },
        }
    }
    // The very last read (answered while the device was being unplugged), then one per read the
    // collector gave up on (it counts them): served, never collected.
    let mut excused = run.failed_reads;
    if unexplained.last().is_some_and(|i| i + 1 == run.served.len()) {
        excused += 1;
    }
    for (n, i) in unexplained.iter().enumerate() {
        let loss = if n < excused { Loss::NotCollected } else { Loss::AfterAck };
        let kind = kind_of(*i).expect("a served value's cycle");
        *per.entry(kind).or_default().lost.entry(loss).or_default() += 1;
        if loss == Loss::AfterAck {
            rep.lost_after_ack.push(run.served[*i]);
        }
    }
    for w in run.windows {
        let lost = w.0.clone().filter(|i| !run.seen.got(run.served[*i])).count();
        let k = per.entry(w.1).or_default();
        k.max_lost_per_kill = k.max_lost_per_kill.max(lost);
    }
    for (c, d) in run.cycles.iter().zip(&dupes_per_cycle) {
        let k = per.entry(c.fault).or_default();
        k.max_duplicates = k.max_duplicates.max(*d);
    }
    for (dev, point, path, t, newest) in run.inversions {
        let c = run.cycles.partition_point(|c| c.start_ms <= *t).saturating_sub(1);
        // The live path feeds EnOS's latest values and alerts: no inversion there is excused.
        let live = *path != "resume/batch";
        let redelivered = !live && run.redelivered.contains(&(dev.clone(), point.clone(), *t));
        let words = format!("{dev} {point} on {path}: acquired {t} after {newest}");
        let k = run.cycles.get(c).map(|cy| per.entry(cy.fault).or_default());
        if live {
            if let Some(k) = k {
                k.reordered += 1;
            }
            rep.out_of_order.push(words);
        } else if redelivered {
            if let Some(k) = k {
                k.reordered_by_redelivery += 1;
            }
            rep.reordered_by_redelivery.push(words);
        } else {
            if let Some(k) = k {
                k.reordered_on_resume += 1;
            }
            rep.reordered_on_resume.push(words);
        }
    }
    for k in per.values_mut() {
        k.acknowledged = k.served - k.lost(Loss::CollectorMemory) - k.lost(Loss::NotCollected);
    }
    let mut kinds: Vec<(Fault, KindFigures)> = per.into_iter().collect();
    kinds.sort_by_key(|k| k.0);
    let sum = |l: Loss| kinds.iter().map(|k| k.1.lost(l)).sum::<usize>();
    rep.served = run.served.len();
    rep.lost_from_memory = sum(Loss::CollectorMemory);
    rep.dead_lettered = sum(Loss::DeadLettered);
    rep.failed_reads = sum(Loss::NotCollected);
    rep.acknowledged = rep.served - rep.lost_from_memory - rep.failed_reads;
    rep.reached = kinds.iter().map(|k| k.1.delivered).sum();
    rep.duplicates = kinds.iter().map(|k| k.1.duplicates).sum();
    rep.max_duplicates = kinds.iter().map(|k| k.1.max_duplicates).max().unwrap_or(0);
    rep.kinds = kinds;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(pct(&v, 0.5), 50);
        assert_eq!(pct(&v, 0.99), 99);
        assert_eq!(pct(&[7], 0.99), 7);
        assert_eq!(pct(&[], 0.5), 0);
    }

    #[test]
    fn every_served_value_gets_a_reason() {
        // values 0..10; cycle 0 (kill collector) from 0, cycle 1 (cloud refuses) from 5
        let served: Vec<u32> = (0..10).collect();
        let mut seen = Seen::default();
        for v in [0u64, 1, 3, 4, 5, 6, 6, 8] {
            *seen.counts.entry(v).or_default() += 1;
        }
        seen.refused.insert(7);
        let cycles = [
            Cycle { fault: Fault::KillCollector, start_idx: 0, start_ms: 0, outage_ms: 0, recovery_ms: 100 },
            Cycle { fault: Fault::CloudRefuses, start_idx: 5, start_ms: 1000, outage_ms: 50, recovery_ms: 300 },
        ];
        let run = Run {
            served: &served,
            seen: &seen,
            windows: &[(1..3, Fault::KillCollector)],
            cycles: &cycles,
            failed_reads: 0,
            inversions: &[],
            redelivered: &HashSet::new(),
        };
        let mut rep = Report::default();
        count(&run, &mut rep, &[Fault::KillCollector, Fault::CloudRefuses]);
        let kill = rep.kind(Fault::KillCollector).unwrap();
        assert_eq!((kill.served, kill.delivered, kill.lost(Loss::CollectorMemory), kill.acknowledged), (5, 4, 1, 4));
        let refuse = rep.kind(Fault::CloudRefuses).unwrap();
        assert_eq!((refuse.served, refuse.delivered, refuse.duplicates), (5, 3, 1));
        assert_eq!(refuse.lost(Loss::DeadLettered), 1);
        // 9: the last read; nothing is lost after acknowledgement
        assert_eq!(refuse.lost(Loss::NotCollected), 1);
        assert!(rep.lost_after_ack.is_empty() && rep.passed(), "{}", rep.table());
    }

    #[test]
    fn a_collector_kill_whose_window_reaches_into_the_cycle_before_counts_those_values_as_its_own() {
        // values 0..8; cycle 0 (kill uplink) from 0, cycle 1 (kill collector) from 6; the kill's
        // window reaches back to 2: 2..6 lost with the collector's memory
        let served: Vec<u32> = (0..8).collect();
        let mut seen = Seen::default();
        for v in [0u64, 1, 6, 7] {
            *seen.counts.entry(v).or_default() += 1;
        }
        let cycles = [
            Cycle { fault: Fault::KillUplink, start_idx: 0, start_ms: 0, outage_ms: 0, recovery_ms: 100 },
            Cycle { fault: Fault::KillCollector, start_idx: 6, start_ms: 1000, outage_ms: 0, recovery_ms: 100 },
        ];
        let run = Run {
            served: &served,
            seen: &seen,
            windows: &[(2..6, Fault::KillCollector)],
            cycles: &cycles,
            failed_reads: 0,
            inversions: &[],
            redelivered: &HashSet::new(),
        };
        let mut rep = Report::default();
        count(&run, &mut rep, &[Fault::KillUplink, Fault::KillCollector]);
        let kill = rep.kind(Fault::KillCollector).unwrap();
        assert_eq!((kill.served, kill.delivered, kill.lost(Loss::CollectorMemory), kill.acknowledged), (6, 2, 4, 2));
        let uplink = rep.kind(Fault::KillUplink).unwrap();
        assert_eq!((uplink.served, uplink.delivered, uplink.acknowledged), (2, 2, 2));
        assert!(rep.passed(), "{}", rep.table());
    }
}
