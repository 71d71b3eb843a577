//! The durable outbox of telemetry: RocksDB on the data partition.
//!
//! Each accepted batch becomes one record keyed by a monotonically increasing sequence number,
//! so arrival order is key order; an in-memory index also orders records by acquisition time
//! (their oldest sample), which is the order the sender follows. The batch bytes are stored as the collector encoded them
//! (see `enos_batch::batch`); a small versioned header in front carries what the sender and the
//! bounds need without decoding (enqueue time, point count, time range).
//!
//! Crossing A/B updates: the database carries a schema version and the oldest schema a reader
//! must understand (`compat`). A release opens any database whose `compat` it understands, so a
//! rollback keeps reading what a newer release wrote; migrations run forward only, in order.
//!
//! Schema history:
//! - 1: records in `outbox` keyed by big-endian sequence number, header v1 (30 bytes).
//! - 2: the next sequence number is persisted (`next_seq`, written with every record), so a
//!   sequence number is never handed out twice, not even after the outbox emptied and the
//!   service restarted: logs, dead letters and the fault-injection audit ("every sequence number
//!   `PushTelemetry` returned was delivered") can name a record unambiguously. Schema 1 readers
//!   ignore the key, so compat stays 1.
//!
//! Headers grow at their end only: the first byte is the header's length, every reader takes the
//! fields it knows and finds the batch after the length. Header v2 (31 bytes) adds a flags byte:
//! bit 0, some sample was stamped while the gateway's clock was not set (never dropped for its
//! age). Readers of v1 skip it; records without it count as flags 0.

use enos_batch::batch::DecodedBatch;
use rocksdb::{ColumnFamilyDescriptor, IteratorMode, Options, WriteBatch, WriteOptions, DB};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock, RwLockReadGuard};

/// Schema this release writes.
pub const SCHEMA_VERSION: u32 = 2;
/// Oldest schema a reader must understand to read what this release writes.
pub const SCHEMA_COMPAT: u32 = 1;

const CF_OUTBOX: &str = "outbox";
const CF_DEAD: &str = "dead_letter";
const KEY_SCHEMA: &[u8] = b"schema_version";
const KEY_COMPAT: &[u8] = b"schema_compat";
const KEY_DROPPED: &[u8] = b"dropped_points";
const KEY_NEXT_SEQ: &[u8] = b"next_seq";
const HEADER_LEN: u8 = 31;
const HEADER_VERSION: u8 = 2;
/// The shortest header a reader accepts (v1).
const HEADER_V1_LEN: usize = 30;
/// Header flags (the byte at offset 30).
const HEADER_CLOCK_UNSET: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache {dir}: {source}")]
    Db { dir: PathBuf, source: rocksdb::Error },
    #[error("cache {dir}: written by schema {found} (needs a reader of schema {compat}); this release reads schema {ours}")]
    TooNew { dir: PathBuf, found: u32, compat: u32, ours: u32 },
    #[error("rejected batch: {0}")]
    BadBatch(#[from] enos_batch::BatchError),
    #[error("rejected batch: it holds no samples")]
    EmptyBatch,
    #[error("cache record {seq} is corrupt: {reason}")]
    Corrupt { seq: u64, reason: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error(
        "cache {dir}: the disk is full ({free} bytes free; the cache writes nothing below {floor}, and has no older data left to drop to get there); nothing written"
    )]
    DiskFull { dir: PathBuf, free: u64, floor: u64 },
    #[error("cache {dir}: closed after a failed write ({why}); it opens again at the next write")]
    Closed { dir: PathBuf, why: String },
    #[error("cache {dir}: a write failed ({why}) and the cache does not open again yet: {source}; nothing written")]
    Reopen { dir: PathBuf, why: String, source: rocksdb::Error },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    Always,
    Never,
}

