//! Property tests of the Modbus answer checks and the register codec (docs/fault-campaign.md,
//! "Fuzzing"): any answer PDU to any request is data of exactly the asked size, an exception or
//! a mismatch in words; any words decode to a finite value or a reason, for every type and byte
//! order of a point the configuration accepts; values written come back from their words.
//!
//! Cases per property: `PROPTEST_CASES` (256 by default); long runs by hand, e.g.
//! `PROPTEST_CASES=100000 cargo test -p enos-drivers --lib modbus::fuzz --release`.

use super::codec::{self, WireWrite};
use super::frame::{answer_pdu_len, parse_answer, request_pdu, Reply};
use super::link::{Answer, Op};
use enos_batch::Value;
use enos_collector_config::modbus::{Area, ByteOrder, DataType, ModbusAddress, ModbusPoint};
use enos_collector_config::{Access, PointMeta};
use proptest::prelude::*;

/// An error is said in words: no Rust debug output in it (the input it echoes may hold
/// anything, so only what debug output of ours would add is looked for).
fn assert_words(s: &str) {
    for debug in ["Some(", "None", "Ok(", "Err("] {
        assert!(!s.contains(debug), "error message with Rust debug output: {s}");
    }
}

fn area() -> impl Strategy<Value = Area> {
    prop::sample::select(vec![Area::Coil, Area::Discrete, Area::Input, Area::Holding])
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (area(), any::<u16>(), 1u16..=2000).prop_map(|(area, start, count)| Op::Read { area, start, count }),
        (any::<u16>(), any::<bool>(), any::<bool>()).prop_map(|(addr, on, multiple)| Op::WriteCoil { addr, on, multiple }),
        (any::<u16>(), prop::collection::vec(any::<u16>(), 1..=123), any::<bool>())
            .prop_map(|(addr, words, multiple)| Op::WriteRegisters { addr, words, multiple }),
    ]
}

const TYPES: [DataType; 11] = [
    DataType::U16,
    DataType::I16,
    DataType::U32,
    DataType::I32,
    DataType::U64,
    DataType::I64,
    DataType::F32,
    DataType::F64,
    DataType::Bit,
    DataType::String,
    DataType::Bool,
];

/// A point of one of `types` as validation lets it through (`ModbusAddress::check`,
/// `PointMeta::check`); `plain`: no scale, offset or decimals.
fn point_of(types: &[DataType], plain: bool) -> impl Strategy<Value = ModbusPoint> {
    let orders = prop::sample::select(vec![ByteOrder::ABCD, ByteOrder::CDAB, ByteOrder::BADC, ByteOrder::DCBA]);
    let (scale, offset, decimals) = if plain {
        (Just(1.0).boxed(), Just(0.0).boxed(), Just(None).boxed())
    } else {
        (
            prop_oneof![3 => Just(1.0), 1 => prop::sample::select(vec![0.1, 0.01, 10.0, -1.0, 2.5, 1e-6, 1e6])].boxed(),
            prop_oneof![3 => Just(0.0), 1 => prop::sample::select(vec![-40.0, 0.5, 1000.0])].boxed(),
            prop_oneof![3 => Just(None), 1 => (0u8..10).prop_map(Some)].boxed(),
        )
    };
    (prop::sample::select(types.to_vec()), orders, 0u8..16, 1u16..=125, scale, offset, decimals).prop_map(
        |(t, order, bit, len, scale, offset, decimals)| {
            let area = if t == DataType::Bool { Area::Coil } else { Area::Holding };
            let mut meta = PointMeta::named("p");
            (meta.scale, meta.offset, meta.decimals, meta.access) = (scale, offset, decimals, Access::Rw);
            let at = ModbusAddress {
                order,
                bit: (t == DataType::Bit).then_some(bit),
                length: (t == DataType::String).then_some(len),
                ..ModbusAddress::new(area, 0, t)
            };
            ModbusPoint::new(meta, at)
        },
    )
}

fn point() -> impl Strategy<Value = ModbusPoint> {
    point_of(&TYPES, false)
}

