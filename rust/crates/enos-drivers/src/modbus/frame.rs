//! Modbus application data units on the master's side, without I/O: the request PDU of an
//! operation, the length of an answer from its first bytes, the RTU CRC, and the check that an
//! answer is the answer to *this* request (function, byte count, echoed address and value).
//!
//! Our own framing rather than tokio-modbus's client: its client cannot be told to discard an
//! answer that does not belong to the request (a late RTU answer of another size failed a
//! `debug_assert` and ended the line's worker; in a release build it was decoded as the next
//! request's answer). Here every mismatch is a [`Mismatch`] the transport discards and counts.

use super::link::{Answer, Op};
use enos_collector_config::modbus::Area;

/// Why a received frame is not the answer to the request, in words.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch(pub String);

/// What a well-formed answer said.
#[derive(Debug, PartialEq)]
pub enum Reply {
    Data(Answer),
    /// The device refused with this exception code.
    Exception(u8),
}

pub fn function(op: &Op) -> u8 {
    match op {
        Op::Read { area: Area::Coil, .. } => 1,
        Op::Read { area: Area::Discrete, .. } => 2,
        Op::Read { area: Area::Holding, .. } => 3,
        Op::Read { area: Area::Input, .. } => 4,
        Op::WriteCoil { multiple: false, .. } => 5,
        Op::WriteCoil { multiple: true, .. } => 15,
        Op::WriteRegisters { words, multiple: false, .. } if words.len() == 1 => 6,
        Op::WriteRegisters { .. } => 16,
    }
}

/// The request PDU (function code and data).
pub fn request_pdu(op: &Op) -> Vec<u8> {
    let fc = function(op);
    let mut p = vec![fc];
    match op {
        Op::Read { start, count, .. } => {
            p.extend(start.to_be_bytes());
            p.extend(count.to_be_bytes());
        }
        Op::WriteCoil { addr, on, multiple: false } => {
            p.extend(addr.to_be_bytes());
            p.extend(if *on { [0xff, 0x00] } else { [0x00, 0x00] });
        }
        Op::WriteCoil { addr, on, multiple: true } => {
            p.extend(addr.to_be_bytes());
            p.extend(1u16.to_be_bytes());
            p.push(1);
            p.push(u8::from(*on));
        }
        Op::WriteRegisters { addr, words, .. } if fc == 6 => {
            p.extend(addr.to_be_bytes());
            p.extend(words[0].to_be_bytes());
        }
        Op::WriteRegisters { addr, words, .. } => {
            p.extend(addr.to_be_bytes());
            p.extend((words.len() as u16).to_be_bytes());
            p.push((words.len() * 2) as u8);
            for w in words {
                p.extend(w.to_be_bytes());
            }
        }
    }
    p
}

/// The length of the answer PDU that starts `buf`: `Ok(None)` when more bytes are needed to
/// tell, `Err` when the first byte is no function code a master's request could be answered with
/// (line noise, or the middle of another frame).
pub fn answer_pdu_len(buf: &[u8]) -> Result<Option<usize>, Mismatch> {
    let Some(&fc) = buf.first() else { return Ok(None) };
    Ok(Some(match fc {
        0x81..=0x84 | 0x85 | 0x86 | 0x8f | 0x90 => 2,
        1..=4 => match buf.get(1) {
            Some(&n) => 2 + n as usize,
            None => return Ok(None),
        },
        5 | 6 | 15 | 16 => 5,
        other => return Err(Mismatch(format!("a frame starting with byte {other:#04x}, which is no answer to a read or write"))),
    }))
}

/// Checks that `pdu` answers `op` and takes the data out of it.
pub fn parse_answer(op: &Op, pdu: &[u8]) -> Result<Reply, Mismatch> {
    let fc = function(op);
    let got = *pdu.first().ok_or_else(|| Mismatch("an empty answer".into()))?;
    if got == fc | 0x80 {
        let code = *pdu.get(1).ok_or_else(|| Mismatch("an exception answer without its code".into()))?;
        return Ok(Reply::Exception(code));
    }
    if got != fc {
        return Err(Mismatch(format!("an answer to function {} while function {fc} was asked", got & 0x7f)));
    }
    let word = |i: usize| pdu.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    match op {
        Op::Read { area, count, .. } => {
            let want = if area.is_bits() { (*count as usize).div_ceil(8) } else { *count as usize * 2 };
            let n = pdu.get(1).copied().unwrap_or(0) as usize;
            if n != want || pdu.len() != 2 + n {
                return Err(Mismatch(format!("an answer with {n} bytes of data where {want} were asked")));
            }
            let data = &pdu[2..];
            Ok(Reply::Data(if area.is_bits() {
                Answer::Bits((0..*count as usize).map(|i| data[i / 8] & (1 << (i % 8)) != 0).collect())
            } else {
                Answer::Words(data.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect())
            }))
        }
        _ => {
            // A write is answered by an echo: the address, and the value (FC5/6) or the count (FC15/16).
            let req = request_pdu(op);
            if pdu.len() != 5 || word(1) != word_of(&req, 1) || word(3) != word_of(&req, 3) {
                return Err(Mismatch(format!(
                    "an acknowledgement of a write to {} where {} was written",
                    word(1).map(|a| a.to_string()).unwrap_or_else(|| "nothing".into()),
                    word_of(&req, 1).unwrap_or_default()
                )));
            }
            Ok(Reply::Data(Answer::Written))
        }
    }
}

