//! IEC 104 values and qualities to the gateway's, and a written value to a command.

use enos_batch::{Flags, Quality, Value};
use enos_collector_config::iec104::{CommandType, Iec104Point};
use enos_iec104::{CommandValue, DoublePoint, TimeTag};

/// Scale and offset as configured (numbers only), rounded to the configured decimals.
fn scaled(p: &Iec104Point, x: f64) -> f64 {
    let y = x * p.meta.scale + p.meta.offset;
    match p.meta.decimals {
        Some(d) => {
            let f = 10f64.powi(i32::from(d));
            (y * f).round() / f
        }
        None => y,
    }
}

fn number(p: &Iec104Point, x: i64) -> Value {
    if p.meta.scale == 1.0 && p.meta.offset == 0.0 {
        Value::Int(x)
    } else {
        Value::Float(scaled(p, x as f64))
    }
}

/// The value as the gateway carries it; `None` for end of initialisation (no point value).
pub fn value(p: &Iec104Point, v: enos_iec104::Value) -> Option<Value> {
    use enos_iec104::Value as V;
    Some(match v {
        V::Single(b) => Value::Bool(b),
        // the standard's codes: 0 intermediate, 1 off, 2 on, 3 indeterminate
        V::Double(d) => Value::Int(match d {
            DoublePoint::Intermediate => 0,
            DoublePoint::Off => 1,
            DoublePoint::On => 2,
            DoublePoint::Indeterminate => 3,
        }),
        V::Step { position, .. } => number(p, i64::from(position)),
        V::Bitstring(b) => Value::Int(i64::from(b)),
        // a short float as the decimal it was meant to be (231.4, not 231.39999389648438)
        V::Analog(x) => Value::Float(scaled(p, shortest(x))),
        V::Counter { value, .. } => number(p, i64::from(value)),
        V::EndOfInit(_) => return None,
    })
}

/// The shortest decimal that round-trips as f32, when `x` is an f32 (every IEC 104 analog is).
fn shortest(x: f64) -> f64 {
    let f = x as f32;
    if f64::from(f) == x {
        f.to_string().parse().unwrap_or(x)
    } else {
        x
    }
}

/// A station's time tag is the value's time unless it cannot be: marked invalid, more than
/// `FUTURE_MS` ahead of the gateway's clock, or more than `PAST_MS` behind it (a station whose
/// clock was never set says 2000 or 1970; the uplink's cache would drop such values as older
/// than its retention, silently). Those values keep their arrival time and the flag
/// `time invalid`. Seven days: a station's event buffer replayed after a long link outage keeps
/// its real times.
pub const FUTURE_MS: u64 = 5 * 60 * 1000;
pub const PAST_MS: u64 = 7 * 24 * 3600 * 1000;

/// The time of a value (ms) and whether the station's own time tag was refused.
pub fn timestamp(time: Option<TimeTag>, now_ms: u64) -> (u64, bool) {
    match time {
        None => (now_ms, false),
        Some(t) if t.invalid || t.unix_ms < 0 => (now_ms, true),
        Some(t) => {
            let ts = t.unix_ms as u64;
            if ts > now_ms + FUTURE_MS || ts + PAST_MS < now_ms {
                (now_ms, true)
            } else {
                (ts, false)
            }
        }
    }
}

/// IV makes a value invalid; NT, SB, BL, OV (and a counter's CY, CA) doubtful; the flags say which.
pub fn quality(q: enos_iec104::Quality, time: Option<TimeTag>) -> (Quality, Flags) {
    use enos_iec104::Quality as Q;
    let mut flags = Flags::NONE;
    for (bit, f) in [
        (Q::IV, Flags::INVALID),
        (Q::NT, Flags::NOT_TOPICAL),
        (Q::SB, Flags::SUBSTITUTED),
        (Q::BL, Flags::BLOCKED),
        (Q::OV, Flags::OVERFLOW),
        (Q::CY, Flags::CARRY),
        (Q::CA, Flags::ADJUSTED),
    ] {
        if q.has(bit) {
            flags |= f;
        }
    }
    if time.is_some_and(|t| t.invalid) {
        flags |= Flags::TIME_INVALID;
    }
    let quality = if q.has(Q::IV) {
        Quality::Invalid
    } else if q.is_good() {
        Quality::Good
    } else {
        Quality::Doubtful
    };
    (quality, flags)
}

