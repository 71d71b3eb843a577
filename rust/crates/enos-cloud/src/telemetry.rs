//! Telemetry payloads: cached batches → `measurepoint/post/batch` or `resume/batch` messages
//! under the size limit.

use enos_batch::batch::DecodedBatch;
use enos_batch::{Flags, Quality, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// `thing.measurepoint.post.batch`: current values, alerts and stream processing.
    Live,
    /// `thing.measurepoint.resume.batch`: back-fill of what waited in the cache.
    Resume,
}

impl Stream {
    pub fn topic_suffix(self) -> &'static str {
        match self {
            Stream::Live => crate::topics::POST_BATCH,
            Stream::Resume => crate::topics::RESUME_BATCH,
        }
    }
    pub fn method(self) -> &'static str {
        match self {
            Stream::Live => "thing.measurepoint.post.batch",
            Stream::Resume => "thing.measurepoint.resume.batch",
        }
    }
}

/// EnOS keys for a collector device id; `None` for the gateway itself.
pub trait KeyMap {
    fn keys(&self, device: &str) -> Option<Option<(&str, &str)>>;
}

impl KeyMap for HashMap<String, Option<(String, String)>> {
    fn keys(&self, device: &str) -> Option<Option<(&str, &str)>> {
        self.get(device).map(|o| o.as_ref().map(|(p, d)| (p.as_str(), d.as_str())))
    }
}

/// Counts of what went into messages and what could not.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Packed {
    /// Complete JSON payloads, each under the size limit, with the number of points in each.
    pub messages: Vec<(Vec<u8>, u64)>,
    /// Points of devices with no EnOS identity configured.
    pub unroutable: u64,
}

fn json_value(v: &Value, q: Quality, flags: Flags, out: &mut String) {
    let plain = |v: &Value, out: &mut String| match v {
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Float(f) if f.is_finite() => {
            let _ = write!(out, "{f}");
        }
        Value::Float(_) | Value::Null => out.push_str("null"),
        Value::Str(s) => out.push_str(&serde_json::to_string(s).expect("json string")),
    };
    // A NaN or infinity has no JSON number; sent plain it would be `null` looking good. Drivers
    // report them as decode errors; this keeps a driver that does not from lying to the cloud.
    let q = match v {
        Value::Float(f) if q.is_good() && !f.is_finite() => Quality::DecodeError,
        _ => q,
    };
    if q.is_good() {
        plain(v, out)
    } else {
        // The quality form of EnOS; the integer is our Quality code with the device's raw flags
        // above it (docs/cloud-protocol.md).
        out.push_str("{\"value\":");
        plain(v, out);
        let _ = write!(out, ",\"quality\":{}}}", q as u32 | (flags.0 as u32) << 8);
    }
}

/// One row of a telemetry message: a device's points at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub product_key: String,
    pub device_key: String,
    pub time: u64,
    pub points: serde_json::Map<String, serde_json::Value>,
}

/// The rows of a telemetry message this gateway sent (for showing what the cloud acknowledged);
/// rows of the gateway itself (no keys) are left out.
pub fn rows(payload: &[u8]) -> Vec<Row> {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(payload) else { return Vec::new() };
    let Some(params) = doc["params"].as_array() else { return Vec::new() };
    params
        .iter()
        .filter_map(|p| {
            Some(Row {
                product_key: p["productKey"].as_str()?.to_string(),
                device_key: p["deviceKey"].as_str()?.to_string(),
                time: p["time"].as_u64().unwrap_or(0),
                points: p["measurepoints"].as_object().cloned().unwrap_or_default(),
            })
        })
        .collect()
}

/// A message's beginning up to its rows. Both paths' heads have the same length for an id
/// ("post" + "false" twice, "resume" + "true" twice), so [`restream`] keeps a message's size.
fn head(id: u64, stream: Stream) -> String {
    format!(
        "{{\"id\":\"{id}\",\"version\":\"1.0\",\"method\":\"{}\",\"allowOfflineSubDevice\":{},\"skipInvalidMeasurepoints\":{},\"params\":[",
        stream.method(),
        stream == Stream::Resume,
        stream == Stream::Resume
    )
}

/// A message made by [`pack`] for the other path, same id and rows (a live message sent again
/// after newer ones went live goes through `resume/batch`). `None` if it is not one of ours.
pub fn restream(payload: &[u8], stream: Stream) -> Option<Vec<u8>> {
    const ROWS: &[u8] = b"\"params\":[";
    let at = payload.windows(ROWS.len()).position(|w| w == ROWS)? + ROWS.len();
    let old = std::str::from_utf8(&payload[..at]).ok()?;
    let id: u64 = old.strip_prefix("{\"id\":\"")?.split('"').next()?.parse().ok()?;
    [Stream::Live, Stream::Resume].into_iter().find(|s| head(id, *s) == old)?;
    let mut out = head(id, stream).into_bytes();
    out.extend_from_slice(&payload[at..]);
    Some(out)
}

/// (batch, series, sample) indices of one sample.
type SampleRef = (usize, usize, usize);

