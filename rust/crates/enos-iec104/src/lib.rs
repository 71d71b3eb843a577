//! IEC 60870-5-104 controlling station (client) on tokio.
//!
//! - `apci`, `asdu`, `time`: the codec (frames, ASDUs with the 104 field sizes, CP56Time2a);
//! - `link`: one established connection: STARTDT/STOPDT/TESTFR, k/w, t1-t3, sequence checks;
//! - `station`: the [`Station`] handle and its task, commands (direct and select-before-operate);
//! - `reconnect`: backoff and the switch to the redundant address;
//! - `tls`: mutual TLS (IEC 62351-3) around the same stream.
//!
//! What arrives is an ordered stream of [`Event`]s; the session keeps no per-IOA state (the
//! engine maps IOAs to points). See `docs/protocols/iec104.md`.

pub mod apci;
pub mod asdu;
pub mod error;
mod interrogations;
mod link;
mod reconnect;
pub mod settings;
mod station;
pub mod time;
mod tls;

pub use asdu::{CommandValue, Cot, DoublePoint, Quality, TypeId, Value};
pub use error::{DecodeError, DecodeErrorKind};
pub use settings::{Settings, SettingsError, TlsSettings};
pub use station::{Command, CommandError, Station, Stats, Step};
pub use time::TimeTag;

/// What the session reports, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// One information object.
    Value {
        ca: u16,
        ioa: u32,
        type_id: TypeId,
        value: Value,
        quality: Quality,
        /// The station's time tag, for the time-tagged types.
        time: Option<TimeTag>,
        cot: Cot,
    },
    /// The link came up, went down or was closed; `reason` in words, `address` the one used.
    Link { state: LinkState, address: String, reason: String },
    /// The station terminated a general interrogation of `ca` (ACTTERM).
    InterrogationDone { ca: u16 },
    /// The station terminated a counter interrogation of `ca`.
    CounterInterrogationDone { ca: u16 },
    /// A general interrogation of `ca` was sent: the objects of cause 20 and the
    /// `InterrogationDone` that follow are its answer (one runs at a time per common address).
    /// `requested`: asked for with `Station::interrogate`, not the link's own.
    InterrogationStarted { ca: u16, requested: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// STARTDT confirmed: data flows.
    Up,
    /// Lost or never established; the session tries again.
    Down,
    /// Closed on request; the session has ended.
    Closed,
}

#[cfg(test)]
mod hostile_input {
    //! Garbled and truncated frames of every kind never panic the decoder.
    use crate::{apci, asdu};

    /// Everything the link does with a received frame, minus the I/O.
    fn decode_all(frame: &[u8]) {
        if let Ok(apci::Apdu::I { asdu: body, .. }) = apci::decode(frame) {
            if let Ok(a) = asdu::Asdu::decode(body, frame) {
                for o in a.objects() {
                    let _ = asdu::reading(a.header.type_id, o.element, 0);
                    let _ = asdu::command_is_select(a.header.type_id, o.element);
                }
            }
        }
    }

    /// A valid I frame of each type id with `count` objects, SQ as given.
    fn valid_frames() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for id in 0..=255u8 {
            let Some(t) = asdu::TypeId::from_u8(id) else { continue };
            for sq in [false, true] {
                let size = [1usize, 2, 3, 4, 5, 7, 8, 9, 10, 12].into_iter().find(|&s| {
                    let mut a = vec![id, 1, 3, 0, 1, 0, 0, 0, 0];
                    a.resize(9 + s, 0);
                    asdu::Asdu::decode(&a, &a).is_ok()
                });
                let size = size.expect("every type has a size");
                let count = 3u8;
                let mut a = vec![t as u8, count | if sq { 0x80 } else { 0 }, 3, 0, 1, 0];
                let objects = if sq { 3 + size * 3 } else { (3 + size) * 3 };
                a.extend((0..objects).map(|i| (i * 37 % 251) as u8));
                let mut f = Vec::new();
                apci::encode_i(1, 2, &a, &mut f);
                out.push(f);
            }
        }
        out
    }

    #[test]
    fn truncations_and_bit_flips_never_panic() {
        for f in valid_frames() {
            for n in 0..=f.len() {
                decode_all(&f[..n]);
                let mut g = f[..n].to_vec();
                if n > 1 {
                    g[1] = (n - 2) as u8; // lengths that agree with the truncation
                }
                decode_all(&g);
            }
            for i in 0..f.len() {
                for bit in 0..8 {
                    let mut g = f.clone();
                    g[i] ^= 1 << bit;
                    decode_all(&g);
                }
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
        for _ in 0..200_000 {
            let len = (next() % 260) as usize;
            let mut f: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len > 2 && next() % 2 == 0 {
                f[0] = apci::START;
                f[1] = (len - 2).min(255) as u8;
                if next() % 2 == 0 && len > 6 {
                    f[2] &= 0xfe; // an I frame
                    f[6] = [1u8, 13, 30, 36, 37, 45, 100, 103][(next() % 8) as usize];
                }
            }
            decode_all(&f);
        }
    }
}
