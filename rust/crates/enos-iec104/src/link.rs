//! One established connection: STARTDT on start, STOPDT on close, TESTFR when idle, the k/w
//! windows, t1-t3, receive-sequence checks, and the ASDUs in and out.
//!
//! Any protocol fault (malformed frame, sequence error, t1 expiry) ends the link; the station
//! task connects again. The standard leaves no other recovery: after a lost frame the sequence
//! numbers of both sides can only be reset by a new connection.

use crate::apci::{self, Apdu, UFunction, SEQ_MODULO};
use crate::asdu::{self, Asdu, Cot, Quality, TypeId};
use crate::error::{DecodeError, Hex};
use crate::interrogations::Interrogations;
use crate::settings::{words, Settings};
use crate::station::{Confirmation, Request, Stats, Waiter};
use crate::{time, Event};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, timeout, Instant};

/// Why a link ended.
#[derive(Debug)]
pub(crate) enum End {
    /// Closed on request (STOPDT exchanged or tried); the reply goes to the closer.
    Closed(Option<oneshot::Sender<()>>),
    /// Lost: the reason in words.
    Lost(String),
    /// The engine dropped the event receiver: nobody listens any more.
    NoListener,
}

/// Reads whole frames; cancel-safe (what has arrived stays in `buf`).
struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
}

enum ReadError {
    Malformed(DecodeError),
    Io(String),
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    async fn next(&mut self) -> Result<Vec<u8>, ReadError> {
        loop {
            match apci::frame_len(&self.buf) {
                Err(e) => return Err(ReadError::Malformed(e)),
                Ok(Some(n)) if self.buf.len() >= n => return Ok(self.buf.drain(..n).collect()),
                Ok(_) => {}
            }
            self.buf.reserve(512);
            match self.inner.read_buf(&mut self.buf).await {
                Ok(0) => return Err(ReadError::Io("the station closed the connection".into())),
                Ok(_) => {}
                Err(e) => return Err(ReadError::Io(format!("reading from the station failed: {e}"))),
            }
        }
    }
}

pub(crate) struct Link<'a, W> {
    writer: W,
    settings: &'a Settings,
    stats: &'a Stats,
    events: &'a mpsc::Sender<Event>,
    /// Next send and expected receive sequence numbers.
    vs: u16,
    vr: u16,
    /// The station's last N(R): our I frames below it are acknowledged.
    acked: u16,
    /// Send times of our unacknowledged I frames, oldest first (at most k).
    unacked: VecDeque<Instant>,
    /// I frames received since our last acknowledgement, and when the first of them came.
    received: u16,
    t2_since: Option<Instant>,
    /// A U act (STARTDT, STOPDT, TESTFR) awaiting its con, and when it was sent.
    u_pending: Option<(UFunction, Instant)>,
    last_rx: Instant,
    /// ASDUs of our own (interrogations after connect, schedules) waiting for room in k.
    outbox: VecDeque<Vec<u8>>,
    /// General interrogations, sent one at a time per common address.
    gis: Interrogations,
    waiters: Vec<Waiter>,
    next_gi: Option<Instant>,
    next_ci: Option<Instant>,
    next_cs: Option<Instant>,
}

fn seq_distance(from: u16, to: u16) -> u16 {
    (to + SEQ_MODULO - from) % SEQ_MODULO
}