/// The command for a value written to a point, checked against its range and its type.
pub fn command(p: &Iec104Point, kind: CommandType, v: &serde_json::Value) -> Result<CommandValue, (bool, String)> {
    let bad = |why: String| Err((false, why));
    let as_bool = || match v {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        _ => None,
    };
    let number = || v.as_f64();
    match kind {
        CommandType::Single | CommandType::Double | CommandType::Regulating => match as_bool() {
            Some(b) => Ok(match kind {
                CommandType::Single => CommandValue::Single(b),
                CommandType::Double => CommandValue::Double(b),
                _ => CommandValue::Step(b),
            }),
            None => bad(format!("{v} is not a switching value (true/false or 1/0)")),
        },
        CommandType::Bitstring => match v.as_u64().filter(|b| *b <= u64::from(u32::MAX)) {
            Some(b) => Ok(CommandValue::Bitstring(b as u32)),
            None => bad(format!("{v} is not a 32-bit bitstring (0-4294967295)")),
        },
        _ => {
            let Some(x) = number() else { return bad(format!("{v} is not a number")) };
            if let Some(why) = p.meta.out_of_range(x) {
                return Err((true, why));
            }
            let raw = (x - p.meta.offset) / p.meta.scale;
            match kind {
                CommandType::SetpointNormalized if (-1.0..1.0).contains(&raw) => Ok(CommandValue::Normalized(raw)),
                CommandType::SetpointNormalized => bad(format!("{raw} is outside a normalised set-point's -1..1")),
                CommandType::SetpointScaled if raw.fract() == 0.0 && (-32768.0..=32767.0).contains(&raw) => {
                    Ok(CommandValue::Scaled(raw as i16))
                }
                CommandType::SetpointScaled => bad(format!("{raw} is not a whole number in -32768..32767 (a scaled set-point)")),
                _ if (raw as f32).is_finite() => Ok(CommandValue::Float(raw as f32)),
                _ => bad(format!("{raw} does not fit a short float")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_tag_far_from_the_gateways_clock_is_refused_for_the_arrival_time() {
        let now = 1_800_000_000_000u64;
        let tag = |ms: i64, invalid| Some(TimeTag { unix_ms: ms, invalid, summer: false });
        assert_eq!(timestamp(None, now), (now, false));
        assert_eq!(timestamp(tag(now as i64 - 60_000, false), now), (now - 60_000, false));
        assert_eq!(timestamp(tag(now as i64 - 6 * 86_400_000, false), now), (now - 6 * 86_400_000, false), "a replayed event buffer");
        assert_eq!(timestamp(tag(1_704_067_200_000, false), now), (now, true), "a clock left in 2024");
        assert_eq!(timestamp(tag(now as i64 + 3_600_000, false), now), (now, true), "an hour ahead");
        assert_eq!(timestamp(tag(now as i64, true), now), (now, true), "the station says IV");
    }
    use enos_collector_config::iec104::{Iec104Address, InfoType};
    use enos_collector_config::PointMeta;

    fn point(scale: f64) -> Iec104Point {
        let mut meta = PointMeta::named("P");
        meta.scale = scale;
        let at = Iec104Address {
            ca: None,
            ioa: 1,
            info: InfoType::Float,
            command: None,
            command_ioa: None,
            select_before_operate: false,
            qualifier: 0,
        };
        Iec104Point::new(meta, at)
    }

    #[test]
    fn values_qualities_and_commands() {
        let p = point(1.0);
        assert_eq!(value(&p, enos_iec104::Value::Analog(f64::from(231.4f32))), Some(Value::Float(231.4)));
        assert_eq!(value(&point(0.1), enos_iec104::Value::Counter { value: 25, sequence: 0 }), Some(Value::Float(2.5)));
        let (q, f) = quality(enos_iec104::Quality(enos_iec104::Quality::IV | enos_iec104::Quality::BL), None);
        assert_eq!((q, f), (Quality::Invalid, Flags::INVALID | Flags::BLOCKED));
        assert_eq!(quality(enos_iec104::Quality(enos_iec104::Quality::NT), None).0, Quality::Doubtful);
        assert_eq!(command(&p, CommandType::SetpointFloat, &serde_json::json!(12.5)), Ok(CommandValue::Float(12.5)));
        assert_eq!(command(&p, CommandType::Single, &serde_json::json!(true)), Ok(CommandValue::Single(true)));
        assert!(command(&p, CommandType::Single, &serde_json::json!("on")).is_err());
    }
}
