//! The gateway services `applyResourcePackage` and `getResourcePackages`
//! (`docs/cloud-protocol.md`): the uplink downloads the package (resume, size bound, sha256 as
//! announced) and hands its bytes to the collector (`Collector1.InstallPackage`), which checks the
//! signature, validates, applies and rolls back; the uplink reports each step to the cloud as the
//! event `resourcePackageProgress`. The uplink itself trusts nothing in the package: it only
//! carries it.

use crate::gateway_services::Answer;
use crate::mqtt;
use crate::state::Shared;
use enos_cloud::{codes, requests};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// One package at a time.
static BUSY: AtomicBool = AtomicBool::new(false);

struct Order {
    url: String,
    version: String,
    sha256: String,
    size: u64,
}

/// The input parameters, or the first one that is wrong, in words.
fn order(params: &Value, max: u64) -> Result<Order, (i64, String)> {
    let text = |k: &str| params.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let bad = |m: String| (codes::BAD_PARAMS, m);
    let url = text("url").ok_or_else(|| bad("url: the package's address is missing".into()))?;
    let version = text("version").ok_or_else(|| bad("version: missing".into()))?;
    enos_package::version::parse(version).map_err(|e| bad(format!("version: {e}")))?;
    let sha256 = text("sha256").ok_or_else(|| bad("sha256: missing".into()))?;
    if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad("sha256: must be 64 hexadecimal digits".into()));
    }
    let size = params
        .get("size")
        .and_then(Value::as_u64)
        .filter(|s| *s > 0)
        .ok_or_else(|| bad("size: the package's size in bytes is missing".into()))?;
    if size > max {
        return Err((codes::TOO_LARGE, format!("the package of {size} bytes exceeds the gateway's limit of {max} bytes")));
    }
    Ok(Order { url: url.into(), version: version.into(), sha256: sha256.to_ascii_lowercase(), size })
}

/// `applyResourcePackage {url, version, sha256, size}`: accepted (the steps follow as events) or
/// refused at once.
pub async fn apply(shared: &Arc<Shared>, params: &Value) -> Answer {
    let o = match order(params, shared.cfg.packages.max_bytes) {
        Ok(o) => o,
        Err((code, msg)) => return Answer::refused(code, msg),
    };
    if shared.bus().is_none() {
        return Answer::refused(codes::NO_HANDLER, "the uplink is not on the bus yet");
    }
    if BUSY.swap(true, Ordering::SeqCst) {
        return Answer::refused(codes::BAD_PARAMS, "another resource package is being applied; ask again when it is done");
    }
    let version = o.version.clone();
    let s = shared.clone();
    tokio::spawn(async move {
        run(&s, &o).await;
        BUSY.store(false, Ordering::SeqCst);
    });
    Answer::ok(json!({ "accepted": true, "version": version }))
}

async fn run(shared: &Arc<Shared>, o: &Order) {
    let cfg = &shared.cfg.packages;
    let progress = |step: i32, outcome: &str, message: &str| publish(shared, &o.version, step, outcome, message);
    progress(0, "downloading", "");
    if let Err(e) = std::fs::create_dir_all(&cfg.dir) {
        return progress(-1, "failed", &format!("cannot keep the download in {}: {e}", cfg.dir.display()));
    }
    let dest = cfg.dir.join(format!("package-{}.json", o.version));
    let keep_free = shared.cache.keep_free_bytes();
    let lim = enos_download::Limits { expected: Some(o.size), max: cfg.max_bytes, allow_http: cfg.allow_http, attempts: 5, keep_free };
    if let Err(e) = enos_download::fetch(&o.url, &dest, &lim, |_, _| {}).await {
        let _ = std::fs::remove_file(dest.with_extension("part"));
        return progress(-1, "failed", &format!("download failed: {e}"));
    }
    let bytes = std::fs::read(&dest);
    let _ = std::fs::remove_file(&dest);
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => return progress(-1, "failed", &format!("the download could not be read back: {e}")),
    };
    let digest = sha256_hex(&bytes);
    if digest != o.sha256 {
        return progress(-2, "failed", &format!("the download's sha256 is {digest}, the cloud announced {}", o.sha256));
    }
    progress(40, "applying", "downloaded and verified; the collector checks and applies it");
    let Some(conn) = shared.bus() else { return progress(-3, "refused", "the uplink is not on the bus") };
    let answer = match enos_bus::CollectorProxy::new(conn).await {
        Ok(p) => p.install_package(&bytes).await,
        Err(e) => Err(e.into()),
    };
    let out: Value = match answer {
        Ok(text) => serde_json::from_str(&text).unwrap_or_default(),
        Err(e) if e.is_absent() => return progress(-3, "refused", "the collector is not running"),
        Err(e) => return progress(-3, "refused", &e.to_string()),
    };
    let reason = out["reason"].as_str().unwrap_or_default();
    match out["outcome"].as_str().unwrap_or_default() {
        "installed" => progress(100, "installed", ""),
        "rolled-back" => progress(-4, "rolled-back", reason),
        _ => progress(-3, "refused", reason),
    }
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

fn publish(shared: &Arc<Shared>, version: &str, step: i32, outcome: &str, message: &str) {
    log::info!("resource package {version}: {outcome} ({step}) {message}");
    let c = &shared.cfg.cloud;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let p = requests::PackageProgress { version, step, outcome, message };
    let req = requests::package_progress(&c.product_key, &c.device_key, mqtt::next_id(), &p, now);
    match shared.mqtt.lock().expect("mqtt").as_ref() {
        Some(cli) => mqtt::publish(cli, &req.topic, &req.payload),
        None => log::warn!("{} not sent: no cloud session", req.method),
    }
}

/// `getResourcePackages`: the installed package and the history, as the collector keeps them.
pub async fn list(shared: &Arc<Shared>) -> Answer {
    let Some(conn) = shared.bus() else { return Answer::refused(codes::NO_HANDLER, "the uplink is not on the bus yet") };
    let answer = match enos_bus::CollectorProxy::new(conn).await {
        Ok(p) => p.packages().await,
        Err(e) => Err(e.into()),
    };
    match answer {
        Ok(text) => Answer::ok(serde_json::from_str(&text).unwrap_or_default()),
        Err(e) if e.is_absent() => Answer::refused(codes::NO_HANDLER, "the collector is not running"),
        Err(e) => Answer::refused(codes::NO_HANDLER, e.to_string()),
    }
}