/// Builds the messages for one or more decoded batches, regrouped per (device, timestamp) as
/// EnOS wants them, each message under `max_bytes`.
pub fn pack(batches: &[DecodedBatch], keys: &impl KeyMap, stream: Stream, ids: &mut impl FnMut() -> u64, max_bytes: usize) -> Packed {
    pack_where(batches, keys, stream, ids, max_bytes, |_, _, _| true)
}

/// As [`pack`], with only the samples `keep(device, point, acquisition ms)` accepts; the others
/// are left out and counted nowhere (the caller sends them another way).
pub fn pack_where(
    batches: &[DecodedBatch],
    keys: &impl KeyMap,
    stream: Stream,
    ids: &mut impl FnMut() -> u64,
    max_bytes: usize,
    mut keep: impl FnMut(&str, &str, u64) -> bool,
) -> Packed {
    let mut packed = Packed::default();
    // (device name, ts) → list of (batch idx, series idx, sample idx)
    let mut rows: BTreeMap<(u64, &str), Vec<SampleRef>> = BTreeMap::new();
    for (bi, b) in batches.iter().enumerate() {
        for (si, s) in b.series.iter().enumerate() {
            let (dev, point) = (b.name(s.device), b.name(s.point));
            let routable = keys.keys(dev).is_some();
            for (i, &t) in s.ts.iter().enumerate() {
                if !keep(dev, point, t) {
                    continue;
                }
                if routable {
                    rows.entry((t, dev)).or_default().push((bi, si, i));
                } else {
                    packed.unroutable += 1;
                }
            }
        }
    }
    let head = |id: u64| head(id, stream);
    let mut cur = String::new();
    let mut cur_points = 0u64;
    let mut entry = String::new();
    for ((ts, dev), samples) in rows {
        entry.clear();
        entry.push('{');
        if let Some(Some((pk, dk))) = keys.keys(dev) {
            let _ = write!(
                entry,
                "\"productKey\":{},\"deviceKey\":{},",
                serde_json::to_string(pk).expect("s"),
                serde_json::to_string(dk).expect("s")
            );
        }
        entry.push_str("\"measurepoints\":{");
        for (n, &(bi, si, i)) in samples.iter().enumerate() {
            let b = &batches[bi];
            let s = &b.series[si];
            if n > 0 {
                entry.push(',');
            }
            entry.push_str(&serde_json::to_string(b.name(s.point)).expect("s"));
            entry.push(':');
            json_value(&s.values[i], s.quality[i], s.flags.get(i).copied().unwrap_or_default(), &mut entry);
        }
        let _ = write!(entry, "}},\"time\":{ts}}}");
        // the comma before the row and the closing "]}" after it
        if !cur.is_empty() && cur.len() + 1 + entry.len() + 2 > max_bytes {
            cur.push_str("]}");
            packed.messages.push((std::mem::take(&mut cur).into_bytes(), cur_points));
            cur_points = 0;
        }
        if cur.is_empty() {
            cur = head(ids());
        } else {
            cur.push(',');
        }
        cur.push_str(&entry);
        cur_points += samples.len() as u64;
    }
    if !cur.is_empty() {
        cur.push_str("]}");
        packed.messages.push((cur.into_bytes(), cur_points));
    }
    packed
}

#[cfg(test)]
mod tests {
    use super::*;
    use enos_batch::BatchBuilder;

    #[test]
    fn a_doubtful_value_carries_its_raw_flags_in_the_quality_code() {
        let mut b = BatchBuilder::new();
        b.push_flagged("rtu", "P", 1000, Value::Float(1.5), Quality::Doubtful, Flags::NOT_TOPICAL | Flags::SUBSTITUTED);
        b.push_flagged("rtu", "E", 1000, Value::UInt(7), Quality::Good, Flags::CARRY);
        b.push_flagged("rtu", "S", 1000, Value::Bool(true), Quality::Invalid, Flags::INVALID);
        let dec = DecodedBatch::decode(&b.finish()).unwrap();
        let keys: HashMap<String, Option<(String, String)>> = HashMap::from([("rtu".into(), Some(("pk".into(), "rtu".into())))]);
        let p = pack(&[dec], &keys, Stream::Live, &mut || 1, 8192);
        let v: serde_json::Value = serde_json::from_slice(&p.messages[0].0).unwrap();
        let mp = &v["params"][0]["measurepoints"];
        assert_eq!(mp["P"], serde_json::json!({ "value": 1.5, "quality": 6 + (6 << 8) }), "{v}");
        assert_eq!(mp["E"], 7, "a good value goes plain, its flags left out");
        assert_eq!(mp["S"], serde_json::json!({ "value": true, "quality": 5 + (1 << 8) }));
    }

