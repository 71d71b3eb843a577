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
}

/// The code the cloud refuses with (EnOS answers errors with codes other than 200).
pub const REFUSAL_CODE: i64 = 500;

impl Fault {
    pub const ALL: [Fault; 8] = [
        Fault::KillUplink,
        Fault::KillCollector,
        Fault::KillBoth,
        Fault::BrokerDown,
        Fault::CloudRefuses,
        Fault::CloudSilent,
        Fault::LinkDrops,
        Fault::BrokerRestarts,
    ];
    pub const KILLS: [Fault; 3] = [Fault::KillUplink, Fault::KillCollector, Fault::KillBoth];
    pub const OUTAGES: [Fault; 5] = [Fault::BrokerDown, Fault::CloudRefuses, Fault::CloudSilent, Fault::LinkDrops, Fault::BrokerRestarts];

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
