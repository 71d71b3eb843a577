//! The update agent runs as root; the other services' users can write the data partition. A file
//! one of them plants there, or a program it can change, must change nothing the agent runs.
//! These run the built `enos-ota --check` (needs root, like the end-to-end tests: a chroot and
//! file ownership).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_enos-ota");
/// The collector's user in the image (meta-enos-edge/files/enos-edge-passwd).
const COLLECTOR_UID: u32 = 801;

fn check(config: &Path) -> Output {
    Command::new(BIN).arg("--config").arg(config).arg("--check").env("ENOS_LOG", "warn").output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The image's layout in a chroot: the agent's own file in /etc/enos and one planted by a
/// service in /data/enos/config. Only the first counts.
#[test]
fn a_config_planted_in_data_enos_config_is_ignored() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    write(&r.join("etc/enos/ota.toml"), "bootslot = \"/usr/bin/true\"\nreboot_command = [\"true\"]\n", 0o644);
    // What a service user could write there: a slot tool and a hook of its own.
    write(&r.join("data/enos/config/evil"), "#!/bin/sh\ntouch /data/enos/config/ran-as-root\n", 0o755);
    write(
        &r.join("data/enos/config/ota.toml"),
        "bootslot = \"/data/enos/config/evil\"\nreboot_command = [\"/data/enos/config/evil\"]\n",
        0o664,
    );
    for d in ["usr", "proc", "dev"] {
        std::fs::create_dir(r.join(d)).unwrap();
    }
    for (link, to) in [("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")] {
        std::os::unix::fs::symlink(to, r.join(link)).unwrap();
    }
    std::fs::write(r.join("enos-ota"), "").unwrap();
    // A private mount namespace: the binds vanish with the process.
    let script = r#"set -e
        mount --bind /usr "$1/usr"; mount -t proc proc "$1/proc"; mount --bind /dev "$1/dev"
        mount --bind "$2" "$1/enos-ota"
        exec chroot "$1" /enos-ota --check"#;
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(r)
        .arg(BIN)
        .env("ENOS_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "enos-ota --check in the chroot: {}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "/etc/enos/ota.toml: ok");
    assert!(!r.join("data/enos/config/ran-as-root").exists());
}

#[test]
fn programs_a_service_user_can_change_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let hook = d.path().join("site-check");
    write(&hook, "#!/bin/sh\nexit 0\n", 0o755);
    let cfg = d.path().join("ota.toml");
    let with_hook = |h: &Path| {
        write(&cfg, &format!("bootslot = \"/usr/bin/true\"\nreboot_command = [\"true\"]\n[health]\nhook = [\"{}\"]\n", h.display()), 0o644)
    };
    with_hook(&hook);
    let ok = check(&cfg);
    assert!(ok.status.success(), "a root-owned hook: {}", stderr(&ok));

    // Handed to the collector's user (as if it had planted the file).
    std::os::unix::fs::chown(&hook, Some(COLLECTOR_UID), None).unwrap();
    let out = check(&cfg);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("health.hook program {}: is owned by uid {COLLECTOR_UID}, not root", hook.display())),
        "{}",
        stderr(&out)
    );

    // Root's file, but the service group may rewrite it.
    std::os::unix::fs::chown(&hook, Some(0), None).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o775)).unwrap();
    let out = check(&cfg);
    assert!(stderr(&out).contains("is writable by its group (mode 775)"), "{}", stderr(&out));

    // The slot tool and the reboot command are held to the same rule.
    write(&cfg, "bootslot = \"/data/enos/config/enos-bootslot\"\n", 0o644);
    let out = check(&cfg);
    assert!(
        stderr(&out).contains("bootslot program /data/enos/config/enos-bootslot: lies on the data partition (/data)"),
        "{}",
        stderr(&out)
    );
    write(&cfg, &format!("bootslot = \"/usr/bin/true\"\nreboot_command = [\"{}\", \"now\"]\n", hook.display()), 0o644);
    let out = check(&cfg);
    assert!(stderr(&out).contains("reboot_command program"), "{}", stderr(&out));
}

#[test]
fn a_config_file_others_can_change_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("ota.toml");
    write(&cfg, "bootslot = \"/usr/bin/true\"\nreboot_command = [\"true\"]\n", 0o664);
    let out = check(&cfg);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("configuration file {}: is writable by its group (mode 664)", cfg.display())),
        "{}",
        stderr(&out)
    );
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = check(&cfg);
    assert!(out.status.success(), "{}", stderr(&out));
}
