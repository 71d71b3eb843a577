//! Which path a cached sample takes and in which order: the sender's policy, without I/O.
//!
//! - The path follows the acquisition time, never the time a record reached the cache: a
//!   record whose oldest sample is younger than `resume_after_s` is live (`post/batch`), any
//!   other is backlog (`resume/batch`). So a collector's batches kept while the uplink was away,
//!   or a record that straddles the threshold, never reach EnOS's alerts and latest values as
//!   current data.
//! - Each path is drained in acquisition order (the record's oldest sample), oldest first, not
//!   in arrival order: records may land in the cache out of acquisition order.
//! - A live sample older than one already sent live for its (device, point) since the uplink
//!   started (a record that arrived after newer ones were sent, or one sent again after a lost
//!   link) would be an inversion the cloud sees; it goes through `resume/batch` instead (see
//!   [`LiveFloor`]). So does a live message sent again (no reply in time, or refused) after a
//!   newer live message went out (`sender`).

use enos_batch::batch::DecodedBatch;
use enos_cache::{Cache, RecordMeta};
use std::collections::HashMap;

/// Acquisition times before this (ms) are backlog.
pub fn threshold(now_ms: u64, resume_after_s: u64) -> u64 {
    now_ms.saturating_sub(resume_after_s * 1000)
}

/// Up to `n` live records not `skip`ped, oldest acquisition first.
pub fn live_records(cache: &Cache, threshold: u64, n: usize, skip: impl Fn(&RecordMeta) -> bool) -> Vec<RecordMeta> {
    cache.by_acquisition(threshold..u64::MAX, n, |m| !skip(m))
}

/// Up to `n` backlog records not `skip`ped, oldest acquisition first.
pub fn backlog_records(cache: &Cache, threshold: u64, n: usize, skip: impl Fn(&RecordMeta) -> bool) -> Vec<RecordMeta> {
    cache.by_acquisition(0..threshold, n, |m| !skip(m))
}

/// The newest acquisition time sent live per (device, point).
#[derive(Default)]
pub struct LiveFloor(HashMap<(String, String), u64>);

/// The floors that held before a unit was claimed: its samples below them are late.
pub struct Late(HashMap<(String, String), u64>);

impl Late {
    pub fn is_late(&self, device: &str, point: &str, ts: u64) -> bool {
        // one lookup per sample in the rare case that a unit has late samples at all
        self.0.get(&(device.to_string(), point.to_string())).is_some_and(|f| ts < *f)
    }
}

impl LiveFloor {
    /// Claims the samples of `batches` for the live path. Returns `None` when none is late (the
    /// usual case), else the floors to split the unit with; raises the floors either way.
    pub fn claim(&mut self, batches: &[DecodedBatch]) -> Option<Late> {
        let mut late = HashMap::new();
        let mut newest: HashMap<(String, String), u64> = HashMap::new();
        for b in batches {
            for s in &b.series {
                let key = (b.name(s.device).to_string(), b.name(s.point).to_string());
                let floor = self.0.get(&key).copied().unwrap_or(0);
                if s.ts.iter().any(|t| *t < floor) {
                    late.insert(key.clone(), floor);
                }
                if let Some(max) = s.ts.iter().copied().filter(|t| *t >= floor).max() {
                    let n = newest.entry(key).or_insert(0);
                    *n = (*n).max(max);
                }
            }
        }
        for (k, t) in newest {
            let f = self.0.entry(k).or_insert(0);
            *f = (*f).max(t);
        }
        (!late.is_empty()).then_some(Late(late))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use enos_batch::{BatchBuilder, Quality, Value};
    use enos_cache::Sync;

    fn batch(point: &str, times: std::ops::Range<u64>) -> Vec<u8> {
        let mut b = BatchBuilder::new();
        for t in times {
            b.push("inv01", point, t * 1000, Value::Int(t as i64), Quality::Good);
        }
        b.finish()
    }

    #[test]
    fn the_path_follows_acquisition_time_and_each_path_goes_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::open(dir.path(), 1 << 30, 0, Sync::Never).unwrap();
        let now = 1_000_000u64;
        // arrival order (all enqueued "now"): fresh 995-996 s, stale 900-905 s kept by the collector
        // while the uplink was away, fresh 990-994 s (a push that landed late), a record that
        // straddles the threshold (935-945 s), stale 800-805 s.
        let seq = |r: std::ops::Range<u64>| c.append(&batch("p", r), now).unwrap().seq;
        let (fresh_b, stale_a, fresh_a, straddle, stale_b) = (seq(995..997), seq(900..906), seq(990..995), seq(935..946), seq(800..806));
        let th = threshold(now, 60);
        assert_eq!(th, 940_000);
        let live: Vec<u64> = live_records(&c, th, 10, |_| false).iter().map(|m| m.seq).collect();
        assert_eq!(live, vec![fresh_a, fresh_b], "live: acquisition order, whatever the arrival order");
        let backlog: Vec<u64> = backlog_records(&c, th, 10, |_| false).iter().map(|m| m.seq).collect();
        assert_eq!(backlog, vec![stale_b, stale_a, straddle], "stale and straddling records are backlog, oldest first");
        let skip_first: Vec<u64> = live_records(&c, th, 1, |m| m.seq == fresh_a).iter().map(|m| m.seq).collect();
        assert_eq!(skip_first, vec![fresh_b], "records in flight are skipped, the next oldest comes");
    }

    #[test]
    fn a_live_sample_older_than_one_sent_live_is_late() {
        let dec = |b: Vec<u8>| DecodedBatch::decode(&b).unwrap();
        let mut floor = LiveFloor::default();
        assert!(floor.claim(&[dec(batch("p", 10..20))]).is_none(), "the first unit has nothing late");
        assert!(floor.claim(&[dec(batch("q", 0..5))]).is_none(), "floors are per point");
        let late = floor.claim(&[dec(batch("p", 15..25))]).expect("late samples");
        assert!(late.is_late("inv01", "p", 15_000) && late.is_late("inv01", "p", 18_000));
        assert!(!late.is_late("inv01", "p", 19_000), "the same time again is a duplicate, not an inversion");
        assert!(!late.is_late("inv01", "p", 20_000) && !late.is_late("inv01", "q", 0));
        // the floor rose to the newest sample sent live
        assert!(floor.claim(&[dec(batch("p", 24..26))]).is_none());
        assert!(floor.claim(&[dec(batch("p", 23..24))]).is_some());
    }
}
