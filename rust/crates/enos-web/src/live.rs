//! The live page: the latest polled value of every point of every device in one answer, each
//! with its unit from the configuration and, when it is not good, why in words. The values are
//! the collector's (`LiveValues`, which starts a 60 s watch of each device asked for); nothing
//! is read from a device here.

use crate::http::{ok, ApiError, ApiResult};
use crate::quality;
use crate::state::App;
use enos_batch::Quality;
use enos_bus::DeviceStatus;
use enos_collector_config::CollectorConfig;
use hyper::StatusCode;
use serde_json::{json, Map, Value};

/// `GET /api/live`.
pub async fn all(app: &App) -> ApiResult {
    let cfg = app.bus.collector_config().await?;
    // without the devices' states the values still show, only their last errors are missing
    let states = app.bus.devices().await.unwrap_or_default();
    let now = enos_batch::now_ms();
    let mut answers = Vec::new();
    for d in cfg.devices.iter().filter(|d| d.enabled) {
        // One after the other: each answer comes from the collector's memory (no device is
        // asked), a fraction of a millisecond; `since_ms` = now keeps the history out.
        answers.push((d.id.clone(), app.bus.live_values(&d.id, now).await));
    }
    ok(&join(&cfg, &states, answers, now))
}

/// The collector's answers joined with the configuration (units, the table's point order) and
/// the devices' states (their last error: a live value carries only its quality).
fn join(cfg: &CollectorConfig, states: &[DeviceStatus], answers: Vec<(String, Result<Value, ApiError>)>, now: u64) -> Value {
    let mut points = Vec::new();
    let mut errors = Map::new();
    for (id, answer) in answers {
        let live = match answer {
            Ok(v) => v,
            // removed since the configuration was read: nothing to show
            Err(e) if e.status == StatusCode::NOT_FOUND => continue,
            Err(e) => {
                errors.insert(id, e.message.into());
                continue;
            }
        };
        let Some(dev) = cfg.device(&id) else { continue };
        let status = states.iter().find(|s| s.id == id);
        let last_error = status.and_then(|s| s.last_error.as_deref());
        let got = live["points"].as_array().map(Vec::as_slice).unwrap_or_default();
        for p in dev.proto.points() {
            let Some(v) = got.iter().find(|v| v["point"] == *p.name) else {
                // An offline device reports once and then stays quiet, so a watch started after
                // that has nothing: its points are shown by what the device's state says.
                if let Some(why) = status.and_then(|s| without_value(&s.state)) {
                    points.push(json!({
                        "device": id, "point": p.name, "unit": p.unit, "value": null,
                        "quality": status.is_some_and(|s| s.state == "offline").then_some(Quality::Offline), "ts_ms": null,
                        "doubtful": true, "why": why, "device_error": last_error,
                    }));
                }
                continue;
            };
            let q: Quality = serde_json::from_value(v["quality"].clone()).unwrap_or(Quality::DecodeError);
            let mut row = json!({
                "device": id,
                "point": p.name,
                "unit": p.unit,
                "value": v["value"],
                "quality": q,
                "ts_ms": v["ts_ms"],
                "doubtful": q != Quality::Good,
                "why": (q != Quality::Good).then(|| quality::words(q)),
                "device_error": last_error.filter(|_| q != Quality::Good),
            });
            // The device's raw quality flags in words (`enos_batch::Flags::names`, e.g. "not topical"),
            // when the reading carries any: passed on as they came.
            if let Some(flags) = flags_of(&v["flags"]) {
                row["flags"] = flags.into();
            }
            points.push(row);
        }
    }
    json!({ "time_ms": now, "points": points, "errors": errors })
}

/// Why a device in `state` has no values, when that state explains it; `None` for a device that
/// is answering (its values are on their way: the watch started since its last poll).
fn without_value(state: &str) -> Option<&'static str> {
    match state {
        "offline" => Some(quality::words(Quality::Offline)),
        "failed" => Some("the device's connection stopped and is being started again"),
        "connecting" => Some("not connected to the device yet"),
        _ => None,
    }
}

