//! Maintenance: update bundles uploaded and installed through `org.enos.Edge.Ota1`, update
//! status and history, service logs from the journal, restart of a service and reboot through
//! systemd/logind on the bus, a diagnostics bundle, and the box's own figures for the dashboard.
//! See `docs/web-api.md`.

use crate::access::Caller;
use crate::http::{header, ok, read_json, ApiError, ApiResult};
use crate::state::App;
use enos_runtime::sys::{Disk, Memory};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Request, StatusCode};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The services a technician may see the logs of and restart.
pub const SERVICES: &[&str] = &["enos-collector", "enos-uplink", "enos-ota", "enos-web"];

/// A body that stops arriving for this long ends the upload.
const UPLOAD_IDLE: Duration = Duration::from_secs(60);

fn query<'a>(req: &'a Request<Incoming>, key: &str) -> Option<&'a str> {
    req.uri().query()?.split('&').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn upload_dir(app: &App) -> PathBuf {
    app.cfg.upload_dir.clone().unwrap_or_else(|| app.cfg.state_dir.join("upload"))
}

/// `POST /api/update/upload`: the body is the bundle (`application/octet-stream`), streamed to
/// the data partition, then handed to `Ota1.InstallFile`.
pub async fn upload(app: &App, req: Request<Incoming>, c: Caller) -> ApiResult {
    let s = c.session;
    let limit = app.cfg.limits.max_upload_bytes;
    let ct = header(req.headers(), CONTENT_TYPE.as_str()).unwrap_or("");
    if !ct.eq_ignore_ascii_case("application/octet-stream") {
        return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send the bundle as application/octet-stream"));
    }
    let announced = match header(req.headers(), CONTENT_LENGTH.as_str()).map(str::parse::<u64>) {
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => return Err(ApiError::bad_request("bad Content-Length")),
        None => None,
    };
    let too_large =
        || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the bundle is larger than {} MiB (limits.max_upload_bytes)", limit >> 20));
    if announced.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    // one update at a time: a running job keeps its file
    if let Ok(st) = app.bus.ota_status().await {
        let state = st["state"].as_str().unwrap_or("idle");
        if !matches!(state, "idle" | "committed" | "rolled-back" | "failed") {
            return Err(ApiError::new(StatusCode::CONFLICT, format!("an update is in progress ({state}): wait until it ends")));
        }
    }
    let dir = upload_dir(app);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{}: {e}", dir.display())))?;
    let keep_free = app.cfg.limits.min_free_bytes;
    if let (Some(n), Some(free)) = (announced, Disk::of(&dir).map(|d| d.free_bytes)) {
        if n + keep_free > free {
            return Err(no_space(free, keep_free));
        }
    }
    // older uploads go: only the bundle being installed is kept
    if let Ok(mut rd) = tokio::fs::read_dir(&dir).await {
        while let Ok(Some(e)) = rd.next_entry().await {
            let _ = tokio::fs::remove_file(e.path()).await;
        }
    }
    let part = dir.join(format!("upload-{}.part", enos_batch::now_ms()));
    let written = receive(req.into_body(), &part, limit, keep_free).await;
    let bytes = match written {
        Ok(n) => n,
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(if e.status == StatusCode::PAYLOAD_TOO_LARGE { too_large() } else { e });
        }
    };
    // The agent takes a local bundle's version from its file name (and checks it against the
    // booted VERSION_ID after the reboot): name the file after the bundle's own sw-description.
    let version = match bundle_version(&part) {
        Ok(v) => v,
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(ApiError::bad_request(e));
        }
    };
    let path = dir.join(format!("{version}.swu"));
    if let Err(e) = tokio::fs::rename(&part, &path).await {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot store the bundle: {e}")));
    }
    let job = match app.bus.install_file(&path.to_string_lossy()).await {
        Ok(j) => j,
        Err(e) => {
            let _ = tokio::fs::remove_file(&path).await;
            log::warn!("{:?} uploaded an update bundle ({bytes} bytes), not installed: {}", s.user, e.message);
            return Err(e);
        }
    };
    log::warn!("{:?} uploaded an update bundle, version {version} ({bytes} bytes): job {job}", s.user);
    Ok(crate::http::json(StatusCode::ACCEPTED, &json!({ "job": job, "version": version, "bytes": bytes, "file": path })))
}