/// What the index keeps of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta {
    pub seq: u64,
    pub bytes: u64,
    pub points: u64,
    pub enqueued_ms: u64,
    pub oldest_ts: u64,
    pub newest_ts: u64,
    /// Some sample was stamped while the gateway's clock was not set: its times are guesses, so
    /// the age bound does not apply.
    pub clock_unset: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheStats {
    pub records: u64,
    pub points: u64,
    pub bytes: u64,
    pub oldest_ts: Option<u64>,
    pub dropped_points: u64,
    pub dead_letter_records: u64,
    /// Set while the cache's file system has less free space than `keep_free` asks: in words.
    pub disk_low: Option<String>,
}

struct State {
    next_seq: u64,
    /// By sequence number: arrival order (bounds drop the oldest arrivals first).
    index: BTreeMap<u64, RecordMeta>,
    /// (oldest sample's acquisition time, sequence number): acquisition order, which is what the
    /// sender follows. Records can arrive out of it (several pushes in flight, a collector's
    /// buffered batches arriving after newer ones).
    by_acq: BTreeSet<(u64, u64)>,
    bytes: u64,
    points: u64,
    dropped_points: u64,
    dead_records: u64,
}

impl State {
    fn insert(&mut self, m: RecordMeta) {
        self.bytes += m.bytes;
        self.points += m.points;
        self.by_acq.insert((m.oldest_ts, m.seq));
        self.index.insert(m.seq, m);
    }

    fn forget(&mut self, seq: u64) -> Option<RecordMeta> {
        let m = self.index.remove(&seq)?;
        self.bytes -= m.bytes;
        self.points -= m.points;
        self.by_acq.remove(&(m.oldest_ts, seq));
        Some(m)
    }
}

pub struct Cache {
    /// `None` only between closing after a failed write and opening again (`ensure_open`).
    db: RwLock<Option<DB>>,
    /// Why the last write failed, until the database is open again. RocksDB takes a failed
    /// write as fatal for that instance (every later write fails; Debian's 7.8 even aborts the
    /// process on the next one), so the next write closes it and opens the files again: what
    /// was written stays, the write-ahead log is replayed, and the cache goes on.
    broken: Mutex<Option<String>>,
    dir: PathBuf,
    sync: Sync,
    /// The bounds, changeable while the cache is open (`set_bounds`: the cloud's `setParameter`).
    max_bytes: std::sync::atomic::AtomicU64,
    max_age_ms: std::sync::atomic::AtomicU64,
    state: Mutex<State>,
    /// Set when this cache replaced a damaged one at open (`recover.rs`).
    recovery: std::sync::OnceLock<Recovery>,
    /// Free space to leave on the file system (`keep_free`); 0: none.
    keep_free: std::sync::atomic::AtomicU64,
    /// Why the disk is low, while it is (`CacheStats::disk_low`).
    disk_low: Mutex<Option<String>>,
}

/// A forward migration from `from` to `from + 1`.
type Migration = fn(&DB) -> Result<(), rocksdb::Error>;
/// Migrations by the version they start from. Schema 1 is the first released schema.
const MIGRATIONS: &[(u32, Migration)] = &[(1, persist_next_seq)];

/// 1 → 2: remembers the next sequence number, from the highest one still on disk.
fn persist_next_seq(db: &DB) -> Result<(), rocksdb::Error> {
    let mut next = 1u64;
    for cf in [CF_OUTBOX, CF_DEAD] {
        let cf = db.cf_handle(cf).expect("cache column family");
        if let Some(last) = db.iterator_cf(cf, IteratorMode::End).next() {
            let (k, _) = last?;
            next = next.max(u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8])) + 1);
        }
    }
    db.put(KEY_NEXT_SEQ, next.to_le_bytes())
}

