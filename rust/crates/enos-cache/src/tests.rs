use super::*;
use enos_batch::{BatchBuilder, Quality, Value};

fn batch(device: &str, n: usize, t0: u64) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    for i in 0..n {
        b.push(device, &format!("p{}", i % 10), t0 + (i / 10) as u64 * 1000, Value::Float(i as f64 / 10.0), Quality::Good);
    }
    b.finish()
}

#[test]
fn records_survive_reopen_in_order_and_removed_ones_stay_removed() {
    let dir = tempfile::tempdir().unwrap();
    let seqs: Vec<u64> = {
        let c = Cache::open(dir.path(), 1 << 30, 0, Sync::Always).unwrap();
        let s = (0..5).map(|i| c.append(&batch("d", 20, 1000 * i), 10 + i).unwrap().seq).collect();
        c.remove(2).unwrap();
        s
    };
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    let c = Cache::open(dir.path(), 1 << 30, 0, Sync::Always).unwrap();
    let left: Vec<u64> = c.oldest(10, |_| true).iter().map(|m| m.seq).collect();
    assert_eq!(left, vec![1, 3, 4, 5]);
    assert_eq!(c.stats().points, 80);
    let b = c.read(3).unwrap().unwrap();
    assert_eq!(b, batch("d", 20, 2000));
    // sequence numbers keep growing after a restart, so order is never confused
    assert_eq!(c.append(&batch("d", 1, 0), 99).unwrap().seq, 6);
    // acquisition order: the late record 6 (samples from 0 ms, as record 1) comes second
    let acq: Vec<u64> = c.by_acquisition(0..u64::MAX, 10, |_| true).iter().map(|m| m.seq).collect();
    assert_eq!(acq, vec![1, 6, 3, 4, 5]);
}

#[test]
fn acquisition_order_ignores_arrival_order_and_bounds_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cache::open(dir.path(), 1 << 30, 0, Sync::Never).unwrap();
    // arrivals: 30 s, 10 s, 20 s, 10 s (the last one a second batch of the same time)
    for (t0, now) in [(30_000, 1), (10_000, 2), (20_000, 3), (10_000, 4)] {
        c.append(&batch("d", 10, t0), now).unwrap();
    }
    let seqs = |r: std::ops::Range<u64>, n| c.by_acquisition(r, n, |_| true).iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!(seqs(0..u64::MAX, 10), vec![2, 4, 3, 1]);
    assert_eq!(seqs(0..20_000, 10), vec![2, 4], "the range is on the oldest sample, end excluded");
    assert_eq!(seqs(20_000..u64::MAX, 1), vec![3]);
    assert_eq!(c.by_acquisition(0..u64::MAX, 10, |m| m.seq != 4).len(), 3);
    c.remove(2).unwrap();
    c.dead_letter(3).unwrap();
    assert_eq!(seqs(0..u64::MAX, 10), vec![4, 1], "removed records leave the acquisition index too");
    assert_eq!(c.meta(4).map(|m| m.oldest_ts), Some(10_000));
    assert_eq!(c.meta(2), None);
}

#[test]
fn a_full_cache_drops_the_oldest_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch("d", 100, 0).len() as u64 + HEADER_LEN as u64;
    let c = Cache::open(dir.path(), one * 3 + one / 2, 0, Sync::Never).unwrap();
    for i in 0..5 {
        c.append(&batch("d", 100, i * 100_000), i).unwrap();
    }
    let s = c.stats();
    assert_eq!(s.records, 3);
    assert_eq!(s.dropped_points, 200);
    assert_eq!(c.oldest(1, |_| true)[0].seq, 3);
    drop(c);
    let c = Cache::open(dir.path(), one * 3 + one / 2, 0, Sync::Never).unwrap();
    assert_eq!(c.stats().dropped_points, 200, "the drop counter is persistent");
}

#[test]
fn data_past_the_age_bound_goes_first() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cache::open(dir.path(), 1 << 30, 60_000, Sync::Never).unwrap();
    c.append(&batch("d", 10, 1_000), 1_000).unwrap();
    c.append(&batch("d", 10, 100_000), 100_000).unwrap();
    c.expire(120_000).unwrap();
    assert_eq!(c.oldest(10, |_| true).iter().map(|m| m.seq).collect::<Vec<_>>(), vec![2]);
    assert_eq!(c.stats().dropped_points, 10);
}

