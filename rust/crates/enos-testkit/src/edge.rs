//! One edge gateway on real parts, for end-to-end tests and the fault campaign: the service
//! binaries on a private dbus-daemon, a real mosquitto behind the cloud simulator, RocksDB in a
//! temp dir, a simulated Modbus device whose `counter` point counts up at every read.

use crate::cloud_sim::CloudSim;
use crate::harness::{run_tool, spawn_service_env, Bus, Mosquitto, Proc};
use crate::modbus_sim::SimServer;
use crate::wait_for;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

pub const PK: &str = "pkGW";
pub const GW: &str = "gw01";
pub const SUB_PK: &str = "pkInv";

pub struct Edge {
    pub dir: tempfile::TempDir,
    pub bus: Bus,
    pub broker: Mosquitto,
    pub cloud: CloudSim,
    pub sim: SimServer,
    pub collector: Proc,
    pub uplink: Proc,
    /// More environment for both services (`start_prepared`).
    pub env: Vec<(String, String)>,
    /// The file system the uplink's cache is on, when it is a small one (`start_on_small_disk`).
    pub small_disk: Option<SmallDisk>,
}

/// A tmpfs of a few MiB mounted in the edge's directory (needs root), for a data partition that
/// fills up: another program's file takes the space and gives it back. Unmounted when dropped.
pub struct SmallDisk {
    pub dir: PathBuf,
}

impl SmallDisk {
    /// Size of the small disk and the free space the uplink's cache keeps on it.
    pub const SIZE: u64 = 48 << 20;
    pub const KEEP_FREE: u64 = 16 << 20;
    const FILLER: &'static str = "other-program.log";

    /// Mounts one at `dir` (made here).
    pub fn mount(dir: PathBuf) -> SmallDisk {
        std::fs::create_dir(&dir).unwrap();
        let ok =
            std::process::Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={}", Self::SIZE), "tmpfs"]).arg(&dir).status();
        assert!(ok.is_ok_and(|s| s.success()), "mounting a tmpfs for the cache needs root: {}", dir.display());
        SmallDisk { dir }
    }

    pub fn free(&self) -> u64 {
        enos_runtime::sys::Disk::of(&self.dir).expect("statvfs of the small disk").free_bytes
    }

