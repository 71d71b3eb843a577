//! The application layer: fragment headers, function codes, internal indications (IIN) and the
//! requests this master sends.

use crate::error::{DecodeError, DecodeErrorKind as K};
use crate::objects::{Crob, OutputValue};
use std::fmt;

/// Application control octet bits.
pub const FIR: u8 = 0x80;
pub const FIN: u8 = 0x40;
pub const CON: u8 = 0x20;
pub const UNS: u8 = 0x10;

/// Function codes this master sends or receives.
pub mod func {
    pub const CONFIRM: u8 = 0;
    pub const READ: u8 = 1;
    pub const WRITE: u8 = 2;
    pub const SELECT: u8 = 3;
    pub const OPERATE: u8 = 4;
    pub const DIRECT_OPERATE: u8 = 5;
    pub const ENABLE_UNSOLICITED: u8 = 20;
    pub const DISABLE_UNSOLICITED: u8 = 21;
    pub const RECORD_CURRENT_TIME: u8 = 24;
    pub const RESPONSE: u8 = 129;
    pub const UNSOLICITED_RESPONSE: u8 = 130;
}

/// The two IIN octets of a response (IIN1 low, IIN2 high).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Iin(pub u16);

impl Iin {
    pub const ALL_STATIONS: u16 = 1 << 0;
    pub const CLASS1_EVENTS: u16 = 1 << 1;
    pub const CLASS2_EVENTS: u16 = 1 << 2;
    pub const CLASS3_EVENTS: u16 = 1 << 3;
    pub const NEED_TIME: u16 = 1 << 4;
    pub const LOCAL_CONTROL: u16 = 1 << 5;
    pub const DEVICE_TROUBLE: u16 = 1 << 6;
    pub const DEVICE_RESTART: u16 = 1 << 7;
    pub const NO_FUNC_CODE_SUPPORT: u16 = 1 << 8;
    pub const OBJECT_UNKNOWN: u16 = 1 << 9;
    pub const PARAMETER_ERROR: u16 = 1 << 10;
    pub const EVENT_BUFFER_OVERFLOW: u16 = 1 << 11;
    pub const ALREADY_EXECUTING: u16 = 1 << 12;
    pub const CONFIG_CORRUPT: u16 = 1 << 13;

    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }

    /// The request was refused (IIN2 bits 0-2): why, in words.
    pub fn refusal(self) -> Option<&'static str> {
        if self.has(Self::NO_FUNC_CODE_SUPPORT) {
            Some("the outstation does not support the function")
        } else if self.has(Self::OBJECT_UNKNOWN) {
            Some("the outstation does not know the object or point")
        } else if self.has(Self::PARAMETER_ERROR) {
            Some("the outstation found a parameter error in the request")
        } else if self.has(Self::ALREADY_EXECUTING) {
            Some("the outstation is already executing the operation")
        } else {
            None
        }
    }
}

impl fmt::Display for Iin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 14] = [
            "all stations",
            "class 1 events",
            "class 2 events",
            "class 3 events",
            "need time",
            "local control",
            "device trouble",
            "device restart",
            "function not supported",
            "object unknown",
            "parameter error",
            "event buffer overflow",
            "already executing",
            "configuration corrupt",
        ];
        let set: Vec<&str> = NAMES.iter().enumerate().filter(|(i, _)| self.0 & (1 << i) != 0).map(|(_, n)| *n).collect();
        if set.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&set.join(", "))
        }
    }
}

/// A response or unsolicited response: its header and the object octets after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response<'a> {
    pub control: u8,
    pub function: u8,
    pub iin: Iin,
    pub objects: &'a [u8],
}

impl Response<'_> {
    pub fn seq(&self) -> u8 {
        self.control & 0x0f
    }
    pub fn fir(&self) -> bool {
        self.control & FIR != 0
    }
    pub fn fin(&self) -> bool {
        self.control & FIN != 0
    }
    pub fn con(&self) -> bool {
        self.control & CON != 0
    }
    pub fn unsolicited(&self) -> bool {
        self.function == func::UNSOLICITED_RESPONSE
    }
}

pub fn parse_response(fragment: &[u8]) -> Result<Response<'_>, DecodeError> {
    if fragment.len() < 4 {
        return Err(DecodeError::new(K::ShortResponse(fragment.len()), fragment));
    }
    let function = fragment[1];
    if function != func::RESPONSE && function != func::UNSOLICITED_RESPONSE {
        return Err(DecodeError::new(K::NotAResponse(function), fragment));
    }
    Ok(Response {
        control: fragment[0],
        function,
        iin: Iin(u16::from(fragment[2]) | (u16::from(fragment[3]) << 8)),
        objects: &fragment[4..],
    })
}

