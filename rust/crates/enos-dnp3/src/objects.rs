//! Object headers (group, variation, qualifier, range) and the objects of a response.
//!
//! Static and event data of binary, double-bit, binary output, counter, frozen counter, analog
//! input and analog output points become [`Measurement`]s; command echoes (g12v1, g41) and times
//! (g50, g51, g52) their own [`Object`]s. Anything else is an error that names it.

use crate::error::{DecodeError, DecodeErrorKind as K};
use std::fmt;

/// The kind of point a measurement is of (its static group and the group of its events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PointKind {
    /// g1 / g2
    BinaryInput,
    /// g3 / g4
    DoubleBitInput,
    /// g10 / g11
    BinaryOutput,
    /// g20 / g22
    Counter,
    /// g21 / g23
    FrozenCounter,
    /// g30 / g32
    AnalogInput,
    /// g40 / g42
    AnalogOutput,
}

/// A double-bit state as the standard codes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoubleBit {
    Intermediate = 0,
    Off = 1,
    On = 2,
    Indeterminate = 3,
}

impl DoubleBit {
    fn from_bits(b: u8) -> DoubleBit {
        match b & 3 {
            0 => DoubleBit::Intermediate,
            1 => DoubleBit::Off,
            2 => DoubleBit::On,
            _ => DoubleBit::Indeterminate,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Bool(bool),
    DoubleBit(DoubleBit),
    Int(i64),
    Float(f64),
}

/// The flag octet of a point (bit meanings per group; the names are the binary/analog ones).
pub mod flags {
    pub const ONLINE: u8 = 0x01;
    pub const RESTART: u8 = 0x02;
    pub const COMM_LOST: u8 = 0x04;
    pub const REMOTE_FORCED: u8 = 0x08;
    pub const LOCAL_FORCED: u8 = 0x10;
    /// Binary inputs: CHATTER_FILTER; analog inputs: OVER_RANGE; counters: ROLLOVER.
    pub const BIT5: u8 = 0x20;
    /// Analog inputs: REFERENCE_ERR; counters: DISCONTINUITY.
    pub const BIT6: u8 = 0x40;
}

/// One value of a point: static (from a class 0 or static read) or an event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    pub kind: PointKind,
    pub index: u32,
    pub value: Value,
    /// The flag octet as received (ONLINE for the variations without flags). For binary and
    /// double-bit points the state bits are left in.
    pub flags: u8,
    /// The outstation's time of the value (ms since 1970, UTC), for the time-tagged variations.
    pub time: Option<u64>,
    pub event: bool,
}

/// Control relay output block (g12v1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crob {
    /// Operation type (bits 0-3), queue, clear, trip/close code (bits 6-7).
    pub code: u8,
    pub count: u8,
    pub on_ms: u32,
    pub off_ms: u32,
    pub status: u8,
}

impl Crob {
    pub const PULSE_ON: u8 = 1;
    pub const LATCH_ON: u8 = 3;
    pub const LATCH_OFF: u8 = 4;
    pub const CLOSE: u8 = 0x40;
    pub const TRIP: u8 = 0x80;

    pub fn encode(&self) -> [u8; 11] {
        let mut b = [0u8; 11];
        b[0] = self.code;
        b[1] = self.count;
        b[2..6].copy_from_slice(&self.on_ms.to_le_bytes());
        b[6..10].copy_from_slice(&self.off_ms.to_le_bytes());
        b[10] = self.status;
        b
    }
}

/// The value of an analog output command (g41 v1-v4).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutputValue {
    I32(i32),
    I16(i16),
    F32(f32),
    F64(f64),
}

impl OutputValue {
    pub fn variation(self) -> u8 {
        match self {
            OutputValue::I32(_) => 1,
            OutputValue::I16(_) => 2,
            OutputValue::F32(_) => 3,
            OutputValue::F64(_) => 4,
        }
    }

    pub fn encode(self, out: &mut Vec<u8>) {
        match self {
            OutputValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
            OutputValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
            OutputValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
            OutputValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        }
    }
}

/// Command status codes (CROB and analog output), in words.
pub fn status_words(status: u8) -> String {
    let w = match status & 0x7f {
        0 => "success",
        1 => "timeout: the operate came too late after the select",
        2 => "no select: the operate had no matching select",
        3 => "format error in the request",
        4 => "not supported on this point",
        5 => "already active",
        6 => "hardware error",
        7 => "the point is under local control",
        8 => "too many operations",
        9 => "not authorised",
        10 => "automation inhibit",
        11 => "processing limited",
        12 => "value out of range",
        13 => "the downstream device is under local control",
        14 => "already complete",
        15 => "blocked",
        16 => "cancelled",
        17 => "blocked by another master",
        18 => "the downstream device failed",
        126 => "non-participating",
        _ => return format!("status code {status}"),
    };
    format!("{w} (status {status})")
}

