//! Property tests of the batch codec (docs/fault-campaign.md, "Fuzzing"): any samples come back
//! from `decode(finish())` exactly; any bytes (random, or a real batch damaged the ways a cache
//! record or a D-Bus message can be) decode to a batch or an error in words, never a panic, and
//! never allocate more than the densest real batch would expand to.
//!
//! Cases per property: `PROPTEST_CASES` (256 by default: seconds); long runs by hand, e.g.
//! `PROPTEST_CASES=200000 cargo test -p enos-batch --test fuzz --release`.

use enos_batch::{BatchBuilder, DecodedBatch, Flags, Quality, Value};
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts the bytes this thread holds, to find the peak of one decode (proptest runs each test's
/// cases on its thread; other tests' threads do not disturb the count).
struct Meter;

thread_local! {
    static HELD: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn held(delta: isize) {
    let _ = HELD.try_with(|h| {
        let now = h.get() + delta;
        h.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            held(l.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        held(-(l.size() as isize));
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            held(new as isize - l.size() as isize);
        }
        q
    }
}

#[global_allocator]
static METER: Meter = Meter;

/// The most bytes held at once while `f` ran, above what was held before.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = HELD.with(|h| h.get());
    PEAK.with(|p| p.set(base));
    let out = f();
    (out, (PEAK.with(|p| p.get()) - base).max(0) as usize)
}

/// The densest real batch: a series of bools costs 1/8 byte per sample and shares another
/// series' timestamps, and decodes to 8 (time) + 32 (value) + 1 (quality) bytes per sample.
/// Twice that, per input byte, plus a constant for the small vectors.
fn allocation_bound(input: usize) -> usize {
    2 * 41 * 8 * input + 64 * 1024
}

/// An error is said in words: no Rust debug output in it.
fn assert_words(e: &impl std::fmt::Display) {
    let s = e.to_string();
    assert!(!s.is_empty());
    for debug in ["Some(", "None", "Ok(", "Err(", " { ", "::"] {
        assert!(!s.contains(debug), "error message with Rust debug output: {s}");
    }
}

/// Decodes `bytes` as a cache record or D-Bus argument would be: never a panic, a bounded
/// allocation, an error in words.
fn decode_hostile(bytes: &[u8]) {
    let (r, peak) = peak_of(|| DecodedBatch::decode(bytes));
    assert!(peak <= allocation_bound(bytes.len()), "decoding {} bytes held {peak} bytes at once", bytes.len());
    match r {
        Ok(b) => {
            // What decoded is consistent: one quality and value per time, names in the dictionary.
            for s in &b.series {
                assert_eq!((s.quality.len(), s.values.len()), (s.ts.len(), s.ts.len()));
                assert!(s.flags.is_empty() || s.flags.len() == s.ts.len());
                assert!((s.device as usize) < b.dict.len() && (s.point as usize) < b.dict.len());
            }
        }
        Err(e) => assert_words(&e),
    }
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<u64>().prop_map(Value::UInt),
        // every bit pattern: NaNs, infinities, -0.0, subnormals
        any::<u64>().prop_map(|b| Value::Float(f64::from_bits(b))),
        // short decimals, the common case (231.4)
        (any::<i32>(), 0..7u32).prop_map(|(m, k)| Value::Float(m as f64 / 10f64.powi(k as i32))),
        prop_oneof![Just(0.0), Just(-0.0), Just(f64::MIN_POSITIVE), Just(9.0e15), Just(-1.0e300)].prop_map(Value::Float),
        ".{0,12}".prop_map(Value::Str),
        Just(Value::Null),
    ]
}

fn quality() -> impl Strategy<Value = Quality> {
    (0u8..7).prop_map(|q| Quality::from_u8(q).expect("0-6 are qualities"))
}

type Pushed = (u8, u8, u64, Value, Quality, u16);

/// Samples of a few devices and points (so series have several samples), times anywhere,
/// sometimes equal between points (shared timestamps), values of one kind per point or mixed.
fn samples() -> impl Strategy<Value = Vec<Pushed>> {
    let time = prop_oneof![any::<u64>(), (0u64..4).prop_map(|t| 1_700_000_000_000 + t * 1000)];
    let flags = prop_oneof![3 => Just(0u16), 1 => any::<u16>()];
    prop::collection::vec((0u8..3, 0u8..4, time, value(), quality(), flags), 0..60)
}

fn encode(samples: &[Pushed]) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    for (d, p, t, v, q, f) in samples {
        b.push_flagged(&format!("dev{d}"), &format!("p{p}"), *t, v.clone(), *q, Flags(*f));
    }
    b.finish()
}

