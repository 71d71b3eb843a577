//! The layer's tmpfiles applied to a temporary root (`systemd-tmpfiles --root`, the image's users
//! from `meta-enos-edge/files/enos-edge-{passwd,group}`): every directory under `/data/enos` has
//! the owner and mode of the table below, each service's configuration directory is its own, and
//! a file the collector's user tries to plant in another service's directory (or beside them) is
//! refused by the file system.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// (path, mode, user, group): what the image's `/data/enos` looks like after boot.
const LAYOUT: &[(&str, u32, &str, &str)] = &[
    ("data/enos", 0o755, "root", "root"),
    ("data/enos/config", 0o755, "root", "root"),
    ("data/enos/config/collector", 0o750, "enos-collector", "enos-collector"),
    ("data/enos/config/collector/points", 0o750, "enos-collector", "enos-collector"),
    ("data/enos/config/uplink", 0o700, "enos-uplink", "enos-uplink"),
    ("data/enos/config/web", 0o750, "enos-web", "enos-web"),
    ("data/enos/cache", 0o750, "enos-uplink", "enos-uplink"),
    ("data/enos/ota", 0o700, "enos-ota", "enos-ota"),
    ("data/enos/upload", 0o2750, "enos-web", "enos-ota"),
    ("data/enos/web", 0o700, "enos-web", "enos-web"),
];

fn layer() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../meta-enos-edge").canonicalize().unwrap()
}

/// name → id from a passwd or group file (third field).
fn ids(file: &str) -> Vec<(String, u32)> {
    file.lines()
        .filter_map(|l| {
            let f: Vec<_> = l.split(':').collect();
            Some((f.first()?.to_string(), f.get(2)?.parse().ok()?))
        })
        .collect()
}

/// Writes `path` as the given uid/gid (a child under setpriv); Ok when it was created.
fn plant(uid: u32, gid: u32, groups: &str, path: &Path) -> Result<(), String> {
    let out = Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            &format!("--groups={groups}"),
            "sh",
            "-c",
            "echo planted > \"$1\"",
            "sh",
        ])
        .arg(path)
        .output()
        .expect("setpriv (util-linux)");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into())
    }
}

#[test]
fn each_service_owns_its_config_directory_and_no_other() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "applying tmpfiles with owners needs root (CI runs as root)");
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::set_permissions(r, std::fs::Permissions::from_mode(0o755)).unwrap();
    let passwd = format!("root:x:0:0:root:/root:/bin/sh\n{}", std::fs::read_to_string(layer().join("files/enos-edge-passwd")).unwrap());
    let group = format!("root:x:0:\n{}", std::fs::read_to_string(layer().join("files/enos-edge-group")).unwrap());
    std::fs::create_dir_all(r.join("etc")).unwrap();
    std::fs::write(r.join("etc/passwd"), &passwd).unwrap();
    std::fs::write(r.join("etc/group"), &group).unwrap();
    // What a release whose update agent ran as root left: its job file, root's.
    let ota = r.join("data/enos/ota");
    std::fs::create_dir_all(&ota).unwrap();
    std::fs::set_permissions(&ota, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(ota.join("job.json"), "{}").unwrap();
    std::fs::set_permissions(ota.join("job.json"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = Command::new("systemd-tmpfiles")
        .arg(format!("--root={}", r.display()))
        .arg("--create")
        .arg(layer().join("recipes-enos/enos-edge/files/enos-edge.tmpfiles"))
        .output()
        .expect("systemd-tmpfiles");
    assert!(out.status.success(), "systemd-tmpfiles: {}", String::from_utf8_lossy(&out.stderr));
    let (users, groups) = (ids(&passwd), ids(&group));
    let id = |t: &[(String, u32)], n: &str| t.iter().find(|(k, _)| k == n).unwrap_or_else(|| panic!("no {n} in the layer's users")).1;

    let mut wrong = Vec::new();
    for (p, mode, user, grp) in LAYOUT {
        match std::fs::metadata(r.join(p)) {
            Err(e) => wrong.push(format!("/{p}: {e}")),
            Ok(m) => {
                let got = (m.mode() & 0o7777, m.uid(), m.gid());
                let want = (*mode, id(&users, user), id(&groups, grp));
                if got != want || !m.is_dir() {
                    wrong.push(format!("/{p}: mode {:o} uid {} gid {}, want {mode:o} {user} {grp}", got.0, got.1, got.2));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "the tmpfiles give:\n  {}", wrong.join("\n  "));
    // ... is handed over to the agent's own user, which now runs it (the trial boot of this
    // release reads the job that installed it).
    let job = std::fs::metadata(ota.join("job.json")).unwrap();
    let a = id(&users, "enos-ota");
    assert_eq!((job.uid(), job.gid(), job.mode() & 0o7777), (a, id(&groups, "enos-ota"), 0o600), "the old job file after the tmpfiles");

    // The collector's user with the unit's groups (enos, dialout is not in the layer's tables).
    let (c, enos) = (id(&users, "enos-collector"), id(&groups, "enos"));
    let cfg = r.join("data/enos/config");
    plant(c, c, &format!("{c},{enos}"), &cfg.join("collector/collector.toml")).expect("the collector writes its own directory");
    for p in ["uplink/uplink.toml", "uplink/gateway.secret", "web/web.toml", "uplink.toml", "collector.toml"] {
        let got = plant(c, c, &format!("{c},{enos}"), &cfg.join(p));
        assert!(got.is_err(), "the collector's user could write /data/enos/config/{p}");
        assert!(got.unwrap_err().contains("Permission denied"), "/data/enos/config/{p}: refused for another reason");
    }
    let (u, w) = (id(&users, "enos-uplink"), id(&users, "enos-web"));
    plant(u, u, &format!("{u},{enos}"), &cfg.join("uplink/uplink.toml")).expect("the uplink writes its own directory");
    let got = plant(w, w, &format!("{w},{enos}"), &cfg.join("collector/collector.toml"));
    assert!(got.is_err(), "the web center's user could write the collector's configuration");
}
