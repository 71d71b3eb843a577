//! What can go wrong on a read, in words for people.

use crate::frame::Address;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No acceptable answer within the timeout, on every attempt.
    #[error("meter {meter}: no answer to {what} within {} ms ({}){}", timeout.as_millis(), attempts_words(*attempts), instead(arrived))]
    Timeout { meter: Address, what: String, timeout: Duration, attempts: u32, arrived: Option<String> },
    /// The meter answered with an abnormal reply (control D6 set); `code` is its error byte.
    #[error("meter {meter}: {what}: device exception 0x{code:02X} ({})", exception_words(*code))]
    Exception { meter: Address, what: String, code: u8 },
    /// The answer arrived but its data cannot be read with the point's format.
    #[error("meter {meter}: {what}: {reason}")]
    Decode { meter: Address, what: String, reason: String },
    /// The line itself: the port cannot be opened, the connection broke.
    #[error("line {line}: {reason}")]
    Link { line: String, reason: String },
}

impl Error {
    /// A device exception (the meter answered, refusing), as opposed to a communication failure.
    pub fn is_exception(&self) -> bool {
        matches!(self, Error::Exception { .. })
    }
}

fn attempts_words(n: u32) -> String {
    match n {
        1 => "1 attempt".into(),
        n => format!("{n} attempts"),
    }
}

fn instead(arrived: &Option<String>) -> String {
    arrived.as_ref().map(|a| format!("; what arrived instead: {a}")).unwrap_or_default()
}

/// The error bits of an abnormal reply (DL/T 645-2007, 7.2: ERR), in words, joined by "; ".
pub fn exception_words(code: u8) -> String {
    const BITS: [&str; 7] = [
        "other error",
        "no requested data",
        "password wrong / unauthorised",
        "communication rate cannot be changed",
        "year time zone count exceeded",
        "daily time period count exceeded",
        "rate/tariff count exceeded",
    ];
    let words: Vec<&str> = BITS.iter().enumerate().filter(|(i, _)| code & (1 << i) != 0).map(|(_, w)| *w).collect();
    match words.is_empty() {
        true => "no error bit set".into(),
        false => words.join("; "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bits_in_words() {
        assert_eq!(exception_words(0x02), "no requested data");
        assert_eq!(exception_words(0x04), "password wrong / unauthorised");
        assert_eq!(exception_words(0x41), "other error; rate/tariff count exceeded");
        assert_eq!(exception_words(0x00), "no error bit set");
        let e = Error::Exception { meter: Address::parse("1").unwrap(), what: "reading 02990100".into(), code: 2 };
        assert_eq!(e.to_string(), "meter 000000000001: reading 02990100: device exception 0x02 (no requested data)");
    }
}
