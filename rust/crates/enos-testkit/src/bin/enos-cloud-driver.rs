//! The host side of the QEMU system tier (`tests/system/run`): a mosquitto with the EnOS cloud
//! simulator in front, a Modbus TCP device and an HTTP file server, all on 127.0.0.1, driven by
//! JSON lines on stdin and reporting JSON lines on stdout, so a test in another language checks
//! the protocol through the same simulator as the Rust tests.
//!
//! Started: `{"ev":"ready","cloud":PORT,"modbus":PORT,"http":PORT}` (the guest reaches them
//! through QEMU's guestfwd). Then, as they happen:
//! `{"ev":"request","ms":..,"topic":..,"payload":{..}}` for every non-telemetry request the cloud
//! received (inform, progress, topo, login ...), `{"ev":"reply",..}` for replies to the cloud's
//! commands, `{"ev":"connect","ok":N,"refused":M}` when the CONNECT counters change,
//! `{"ev":"http","path":..,"range":..,"status":..,"bytes":..}` per download request.
//!
//! Commands (one JSON object per line):
//! - `{"cmd":"upgrade","version":V,"file":NAME,"url":URL[,"sign_method":"md5"|"sha256"][,"sign":HEX]}`:
//!   the cloud sends `ota.device.upgrade` for `www/NAME` (size and digest computed here unless
//!   `sign` overrides the digest) → `{"ev":"sent","id":..,"ms":..,"params":{..}}`
//! - `{"cmd":"silent","on":true|false}`: telemetry gets no reply (records stay in the gateway's cache)
//! - `{"cmd":"broker","on":true|false}`: stop / restart mosquitto (the cloud unreachable)
//! - `{"cmd":"dump"}` → `{"ev":"dump","served":[..],"received":[..],"carried":[..],"resume_points":N,"points":N}`:
//!   counter values the device served, the `counter` values the cloud acknowledged, and those in any
//!   telemetry message it got (answered or not)
//! - `{"cmd":"quit"}`

use clap::Parser;
use enos_testkit::cloud_sim::CloudSim;
use enos_testkit::harness::Mosquitto;
use enos_testkit::modbus_sim::SimServer;
use serde_json::json;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

#[derive(Parser)]
struct Args {
    /// Working directory: mosquitto's config, and `www/` (the files the HTTP server serves).
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, default_value = "pkGW")]
    product_key: String,
    #[arg(long, default_value = "gw01")]
    device_key: String,
    #[arg(long, default_value = "system-test-secret")]
    device_secret: String,
    /// Sub-device the cloud accepts: DEVICE_KEY:SECRET (repeatable).
    #[arg(long, default_value = "inv01:inv01-secret")]
    sub_device: Vec<String>,
}

