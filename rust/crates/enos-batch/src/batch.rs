//! The telemetry batch: a compact, versioned, columnar binary encoding of many samples.
//!
//! The collector encodes a batch once; it travels over D-Bus as a byte array and rests in the
//! uplink's cache as is, so the format here *is* the on-disk format of the cache and crosses A/B
//! updates. Rules that keep it readable by an older release after a rollback:
//! - byte 2 is the writer's format version, byte 3 the oldest reader version that can decode it;
//!   a reader refuses (clearly, without deleting anything) only when `min_reader` is above its own;
//! - additions go into the trailing extension section (tag, length, bytes), which readers skip.
//!
//! Format 2 added the qualities `invalid` and `doubtful` (a batch holding one needs reader 2;
//! other batches are still readable by reader 1) and extension 1, the raw quality flags of the
//! series that have any: `n:varint { series:varint n_runs:varint { run:varint flags:varint }* }*`.
//!
//! Layout (varint = LEB128, zz = zigzag):
//! ```text
//! "EB" version:u8 min_reader:u8 flags:u8
//! n_strings:varint  { len:varint utf8 }*          dictionary of device and point names
//! n_series:varint   { series }*
//! n_ext:varint      { tag:varint len:varint bytes }*
//! series := device:varint point:varint n:varint ts quality values
//! ts      := 0 first:varint { zz(delta - prev_delta) }*(n-1)  |  1 same_as_series:varint
//! quality := n_runs:varint { run:varint q:u8 }*
//! values  := kind:u8 payload   (see `Kind`)
//! ```
//! Floats that are short decimals (231.4, 0.001) are stored as scaled integers with delta
//! encoding, which is what makes a slowly changing analog value cost about one byte.

