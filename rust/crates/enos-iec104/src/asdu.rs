//! ASDU with the 104 field sizes: type id, variable structure qualifier (SQ + count), cause of
//! transmission (2 octets: cause with T and P/N bits, originator), common address (2 octets),
//! information object addresses (3 octets).

use crate::error::{DecodeError, DecodeErrorKind};
use crate::time::{self, TimeTag};
use std::fmt;

macro_rules! type_ids {
    ($($name:ident = $id:literal, $size:literal, $time:literal;)*) => {
        /// The type identifications this client understands.
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum TypeId { $($name = $id,)* }

        impl TypeId {
            pub fn from_u8(id: u8) -> Option<TypeId> {
                match id { $($id => Some(TypeId::$name),)* _ => None }
            }
            /// The standard's name, e.g. `M_SP_TB_1`.
            pub fn name(self) -> &'static str {
                match self { $(TypeId::$name => stringify!($name),)* }
            }
            /// Octets of one information element (without the IOA), time tag included.
            fn element_size(self) -> usize {
                match self { $(TypeId::$name => $size,)* }
            }
            /// Whether the element ends with a CP56Time2a.
            pub fn has_time(self) -> bool {
                match self { $(TypeId::$name => $time,)* }
            }
        }
    };
}

type_ids! {
    M_SP_NA_1 = 1, 1, false;
    M_DP_NA_1 = 3, 1, false;
    M_ST_NA_1 = 5, 2, false;
    M_BO_NA_1 = 7, 5, false;
    M_ME_NA_1 = 9, 3, false;
    M_ME_NB_1 = 11, 3, false;
    M_ME_NC_1 = 13, 5, false;
    M_IT_NA_1 = 15, 5, false;
    M_SP_TB_1 = 30, 8, true;
    M_DP_TB_1 = 31, 8, true;
    M_ST_TB_1 = 32, 9, true;
    M_BO_TB_1 = 33, 12, true;
    M_ME_TD_1 = 34, 10, true;
    M_ME_TE_1 = 35, 10, true;
    M_ME_TF_1 = 36, 12, true;
    M_IT_TB_1 = 37, 12, true;
    C_SC_NA_1 = 45, 1, false;
    C_DC_NA_1 = 46, 1, false;
    C_RC_NA_1 = 47, 1, false;
    C_SE_NA_1 = 48, 3, false;
    C_SE_NB_1 = 49, 3, false;
    C_SE_NC_1 = 50, 5, false;
    C_BO_NA_1 = 51, 4, false;
    M_EI_NA_1 = 70, 1, false;
    C_IC_NA_1 = 100, 1, false;
    C_CI_NA_1 = 101, 1, false;
    C_CS_NA_1 = 103, 7, false;
}

impl fmt::Display for TypeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Cause of transmission (6 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cot(pub u8);

impl Cot {
    pub const PERIODIC: Cot = Cot(1);
    pub const BACKGROUND: Cot = Cot(2);
    pub const SPONTANEOUS: Cot = Cot(3);
    pub const INITIALISED: Cot = Cot(4);
    pub const REQUEST: Cot = Cot(5);
    pub const ACTIVATION: Cot = Cot(6);
    pub const ACTIVATION_CON: Cot = Cot(7);
    pub const DEACTIVATION: Cot = Cot(8);
    pub const DEACTIVATION_CON: Cot = Cot(9);
    pub const ACTIVATION_TERM: Cot = Cot(10);
    pub const RETURN_REMOTE: Cot = Cot(11);
    pub const RETURN_LOCAL: Cot = Cot(12);
    pub const INTERROGATED: Cot = Cot(20);
    pub const COUNTER_INTERROGATED: Cot = Cot(37);
    pub const UNKNOWN_TYPE: Cot = Cot(44);
    pub const UNKNOWN_CAUSE: Cot = Cot(45);
    pub const UNKNOWN_CA: Cot = Cot(46);
    pub const UNKNOWN_IOA: Cot = Cot(47);

    /// The station's answer that it does not know what was addressed (44-47).
    pub fn is_unknown_reply(self) -> bool {
        (44..=47).contains(&self.0)
    }
}

impl fmt::Display for Cot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self.0 {
            1 => "periodic",
            2 => "background scan",
            3 => "spontaneous",
            4 => "initialised",
            5 => "requested",
            6 => "activation",
            7 => "activation confirmation",
            8 => "deactivation",
            9 => "deactivation confirmation",
            10 => "activation termination",
            11 => "return information caused by a remote command",
            12 => "return information caused by a local command",
            20..=36 => "interrogated",
            37..=41 => "counter interrogated",
            44 => "unknown type",
            45 => "unknown cause of transmission",
            46 => "unknown common address",
            47 => "unknown information object address",
            n => return write!(f, "cause {n}"),
        };
        f.write_str(s)
    }
}

