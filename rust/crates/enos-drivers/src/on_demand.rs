//! What the drivers of spontaneous protocols (IEC 104, DNP3, OPC UA) share for the engine's
//! on-demand requests. Their values arrive when the device sends them, so a read answers the
//! latest value of each point, kept here as it is forwarded; a write first finds its point and
//! the point's command, refusing in the same words for every protocol.

use enos_batch::{Flags, Quality, Value};
use enos_collector_config::{Access, Point};
use enos_model::device::{PointReading, WriteFailure, WriteOutcome};
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// The latest reading of each configured point of one device (by the point's index).
///
/// Kept compact (24 bytes a point, nothing allocated for a number): a device can have 10,000
/// points, and a full `PointReading` (its name copied, its flags in words) cost about ten times
/// that per point for as long as the collector runs. Text values and notes are rare and are
/// kept beside, by index. Readings are made when asked.
pub struct Latest {
    slots: Vec<Slot>,
    texts: HashMap<u32, String>,
    /// Why the value is not good, in words (the device's own status, a refusal).
    notes: HashMap<u32, Box<str>>,
}

#[derive(Clone, Copy)]
struct Slot {
    /// The number's bits, as `kind` says.
    bits: u64,
    ts_ms: u64,
    kind: Kind,
    noted: bool,
    quality: Quality,
    flags: Flags,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    NotYet,
    Bool,
    Int,
    UInt,
    Float,
    Text,
    Null,
}

const NOT_YET: Slot = Slot { bits: 0, ts_ms: 0, kind: Kind::NotYet, noted: false, quality: Quality::CommFailure, flags: Flags::NONE };

impl Latest {
    pub fn new(points: usize) -> Self {
        Latest { slots: vec![NOT_YET; points], texts: HashMap::new(), notes: HashMap::new() }
    }

    /// The time of the point's latest reading.
    pub fn ts_ms(&self, point: usize) -> Option<u64> {
        let s = &self.slots[point];
        (s.kind != Kind::NotYet).then_some(s.ts_ms)
    }

    /// Keeps what is being forwarded as the point's latest reading; `note` says why it is not
    /// good, when the device said more than the quality.
    pub fn record(&mut self, point: usize, value: &Value, quality: Quality, ts_ms: u64, flags: Flags, note: Option<String>) {
        let key = point as u32;
        let was = self.slots[point];
        let (kind, bits) = match value {
            Value::Bool(b) => (Kind::Bool, u64::from(*b)),
            Value::Int(i) => (Kind::Int, *i as u64),
            Value::UInt(u) => (Kind::UInt, *u),
            Value::Float(f) => (Kind::Float, f.to_bits()),
            Value::Str(t) => {
                self.texts.insert(key, t.clone());
                (Kind::Text, 0)
            }
            Value::Null => (Kind::Null, 0),
        };
        if was.kind == Kind::Text && kind != Kind::Text {
            self.texts.remove(&key);
        }
        let noted = note.is_some();
        match note {
            Some(n) => {
                self.notes.insert(key, n.into_boxed_str());
            }
            None if was.noted => {
                self.notes.remove(&key);
            }
            None => {}
        }
        self.slots[point] = Slot { bits, ts_ms, kind, noted, quality, flags };
    }

    fn value(&self, point: usize) -> Value {
        let s = &self.slots[point];
        match s.kind {
            Kind::Bool => Value::Bool(s.bits != 0),
            Kind::Int => Value::Int(s.bits as i64),
            Kind::UInt => Value::UInt(s.bits),
            Kind::Float => Value::Float(f64::from_bits(s.bits)),
            Kind::Text => Value::Str(self.texts.get(&(point as u32)).cloned().unwrap_or_default()),
            Kind::Null | Kind::NotYet => Value::Null,
        }
    }

    /// A read of `device`: the latest value of each point asked (all when none are named), in
    /// the order asked; a point the device never sent is `comm-failure` saying `not_yet`.
    pub fn read<A>(&self, device: &str, points: &[Point<A>], asked: &[String], not_yet: &str) -> Result<Vec<PointReading>, String> {
        let which: Vec<usize> = if asked.is_empty() {
            (0..points.len()).collect()
        } else {
            asked
                .iter()
                .map(|n| points.iter().position(|p| *p.meta.name == **n).ok_or_else(|| format!("device \"{device}\" has no point \"{n}\"")))
                .collect::<Result<_, _>>()?
        };
        Ok(which
            .into_iter()
            .map(|i| {
                let point = points[i].meta.name.to_string();
                let s = &self.slots[i];
                match s.kind {
                    Kind::NotYet => PointReading {
                        point,
                        value: Value::Null,
                        quality: Quality::CommFailure,
                        ts_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
                        error: Some(not_yet.into()),
                        flags: Vec::new(),
                    },
                    _ => PointReading {
                        point,
                        value: self.value(i),
                        quality: s.quality,
                        ts_ms: s.ts_ms,
                        error: self.notes.get(&(i as u32)).map(|n| n.to_string()),
                        flags: s.flags.names().into_iter().map(String::from).collect(),
                    },
                }
            })
            .collect())
    }
}

