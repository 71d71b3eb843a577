//! Whether the box's wall clock may stamp samples. A box without a battery-backed clock boots at
//! whatever time it has (1970, the image's build date) until time synchronisation sets it; data
//! stamped then carries wrong times, and the age bound of the cache would drop all of it the
//! moment the clock jumps to the real time. So the collector asks here, and while the answer is
//! `Unset` every sample is marked (`enos_batch::Flags::CLOCK_UNSET`) and kept whatever its age.
//!
//! The rules (docs/architecture.md, "The gateway's clock"):
//! - synchronised: the time daemon's mark exists (systemd-timesyncd's
//!   `/run/systemd/timesync/synchronized`), or the kernel says a time source set it;
//! - else behind the floor (the last time this box knew to be right, kept on the data
//!   partition, or the date this release was made): unset, whatever the clock says;
//! - else a battery-backed clock (`/sys/class/rtc/rtc0`) is believed;
//! - else unset.
//!
//! `ENOS_TIMESYNC_MARK` names another mark file, and then it alone says "synchronised" (another
//! time daemon; tests); `ENOS_RTC` names another clock device path. `ENOS_CLOCK=trusted` says
//! the clock is kept right by something the box cannot see: a development container, whose
//! host keeps the time but which has no time daemon's mark and no clock device (`run-local`,
//! the tests' services).

use std::path::{Path, PathBuf};

/// No clock that reads earlier than this is right: a date before this release was made
/// (2026-11-01 00:00 UTC).
pub const RELEASE_FLOOR_MS: u64 = 1_793_491_200_000;

/// systemd-timesyncd's mark of a synchronised clock.
pub const TIMESYNC_MARK: &str = "/run/systemd/timesync/synchronized";

/// How often a synchronised clock's time is written to the floor file.
const SAVE_EVERY_MS: u64 = 10 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Set by time synchronisation.
    Synced,
    /// Not synchronised (yet), but a battery-backed clock that reads later than the floor.
    Believed,
    /// Not to be trusted: why, in words.
    Unset(&'static str),
}

pub struct Clock {
    /// `ENOS_CLOCK=trusted`: always synchronised.
    trusted: bool,
    mark: PathBuf,
    /// The mark alone says "synchronised" (`ENOS_TIMESYNC_MARK` given): the kernel is not asked.
    mark_only: bool,
    rtc: PathBuf,
    floor_file: Option<PathBuf>,
    floor_ms: u64,
    saved_ms: u64,
}

impl Clock {
    /// From the environment (see the module's comment); `floor_file` keeps the last time known
    /// to be right across restarts (on the data partition).
    pub fn from_env(floor_file: Option<PathBuf>) -> Clock {
        let (mark, mark_only) = match std::env::var_os("ENOS_TIMESYNC_MARK") {
            Some(p) => (PathBuf::from(p), true),
            None => (PathBuf::from(TIMESYNC_MARK), false),
        };
        let rtc = std::env::var_os("ENOS_RTC").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/sys/class/rtc/rtc0"));
        let mut c = Clock::new(mark, mark_only, rtc, floor_file);
        c.trusted = std::env::var("ENOS_CLOCK").is_ok_and(|v| v == "trusted");
        c
    }

    pub fn new(mark: PathBuf, mark_only: bool, rtc: PathBuf, floor_file: Option<PathBuf>) -> Clock {
        let saved = floor_file.as_deref().and_then(read_floor).unwrap_or(0);
        Clock { trusted: false, mark, mark_only, rtc, floor_file, floor_ms: saved.max(RELEASE_FLOOR_MS), saved_ms: saved }
    }

    /// The clock's trust at `now_ms` (the wall clock now). A synchronised clock's time becomes
    /// the floor, written to the floor file now and then.
    pub fn check(&mut self, now_ms: u64) -> Trust {
        if self.synced() {
            self.floor_ms = self.floor_ms.max(now_ms);
            if now_ms >= self.saved_ms + SAVE_EVERY_MS {
                self.save(now_ms);
            }
            return Trust::Synced;
        }
        if now_ms < self.floor_ms {
            return Trust::Unset("it reads earlier than this release was made or than a time this box knew to be right");
        }
        if self.rtc.exists() {
            return Trust::Believed;
        }
        Trust::Unset("no time synchronisation yet and no battery-backed clock")
    }

    fn synced(&self) -> bool {
        self.trusted || self.mark.exists() || (!self.mark_only && kernel_synced())
    }

    fn save(&mut self, ms: u64) {
        let Some(f) = &self.floor_file else { return };
        match crate::fs::write_atomic(f, ms.to_string().as_bytes(), 0o644) {
            Ok(()) => self.saved_ms = ms,
            Err(e) => {
                log::warn!("the clock's floor cannot be kept in {}: {e}", f.display());
                self.saved_ms = ms; // not again before SAVE_EVERY_MS
            }
        }
    }
}

fn read_floor(f: &Path) -> Option<u64> {
    std::fs::read_to_string(f).ok()?.trim().parse().ok()
}

/// The kernel's own flag: a time source (an NTP daemon) cleared "unsynchronised".
fn kernel_synced() -> bool {
    // SAFETY: timex is plain old data; modes = 0 only reads the kernel's clock state into it.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: a properly sized out-parameter.
    let r = unsafe { libc::adjtimex(&mut tx) };
    r != -1 && r != libc::TIME_ERROR
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_796_600_000_000; // 2026-12-07

    #[test]
    fn synced_believed_and_unset() {
        let d = tempfile::tempdir().unwrap();
        let mark = d.path().join("synchronized");
        let rtc = d.path().join("rtc0");
        let floor = d.path().join("clock-floor");
        let mut c = Clock::new(mark.clone(), true, rtc.clone(), Some(floor.clone()));
        assert_eq!(c.check(NOW), Trust::Unset("no time synchronisation yet and no battery-backed clock"));
        assert!(matches!(c.check(86_400_000), Trust::Unset(w) if w.contains("earlier")), "1970 is never right");
        std::fs::write(&rtc, "").unwrap();
        assert_eq!(c.check(NOW), Trust::Believed);
        std::fs::write(&mark, "").unwrap();
        assert_eq!(c.check(NOW), Trust::Synced);
        assert_eq!(std::fs::read_to_string(&floor).unwrap(), NOW.to_string(), "the floor is kept");

        // after a restart, an RTC that reads earlier than the floor is not believed
        std::fs::remove_file(&mark).unwrap();
        let mut c = Clock::new(mark, true, rtc, Some(floor));
        assert!(matches!(c.check(NOW - 60_000), Trust::Unset(w) if w.contains("earlier")));
        assert_eq!(c.check(NOW + 60_000), Trust::Believed);
    }
}
