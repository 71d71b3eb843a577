//! A full disk under the cache, on a real (tmpfs) file system of a few MiB: the cache drops its
//! oldest records to leave the free space it keeps, refuses a batch in words when there is
//! nothing left to drop, and takes batches again once space returns; the process never meets
//! RocksDB's failed write (which Debian's build turns into an abort). Needs root (mount).

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
