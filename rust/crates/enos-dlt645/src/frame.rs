//! The DL/T 645-2007 frame: `FE`×0-4 (wake-up preamble), `68`, address A0..A5, `68`, control,
//! length, data (+0x33 per byte on the wire), checksum (sum mod 256 from the first `68`), `16`.
//!
//! [`scan`] takes frames out of a byte stream one at a time and says what it skipped, so the line
//! can count and log it; it never panics and never reads past what it was given.

use std::fmt;

/// Frame start and end bytes, and the wake-up byte a sender may put in front.
const START: u8 = 0x68;
const END: u8 = 0x16;
const WAKE: u8 = 0xFE;
/// Header (68 A0..A5 68 C L) and trailer (CS 16) around the data.
const HEADER: usize = 10;
const OVERHEAD: usize = HEADER + 2;

/// Control codes (function in the low five bits; D7 reply, D6 abnormal, D5 follow-up frames).
pub mod control {
    pub const BROADCAST_TIME: u8 = 0x08;
    pub const READ: u8 = 0x11;
    pub const READ_FOLLOW_UP: u8 = 0x12;
    pub const READ_ADDRESS: u8 = 0x13;
    pub const REPLY: u8 = 0x80;
    pub const ABNORMAL: u8 = 0x40;
    pub const MORE_FOLLOWS: u8 = 0x20;
    pub const FUNCTION: u8 = 0x1F;
}

/// The order in which a meter puts a multi-byte field (its address, the broadcast time) on the
/// wire. The standard sends the low byte first; some meters (and the PyPI `dlt645` 3.2.0 peer)
/// send it in the order it is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FieldOrder {
    #[default]
    LowFirst,
    AsWritten,
}

impl FieldOrder {
    /// `bytes` in written order → wire order, or back (the mapping is its own inverse).
    pub fn wire<const N: usize>(self, mut bytes: [u8; N]) -> [u8; N] {
        if self == FieldOrder::LowFirst {
            bytes.reverse();
        }
        bytes
    }
}

/// A meter address: 12 BCD digits as written on the meter (`A` digits for the wildcard).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Address(pub [u8; 6]);

impl Address {
    /// Every meter on the line (broadcast time sync).
    pub const BROADCAST: Address = Address([0x99; 6]);
    /// Whichever meter is there (read address on a line with one meter).
    pub const WILDCARD: Address = Address([0xAA; 6]);

    /// Parses up to 12 digits (fewer are padded with leading zeros, as meters print them).
    pub fn parse(text: &str) -> Result<Address, String> {
        let t = text.trim();
        if t.is_empty() || t.len() > 12 || !t.bytes().all(|b| b.is_ascii_digit() || b == b'A' || b == b'a') {
            return Err(format!("meter address \"{text}\": up to 12 decimal digits expected (A for a wildcard digit)"));
        }
        let digits: Vec<u8> = format!("{t:0>12}").bytes().map(|b| if b.is_ascii_digit() { b - b'0' } else { 0xA }).collect();
        let mut a = [0u8; 6];
        for (i, pair) in digits.chunks(2).enumerate() {
            a[i] = (pair[0] << 4) | pair[1];
        }
        Ok(Address(a))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02X}"))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A frame as it travels: address bytes in wire order, data with the 0x33 offset removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub address: [u8; 6],
    pub control: u8,
    pub data: Vec<u8>,
}

impl Frame {
    /// The bytes to send, with `preamble` wake-up bytes (at most 4) in front.
    /// Data longer than 255 bytes cannot be framed; callers build only short requests.
    pub fn encode(&self, preamble: u8) -> Vec<u8> {
        debug_assert!(self.data.len() <= 255);
        let mut out = vec![WAKE; preamble.min(4) as usize];
        let start = out.len();
        out.push(START);
        out.extend_from_slice(&self.address);
        out.extend_from_slice(&[START, self.control, self.data.len() as u8]);
        out.extend(self.data.iter().map(|b| b.wrapping_add(0x33)));
        let sum = checksum(&out[start..]);
        out.extend_from_slice(&[sum, END]);
        out
    }
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b))
}

/// What [`scan`] found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// A whole frame in the first `used` bytes (its preamble included).
    Frame { frame: Frame, used: usize },
    /// The first `len` bytes are not (part of) a frame; `why` says what was wrong.
    Junk { len: usize, why: &'static str },
    /// The buffer holds the beginning of what may be a frame: read more.
    Incomplete,
}