/// Equal values, floats by their bits (so -0.0 and a NaN's payload count).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

/// Ways a stored or sent batch gets damaged.
#[derive(Debug, Clone)]
enum Damage {
    Flip {
        at: usize,
        mask: u8,
    },
    Set {
        at: usize,
        byte: u8,
    },
    /// A varint (a count, a length, an index) replaced by a hostile number.
    Varint {
        at: usize,
        v: u64,
    },
    /// A varint replaced by the largest count the reader takes from what is left (8 per byte).
    VarintMax {
        at: usize,
    },
    Cut {
        at: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
}

fn damage() -> impl Strategy<Value = Damage> {
    let hostile = prop_oneof![
        Just(0u64),
        Just(1),
        Just(127),
        Just(128),
        Just(u32::MAX as u64),
        Just(1 << 32),
        Just(u64::MAX / 2),
        Just(u64::MAX - 1),
        Just(u64::MAX),
        any::<u64>()
    ];
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(at, mask)| Damage::Flip { at, mask }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Damage::Set { at, byte }),
        (any::<usize>(), hostile).prop_map(|(at, v)| Damage::Varint { at, v }),
        any::<usize>().prop_map(|at| Damage::VarintMax { at }),
        any::<usize>().prop_map(|at| Damage::Cut { at }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(at, bytes)| Damage::Insert { at, bytes }),
    ]
}

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

