//! The update agent end to end below the bootloader: a cloud-style job downloads over HTTP with
//! a broken first transfer (resume), is verified, installed by a real SWUpdate daemon, arms the
//! trial boot in a GRUB environment block through the layer's real `enos-bootslot`, "reboots",
//! passes the health check and commits; a second job fails its health check and rolls back; a
//! job with a wrong digest is refused before SWUpdate sees it. The agent reaches the slots as the
//! product's does, through the root helper's socket (`enos-bootslot serve` per connection, here
//! behind systemd-socket-activate as behind the layer's enos-bootslot-control.socket). The
//! reboot itself (a new kernel command line and os-release) is what the test simulates; the
//! QEMU tier boots for real.

use enos_bus::{OtaJob, OtaProxy, OtaStatus};
use enos_testkit::harness::{spawn_service_env, Bus, Proc};
use enos_testkit::http_file::FileServer;
use enos_testkit::swu::{bundle, signing_key, Daemon};
use enos_testkit::wait_for;
use std::path::{Path, PathBuf};

struct Box_ {
    dir: PathBuf,
    bus: Bus,
    tool: PathBuf,
    /// The slot helper's socket (what the agent's `bootslot` names) and its server.
    helper: PathBuf,
    _helper: Proc,
    ota: Option<Proc>,
}

fn layer_tool() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../meta-enos-edge/recipes-bsp/enos-bootslot/files/enos-bootslot")
        .canonicalize()
        .expect("the layer's enos-bootslot")
}