/// One object of a response.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Object {
    Measurement(Measurement),
    /// A CROB echoed in the answer to a select/operate.
    Crob {
        index: u32,
        crob: Crob,
    },
    /// An analog output command echoed, with its status.
    Output {
        index: u32,
        value: OutputValue,
        status: u8,
    },
    /// g50 v1/v3: a time (ms since 1970).
    Time(u64),
    /// g52: the outstation's delay (ms).
    Delay(u64),
}

impl fmt::Display for PointKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PointKind::BinaryInput => "binary input",
            PointKind::DoubleBitInput => "double-bit input",
            PointKind::BinaryOutput => "binary output",
            PointKind::Counter => "counter",
            PointKind::FrozenCounter => "frozen counter",
            PointKind::AnalogInput => "analog input",
            PointKind::AnalogOutput => "analog output status",
        })
    }
}

#[derive(Clone, Copy)]
enum V {
    /// the state is bit 7 of the flags
    Bit,
    /// the state is bits 6-7 of the flags
    Double,
    U16,
    U32,
    I16,
    I32,
    F32,
    F64,
}

#[derive(Clone, Copy)]
enum T {
    None,
    Abs,
    Rel,
}

#[derive(Clone, Copy)]
enum Layout {
    /// Bit-packed states (`bits` per point), no flags.
    Packed(PointKind, u8),
    Point {
        kind: PointKind,
        event: bool,
        flags: bool,
        value: V,
        time: T,
    },
    Crob,
    Output(u8),
    Time,
    Cto,
    Delay(u64),
    /// g80v1: IIN bits written by the master; skipped.
    PackedSkip,
}