/// A request fragment: single-fragment (FIR|FIN) with `seq`.
fn request(function: u8, seq: u8, objects: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(2 + objects.len());
    f.push(FIR | FIN | (seq & 0x0f));
    f.push(function);
    f.extend_from_slice(objects);
    f
}

/// Application confirm of a response (`uns` for an unsolicited one), echoing its sequence.
pub fn confirm(seq: u8, uns: bool) -> Vec<u8> {
    vec![FIR | FIN | if uns { UNS } else { 0 } | (seq & 0x0f), func::CONFIRM]
}

/// The event classes, and class 0 (static data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classes {
    pub class0: bool,
    pub class1: bool,
    pub class2: bool,
    pub class3: bool,
}

impl Classes {
    pub const INTEGRITY: Classes = Classes { class0: true, class1: true, class2: true, class3: true };
    pub const EVENTS: Classes = Classes { class0: false, class1: true, class2: true, class3: true };

    pub fn only(class: u8) -> Classes {
        Classes { class0: class == 0, class1: class == 1, class2: class == 2, class3: class == 3 }
    }

    /// g60 headers (qualifier 06, all objects), events before static data as the standard asks.
    fn headers(self) -> Vec<u8> {
        let mut o = Vec::new();
        for (on, v) in [(self.class1, 2u8), (self.class2, 3), (self.class3, 4), (self.class0, 1)] {
            if on {
                o.extend_from_slice(&[60, v, 0x06]);
            }
        }
        o
    }
}

pub fn read_classes(seq: u8, classes: Classes) -> Vec<u8> {
    request(func::READ, seq, &classes.headers())
}

/// Enable or disable unsolicited responses of the event classes in `classes`.
pub fn unsolicited(seq: u8, enable: bool, classes: Classes) -> Vec<u8> {
    let f = if enable { func::ENABLE_UNSOLICITED } else { func::DISABLE_UNSOLICITED };
    request(f, seq, &Classes { class0: false, ..classes }.headers())
}

/// WRITE g80v1 index 7 = 0: clears DEVICE_RESTART.
pub fn clear_restart(seq: u8) -> Vec<u8> {
    request(func::WRITE, seq, &[80, 1, 0x00, 7, 7, 0x00])
}

pub fn record_current_time(seq: u8) -> Vec<u8> {
    request(func::RECORD_CURRENT_TIME, seq, &[])
}

/// WRITE g50v3 (last recorded time), the LAN time procedure's second step.
pub fn write_recorded_time(seq: u8, unix_ms: u64) -> Vec<u8> {
    let mut o = vec![50, 3, 0x07, 1];
    o.extend_from_slice(&unix_ms.to_le_bytes()[..6]);
    request(func::WRITE, seq, &o)
}

/// SELECT, OPERATE or DIRECT_OPERATE of one CROB (g12v1, qualifier 0x28).
pub fn crob(function: u8, seq: u8, index: u16, c: &Crob) -> Vec<u8> {
    let mut o = vec![12, 1, 0x28, 1, 0];
    o.extend_from_slice(&index.to_le_bytes());
    o.extend_from_slice(&c.encode());
    request(function, seq, &o)
}

/// SELECT, OPERATE or DIRECT_OPERATE of one analog output (g41, qualifier 0x28).
pub fn analog_output(function: u8, seq: u8, index: u16, v: OutputValue) -> Vec<u8> {
    let mut o = vec![41, v.variation(), 0x28, 1, 0];
    o.extend_from_slice(&index.to_le_bytes());
    v.encode(&mut o);
    o.push(0); // status
    request(function, seq, &o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_iin_in_words() {
        assert_eq!(read_classes(3, Classes::INTEGRITY), [0xC3, 1, 60, 2, 6, 60, 3, 6, 60, 4, 6, 60, 1, 6]);
        assert_eq!(confirm(5, true), [0xD5, 0]);
        assert_eq!(clear_restart(1), [0xC1, 2, 80, 1, 0, 7, 7, 0]);
        let r = parse_response(&[0xE2, 0x81, 0x90, 0x08, 1, 2]).unwrap();
        assert!(r.fir() && r.fin() && r.con() && !r.unsolicited() && r.seq() == 2);
        assert_eq!(r.iin.to_string(), "need time, device restart, event buffer overflow");
        assert_eq!(parse_response(&[0xC0, 0x01, 0, 0]).unwrap_err().to_string(), "function code 1 is not a response: c0 01 00 00");
    }
}