fn emit(v: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = Args::parse();
    let www = a.dir.join("www");
    std::fs::create_dir_all(&www).expect("www dir");
    let mut broker = Mosquitto::start(&a.dir);
    let mut secrets = HashMap::from([(a.device_key.clone(), a.device_secret.clone())]);
    for s in &a.sub_device {
        let (k, v) = s.split_once(':').expect("--sub-device KEY:SECRET");
        secrets.insert(k.to_string(), v.to_string());
    }
    let cloud = Arc::new(CloudSim::start(broker.port, secrets).await);
    let sim = SimServer::start(1).await;
    sim.with(|s| s.counters.push(0));
    let http_port = serve_dir(www.clone()).await;
    emit(json!({"ev": "ready", "cloud": cloud.front_port, "modbus": sim.addr.port(), "http": http_port}));

    // Moving values beside the counter (f32 at 2, u16 x0.1 at 4), like a live inverter.
    let dev = sim.dev.clone();
    tokio::spawn(async move {
        let mut t = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            t += 1;
            let bits = (230.0 + 20.0 * ((t as f32) / 20.0).sin()).to_bits();
            let mut s = dev.state.lock().unwrap();
            s.holding.insert(2, (bits >> 16) as u16);
            s.holding.insert(3, bits as u16);
            s.holding.insert(4, 2300 + (t % 7) as u16);
        }
    });

    // What the cloud received, as it arrives.
    let c2 = cloud.clone();
    tokio::spawn(async move {
        let (mut nreq, mut nrep, mut conns) = (0usize, 0usize, (0u64, 0u64));
        loop {
            let (reqs, reps, c) = c2.with(|r| {
                (
                    r.requests[nreq.min(r.requests.len())..].to_vec(),
                    r.command_replies[nrep.min(r.command_replies.len())..].to_vec(),
                    (r.connects_ok, r.connects_refused),
                )
            });
            nreq += reqs.len();
            nrep += reps.len();
            let ms = enos_batch::now_ms();
            for (topic, payload) in reqs {
                if !topic.ends_with("/measurepoint/post/batch") && !topic.ends_with("/measurepoint/resume/batch") {
                    emit(json!({"ev": "request", "ms": ms, "topic": topic, "payload": payload}));
                }
            }
            for (topic, payload) in reps {
                emit(json!({"ev": "reply", "ms": ms, "topic": topic, "payload": payload}));
            }
            if c != conns {
                conns = c;
                emit(json!({"ev": "connect", "ms": ms, "ok": c.0, "refused": c.1}));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut next_id = 1000u64;
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(cmd) = serde_json::from_str::<serde_json::Value>(&line) else {
            emit(json!({"ev": "error", "what": format!("not JSON: {line}")}));
            continue;
        };
        match cmd["cmd"].as_str().unwrap_or("") {
            "upgrade" => {
                let file = www.join(cmd["file"].as_str().unwrap_or(""));
                let method = cmd["sign_method"].as_str().unwrap_or("md5").to_string();
                let (size, digest) = match digest(&file, &method) {
                    Ok(d) => d,
                    Err(e) => {
                        emit(json!({"ev": "error", "what": e}));
                        continue;
                    }
                };
                let params = json!({
                    "version": cmd["version"],
                    "signMethod": method,
                    "sign": cmd["sign"].as_str().map(String::from).unwrap_or(digest),
                    "fileUrl": cmd["url"],
                    "fileSize": size,
                });
                next_id += 1;
                let id = next_id.to_string();
                let msg = json!({"id": id, "version": "1.0", "method": "ota.device.upgrade", "params": params});
                let topic = format!("/sys/{}/{}/ota/device/upgrade", a.product_key, a.device_key);
                cloud.command(&topic, msg.to_string().as_bytes()).await;
                emit(json!({"ev": "sent", "id": id, "ms": enos_batch::now_ms(), "params": params}));
            }
            "silent" => {
                let on = cmd["on"].as_bool().unwrap_or(true);
                cloud.with(|r| r.silent = on);
                emit(json!({"ev": "silent", "on": on, "ms": enos_batch::now_ms()}));
            }
            "broker" => {
                if cmd["on"].as_bool().unwrap_or(true) {
                    broker.restart();
                } else {
                    broker.stop();
                }
                emit(json!({"ev": "broker", "on": cmd["on"], "ms": enos_batch::now_ms()}));
            }
            "dump" => {
                let served = sim.with(|s| s.served.get(&0).cloned().unwrap_or_default());
                let (received, sent, resume, points) = cloud.with(|r| {
                    let mut v: Vec<u64> =
                        r.points.iter().filter(|p| p.point == "counter").filter_map(|p| p.value.as_f64()).map(|f| f as u64).collect();
                    v.sort_unstable();
                    // Every counter value in a telemetry message, answered or not (silent mode): tells a
                    // value the gateway never sent from one whose acknowledgement it never got.
                    let mut sent: Vec<u64> = r
                        .requests
                        .iter()
                        .filter(|(t, _)| t.ends_with("/measurepoint/post/batch") || t.ends_with("/measurepoint/resume/batch"))
                        .flat_map(|(_, v)| v["params"].as_array().cloned().unwrap_or_default())
                        .filter_map(|e| e["measurepoints"]["counter"].as_f64())
                        .map(|f| f as u64)
                        .collect();
                    sent.sort_unstable();
                    sent.dedup();
                    (v, sent, r.points_resume, r.points_total)
                });
                emit(
                    json!({"ev": "dump", "served": served, "received": received, "carried": sent, "resume_points": resume, "points": points}),
                );
            }
            "quit" => break,
            other => emit(json!({"ev": "error", "what": format!("unknown command {other:?}")})),
        }
    }
    broker.stop();
}

fn digest(path: &Path, method: &str) -> Result<(u64, String), String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let hexd = match method.to_ascii_lowercase().as_str() {
        "sha256" => {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&data))
        }
        _ => {
            use md5::Digest;
            hex::encode(md5::Md5::digest(&data))
        }
    };
    Ok((data.len() as u64, hexd))
}

/// A file server for `dir` on 127.0.0.1: GET with `Range: bytes=N-` (206) for resumed downloads,
/// 404 for anything else; every request is reported as an `http` event.
async fn serve_dir(dir: PathBuf) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind http");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let dir = dir.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 2048];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16384 {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req).to_string();
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                let range = text
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("range: bytes=").map(|r| r.trim().to_string()))
                    .unwrap_or_default();
                let name = path.trim_start_matches('/');
                let file = (!name.is_empty() && !name.contains("..") && !name.contains('/')).then(|| dir.join(name));
                let opened = match &file {
                    Some(f) => tokio::fs::File::open(f).await.ok(),
                    None => None,
                };
                let Some(mut f) = opened else {
                    let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                    emit(json!({"ev": "http", "path": path, "range": range, "status": 404, "bytes": 0}));
                    return;
                };
                let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
                let start: u64 = range.trim_end_matches('-').parse().unwrap_or(0);
                let (status, head) = if range.is_empty() {
                    (200, format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"))
                } else if start >= len {
                    (416, format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
                } else {
                    (
                        206,
                        format!(
                            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{len}\r\nConnection: close\r\n\r\n",
                            len - start,
                            len - 1
                        ),
                    )
                };
                let mut sent = 0u64;
                if s.write_all(head.as_bytes()).await.is_ok() && status != 416 {
                    let _ = f.seek(std::io::SeekFrom::Start(start)).await;
                    let mut chunk = vec![0u8; 256 * 1024];
                    loop {
                        match f.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if s.write_all(&chunk[..n]).await.is_err() {
                                    break;
                                }
                                sent += n as u64;
                            }
                        }
                    }
                }
                let _ = s.shutdown().await;
                emit(json!({"ev": "http", "path": path, "range": range, "status": status, "bytes": sent}));
            });
        }
    });
    port
}
