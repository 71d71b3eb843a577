//! What the drivers of spontaneous protocols (IEC 104, DNP3; OPC UA to adopt it) share for the
//! engine's on-demand requests. Their values arrive when the device sends them, so a read answers
//! the latest value of each point, kept here as it is forwarded; a write first finds its point
//! and the point's command, refusing in the same words for every protocol.

use enos_batch::{Flags, Quality};
use enos_collector_config::{Access, Point};
use enos_model::device::{PointReading, WriteFailure, WriteOutcome};
use std::time::{SystemTime, UNIX_EPOCH};

/// The latest reading of each configured point of one device (by the point's index).
pub struct Latest(Vec<Option<PointReading>>);

impl Latest {
    pub fn new(points: usize) -> Self {
        Latest(vec![None; points])
    }

    pub fn get(&self, point: usize) -> Option<&PointReading> {
        self.0[point].as_ref()
    }

    pub fn set(&mut self, point: usize, r: PointReading) {
        self.0[point] = Some(r);
    }

    /// Keeps what is being forwarded as the point's latest reading.
    pub fn record(&mut self, point: usize, name: &str, value: &enos_batch::Value, quality: Quality, ts_ms: u64, flags: Flags) {
        let flags = flags.names().into_iter().map(String::from).collect();
        self.set(point, PointReading { point: name.into(), value: value.clone(), quality, ts_ms, error: None, flags });
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
                self.0[i].clone().unwrap_or_else(|| PointReading {
                    point: points[i].meta.name.to_string(),
                    value: enos_batch::Value::Null,
                    quality: Quality::CommFailure,
                    ts_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
                    error: Some(not_yet.into()),
                    flags: Vec::new(),
                })
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
        let r = PointReading {
            point: "b".into(),
            value: enos_batch::Value::Int(5),
            quality: Quality::Good,
            ts_ms: 1,
            error: None,
            flags: vec![],
        };
        latest.set(1, r.clone());
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