fn word_of(pdu: &[u8], i: usize) -> Option<u16> {
    pdu.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]))
}

/// CRC-16/MODBUS of an RTU frame (sent low byte first).
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc = 0xffffu16;
    for &b in data {
        crc ^= b as u16;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xa001 } else { crc >> 1 };
        }
    }
    crc
}

/// An RTU frame: unit id, PDU, CRC.
pub fn rtu_frame(unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(pdu.len() + 3);
    f.push(unit);
    f.extend_from_slice(pdu);
    f.extend(crc16(&f).to_le_bytes());
    f
}

/// A Modbus TCP frame: MBAP header (transaction id, protocol 0, length, unit id) and PDU.
pub fn tcp_frame(tid: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(pdu.len() + 7);
    f.extend(tid.to_be_bytes());
    f.extend(0u16.to_be_bytes());
    f.extend((pdu.len() as u16 + 1).to_be_bytes());
    f.push(unit);
    f.extend_from_slice(pdu);
    f
}

/// What an exception code means, for people.
pub fn exception_text(code: u8) -> &'static str {
    match code {
        1 => "illegal function: the device does not support this function code",
        2 => "illegal data address: a register in the range does not exist on the device",
        3 => "illegal data value: the device refused the value or the count (too many registers in one request?)",
        4 => "server device failure",
        5 => "acknowledge: the device is busy with a long operation",
        6 => "server device busy",
        8 => "memory parity error",
        0x0a => "gateway path unavailable",
        0x0b => "gateway target device failed to respond (wrong unit id, or the device behind the gateway is off)",
        _ => "an exception code the Modbus standard does not define",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(area: Area, start: u16, count: u16) -> Op {
        Op::Read { area, start, count }
    }

    #[test]
    fn crc_of_the_specification_example() {
        // Read 2 holding registers from 0 on unit 1: 01 03 00 00 00 02 C4 0B.
        assert_eq!(rtu_frame(1, &request_pdu(&read(Area::Holding, 0, 2))), vec![1, 3, 0, 0, 0, 2, 0xc4, 0x0b]);
    }

    #[test]
    fn an_answer_of_another_size_or_function_is_a_mismatch_not_data() {
        // The late answer to a 10-register read while a 1-register read waits: the case that
        // failed tokio-modbus's debug_assert and, in a release build, was decoded as data.
        let ten: Vec<u8> = [3, 20].into_iter().chain((0..20).map(|i| i as u8)).collect();
        let e = parse_answer(&read(Area::Holding, 100, 1), &ten).unwrap_err();
        assert_eq!(e.0, "an answer with 20 bytes of data where 2 were asked");
        let e = parse_answer(&read(Area::Holding, 0, 1), &[4, 2, 0, 7]).unwrap_err();
        assert_eq!(e.0, "an answer to function 4 while function 3 was asked");
        assert_eq!(parse_answer(&read(Area::Input, 0, 1), &[4, 2, 0, 7]).unwrap(), Reply::Data(Answer::Words(vec![7])));
        assert_eq!(parse_answer(&read(Area::Input, 0, 1), &[0x84, 0x0b]).unwrap(), Reply::Exception(0x0b));
        assert_eq!(parse_answer(&read(Area::Coil, 0, 10), &[1, 2, 0b1000_0001, 0b10]).unwrap(), {
            let mut b = vec![false; 10];
            (b[0], b[7], b[9]) = (true, true, true);
            Reply::Data(Answer::Bits(b))
        });
    }

    #[test]
    fn a_write_acknowledgement_must_echo_the_write() {
        let op = Op::WriteRegisters { addr: 10, words: vec![5], multiple: false };
        assert_eq!(request_pdu(&op), vec![6, 0, 10, 0, 5]);
        assert_eq!(parse_answer(&op, &[6, 0, 10, 0, 5]).unwrap(), Reply::Data(Answer::Written));
        let e = parse_answer(&op, &[6, 0, 12, 0, 5]).unwrap_err();
        assert_eq!(e.0, "an acknowledgement of a write to 12 where 10 was written");
        let op = Op::WriteCoil { addr: 3, on: true, multiple: true };
        assert_eq!(request_pdu(&op), vec![15, 0, 3, 0, 1, 1, 1]);
        assert_eq!(parse_answer(&op, &[15, 0, 3, 0, 1]).unwrap(), Reply::Data(Answer::Written));
    }

    #[test]
    fn answer_lengths_from_the_first_bytes() {
        assert_eq!(answer_pdu_len(&[]), Ok(None));
        assert_eq!(answer_pdu_len(&[3]), Ok(None));
        assert_eq!(answer_pdu_len(&[3, 4]), Ok(Some(6)));
        assert_eq!(answer_pdu_len(&[0x83]), Ok(Some(2)));
        assert_eq!(answer_pdu_len(&[16]), Ok(Some(5)));
        assert!(answer_pdu_len(&[0x42]).is_err());
    }
}
