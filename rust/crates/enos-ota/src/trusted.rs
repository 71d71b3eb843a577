//! What the agent reads as configuration, executes or asks about the boot slots must be chosen by
//! root alone (it ran as root; now it runs as `enos-ota` and still steers the boot slots). A file qualifies when it and every directory above it belong to root (or to the
//! agent's own user, for runs without root) and none is writable by group or others (a
//! root-owned sticky directory such as /tmp is fine: nobody else can replace root's entries);
//! nothing on the data partition qualifies, because the services write there. Programs are run
//! by the checked real path, so a symbolic link swapped after the check changes nothing.

use crate::config::OtaConfig;
use std::ffi::OsStr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The only configuration file the agent reads unless `--config` names another.
pub const CONFIG_FILE: &str = "/etc/enos/ota.toml";

/// Where the services keep their state and the operator's files: writable by non-root users.
const DATA_DIR: &str = "/data";

#[derive(Debug, thiserror::Error)]
pub enum Untrusted {
    #[error("{what} {path}: {why}; the update agent steers the boot slots and uses only files that root alone can change")]
    File { what: String, path: PathBuf, why: String },
}

fn untrusted(what: &str, path: &Path, why: impl Into<String>) -> Untrusted {
    Untrusted::File { what: what.to_string(), path: path.to_path_buf(), why: why.into() }
}

/// The configuration file, checked.
pub fn config_file(path: &Path) -> Result<(), Untrusted> {
    let what = "configuration file";
    let real = checked_chain(what, path)?;
    if !std::fs::metadata(&real).map_err(|e| untrusted(what, path, e.to_string()))?.is_file() {
        return Err(untrusted(what, path, "is not a regular file"));
    }
    Ok(())
}

/// Root's consent file (`downgrade_consent`), checked like the configuration.
pub fn consent_file(path: &Path) -> Result<(), Untrusted> {
    let what = "downgrade consent";
    let real = checked_chain(what, path)?;
    if !std::fs::metadata(&real).map_err(|e| untrusted(what, path, e.to_string()))?.is_file() {
        return Err(untrusted(what, path, "is not a regular file"));
    }
    Ok(())
}

/// Every program the configuration names (`bootslot`, `reboot_command`, `health.hook`), checked.
pub fn config_programs(cfg: &OtaConfig) -> Result<(), Untrusted> {
    if std::fs::metadata(&cfg.bootslot).is_ok_and(|m| m.file_type().is_socket()) {
        helper_socket("bootslot", &cfg.bootslot)?;
    } else {
        program("bootslot", cfg.bootslot.as_os_str())?;
    }
    program("reboot_command", cfg.reboot_command[0].as_ref())?;
    if let Some(hook) = &cfg.health.hook {
        program("health.hook", hook[0].as_ref())?;
    }
    Ok(())
}

/// A command for `argv` (the configuration key `key` named it): the program is found as a shell
/// would (a bare name through PATH), checked, and run by its real path; `argv[0]` stays as
/// configured, for multi-call binaries.
pub fn command(key: &str, argv: &[impl AsRef<OsStr>]) -> Result<Command, Untrusted> {
    let real = program(key, argv[0].as_ref())?;
    let mut cmd = Command::new(real);
    cmd.arg0(argv[0].as_ref()).args(&argv[1..]);
    Ok(cmd)
}

/// The real path of the program `name` (key `key` of the configuration), if root alone controls it.
pub fn program(key: &str, name: &OsStr) -> Result<PathBuf, Untrusted> {
    let what = format!("{key} program");
    let path = resolve(name).ok_or_else(|| untrusted(&what, Path::new(name), "not found (a bare name is looked up in PATH)"))?;
    let real = checked_chain(&what, &path)?;
    let meta = std::fs::metadata(&real).map_err(|e| untrusted(&what, &path, e.to_string()))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(untrusted(&what, &path, "is not an executable file"));
    }
    Ok(real)
}

/// The socket of a root helper (`bootslot` without root): whoever owns it answers for the boot
/// slots, so it must be root's (or the agent's own, for runs without root), in directories only
/// their owner can change. The socket itself is writable by the agent's group: that is how root
/// lets the agent connect.
pub fn helper_socket(key: &str, path: &Path) -> Result<(), Untrusted> {
    let what = format!("{key} socket");
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).ok_or_else(|| untrusted(&what, path, "must be an absolute path"))?;
    checked_chain(&what, dir).map_err(|e| match e {
        Untrusted::File { why, .. } => untrusted(&what, path, format!("its directory {}: {why}", dir.display())),
    })?;
    let meta = std::fs::symlink_metadata(path).map_err(|e| untrusted(&what, path, e.to_string()))?;
    if !meta.file_type().is_socket() {
        return Err(untrusted(&what, path, "is not a socket"));
    }
    if meta.uid() != 0 && meta.uid() != effective_uid() {
        return Err(untrusted(&what, path, format!("is owned by uid {}, not root", meta.uid())));
    }
    Ok(())
}

fn resolve(name: &OsStr) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.components().count() > 1 || p.is_absolute() {
        return Some(p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(p)).find(|c| c.is_file())
}