    /// Another program's file takes all but about `left` bytes. Written in steps, the free space
    /// read before each: the uplink writes beside it, and neither may meet ENOSPC (RocksDB as
    /// Debian builds it aborts there; the cache keeps it from that only by leaving room).
    pub fn fill_leaving(&self, left: u64) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(Self::FILLER)).unwrap();
        let step = vec![0u8; 256 << 10];
        loop {
            let free = self.free();
            if free <= left {
                return;
            }
            let n = (free - left).min(step.len() as u64) as usize;
            match f.write_all(&step[..n]) {
                Ok(()) => {}
                // the uplink took the rest meanwhile: full is what was asked for
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => return,
                Err(e) => panic!("filling {}: {e}", self.dir.display()),
            }
        }
    }

    /// That program's file is gone again.
    pub fn unfill(&self) {
        let _ = std::fs::remove_file(self.dir.join(Self::FILLER));
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

pub fn collector_toml(addr: &str) -> String {
    format!(
        r#"
[push]
interval_ms = 100

[[device]]
id = "inv01"
protocol = "modbus-tcp"
address = "{addr}"
timeout_ms = 2000
retries = 0
offline_after = 2
reconnect_min_ms = 100
reconnect_max_ms = 400
poll_groups = [{{ name = "fast", interval_ms = 100 }}, {{ name = "slow", interval_ms = 300 }}]
points_csv = "inv01.csv"
"#
    )
}

pub const POINTS_CSV: &str = "name,area,address,type,order,scale,group,access,min,max\n\
counter,holding,0,u32,ABCD,,fast,r,,\n\
power,holding,2,f32,CDAB,,fast,r,,\n\
setpoint,holding,10,u16,,0.1,slow,rw,0,100\n\
broken,holding,20,u16,,,slow,rw,0,100\n\
switch,coil,0,bool,,,slow,rw,,\n";

pub fn uplink_toml(uri: &str, cache: &std::path::Path) -> String {
    format!(
        r#"
[cloud]
uri = "{uri}"
allow_plain = true
product_key = "{PK}"
device_key = "{GW}"
device_secret = "gw-secret"
reconnect_min_ms = 200
reconnect_max_ms = 1000

[cache]
dir = "{}"

[sender]
resume_after_s = 2
reply_timeout_s = 3
max_attempts = 3

[health]
interval_s = 1

[[sub_device]]
device = "inv01"
product_key = "{SUB_PK}"
device_key = "inv01"
device_secret = "inv-secret"
"#,
        cache.display()
    )
}

impl Edge {
    pub async fn start() -> Edge {
        Edge::start_with("").await
    }

    /// `uplink_extra`: more of `uplink.toml` (tables after the rest; `{dir}` is the edge's directory).
    pub async fn start_with(uplink_extra: &str) -> Edge {
        Edge::start_prepared(uplink_extra, |_| Vec::new()).await
    }

    /// As `start`, the uplink's cache on a `SmallDisk` (keeping `SmallDisk::KEEP_FREE` free).
    pub async fn start_on_small_disk() -> Edge {
        let disk = std::sync::Mutex::new(None);
        let mut e = Edge::start_prepared("", |dir| {
            let d = SmallDisk::mount(dir.join("data"));
            let toml = std::fs::read_to_string(dir.join("uplink.toml")).unwrap();
            let cache = format!("dir = \"{}\"", dir.join("cache").display());
            let moved = format!("dir = \"{}\"\nkeep_free_bytes = {}", d.dir.join("cache").display(), SmallDisk::KEEP_FREE);
            std::fs::write(dir.join("uplink.toml"), toml.replace(&cache, &moved)).unwrap();
            *disk.lock().unwrap() = Some(d);
            Vec::new()
        })
        .await;
        e.small_disk = disk.into_inner().unwrap();
        e
    }

    /// As `start_with`, and `prepare` gets the edge's directory, its files written, before the
    /// services start (a file system to mount, a configuration to change); it returns more
    /// environment for both services.
    pub async fn start_prepared(uplink_extra: &str, prepare: impl FnOnce(&std::path::Path) -> Vec<(String, String)>) -> Edge {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::start(dir.path());
        let broker = Mosquitto::start(dir.path());
        let cloud = CloudSim::start(broker.port, HashMap::from([(GW.to_string(), "gw-secret".to_string())])).await;
        let sim = SimServer::start(1).await;
        sim.with(|s| {
            s.counters.push(0);
            // power = 231.4 as f32, CDAB
            s.holding.insert(2, 0x6666);
            s.holding.insert(3, 0x4367);
            s.forbidden.push(20);
        });
        std::fs::write(dir.path().join("collector.toml"), collector_toml(&sim.addr.to_string())).unwrap();
        std::fs::write(dir.path().join("inv01.csv"), POINTS_CSV).unwrap();
        std::fs::write(
            dir.path().join("uplink.toml"),
            uplink_toml(&cloud.uri(), &dir.path().join("cache")) + &uplink_extra.replace("{dir}", &dir.path().display().to_string()),
        )
        .unwrap();
        let env = prepare(dir.path());
        let mut e = Edge {
            env,
            small_disk: None,
            collector: Proc { child: None, name: String::new() },
            uplink: Proc { child: None, name: String::new() },
            dir,
            bus,
            broker,
            cloud,
            sim,
        };
        e.start_uplink();
        e.start_collector();
        e
    }
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("services.log")
    }
    pub fn start_uplink(&mut self) {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.uplink = spawn_service_env("enos-uplink", &self.dir.path().join("uplink.toml"), &self.bus.address, &self.log(), &env);
    }
    pub fn start_collector(&mut self) {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.collector = spawn_service_env("enos-collector", &self.dir.path().join("collector.toml"), &self.bus.address, &self.log(), &env);
    }
    pub fn served(&self) -> Vec<u32> {
        self.sim.with(|s| s.served.get(&0).cloned().unwrap_or_default())
    }
    /// Counter values the cloud stored (with duplicates).
    pub fn received(&self) -> Vec<(u64, u64, bool)> {
        self.cloud.with(|r| {
            r.points
                .iter()
                .filter(|p| p.point == "counter" && p.device_key.as_deref() == Some("inv01") && p.product_key.as_deref() == Some(SUB_PK))
                .filter_map(|p| p.value.as_u64().map(|v| (v, p.time, p.resume)))
                .collect()
        })
    }
    /// The uplink's part of `enosctl --json status` (null when it does not answer).
    pub fn uplink_status(&self) -> serde_json::Value {
        let (_, out, _) = run_tool("enosctl", &["--json", "status"], &self.bus.address);
        serde_json::from_str::<serde_json::Value>(&out).ok().and_then(|v| v.get("uplink").cloned()).unwrap_or_default()
    }
    /// Failed polls of inv01 so far, as the collector reports them.
    pub fn failed_polls(&self) -> usize {
        let (_, out, _) = run_tool("enosctl", &["--json", "devices"], &self.bus.address);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        v.as_array().and_then(|a| a.iter().find(|d| d["id"] == "inv01")).and_then(|d| d["polls_failed"].as_u64()).unwrap_or(0) as usize
    }

    /// Stops the device so nothing new is served, then waits until the cloud has every value.
    ///
    /// A value can be served and still never be collected without any fault of the data path:
    /// when the collector timed out on that read (the answer came too late, the poll failed), or
    /// for the very last read, answered while the device was being unplugged. So: every served
    /// value must arrive except at most one per failed poll before the unplug, and the last one.
    pub async fn settle(&mut self) -> (Vec<u32>, Vec<(u64, u64, bool)>) {
        self.settle_allowing(0).await
    }

    /// `extra`: values that may go missing beyond the accounted ones (see the kill -9 test).
    pub async fn settle_allowing(&mut self, extra: usize) -> (Vec<u32>, Vec<(u64, u64, bool)>) {
        let allowance = self.failed_polls() + extra;
        self.sim.unplug();
        // let in-flight polls finish: the served list stops growing
        let mut last = usize::MAX;
        wait_for(10, "the device to go quiet", || {
            let n = self.served().len();
            let quiet = n == last;
            last = n;
            std::thread::sleep(std::time::Duration::from_millis(400));
            quiet.then_some(())
        })
        .await;
        let served = self.served();
        let mut want: BTreeSet<u64> = served.iter().map(|&v| v as u64).collect();
        let last_served = want.iter().next_back().copied();
        let log = self.log();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut done = false;
        while !done && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let got: BTreeSet<u64> = self.received().iter().map(|r| r.0).collect();
            let missing = want.difference(&got).count();
            done = missing <= allowance && got.iter().next_back() >= want.iter().next_back();
        }
        if !done {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(80).collect::<Vec<_>>().into_iter().rev().collect();
            eprintln!("---- services.log (last 80 lines) ----\n{}", tail.join("\n"));
            let keep = std::env::temp_dir().join(format!("enos-data-path-{}.log", std::process::id()));
            let _ = std::fs::copy(&log, &keep);
            eprintln!("---- the whole log is kept in {} ----", keep.display());
        }
        wait_for(1, "every served counter value to reach the cloud", || {
            let got: BTreeSet<u64> = self.received().iter().map(|r| r.0).collect();
            if let Some(l) = last_served {
                if !got.contains(&l) && got.iter().next_back().is_some_and(|g| *g + 1 == l) {
                    want.remove(&l); // the unplug race
                }
            }
            let missing: Vec<_> = want.difference(&got).collect();
            if missing.len() <= allowance && got.iter().next_back() >= want.iter().next_back() {
                Some(())
            } else {
                eprintln!(
                    "still missing {} values (allowed {allowance}), e.g. {:?}; log {}",
                    missing.len(),
                    &missing[..missing.len().min(10)],
                    log.display()
                );
                None
            }
        })
        .await;
        (served, self.received())
    }
}
