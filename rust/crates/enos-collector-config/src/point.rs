//! A point as every protocol has it: its name and engineering side (unit, scale, range, access),
//! plus the protocol's own address (`A`: a register, an information object, a data identifier).

use crate::doc;
use crate::fields::{POINT_COMMON, POINT_NAME};
use enos_config::{Findings, Scope};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    #[default]
    R,
    Rw,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::R => "r",
            Access::Rw => "rw",
        })
    }
}

/// The part of a point that is the same in every protocol (its keys are described by
/// `fields::POINT_NAME` and `fields::POINT_COMMON`).
///
/// Kept small (72 bytes, the range without `Option`'s tags): a collector holds 100,000 points and
/// more. Read and written as `MetaFields`, the keys as they are.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(from = "MetaFields", into = "MetaFields")]
pub struct PointMeta {
    /// Shared with the driver's samples and interned across the configuration (`intern`): a
    /// configured point costs its name once.
    pub name: Arc<str>,
    /// Engineering value = raw × scale + offset.
    pub scale: f64,
    pub offset: f64,
    pub access: Access,
    /// The range a write must stay in (engineering units).
    pub range: Range,
    /// Decimals kept after scaling (default: the decimals of `scale` and `offset`).
    pub decimals: Option<u8>,
    pub unit: Arc<str>,
}

/// A point's `min` and `max`, NaN meaning "none" (a NaN bound never limited anything). Inline:
/// most Modbus points of a device table set both, and a box per point, allocated while the
/// table is read, left pages that could not be given back (~130 bytes a point more).
#[derive(Debug, Clone, Copy)]
pub struct Range(f64, f64);

impl Range {
    pub fn new(min: Option<f64>, max: Option<f64>) -> Range {
        Range(min.unwrap_or(f64::NAN), max.unwrap_or(f64::NAN))
    }
    pub fn min(&self) -> Option<f64> {
        Some(self.0).filter(|b| !b.is_nan())
    }
    pub fn max(&self) -> Option<f64> {
        Some(self.1).filter(|b| !b.is_nan())
    }
}

impl Default for Range {
    fn default() -> Range {
        Range::new(None, None)
    }
}

impl PartialEq for Range {
    fn eq(&self, other: &Range) -> bool {
        (self.min(), self.max()) == (other.min(), other.max())
    }
}

/// `PointMeta` as the files have it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetaFields {
    name: Arc<str>,
    #[serde(default = "d_scale")]
    scale: f64,
    #[serde(default)]
    offset: f64,
    #[serde(default)]
    access: Access,
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
    #[serde(default)]
    decimals: Option<u8>,
    #[serde(default)]
    unit: Arc<str>,
}

fn d_scale() -> f64 {
    1.0
}

impl From<MetaFields> for PointMeta {
    fn from(f: MetaFields) -> PointMeta {
        let MetaFields { name, scale, offset, access, min, max, decimals, unit } = f;
        PointMeta { name, scale, offset, access, range: Range::new(min, max), decimals, unit }
    }
}

impl From<PointMeta> for MetaFields {
    fn from(m: PointMeta) -> MetaFields {
        let (min, max) = (m.min(), m.max());
        let PointMeta { name, scale, offset, access, decimals, unit, .. } = m;
        MetaFields { name, scale, offset, access, min, max, decimals, unit }
    }
}

impl PointMeta {
    pub fn named(name: &str) -> PointMeta {
        PointMeta {
            name: name.into(),
            scale: 1.0,
            offset: 0.0,
            access: Access::R,
            range: Range::default(),
            decimals: None,
            unit: "".into(),
        }
    }

    pub fn min(&self) -> Option<f64> {
        self.range.min()
    }

    pub fn max(&self) -> Option<f64> {
        self.range.max()
    }

    /// Why `x` may not be written to this point (outside `min..max`), in words; `None` inside.
    /// The one range check of every protocol's write path.
    pub fn out_of_range(&self, x: f64) -> Option<String> {
        let (min, max) = (self.min(), self.max());
        if !(min.is_some_and(|lo| x < lo) || max.is_some_and(|hi| x > hi)) {
            return None;
        }
        let show = |b: Option<f64>| b.map_or(String::new(), |b| b.to_string());
        Some(format!("{x} is outside the point's range {}..{}", show(min), show(max)))
    }

