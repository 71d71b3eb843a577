//! The layer's slot tool (`enos-bootslot`): one place knows GRUB and U-Boot; the agent asks it.
//! The product's agent runs without root and cannot write the bootloader environment, so
//! `bootslot` names the socket of the root helper (`enos-bootslot-control.socket`), which runs
//! the tool for one word of a fixed set; tests and root runs name the tool itself.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::Duration;

/// A helper that has not answered by then is stuck; the agent reports that instead of hanging.
const HELPER_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `enos-bootslot ARGS`, directly or through the root helper when `tool` is its socket.
pub fn run(tool: &Path, args: &[&str]) -> Result<String, String> {
    if std::fs::metadata(tool).is_ok_and(|m| m.file_type().is_socket()) {
        return helper(tool, args);
    }
    let mut cmd = crate::trusted::command("bootslot", &[tool.as_os_str()]).map_err(|e| e.to_string())?;
    let out = cmd.args(args).output().map_err(|e| format!("{}: {e}", tool.display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!("{} {}: {}", tool.display(), args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// One request to the root helper: the words on one line; the answer is the tool's output
/// (stdout and stderr) and a last line `exit=N`.
fn helper(socket: &Path, args: &[&str]) -> Result<String, String> {
    let what = format!("{} {}", socket.display(), args.join(" "));
    crate::trusted::helper_socket("bootslot", socket).map_err(|e| e.to_string())?;
    let talk = || -> std::io::Result<String> {
        let mut s = std::os::unix::net::UnixStream::connect(socket)?;
        s.set_read_timeout(Some(HELPER_TIMEOUT))?;
        s.write_all(format!("{}\n", args.join(" ")).as_bytes())?;
        s.shutdown(std::net::Shutdown::Write)?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        Ok(answer)
    };
    let answer = talk().map_err(|e| format!("{what}: the slot helper: {e}"))?;
    let (out, last) = answer.trim_end().rsplit_once('\n').unwrap_or(("", answer.trim_end()));
    match last.strip_prefix("exit=") {
        Some("0") => Ok(out.trim().to_string()),
        Some(_) => Err(format!("{what}: {}", out.trim())),
        None => Err(format!("{what}: the slot helper answered without an exit status: {}", answer.trim())),
    }
}

/// `enos-bootslot status` as a map (current, selected, upgrade_available, bootcount, rollback...).
pub fn status(tool: &Path) -> Result<HashMap<String, String>, String> {
    let text = run(tool, &["status"])?;
    Ok(text
        .split_whitespace()
        .chain(text.lines())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

/// What the bootloader environment says about this boot: the one source of truth for where an
/// update stands (the job file can lag behind it by one step after a power cut).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Boot {
    /// The slot running now.
    pub current: String,
    /// The slot the bootloader boots next.
    pub selected: String,
    /// `upgrade_available=1`: `selected` is on trial, not committed.
    pub trial: bool,
    /// `enos_rollback=1`: the bootloader (or a rollback) came back to this slot.
    pub rollback: bool,
}

impl Boot {
    pub fn read(tool: &Path) -> Result<Boot, String> {
        Ok(Boot::from_status(&status(tool)?))
    }

    pub fn from_status(s: &HashMap<String, String>) -> Boot {
        let get = |k: &str| s.get(k).cloned().unwrap_or_default();
        Boot {
            current: get("current"),
            selected: get("selected"),
            trial: get("upgrade_available") == "1",
            rollback: get("rollback") == "1",
        }
    }

    /// A trial of this very boot's slot, waiting for its health check.
    pub fn on_trial(&self) -> bool {
        self.trial && self.selected == self.current
    }

    /// The other slot is armed for a trial but not booted yet.
    pub fn armed_other(&self) -> bool {
        self.trial && self.selected != self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// The layer's helper as its socket unit runs it: one `enos-bootslot serve` per connection,
    /// the environment the server's (systemd-socket-activate stands in for systemd).
    struct Helper {
        dir: tempfile::TempDir,
        server: std::process::Child,
    }

    impl Helper {
        fn start() -> Helper {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../meta-enos-edge/recipes-bsp/enos-bootslot/files/enos-bootslot");
            std::fs::write(d.join("cmdline"), "root=PARTLABEL=enos-root-a ro\n").unwrap();
            let server = std::process::Command::new("systemd-socket-activate")
                .args(["--accept", "--inetd", "-E", "ENOS_BOOTSLOT_BACKEND=grub", "-E", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"])
                .arg(format!("--listen={}", d.join("control").display()))
                .arg("-E")
                .arg(format!("ENOS_BOOTSLOT_GRUBENV={}", d.join("grubenv").display()))
                .arg("-E")
                .arg(format!("ENOS_BOOTSLOT_CMDLINE={}", d.join("cmdline").display()))
                .arg("sh")
                .arg(tool.canonicalize().unwrap())
                .arg("serve")
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("systemd-socket-activate (package systemd)");
            let h = Helper { dir, server };
            for _ in 0..200 {
                if h.socket().exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            h
        }

        fn socket(&self) -> PathBuf {
            self.dir.path().join("control")
        }
    }

    impl Drop for Helper {
        fn drop(&mut self) {
            let _ = self.server.kill();
            let _ = self.server.wait();
        }
    }

    /// Issue 11: the agent without root changes the slots only through the helper's fixed words;
    /// anything else is refused in words and writes nothing; a refusal of the tool reaches the
    /// agent with its reason.
    #[test]
    fn the_root_helper_runs_its_fixed_words_and_refuses_the_rest() {
        let h = Helper::start();
        let sock = h.socket();
        run(&sock, &["commit"]).unwrap();
        let st = status(&sock).unwrap();
        assert_eq!((st["current"].as_str(), st["selected"].as_str(), st["good_A"].as_str()), ("A", "A", "1"), "{st:?}");
        let before = std::fs::read(h.dir.path().join("grubenv")).unwrap();
        for refused in [&["env-set", "enos_slot=B"][..], &["set-next", "B"], &["commit", "--force"], &["serve"], &[""]] {
            let e = run(&sock, refused).unwrap_err();
            assert!(e.contains("refused request") && e.contains("only status, current, other"), "{refused:?}: {e}");
        }
        assert_eq!(std::fs::read(h.dir.path().join("grubenv")).unwrap(), before, "a refused request wrote nothing");
        std::fs::write(h.dir.path().join("cmdline"), "root=PARTLABEL=enos-root-b ro\n").unwrap();
        let e = run(&sock, &["commit"]).unwrap_err();
        assert!(e.contains("not committing: running slot B but the bootloader selects A"), "{e}");
        assert!(!e.contains("exit="), "the exit line is the protocol's, not the message's: {e}");
    }
}
