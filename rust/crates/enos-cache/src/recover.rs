//! A damaged cache: moved aside, what still reads copied into a fresh one, the service goes on.
//!
//! A truncated or bit-flipped SST file, a lost MANIFEST or CURRENT make RocksDB refuse to open
//! (or to iterate); before this the uplink exited, systemd started it again, and it exited again,
//! forever, with the telemetry of the whole outage inside. Now the damaged files move into
//! `damaged-<UTC time>/` inside the cache directory (the only place the uplink may write; the
//! newest [`KEEP_DAMAGED`] are kept), the records that still read cleanly are copied in key order
//! (arrival order) into a fresh database under their old sequence numbers, and the caller gets a
//! [`Recovery`] to report. Dead letters stay in the damaged copy.
//!
//! The move is crash-safe: files go into `.damaged-<time>.partial/` first, which is renamed when
//! complete; a start that finds a `.partial` directory finishes the move before opening.

use crate::{parse_header, Cache, CacheError, Sync, CF_DEAD, CF_OUTBOX, KEY_DROPPED, KEY_NEXT_SEQ};
use rocksdb::{ErrorKind, IteratorMode, Options, DB};
use std::fmt;
use std::path::{Path, PathBuf};

/// How many damaged copies are kept (newest first); older ones are deleted.
pub const KEEP_DAMAGED: usize = 3;
const DAMAGED_PREFIX: &str = "damaged-";
const PARTIAL_PREFIX: &str = ".damaged-";
const PARTIAL_SUFFIX: &str = ".partial";
/// Point reads tried across a damaged stretch of keys before giving up on it.
const MAX_PROBES: u64 = 4_000_000;

/// What happened to a damaged cache, for the log and the uplink's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Where the damaged files are now.
    pub moved_to: PathBuf,
    /// RocksDB's reason for refusing the database.
    pub reason: String,
    pub saved_records: u64,
    pub saved_points: u64,
    /// Some records could not be read (a damaged block, a record failing its checks).
    pub unreadable: bool,
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the cache was damaged ({}); moved to {}, {} records ({} points) that still read were kept{}; continuing with a fresh cache",
            self.reason,
            self.moved_to.display(),
            self.saved_records,
            self.saved_points,
            if self.unreadable { ", some could not be read" } else { "" }
        )
    }
}

/// Damage rather than a cache we must not touch (held by another process, no permission).
fn is_damage(e: &CacheError) -> bool {
    match e {
        CacheError::Db { source, .. } => match source.kind() {
            ErrorKind::Corruption => true,
            // a file the MANIFEST or CURRENT names is gone
            ErrorKind::IOError | ErrorKind::NotFound | ErrorKind::InvalidArgument => {
                let m = source.to_string();
                m.contains("No such file") || m.contains("CURRENT") || m.contains("MANIFEST")
            }
            _ => false,
        },
        CacheError::Corrupt { .. } => true,
        _ => false,
    }
}

impl Cache {
    /// [`Cache::open`], and when RocksDB finds the database damaged: move it aside, keep what
    /// reads, start fresh. `now_ms` names the damaged copy.
    pub fn open_or_recover(
        dir: &Path,
        max_bytes: u64,
        max_age_ms: u64,
        sync: Sync,
        now_ms: u64,
    ) -> Result<(Cache, Option<Recovery>), CacheError> {
        let io = |what: &str, p: &Path, e: std::io::Error| CacheError::Io { what: format!("{what} {}", p.display()), source: e };
        finish_partial_moves(dir).map_err(|e| io("finishing the move of a damaged cache in", dir, e))?;
        let err = match Cache::open(dir, max_bytes, max_age_ms, sync) {
            Ok(c) => return Ok((c, None)),
            Err(e) if is_damage(&e) => e,
            Err(e) => return Err(e),
        };
        let reason = match &err {
            CacheError::Db { source, .. } => source.to_string(),
            e => e.to_string(),
        };
        let moved_to = move_aside(dir, now_ms).map_err(|e| io("moving the damaged cache out of", dir, e))?;
        prune_damaged(dir).map_err(|e| io("deleting old damaged caches in", dir, e))?;
        let fresh = Cache::open(dir, max_bytes, max_age_ms, sync)?;
        let mut rec = Recovery { moved_to, reason, saved_records: 0, saved_points: 0, unreadable: false };
        if let Err(e) = salvage(&rec.moved_to.clone(), &fresh, &mut rec) {
            log::error!("reading what is left of the damaged cache {}: {e}", rec.moved_to.display());
            rec.unreadable = true;
        }
        fresh.flush_wal()?;
        let _ = fresh.recovery.set(rec.clone());
        Ok((fresh, Some(rec)))
    }
}

fn timestamp(now_ms: u64) -> String {
    // UTC, sortable: 20261206T221530.123Z
    let secs = now_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = enos_batch::calendar::civil_from_days(days as i64);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}.{:03}Z", rem / 3600, rem / 60 % 60, rem % 60, now_ms % 1000)
}

