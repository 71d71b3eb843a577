//! Protocol plugins (WebAssembly components, `enos:driver@1.0.0`) in the sandbox of
//! `enos-plugin-host`: the IEC 62056-21 example, built from source by `scripts/plugin`, reads a
//! meter (peers/iec62056_meter.py); plugins that crash, loop, hoard memory or reach for an
//! endpoint their device does not name are stopped with the reason in words while the others
//! keep reporting; a manifest for another interface version is refused.

use enos_plugin_host::{DeviceSpec, DeviceState, Endpoint, Plugin, Report, Runtime, Schedule, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// The example and the misbehaving plugin, built from source once per test run and packed by
/// `scripts/plugin build` into a directory each.
fn packed() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugins");
        for (src, name) in [("iec62056", "iec62056"), ("testing", "misbehave")] {
            let st = Command::new(repo().join("scripts/plugin"))
                .args(["build", repo().join("rust/plugins").join(src).to_str().unwrap(), out.join(name).to_str().unwrap()])
                .status()
                .expect("scripts/plugin");
            assert!(st.success(), "scripts/plugin build {src} failed");
        }
        out
    })
}

fn load(rt: &Runtime, name: &str) -> Arc<Plugin> {
    rt.load(&packed().join(name)).unwrap_or_else(|e| panic!("{e}"))
}

/// The meter simulator, killed when dropped.
struct Meter(Child);

impl Drop for Meter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the meter with `config` (JSON, see the script); its TCP port, if it serves TCP.
fn meter(config: &str) -> (Meter, u16) {
    let (m, rest) = meter_ready(config);
    let port = rest.trim().parse().unwrap_or_else(|_| panic!("the meter said ready {rest:?} instead of ready PORT"));
    (m, port)
}

/// Starts the meter and waits for its "ready" line; returns what followed "ready".
fn meter_ready(config: &str) -> (Meter, String) {
    let venv = std::env::var_os("ENOS_VENV").map(PathBuf::from).unwrap_or_else(|| repo().join("build/venv"));
    let mut child = Command::new(venv.join("bin/python3"))
        .arg(repo().join("rust/crates/enos-testkit/peers/iec62056_meter.py"))
        .arg(config)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the venv's python3 (scripts/setup-host)");
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    // Keep reading its "readout N" lines: a closed pipe would end the meter.
    std::thread::spawn(move || out.lines().map_while(Result::ok).for_each(drop));
    let rest = line.strip_prefix("ready").unwrap_or_else(|| panic!("the meter said {line:?} instead of ready")).to_string();
    (Meter(child), rest)
}

fn device(plugin: &Plugin, id: &str, settings: serde_json::Value, points: &[(&str, &str)], endpoints: &[(&str, Endpoint)]) -> DeviceSpec {
    DeviceSpec {
        id: id.into(),
        settings: plugin.check_settings(&settings).unwrap_or_else(|e| panic!("{e:?}")),
        points: points.iter().map(|(n, a)| (n.to_string(), a.to_string())).collect(),
        endpoints: endpoints.iter().map(|(k, e)| (k.to_string(), e.clone())).collect::<BTreeMap<_, _>>(),
        kv_file: None,
    }
}

fn fast() -> Schedule {
    Schedule { poll: Duration::from_millis(100), backoff_min: Duration::from_millis(100), backoff_max: Duration::from_millis(400) }
}

/// A report of one device, tagged with its id.
type Tagged = (String, Report);

fn reporter(tx: &mpsc::Sender<Tagged>, id: &str) -> impl FnMut(Report) + Send + 'static {
    let (tx, id) = (tx.clone(), id.to_string());
    move |r| {
        let _ = tx.send((id.clone(), r));
    }
}

/// Takes reports until `done` says enough (or panics after 20 s with what came).
fn until(rx: &mpsc::Receiver<Tagged>, mut done: impl FnMut(&str, &Report) -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok((id, r)) => {
                if done(&id, &r) {
                    return;
                }
                seen.push(format!("{id}: {r:?}"));
            }
            Err(_) => break,
        }
    }
    panic!("not seen in 20 s; the reports were:\n{}", seen.join("\n"));
}