/// Quality flags as one byte. The bits of IV/NT/SB/BL/OV are those of the QDS octet; a
/// counter's CY/CA (and IV) are mapped onto the same byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quality(pub u8);

impl Quality {
    pub const OV: u8 = 0x01;
    pub const CY: u8 = 0x02;
    pub const CA: u8 = 0x04;
    pub const BL: u8 = 0x10;
    pub const SB: u8 = 0x20;
    pub const NT: u8 = 0x40;
    pub const IV: u8 = 0x80;

    pub fn is_good(self) -> bool {
        self.0 == 0
    }
    pub fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }
    /// From a QDS/SIQ/DIQ octet (its value bits are masked off).
    fn from_qds(b: u8) -> Self {
        Quality(b & 0xf1)
    }
    fn from_siq(b: u8) -> Self {
        Quality(b & 0xf0)
    }
    /// From the last octet of a binary counter reading (sequence number, CY, CA, IV).
    fn from_bcr(b: u8) -> Self {
        let mut q = b & 0x80;
        if b & 0x20 != 0 {
            q |= Self::CY;
        }
        if b & 0x40 != 0 {
            q |= Self::CA;
        }
        Quality(q)
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_good() {
            return f.write_str("good");
        }
        let names = [
            (Self::IV, "invalid"),
            (Self::NT, "not topical"),
            (Self::SB, "substituted"),
            (Self::BL, "blocked"),
            (Self::OV, "overflow"),
            (Self::CY, "counter overflowed"),
            (Self::CA, "counter adjusted"),
        ];
        let mut first = true;
        for (bit, name) in names {
            if self.has(bit) {
                if !first {
                    f.write_str(", ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// Double-point state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoublePoint {
    Intermediate,
    Off,
    On,
    Indeterminate,
}

impl DoublePoint {
    fn from_bits(b: u8) -> Self {
        match b & 0x03 {
            0 => DoublePoint::Intermediate,
            1 => DoublePoint::Off,
            2 => DoublePoint::On,
            _ => DoublePoint::Indeterminate,
        }
    }
}

/// A monitored value as the station sent it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Single(bool),
    Double(DoublePoint),
    /// Step position -64..=63; `transient`: the equipment is moving.
    Step {
        position: i8,
        transient: bool,
    },
    Bitstring(u32),
    /// Normalised (as a fraction, -1..1), scaled and short float measurands, all as f64.
    Analog(f64),
    /// Integrated total with its sequence number.
    Counter {
        value: i32,
        sequence: u8,
    },
    /// End of initialisation with its cause (COI).
    EndOfInit(u8),
}

/// The ASDU header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub type_id: TypeId,
    pub sequence: bool,
    pub count: u8,
    pub cot: Cot,
    pub negative: bool,
    pub test: bool,
    pub originator: u8,
    pub ca: u16,
}

/// A decoded ASDU: header and its validated object octets, read by [`Asdu::objects`].
#[derive(Debug, Clone, Copy)]
pub struct Asdu<'a> {
    pub header: Header,
    body: &'a [u8],
}

/// One information object of an ASDU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Object<'a> {
    pub ioa: u32,
    /// Element octets (time tag included) for the caller to interpret by type.
    pub element: &'a [u8],
}