/// The root helper of the layer (enos-bootslot-control.socket + @.service): one
/// `enos-bootslot serve` per connection, its environment fixed by the server, not the agent.
fn slot_helper(dir: &Path, tool: &Path) -> (PathBuf, Proc) {
    let sock = dir.join("bootslot.sock");
    let d = dir.display();
    let child = std::process::Command::new("systemd-socket-activate")
        .arg("--accept")
        .arg("--inetd")
        .arg(format!("--listen={}", sock.display()))
        .args(["-E", "ENOS_BOOTSLOT_BACKEND=grub", "-E", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"])
        .arg("-E")
        .arg(format!("ENOS_BOOTSLOT_GRUBENV={d}/grubenv"))
        .arg("-E")
        .arg(format!("ENOS_BOOTSLOT_CMDLINE={d}/cmdline"))
        .arg("sh")
        .arg(tool)
        .arg("serve")
        .stderr(std::fs::File::create(dir.join("helper.log")).unwrap())
        .spawn()
        .expect("systemd-socket-activate (package systemd)");
    let helper = Proc { child: Some(child), name: "systemd-socket-activate".into() };
    for _ in 0..200 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(sock.exists(), "the slot helper's socket {}", sock.display());
    (sock, helper)
}

impl Box_ {
    fn env(&self) -> Vec<(String, String)> {
        let d = self.dir.display();
        vec![
            ("TMPDIR".into(), format!("{d}/swu")),
            ("ENOS_BOOTSLOT_BACKEND".into(), "grub".into()),
            ("ENOS_BOOTSLOT_GRUBENV".into(), format!("{d}/grubenv")),
            ("ENOS_BOOTSLOT_CMDLINE".into(), format!("{d}/cmdline")),
            ("ENOS_OS_RELEASE".into(), format!("{d}/os-release")),
        ]
    }
    fn slot_tool(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("sh").arg(&self.tool).args(args).envs(self.env()).output().unwrap();
        assert!(out.status.success(), "enos-bootslot {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    }
    /// What the bootloader and the new root would look like after a reboot into `slot`.
    fn boot(&mut self, slot: &str, version: &str, hook_ok: bool) {
        self.ota.take();
        std::fs::write(self.dir.join("cmdline"), format!("BOOT_IMAGE=/boot/vmlinuz root=PARTLABEL=enos-root-{} ro\n", slot.to_lowercase()))
            .unwrap();
        std::fs::write(self.dir.join("os-release"), format!("ID=enos\nVERSION_ID=\"{version}\"\n")).unwrap();
        let _ = std::fs::remove_file(self.dir.join("rebooted"));
        let cfg = format!(
            "dir = \"{d}/ota\"\nallow_http = true\nbootslot = \"{t}\"\nreboot_command = [\"touch\", \"{d}/rebooted\"]\n[health]\nunits = []\nrequire_cloud = false\nrequire_collecting = false\nhook = [\"{h}\"]\ntimeout_s = 10\n",
            d = self.dir.display(),
            t = self.helper.display(),
            h = if hook_ok { "true" } else { "false" }
        );
        std::fs::write(self.dir.join("ota.toml"), cfg).unwrap();
        // The agent gets no slot-tool variables: the helper's own environment decides the block.
        let env: Vec<(String, String)> = self.env().into_iter().filter(|(k, _)| !k.starts_with("ENOS_BOOTSLOT_")).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        self.ota = Some(spawn_service_env("enos-ota", &self.dir.join("ota.toml"), &self.bus.address, &self.dir.join("ota.log"), &env));
    }
    fn rebooted(&self) -> bool {
        self.dir.join("rebooted").exists()
    }
}

/// A GRUB block armed for a trial of `slot`, produced by the real tool.
fn armed_block(b: &Box_, slot: &str) -> Vec<u8> {
    let f = b.dir.join(format!("armed-{slot}"));
    let out = std::process::Command::new("sh")
        .arg(&b.tool)
        .args(["env-set", &format!("enos_slot={slot}"), "upgrade_available=1", "bootcount=0", "bootlimit=3", "enos_rollback=0"])
        .env("ENOS_BOOTSLOT_BACKEND", "grub")
        .env("ENOS_BOOTSLOT_GRUBENV", &f)
        .env("ENOS_BOOTSLOT_CMDLINE", b.dir.join("cmdline"))
        .output()
        .unwrap();
    assert!(out.status.success(), "enos-bootslot env-set into {}: {}", f.display(), String::from_utf8_lossy(&out.stderr));
    std::fs::read(f).unwrap()
}

/// The flake of the test below: the agent commits at start (its `enos-bootslot` rewrites
/// `grubenv`) while the test writes its armed blocks into the same directory. Two writers of
/// different blocks in one directory must not meet in one temporary file (the tool used a fixed
/// `.grubenv.enos-tmp`: one `mv` took the other's file, the other failed or published the wrong
/// block).
#[test]
fn slot_tool_writers_of_blocks_in_one_directory_do_not_meet() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let f = dir.join(format!("block-{i}"));
            let tool = layer_tool();
            std::thread::spawn(move || {
                for round in 0..15 {
                    let out = std::process::Command::new("sh")
                        .arg(&tool)
                        .args(["env-set", &format!("writer={i}"), &format!("round={round}")])
                        .env("ENOS_BOOTSLOT_BACKEND", "grub")
                        .env("ENOS_BOOTSLOT_GRUBENV", &f)
                        .output()
                        .unwrap();
                    assert!(out.status.success(), "writer {i} round {round}: {}", String::from_utf8_lossy(&out.stderr));
                    let block = std::fs::read_to_string(&f).unwrap();
                    assert!(block.contains(&format!("\nwriter={i}\n")), "writer {i} round {round} reads another block: {block}");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with("block-"))
        .collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
}

fn md5(b: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(b))
}

async fn status(p: &OtaProxy<'_>) -> OtaStatus {
    serde_json::from_str(&p.status().await.unwrap()).unwrap()
}

async fn history(p: &OtaProxy<'_>) -> Vec<OtaJob> {
    serde_json::from_str(&p.history().await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_job_installs_commits_and_a_failed_health_check_rolls_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    std::fs::create_dir_all(dir.join("swu")).unwrap();
    let cert = signing_key(&dir, "signer");
    let _daemon = Daemon::start(&dir.join("swu"), &cert);
    let bus = Bus::start(&dir);
    let (helper, helper_proc) = slot_helper(&dir, &layer_tool());
    let mut b = Box_ { dir: dir.clone(), bus, tool: layer_tool(), helper, _helper: helper_proc, ota: None };
    b.slot_tool(&["env-set", "enos_slot=A", "upgrade_available=0", "bootcount=0", "bootlimit=3", "enos_rollback=0"]);
    b.boot("A", "1.0.0", true);
    let conn = zbus::connection::Builder::address(b.bus.address.as_str()).build().await.unwrap();
    let ota = OtaProxy::new(&conn).await.unwrap();
    wait_for(10, "enos-ota on the bus", || std::fs::metadata(dir.join("ota")).ok().map(|_| ())).await;

    // 1. A wrong digest is refused before anything is installed.
    let to_b = bundle(&dir, "to-b", &armed_block(&b, "B"), &armed_block(&b, "B"), "signer", &dir.join("grubenv"));
    let bytes = std::fs::read(&to_b).unwrap();
    let srv = FileServer::start(bytes.clone(), Some(bytes.len() / 2)).await;
    let job = |v: &str, sign: &str, len: usize| {
        serde_json::json!({"version": v, "fileUrl": format!("http://127.0.0.1:{}/b.swu", srv.port), "fileSize": len, "signMethod": "md5", "sign": sign}).to_string()
    };
    let started = ota.start_job(&job("2.0.0", "00112233445566778899aabbccddeeff", bytes.len())).await;
    let mut p = None;
    for _ in 0..100 {
        p = started.as_ref().ok().cloned();
        let h = history(&ota).await;
        if h.last().is_some_and(|j| j.state == "failed") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(p.is_some(), "{started:?}");
    let h = history(&ota).await;
    let last = h.last().expect("a finished job");
    assert_eq!((last.state.as_str(), last.step), ("failed", -3), "{last:?}");
    assert!(last.desc.contains("md5 of the download is"), "{}", last.desc);
    assert!(b.slot_tool(&["status"]).contains("selected=A"), "nothing armed");

    // 2. The honest job: the first transfer breaks half way, the download resumes.
    ota.start_job(&job("2.0.0", &md5(&bytes), bytes.len())).await.unwrap();
    wait_for(60, "the reboot after the install", || b.rebooted().then_some(())).await;
    assert!(srv.log.lock().unwrap().ranges.iter().any(|r| !r.is_empty()), "the download resumed with a Range request");
    let st = b.slot_tool(&["status"]);
    assert!(st.contains("selected=B") && st.contains("upgrade_available=1"), "{st}");
    assert_eq!(status(&ota).await.state, "rebooting");

    b.boot("B", "2.0.0", true);
    let ota = OtaProxy::new(&conn).await.unwrap();
    let mut committed = None;
    for _ in 0..300 {
        if let Ok(s) = ota.history().await {
            let h: Vec<OtaJob> = serde_json::from_str(&s).unwrap();
            if let Some(j) = h.last().filter(|j| j.version == "2.0.0" && j.state != "failed") {
                committed = Some(j.clone());
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let j = committed.expect("job 2.0.0 finished");
    assert_eq!((j.state.as_str(), j.step), ("committed", 100), "{j:?}");
    for phase in ["download", "install", "reboot", "health"] {
        assert!(j.timings_ms.contains_key(phase), "timing of {phase}: {:?}", j.timings_ms);
    }
    let st = b.slot_tool(&["status"]);
    assert!(st.contains("current=B") && st.contains("upgrade_available=0"), "committed: {st}");
    assert_eq!(status(&ota).await.version, "2.0.0");

    // 3. The next version's health check fails: back to B by itself, and it says why.
    let to_a = bundle(&dir, "to-a", &armed_block(&b, "A"), &armed_block(&b, "A"), "signer", &dir.join("grubenv"));
    let bytes = std::fs::read(&to_a).unwrap();
    let srv = FileServer::start(bytes.clone(), None).await;
    let j3 = serde_json::json!({"version": "3.0.0", "fileUrl": format!("http://127.0.0.1:{}/a.swu", srv.port), "fileSize": bytes.len(), "signMethod": "MD5", "sign": md5(&bytes).to_uppercase()});
    ota.start_job(&j3.to_string()).await.unwrap();
    wait_for(60, "the reboot into A", || b.rebooted().then_some(())).await;
    b.boot("A", "3.0.0", false);
    wait_for(60, "the rollback reboot", || b.rebooted().then_some(())).await;
    let st = b.slot_tool(&["status"]);
    assert!(st.contains("selected=B") && st.contains("rollback=1"), "rollback armed: {st}");
    b.boot("B", "2.0.0", true);
    let ota = OtaProxy::new(&conn).await.unwrap();
    let mut rolled = None;
    for _ in 0..300 {
        if let Ok(s) = ota.history().await {
            let h: Vec<OtaJob> = serde_json::from_str(&s).unwrap();
            if let Some(j) = h.last().filter(|j| j.version == "3.0.0") {
                rolled = Some(j.clone());
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let j = rolled.expect("job 3.0.0 finished");
    assert_eq!(j.state, "rolled-back", "{j:?}");
    let served = std::fs::read_to_string(dir.join("helper.log")).unwrap();
    assert!(served.matches("Connection from").count() >= 5, "the agent went through the slot helper: {served}");
    assert!(j.desc.contains("health check failed") && j.desc.contains("health hook"), "{}", j.desc);
    assert_eq!(status(&ota).await.version, "2.0.0");
}
