//! What was wrong with received bytes, in words, with the bytes in hex.

use std::fmt;

/// Bytes shown as `05 64 05 c0` in messages and logs (at most 64 of them).
pub struct Hex<'a>(pub &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().take(64).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{b:02x}")?;
        }
        if self.0.len() > 64 {
            write!(f, " … ({} octets)", self.0.len())?;
        }
        Ok(())
    }
}

/// The layer and the fault of bytes that could not be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    #[error("{0} octets that are not a link frame (no 05 64 start) were skipped")]
    Garbage(usize),
    #[error("the link header's length octet {0} is below 5")]
    BadLength(u8),
    #[error("the link header's CRC is wrong")]
    HeaderCrc,
    #[error("the CRC of data block {0} of the link frame is wrong")]
    BlockCrc(usize),
    #[error("a link frame carries no transport header")]
    EmptySegment,
    #[error("a transport segment without FIR arrived while no fragment was being assembled")]
    NoFirstSegment,
    #[error("transport segment {got} arrived where {want} was expected: the fragment is dropped")]
    OutOfSequence { got: u8, want: u8 },
    #[error("the fragment grew beyond {0} octets")]
    FragmentTooLong(usize),
    #[error("an application fragment of {0} octets is too short for a response header (4 octets)")]
    ShortResponse(usize),
    #[error("function code {0} is not a response")]
    NotAResponse(u8),
    #[error("object header at octet {0} is cut short")]
    ShortObjectHeader(usize),
    #[error("qualifier 0x{qualifier:02x} of g{group}v{variation} is not supported")]
    Qualifier { group: u8, variation: u8, qualifier: u8 },
    #[error("g{group}v{variation} is not an object this master decodes")]
    UnknownObject { group: u8, variation: u8 },
    #[error("range {start}..{stop} of g{group}v{variation} runs backwards")]
    BackwardRange { group: u8, variation: u8, start: u32, stop: u32 },
    #[error("range {start}..{stop} of g{group}v{variation} names {count} objects, more than a fragment can carry")]
    RangeTooLong { group: u8, variation: u8, start: u32, stop: u32, count: u64 },
    #[error("g{group}v{variation} with {count} objects needs {need} octets, only {got} remain")]
    ShortObjects { group: u8, variation: u8, count: u32, need: u64, got: usize },
    #[error("g{0}v{1} with relative time came without a common time of occurrence (g51)")]
    NoCommonTime(u8, u8),
}

/// Received bytes that could not be decoded: Display says what and shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub kind: DecodeErrorKind,
    pub bytes: Vec<u8>,
}

impl DecodeError {
    pub fn new(kind: DecodeErrorKind, bytes: &[u8]) -> Self {
        DecodeError { kind, bytes: bytes.to_vec() }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, Hex(&self.bytes))
    }
}

impl std::error::Error for DecodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_fault_and_shows_the_bytes() {
        let e = DecodeError::new(DecodeErrorKind::HeaderCrc, &[0x05, 0x64, 0x05]);
        assert_eq!(e.to_string(), "the link header's CRC is wrong: 05 64 05");
    }
}