fn ioa(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], 0])
}

impl<'a> Asdu<'a> {
    /// Decodes and size-checks an ASDU; `apdu` is the whole frame, shown in errors.
    pub fn decode(asdu: &'a [u8], apdu: &[u8]) -> Result<Self, DecodeError> {
        let err = |kind| DecodeError::new(kind, apdu);
        if asdu.len() < 6 {
            return Err(err(DecodeErrorKind::ShortAsduHeader(asdu.len())));
        }
        let type_id = TypeId::from_u8(asdu[0]).ok_or_else(|| err(DecodeErrorKind::UnknownType(asdu[0])))?;
        let (sequence, count) = (asdu[1] & 0x80 != 0, asdu[1] & 0x7f);
        if count == 0 {
            return Err(err(DecodeErrorKind::NoObjects));
        }
        let body = &asdu[6..];
        let size = type_id.element_size();
        let need = if sequence { 3 + size * count as usize } else { (3 + size) * count as usize };
        if body.len() != need {
            return Err(err(DecodeErrorKind::WrongSize {
                type_name: type_id.name(),
                count,
                sq: u8::from(sequence),
                need,
                got: body.len(),
            }));
        }
        let header = Header {
            type_id,
            sequence,
            count,
            cot: Cot(asdu[2] & 0x3f),
            negative: asdu[2] & 0x40 != 0,
            test: asdu[2] & 0x80 != 0,
            originator: asdu[3],
            ca: u16::from_le_bytes([asdu[4], asdu[5]]),
        };
        Ok(Asdu { header, body })
    }

    /// The information objects in order; SQ=1 objects count up from the one IOA given.
    pub fn objects(&self) -> impl Iterator<Item = Object<'a>> + '_ {
        let size = self.header.type_id.element_size();
        let body = self.body;
        let sequence = self.header.sequence;
        (0..self.header.count as usize).map(move |i| {
            if sequence {
                let start = 3 + i * size;
                Object { ioa: (ioa(body) + i as u32) & 0xff_ffff, element: &body[start..start + size] }
            } else {
                let start = i * (3 + size);
                Object { ioa: ioa(&body[start..]), element: &body[start + 3..start + 3 + size] }
            }
        })
    }
}

/// A monitored element decoded: value, quality, device time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub value: Value,
    pub quality: Quality,
    pub time: Option<TimeTag>,
}

/// Interprets a monitor-direction element; `None` for command and system types.
pub fn reading(type_id: TypeId, e: &[u8], offset_min: i32) -> Result<Option<Reading>, DecodeErrorKind> {
    let Some((value, quality)) = value_and_quality(type_id, e) else { return Ok(None) };
    let time = if type_id.has_time() {
        let t: &[u8; 7] = e[e.len() - 7..].try_into().expect("sizes are checked by Asdu::decode");
        Some(time::decode(t, offset_min)?)
    } else {
        None
    };
    Ok(Some(Reading { value, quality, time }))
}

