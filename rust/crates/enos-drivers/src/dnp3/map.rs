//! DNP3 values and flags to the gateway's, and a written value to a command.

use enos_batch::{Flags, Quality, Value};
use enos_collector_config::dnp3::{CommandType, Dnp3Point, PointType};
use enos_dnp3::objects::flags as f;
use enos_dnp3::{Crob, OutputValue, PointKind};

/// The session's kind of a configured point type.
pub fn kind(t: PointType) -> PointKind {
    match t {
        PointType::BinaryInput => PointKind::BinaryInput,
        PointType::DoubleBitInput => PointKind::DoubleBitInput,
        PointType::BinaryOutput => PointKind::BinaryOutput,
        PointType::Counter => PointKind::Counter,
        PointType::FrozenCounter => PointKind::FrozenCounter,
        PointType::AnalogInput => PointKind::AnalogInput,
        PointType::AnalogOutput => PointKind::AnalogOutput,
    }
}

/// Scale and offset as configured (numbers only), rounded to the configured decimals.
fn scaled(p: &Dnp3Point, x: f64) -> f64 {
    let y = x * p.meta.scale + p.meta.offset;
    match p.meta.decimals {
        Some(d) => {
            let m = 10f64.powi(i32::from(d));
            (y * m).round() / m
        }
        None => y,
    }
}

/// The value as the gateway carries it: states as booleans, double-bit states as the
/// standard's codes (0 intermediate, 1 off, 2 on, 3 indeterminate), numbers scaled.
pub fn value(p: &Dnp3Point, v: enos_dnp3::Value) -> Value {
    use enos_dnp3::Value as V;
    match v {
        V::Bool(b) => Value::Bool(b),
        V::DoubleBit(d) => Value::Int(d as i64),
        V::Int(x) if p.meta.scale == 1.0 && p.meta.offset == 0.0 => Value::Int(x),
        V::Int(x) => Value::Float(scaled(p, x as f64)),
        // an f32 as the decimal it was meant to be (231.4, not 231.39999389648438)
        V::Float(x) => Value::Float(scaled(p, shortest(x))),
    }
}

fn shortest(x: f64) -> f64 {
    let s = x as f32;
    if f64::from(s) == x {
        s.to_string().parse().unwrap_or(x)
    } else {
        x
    }
}

/// A point's flag octet as quality and flags: not ONLINE is `invalid`; RESTART, COMM_LOST,
/// forced, and bits 5-6 make it `doubtful`. Bit 5 is chatter filter (binary: `blocked`),
/// over-range (analog: `overflow`) or rollover (counter: `carry`); bit 6 reference error
/// (analog: `overflow` too) or discontinuity (counter: `adjusted`). Binary and double-bit
/// states (bits 6-7 of their octet) are values, not flags.
pub fn quality(kind: PointKind, flags: u8) -> (Quality, Flags) {
    let state_bits: u8 = match kind {
        PointKind::BinaryInput | PointKind::BinaryOutput => 0x80,
        PointKind::DoubleBitInput => 0xC0,
        _ => 0,
    };
    let b = flags & !state_bits;
    let mut out = Flags::NONE;
    let mut add = |bit: u8, fl: Flags| {
        if b & bit != 0 {
            out |= fl;
        }
    };
    add(f::RESTART, Flags::RESTART);
    add(f::COMM_LOST, Flags::SOURCE_LOST);
    add(f::REMOTE_FORCED | f::LOCAL_FORCED, Flags::FORCED);
    match kind {
        PointKind::BinaryInput | PointKind::BinaryOutput | PointKind::DoubleBitInput => add(f::BIT5, Flags::BLOCKED),
        PointKind::AnalogInput | PointKind::AnalogOutput => add(f::BIT5 | f::BIT6, Flags::OVERFLOW),
        PointKind::Counter | PointKind::FrozenCounter => {
            add(f::BIT5, Flags::CARRY);
            add(f::BIT6, Flags::ADJUSTED);
        }
    }
    if b & f::ONLINE == 0 {
        return (Quality::Invalid, out | Flags::INVALID);
    }
    let q = if out == Flags::NONE { Quality::Good } else { Quality::Doubtful };
    (q, out)
}

/// The CROB or analog output value for a written value, checked against the point's range.
/// `Err((true, why))` when out of range, `Err((false, why))` when not a value of the command.
pub enum Output {
    Crob(Crob),
    Analog(OutputValue),
}

pub fn command(p: &Dnp3Point, c: CommandType, v: &serde_json::Value) -> Result<Output, (bool, String)> {
    let bad = |why: String| Err((false, why));
    let as_bool = match v {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        _ => None,
    };
    let crob = |code: u8, on_ms: u32| Ok(Output::Crob(Crob { code, count: 1, on_ms, off_ms: 0, status: 0 }));
    let pulse = p.at.pulse_ms;
    match c {
        CommandType::Latch | CommandType::Pulse | CommandType::TripClose => match (c, as_bool) {
            (_, None) => bad(format!("{v} is not a switching value (true/false or 1/0)")),
            (CommandType::Latch, Some(b)) => crob(if b { Crob::LATCH_ON } else { Crob::LATCH_OFF }, 0),
            (CommandType::Pulse, Some(true)) => crob(Crob::PULSE_ON, pulse),
            (CommandType::Pulse, Some(false)) => bad("a pulse point is written true (it pulses; there is no off)".into()),
            (_, Some(b)) => crob(if b { Crob::CLOSE } else { Crob::TRIP } | Crob::PULSE_ON, pulse),
        },
        _ => {
            let Some(x) = v.as_f64() else { return bad(format!("{v} is not a number")) };
            if let Some(why) = p.meta.out_of_range(x) {
                return Err((true, why));
            }
            let raw = (x - p.meta.offset) / p.meta.scale;
            let whole = |lo: f64, hi: f64| raw.fract() == 0.0 && (lo..=hi).contains(&raw);
            match c {
                CommandType::Int32 if whole(i32::MIN.into(), i32::MAX.into()) => Ok(Output::Analog(OutputValue::I32(raw as i32))),
                CommandType::Int32 => bad(format!("{raw} is not a whole number that fits 32 bits (int32)")),
                CommandType::Int16 if whole(i16::MIN.into(), i16::MAX.into()) => Ok(Output::Analog(OutputValue::I16(raw as i16))),
                CommandType::Int16 => bad(format!("{raw} is not a whole number in -32768..32767 (int16)")),
                CommandType::Float32 if (raw as f32).is_finite() => Ok(Output::Analog(OutputValue::F32(raw as f32))),
                CommandType::Float32 => bad(format!("{raw} does not fit a single-precision float")),
                _ => Ok(Output::Analog(OutputValue::F64(raw))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_qualities_and_keep_their_meaning() {
        assert_eq!(quality(PointKind::BinaryInput, 0x81), (Quality::Good, Flags::NONE), "the state bit is not a flag");
        assert_eq!(quality(PointKind::AnalogInput, 0x00), (Quality::Invalid, Flags::INVALID), "offline");
        assert_eq!(quality(PointKind::AnalogInput, 0x21), (Quality::Doubtful, Flags::OVERFLOW));
        assert_eq!(quality(PointKind::Counter, 0x23), (Quality::Doubtful, Flags::RESTART | Flags::CARRY));
        assert_eq!(quality(PointKind::BinaryInput, 0x0D), (Quality::Doubtful, Flags::SOURCE_LOST | Flags::FORCED));
        assert_eq!(quality(PointKind::DoubleBitInput, 0x81), (Quality::Good, Flags::NONE));
    }
}
