//! The box's own figures (CPU, memory, disk, uptime) from `/proc` and `statvfs`, read the same
//! way by the uplink's health points and the web center's system page.

use std::path::Path;

/// Jiffies the whole box spent, from the first line of `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// Idle and I/O wait.
    pub idle: u64,
    pub total: u64,
}

impl CpuTimes {
    pub fn read() -> Option<CpuTimes> {
        Self::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    fn parse(stat: &str) -> Option<CpuTimes> {
        let v: Vec<u64> = stat.lines().next()?.strip_prefix("cpu ")?.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        Some(CpuTimes { idle: v.get(3)? + v.get(4).unwrap_or(&0), total: v.iter().sum() })
    }

    /// The share of time the box was busy since `earlier`, in percent with one decimal; none
    /// when no time passed.
    pub fn busy_percent_since(self, earlier: CpuTimes) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total).filter(|t| *t > 0)?;
        let idle = self.idle.saturating_sub(earlier.idle).min(total);
        Some(round1(100.0 * (1.0 - idle as f64 / total as f64)))
    }
}

/// Memory of the box, from `/proc/meminfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub total_bytes: u64,
    pub available_bytes: u64,
}

impl Memory {
    pub fn read() -> Option<Memory> {
        Self::parse(&std::fs::read_to_string("/proc/meminfo").ok()?)
    }

    fn parse(meminfo: &str) -> Option<Memory> {
        let kib = |k: &str| meminfo.lines().find_map(|l| l.strip_prefix(k)).and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok());
        Some(Memory { total_bytes: kib("MemTotal:")? * 1024, available_bytes: kib("MemAvailable:")? * 1024 })
    }

    pub fn used_percent(&self) -> Option<f64> {
        (self.total_bytes > 0).then(|| round1(100.0 * (1.0 - self.available_bytes as f64 / self.total_bytes as f64)))
    }
}

/// The file system holding a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disk {
    pub total_bytes: u64,
    /// What an unprivileged service can still write.
    pub free_bytes: u64,
}

impl Disk {
    pub fn of(path: &Path) -> Option<Disk> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        // SAFETY: statvfs is plain old data; all-zero is a valid value to be overwritten.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
            return None;
        }
        let frag = st.f_frsize as u64;
        Some(Disk { total_bytes: st.f_blocks as u64 * frag, free_bytes: st.f_bavail as u64 * frag })
    }

    pub fn used_percent(&self) -> Option<f64> {
        (self.total_bytes > 0).then(|| round1(100.0 * (1.0 - self.free_bytes as f64 / self.total_bytes as f64)))
    }
}

/// Seconds since the box booted, from `/proc/uptime`.
pub fn uptime_s() -> Option<u64> {
    let u = std::fs::read_to_string("/proc/uptime").ok()?;
    u.split_whitespace().next()?.parse::<f64>().ok().map(|s| s as u64)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Makes malloc serve allocations of `bytes` and more with their own mappings, returned to the
/// system when freed. glibc raises this threshold by itself to the largest block freed so far
/// (up to 32 MiB), after which big, short-lived buffers (a batch, a device's point list) are
/// carved from the arenas and leave holes there that keep the RSS up.
pub fn malloc_mmap_threshold(bytes: i32) {
    // SAFETY: mallopt only sets an allocator parameter.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, bytes);
    }
}

/// Gives the memory malloc holds free back to the system. Loading a large configuration parses
/// through many short-lived allocations; without this their pages stay in the process's RSS.
pub fn release_free_memory() {
    // SAFETY: malloc_trim only walks malloc's own free lists; no pointer of ours is involved.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_use_between_two_readings() {
        let a = CpuTimes::parse("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!(a, CpuTimes { idle: 800, total: 1000 });
        let b = CpuTimes::parse("cpu  250 0 150 850 150 0 0 0 0 0\n").unwrap();
        assert_eq!(b.busy_percent_since(a), Some(50.0));
        assert_eq!(a.busy_percent_since(a), None, "no time passed");
        assert_eq!(CpuTimes::parse("intr 1 2 3\n"), None);
    }

    #[test]
    fn memory_in_bytes_and_used_share() {
        let m = Memory::parse("MemTotal:        2000 kB\nMemFree:          100 kB\nMemAvailable:     500 kB\n").unwrap();
        assert_eq!(m, Memory { total_bytes: 2_048_000, available_bytes: 512_000 });
        assert_eq!(m.used_percent(), Some(75.0));
        assert_eq!(Memory::parse("MemTotal: 2000 kB\n"), None);
    }

    #[test]
    fn this_box_has_figures() {
        assert!(CpuTimes::read().is_some() && Memory::read().is_some() && uptime_s().is_some());
        let d = Disk::of(&std::env::temp_dir()).unwrap();
        assert!(d.total_bytes > 0 && d.free_bytes <= d.total_bytes);
        assert_eq!(Disk::of(Path::new("/no/such/dir")), None);
    }
}
