//! Benchmarks of the data path, printed as one table (not a test: nothing here asserts speed).
//! Run through `scripts/bench`, which builds in release mode first.

use clap::Parser;
use enos_batch::{BatchBuilder, Quality, Value};
use enos_cache::{Cache, Sync};
use enos_testkit::cloud_sim::CloudSim;
use enos_testkit::harness::{spawn_service, Bus, Mosquitto, Proc};
use enos_testkit::iec62056_sim::{MeterSim, READOUT};
use enos_testkit::modbus_sim::SimServer;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

// The IEC 62056-21 example's parser compiled from the plugin's own source file (not a copy):
// the "same logic native" of the plugin comparison. The plugin's settings and identification
// fields the bench's loop does not read are dead code here.
#[path = "../../../../plugins/iec62056/src/readout.rs"]
#[allow(dead_code)]
mod iec62056_readout;

#[derive(Parser)]
struct Args {
    /// Field devices simulated (one Modbus TCP server each).
    #[arg(long, default_value_t = 20)]
    devices: usize,
    /// Points per device (u16 registers with scale 0.1, and f32 pairs).
    #[arg(long, default_value_t = 500)]
    points: usize,
    /// Poll interval.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// Seconds of each measured phase.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Only the in-process figures (codec, cache).
    #[arg(long)]
    quick: bool,
    /// Instead of the end-to-end table: the collector's ceiling. Offered load steps up (the poll
    /// interval shortened from --interval-ms) until the collector no longer hands everything to
    /// the uplink; then 1.5x the highest rate handed on in full, with its RSS over time.
    #[arg(long)]
    ceiling: bool,
    /// Only the collector's memory per configured point: Modbus (100 devices x 1,000 points), IEC 104 and DNP3 (10 x 10,000),
    /// DL/T 645 (2,500 meters x 40 points on 100 lines)
    #[arg(long)]
    point_memory: bool,
    /// Only DL/T 645's memory per configured point (the last row of --point-memory).
    #[arg(long)]
    dlt645: bool,
    /// Only IEC 104: spontaneous values end to end (one station, 1,000 IOAs) at offered rates.
    #[arg(long)]
    iec104: bool,
    /// Only DNP3: unsolicited analog events end to end (one outstation, 1,000 points) at offered
    /// rates.
    #[arg(long)]
    dnp3: bool,
    /// Only OPC UA: one server with 10,000 monitored items, values end to end at offered rates
    /// and the collector's RSS per configured point (the asyncua test server).
    #[arg(long)]
    opcua: bool,
    /// Only protocol plugins: compile time, memory per plugin and per instance, calls through
    /// the sandbox, the IEC 62056-21 example against a meter interpreted / as machine code /
    /// its parser native, the collector's RSS with 0, 1 and 20 plugin devices (builds the
    /// plugins with scripts/plugin first).
    #[arg(long)]
    plugins: bool,
    /// Only synchronisation with the cloud: a package from the cloud to its new point's first
    /// value accepted by the cloud, and a new local device to its first point accepted (with its
    /// registration).
    #[arg(long)]
    sync: bool,
    /// Only the soak: the end-to-end load (--devices x --points every --interval-ms) for
    /// --minutes, the broker stopped for --outage-s once every --cycle-s; per cycle the services'
    /// RSS, open files and the cache's disk use, which must stay flat.
    #[arg(long)]
    soak: bool,
    /// The soak's length.
    #[arg(long, default_value_t = 60)]
    minutes: u64,
    /// One soak cycle: live data, an outage, the backlog drained, live data again.
    #[arg(long, default_value_t = 300)]
    cycle_s: u64,
    /// The outage in each soak cycle.
    #[arg(long, default_value_t = 60)]
    outage_s: u64,
}

struct Table(Vec<(String, String)>);
impl Table {
    fn row(&mut self, k: impl Into<String>, v: impl Into<String>) {
        let (k, v) = (k.into(), v.into());
        println!("  {k}: {v}");
        self.0.push((k, v));
    }
}

fn realistic_batch(series: usize, samples: usize, t0: u64, seed: u64) -> (Vec<u8>, usize) {
    let mut b = BatchBuilder::new();
    for s in 0..samples {
        for p in 0..series {
            let drift = ((seed + s as u64 * 7 + p as u64 * 13) % 5) as i64 - 2;
            let v = if p % 2 == 0 {
                Value::Float((2300 + (p as i64 % 50) + drift) as f64 / 10.0) // u16 x 0.1
            } else {
                let f = 230.0f32 + ((s as f32 + p as f32) / 30.0).sin() * 20.0; // f32 sensor
                Value::Float(format!("{f}").parse().unwrap())
            };
            b.push(&format!("dev{:02}", p / 500), &format!("P{p:04}"), t0 + s as u64 * 100, v, Quality::Good);
        }
    }
    let n = b.len();
    (b.finish(), n)
}

fn proc_stat(p: &Proc) -> (u64, f64) {
    pid_stat(p.child.as_ref().map(|c| c.id()).unwrap_or(0))
}

/// A process's resident memory (KiB) and CPU time so far (s).
fn pid_stat(pid: u32) -> (u64, f64) {
    (status_kb(pid, "VmRSS:"), cpu_s(&format!("/proc/{pid}/stat")))
}