    #[test]
    fn a_live_message_sent_again_through_resume_keeps_its_id_rows_and_size() {
        let mut b = BatchBuilder::new();
        for t in 0..50u64 {
            b.push("inv01", "P", 1_700_000_000_000 + t * 1000, Value::Float(t as f64), Quality::Good);
        }
        let dec = DecodedBatch::decode(&b.finish()).unwrap();
        let keys: HashMap<String, Option<(String, String)>> = HashMap::from([("inv01".into(), Some(("pk".into(), "inv01".into())))]);
        let pack_as = |s| pack(std::slice::from_ref(&dec), &keys, s, &mut || 987_654_321_012, 1024);
        let (live, resume) = (pack_as(Stream::Live), pack_as(Stream::Resume));
        assert!(live.messages.len() > 1, "split, so the size limit is exercised");
        for ((l, _), (r, _)) in live.messages.iter().zip(&resume.messages) {
            let again = restream(l, Stream::Resume).expect("one of ours");
            assert_eq!(again, *r, "the same as packing it for resume in the first place");
            assert_eq!(again.len(), l.len(), "within the limit it was packed for");
            assert_eq!(restream(&again, Stream::Live).as_deref(), Some(&l[..]), "and back");
        }
        assert_eq!(restream(b"{\"id\":\"1\",\"method\":\"x\",\"params\":[]}", Stream::Resume), None, "not ours: not touched");
        assert_eq!(restream(b"garbage", Stream::Resume), None);
    }

    #[test]
    fn rows_per_device_and_time_split_under_the_limit() {
        let mut b = BatchBuilder::new();
        for t in 0..100u64 {
            for p in 0..20 {
                b.push("inv01", &format!("P{p}"), 1_700_000_000_000 + t * 1000, Value::Float(p as f64 + 0.5), Quality::Good);
            }
            b.push("gw", "cpu", 1_700_000_000_000 + t * 1000, Value::Int(7), Quality::Good);
            b.push("ghost", "x", 1_700_000_000_000 + t * 1000, Value::Int(1), Quality::Good);
        }
        b.push("inv01", "bad", 1_700_000_000_000, Value::Null, Quality::CommFailure);
        b.push("inv01", "nan", 1_700_000_000_000, Value::Float(f64::NAN), Quality::Good);
        let dec = DecodedBatch::decode(&b.finish()).unwrap();
        let mut keys: HashMap<String, Option<(String, String)>> = HashMap::new();
        keys.insert("inv01".into(), Some(("pkS".into(), "inv01".into())));
        keys.insert("gw".into(), None);
        let mut next = 0;
        let p = pack(
            &[dec],
            &keys,
            Stream::Resume,
            &mut || {
                next += 1;
                next
            },
            8192,
        );
        assert_eq!(p.unroutable, 100);
        assert!(p.messages.len() > 2);
        let mut points = 0;
        let mut first = true;
        for (m, n) in &p.messages {
            assert!(m.len() <= 8192);
            let v: serde_json::Value = serde_json::from_slice(m).unwrap();
            assert_eq!(v["method"], "thing.measurepoint.resume.batch");
            assert_eq!(v["skipInvalidMeasurepoints"], true);
            let mut counted = 0;
            for e in v["params"].as_array().unwrap() {
                counted += e["measurepoints"].as_object().unwrap().len() as u64;
                if first {
                    // oldest first; the gateway's own entry has no keys
                    assert_eq!(e["time"], 1_700_000_000_000u64);
                    first = false;
                }
                if e.get("deviceKey").is_none() {
                    assert_eq!(e["measurepoints"]["cpu"], 7);
                }
            }
            assert_eq!(counted, *n);
            points += n;
        }
        assert_eq!(points, 100 * 21 + 2);
        let all: String = p.messages.iter().map(|(m, _)| String::from_utf8(m.clone()).unwrap()).collect();
        assert!(all.contains("\"bad\":{\"value\":null,\"quality\":2}"));
        assert!(all.contains("\"P3\":3.5"));
        // a NaN that a driver let through as good still goes in the quality form, as a decode error
        assert!(all.contains("\"nan\":{\"value\":null,\"quality\":3}"), "{all}");
    }

    #[test]
    fn pack_where_leaves_out_what_is_not_kept() {
        let mut b = BatchBuilder::new();
        for t in 0..10u64 {
            b.push("gw", "cpu", t * 1000, Value::Int(t as i64), Quality::Good);
            b.push("gw", "mem", t * 1000, Value::Int(1), Quality::Good);
        }
        let dec = DecodedBatch::decode(&b.finish()).unwrap();
        let keys: HashMap<String, Option<(String, String)>> = HashMap::from([("gw".to_string(), None)]);
        let p = pack_where(&[dec], &keys, Stream::Live, &mut || 1, 8192, |_, point, ts| point == "cpu" && ts >= 5000);
        assert_eq!(p.messages.len(), 1);
        assert_eq!(p.messages[0].1, 5);
        let v: serde_json::Value = serde_json::from_slice(&p.messages[0].0).unwrap();
        let times: Vec<u64> = v["params"].as_array().unwrap().iter().map(|e| e["time"].as_u64().unwrap()).collect();
        assert_eq!(times, vec![5000, 6000, 7000, 8000, 9000]);
        assert!(!String::from_utf8_lossy(&p.messages[0].0).contains("mem"));
    }
}
