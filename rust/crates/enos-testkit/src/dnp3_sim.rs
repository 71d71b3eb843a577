//! A DNP3 outstation for the benchmark (the tests use dnp3py): it answers every request of the
//! master's startup (disable unsolicited, integrity poll, enable unsolicited) with an empty
//! response, and once unsolicited responses are enabled sends analog input events (g32v1, a
//! changing value per index, 50 events per unsolicited response, no confirmation asked) at a set
//! rate.

use enos_dnp3::{app, link, transport};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PER_RESPONSE: u32 = 50;

pub struct Dnp3Sim {
    pub addr: String,
    /// Events sent so far.
    pub sent: Arc<AtomicU64>,
}

impl Dnp3Sim {
    /// Outstation `address` (master 1) with analog inputs 0..`points`, sending `rate` events
    /// per second to each master once it enabled unsolicited responses.
    pub async fn start(address: u16, points: u32, rate: u64) -> Dnp3Sim {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(serve(s, address, points, rate, counter.clone()));
            }
        });
        Dnp3Sim { addr, sent }
    }
}

struct Out {
    s: TcpStream,
    address: u16,
    tx_seq: u8,
}

impl Out {
    async fn fragment(&mut self, frag: &[u8]) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        for seg in transport::segments(frag, &mut self.tx_seq) {
            let f = link::Frame { control: link::PRM | link::func::UNCONFIRMED_USER_DATA, dest: 1, src: self.address, data: seg };
            bytes.extend(f.encode());
        }
        self.s.write_all(&bytes).await
    }
}

async fn serve(s: TcpStream, address: u16, points: u32, rate: u64, sent: Arc<AtomicU64>) {
    let _ = s.set_nodelay(true);
    let mut out = Out { s, address, tx_seq: 0 };
    let mut decoder = link::Decoder::default();
    let mut reassembly = transport::Reassembler::new(4096);
    let mut buf = [0u8; 2048];
    let mut enabled = false;
    let (mut uns_seq, mut n) = (0u8, 0u64);
    let every = Duration::from_secs_f64(f64::from(PER_RESPONSE) / rate.max(1) as f64);
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            r = out.s.read(&mut buf) => {
                let Ok(len) = r else { return };
                if len == 0 {
                    return;
                }
                decoder.push(&buf[..len]);
                while let Some(f) = decoder.next_frame() {
                    let Ok(f) = f else { continue };
                    let Ok(Some(req)) = reassembly.push(&f.data) else { continue };
                    if req.len() < 2 || req[1] == app::func::CONFIRM {
                        continue;
                    }
                    enabled |= req[1] == app::func::ENABLE_UNSOLICITED;
                    // an empty response with the request's sequence
                    let resp = [app::FIR | app::FIN | (req[0] & 0x0f), app::func::RESPONSE, 0, 0];
                    if out.fragment(&resp).await.is_err() {
                        return;
                    }
                }
            }
            _ = tick.tick(), if enabled => {
                let mut frag = vec![app::FIR | app::FIN | app::UNS | uns_seq, app::func::UNSOLICITED_RESPONSE, 0, 0];
                uns_seq = (uns_seq + 1) & 0x0f;
                // g32v1 (32-bit with flag), qualifier 0x28: a count, then a 2-octet index per event
                frag.extend([32, 1, 0x28]);
                frag.extend((PER_RESPONSE as u16).to_le_bytes());
                for _ in 0..PER_RESPONSE {
                    frag.extend(((n % u64::from(points)) as u16).to_le_bytes());
                    frag.push(0x01); // ONLINE
                    frag.extend((n as i32).to_le_bytes());
                    n += 1;
                }
                if out.fragment(&frag).await.is_err() {
                    return;
                }
                sent.fetch_add(u64::from(PER_RESPONSE), Ordering::Relaxed);
            }
        }
    }
}