fn is_kept_dir(name: &str) -> bool {
    name.starts_with(DAMAGED_PREFIX) || (name.starts_with(PARTIAL_PREFIX) && name.ends_with(PARTIAL_SUFFIX))
}

/// Moves every file of the database into `.damaged-<time>.partial/`, then renames it.
fn move_aside(dir: &Path, now_ms: u64) -> std::io::Result<PathBuf> {
    let ts = timestamp(now_ms);
    let partial = dir.join(format!("{PARTIAL_PREFIX}{ts}{PARTIAL_SUFFIX}"));
    std::fs::create_dir(&partial)?;
    complete_move(dir, &partial)
}

fn complete_move(dir: &Path, partial: &Path) -> std::io::Result<PathBuf> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if is_kept_dir(&name.to_string_lossy()) {
            continue;
        }
        std::fs::rename(entry.path(), partial.join(&name))?;
    }
    std::fs::File::open(partial)?.sync_all()?;
    let name = partial.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let done = name.trim_start_matches('.').trim_end_matches(PARTIAL_SUFFIX).to_owned();
    let target = dir.join(done);
    std::fs::rename(partial, &target)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(target)
}

/// A move a crash interrupted: the rest of the files follow, so the damaged copy is whole.
fn finish_partial_moves(dir: &Path) -> std::io::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with(PARTIAL_PREFIX) && name.ends_with(PARTIAL_SUFFIX) {
            let moved = complete_move(dir, &dir.join(&name))?;
            log::warn!("finished moving a damaged cache to {} (the move was interrupted)", moved.display());
        }
    }
    Ok(())
}

/// Keeps the newest [`KEEP_DAMAGED`] damaged copies (their names sort by time).
fn prune_damaged(dir: &Path) -> std::io::Result<()> {
    let mut kept: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(DAMAGED_PREFIX))
        .collect();
    kept.sort();
    let excess = kept.len().saturating_sub(KEEP_DAMAGED);
    for old in &kept[..excess] {
        log::info!("deleting the old damaged cache {}", dir.join(old).display());
        std::fs::remove_dir_all(dir.join(old))?;
    }
    Ok(())
}

/// Copies what reads from the damaged copy: as it is (read-only), and when that meets damage,
/// again after RocksDB's repair. The repair runs on hard links in scratch directories, so the
/// damaged copy stays as it was found, and on the table files and the WAL apart: the WAL still
/// holds records already flushed to tables, and repairing both together makes duplicate tables
/// RocksDB refuses. Repair sets a table it cannot read whole aside (`lost/`); point reads and
/// iteration around a damaged block keep the rest of a table that opens.
fn salvage(damaged: &Path, fresh: &Cache, rec: &mut Recovery) -> Result<(), String> {
    match DB::open_cf_for_read_only(&Options::default(), damaged, [CF_OUTBOX, CF_DEAD], false) {
        Ok(db) => {
            if read_db(&db, fresh, rec)? {
                return Ok(());
            }
        }
        Err(e) => log::warn!("the damaged cache does not open read-only ({e}); trying RocksDB's repair"),
    }
    if let Some(db) = with_current_rebuilt(damaged) {
        if read_db(&db, fresh, rec)? {
            return Ok(());
        }
    }
    for (scratch, ends) in [("repair-tables", ".sst"), ("repair-wal", ".log")] {
        let work = damaged.join(scratch);
        let linked = link_files(damaged, &work, ends).map_err(|e| format!("preparing {}: {e}", work.display()))?;
        if linked > 0 {
            match repaired(&work) {
                Ok(db) => {
                    if !read_db(&db, fresh, rec)? {
                        rec.unreadable = true;
                    }
                }
                Err(e) => {
                    log::error!("damaged cache: {e}");
                    rec.unreadable = true;
                }
            }
            let lost = std::fs::read_dir(work.join("lost")).map(|d| d.count()).unwrap_or(0);
            if lost > 0 {
                log::warn!("damaged cache: RocksDB's repair could not read {lost} of its files");
                rec.unreadable = true;
            }
        }
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(())
}

/// A damaged or lost CURRENT only names the MANIFEST: a scratch copy whose CURRENT names the
/// newest one opens whole, WAL included (repair would drop the WAL's records, see above).
fn with_current_rebuilt(damaged: &Path) -> Option<DB> {
    let newest = std::fs::read_dir(damaged)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("MANIFEST-"))
        .max_by_key(|n| n.trim_start_matches("MANIFEST-").parse::<u64>().unwrap_or(0))?;
    let work = damaged.join("reopen");
    let _ = std::fs::remove_dir_all(&work);
    for ends in [".sst", ".log", &newest, "OPTIONS"] {
        if let Err(e) = link_files(damaged, &work, ends) {
            log::warn!("damaged cache: preparing {}: {e}", work.display());
            return None;
        }
    }
    std::fs::write(work.join("CURRENT"), format!("{newest}\n")).ok()?;
    let db = DB::open_cf_for_read_only(&Options::default(), &work, [CF_OUTBOX, CF_DEAD], false);
    // the open database keeps its files; the scratch names can go
    let _ = std::fs::remove_dir_all(&work);
    db.map_err(|e| log::warn!("damaged cache: it does not open with CURRENT naming {newest} either: {e}")).ok()
}

