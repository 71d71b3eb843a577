//! Decode errors: what was wrong, in words, and the offending bytes in hex.

use std::fmt;

/// Bytes shown as `68 04 43 00 00 00` in messages and logs.
pub struct Hex<'a>(pub &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// What was wrong with a received frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    #[error("the frame does not start with 0x68 but with 0x{0:02x}")]
    BadStart(u8),
    #[error("the length octet {0} is outside 4..=253")]
    BadLength(u8),
    #[error("a {0}-octet frame is too short for an APCI")]
    Truncated(usize),
    #[error("an S or U frame must have length 4, not {0}")]
    ControlWithPayload(u8),
    #[error("unknown U-frame function 0x{0:02x}")]
    UnknownUFunction(u8),
    #[error("an I frame carries no ASDU")]
    EmptyAsdu,
    #[error("the ASDU header needs 6 octets, only {0} arrived")]
    ShortAsduHeader(usize),
    #[error("unknown type id {0}")]
    UnknownType(u8),
    #[error("the ASDU declares no information objects")]
    NoObjects,
    #[error("type {type_name} with {count} objects (SQ={sq}) needs {need} octets of objects but {got} arrived")]
    WrongSize { type_name: &'static str, count: u8, sq: u8, need: usize, got: usize },
    #[error("invalid CP56Time2a time tag ({0})")]
    BadTime(&'static str),
}

/// A received frame that could not be decoded; Display says what and shows the frame.
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
        write!(f, "{} in APDU {}", self.kind, Hex(&self.bytes))
    }
}

impl std::error::Error for DecodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_fault_and_shows_the_bytes() {
        let e = DecodeError::new(DecodeErrorKind::UnknownType(200), &[0x68, 0x0e, 0x00]);
        assert_eq!(e.to_string(), "unknown type id 200 in APDU 68 0e 00");
    }
}
