//! Raw mode: the harness plays a case's `script` packet by packet over its own WebSocket,
//! so it can send malformed input and check the exact packets the server answers with.
//! Every wait is bounded; a timeout is a failure, never taken for a close.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio::time::error::Elapsed;
use tokio_websockets::Message;
use wisp_cases::ServerCase as Case;
use wisp_cases::packet::{PacketSpec, Pattern, parse_version};
use wisp_cases::server::{ClientInfoRecord, ClientInfoSpec, ClientStep, SubprotocolExpect};
use wisp_cases::values::{ExtName, StreamRef};
use wisp_client::proto::{
    CloseReason, InfoPacket, Packet, PacketBody, PacketType, StreamType, WispVersion, encode_header,
};
use wisp_client::transport::WISP_V2_SUBPROTOCOL;
use wisp_mock_server::frames::build;
use wisp_mock_server::pattern::{describe, match_pattern};

use super::session::{Recorder, Ws};
use super::targets::WatchState;
use super::{Body, CaseCtx, RunMode};

/// How long a v2 handshake waits for an INFO after a CONTINUE(0) came first.
const LEGACY_INFO_WAIT: Duration = Duration::from_millis(500);

/// What one read produced.
enum Incoming {
    Packet(Bytes),
    Text,
    Ended(String),
    Timeout,
}

/// (what the step wanted, what happened).
type StepError = (String, String);
type StepResult = Result<(), StepError>;

/// The scripted client's connection and bookkeeping.
pub(crate) struct RawClient<'a> {
    ctx: &'a CaseCtx,
    rec: Recorder,
    ws: Option<Ws>,
    ended: Option<String>,
    aliases: HashMap<String, u32>,
    used: BTreeSet<u32>,
    sent: HashMap<u32, Vec<u8>>,
    got: HashMap<u32, Vec<u8>>,
    probes: u32,
}

/// Runs a case's script. A connection that cannot be opened is a connection error.
pub(crate) async fn run_script(case: &Case, ctx: &CaseCtx, rec: &Recorder) -> Body {
    let mut body = Body::default();
    let Some(ws) = ctx.connect(rec, &mut body).await else {
        return body;
    };
    let mut client = RawClient {
        ctx,
        rec: rec.clone(),
        ws: Some(ws),
        ended: None,
        aliases: HashMap::new(),
        used: BTreeSet::new(),
        sent: HashMap::new(),
        got: HashMap::new(),
        probes: 0,
    };
    for (i, step) in case.script.iter().enumerate() {
        rec.set_step(Some(i));
        if let Err((want, got)) = client.step(&step.value).await {
            let failure = format!("step #{i}: expected {want}; got {got}");
            rec.event(format!("FAILED: {failure}"));
            if matches!(step.value, ClientStep::AliveElsewhere) {
                body.fatal = Some(format!(
                    "the whole server stalled: another connection did not work while this one's stall was in progress (step #{i}: {got})"
                ));
            } else {
                body.failures.push(failure);
            }
            break;
        }
    }
    rec.set_step(None);
    // The CLOSE judge may still be waiting for its packet.
    if let Some(judge) = &case.close {
        let id = match &judge.stream {
            StreamRef::Id(id) => Some(*id),
            StreamRef::Alias(a) => client.aliases.get(a).copied(),
        };
        if let Some(id) = id {
            let within = judge.within.map_or(Duration::from_secs(2), |d| d.0);
            client.wait_close(id, within).await;
        }
    }
    // Selecting wisp-v2 in the upgrade response promises an INFO: give one that follows
    // CONTINUE(0) (the older order) the time to arrive before the echo is judged.
    if case.expect.subprotocol == Some(SubprotocolExpect::Echoed)
        && body.echoed.as_deref() == Some(WISP_V2_SUBPROTOCOL)
    {
        client.wait_info(ctx.step_timeout).await;
    }
    body.ids = client.aliases.clone();
    if let Some(mut ws) = client.ws.take()
        && client.ended.is_none()
    {
        let _ = tokio::time::timeout(Duration::from_millis(200), ws.close()).await;
    }
    body
}