/// Opens (or creates) the database files with the cache's options.
fn open_db(dir: &Path) -> Result<DB, rocksdb::Error> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_keep_log_file_num(3);
    opts.set_max_total_wal_size(64 << 20);
    // RocksDB's own text log (the LOG file beside the data): only fatal messages. On a full disk
    // its writer fails like any other, and Debian's build then aborts the process at the next
    // message, which RocksDB writes precisely while it handles the failed write. Our journal
    // already says what went wrong (`write_failed`), and the cache opens again.
    opts.set_log_level(rocksdb::LogLevel::Fatal);
    let mut outbox = Options::default();
    // Records are already compact; zstd on top still takes the repeated names.
    outbox.set_compression_type(rocksdb::DBCompressionType::Zstd);
    // A record lives ~100 ms while the cloud is reachable, so its put and delete meet in the
    // memtable and never reach an SST file; 4 MiB holds ~10 s of 100k points/s and keeps
    // the uplink's RSS small (16 MiB cost ~12 MiB RSS under load, `scripts/bench`).
    outbox.set_write_buffer_size(4 << 20);
    let cfs = vec![ColumnFamilyDescriptor::new(CF_OUTBOX, outbox), ColumnFamilyDescriptor::new(CF_DEAD, Options::default())];
    DB::open_cf_descriptors(&opts, dir, cfs)
}

/// The index of what `db` holds, replacing what `st` had (the counters only grow).
fn load_index(db: &DB, st: &mut State) -> Result<(), rocksdb::Error> {
    st.index.clear();
    st.by_acq.clear();
    st.bytes = 0;
    st.points = 0;
    let read_u = |k: &[u8]| -> Result<Option<u64>, rocksdb::Error> {
        Ok(db.get(k)?.and_then(|v| v.as_slice().try_into().ok().map(u64::from_le_bytes)))
    };
    st.next_seq = st.next_seq.max(read_u(KEY_NEXT_SEQ)?.unwrap_or(1));
    st.dropped_points = st.dropped_points.max(read_u(KEY_DROPPED)?.unwrap_or(0));
    let cf = db.cf_handle(CF_OUTBOX).expect("outbox cf");
    for item in db.iterator_cf(cf, IteratorMode::Start) {
        let (k, v) = item?;
        let seq = u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8]));
        match parse_header(seq, &v) {
            Ok(m) => st.insert(m),
            Err(e) => log::error!("{e}; the record stays on disk untouched"),
        }
        st.next_seq = st.next_seq.max(seq + 1);
    }
    let dead = db.cf_handle(CF_DEAD).expect("dead cf");
    st.dead_records = db.iterator_cf(dead, IteratorMode::Start).count() as u64;
    if let Some(last) = db.iterator_cf(dead, IteratorMode::End).next() {
        let (k, _) = last?;
        st.next_seq = st.next_seq.max(u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8])) + 1);
    }
    Ok(())
}

/// The open database, read-locked (`Cache::db`).
struct Open<'a>(RwLockReadGuard<'a, Option<DB>>);

impl std::ops::Deref for Open<'_> {
    type Target = DB;
    fn deref(&self) -> &DB {
        self.0.as_ref().expect("checked open")
    }
}

