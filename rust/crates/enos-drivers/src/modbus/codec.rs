//! Register words ⇄ typed, scaled values for one point.

use enos_batch::Value;
use enos_collector_config::modbus::{Area, ByteOrder, DataType, ModbusPoint as PointConfig};

/// Puts the words of a multi-register value into big-endian ABCD order.
fn normalize(words: &[u16], order: ByteOrder) -> Vec<u16> {
    let mut w: Vec<u16> = words.to_vec();
    if order.swap_bytes() {
        for x in &mut w {
            *x = x.swap_bytes();
        }
    }
    if order.swap_words() {
        w.reverse();
    }
    w
}

fn be_u64(words: &[u16]) -> u64 {
    words.iter().fold(0u64, |acc, &w| (acc << 16) | w as u64)
}

/// Decimals of a number as written (0.1 → 1, 0.25 → 2, 10 → 0).
fn decimals_of(x: f64) -> u8 {
    let s = format!("{x}");
    s.split_once('.').map(|(_, f)| f.len().min(9) as u8).unwrap_or(0)
}

fn round_to(x: f64, decimals: u8) -> f64 {
    let m = 10f64.powi(decimals as i32);
    let r = (x * m).round() / m;
    if r.is_finite() {
        r
    } else {
        x
    }
}

/// Decodes a point from its words (register areas) or its bit (coil/discrete).
pub fn decode(p: &PointConfig, words: &[u16], bits: &[bool]) -> Result<Value, String> {
    if p.at.area.is_bits() {
        return bits.first().map(|b| Value::Bool(*b)).ok_or_else(|| "no bit in the answer".into());
    }
    let need = p.at.registers() as usize;
    if words.len() < need {
        return Err(format!("needs {need} registers, got {}", words.len()));
    }
    let w = normalize(&words[..need], p.at.order);
    let raw = match p.at.data_type {
        DataType::Bit => return Ok(Value::Bool(w[0] >> p.at.bit.unwrap_or(0) & 1 == 1)),
        DataType::Bool => return Ok(Value::Bool(w[0] != 0)),
        DataType::String => {
            let bytes: Vec<u8> = w.iter().flat_map(|x| x.to_be_bytes()).take_while(|&b| b != 0).collect();
            return String::from_utf8(bytes).map(|s| Value::Str(s.trim_end().to_owned())).map_err(|_| "text is not UTF-8".to_string());
        }
        DataType::U16 => Value::UInt(w[0] as u64),
        DataType::I16 => Value::Int(w[0] as i16 as i64),
        DataType::U32 => Value::UInt(be_u64(&w)),
        DataType::I32 => Value::Int(be_u64(&w) as u32 as i32 as i64),
        DataType::U64 => Value::UInt(be_u64(&w)),
        DataType::I64 => Value::Int(be_u64(&w) as i64),
        // The shortest decimal that round-trips the f32 is what the device meant (231.4, not
        // 231.39999389648438); it is also what the cache stores compactly.
        DataType::F32 => {
            let f = f32::from_bits(be_u64(&w) as u32);
            Value::Float(if f.is_finite() { format!("{f}").parse::<f64>().unwrap_or(f as f64) } else { f as f64 })
        }
        DataType::F64 => Value::Float(f64::from_bits(be_u64(&w))),
    };
    // NaN and ±infinity are a device's way of saying "no valid reading": not a good value, and
    // JSON has no number for them. The sample gets the decode-error quality and these words.
    if let Value::Float(f) = raw {
        if !f.is_finite() {
            return Err(format!("{} (registers {})", not_finite(f), hex_words(&words[..need])));
        }
    }
    match scale(p, raw) {
        Value::Float(f) if !f.is_finite() => {
            Err(format!("{} after scale and offset (registers {})", not_finite(f), hex_words(&words[..need])))
        }
        v => Ok(v),
    }
}

fn not_finite(f: f64) -> &'static str {
    if f.is_nan() {
        "not a number (NaN)"
    } else if f > 0.0 {
        "not a finite number (+infinity)"
    } else {
        "not a finite number (-infinity)"
    }
}

/// Register words as the device sent them, e.g. `7FC0 0000`.
fn hex_words(words: &[u16]) -> String {
    words.iter().map(|w| format!("{w:04X}")).collect::<Vec<_>>().join(" ")
}

fn scale(p: &PointConfig, raw: Value) -> Value {
    if p.meta.scale == 1.0 && p.meta.offset == 0.0 && p.meta.decimals.is_none() {
        return match raw {
            Value::UInt(u) if u <= i64::MAX as u64 => Value::Int(u as i64),
            v => v,
        };
    }
    let x = raw.as_f64().unwrap_or(f64::NAN);
    let y = x * p.meta.scale + p.meta.offset;
    let decimals = p.meta.decimals.unwrap_or_else(|| {
        if p.at.data_type.is_integer() {
            decimals_of(p.meta.scale).max(decimals_of(p.meta.offset))
        } else {
            9
        }
    });
    Value::Float(round_to(y, decimals))
}

