//! Rollback compatibility of configuration: a file a newer release wrote (every field this
//! release knows, plus ones it does not) must not stop this release after a rollback. Each
//! service's `--check` loads such a file: it passes, and every unknown key is a warning naming the
//! file and the key (a misspelt key in a file a person wrote is still pointed out). Before, each
//! refused the file (`unknown field ...`) and the service would not start.

use enos_testkit::edge::{collector_toml, uplink_toml, POINTS_CSV};
use enos_testkit::harness::bin_dir;
use std::path::Path;
use std::process::Command;

/// Runs `service --config file --check`; (ok, stdout, stderr).
fn check(service: &str, file: &Path) -> (bool, String, String) {
    let out = Command::new(bin_dir().join(service))
        .arg("--config")
        .arg(file)
        .arg("--check")
        .env("ENOS_LOG", "info")
        .env_remove("JOURNAL_STREAM")
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn loads_with_warnings(service: &str, file: &Path, text: &str, unknown: &[&str]) {
    std::fs::write(file, text).unwrap();
    let (ok, out, err) = check(service, file);
    assert!(ok && out.contains(": ok"), "{service} refused a newer release's file:\n{out}{err}");
    for key in unknown {
        let want = format!("{}: {key}: not a setting this release knows, ignored", file.display());
        assert!(err.contains(&want), "{service}: no warning {want:?} in:\n{err}");
    }
}

#[test]
fn every_service_loads_a_newer_releases_file_and_names_each_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let uplink = format!("future_top = 1\n{}", uplink_toml("tcp://127.0.0.1:1883", &d.join("cache")))
        .replace("[cache]\n", "[cache]\ncompaction_style = \"universal\"\n")
        .replace("reconnect_min_ms = 200", "reconect_min_ms = 200");
    loads_with_warnings("enos-uplink", &d.join("uplink.toml"), &uplink, &["future_top", "cache.compaction_style", "cloud.reconect_min_ms"]);

    std::fs::write(d.join("inv01.csv"), POINTS_CSV).unwrap();
    let collector = collector_toml("127.0.0.1:502").replace("[push]\n", "telemetry_format = 3\n[push]\ncompress = true\n");
    loads_with_warnings("enos-collector", &d.join("collector.toml"), &collector, &["telemetry_format", "push.compress"]);

    let ota = format!("dir = \"{}/ota\"\nbootslot = \"/usr/bin/true\"\nreboot_command = [\"/usr/bin/true\"]\nchannel = \"beta\"\n[health]\nunits = []\nnew_probe = \"x\"\n", d.display());
    loads_with_warnings("enos-ota", &d.join("ota.toml"), &ota, &["channel", "health.new_probe"]);

    let web = format!("listen = \"127.0.0.1:18080\"\nstate_dir = \"{}/web\"\nplain_http = true\ntheme = \"dark\"\n", d.display());
    loads_with_warnings("enos-web", &d.join("web.toml"), &web, &["theme"]);
}
