//! A full disk under the cache, on a real (tmpfs) file system of a few MiB: the cache drops its
//! oldest records to leave the free space it keeps, refuses a batch in words when there is
//! nothing left to drop, and takes batches again once space returns. Without the reserve, a
//! write that meets the full disk breaks that RocksDB instance, and the cache opens it again.
//! Needs root (mount).

use enos_batch::{BatchBuilder, Quality, Value};
use enos_cache::{Cache, CacheError, Sync};
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: u64 = 1 << 20;
const KEEP_FREE: u64 = 8 * MIB;

/// ~24 KB stored: values that do not compress.
fn batch(seq: u64) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    for i in 0..2000u64 {
        let x = (seq.wrapping_mul(2_654_435_761) ^ i.wrapping_mul(40_503)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        b.push("d", &format!("p{i}"), 1_000 * seq, Value::Int(x as i64), Quality::Good);
    }
    b.finish()
}

/// A tmpfs of `size` bytes, unmounted when dropped.
struct SmallDisk(PathBuf, #[allow(dead_code)] tempfile::TempDir);

impl SmallDisk {
    fn new(size: u64) -> SmallDisk {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("fs");
        std::fs::create_dir(&dir).unwrap();
        let ok = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}")]).arg("tmpfs").arg(&dir).status();
        assert!(ok.is_ok_and(|s| s.success()), "mounting a tmpfs needs root: this test fills a real file system");
        SmallDisk(dir, t)
    }
    fn free(&self) -> u64 {
        enos_runtime::sys::Disk::of(&self.0).unwrap().free_bytes
    }
    /// Another program's file, leaving `left` bytes free.
    fn fill_to(&self, name: &str, left: u64) {
        let n = self.free().saturating_sub(left);
        std::fs::write(self.0.join(name), vec![0x5a; n as usize]).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// One test at a time: RocksDB's background threads (flushes, compactions) are shared by every
/// database of the process, and the free space these tests measure depends on that work.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn open(dir: &Path) -> Cache {
    let c = Cache::open(&dir.join("cache"), 1 << 30, 0, Sync::Always).unwrap();
    c.keep_free(KEEP_FREE);
    c
}

fn seqs(c: &Cache) -> Vec<u64> {
    c.oldest(usize::MAX, |_| true).iter().map(|m| m.seq).collect()
}

#[test]
fn a_full_disk_costs_the_oldest_data_then_a_refusal_in_words_and_space_returning_is_used_at_once() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let _ = env_logger::builder().is_test(true).try_init();
    let disk = SmallDisk::new(40 * MIB);
    let c = open(&disk.0);
    for s in 1..=200 {
        c.append(&batch(s), s).unwrap();
    }
    assert_eq!(c.stats().records, 200);
    assert!(c.stats().disk_low.is_none());

    // Something else fills the disk to below what the cache keeps free: the oldest go first.
    disk.fill_to("other-program.log", KEEP_FREE - 2 * MIB);
    let m = c.append(&batch(201), 201).expect("room made by dropping the oldest");
    let st = c.stats();
    let kept = seqs(&c);
    assert!(st.dropped_points > 0 && kept.len() < 201, "{st:?}");
    assert_eq!(*kept.last().unwrap(), m.seq, "the newest is kept");
    assert!(kept.windows(2).all(|w| w[1] == w[0] + 1), "what is kept is the newest run, in order: {kept:?}");
    assert_eq!(c.read(m.seq).unwrap().unwrap(), batch(201));
    let low = st.disk_low.expect("reported");
    assert!(low.contains("the disk is nearly full") && low.contains("the oldest data is dropped"), "{low}");
    assert!(disk.free() >= KEEP_FREE / 2, "the cache left {} bytes free", disk.free());

    // Filled to the last byte the cache leaves: nothing of the cache's left to drop, refused in words.
    disk.fill_to("other-program-2.log", 0);
    let mut refused = None;
    for s in 202..400 {
        match c.append(&batch(s), s) {
            Ok(_) => continue,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let e = refused.expect("a full disk refuses");
    assert!(matches!(e, CacheError::DiskFull { .. }), "{e:?}");
    let said = e.to_string();
    assert!(said.contains("the disk is full") && said.contains("nothing written"), "{said}");
    let before = seqs(&c);

    // Space returns: the next batch is taken, with no reopen and nothing more lost.
    std::fs::remove_file(disk.0.join("other-program.log")).unwrap();
    std::fs::remove_file(disk.0.join("other-program-2.log")).unwrap();
    let m = c.append(&batch(500), 500).expect("taken again once there is room");
    assert_eq!(seqs(&c), before.iter().copied().chain([m.seq]).collect::<Vec<_>>());
    assert!(c.stats().disk_low.is_none(), "{:?}", c.stats().disk_low);
    drop(c);

    // And all of it is still there after a reopen.
    let c = open(&disk.0);
    assert_eq!(seqs(&c), before.into_iter().chain([m.seq]).collect::<Vec<_>>());
}

/// A write that meets a full disk (the reserve turned off) breaks that RocksDB instance for
/// good: every later write fails, and Debian's build (assertions on) aborted the process, at
/// the failed write's own log message or at the next write. The cache writes no text log and
/// opens its files again at the next write: while the disk is full a write passes or is refused
/// in words, and once space is back it goes on with every record it had.
#[test]
fn after_a_write_meets_a_full_disk_the_cache_opens_again_and_keeps_every_record() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let disk = SmallDisk::new(40 * MIB);
    let dir = disk.0.join("cache");
    // no reserve: the cache itself meets the full disk
    let cache = Cache::open(&dir, u64::MAX, 0, Sync::Always).unwrap();
    let mut stored: Vec<u64> = (1..=20).map(|n| cache.append(&batch(n), 1).unwrap().seq).collect();

    disk.fill_to("other-program.log", 0);
    // Write on while the disk is full. Some writes may pass (RocksDB preallocates its log file,
    // and opening again gives that space back); one fails, and after it every write passes or
    // is refused in words. Before, the process aborted at the first write after a failed one.
    let mut failures = Vec::new();
    for n in 21..221 {
        match cache.append(&batch(n), 1) {
            Ok(m) => stored.push(m.seq),
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(failures.first().is_some_and(|f| f.contains("No space left on device")), "a write met the full disk: {failures:?}");
    for f in &failures {
        assert!(f.contains("No space left on device") || f.contains("does not open again yet; nothing written"), "{f}");
    }
    assert_eq!(cache.stats().records, stored.len() as u64, "every record written is counted, none twice");
    let n = 221;

    std::fs::remove_file(disk.0.join("other-program.log")).unwrap();
    let after = cache.append(&batch(n), 1).expect("space is back: the cache opens again and writes");
    assert!(after.seq > *stored.last().unwrap(), "sequence numbers go on: {} after {:?}", after.seq, stored.last());
    stored.push(after.seq);
    let kept = cache.oldest(usize::MAX, |_| true);
    // A record whose write failed may be on disk after all (then it is delivered once, and the
    // collector's retry of the same batch is a counted duplicate): everything stored is there.
    for seq in &stored {
        assert!(kept.iter().any(|m| m.seq == *seq), "record {seq} survived the full disk");
        assert!(cache.read(*seq).unwrap().is_some(), "record {seq} reads");
    }
    drop(cache);
    let cache = Cache::open(&dir, u64::MAX, 0, Sync::Always).unwrap();
    for seq in &stored {
        assert!(cache.read(*seq).unwrap().is_some(), "record {seq} reads after a restart");
    }
}