fn layout(g: u8, v: u8) -> Option<Layout> {
    use PointKind as P;
    let p = |kind, event, flags, value, time| Some(Layout::Point { kind, event, flags, value, time });
    match (g, v) {
        (1, 1) => Some(Layout::Packed(P::BinaryInput, 1)),
        (1, 2) => p(P::BinaryInput, false, true, V::Bit, T::None),
        (2, 1) => p(P::BinaryInput, true, true, V::Bit, T::None),
        (2, 2) => p(P::BinaryInput, true, true, V::Bit, T::Abs),
        (2, 3) => p(P::BinaryInput, true, true, V::Bit, T::Rel),
        (3, 1) => Some(Layout::Packed(P::DoubleBitInput, 2)),
        (3, 2) => p(P::DoubleBitInput, false, true, V::Double, T::None),
        (4, 1) => p(P::DoubleBitInput, true, true, V::Double, T::None),
        (4, 2) => p(P::DoubleBitInput, true, true, V::Double, T::Abs),
        (4, 3) => p(P::DoubleBitInput, true, true, V::Double, T::Rel),
        (10, 1) => Some(Layout::Packed(P::BinaryOutput, 1)),
        (10, 2) => p(P::BinaryOutput, false, true, V::Bit, T::None),
        (11, 1) => p(P::BinaryOutput, true, true, V::Bit, T::None),
        (11, 2) => p(P::BinaryOutput, true, true, V::Bit, T::Abs),
        (12, 1) => Some(Layout::Crob),
        (20, 1) => p(P::Counter, false, true, V::U32, T::None),
        (20, 2) => p(P::Counter, false, true, V::U16, T::None),
        (20, 5) => p(P::Counter, false, false, V::U32, T::None),
        (20, 6) => p(P::Counter, false, false, V::U16, T::None),
        (21, 1) => p(P::FrozenCounter, false, true, V::U32, T::None),
        (21, 2) => p(P::FrozenCounter, false, true, V::U16, T::None),
        (21, 5) => p(P::FrozenCounter, false, true, V::U32, T::Abs),
        (21, 6) => p(P::FrozenCounter, false, true, V::U16, T::Abs),
        (21, 9) => p(P::FrozenCounter, false, false, V::U32, T::None),
        (21, 10) => p(P::FrozenCounter, false, false, V::U16, T::None),
        (22, 1) => p(P::Counter, true, true, V::U32, T::None),
        (22, 2) => p(P::Counter, true, true, V::U16, T::None),
        (22, 5) => p(P::Counter, true, true, V::U32, T::Abs),
        (22, 6) => p(P::Counter, true, true, V::U16, T::Abs),
        (23, 1) => p(P::FrozenCounter, true, true, V::U32, T::None),
        (23, 2) => p(P::FrozenCounter, true, true, V::U16, T::None),
        (23, 5) => p(P::FrozenCounter, true, true, V::U32, T::Abs),
        (23, 6) => p(P::FrozenCounter, true, true, V::U16, T::Abs),
        (30, 1) => p(P::AnalogInput, false, true, V::I32, T::None),
        (30, 2) => p(P::AnalogInput, false, true, V::I16, T::None),
        (30, 3) => p(P::AnalogInput, false, false, V::I32, T::None),
        (30, 4) => p(P::AnalogInput, false, false, V::I16, T::None),
        (30, 5) => p(P::AnalogInput, false, true, V::F32, T::None),
        (30, 6) => p(P::AnalogInput, false, true, V::F64, T::None),
        (32, 1) => p(P::AnalogInput, true, true, V::I32, T::None),
        (32, 2) => p(P::AnalogInput, true, true, V::I16, T::None),
        (32, 3) => p(P::AnalogInput, true, true, V::I32, T::Abs),
        (32, 4) => p(P::AnalogInput, true, true, V::I16, T::Abs),
        (32, 5) => p(P::AnalogInput, true, true, V::F32, T::None),
        (32, 6) => p(P::AnalogInput, true, true, V::F64, T::None),
        (32, 7) => p(P::AnalogInput, true, true, V::F32, T::Abs),
        (32, 8) => p(P::AnalogInput, true, true, V::F64, T::Abs),
        (40, 1) => p(P::AnalogOutput, false, true, V::I32, T::None),
        (40, 2) => p(P::AnalogOutput, false, true, V::I16, T::None),
        (40, 3) => p(P::AnalogOutput, false, true, V::F32, T::None),
        (40, 4) => p(P::AnalogOutput, false, true, V::F64, T::None),
        (42, 1) => p(P::AnalogOutput, true, true, V::I32, T::None),
        (42, 2) => p(P::AnalogOutput, true, true, V::I16, T::None),
        (42, 3) => p(P::AnalogOutput, true, true, V::I32, T::Abs),
        (42, 4) => p(P::AnalogOutput, true, true, V::I16, T::Abs),
        (42, 5) => p(P::AnalogOutput, true, true, V::F32, T::None),
        (42, 6) => p(P::AnalogOutput, true, true, V::F64, T::None),
        (42, 7) => p(P::AnalogOutput, true, true, V::F32, T::Abs),
        (42, 8) => p(P::AnalogOutput, true, true, V::F64, T::Abs),
        (41, 1..=4) => Some(Layout::Output(v)),
        (50, 1) | (50, 3) => Some(Layout::Time),
        (51, 1) | (51, 2) => Some(Layout::Cto),
        (52, 1) => Some(Layout::Delay(1000)),
        (52, 2) => Some(Layout::Delay(1)),
        (80, 1) => Some(Layout::PackedSkip),
        _ => None,
    }
}

fn value_size(v: V) -> usize {
    match v {
        V::Bit | V::Double => 0,
        V::U16 | V::I16 => 2,
        V::U32 | V::I32 | V::F32 => 4,
        V::F64 => 8,
    }
}

fn size(l: Layout) -> usize {
    match l {
        Layout::Point { flags, value, time, .. } => {
            usize::from(flags)
                + value_size(value)
                + match time {
                    T::None => 0,
                    T::Abs => 6,
                    T::Rel => 2,
                }
        }
        Layout::Crob => 11,
        Layout::Output(v) => 1 + [4, 2, 4, 8][usize::from(v - 1)],
        Layout::Time | Layout::Cto => 6,
        Layout::Delay(_) => 2,
        Layout::Packed(..) | Layout::PackedSkip => 0,
    }
}

fn uint(b: &[u8]) -> u64 {
    b.iter().rev().fold(0u64, |a, &x| (a << 8) | u64::from(x))
}

