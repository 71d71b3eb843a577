//! The raw-register communication test: one read of chosen registers or bits over the device's
//! own connection (so it also works on a serial line the poller holds), not retried, answered
//! with the words, decoded values and any failure in plain words.

use super::codec;
use super::link::{Answer, Link, Op, ReqError};
use enos_collector_config::modbus::{Area, ByteOrder, DataType, ModbusAddress, ModbusDevice as DeviceConfig, ModbusPoint as PointConfig};
use enos_collector_config::PointMeta;
use enos_model::raw_read::{RawAnswer, RawRead, RawValue};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn area_of(function: u8) -> Area {
    match function {
        1 => Area::Coil,
        2 => Area::Discrete,
        4 => Area::Input,
        _ => Area::Holding,
    }
}

/// Decodes `words` as consecutive values of `data_type`.
pub fn decode_words(words: &[u16], start: u16, data_type: DataType, order: ByteOrder) -> Vec<RawValue> {
    let step = data_type.registers(None) as usize;
    let mut out = Vec::new();
    let mut off = 0usize;
    while off + step <= words.len() {
        let p = PointConfig::new(
            PointMeta::named(""),
            ModbusAddress { order, ..ModbusAddress::new(Area::Holding, start.wrapping_add(off as u16), data_type) },
        );
        if let Ok(v) = codec::decode(&p, &words[off..off + step], &[]) {
            out.push(RawValue { offset: off as u16, address: p.at.address, value: v });
        }
        off += step;
    }
    out
}

pub async fn read(link: &Link, dev: &DeviceConfig, counters: &Arc<super::link::LinkCounters>, req: &RawRead) -> RawAnswer {
    let unit = req.unit_id.unwrap_or(dev.unit_id);
    let mut ans = RawAnswer { unit_id: unit, function: req.function, address: req.address, ..Default::default() };
    if let Err(e) = req.check() {
        ans.failure = Some("request".into());
        ans.message = e.to_string();
        return ans;
    }
    let tmo = Duration::from_millis(dev.timeout_ms);
    let t0 = Instant::now();
    let r = link.call(unit, Op::Read { area: area_of(req.function), start: req.address, count: req.count }, tmo, 0, counters).await;
    ans.took_ms = t0.elapsed().as_millis() as u64;
    match r {
        Ok(Answer::Words(w)) => {
            ans.ok = true;
            ans.values = decode_words(&w, req.address, req.data_type.unwrap_or(DataType::U16), req.order.unwrap_or_default());
            ans.message = format!("{} registers read", w.len());
            ans.words = w;
        }
        Ok(Answer::Bits(mut b)) => {
            ans.ok = true;
            b.truncate(req.count as usize);
            ans.message = format!("{} bits read", b.len());
            ans.bits = b;
        }
        Ok(Answer::Written) => {
            ans.failure = Some("link".into());
            ans.message = "the device answered a read with a write acknowledgement".into();
        }
        Err(ReqError::Timeout(Some(other))) => {
            ans.failure = Some("timeout".into());
            ans.message = format!(
                "no answer to the request within {} ms from unit id {unit}: the device sent {other}, which was discarded",
                dev.timeout_ms
            );
        }
        Err(ReqError::Timeout(None)) => {
            ans.failure = Some("timeout".into());
            ans.message = format!(
                "no answer within {} ms from unit id {unit}: check the unit id (a device ignores requests for another unit id), \
                 the address and the wiring",
                dev.timeout_ms
            );
        }
        Err(ReqError::Exception(code)) => {
            ans.failure = Some("exception".into());
            ans.exception_code = Some(code);
            ans.message = format!("the device answered with exception {code} ({code:#04x}): {}", super::frame::exception_text(code));
        }
        Err(ReqError::Link(m)) => {
            ans.failure = Some("link".into());
            ans.message = format!("no connection to the device: {m}");
        }
    }
    ans
}

#[cfg(test)]
mod tests {
    use super::*;
    use enos_batch::Value;

    #[test]
    fn words_decode_in_steps_of_the_type() {
        let v = decode_words(&[0x4367, 0x6666, 0x0001], 10, DataType::F32, ByteOrder::ABCD);
        assert_eq!(v.len(), 1, "an odd word left over is not a value");
        assert_eq!(v[0].address, 10);
        assert_eq!(v[0].value, Value::Float(231.4));
        let v = decode_words(&[0xffff, 2], 0, DataType::I16, ByteOrder::ABCD);
        assert_eq!(v.iter().map(|x| x.value.clone()).collect::<Vec<_>>(), vec![Value::Int(-1), Value::Int(2)]);
    }
}
