//! `uploadLogs {service?, level?, since?, max_lines?}`: the newest journal lines that match, as
//! `thing.log.post` messages, bounded in lines and bytes (`[monitor]` `log_max_lines`,
//! `log_max_bytes`). The source is the journal, or a file of the services' stderr lines
//! (`monitor.log_file`: boxes without a journal, tests).

use crate::gateway_services::Answer;
use crate::mqtt;
use crate::state::Shared;
use enos_cloud::codes;
use enos_cloud::monitor::{self, LogLine};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

/// One line's text is cut here (a dumped frame must not fill the whole upload).
const MAX_LINE_BYTES: usize = 2048;
/// Text per `thing.log.post` message (far below EnOS's 512 KB).
const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Of a log file only the end is read.
const MAX_FILE_TAIL: u64 = 8 << 20;
const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// What the cloud asked for.
#[derive(Debug, PartialEq)]
struct Ask {
    service: Option<String>,
    /// Lines at this level or more severe.
    level: usize,
    since_ms: u64,
    max_lines: usize,
}

fn ask(params: &Value, cap: usize) -> Result<Ask, String> {
    let service = match &params["service"] {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) if s.starts_with("enos-") && s[5..].chars().all(|c| c.is_ascii_lowercase() || c == '-') => Some(s.clone()),
        v => return Err(format!("service: {v} is not one of the gateway's services (enos-collector, enos-uplink, ...)")),
    };
    let level = match &params["level"] {
        Value::Null => 2,
        Value::String(s) => LEVELS
            .iter()
            .position(|l| l.eq_ignore_ascii_case(s.trim()) || (s.eq_ignore_ascii_case("warning") && *l == "warn"))
            .ok_or_else(|| format!("level: \"{s}\" is not one of {}", LEVELS.join(", ")))?,
        v => return Err(format!("level: {v} is not one of {}", LEVELS.join(", "))),
    };
    let since_ms = match &params["since"] {
        Value::Null => 0,
        v => v.as_u64().ok_or_else(|| format!("since: {v} is not a time in ms since 1970"))?,
    };
    let max_lines = match &params["max_lines"] {
        Value::Null => cap,
        v => match v.as_u64() {
            Some(n) if n >= 1 => (n as usize).min(cap),
            _ => return Err(format!("max_lines: {v} is not a number of lines from 1")),
        },
    };
    Ok(Ask { service, level, since_ms, max_lines })
}

/// `2026-12-06T22:05:51.123Z` → ms since 1970.
fn parse_time(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[10] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let days = enos_batch::calendar::days_from_civil(n(0..4)? as i64, n(5..7)?, n(8..10)?);
    let secs = days * 86_400 + (n(11..13)? * 3600 + n(14..16)? * 60 + n(17..19)?) as i64;
    let ms = if b[19] == b'.' { n(20..23).unwrap_or(0) } else { 0 };
    u64::try_from(secs * 1000 + ms as i64).ok()
}

/// A services' stderr line, `{time} {service} {LEVEL}: {text}` (enos_runtime's format).
fn parse_line(l: &str) -> Option<LogLine> {
    let (time, rest) = l.split_once(' ')?;
    let (module, rest) = rest.split_once(' ')?;
    let (level, text) = rest.split_once(": ")?;
    let level = level.to_ascii_lowercase();
    if !LEVELS.contains(&level.as_str()) || !module.starts_with("enos-") {
        return None;
    }
    Some(LogLine { time_ms: parse_time(time)?, module: module.into(), level, content: text.into() })
}

fn keeps(a: &Ask, l: &LogLine) -> bool {
    l.time_ms >= a.since_ms
        && LEVELS.iter().position(|x| *x == l.level).is_some_and(|p| p <= a.level)
        && a.service.as_ref().is_none_or(|s| *s == l.module)
}

/// The matching lines of a log file, oldest first (lines not in the format continue the one before).
fn from_file(file: &Path, a: &Ask) -> Result<Vec<LogLine>, String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(file).map_err(|e| format!("the log {} cannot be read: {e}", file.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(MAX_FILE_TAIL)));
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(|e| format!("the log {} cannot be read: {e}", file.display()))?;
    let mut out: Vec<LogLine> = Vec::new();
    let mut last_kept = false;
    for l in String::from_utf8_lossy(&bytes).lines() {
        match parse_line(l) {
            Some(line) => {
                last_kept = keeps(a, &line);
                if last_kept {
                    out.push(line);
                }
            }
            None if last_kept => {
                let prev = out.last_mut().expect("kept");
                prev.content.push('\n');
                prev.content.push_str(l);
            }
            None => {}
        }
    }
    Ok(out)
}