impl RawClient<'_> {
    async fn step(&mut self, step: &ClientStep) -> StepResult {
        let bound = self.ctx.step_timeout;
        match step {
            ClientStep::Handshake => self.handshake().await,
            ClientStep::Send(spec) => self.send_packet(spec).await,
            ClientStep::SendRaw(hex) => {
                self.note_ids(&hex.0);
                self.send(Message::binary(hex.0.clone()), &hex.0, true)
                    .await
            }
            ClientStep::SendText(t) => {
                self.rec.event(format!("C->S TEXT frame {t:?}"));
                self.send(Message::text(t.clone()), &[], false).await
            }
            ClientStep::SendInfo(info) => {
                let server = self.rec.info();
                if info.answer {
                    let Some(server) = server else {
                        return Err((
                            "to answer the server's INFO".to_owned(),
                            "no INFO has arrived".to_owned(),
                        ));
                    };
                    return self
                        .answer_info(&server, &info.omit, &info.extensions)
                        .await;
                }
                let msg = self.client_info(info, server.as_ref())?;
                self.send(Message::binary(msg.clone()), &msg, false).await
            }
            ClientStep::Expect(p) => self.expect(p).await,
            ClientStep::ExpectNone(n) => self.expect_none(&n.pattern, n.duration.0).await,
            ClientStep::ExpectNothing(d) => match self.recv(d.0).await {
                Incoming::Timeout => {
                    self.rec.event(format!("nothing arrived for {d}"));
                    Ok(())
                }
                other => Err((format!("nothing for {d}"), self.got_text(other, d.0))),
            },
            ClientStep::ExpectEcho(e) => {
                let id = self.resolve(&e.stream)?;
                self.expect_echo(id, e.timeout.map_or(bound, |d| d.0)).await
            }
            ClientStep::ExpectDatagrams(e) => {
                let id = self.resolve(&e.stream)?;
                let within = e.within.map_or(bound, |d| d.0);
                self.expect_datagrams(id, e.count, e.len, within).await
            }
            ClientStep::ExpectEof => {
                let deadline = Instant::now() + bound;
                loop {
                    match self.recv_until(deadline).await {
                        Incoming::Packet(_) | Incoming::Text => continue,
                        Incoming::Ended(_) => return Ok(()),
                        Incoming::Timeout => {
                            return Err((
                                "the server to end the connection".to_owned(),
                                format!("it was still open after {}ms", bound.as_millis()),
                            ));
                        }
                    }
                }
            }
            ClientStep::Alive => self.alive().await,
            ClientStep::AliveElsewhere => self.alive_elsewhere().await,
            ClientStep::Pause(d) => {
                self.rec.event(format!("pause {d}"));
                tokio::time::sleep(d.0).await;
                Ok(())
            }
            ClientStep::Disconnect => {
                self.sink()?;
                if let Some(mut ws) = self.ws.take() {
                    let _ = tokio::time::timeout(bound, ws.close()).await;
                }
                self.end("the harness closed it (close frame, then the TCP connection)".to_owned());
                Ok(())
            }
            ClientStep::ExpectTargetClosed(e) => {
                let id = self.resolve(&e.stream)?;
                self.expect_target_closed(id, e.within.map_or(bound, |d| d.0))
                    .await
            }
        }
    }

    /// Records the stream id of a raw message, so later new streams do not reuse it.
    fn note_ids(&mut self, msg: &[u8]) {
        if msg.len() >= 5 {
            let id = u32::from_le_bytes([msg[1], msg[2], msg[3], msg[4]]);
            self.used.insert(id);
        }
    }

    fn next_id(&mut self) -> u32 {
        let id = self
            .used
            .iter()
            .next_back()
            .map_or(1, |m| m.saturating_add(1));
        self.used.insert(id);
        id
    }

    fn resolve(&self, stream: &StreamRef) -> Result<u32, StepError> {
        match stream {
            StreamRef::Id(id) => Ok(*id),
            StreamRef::Alias(a) => self.aliases.get(a).copied().ok_or_else(|| {
                (
                    format!("stream {a}"),
                    "the alias is not bound (no CONNECT was sent for it)".to_owned(),
                )
            }),
        }
    }

    async fn send(&mut self, msg: Message, bytes: &[u8], raw: bool) -> StepResult {
        if !bytes.is_empty() {
            self.rec.sent(bytes, raw);
        }
        let step = self.ctx.step_timeout;
        let done = tokio::time::timeout(step, self.sink()?.send(msg)).await;
        self.sent(done, || {
            format!(
                "the server did not take the message within {}ms",
                step.as_millis()
            )
        })
    }

    /// The connection to send on, or why there is none.
    fn sink(&mut self) -> Result<&mut Ws, StepError> {
        if let Some(why) = &self.ended {
            return Err((
                "to send".to_owned(),
                format!("the connection had already ended ({why})"),
            ));
        }
        self.ws
            .as_mut()
            .ok_or_else(|| ("to send".to_owned(), "no connection".to_owned()))
    }

    /// What a send, feed or flush bounded by the step timeout came to; a failed one ends
    /// the connection, one that timed out is a failure worded by `timed_out`.
    fn sent(
        &mut self,
        done: Result<Result<(), tokio_websockets::Error>, Elapsed>,
        timed_out: impl FnOnce() -> String,
    ) -> StepResult {
        match done {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                let why = format!("the send failed: {e}");
                self.end(why.clone());
                Err(("to send".to_owned(), why))
            }
            Err(_) => Err(("to send".to_owned(), timed_out())),
        }
    }

    fn end(&mut self, why: String) {
        if self.ended.is_none() {
            self.rec.event(format!("connection ended: {why}"));
            self.ended = Some(why);
        }
    }

    async fn send_packet(&mut self, spec: &PacketSpec) -> StepResult {
        if let (StreamRef::Alias(a), PacketType::CONNECT) = (&spec.stream, spec.packet_type.0)
            && !self.aliases.contains_key(a)
        {
            let id = self.next_id();
            self.aliases.insert(a.clone(), id);
            self.rec.alias(a, id);
        }
        let built = build(spec, &self.aliases).map_err(|e| ("to send".to_owned(), e))?;
        self.note_ids(&built.bytes);
        let times = match spec.times {
            None => 1,
            Some(t) if t.uses_credit() => match self.rec.credit() {
                Some(c) => t.count(c),
                None => {
                    return Err((
                        format!("to send {t} packets"),
                        "no CONTINUE(0) has arrived, so the credit is unknown".to_owned(),
                    ));
                }
            },
            Some(t) => t.count(0),
        };
        let (stream_id, data) = match Packet::decode(built.bytes.clone()) {
            Ok(Packet {
                stream_id,
                body: PacketBody::Data(d),
            }) => (stream_id, Some(d)),
            _ => (0, None),
        };
        self.rec.sent(&built.bytes, false);
        if times != 1 {
            self.rec
                .event(format!("... that packet {times} times in all"));
        }
        for _ in 0..times {
            if let Some(d) = &data {
                self.sent.entry(stream_id).or_default().extend_from_slice(d);
            }
            self.feed(Message::binary(built.bytes.clone())).await?;
        }
        self.flush().await
    }

    async fn feed(&mut self, msg: Message) -> StepResult {
        let done = tokio::time::timeout(self.ctx.step_timeout, self.sink()?.feed(msg)).await;
        self.sent(done, || {
            "the server stopped reading (send timed out)".to_owned()
        })
    }

    async fn flush(&mut self) -> StepResult {
        let Some(ws) = self.ws.as_mut() else {
            return Ok(());
        };
        let done = tokio::time::timeout(self.ctx.step_timeout, ws.flush()).await;
        self.sent(done, || {
            "the server stopped reading (flush timed out)".to_owned()
        })
    }

    async fn recv(&mut self, bound: Duration) -> Incoming {
        self.recv_until(Instant::now() + bound).await
    }

    /// Reads the next message before `deadline`, recording it.
    async fn recv_until(&mut self, deadline: Instant) -> Incoming {
        if let Some(why) = &self.ended {
            return Incoming::Ended(why.clone());
        }
        let Some(ws) = self.ws.as_mut() else {
            return Incoming::Ended("no connection".to_owned());
        };
        loop {
            let next = match tokio::time::timeout_at(deadline, ws.next()).await {
                Ok(n) => n,
                Err(_) => return Incoming::Timeout,
            };
            match next {
                Some(Ok(msg)) if msg.is_binary() => {
                    let b = Bytes::from(msg.into_payload());
                    self.rec.received(&b);
                    if let Ok(Packet {
                        stream_id,
                        body: PacketBody::Data(d),
                    }) = Packet::decode(b.clone())
                    {
                        self.got.entry(stream_id).or_default().extend_from_slice(&d);
                    }
                    return Incoming::Packet(b);
                }
                Some(Ok(msg)) if msg.is_text() => {
                    let text = msg.as_text().unwrap_or_default().to_owned();
                    self.rec.event(format!("S->C TEXT frame {text:?}"));
                    return Incoming::Text;
                }
                Some(Ok(msg)) if msg.is_close() => {
                    let why = match msg.as_close() {
                        Some((code, "")) => format!("close frame, code {}", u16::from(code)),
                        Some((code, r)) => format!("close frame, code {} {r:?}", u16::from(code)),
                        None => "close frame".to_owned(),
                    };
                    self.end(format!("the server sent a WebSocket {why}"));
                    return Incoming::Ended(self.ended.clone().unwrap_or_default());
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    self.end(format!("WebSocket error: {e}"));
                    return Incoming::Ended(self.ended.clone().unwrap_or_default());
                }
                None => {
                    self.end("EOF without a close frame".to_owned());
                    return Incoming::Ended(self.ended.clone().unwrap_or_default());
                }
            }
        }
    }

    fn got_text(&self, incoming: Incoming, bound: Duration) -> String {
        match incoming {
            Incoming::Packet(b) => self.rec.describe(&b),
            Incoming::Text => "a text frame".to_owned(),
            Incoming::Ended(why) => format!("the connection ended ({why})"),
            Incoming::Timeout => format!("nothing within {}ms (timeout)", bound.as_millis()),
        }
    }

    fn skipped(p: &Pattern, b: &Bytes) -> bool {
        b.first()
            .is_some_and(|t| p.skip.iter().any(|s| s.0.0 == *t))
    }

    async fn expect(&mut self, p: &Pattern) -> StepResult {
        let bound = p.timeout.map_or(self.ctx.step_timeout, |d| d.0);
        let deadline = Instant::now() + bound;
        let want = describe(p);
        loop {
            match self.recv_until(deadline).await {
                Incoming::Packet(b) if Self::skipped(p, &b) => continue,
                Incoming::Packet(b) => {
                    return match match_pattern(p, &b, &self.aliases, None) {
                        Ok(_) => Ok(()),
                        Err(why) => Err((
                            want,
                            format!("{}: {}", self.rec.describe(&b), why.join("; ")),
                        )),
                    };
                }
                other => return Err((want, self.got_text(other, bound))),
            }
        }
    }

    async fn expect_datagrams(
        &mut self,
        id: u32,
        count: usize,
        len: usize,
        within: Duration,
    ) -> StepResult {
        let want = format!(
            "{count} DATA packets of exactly {len} bytes on stream {id} (one per datagram)"
        );
        let deadline = Instant::now() + within;
        let mut got = 0usize;
        let ended = loop {
            if got == count {
                break None;
            }
            match self.recv_until(deadline).await {
                Incoming::Packet(b) => {
                    let Ok(Packet {
                        stream_id,
                        body: PacketBody::Data(d),
                    }) = Packet::decode(b.clone())
                    else {
                        continue;
                    };
                    if stream_id != id {
                        continue;
                    }
                    if d.len() != len {
                        let what = if d.len() > len && d.len() % len == 0 {
                            format!(" ({} datagrams merged into one DATA)", d.len() / len)
                        } else {
                            String::new()
                        };
                        return Err((
                            want,
                            format!(
                                "after {got} exact ones, a DATA of {} bytes{what}: {}",
                                d.len(),
                                self.rec.describe(&b)
                            ),
                        ));
                    }
                    got += 1;
                }
                Incoming::Text => {}
                other => break Some(self.got_text(other, within)),
            }
        };
        self.rec.event(format!(
            "{got} of {count} datagrams came back, each one DATA of {len} bytes"
        ));
        if got * 2 < count {
            return Err((
                want,
                format!(
                    "only {got} came back, then {}",
                    ended.unwrap_or_else(|| "nothing".to_owned())
                ),
            ));
        }
        Ok(())
    }

    async fn expect_none(&mut self, p: &Pattern, d: Duration) -> StepResult {
        let deadline = Instant::now() + d;
        loop {
            match self.recv_until(deadline).await {
                Incoming::Packet(b) => {
                    if match_pattern(p, &b, &self.aliases, None).is_ok() {
                        return Err((
                            format!("no {} for {}ms", describe(p), d.as_millis()),
                            self.rec.describe(&b),
                        ));
                    }
                }
                Incoming::Text => {}
                Incoming::Ended(_) | Incoming::Timeout => return Ok(()),
            }
        }
    }

    async fn expect_target_closed(&mut self, id: u32, bound: Duration) -> StepResult {
        let sent = self.sent.get(&id).cloned().unwrap_or_default();
        let want = format!(
            "the server to close its connection to the watch target (stream {id}) within {}ms",
            bound.as_millis()
        );
        if sent.is_empty() {
            return Err((
                want,
                "no bytes were sent on the stream to find it by".to_owned(),
            ));
        }
        match self.ctx.watch_log.wait_closed(&sent, bound).await {
            WatchState::Closed => {
                self.rec
                    .event(format!("the watch target saw stream {id}'s connection end"));
                Ok(())
            }
            WatchState::Open => Err((want, "it was still open".to_owned())),
            WatchState::Unknown => Err((
                want,
                "no connection to the watch target carried the bytes sent on the stream".to_owned(),
            )),
            WatchState::Ambiguous => Err((
                want,
                "several connections to the watch target start with those bytes".to_owned(),
            )),
        }
    }

    async fn expect_echo(&mut self, id: u32, bound: Duration) -> StepResult {
        let want_bytes = self.sent.get(&id).cloned().unwrap_or_default();
        let want = format!(
            "the {} bytes sent on stream {id} to come back",
            want_bytes.len()
        );
        let deadline = Instant::now() + bound;
        loop {
            let got = self.got.get(&id).map_or(&[][..], Vec::as_slice);
            let n = got.len().min(want_bytes.len());
            if got[..n] != want_bytes[..n] {
                let at = got
                    .iter()
                    .zip(&want_bytes)
                    .position(|(a, b)| a != b)
                    .unwrap_or(n);
                return Err((want, format!("the echoed bytes differ from offset {at}")));
            }
            if got.len() > want_bytes.len() {
                return Err((
                    want,
                    format!("{} bytes came back, more than were sent", got.len()),
                ));
            }
            if got.len() == want_bytes.len() {
                return Ok(());
            }
            let have = got.len();
            if let Some(c) = self.rec.close_on(id) {
                return Err((
                    want,
                    format!("{have} bytes, then the stream was closed: {}", c.packet),
                ));
            }
            match self.recv_until(deadline).await {
                Incoming::Packet(_) | Incoming::Text => continue,
                Incoming::Ended(why) => {
                    return Err((
                        want,
                        format!("{have} bytes, then the connection ended ({why})"),
                    ));
                }
                Incoming::Timeout => {
                    return Err((
                        want,
                        format!("{have} bytes within {}ms (timeout)", bound.as_millis()),
                    ));
                }
            }
        }
    }

    /// Opens a fresh stream to the TCP echo and checks that a probe comes back.
    async fn alive(&mut self) -> StepResult {
        let want = "the connection to keep working (a new stream to the TCP echo echoes a probe)"
            .to_owned();
        self.probes += 1;
        let id = self.next_id();
        let echo = &self.ctx.tcp_echo;
        let probe = format!("alive-probe-{}", self.probes).into_bytes();
        let connect = Packet::connect(id, StreamType::TCP, echo.host.clone(), echo.port);
        let connect = connect.to_bytes();
        self.rec.sent(&connect, false);
        let data = Packet::data(id, probe.clone()).to_bytes();
        self.rec.sent(&data, false);
        let sent = async {
            self.feed(Message::binary(connect)).await?;
            self.feed(Message::binary(data)).await?;
            self.flush().await
        };
        if let Err((_, got)) = sent.await {
            return Err((want, got));
        }
        self.sent.entry(id).or_default().extend_from_slice(&probe);
        if let Err((_, got)) = self.expect_echo(id, self.ctx.step_timeout).await {
            return Err((want, got));
        }
        let close = Packet::close(id, CloseReason::VOLUNTARY).to_bytes();
        self.rec.sent(&close, false);
        let _ = self.send(Message::binary(close), &[], false).await;
        Ok(())
    }

    /// Checks that another connection works meanwhile (a fresh WebSocket, handshake and
    /// echo), leaving this one as it is.
    async fn alive_elsewhere(&mut self) -> StepResult {
        let want = "another connection to work meanwhile (a fresh WebSocket, handshake and echo)";
        self.rec
            .event("checking another connection (fresh WebSocket, handshake, echo)".to_owned());
        match super::health::check_alive(&self.ctx.config, &self.ctx.tcp_echo).await {
            Ok(()) => {
                self.rec.event("the other connection works".to_owned());
                Ok(())
            }
            Err(dead) => Err((want.to_owned(), dead.after("meanwhile"))),
        }
    }

    /// Waits (at most `within`) until the server sends a CLOSE on `id`.
    async fn wait_close(&mut self, id: u32, within: Duration) {
        let deadline = Instant::now() + within;
        while self.rec.close_on(id).is_none() {
            match self.recv_until(deadline).await {
                Incoming::Packet(_) | Incoming::Text => {}
                Incoming::Ended(_) | Incoming::Timeout => return,
            }
        }
    }

    /// Reads (and records) packets until the server's INFO has been seen, for at most
    /// `within`.
    async fn wait_info(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.rec.info().is_none() {
            match self.recv_until(deadline).await {
                Incoming::Packet(_) | Incoming::Text => {}
                Incoming::Ended(_) | Incoming::Timeout => return,
            }
        }
    }

    /// The next packet (text frames are passed over), or why none came.
    async fn next_packet(
        &mut self,
        bound: Duration,
        want: &str,
    ) -> Result<(Bytes, Packet), StepError> {
        let deadline = Instant::now() + bound;
        loop {
            match self.recv_until(deadline).await {
                Incoming::Text => continue,
                Incoming::Packet(b) => {
                    return match Packet::decode(b.clone()) {
                        Ok(p) => Ok((b, p)),
                        Err(e) => Err((
                            want.to_owned(),
                            format!("a malformed packet ({e}): {}", self.rec.describe(&b)),
                        )),
                    };
                }
                other => return Err((want.to_owned(), self.got_text(other, bound))),
            }
        }
    }

    /// The run's handshake, tolerant of every deployed order.
    async fn handshake(&mut self) -> StepResult {
        let bound = self.ctx.step_timeout;
        match self.ctx.version {
            RunMode::V1 => {
                let (b, p) = self.next_packet(bound, "CONTINUE(0)").await?;
                match p.body {
                    PacketBody::Continue { .. } if p.stream_id == 0 => Ok(()),
                    _ => Err(("CONTINUE(0)".to_owned(), self.rec.describe(&b))),
                }
            }
            RunMode::V2 => {
                let want = "INFO or CONTINUE on stream 0";
                let (b, p) = self.next_packet(bound, want).await?;
                match p.body {
                    PacketBody::Info(info) if p.stream_id == 0 => {
                        self.answer_info(&info, &[], &[]).await?;
                        self.await_continue().await
                    }
                    PacketBody::Continue { .. } if p.stream_id == 0 => {
                        // Drafts 1–3: an INFO may follow at once.
                        match self.recv(LEGACY_INFO_WAIT).await {
                            Incoming::Packet(b) => match Packet::decode(b.clone()) {
                                Ok(Packet {
                                    stream_id: 0,
                                    body: PacketBody::Info(info),
                                }) => self.answer_info(&info, &[], &[]).await,
                                _ => Err((
                                    "an INFO after CONTINUE(0), or nothing".to_owned(),
                                    self.rec.describe(&b),
                                )),
                            },
                            Incoming::Timeout => {
                                self.rec.event("no INFO: the server speaks v1".to_owned());
                                Ok(())
                            }
                            other => Err((
                                "an INFO after CONTINUE(0), or nothing".to_owned(),
                                self.got_text(other, LEGACY_INFO_WAIT),
                            )),
                        }
                    }
                    _ => Err((want.to_owned(), self.rec.describe(&b))),
                }
            }
        }
    }

    async fn await_continue(&mut self) -> StepResult {
        let want = "CONTINUE(0) after the client INFO";
        let (b, p) = self.next_packet(self.ctx.step_timeout, want).await?;
        match p.body {
            PacketBody::Continue { .. } if p.stream_id == 0 => Ok(()),
            PacketBody::Close { reason } if p.stream_id == 0 => Err((
                want.to_owned(),
                format!("the server rejected the handshake: CLOSE(0) reason {reason}"),
            )),
            _ => Err((want.to_owned(), self.rec.describe(&b))),
        }
    }

    /// Answers the server's INFO with the records of what it offered.
    async fn answer_info(
        &mut self,
        server: &InfoPacket,
        omit: &[ExtName],
        extra: &[ClientInfoRecord],
    ) -> StepResult {
        let password = self
            .ctx
            .password
            .is_some()
            .then_some(self.ctx.connect_password);
        let key = self.ctx.key.is_some().then_some(self.ctx.connect_key);
        let mut records = extra.to_vec();
        records.extend(
            server
                .extensions
                .iter()
                .filter(|r| !omit.iter().any(|o| o.0 == r.id))
                .filter_map(|r| ClientInfoRecord::answering(r.id, password, key)),
        );
        let spec = ClientInfoSpec {
            answer: false,
            omit: Vec::new(),
            version: None,
            extensions: records,
        };
        let msg = self.client_info(&spec, Some(server))?;
        self.send(Message::binary(msg.clone()), &msg, false).await
    }

    /// Builds a client INFO.
    fn client_info(
        &self,
        spec: &ClientInfoSpec,
        server: Option<&InfoPacket>,
    ) -> Result<Bytes, StepError> {
        let fail = |why: String| ("to build the client INFO".to_owned(), why);
        let (major, minor) =
            parse_version(spec.version.as_deref().unwrap_or("2.0")).map_err(fail)?;
        let mut out = BytesMut::new();
        encode_header(PacketType::INFO, 0, &mut out);
        WispVersion { major, minor }.encode(&mut out);
        for r in &spec.extensions {
            let password = |s| self.ctx.password_for(s);
            let key = |k| self.ctx.key_for(k);
            r.record(password, key, server)
                .map_err(fail)?
                .encode(&mut out);
        }
        Ok(out.freeze())
    }
}