/// Runs a link on an established stream until it ends; `true` with the end if STARTDT was
/// confirmed (the link was up).
pub(crate) async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    settings: &Settings,
    stats: &Stats,
    events: &mpsc::Sender<Event>,
    requests: &mut mpsc::Receiver<Request>,
    address: &str,
    role: &str,
) -> (End, bool) {
    let (r, writer) = tokio::io::split(stream);
    let mut reader = FrameReader { inner: r, buf: Vec::with_capacity(1024) };
    let now = Instant::now();
    let every = |d: Duration| (!d.is_zero()).then(|| now + d);
    let mut link = Link {
        writer,
        settings,
        stats,
        events,
        vs: 0,
        vr: 0,
        acked: 0,
        unacked: VecDeque::with_capacity(settings.k as usize),
        received: 0,
        t2_since: None,
        u_pending: None,
        last_rx: now,
        outbox: VecDeque::new(),
        gis: Interrogations::default(),
        waiters: Vec::new(),
        next_gi: every(settings.interrogation_interval),
        next_ci: every(settings.counter_interval),
        next_cs: every(settings.clock_sync_interval),
    };
    if let Err(end) = link.start(&mut reader).await {
        return (end, false);
    }
    stats.connects.fetch_add(1, Ordering::Relaxed);
    let up = Event::Link { state: crate::LinkState::Up, address: address.to_string(), reason: format!("connected to {address} ({role})") };
    if events.send(up).await.is_err() {
        return (End::NoListener, true);
    }
    for &ca in &settings.common_addresses {
        link.gis.schedule(ca, asdu::interrogation(ca, settings.originator));
    }
    let end = link.serve(&mut reader, requests).await;
    (end, true)
}

