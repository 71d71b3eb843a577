//! Property tests of the DL/T 645 codec (docs/fault-campaign.md, "Fuzzing"): frames round-trip
//! and are found again inside any noise; any bytes scan into frames, junk with a reason and a
//! wait for more, always moving on; any value bytes decode to a reading or a reason; the texts a
//! configuration gives (identifier, format, address) are accepted only in their documented form.
//!
//! Cases per property: `PROPTEST_CASES` (256 by default); long runs by hand, e.g.
//! `PROPTEST_CASES=100000 cargo test -p enos-dlt645 --test fuzz --release`.

use enos_dlt645::frame::{scan, Frame, Scan};
use enos_dlt645::{Address, Format, Identifier};
use proptest::prelude::*;

/// An error is said in words: no Rust debug output in it (the input it echoes may hold
/// anything, so only what debug output of ours would add is looked for).
fn assert_words(s: &str) {
    for debug in ["Some(", "None", "Ok(", "Err("] {
        assert!(!s.contains(debug), "error message with Rust debug output: {s}");
    }
}

fn frame() -> impl Strategy<Value = Frame> {
    (any::<[u8; 6]>(), any::<u8>(), prop::collection::vec(any::<u8>(), 0..=255)).prop_map(|(address, control, data)| Frame {
        address,
        control,
        data,
    })
}

/// Scans a whole buffer as the line does: every frame found, each step moving on.
fn scan_all(buf: &[u8]) -> Vec<Frame> {
    let mut rest = buf;
    let mut found = Vec::new();
    loop {
        match scan(rest) {
            Scan::Frame { frame, used } => {
                assert!(used > 0 && used <= rest.len());
                found.push(frame);
                rest = &rest[used..];
            }
            Scan::Junk { len, why } => {
                assert!(len > 0 && len <= rest.len(), "junk of {len} in {} bytes", rest.len());
                assert_words(why);
                rest = &rest[len..];
            }
            Scan::Incomplete => return found,
        }
    }
}

/// Noise rich in the bytes that matter (68, 16, FE).
fn noise() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![4 => any::<u8>(), 1 => Just(0x68u8), 1 => Just(0x16u8), 1 => Just(0xFEu8)], 0..80)
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// A frame with any preamble scans back whole.
    #[test]
    fn frames_round_trip(f in frame(), preamble in 0u8..=4) {
        let wire = f.encode(preamble);
        prop_assert_eq!(scan(&wire), Scan::Frame { frame: f, used: wire.len() });
    }

    /// A frame after noise is found: the noise is skipped, never the frame (noise may hold a
    /// frame of its own, found first).
    #[test]
    fn a_frame_after_noise_is_found(f in frame(), before in noise(), preamble in 0u8..=4) {
        let mut buf = before;
        // noise ending in a frame start would make the frame its data; a 16 ends any candidate
        buf.push(0x16);
        buf.extend(f.encode(preamble));
        let found = scan_all(&buf);
        prop_assert_eq!(found.last(), Some(&f), "in {:02X?}", buf);
    }

    /// Any bytes: frames, junk with a reason, or a wait; only a possible frame start waits.
    #[test]
    fn any_bytes_scan(buf in prop::collection::vec(prop_oneof![4 => any::<u8>(), 1 => Just(0x68u8), 1 => Just(0x16u8), 1 => Just(0xFEu8)], 0..600)) {
        scan_all(&buf);
    }

    /// Any value bytes of any format: a reading (dates and times in range) or a reason.
    #[test]
    fn any_value_bytes_decode_or_say_why(text in prop::sample::select(vec!["XXXXXX.XX", "XX.XXXX", "XXX.X", "NNNN", "XXXXXXXXXXXXXXXX", "X", "XXXXXXXXXXXXXXX.X", "YYMMDDWW", "YYMMDD", "hhmmss", "YYMMDDhhmm", "YYMMDDhhmmss"]),
                                         signed in any::<bool>(), bytes in prop::collection::vec(any::<u8>(), 0..10)) {
        let Ok(format) = Format::parse(text, signed) else { return Ok(()) };
        match format.decode(&bytes) {
            Ok(r) => {
                prop_assert_eq!(bytes.len(), format.len());
                if let Some(v) = r.as_f64() {
                    prop_assert!(v.is_finite());
                }
            }
            Err(e) => assert_words(&e),
        }
    }

    /// A data identifier is exactly 8 hexadecimal digits, shown as given (upper case).
    #[test]
    fn identifiers_are_eight_hex_digits(text in "[ ]?[0-9a-fA-F+\\-x ]{6,9}[ ]?") {
        match Identifier::parse(&text) {
            Ok(id) => prop_assert_eq!(id.to_string(), text.trim().to_uppercase()),
            Err(e) => assert_words(&e),
        }
    }

    /// A meter address is up to 12 digits (A for a wildcard), shown with leading zeros.
    #[test]
    fn addresses_are_twelve_digits(text in "[0-9aAbB+\\- ]{0,14}") {
        match Address::parse(&text) {
            Ok(a) => prop_assert_eq!(a.to_string(), format!("{:0>12}", text.trim().to_uppercase())),
            Err(e) => assert_words(&e),
        }
    }

    /// Formats as the standard writes them, in any spelling: refused in words or shown back.
    #[test]
    fn formats_parse_or_say_why(text in "[XxNn.]{0,20}|YYMMDD(WW|hhmm|hhmmss)?|hhmmss|.{0,8}", signed in any::<bool>()) {
        match Format::parse(&text, signed) {
            Ok(f) => {
                prop_assert!((1..=8).contains(&f.len()));
                prop_assert_eq!(Format::parse(f.to_string().trim_start_matches("signed "), signed), Ok(f));
            }
            Err(e) => assert_words(&e),
        }
    }
}

/// Found reading `Identifier::parse` for the property above: `u32::from_str_radix` takes a
/// leading '+', so "+2010100" (8 characters, 7 digits) was read as 02010100.
#[test]
fn a_sign_is_no_hex_digit() {
    let e = Identifier::parse("+2010100").unwrap_err();
    assert!(e.contains("8 hexadecimal digits"), "{e}");
}

/// Found by `a_frame_after_noise_is_found`: a 68 in noise, a 68 seven bytes on and a length that
/// ends on the real answer's end byte 16, with a checksum that happens to hold, was taken as a
/// frame: the answer inside it was lost (and the false frame judged and discarded).
#[test]
fn a_header_in_noise_does_not_swallow_the_frame_it_spans() {
    let good = Frame { address: [0x12; 6], control: 0x91, data: vec![0, 1, 1, 2] }.encode(0);
    let mut buf = vec![0x68, 0, 2, 3, 4, 5, 6, 0x68, 0x91, (good.len() - 2) as u8];
    buf.extend_from_slice(&good);
    // the one address byte that makes the false header's checksum hold
    let cs_at = buf.len() - 2;
    let sum = buf[..cs_at].iter().fold(0u8, |s, b| s.wrapping_add(*b));
    buf[1] = buf[cs_at].wrapping_sub(sum);
    let found = scan_all(&buf);
    assert_eq!(found, [Frame { address: [0x12; 6], control: 0x91, data: vec![0, 1, 1, 2] }]);
}
