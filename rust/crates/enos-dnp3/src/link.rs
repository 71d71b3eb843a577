//! The data link layer (FT3 frames): `05 64`, length, control, destination, source, header CRC,
//! then the user data in blocks of 16 octets, each followed by its CRC.

use crate::crc::crc;
use crate::error::{DecodeError, DecodeErrorKind as K};

pub const START: [u8; 2] = [0x05, 0x64];
/// User data octets one frame can carry.
pub const MAX_DATA: usize = 250;

/// Control octet bits.
pub const DIR: u8 = 0x80;
pub const PRM: u8 = 0x40;
pub const FCB: u8 = 0x20;
pub const FCV_DFC: u8 = 0x10;

/// Link function codes (the control octet's low nibble).
pub mod func {
    // from the primary station
    pub const RESET_LINK_STATES: u8 = 0;
    pub const TEST_LINK_STATES: u8 = 2;
    pub const CONFIRMED_USER_DATA: u8 = 3;
    pub const UNCONFIRMED_USER_DATA: u8 = 4;
    pub const REQUEST_LINK_STATUS: u8 = 9;
    // from the secondary station
    pub const ACK: u8 = 0;
    pub const NACK: u8 = 1;
    pub const LINK_STATUS: u8 = 11;
    pub const NOT_SUPPORTED: u8 = 15;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub control: u8,
    pub dest: u16,
    pub src: u16,
    pub data: Vec<u8>,
}

impl Frame {
    pub fn function(&self) -> u8 {
        self.control & 0x0f
    }

    pub fn is_primary(&self) -> bool {
        self.control & PRM != 0
    }

    /// The frame on the wire; `data` longer than [`MAX_DATA`] is cut (callers segment first).
    pub fn encode(&self) -> Vec<u8> {
        let data = &self.data[..self.data.len().min(MAX_DATA)];
        let mut out = Vec::with_capacity(10 + data.len() + data.len().div_ceil(16) * 2);
        out.extend_from_slice(&START);
        out.push((5 + data.len()) as u8);
        out.push(self.control);
        out.extend_from_slice(&self.dest.to_le_bytes());
        out.extend_from_slice(&self.src.to_le_bytes());
        out.extend_from_slice(&crc(&out[..8]).to_le_bytes());
        for block in data.chunks(16) {
            out.extend_from_slice(block);
            out.extend_from_slice(&crc(block).to_le_bytes());
        }
        out
    }
}

/// Finds frames in a byte stream. After garbage or a bad CRC it resynchronises on the next
/// `05 64`; each fault is returned once, as an error, and the stream goes on.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next frame or fault; `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Result<Frame, DecodeError>> {
        // skip to a start
        let skip = match self.buf.windows(2).position(|w| w == START) {
            Some(i) => i,
            // keep a trailing 05: it may be the start of the next read
            None => self.buf.len() - usize::from(self.buf.last() == Some(&START[0])),
        };
        if skip > 0 {
            let dropped: Vec<u8> = self.buf.drain(..skip).collect();
            return Some(Err(DecodeError::new(K::Garbage(skip), &dropped)));
        }
        if self.buf.len() < 10 {
            return None;
        }
        let header = &self.buf[..10];
        if crc(&header[..8]).to_le_bytes() != header[8..10] {
            let e = DecodeError::new(K::HeaderCrc, header);
            self.buf.drain(..2); // past this start; the next one is searched for
            return Some(Err(e));
        }
        let len = header[2];
        if len < 5 {
            let e = DecodeError::new(K::BadLength(len), header);
            self.buf.drain(..10);
            return Some(Err(e));
        }
        let n = usize::from(len) - 5;
        let total = 10 + n + n.div_ceil(16) * 2;
        if self.buf.len() < total {
            return None;
        }
        let raw: Vec<u8> = self.buf.drain(..total).collect();
        let mut data = Vec::with_capacity(n);
        for (i, block) in raw[10..].chunks(18).enumerate() {
            let (body, c) = block.split_at(block.len() - 2);
            if crc(body).to_le_bytes() != c {
                return Some(Err(DecodeError::new(K::BlockCrc(i), &raw)));
            }
            data.extend_from_slice(body);
        }
        Some(Ok(Frame { control: raw[3], dest: u16::from_le_bytes([raw[4], raw[5]]), src: u16::from_le_bytes([raw[6], raw[7]]), data }))
    }

    /// Octets held that are not yet a frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_frame_encodes_as_the_standard_shows() {
        // reset link states to 1 from 1024 (a commonly quoted frame)
        let f = Frame { control: 0xC0, dest: 1, src: 1024, data: vec![] };
        assert_eq!(f.encode(), [0x05, 0x64, 0x05, 0xC0, 0x01, 0x00, 0x00, 0x04, 0xE9, 0x21]);
    }

    #[test]
    fn frames_round_trip_through_garbage_and_split_reads() {
        let a = Frame { control: 0xC4, dest: 10, src: 1, data: (0..40).collect() };
        let b = Frame { control: 0x44, dest: 1, src: 10, data: vec![0xC0, 0xC1, 0x81, 0, 0] };
        let mut stream = vec![0xFF, 0x05, 0x00];
        stream.extend(a.encode());
        stream.extend(b.encode());
        let mut d = Decoder::default();
        let mut got = Vec::new();
        for chunk in stream.chunks(7) {
            d.push(chunk);
            while let Some(r) = d.next_frame() {
                got.push(r);
            }
        }
        assert!(matches!(&got[0], Err(e) if e.kind == K::Garbage(3)), "{got:?}");
        assert_eq!(got[1..], [Ok(a), Ok(b)]);
    }

    #[test]
    fn a_bad_block_crc_drops_that_frame_only() {
        let a = Frame { control: 0x44, dest: 1, src: 10, data: (0..20).collect() };
        let mut bad = a.encode();
        bad[12] ^= 1;
        let mut d = Decoder::default();
        d.push(&bad);
        d.push(&a.encode());
        assert!(matches!(d.next_frame(), Some(Err(e)) if e.kind == K::BlockCrc(0)));
        assert_eq!(d.next_frame(), Some(Ok(a)));
        assert_eq!(d.next_frame(), None);
    }
}
