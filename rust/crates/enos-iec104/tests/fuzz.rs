//! Property tests of the IEC 104 decoders (docs/fault-campaign.md, "Fuzzing"): APCI frames and
//! command ASDUs round-trip; any octets a station sends, cut into frames as the link cuts them,
//! give frames, objects and readings or a fault in words, never a panic; CP56Time2a round-trips
//! over its century.
//!
//! Cases per property: `PROPTEST_CASES` (256 by default); long runs by hand, e.g.
//! `PROPTEST_CASES=100000 cargo test -p enos-iec104 --test fuzz --release`.

use enos_iec104::apci::{self, Apdu};
use enos_iec104::asdu::{self, Asdu, CommandValue, TypeId};
use enos_iec104::time;
use proptest::prelude::*;

/// An error is said in words: no Rust debug output in it.
fn assert_words(s: &str) {
    for debug in ["Some(", "None", "Ok(", "Err(", " { ", "::"] {
        assert!(!s.contains(debug), "error message with Rust debug output: {s}");
    }
}

/// Everything the link does with a received frame: the APCI, the ASDU, every object's reading.
fn take_frame(frame: &[u8], offset_min: i32) {
    match apci::decode(frame) {
        Ok(Apdu::I { asdu, .. }) => match Asdu::decode(asdu, frame) {
            Ok(a) => {
                let mut n = 0;
                for o in a.objects() {
                    n += 1;
                    assert!(o.ioa <= 0xff_ffff);
                    match asdu::reading(a.header.type_id, o.element, offset_min) {
                        Ok(_) => {}
                        Err(e) => assert_words(&e.to_string()),
                    }
                    let _ = asdu::command_is_select(a.header.type_id, o.element);
                }
                assert_eq!(n, a.header.count as usize);
            }
            Err(e) => assert_words(&e.to_string()),
        },
        Ok(_) => {}
        Err(e) => assert_words(&e.to_string()),
    }
}

/// An I frame of a known monitor type with a plausible header (right sizes more often than
/// not), or random octets: what a station, a confused one or a stranger could send.
fn station_octets() -> impl Strategy<Value = Vec<u8>> {
    let types = prop::sample::select(vec![
        1u8, 3, 5, 7, 9, 11, 13, 15, 30, 31, 32, 33, 34, 35, 36, 37, 45, 46, 47, 48, 49, 50, 51, 70, 100, 101, 103, 2, 200,
    ]);
    let asdu = (types, any::<bool>(), 1u8..6, any::<u8>(), any::<u16>(), prop::collection::vec(any::<u8>(), 0..120), any::<bool>())
        .prop_map(|(t, sq, count, cot, ca, body, exact)| {
            let mut a = vec![t, count | if sq { 0x80 } else { 0 }, cot, 0];
            a.extend(ca.to_le_bytes());
            a.extend(&body);
            if exact {
                // the size the header announces, so objects and time tags get decoded
                if TypeId::from_u8(t).is_some() {
                    let size = asdu::Asdu::decode(&a, &[]).err().and_then(|e| match e.kind {
                        enos_iec104::DecodeErrorKind::WrongSize { need, .. } => Some(need),
                        _ => None,
                    });
                    if let Some(need) = size {
                        a.truncate(6);
                        a.extend(body.iter().copied().cycle().take(need));
                        if body.is_empty() {
                            a.resize(6 + need, 0);
                        }
                    }
                }
            }
            a.truncate(249);
            let mut frame = Vec::new();
            apci::encode_i(1, 2, &a, &mut frame);
            frame
        });
    prop_oneof![3 => asdu, 1 => prop::collection::vec(any::<u8>(), 0..300)]
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// I, S and U frames come back as sent (sequence numbers modulo 2^15).
    #[test]
    fn apci_frames_round_trip(send in 0u16..32768, recv in 0u16..32768, asdu in prop::collection::vec(any::<u8>(), 1..=249)) {
        let mut out = Vec::new();
        apci::encode_i(send, recv, &asdu, &mut out);
        prop_assert_eq!(apci::frame_len(&out), Ok(Some(out.len())));
        prop_assert_eq!(apci::decode(&out), Ok(Apdu::I { send, recv, asdu: &asdu[..] }));
        let s = apci::encode_s(recv);
        prop_assert_eq!(apci::decode(&s), Ok(Apdu::S { recv }));
    }

    /// A stream of frames and noise read as the link reads it: the length from the first two
    /// octets, then the whole frame decoded; a frame that cannot start skips the stream (the
    /// link drops the connection there).
    #[test]
    fn any_octets_are_frames_or_faults(chunks in prop::collection::vec(station_octets(), 1..6), offset in -840i32..=840) {
        let stream: Vec<u8> = chunks.concat();
        let mut rest = &stream[..];
        while !rest.is_empty() {
            match apci::frame_len(rest) {
                Ok(Some(n)) => {
                    prop_assert!((6..=255).contains(&n));
                    if rest.len() < n {
                        break;
                    }
                    take_frame(&rest[..n], offset);
                    rest = &rest[n..];
                }
                Ok(None) => break,
                Err(e) => {
                    assert_words(&e.to_string());
                    break;
                }
            }
        }
        for c in &chunks {
            take_frame(c, offset);
        }
    }

    /// Commands encode to ASDUs that decode with their type, address and select bit.
    #[test]
    fn commands_decode_as_encoded(v in prop_oneof![
            any::<bool>().prop_map(CommandValue::Single),
            any::<bool>().prop_map(CommandValue::Double),
            any::<bool>().prop_map(CommandValue::Step),
            (-32768i32..32768).prop_map(|n| CommandValue::Normalized(n as f64 / 32768.0)),
            any::<i16>().prop_map(CommandValue::Scaled),
            any::<f32>().prop_map(CommandValue::Float),
            any::<u32>().prop_map(CommandValue::Bitstring)],
        ca in any::<u16>(), ioa in 0u32..=0xff_ffff, select in any::<bool>()) {
        let select = select && !matches!(v, CommandValue::Bitstring(_));
        let a = asdu::command(v, ca, ioa, 0, select, 0).expect("a command in range encodes");
        let d = Asdu::decode(&a, &a).expect("our command decodes");
        prop_assert_eq!((d.header.type_id, d.header.ca, d.header.count), (v.type_id(), ca, 1));
        let o: Vec<_> = d.objects().collect();
        prop_assert_eq!(o[0].ioa, ioa);
        prop_assert_eq!(asdu::command_is_select(d.header.type_id, o[0].element), select);
    }

    /// CP56Time2a: every millisecond of 2000-2099 comes back, at any station offset.
    #[test]
    fn time_tags_round_trip(ms in 946_684_800_000i64..4_102_444_800_000, offset in -840i32..=840) {
        if let Some(b) = time::encode(ms, offset) {
            prop_assert_eq!(time::decode(&b, offset).map(|t| t.unix_ms), Ok(ms));
        }
    }

    /// Any 7 octets: a time or the reason it is none.
    #[test]
    fn any_time_octets_are_a_time_or_a_fault(b in any::<[u8; 7]>(), offset in -840i32..=840) {
        match time::decode(&b, offset) {
            Ok(t) => prop_assert_eq!(time::decode(&time::encode(t.unix_ms, offset).expect("2000-2099"), offset).map(|u| u.unix_ms), Ok(t.unix_ms)),
            Err(e) => assert_words(&e.to_string()),
        }
    }
}