    pub fn check(&self, at: &Scope, out: &mut Findings) {
        if self.name.is_empty() || self.name.len() > 64 || self.name.chars().any(|c| c.is_control() || c == '"') {
            out.add(at, "name", "must be 1-64 printable characters without quotes");
        }
        if !self.scale.is_finite() || self.scale == 0.0 {
            out.add(at, "scale", "must be a finite, non-zero number");
        }
        if !self.offset.is_finite() {
            out.add(at, "offset", "must be a finite number");
        }
        if matches!((self.min(), self.max()), (Some(lo), Some(hi)) if lo > hi) {
            out.add(at, "min", "min is greater than max");
        }
        if matches!(self.decimals, Some(d) if d > 9) {
            out.add(at, "decimals", "at most 9");
        }
    }
}

/// A protocol's point address: what it checks on its own.
pub trait PointAddress {
    /// Findings of the address alone; `meta` for checks that depend on both (e.g. `rw` on a
    /// read-only area).
    fn check(&self, meta: &PointMeta, at: &Scope, out: &mut Findings);
    /// Shares the address's repeated strings (e.g. a poll group's name) through `pool`.
    fn share_strings(&mut self, _pool: &mut StringPool) {}
}

/// One copy of each string that many points repeat: the same point names on identical devices,
/// units, poll groups. A collector holds 100,000 points and more; a separate allocation per
/// name, unit and group cost ~100 bytes per point.
#[derive(Default)]
pub struct StringPool(std::collections::HashSet<Arc<str>>);

impl StringPool {
    pub fn share(&mut self, s: &mut Arc<str>) {
        match self.0.get(&**s) {
            Some(same) => *s = same.clone(),
            None => {
                self.0.insert(s.clone());
            }
        }
    }

    /// Shares the strings of one point.
    pub fn share_point<A: PointAddress>(&mut self, p: &mut Point<A>) {
        self.share(&mut p.meta.name);
        self.share(&mut p.meta.unit);
        p.at.share_strings(self);
    }

    /// Shares the strings of `points` and drops their spare capacity.
    pub fn compact<A: PointAddress>(&mut self, points: &mut Vec<Point<A>>) {
        points.iter_mut().for_each(|p| self.share_point(p));
        points.shrink_to_fit();
    }
}

/// One point of a device: the common part and the protocol's address, in one flat table in the
/// files (`name = "P", area = "holding", address = 3, ...`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Point<A> {
    #[serde(flatten)]
    pub meta: PointMeta,
    #[serde(flatten)]
    pub at: A,
}

/// The table is split by key: `PointMeta`'s keys to it, the rest to the address (which refuses
/// keys it does not know); errors name the point and the key.
impl<'de, A: DeserializeOwned> Deserialize<'de> for Point<A> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut rest = doc::table::<D::Error>(serde_json::Value::deserialize(d)?, "a point")?;
        let name = rest.get("name").and_then(|n| n.as_str()).unwrap_or_default().to_string();
        let mut meta = serde_json::Map::new();
        for key in std::iter::once(POINT_NAME.key).chain(POINT_COMMON.iter().map(|f| f.key)) {
            if let Some(v) = rest.remove(key) {
                meta.insert(key.into(), v);
            }
        }
        let fail = |e: String| serde::de::Error::custom(format!("point \"{name}\": {e}"));
        let meta: PointMeta = doc::read(meta.into()).map_err(fail)?;
        let at: A = doc::read(rest.into()).map_err(fail)?;
        Ok(Point { meta, at })
    }
}

impl<A: PointAddress> Point<A> {
    pub fn new(meta: PointMeta, at: A) -> Point<A> {
        Point { meta, at }
    }

    pub fn name(&self) -> &str {
        &self.meta.name
    }

    /// Every finding of this point on its own (the device checks names and groups).
    pub fn check(&self, at: &Scope, out: &mut Findings) {
        self.meta.check(at, out);
        self.at.check(&self.meta, at, out);
    }
}