/// Bounds changed while open (the cloud's `setParameter`): lower ones drop the oldest data at the
/// next `expire`, as a start with them would.
#[test]
fn bounds_changed_while_open_hold_from_the_next_expire() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch("d", 100, 0).len() as u64 + HEADER_LEN as u64;
    let c = Cache::open(dir.path(), 1 << 30, 0, Sync::Never).unwrap();
    for i in 0..4 {
        c.append(&batch("d", 100, i * 100_000), i * 100_000).unwrap();
    }
    c.set_bounds(one * 2 + one / 2, 0);
    assert_eq!((c.max_bytes(), c.max_age_ms()), (one * 2 + one / 2, 0));
    c.expire(400_000).unwrap();
    assert_eq!(c.oldest(10, |_| true).iter().map(|m| m.seq).collect::<Vec<_>>(), vec![3, 4]);
    c.set_bounds(1 << 30, 150_000);
    c.expire(400_000).unwrap();
    assert_eq!(c.oldest(10, |_| true).iter().map(|m| m.seq).collect::<Vec<_>>(), vec![4]);
    assert_eq!(c.stats().dropped_points, 300);
}

/// Stamped while the gateway's clock was not set (1970 here): the age bound does not apply, not
/// at once and not after a reopen; a record with a header of the first version reads as flags 0.
#[test]
fn data_stamped_with_an_unset_clock_is_never_too_old() {
    let dir = tempfile::tempdir().unwrap();
    let unset = {
        let mut b = BatchBuilder::new();
        b.push_flagged("d", "p", 5_000, Value::Int(1), Quality::Doubtful, enos_batch::Flags::CLOCK_UNSET);
        b.finish()
    };
    {
        let c = Cache::open(dir.path(), 1 << 30, 60_000, Sync::Never).unwrap();
        assert!(c.append(&unset, 5_000).unwrap().clock_unset);
        c.append(&batch("d", 10, 1_000), 1_000).unwrap();
        c.expire(1_796_600_000_000).unwrap(); // the clock jumped to 2026
        assert_eq!(c.oldest(10, |_| true).iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1]);
        // a record as a release of header v1 wrote it
        let mut v = vec![HEADER_V1_LEN as u8, 1];
        v.extend_from_slice(&1u64.to_le_bytes());
        v.extend_from_slice(&10u32.to_le_bytes());
        v.extend_from_slice(&0u64.to_le_bytes());
        v.extend_from_slice(&9000u64.to_le_bytes());
        v.extend_from_slice(&batch("d", 10, 0));
        let db = c.db().unwrap();
        let cf = db.cf_handle(CF_OUTBOX).unwrap();
        db.put_cf(cf, 10u64.to_be_bytes(), v).unwrap();
    }
    let c = Cache::open(dir.path(), 1 << 30, 60_000, Sync::Never).unwrap();
    let metas = c.oldest(10, |_| true);
    assert_eq!(metas.iter().map(|m| (m.seq, m.clock_unset)).collect::<Vec<_>>(), vec![(1, true), (10, false)]);
    assert_eq!(c.read(10).unwrap().unwrap(), batch("d", 10, 0));
    c.expire(1_796_600_000_000).unwrap();
    assert_eq!(c.oldest(10, |_| true).iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1]);
}

#[test]
fn bad_batches_are_refused_and_nothing_stored_changes() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cache::open(dir.path(), 1 << 30, 0, Sync::Never).unwrap();
    c.append(&batch("d", 10, 0), 1).unwrap();
    let mut bad = batch("d", 10, 0);
    bad.truncate(bad.len() / 2);
    assert!(matches!(c.append(&bad, 2), Err(CacheError::BadBatch(_))));
    assert!(matches!(c.append(b"hello", 2), Err(CacheError::BadBatch(_))));
    assert!(matches!(c.append(&BatchBuilder::new().finish(), 2), Err(CacheError::EmptyBatch)));
    assert_eq!(c.stats().records, 1);
}