use crate::value::{Flags, Quality, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub const MAGIC: &[u8; 2] = b"EB";
/// The format version this release writes.
pub const FORMAT_VERSION: u8 = 2;
/// The newest `min_reader` this release can decode.
pub const READER_VERSION: u8 = 2;
/// The extension tag of the raw quality flags.
const EXT_FLAGS: u64 = 1;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BatchError {
    #[error("not a telemetry batch (bad magic)")]
    BadMagic,
    #[error("batch needs reader version {needed}, this release reads up to {have}")]
    TooNew { needed: u8, have: u8 },
    #[error("batch truncated while reading {0}")]
    Truncated(&'static str),
    #[error("batch corrupt: {0}")]
    Corrupt(String),
}

#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Decimal = 0,
    XorFloat = 1,
    Int = 2,
    UInt = 3,
    Bool = 4,
    Str = 5,
    Mixed = 6,
}

/// One sample as it arrived, 24 bytes; grouped into series only when the batch is encoded.
/// The value is packed (`Packed`): a text value's string waits in `BatchBuilder::texts`.
struct Pending {
    ts: u64,
    bits: u64,
    series: u32,
    flags: Flags,
    quality: Quality,
    kind: Packed,
}

#[derive(Clone, Copy)]
#[repr(u8)]
enum Packed {
    Bool,
    Int,
    UInt,
    Float,
    /// `bits` is the index in `texts`.
    Str,
    Null,
}

fn pack(v: Value, texts: &mut Vec<String>) -> (Packed, u64) {
    match v {
        Value::Bool(b) => (Packed::Bool, b as u64),
        Value::Int(i) => (Packed::Int, i as u64),
        Value::UInt(u) => (Packed::UInt, u),
        Value::Float(f) => (Packed::Float, f.to_bits()),
        Value::Str(s) => {
            texts.push(s);
            (Packed::Str, texts.len() as u64 - 1)
        }
        Value::Null => (Packed::Null, 0),
    }
}

fn unpack(kind: Packed, bits: u64, texts: &mut [String]) -> Value {
    match kind {
        Packed::Bool => Value::Bool(bits != 0),
        Packed::Int => Value::Int(bits as i64),
        Packed::UInt => Value::UInt(bits),
        Packed::Float => Value::Float(f64::from_bits(bits)),
        Packed::Str => Value::Str(std::mem::take(&mut texts[bits as usize])),
        Packed::Null => Value::Null,
    }
}

/// Accumulates samples (in any order of devices and points) and encodes them as one batch.
///
/// Memory: one flat record (24 bytes) per sample and one shared name per device and point.
/// A collector with 100,000 points polled every second holds a batch of that many samples; a
/// series of growable columns per point (the former layout) cost ~300 bytes per sample there.
#[derive(Default)]
pub struct BatchBuilder {
    dict: Vec<Arc<str>>,
    dict_index: HashMap<Arc<str>, u32>,
    /// (device, point) → series number, in the order each series first appeared.
    series_index: HashMap<(u32, u32), u32>,
    series: Vec<(u32, u32)>,
    samples: Vec<Pending>,
    texts: Vec<String>,
    min_ts: u64,
}

impl BatchBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    fn intern(&mut self, s: &str, shared: Option<&Arc<str>>) -> u32 {
        if let Some(&i) = self.dict_index.get(s) {
            return i;
        }
        let name = shared.cloned().unwrap_or_else(|| Arc::from(s));
        let i = self.dict.len() as u32;
        self.dict.push(name.clone());
        self.dict_index.insert(name, i);
        i
    }

    pub fn push(&mut self, device: &str, point: &str, ts_ms: u64, value: Value, quality: Quality) {
        self.push_flagged(device, point, ts_ms, value, quality, Flags::NONE)
    }

    /// A sample with the raw quality flags its device sent.
    pub fn push_flagged(&mut self, device: &str, point: &str, ts_ms: u64, value: Value, quality: Quality, flags: Flags) {
        let d = self.intern(device, None);
        let p = self.intern(point, None);
        self.add(d, p, ts_ms, value, quality, flags);
    }

    /// As [`push_flagged`](Self::push_flagged) with names the caller already shares: a new name
    /// costs no allocation (the collector's names live as long as its configuration).
    pub fn push_shared(&mut self, device: &Arc<str>, point: &Arc<str>, ts_ms: u64, value: Value, quality: Quality, flags: Flags) {
        let d = self.intern(device, Some(device));
        let p = self.intern(point, Some(point));
        self.add(d, p, ts_ms, value, quality, flags);
    }

    fn add(&mut self, d: u32, p: u32, ts: u64, value: Value, quality: Quality, flags: Flags) {
        let next = self.series.len() as u32;
        let series = *self.series_index.entry((d, p)).or_insert(next);
        if series == next {
            self.series.push((d, p));
        }
        if self.samples.is_empty() || ts < self.min_ts {
            self.min_ts = ts;
        }
        let (kind, bits) = pack(value, &mut self.texts);
        self.samples.push(Pending { ts, bits, series, flags, quality, kind });
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
    /// Acquisition time of the oldest sample, if any.
    pub fn oldest_ts(&self) -> Option<u64> {
        (!self.samples.is_empty()).then_some(self.min_ts)
    }

    /// Encodes and resets the builder, keeping its allocations for the next batch up to
    /// [`KEEP_SAMPLES`].
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.samples.len() * 3);
        out.extend_from_slice(MAGIC);
        // Reader 1 knows qualities 0-4 only; a batch without the newer ones stays readable by it
        // (a rollback with data in the cache).
        let newer = self.samples.iter().any(|s| s.quality as u8 > Quality::Offline as u8);
        out.extend_from_slice(&[FORMAT_VERSION, if newer { 2 } else { 1 }, 0]);
        put_varint(&mut out, self.dict.len() as u64);
        for s in &self.dict {
            put_varint(&mut out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        // Series in the order they first appeared, each one's samples in arrival order (a
        // stable sort by series number).
        self.samples.sort_by_key(|s| s.series);
        put_varint(&mut out, self.series.len() as u64);
        let (mut ts, mut quality, mut values, mut flags) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        // The last series whose times were written out, and those times (a later series with
        // the same times refers to it).
        let (mut last_explicit, mut last_ts): (Option<usize>, Vec<u64>) = (None, Vec::new());
        // Series that carry raw flags: (series number, flags per sample).
        let mut flagged: Vec<(usize, Vec<Flags>)> = Vec::new();
        let mut rest = std::mem::take(&mut self.samples);
        let mut drain = rest.drain(..).peekable();
        for (i, &(device, point)) in self.series.iter().enumerate() {
            ts.clear();
            quality.clear();
            values.clear();
            flags.clear();
            while let Some(s) = drain.next_if(|s| s.series as usize == i) {
                ts.push(s.ts);
                quality.push(s.quality);
                flags.push(s.flags);
                values.push(unpack(s.kind, s.bits, &mut self.texts));
            }
            put_varint(&mut out, device as u64);
            put_varint(&mut out, point as u64);
            put_varint(&mut out, ts.len() as u64);
            match last_explicit {
                Some(j) if last_ts == ts => {
                    out.push(1);
                    put_varint(&mut out, j as u64);
                }
                _ => {
                    out.push(0);
                    encode_ts(&mut out, &ts);
                    last_explicit = Some(i);
                    std::mem::swap(&mut last_ts, &mut ts);
                }
            }
            encode_quality(&mut out, &quality);
            encode_values(&mut out, &values);
            if flags.iter().any(|f| !f.is_empty()) {
                flagged.push((i, flags.clone()));
            }
        }
        drop(drain);
        self.samples = rest;
        if flagged.is_empty() {
            put_varint(&mut out, 0);
        } else {
            put_varint(&mut out, 1);
            let mut ext = Vec::new();
            put_varint(&mut ext, flagged.len() as u64);
            for (i, f) in flagged {
                put_varint(&mut ext, i as u64);
                let mut runs: Vec<(u64, u16)> = Vec::new();
                for x in f {
                    match runs.last_mut() {
                        Some((n, v)) if *v == x.0 => *n += 1,
                        _ => runs.push((1, x.0)),
                    }
                }
                put_varint(&mut ext, runs.len() as u64);
                for (n, v) in runs {
                    put_varint(&mut ext, n);
                    put_varint(&mut ext, v as u64);
                }
            }
            put_varint(&mut out, EXT_FLAGS);
            put_varint(&mut out, ext.len() as u64);
            out.extend_from_slice(&ext);
        }
        self.dict.clear();
        self.dict_index.clear();
        self.series_index.clear();
        self.series.clear();
        self.texts.clear();
        self.give_back_large();
        out
    }

    /// A batch of many samples (a burst: every device polled at once, a backlog after the uplink
    /// was away) leaves vectors and tables sized for it; kept, they would hold that high-water
    /// mark for good (~50 bytes per sample: 100,000 points polled at once cost 5 MB more for the
    /// collector's whole life). Small ones are kept, so steady small batches allocate nothing.
    fn give_back_large(&mut self) {
        if self.samples.capacity() > KEEP_SAMPLES {
            self.samples = Vec::new();
        }
        if self.series.capacity() > KEEP_SAMPLES || self.series_index.capacity() > KEEP_SAMPLES {
            self.series = Vec::new();
            self.series_index = HashMap::new();
        }
        if self.dict.capacity() > KEEP_SAMPLES || self.dict_index.capacity() > KEEP_SAMPLES {
            self.dict = Vec::new();
            self.dict_index = HashMap::new();
        }
        if self.texts.capacity() > KEEP_SAMPLES {
            self.texts = Vec::new();
        }
    }
}

/// Samples (and series, names) a finished builder keeps room for (see `give_back_large`).
pub const KEEP_SAMPLES: usize = 4096;

/// One decoded series: every sample of one point of one device in the batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub device: u32,
    pub point: u32,
    pub ts: Vec<u64>,
    pub quality: Vec<Quality>,
    pub values: Vec<Value>,
    /// The raw quality flags per sample; empty when none has any.
    pub flags: Vec<Flags>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DecodedBatch {
    pub version: u8,
    pub dict: Vec<String>,
    pub series: Vec<Series>,
    /// Extension sections this release does not know, kept so a newer writer's data is not lost.
    pub unknown_extensions: Vec<(u64, Vec<u8>)>,
}

/// Cheap facts about an encoded batch, for accounting without allocating the samples.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BatchSummary {
    pub samples: u64,
    pub oldest_ts: u64,
    pub newest_ts: u64,
    /// Some sample was stamped while the gateway's clock was not set (`Flags::CLOCK_UNSET`).
    pub clock_unset: bool,
}