/// Value and quality of a monitor-direction element, its time tag left aside.
pub fn value_and_quality(type_id: TypeId, e: &[u8]) -> Option<(Value, Quality)> {
    use TypeId::*;
    let f32_at = |i: usize| f32::from_le_bytes([e[i], e[i + 1], e[i + 2], e[i + 3]]);
    let i16_at = |i: usize| i16::from_le_bytes([e[i], e[i + 1]]);
    let (value, quality) = match type_id {
        M_SP_NA_1 | M_SP_TB_1 => (Value::Single(e[0] & 1 != 0), Quality::from_siq(e[0])),
        M_DP_NA_1 | M_DP_TB_1 => (Value::Double(DoublePoint::from_bits(e[0])), Quality::from_siq(e[0])),
        M_ST_NA_1 | M_ST_TB_1 => {
            // 7-bit two's complement: shift into the top of an i8 and back to extend the sign.
            let position = ((e[0] << 1) as i8) >> 1;
            (Value::Step { position, transient: e[0] & 0x80 != 0 }, Quality::from_qds(e[1]))
        }
        M_BO_NA_1 | M_BO_TB_1 => (Value::Bitstring(u32::from_le_bytes([e[0], e[1], e[2], e[3]])), Quality::from_qds(e[4])),
        M_ME_NA_1 | M_ME_TD_1 => (Value::Analog(f64::from(i16_at(0)) / 32768.0), Quality::from_qds(e[2])),
        M_ME_NB_1 | M_ME_TE_1 => (Value::Analog(f64::from(i16_at(0))), Quality::from_qds(e[2])),
        M_ME_NC_1 | M_ME_TF_1 => (Value::Analog(f64::from(f32_at(0))), Quality::from_qds(e[4])),
        M_IT_NA_1 | M_IT_TB_1 => {
            (Value::Counter { value: i32::from_le_bytes([e[0], e[1], e[2], e[3]]), sequence: e[4] & 0x1f }, Quality::from_bcr(e[4]))
        }
        M_EI_NA_1 => (Value::EndOfInit(e[0] & 0x7f), Quality::default()),
        _ => return None,
    };
    Some((value, quality))
}

/// The value of a command (control direction).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CommandValue {
    /// C_SC_NA_1
    Single(bool),
    /// C_DC_NA_1: `true` = on, `false` = off.
    Double(bool),
    /// C_RC_NA_1: `true` = step higher, `false` = lower.
    Step(bool),
    /// C_SE_NA_1, a fraction in -1..1 (1.0 itself is not representable and refused).
    Normalized(f64),
    /// C_SE_NB_1
    Scaled(i16),
    /// C_SE_NC_1
    Float(f32),
    /// C_BO_NA_1 (no select/execute: direct only)
    Bitstring(u32),
}

impl CommandValue {
    pub fn type_id(self) -> TypeId {
        match self {
            CommandValue::Single(_) => TypeId::C_SC_NA_1,
            CommandValue::Double(_) => TypeId::C_DC_NA_1,
            CommandValue::Step(_) => TypeId::C_RC_NA_1,
            CommandValue::Normalized(_) => TypeId::C_SE_NA_1,
            CommandValue::Scaled(_) => TypeId::C_SE_NB_1,
            CommandValue::Float(_) => TypeId::C_SE_NC_1,
            CommandValue::Bitstring(_) => TypeId::C_BO_NA_1,
        }
    }
}

/// Builds the 6-octet ASDU header (one object, SQ=0).
pub fn header(type_id: TypeId, cot: Cot, originator: u8, ca: u16, out: &mut Vec<u8>) {
    let [ca0, ca1] = ca.to_le_bytes();
    out.extend_from_slice(&[type_id as u8, 1, cot.0, originator, ca0, ca1]);
}

fn push_ioa(ioa: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&ioa.to_le_bytes()[..3]);
}

/// Why a command cannot be encoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodeError {
    #[error("information object address {0} does not fit in 3 octets")]
    Ioa(u32),
    #[error("qualifier {qualifier} is out of range for {type_id} (0..={max})")]
    Qualifier { type_id: TypeId, qualifier: u8, max: u8 },
    #[error("normalised set-point {0} is outside -1.0..1.0 (exclusive of 1.0)")]
    Normalized(f64),
    #[error("a bitstring command (C_BO_NA_1) has no select; send it as a direct command")]
    BitstringSelect,
    #[error("our clock is outside the years 2000-2099 that CP56Time2a can carry")]
    ClockOutOfRange,
}

