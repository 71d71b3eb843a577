//! A damaged cache on disk (real RocksDB files truncated, bit-flipped, deleted): the cache opens
//! again, the damaged files are kept aside, and every record that still reads is kept in order.

use enos_batch::{BatchBuilder, Quality, Value};
use enos_cache::{Cache, Sync, KEEP_DAMAGED};
use std::path::{Path, PathBuf};

const PER_FILE: u64 = 50;
const NOW: u64 = 1_796_595_330_000;

fn batch(seq: u64) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    for i in 0..10 {
        b.push("d", &format!("p{i}"), 1_000 * seq, Value::Int((seq * 10 + i) as i64), Quality::Good);
    }
    b.finish()
}

/// Three SST files of `PER_FILE` records each (seqs 1..=150), then `unflushed` records in the WAL only.
fn filled(dir: &Path, unflushed: u64) {
    let c = Cache::open(dir, 1 << 30, 0, Sync::Always).unwrap();
    for f in 0..3 {
        for i in 0..PER_FILE {
            c.append(&batch(f * PER_FILE + i + 1), 1).unwrap();
        }
        c.flush().unwrap();
    }
    for i in 0..unflushed {
        c.append(&batch(3 * PER_FILE + i + 1), 1).unwrap();
    }
}

fn files(dir: &Path, ends: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.to_string_lossy().ends_with(ends)).collect();
    v.sort();
    v
}

fn manifests(dir: &Path) -> Vec<PathBuf> {
    files(dir, "").into_iter().filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("MANIFEST-")).collect()
}

/// Opens the damaged cache as the uplink does and checks what it kept: records in order, each
/// exactly as written, numbering continuing above the old numbers.
fn recover(dir: &Path, want_at_least: &[u64]) -> enos_cache::Recovery {
    let _ = env_logger::builder().is_test(true).try_init();
    let (c, rec) = Cache::open_or_recover(dir, 1 << 30, 0, Sync::Always, NOW).expect("the damaged cache opens");
    let rec = rec.expect("the damage is reported");
    assert!(rec.moved_to.starts_with(dir) && rec.moved_to.is_dir(), "{rec}");
    assert!(rec.moved_to.file_name().unwrap().to_string_lossy().starts_with("damaged-20261206T"), "{}", rec.moved_to.display());
    let kept: Vec<u64> = c.oldest(usize::MAX, |_| true).iter().map(|m| m.seq).collect();
    assert!(kept.windows(2).all(|w| w[0] < w[1]), "kept in order: {kept:?}");
    for s in want_at_least {
        assert!(kept.contains(s), "record {s} still read and must be kept; kept {} records: {rec}", kept.len());
    }
    for s in &kept {
        assert_eq!(c.read(*s).unwrap().unwrap(), batch(*s), "record {s} kept exactly");
    }
    assert_eq!(rec.saved_records, kept.len() as u64, "{rec}");
    assert_eq!(rec.saved_points, kept.len() as u64 * 10, "{rec}");
    let next = c.append(&batch(999), 2).unwrap().seq;
    assert!(next > 150, "a sequence number is never reused: got {next}");
    let text = rec.to_string();
    assert!(text.contains("the cache was damaged") && text.contains("fresh cache"), "{text}");
    drop(c);
    // and it opens cleanly afterwards, with what was kept
    let (c, again) = Cache::open_or_recover(dir, 1 << 30, 0, Sync::Always, NOW + 1).unwrap();
    assert!(again.is_none(), "a recovered cache is healthy");
    assert_eq!(c.stats().records, kept.len() as u64 + 1);
    rec
}

fn range(r: std::ops::RangeInclusive<u64>) -> Vec<u64> {
    r.collect()
}

#[test]
fn a_truncated_sst_file_keeps_the_other_files_records() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 0);
    let sst = files(dir.path(), ".sst");
    assert_eq!(sst.len(), 3, "{sst:?}");
    let f = std::fs::OpenOptions::new().write(true).open(&sst[1]).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len / 2).unwrap();
    drop(f);
    assert!(Cache::open(dir.path(), 1 << 30, 0, Sync::Always).is_err(), "RocksDB refuses it (before: the uplink exited, forever)");
    let want: Vec<u64> = range(1..=PER_FILE).into_iter().chain(range(2 * PER_FILE + 1..=3 * PER_FILE)).collect();
    let rec = recover(dir.path(), &want);
    assert!(rec.unreadable, "{rec}");
}