impl<W: AsyncWrite + Unpin> Link<'_, W> {
    /// STARTDT act, then its con within t1; frames before it are a protocol fault.
    async fn start<R: AsyncRead + Unpin>(&mut self, reader: &mut FrameReader<R>) -> Result<(), End> {
        self.send_u(UFunction::StartDtAct).await?;
        let t1 = self.settings.t1;
        loop {
            let frame = match timeout(t1, reader.next()).await {
                Err(_) => return Err(End::Lost(format!("the station did not confirm STARTDT within {}", words(t1)))),
                Ok(r) => self.check_read(r)?,
            };
            match apci::decode(&frame) {
                Ok(Apdu::U(UFunction::StartDtCon)) => {
                    self.u_pending = None;
                    self.last_rx = Instant::now();
                    return Ok(());
                }
                Ok(Apdu::U(UFunction::TestFrAct)) => self.send_u(UFunction::TestFrCon).await?,
                Ok(other) => log::warn!("IEC 104: ignoring {other:?} before STARTDT con ({})", Hex(&frame)),
                Err(e) => return Err(self.malformed(e)),
            }
        }
    }

    fn check_read(&self, r: Result<Vec<u8>, ReadError>) -> Result<Vec<u8>, End> {
        match r {
            Ok(f) => Ok(f),
            Err(ReadError::Io(why)) => Err(End::Lost(why)),
            Err(ReadError::Malformed(e)) => Err(self.malformed(e)),
        }
    }

    fn malformed(&self, e: DecodeError) -> End {
        self.stats.malformed_frames.fetch_add(1, Ordering::Relaxed);
        log::warn!("IEC 104: {e}; resetting the link");
        End::Lost(format!("the station sent a malformed frame: {e}"))
    }

    fn sequence_error(&self, what: String) -> End {
        self.stats.sequence_errors.fetch_add(1, Ordering::Relaxed);
        log::warn!("IEC 104: {what}; resetting the link");
        End::Lost(what)
    }

    async fn serve<R: AsyncRead + Unpin>(&mut self, reader: &mut FrameReader<R>, requests: &mut mpsc::Receiver<Request>) -> End {
        loop {
            if let Err(end) = self.flush_outbox().await {
                return end;
            }
            let deadline = self.next_deadline();
            let room = self.room();
            let step = tokio::select! {
                r = reader.next() => match self.check_read(r) {
                    Ok(frame) => self.on_frame(&frame).await,
                    Err(end) => Err(end),
                },
                req = requests.recv(), if room => match req {
                    // A caller that gave up (timed out while the link was down) is not served
                    // late: a command must never run long after it was asked for.
                    Some(Request::Send { waiter: Some(w), .. }) if w.tx.is_closed() => Ok(()),
                    Some(Request::Send { asdu, waiter: Some(w) }) if w.type_id == TypeId::C_IC_NA_1 => {
                        self.gis.request(w.ca, asdu, w);
                        Ok(())
                    }
                    Some(Request::Send { asdu, waiter }) => {
                        self.waiters.retain(|w| !w.tx.is_closed());
                        self.waiters.extend(waiter);
                        self.send_i(&asdu).await
                    }
                    Some(Request::Close(reply)) => return self.stop(reader, Some(reply)).await,
                    None => return self.stop(reader, None).await,
                },
                _ = sleep_until(deadline) => self.on_timer().await,
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    fn room(&self) -> bool {
        self.unacked.len() < self.settings.k as usize && self.u_pending.is_none_or(|(f, _)| f == UFunction::TestFrAct)
    }

    async fn flush_outbox(&mut self) -> Result<(), End> {
        while self.room() {
            let Some(a) = self.outbox.pop_front() else { break };
            self.send_i(&a).await?;
        }
        while self.room() {
            let Some(gi) = self.gis.next(Instant::now()) else { break };
            let requested = gi.waiter.is_some();
            if let Some(w) = gi.waiter {
                if w.tx.is_closed() {
                    self.gis.ended(gi.ca); // its caller gave up: not sent late
                    continue;
                }
                self.waiters.retain(|w| !w.tx.is_closed());
                self.waiters.push(w);
            }
            // said before it is sent: its answer cannot come before this event
            self.emit(Event::InterrogationStarted { ca: gi.ca, requested }).await?;
            self.send_i(&gi.asdu).await?;
        }
        Ok(())
    }

    fn next_deadline(&self) -> Instant {
        let s = self.settings;
        let far = Instant::now() + Duration::from_secs(3600);
        [
            self.unacked.front().map(|t| *t + s.t1),
            self.u_pending.map(|(_, t)| t + s.t1),
            self.t2_since.map(|t| t + s.t2),
            self.u_pending.is_none().then(|| self.last_rx + s.t3),
            self.next_gi,
            self.gis.deadline(),
            self.next_ci,
            self.next_cs,
        ]
        .into_iter()
        .flatten()
        .fold(far, Instant::min)
    }

    async fn on_timer(&mut self) -> Result<(), End> {
        let now = Instant::now();
        let s = self.settings;
        if self.unacked.front().is_some_and(|t| *t + s.t1 <= now) {
            self.stats.t1_timeouts.fetch_add(1, Ordering::Relaxed);
            return Err(End::Lost(format!("the station did not acknowledge an I frame within t1 ({})", words(s.t1))));
        }
        if let Some((f, t)) = self.u_pending {
            if t + s.t1 <= now {
                self.stats.t1_timeouts.fetch_add(1, Ordering::Relaxed);
                return Err(End::Lost(format!("the station did not answer {} within t1 ({})", f.describe(), words(s.t1))));
            }
        }
        if self.t2_since.is_some_and(|t| t + s.t2 <= now) {
            self.ack_received().await?;
        }
        if self.u_pending.is_none() && self.last_rx + s.t3 <= now {
            self.send_u(UFunction::TestFrAct).await?;
        }
        let due = |next: &mut Option<Instant>, every: Duration| match next {
            Some(t) if *t <= now => {
                *next = Some(now + every);
                true
            }
            _ => false,
        };
        let orig = s.originator;
        if due(&mut self.next_gi, s.interrogation_interval) {
            for &ca in &s.common_addresses {
                self.gis.schedule(ca, asdu::interrogation(ca, orig));
            }
        }
        if due(&mut self.next_ci, s.counter_interval) {
            self.outbox.extend(s.common_addresses.iter().map(|&ca| asdu::counter_interrogation(ca, orig)));
        }
        if due(&mut self.next_cs, s.clock_sync_interval) {
            let offset = s.station_utc_offset_minutes;
            match time::encode(crate::station::now_unix_ms(), offset) {
                Some(t) => self.outbox.extend(s.common_addresses.iter().map(|&ca| asdu::clock_sync(ca, orig, t))),
                None => log::warn!("IEC 104: scheduled clock sync skipped: {}", asdu::EncodeError::ClockOutOfRange),
            }
        }
        Ok(())
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), End> {
        let t1 = self.settings.t1;
        match timeout(t1, self.writer.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(End::Lost(format!("writing to the station failed: {e}"))),
            Err(_) => Err(End::Lost(format!("the station did not take our data within t1 ({})", words(t1)))),
        }
    }

    async fn send_u(&mut self, f: UFunction) -> Result<(), End> {
        if matches!(f, UFunction::StartDtAct | UFunction::StopDtAct | UFunction::TestFrAct) {
            self.u_pending = Some((f, Instant::now()));
        }
        self.write(&apci::encode_u(f)).await
    }

    async fn send_i(&mut self, asdu: &[u8]) -> Result<(), End> {
        let mut frame = Vec::with_capacity(asdu.len() + 6);
        apci::encode_i(self.vs, self.vr, asdu, &mut frame);
        self.write(&frame).await?;
        self.vs = (self.vs + 1) % SEQ_MODULO;
        self.unacked.push_back(Instant::now());
        // an I frame acknowledges what we received, too
        self.received = 0;
        self.t2_since = None;
        Ok(())
    }

    async fn ack_received(&mut self) -> Result<(), End> {
        self.received = 0;
        self.t2_since = None;
        self.write(&apci::encode_s(self.vr)).await
    }

    /// The station acknowledges our I frames below `nr`; anything outside what we sent is a
    /// sequence error.
    fn acknowledge(&mut self, nr: u16) -> Result<(), End> {
        let n = seq_distance(self.acked, nr);
        if n as usize > self.unacked.len() {
            return Err(
                self.sequence_error(format!("the station acknowledged our I frames up to N(R)={nr}, but our next N(S) is {}", self.vs))
            );
        }
        self.unacked.drain(..n as usize);
        self.acked = nr;
        Ok(())
    }

    async fn on_frame(&mut self, frame: &[u8]) -> Result<(), End> {
        self.last_rx = Instant::now();
        match apci::decode(frame) {
            Err(e) => Err(self.malformed(e)),
            Ok(Apdu::S { recv }) => self.acknowledge(recv),
            Ok(Apdu::U(f)) => {
                match f {
                    UFunction::TestFrAct => self.send_u(UFunction::TestFrCon).await?,
                    UFunction::TestFrCon | UFunction::StartDtCon | UFunction::StopDtCon => {
                        if self.u_pending.is_some_and(|(p, _)| p == UFunction::TestFrAct && f == UFunction::TestFrCon) {
                            self.u_pending = None;
                        }
                    }
                    UFunction::StartDtAct | UFunction::StopDtAct => {
                        log::warn!("IEC 104: the station sent {}, which only a controlling station sends; ignored", f.describe())
                    }
                }
                Ok(())
            }
            Ok(Apdu::I { send, recv, asdu }) => {
                if send != self.vr {
                    return Err(self.sequence_error(format!(
                        "the station sent I frame N(S)={send} where N(S)={} was due ({})",
                        self.vr,
                        Hex(frame)
                    )));
                }
                self.vr = (self.vr + 1) % SEQ_MODULO;
                self.acknowledge(recv)?;
                self.received += 1;
                self.t2_since.get_or_insert_with(Instant::now);
                let asdu = Asdu::decode(asdu, frame).map_err(|e| self.malformed(e))?;
                self.on_asdu(&asdu, frame).await?;
                if self.received >= self.settings.w {
                    self.ack_received().await?;
                }
                Ok(())
            }
        }
    }

    async fn on_asdu(&mut self, a: &Asdu<'_>, frame: &[u8]) -> Result<(), End> {
        let h = a.header;
        let offset = self.settings.station_utc_offset_minutes;
        if h.cot.is_unknown_reply() || matches!(h.cot, Cot::ACTIVATION_CON | Cot::ACTIVATION_TERM | Cot::DEACTIVATION_CON) {
            for o in a.objects() {
                let c = Confirmation { cot: h.cot, negative: h.negative, select: asdu::command_is_select(h.type_id, o.element) };
                self.waiters.retain(|w| !w.tx.is_closed());
                for w in self.waiters.iter().filter(|w| w.type_id == h.type_id && w.ca == h.ca && w.ioa == o.ioa) {
                    let _ = w.tx.try_send(c);
                }
            }
            if h.type_id == TypeId::C_IC_NA_1 && (h.cot == Cot::ACTIVATION_TERM || h.negative || h.cot.is_unknown_reply()) {
                self.gis.ended(h.ca); // the next interrogation of this address may go
            }
            let done = match (h.type_id, h.cot) {
                (TypeId::C_IC_NA_1, Cot::ACTIVATION_TERM) => Some(Event::InterrogationDone { ca: h.ca }),
                (TypeId::C_CI_NA_1, Cot::ACTIVATION_TERM) => Some(Event::CounterInterrogationDone { ca: h.ca }),
                _ => None,
            };
            if let Some(ev) = done {
                self.emit(ev).await?;
            }
            if h.cot.is_unknown_reply() || h.negative {
                log::info!("IEC 104: the station answered {} with {}{}", h.type_id, if h.negative { "a negative " } else { "" }, h.cot);
            }
            return Ok(());
        }
        for o in a.objects() {
            let r = match asdu::reading(h.type_id, o.element, offset) {
                Ok(Some(r)) => r,
                Ok(None) => {
                    log::info!("IEC 104: ignoring {} with cause {} from the station ({})", h.type_id, h.cot, Hex(frame));
                    continue;
                }
                Err(kind) => {
                    // A bad time tag spoils one value, not the link: deliver it flagged invalid
                    // without the time, so the engine stamps it with the arrival time.
                    self.stats.bad_time_tags.fetch_add(1, Ordering::Relaxed);
                    log::warn!("IEC 104: {kind} for IOA {} in APDU {}", o.ioa, Hex(frame));
                    let (value, q) = asdu::value_and_quality(h.type_id, o.element).expect("a monitor type");
                    asdu::Reading { value, quality: Quality(q.0 | Quality::IV), time: None }
                }
            };
            // A station that (re)initialised has lost what we knew: interrogate it again.
            if h.type_id == TypeId::M_EI_NA_1 && self.settings.common_addresses.contains(&h.ca) {
                // an interrogation it was answering is lost with its restart
                self.gis.ended(h.ca);
                self.gis.schedule(h.ca, asdu::interrogation(h.ca, self.settings.originator));
            }
            let ev =
                Event::Value { ca: h.ca, ioa: o.ioa, type_id: h.type_id, value: r.value, quality: r.quality, time: r.time, cot: h.cot };
            self.emit(ev).await?;
        }
        Ok(())
    }

    async fn emit(&self, ev: Event) -> Result<(), End> {
        self.events.send(ev).await.map_err(|_| End::NoListener)
    }

    /// STOPDT act, wait (bounded by t1) for its con, then the connection is dropped.
    async fn stop<R: AsyncRead + Unpin>(&mut self, reader: &mut FrameReader<R>, reply: Option<oneshot::Sender<()>>) -> End {
        if self.received > 0 {
            let _ = self.ack_received().await;
        }
        if self.send_u(UFunction::StopDtAct).await.is_ok() {
            let until = Instant::now() + self.settings.t1;
            while let Ok(Ok(frame)) = timeout(until.saturating_duration_since(Instant::now()), reader.next()).await {
                if matches!(apci::decode(&frame), Ok(Apdu::U(UFunction::StopDtCon))) {
                    break;
                }
            }
        }
        let _ = self.writer.shutdown().await;
        End::Closed(reply)
    }
}