/// Every object of a response's object octets, in order.
pub fn parse(data: &[u8]) -> Result<Vec<Object>, DecodeError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let mut cto: Option<u64> = None;
    let err = |k| DecodeError::new(k, data);
    while pos < data.len() {
        let at = pos;
        let take = |pos: &mut usize, n: usize| -> Result<u64, DecodeError> {
            let b = data.get(*pos..*pos + n).ok_or_else(|| err(K::ShortObjectHeader(at)))?;
            *pos += n;
            Ok(uint(b))
        };
        let (g, v, q) = (take(&mut pos, 1)? as u8, take(&mut pos, 1)? as u8, take(&mut pos, 1)? as u8);
        let bad_q = || err(K::Qualifier { group: g, variation: v, qualifier: q });
        let lay = layout(g, v).ok_or_else(|| err(K::UnknownObject { group: g, variation: v }))?;
        let prefix = match (q >> 4) & 0x0f {
            0 => 0usize,
            1 => 1,
            2 => 2,
            3 => 4,
            _ => return Err(bad_q()),
        };
        let (start, count) = match q & 0x0f {
            r @ 0..=2 => {
                let n = [1, 2, 4][usize::from(r)];
                let (s, e) = (take(&mut pos, n)? as u32, take(&mut pos, n)? as u32);
                if e < s {
                    return Err(err(K::BackwardRange { group: g, variation: v, start: s, stop: e }));
                }
                if prefix != 0 {
                    return Err(bad_q());
                }
                // 0..=0xFFFFFFFF names 2^32 objects: more than a u32 counts, and than any fragment holds.
                let count = (e - s)
                    .checked_add(1)
                    .ok_or_else(|| err(K::RangeTooLong { group: g, variation: v, start: s, stop: e, count: u64::from(e - s) + 1 }))?;
                (s, count)
            }
            6 => continue, // "all objects": nothing follows (class reads)
            r @ 7..=9 => (0, take(&mut pos, [1, 2, 4][usize::from(r - 7)])? as u32),
            _ => return Err(bad_q()),
        };
        let rest = data.len() - pos;
        if let Layout::Packed(_, bits) = lay {
            if prefix != 0 {
                return Err(bad_q());
            }
            let need = (u64::from(count) * u64::from(bits)).div_ceil(8);
            if need > rest as u64 {
                return Err(err(K::ShortObjects { group: g, variation: v, count, need, got: rest }));
            }
        }
        let need = match lay {
            Layout::Packed(_, bits) => (u64::from(count) * u64::from(bits)).div_ceil(8),
            Layout::PackedSkip => u64::from(count).div_ceil(8),
            l => u64::from(count) * (prefix + size(l)) as u64,
        };
        if need > rest as u64 {
            return Err(err(K::ShortObjects { group: g, variation: v, count, need, got: rest }));
        }
        match lay {
            Layout::Packed(kind, bits) => {
                let b = &data[pos..pos + need as usize];
                for i in 0..count {
                    let bit = (i * u32::from(bits)) as usize;
                    let x = (b[bit / 8] >> (bit % 8)) & if bits == 1 { 1 } else { 3 };
                    let value = if bits == 1 { Value::Bool(x == 1) } else { Value::DoubleBit(DoubleBit::from_bits(x)) };
                    let index = start.saturating_add(i);
                    out.push(Object::Measurement(Measurement { kind, index, value, flags: flags::ONLINE, time: None, event: false }));
                }
                pos += need as usize;
            }
            Layout::PackedSkip => pos += need as usize,
            _ => {
                for i in 0..count {
                    let index = if prefix == 0 { start.saturating_add(i) } else { take(&mut pos, prefix)? as u32 };
                    let n = size(lay);
                    let o = &data[pos..pos + n];
                    pos += n;
                    if let Some(obj) = object(lay, index, o, &mut cto).map_err(|k| err(k.unwrap_or(K::NoCommonTime(g, v))))? {
                        out.push(obj);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// One object of a fixed size; `Err(None)` for relative time without a CTO.
fn object(lay: Layout, index: u32, o: &[u8], cto: &mut Option<u64>) -> Result<Option<Object>, Option<K>> {
    Ok(Some(match lay {
        Layout::Point { kind, event, flags: has_flags, value, time } => {
            let flags = if has_flags { o[0] } else { flags::ONLINE };
            let b = &o[usize::from(has_flags)..];
            let n = value_size(value);
            let (vb, tb) = b.split_at(n);
            let value = match value {
                V::Bit => Value::Bool(flags & 0x80 != 0),
                V::Double => Value::DoubleBit(DoubleBit::from_bits(flags >> 6)),
                V::U16 | V::U32 => Value::Int(uint(vb) as i64),
                V::I16 => Value::Int(i64::from(i16::from_le_bytes([vb[0], vb[1]]))),
                V::I32 => Value::Int(i64::from(i32::from_le_bytes([vb[0], vb[1], vb[2], vb[3]]))),
                V::F32 => Value::Float(f64::from(f32::from_le_bytes([vb[0], vb[1], vb[2], vb[3]]))),
                V::F64 => Value::Float(f64::from_le_bytes(vb[..8].try_into().map_err(|_| None)?)),
            };
            let time = match time {
                T::None => None,
                T::Abs => Some(uint(&tb[..6])),
                T::Rel => Some(cto.ok_or(None)? + uint(&tb[..2])),
            };
            Object::Measurement(Measurement { kind, index, value, flags, time, event })
        }
        Layout::Crob => Object::Crob {
            index,
            crob: Crob { code: o[0], count: o[1], on_ms: uint(&o[2..6]) as u32, off_ms: uint(&o[6..10]) as u32, status: o[10] },
        },
        Layout::Output(v) => {
            let (vb, s) = o.split_at(o.len() - 1);
            let value = match v {
                1 => OutputValue::I32(i32::from_le_bytes(vb.try_into().map_err(|_| None)?)),
                2 => OutputValue::I16(i16::from_le_bytes(vb.try_into().map_err(|_| None)?)),
                3 => OutputValue::F32(f32::from_le_bytes(vb.try_into().map_err(|_| None)?)),
                _ => OutputValue::F64(f64::from_le_bytes(vb.try_into().map_err(|_| None)?)),
            };
            Object::Output { index, value, status: s[0] }
        }
        Layout::Time => Object::Time(uint(o)),
        Layout::Cto => {
            *cto = Some(uint(o));
            return Ok(None);
        }
        Layout::Delay(unit) => Object::Delay(uint(o) * unit),
        Layout::Packed(..) | Layout::PackedSkip => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(o: &Object) -> Measurement {
        match o {
            Object::Measurement(m) => *m,
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn static_and_event_objects_decode_with_flags_and_times() {
        let mut d = vec![1, 1, 0x00, 3, 12, 0b0101_0101, 0b10]; // g1v1 3..=12 packed
        d.extend([30, 5, 0x01, 5, 0, 5, 0, 0x01, 0x00, 0x00, 0x60, 0x43]); // g30v5 index 5 = 224.0
        d.extend([2, 2, 0x17, 1, 9, 0x81, 0x10, 0x27, 0, 0, 0, 0]); // g2v2 index 9 on at 10000 ms
        d.extend([51, 1, 0x07, 1, 0xe8, 0x03, 0, 0, 0, 0, 4, 3, 0x28, 1, 0, 2, 1, 0x81, 5, 0]); // CTO 1000 + g4v3 idx 258
        d.extend([22, 5, 0x28, 1, 0, 7, 0, 0x01, 42, 0, 0, 0, 1, 0, 0, 0, 0, 0]); // g22v5 idx 7
        d.extend([20, 6, 0x00, 0, 0, 0x34, 0x12]); // g20v6 (no flags)
        let o = parse(&d).unwrap();
        assert_eq!(o.len(), 10 + 1 + 1 + 1 + 1 + 1);
        assert_eq!(m(&o[0]).value, Value::Bool(true));
        assert_eq!((m(&o[1]).index, m(&o[1]).value), (4, Value::Bool(false)));
        assert_eq!((m(&o[9]).index, m(&o[9]).value), (12, Value::Bool(true)));
        assert_eq!((m(&o[10]).kind, m(&o[10]).index, m(&o[10]).value), (PointKind::AnalogInput, 5, Value::Float(224.0)));
        let e = m(&o[11]);
        assert_eq!((e.event, e.index, e.value, e.time), (true, 9, Value::Bool(true), Some(10_000)));
        let db = m(&o[12]);
        assert_eq!((db.index, db.value, db.time), (258, Value::DoubleBit(DoubleBit::On), Some(1005)));
        let c = m(&o[13]);
        assert_eq!((c.kind, c.index, c.value, c.time), (PointKind::Counter, 7, Value::Int(42), Some(1)));
        assert_eq!((m(&o[14]).value, m(&o[14]).flags), (Value::Int(0x1234), flags::ONLINE));
    }

    #[test]
    fn faults_are_named() {
        let e = parse(&[30, 1, 0x17, 2, 0, 1, 0, 0, 0]).unwrap_err();
        assert_eq!(e.kind, K::ShortObjects { group: 30, variation: 1, count: 2, need: 12, got: 5 });
        assert_eq!(parse(&[99, 1, 0x00, 0, 0]).unwrap_err().kind, K::UnknownObject { group: 99, variation: 1 });
        assert_eq!(parse(&[30, 1, 0x05]).unwrap_err().kind, K::Qualifier { group: 30, variation: 1, qualifier: 5 });
        assert_eq!(parse(&[2, 3, 0x17, 1, 0, 1, 0, 0]).unwrap_err().kind, K::NoCommonTime(2, 3));
        assert_eq!(parse(&[30, 1, 0x00, 5, 4]).unwrap_err().to_string(), "range 5..4 of g30v1 runs backwards: 1e 01 00 05 04");
        assert_eq!(status_words(4), "not supported on this point (status 4)");
    }
}