#[test]
fn flipped_bytes_in_an_sst_file_keep_every_record_that_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 0);
    let sst = files(dir.path(), ".sst");
    let mut bytes = std::fs::read(&sst[1]).unwrap();
    // the data blocks come first in a table file
    for b in &mut bytes[100..140] {
        *b ^= 0x5a;
    }
    std::fs::write(&sst[1], &bytes).unwrap();
    assert!(Cache::open(dir.path(), 1 << 30, 0, Sync::Always).is_err(), "RocksDB refuses it (before: the uplink exited, forever)");
    let want: Vec<u64> = range(1..=PER_FILE).into_iter().chain(range(2 * PER_FILE + 1..=3 * PER_FILE)).collect();
    let rec = recover(dir.path(), &want);
    assert!(rec.unreadable, "{rec}");
}

#[test]
fn a_lost_manifest_is_repaired_and_every_flushed_record_kept() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 20);
    for m in manifests(dir.path()) {
        std::fs::remove_file(m).unwrap();
    }
    assert!(Cache::open(dir.path(), 1 << 30, 0, Sync::Always).is_err(), "RocksDB refuses it (before: the uplink exited, forever)");
    // Known loss: the 20 records only the WAL held (RocksDB's repair cannot place them without
    // the MANIFEST's column family ids; see recover.rs).
    recover(dir.path(), &range(1..=3 * PER_FILE));
}

#[test]
fn a_lost_current_file_is_repaired_and_every_record_kept() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 20);
    std::fs::write(dir.path().join("CURRENT"), b"").unwrap();
    assert!(Cache::open(dir.path(), 1 << 30, 0, Sync::Always).is_err(), "RocksDB refuses it (before: the uplink exited, forever)");
    recover(dir.path(), &range(1..=3 * PER_FILE + 20));
}

#[test]
fn a_lost_wal_loses_only_what_was_in_it() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 20);
    for l in files(dir.path(), ".log").into_iter().filter(|p| !p.to_string_lossy().contains("LOG")) {
        std::fs::remove_file(l).unwrap();
    }
    // RocksDB cannot tell: the records only the WAL held are gone, the rest opens as it was
    let (c, rec) = Cache::open_or_recover(dir.path(), 1 << 30, 0, Sync::Always, NOW).unwrap();
    assert!(rec.is_none());
    let kept: Vec<u64> = c.oldest(usize::MAX, |_| true).iter().map(|m| m.seq).collect();
    assert_eq!(kept, range(1..=3 * PER_FILE));
}

#[test]
fn damaged_copies_are_bounded_and_an_interrupted_move_is_finished() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..(KEEP_DAMAGED as u64 + 2) {
        filled(dir.path(), 0);
        std::fs::write(dir.path().join("CURRENT"), b"").unwrap();
        let (_, rec) = Cache::open_or_recover(dir.path(), 1 << 30, 0, Sync::Always, NOW + round * 1000).unwrap();
        assert!(rec.is_some());
    }
    let damaged: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("damaged-"))
        .collect();
    assert_eq!(damaged.len(), KEEP_DAMAGED, "{damaged:?}");
    assert!(!damaged.iter().any(|n| n.contains("221530.000Z")), "the oldest copies went: {damaged:?}");

    // a crash in the middle of a move: half the files in the partial directory
    let other = tempfile::tempdir().unwrap();
    filled(other.path(), 0);
    std::fs::write(other.path().join("CURRENT"), b"").unwrap();
    let partial = other.path().join(".damaged-20261206T000000.000Z.partial");
    std::fs::create_dir(&partial).unwrap();
    for f in files(other.path(), ".sst").into_iter().take(2) {
        std::fs::rename(&f, partial.join(f.file_name().unwrap())).unwrap();
    }
    let (_, rec) = Cache::open_or_recover(other.path(), 1 << 30, 0, Sync::Always, NOW).unwrap();
    assert!(rec.is_none(), "the rest of the damaged files moved too, so a fresh cache opened");
    let done = other.path().join("damaged-20261206T000000.000Z");
    assert_eq!(files(&done, ".sst").len(), 3, "the damaged copy is whole");
    assert!(!partial.exists());
}