/// A reading's raw quality flags, as strings; none when absent or empty.
fn flags_of(v: &Value) -> Option<Vec<String>> {
    let list: Vec<String> = match v {
        Value::Array(a) => a.iter().map(|f| f.as_str().map(str::to_string).unwrap_or_else(|| f.to_string())).collect(),
        _ => Vec::new(),
    };
    (!list.is_empty()).then_some(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CollectorConfig {
        serde_json::from_value(json!({ "device": [{ "id": "inv01", "protocol": "modbus-tcp", "address": "127.0.0.1:502", "point": [
            { "name": "voltage", "area": "holding", "address": 4, "type": "u16", "unit": "V" },
            { "name": "broken", "area": "holding", "address": 20, "type": "u16" }] }] }))
        .unwrap()
    }

    fn status(last_error: Option<&str>) -> DeviceStatus {
        status_in("online", last_error)
    }

    fn status_in(state: &str, last_error: Option<&str>) -> DeviceStatus {
        serde_json::from_value(json!({ "id": "inv01", "protocol": "modbus-tcp", "state": state, "last_ok_ms": null,
            "last_error": last_error, "polls_ok": 1, "polls_failed": 0, "points": 2 }))
        .unwrap()
    }

    #[test]
    fn values_carry_unit_and_why_in_words_in_the_tables_order() {
        let live = json!({ "device": "inv01", "points": [
            { "point": "broken", "value": null, "quality": "device-exception", "ts_ms": 5, "history": [] },
            { "point": "voltage", "value": 231.4, "quality": "good", "ts_ms": 5, "history": [[5, 231.4]] }] });
        let out = join(
            &config(),
            &[status(Some("reading 1 holding register from 20: illegal data address"))],
            vec![("inv01".into(), Ok(live))],
            9,
        );
        let p = out["points"].as_array().unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!((p[0]["point"].as_str(), p[0]["unit"].as_str(), p[0]["doubtful"].as_bool()), (Some("voltage"), Some("V"), Some(false)));
        assert_eq!(p[0]["why"], Value::Null);
        assert_eq!(p[0]["device_error"], Value::Null, "a good value carries no device error");
        assert!(p[0].get("history").is_none() && p[0].get("flags").is_none(), "{}", p[0]);
        assert_eq!(p[1]["why"], "the device answered with an error");
        assert_eq!(p[1]["device_error"], "reading 1 holding register from 20: illegal data address");
    }

    #[test]
    fn an_offline_device_that_went_quiet_before_the_watch_shows_its_points_as_offline() {
        let live = json!({ "device": "inv01", "points": [] });
        let err = "reading 1 holding registers from 0 (function 3): link: cannot connect: Connection refused";
        let out = join(&config(), &[status_in("offline", Some(err))], vec![("inv01".into(), Ok(live.clone()))], 9);
        let p = out["points"].as_array().unwrap();
        assert_eq!(p.len(), 2, "{out}");
        assert_eq!(
            (p[0]["point"].as_str(), p[0]["quality"].as_str(), p[0]["doubtful"].as_bool()),
            (Some("voltage"), Some("offline"), Some(true))
        );
        assert_eq!(p[0]["why"], "the device is offline");
        assert_eq!(p[0]["device_error"], err);
        // an answering device whose next poll has not come yet: nothing to show yet
        let out = join(&config(), &[status(None)], vec![("inv01".into(), Ok(live))], 9);
        assert_eq!(out["points"], json!([]));
    }

    #[test]
    fn raw_flags_are_passed_on_only_when_present() {
        let live = json!({ "points": [
            { "point": "voltage", "value": 1, "quality": "doubtful", "ts_ms": 5, "flags": ["invalid", "not topical"] },
            { "point": "broken", "value": 1, "quality": "good", "ts_ms": 5, "flags": [] }] });
        let out = join(&config(), &[], vec![("inv01".into(), Ok(live))], 9);
        assert_eq!(out["points"][0]["flags"], json!(["invalid", "not topical"]));
        assert_eq!(out["points"][0]["why"], "the device flags the value as doubtful");
        assert!(out["points"][1].get("flags").is_none(), "{}", out["points"][1]);
    }

    #[test]
    fn a_device_that_does_not_answer_is_named_and_a_removed_one_left_out() {
        let out = join(
            &config(),
            &[],
            vec![
                ("inv01".into(), Err(ApiError::new(StatusCode::GATEWAY_TIMEOUT, "the collector service did not answer within 5 s"))),
                ("gone".into(), Err(ApiError::new(StatusCode::NOT_FOUND, "no device \"gone\""))),
            ],
            9,
        );
        assert_eq!(out["errors"], json!({ "inv01": "the collector service did not answer within 5 s" }));
        assert_eq!(out["points"], json!([]));
    }
}
