//! APCI: the 6-octet frame header (start 0x68, length, four control octets) and the I/S/U formats.

use crate::error::{DecodeError, DecodeErrorKind};

pub const START: u8 = 0x68;
/// Largest length octet: the APDU is at most 255 octets including start and length.
pub const MAX_LENGTH: u8 = 253;
/// Sequence numbers count modulo 2^15.
pub const SEQ_MODULO: u16 = 1 << 15;

/// U-frame functions (one bit each in the first control octet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UFunction {
    StartDtAct,
    StartDtCon,
    StopDtAct,
    StopDtCon,
    TestFrAct,
    TestFrCon,
}

impl UFunction {
    fn bits(self) -> u8 {
        match self {
            UFunction::StartDtAct => 0x07,
            UFunction::StartDtCon => 0x0b,
            UFunction::StopDtAct => 0x13,
            UFunction::StopDtCon => 0x23,
            UFunction::TestFrAct => 0x43,
            UFunction::TestFrCon => 0x83,
        }
    }

    fn from_bits(b: u8) -> Option<Self> {
        [Self::StartDtAct, Self::StartDtCon, Self::StopDtAct, Self::StopDtCon, Self::TestFrAct, Self::TestFrCon]
            .into_iter()
            .find(|f| f.bits() == b)
    }

    pub fn describe(self) -> &'static str {
        match self {
            UFunction::StartDtAct => "STARTDT act",
            UFunction::StartDtCon => "STARTDT con",
            UFunction::StopDtAct => "STOPDT act",
            UFunction::StopDtCon => "STOPDT con",
            UFunction::TestFrAct => "TESTFR act",
            UFunction::TestFrCon => "TESTFR con",
        }
    }
}

/// A decoded frame; an I frame borrows its ASDU from the received bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apdu<'a> {
    I { send: u16, recv: u16, asdu: &'a [u8] },
    S { recv: u16 },
    U(UFunction),
}

/// The total size of the frame at the start of `buf` once its two first octets are there:
/// `Ok(None)` while they are not, an error when they cannot begin a frame.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    let Some(&start) = buf.first() else { return Ok(None) };
    if start != START {
        return Err(DecodeError::new(DecodeErrorKind::BadStart(start), &buf[..buf.len().min(16)]));
    }
    let Some(&len) = buf.get(1) else { return Ok(None) };
    if !(4..=MAX_LENGTH).contains(&len) {
        return Err(DecodeError::new(DecodeErrorKind::BadLength(len), &buf[..buf.len().min(16)]));
    }
    Ok(Some(len as usize + 2))
}

/// Decodes one whole frame (start octet included).
pub fn decode(frame: &[u8]) -> Result<Apdu<'_>, DecodeError> {
    let err = |kind| DecodeError::new(kind, frame);
    match frame_len(frame)? {
        Some(n) if n == frame.len() => {}
        _ if frame.len() < 6 => return Err(err(DecodeErrorKind::Truncated(frame.len()))),
        _ => return Err(err(DecodeErrorKind::BadLength(frame[1]))),
    }
    let c = &frame[2..6];
    let seq = |lo: u8, hi: u8| (u16::from(lo) >> 1) | (u16::from(hi) << 7);
    if c[0] & 0x01 == 0 {
        if frame.len() == 6 {
            return Err(err(DecodeErrorKind::EmptyAsdu));
        }
        return Ok(Apdu::I { send: seq(c[0], c[1]), recv: seq(c[2], c[3]), asdu: &frame[6..] });
    }
    if frame[1] != 4 {
        return Err(err(DecodeErrorKind::ControlWithPayload(frame[1])));
    }
    if c[0] & 0x03 == 0x01 {
        return Ok(Apdu::S { recv: seq(c[2], c[3]) });
    }
    UFunction::from_bits(c[0]).map(Apdu::U).ok_or_else(|| err(DecodeErrorKind::UnknownUFunction(c[0])))
}

fn seq_octets(n: u16) -> [u8; 2] {
    [((n << 1) & 0xfe) as u8, (n >> 7) as u8]
}

pub fn encode_u(f: UFunction) -> [u8; 6] {
    [START, 4, f.bits(), 0, 0, 0]
}

pub fn encode_s(recv: u16) -> [u8; 6] {
    let r = seq_octets(recv);
    [START, 4, 0x01, 0, r[0], r[1]]
}

/// Appends an I frame carrying `asdu` (at most 249 octets; the ASDU encoders never build more).
pub fn encode_i(send: u16, recv: u16, asdu: &[u8], out: &mut Vec<u8>) {
    debug_assert!(asdu.len() <= MAX_LENGTH as usize - 4);
    let (s, r) = (seq_octets(send), seq_octets(recv));
    out.extend_from_slice(&[START, (asdu.len() + 4) as u8, s[0], s[1], r[0], r[1]]);
    out.extend_from_slice(asdu);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u_and_s_frames_round_trip() {
        for f in [UFunction::StartDtAct, UFunction::StartDtCon, UFunction::StopDtAct, UFunction::TestFrCon] {
            assert_eq!(decode(&encode_u(f)).unwrap(), Apdu::U(f));
        }
        assert_eq!(encode_u(UFunction::StartDtAct), [0x68, 4, 7, 0, 0, 0]);
        assert_eq!(decode(&encode_s(32767)).unwrap(), Apdu::S { recv: 32767 });
    }

    #[test]
    fn i_frame_sequence_numbers_use_15_bits() {
        let mut out = Vec::new();
        encode_i(300, 32767, &[1, 2, 3, 4, 5, 6], &mut out);
        assert_eq!(&out[..6], &[0x68, 10, 0x58, 0x02, 0xfe, 0xff]);
        assert_eq!(decode(&out).unwrap(), Apdu::I { send: 300, recv: 32767, asdu: &[1, 2, 3, 4, 5, 6] });
    }

    #[test]
    fn malformed_frames_are_named() {
        let e = decode(&[0x67, 4, 7, 0, 0, 0]).unwrap_err();
        assert_eq!(e.to_string(), "the frame does not start with 0x68 but with 0x67 in APDU 67 04 07 00 00 00");
        assert_eq!(decode(&[0x68, 2, 7, 0]).unwrap_err().kind, DecodeErrorKind::BadLength(2));
        assert_eq!(decode(&[0x68, 4, 0x47, 0, 0, 0]).unwrap_err().kind, DecodeErrorKind::UnknownUFunction(0x47));
        assert_eq!(decode(&[0x68, 5, 1, 0, 0, 0, 9]).unwrap_err().kind, DecodeErrorKind::ControlWithPayload(5));
        assert_eq!(decode(&[0x68, 4, 0, 0, 0, 0]).unwrap_err().kind, DecodeErrorKind::EmptyAsdu);
    }
}