/// Checks `path`, its real path and every directory above that; answers the real path.
fn checked_chain(what: &str, path: &Path) -> Result<PathBuf, Untrusted> {
    if !path.is_absolute() {
        return Err(untrusted(what, path, "must be an absolute path"));
    }
    let on_data = |p: &Path| p.starts_with(DATA_DIR);
    if on_data(path) {
        return Err(untrusted(what, path, format!("lies on the data partition ({DATA_DIR}), which the services can write")));
    }
    let real = path.canonicalize().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => untrusted(what, path, "does not exist"),
        _ => untrusted(what, path, e.to_string()),
    })?;
    if on_data(&real) {
        return Err(untrusted(what, path, format!("leads to {}, on the data partition ({DATA_DIR})", real.display())));
    }
    let me = effective_uid();
    for p in real.ancestors() {
        let meta = std::fs::metadata(p).map_err(|e| untrusted(what, path, format!("{}: {e}", p.display())))?;
        let whose = if p == real { String::new() } else { format!("its directory {} ", p.display()) };
        if meta.uid() != 0 && meta.uid() != me {
            return Err(untrusted(what, path, format!("{whose}is owned by uid {}, not root", meta.uid())));
        }
        let mode = meta.permissions().mode();
        let sticky_root_dir = meta.is_dir() && mode & 0o1000 != 0 && meta.uid() == 0;
        if mode & 0o022 != 0 && !sticky_root_dir {
            let by = if mode & 0o002 != 0 { "everyone" } else { "its group" };
            return Err(untrusted(what, path, format!("{whose}is writable by {by} (mode {:o})", mode & 0o7777)));
        }
    }
    Ok(real)
}

fn effective_uid() -> u32 {
    // /proc/self is ours in every sandbox the unit sets up; no libc binding needed for one number.
    std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path, m: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    }

    #[test]
    fn a_program_root_controls_is_run_by_its_real_path() {
        let real = program("health.hook", "true".as_ref()).expect("true in PATH is root's");
        assert!(real.is_absolute() && real.ends_with("true"), "{}", real.display());
        let out = command("health.hook", &["sh", "-c", "exit 3"]).unwrap().status().unwrap();
        assert_eq!(out.code(), Some(3));
    }

    #[test]
    fn data_partition_group_or_world_writable_and_relative_paths_are_refused() {
        let e = program("health.hook", "/data/enos/config/hook.sh".as_ref()).unwrap_err().to_string();
        assert!(e.contains("health.hook program /data/enos/config/hook.sh: lies on the data partition"), "{e}");
        let e = program("bootslot", "./enos-bootslot".as_ref()).unwrap_err().to_string();
        assert!(e.contains("must be an absolute path"), "{e}");

        let d = tempfile::tempdir().unwrap();
        let hook = d.path().join("hook");
        std::fs::write(&hook, "#!/bin/sh\nexit 0\n").unwrap();
        mode(&hook, 0o775);
        let e = program("health.hook", hook.as_os_str()).unwrap_err().to_string();
        assert!(e.contains("is writable by its group (mode 775)"), "{e}");
        mode(&hook, 0o755);
        mode(d.path(), 0o777);
        let e = program("health.hook", hook.as_os_str()).unwrap_err().to_string();
        assert!(e.contains(&format!("its directory {} is writable by everyone", d.path().display())), "{e}");
        mode(d.path(), 0o700);
        assert!(program("health.hook", hook.as_os_str()).is_ok());
        if effective_uid() == 0 {
            std::os::unix::fs::chown(&hook, Some(65534), None).unwrap();
            let e = program("health.hook", hook.as_os_str()).unwrap_err().to_string();
            assert!(e.contains("is owned by uid 65534, not root"), "{e}");
            std::os::unix::fs::chown(&hook, Some(0), None).unwrap();
        }
        mode(&hook, 0o644);
        let e = program("health.hook", hook.as_os_str()).unwrap_err().to_string();
        assert!(e.contains("is not an executable file"), "{e}");
    }

    #[test]
    fn a_helper_socket_counts_only_in_directories_its_owner_alone_can_change() {
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("control");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        // the socket itself is writable by the agent's group: that is how root grants access
        mode(&sock, 0o660);
        helper_socket("bootslot", &sock).unwrap();
        mode(d.path(), 0o777);
        let e = helper_socket("bootslot", &sock).unwrap_err().to_string();
        assert!(e.contains(&format!("bootslot socket {}: its directory {}", sock.display(), d.path().display())), "{e}");
        assert!(e.contains("is writable by everyone"), "{e}");
        mode(d.path(), 0o700);
        let file = d.path().join("file");
        std::fs::write(&file, "").unwrap();
        let e = helper_socket("bootslot", &file).unwrap_err().to_string();
        assert!(e.contains("is not a socket"), "{e}");
    }

    #[test]
    fn a_symbolic_link_is_judged_by_where_it_leads() {
        let d = tempfile::tempdir().unwrap();
        let open = d.path().join("open");
        std::fs::create_dir(&open).unwrap();
        mode(&open, 0o777);
        let target = open.join("hook");
        std::fs::write(&target, "#!/bin/sh\n").unwrap();
        mode(&target, 0o755);
        let link = d.path().join("hook");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = program("health.hook", link.as_os_str()).unwrap_err().to_string();
        assert!(e.contains("writable by everyone"), "{e}");
    }
}
