//! DNP3 (IEEE 1815) master on tokio, written for EnOS Edge (see `docs/protocols/dnp3.md` for
//! what is supported and why it is ours).
//!
//! - `crc`, `link`: the data link layer (FT3 frames, CRC per header and per 16-octet block,
//!   resynchronisation after garbage);
//! - `transport`: segments and their reassembly (an out-of-sequence segment drops the fragment);
//! - `app`, `objects`: fragment headers, IIN, requests, and the objects of responses;
//! - `master`: the [`Master`] handle and the channel task (several outstations per channel,
//!   integrity and event polls, unsolicited responses, IIN handling, commands).
//!
//! What arrives is an ordered stream of [`Event`]s; the session keeps no per-point state.

pub mod app;
mod crc;
pub mod error;
pub mod link;
mod master;
pub mod objects;
pub mod transport;

pub use app::Iin;
pub use error::{DecodeError, DecodeErrorKind};
pub use master::{Command, CommandError, Master, Mode, OutstationSettings, PollError, PollReply, Settings, SettingsError, Stats, Step};
pub use objects::{Crob, DoubleBit, Measurement, OutputValue, PointKind, Value};

/// What the channel reports, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// One value of a point of `outstation`, static or event, in the order the outstation sent
    /// them (several events of one millisecond all arrive).
    Value { outstation: u16, m: Measurement },
    /// The connection came up, went down (`reason` in words) or was closed on request.
    Link { state: LinkState, reason: String },
    /// A poll of `outstation` ended: `Ok` with what was read, or why it failed, in words.
    Poll { outstation: u16, what: &'static str, result: Result<(), String> },
    /// Something the outstation said in its IIN that people should know (a restart, a lost
    /// event buffer), in words.
    Notice { outstation: u16, what: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Up,
    /// Lost or never established; the channel tries again.
    Down,
    /// Closed on request; the channel has ended.
    Closed,
}

#[cfg(test)]
mod hostile_input {
    //! Garbled and truncated input of every layer never panics the decoders.
    use crate::{app, link, objects, transport};

    fn decode_all(bytes: &[u8]) {
        let mut d = link::Decoder::default();
        let mut r = transport::Reassembler::new(4096);
        d.push(bytes);
        while let Some(f) = d.next_frame() {
            if let Ok(f) = f {
                if let Ok(Some(frag)) = r.push(&f.data) {
                    if let Ok(resp) = app::parse_response(&frag) {
                        let _ = objects::parse(resp.objects);
                    }
                }
            }
        }
        // the object parser alone, on the raw bytes too
        let _ = objects::parse(bytes);
    }

    /// Valid responses carrying one header of each known object, wrapped in one frame.
    fn valid_frames() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for g in 0..=120u8 {
            for v in 0..=10u8 {
                for q in [0x00u8, 0x01, 0x07, 0x08, 0x17, 0x28] {
                    let mut objs = vec![g, v, q];
                    match q {
                        0x00 => objs.extend([2, 4]),
                        0x01 => objs.extend([2, 0, 4, 0]),
                        0x07 | 0x17 => objs.push(3),
                        0x08 | 0x28 => objs.extend([3, 0]),
                        _ => {}
                    }
                    objs.extend((0..40).map(|i| (i * 37 % 251) as u8));
                    let mut frag = vec![0xC0, 0x81, 0, 0];
                    frag.extend(objs);
                    let mut seq = 0;
                    for s in transport::segments(&frag, &mut seq) {
                        out.push(link::Frame { control: 0x44, dest: 1, src: 10, data: s }.encode());
                    }
                }
            }
        }
        out
    }

    #[test]
    fn truncations_and_bit_flips_never_panic() {
        for f in valid_frames().into_iter().step_by(3) {
            for n in 0..=f.len() {
                decode_all(&f[..n]);
            }
            for i in 0..f.len() {
                let mut g = f.clone();
                g[i] ^= 1 << (i % 8);
                decode_all(&g);
                decode_all(&g[10..]);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        // xorshift64 with a fixed seed: reproducible without a new crate
        let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for _ in 0..100_000 {
            let len = (next() % 300) as usize;
            let mut f: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len > 3 && next() % 2 == 0 {
                f[0] = [1u8, 2, 3, 4, 12, 20, 22, 30, 32, 41, 50, 51, 80][(next() % 13) as usize];
                f[1] = (next() % 9) as u8;
                f[2] = [0x00u8, 0x01, 0x06, 0x07, 0x08, 0x17, 0x28][(next() % 7) as usize];
            }
            decode_all(&f);
        }
    }
}