impl DecodedBatch {
    pub fn decode(buf: &[u8]) -> Result<DecodedBatch, BatchError> {
        let mut r = Reader { buf, pos: 0 };
        if r.take(2, "magic")? != MAGIC {
            return Err(BatchError::BadMagic);
        }
        let version = r.u8("version")?;
        let min_reader = r.u8("min_reader")?;
        let _flags = r.u8("flags")?;
        if min_reader > READER_VERSION {
            return Err(BatchError::TooNew { needed: min_reader, have: READER_VERSION });
        }
        let n_strings = r.len("dictionary size")?;
        // Each name and each series takes at least a byte: never reserve more than are left.
        let mut dict = Vec::with_capacity(n_strings.min(r.left()));
        for _ in 0..n_strings {
            let l = r.len("string length")?;
            let b = r.take(l, "string")?;
            dict.push(std::str::from_utf8(b).map_err(|_| BatchError::Corrupt("name is not UTF-8".into()))?.to_owned());
        }
        let n_series = r.len("series count")?;
        let mut series: Vec<Series> = Vec::with_capacity(n_series.min(r.left()));
        for _ in 0..n_series {
            let device = r.varint("device")? as u32;
            let point = r.varint("point")? as u32;
            if device as usize >= dict.len() || point as usize >= dict.len() {
                return Err(BatchError::Corrupt("name index outside dictionary".into()));
            }
            let n = r.len("sample count")?;
            let ts = match r.u8("ts mode")? {
                0 => decode_ts(&mut r, n)?,
                1 => {
                    let j = r.varint("ts reference")? as usize;
                    let other = series.get(j).ok_or_else(|| BatchError::Corrupt("ts reference ahead".into()))?;
                    if other.ts.len() != n {
                        return Err(BatchError::Corrupt("ts reference length".into()));
                    }
                    other.ts.clone()
                }
                m => return Err(BatchError::Corrupt(format!("ts mode {m}"))),
            };
            let quality = decode_quality(&mut r, n)?;
            let values = decode_values(&mut r, n)?;
            series.push(Series { device, point, ts, quality, values, flags: Vec::new() });
        }
        let mut unknown_extensions = Vec::new();
        let n_ext = r.len("extension count")?;
        for _ in 0..n_ext {
            let tag = r.varint("extension tag")?;
            let l = r.len("extension length")?;
            let bytes = r.take(l, "extension")?;
            match tag {
                EXT_FLAGS => decode_flags(bytes, &mut series)?,
                _ => unknown_extensions.push((tag, bytes.to_vec())),
            }
        }
        Ok(DecodedBatch { version, dict, series, unknown_extensions })
    }