/// Encodes a command ASDU (COT activation). `qualifier` is QU (0-31) for single, double and
/// step commands and QL (0-127) for set-points; `select` sets the S/E bit.
pub fn command(value: CommandValue, ca: u16, ioa: u32, qualifier: u8, select: bool, originator: u8) -> Result<Vec<u8>, EncodeError> {
    let type_id = value.type_id();
    if ioa > 0xff_ffff {
        return Err(EncodeError::Ioa(ioa));
    }
    let max = match value {
        CommandValue::Single(_) | CommandValue::Double(_) | CommandValue::Step(_) => 31,
        CommandValue::Bitstring(_) => 0,
        _ => 127,
    };
    if qualifier > max {
        return Err(EncodeError::Qualifier { type_id, qualifier, max });
    }
    let se = if select { 0x80 } else { 0 };
    let mut out = Vec::with_capacity(16);
    header(type_id, Cot::ACTIVATION, originator, ca, &mut out);
    push_ioa(ioa, &mut out);
    match value {
        CommandValue::Single(on) => out.push(u8::from(on) | qualifier << 2 | se),
        CommandValue::Double(on) => out.push((if on { 2 } else { 1 }) | qualifier << 2 | se),
        CommandValue::Step(up) => out.push((if up { 2 } else { 1 }) | qualifier << 2 | se),
        CommandValue::Normalized(v) => {
            if !(-1.0..1.0).contains(&v) {
                return Err(EncodeError::Normalized(v));
            }
            out.extend_from_slice(&((v * 32768.0).round() as i16).to_le_bytes());
            out.push(qualifier | se);
        }
        CommandValue::Scaled(v) => {
            out.extend_from_slice(&v.to_le_bytes());
            out.push(qualifier | se);
        }
        CommandValue::Float(v) => {
            out.extend_from_slice(&v.to_le_bytes());
            out.push(qualifier | se);
        }
        CommandValue::Bitstring(v) => {
            if select {
                return Err(EncodeError::BitstringSelect);
            }
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    Ok(out)
}

/// The S/E bit of a command element as the station echoed it.
pub fn command_is_select(type_id: TypeId, element: &[u8]) -> bool {
    match type_id {
        TypeId::C_SC_NA_1 | TypeId::C_DC_NA_1 | TypeId::C_RC_NA_1 => element[0] & 0x80 != 0,
        TypeId::C_SE_NA_1 | TypeId::C_SE_NB_1 => element[2] & 0x80 != 0,
        TypeId::C_SE_NC_1 => element[4] & 0x80 != 0,
        _ => false,
    }
}

/// C_IC_NA_1 (QOI 20 = station interrogation), C_CI_NA_1 (QCC 5 = general request counter,
/// no freeze) and C_CS_NA_1, all with IOA 0.
pub fn interrogation(ca: u16, originator: u8) -> Vec<u8> {
    system(TypeId::C_IC_NA_1, ca, originator, &[20])
}

pub fn counter_interrogation(ca: u16, originator: u8) -> Vec<u8> {
    system(TypeId::C_CI_NA_1, ca, originator, &[5])
}

pub fn clock_sync(ca: u16, originator: u8, time: [u8; 7]) -> Vec<u8> {
    system(TypeId::C_CS_NA_1, ca, originator, &time)
}

fn system(type_id: TypeId, ca: u16, originator: u8, element: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + element.len());
    header(type_id, Cot::ACTIVATION, originator, ca, &mut out);
    push_ioa(0, &mut out);
    out.extend_from_slice(element);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(asdu: &[u8]) -> Vec<(u32, Reading)> {
        let a = Asdu::decode(asdu, asdu).unwrap();
        a.objects().map(|o| (o.ioa, reading(a.header.type_id, o.element, 0).unwrap().unwrap())).collect()
    }

    #[test]
    fn sq0_and_sq1_decode_to_the_same_objects() {
        // two M_ME_NC_1 at IOA 100 and 101, SQ=0 then SQ=1
        let mut sq0 = vec![13, 2, 20, 0, 1, 0];
        sq0.extend_from_slice(&[100, 0, 0]);
        sq0.extend_from_slice(&1.5f32.to_le_bytes());
        sq0.push(0);
        sq0.extend_from_slice(&[101, 0, 0]);
        sq0.extend_from_slice(&(-2.25f32).to_le_bytes());
        sq0.push(0x80);
        let mut sq1 = vec![13, 0x82, 20, 0, 1, 0, 100, 0, 0];
        sq1.extend_from_slice(&1.5f32.to_le_bytes());
        sq1.push(0);
        sq1.extend_from_slice(&(-2.25f32).to_le_bytes());
        sq1.push(0x80);
        let (a, b) = (decoded(&sq0), decoded(&sq1));
        assert_eq!(a, b);
        assert_eq!(a[1].0, 101);
        assert_eq!(a[1].1.value, Value::Analog(-2.25));
        assert!(a[1].1.quality.has(Quality::IV));
        let h = Asdu::decode(&sq1, &sq1).unwrap().header;
        assert_eq!((h.cot, h.ca, h.sequence), (Cot::INTERROGATED, 1, true));
    }

    #[test]
    fn quality_bits_and_special_values() {
        let r = decoded(&[1, 1, 3, 0, 1, 0, 1, 0, 0, 0xf1]);
        assert_eq!(r[0].1.value, Value::Single(true));
        assert_eq!(r[0].1.quality.to_string(), "invalid, not topical, substituted, blocked");
        let r = decoded(&[5, 1, 3, 0, 1, 0, 1, 0, 0, 0xff, 0x01]);
        assert_eq!(r[0].1.value, Value::Step { position: -1, transient: true });
        assert!(r[0].1.quality.has(Quality::OV));
        let r = decoded(&[15, 1, 37, 0, 1, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xe3]);
        assert_eq!(r[0].1.value, Value::Counter { value: -1, sequence: 3 });
        assert_eq!(r[0].1.quality.to_string(), "invalid, counter overflowed, counter adjusted");
        let r = decoded(&[9, 1, 3, 0, 1, 0, 1, 0, 0, 0x00, 0xc0, 0]);
        assert_eq!(r[0].1.value, Value::Analog(-0.5));
    }

    #[test]
    fn time_tagged_value_carries_the_station_time() {
        let t = crate::time::encode(1_709_214_312_345, 0).unwrap();
        let mut a = vec![30, 1, 3, 0, 1, 0, 7, 0, 0, 0x01];
        a.extend_from_slice(&t);
        let r = decoded(&a);
        assert_eq!(r[0].1.time.unwrap().unix_ms, 1_709_214_312_345);
    }

    #[test]
    fn command_encoding_sets_select_and_qualifier() {
        let c = command(CommandValue::Single(true), 1, 0x010203, 1, true, 0).unwrap();
        assert_eq!(c, [45, 1, 6, 0, 1, 0, 3, 2, 1, 0x85]);
        assert!(command_is_select(TypeId::C_SC_NA_1, &c[9..]));
        let c = command(CommandValue::Float(2.5), 7, 5, 0, false, 3).unwrap();
        assert_eq!(&c[..6], &[50, 1, 6, 3, 7, 0]);
        assert_eq!(&c[9..13], &2.5f32.to_le_bytes());
        assert_eq!(command(CommandValue::Bitstring(1), 1, 1, 0, true, 0), Err(EncodeError::BitstringSelect));
        assert_eq!(
            command(CommandValue::Double(true), 1, 1, 40, false, 0).unwrap_err().to_string(),
            "qualifier 40 is out of range for C_DC_NA_1 (0..=31)"
        );
        assert!(command(CommandValue::Normalized(1.0), 1, 1, 0, false, 0).is_err());
    }

    #[test]
    fn size_errors_say_what_was_expected() {
        let a = [13, 1, 3, 0, 1, 0, 1, 0, 0, 0];
        let e = Asdu::decode(&a, &a).unwrap_err();
        assert_eq!(
            e.to_string(),
            "type M_ME_NC_1 with 1 objects (SQ=0) needs 8 octets of objects but 4 arrived in APDU 0d 01 03 00 01 00 01 00 00 00"
        );
        assert_eq!(Asdu::decode(&[200, 1, 3, 0, 1, 0], &[]).unwrap_err().kind, DecodeErrorKind::UnknownType(200));
    }
}