#[test]
fn the_example_plugin_reads_a_meter_over_tcp() {
    let (_m, port) = meter(r#"{"tcp": true, "ident": "ISK5MT174-0001", "values": {"1.8.0": "001234.567*kWh", "32.7.0": "230.1*V"}}"#);
    let rt = Runtime::new(None).unwrap();
    let plugin = load(&rt, "iec62056");
    let spec = device(
        &plugin,
        "meter1",
        serde_json::json!({"timeout_ms": 2000}),
        &[("energy", "1-0:1.8.0*255"), ("voltage", "32.7.0")],
        &[("line", Endpoint::Tcp(format!("127.0.0.1:{port}")))],
    );
    let (tx, rx) = mpsc::channel::<Tagged>();
    let _running = enos_plugin_host::supervisor::spawn(rt.clone(), plugin, spec, fast(), reporter(&tx, "meter1")).unwrap();
    // Two readouts: the energy register counts up between them.
    let mut energy = Vec::new();
    until(&rx, |_, r| {
        if let Report::Samples(s) = r {
            for x in s {
                match (x.point.as_str(), &x.value) {
                    ("energy", Value::Float(v)) => energy.push(*v),
                    ("voltage", Value::Float(v)) => assert_eq!(*v, 230.1),
                    (p, v) => panic!("unexpected sample {p} = {v:?}"),
                }
            }
        }
        energy.len() >= 2
    });
    assert_eq!(energy[0], 1234.567);
    assert!(energy[1] > energy[0], "{energy:?}");
}

/// On-demand requests between the scheduled polls: a read polls the driver now; a command
/// reaches the driver's `command` (direct, or select then execute) and comes back in its words,
/// accepted or refused.
#[test]
fn reads_and_commands_on_demand_reach_the_driver_between_its_polls() {
    use enos_plugin_host::supervisor::Request;
    use enos_plugin_host::{CallError, CommandKind, CommandRequest};
    let rt = Runtime::new(None).unwrap();
    let plugin = load(&rt, "misbehave");
    let spec = device(&plugin, "c1", serde_json::json!({"how": "count"}), &[("n", "n")], &[]);
    // One scheduled poll at the start, then none for an hour: every later value is on demand.
    let schedule = Schedule { poll: Duration::from_secs(3600), ..fast() };
    let (tx, rx) = mpsc::channel::<Tagged>();
    let running = enos_plugin_host::supervisor::spawn(rt.clone(), plugin, spec, schedule, reporter(&tx, "c1")).unwrap();
    until(&rx, |_, r| matches!(r, Report::State(DeviceState::Online, _)));
    let read = || {
        let (tx, rx) = mpsc::channel();
        running.request(Request::Read { reply: Box::new(move |r| tx.send(r).unwrap()) });
        let samples = rx.recv_timeout(Duration::from_secs(20)).expect("an answer").expect("a poll");
        samples.iter().map(|s| s.value.clone()).collect::<Vec<_>>()
    };
    let command = |kind, v: i64| {
        let (tx, rx) = mpsc::channel();
        let cmd = CommandRequest { point: "n".into(), value: Value::Integer(v), kind, timeout_ms: 1000 };
        running.request(Request::Command { cmd, reply: Box::new(move |r| tx.send(r).unwrap()) });
        rx.recv_timeout(Duration::from_secs(20)).expect("an answer")
    };
    assert_eq!(read(), [Value::Integer(2)], "the scheduled poll counted 1, the read now 2");
    assert_eq!(command(CommandKind::Direct, 40), Ok("counter set to 40".to_string()));
    assert_eq!(read(), [Value::Integer(41)]);
    assert_eq!(command(CommandKind::Direct, -1), Err(CallError::Failed("the counter cannot go below zero".into())));
    assert_eq!(command(CommandKind::Execute, 7), Err(CallError::Failed("execute 7 without a select of 7".into())));
    assert_eq!(command(CommandKind::Select, 7), Ok("selected 7".to_string()));
    assert_eq!(command(CommandKind::Execute, 7), Ok("counter set to 7".to_string()));
    assert_eq!(read(), [Value::Integer(8)]);
    // The samples of on-demand reads went on like a scheduled poll's.
    let mut forwarded = Vec::new();
    while let Ok((_, r)) = rx.try_recv() {
        if let Report::Samples(s) = r {
            forwarded.extend(s.into_iter().map(|s| s.value));
        }
    }
    assert_eq!(forwarded, [Value::Integer(2), Value::Integer(41), Value::Integer(8)]);
}

/// The same plugin over a serial line: a socat PTY pair, the meter on one end, the plugin's
/// endpoint on the other (9600 baud, even parity, raw).
#[test]
fn the_example_plugin_reads_a_meter_over_a_serial_line() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("ttyA"), dir.path().join("ttyB"));
    let socat = Command::new("socat")
        .arg(format!("pty,raw,echo=0,link={}", a.display()))
        .arg(format!("pty,raw,echo=0,link={}", b.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat (apt install socat)");
    let _socat = Meter(socat);
    let end = Instant::now() + Duration::from_secs(5);
    while !(a.exists() && b.exists()) {
        assert!(Instant::now() < end, "socat made no PTY pair");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_m, _) = meter_ready(&format!(r#"{{"serial": "{}", "address": "42", "values": {{"1.8.0": "000007.000*kWh"}}}}"#, a.display()));
    let rt = Runtime::new(None).unwrap();
    let plugin = load(&rt, "iec62056");
    let spec = device(
        &plugin,
        "meter2",
        serde_json::json!({"meter_address": "42", "timeout_ms": 2000}),
        &[("energy", "1.8.0")],
        &[("line", Endpoint::Serial { port: b.clone(), baud: 9600, parity: 'E' })],
    );
    let (tx, rx) = mpsc::channel::<Tagged>();
    let _running = enos_plugin_host::supervisor::spawn(rt.clone(), plugin, spec, fast(), reporter(&tx, "meter2")).unwrap();
    until(
        &rx,
        |_, r| matches!(r, Report::Samples(s) if s.iter().any(|x| x.point == "energy" && matches!(x.value, Value::Float(v) if v >= 7.0))),
    );
}

#[test]
fn misbehaving_plugins_are_stopped_with_a_reason_while_the_others_keep_reporting() {
    let rt = Runtime::new(None).unwrap();
    let plugin = load(&rt, "misbehave");
    let kv = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::channel::<Tagged>();
    let mut running = Vec::new();
    for how in ["count", "trap", "trap-once", "spin", "hog", "snoop"] {
        let mut spec =
            device(&plugin, how, serde_json::json!({ "how": how }), &[("n", "n")], &[("line", Endpoint::Tcp("127.0.0.1:9".into()))]);
        spec.kv_file = Some(kv.path().join(format!("{how}.json")));
        running.push(enos_plugin_host::supervisor::spawn(rt.clone(), plugin.clone(), spec, fast(), reporter(&tx, how)).unwrap());
    }
    let want: BTreeMap<&str, &str> = BTreeMap::from([
        ("trap", "the driver crashed in poll: panic: panicked at"),
        ("spin", "the driver ran past its time budget of 300 ms in poll and was stopped"),
        ("hog", "the driver asked for more than its 8 MiB of memory in poll and was stopped"),
        ("snoop", "the driver did not start: opening 127.0.0.1:22: not permitted: device \"snoop\" names no endpoint \"127.0.0.1:22\" (it names line)"),
    ]);
    let mut failed = BTreeMap::new();
    let mut trap_once = (false, false); // (failed, then online again after the restart)
    let mut counts_after = 0;
    until(&rx, |id, r| {
        match (id, r) {
            ("count", Report::Samples(_)) if failed.len() == want.len() => counts_after += 1,
            ("count", Report::State(s, reason)) => assert_eq!(*s, DeviceState::Online, "{reason}"),
            ("trap-once", Report::State(DeviceState::Failed, reason)) => {
                assert!(reason.contains("trapping once (on purpose)"), "{reason}");
                trap_once.0 = true;
            }
            ("trap-once", Report::State(DeviceState::Online, _)) => trap_once.1 = trap_once.0,
            (_, Report::State(DeviceState::Failed, reason)) if want.contains_key(id) => {
                failed.insert(id.to_string(), reason.clone());
            }
            _ => {}
        }
        failed.len() == want.len() && trap_once.1 && counts_after >= 3
    });
    for (id, reason) in &failed {
        assert!(reason.starts_with(want[id.as_str()]), "{id}: {reason}");
    }
    assert!(failed["trap"].contains("the meter table is corrupt (on purpose)"), "{}", failed["trap"]);
    // The stopped ones stay stopped (each restart fails again), and stopping all is prompt:
    // a spinning instance does not hold up the rest.
    let t = Instant::now();
    drop(running);
    assert!(t.elapsed() < Duration::from_secs(3), "stopping took {:?}", t.elapsed());
}

#[test]
fn a_plugin_for_another_interface_version_or_with_bad_settings_is_refused_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let src = packed().join("misbehave");
    for f in ["plugin.toml", "plugin.wasm"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let manifest = std::fs::read_to_string(src.join("plugin.toml")).unwrap().replace("enos:driver@1.0.0", "enos:driver@2.0.0");
    std::fs::write(dir.path().join("plugin.toml"), manifest).unwrap();
    let rt = Runtime::new(None).unwrap();
    let e = rt.load(dir.path()).err().expect("refused").to_string();
    assert_eq!(
        e,
        format!(
            "{}: plugin \"misbehave\": it is built for the driver interface \"enos:driver@2.0.0\"; this gateway serves enos:driver@1.0.0",
            dir.path().join("plugin.toml").display()
        )
    );
    let meter = load(&rt, "iec62056");
    let e = meter.check_settings(&serde_json::json!({"timeout_ms": 5, "baud": 9600})).unwrap_err();
    assert_eq!(
        e,
        [
            "settings.baud: not a setting of this protocol (it has endpoint, meter_address, timeout_ms)",
            "settings.timeout_ms: 5 is below the minimum 100",
        ]
    );
}

/// The collector end to end: a Modbus device and plugin devices in one collector. The meter's
/// values (through the IEC 62056-21 plugin) reach the cloud simulator through the real uplink;
/// a plugin that crashes, one that loops and one built for another interface version are each
/// failed with their reason in `enosctl devices`, while the Modbus device and the meter keep
/// reaching the cloud. Writes to plugin devices take the path of every protocol's (the cloud's
/// measurepoint/set, `enosctl write`), accepted or refused in the driver's words; reads and the
/// communication test poll the driver now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_runs_plugin_devices_beside_a_modbus_device() {
    use enos_testkit::cloud_sim::CloudSim;
    use enos_testkit::harness::{run_tool, spawn_service, uplink_toml_devices, Bus, Mosquitto};
    use enos_testkit::modbus_sim::SimServer;
    use enos_testkit::wait_for;
    use std::collections::HashMap;

    let dir = tempfile::tempdir().unwrap();
    // The installed plugins: the two built ones and a copy that names another interface.
    let plugins = dir.path().join("plugins");
    for (name, from) in [("iec62056", "iec62056"), ("misbehave", "misbehave"), ("future", "misbehave")] {
        std::fs::create_dir_all(plugins.join(name)).unwrap();
        for f in ["plugin.toml", "plugin.wasm"] {
            std::fs::copy(packed().join(from).join(f), plugins.join(name).join(f)).unwrap();
        }
    }
    let future = plugins.join("future/plugin.toml");
    std::fs::write(&future, std::fs::read_to_string(&future).unwrap().replace("enos:driver@1.0.0", "enos:driver@2.0.0")).unwrap();
    // The collector started below inherits it.
    std::env::set_var("ENOS_PLUGINS_DIR", &plugins);

    let bus = Bus::start(dir.path());
    let broker = Mosquitto::start(dir.path());
    let cloud = CloudSim::start(broker.port, HashMap::from([("gw01".to_string(), "s".to_string())])).await;
    let sim = SimServer::start(1).await;
    sim.with(|s| s.counters.push(0));
    let (_meter, port) = meter(r#"{"tcp": true, "values": {"1.8.0": "001234.567*kWh"}}"#);
    let misbehaving = |id: &str, plugin: &str, how: &str| {
        format!(
            "[[device]]\nid = \"{id}\"\nprotocol = \"plugin\"\nplugin = \"{plugin}\"\npoll_interval_ms = 100\nsettings = {{ how = \"{how}\" }}\n\n\
             [[device.point]]\nname = \"n\"\naddress = \"n\"\n\n"
        )
    };
    std::fs::write(
        dir.path().join("collector.toml"),
        format!(
            r#"[push]
interval_ms = 100

[[device]]
id = "inv01"
protocol = "modbus-tcp"
address = "{modbus}"
timeout_ms = 2000
poll_groups = [{{ name = "fast", interval_ms = 100 }}]

[[device.point]]
name = "counter"
area = "holding"
address = 0
type = "u32"
group = "fast"

[[device]]
id = "meter1"
protocol = "plugin"
plugin = "iec62056"
poll_interval_ms = 200
endpoints = {{ line = {{ address = "127.0.0.1:{port}" }} }}
settings = {{ timeout_ms = 2000 }}

[[device.point]]
name = "energy"
address = "1.8.0"
scale = 1000
unit = "Wh"
access = "rw"
min = 0
max = 1000000000

[[device]]
id = "ctr"
protocol = "plugin"
plugin = "misbehave"
poll_interval_ms = 86400000
settings = {{ how = "count" }}

[[device.point]]
name = "n"
address = "n"
access = "rw"
select_before_operate = true
# Below zero too: the driver, not the range, refuses it.
min = -10
max = 1000

[[device]]
id = "slow"
protocol = "plugin"
plugin = "misbehave"
settings = {{ how = "silent" }}
command_timeout_ms = 100

[[device.point]]
name = "wait"
address = "wait"
access = "rw"
min = 0
max = 250

[[device.point]]
name = "boom"
address = "boom"
access = "rw"
min = 0
max = 1

{crash}{spin}{future}"#,
            modbus = sim.addr,
            crash = misbehaving("crash", "misbehave", "trap"),
            spin = misbehaving("spin", "misbehave", "spin"),
            future = misbehaving("future", "future", "count"),
        ),
    )
    .unwrap();
    let uplink = uplink_toml_devices(
        &cloud.uri(),
        &dir.path().join("cache"),
        &[("inv01", "pkInv", "i"), ("meter1", "pkM", "m"), ("ctr", "pkC", "c")],
    );
    std::fs::write(dir.path().join("uplink.toml"), uplink).unwrap();
    let log = dir.path().join("services.log");
    let _uplink = spawn_service("enos-uplink", &dir.path().join("uplink.toml"), &bus.address, &log);
    let _collector = spawn_service("enos-collector", &dir.path().join("collector.toml"), &bus.address, &log);

    let at_cloud = |device: &str, point: &str| -> Vec<serde_json::Value> {
        cloud.with(|r| {
            r.points.iter().filter(|p| p.device_key.as_deref() == Some(device) && p.point == point).map(|p| p.value.clone()).collect()
        })
    };
    let energy = wait_for(60, "the meter's energy at the cloud", || at_cloud("meter1", "energy").first().cloned()).await;
    assert_eq!(energy.as_f64(), Some(1_234_567.0), "kWh scaled to Wh");

    // Each bad plugin is failed with its reason; the Modbus device and the meter are online.
    let want = [
        ("crash", "the driver crashed in poll: panic: panicked at"),
        ("spin", "the driver ran past its time budget of 300 ms in poll and was stopped"),
        ("future", "it is built for the driver interface \"enos:driver@2.0.0\"; this gateway serves enos:driver@1.0.0"),
    ];
    let devices = wait_for(60, "the bad plugins failed with their reasons", || {
        let (ok, out, _) = run_tool("enosctl", &["--json", "devices"], &bus.address);
        let v: serde_json::Value = serde_json::from_str(&out).ok().filter(|_| ok)?;
        let by_id: HashMap<String, serde_json::Value> =
            v.as_array()?.iter().map(|d| (d["id"].as_str().unwrap_or_default().to_string(), d.clone())).collect();
        want.iter()
            .all(|(id, why)| {
                by_id.get(*id).is_some_and(|d| d["state"] == "failed" && d["last_error"].as_str().is_some_and(|e| e.contains(why)))
            })
            .then_some(by_id)
    })
    .await;
    for id in ["inv01", "meter1"] {
        assert_eq!(devices[id]["state"], "online", "{}", devices[id]);
    }
    // ... and keep reaching the cloud after the failures.
    let (counters, energies) = (at_cloud("inv01", "counter").len(), at_cloud("meter1", "energy").len());
    wait_for(30, "more Modbus and meter values after the plugins failed", || {
        (at_cloud("inv01", "counter").len() > counters + 5 && at_cloud("meter1", "energy").len() > energies + 2).then_some(())
    })
    .await;

    // Writes from the cloud: the counter's select and execute go through the driver; a value it
    // refuses, and a write to the read-only meter, come back as the device's refusal (2006).
    let set =
        |id: &str, body: &str| format!(r#"{{"id":"{id}","version":"1.0","method":"thing.service.measurepoint.set","params":{body}}}"#);
    cloud.command("/sys/pkC/ctr/thing/service/measurepoint/set", set("1", r#"{"n":5}"#).as_bytes()).await;
    cloud.command("/sys/pkC/ctr/thing/service/measurepoint/set", set("2", r#"{"n":-3}"#).as_bytes()).await;
    cloud.command("/sys/pkM/meter1/thing/service/measurepoint/set", set("3", r#"{"energy":1}"#).as_bytes()).await;
    let replies = wait_for(30, "three command replies", || {
        let r = cloud.with(|r| r.command_replies.clone());
        (r.len() >= 3).then_some(r)
    })
    .await;
    let reply = |id: &str| replies.iter().find(|(_, v)| v["id"] == id).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(reply("1")["code"], 200, "{replies:?}");
    assert_eq!(reply("2")["code"], 2006, "{replies:?}");
    assert!(reply("2").to_string().contains("select: the counter cannot go below zero"), "{replies:?}");
    assert_eq!(reply("3")["code"], 2006, "{replies:?}");
    assert!(reply("3").to_string().contains("an IEC 62056-21 mode C readout only reads the meter"), "{replies:?}");

    // enosctl: the driver's answer in words, a refusal with a non-zero exit.
    let (ok, out, err) = run_tool("enosctl", &["write", "ctr", "n", "9"], &bus.address);
    assert!(ok && out.contains("counter set to 9"), "{out}{err}");
    let (ok, _, err) = run_tool("enosctl", &["write", "ctr", "n", "-1"], &bus.address);
    assert!(!ok && err.contains("the device did not take it: select: the counter cannot go below zero"), "{err}");
    // A driver that answers after the caller's timeout, one that crashes in `command`: each in
    // words; the crashed one is started again and takes commands after its restart.
    let (ok, _, err) = run_tool("enosctl", &["write", "slow", "wait", "250"], &bus.address);
    assert!(!ok && err.contains("the device did not take it: the driver did not answer within 100 ms"), "{err}");
    // Requests queue behind the late command: a read (no timeout) answers once it ended.
    let (ok, out, err) = run_tool("enosctl", &["--json", "read", "slow", "wait"], &bus.address);
    assert!(ok && out.contains("the driver sent no value for it in this poll"), "{out}{err}");
    let (ok, _, err) = run_tool("enosctl", &["write", "slow", "boom", "1"], &bus.address);
    assert!(!ok && err.contains("the gateway failed to write it: the driver crashed in command: panic: "), "{err}");
    assert!(err.contains("the command table is corrupt (on purpose)"), "{err}");
    wait_for(30, "the crashed driver taking commands again", || {
        let (ok, out, err) = run_tool("enosctl", &["write", "slow", "wait", "1"], &bus.address);
        assert!(ok || err.contains("the device did not take it: the driver is not running"), "{err}");
        (ok && out.contains("waited 1 ms")).then_some(())
    })
    .await;
    // A read polls the driver now (its only scheduled poll was the first): 9, then one count.
    let (ok, out, err) = run_tool("enosctl", &["--json", "read", "ctr", "n"], &bus.address);
    assert!(ok, "{err}");
    let r: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!((r[0]["value"].as_i64(), r[0]["quality"].as_str()), (Some(10), Some("good")), "{out}");
    // The communication test: the chosen points read now, as JSON and as a table.
    let (ok, out, err) = run_tool("enosctl", &["--json", "comm-test", "ctr"], &bus.address);
    assert!(ok, "{out}{err}");
    let a: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (a["kind"].as_str(), a["ok"].as_bool(), a["plugin"].as_str()),
        (Some("plugin-read"), Some(true), Some("misbehave 0.1.0")),
        "{a}"
    );
    assert_eq!((a["values"][0]["point"].as_str(), a["values"][0]["value"].as_i64()), (Some("n"), Some(11)), "{a}");
    let (ok, out, err) = run_tool("enosctl", &["comm-test", "meter1", r#"{"points": ["energy"]}"#], &bus.address);
    assert!(ok, "{out}{err}");
    assert!(out.starts_with("1 of 1 points read"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("energy") && l.contains("1.8.0") && l.contains(" Wh")), "{out}");
    let (ok, _, err) = run_tool("enosctl", &["comm-test", "ctr", r#"{"points": ["nope"]}"#], &bus.address);
    assert!(!ok && err.contains("device \"ctr\" has no point \"nope\""), "{err}");
    // What the on-demand reads got went on to the cloud like polled values.
    wait_for(30, "the counter's on-demand values at the cloud", || {
        let n = at_cloud("ctr", "n");
        (n.contains(&serde_json::json!(10)) && n.contains(&serde_json::json!(11))).then_some(())
    })
    .await;
}

/// Compiled code is kept in the cache directory and used at the next load; a damaged entry is
/// compiled again, not trusted.
#[test]
fn compiled_plugins_are_cached_and_a_damaged_cache_entry_is_compiled_again() {
    let cache = tempfile::tempdir().unwrap();
    let rt = Runtime::new(Some(cache.path().to_path_buf())).unwrap();
    load(&rt, "misbehave");
    let entries: Vec<PathBuf> = std::fs::read_dir(cache.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].extension().is_some_and(|x| x == "cwasm"), "{entries:?}");
    let plugin = load(&rt, "misbehave");
    std::fs::write(&entries[0], b"not machine code").unwrap();
    let again = load(&rt, "misbehave");
    assert_ne!(std::fs::read(&entries[0]).unwrap(), b"not machine code", "the damaged entry is written anew");
    // Both instantiate and run.
    for p in [plugin, again] {
        let spec = device(&p, "c", serde_json::json!({"how": "count"}), &[], &[]);
        let mut i = enos_plugin_host::Instance::new(&rt, &p, &spec).unwrap();
        i.init(&spec).unwrap();
        i.poll(1).unwrap();
        assert_eq!(i.take_output().0.len(), 1);
    }
}

/// `enosctl plugin install DIR`: a packed plugin is checked and copied into the plugins
/// directory (a reinstall replaces it whole); a core module or a wrong interface is refused.
#[test]
fn enosctl_installs_a_packed_plugin_and_refuses_a_bad_one() {
    let into = tempfile::tempdir().unwrap();
    let install = |dir: &Path| {
        let out = Command::new(enos_testkit::harness::bin_dir().join("enosctl"))
            .args(["plugin", "install", dir.to_str().unwrap()])
            .env("ENOS_PLUGINS_DIR", into.path())
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
    };
    for _ in 0..2 {
        let (ok, out) = install(&packed().join("iec62056"));
        assert!(ok, "{out}");
        assert!(out.starts_with("installed plugin iec62056 0.1.0 (protocols iec62056-21) in "), "{out}");
    }
    let rt = Runtime::new(None).unwrap();
    rt.load(&into.path().join("iec62056")).unwrap();

    let bad = tempfile::tempdir().unwrap();
    std::fs::copy(packed().join("iec62056/plugin.toml"), bad.path().join("plugin.toml")).unwrap();
    // A core module (`\0asm`, version 1, layer 0), not a component.
    std::fs::write(bad.path().join("plugin.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let (ok, out) = install(bad.path());
    assert!(!ok);
    assert!(out.contains("plugin.wasm: not a WebAssembly component (build it with scripts/plugin build)"), "{out}");
    let manifest = std::fs::read_to_string(bad.path().join("plugin.toml")).unwrap().replace("@1.0.0", "@2.1.0");
    std::fs::write(bad.path().join("plugin.toml"), manifest).unwrap();
    let (ok, out) = install(bad.path());
    assert!(!ok);
    assert!(out.contains("this gateway serves enos:driver@1.0.0"), "{out}");
    let installed: Vec<_> = std::fs::read_dir(into.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(installed, ["iec62056"]);
}

/// The collector keeps `MemoryDenyWriteExecute=yes` (docs/plugins.md): the kernel's own form
/// of that rule (`prctl(PR_SET_MDWE)`, no mapping writable and executable, none made
/// executable later; what systemd enforces with seccomp) is set on a child process, which loads
/// the example and runs a poll in the interpreter the gateway uses; machine code (what wasmtime
/// makes executable with `mprotect`) is refused there.
#[test]
fn plugins_run_under_memory_deny_write_execute() {
    use std::os::unix::process::CommandExt;
    let dir = packed().join("misbehave");
    let mut child = Command::new(std::env::current_exe().unwrap());
    child.args(["--exact", "mdwe_child", "--nocapture", "--test-threads=1"]).env("ENOS_MDWE_CHILD", &dir);
    // SAFETY: prctl only, between fork and exec.
    unsafe {
        child.pre_exec(|| {
            const PR_SET_MDWE: libc::c_int = 65;
            const PR_MDWE_REFUSE_EXEC_GAIN: libc::c_ulong = 1;
            if libc::prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = child.output().expect("the test binary under MDWE (Linux 6.3 or newer)");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("interpreted: polled, 1 sample"), "{text}");
    assert!(text.contains("native: refused"), "{text}");
}

/// The child of `plugins_run_under_memory_deny_write_execute` (does nothing on its own).
#[test]
fn mdwe_child() {
    let Some(dir) = std::env::var_os("ENOS_MDWE_CHILD").map(PathBuf::from) else { return };
    const PR_GET_MDWE: libc::c_int = 66;
    // SAFETY: reads a flag of this process.
    assert_eq!(unsafe { libc::prctl(PR_GET_MDWE, 0, 0, 0, 0) } & 1, 1, "MDWE is not on in the child");
    let rt = Runtime::new(None).unwrap();
    let p = rt.load(&dir).unwrap_or_else(|e| panic!("interpreted: {e}"));
    let spec = device(&p, "c", serde_json::json!({"how": "count"}), &[], &[]);
    let mut i = enos_plugin_host::Instance::new(&rt, &p, &spec).unwrap();
    i.init(&spec).unwrap();
    i.poll(1).unwrap();
    println!("interpreted: polled, {} sample", i.take_output().0.len());
    let native = Runtime::with(None, enos_plugin_host::Execution::Native).unwrap();
    match native.load(&dir) {
        Ok(_) => panic!("native code loaded under MDWE"),
        Err(e) => println!("native: refused ({e})"),
    }
}

/// A signed resource package from the cloud brings the example plugin (built from source) and
/// the configuration of a meter it reads; the meter's values reach the cloud. A package signed
/// by another key and one whose plugin is built for another interface are refused in words and
/// change nothing; a new version of the plugin whose devices produce no data is rolled back to
/// the old one, which collects again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_arrives_in_a_signed_cloud_package_and_a_version_without_data_is_rolled_back() {
    use enos_package::build::{build, Source};
    use enos_package::ItemType;
    use enos_testkit::edge::{collector_toml, Edge, GW, PK, POINTS_CSV};
    use enos_testkit::harness::spawn_service_env;
    use enos_testkit::wait_for;

    let mut e = Edge::start_with(
        "[packages]\ndir = \"{dir}/downloads\"\nmax_bytes = 1048576\nallow_http = true\n\n\
         [[sub_device]]\ndevice = \"meter1\"\nproduct_key = \"pkM\"\ndevice_key = \"meter1\"\ndevice_secret = \"m\"\n",
    )
    .await;
    let (private, public) = enos_package::key::generate();
    let key = enos_package::key::private_from_pem(&private).unwrap();
    let key_file = e.dir.path().join("package-key.pem");
    std::fs::write(&key_file, public).unwrap();
    let plugins = e.dir.path().join("plugins");
    e.collector.terminate();
    let env = [
        ("ENOS_PACKAGE_KEY", key_file.to_str().unwrap()),
        ("ENOS_PACKAGE_HEALTH_TIMEOUT_S", "4"),
        ("ENOS_PLUGINS_DIR", plugins.to_str().unwrap()),
    ];
    e.collector = spawn_service_env("enos-collector", &e.dir.path().join("collector.toml"), &e.bus.address, &e.log(), &env);
    let (_meter, port) = meter(r#"{"tcp": true, "values": {"1.8.0": "001234.567*kWh"}}"#);

    let file = |plugin: &str, f: &str| std::fs::read(packed().join(plugin).join(f)).unwrap();
    let item = |path: &str, kind: ItemType, data: Vec<u8>| Source { path: path.into(), kind, data };
    let plugin_items = |manifest: Vec<u8>, component: Vec<u8>| {
        vec![
            item("plugins/iec62056/plugin.toml", ItemType::Plugin, manifest),
            item("plugins/iec62056/plugin.wasm", ItemType::Plugin, component),
        ]
    };
    let config = collector_toml(&e.sim.addr.to_string()).replace("points_csv = \"inv01.csv\"", "points_csv = \"points/inv01.csv\"")
        + &format!(
            "\n[[device]]\nid = \"meter1\"\nprotocol = \"plugin\"\nplugin = \"iec62056\"\npoll_interval_ms = 200\n\
             endpoints = {{ line = {{ address = \"127.0.0.1:{port}\" }} }}\nsettings = {{ timeout_ms = 2000 }}\n\n\
             [[device.point]]\nname = \"energy\"\naddress = \"1.8.0\"\nscale = 1000\nunit = \"Wh\"\n"
        );
    let mut v1 = plugin_items(file("iec62056", "plugin.toml"), file("iec62056", "plugin.wasm"));
    v1.push(item("collector.toml", ItemType::CollectorConfig, config.into_bytes()));
    v1.push(item("points/inv01.csv", ItemType::PointTable, POINTS_CSV.as_bytes().to_vec()));

    // Serves a package and asks the gateway to apply it; the final progress event.
    let mut calls = 0;
    let mut apply = |version: &'static str, pkg: Vec<u8>| {
        calls += 1;
        let id = format!("p{calls}");
        let e = &e;
        async move {
            use sha2::Digest;
            let before = e.cloud.with(|r| r.requests_on("/thing/event/resourcePackageProgress/post").len());
            let (url, _server) = e.cloud.serve_package(pkg.clone(), None).await;
            let params = serde_json::json!({
                "url": url, "version": version, "sha256": hex::encode(sha2::Sha256::digest(&pkg)), "size": pkg.len(),
            });
            let body = serde_json::json!({ "id": id, "version": "1.0", "method": "thing.service.applyResourcePackage", "params": params });
            e.cloud.command(&format!("/sys/{PK}/{GW}/thing/service/applyResourcePackage"), body.to_string().as_bytes()).await;
            wait_for(60, "the package's final step", || {
                e.cloud.with(|r| {
                    r.requests_on("/thing/event/resourcePackageProgress/post")
                        .get(before..)?
                        .iter()
                        .map(|v| v["params"]["value"].clone())
                        .find(|v| v["version"] == version && v["step"].as_i64().is_some_and(|s| s == 100 || s < 0))
                })
            })
            .await
        }
    };
    let energies =
        || e.cloud.with(|r| r.points.iter().filter(|p| p.device_key.as_deref() == Some("meter1") && p.point == "energy").count());

    let last = apply("1.0.0", build("site", "1.0.0", &v1, Some(&key))).await;
    assert_eq!(last["step"], 100, "{last}");
    let energy = wait_for(60, "the meter's energy at the cloud", || {
        e.cloud
            .with(|r| r.points.iter().find(|p| p.device_key.as_deref() == Some("meter1") && p.point == "energy").map(|p| p.value.clone()))
    })
    .await;
    assert_eq!(energy.as_f64(), Some(1_234_567.0), "kWh scaled to Wh");
    let installed = || std::fs::read_to_string(plugins.join("iec62056/plugin.toml")).unwrap();
    assert_eq!(installed().as_bytes(), file("iec62056", "plugin.toml"), "the package's plugin is the installed one");
    let config_now = std::fs::read_to_string(e.dir.path().join("collector.toml")).unwrap();

    // Refused in words; the plugin and the configuration stay as they are.
    let (other, _) = enos_package::key::generate();
    let other = enos_package::key::private_from_pem(&other).unwrap();
    let v2_manifest = String::from_utf8(file("iec62056", "plugin.toml")).unwrap().replace("version = \"0.1.0\"", "version = \"0.2.0\"");
    let future = v2_manifest.replace("enos:driver@1.0.0", "enos:driver@2.0.0");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "signed by another key",
            build("site", "2.0.0", &plugin_items(v2_manifest.clone().into_bytes(), file("iec62056", "plugin.wasm")), Some(&other)),
            "the package's signature does not match the manifest and the gateway's package key",
        ),
        (
            "another interface",
            build("site", "2.0.0", &plugin_items(future.into_bytes(), file("iec62056", "plugin.wasm")), Some(&key)),
            "item \"plugins/iec62056/plugin.toml\": it is built for the driver interface \"enos:driver@2.0.0\"; this gateway serves enos:driver@1.0.0",
        ),
    ];
    for (what, pkg, words) in cases {
        let last = apply("2.0.0", pkg).await;
        assert_eq!(last["step"], -3, "{what}: {last}");
        assert!(last["message"].as_str().unwrap().contains(words), "{what}: {last}");
        assert_eq!(installed().as_bytes(), file("iec62056", "plugin.toml"), "{what}: the installed plugin changed");
        assert_eq!(std::fs::read_to_string(e.dir.path().join("collector.toml")).unwrap(), config_now, "{what}");
    }

    // Version 0.2.0 answers its polls but reads nothing (the misbehaving plugin's component
    // under the example's manifest): rolled back to 0.1.0, whose values flow again.
    let silent = plugin_items(v2_manifest.into_bytes(), file("misbehave", "plugin.wasm"));
    let last = apply("2.0.0", build("site", "2.0.0", &silent, Some(&key))).await;
    assert_eq!(last["step"], -4, "{last}");
    let msg = last["message"].as_str().unwrap();
    assert!(msg.starts_with("device \"meter1\" was not collecting 4 s after the apply (state online)"), "{msg}");
    assert!(msg.ends_with("the previous configuration and plugins were put back"), "{msg}");
    assert_eq!(installed().as_bytes(), file("iec62056", "plugin.toml"), "0.1.0 is back");
    assert!(!plugins.join(".iec62056.previous").exists());
    let n = energies();
    wait_for(30, "the meter's values after the rollback", || (energies() > n + 2).then_some(())).await;
}
