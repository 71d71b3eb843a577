//! The communication test of a DL/T 645 meter: chosen data identifiers read one by one, each
//! with the frames as they went on the wire and the value decoded with its unit. After a read
//! without an answer the rest is not asked (the line is shared with other meters).

use super::MeterCfg;
use enos_dlt645 as dlt;
use enos_model::comm_test::{FramePair, IdentifierAnswer, IdentifierRead, IdentifierResult};
use std::time::Instant;

/// Reads `req`'s identifiers from meter `m`; `offline`: the meter's state says it does not answer.
pub async fn read(line: &dlt::Line, m: &MeterCfg, offline: bool, req: &IdentifierRead) -> IdentifierAnswer {
    let started = Instant::now();
    let mut ans = IdentifierAnswer { meter: m.cfg.meter.clone(), ..Default::default() };
    let ids = match req.check() {
        Ok(ids) => ids,
        Err(e) => {
            ans.failure = Some("request".into());
            ans.message = e.to_string();
            return ans;
        }
    };
    let mut silent: Option<String> = None;
    for di in ids {
        let mut r = IdentifierResult { di: di.clone(), ..Default::default() };
        let Ok(id) = dlt::Identifier::parse(&di) else { continue }; // checked above
        let known = dlt::ident::known(id);
        if let Some(k) = known {
            (r.name, r.unit) = (k.name.into(), k.unit.into());
        }
        // the meter's own point for this identifier decodes it as configured, else the standard's format
        let configured = m.cfg.points.iter().find(|p| p.at.identifier() == Some(id));
        if let (None, Some(p)) = (known, configured) {
            (r.name, r.unit) = (format!("point \"{}\"", p.meta.name), p.meta.unit.to_string());
        }
        let format = configured.and_then(|p| p.at.point().ok()).map(|pt| pt.format).or(known.map(|k| k.format));
        if let Some(why) = &silent {
            r.failure = Some("timeout".into());
            r.text = format!("not asked: {why}");
            ans.reads.push(r);
            continue;
        }
        let (got, frames) = line.read_traced(&m.meter, id, m.timing).await;
        r.frames = frames
            .into_iter()
            .map(|x| FramePair {
                request: dlt::frame::hex(&x.request),
                response: x.response.map(|b| dlt::frame::hex(&b)).unwrap_or_default(),
            })
            .collect();
        match got {
            Ok(data) => match format.map(|f| f.decode(&data)) {
                Some(Ok(reading)) => {
                    r.ok = true;
                    r.value = match reading {
                        dlt::Reading::Number(v) => serde_json::json!(v),
                        other => serde_json::json!(other.to_string()),
                    };
                    r.text = format!("{reading}{}", if r.unit.is_empty() { String::new() } else { format!(" {}", r.unit) });
                }
                Some(Err(why)) => {
                    r.failure = Some("decode".into());
                    r.text = format!("the data {} cannot be read: {why}", dlt::frame::hex(&data));
                }
                None => {
                    r.ok = true;
                    r.text = format!(
                        "data {} (not in the table of known identifiers and no point of this meter reads it: no format to decode it with)",
                        dlt::frame::hex(&data)
                    );
                }
            },
            Err(e) => {
                r.failure = Some(
                    match e {
                        dlt::Error::Exception { .. } => "exception",
                        dlt::Error::Decode { .. } => "decode",
                        dlt::Error::Timeout { .. } => "timeout",
                        dlt::Error::Link { .. } => "link",
                    }
                    .into(),
                );
                r.text = e.to_string();
                if matches!(e, dlt::Error::Timeout { .. } | dlt::Error::Link { .. }) {
                    silent = Some("the meter did not answer the read before".into());
                }
            }
        }
        ans.reads.push(r);
    }
    ans.took_ms = started.elapsed().as_millis() as u64;
    let good = ans.reads.iter().filter(|r| r.ok).count();
    let answered = ans.reads.iter().any(|r| r.frames.iter().any(|f| !f.response.is_empty()));
    ans.ok = good == ans.reads.len();
    ans.message = if answered {
        format!("{good} of {} identifiers read", ans.reads.len())
    } else {
        let why = ans.reads.first().map(|r| r.text.clone()).unwrap_or_default();
        ans.failure = Some("offline".into());
        match offline {
            true => format!("the meter is offline, and did not answer now either: {why}"),
            false => format!("the meter did not answer: {why}"),
        }
    };
    ans
}