/// User + system CPU time (s) from a `/proc/.../stat` file (a process's or a thread's).
fn cpu_s(stat: &str) -> f64 {
    std::fs::read_to_string(stat)
        .ok()
        .and_then(|s| {
            let f: Vec<&str> = s.rsplit(')').next()?.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(0.0)
}

fn pct(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p) as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = Args::parse();
    let mut t = Table(Vec::new());
    println!("EnOS Edge benchmark on {} cores", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));
    // The plugins built and packed once: the in-process rows, then the collector's.
    let packed = a.plugins.then(|| {
        let d = tempfile::tempdir().unwrap();
        plugins(&mut t, d.path());
        d
    });
    if a.sync {
        sync_rows(&mut t).await;
        return print_table(&t);
    }
    if a.point_memory || a.dlt645 || a.iec104 || a.dnp3 || a.opcua || a.plugins {
        // A bus, a broker, the cloud simulator and an uplink with one sub-device, "rtu".
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::start(dir.path());
        let broker = Mosquitto::start(dir.path());
        let cloud = CloudSim::start(broker.port, HashMap::from([("gw".to_string(), "s".to_string())])).await;
        cloud.with(|r| r.drop_points = true);
        let upl = format!(
            "[cloud]\nuri = \"{}\"\nallow_plain = true\nproduct_key = \"pk\"\ndevice_key = \"gw\"\ndevice_secret = \"s\"\nmax_in_flight = 100\n[cache]\ndir = \"{}\"\n[sender]\nresume_after_s = 5\n[health]\ninterval_s = 0\n[[sub_device]]\ndevice = \"rtu\"\nproduct_key = \"pkD\"\ndevice_key = \"rtu\"\ndevice_secret = \"x\"\n",
            cloud.uri(),
            dir.path().join("cache").display()
        );
        std::fs::write(dir.path().join("uplink.toml"), upl).unwrap();
        let log = dir.path().join("services.log");
        let mut uplink = spawn_service("enos-uplink", &dir.path().join("uplink.toml"), &bus.address, &log);
        if a.point_memory {
            point_memory(&mut t, dir.path(), &bus.address, &log).await;
            spontaneous_point_memory(&mut t, dir.path(), &bus.address, &log).await;
        }
        if a.point_memory || a.dlt645 {
            dlt645_point_memory(&mut t, dir.path(), &bus.address, &log).await;
        }
        if a.iec104 {
            iec104_rates(&a, &mut t, dir.path(), &bus.address, &log, &cloud).await;
        }
        if a.dnp3 {
            dnp3_rates(&a, &mut t, dir.path(), &bus.address, &log, &cloud).await;
        }
        if a.opcua {
            opcua_rates(&a, &mut t, dir.path(), &bus.address, &log, &cloud).await;
        }
        if let Some(packed) = &packed {
            plugin_memory(&mut t, dir.path(), &bus.address, &log, packed.path()).await;
        }
        uplink.terminate();
        return print_table(&t);
    }

    if a.soak {
        let mut e = end_to_end(&a).await;
        soak(&a, &mut t, &mut e).await;
        return print_table(&t);
    }

    // --- in process: codec and cache ---
    let (bytes, n) = realistic_batch(1000, 10, 1_700_000_000_000, 1);
    t.row("batch encoding, realistic floats (1000 points x 10 polls)", format!("{:.2} bytes/point", bytes.len() as f64 / n as f64));
    dlt645_reads(&mut t, 3).await;
    let dir = tempfile::tempdir().unwrap();
    for (name, sync) in [("always", Sync::Always), ("never", Sync::Never)] {
        let c = Cache::open(&dir.path().join(name), 8 << 30, 0, sync).unwrap();
        let start = Instant::now();
        let mut pts = 0;
        let batches: Vec<(Vec<u8>, usize)> = (0..20).map(|i| realistic_batch(1000, 10, 1_700_000_000_000 + i * 1000, i)).collect();
        for i in 0..200 {
            let (b, n) = &batches[i % batches.len()];
            c.append(b, i as u64).unwrap();
            pts += n;
        }
        let el = start.elapsed().as_secs_f64();
        t.row(
            format!("cache append, sync={name} (10k-point batches)"),
            format!("{:.0} points/s ({:.1} ms per batch)", pts as f64 / el, el * 1000.0 / 200.0),
        );
        if name == "always" {
            c.flush().unwrap();
            t.row("bytes per cached float point on disk (RocksDB SST, zstd)", format!("{:.2}", c.disk_bytes() as f64 / pts as f64));
            let start = Instant::now();
            let metas = c.oldest(usize::MAX, |_| true);
            for m in &metas {
                let b = c.read(m.seq).unwrap().unwrap();
                let _ = enos_batch::batch::DecodedBatch::decode(&b).unwrap();
                c.remove(m.seq).unwrap();
            }
            t.row("cache drain (read + decode + delete)", format!("{:.0} points/s", pts as f64 / start.elapsed().as_secs_f64()));
        }
    }
    // CPU per point of each stage the data passes, on one core: where a ceiling would come from.
    let stage = |n: usize, f: &mut dyn FnMut()| {
        let start = Instant::now();
        f();
        n as f64 / start.elapsed().as_secs_f64()
    };
    let (sample, n) = realistic_batch(1000, 10, 1_700_000_000_000, 3);
    let names: Vec<(String, String)> = (0..1000).map(|p| (format!("dev{:02}", p / 500), format!("P{p:04}"))).collect();
    let build = stage(1000 * 10 * 20, &mut || {
        for _ in 0..20 {
            let mut b = BatchBuilder::new();
            for s in 0..10u64 {
                for (p, (d, name)) in names.iter().enumerate() {
                    b.push(d, name, 1_700_000_000_000 + s * 100, Value::Float(230.0 + p as f64 / 10.0), Quality::Good);
                }
            }
            std::hint::black_box(b.finish());
        }
    });
    let decoded = enos_batch::batch::DecodedBatch::decode(&sample).unwrap();
    let decode = stage(n * 200, &mut || {
        for _ in 0..200 {
            std::hint::black_box(enos_batch::batch::DecodedBatch::decode(&sample).unwrap());
        }
    });
    let keys: HashMap<String, Option<(String, String)>> =
        (0..2).map(|d| (format!("dev{d:02}"), Some(("pk".into(), format!("dev{d:02}"))))).collect();
    let mut id = 0;
    let pack = stage(n * 50, &mut || {
        for _ in 0..50 {
            let p = enos_cloud::telemetry::pack(
                std::slice::from_ref(&decoded),
                &keys,
                enos_cloud::telemetry::Stream::Live,
                &mut || {
                    id += 1;
                    id
                },
                480 * 1024,
            );
            std::hint::black_box(p);
        }
    });
    t.row("stage: build + encode a batch (collector pusher)", format!("{build:.0} points/s on one core"));
    t.row("stage: decode a batch (uplink sender)", format!("{decode:.0} points/s on one core"));
    t.row("stage: pack EnOS JSON (uplink sender)", format!("{pack:.0} points/s on one core"));
    if a.quick {
        return print_table(&t);
    }

    // --- end to end ---
    let EndToEnd { dir, bus, mut broker, cloud, sims, coll, cfg_c, cfg_u, log } = end_to_end(&a).await;
    if a.ceiling {
        let uplink = spawn_service("enos-uplink", &cfg_u, &bus.address, &log);
        tokio::time::sleep(Duration::from_secs(1)).await;
        ceiling(&a, &mut t, &coll, &cfg_c, &bus.address, &log).await;
        drop(uplink);
        return print_table(&t);
    }
    let mut uplink = spawn_service("enos-uplink", &cfg_u, &bus.address, &log);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (idle_u, _) = proc_stat(&uplink);
    let mut collector = spawn_service("enos-collector", &cfg_c, &bus.address, &log);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (idle_c, _) = proc_stat(&collector);
    t.row("RSS idle (collector / uplink)", format!("{} / {} KiB", idle_c, idle_u));
    let target = a.devices * a.points * 1000 / a.interval_ms as usize;
    t.row("offered load", format!("{} devices x {} points every {} ms = {target} points/s", a.devices, a.points, a.interval_ms));
    tokio::time::sleep(Duration::from_secs(3)).await; // warm up
    cloud.with(|r| r.latencies_ms.clear());
    let (p0, c0, u0) = (cloud.with(|r| r.points_total), proc_stat(&collector).1, proc_stat(&uplink).1);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    let el = start.elapsed().as_secs_f64();
    let (p1, (rss_c, c1), (rss_u, u1)) = (cloud.with(|r| r.points_total), proc_stat(&collector), proc_stat(&uplink));
    let live_rate = (p1 - p0) as f64 / el;
    t.row("end to end, live (points acknowledged by the cloud)", format!("{live_rate:.0} points/s"));
    t.row("RSS under load (collector / uplink)", format!("{rss_c} / {rss_u} KiB (total {:.1} MiB)", (rss_c + rss_u) as f64 / 1024.0));
    let cpu = (c1 - c0 + u1 - u0) / el;
    t.row(
        "CPU (collector + uplink)",
        format!("{:.0}% of one core = {:.2} cores per 100k points/s", cpu * 100.0, cpu / (live_rate / 100_000.0)),
    );
    let mut lat = cloud.with(|r| std::mem::take(&mut r.latencies_ms));
    t.row("acquisition -> cloud, p50 / p99", format!("{} / {} ms", pct(&mut lat, 0.5), pct(&mut lat, 0.99)));

    // control while collecting: from the cloud's publish to the write arriving at the device
    let mut ctl = Vec::new();
    for i in 0..50 {
        let id = format!("c{i}");
        let t0 = enos_batch::now_ms();
        let body =
            format!(r#"{{"id":"{id}","version":"1.0","method":"thing.service.measurepoint.set","params":{{"P0001":{}}}}}"#, 230 + i % 5);
        cloud.command("/sys/pkD/dev03/thing/service/measurepoint/set", body.as_bytes()).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        let t1 = loop {
            if let Some(t) = sims[3].with(|s| s.write_ms.get(i).copied()) {
                break t;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                panic!(
                    "write {i} never reached the device; replies {:?}; log tail:\n{}",
                    cloud.with(|r| r.command_replies.clone()),
                    tail.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        ctl.push(t1.saturating_sub(t0));
    }
    t.row("cloud measurepoint/set -> write at the device, p50 / p99", format!("{} / {} ms", pct(&mut ctl, 0.5), pct(&mut ctl, 0.99)));
    // Every command must be answered, also under load (the answer shares paho's window with telemetry).
    let answered = || {
        cloud.with(|r| {
            let ids: std::collections::HashSet<String> = r
                .command_replies
                .iter()
                .filter(|(_, v)| v["code"] == 200)
                .filter_map(|(_, v)| v["id"].as_str().map(String::from))
                .filter(|id| id.starts_with('c'))
                .collect();
            ids.len()
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered() < 50 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.row("command replies (code 200) received by the cloud", format!("{} / 50", answered()));

    // outage, then drain
    broker.stop();
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    let status = || uplink_status(&bus.address);
    let backlog = status().cache.points;
    let cap = status().cache.outage_hours_capacity;
    t.row(
        "backlog after the outage",
        format!("{backlog} points, capacity {} h at this rate (2 GiB cache)", cap.map(|h| format!("{h:.1}")).unwrap_or("-".into())),
    );
    let (u_cpu0, c_cpu0) = (proc_stat(&uplink).1, proc_stat(&collector).1);
    broker.restart();
    let restarted = Instant::now();
    while status().cloud.state != "connected" && restarted.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.row("broker back -> session up again (reconnect backoff)", format!("{:.1} s", restarted.elapsed().as_secs_f64()));
    // Drained when what is left in the cache is no more than a second of live data; the clock
    // starts with the session, so reconnect time is not counted as drain time.
    let start = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let left = status().cache.points;
        if (left as f64) <= live_rate || start.elapsed() > Duration::from_secs(300) {
            let el = start.elapsed().as_secs_f64();
            let rate = (backlog.saturating_sub(left)) as f64 / el;
            t.row(
                "backlog drain (cache emptied while live data continues)",
                format!("{:.0} points/s on top of live = {:.1}x the live rate ({el:.1} s for {backlog} points)", rate, rate / live_rate),
            );
            let (u, c) = ((proc_stat(&uplink).1 - u_cpu0) / el, (proc_stat(&collector).1 - c_cpu0) / el);
            t.row("CPU while draining (uplink / collector)", format!("{:.0}% / {:.0}% of one core", u * 100.0, c * 100.0));
            break;
        }
    }
    collector.terminate();
    drop(sims);
    point_memory(&mut t, dir.path(), &bus.address, &log).await;
    uplink.terminate();
    print_table(&t);
}

/// DL/T 645 reads per second on one line, against an in-process meter over TCP on 127.0.0.1:
/// the line's own cost (framing, checks, decoding), no baud rate. On RS-485 at 2400 baud a read
/// of a 2-byte value takes about 190 ms on the wire alone.
async fn dlt645_reads(t: &mut Table, seconds: u64) {
    use enos_dlt645::{Address, FieldOrder, Line, LineConfig, Link, Meter, Point};
    let sim = enos_testkit::dlt645_sim::Dlt645Sim::start().await;
    let meter = Meter { address: Address::parse("123456789012").unwrap(), order: FieldOrder::LowFirst };
    let line = Line::new(LineConfig { timeout: Duration::from_secs(1), ..LineConfig::new(Link::Tcp(sim.addr.clone())) });
    let point = Point::new("02010100", None, None).unwrap();
    let (start, mut reads) = (Instant::now(), 0u64);
    while start.elapsed() < Duration::from_secs(seconds) {
        line.read(&meter, &point).await.unwrap();
        reads += 1;
    }
    t.row(
        "DL/T 645 reads on one line (TCP, in-process meter; RS-485 at 2400 baud: ~5/s by the wire)",
        format!("{:.0} reads/s", reads as f64 / start.elapsed().as_secs_f64()),
    );
}

/// IEC 104 end to end: a station (`iec104_sim`, 1,000 IOAs, M_ME_TF_1) offers spontaneous
/// values at rising rates; per rate, the values the cloud acknowledged per second and the
/// collector's CPU per 10k values/s.
async fn iec104_rates(a: &Args, t: &mut Table, dir: &std::path::Path, bus: &str, log: &std::path::Path, cloud: &CloudSim) {
    use enos_testkit::iec104_sim::Iec104Sim;
    const IOAS: u32 = 1000;
    let mut csv = String::from("name,ioa,type\n");
    for i in 1..=IOAS {
        csv.push_str(&format!("P{i:04},{i},M_ME_NC\n"));
    }
    std::fs::write(dir.join("rtu.csv"), csv).unwrap();
    for rate in [10_000u64, 30_000, 60_000] {
        let sim = Iec104Sim::start(IOAS, rate).await;
        let file = dir.join("collector-104.toml");
        std::fs::write(
            &file,
            format!("[[device]]\nid = \"rtu\"\nprotocol = \"iec104\"\naddress = \"{}\"\npoints_csv = \"rtu.csv\"\n", sim.addr),
        )
        .unwrap();
        let mut c = spawn_service("enos-collector", &file, bus, log);
        let (got, offered, cpu) = spontaneous_rates(a, &c, cloud, &sim.sent).await;
        t.row(
            format!("IEC 104 spontaneous values, offered {rate}/s"),
            format!(
                "station sent {offered:.0}/s, cloud acknowledged {got:.0}/s; collector {:.0}% of one core = {:.2} cores per 10k values/s",
                cpu * 100.0,
                cpu / (got.max(1.0) / 10_000.0)
            ),
        );
        c.terminate();
    }
}

/// After 3 s to connect, start up and warm up, over `--seconds` (15 at most): the values the
/// cloud acknowledged per second, the values the device simulator sent (`sent`) per second, and
/// the collector's CPU in cores.
async fn spontaneous_rates(a: &Args, collector: &Proc, cloud: &CloudSim, sent: &std::sync::atomic::AtomicU64) -> (f64, f64, f64) {
    use std::sync::atomic::Ordering::Relaxed;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (p0, c0, s0) = (cloud.with(|r| r.points_total), proc_stat(collector).1, sent.load(Relaxed));
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.seconds.min(15))).await;
    let el = start.elapsed().as_secs_f64();
    let (p1, c1, s1) = (cloud.with(|r| r.points_total), proc_stat(collector).1, sent.load(Relaxed));
    ((p1 - p0) as f64 / el, (s1 - s0) as f64 / el, (c1 - c0) / el)
}

/// DNP3 end to end: an outstation (`dnp3_sim`, 1,000 analog inputs) sends unsolicited events
/// (g32v1, 50 per response) at rising rates; per rate, the events the cloud acknowledged per
/// second and the collector's CPU per 10k events/s.
async fn dnp3_rates(a: &Args, t: &mut Table, dir: &std::path::Path, bus: &str, log: &std::path::Path, cloud: &CloudSim) {
    use enos_testkit::dnp3_sim::Dnp3Sim;
    const POINTS: u32 = 1000;
    let mut csv = String::from("name,type,index\n");
    for i in 0..POINTS {
        csv.push_str(&format!("P{i:04},AI,{i}\n"));
    }
    std::fs::write(dir.join("rtu-dnp3.csv"), csv).unwrap();
    for rate in [5_000u64, 20_000, 50_000] {
        let sim = Dnp3Sim::start(10, POINTS, rate).await;
        let file = dir.join("collector-dnp3.toml");
        std::fs::write(
            &file,
            format!(
                "[[device]]\nid = \"rtu\"\nprotocol = \"dnp3\"\naddress = \"{}\"\noutstation_address = 10\nunsolicited = true\n\
                 integrity_interval_s = 0\nclass1_interval_ms = 0\nclass2_interval_ms = 0\nclass3_interval_ms = 0\npoints_csv = \"rtu-dnp3.csv\"\n",
                sim.addr
            ),
        )
        .unwrap();
        let mut c = spawn_service("enos-collector", &file, bus, log);
        let (got, offered, cpu) = spontaneous_rates(a, &c, cloud, &sim.sent).await;
        t.row(
            format!("DNP3 unsolicited events, offered {rate}/s"),
            format!(
                "outstation sent {offered:.0}/s, cloud acknowledged {got:.0}/s; collector {:.0}% of one core = {:.2} cores per 10k events/s",
                cpu * 100.0,
                cpu / (got.max(1.0) / 10_000.0)
            ),
        );
        c.terminate();
    }
}

/// OPC UA end to end: the asyncua test server (`peers/opcua_server.py --bench`) with 10,000
/// Double variables, one device subscribed to all of them (publishing every 200 ms, queues of
/// 10, so no change is folded into a later one below 50 changes per item per second). First the
/// collector's RSS with 1 monitored item, with the 10,000 nodes polled every second and with
/// 10,000 monitored items, settled after every item's first value reached the cloud: bytes per
/// configured point. Then the server changes the items round robin
/// at rising rates; per rate the changes the server made and the cloud acknowledged per second,
/// and the CPU of the collector and of the server (Python: at its limit the server, not the
/// collector, sets the figure).
async fn opcua_rates(a: &Args, t: &mut Table, dir: &std::path::Path, bus: &str, log: &std::path::Path, cloud: &CloudSim) {
    use enos_testkit::opcua_server::Server;
    const ITEMS: usize = 10_000;
    const OPCUA_DEVICES: usize = 10;
    let port = enos_testkit::free_port();
    let started = Instant::now();
    let mut server = Server::start(port, &dir.join("opcua-server"), &["--bench", &ITEMS.to_string()]);
    println!("  (the server made {ITEMS} variables in {:.1} s)", started.elapsed().as_secs_f64());
    let mut csv = String::from("name,node,queue_size\n");
    let mut polled = String::from("name,node,mode\n");
    for i in 0..ITEMS {
        csv.push_str(&format!("B{i:05},ns=2;s=B{i:05},10\n"));
        polled.push_str(&format!("B{i:05},ns=2;s=B{i:05},poll\n"));
    }
    std::fs::write(dir.join("rtu-opcua-1.csv"), csv.lines().take(2).map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    std::fs::write(dir.join("rtu-opcua.csv"), csv).unwrap();
    std::fs::write(dir.join("rtu-opcua-poll.csv"), polled).unwrap();
    let file = dir.join("collector-opcua.toml");
    let mut rss = Vec::new();
    let mut collector: Option<Proc> = None;
    // the same 10,000 nodes polled every second (no monitored items), then subscribed: the
    // last one stays for the rates
    for (table, items) in [("rtu-opcua-1.csv", 1u64), ("rtu-opcua-poll.csv", ITEMS as u64), ("rtu-opcua.csv", ITEMS as u64)] {
        if let Some(mut old) = collector.take() {
            old.terminate();
        }
        std::fs::write(
            &file,
            format!(
                "[push]\ninterval_ms = 200\n[[device]]\nid = \"rtu\"\nprotocol = \"opcua\"\nendpoint = \"opc.tcp://127.0.0.1:{port}/enos/test\"\n\
                 security_policy = \"None\"\npki_dir = \"{}\"\npublishing_interval_ms = 200\npoints_csv = \"{table}\"\n",
                dir.join("opcua-pki").display()
            ),
        )
        .unwrap();
        let c = spawn_service("enos-collector", &file, bus, log);
        let started = Instant::now();
        // every item's first value handed to the uplink: the subscription is whole (the
        // counter is the new collector's own; the cloud's still counted the last collector's
        // values queued in the uplink, and once read 0.2 s here)
        while collector_stats(bus).samples_pushed < items {
            assert!(started.elapsed() < Duration::from_secs(300), "the first values of {items} items were not handed on in 300 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if table == "rtu-opcua.csv" {
            t.row(
                format!("OPC UA, {ITEMS} monitored items: start to every first value handed to the uplink"),
                format!("{:.1} s", started.elapsed().as_secs_f64()),
            );
        }
        // settled as in --point-memory: the highest of four readings 5 s apart after 5 s
        tokio::time::sleep(Duration::from_secs(5)).await;
        rss.push(highest_memory(&c).await);
        collector = Some(c);
    }
    let mut collector = collector.expect("started");
    t.row(format!("collector RSS, OPC UA 1 / {ITEMS} monitored items (one server, idle)"), per_point(rss[0], rss[2], ITEMS - 1));
    t.row(format!("collector RSS, OPC UA 1 monitored item / {ITEMS} points polled every s"), per_point(rss[0], rss[1], ITEMS - 1));
    let sent = |s: &mut Server| s.send("sent").rsplit(' ').next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    for rate in [2_000u64, 5_000, 10_000] {
        server.send(&format!("rate {rate}"));
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (p0, c0, s0, v0) = (cloud.with(|r| r.points_total), proc_stat(&collector).1, pid_stat(server.pid()).1, sent(&mut server));
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(a.seconds.min(15))).await;
        let (p1, c1, s1, v1) = (cloud.with(|r| r.points_total), proc_stat(&collector).1, pid_stat(server.pid()).1, sent(&mut server));
        let el = start.elapsed().as_secs_f64();
        let (got, made, cpu) = ((p1 - p0) as f64 / el, (v1 - v0) as f64 / el, (c1 - c0) / el);
        t.row(
            format!("OPC UA data changes, {ITEMS} items, offered {rate}/s"),
            format!(
                "server made {made:.0}/s ({:.0}% of a core), cloud acknowledged {got:.0}/s; collector {:.0}% of one core = {:.2} cores per 10k values/s",
                (s1 - s0) / el * 100.0,
                cpu * 100.0,
                cpu / (got.max(1.0) / 10_000.0)
            ),
        );
    }
    server.send("rate 0");
    collector.terminate();
    // The same at the other protocols' scale, 100,000 points: ten devices on the server's
    // 10,000 nodes (one session, ten subscriptions), each its own point names (the other rows'
    // devices share theirs); subscribed, then polled every second. At 10,000 points the
    // collector's code pages, which differ by up to ±300 KiB between runs, are ±30 bytes a point.
    for (mode, column, value) in [("subscribed", "queue_size", "10"), ("polled", "mode", "poll")] {
        for d in 0..OPCUA_DEVICES {
            let rows: String = (0..ITEMS).map(|i| format!("D{d}B{i:05},ns=2;s=B{i:05},{value}\n")).collect();
            std::fs::write(dir.join(format!("plc{d}-1.csv")), format!("name,node,{column}\nD{d}B00000,ns=2;s=B00000,{value}\n")).unwrap();
            std::fs::write(dir.join(format!("plc{d}.csv")), format!("name,node,{column}\n{rows}")).unwrap();
        }
        let (mut big, mut rate) = (Vec::new(), 0.0);
        for (suffix, points) in [("-1", 1u64), ("", ITEMS as u64)] {
            let mut cfg = String::from("[push]\ninterval_ms = 200\n");
            for d in 0..OPCUA_DEVICES {
                let table = format!("plc{d}{suffix}.csv");
                cfg.push_str(&format!(
                    "[[device]]\nid = \"plc{d}\"\nprotocol = \"opcua\"\nendpoint = \"opc.tcp://127.0.0.1:{port}/enos/test\"\n\
                     security_policy = \"None\"\npki_dir = \"{}\"\npublishing_interval_ms = 200\npoll_interval_ms = 1000\npoints_csv = \"{table}\"\n",
                    dir.join("opcua-pki").display()
                ));
            }
            std::fs::write(&file, cfg).unwrap();
            let mut c = spawn_service("enos-collector", &file, bus, log);
            let started = Instant::now();
            // every item's first value handed to the uplink (the devices are not the cloud's;
            // the counter is the new collector's own)
            while collector_stats(bus).samples_pushed < points * OPCUA_DEVICES as u64 {
                assert!(
                    started.elapsed() < Duration::from_secs(300),
                    "the first values of {OPCUA_DEVICES} x {points} {mode} items were not handed on in 300 s"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let (n0, t0) = (collector_stats(bus).samples_pushed, Instant::now());
            tokio::time::sleep(Duration::from_secs(5)).await;
            big.push(highest_memory(&c).await);
            // what the polls achieved (the Python server's reads may set it, not the interval)
            rate = (collector_stats(bus).samples_pushed - n0) as f64 / t0.elapsed().as_secs_f64();
            c.terminate();
        }
        let what = if mode == "polled" { format!("points polled every s, {rate:.0} values/s read") } else { "monitored items".into() };
        t.row(
            format!("collector RSS, OPC UA {OPCUA_DEVICES} devices x 1 / x {ITEMS} {what} (the same nodes, own names)"),
            per_point(big[0], big[1], OPCUA_DEVICES * (ITEMS - 1)),
        );
    }
}

/// "A / B KiB = N bytes per configured point (anonymous memory: M)" for `points` more points
/// in the run of (RSS, anonymous RSS) `b` than in that of `a`.
fn per_point(a: (u64, u64), b: (u64, u64), points: usize) -> String {
    let per = |x: u64, y: u64| (y as f64 - x as f64) * 1024.0 / points as f64;
    format!("{} / {} KiB = {:.0} bytes per configured point (anonymous memory: {:.0})", a.0, b.0, per(a.0, b.0), per(a.1, b.1))
}

/// The collector's memory per configured point: 100 Modbus devices (one simulator each) with
/// 1 point, then with 1,000 points each, polled every second; RSS after both settled.
async fn point_memory(t: &mut Table, dir: &std::path::Path, bus: &str, log: &std::path::Path) {
    const DEVICES: usize = 100;
    const POINTS: usize = 1000;
    let mut sims = Vec::new();
    for _ in 0..DEVICES {
        sims.push(SimServer::start(1).await);
    }
    let mut csv = String::from("name,area,address,type,scale,unit,group,access,min,max\n");
    for p in 0..POINTS {
        csv.push_str(&format!("active_power_{p:04},holding,{p},u16,0.1,kW,default,rw,0,6553\n"));
    }
    std::fs::write(dir.join("mem-points.csv"), csv.lines().take(2).map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    std::fs::write(dir.join("mem-points-full.csv"), csv).unwrap();
    // Polled every second (samples in flight: a poll's frames and the batch being built), and
    // polled once an hour (what the configuration itself costs).
    for (interval_ms, label) in [(1000, "polled every s"), (3_600_000, "polled once an hour")] {
        let (mut rss, mut load) = (Vec::new(), Vec::new());
        for table in ["mem-points.csv", "mem-points-full.csv"] {
            let mut cfg = String::from("[push]\ninterval_ms = 200\n");
            for (d, sim) in sims.iter().enumerate() {
                cfg.push_str(&format!(
                    "[[device]]\nid = \"m{d:03}\"\nprotocol = \"modbus-tcp\"\naddress = \"{}\"\npoll_groups = [{{ name = \"default\", interval_ms = {interval_ms} }}]\npoints_csv = \"{table}\"\n",
                    sim.addr
                ));
            }
            let settled = settled_rss(dir, bus, log, &cfg, &[]).await;
            load.push(settled.load_kb);
            rss.push(settled.high_kb);
        }
        let per_point = |r: &[u64]| (r[1] as f64 - r[0] as f64) * 1024.0 / (DEVICES * (POINTS - 1)) as f64;
        t.row(
            format!("collector RSS, {DEVICES} devices x 1 point / x {POINTS} points ({label})"),
            format!(
                "{} / {} KiB = {:.0} bytes per configured point (while loading: {:.0})",
                rss[0],
                rss[1],
                per_point(&rss),
                per_point(&load)
            ),
        );
    }
}

/// What `settled_rss` read (RSS in KiB).
struct Settled {
    load_kb: u64,
    high_kb: u64,
    pushed_per_s: f64,
}

/// The highest of four RSS readings 5 s apart (KiB): what a settled collector holds.
async fn highest_rss(c: &Proc) -> u64 {
    highest_memory(c).await.0
}

/// The highest RSS and the highest anonymous RSS (KiB) of four readings 5 s apart. The
/// anonymous part is what points cost; the rest, the binary's pages, differs by up to ±300 KiB
/// between runs whatever the configuration (±30 bytes a point at 10,000 points).
async fn highest_memory(c: &Proc) -> (u64, u64) {
    let pid = c.child.as_ref().map(|c| c.id()).unwrap_or(0);
    let (mut rss, mut anon) = (0, 0);
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        rss = rss.max(proc_stat(c).0);
        anon = anon.max(status_kb(pid, "RssAnon:"));
    }
    (rss, anon)
}

/// A field of `/proc/PID/status` in KiB (0 when unreadable).
fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// The collector started on `cfg` (with `env`) and settled: the configuration loaded and applied
/// (the parser's temporary data given back, which the collector does within 5 s; the reading
/// then, `load_kb`, shows the load's peak), every device polled or heard from, the pusher's
/// buffers at their size; then the highest of four readings 5 s apart, and the samples handed to
/// the uplink meanwhile.
async fn settled_rss(dir: &std::path::Path, bus: &str, log: &std::path::Path, cfg: &str, env: &[(&str, &str)]) -> Settled {
    let file = dir.join("collector-mem.toml");
    std::fs::write(&file, cfg).unwrap();
    let mut c = enos_testkit::harness::spawn_service_env("enos-collector", &file, bus, log, env);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let load_kb = proc_stat(&c).0;
    let (pushed0, start) = (collector_stats(bus).samples_pushed, Instant::now());
    let high_kb = highest_rss(&c).await;
    let s = collector_stats(bus);
    if s.samples_dropped > 0 {
        println!("  (the uplink did not keep up: {} samples shed; the figure includes buffered data)", s.samples_dropped);
    }
    let pushed_per_s = (s.samples_pushed - pushed0) as f64 / start.elapsed().as_secs_f64();
    c.terminate();
    Settled { load_kb, high_kb, pushed_per_s }
}

/// The spontaneous protocols' cost per configured point: 10 IEC 104 stations (`iec104_sim`) and
/// 10 DNP3 outstations (`dnp3_sim`) of 10,000 points each (100,000), every point sent by the
/// station within the settling time (2,000 values/s each: every point's latest reading is held),
/// against the same stations with 1 point each.
async fn spontaneous_point_memory(t: &mut Table, dir: &std::path::Path, bus: &str, log: &std::path::Path) {
    use enos_testkit::{dnp3_sim::Dnp3Sim, iec104_sim::Iec104Sim};
    use std::sync::atomic::{AtomicU64, Ordering};
    const DEVICES: u32 = 10;
    const POINTS: u32 = 10_000;
    const RATE: u64 = 2_000;
    let mut c104 = String::from("name,ioa,type\n");
    let mut cdnp3 = String::from("name,type,index\n");
    for i in 1..=POINTS {
        c104.push_str(&format!("P{i:05},{i},M_ME_NC\n"));
        cdnp3.push_str(&format!("P{i:05},AI,{}\n", i - 1));
    }
    let first = |t: &str| t.lines().take(2).map(|l| format!("{l}\n")).collect::<String>();
    for (f, text) in
        [("mem-104-1.csv", first(&c104)), ("mem-104.csv", c104.clone()), ("mem-dnp3-1.csv", first(&cdnp3)), ("mem-dnp3.csv", cdnp3.clone())]
    {
        std::fs::write(dir.join(f), text).unwrap();
    }
    let mut stations = Vec::new();
    let mut outstations = Vec::new();
    for d in 0..DEVICES {
        stations.push(Iec104Sim::start(POINTS, RATE).await);
        outstations.push(Dnp3Sim::start(10 + d as u16, POINTS, RATE).await);
    }
    let sent = |sims: &[&AtomicU64]| -> u64 { sims.iter().map(|c| c.load(Ordering::Relaxed)).sum() };
    let station_counters: Vec<&AtomicU64> = stations.iter().map(|s| &*s.sent).collect();
    let outstation_counters: Vec<&AtomicU64> = outstations.iter().map(|o| &*o.sent).collect();
    for (protocol, stem, counters) in [("IEC 104", "mem-104", &station_counters), ("DNP3", "mem-dnp3", &outstation_counters)] {
        let (mut rss, mut sent_measured) = (Vec::new(), 0);
        for csv in [format!("{stem}-1.csv"), format!("{stem}.csv")] {
            let mut cfg = String::from("[push]\ninterval_ms = 200\n");
            for d in 0..DEVICES as usize {
                cfg.push_str(&if protocol == "DNP3" {
                    format!(
                        "[[device]]\nid = \"o{d:02}\"\nprotocol = \"dnp3\"\naddress = \"{}\"\noutstation_address = {}\nunsolicited = true\n\
                         integrity_interval_s = 0\nclass1_interval_ms = 0\nclass2_interval_ms = 0\nclass3_interval_ms = 0\npoints_csv = \"{csv}\"\n",
                        outstations[d].addr,
                        10 + d
                    )
                } else {
                    format!("[[device]]\nid = \"s{d:02}\"\nprotocol = \"iec104\"\naddress = \"{}\"\npoints_csv = \"{csv}\"\n", stations[d].addr)
                });
            }
            let before = sent(counters);
            rss.push(settled_rss(dir, bus, log, &cfg, &[]).await.high_kb);
            sent_measured = sent(counters) - before;
        }
        let n = (DEVICES * (POINTS - 1)) as f64;
        t.row(
            format!("collector RSS, {protocol}: {DEVICES} devices x 1 point / x {POINTS} points (each point sent every 5 s)"),
            format!(
                "{} / {} KiB = {:.0} bytes per configured point ({:.1} M values sent while measured)",
                rss[0],
                rss[1],
                (rss[1] as f64 - rss[0] as f64) * 1024.0 / n,
                sent_measured as f64 / 1e6
            ),
        );
    }
}

/// DL/T 645's cost per configured point: 2,500 meters on 100 lines (`dlt645_sim`, one TCP
/// endpoint a line, 25 meters behind each) with 1 point, then with 40 points each (34 known
/// identifiers in their standard formats and 6 others with a `format`).
async fn dlt645_point_memory(t: &mut Table, dir: &std::path::Path, bus: &str, log: &std::path::Path) {
    use enos_dlt645::{ident::KNOWN, Format};
    use enos_testkit::dlt645_sim::Dlt645Sim;
    use std::sync::atomic::Ordering;
    const LINES: usize = 100;
    const METERS: usize = 25;
    const POINTS: usize = 40;
    let mut csv = String::from("name,di,format\n");
    let numbers = KNOWN.iter().filter(|k| matches!(k.format, Format::Number { .. })).take(POINTS - 6);
    for (i, k) in numbers.enumerate() {
        csv.push_str(&format!("P{i:02},{},\n", k.id));
    }
    for i in 0..6 {
        csv.push_str(&format!("X{i},0290{i:02}00,XXXX.XX\n"));
    }
    assert_eq!(csv.lines().count(), POINTS + 1, "the table of known identifiers has too few numbers");
    std::fs::write(dir.join("mem-645-1.csv"), csv.lines().take(2).map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    std::fs::write(dir.join("mem-645.csv"), csv).unwrap();
    let mut lines = Vec::new();
    for _ in 0..LINES {
        lines.push(Dlt645Sim::start().await);
    }
    let reads = || lines.iter().map(|l| l.reads.load(Ordering::Relaxed)).sum::<u64>();
    // Polled every 10 s (a cycle's values in flight), and once an hour (the first cycle at
    // start, then what the configuration itself costs).
    for (interval_ms, label) in [(10_000, "polled every 10 s"), (3_600_000, "polled once an hour")] {
        let (mut rss, mut read_measured) = (Vec::new(), 0);
        for table in ["mem-645-1.csv", "mem-645.csv"] {
            let mut cfg = String::from("[push]\ninterval_ms = 200\n");
            for (l, line) in lines.iter().enumerate() {
                for m in 0..METERS {
                    cfg.push_str(&format!(
                        "[[device]]\nid = \"m{l:03}-{m:02}\"\nprotocol = \"dlt645\"\naddress = \"{}\"\nmeter = \"{:012}\"\n\
                         poll_groups = [{{ name = \"default\", interval_ms = {interval_ms} }}]\npoints_csv = \"{table}\"\n",
                        line.addr,
                        l * METERS + m + 1
                    ));
                }
            }
            let before = reads();
            rss.push(settled_rss(dir, bus, log, &cfg, &[]).await.high_kb);
            read_measured = reads() - before;
        }
        let n = (LINES * METERS * (POINTS - 1)) as f64;
        t.row(
            format!("collector RSS, DL/T 645: {} meters on {LINES} lines x 1 point / x {POINTS} points ({label})", LINES * METERS),
            format!(
                "{} / {} KiB = {:.0} bytes per configured point ({:.2} M reads answered while measured)",
                rss[0],
                rss[1],
                (rss[1] as f64 - rss[0] as f64) * 1024.0 / n,
                read_measured as f64 / 1e6
            ),
        );
    }
}

/// The collector's counters (`enosctl --json status`).
fn collector_stats(bus: &str) -> enos_bus::CollectorStats {
    let (_, out, _) = enos_testkit::harness::run_tool("enosctl", &["--json", "status"], bus);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    serde_json::from_value(v["collector"].clone()).unwrap_or_default()
}

/// One phase at a poll interval: (offered, read, handed on per s, shed, buffered at the end,
/// state, RSS KiB samples every 500 ms).
struct Phase {
    offered: f64,
    read: f64,
    handed: f64,
    shed: u64,
    buffered_max: u64,
    state: String,
    rss: Vec<u64>,
}

async fn phase(a: &Args, coll: &str, interval_ms: u64, cfg: &std::path::Path, bus: &str, log: &std::path::Path) -> Phase {
    let base = format!("interval_ms = {} }}]", a.interval_ms);
    std::fs::write(cfg, coll.replace(&base, &format!("interval_ms = {interval_ms} }}]"))).unwrap();
    let mut c = spawn_service("enos-collector", cfg, bus, log);
    tokio::time::sleep(Duration::from_secs(3)).await; // warm up
    let s0 = collector_stats(bus);
    let start = Instant::now();
    let (mut rss, mut buffered_max, mut state) = (Vec::new(), 0, String::new());
    while start.elapsed() < Duration::from_secs(a.seconds) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss.push(proc_stat(&c).0);
        let s = collector_stats(bus);
        buffered_max = buffered_max.max(s.samples_buffered);
        if s.state != "ok" || state.is_empty() {
            state = s.state;
        }
    }
    let s1 = collector_stats(bus);
    let el = start.elapsed().as_secs_f64();
    c.terminate();
    Phase {
        offered: (a.devices * a.points) as f64 * 1000.0 / interval_ms as f64,
        read: (s1.samples_collected - s0.samples_collected) as f64 / el,
        handed: (s1.samples_pushed - s0.samples_pushed) as f64 / el,
        shed: s1.samples_dropped - s0.samples_dropped,
        buffered_max,
        state,
        rss,
    }
}

/// Steps the offered load up until the collector no longer hands on everything it is offered.
async fn ceiling(a: &Args, t: &mut Table, coll: &str, cfg: &std::path::Path, bus: &str, log: &std::path::Path) {
    t.row("ceiling: what is measured", "samples the collector handed to the uplink (answered = stored in the cache), not the cloud");
    let mut best: Option<(u64, f64)> = None;
    // The collector accepts poll intervals down to 10 ms; beyond that, more devices or points.
    for div in [1u64, 2, 3, 4, 5, 6, 8, 10] {
        let interval = a.interval_ms / div;
        if interval < 10 {
            break;
        }
        let p = phase(a, coll, interval, cfg, bus, log).await;
        // In full: at least 97 % of the offered load read and handed on, nothing shed.
        let full = p.handed >= 0.97 * p.offered && p.shed == 0;
        t.row(
            format!("ceiling: offered {:.0} points/s (poll every {interval} ms)", p.offered),
            format!(
                "read {:.0}/s, handed on {:.0}/s, shed {}, max buffered {}, state {}, RSS max {} KiB{}",
                p.read,
                p.handed,
                p.shed,
                p.buffered_max,
                p.state,
                p.rss.iter().max().unwrap_or(&0),
                if full { "" } else { " — not in full" }
            ),
        );
        if !full {
            break;
        }
        best = Some((interval, p.offered));
    }
    let Some((interval, rate)) = best else {
        t.row("ceiling: highest offered rate handed on in full", "none (lower --interval-ms or fewer devices)");
        return;
    };
    t.row("ceiling: highest offered rate handed on in full", format!("{rate:.0} points/s"));
    let over = ((interval as f64) / 1.5).round().max(10.0) as u64;
    let p = phase(a, coll, over, cfg, bus, log).await;
    let half = p.rss.len() / 2;
    let max = |v: &[u64]| v.iter().copied().max().unwrap_or(0);
    t.row(
        format!("overload: offered {:.0} points/s ({:.2}x, poll every {over} ms)", p.offered, p.offered / rate),
        format!(
            "read {:.0}/s, handed on {:.0}/s, shed {}, max buffered {} (limit 5000000), state {}; RSS max {} KiB in the first half, {} KiB in the second, {} KiB at the end",
            p.read,
            p.handed,
            p.shed,
            p.buffered_max,
            p.state,
            max(&p.rss[..half]),
            max(&p.rss[half..]),
            p.rss.last().unwrap_or(&0)
        ),
    );
}

/// The end-to-end set-up: `a.devices` Modbus TCP simulators of `a.points` registers each that
/// drift every 100 ms, a bus, a broker, the cloud simulator, and both services' configurations
/// (the services are not started).
struct EndToEnd {
    dir: tempfile::TempDir,
    bus: Bus,
    broker: Mosquitto,
    cloud: CloudSim,
    sims: Vec<SimServer>,
    coll: String,
    cfg_c: PathBuf,
    cfg_u: PathBuf,
    log: PathBuf,
}

async fn end_to_end(a: &Args) -> EndToEnd {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let broker = Mosquitto::start(dir.path());
    let cloud = CloudSim::start(broker.port, HashMap::from([("gw".to_string(), "s".to_string())])).await;
    cloud.with(|r| r.drop_points = true);
    let mut sims = Vec::new();
    let mut coll = String::from("[push]\ninterval_ms = 200\n");
    let mut upl = format!(
        "[cloud]\nuri = \"{}\"\nallow_plain = true\nproduct_key = \"pk\"\ndevice_key = \"gw\"\ndevice_secret = \"s\"\nmax_in_flight = 100\n[cache]\ndir = \"{}\"\n[sender]\nresume_after_s = 5\n[health]\ninterval_s = 0\n",
        cloud.uri(),
        dir.path().join("cache").display()
    );
    let regs = a.points; // one register per point: half u16, half... keep u16 scaled for volume
    let mut csv = String::from("name,area,address,type,scale,group,access\n");
    for p in 0..regs {
        csv.push_str(&format!("P{p:04},holding,{p},u16,0.1,default,rw\n"));
    }
    std::fs::write(dir.path().join("points.csv"), csv).unwrap();
    for d in 0..a.devices {
        let sim = SimServer::start(1).await;
        coll.push_str(&format!(
            "[[device]]\nid = \"dev{d:02}\"\nprotocol = \"modbus-tcp\"\naddress = \"{}\"\npoll_groups = [{{ name = \"default\", interval_ms = {} }}]\npoints_csv = \"points.csv\"\nmax_gap = 0\n",
            sim.addr, a.interval_ms
        ));
        upl.push_str(&format!(
            "[[sub_device]]\ndevice = \"dev{d:02}\"\nproduct_key = \"pkD\"\ndevice_key = \"dev{d:02}\"\ndevice_secret = \"x\"\n"
        ));
        sims.push(sim);
    }
    std::fs::write(dir.path().join("collector.toml"), &coll).unwrap();
    std::fs::write(dir.path().join("uplink.toml"), upl).unwrap();
    // the field moves: every register drifts a little every 100 ms
    let states: Vec<_> = sims.iter().map(|s| s.dev.state.clone()).collect();
    tokio::spawn(async move {
        let mut k = 0u64;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            k += 1;
            for (d, st) in states.iter().enumerate() {
                let mut s = st.lock().unwrap();
                for p in 0..regs as u16 {
                    let v = 2300 + ((k + p as u64 * 7 + d as u64) % 11) as u16;
                    s.holding.insert(p, v);
                }
            }
        }
    });
    let log = dir.path().join("services.log");
    let (cfg_c, cfg_u) = (dir.path().join("collector.toml"), dir.path().join("uplink.toml"));
    EndToEnd { dir, bus, broker, cloud, sims, coll, cfg_c, cfg_u, log }
}

/// The uplink's status (`enosctl --json status`); the default when it does not answer.
fn uplink_status(bus: &str) -> enos_bus::UplinkStatus {
    let (_, out, _) = enos_testkit::harness::run_tool("enosctl", &["--json", "status"], bus);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    serde_json::from_value(v["uplink"].clone()).unwrap_or_default()
}

/// Open file descriptors of a process.
fn open_files(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count() as u64).unwrap_or(0)
}

/// Bytes a directory's files take on disk (allocated blocks, so preallocated logs count).
fn disk_use(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_use(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// What one soak cycle leaves: figures at its end (live, the backlog drained) and its highest.
struct SoakCycle {
    rss: (u64, u64),
    rss_max: (u64, u64),
    files: (u64, u64),
    files_max: (u64, u64),
    disk: u64,
    disk_max: u64,
    backlog: u64,
    /// Broker back -> session up (the uplink's reconnect backoff, which grows with the outage).
    reconnect_s: f64,
    /// Session up -> the backlog drained.
    drain_s: f64,
}

/// The soak (`--soak`): `--minutes` of the end-to-end load in cycles of `--cycle-s`, each with
/// the broker stopped for `--outage-s` in its middle. Prints a row per cycle; the table compares
/// the first cycles' end with the last ones'. A cycle compresses a day's outage pattern: each
/// outage builds a backlog of `--outage-s` of live data, which drains beside live data.
async fn soak(a: &Args, t: &mut Table, e: &mut EndToEnd) {
    let cache_dir = e.dir.path().join("cache");
    let mut uplink = spawn_service("enos-uplink", &e.cfg_u, &e.bus.address, &e.log);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut collector = spawn_service("enos-collector", &e.cfg_c, &e.bus.address, &e.log);
    let pids = |c: &Proc, u: &Proc| (c.child.as_ref().map(|c| c.id()).unwrap_or(0), u.child.as_ref().map(|c| c.id()).unwrap_or(0));
    let (pc, pu) = pids(&collector, &uplink);
    let rate = (a.devices * a.points * 1000 / a.interval_ms as usize) as u64;
    let bus = e.bus.address.clone();
    let status = move || uplink_status(&bus);
    tokio::time::sleep(Duration::from_secs(10)).await; // warm up
    t.row("soak: offered load", format!("{} devices x {} points every {} ms = {rate} points/s", a.devices, a.points, a.interval_ms));
    t.row("soak: cycles", format!("{} s each, the broker stopped for {} s in the middle", a.cycle_s, a.outage_s));
    let cycles = (a.minutes * 60 / a.cycle_s).max(1);
    let (start, acked0, cpu0) = (Instant::now(), e.cloud.with(|r| r.points_total), pid_stat(pc).1 + pid_stat(pu).1);
    let mut done: Vec<SoakCycle> = Vec::new();
    println!("| cycle | minutes | acknowledged (M points) | backlog at the outage's end | broker back -> session up (s) | drain (s) | RSS collector / uplink at the end, KiB (highest) | open files collector / uplink (highest) | cache on disk at the end, MiB (highest) |");
    println!("|---:|---:|---:|---:|---:|---:|---|---|---|");
    for n in 0..cycles {
        let t0 = Instant::now();
        let mut c = SoakCycle {
            rss: (0, 0),
            rss_max: (0, 0),
            files: (0, 0),
            files_max: (0, 0),
            disk: 0,
            disk_max: 0,
            backlog: 0,
            reconnect_s: 0.0,
            drain_s: 0.0,
        };
        let mut look = |c: &mut SoakCycle| {
            c.rss = (pid_stat(pc).0, pid_stat(pu).0);
            c.files = (open_files(pc), open_files(pu));
            c.disk = disk_use(&cache_dir);
            c.rss_max = (c.rss_max.0.max(c.rss.0), c.rss_max.1.max(c.rss.1));
            c.files_max = (c.files_max.0.max(c.files.0), c.files_max.1.max(c.files.1));
            c.disk_max = c.disk_max.max(c.disk);
        };
        // Looks every 5 s until `until` (from the cycle's start): the phases' own clock.
        async fn phase(t0: Instant, until: Duration, c: &mut SoakCycle, look: &mut impl FnMut(&mut SoakCycle)) {
            while t0.elapsed() < until {
                look(c);
                tokio::time::sleep(Duration::from_secs(5).min(until.saturating_sub(t0.elapsed()))).await;
            }
        }
        let off = Duration::from_secs(a.cycle_s.saturating_sub(a.outage_s) / 2);
        phase(t0, off, &mut c, &mut look).await;
        e.broker.stop();
        phase(t0, off + Duration::from_secs(a.outage_s), &mut c, &mut look).await;
        c.backlog = status().cache.points;
        e.broker.restart();
        let back = Instant::now();
        while status().cloud.state != "connected" && t0.elapsed() < Duration::from_secs(a.cycle_s) {
            look(&mut c);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        c.reconnect_s = back.elapsed().as_secs_f64();
        let up = Instant::now();
        // drained: no more than a second of live data left in the cache
        while status().cache.points > rate && t0.elapsed() < Duration::from_secs(a.cycle_s) {
            look(&mut c);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        c.drain_s = up.elapsed().as_secs_f64();
        phase(t0, Duration::from_secs(a.cycle_s), &mut c, &mut look).await;
        look(&mut c);
        let acked = e.cloud.with(|r| r.points_total) - acked0;
        println!(
            "| {} | {:.1} | {:.1} | {} | {:.1} | {:.1} | {} / {} ({} / {}) | {} / {} ({} / {}) | {:.1} ({:.1}) |",
            n + 1,
            start.elapsed().as_secs_f64() / 60.0,
            acked as f64 / 1e6,
            c.backlog,
            c.reconnect_s,
            c.drain_s,
            c.rss.0,
            c.rss.1,
            c.rss_max.0,
            c.rss_max.1,
            c.files.0,
            c.files.1,
            c.files_max.0,
            c.files_max.1,
            c.disk as f64 / 1048576.0,
            c.disk_max as f64 / 1048576.0
        );
        done.push(c);
        if !collector.is_running() || !uplink.is_running() {
            t.row("soak: a service stopped", format!("in cycle {}; log: {}", n + 1, e.log.display()));
            break;
        }
    }
    let el = start.elapsed().as_secs_f64();
    let acked = e.cloud.with(|r| r.points_total) - acked0;
    let st = status();
    t.row(
        "soak: length, acknowledged by the cloud",
        format!(
            "{:.0} min, {:.1} M points ({:.0} points/s on average, outages included)",
            el / 60.0,
            acked as f64 / 1e6,
            acked as f64 / el
        ),
    );
    t.row(
        "soak: dropped by the cache / dead letters / left in the cache",
        format!("{} / {} / {} points", st.cache.dropped_points, st.cache.dead_letter_records, st.cache.points),
    );
    let cpu = (pid_stat(pc).1 + pid_stat(pu).1 - cpu0) / el;
    t.row("soak: CPU, collector + uplink", format!("{:.2} cores", cpu));
    // The first third of the cycles against the last third, at each cycle's end.
    let third = (done.len() / 3).max(1);
    let mean = |v: &[SoakCycle], f: &dyn Fn(&SoakCycle) -> u64| v.iter().map(f).sum::<u64>() as f64 / v.len().max(1) as f64;
    let (first, last) = (&done[..third.min(done.len())], &done[done.len().saturating_sub(third)..]);
    let compare = |f: &dyn Fn(&SoakCycle) -> u64, max: &dyn Fn(&SoakCycle) -> u64, unit: &str, scale: f64| {
        let (a, b) = (mean(first, f) / scale, mean(last, f) / scale);
        let top = done.iter().map(max).max().unwrap_or(0) as f64 / scale;
        format!("{a:.1} -> {b:.1} {unit} ({:+.1} %), highest {top:.1} {unit}", if a > 0.0 { (b - a) / a * 100.0 } else { 0.0 })
    };
    t.row(
        "soak: collector RSS, first third -> last third of the cycles, at their end",
        compare(&|c| c.rss.0, &|c| c.rss_max.0, "MiB", 1024.0),
    );
    t.row("soak: uplink RSS, first third -> last third", compare(&|c| c.rss.1, &|c| c.rss_max.1, "MiB", 1024.0));
    t.row("soak: open files collector, first third -> last third", compare(&|c| c.files.0, &|c| c.files_max.0, "", 1.0));
    t.row("soak: open files uplink, first third -> last third", compare(&|c| c.files.1, &|c| c.files_max.1, "", 1.0));
    t.row("soak: cache on disk, first third -> last third", compare(&|c| c.disk, &|c| c.disk_max, "MiB", 1048576.0));
    let tenths = |f: &dyn Fn(&SoakCycle) -> f64| -> Vec<u64> { done.iter().map(|c| (f(c) * 10.0) as u64).collect() };
    let p50_max = |mut v: Vec<u64>| format!("{:.1} / {:.1} s", pct(&mut v, 0.5) as f64 / 10.0, pct(&mut v, 1.0) as f64 / 10.0);
    t.row("soak: broker back -> session up (the uplink's reconnect backoff), p50 / highest", p50_max(tenths(&|c| c.reconnect_s)));
    t.row("soak: session up -> backlog drained, p50 / highest", p50_max(tenths(&|c| c.drain_s)));
    // Drain rate on top of live data, as the end-to-end table's row has it.
    let mut rates: Vec<u64> = done.iter().filter(|c| c.drain_s > 0.0).map(|c| (c.backlog as f64 / c.drain_s) as u64).collect();
    t.row(
        "soak: drain rate on top of live data, p50 / lowest",
        format!("{:.2} / {:.2} M points/s", pct(&mut rates, 0.5) as f64 / 1e6, pct(&mut rates, 0.0) as f64 / 1e6),
    );
    collector.terminate();
    uplink.terminate();
}

fn print_table(t: &Table) {
    println!("\n| figure | value |\n|---|---|");
    for (k, v) in &t.0 {
        println!("| {k} | {v} |");
    }
}

/// This process's resident memory, KiB.
fn self_rss_kb() -> u64 {
    status_kb(std::process::id(), "VmRSS:")
}

/// Protocol plugins in this process (the collector runs them the same way): the engine, the
/// IEC 62056-21 example compiled and instantiated 20 times, polls of a plugin that emits one
/// value per call (the cost of crossing the sandbox, without I/O), and readouts of a meter by the
/// example interpreted, as machine code, and by its parser compiled natively. Packs the plugins
/// into `dir`.
fn plugins(t: &mut Table, dir: &Path) {
    use enos_plugin_host::{DeviceSpec, Endpoint, Instance, Runtime};
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
    for (src, name) in [("iec62056", "iec62056"), ("testing", "misbehave")] {
        let st = std::process::Command::new(repo.join("scripts/plugin"))
            .args(["build", repo.join("rust/plugins").join(src).to_str().unwrap(), dir.join(name).to_str().unwrap()])
            .status()
            .expect("scripts/plugin");
        assert!(st.success(), "scripts/plugin build {src}");
    }
    let rss0 = self_rss_kb();
    let cache = tempfile::tempdir().unwrap();
    let rt = Runtime::new(Some(cache.path().to_path_buf())).unwrap();
    let rss_engine = self_rss_kb();
    let start = Instant::now();
    drop(rt.load(&dir.join("iec62056")).unwrap());
    t.row(
        "plugin translation, IEC 62056-21 example (Cranelift to Pulley bytecode, on this box)",
        format!("{} ms", start.elapsed().as_millis()),
    );
    // Memory from here on: what the compiler left in the heap is not the plugin's.
    let rss_compiled = self_rss_kb();
    let start = Instant::now();
    let meter = rt.load(&dir.join("iec62056")).unwrap();
    t.row("plugin load from the compile cache", format!("{:.1} ms", start.elapsed().as_secs_f64() * 1000.0));
    let rss_loaded = self_rss_kb();
    let spec = |id: String, settings: serde_json::Value| DeviceSpec {
        id,
        settings,
        points: vec![("energy".into(), "1.8.0".into())],
        endpoints: [("line".to_string(), Endpoint::Tcp("127.0.0.1:9".into()))].into(),
        kv_file: None,
    };
    let settings = meter.check_settings(&serde_json::json!({})).unwrap();
    let mut instances = Vec::new();
    let mut rss_first = 0;
    for i in 0..20 {
        let s = spec(format!("m{i}"), settings.clone());
        let mut inst = Instance::new(&rt, &meter, &s).unwrap();
        inst.init(&s).unwrap();
        instances.push(inst);
        if i == 0 {
            rss_first = self_rss_kb();
        }
    }
    let rss_20 = self_rss_kb();
    t.row("plugin RSS: engine (and its epoch thread)", format!("{} KiB", rss_engine.saturating_sub(rss0)));
    t.row("plugin RSS: the example loaded (its bytecode)", format!("{} KiB", rss_loaded.saturating_sub(rss_compiled)));
    t.row("plugin RSS: its first instance", format!("{} KiB", rss_first.saturating_sub(rss_loaded)));
    t.row("plugin RSS: each of 19 more instances", format!("{:.1} KiB", rss_20.saturating_sub(rss_first) as f64 / 19.0));
    drop(instances);
    // The gateway interprets (MemoryDenyWriteExecute holds); machine code for comparison.
    let native = Runtime::with(None, enos_plugin_host::Execution::Native).unwrap();
    for (rt, how) in [(&rt, "interpreted, as on the box"), (&native, "native code, for comparison")] {
        let counter = rt.load(&dir.join("misbehave")).unwrap();
        let s = spec("count".into(), counter.check_settings(&serde_json::json!({"how": "count"})).unwrap());
        let mut inst = Instance::new(rt, &counter, &s).unwrap();
        inst.init(&s).unwrap();
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_secs(2) {
            for _ in 0..1000 {
                inst.poll(n).unwrap();
                n += 1;
            }
            inst.take_output();
        }
        t.row(
            format!("plugin calls through the sandbox (poll + emit of 1 value, no I/O; {how})"),
            format!("{:.0} /s", n as f64 / start.elapsed().as_secs_f64()),
        );
    }
    // The example against a meter, the driver's CPU apart from the meter's (threads of its own).
    let sim = MeterSim::start();
    let points: Vec<(String, String)> = READOUT.iter().map(|(obis, _)| (format!("p{obis}"), obis.to_string())).collect();
    let mut settings = String::new();
    for (rt, how) in [(&rt, "the plugin interpreted, as on the box"), (&native, "the plugin as machine code (Cranelift)")] {
        let plugin = rt.load(&dir.join("iec62056")).unwrap();
        let s = DeviceSpec {
            id: "meter".into(),
            settings: plugin.check_settings(&serde_json::json!({})).unwrap(),
            points: points.clone(),
            endpoints: [("line".to_string(), Endpoint::Tcp(sim.addr.clone()))].into(),
            kv_file: None,
        };
        settings = s.settings.to_string();
        let mut inst = Instance::new(rt, &plugin, &s).unwrap();
        inst.init(&s).unwrap();
        readout_rate(t, how, &mut || {
            inst.poll(enos_batch::now_ms()).unwrap();
            inst.take_output().0.len()
        });
    }
    let mut m = NativeMeter::init(&sim.addr, &settings, &points).unwrap();
    readout_rate(t, "its parser native: the plugin's readout.rs compiled in, std TCP", &mut || m.poll(enos_batch::now_ms()).unwrap().len());
    t.row(
        "IEC 62056-21 readouts: the meter served",
        format!("{} readouts (Rust, in this process, threads of its own)", sim.readouts.load(std::sync::atomic::Ordering::Relaxed)),
    );
}

/// Calls `poll` (one readout of the meter; the values it made) for 3 s after half a second's
/// warm-up: readouts and values per second and this thread's CPU per 1,000 values (the meter
/// answers on threads of its own, so its work is not counted).
fn readout_rate(t: &mut Table, how: &str, poll: &mut dyn FnMut() -> usize) {
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(500) {
        poll();
    }
    let (start, cpu0) = (Instant::now(), cpu_s("/proc/thread-self/stat"));
    let (mut readouts, mut values) = (0u64, 0usize);
    while start.elapsed() < Duration::from_secs(3) {
        values += poll();
        readouts += 1;
    }
    let (el, cpu) = (start.elapsed().as_secs_f64(), cpu_s("/proc/thread-self/stat") - cpu0);
    t.row(
        format!("IEC 62056-21, one meter, 20 OBIS lines per readout ({how})"),
        format!(
            "{:.0} readouts/s = {:.0} values/s; driver CPU {:.2} ms per 1,000 values ({:.0}% of a core)",
            readouts as f64 / el,
            values as f64 / el,
            cpu * 1e6 / values.max(1) as f64,
            cpu / el * 100.0
        ),
    );
}

/// The IEC 62056-21 example's `init`, `read_out` and `poll` (rust/plugins/iec62056/src/lib.rs)
/// on std's TCP instead of the sandbox's connections: the same parser, the same steps, the
/// same samples, no sandbox.
struct NativeMeter {
    conn: std::net::TcpStream,
    address: String,
    points: Vec<(String, String)>,
}

impl NativeMeter {
    fn init(addr: &str, settings: &str, points: &[(String, String)]) -> Result<NativeMeter, String> {
        use iec62056_readout as r;
        let s = r::Settings::from_json(settings)?;
        for (name, obis) in points {
            r::check_obis(obis).map_err(|e| format!("point \"{name}\": {e}"))?;
        }
        let conn = std::net::TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
        conn.set_nodelay(true).ok();
        conn.set_read_timeout(Some(Duration::from_millis(s.timeout_ms.into()))).ok();
        Ok(NativeMeter { conn, address: s.meter_address, points: points.to_vec() })
    }

    fn read_until(&mut self, done: fn(&[u8]) -> bool) -> Result<Vec<u8>, String> {
        use std::io::Read;
        let (mut buf, mut chunk) = (Vec::new(), [0u8; 1024]);
        while !done(&buf) {
            match self.conn.read(&mut chunk) {
                Ok(0) => return Err("the meter closed the line".into()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(buf)
    }

    fn poll(&mut self, now_ms: u64) -> Result<Vec<enos_plugin_host::Sample>, String> {
        use enos_plugin_host::{Quality, Sample, Value};
        use iec62056_readout as r;
        use std::io::Write;
        self.conn.write_all(&r::sign_on(&self.address)).map_err(|e| format!("sign-on: {e}"))?;
        let ident = r::parse_identification(&self.read_until(|b| b.ends_with(b"\r\n"))?)?;
        self.conn.write_all(&r::ack_readout(ident.baud)).map_err(|e| format!("option select: {e}"))?;
        let lines = r::parse_block(&self.read_until(r::block_complete)?)?;
        let sample = |name: &str, l: &r::Line| Sample {
            point: name.into(),
            value: l.value.parse::<f64>().map_or_else(|_| Value::Text(l.value.clone()), Value::Float),
            quality: Quality::Good,
            timestamp_ms: now_ms,
        };
        Ok(self.points.iter().filter_map(|(name, obis)| Some(sample(name, lines.iter().find(|l| r::same_obis(&l.obis, obis))?))).collect())
    }
}

/// The collector's RSS with IEC 62056-21 plugin devices, each reading a meter of its own
/// (`iec62056_sim`, 20 OBIS lines, every second): the plugin installed as on a development box
/// (`enosctl plugin install`), then the collector started with 0, 1 and 20 plugin devices,
/// settled as in --point-memory (`settled_rss`). The first
/// start translates the component and fills the cache, as a box does once after an install;
/// the three figures are from starts that load the cache.
async fn plugin_memory(t: &mut Table, dir: &Path, bus: &str, log: &Path, packed: &Path) {
    const METERS: usize = 20;
    let plugins = dir.join("plugins");
    let out = std::process::Command::new(enos_testkit::harness::bin_dir().join("enosctl"))
        .args(["plugin", "install", packed.join("iec62056").to_str().unwrap()])
        .env("ENOS_PLUGINS_DIR", &plugins)
        .output()
        .unwrap();
    assert!(out.status.success(), "enosctl plugin install: {}", String::from_utf8_lossy(&out.stderr));
    let sims: Vec<MeterSim> = (0..METERS).map(|_| MeterSim::start()).collect();
    let points: String =
        READOUT.iter().map(|(obis, _)| format!("\n[[device.point]]\nname = \"p{obis}\"\naddress = \"{obis}\"\n")).collect();
    // (devices, RSS KiB, values handed to the uplink per s)
    let mut runs: Vec<(usize, u64, f64)> = Vec::new();
    for devices in [1, 0, 1, METERS] {
        let mut cfg = String::from("[push]\ninterval_ms = 200\n");
        for (i, sim) in sims.iter().take(devices).enumerate() {
            cfg.push_str(&format!(
                "\n[[device]]\nid = \"meter{i:02}\"\nprotocol = \"plugin\"\nplugin = \"iec62056\"\npoll_interval_ms = 1000\n\
                 endpoints = {{ line = {{ address = \"{}\" }} }}\n{points}",
                sim.addr
            ));
        }
        let settled = settled_rss(dir, bus, log, &cfg, &[("ENOS_PLUGINS_DIR", plugins.to_str().unwrap())]).await;
        runs.push((devices, settled.high_kb, settled.pushed_per_s));
    }
    let (first, none, one, all) = (runs[0], runs[1], runs[2], runs[3]);
    t.row(
        "collector RSS, first start after the install (1 plugin device; translates the component, fills the cache)",
        format!("{} KiB", first.1),
    );
    t.row(
        format!("collector RSS, 0 / 1 / {METERS} IEC 62056-21 plugin devices (a meter each, 20 OBIS lines every s; from the cache)"),
        format!(
            "{} / {} / {} KiB: engine + plugin + first instance {} KiB, each further instance {:.0} KiB; values handed to the uplink {:.0} / {:.0} / {:.0} per s",
            none.1,
            one.1,
            all.1,
            one.1 as i64 - none.1 as i64,
            (all.1 as f64 - one.1 as f64) / (METERS - 1) as f64,
            none.2,
            one.2,
            all.2
        ),
    );
}

/// Synchronisation with the cloud, end to end on the test edge (debug or release binaries, as
/// built): (1) the cloud's `applyResourcePackage` → the package's new point's first value accepted
/// by the cloud simulator (download, verify, apply, health check, poll, upload); (2) a device added
/// locally by `ApplyConfig` → its first point accepted (registration, topology, login included).
async fn sync_rows(t: &mut Table) {
    use enos_package::build::{build, Source};
    use enos_testkit::edge::{collector_toml, Edge, GW, PK, POINTS_CSV};
    let mut e = Edge::start_with("\n[packages]\ndir = \"{dir}/downloads\"\nallow_http = true\n").await;
    let (private, public) = enos_package::key::generate();
    let key_file = e.dir.path().join("package-key.pem");
    std::fs::write(&key_file, public).unwrap();
    let key = key_file.display().to_string();
    e.collector.terminate();
    e.collector = enos_testkit::harness::spawn_service_env(
        "enos-collector",
        &e.dir.path().join("collector.toml"),
        &e.bus.address,
        &e.log(),
        &[("ENOS_PACKAGE_KEY", key.as_str())],
    );
    let accepted = |e: &Edge, point: &str| e.cloud.with(|r| r.points.iter().any(|p| p.point == point));
    let start = Instant::now();
    while !accepted(&e, "counter") {
        assert!(start.elapsed() < Duration::from_secs(120), "no value in the cloud within 120 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pair = enos_package::key::private_from_pem(&private).unwrap();
    let config = collector_toml(&e.sim.addr.to_string()).replace("points_csv = \"inv01.csv\"", "points_csv = \"points/inv01.csv\"");
    let mut ms = Vec::new();
    for i in 1..=3u16 {
        e.sim.with(|s| {
            s.holding.insert(30 + i, 1000 + i);
        });
        let table: String = (1..=i).fold(POINTS_CSV.to_string(), |t, j| t + &format!("extra{j},holding,{},u16,,,fast,r,,\n", 30 + j));
        let items = [
            Source { path: "collector.toml".into(), kind: enos_package::ItemType::CollectorConfig, data: config.clone().into_bytes() },
            Source { path: "points/inv01.csv".into(), kind: enos_package::ItemType::PointTable, data: table.into_bytes() },
        ];
        let pkg = build("site", &format!("1.0.{i}"), &items, Some(&pair));
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&pkg));
        let size = pkg.len();
        let (url, _server) = e.cloud.serve_package(pkg, None).await;
        let params = serde_json::json!({ "url": url, "version": format!("1.0.{i}"), "sha256": digest, "size": size });
        let body = serde_json::json!({ "id": format!("b{i}"), "version": "1.0", "method": "thing.service.applyResourcePackage", "params": params });
        let start = Instant::now();
        e.cloud.command(&format!("/sys/{PK}/{GW}/thing/service/applyResourcePackage"), body.to_string().as_bytes()).await;
        let point = format!("extra{i}");
        while !accepted(&e, &point) {
            let refused = e.cloud.with(|r| r.command_replies.iter().find(|(_, v)| v["id"] == format!("b{i}") && v["code"] != 200).cloned());
            assert!(refused.is_none(), "package 1.0.{i} refused: {:?}", refused.map(|r| r.1));
            assert!(start.elapsed() < Duration::from_secs(120), "package 1.0.{i}: {point} not in the cloud within 120 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ms.push(start.elapsed().as_millis());
        // The gateway takes one package at a time: the next waits for this one's last step
        // (100 once its devices collect with it), not part of the figure.
        let done = |e: &Edge| {
            e.cloud.with(|r| {
                r.requests_on("/thing/event/resourcePackageProgress/post")
                    .iter()
                    .map(|v| &v["params"]["value"])
                    .any(|v| v["version"] == format!("1.0.{i}") && v["step"].as_i64().is_some_and(|s| s == 100 || s < 0))
            })
        };
        while !done(&e) {
            assert!(start.elapsed() < Duration::from_secs(120), "package 1.0.{i}: no last progress step within 120 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    t.row(
        "cloud applyResourcePackage -> first value of its new point accepted by the cloud (3 packages)",
        format!("{} ms", ms.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(", ")),
    );

    // A new local device with a product key: the gateway registers it, then uploads.
    let sim2 = SimServer::start(3).await;
    sim2.with(|s| {
        s.holding.insert(0, 2314);
    });
    let conn = zbus::connection::Builder::address(e.bus.address.as_str()).build().await.unwrap();
    let collector = enos_bus::CollectorProxy::new(&conn).await.unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&collector.get_config().await.unwrap()).unwrap();
    doc["device"].as_array_mut().unwrap().push(serde_json::json!({
        "id": "meter02", "protocol": "modbus-tcp", "address": sim2.addr.to_string(), "unit_id": 3, "product_key": "pkMeter",
        "poll_groups": [{ "name": "default", "interval_ms": 100 }],
        "point": [{ "name": "voltage", "area": "holding", "address": 0, "type": "u16", "scale": 0.1 }],
    }));
    let start = Instant::now();
    let answer = collector.apply_config(&doc.to_string()).await.unwrap();
    assert!(answer.contains("\"ok\":true"), "ApplyConfig refused the new device: {answer}");
    let registered = |e: &Edge| e.cloud.with(|r| r.registrations() > 0);
    let meter_point = |e: &Edge| {
        e.cloud.with(|r| r.points.iter().any(|p| p.point == "voltage" && p.device_key.as_deref().is_some_and(|k| k.contains("meter02"))))
    };
    let mut reg_ms = None;
    while !meter_point(&e) {
        assert!(start.elapsed() < Duration::from_secs(120), "meter02's first point not in the cloud within 120 s");
        if reg_ms.is_none() && registered(&e) {
            reg_ms = Some(start.elapsed().as_millis());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t.row(
        "new local device (ApplyConfig) -> its first point accepted by the cloud, registration included",
        format!(
            "{} ms (registration asked after {} ms)",
            start.elapsed().as_millis(),
            reg_ms.map_or_else(|| "?".to_string(), |m| m.to_string())
        ),
    );
}