/// Hard links (else copies) the files of `from` whose names end in `ends` into a new `to`.
fn link_files(from: &Path, to: &Path, ends: &str) -> std::io::Result<usize> {
    std::fs::create_dir_all(to)?;
    let mut n = 0;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_type()?.is_file()
            && (e.file_name().to_string_lossy().ends_with(ends) || (ends == "OPTIONS" && e.file_name().to_string_lossy().starts_with(ends)))
        {
            let target = to.join(e.file_name());
            if std::fs::hard_link(e.path(), &target).is_err() {
                std::fs::copy(e.path(), &target)?;
            }
            n += 1;
        }
    }
    Ok(n)
}

fn repaired(work: &Path) -> Result<DB, String> {
    DB::repair(&Options::default(), work).map_err(|e| format!("RocksDB's repair of {} failed: {e}", work.display()))?;
    let mut opts = Options::default();
    opts.create_missing_column_families(true);
    DB::open_cf(&opts, work, [CF_OUTBOX, CF_DEAD]).map_err(|e| format!("{} does not open after RocksDB's repair: {e}", work.display()))
}

/// Copies every record of `db` that reads into `fresh`; false when some did not read.
fn read_db(db: &DB, fresh: &Cache, rec: &mut Recovery) -> Result<bool, String> {
    let read_u = |k: &[u8]| db.get(k).ok().flatten().and_then(|v| v.as_slice().try_into().ok().map(u64::from_le_bytes));
    let next_seq = read_u(KEY_NEXT_SEQ);
    fresh.raise_counters(next_seq.unwrap_or(0), read_u(KEY_DROPPED).unwrap_or(0)).map_err(|e| e.to_string())?;
    let Some(cf) = db.cf_handle(CF_OUTBOX) else { return Ok(true) };
    let clean = std::cell::Cell::new(true);
    let mut keep = |seq: u64, v: &[u8]| match fresh.restore(seq, v) {
        Ok(Some(points)) => {
            rec.saved_records += 1;
            rec.saved_points += points;
        }
        Ok(None) => {}
        Err(e) => {
            log::warn!("damaged cache: record {seq} is not kept: {e}");
            clean.set(false);
        }
    };
    // Forward until the first damaged block.
    let mut last: Option<u64> = None;
    let mut damaged_from = None;
    for item in db.iterator_cf(cf, IteratorMode::Start) {
        match item {
            Ok((k, v)) => {
                let seq = key_seq(&k);
                keep(seq, &v);
                last = Some(seq);
            }
            Err(e) => {
                damaged_from = Some(e);
                break;
            }
        }
    }
    let Some(e) = damaged_from else { return Ok(clean.get()) };
    log::warn!("damaged cache: reading stopped after record {last:?}: {e}");
    // Backward from the end to find where clean keys resume.
    let mut tail_start = None;
    for item in db.iterator_cf(cf, IteratorMode::End) {
        match item {
            Ok((k, _)) if Some(key_seq(&k)) > last => tail_start = Some(key_seq(&k)),
            _ => break,
        }
    }
    // Between them, one key at a time: a read of a key in a damaged block fails alone.
    let from = last.map_or(1, |l| l + 1);
    let to = tail_start.or(next_seq).unwrap_or(from).min(from.saturating_add(MAX_PROBES));
    for seq in from..to {
        if let Ok(Some(v)) = db.get_cf(cf, seq.to_be_bytes()) {
            keep(seq, &v);
        }
    }
    if let Some(t) = tail_start {
        for (k, v) in db.iterator_cf(cf, IteratorMode::From(&t.to_be_bytes(), rocksdb::Direction::Forward)).map_while(Result::ok) {
            keep(key_seq(&k), &v);
        }
    }
    Ok(false)
}

fn key_seq(k: &[u8]) -> u64 {
    u64::from_be_bytes(k.try_into().unwrap_or([0; 8]))
}

impl Cache {
    /// Stores a record salvaged from a damaged cache under its old sequence number, after the
    /// checks a new batch gets (a damaged value must not reach the cloud). Returns its points,
    /// None when it was kept already (read again after a repair).
    fn restore(&self, seq: u64, value: &[u8]) -> Result<Option<u64>, CacheError> {
        let meta = parse_header(seq, value)?;
        let h = value[0] as usize;
        let decoded = enos_batch::batch::DecodedBatch::decode(&value[h..])?;
        if decoded.summary().samples != meta.points {
            return Err(CacheError::Corrupt { seq, reason: "its header and its samples disagree".into() });
        }
        Ok(self.put_restored(meta, value)?.then_some(meta.points))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_utc_and_sort() {
        assert_eq!(super::timestamp(0), "19700101T000000.000Z");
        assert_eq!(super::timestamp(1_796_595_330_123), "20261206T221530.123Z");
        assert_eq!(super::timestamp(951_782_400_000), "20000229T000000.000Z");
    }
}
