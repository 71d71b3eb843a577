//! The communication test of a DNP3 device: an integrity or event poll of its outstation on
//! demand, every object of the response said in words (type, value, flags, time, the configured
//! point) with the response's IIN. The values also go on to the cloud like any poll's.

use super::map;
use enos_collector_config::dnp3::Dnp3Device;
use enos_dnp3::objects::flags as f;
use enos_dnp3::{DoubleBit, Master, Measurement, PointKind, PollError, Value};
use enos_model::comm_test::{CommAnswer, Dnp3Object, Dnp3Poll, Dnp3PollAnswer, Dnp3PollKind};
use std::sync::Arc;
use std::time::Instant;

/// The configured points of one device by (kind, index), for naming what the poll read.
pub type Names = Vec<(PointKind, u32, String)>;

pub fn names(cfg: &Dnp3Device) -> Names {
    cfg.points.iter().map(|p| (map::kind(p.at.kind), u32::from(p.at.index), p.meta.name.to_string())).collect()
}

/// Runs the poll and says what came back; a failure is an answer with `ok: false`.
pub async fn poll(master: Arc<Master>, outstation: u16, req: Dnp3Poll, names: Names) -> CommAnswer {
    let started = Instant::now();
    let integrity = req.poll == Dnp3PollKind::Integrity;
    let what = if integrity { "integrity poll" } else { "event poll" };
    let mut a = Dnp3PollAnswer { outstation, ..Default::default() };
    match master.poll(outstation, integrity).await {
        Ok(r) => {
            a.objects = r.values.iter().map(|m| object(m, &names)).collect();
            a.iin = iin_words(r.iin);
            let n = a.objects.len();
            match r.iin.refusal() {
                Some(why) => {
                    a.failure = Some("refused".into());
                    a.message = format!("the outstation refused the {what}: {why}");
                }
                None => {
                    a.ok = true;
                    a.message = format!("{what} of outstation {outstation}: {n} object{}", if n == 1 { "" } else { "s" });
                }
            }
        }
        Err(e) => {
            a.failure = Some(
                match e {
                    PollError::Timeout(_) => "timeout",
                    PollError::LinkDown(_) | PollError::UnknownOutstation(_) => "offline",
                }
                .into(),
            );
            a.message = e.to_string();
        }
    }
    a.took_ms = started.elapsed().as_millis() as u64;
    CommAnswer::Dnp3Poll(a)
}

fn iin_words(iin: enos_dnp3::Iin) -> Vec<String> {
    match iin.0 {
        0 => Vec::new(),
        _ => iin.to_string().split(", ").map(String::from).collect(),
    }
}

fn object(m: &Measurement, names: &Names) -> Dnp3Object {
    let (type_name, type_words) = type_words(m.kind);
    Dnp3Object {
        type_name: type_name.into(),
        type_words: type_words.into(),
        index: m.index,
        event: m.event,
        value: value(m.value),
        flags: flag_words(m.kind, m.flags),
        time_ms: m.time,
        point: names.iter().find(|(k, i, _)| *k == m.kind && *i == m.index).map(|(_, _, n)| n.clone()),
    }
}

/// The configuration's name of the type, and the type in words.
fn type_words(k: PointKind) -> (&'static str, &'static str) {
    match k {
        PointKind::BinaryInput => ("BI", "binary input"),
        PointKind::DoubleBitInput => ("DBI", "double-bit binary input"),
        PointKind::BinaryOutput => ("BO", "binary output status"),
        PointKind::Counter => ("CNT", "counter"),
        PointKind::FrozenCounter => ("FCNT", "frozen counter"),
        PointKind::AnalogInput => ("AI", "analog input"),
        PointKind::AnalogOutput => ("AO", "analog output status"),
    }
}

fn value(v: Value) -> serde_json::Value {
    match v {
        Value::Bool(b) => b.into(),
        Value::DoubleBit(d) => match d {
            DoubleBit::Intermediate => "intermediate",
            DoubleBit::Off => "off",
            DoubleBit::On => "on",
            DoubleBit::Indeterminate => "indeterminate",
        }
        .into(),
        Value::Int(x) => x.into(),
        // a single-precision value as the decimal it was meant to be
        Value::Float(x) => {
            let s = x as f32;
            let x = if f64::from(s) == x { s.to_string().parse().unwrap_or(x) } else { x };
            x.into()
        }
    }
}

/// The flag octet in words (the state bits of binary points are the value, not flags); empty
/// when the point is just online.
pub fn flag_words(k: PointKind, flags: u8) -> Vec<String> {
    let state: u8 = match k {
        PointKind::BinaryInput | PointKind::BinaryOutput => 0x80,
        PointKind::DoubleBitInput => 0xC0,
        _ => 0,
    };
    let b = flags & !state;
    let binary = matches!(k, PointKind::BinaryInput | PointKind::BinaryOutput | PointKind::DoubleBitInput);
    let analog = matches!(k, PointKind::AnalogInput | PointKind::AnalogOutput);
    let counter = matches!(k, PointKind::Counter | PointKind::FrozenCounter);
    [
        (b & f::ONLINE == 0, "offline"),
        (b & f::RESTART != 0, "restart"),
        (b & f::COMM_LOST != 0, "communication lost"),
        (b & f::REMOTE_FORCED != 0, "remote forced"),
        (b & f::LOCAL_FORCED != 0, "local forced"),
        (binary && b & f::BIT5 != 0, "chatter filter"),
        (analog && b & f::BIT5 != 0, "over range"),
        (counter && b & f::BIT5 != 0, "rollover"),
        (analog && b & f::BIT6 != 0, "reference error"),
        (counter && b & f::BIT6 != 0, "discontinuity"),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, w)| w.to_string())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_values_in_words() {
        assert!(flag_words(PointKind::AnalogInput, f::ONLINE).is_empty());
        assert_eq!(flag_words(PointKind::AnalogInput, f::ONLINE | f::BIT5), ["over range"]);
        assert_eq!(flag_words(PointKind::BinaryInput, 0x80 | f::ONLINE | f::LOCAL_FORCED), ["local forced"], "the state bit is the value");
        assert_eq!(flag_words(PointKind::Counter, f::RESTART | f::BIT5), ["offline", "restart", "rollover"]);
        assert_eq!(value(Value::Float(231.4f32 as f64)), serde_json::json!(231.4));
        assert_eq!(value(Value::DoubleBit(DoubleBit::On)), serde_json::json!("on"));
        assert_eq!(iin_words(enos_dnp3::Iin(enos_dnp3::Iin::DEVICE_RESTART | enos_dnp3::Iin::NEED_TIME)), ["need time", "device restart"]);
    }
}
