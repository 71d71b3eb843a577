//! `enosctl check`: one screen saying what is wrong with the box and what to do, the way
//! `iotedge check` does. Exit status for scripts: 0 all good, 1 a warning, 2 an error.
//!
//! The facts are gathered first (`gather`), then judged by small functions that only look at
//! them, so each rule reads on its own.

use crate::bus::{Bus, CallError};
use enos_bus::{CollectorStats, DeviceStatus, OtaStatus, UplinkStatus};
use enos_runtime::clock::{Clock, Trust};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mark {
    Ok,
    Warning,
    Error,
}

impl Mark {
    fn symbol(self) -> &'static str {
        match self {
            Mark::Ok => "✔",
            Mark::Warning => "⚠",
            Mark::Error => "✘",
        }
    }
    pub fn exit_code(self) -> i32 {
        match self {
            Mark::Ok => 0,
            Mark::Warning => 1,
            Mark::Error => 2,
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// What was checked.
    pub check: String,
    pub status: Mark,
    /// What was found, in words.
    pub message: String,
    /// What to do about it (for a warning or an error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub todo: Option<String>,
}

fn ok(check: impl Into<String>, message: impl Into<String>) -> Finding {
    Finding { check: check.into(), status: Mark::Ok, message: message.into(), todo: None }
}
fn warn(check: impl Into<String>, message: impl Into<String>, todo: impl Into<String>) -> Finding {
    Finding { check: check.into(), status: Mark::Warning, message: message.into(), todo: Some(todo.into()) }
}
fn error(check: impl Into<String>, message: impl Into<String>, todo: impl Into<String>) -> Finding {
    Finding { check: check.into(), status: Mark::Error, message: message.into(), todo: Some(todo.into()) }
}

/// What the box says about itself, gathered before anything is judged.
pub struct Facts {
    pub bus: Result<(), CallError>,
    pub collector: Result<CollectorStats, CallError>,
    pub devices: Result<Vec<DeviceStatus>, CallError>,
    pub uplink: Result<UplinkStatus, CallError>,
    pub ota: Result<OtaStatus, CallError>,
    /// The data partition: its path, total and free bytes.
    pub disk: Option<(PathBuf, u64, u64)>,
    /// The clock as the collector judges it (`enos_runtime::clock`: the same rules, the same floor).
    pub clock: Trust,
    pub now_ms: u64,
}

pub async fn gather(bus: Result<Bus, CallError>) -> Facts {
    // without the bus only the bus line is judged; the services' parts are never looked at
    let (bus, collector, devices, uplink, ota) = match bus {
        Err(e) => {
            let none = || CallError::NoBus(String::new());
            (Err(e), Err(none()), Err(none()), Err(none()), Err(none()))
        }
        Ok(b) => {
            let (c, d, u, o) = tokio::join!(b.collector_stats(), b.devices(), b.uplink_status(), b.ota_status());
            (Ok(()), c, d, u, o)
        }
    };
    Facts { bus, collector, devices, uplink, ota, disk: data_disk(), clock: clock(), now_ms: enos_batch::now_ms() }
}

/// Every finding, in the order a technician reads them.
pub fn judge(f: &Facts) -> Vec<Finding> {
    let mut out = vec![bus(&f.bus)];
    if f.bus.is_ok() {
        out.push(collector(&f.collector));
        out.extend(devices(&f.devices));
        out.push(uplink_service(&f.uplink));
        if let Ok(u) = &f.uplink {
            out.push(cloud(u, f.now_ms));
            out.push(cache(u));
        }
        out.push(updates(&f.ota));
    }
    let headroom = f.uplink.as_ref().ok().map(|u| u.cache.max_bytes.saturating_sub(u.cache.bytes));
    out.push(disk(f.disk.as_ref(), headroom));
    out.push(clock_finding(&f.clock));
    out
}

pub fn worst(findings: &[Finding]) -> Mark {
    findings.iter().map(|f| f.status).max().unwrap_or(Mark::Ok)
}

pub fn render(findings: &[Finding]) -> String {
    let width = findings.iter().map(|f| f.check.chars().count()).max().unwrap_or(0);
    let mut s = String::new();
    for f in findings {
        s.push_str(&format!("{} {:<width$}  {}", f.status.symbol(), f.check, f.message));
        if let Some(t) = &f.todo {
            s.push_str(&format!(" — {t}"));
        }
        s.push('\n');
    }
    let count = |m| findings.iter().filter(|f| f.status == m).count();
    let (e, w) = (count(Mark::Error), count(Mark::Warning));
    s.push_str(&match (e, w) {
        (0, 0) => "all good\n".to_string(),
        _ => format!("{} error{}, {} warning{}\n", e, plural(e), w, plural(w)),
    });
    s
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// How long since `ms`, in words ("40 s", "12 min", "3.5 h").
fn duration_since(now_ms: u64, ms: u64) -> String {
    let s = now_ms.saturating_sub(ms) / 1000;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{:.1} h", s as f64 / 3600.0),
    }
}

fn bus(r: &Result<(), CallError>) -> Finding {
    match r {
        Ok(()) => ok("bus", "reachable"),
        Err(e) => error("bus", e.to_string(), "start dbus (systemctl start dbus); nothing else on the box can be checked without it"),
    }
}

fn not_running(check: &str, unit: &str, e: &CallError, without: &str) -> Finding {
    let todo = format!("start it (systemctl start {unit}); its log says why it stopped (journalctl -u {unit})");
    match e {
        CallError::NotRunning(_) => error(check, format!("not running{without}"), todo),
        other => error(check, format!("{other}{without}"), todo),
    }
}

fn collector(r: &Result<CollectorStats, CallError>) -> Finding {
    const C: &str = "collector";
    match r {
        Err(e) => not_running(C, "enos-collector", e, ": no device is read"),
        Ok(c) => match c.state.as_str() {
            "overloaded" => warn(
                C,
                format!("running, but the uplink does not keep up: {} samples shed so far", c.samples_dropped),
                "look at the uplink's disk and CPU (enosctl status); fewer points or slower polls lighten the load",
            ),
            "uplink-unreachable" => error(
                C,
                format!("running, but cannot hand data to the uplink ({} samples waiting in memory)", c.samples_buffered),
                "see the uplink line below",
            ),
            _ => ok(C, format!("running, {}/{} devices online", c.devices_online, c.devices)),
        },
    }
}

fn devices(r: &Result<Vec<DeviceStatus>, CallError>) -> Vec<Finding> {
    let Ok(list) = r else { return Vec::new() };
    if list.is_empty() {
        return vec![warn("devices", "none configured", "add the field devices in the web center (Devices)")];
    }
    list.iter()
        .map(|d| {
            let check = format!("device {}", d.id);
            let why = d.last_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
            match d.state.as_str() {
                "online" => ok(check, format!("online, {} point{}", d.points, plural(d.points))),
                "disabled" => ok(check, "disabled in the configuration"),
                "connecting" => warn(check, format!("connecting{why}"), "wait a moment; if it stays so, check the address and the cable"),
                "refusing" => error(
                    check,
                    format!("answers, but refuses every read{why}"),
                    "check the unit id and the register map against the device's manual",
                ),
                "offline" => error(check, format!("offline{why}"), "check the device's power, cable, address and unit id"),
                "failed" => error(check, format!("its driver stopped and is being restarted{why}"), "see journalctl -u enos-collector"),
                other => warn(check, format!("in state {other}{why}"), "see journalctl -u enos-collector"),
            }
        })
        .collect()
}

fn uplink_service(r: &Result<UplinkStatus, CallError>) -> Finding {
    match r {
        Err(e) => not_running("uplink", "enos-uplink", e, ": nothing is cached or sent to the cloud"),
        Ok(_) => ok("uplink", "running"),
    }
}

fn cloud(u: &UplinkStatus, now_ms: u64) -> Finding {
    const C: &str = "cloud session";
    let c = &u.cloud;
    let since = if c.since_ms > 0 { format!(" for {}", duration_since(now_ms, c.since_ms)) } else { String::new() };
    let why = c.last_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
    match c.state.as_str() {
        "connected" => ok(C, format!("connected to {}{since}", c.uri)),
        "unconfigured" => warn(
            C,
            "not set up: the box has no cloud credentials yet",
            "enter the product key, device key and secret in the web center (Cloud); data is cached meanwhile",
        ),
        state => error(
            C,
            format!("not connected to {} ({state}{since}){why}", c.uri),
            "check the network route to the broker, its address and the credentials (web center, Cloud); data is cached meanwhile",
        ),
    }
}

fn cache(u: &UplinkStatus) -> Finding {
    const C: &str = "cache";
    let c = &u.cache;
    let full = if c.max_bytes > 0 { c.bytes as f64 / c.max_bytes as f64 } else { 0.0 };
    let backlog =
        format!("{} point{} waiting, {:.0} % of {} MiB used", c.points, plural(c.points as usize), full * 100.0, c.max_bytes >> 20);
    if let Some(low) = &c.disk_low {
        warn(
            C,
            format!("{low}; {backlog}"),
            "free space on the data partition (old update bundles, logs): until then the cache drops its oldest data",
        )
    } else if full >= 0.9 {
        warn(C, format!("nearly full: {backlog}"), "bring the cloud session back; when full, the oldest data is dropped")
    } else if c.dead_letter_records > 0 {
        warn(
            C,
            format!("{} record{} the cloud refused kept aside; {backlog}", c.dead_letter_records, plural(c.dead_letter_records as usize)),
            "look at the uplink's log for why the cloud refused them (journalctl -u enos-uplink)",
        )
    } else {
        let dropped = if c.dropped_points > 0 {
            format!("; {} points dropped in the past (full or too old)", c.dropped_points)
        } else {
            String::new()
        };
        ok(C, format!("{backlog}{dropped}"))
    }
}

fn updates(r: &Result<OtaStatus, CallError>) -> Finding {
    const C: &str = "updates";
    let st = match r {
        Err(CallError::NotRunning(_)) => {
            return warn(C, "the update agent (enos-ota) is not running: updates cannot be installed", "systemctl start enos-ota")
        }
        Err(e) => return warn(C, e.to_string(), "see journalctl -u enos-ota"),
        Ok(st) => st,
    };
    if st.booted_slot.starts_with("unknown") || st.booted_slot.is_empty() {
        return warn(
            C,
            format!("version {}, but the running slot is not known ({})", st.version, st.booted_slot),
            "see journalctl -u enos-ota",
        );
    }
    let running = format!("version {}, slot {}", st.version, st.booted_slot);
    match &st.job {
        Some(j) if matches!(j.state.as_str(), "rebooting" | "verifying") => warn(
            C,
            format!("{running}: a trial boot of version {} (slot {}) awaits its health check: {}", j.version, j.to_slot, j.desc),
            "wait for it to commit or roll back (enosctl ota status)",
        ),
        Some(j) if matches!(j.state.as_str(), "downloading" | "installing") => {
            ok(C, format!("{running}; installing version {} ({}: {})", j.version, j.state, j.desc))
        }
        _ => ok(C, running),
    }
}

/// `cache_headroom`: how much the uplink's cache may still grow (its bound less what it holds).
fn disk(d: Option<&(PathBuf, u64, u64)>, cache_headroom: Option<u64>) -> Finding {
    const C: &str = "disk";
    let Some((path, total, free)) = d else {
        return warn(C, "the free space of the data partition cannot be read", "check that /data is mounted");
    };
    let (total, free) = (*total, *free);
    let share = if total > 0 { free as f64 / total as f64 } else { 0.0 };
    let text = format!("{} MiB free of {} MiB on {} ({:.0} %)", free >> 20, total >> 20, path.display(), share * 100.0);
    let todo = "free space on the data partition (old update bundles, logs) or lower cache.max_bytes in uplink.toml";
    if free < 128 << 20 {
        error(C, format!("nearly full: {text}"), todo)
    } else if let Some(room) = cache_headroom.filter(|r| free < *r) {
        error(
            C,
            format!("{text}, but the cache may still grow by {} MiB: data would be lost before the cache's own bound", room >> 20),
            todo,
        )
    } else if share < 0.10 && free < 2 << 30 {
        warn(C, format!("getting full: {text}"), todo)
    } else {
        ok(C, text)
    }
}

fn clock_finding(c: &Trust) -> Finding {
    const C: &str = "clock";
    match c {
        Trust::Synced => ok(C, "synchronized"),
        Trust::Believed => warn(
            C,
            "not synchronized yet; the battery-backed clock is believed: time stamps may drift",
            "check that an NTP server is reachable (timedatectl timesync-status)",
        ),
        Trust::Unset(why) => error(
            C,
            format!("not set ({why}): every value is marked \"gateway clock unset\" until it is"),
            "set up time synchronisation (systemd-timesyncd: an NTP server the box reaches), or set the time once (timedatectl set-time)",
        ),
    }
}

/// The data partition: `ENOS_DATA_DIR` when set (an image with another layout, a test), else
/// `/data` on the box, the root elsewhere.
fn data_disk() -> Option<(PathBuf, u64, u64)> {
    let path = match std::env::var_os("ENOS_DATA_DIR") {
        Some(d) => PathBuf::from(d),
        None if Path::new("/data").is_dir() => PathBuf::from("/data"),
        None => PathBuf::from("/"),
    };
    let d = enos_runtime::sys::Disk::of(&path)?;
    Some((path, d.total_bytes, d.free_bytes))
}

/// The clock as the collector sees it, with the floor it keeps beside its configuration.
fn clock() -> Trust {
    let floor = enos_config::operator_config_path("collector").with_file_name("clock-floor");
    Clock::from_env(Some(floor)).check(enos_batch::now_ms())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        let mut u = UplinkStatus::default();
        u.cloud.state = "connected".into();
        u.cloud.uri = "tcp://127.0.0.1:1883".into();
        u.cache.max_bytes = 1 << 30;
        Facts {
            bus: Ok(()),
            collector: Ok(CollectorStats { state: "ok".into(), devices: 1, devices_online: 1, ..Default::default() }),
            devices: Ok(vec![DeviceStatus {
                id: "inv01".into(),
                protocol: "modbus-tcp".into(),
                state: "online".into(),
                last_ok_ms: None,
                last_error: None,
                polls_ok: 1,
                polls_failed: 0,
                points: 3,
                discarded_answers: 0,
                requests_unanswered: 0,
                split_reads: vec![],
                product_key: None,
            }]),
            uplink: Ok(u),
            ota: Ok(OtaStatus { state: "idle".into(), version: "1.0.0".into(), booted_slot: "A".into(), job: None }),
            disk: Some(("/data".into(), 1 << 34, 1 << 33)),
            clock: Trust::Synced,
            now_ms: 1_800_000_000_000,
        }
    }

    #[test]
    fn a_healthy_box_is_all_good() {
        let f = judge(&facts());
        assert_eq!(worst(&f), Mark::Ok, "{}", render(&f));
        assert!(render(&f).ends_with("all good\n"));
    }

    #[test]
    fn a_clock_not_set_is_an_error_and_one_only_believed_a_warning_in_words() {
        let mut x = facts();
        x.clock = Trust::Believed;
        assert_eq!(worst(&judge(&x)), Mark::Warning);
        x.clock = Trust::Unset("no time synchronisation yet and no battery-backed clock");
        let f = judge(&x);
        assert_eq!(worst(&f), Mark::Error);
        assert!(
            render(&f).contains("not set (no time synchronisation yet and no battery-backed clock): every value is marked"),
            "{}",
            render(&f)
        );
    }

    #[test]
    fn a_pending_trial_boot_and_a_full_disk() {
        let mut x = facts();
        if let Ok(o) = &mut x.ota {
            o.job = Some(enos_bus::OtaJob {
                state: "verifying".into(),
                version: "2.0.0".into(),
                to_slot: "B".into(),
                desc: "checking health".into(),
                ..Default::default()
            });
        }
        let f = judge(&x);
        assert_eq!(worst(&f), Mark::Warning);
        assert!(render(&f).contains("a trial boot of version 2.0.0 (slot B) awaits its health check"), "{}", render(&f));
        x.disk = Some(("/data".into(), 1 << 34, 1 << 20));
        assert_eq!(worst(&judge(&x)), Mark::Error);
        // 900 MiB free would do, but not for a cache allowed 1 GiB
        x.disk = Some(("/data".into(), 1 << 34, 900 << 20));
        assert!(render(&judge(&x)).contains("the cache may still grow by 1024 MiB"), "{}", render(&judge(&x)));
    }
}