/// Looks at the start of `buf`: a frame, bytes to skip, or too little to tell.
pub fn scan(buf: &[u8]) -> Scan {
    let wake = buf.iter().take_while(|b| **b == WAKE).count();
    if wake > 4 {
        return Scan::Junk { len: wake - 4, why: "more than 4 wake-up bytes FE" };
    }
    let rest = &buf[wake..];
    let Some(&first) = rest.first() else {
        return Scan::Incomplete;
    };
    if first != START {
        // Skip to the next byte that could begin a frame (68, or a wake-up byte before one).
        let len = wake + 1 + rest[1..].iter().position(|b| *b == START || *b == WAKE).unwrap_or(rest.len() - 1);
        return Scan::Junk { len, why: "bytes that are not a frame" };
    }
    match candidate(rest) {
        // A header in noise whose length ends on a real frame's end byte, and whose checksum
        // happens to hold (1 in 256), would swallow that frame: the frame inside wins.
        Candidate::Whole(frame, total) => match (1..total).find(|&at| rest[at] == START && ends_at(&rest[at..], total - at)) {
            Some(at) => Scan::Junk { len: wake + at, why: "a frame header whose span holds a whole frame" },
            None => Scan::Frame { frame, used: wake + total },
        },
        // A 68 that is not followed by a header: a byte of noise; resynchronise at the next one.
        Candidate::NoHeader => Scan::Junk { len: wake + 1, why: "a 68 without a frame header" },
        Candidate::NoEnd => Scan::Junk { len: wake + 1, why: "a frame header without its end byte 16" },
        // A header in noise can announce a length that would swallow the real frame after it:
        // a whole frame further on wins over it.
        Candidate::Short => match whole_frame_in(rest, rest.len()) {
            Some(at) => Scan::Junk { len: wake + at, why: "a frame header whose frame never came" },
            None => Scan::Incomplete,
        },
        Candidate::BadSum(total) => {
            Scan::Junk { len: wake + whole_frame_in(rest, total).unwrap_or(total), why: "a frame with a wrong checksum" }
        }
    }
}

/// What a 68 at the start of `rest` begins.
enum Candidate {
    Whole(Frame, usize),
    Short,
    NoHeader,
    NoEnd,
    BadSum(usize),
}

fn candidate(rest: &[u8]) -> Candidate {
    if rest.len() < HEADER {
        return Candidate::Short;
    }
    if rest[7] != START {
        return Candidate::NoHeader;
    }
    let total = OVERHEAD + rest[9] as usize;
    if rest.len() < total {
        return Candidate::Short;
    }
    if rest[total - 1] != END {
        return Candidate::NoEnd;
    }
    if checksum(&rest[..total - 2]) != rest[total - 2] {
        return Candidate::BadSum(total);
    }
    let mut address = [0u8; 6];
    address.copy_from_slice(&rest[1..7]);
    let data = rest[HEADER..total - 2].iter().map(|b| b.wrapping_sub(0x33)).collect();
    Candidate::Whole(Frame { address, control: rest[8], data }, total)
}

/// Whether `rest` begins with a whole, valid frame of exactly `len` bytes.
fn ends_at(rest: &[u8], len: usize) -> bool {
    matches!(candidate(rest), Candidate::Whole(_, total) if total == len)
}

/// Where the first whole, valid frame starting after position 0 and before `before` is.
fn whole_frame_in(rest: &[u8], before: usize) -> Option<usize> {
    (1..before.min(rest.len())).find(|&at| rest[at] == START && matches!(candidate(&rest[at..]), Candidate::Whole(..)))
}