/// What a write puts on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum WireWrite {
    Coil(bool),
    /// Registers from the point's address (FC6 when one, FC16 when more).
    Registers(Vec<u16>),
    /// Set or clear one bit of a register: read-modify-write.
    RegisterBit {
        bit: u8,
        on: bool,
    },
}

/// Converts a value in engineering units to what is written, inverting scale and offset and
/// checking the configured range and the type's range.
pub fn encode(p: &PointConfig, v: &serde_json::Value) -> Result<WireWrite, (bool, String)> {
    // (true, msg) = out of range, (false, msg) = bad value
    let bad = |m: String| Err((false, m));
    if p.at.area == Area::Coil || p.at.data_type == DataType::Bit {
        let on = match v {
            serde_json::Value::Bool(b) => *b,
            serde_json::Value::Number(n) if n.as_f64() == Some(0.0) => false,
            serde_json::Value::Number(n) if n.as_f64() == Some(1.0) => true,
            _ => return bad(format!("{v} is not a boolean (true/false/0/1)")),
        };
        return Ok(if p.at.area == Area::Coil { WireWrite::Coil(on) } else { WireWrite::RegisterBit { bit: p.at.bit.unwrap_or(0), on } });
    }
    if p.at.data_type == DataType::String {
        let serde_json::Value::String(s) = v else { return bad(format!("{v} is not a string")) };
        let cap = p.at.registers() as usize * 2;
        if s.len() > cap {
            return Err((true, format!("text of {} bytes does not fit {} registers", s.len(), p.at.registers())));
        }
        let mut bytes = s.as_bytes().to_vec();
        bytes.resize(cap, 0);
        let words: Vec<u16> = bytes.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
        return Ok(WireWrite::Registers(denormalize(words, p.at.order)));
    }
    let x = match v {
        serde_json::Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        serde_json::Value::Bool(b) => *b as u8 as f64,
        serde_json::Value::String(s) => match s.trim().parse::<f64>() {
            Ok(x) => x,
            Err(_) => return bad(format!("{s:?} is not a number")),
        },
        _ => return bad(format!("{v} is not a number")),
    };
    if !x.is_finite() {
        return bad(format!("{v} is not a finite number"));
    }
    if let Some(lo) = p.meta.min() {
        if x < lo {
            return Err((true, format!("{x} is below the minimum {lo}")));
        }
    }
    if let Some(hi) = p.meta.max() {
        if x > hi {
            return Err((true, format!("{x} is above the maximum {hi}")));
        }
    }
    let raw = (x - p.meta.offset) / p.meta.scale;
    let int = |lo: f64, hi: f64| -> Result<f64, (bool, String)> {
        let r = raw.round();
        if (raw - r).abs() > 1e-6 * raw.abs().max(1.0) {
            return Err((false, format!("{x} is not a whole number of steps of {} for a {} register", p.meta.scale, p.at.data_type)));
        }
        if r < lo || r > hi {
            return Err((true, format!("{x} does not fit the {} register", p.at.data_type)));
        }
        Ok(r)
    };
    let be: Vec<u16> = match p.at.data_type {
        DataType::U16 => vec![int(0.0, 65535.0)? as u16],
        DataType::I16 => vec![int(-32768.0, 32767.0)? as i16 as u16],
        DataType::U32 => split(int(0.0, u32::MAX as f64)? as u64, 2),
        DataType::I32 => split(int(i32::MIN as f64, i32::MAX as f64)? as i64 as u32 as u64, 2),
        DataType::U64 => split(int(0.0, u64::MAX as f64)? as u64, 4),
        DataType::I64 => split(int(i64::MIN as f64, i64::MAX as f64)? as i64 as u64, 4),
        DataType::F32 => {
            if raw.abs() > f32::MAX as f64 {
                return Err((true, format!("{x} does not fit a f32 register")));
            }
            split((raw as f32).to_bits() as u64, 2)
        }
        DataType::F64 => split(raw.to_bits(), 4),
        DataType::Bool | DataType::Bit | DataType::String => unreachable!("handled above"),
    };
    Ok(WireWrite::Registers(denormalize(be, p.at.order)))
}

fn split(v: u64, words: usize) -> Vec<u16> {
    (0..words).rev().map(|i| (v >> (16 * i)) as u16).collect()
}

