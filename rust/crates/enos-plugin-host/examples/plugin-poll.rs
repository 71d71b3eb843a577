//! Tries a protocol plugin without a gateway: loads a packed plugin directory (`scripts/plugin
//! build`), gives it one device, polls it and prints what it emits, one line a sample. Plugin
//! developers use it against their own device; `scripts/plugin-arm64-check` runs it on another
//! architecture (the interpreter the box uses is the one under test there).
//!
//! ```text
//! plugin-poll DIR --endpoint line=127.0.0.1:2100 --point energy=1.8.0 \
//!     [--settings '{"timeout_ms": 2000}'] [--polls 3] [--native]
//! ```
//! Exits 1 with the reason when the plugin does not load, start or poll.

use enos_plugin_host::{DeviceSpec, Endpoint, Execution, Instance, Quality, Runtime, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

struct Args {
    dir: PathBuf,
    endpoints: BTreeMap<String, Endpoint>,
    points: Vec<(String, String)>,
    settings: serde_json::Value,
    polls: u32,
    execution: Execution,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        dir: PathBuf::new(),
        endpoints: BTreeMap::new(),
        points: Vec::new(),
        settings: serde_json::json!({}),
        polls: 1,
        execution: Execution::Interpreted,
    };
    let pair = |flag: &str, v: Option<String>| -> Result<(String, String), String> {
        let v = v.ok_or(format!("{flag} needs ID=VALUE"))?;
        v.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or(format!("{flag} {v}: not ID=VALUE"))
    };
    while let Some(x) = it.next() {
        match x.as_str() {
            "--endpoint" => {
                let (id, addr) = pair("--endpoint", it.next())?;
                a.endpoints.insert(id, Endpoint::Tcp(addr));
            }
            "--point" => a.points.push(pair("--point", it.next())?),
            "--settings" => {
                let v = it.next().ok_or("--settings needs a JSON object")?;
                a.settings = serde_json::from_str(&v).map_err(|e| format!("--settings: not JSON ({e})"))?;
            }
            "--polls" => a.polls = it.next().and_then(|n| n.parse().ok()).ok_or("--polls needs a number")?,
            "--native" => a.execution = Execution::Native,
            d if !d.starts_with('-') && a.dir.as_os_str().is_empty() => a.dir = d.into(),
            other => return Err(format!("{other}: not an argument (see the file's head)")),
        }
    }
    if a.dir.as_os_str().is_empty() {
        return Err("name the packed plugin directory".into());
    }
    Ok(a)
}

fn run() -> Result<(), String> {
    let a = args()?;
    let rt = Runtime::with(None, a.execution)?;
    let plugin = rt.load(&a.dir).map_err(|e| format!("{}: {e}", a.dir.display()))?;
    let settings = plugin.check_settings(&a.settings).map_err(|e| format!("settings: {}", e.join("; ")))?;
    let spec = DeviceSpec { id: "try".into(), settings, points: a.points, endpoints: a.endpoints, kv_file: None };
    let mut inst = Instance::new(&rt, &plugin, &spec)?;
    inst.init(&spec).map_err(|e| format!("init: {e}"))?;
    let how = if a.execution == Execution::Native { "native code" } else { "interpreted (Pulley)" };
    println!("plugin {} {} on {}, {how}", plugin.manifest.name, plugin.manifest.version, std::env::consts::ARCH);
    for n in 1..=a.polls {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        inst.poll(now).map_err(|e| format!("poll {n}: {e}"))?;
        for s in inst.take_output().0 {
            let v = match &s.value {
                Value::Boolean(b) => b.to_string(),
                Value::Integer(i) => i.to_string(),
                Value::Float(f) => f.to_string(),
                Value::Text(t) => format!("\"{t}\""),
            };
            let q = match s.quality {
                Quality::Good => "good",
                Quality::Uncertain => "uncertain",
                Quality::Bad => "bad",
            };
            println!("poll {n}: {} = {v} ({q})", s.point);
        }
    }
    inst.shutdown().map_err(|e| format!("shutdown: {e}"))?;
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("plugin-poll: {e}");
        std::process::exit(1);
    }
}