    pub fn name(&self, idx: u32) -> &str {
        &self.dict[idx as usize]
    }

    pub fn summary(&self) -> BatchSummary {
        let mut s = BatchSummary { samples: 0, oldest_ts: u64::MAX, newest_ts: 0, clock_unset: false };
        for se in &self.series {
            s.samples += se.ts.len() as u64;
            s.clock_unset |= se.flags.iter().any(|f| f.contains(Flags::CLOCK_UNSET));
            for &t in &se.ts {
                s.oldest_ts = s.oldest_ts.min(t);
                s.newest_ts = s.newest_ts.max(t);
            }
        }
        if s.samples == 0 {
            s.oldest_ts = 0;
        }
        s
    }

    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.ts.len()).sum()
    }
}

// ---- encoding helpers ----

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zz(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}
fn unzz(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn encode_ts(out: &mut Vec<u8>, ts: &[u64]) {
    let mut prev = 0u64;
    let mut prev_delta = 0i64;
    for (i, &t) in ts.iter().enumerate() {
        if i == 0 {
            put_varint(out, t);
        } else {
            let delta = t.wrapping_sub(prev) as i64;
            put_varint(out, zz(delta.wrapping_sub(prev_delta)));
            prev_delta = delta;
        }
        prev = t;
    }
}

fn encode_quality(out: &mut Vec<u8>, q: &[Quality]) {
    let mut runs: Vec<(u64, u8)> = Vec::new();
    for &x in q {
        match runs.last_mut() {
            Some((n, v)) if *v == x as u8 => *n += 1,
            _ => runs.push((1, x as u8)),
        }
    }
    put_varint(out, runs.len() as u64);
    for (n, v) in runs {
        put_varint(out, n);
        out.push(v);
    }
}

/// The smallest number of decimals (0..=6) that represents every value exactly, if any.
fn decimal_scale(values: &[Value]) -> Option<u8> {
    let mut k = 0u8;
    for v in values {
        let Value::Float(x) = v else { return None };
        // -0.0 would come back as the integer 0, +0.0: it keeps its bits in the XOR form.
        if *x == 0.0 && x.is_sign_negative() {
            return None;
        }
        loop {
            let m = 10f64.powi(k as i32);
            let scaled = (x * m).round();
            if scaled.abs() < 9.0e15 && (scaled / m).to_bits() == x.to_bits() {
                break;
            }
            k += 1;
            if k > 6 {
                return None;
            }
        }
    }
    Some(k)
}

fn encode_values(out: &mut Vec<u8>, values: &[Value]) {
    let all = |f: fn(&Value) -> bool| values.iter().all(f);
    if all(|v| matches!(v, Value::Float(_))) {
        if let Some(k) = decimal_scale(values) {
            out.push(Kind::Decimal as u8);
            out.push(k);
            let m = 10f64.powi(k as i32);
            let mut prev = 0i64;
            for v in values {
                let Value::Float(x) = v else { unreachable!() };
                let i = (x * m).round() as i64;
                put_varint(out, zz(i.wrapping_sub(prev)));
                prev = i;
            }
        } else {
            out.push(Kind::XorFloat as u8);
            let mut prev = 0u64;
            for v in values {
                let Value::Float(x) = v else { unreachable!() };
                put_varint(out, x.to_bits() ^ prev);
                prev = x.to_bits();
            }
        }
    } else if all(|v| matches!(v, Value::Int(_))) || all(|v| matches!(v, Value::UInt(_))) {
        let uint = matches!(values.first(), Some(Value::UInt(_)));
        out.push(if uint { Kind::UInt } else { Kind::Int } as u8);
        let mut prev = 0i64;
        for v in values {
            let i = match v {
                Value::Int(i) => *i,
                Value::UInt(u) => *u as i64,
                _ => unreachable!(),
            };
            put_varint(out, zz(i.wrapping_sub(prev)));
            prev = i;
        }
    } else if all(|v| matches!(v, Value::Bool(_))) {
        out.push(Kind::Bool as u8);
        for chunk in values.chunks(8) {
            let mut byte = 0u8;
            for (i, v) in chunk.iter().enumerate() {
                if matches!(v, Value::Bool(true)) {
                    byte |= 1 << i;
                }
            }
            out.push(byte);
        }
    } else if all(|v| matches!(v, Value::Str(_))) {
        out.push(Kind::Str as u8);
        for v in values {
            let Value::Str(s) = v else { unreachable!() };
            put_varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
    } else {
        out.push(Kind::Mixed as u8);
        for v in values {
            match v {
                Value::Null => out.push(0),
                Value::Bool(false) => out.push(1),
                Value::Bool(true) => out.push(2),
                Value::Int(i) => {
                    out.push(3);
                    put_varint(out, zz(*i));
                }
                Value::UInt(u) => {
                    out.push(4);
                    put_varint(out, *u);
                }
                Value::Float(f) => {
                    out.push(5);
                    out.extend_from_slice(&f.to_le_bytes());
                }
                Value::Str(s) => {
                    out.push(6);
                    put_varint(out, s.len() as u64);
                    out.extend_from_slice(s.as_bytes());
                }
            }
        }
    }
}

// ---- decoding helpers ----

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], BatchError> {
        let end = self.pos.checked_add(n).ok_or(BatchError::Truncated(what))?;
        let s = self.buf.get(self.pos..end).ok_or(BatchError::Truncated(what))?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, BatchError> {
        Ok(self.take(1, what)?[0])
    }
    fn varint(&mut self, what: &'static str) -> Result<u64, BatchError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8(what)?;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(BatchError::Corrupt(format!("varint too long in {what}")))
    }
    /// Bytes not read yet.
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// A count or length, bounded by what is left so hostile input cannot make us allocate.
    fn len(&mut self, what: &'static str) -> Result<usize, BatchError> {
        let v = self.varint(what)?;
        if v > (self.buf.len() - self.pos) as u64 * 8 + 8 {
            return Err(BatchError::Corrupt(format!("{what} {v} larger than the batch")));
        }
        Ok(v as usize)
    }
}

fn decode_ts(r: &mut Reader, n: usize) -> Result<Vec<u64>, BatchError> {
    let mut ts = Vec::with_capacity(n);
    let mut prev = 0u64;
    let mut prev_delta = 0i64;
    for i in 0..n {
        let t = if i == 0 {
            r.varint("timestamp")?
        } else {
            let delta = prev_delta.wrapping_add(unzz(r.varint("timestamp")?));
            prev_delta = delta;
            prev.wrapping_add(delta as u64)
        };
        ts.push(t);
        prev = t;
    }
    Ok(ts)
}

fn decode_flags(buf: &[u8], series: &mut [Series]) -> Result<(), BatchError> {
    let mut r = Reader { buf, pos: 0 };
    let n = r.len("flagged series")?;
    for _ in 0..n {
        let i = r.varint("flagged series index")? as usize;
        let s = series.get_mut(i).ok_or_else(|| BatchError::Corrupt("flags of a series outside the batch".into()))?;
        let runs = r.len("flag runs")?;
        let mut f = Vec::with_capacity(s.ts.len());
        for _ in 0..runs {
            let len = r.varint("flag run")? as usize;
            let v = r.varint("flags")?;
            if len > s.ts.len() - f.len() || v > u16::MAX as u64 {
                return Err(BatchError::Corrupt("flag runs exceed samples".into()));
            }
            f.extend(std::iter::repeat_n(Flags(v as u16), len));
        }
        if f.len() != s.ts.len() {
            return Err(BatchError::Corrupt("flag runs short of samples".into()));
        }
        s.flags = f;
    }
    Ok(())
}

fn decode_quality(r: &mut Reader, n: usize) -> Result<Vec<Quality>, BatchError> {
    let runs = r.len("quality runs")?;
    let mut q = Vec::with_capacity(n);
    for _ in 0..runs {
        let len = r.varint("quality run")? as usize;
        let v = r.u8("quality")?;
        let qv = Quality::from_u8(v).ok_or_else(|| BatchError::Corrupt(format!("quality {v}")))?;
        // `q.len() <= n`: subtracting cannot overflow where adding a hostile run length could.
        if len > n - q.len() {
            return Err(BatchError::Corrupt("quality runs exceed samples".into()));
        }
        q.extend(std::iter::repeat_n(qv, len));
    }
    if q.len() != n {
        return Err(BatchError::Corrupt("quality runs short of samples".into()));
    }
    Ok(q)
}

fn decode_values(r: &mut Reader, n: usize) -> Result<Vec<Value>, BatchError> {
    let kind = r.u8("value kind")?;
    let mut out = Vec::with_capacity(n);
    match kind {
        k if k == Kind::Decimal as u8 => {
            let scale = r.u8("decimal scale")?;
            if scale > 6 {
                return Err(BatchError::Corrupt(format!("decimal scale {scale}")));
            }
            let m = 10f64.powi(scale as i32);
            let mut prev = 0i64;
            for _ in 0..n {
                prev = prev.wrapping_add(unzz(r.varint("value")?));
                out.push(Value::Float(prev as f64 / m));
            }
        }
        k if k == Kind::XorFloat as u8 => {
            let mut prev = 0u64;
            for _ in 0..n {
                prev ^= r.varint("value")?;
                out.push(Value::Float(f64::from_bits(prev)));
            }
        }
        k if k == Kind::Int as u8 || k == Kind::UInt as u8 => {
            let mut prev = 0i64;
            for _ in 0..n {
                prev = prev.wrapping_add(unzz(r.varint("value")?));
                out.push(if k == Kind::Int as u8 { Value::Int(prev) } else { Value::UInt(prev as u64) });
            }
        }
        k if k == Kind::Bool as u8 => {
            let bytes = r.take(n.div_ceil(8), "bool values")?;
            for i in 0..n {
                out.push(Value::Bool(bytes[i / 8] & (1 << (i % 8)) != 0));
            }
        }
        k if k == Kind::Str as u8 => {
            for _ in 0..n {
                let l = r.len("string value length")?;
                out.push(Value::Str(utf8(r.take(l, "string value")?)?));
            }
        }
        k if k == Kind::Mixed as u8 => {
            for _ in 0..n {
                out.push(match r.u8("value tag")? {
                    0 => Value::Null,
                    1 => Value::Bool(false),
                    2 => Value::Bool(true),
                    3 => Value::Int(unzz(r.varint("value")?)),
                    4 => Value::UInt(r.varint("value")?),
                    5 => {
                        let b = r.take(8, "float value")?;
                        Value::Float(f64::from_le_bytes(b.try_into().expect("8 bytes")))
                    }
                    6 => {
                        let l = r.len("string value length")?;
                        Value::Str(utf8(r.take(l, "string value")?)?)
                    }
                    t => return Err(BatchError::Corrupt(format!("value tag {t}"))),
                });
            }
        }
        k => return Err(BatchError::Corrupt(format!("value kind {k}"))),
    }
    Ok(out)
}

fn utf8(b: &[u8]) -> Result<String, BatchError> {
    String::from_utf8(b.to_vec()).map_err(|_| BatchError::Corrupt("string value is not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_batch_gives_its_memory_back_and_a_small_one_keeps_it() {
        let names: Vec<Arc<str>> = (0..10_000).map(|i| Arc::from(format!("p{i}"))).collect();
        let dev: Arc<str> = Arc::from("d");
        let mut b = BatchBuilder::new();
        for p in &names[..100] {
            b.push_shared(&dev, p, 1, Value::Int(1), Quality::Good, Flags::NONE);
        }
        let small = b.finish();
        assert!(b.samples.capacity() >= 100 && b.series_index.capacity() >= 100, "a small batch's room is kept");
        for p in &names {
            b.push_shared(&dev, p, 2, Value::Float(0.5), Quality::Good, Flags::NONE);
        }
        let big = b.finish();
        assert_eq!(
            (b.samples.capacity(), b.series.capacity(), b.series_index.capacity(), b.dict.capacity(), b.dict_index.capacity()),
            (0, 0, 0, 0, 0),
            "a burst's room is given back"
        );
        // and the builder still works, with the same encoding
        assert_eq!(DecodedBatch::decode(&big).unwrap().series.len(), 10_000);
        for p in &names[..100] {
            b.push_shared(&dev, p, 1, Value::Int(1), Quality::Good, Flags::NONE);
        }
        assert_eq!(b.finish(), small);
    }

    /// Samples of several series pushed interleaved (as drivers deliver them) come out as one
    /// series each, in first-seen order, every series' samples in arrival order (even when the
    /// times go backwards) with its flags; shared names and copied names give the same bytes,
    /// and a builder reused after `finish` starts clean.
    #[test]
    fn interleaved_series_keep_their_order_and_flags() {
        let (d, a, b): (Arc<str>, Arc<str>, Arc<str>) = ("rtu".into(), "a".into(), "b".into());
        let feed = [
            (&a, 30, 1.5, Flags::NONE),
            (&b, 10, 2.0, Flags::NONE),
            (&a, 20, 1.25, Flags::SUBSTITUTED),
            (&b, 40, 3.0, Flags::NONE),
            (&a, 50, 7.0, Flags::NONE),
        ];
        let mut shared = BatchBuilder::new();
        let mut copied = BatchBuilder::new();
        shared.push("other", "z", 1, Value::Int(1), Quality::Good);
        shared.finish();
        for (p, t, v, f) in feed {
            shared.push_shared(&d, p, t, Value::Float(v), Quality::Good, f);
            copied.push_flagged(&d, p, t, Value::Float(v), Quality::Good, f);
        }
        assert_eq!(shared.oldest_ts(), Some(10));
        let bytes = shared.finish();
        assert_eq!(bytes, copied.finish());
        assert!(shared.is_empty());
        let dec = DecodedBatch::decode(&bytes).unwrap();
        type Got<'a> = (&'a str, Vec<u64>, Vec<Value>, Vec<Flags>);
        let got: Vec<Got> = dec.series.iter().map(|s| (dec.name(s.point), s.ts.clone(), s.values.clone(), s.flags.clone())).collect();
        assert_eq!(
            got,
            vec![
                (
                    "a",
                    vec![30, 20, 50],
                    vec![Value::Float(1.5), Value::Float(1.25), Value::Float(7.0)],
                    vec![Flags::NONE, Flags::SUBSTITUTED, Flags::NONE]
                ),
                ("b", vec![10, 40], vec![Value::Float(2.0), Value::Float(3.0)], vec![]),
            ]
        );
        assert_eq!(dec.dict, vec!["rtu".to_string(), "a".into(), "b".into()]);
    }

    fn roundtrip(samples: &[(&str, &str, u64, Value, Quality)]) -> DecodedBatch {
        let mut b = BatchBuilder::new();
        for (d, p, t, v, q) in samples {
            b.push(d, p, *t, v.clone(), *q);
        }
        let bytes = b.finish();
        let dec = DecodedBatch::decode(&bytes).expect("decodes");
        let mut got = Vec::new();
        for s in &dec.series {
            for i in 0..s.ts.len() {
                got.push((dec.name(s.device).to_string(), dec.name(s.point).to_string(), s.ts[i], s.values[i].clone(), s.quality[i]));
            }
        }
        let mut want: Vec<_> = samples.iter().map(|(d, p, t, v, q)| (d.to_string(), p.to_string(), *t, v.clone(), *q)).collect();
        let key = |x: &(String, String, u64, Value, Quality)| (x.0.clone(), x.1.clone(), x.2);
        got.sort_by_key(key);
        want.sort_by_key(key);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((&g.0, &g.1, g.2, g.4), (&w.0, &w.1, w.2, w.4));
            match (&g.3, &w.3) {
                (Value::Float(a), Value::Float(b)) => assert_eq!(a.to_bits(), b.to_bits(), "float bits of {}", w.1),
                (a, b) => assert_eq!(a, b),
            }
        }
        dec
    }

    #[test]
    fn every_value_kind_roundtrips_exactly() {
        use Quality::*;
        roundtrip(&[
            ("d1", "dec", 1000, Value::Float(231.4), Good),
            ("d1", "dec", 2000, Value::Float(-0.001), Good),
            ("d1", "xor", 1000, Value::Float(std::f64::consts::PI), Good),
            ("d1", "xor", 2000, Value::Float(-0.0), Good),
            ("d1", "nan", 2000, Value::Float(f64::NAN), Good),
            ("d1", "inf", 2000, Value::Float(f64::INFINITY), Good),
            ("d1", "i", 1000, Value::Int(i64::MIN), Good),
            ("d1", "i", 2000, Value::Int(i64::MAX), Good),
            ("d1", "u", 1000, Value::UInt(u64::MAX), Good),
            ("d1", "u", 2000, Value::UInt(0), Good),
            ("d2", "b", 1000, Value::Bool(true), Good),
            ("d2", "b", 1500, Value::Bool(false), Good),
            ("d2", "s", 1000, Value::Str("héllo".into()), Good),
            ("d2", "m", 1000, Value::Null, CommFailure),
            ("d2", "m", 2000, Value::Float(1.5), Good),
            ("d2", "m", 3000, Value::Null, DeviceException),
        ]);
    }

    #[test]
    fn shared_timestamps_and_decimals_make_a_float_point_cost_about_a_byte() {
        let mut b = BatchBuilder::new();
        let points: Vec<String> = (0..100).map(|i| format!("P{i}")).collect();
        let mut n = 0;
        for t in 0..50u64 {
            for (i, p) in points.iter().enumerate() {
                let raw = 2300 + ((t as i64 * 7 + i as i64) % 13);
                b.push("inverter-01", p, 1_700_000_000_000 + t * 1000 + (t % 3), Value::Float(raw as f64 / 10.0), Quality::Good);
                n += 1;
            }
        }
        let bytes = b.finish();
        let per_point = bytes.len() as f64 / n as f64;
        assert!(per_point < 1.6, "{per_point} bytes per point");
        let dec = DecodedBatch::decode(&bytes).unwrap();
        assert_eq!(dec.sample_count(), n);
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        let mut b = BatchBuilder::new();
        b.push("d", "p", 5, Value::Str("x".repeat(40)), Quality::Good);
        b.push("d", "q", 5, Value::Float(2.5), Quality::Good);
        let bytes = b.finish();
        for cut in 0..bytes.len() {
            assert!(DecodedBatch::decode(&bytes[..cut]).is_err(), "prefix {cut} accepted");
        }
        assert_eq!(DecodedBatch::decode(b"XX\x01\x01\x00"), Err(BatchError::BadMagic));
        // flip every byte once: must never panic
        for i in 0..bytes.len() {
            let mut c = bytes.clone();
            c[i] ^= 0xff;
            let _ = DecodedBatch::decode(&c);
        }
    }

    #[test]
    fn a_newer_writer_is_read_by_this_release_unless_it_says_otherwise() {
        let mut b = BatchBuilder::new();
        b.push("d", "p", 5, Value::Int(7), Quality::Good);
        let mut bytes = b.finish();
        // A hypothetical format 9 that adds an extension section but stays readable by 1.
        bytes[2] = 9;
        let last = bytes.len() - 1;
        bytes.truncate(last);
        bytes.extend_from_slice(&[1, 9, 3, b'a', b'b', b'c']);
        let dec = DecodedBatch::decode(&bytes).expect("format 9 with min_reader 1 is readable");
        assert_eq!(dec.version, 9);
        assert_eq!(dec.unknown_extensions, vec![(9, b"abc".to_vec())]);
        assert_eq!(dec.sample_count(), 1);
        // One that declares it needs a newer reader is refused clearly.
        bytes[3] = 9;
        assert_eq!(DecodedBatch::decode(&bytes), Err(BatchError::TooNew { needed: 9, have: READER_VERSION }));
    }

    #[test]
    fn flags_travel_with_their_samples_and_old_readers_still_read_flag_free_qualities() {
        let mut b = BatchBuilder::new();
        b.push_flagged("d", "first", 1, Value::Int(1), Quality::Good, Flags::CARRY);
        b.push("d", "plain", 1, Value::Int(1), Quality::Good);
        b.push("d", "p", 1, Value::Float(1.5), Quality::Good);
        b.push_flagged("d", "p", 2, Value::Float(1.5), Quality::Good, Flags::SUBSTITUTED);
        for t in 3..1003 {
            b.push_flagged("d", "p", t, Value::Float(2.5), Quality::Doubtful, Flags::NOT_TOPICAL | Flags::BLOCKED);
        }
        let bytes = b.finish();
        assert_eq!(bytes[3], 2, "a batch with doubtful samples needs reader 2");
        let dec = DecodedBatch::decode(&bytes).unwrap();
        let p = dec.series.iter().find(|s| dec.name(s.point) == "p").unwrap();
        assert_eq!(p.flags.len(), 1002);
        assert_eq!(
            (p.flags[0], p.flags[1], p.flags[1001]),
            (Flags::NONE, Flags::SUBSTITUTED, Flags(Flags::NOT_TOPICAL.0 | Flags::BLOCKED.0))
        );
        assert_eq!(p.flags[1001].names(), ["not topical", "blocked"]);
        assert!(dec.series.iter().find(|s| dec.name(s.point) == "plain").unwrap().flags.is_empty());
        assert_eq!(dec.series.iter().find(|s| dec.name(s.point) == "first").unwrap().flags, [Flags::CARRY]);
        assert!(dec.unknown_extensions.is_empty());

        // Flags alone keep the batch readable by reader 1 (it skips the extension).
        b.push_flagged("d", "p", 1, Value::Float(1.5), Quality::Good, Flags::SUBSTITUTED);
        let bytes = b.finish();
        assert_eq!(bytes[3], 1);
        // A damaged flag section is refused, never read past the series.
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 3] = 9; // the run count
        assert!(DecodedBatch::decode(&bad).is_err());
    }
}