/// The point a write names and its command (`command` of its address, when the point is
/// `rw`), or the outcome that refuses it: no such device (`points` is `None`), no such point,
/// read-only.
pub fn write_target<'a, A, C>(
    device: &str,
    points: Option<&'a [Point<A>]>,
    point: &str,
    command: impl Fn(&A) -> Option<C>,
) -> Result<(&'a Point<A>, C), WriteOutcome> {
    let points = points.ok_or_else(|| WriteOutcome::failed(WriteFailure::UnknownDevice, format!("there is no device \"{device}\"")))?;
    let p = points
        .iter()
        .find(|p| *p.meta.name == *point)
        .ok_or_else(|| WriteOutcome::failed(WriteFailure::UnknownPoint, format!("device \"{device}\" has no point \"{point}\"")))?;
    match command(&p.at).filter(|_| p.meta.access == Access::Rw) {
        Some(c) => Ok((p, c)),
        None => Err(WriteOutcome::failed(WriteFailure::ReadOnly, format!("point \"{point}\" is read-only"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use enos_collector_config::PointMeta;

    fn point(name: &str, access: Access, command: Option<u8>) -> Point<Option<u8>> {
        Point { meta: PointMeta { access, ..PointMeta::named(name) }, at: command }
    }

    #[test]
    fn a_read_answers_the_latest_values_and_a_write_finds_its_command() {
        let points = [point("a", Access::R, None), point("b", Access::Rw, Some(7)), point("c", Access::R, Some(7))];
        let mut latest = Latest::new(points.len());
        latest.record(1, &Value::Int(5), Quality::Doubtful, 1, Flags::SUBSTITUTED, Some("why".into()));
        let r = PointReading {
            point: "b".into(),
            value: Value::Int(5),
            quality: Quality::Doubtful,
            ts_ms: 1,
            error: Some("why".into()),
            flags: vec!["substituted".into()],
        };
        assert_eq!((latest.ts_ms(1), latest.ts_ms(0)), (Some(1), None));
        let got = latest.read("d", &points, &["b".into(), "a".into()], "not yet").unwrap();
        assert_eq!((got[0].clone(), got[1].quality, got[1].error.as_deref()), (r, Quality::CommFailure, Some("not yet")));
        assert_eq!(latest.read("d", &points, &[], "").unwrap().len(), 3);
        assert_eq!(latest.read("d", &points, &["x".into()], "").unwrap_err(), "device \"d\" has no point \"x\"");
        assert_eq!(write_target("d", Some(&points), "b", |c| *c).map(|(p, c)| (&*p.meta.name, c)).ok(), Some(("b", 7)));
        let refused = |point: &str, points: Option<&[Point<Option<u8>>]>| write_target("d", points, point, |c| *c).unwrap_err().failure;
        assert_eq!(refused("c", Some(&points)), Some(WriteFailure::ReadOnly), "a command needs access rw");
        assert_eq!(refused("a", Some(&points)), Some(WriteFailure::ReadOnly));
        assert_eq!(refused("x", Some(&points)), Some(WriteFailure::UnknownPoint));
        assert_eq!(refused("b", None), Some(WriteFailure::UnknownDevice));
    }

    #[test]
    fn every_kind_of_value_comes_back_as_recorded_and_a_note_lasts_one_reading() {
        assert_eq!(std::mem::size_of::<Slot>(), 24, "the per-point cost the memory figures assume");
        let points = [point("a", Access::R, None)];
        let mut latest = Latest::new(1);
        let values = [
            Value::Bool(true),
            Value::Int(-3),
            Value::UInt(u64::MAX),
            Value::Float(-0.5),
            Value::Str("on".into()),
            Value::Null,
            Value::Float(2.0),
        ];
        for (ts, v) in values.iter().enumerate() {
            let note = matches!(v, Value::Null).then(|| "bad".to_string());
            latest.record(0, v, Quality::Good, ts as u64, Flags::NONE, note.clone());
            let got = &latest.read("d", &points, &[], "").unwrap()[0];
            assert_eq!((&got.value, got.ts_ms, &got.error), (v, ts as u64, &note));
        }
        assert!(latest.texts.is_empty() && latest.notes.is_empty(), "a number after a text, no note after a note: nothing kept beside");
    }
}