impl Cache {
    pub fn open(dir: &Path, max_bytes: u64, max_age_ms: u64, sync: Sync) -> Result<Cache, CacheError> {
        let db_err = |source| CacheError::Db { dir: dir.to_owned(), source };
        let db = open_db(dir).map_err(db_err)?;
        let read_u = |k: &[u8]| -> Result<Option<u64>, CacheError> {
            Ok(db.get(k).map_err(db_err)?.and_then(|v| v.as_slice().try_into().ok().map(u64::from_le_bytes)))
        };
        let found = read_u(KEY_SCHEMA)?.map(|v| v as u32);
        let compat = read_u(KEY_COMPAT)?.map(|v| v as u32).unwrap_or(found.unwrap_or(SCHEMA_VERSION));
        match found {
            None => {
                let mut wb = WriteBatch::default();
                wb.put(KEY_SCHEMA, (SCHEMA_VERSION as u64).to_le_bytes());
                wb.put(KEY_COMPAT, (SCHEMA_COMPAT as u64).to_le_bytes());
                db.write(wb).map_err(db_err)?;
            }
            Some(v) if v > SCHEMA_VERSION && compat > SCHEMA_VERSION => {
                return Err(CacheError::TooNew { dir: dir.to_owned(), found: v, compat, ours: SCHEMA_VERSION })
            }
            Some(v) if v > SCHEMA_VERSION => {
                log::info!("cache schema {v} is newer than ours ({SCHEMA_VERSION}) but readable (compat {compat}); leaving it as is");
            }
            Some(mut v) => {
                while v < SCHEMA_VERSION {
                    let m = MIGRATIONS.iter().find(|(from, _)| *from == v).map(|(_, m)| *m);
                    let m = m.ok_or(CacheError::TooNew { dir: dir.to_owned(), found: v, compat, ours: SCHEMA_VERSION })?;
                    log::info!("migrating cache schema {v} -> {}", v + 1);
                    m(&db).map_err(db_err)?;
                    v += 1;
                    db.put(KEY_SCHEMA, (v as u64).to_le_bytes()).map_err(db_err)?;
                }
            }
        }
        let dropped_points = read_u(KEY_DROPPED)?.unwrap_or(0);
        let next_seq = read_u(KEY_NEXT_SEQ)?.unwrap_or(1).max(1);
        let cache = Cache {
            dir: dir.to_owned(),
            sync,
            max_bytes: max_bytes.into(),
            max_age_ms: max_age_ms.into(),
            state: Mutex::new(State {
                next_seq,
                index: BTreeMap::new(),
                by_acq: BTreeSet::new(),
                bytes: 0,
                points: 0,
                dropped_points,
                dead_records: 0,
            }),
            recovery: std::sync::OnceLock::new(),
            keep_free: std::sync::atomic::AtomicU64::new(0),
            disk_low: Mutex::new(None),
            db: RwLock::new(None),
            broken: Mutex::new(None),
        };
        load_index(&db, &mut cache.state.lock().expect("cache state")).map_err(db_err)?;
        *cache.db.write().expect("cache db") = Some(db);
        Ok(cache)
    }

    fn db_err(&self, source: rocksdb::Error) -> CacheError {
        CacheError::Db { dir: self.dir.clone(), source }
    }

