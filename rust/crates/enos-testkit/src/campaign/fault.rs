//! The fault kinds of the campaign and how each is injected into an `Edge`.

use crate::edge::Edge;
use std::time::{Duration, Instant};

/// One kind of fault; a cycle injects one.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub enum Fault {
    KillUplink,
    KillCollector,
    KillBoth,
    /// mosquitto killed, restarted after the outage.
    BrokerDown,
    /// Every telemetry message answered with a code other than 200 during the outage.
    CloudRefuses,
    /// Telemetry messages not answered at all during the outage (the uplink's reply timeout).
    CloudSilent,
    /// A backlog built up (cloud silent), then the gateway's link cut 1-3 times while it drains.
    LinkDrops,
    /// A backlog built up (broker down), then mosquitto killed and restarted 3-8 times while it
    /// drains: the condition a paho double free was once seen under.
    BrokerRestarts,
    /// Another program fills the data partition under the uplink's cache (a tmpfs, see
    /// `SmallDisk`) to below half of what the cache keeps free, and deletes its file after the
    /// outage: the uplink stores nothing meanwhile and the collector holds what it reads.
    DiskFull,
}

/// The code the cloud refuses with (EnOS answers errors with codes other than 200).
pub const REFUSAL_CODE: i64 = 500;

impl Fault {
    pub const ALL: [Fault; 9] = [
        Fault::KillUplink,
        Fault::KillCollector,
        Fault::KillBoth,
        Fault::BrokerDown,
        Fault::CloudRefuses,
        Fault::CloudSilent,
        Fault::LinkDrops,
        Fault::BrokerRestarts,
        Fault::DiskFull,
    ];
    pub const KILLS: [Fault; 3] = [Fault::KillUplink, Fault::KillCollector, Fault::KillBoth];
    pub const OUTAGES: [Fault; 6] =
        [Fault::BrokerDown, Fault::CloudRefuses, Fault::CloudSilent, Fault::LinkDrops, Fault::BrokerRestarts, Fault::DiskFull];

    /// The name `--kinds` takes.
    pub fn name(self) -> &'static str {
        match self {
            Fault::KillUplink => "kill-uplink",
            Fault::KillCollector => "kill-collector",
            Fault::KillBoth => "kill-both",
            Fault::BrokerDown => "broker-down",
            Fault::CloudRefuses => "cloud-refuses",
            Fault::CloudSilent => "cloud-silent",
            Fault::LinkDrops => "link-drops",
            Fault::BrokerRestarts => "broker-restarts",
            Fault::DiskFull => "disk-full",
        }
    }

    /// The table's words.
    pub fn label(self) -> &'static str {
        match self {
            Fault::KillUplink => "kill -9 uplink",
            Fault::KillCollector => "kill -9 collector",
            Fault::KillBoth => "kill -9 both",
            Fault::BrokerDown => "broker stopped, restarted",
            Fault::CloudRefuses => "cloud answers 500",
            Fault::CloudSilent => "cloud does not answer",
            Fault::LinkDrops => "link dropped mid-drain",
            Fault::BrokerRestarts => "broker restarts under load",
            Fault::DiskFull => "data partition full",
        }
    }

    /// `kills`, `outages`, `all`, or names, comma-separated.
    pub fn parse_list(s: &str) -> Result<Vec<Fault>, String> {
        let mut out = Vec::new();
        for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match w {
                "all" => out.extend(Fault::ALL),
                "kills" => out.extend(Fault::KILLS),
                "outages" => out.extend(Fault::OUTAGES),
                _ => match Fault::ALL.iter().find(|f| f.name() == w) {
                    Some(f) => out.push(*f),
                    None => {
                        let names: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
                        return Err(format!("unknown fault kind \"{w}\": use all, kills, outages or {}", names.join(", ")));
                    }
                },
            }
        }
        out.dedup();
        if out.is_empty() {
            return Err("no fault kind given".into());
        }
        Ok(out)
    }

    pub fn kills_collector(self) -> bool {
        matches!(self, Fault::KillCollector | Fault::KillBoth)
    }
    pub fn kills_uplink(self) -> bool {
        matches!(self, Fault::KillUplink | Fault::KillBoth)
    }
    /// Whether the fault lasts an outage (a random length) rather than an instant.
    pub fn is_outage(self) -> bool {
        Fault::OUTAGES.contains(&self)
    }
}

/// Until the cloud got more points than `before` (the gateway is sending again), at most `secs`.
async fn until_points_arrive(e: &Edge, before: u64, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline && e.cloud.with(|r| r.points_total) <= before {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Injects an outage kind for `outage` (plus, for the mid-drain kinds, the cuts that follow:
/// `extra` of them, each after `gap()` once data flows again). Returns when the fault ended.
pub(super) async fn outage(e: &mut Edge, f: Fault, outage: Duration, extra: usize, mut gap: impl FnMut() -> Duration) -> Instant {
    match f {
        Fault::BrokerDown | Fault::BrokerRestarts => {
            e.broker.stop();
            tokio::time::sleep(outage).await;
            e.broker.restart();
        }
        Fault::CloudRefuses => {
            e.cloud.with(|r| r.refusing = Some(REFUSAL_CODE));
            tokio::time::sleep(outage).await;
            e.cloud.with(|r| r.refusing = None);
        }
        Fault::CloudSilent | Fault::LinkDrops => {
            e.cloud.with(|r| r.silent = true);
            tokio::time::sleep(outage).await;
            e.cloud.with(|r| r.silent = false);
        }
        Fault::DiskFull => {
            let disk = e.small_disk.as_ref().expect("a disk-full campaign runs the cache on a small disk");
            disk.fill_leaving(1 << 20);
            // the fault took: the uplink met the full disk (at its next batch) and says so
            crate::wait_for(10, "the uplink to say the disk is full", || e.uplink_status()["cache"]["disk_low"].as_str().map(drop)).await;
            tokio::time::sleep(outage).await;
            disk.unfill();
        }
        _ => unreachable!("not an outage: {f:?}"),
    }
    if matches!(f, Fault::LinkDrops | Fault::BrokerRestarts) {
        for _ in 0..extra {
            // while the backlog drains: data flows again, then a random moment later
            let before = e.cloud.with(|r| r.points_total);
            until_points_arrive(e, before, 10).await;
            tokio::time::sleep(gap()).await;
            if f == Fault::LinkDrops {
                e.cloud.cut_links();
            } else {
                e.broker.restart(); // kill -9, then started again
            }
        }
    }
    Instant::now()
}