/// Bytes as spaced hex, for the log.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        s.split_whitespace().map(|h| u8::from_str_radix(h, 16).unwrap()).collect()
    }

    #[test]
    fn a_reply_of_the_pypi_peer_decodes() {
        // 02010100 = 231.4 V from meter 123456789012 (address sent as written), captured from dlt645 3.2.0.
        let wire = unhex("FE FE FE FE 68 12 34 56 78 90 12 68 91 06 33 34 34 35 47 56 8A 16");
        let Scan::Frame { frame, used } = scan(&wire) else { panic!("no frame") };
        assert_eq!(used, wire.len());
        assert_eq!(Address(FieldOrder::AsWritten.wire(frame.address)), Address::parse("123456789012").unwrap());
        assert_eq!(frame.control, 0x91);
        assert_eq!(frame.data, [0x00, 0x01, 0x01, 0x02, 0x14, 0x23]);
        assert_eq!(frame.encode(4), wire, "encoding gives the same bytes back");
    }

    #[test]
    fn both_address_orders_on_the_wire() {
        let a = Address::parse("123456789012").unwrap();
        let low_first = Frame { address: FieldOrder::LowFirst.wire(a.0), control: control::READ, data: vec![0, 1, 1, 2] }.encode(0);
        assert_eq!(&low_first[1..7], &[0x12, 0x90, 0x78, 0x56, 0x34, 0x12], "the standard: low byte first");
        let as_written = Frame { address: FieldOrder::AsWritten.wire(a.0), control: control::READ, data: vec![0, 1, 1, 2] }.encode(0);
        assert_eq!(&as_written[1..7], &[0x12, 0x34, 0x56, 0x78, 0x90, 0x12]);
        // DI 02010100 goes low byte first whatever the address order, +0x33 each.
        assert_eq!(&low_first[10..14], &[0x33, 0x34, 0x34, 0x35]);
        assert_eq!(Address::parse("1").unwrap().to_string(), "000000000001");
        assert_eq!(Address::parse("AAAAAAAAAAAA").unwrap(), Address::WILDCARD);
        let e = Address::parse("12345678901x").unwrap_err();
        assert!(e.contains("\"12345678901x\"") && e.contains("12 decimal digits"), "{e}");
    }

    #[test]
    fn preamble_count_and_round_trip() {
        for n in 0..=4u8 {
            let f = Frame { address: [1, 2, 3, 4, 5, 6], control: 0x91, data: (0..=200u8).collect() };
            let wire = f.encode(n);
            assert_eq!(wire.iter().take_while(|b| **b == WAKE).count(), n as usize);
            assert_eq!(scan(&wire), Scan::Frame { frame: f, used: wire.len() });
        }
    }

    #[test]
    fn junk_and_broken_frames_are_skipped_with_a_reason() {
        let good = Frame { address: [1; 6], control: 0x91, data: vec![1, 2, 3, 4] }.encode(2);
        let mut bad_sum = good.clone();
        let n = bad_sum.len();
        bad_sum[n - 2] ^= 0xFF;
        assert_eq!(scan(&bad_sum), Scan::Junk { len: n, why: "a frame with a wrong checksum" });
        assert_eq!(scan(b"\x00\x11garbage\x68"), Scan::Junk { len: 9, why: "bytes that are not a frame" });
        assert_eq!(scan(&[0x68, 1, 2, 3, 4, 5, 6, 7, 8, 9]), Scan::Junk { len: 1, why: "a 68 without a frame header" });
        for cut in 0..good.len() {
            assert_eq!(scan(&good[..cut]), Scan::Incomplete, "a frame cut at {cut} bytes waits for more");
        }
    }

    /// A 68 in noise that looks like a header announcing a long frame must not hold the real
    /// answer behind it until the timeout, nor must a bad frame's span swallow one.
    #[test]
    fn a_false_header_does_not_hide_the_frame_behind_it() {
        let good = Frame { address: [0x12; 6], control: 0x91, data: vec![0, 1, 1, 2] }.encode(0);
        let first_frame = |buf: &[u8]| {
            let mut rest = buf;
            loop {
                match scan(rest) {
                    Scan::Frame { frame, .. } => return Some(frame),
                    Scan::Junk { len, .. } => rest = &rest[len..],
                    Scan::Incomplete => return None,
                }
            }
        };
        let want = Some(Frame { address: [0x12; 6], control: 0x91, data: vec![0, 1, 1, 2] });
        // A header announcing 250 bytes of data, then the answer.
        let mut buf = vec![0x68, 1, 2, 3, 4, 5, 6, 0x68, 0x91, 250];
        buf.extend_from_slice(&good);
        assert_eq!(first_frame(&buf), want, "waiting for 250 bytes that will never come");
        // A header whose announced length ends exactly on the answer's end byte 16: a wrong
        // checksum over a span that holds the whole answer.
        let mut buf = vec![0x68, 1, 2, 3, 4, 5, 6, 0x68, 0x91, (good.len() - 2) as u8];
        buf.extend_from_slice(&good);
        assert_eq!(first_frame(&buf), want, "the answer inside a span with a wrong checksum");
    }

    /// Truncations and random bytes (fixed seed): every call ends in a frame, junk of at least
    /// one byte within the buffer, or a wait for more; a whole stream is consumed without a panic.
    #[test]
    fn hostile_input_never_panics_and_always_progresses() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let good = Frame { address: [0x12; 6], control: 0x91, data: vec![0; 8] }.encode(4);
        for round in 0..20_000 {
            let len = (next() % 300) as usize;
            let mut buf: Vec<u8> = (0..len)
                .map(|_| match next() % 8 {
                    0 => START,
                    1 => WAKE,
                    2 => END,
                    _ => next() as u8,
                })
                .collect();
            if round % 3 == 0 {
                let at = (next() as usize) % (buf.len() + 1);
                let cut = (next() as usize) % (good.len() + 1);
                buf.splice(at..at, good[..cut].iter().copied());
            }
            let mut rest = &buf[..];
            loop {
                match scan(rest) {
                    Scan::Frame { used, .. } => {
                        assert!(used > 0 && used <= rest.len());
                        rest = &rest[used..];
                    }
                    Scan::Junk { len, .. } => {
                        assert!(len > 0 && len <= rest.len(), "junk of {len} in {} bytes", rest.len());
                        rest = &rest[len..];
                    }
                    Scan::Incomplete => break,
                }
            }
            assert!(rest.len() < OVERHEAD + 256 + 4, "only a possible frame start is left waiting");
        }
    }
}