    /// The open database, for reading (a database closed after a failed write still reads).
    fn db(&self) -> Result<Open<'_>, CacheError> {
        let g = self.db.read().expect("cache db");
        if g.is_none() {
            let why = self.broken.lock().expect("cache broken").clone().unwrap_or_default();
            return Err(CacheError::Closed { dir: self.dir.clone(), why });
        }
        Ok(Open(g))
    }

    /// A write failed: remembered, so that the next write first opens the database again.
    fn write_failed(&self, source: rocksdb::Error) -> CacheError {
        let mut broken = self.broken.lock().expect("cache broken");
        if broken.is_none() {
            log::error!("cache {}: a write failed ({source}); the cache opens its files again at the next write", self.dir.display());
            *broken = Some(source.to_string());
        }
        self.db_err(source)
    }

    /// Before any write (the caller holds the state): after a failed write, closes the database
    /// and opens it again, and reads the index back from what is on disk (a record whose write
    /// failed may be there after all: then it is sent, and the collector's retry of the same
    /// batch is a counted duplicate, never a loss).
    fn ensure_open(&self, st: &mut State) -> Result<(), CacheError> {
        let Some(why) = self.broken.lock().expect("cache broken").clone() else { return Ok(()) };
        let mut g = self.db.write().expect("cache db");
        // Closing first: RocksDB refuses a second instance on the same files.
        drop(g.take());
        let db = open_db(&self.dir).map_err(|source| CacheError::Reopen { dir: self.dir.clone(), why: why.clone(), source })?;
        load_index(&db, st).map_err(|source| CacheError::Reopen { dir: self.dir.clone(), why: why.clone(), source })?;
        *g = Some(db);
        *self.broken.lock().expect("cache broken") = None;
        log::warn!(
            "cache {}: open again after a failed write ({why}); {} records, {} points waiting",
            self.dir.display(),
            st.index.len(),
            st.points
        );
        Ok(())
    }

    fn write_opts(&self) -> WriteOptions {
        let mut w = WriteOptions::default();
        w.set_sync(self.sync == Sync::Always);
        w
    }

    /// Validates and stores a batch; when this returns Ok the batch is on disk (synced per policy).
    pub fn append(&self, batch: &[u8], now_ms: u64) -> Result<RecordMeta, CacheError> {
        let decoded = DecodedBatch::decode(batch)?;
        let s = decoded.summary();
        if s.samples == 0 {
            return Err(CacheError::EmptyBatch);
        }
        let mut value = Vec::with_capacity(HEADER_LEN as usize + batch.len());
        value.push(HEADER_LEN);
        value.push(HEADER_VERSION);
        value.extend_from_slice(&now_ms.to_le_bytes());
        value.extend_from_slice(&(s.samples as u32).to_le_bytes());
        value.extend_from_slice(&s.oldest_ts.to_le_bytes());
        value.extend_from_slice(&s.newest_ts.to_le_bytes());
        value.push(if s.clock_unset { HEADER_CLOCK_UNSET } else { 0 });
        debug_assert_eq!(value.len(), HEADER_LEN as usize);
        value.extend_from_slice(batch);
        let mut st = self.state.lock().expect("cache state");
        self.ensure_open(&mut st)?;
        let db = self.db()?;
        let cf = db.cf_handle(CF_OUTBOX).expect("outbox cf");
        self.make_room(&db, &mut st, value.len() as u64)?;
        let seq = st.next_seq;
        let mut wb = WriteBatch::default();
        wb.put_cf(cf, seq.to_be_bytes(), &value);
        wb.put(KEY_NEXT_SEQ, (seq + 1).to_le_bytes());
        db.write_opt(wb, &self.write_opts()).map_err(|e| self.write_failed(e))?;
        st.next_seq += 1;
        let meta = RecordMeta {
            seq,
            bytes: value.len() as u64,
            points: s.samples,
            enqueued_ms: now_ms,
            oldest_ts: s.oldest_ts,
            newest_ts: s.newest_ts,
            clock_unset: s.clock_unset,
        };
        st.insert(meta);
        self.enforce_bounds(&db, &mut st, now_ms)?;
        Ok(meta)
    }

    /// Drops the oldest records while over the byte bound or past the age bound.
    fn enforce_bounds(&self, db: &DB, st: &mut State, now_ms: u64) -> Result<(), CacheError> {
        let mut victims = Vec::new();
        let mut bytes = st.bytes;
        let (max_bytes, max_age_ms) = (self.max_bytes(), self.max_age_ms());
        for m in st.index.values() {
            let too_old = max_age_ms > 0 && !m.clock_unset && m.newest_ts + max_age_ms < now_ms;
            if bytes <= max_bytes && !too_old {
                if m.clock_unset {
                    continue; // exempt from the age bound; later arrivals may still be past it
                }
                break;
            }
            if st.index.len() - victims.len() <= 1 && !too_old {
                break; // never drop the record just written for space
            }
            bytes -= m.bytes;
            victims.push(*m);
        }
        self.drop_records(db, st, &victims, "cache full or data too old")
    }

    /// Deletes `victims` (the oldest records) and counts their points as dropped.
    fn drop_records(&self, db: &DB, st: &mut State, victims: &[RecordMeta], why: &str) -> Result<(), CacheError> {
        if victims.is_empty() {
            return Ok(());
        }
        let cf = db.cf_handle(CF_OUTBOX).expect("outbox cf");
        let mut wb = WriteBatch::default();
        let mut pts = 0;
        for v in victims {
            wb.delete_cf(cf, v.seq.to_be_bytes());
            pts += v.points;
        }
        let dropped = st.dropped_points + pts;
        wb.put(KEY_DROPPED, dropped.to_le_bytes());
        db.write_opt(wb, &self.write_opts()).map_err(|e| self.write_failed(e))?;
        for v in victims {
            st.forget(v.seq);
        }
        st.dropped_points = dropped;
        log::warn!("{why}: dropped {} oldest records ({pts} points, {} total dropped)", victims.len(), dropped);
        Ok(())
    }

    /// Leaves `bytes` free on the cache's file system: below that, the oldest records go first
    /// (and their space is compacted back to the file system); below half of it, with nothing
    /// left to drop, a batch is refused (`DiskFull`) rather than written. RocksDB takes a failed
    /// write as fatal for its instance: the cache survives it by opening the files again
    /// (`ensure_open`), but it is better never to be the one that meets the full disk. 0 turns
    /// it off.
    pub fn keep_free(&self, bytes: u64) {
        self.keep_free.store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    fn free_bytes(&self) -> Option<u64> {
        enos_runtime::sys::Disk::of(&self.dir).map(|d| d.free_bytes)
    }

    /// The free space when it is below half of what `keep_free` asks: then the cache writes
    /// nothing at all (a write meeting a full disk breaks RocksDB until it is reopened).
    fn below_floor(&self) -> Option<u64> {
        let keep = self.keep_free.load(std::sync::atomic::Ordering::Relaxed);
        if keep == 0 {
            return None;
        }
        self.free_bytes().filter(|f| *f < keep / 2)
    }

    /// Before writing `need` bytes: see `keep_free`.
    fn make_room(&self, db: &DB, st: &mut State, need: u64) -> Result<(), CacheError> {
        let keep = self.keep_free.load(std::sync::atomic::Ordering::Relaxed);
        if keep == 0 {
            return Ok(());
        }
        // One statvfs per record (a batch of many points), beside RocksDB's write: measured
        // every time, so another program filling the disk is seen at the next record.
        let Some(free) = self.free_bytes() else { return Ok(()) };
        let floor = keep / 2;
        let mut low = self.disk_low.lock().expect("disk low");
        if free >= keep + need {
            if low.take().is_some() {
                log::warn!("cache {}: the disk has room again ({free} bytes free)", self.dir.display());
            }
            return Ok(());
        }
        let said = format!("the disk is nearly full ({free} bytes free, the cache keeps {keep} free): the oldest data is dropped");
        if low.is_none() {
            log::error!("cache {}: {said}", self.dir.display());
        }
        *low = Some(said);
        if free < floor + need {
            // too little to write even the deletions and a flush safely
            return Err(CacheError::DiskFull { dir: self.dir.clone(), free, floor });
        }
        // Stored data takes more room than the records' bytes until compacted: drop twice the
        // shortfall, then compact that key range so the file system really gets it back.
        let short = 2 * (keep + need - free);
        let mut victims = Vec::new();
        let mut freed = 0;
        for m in st.index.values() {
            if freed >= short {
                break;
            }
            freed += m.bytes;
            victims.push(*m);
        }
        if let (Some(first), Some(last)) = (victims.first().map(|m| m.seq), victims.last().map(|m| m.seq)) {
            self.drop_records(db, st, &victims, "disk nearly full")?;
            let cf = db.cf_handle(CF_OUTBOX).expect("outbox cf");
            db.flush_cf(cf).map_err(|e| self.write_failed(e))?;
            db.compact_range_cf(cf, Some(first.to_be_bytes()), Some((last + 1).to_be_bytes()));
        }
        let free = self.free_bytes().unwrap_or(u64::MAX);
        if free < floor + need {
            return Err(CacheError::DiskFull { dir: self.dir.clone(), free, floor });
        }
        Ok(())
    }

    /// Applies the age bound without a new append (call periodically).
    pub fn expire(&self, now_ms: u64) -> Result<(), CacheError> {
        let mut st = self.state.lock().expect("cache state");
        self.ensure_open(&mut st)?;
        let db = self.db()?;
        self.enforce_bounds(&db, &mut st, now_ms)
    }

    /// Up to `n` records in key order (oldest first) passing `filter`.
    pub fn oldest(&self, n: usize, mut filter: impl FnMut(&RecordMeta) -> bool) -> Vec<RecordMeta> {
        let st = self.state.lock().expect("cache state");
        st.index.values().filter(|m| filter(m)).take(n).copied().collect()
    }

    /// Up to `n` records passing `filter` whose oldest sample was acquired in `acquired`
    /// (ms since the epoch), in acquisition order: oldest sample first, arrival order among
    /// equals. Not key order: a record may arrive after records with newer samples.
    pub fn by_acquisition(&self, acquired: std::ops::Range<u64>, n: usize, mut filter: impl FnMut(&RecordMeta) -> bool) -> Vec<RecordMeta> {
        let st = self.state.lock().expect("cache state");
        st.by_acq
            .range((acquired.start, 0)..(acquired.end, 0))
            .map(|(_, seq)| &st.index[seq])
            .filter(|m| filter(m))
            .take(n)
            .copied()
            .collect()
    }

    /// The index entry of a record still in the outbox.
    pub fn meta(&self, seq: u64) -> Option<RecordMeta> {
        self.state.lock().expect("cache state").index.get(&seq).copied()
    }

    /// The batch bytes of a record.
    pub fn read(&self, seq: u64) -> Result<Option<Vec<u8>>, CacheError> {
        let db = self.db()?;
        let cf = db.cf_handle(CF_OUTBOX).expect("outbox cf");
        let v = db.get_cf(cf, seq.to_be_bytes()).map_err(|e| self.db_err(e))?;
        Ok(v.map(|v| {
            let h = v.first().copied().unwrap_or(HEADER_LEN) as usize;
            v[h.min(v.len())..].to_vec()
        }))
    }

    /// Deletes a delivered record. On a disk too full to write even that, it is only forgotten
    /// here: left on disk, it is sent again after a restart (a duplicate, never a loss).
    pub fn remove(&self, seq: u64) -> Result<(), CacheError> {
        let mut st = self.state.lock().expect("cache state");
        if self.below_floor().is_some() {
            st.forget(seq);
            return Ok(());
        }
        self.ensure_open(&mut st)?;
        let db = self.db()?;
        let cf = db.cf_handle(CF_OUTBOX).expect("outbox cf");
        // Delivery acks need no fsync: a lost delete only means a duplicate after a power cut.
        db.delete_cf(cf, seq.to_be_bytes()).map_err(|e| self.write_failed(e))?;
        st.forget(seq);
        Ok(())
    }

    /// Moves a record the cloud keeps refusing out of the outbox, keeping it for inspection.
    pub fn dead_letter(&self, seq: u64) -> Result<(), CacheError> {
        let mut st = self.state.lock().expect("cache state");
        if let Some(free) = self.below_floor() {
            let floor = self.keep_free.load(std::sync::atomic::Ordering::Relaxed) / 2;
            return Err(CacheError::DiskFull { dir: self.dir.clone(), free, floor });
        }
        self.ensure_open(&mut st)?;
        let db = self.db()?;
        let cf = db.cf_handle(CF_OUTBOX).expect("outbox cf");
        let dead = db.cf_handle(CF_DEAD).expect("dead cf");
        let Some(v) = db.get_cf(cf, seq.to_be_bytes()).map_err(|e| self.db_err(e))? else { return Ok(()) };
        let mut wb = WriteBatch::default();
        wb.put_cf(dead, seq.to_be_bytes(), v);
        wb.delete_cf(cf, seq.to_be_bytes());
        db.write_opt(wb, &self.write_opts()).map_err(|e| self.write_failed(e))?;
        st.forget(seq);
        st.dead_records += 1;
        Ok(())
    }

    pub fn stats(&self) -> CacheStats {
        let st = self.state.lock().expect("cache state");
        CacheStats {
            records: st.index.len() as u64,
            points: st.points,
            bytes: st.bytes,
            oldest_ts: st.index.values().map(|m| m.oldest_ts).min(),
            dropped_points: st.dropped_points,
            dead_letter_records: st.dead_records,
            disk_low: self.disk_low.lock().expect("disk low").clone(),
        }
    }

    /// What was done about a damaged database when this cache opened, if anything.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.get()
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The age bound in ms (0: none).
    pub fn max_age_ms(&self) -> u64 {
        self.max_age_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The free space `keep_free` asks for.
    pub fn keep_free_bytes(&self) -> u64 {
        self.keep_free.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// New bounds while open: they hold from the next append or `expire` (lower bounds drop the
    /// oldest data then, as at a start with them).
    pub fn set_bounds(&self, max_bytes: u64, max_age_ms: u64) {
        self.max_bytes.store(max_bytes, std::sync::atomic::Ordering::Relaxed);
        self.max_age_ms.store(max_age_ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Bytes RocksDB really uses on disk for live data (SST files + memtables), for benchmarks.
    pub fn disk_bytes(&self) -> u64 {
        let Ok(db) = self.db() else { return 0 };
        let cf = db.cf_handle(CF_OUTBOX).expect("outbox cf");
        let p = |name: &str| db.property_int_value_cf(cf, name).ok().flatten().unwrap_or(0);
        p("rocksdb.total-sst-files-size") + p("rocksdb.cur-size-all-mem-tables")
    }

    /// Flushes memtables to SST files (benchmarks measure compressed bytes on disk).
    pub fn flush(&self) -> Result<(), CacheError> {
        self.ensure_open(&mut self.state.lock().expect("cache state"))?;
        let db = self.db()?;
        let cf = db.cf_handle(CF_OUTBOX).expect("outbox cf");
        db.flush_cf(cf).map_err(|e| self.write_failed(e))
    }
}

impl Cache {
    /// Raises the persisted counters to a damaged cache's (sequence numbers are never reused).
    fn raise_counters(&self, next_seq: u64, dropped_points: u64) -> Result<(), CacheError> {
        let mut st = self.state.lock().expect("cache state");
        self.ensure_open(&mut st)?;
        st.next_seq = st.next_seq.max(next_seq);
        st.dropped_points = st.dropped_points.max(dropped_points);
        let mut wb = WriteBatch::default();
        wb.put(KEY_NEXT_SEQ, st.next_seq.to_le_bytes());
        wb.put(KEY_DROPPED, st.dropped_points.to_le_bytes());
        self.db()?.write_opt(wb, &self.write_opts()).map_err(|e| self.write_failed(e))
    }

    /// Puts a checked record under its own sequence number (recovery); written with the
    /// counters so the fresh cache carries them from its first record. False when it is there.
    fn put_restored(&self, meta: RecordMeta, value: &[u8]) -> Result<bool, CacheError> {
        let mut st = self.state.lock().expect("cache state");
        if st.index.contains_key(&meta.seq) {
            return Ok(false);
        }
        self.ensure_open(&mut st)?;
        let db = self.db()?;
        let cf = db.cf_handle(CF_OUTBOX).expect("outbox cf");
        st.next_seq = st.next_seq.max(meta.seq + 1);
        let mut wb = WriteBatch::default();
        wb.put_cf(cf, meta.seq.to_be_bytes(), value);
        wb.put(KEY_NEXT_SEQ, st.next_seq.to_le_bytes());
        wb.put(KEY_DROPPED, st.dropped_points.to_le_bytes());
        db.write_opt(wb, &self.write_opts()).map_err(|e| self.write_failed(e))?;
        st.insert(meta);
        Ok(true)
    }

    /// Makes everything written so far durable, whatever the sync policy.
    fn flush_wal(&self) -> Result<(), CacheError> {
        self.ensure_open(&mut self.state.lock().expect("cache state"))?;
        self.db()?.flush_wal(true).map_err(|e| self.write_failed(e))
    }
}

fn parse_header(seq: u64, v: &[u8]) -> Result<RecordMeta, CacheError> {
    let corrupt = |reason: &str| CacheError::Corrupt { seq, reason: reason.into() };
    let h = *v.first().ok_or_else(|| corrupt("empty"))? as usize;
    if h < HEADER_V1_LEN || v.len() < h {
        return Err(corrupt("short header"));
    }
    let u64_at = |o: usize| u64::from_le_bytes(v[o..o + 8].try_into().expect("8 bytes"));
    Ok(RecordMeta {
        seq,
        bytes: v.len() as u64,
        enqueued_ms: u64_at(2),
        points: u32::from_le_bytes(v[10..14].try_into().expect("4 bytes")) as u64,
        oldest_ts: u64_at(14),
        newest_ts: u64_at(22),
        clock_unset: h > HEADER_V1_LEN && v[HEADER_V1_LEN] & HEADER_CLOCK_UNSET != 0,
    })
}

mod recover;
pub use recover::{Recovery, KEEP_DAMAGED};

#[cfg(test)]
mod tests;