/// The `version` of the bundle's `sw-description` (the first member of its cpio archive).
fn bundle_version(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(256 * 1024).read_to_end(&mut head))
        .map_err(|e| format!("cannot read the bundle: {e}"))?;
    let field = |at: usize| -> Option<usize> { usize::from_str_radix(std::str::from_utf8(head.get(at..at + 8)?).ok()?, 16).ok() };
    let bad = || "this is not a SWUpdate bundle: its first member is not a readable sw-description".to_string();
    let (size, namesize) = (field(54).ok_or_else(bad)?, field(94).ok_or_else(bad)?);
    let name_end = 110 + namesize;
    let name = head.get(110..name_end.saturating_sub(1)).ok_or_else(bad)?;
    if name != b"sw-description" {
        return Err(bad());
    }
    let data_at = name_end.div_ceil(4) * 4;
    let desc = head.get(data_at..data_at + size).ok_or_else(bad)?;
    let text = String::from_utf8_lossy(desc);
    let version = text
        .split("version")
        .skip(1)
        .find_map(|rest| {
            let rest = rest.trim_start().strip_prefix('=')?.trim_start().strip_prefix('"')?;
            rest.split_once('"').map(|(v, _)| v.to_string())
        })
        .ok_or_else(|| "the bundle's sw-description names no version".to_string())?;
    if version.is_empty()
        || version.len() > 64
        || !version.chars().all(|c| c.is_ascii_alphanumeric() || "._+-~".contains(c))
        || version.starts_with('.')
    {
        return Err(format!("the bundle's version {version:?} is not a plain version string"));
    }
    Ok(version)
}

fn no_space(free: u64, keep_free: u64) -> ApiError {
    ApiError::new(
        StatusCode::INSUFFICIENT_STORAGE,
        format!(
            "not enough space on the data partition for this bundle: {} MiB free, and {} MiB must stay free for the cache and the services",
            free >> 20,
            keep_free >> 20
        ),
    )
}

/// How often (in bytes received) an upload looks at the free space again.
const SPACE_CHECK_EVERY: u64 = 4 << 20;

/// Streams the body to `path`. Bounded by `limit` and, as it streams (a chunked upload announces
/// no length), by the free space: it stops before the partition keeps less than `keep_free`.
async fn receive(mut body: Incoming, path: &Path, limit: u64, keep_free: u64) -> Result<u64, ApiError> {
    let io = |e: std::io::Error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot store the bundle: {e}"));
    let mut f = tokio::fs::OpenOptions::new().write(true).create_new(true).open(path).await.map_err(io)?;
    let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut n = 0u64;
    let mut next_check = 0u64;
    let mut head = Vec::new();
    loop {
        let frame = match tokio::time::timeout(UPLOAD_IDLE, body.frame()).await {
            Err(_) => return Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, "the upload stalled")),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(ApiError::bad_request("the upload broke off")),
            Ok(Some(Ok(fr))) => fr,
        };
        let Ok(data) = frame.into_data() else { continue };
        n += data.len() as u64;
        if n > limit {
            return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too large"));
        }
        if n >= next_check {
            // what is still in this chunk and a margin for the next ones must fit too
            if let Some(free) = Disk::of(&dir).map(|d| d.free_bytes) {
                if free < keep_free + data.len() as u64 + SPACE_CHECK_EVERY {
                    return Err(no_space(free, keep_free));
                }
            }
            next_check = n + SPACE_CHECK_EVERY;
        }
        if head.len() < 6 {
            head.extend_from_slice(&data[..data.len().min(6 - head.len())]);
        }
        f.write_all(&data).await.map_err(io)?;
    }
    // a SWUpdate bundle is a cpio archive (new ASCII format, with or without CRC)
    if !(head.starts_with(b"070701") || head.starts_with(b"070702")) {
        return Err(ApiError::bad_request("this is not a SWUpdate bundle (.swu): it does not start like a cpio archive"));
    }
    // group-readable: the OTA agent reads it through the directory's group (no CAP_DAC_OVERRIDE)
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(0o640)).await.map_err(io)?;
    f.sync_all().await.map_err(io)?;
    Ok(n)
}

