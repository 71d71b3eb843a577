//! The transport function: one octet (FIN, FIR, 6-bit sequence) before each link frame's share
//! of an application fragment.

use crate::error::{DecodeError, DecodeErrorKind as K};

pub const FIN: u8 = 0x80;
pub const FIR: u8 = 0x40;
/// Fragment octets per segment (a frame's 250 minus the transport header).
pub const MAX_SEGMENT: usize = 249;

/// Splits a fragment into segments; `seq` is the sender's counter, advanced per segment.
pub fn segments(fragment: &[u8], seq: &mut u8) -> Vec<Vec<u8>> {
    let chunks: Vec<&[u8]> = if fragment.is_empty() { vec![&[][..]] } else { fragment.chunks(MAX_SEGMENT).collect() };
    let last = chunks.len() - 1;
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let mut h = *seq & 0x3f;
            *seq = seq.wrapping_add(1) & 0x3f;
            if i == 0 {
                h |= FIR;
            }
            if i == last {
                h |= FIN;
            }
            let mut s = Vec::with_capacity(c.len() + 1);
            s.push(h);
            s.extend_from_slice(c);
            s
        })
        .collect()
}

/// Reassembles the fragments of one sender.
pub struct Reassembler {
    buf: Vec<u8>,
    /// The sequence the next segment must carry while a fragment is open.
    want: Option<u8>,
    max: usize,
}

impl Reassembler {
    pub fn new(max_fragment: usize) -> Self {
        Reassembler { buf: Vec::new(), want: None, max: max_fragment }
    }

    /// Adds one segment: a complete fragment, nothing yet, or why the segment (and the
    /// fragment it belonged to) was dropped.
    pub fn push(&mut self, segment: &[u8]) -> Result<Option<Vec<u8>>, DecodeError> {
        let Some((&h, body)) = segment.split_first() else {
            return Err(DecodeError::new(K::EmptySegment, segment));
        };
        let seq = h & 0x3f;
        if h & FIR != 0 {
            // a new fragment replaces an unfinished one
            self.buf.clear();
        } else {
            match self.want {
                None => return Err(DecodeError::new(K::NoFirstSegment, segment)),
                Some(w) if w != seq => {
                    self.want = None;
                    self.buf.clear();
                    return Err(DecodeError::new(K::OutOfSequence { got: seq, want: w }, segment));
                }
                Some(_) => {}
            }
        }
        if self.buf.len() + body.len() > self.max {
            self.want = None;
            self.buf.clear();
            return Err(DecodeError::new(K::FragmentTooLong(self.max), segment));
        }
        self.buf.extend_from_slice(body);
        if h & FIN != 0 {
            self.want = None;
            return Ok(Some(std::mem::take(&mut self.buf)));
        }
        self.want = Some((seq + 1) & 0x3f);
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_fragment_round_trips_and_an_out_of_sequence_segment_drops_it() {
        let frag: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
        let mut seq = 62;
        let segs = segments(&frag, &mut seq);
        assert_eq!(segs.len(), 3);
        assert_eq!((segs[0][0], segs[1][0], segs[2][0]), (FIR | 62, 63, FIN));
        let mut r = Reassembler::new(2048);
        assert_eq!(r.push(&segs[0]), Ok(None));
        assert_eq!(r.push(&segs[1]), Ok(None));
        assert_eq!(r.push(&segs[2]), Ok(Some(frag.clone())));

        assert_eq!(r.push(&segs[0]), Ok(None));
        let e = r.push(&segs[2]).unwrap_err();
        assert_eq!(e.kind, K::OutOfSequence { got: 0, want: 63 });
        assert_eq!(r.push(&segs[1]).unwrap_err().kind, K::NoFirstSegment, "the fragment was dropped");
    }
}