fn json() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        ".{0,20}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
        Just(serde_json::json!([1, 2])),
        Just(serde_json::json!({"a": 1})),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// Any PDU as the answer to any request: data of the asked size, an exception, or a
    /// mismatch said in words.
    #[test]
    fn any_answer_is_data_of_the_asked_size_or_a_mismatch(op in op(), pdu in prop::collection::vec(any::<u8>(), 0..260), fc_right in any::<bool>()) {
        let mut pdu = pdu;
        if fc_right && !pdu.is_empty() {
            pdu[0] = request_pdu(&op)[0];
        }
        match parse_answer(&op, &pdu) {
            Ok(Reply::Data(Answer::Words(w))) => assert!(matches!(op, Op::Read { count, .. } if w.len() == count as usize), "{} words", w.len()),
            Ok(Reply::Data(Answer::Bits(b))) => assert!(matches!(op, Op::Read { count, .. } if b.len() == count as usize), "{} bits", b.len()),
            Ok(Reply::Data(Answer::Written)) => assert!(!matches!(op, Op::Read { .. }), "a read acknowledged as a write"),
            Ok(Reply::Exception(_)) => prop_assert!(pdu[0] & 0x80 != 0),
            Err(e) => assert_words(&e.0),
        }
        match answer_pdu_len(&pdu) {
            Ok(Some(n)) => prop_assert!(n >= 2),
            Ok(None) => prop_assert!(pdu.len() < 2),
            Err(e) => assert_words(&e.0),
        }
    }

    /// A device's answer to a read, as the standard builds it, gives back its registers or bits.
    #[test]
    fn read_answers_give_back_what_was_served(area in area(), count in 1u16..=125, data in prop::collection::vec(any::<u16>(), 125)) {
        let op = Op::Read { area, start: 0, count };
        let mut pdu = vec![request_pdu(&op)[0]];
        let want = if area.is_bits() {
            let bits: Vec<bool> = (0..count as usize).map(|i| data[i] & 1 == 1).collect();
            let mut bytes = vec![0u8; bits.len().div_ceil(8)];
            for (i, b) in bits.iter().enumerate() {
                bytes[i / 8] |= u8::from(*b) << (i % 8);
            }
            pdu.push(bytes.len() as u8);
            pdu.extend(bytes);
            Answer::Bits(bits)
        } else {
            let words = data[..count as usize].to_vec();
            pdu.push((count * 2) as u8);
            pdu.extend(words.iter().flat_map(|w| w.to_be_bytes()));
            Answer::Words(words)
        };
        prop_assert_eq!(answer_pdu_len(&pdu), Ok(Some(pdu.len())));
        prop_assert_eq!(parse_answer(&op, &pdu), Ok(Reply::Data(want)));
    }

    /// Any words for any point: a value (finite when a number) or a reason in words.
    #[test]
    fn any_words_decode_to_a_value_or_a_reason(p in point(), words in prop::collection::vec(any::<u16>(), 0..130), bit in any::<bool>()) {
        match codec::decode(&p, &words, &[bit]) {
            Ok(Value::Float(f)) => prop_assert!(f.is_finite()),
            Ok(_) => {}
            Err(e) => assert_words(&e),
        }
    }

    /// Any JSON written to any point: registers of the point's size, or a refusal in words.
    #[test]
    fn any_written_value_is_registers_or_a_refusal(p in point(), v in json()) {
        match codec::encode(&p, &v) {
            Ok(WireWrite::Registers(w)) => prop_assert_eq!(w.len(), p.at.registers() as usize),
            Ok(_) => {}
            Err((_, e)) => assert_words(&e),
        }
    }

    /// A whole number written to an unscaled integer point of any byte order comes back from
    /// the registers written (64-bit values within the 2^53 a JSON number carries exactly).
    #[test]
    fn integers_written_decode_back(p in point_of(&TYPES[..6], true), n in any::<i64>()) {
        let t = p.at.data_type;
        let (lo, hi): (i128, i128) = match t {
            DataType::U16 => (0, 65535),
            DataType::I16 => (-32768, 32767),
            DataType::U32 => (0, u32::MAX as i128),
            DataType::I32 => (i32::MIN as i128, i32::MAX as i128),
            _ => (-(1 << 53), 1 << 53),
        };
        let lo = if t == DataType::U64 { 0 } else { lo };
        let n = lo + (n as i128).rem_euclid(hi - lo + 1);
        let Ok(WireWrite::Registers(w)) = codec::encode(&p, &serde_json::json!(n as i64)) else {
            return Err(TestCaseError::fail(format!("{n} refused for {t}")));
        };
        prop_assert_eq!(codec::decode(&p, &w, &[]), Ok(Value::Int(n as i64)));
    }

    /// A float written to an unscaled f32 or f64 point comes back (f32: as the shortest decimal
    /// of the f32 it became).
    #[test]
    fn floats_written_decode_back(p in point_of(&TYPES[6..8], true), x in any::<f64>().prop_filter("finite", |x| x.is_finite())) {
        let t = p.at.data_type;
        let x = if t == DataType::F32 { f64::from(x as f32) } else { x };
        prop_assume!(x.is_finite());
        let Ok(WireWrite::Registers(w)) = codec::encode(&p, &serde_json::json!(x)) else {
            return Err(TestCaseError::fail(format!("{x} refused for {t}")));
        };
        let want = if t == DataType::F32 { format!("{}", x as f32).parse::<f64>().unwrap() } else { x };
        prop_assert_eq!(codec::decode(&p, &w, &[]), Ok(Value::Float(want)));
    }
}