/// `GET /api/update`: the running version and slot, the current job, the history.
pub async fn update_status(app: &App) -> ApiResult {
    let (st, hist) = tokio::join!(app.bus.ota_status(), app.bus.ota_history());
    let st = st?;
    let hist = hist.unwrap_or(json!([]));
    ok(&json!({ "status": st, "history": hist }))
}

fn priority(level: &str) -> Option<u8> {
    Some(match level {
        "emerg" => 0,
        "alert" => 1,
        "crit" => 2,
        "err" | "error" => 3,
        "warning" => 4,
        "notice" => 5,
        "info" => 6,
        "debug" => 7,
        _ => return None,
    })
}

/// Runs `journalctl` with a fixed argument list (no shell); JSON lines parsed.
async fn journal(units: &[&str], prio: u8, lines: u32, json_out: bool) -> Result<String, ApiError> {
    let mut cmd = tokio::process::Command::new("journalctl");
    cmd.arg("--no-pager").arg("-o").arg(if json_out { "json" } else { "short-iso" }).arg("-n").arg(lines.to_string());
    cmd.arg("-p").arg(prio.to_string());
    for u in units {
        cmd.arg("-u").arg(format!("{u}.service"));
    }
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    let out = match tokio::time::timeout(Duration::from_secs(15), cmd.output()).await {
        Err(_) => return Err(ApiError::new(StatusCode::GATEWAY_TIMEOUT, "the journal did not answer within 15 s")),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the system journal is not available here (no journalctl)"))
        }
        Ok(Err(e)) => return Err(ApiError::new(StatusCode::BAD_GATEWAY, format!("journalctl: {e}"))),
        Ok(Ok(o)) => o,
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).lines().next().unwrap_or("").to_string();
        return Err(ApiError::new(StatusCode::BAD_GATEWAY, format!("journalctl failed: {err}")));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `GET /api/logs?service=enos-collector&level=warning&lines=200`.
pub async fn logs(req: Request<Incoming>) -> ApiResult {
    let units: Vec<&str> = match query(&req, "service") {
        None | Some("") | Some("all") => SERVICES.to_vec(),
        Some(s) => vec![*SERVICES
            .iter()
            .find(|x| **x == s)
            .ok_or_else(|| ApiError::bad_request(format!("service must be one of {}", SERVICES.join(", "))))?],
    };
    let prio = match query(&req, "level") {
        None | Some("") => 6,
        Some(l) => priority(l).ok_or_else(|| ApiError::bad_request("level must be one of err, warning, notice, info, debug"))?,
    };
    let lines = match query(&req, "lines") {
        None => 200,
        Some(n) => n.parse::<u32>().ok().filter(|n| (1..=5000).contains(n)).ok_or_else(|| ApiError::bad_request("lines must be 1-5000"))?,
    };
    let text = journal(&units, prio, lines, true).await?;
    let entries: Vec<_> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|e| {
            let msg = match &e["MESSAGE"] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(b) => {
                    String::from_utf8_lossy(&b.iter().filter_map(|x| x.as_u64()).map(|x| x as u8).collect::<Vec<_>>()).into_owned()
                }
                _ => String::new(),
            };
            let ts = e["__REALTIME_TIMESTAMP"].as_str().and_then(|t| t.parse::<u64>().ok()).map(|us| us / 1000);
            json!({
                "ts_ms": ts,
                "unit": e["_SYSTEMD_UNIT"].as_str().or(e["SYSLOG_IDENTIFIER"].as_str()),
                "priority": e["PRIORITY"].as_str().and_then(|p| p.parse::<u8>().ok()),
                "message": msg,
            })
        })
        .collect();
    ok(&json!({ "services": units, "entries": entries }))
}