/// The matching lines of the journal (`journalctl`), oldest first.
async fn from_journal(a: &Ask) -> Result<Vec<LogLine>, String> {
    let mut cmd = tokio::process::Command::new("journalctl");
    cmd.args(["--no-pager", "-o", "json", "-n", &a.max_lines.to_string(), "-p", &(3 + a.level).to_string()]);
    match &a.service {
        Some(s) => cmd.args(["-u", &format!("{s}.service")]),
        None => cmd.args(["-u", "enos-*"]),
    };
    if a.since_ms > 0 {
        cmd.arg(format!("--since=@{}", a.since_ms / 1000));
    }
    let out = cmd.output().await.map_err(|e| format!("the journal cannot be read (journalctl: {e})"))?;
    if !out.status.success() {
        return Err(format!("the journal cannot be read: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            let prio = v["PRIORITY"].as_str()?.parse::<usize>().ok()?;
            Some(LogLine {
                time_ms: v["__REALTIME_TIMESTAMP"].as_str()?.parse::<u64>().ok()? / 1000,
                module: v["SYSLOG_IDENTIFIER"].as_str().unwrap_or("?").to_string(),
                level: LEVELS[prio.clamp(3, 7) - 3].into(),
                content: v["MESSAGE"].as_str()?.to_string(),
            })
        })
        .collect())
}

/// The newest `max_lines` that fit in `max_bytes` (each line cut at [`MAX_LINE_BYTES`]), oldest
/// first; and whether some were left out.
fn bounded(mut lines: Vec<LogLine>, max_lines: usize, max_bytes: usize) -> (Vec<LogLine>, bool) {
    let total = lines.len();
    let mut kept = Vec::new();
    let mut bytes = 0;
    while let Some(mut l) = lines.pop() {
        if kept.len() == max_lines {
            break;
        }
        if l.content.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !l.content.is_char_boundary(cut) {
                cut -= 1;
            }
            l.content.truncate(cut);
            l.content.push('…');
        }
        if bytes + l.content.len() > max_bytes {
            break;
        }
        bytes += l.content.len();
        kept.push(l);
    }
    kept.reverse();
    let left_out = kept.len() < total;
    (kept, left_out)
}

pub async fn upload(shared: &Arc<Shared>, request: &str, params: &Value) -> Answer {
    let m = &shared.cfg.monitor;
    let a = match ask(params, m.log_max_lines) {
        Ok(a) => a,
        Err(why) => return Answer::refused(codes::BAD_PARAMS, why),
    };
    let lines = match &m.log_file {
        Some(f) => from_file(f, &a),
        None => from_journal(&a).await,
    };
    let lines = match lines {
        Ok(l) => l,
        Err(why) => return Answer::refused(codes::write_failed(None), why),
    };
    let (lines, truncated) = bounded(lines, a.max_lines, m.log_max_bytes);
    let Some(cli) = shared.mqtt.lock().expect("mqtt").clone() else {
        return Answer::refused(codes::write_failed(None), "the gateway is not connected to the cloud");
    };
    let c = &shared.cfg.cloud;
    let mut messages = 0;
    let mut chunk: Vec<LogLine> = Vec::new();
    let mut chunk_bytes = 0;
    for l in lines.iter().cloned().chain(std::iter::once(LogLine {
        time_ms: 0,
        module: String::new(),
        level: String::new(),
        content: String::new(),
    })) {
        let end = l.module.is_empty();
        if (end || chunk_bytes + l.content.len() > MAX_MESSAGE_BYTES) && !chunk.is_empty() {
            let r = monitor::log_post(&c.product_key, &c.device_key, mqtt::next_id(), request, &chunk);
            if let Err(e) = mqtt::publish_sent(&cli, &r.topic, &r.payload).await {
                return Answer::refused(codes::write_failed(None), format!("the log lines could not be sent: {e}"));
            }
            messages += 1;
            chunk.clear();
            chunk_bytes = 0;
        }
        if !end {
            chunk_bytes += l.content.len();
            chunk.push(l);
        }
    }
    log::info!(
        "the cloud (request {request}) asked for logs: {} lines in {messages} messages{}",
        lines.len(),
        if truncated { ", bounded" } else { "" }
    );
    Answer::ok(json!({ "lines": lines.len(), "messages": messages, "truncated": truncated, "traceId": request }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_filtered_and_bounded() {
        let l = parse_line("2026-12-06T22:05:51.123Z enos-uplink WARN: cloud session down").unwrap();
        assert_eq!((l.module.as_str(), l.level.as_str(), l.content.as_str()), ("enos-uplink", "warn", "cloud session down"));
        assert_eq!(l.time_ms, 1_796_594_751_123);
        assert!(parse_line("garbage").is_none());
        let a = ask(&json!({"service": "enos-uplink", "level": "warn", "max_lines": 5000}), 100).unwrap();
        assert_eq!(a, Ask { service: Some("enos-uplink".into()), level: 1, since_ms: 0, max_lines: 100 });
        assert!(keeps(&a, &l));
        assert!(!keeps(&a, &LogLine { level: "info".into(), ..l.clone() }));
        assert_eq!(ask(&json!({"level": "loud"}), 9).unwrap_err(), "level: \"loud\" is not one of error, warn, info, debug, trace");
        assert!(ask(&json!({"service": "../etc"}), 9).unwrap_err().starts_with("service: \"../etc\" is not one of"));
        let many: Vec<LogLine> = (0..10).map(|i| LogLine { time_ms: i, content: "x".repeat(100), ..l.clone() }).collect();
        let (kept, cut) = bounded(many.clone(), 4, 10_000);
        assert_eq!((kept.len(), kept[0].time_ms, cut), (4, 6, true), "the newest, oldest first");
        let (kept, cut) = bounded(many, 100, 250);
        assert_eq!((kept.len(), cut), (2, true), "bounded in bytes");
    }
}
