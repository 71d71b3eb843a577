//! What the drivers of spontaneous protocols (IEC 104, DNP3, OPC UA) share for the engine's
//! on-demand requests. Their values arrive when the device sends them, so a read answers the
//! latest value of each point, kept here as it is forwarded; a write first finds its point and
//! the point's command, refusing in the same words for every protocol.

use enos_batch::{Flags, Quality, Value};
use enos_collector_config::{Access, Point};
use enos_model::device::{PointReading, WriteFailure, WriteOutcome};
use std::time::{SystemTime, UNIX_EPOCH};

/// The latest reading of each configured point of one device (by the point's index).
///
/// Kept compact (64 bytes a point, nothing allocated for a number): a device can have 10,000
/// points, and a full `PointReading` (its name copied, its flags in words) cost about three
/// times that per point for as long as the collector runs. Readings are made when asked.
pub struct Latest(Vec<Option<Reading>>);

struct Reading {
    value: Value,
    ts_ms: u64,
    /// Why the value is not good, in words (the device's own status, a refusal).
    note: Option<Box<str>>,
    quality: Quality,
    flags: Flags,
}

impl Latest {
    pub fn new(points: usize) -> Self {
        Latest(std::iter::repeat_with(|| None).take(points).collect())
    }

    /// The time of the point's latest reading.
    pub fn ts_ms(&self, point: usize) -> Option<u64> {
        self.0[point].as_ref().map(|r| r.ts_ms)
    }

    /// Keeps what is being forwarded as the point's latest reading; `note` says why it is not
    /// good, when the device said more than the quality.
    pub fn record(&mut self, point: usize, value: &Value, quality: Quality, ts_ms: u64, flags: Flags, note: Option<String>) {
        let note = note.map(String::into_boxed_str);
        self.0[point] = Some(Reading { value: value.clone(), ts_ms, note, quality, flags });
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
                match &self.0[i] {
                    Some(r) => PointReading {
                        point,
                        value: r.value.clone(),
                        quality: r.quality,
                        ts_ms: r.ts_ms,
                        error: r.note.as_deref().map(String::from),
                        flags: r.flags.names().into_iter().map(String::from).collect(),
                    },
                    None => PointReading {
                        point,
                        value: Value::Null,
                        quality: Quality::CommFailure,
                        ts_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
                        error: Some(not_yet.into()),
                        flags: Vec::new(),
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
}
