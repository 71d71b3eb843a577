//! An IEC 60870-5-104 controlled station for the benchmark (the tests use the c104 station):
//! after STARTDT it answers a general interrogation with its confirmation and termination, then
//! sends spontaneous short floats with time tags (M_ME_TF_1, 16 objects per frame) at a set rate,
//! never more than k frames ahead of the client's acknowledgements.

use enos_iec104::apci::{self, Apdu, UFunction};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const K: u16 = 12;
const PER_FRAME: u32 = 16;
const M_ME_TF_1: u8 = 36;
const C_IC_NA_1: u8 = 100;

pub struct Iec104Sim {
    pub addr: String,
    /// Values sent so far.
    pub sent: Arc<AtomicU64>,
}

impl Iec104Sim {
    /// A station with IOAs 1..=`points` at common address 1, sending `rate` values per second
    /// to each client.
    pub async fn start(points: u32, rate: u64) -> Iec104Sim {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(serve(s, points, rate, counter.clone()));
            }
        });
        Iec104Sim { addr, sent }
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

async fn serve(mut s: TcpStream, points: u32, rate: u64, sent: Arc<AtomicU64>) {
    let (mut send_seq, mut recv_seq, mut acked) = (0u16, 0u16, 0u16);
    let mut started = false;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let (mut ioa, mut owed) = (1u32, 0f64);
    loop {
        tokio::select! {
            r = s.read_buf(&mut buf) => {
                if !matches!(r, Ok(n) if n > 0) {
                    return;
                }
                while let Ok(Some(n)) = apci::frame_len(&buf) {
                    if buf.len() < n {
                        break;
                    }
                    let frame: Vec<u8> = buf.drain(..n).collect();
                    match apci::decode(&frame) {
                        Ok(Apdu::U(UFunction::StartDtAct)) => {
                            started = true;
                            out.extend_from_slice(&apci::encode_u(UFunction::StartDtCon));
                        }
                        Ok(Apdu::U(UFunction::TestFrAct)) => out.extend_from_slice(&apci::encode_u(UFunction::TestFrCon)),
                        Ok(Apdu::U(UFunction::StopDtAct)) => {
                            started = false;
                            out.extend_from_slice(&apci::encode_u(UFunction::StopDtCon));
                        }
                        Ok(Apdu::U(_)) => {}
                        Ok(Apdu::S { recv }) => acked = recv,
                        Ok(Apdu::I { recv, asdu, .. }) => {
                            acked = recv;
                            recv_seq = recv_seq.wrapping_add(1) & 0x7fff;
                            if asdu.first() == Some(&C_IC_NA_1) {
                                // Activation confirmation, then termination: no data in a GI here.
                                for cot in [7u8, 10] {
                                    let mut a = asdu.to_vec();
                                    a[2] = cot;
                                    apci::encode_i(send_seq, recv_seq, &a, &mut out);
                                    send_seq = (send_seq + 1) & 0x7fff;
                                }
                            } else {
                                out.extend_from_slice(&apci::encode_s(recv_seq));
                            }
                        }
                        Err(_) => return,
                    }
                }
            }
            _ = tick.tick() => {
                if started {
                    // What the window holds back is not owed for ever: the rate is an offer.
                    owed = (owed + rate as f64 / 100.0).min(rate as f64 / 10.0);
                }
            }
        }
        // Sends what is owed as far as the window allows: after a tick, and after an
        // acknowledgement opened the window.
        while started && owed >= PER_FRAME as f64 && send_seq.wrapping_sub(acked) & 0x7fff < K {
            let time = enos_iec104::time::encode(now_ms(), 0).unwrap_or([0; 7]);
            let mut a = vec![M_ME_TF_1, PER_FRAME as u8, 3, 0, 1, 0];
            for _ in 0..PER_FRAME {
                a.extend_from_slice(&ioa.to_le_bytes()[..3]);
                a.extend_from_slice(&(230.0f32 + (ioa % 100) as f32 / 10.0).to_le_bytes());
                a.push(0);
                a.extend_from_slice(&time);
                ioa = if ioa >= points { 1 } else { ioa + 1 };
            }
            apci::encode_i(send_seq, recv_seq, &a, &mut out);
            send_seq = (send_seq + 1) & 0x7fff;
            owed -= PER_FRAME as f64;
            sent.fetch_add(PER_FRAME as u64, Ordering::Relaxed);
        }
        if !out.is_empty() {
            if s.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    }
}
