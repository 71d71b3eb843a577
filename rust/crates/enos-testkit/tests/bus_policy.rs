//! The layer's D-Bus policies, walked: a private dbus-daemon with the system bus's default policy
//! (deny owning and calling unless a file allows it) includes the policy files of
//! `meta-enos-edge`, the service users mapped to stand-in users of this machine; every name is
//! claimed and every method called as every service user, root, a member of `enos-admin` and an
//! unprivileged user, and what the bus allows is compared with the table in `docs/security.md`
//! ("D-Bus policy"), which is the expectation. A policy that allows more or less than the table
//! says fails, and so does a method of `enos_bus::contract` the table does not list.
//!
//! Stand-ins (users every Debian system has; dbus-daemon resolves a policy's user through the
//! user database, so they must exist): enos-collector = daemon, enos-uplink = bin,
//! enos-web = sys, enos-ota = sync, enos-admin = group games (its member: user games), others =
//! nobody.

use enos_bus::contract::SERVICES;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The actors of the table's columns: (column, uid, gid, supplementary groups).
const ACTORS: &[(&str, u32, u32, &[u32])] = &[
    ("root", 0, 0, &[]),
    ("enos-collector", 1, 1, &[]),
    ("enos-uplink", 2, 2, &[]),
    ("enos-web", 3, 3, &[]),
    ("enos-ota", 4, 65534, &[]),
    ("enos-admin", 5, 60, &[60]),
    ("others", 65534, 65534, &[]),
];
/// How the policy files' users and groups are rewritten for this machine.
const MAP: &[(&str, &str)] = &[
    ("user=\"enos-collector\"", "user=\"1\""),
    ("user=\"enos-uplink\"", "user=\"2\""),
    ("user=\"enos-web\"", "user=\"3\""),
    ("user=\"enos-ota\"", "user=\"4\""),
    ("group=\"enos-admin\"", "group=\"60\""),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..").canonicalize().unwrap()
}

/// One row of the table: the service's bus name, the call (`own` or `Interface.Member` with
/// the interface's last part), and yes/no per actor.
struct Row {
    service: String,
    call: String,
    allowed: BTreeMap<String, bool>,
}

fn table() -> Vec<Row> {
    let doc = std::fs::read_to_string(repo().join("docs/security.md")).unwrap();
    let start = doc.find("<!-- bus-policy-table -->").expect("docs/security.md: the <!-- bus-policy-table --> marker");
    let mut lines = doc[start..].lines().skip(1).skip_while(|l| !l.starts_with('|'));
    let cells =
        |l: &str| -> Vec<String> { l.trim().trim_matches('|').split('|').map(|c| c.trim().trim_matches('`').to_string()).collect() };
    let head = cells(lines.next().unwrap());
    let want: Vec<&str> = ["service", "call"].into_iter().chain(ACTORS.iter().map(|a| a.0)).collect();
    assert_eq!(head, want, "the policy table's columns");
    lines
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let c = cells(l);
            let allowed = ACTORS
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let v = match c[2 + i].as_str() {
                        "yes" => true,
                        "no" => false,
                        other => panic!("docs/security.md policy table, {} {}: {other:?} is neither yes nor no", c[0], c[1]),
                    };
                    (a.0.to_string(), v)
                })
                .collect();
            Row { service: c[0].clone(), call: c[1].clone(), allowed }
        })
        .collect()
}

/// The bus configuration: the system bus's default policy, the layer's files (users mapped).
fn bus_config(dir: &Path) -> PathBuf {
    let files = repo().join("meta-enos-edge/recipes-enos/enos-edge/files");
    let mut includes = String::new();
    let mut names: Vec<_> = std::fs::read_dir(&files).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for p in names.iter().filter(|p| p.extension().is_some_and(|e| e == "conf")) {
        let mut text = std::fs::read_to_string(p).unwrap();
        if !text.contains("<busconfig") {
            continue; // not a D-Bus policy (the services' shared sandbox drop-in)
        }
        for (from, to) in MAP {
            text = text.replace(from, to);
        }
        let copy = dir.join(p.file_name().unwrap());
        std::fs::write(&copy, text).unwrap();
        includes.push_str(&format!("  <include>{}</include>\n", copy.display()));
    }
    let conf = dir.join("bus.conf");
    std::fs::write(
        &conf,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path={}/bus.sock</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
{includes}</busconfig>
"#,
            dir.display()
        ),
    )
    .unwrap();
    conf
}

/// `dbus-send` as the actor; Ok(()) when the bus delivered it (whatever the answer), Err(reason)
/// when the bus refused it.
fn send(addr: &str, actor: &(&str, u32, u32, &[u32]), args: &[&str]) -> Result<(), String> {
    let groups: Vec<String> = actor.3.iter().map(|g| g.to_string()).collect();
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={}", actor.1)).arg(format!("--regid={}", actor.2));
    if groups.is_empty() {
        cmd.arg("--clear-groups");
    } else {
        cmd.arg(format!("--groups={}", groups.join(",")));
    }
    let out = cmd
        .args(["dbus-send", &format!("--bus={addr}"), "--print-reply", "--reply-timeout=10000"])
        .args(args)
        .output()
        .expect("setpriv and dbus-send (util-linux, dbus)");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    if err.contains("org.freedesktop.DBus.Error.AccessDenied") {
        return Err(err);
    }
    assert!(
        out.status.success() || err.contains("Error org.freedesktop.DBus.Error.Unknown"),
        "{} {args:?}: neither delivered nor refused by policy: {err}",
        actor.0
    );
    Ok(())
}