fn apply(bytes: &mut Vec<u8>, d: &Damage) {
    if bytes.is_empty() {
        return;
    }
    let n = bytes.len();
    match d {
        Damage::Flip { at, mask } => bytes[at % n] ^= mask,
        Damage::Set { at, byte } => bytes[at % n] = *byte,
        Damage::Varint { at, v } => {
            // replace the varint starting at `at` (its continuation bytes included)
            let start = at % n;
            let end = (start..n).find(|&i| bytes[i] & 0x80 == 0).map_or(n, |i| i + 1);
            bytes.splice(start..end, varint(*v));
        }
        Damage::VarintMax { at } => {
            let start = at % n;
            let end = (start..n).find(|&i| bytes[i] & 0x80 == 0).map_or(n, |i| i + 1);
            let left = (n - end) as u64;
            bytes.splice(start..end, varint(left * 8 + 8));
        }
        Damage::Cut { at } => bytes.truncate(at % n),
        Damage::Insert { at, bytes: b } => {
            let at = at % (n + 1);
            bytes.splice(at..at, b.iter().copied());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// decode(encode(x)) == x: every sample, in its series, in arrival order, with its quality,
    /// its flags and its value to the bit.
    #[test]
    fn every_batch_decodes_to_what_was_pushed(s in samples()) {
        let bytes = encode(&s);
        let b = DecodedBatch::decode(&bytes).expect("a batch this release wrote decodes");
        let mut got = Vec::new();
        for series in &b.series {
            for i in 0..series.ts.len() {
                let f = series.flags.get(i).copied().unwrap_or(Flags::NONE);
                got.push((b.name(series.device).to_string(), b.name(series.point).to_string(), series.ts[i], series.values[i].clone(), series.quality[i], f.0));
            }
        }
        // The batch groups by series in first-seen order, each series in arrival order.
        let mut order: Vec<(u8, u8)> = Vec::new();
        for (d, p, ..) in &s {
            if !order.contains(&(*d, *p)) {
                order.push((*d, *p));
            }
        }
        let want: Vec<_> = order
            .iter()
            .flat_map(|k| s.iter().filter(move |x| (x.0, x.1) == *k))
            .map(|(d, p, t, v, q, f)| (format!("dev{d}"), format!("p{p}"), *t, v.clone(), *q, *f))
            .collect();
        prop_assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            prop_assert!(g.0 == w.0 && g.1 == w.1 && g.2 == w.2 && g.4 == w.4 && g.5 == w.5, "{:?} != {:?}", g, w);
            prop_assert!(same(&g.3, &w.3), "value {:?} came back as {:?}", w.3, g.3);
        }
    }

    /// Random bytes, with and without a batch's magic and versions in front.
    #[test]
    fn random_bytes_are_an_error_or_a_batch(head in prop_oneof![Just(Vec::new()), Just(b"EB\x02\x01\x00".to_vec()), Just(b"EB\x02\x02\x00".to_vec())],
                                            tail in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut bytes = head;
        bytes.extend(tail);
        decode_hostile(&bytes);
    }

    /// A real batch damaged one to four times: flipped or set bytes, a count, length or index
    /// replaced by a hostile number, cut short, bytes inserted.
    #[test]
    fn damaged_batches_are_an_error_or_a_batch(s in samples(), damages in prop::collection::vec(damage(), 1..5)) {
        let mut bytes = encode(&s);
        for d in &damages {
            apply(&mut bytes, d);
        }
        decode_hostile(&bytes);
    }
}

// ---- regressions, each failing before its fix: -0.0 found by the round-trip property, the
// others seen in the decoder while writing the damage property (which had not hit them) ----

/// A quality run of 2^64-1 samples after a first run: `q.len() + len` overflowed (a panic in a
/// debug build; in a release build the sum wrapped, passed the check and the decoder tried to
/// repeat the quality 2^64 times: out of memory, the uplink killed, and again at every start
/// while the record is in the cache).
#[test]
fn a_quality_run_beyond_the_samples_is_corrupt() {
    let mut b = b"EB\x02\x01\x00\x01\x01d\x01\x00\x00\x02\x00\x00\x00".to_vec();
    b.extend([2, 1, 0]);
    b.extend(varint(u64::MAX));
    b.extend([0, 2, 0, 0]);
    assert_eq!(DecodedBatch::decode(&b).unwrap_err().to_string(), "batch corrupt: quality runs exceed samples");
}

/// The same in the flags extension: a run of 2^64-1 flags after a first run.
#[test]
fn a_flag_run_beyond_the_samples_is_corrupt() {
    let mut b = BatchBuilder::new();
    b.push("d", "p", 1, Value::Int(1), Quality::Good);
    b.push("d", "p", 2, Value::Int(2), Quality::Good);
    let mut bytes = b.finish();
    assert_eq!(bytes.pop(), Some(0), "no extension");
    let mut ext = vec![1, 0, 2, 1, 0];
    ext.extend(varint(u64::MAX));
    ext.push(0);
    bytes.extend([1, 1, ext.len() as u8]);
    bytes.extend(ext);
    assert_eq!(DecodedBatch::decode(&bytes).unwrap_err().to_string(), "batch corrupt: flag runs exceed samples");
}

/// A series count as large as the reader takes (8 per byte left) reserved 104 bytes per series
/// up front: 832 bytes per input byte, more than any real batch decodes to.
#[test]
fn a_hostile_series_count_reserves_no_more_than_the_input_holds() {
    let rest = vec![0u8; 2000];
    let mut b = b"EB\x02\x01\x00\x01\x01d".to_vec();
    b.extend(varint(rest.len() as u64 * 8 + 8));
    b.extend(&rest);
    let (r, peak) = peak_of(|| DecodedBatch::decode(&b));
    assert!(r.is_err());
    assert!(peak <= allocation_bound(b.len()), "decoding {} bytes held {peak} bytes at once", b.len());
}

/// -0.0 took the scaled-decimal form (0 decimals) and came back as +0.0.
#[test]
fn negative_zero_keeps_its_sign() {
    let mut b = BatchBuilder::new();
    b.push("d", "p", 1, Value::Float(-0.0), Quality::Good);
    b.push("d", "p", 2, Value::Float(1.5), Quality::Good);
    let dec = DecodedBatch::decode(&b.finish()).unwrap();
    let Value::Float(x) = dec.series[0].values[0] else { panic!("{:?}", dec.series[0].values) };
    assert!(x == 0.0 && x.is_sign_negative(), "{x}");
}
