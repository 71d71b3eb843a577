//! The driver against a station written here on raw TCP, to time its answers exactly.

use super::Iec104Driver;
use crate::{Command, Driver, DriverContext, StatusBoard};
use enos_collector_config::CollectorConfig;
use enos_iec104::apci::{self, UFunction};
use enos_model::comm_test::{CommAnswer, CommTest, Interrogation};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

const C_IC_NA_1: u8 = 100;
const M_ME_NC_1: u8 = 13;
const ACTCON: u8 = 7;
const ACTTERM: u8 = 10;
const INROGEN: u8 = 20;

/// The station's side of one connection: its send and receive sequence numbers.
struct Raw {
    s: TcpStream,
    vs: u16,
    vr: u16,
}

impl Raw {
    /// The next frame, or `None` if none starts within `within`.
    async fn frame(&mut self, within: Duration) -> Option<Vec<u8>> {
        let mut head = [0u8; 2];
        timeout(within, self.s.read_exact(&mut head)).await.ok()?.expect("read");
        let mut rest = vec![0u8; head[1] as usize];
        self.s.read_exact(&mut rest).await.expect("read");
        Some([head.to_vec(), rest].concat())
    }

    /// The client's next general interrogation (S frames skipped), or `None` within `within`.
    async fn interrogation(&mut self, within: Duration) -> Option<u16> {
        loop {
            let f = self.frame(within).await?;
            if f[2] & 1 == 0 {
                self.vr = (self.vr + 1) % apci::SEQ_MODULO;
                assert_eq!(f[6], C_IC_NA_1, "only interrogations are expected: {f:02x?}");
                return Some(u16::from_le_bytes([f[10], f[11]]));
            }
        }
    }

    async fn asdu(&mut self, asdu: &[u8]) {
        let mut out = Vec::new();
        apci::encode_i(self.vs, self.vr, asdu, &mut out);
        self.vs = (self.vs + 1) % apci::SEQ_MODULO;
        self.s.write_all(&out).await.unwrap();
    }

    async fn gi(&mut self, cot: u8) {
        self.asdu(&[C_IC_NA_1, 1, cot, 0, 1, 0, 0, 0, 0, 20]).await;
    }

    /// A short float of cause 20 (interrogated by station) at common address 1.
    async fn value(&mut self, ioa: u8, v: f32) {
        let mut a = vec![M_ME_NC_1, 1, INROGEN, 0, 1, 0, ioa, 0, 0];
        a.extend(v.to_le_bytes());
        a.push(0);
        self.asdu(&a).await;
    }
}

/// A communication test asked while the link's own interrogation is running gets the objects of
/// its own interrogation only, and its answer waits for its own termination: the station cannot
/// say which interrogation an object or an ACTTERM belongs to, so the two must not overlap.
#[tokio::test]
async fn the_communication_test_does_not_mix_with_a_running_interrogation() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let text = format!(
        "[[device]]\nid = \"rtu\"\nprotocol = \"iec104\"\naddress = \"{}\"\ncommon_address = 1\ninterrogation_interval_s = 3600\n\
         [[device.point]]\nname = \"a\"\nioa = 1\ntype = \"M_ME_NC_1\"\n",
        l.local_addr().unwrap()
    );
    let cfg = CollectorConfig::from_str_at(std::path::Path::new("collector.toml"), &text).unwrap();
    let driver = Iec104Driver::new(&Arc::from(cfg.devices)).unwrap();
    let (frames, mut frames_rx) = mpsc::channel(64);
    let (events, _events_rx) = mpsc::unbounded_channel();
    let (commands_tx, commands) = mpsc::channel(4);
    let ctx = DriverContext { frames, events, status: Arc::new(StatusBoard::default()), commands };
    let _driver = tokio::spawn(Box::new(driver).run(ctx));
    tokio::spawn(async move { while frames_rx.recv().await.is_some() {} });

    let (s, _) = timeout(Duration::from_secs(10), l.accept()).await.unwrap().unwrap();
    let mut st = Raw { s, vs: 0, vr: 0 };
    assert_eq!(st.frame(Duration::from_secs(10)).await.unwrap(), apci::encode_u(UFunction::StartDtAct));
    st.s.write_all(&apci::encode_u(UFunction::StartDtCon)).await.unwrap();
    // the link's own interrogation after connect: confirmed, one object, not yet terminated
    assert_eq!(st.interrogation(Duration::from_secs(10)).await, Some(1));
    st.gi(ACTCON).await;
    st.value(1, 1.0).await;

    let (reply, answer) = oneshot::channel();
    let request = CommTest::Iec104Interrogation(Interrogation { ca: None, ioa_from: None, ioa_to: None });
    commands_tx.send(Command::RawRead { device: "rtu".into(), request, reply }).await.unwrap();
    // the test's interrogation must wait for the running one's termination; a client that sends
    // it at once gets its confirmation, then the first one's termination
    match st.interrogation(Duration::from_secs(2)).await {
        Some(_) => {
            st.gi(ACTCON).await;
            st.gi(ACTTERM).await;
            st.value(2, 2.0).await;
            st.gi(ACTTERM).await;
        }
        None => {
            st.value(3, 3.0).await; // still the first interrogation's
            st.gi(ACTTERM).await;
            assert_eq!(st.interrogation(Duration::from_secs(10)).await, Some(1), "the test's interrogation after the first ended");
            st.gi(ACTCON).await;
            st.value(2, 2.0).await;
            st.gi(ACTTERM).await;
        }
    }
    let a = timeout(Duration::from_secs(10), answer).await.expect("the test answers").unwrap().unwrap();
    let CommAnswer::Iec104Interrogation(a) = a else { panic!("{a:?}") };
    let ioas: Vec<u32> = a.objects.iter().map(|o| o.ioa).collect();
    assert_eq!((a.ok, ioas), (true, vec![2]), "only the test's own interrogation's object: {}", a.message);
}