/// Something served, so that zbus's object server answers every other call (UnknownObject).
struct Stub;

#[zbus::interface(name = "org.enos.Test.Stub")]
impl Stub {
    fn ping(&self) {}
}

/// A connection owning `name`, made as `uid` (a thread whose effective ids are switched with the
/// raw system calls, which act on the calling thread only), left open for the test's life. zbus
/// answers every call to it with UnknownMethod/UnknownObject: proof the bus delivered it.
fn stub_owner(addr: String, name: &'static str, uid: u32, gid: u32) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: plain system calls on this thread's credentials; -1 leaves an id unchanged.
        unsafe {
            assert_eq!(libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()), 0);
            assert_eq!(libc::syscall(libc::SYS_setresgid, -1, gid, -1), 0);
            assert_eq!(libc::syscall(libc::SYS_setresuid, -1, uid, -1), 0);
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let conn = async { zbus::connection::Builder::address(addr.as_str()).name(name).serve_at("/stub", Stub).build().await }.await;
            tx.send(conn.as_ref().map(|_| ()).map_err(|e| e.to_string())).unwrap();
            if let Ok(_conn) = conn {
                std::future::pending::<()>().await;
            }
        });
    });
    rx.recv().unwrap().unwrap_or_else(|e| panic!("{name} as uid {uid}: {e}"));
}

fn full_interface(short: &str) -> String {
    match short {
        "Introspectable" | "Peer" | "Properties" => format!("org.freedesktop.DBus.{short}"),
        _ => format!("org.enos.Edge.{short}"),
    }
}

#[test]
fn every_method_of_every_service_as_every_user_is_allowed_exactly_as_the_table_says() {
    assert!(unsafe { libc::geteuid() } == 0, "the policy walk runs as root (CI does)");
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    for u in ["daemon:x:1:1:", "bin:x:2:2:", "sys:x:3:3:", "games:x:5:60:", "nobody:x:65534:65534:"] {
        assert!(passwd.lines().any(|l| l.starts_with(u)), "stand-in user {u} missing from /etc/passwd");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let conf = bus_config(dir.path());
    let mut daemon = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", conf.display()))
        .args(["--nofork", "--print-address"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dbus-daemon");
    let mut addr = String::new();
    BufReader::new(daemon.stdout.take().unwrap()).read_line(&mut addr).unwrap();
    let addr = addr.trim().to_string();
    assert!(!addr.is_empty(), "dbus-daemon did not start with the layer's policies");
    let _kill = enos_testkit::harness::Proc { child: Some(daemon), name: "dbus-daemon".into() };

    let rows = table();
    let mut wrong = Vec::new();
    // Owning the names (before the stubs own them: RequestName with DO_NOT_QUEUE).
    for row in rows.iter().filter(|r| r.call == "own") {
        for a in ACTORS {
            let got = send(
                &addr,
                a,
                &[
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.RequestName",
                    &format!("string:{}", row.service),
                    "uint32:4",
                ],
            )
            .is_ok();
            if got != row.allowed[a.0] {
                wrong.push(format!("{} may own {}: table {}, bus {got}", a.0, row.service, row.allowed[a.0]));
            }
        }
    }
    // The names owned as the table's owners, then every call as everyone.
    for s in SERVICES {
        let owner = rows.iter().find(|r| r.service == s.bus_name && r.call == "own" && r.allowed.values().any(|v| *v));
        let owner = owner.unwrap_or_else(|| panic!("the table gives nobody {}", s.bus_name));
        let a = ACTORS.iter().find(|a| owner.allowed[a.0]).unwrap();
        stub_owner(addr.clone(), s.bus_name, a.1, a.2);
        for i in s.interfaces {
            for m in i.methods {
                let short = format!("{}.{}", i.name.trim_start_matches("org.enos.Edge."), m.name);
                assert!(
                    rows.iter().any(|r| r.service == s.bus_name && r.call == short),
                    "docs/security.md's policy table has no row for {} {short}",
                    s.bus_name
                );
            }
        }
    }
    for row in rows.iter().filter(|r| r.call != "own") {
        let s = SERVICES.iter().find(|s| s.bus_name == row.service).unwrap_or_else(|| panic!("no service {}", row.service));
        let (iface, member) = row.call.rsplit_once('.').unwrap();
        for a in ACTORS {
            let got = send(&addr, a, &[&format!("--dest={}", s.bus_name), s.path, &format!("{}.{member}", full_interface(iface))]);
            if got.is_ok() != row.allowed[a.0] {
                wrong.push(format!("{} {} as {}: table {}, bus {}", row.service, row.call, a.0, row.allowed[a.0], got.is_ok()));
            }
        }
    }
    assert!(wrong.is_empty(), "the bus policies differ from docs/security.md:\n  {}", wrong.join("\n  "));
}
