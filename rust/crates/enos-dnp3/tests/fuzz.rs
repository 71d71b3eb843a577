//! Property tests of the DNP3 decoders (docs/fault-campaign.md, "Fuzzing"): frames and fragments
//! round-trip through the link and transport layers; any octets, in any split, give frames or
//! faults in words and the link decoder always moves on; the object parser never panics and
//! answers any header with objects or a fault.
//!
//! Cases per property: `PROPTEST_CASES` (256 by default); long runs by hand, e.g.
//! `PROPTEST_CASES=100000 cargo test -p enos-dnp3 --test fuzz --release`.

use enos_dnp3::{app, link, objects, transport, DecodeErrorKind};
use proptest::prelude::*;

fn frame() -> impl Strategy<Value = link::Frame> {
    (any::<u8>(), any::<u16>(), any::<u16>(), prop::collection::vec(any::<u8>(), 0..=link::MAX_DATA))
        .prop_map(|(control, dest, src, data)| link::Frame { control, dest, src, data })
}

/// An error is said in words: no Rust debug output in it.
fn assert_words(s: &str) {
    for debug in ["Some(", "None", "Ok(", "Err(", " { ", "::"] {
        assert!(!s.contains(debug), "error message with Rust debug output: {s}");
    }
}

/// Object headers the parser knows, with counts, ranges and prefixes of every qualifier, then
/// random octets: what a confused or hostile outstation could send.
fn object_octets() -> impl Strategy<Value = Vec<u8>> {
    let groups = prop::sample::select(vec![1u8, 2, 3, 4, 10, 11, 12, 20, 21, 22, 23, 30, 32, 40, 41, 42, 50, 51, 52, 60, 80, 99]);
    let qualifiers = prop::sample::select(vec![0x00u8, 0x01, 0x02, 0x06, 0x07, 0x08, 0x09, 0x17, 0x18, 0x19, 0x27, 0x28, 0x29, 0x39, 0x5b]);
    let header = (groups, 0u8..12, qualifiers, prop::collection::vec(any::<u8>(), 0..10)).prop_map(|(g, v, q, mut range)| {
        let mut h = vec![g, v, q];
        h.append(&mut range);
        h
    });
    (prop::collection::vec(header, 1..4), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(headers, tail)| {
        let mut out: Vec<u8> = headers.concat();
        out.extend(tail);
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// Frames encoded, put in a stream after junk and read back in arbitrary pieces: the same
    /// frames, the junk reported as skipped octets and nothing else.
    #[test]
    fn frames_come_back_whatever_the_pieces(frames in prop::collection::vec(frame(), 1..4),
                                            junk in prop::collection::vec(any::<u8>(), 0..20),
                                            cuts in prop::collection::vec(1usize..64, 1..40)) {
        // junk without 05 64 in it, so what is skipped is exactly the junk
        let junk: Vec<u8> = junk.into_iter().filter(|b| *b != 0x05).collect();
        let mut stream = junk.clone();
        for f in &frames {
            stream.extend(f.encode());
        }
        let mut d = link::Decoder::default();
        let mut got = Vec::new();
        let (mut at, mut i) = (0, 0);
        while at < stream.len() {
            let n = cuts[i % cuts.len()].min(stream.len() - at);
            d.push(&stream[at..at + n]);
            at += n;
            i += 1;
            while let Some(r) = d.next_frame() {
                got.push(r);
            }
        }
        // the junk is reported as skipped (in as many reports as pieces it came in), then the frames
        let skipped: usize = got.iter().map(|r| match r { Err(e) => match e.kind { DecodeErrorKind::Garbage(n) => n, _ => usize::MAX / 2 }, Ok(_) => 0 }).sum();
        prop_assert_eq!(skipped, junk.len());
        let got: Vec<link::Frame> = got.into_iter().filter_map(Result::ok).collect();
        prop_assert_eq!(got, frames);
        prop_assert_eq!(d.pending(), 0);
    }

    /// Any octets: the decoder returns frames or faults, each fault consumes octets, nothing
    /// is held back but the start of a frame that may still come.
    #[test]
    fn any_octets_are_frames_or_faults(bytes in prop::collection::vec(prop_oneof![3 => any::<u8>(), 1 => Just(0x05u8), 1 => Just(0x64u8)], 0..600)) {
        let mut d = link::Decoder::default();
        d.push(&bytes);
        let mut rounds = 0;
        while let Some(r) = d.next_frame() {
            if let Err(e) = r {
                assert_words(&e.to_string());
            }
            rounds += 1;
            prop_assert!(rounds <= bytes.len() + 1, "the decoder does not move on");
        }
        // at most one frame's worth of octets waits (10 header + 250 data + 32 CRC octets)
        prop_assert!(d.pending() < 292 + 2, "{} octets held", d.pending());
    }

    /// A fragment split into segments comes back whole; any segments give a fragment, nothing,
    /// or a fault, and never a fragment beyond the limit.
    #[test]
    fn fragments_reassemble(fragment in prop::collection::vec(any::<u8>(), 0..2000), seq in 0u8..64,
                            noise in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20)) {
        let mut s = seq;
        let segments = transport::segments(&fragment, &mut s);
        let mut r = transport::Reassembler::new(4096);
        let mut done = None;
        for seg in &segments {
            prop_assert!(done.is_none());
            done = r.push(seg).expect("our own segments are in order");
        }
        prop_assert_eq!(done, Some(fragment));
        let mut r = transport::Reassembler::new(1000);
        for seg in noise {
            match r.push(&seg) {
                Ok(Some(f)) => prop_assert!(f.len() <= 1000),
                Ok(None) => {}
                Err(e) => assert_words(&e.to_string()),
            }
        }
    }

    /// Object octets after a response header: objects or a fault in words, never a panic.
    #[test]
    fn object_headers_are_objects_or_faults(objs in object_octets(), function in prop_oneof![Just(129u8), Just(130), any::<u8>()]) {
        let mut fragment = vec![0xC0, function, 0, 0];
        fragment.extend(&objs);
        match app::parse_response(&fragment) {
            Ok(resp) => {
                if let Err(e) = objects::parse(resp.objects) {
                    assert_words(&e.to_string());
                }
            }
            Err(e) => assert_words(&e.to_string()),
        }
    }
}

/// Seen in the object parser while writing `object_headers_are_objects_or_faults` (which had not
/// hit it): a range qualifier 0x02 (4-octet start and
/// stop) from 0 to 0xFFFFFFFF counted 2^32 objects in a u32: a panic (debug) or a count of 0
/// that read nothing and reported no fault (release).
#[test]
fn a_range_of_every_index_is_a_fault() {
    let e = objects::parse(&[30, 1, 0x02, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "range 0..4294967295 of g30v1 names 4294967296 objects, more than a fragment can carry: 1e 01 02 00 00 00 00 ff ff ff ff"
    );
}
