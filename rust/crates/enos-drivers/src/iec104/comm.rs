//! The communication test of an IEC 104 device: a general interrogation on demand. The objects
//! the station sends for it (causes 20-36) are collected until it terminates the interrogation
//! (ACTTERM), each said in words: type, value, quality flags, time tag, and the configured
//! point at that address.

use enos_iec104::{Cot, DoublePoint, Quality, TimeTag, TypeId, Value};
use enos_model::comm_test::{CommAnswer, InfoObject, Interrogation, InterrogationAnswer};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long the station may take from the confirmation to the termination of the interrogation.
pub const LIMIT: Duration = Duration::from_secs(10);

pub type Reply = oneshot::Sender<Result<CommAnswer, String>>;

/// An interrogation asked for by a test, waiting for its objects and termination.
pub struct Pending {
    pub id: u64,
    pub ca: u16,
    /// Its interrogation was sent (`Event::InterrogationStarted`): what follows of cause 20 and
    /// the next termination of its common address are its answer, not a scheduled one's.
    pub active: bool,
    pub req: Interrogation,
    pub objects: Vec<InfoObject>,
    pub reply: Reply,
    pub started: Instant,
}

impl Pending {
    /// Takes one object if it answers this interrogation.
    pub fn offer(&mut self, ca: u16, cot: Cot, obj: impl FnOnce() -> InfoObject, ioa: u32) {
        // 20: station interrogation, 21-36: group interrogation
        if self.active && ca == self.ca && (20..=36).contains(&cot.0) && self.req.wants(ioa) {
            self.objects.push(obj());
        }
    }

    /// Answers the test: complete (`failure` none), or why not.
    pub fn finish(self, failure: Option<(&str, String)>) {
        let n = self.objects.len();
        let (ok, failure, message) = match failure {
            None => (true, None, format!("{n} object{} from common address {}", if n == 1 { "" } else { "s" }, self.ca)),
            Some((kind, why)) => (false, Some(kind.to_string()), why),
        };
        let mut objects = self.objects;
        objects.sort_by_key(|o| o.ioa);
        let a = InterrogationAnswer { ok, ca: self.ca, objects, failure, message, took_ms: self.started.elapsed().as_millis() as u64 };
        let _ = self.reply.send(Ok(CommAnswer::Iec104Interrogation(a)));
    }
}

/// An answer without interrogating (the station is not connected, a bad request).
pub fn refuse(reply: Reply, ca: u16, failure: &str, message: String) {
    let a = InterrogationAnswer { ca, failure: Some(failure.into()), message, ..Default::default() };
    let _ = reply.send(Ok(CommAnswer::Iec104Interrogation(a)));
}

/// The type in words, e.g. "measured value, short float, with time tag".
pub fn type_words(t: TypeId) -> String {
    use TypeId as T;
    let (what, timed) = match t {
        T::M_SP_NA_1 | T::M_SP_TB_1 => ("single point", t == T::M_SP_TB_1),
        T::M_DP_NA_1 | T::M_DP_TB_1 => ("double point", t == T::M_DP_TB_1),
        T::M_ST_NA_1 | T::M_ST_TB_1 => ("step position", t == T::M_ST_TB_1),
        T::M_BO_NA_1 | T::M_BO_TB_1 => ("bitstring of 32 bits", t == T::M_BO_TB_1),
        T::M_ME_NA_1 | T::M_ME_TD_1 => ("measured value, normalised", t == T::M_ME_TD_1),
        T::M_ME_NB_1 | T::M_ME_TE_1 => ("measured value, scaled", t == T::M_ME_TE_1),
        T::M_ME_NC_1 | T::M_ME_TF_1 => ("measured value, short float", t == T::M_ME_TF_1),
        T::M_IT_NA_1 | T::M_IT_TB_1 => ("integrated total", t == T::M_IT_TB_1),
        T::M_EI_NA_1 => ("end of initialisation", false),
        _ => ("command or system information", false),
    };
    format!("{what}{}", if timed { ", with time tag" } else { "" })
}

/// The value as JSON and in words.
pub fn value_words(v: Value) -> (serde_json::Value, String) {
    use serde_json::json;
    match v {
        Value::Single(b) => (json!(b), if b { "on" } else { "off" }.into()),
        Value::Double(d) => {
            let w = match d {
                DoublePoint::Intermediate => "intermediate",
                DoublePoint::Off => "off",
                DoublePoint::On => "on",
                DoublePoint::Indeterminate => "indeterminate",
            };
            (json!(w), w.into())
        }
        Value::Step { position, transient } => (json!(position), format!("position {position}{}", if transient { ", moving" } else { "" })),
        Value::Bitstring(b) => (json!(b), format!("{b:#010x}")),
        Value::Analog(x) => {
            // the shortest decimal of a short float, as the driver forwards it
            let f = x as f32;
            let x = if f64::from(f) == x { f.to_string().parse().unwrap_or(x) } else { x };
            (json!(x), x.to_string())
        }
        Value::Counter { value, sequence } => (json!(value), format!("{value} (sequence {sequence})")),
        Value::EndOfInit(c) => (json!(c), format!("cause of initialisation {c}")),
    }
}

/// The quality descriptor in words; empty when good.
pub fn flag_words(q: Quality) -> Vec<String> {
    if q.is_good() {
        return Vec::new();
    }
    q.to_string().split(", ").map(String::from).collect()
}

pub fn object(ioa: u32, type_id: TypeId, value: Value, quality: Quality, time: Option<TimeTag>, point: Option<String>) -> InfoObject {
    let (value, text) = value_words(value);
    InfoObject {
        ioa,
        type_name: type_id.name().into(),
        type_words: type_words(type_id),
        value,
        text,
        flags: flag_words(quality),
        time_ms: time.map(|t| t.unix_ms),
        time_invalid: time.is_some_and(|t| t.invalid),
        point,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_values_and_flags_in_words() {
        assert_eq!(type_words(TypeId::M_ME_NC_1), "measured value, short float");
        assert_eq!(type_words(TypeId::M_SP_TB_1), "single point, with time tag");
        assert_eq!(value_words(Value::Double(DoublePoint::On)).1, "on");
        assert_eq!(value_words(Value::Analog(231.5f32 as f64)).0, serde_json::json!(231.5));
        assert_eq!(value_words(Value::Analog(231.4f32 as f64)).0, serde_json::json!(231.4), "the float's shortest decimal");
        assert_eq!(flag_words(Quality(Quality::IV | Quality::NT)), ["invalid", "not topical"]);
        assert!(flag_words(Quality(0)).is_empty());
    }
}