#[test]
fn a_newer_compatible_schema_is_read_and_an_incompatible_one_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = Cache::open(dir.path(), 1 << 30, 0, Sync::Always).unwrap();
        c.append(&batch("d", 10, 0), 1).unwrap();
        // What a future release (schema 3, still readable by schema 1 readers) leaves behind.
        c.db().unwrap().put(KEY_SCHEMA, 3u64.to_le_bytes()).unwrap();
        // ...with a record whose header grew by 4 bytes the old reader must skip.
        let mut v = vec![HEADER_V1_LEN as u8 + 4, 2];
        v.extend_from_slice(&7u64.to_le_bytes());
        v.extend_from_slice(&10u32.to_le_bytes());
        v.extend_from_slice(&0u64.to_le_bytes());
        v.extend_from_slice(&9000u64.to_le_bytes());
        v.extend_from_slice(&[0xAA; 4]);
        v.extend_from_slice(&batch("d", 10, 0));
        let db = c.db().unwrap();
        let cf = db.cf_handle(CF_OUTBOX).unwrap();
        db.put_cf(cf, 2u64.to_be_bytes(), v).unwrap();
    }
    {
        let c = Cache::open(dir.path(), 1 << 30, 0, Sync::Always).expect("schema 3 with compat 1 opens");
        assert_eq!(c.stats().records, 2);
        assert_eq!(c.read(2).unwrap().unwrap(), batch("d", 10, 0), "extended header skipped");
        c.db().unwrap().put(KEY_COMPAT, 3u64.to_le_bytes()).unwrap();
    }
    let e = Cache::open(dir.path(), 1 << 30, 0, Sync::Always).err().expect("compat 3 is refused");
    assert!(e.to_string().contains("written by schema 3 (needs a reader of schema 3); this release reads schema 2"), "{e}");
    // Nothing was deleted: restoring compat makes every record readable again.
    let db = DB::open_cf(&Options::default(), dir.path(), [CF_OUTBOX, CF_DEAD]).unwrap();
    db.put(KEY_COMPAT, 1u64.to_le_bytes()).unwrap();
    drop(db);
    assert_eq!(Cache::open(dir.path(), 1 << 30, 0, Sync::Always).unwrap().stats().records, 2);
}

/// What schema 1 left on disk: records, no `next_seq`.
fn downgrade_to_schema_1(c: &Cache) {
    c.db().unwrap().put(KEY_SCHEMA, 1u64.to_le_bytes()).unwrap();
    c.db().unwrap().put(KEY_COMPAT, 1u64.to_le_bytes()).unwrap();
    c.db().unwrap().delete(KEY_NEXT_SEQ).unwrap();
}

#[test]
fn migration_1_to_2_remembers_the_next_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = Cache::open(dir.path(), 1 << 30, 0, Sync::Always).unwrap();
        for i in 0..5 {
            c.append(&batch("d", 10, i * 1000), i).unwrap();
        }
        c.remove(1).unwrap();
        c.remove(2).unwrap();
        c.dead_letter(3).unwrap();
        downgrade_to_schema_1(&c);
    }
    {
        let c = Cache::open(dir.path(), 1 << 30, 0, Sync::Always).unwrap();
        assert_eq!(read_u64(&c, KEY_SCHEMA), Some(2), "migrated");
        assert_eq!(read_u64(&c, KEY_COMPAT), Some(1), "schema 1 releases still read it (rollback)");
        assert_eq!(read_u64(&c, KEY_NEXT_SEQ), Some(6), "from the highest record on disk");
        let left: Vec<u64> = c.oldest(10, |_| true).iter().map(|m| m.seq).collect();
        assert_eq!(left, vec![4, 5], "records untouched by the migration");
        assert_eq!(c.read(4).unwrap().unwrap(), batch("d", 10, 3000));
        c.remove(4).unwrap();
        c.remove(5).unwrap();
    }
    // The outbox is empty now; schema 1 would have started again at 1.
    let c = Cache::open(dir.path(), 1 << 30, 0, Sync::Always).unwrap();
    assert_eq!(c.stats().records, 0);
    assert_eq!(c.append(&batch("d", 1, 0), 9).unwrap().seq, 6);
}

#[test]
fn sequence_numbers_are_never_reused_after_the_outbox_empties() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for _restart in 0..3 {
        let c = Cache::open(dir.path(), 1 << 30, 0, Sync::Always).unwrap();
        for i in 0..3 {
            let seq = c.append(&batch("d", 5, i * 1000), i).unwrap().seq;
            seen.push(seq);
            c.remove(seq).unwrap();
        }
    }
    assert_eq!(seen, (1..=9).collect::<Vec<u64>>());
}

#[test]
fn a_schema_1_database_without_records_migrates_and_starts_at_1() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = Cache::open(dir.path(), 1 << 30, 0, Sync::Always).unwrap();
        downgrade_to_schema_1(&c);
    }
    let c = Cache::open(dir.path(), 1 << 30, 0, Sync::Always).unwrap();
    assert_eq!(read_u64(&c, KEY_SCHEMA), Some(2));
    assert_eq!(c.append(&batch("d", 1, 0), 1).unwrap().seq, 1);
}

fn read_u64(c: &Cache, k: &[u8]) -> Option<u64> {
    c.db().unwrap().get(k).unwrap().map(|v| u64::from_le_bytes(v.as_slice().try_into().unwrap()))
}