/// `POST /api/services/{name}/restart`.
pub async fn restart(app: &App, c: Caller, name: &str) -> ApiResult {
    let s = c.session;
    if !SERVICES.contains(&name) {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no service {name:?} (one of {})", SERVICES.join(", "))));
    }
    let unit = format!("{name}.service");
    log::warn!("{:?} restarts {unit}", s.user);
    app.bus.restart_unit(&unit).await?;
    ok(&json!({ "service": name, "restarting": true }))
}

/// `POST /api/system/reboot`.
pub async fn reboot(app: &App, c: Caller) -> ApiResult {
    log::warn!("{:?} reboots the gateway", c.session.user);
    app.bus.reboot().await?;
    ok(&json!({ "rebooting": true }))
}

/// CPU use since the previous call (whole box).
fn cpu_percent(app: &App) -> Option<f64> {
    let now = enos_runtime::sys::CpuTimes::read()?;
    let mut last = app.cpu_last.lock().unwrap();
    let (total, idle) = last.replace((now.total, now.idle))?;
    now.busy_percent_since(enos_runtime::sys::CpuTimes { idle, total })
}

/// The box itself: version and slot (Ota1.Status), services, CPU, memory, disk, uptime.
pub async fn system_doc(app: &App) -> serde_json::Value {
    let ota = app.bus.ota_status().await;
    let mut services = Vec::new();
    for (svc, name) in
        [("enos-collector", enos_bus::COLLECTOR_NAME), ("enos-uplink", enos_bus::UPLINK_NAME), ("enos-ota", enos_bus::OTA_NAME)]
    {
        services.push(json!({ "service": svc, "state": if app.bus.name_has_owner(name).await { "running" } else { "not running" } }));
    }
    services.push(json!({ "service": "enos-web", "state": "running" }));
    let disk_path = if Path::new("/data").is_dir() { PathBuf::from("/data") } else { app.cfg.state_dir.clone() };
    let disk = Disk::of(&disk_path).map(|d| json!({ "path": disk_path, "total_bytes": d.total_bytes, "free_bytes": d.free_bytes }));
    let mem = Memory::read().map(|m| json!({ "total_bytes": m.total_bytes, "available_bytes": m.available_bytes }));
    let uptime = enos_runtime::sys::uptime_s();
    let mut errors = serde_json::Map::new();
    if let Err(e) = &ota {
        errors.insert("ota".into(), e.message.clone().into());
    }
    json!({
        "ota": ota.ok(),
        "services": services,
        "cpu_percent": cpu_percent(app),
        "memory": mem,
        "disk": disk,
        "uptime_s": uptime,
        "errors": errors,
    })
}

/// `GET /api/system`.
pub async fn system(app: &App) -> ApiResult {
    ok(&system_doc(app).await)
}

/// The web center's settings that matter for support, written as in `web.toml`.
fn web_settings(cfg: &crate::config::WebConfig) -> String {
    let quoted = |s: &str| serde_json::Value::from(s).to_string();
    let mut out = format!("listen = {}\n", quoted(&cfg.listen));
    match &cfg.kiosk_listen {
        Some(k) => out += &format!("kiosk_listen = {}\n", quoted(k)),
        None => out += "# kiosk_listen is not set\n",
    }
    out += &format!("plain_http = {}\nmetrics_public = {}\n", cfg.plain_http, cfg.metrics_public);
    match &cfg.tls.cert_file {
        Some(f) => out += &format!("tls.cert_file = {}\n", quoted(&f.to_string_lossy())),
        None => out += "# tls.cert_file is not set (a certificate made on the box)\n",
    }
    let names: Vec<String> = cfg.tls.hostnames.iter().map(|h| quoted(h)).collect();
    out += &format!("tls.hostnames = [{}]\n", names.join(", "));
    out
}

