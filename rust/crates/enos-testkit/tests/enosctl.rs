//! enosctl against the real services on a private bus. `check`: all good is exit 0 with every
//! line marked good; a stopped uplink is named, exit 2; an unreachable cloud is said as such.
//! Words: a refused write says who refused it, a negative value needs no `--`, a bus failure
//! is said once and without D-Bus error names.

use enos_testkit::cloud_sim::CloudSim;
use enos_testkit::harness::{bin_dir, spawn_service, spawn_service_env, uplink_toml_one_device, Bus, Mosquitto, Proc};
use enos_testkit::modbus_sim::SimServer;
use enos_testkit::wait_for;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A whole box: collector with one simulated device, uplink on the cloud simulator, the update
/// agent below a GRUB environment block in a file (as in ota.rs).
struct Edge {
    dir: tempfile::TempDir,
    bus: Bus,
    broker: Mosquitto,
    _cloud: CloudSim,
    _sim: SimServer,
    uplink: Proc,
    _collector: Proc,
    ota: Proc,
}

fn bootslot_tool() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../meta-enos-edge/recipes-bsp/enos-bootslot/files/enos-bootslot")
}

impl Edge {
    async fn start() -> Edge {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let bus = Bus::start(d);
        let broker = Mosquitto::start(d);
        let cloud = CloudSim::start(broker.port, HashMap::from([("gw01".to_string(), "s".to_string())])).await;
        let sim = SimServer::start(1).await;
        std::fs::write(
            d.join("collector.toml"),
            format!(
                "[push]\ninterval_ms = 100\n[[device]]\nid = \"inv01\"\nprotocol = \"modbus-tcp\"\naddress = \"{}\"\n\
                 poll_groups = [{{ name = \"fast\", interval_ms = 200 }}]\n\
                 [[device.point]]\nname = \"counter\"\narea = \"holding\"\naddress = 0\ntype = \"u16\"\ngroup = \"fast\"\n\
                 [[device.point]]\nname = \"setpoint\"\narea = \"holding\"\naddress = 10\ntype = \"u16\"\ngroup = \"fast\"\n\
                 access = \"rw\"\nmin = 0\nmax = 400\n",
                sim.addr
            ),
        )
        .unwrap();
        // a small cache bound: the disk check weighs the free space against what the cache may grow by
        let uplink_toml =
            uplink_toml_one_device(&cloud.uri(), &d.join("cache"), "inv01").replace("[cache]\n", "[cache]\nmax_bytes = 67108864\n");
        std::fs::write(d.join("uplink.toml"), uplink_toml).unwrap();
        let log = d.join("services.log");
        let uplink = spawn_service("enos-uplink", &d.join("uplink.toml"), &bus.address, &log);
        let collector = spawn_service("enos-collector", &d.join("collector.toml"), &bus.address, &log);

        // the update agent, booted in slot A with nothing pending
        let env = [
            ("ENOS_BOOTSLOT_BACKEND", "grub".to_string()),
            ("ENOS_BOOTSLOT_GRUBENV", format!("{}/grubenv", d.display())),
            ("ENOS_BOOTSLOT_CMDLINE", format!("{}/cmdline", d.display())),
            ("ENOS_OS_RELEASE", format!("{}/os-release", d.display())),
        ];
        std::fs::write(d.join("cmdline"), "BOOT_IMAGE=/boot/vmlinuz root=PARTLABEL=enos-root-a ro\n").unwrap();
        std::fs::write(d.join("os-release"), "ID=enos\nVERSION_ID=\"1.0.0\"\n").unwrap();
        let out = Command::new("sh")
            .arg(bootslot_tool())
            .args(["env-set", "enos_slot=A", "upgrade_available=0", "bootcount=0", "bootlimit=3", "enos_rollback=0"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap();
        assert!(out.status.success(), "enos-bootslot: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(
            d.join("ota.toml"),
            format!(
                "dir = \"{p}/ota\"\nbootslot = \"{t}\"\nreboot_command = [\"touch\", \"{p}/rebooted\"]\n[health]\nunits = []\n\
                 require_cloud = false\nrequire_collecting = false\ntimeout_s = 10\n",
                p = d.display(),
                t = bootslot_tool().canonicalize().unwrap().display()
            ),
        )
        .unwrap();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let ota = spawn_service_env("enos-ota", &d.join("ota.toml"), &bus.address, &d.join("ota.log"), &env);
        // the clock: this host may run no time daemon; the test vouches for it with the mark file
        std::fs::write(d.join("synchronized"), "").unwrap();
        Edge { dir, bus, broker, _cloud: cloud, _sim: sim, uplink, _collector: collector, ota }
    }

    /// `enosctl check` and `enosctl --json check`, one after the other: (exit status of each, the
    /// screen, the JSON document).
    fn check(&self) -> (i32, i32, String, serde_json::Value) {
        let run = |json: bool| {
            let mut c = Command::new(bin_dir().join("enosctl"));
            if json {
                c.arg("--json");
            }
            let out = c
                .arg("check")
                .env("ENOS_BUS_ADDRESS", &self.bus.address)
                .env("ENOS_TIMESYNC_MARK", self.dir.path().join("synchronized"))
                // the data partition: a tmpfs of its own, not the shared disk of the test machine
                .env("ENOS_DATA_DIR", "/dev/shm")
                .output()
                .expect("enosctl");
            (out.status.code().expect("an exit status"), String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let (code, screen) = run(false);
        let (jcode, doc) = run(true);
        let doc: serde_json::Value = serde_json::from_str(&doc).unwrap_or_else(|e| panic!("{e}: {doc}"));
        assert_eq!(doc["exit"], jcode, "{doc}");
        (code, jcode, screen, doc)
    }

    /// Polls `check` until `want` holds (the services take a moment to connect and poll).
    async fn check_until(&self, what: &str, want: impl Fn(i32, &str) -> bool) -> (i32, String, serde_json::Value) {
        // the two runs agree once the box has settled (a service may come up between them)
        let r = wait_for(30, what, || {
            let (code, jcode, screen, doc) = self.check();
            (code == jcode && want(code, &screen)).then_some((code, screen, doc))
        })
        .await;
        println!("{what}:\n{}", r.1); // with --nocapture: what a technician sees
        r
    }
}

fn line<'a>(screen: &'a str, check: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.get(4..).is_some_and(|r| r.starts_with(check)))
        .unwrap_or_else(|| panic!("no line for {check:?} in:\n{screen}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_box_is_all_good_with_exit_0() {
    let e = Edge::start().await;
    let (code, screen, doc) = e.check_until("all good", |c, _| c == 0).await;
    assert_eq!(code, 0, "{screen}");
    assert!(screen.ends_with("all good\n"), "{screen}");
    for check in ["bus", "collector", "device inv01", "uplink", "cloud session", "cache", "updates", "disk", "clock"] {
        assert!(line(&screen, check).starts_with('✔'), "{check}: {screen}");
    }
    assert!(line(&screen, "updates").contains("version 1.0.0, slot A"), "{screen}");
    assert!(line(&screen, "cloud session").contains("connected to tcp://127.0.0.1:"), "{screen}");
    assert_eq!(doc["status"], "ok", "{doc}");
    assert!(doc["checks"].as_array().unwrap().iter().all(|c| c["status"] == "ok" && c.get("todo").is_none()), "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_uplink_is_named_with_exit_2() {
    let mut e = Edge::start().await;
    e.check_until("all good", |c, _| c == 0).await;
    e.uplink.terminate();
    let (code, screen, doc) = e.check_until("the uplink named", |_, s| s.contains("✘ uplink")).await;
    assert_eq!(code, 2, "{screen}");
    let l = line(&screen, "uplink");
    assert!(l.contains("not running") && l.contains("systemctl start enos-uplink"), "{l}");
    assert!(!screen.contains("org.freedesktop"), "a D-Bus error name on the screen: {screen}");
    assert_eq!(doc["status"], "error", "{doc}");
    let u = doc["checks"].as_array().unwrap().iter().find(|c| c["check"] == "uplink").unwrap();
    assert_eq!(u["status"], "error", "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cloud_is_said_so() {
    let mut e = Edge::start().await;
    e.check_until("all good", |c, _| c == 0).await;
    e.broker.stop();
    let (code, screen, _) = e.check_until("the cloud session down", |_, s| s.contains("✘ cloud session")).await;
    assert_eq!(code, 2, "{screen}");
    let l = line(&screen, "cloud session");
    assert!(l.contains("not connected to tcp://127.0.0.1:"), "{l}");
    assert!(l.contains("data is cached meanwhile"), "{l}");
    assert!(line(&screen, "uplink").starts_with('✔'), "{screen}");
}

/// `enosctl ARGS` on the box's bus: (exit status, stdout, stderr).
fn enosctl(e: &Edge, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin_dir().join("enosctl")).args(args).env("ENOS_BUS_ADDRESS", &e.bus.address).output().expect("enosctl");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().expect("an exit status"), text(&out.stdout), text(&out.stderr))
}

/// Rust's and D-Bus's names, which are not words for people.
fn assert_words(text: &str) {
    for leak in ["Some(", "None", "OutOfRange", "ReadOnly", "org.freedesktop", "Error."] {
        assert!(!text.contains(leak), "{leak:?} in: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_says_who_refused_it_and_a_negative_value_needs_no_dashes() {
    let e = Edge::start().await;
    wait_for(30, "the device online", || enosctl(&e, &["devices"]).1.contains("online").then_some(())).await;
    let (code, out, err) = enosctl(&e, &["write", "inv01", "setpoint", "12"]);
    assert_eq!(code, 0, "{out}{err}");
    // the gateway's own range check: nothing reached the device, and it says so
    let (code, out, err) = enosctl(&e, &["write", "inv01", "setpoint", "9999"]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err, "enosctl: the gateway refused it, nothing was sent to the device: 9999 is above the maximum 400\n");
    assert_eq!(out, "", "the refusal is said once, on stderr");
    let (code, _, err) = enosctl(&e, &["write", "inv01", "counter", "1"]);
    assert_eq!(code, 1);
    assert!(err.contains("is read-only"), "{err}");
    assert_words(&err);
    // -5 is a value, not an option: the gateway gets it and refuses it for its range
    let (code, out, err) = enosctl(&e, &["write", "inv01", "setpoint", "-5"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("-5 is below the minimum 0"), "{err}");
    assert_words(&err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_errors_are_said_once_in_words() {
    let mut e = Edge::start().await;
    wait_for(30, "every service up", || {
        let up = enosctl(&e, &["ota", "status"]).0 == 0 && enosctl(&e, &["status"]).1.contains("cloud       connected");
        up.then_some(())
    })
    .await;
    let (code, _, err) = enosctl(&e, &["read", "nosuch"]);
    assert_eq!(code, 1);
    assert_eq!(err, "enosctl: no device \"nosuch\"\n");
    e.ota.terminate();
    let (code, _, err) = enosctl(&e, &["ota", "status"]);
    assert_eq!(code, 1);
    assert_eq!(err, "enosctl: the enos-ota service is not running\n");
    e.uplink.terminate();
    let (code, out, err) = enosctl(&e, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("uplink      the enos-uplink service is not running"), "{out}");
    assert_words(&out);
}
