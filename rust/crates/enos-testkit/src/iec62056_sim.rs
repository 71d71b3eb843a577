//! An IEC 62056-21 mode C meter (data readout) for the benchmark, the protocol of
//! `peers/iec62056_meter.py` (which the tests use): the benchmark's native driver makes tens of
//! thousands of readouts a second, which a Python peer printing a line per readout would cap, so
//! this one answers in Rust on a thread per connection and the figure is the driver's.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const ACK: u8 = 0x06;
const STX: u8 = 0x02;
const ETX: u8 = 0x03;

/// A three-phase meter's readout: 20 OBIS lines (energies, demand, phase values, clock).
pub const READOUT: [(&str, &str); 20] = [
    ("0.0.0", "12345678"),
    ("1.8.0", "001234.567*kWh"),
    ("1.8.1", "000800.123*kWh"),
    ("1.8.2", "000434.444*kWh"),
    ("2.8.0", "000012.345*kWh"),
    ("3.8.0", "000100.000*kvarh"),
    ("4.8.0", "000050.000*kvarh"),
    ("1.7.0", "01.234*kW"),
    ("2.7.0", "00.000*kW"),
    ("1.6.0", "02.345*kW)(26-12-07 12:00"),
    ("32.7.0", "230.1*V"),
    ("52.7.0", "229.8*V"),
    ("72.7.0", "231.0*V"),
    ("31.7.0", "1.52*A"),
    ("51.7.0", "1.48*A"),
    ("71.7.0", "1.61*A"),
    ("14.7.0", "50.00*Hz"),
    ("13.7.0", "0.98"),
    ("0.9.1", "12:00:00"),
    ("0.9.2", "26-12-07"),
];

pub struct MeterSim {
    pub addr: String,
    /// Data blocks sent so far.
    pub readouts: Arc<AtomicU64>,
}

impl MeterSim {
    /// A meter answering any sign-on with identification `ISK5MT174-0001` and the lines of
    /// [`READOUT`], its energy 1.8.0 counting up 0.001 kWh per readout (fresh values).
    pub fn start() -> MeterSim {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        let readouts = Arc::new(AtomicU64::new(0));
        let counter = readouts.clone();
        std::thread::spawn(move || {
            for s in l.incoming().map_while(Result::ok) {
                let counter = counter.clone();
                std::thread::spawn(move || serve(s, &counter));
            }
        });
        MeterSim { addr, readouts }
    }
}

fn block(n: u64) -> Vec<u8> {
    let mut b = vec![STX];
    for (obis, v) in READOUT {
        if obis == "1.8.0" {
            let _ = write!(b, "1.8.0({:010.3}*kWh)\r\n", 1234.567 + n as f64 * 0.001);
        } else {
            let _ = write!(b, "{obis}({v})\r\n");
        }
    }
    b.extend_from_slice(b"!\r\n");
    b.push(ETX);
    let bcc = b[1..].iter().fold(0, |a, c| a ^ c);
    b.push(bcc);
    b
}

/// One connection: sign-on -> identification, `ACK 0 Z 0` -> data block; anything else ends
/// the session, as a meter's timeout would.
fn serve(mut s: TcpStream, readouts: &AtomicU64) {
    let _ = s.set_nodelay(true);
    let (mut buf, mut chunk, mut identified) = (Vec::new(), [0u8; 1024], false);
    while let Ok(n @ 1..) = s.read(&mut chunk) {
        buf.extend_from_slice(&chunk[..n]);
        while let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = buf.drain(..i + 2).take(i).collect();
            let answer = if line.starts_with(b"/?") && line.ends_with(b"!") {
                identified = true;
                b"/ISK5MT174-0001\r\n".to_vec()
            } else if identified && line.len() == 4 && line[0] == ACK {
                identified = false;
                block(readouts.fetch_add(1, Ordering::Relaxed))
            } else {
                identified = false;
                continue;
            };
            if s.write_all(&answer).is_err() {
                return;
            }
        }
    }
}