/// `GET /api/diagnostics`: a `.tar.gz` of status, configuration without secrets, recent logs.
pub async fn diagnostics(app: &App, c: Caller) -> ApiResult {
    let s = c.session;
    let now = enos_batch::now_ms();
    let st = serde_json::to_vec_pretty(&app.bus.status().await).unwrap_or_default();
    let sys = serde_json::to_vec_pretty(&system_doc(app).await).unwrap_or_default();
    let collector = match app.bus.collector_config().await {
        Ok(c) => serde_json::to_vec_pretty(&c).unwrap_or_default(),
        Err(e) => format!("not available: {}\n", e.message).into_bytes(),
    };
    let hist = match app.bus.ota_history().await {
        Ok(h) => serde_json::to_vec_pretty(&h).unwrap_or_default(),
        Err(e) => format!("not available: {}\n", e.message).into_bytes(),
    };
    let accounts: String = app.accounts.lock().await.list().iter().map(|a| format!("{} {}\n", a.name, a.role.as_str())).collect();
    let web = web_settings(&app.cfg);
    let logs = match journal(SERVICES, 7, 3000, false).await {
        Ok(t) => t,
        Err(e) => format!("not available: {}\n", e.message),
    };
    let base = format!("enos-diagnostics-{now}");
    let entries = vec![
        (format!("{base}/README.txt"), b"EnOS Edge diagnostics: status.json (services, cloud, cache, devices), system.json (version, slot, CPU, memory, disk), collector-config.json, ota-history.json, web.txt, accounts.txt (names and roles only), journal.txt. No secrets: no passwords, keys or device secrets.\n".to_vec()),
        (format!("{base}/status.json"), st),
        (format!("{base}/system.json"), sys),
        (format!("{base}/collector-config.json"), collector),
        (format!("{base}/ota-history.json"), hist),
        (format!("{base}/web.txt"), web.into_bytes()),
        (format!("{base}/accounts.txt"), accounts.into_bytes()),
        (format!("{base}/journal.txt"), logs.into_bytes()),
    ];
    let gz = crate::tarball::tar_gz(&entries, now / 1000);
    log::info!("{:?} downloaded a diagnostics bundle ({} bytes)", s.user, gz.len());
    let mut r = crate::http::text(StatusCode::OK, "application/gzip", gz);
    r.headers_mut()
        .insert("content-disposition", HeaderValue::from_str(&format!("attachment; filename=\"{base}.tar.gz\"")).expect("ascii"));
    r.headers_mut().insert("cache-control", HeaderValue::from_static("no-store"));
    Ok(r)
}

/// `GET /api/cloud`: the uplink's cloud settings (the secret only as `secret_set`).
pub async fn get_cloud(app: &App) -> ApiResult {
    ok(&app.bus.cloud_settings().await?)
}

/// `POST /api/cloud`: validated and written by the uplink, which then reconnects.
pub async fn set_cloud(app: &App, req: Request<Incoming>, c: Caller) -> ApiResult {
    let s = c.session;
    let change: enos_model::cloud::CloudChange = read_json(req, app.body_limit()).await?;
    change.check().map_err(ApiError::bad_request)?;
    let body = serde_json::to_string(&change).expect("change");
    // A change the uplink refuses is its InvalidArgs error: a 422 with its reason.
    let v = app.bus.set_cloud_settings(&body).await?;
    log::warn!(
        "{:?} changed the cloud settings: {} {}/{}{}",
        s.user,
        change.uri,
        change.product_key,
        change.device_key,
        if change.device_secret.as_deref().is_some_and(|x| !x.is_empty()) { ", new secret" } else { "" }
    );
    ok(&v)
}

/// `POST /api/cloud/test`: a CONNECT with the given settings, apart from the running session.
pub async fn test_cloud(app: &App, req: Request<Incoming>, c: Caller) -> ApiResult {
    let s = c.session;
    let change: enos_model::cloud::CloudChange = read_json(req, app.body_limit()).await?;
    change.check().map_err(ApiError::bad_request)?;
    let body = serde_json::to_string(&change).expect("change");
    let v = app.bus.test_cloud(&body).await?;
    log::info!("{:?} tested the cloud connection to {}: {}", s.user, change.uri, v["message"].as_str().unwrap_or(""));
    ok(&v)
}