/// Inverse of `normalize` (both swaps are involutions).
fn denormalize(words: Vec<u16>, order: ByteOrder) -> Vec<u16> {
    normalize(&words, order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use enos_collector_config::modbus::ModbusAddress;
    use enos_collector_config::{Access, PointMeta};

    fn pt(t: DataType, order: ByteOrder) -> PointConfig {
        let mut meta = PointMeta::named("p");
        meta.access = Access::Rw;
        PointConfig::new(meta, ModbusAddress { order, ..ModbusAddress::new(Area::Holding, 0, t) })
    }

    #[test]
    fn byte_and_word_orders_of_a_float() {
        // -1234.5678f32 = 0xC49A522B
        let cases = [
            (ByteOrder::ABCD, [0xC49A, 0x522B]),
            (ByteOrder::CDAB, [0x522B, 0xC49A]),
            (ByteOrder::BADC, [0x9AC4, 0x2B52]),
            (ByteOrder::DCBA, [0x2B52, 0x9AC4]),
        ];
        for (o, w) in cases {
            let p = pt(DataType::F32, o);
            assert_eq!(decode(&p, &w, &[]).unwrap(), Value::Float(-1234.5677), "{o:?}");
            assert_eq!(encode(&p, &serde_json::json!(-1234.5677)).unwrap(), WireWrite::Registers(w.to_vec()), "{o:?}");
        }
    }

    #[test]
    fn integers_signed_scaled_and_64_bit() {
        let mut p = pt(DataType::I16, ByteOrder::ABCD);
        assert_eq!(decode(&p, &[0xFFFE], &[]).unwrap(), Value::Int(-2));
        p.meta.scale = 0.1;
        assert_eq!(decode(&p, &[2314], &[]).unwrap(), Value::Float(231.4));
        assert_eq!(encode(&p, &serde_json::json!(-0.2)).unwrap(), WireWrite::Registers(vec![0xFFFE]));
        let e = encode(&p, &serde_json::json!(0.25)).unwrap_err();
        assert!(!e.0 && e.1.contains("whole number of steps"), "{e:?}");
        let e = encode(&p, &serde_json::json!(4000)).unwrap_err();
        assert!(e.0, "{e:?}");
        let p = pt(DataType::U64, ByteOrder::DCBA);
        let w = [0x0807, 0x0605, 0x0403, 0x0201];
        assert_eq!(decode(&p, &w, &[]).unwrap(), Value::Int(0x0102030405060708));
        let p = pt(DataType::U64, ByteOrder::ABCD);
        assert_eq!(decode(&p, &[0xFFFF; 4], &[]).unwrap(), Value::UInt(u64::MAX));
    }

    #[test]
    fn bits_strings_and_ranges() {
        let mut p = pt(DataType::Bit, ByteOrder::ABCD);
        p.at.bit = Some(3);
        assert_eq!(decode(&p, &[0b1000], &[]).unwrap(), Value::Bool(true));
        assert_eq!(encode(&p, &serde_json::json!(true)).unwrap(), WireWrite::RegisterBit { bit: 3, on: true });
        let mut s = pt(DataType::String, ByteOrder::ABCD);
        s.at.length = Some(3);
        assert_eq!(decode(&s, &[0x4142, 0x4300, 0], &[]).unwrap(), Value::Str("ABC".into()));
        assert_eq!(encode(&s, &serde_json::json!("AB")).unwrap(), WireWrite::Registers(vec![0x4142, 0, 0]));
        assert!(encode(&s, &serde_json::json!("ABCDEFG")).unwrap_err().0);
        let mut r = pt(DataType::U16, ByteOrder::ABCD);
        r.meta.range = enos_collector_config::Range::new(None, Some(100.0));
        assert!(encode(&r, &serde_json::json!(101)).unwrap_err().1.contains("above the maximum 100"));
        assert!(!encode(&r, &serde_json::json!("x")).unwrap_err().0);
        assert!(decode(&pt(DataType::U32, ByteOrder::ABCD), &[1], &[]).is_err());
    }

    #[test]
    fn nan_and_infinity_are_decode_errors_naming_the_words() {
        let f32p = pt(DataType::F32, ByteOrder::ABCD);
        let e = decode(&f32p, &[0x7FC0, 0x0000], &[]).unwrap_err();
        assert_eq!(e, "not a number (NaN) (registers 7FC0 0000)");
        let e = decode(&f32p, &[0x7F80, 0x0000], &[]).unwrap_err();
        assert_eq!(e, "not a finite number (+infinity) (registers 7F80 0000)");
        let e = decode(&pt(DataType::F32, ByteOrder::CDAB), &[0x0000, 0xFF80], &[]).unwrap_err();
        assert_eq!(e, "not a finite number (-infinity) (registers 0000 FF80)");
        let e = decode(&pt(DataType::F64, ByteOrder::ABCD), &[0x7FF8, 0, 0, 0], &[]).unwrap_err();
        assert!(e.starts_with("not a number (NaN)"), "{e}");
        // a finite value that scaling pushes past f64
        let mut big = pt(DataType::F64, ByteOrder::ABCD);
        big.meta.scale = 10.0;
        let e = decode(&big, &[0x7FEF, 0xFFFF, 0xFFFF, 0xFFFF], &[]).unwrap_err();
        assert!(e.contains("+infinity) after scale and offset"), "{e}");
    }
}
