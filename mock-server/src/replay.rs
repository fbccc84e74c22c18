//! The replay engine: accepts one WebSocket client on a real socket and plays the server
//! script step by step, recording everything into a [`Trace`].
//!
//! Each waiting step is bounded. An `expect` that times out is a failure, never a close: a
//! hang and an orderly close stay distinct. A failing step stops the script, records why
//! (step index, expected alternatives, what arrived, decoded and in hex) and drops the
//! connection so the client ends promptly.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderName, HeaderValue};
use std::pin::Pin;
use std::task::{Context, Poll};

use std::os::fd::{AsFd, OwnedFd};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_websockets::{CloseCode, Message, ServerBuilder, WebSocketStream};

use crate::frames::{build, build_frame, describe_frame};
use crate::pattern::{describe, match_pattern};
use crate::trace::{Direction, RenderCtx, SharedTrace, Trace};
use wisp_cases::ClientCase;
use wisp_cases::client::{AcceptFault, FrameSpec, ServerOptions, ServerStep, UpgradeFault};
use wisp_cases::packet::{Pattern, ServerExtension};

/// The most bytes of a `send_frame` flood (`times: N`) written at once: 1000 small control
/// frames go out in one write.
const FLOOD_BURST: usize = 64 * 1024;

/// The script the mock plays, with its options.
#[derive(Clone, Debug)]
pub struct Script {
    /// The steps, in order.
    pub steps: Vec<ServerStep>,
    /// Options.
    pub options: ServerOptions,
    /// Public keys the scenario names (shown by name in traces).
    pub keys: Vec<(String, ed25519_dalek::VerifyingKey)>,
}

impl Script {
    /// The server part of a client-role case.
    pub fn from_case(case: &ClientCase) -> Self {
        let mut keys = Vec::new();
        for step in &case.server {
            match &step.value {
                ServerStep::Send(p) => {
                    for ext in &p.extensions {
                        if let ServerExtension::CertAuth(c) = ext
                            && let Some(k) = &c.verifying_key
                        {
                            keys.push(k.clone());
                        }
                    }
                }
                ServerStep::Expect(p) => {
                    for a in p.alternatives() {
                        if let Some(c) = &a.cert_auth
                            && let Some(k) = &c.verifying_key
                        {
                            keys.push(k.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        keys.dedup_by(|a, b| a.0 == b.0);
        Self {
            steps: case.server.iter().map(|s| s.value.clone()).collect(),
            options: case.server_options.clone(),
            keys,
        }
    }
}

/// Why the script failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepFailure {
    /// The step index (`None`: before the first step, e.g. no client connected).
    pub step: Option<usize>,
    /// What the step wanted.
    pub expected: String,
    /// What happened instead.
    pub got: String,
}

impl fmt::Display for StepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.step {
            Some(i) => write!(
                f,
                "server step #{i}: expected {}; got {}",
                self.expected, self.got
            ),
            None => write!(
                f,
                "mock server: expected {}; got {}",
                self.expected, self.got
            ),
        }
    }
}

impl std::error::Error for StepFailure {}

/// The result of playing the script.
#[derive(Debug)]
pub struct ScriptOutcome {
    /// `Ok` when every step held.
    pub result: Result<(), StepFailure>,
    /// After a successful script the mock keeps recording what the client sends (marked
    /// `--` in the trace) until the client closes; abort this task to stop it.
    pub idle: Option<JoinHandle<()>>,
}

/// A scripted Wisp server bound to a local port.
#[derive(Debug)]
pub struct MockServer {
    listener: TcpListener,
    script: Script,
    trace: SharedTrace,
}

impl MockServer {
    /// Binds `addr` (use port 0 for a free port).
    pub async fn bind(addr: SocketAddr, script: Script) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self {
            listener,
            script,
            trace: Arc::new(Mutex::new(Trace::default())),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The URL a client connects to: `ws://ADDR/` (the trailing slash marks a Wisp URL).
    pub fn url(&self) -> std::io::Result<String> {
        Ok(format!("ws://{}/", self.local_addr()?))
    }

    /// The trace, shared: it keeps filling while the script (and the idle recorder) run.
    pub fn trace(&self) -> SharedTrace {
        self.trace.clone()
    }

    /// Accepts one client and plays the script. `start` is time zero of the trace.
    ///
    /// The client is the first connection that sends a byte ([`accept_client`]); a probe
    /// is dropped without a trace line. The wait for the client, probes included, is
    /// bounded by the step timeout.
    pub async fn run(self, start: Instant) -> ScriptOutcome {
        let step_timeout = self.script.options.step_timeout.0;
        let accepted = tokio::time::timeout(step_timeout, accept_client(&self.listener)).await;
        let failure = |got: String| {
            let failure = StepFailure {
                step: None,
                expected: "a client to connect".to_owned(),
                got,
            };
            let mut trace = self.trace.lock().unwrap_or_else(|e| e.into_inner());
            trace.push(
                start.elapsed(),
                None,
                Direction::Event,
                format!("FAILED: {failure}"),
            );
            ScriptOutcome {
                result: Err(failure),
                idle: None,
            }
        };
        let tcp = match accepted {
            Ok(Ok((tcp, _))) => tcp,
            Ok(Err(e)) => return failure(format!("accept error: {e}")),
            Err(_) => return failure(format!("no client within {}ms", step_timeout.as_millis())),
        };
        // Nagle's algorithm would hold small writes back for the peer's delayed ACK.
        let _ = tcp.set_nodelay(true);
        let reset = tcp.as_fd().try_clone_to_owned().ok();
        serve_with_reset(tcp, reset, &self.script, self.trace.clone(), start).await
    }
}

/// Accepts connections on `listener` until one sends a byte, and returns it (unread): the
/// client. A connection that closes or fails before its first byte is not a client (a port
/// probe, such as a liveness check meant for a server that had this port before) and is
/// dropped. Connections wait for their first byte side by side, so a probe that stays open
/// and silent does not hold the client back. Unbounded: the caller bounds the wait.
pub async fn accept_client(
    listener: &TcpListener,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    let mut waiting = futures::stream::FuturesUnordered::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, addr) = accepted?;
                waiting.push(async move {
                    let mut first = [0u8; 1];
                    // Closed or failed before its first byte: not a client.
                    let sent = matches!(tcp.peek(&mut first).await, Ok(n) if n > 0);
                    (tcp, addr, sent)
                });
            }
            Some((tcp, addr, sent)) = waiting.next(), if !waiting.is_empty() => {
                if sent {
                    return Ok((tcp, addr));
                }
            }
        }
    }
}

/// Any byte stream the mock can serve a WebSocket on.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// Plays `script` on an accepted connection (the HTTP upgrade request has not been read
/// yet), recording into `trace`. `start` is time zero of the trace.
pub async fn serve<S: Io>(
    stream: S,
    script: &Script,
    trace: SharedTrace,
    start: Instant,
) -> ScriptOutcome {
    serve_with_reset(stream, None, script, trace, start).await
}

/// [`serve`], with a handle on the connection's socket (a duplicate of its descriptor) for
/// the `reset_tcp` step, which sets `SO_LINGER` 0 on it before closing, so the peer gets a
/// RST. Without one `reset_tcp` fails.
pub async fn serve_with_reset<S: Io>(
    stream: S,
    reset: Option<OwnedFd>,
    script: &Script,
    trace: SharedTrace,
    start: Instant,
) -> ScriptOutcome {
    let step_timeout = script.options.step_timeout.0;
    let mut session = Session {
        ws: None,
        raw: None,
        reset,
        pongs: std::cell::Cell::new(0),
        trace,
        ctx: RenderCtx {
            keys: script.keys.clone(),
            password_layout: script.options.password_layout,
            ..RenderCtx::default()
        },
        start,
        step: None,
        ended: false,
    };
    match session
        .upgrade(Box::new(stream), &script.options, step_timeout)
        .await
    {
        Ok(()) => {}
        Err(got) => return session.fail("a WebSocket upgrade", got),
    }
    for (i, step) in script.steps.iter().enumerate() {
        session.step = Some(i);
        if let Err((expected, got)) = session.run_step(step, step_timeout).await {
            return session.fail(&expected, got);
        }
    }
    session.step = None;
    let idle = if session.ended || session.ws.is_none() {
        None
    } else {
        Some(tokio::spawn(session.idle()))
    };
    ScriptOutcome {
        result: Ok(()),
        idle,
    }
}

/// What one read from the client produced.
enum Incoming {
    Binary(Bytes),
    Text(String),
    Close(String),
    Eof,
    Error(String),
    Timeout,
}

struct Session {
    ws: Option<WebSocketStream<Prefixed>>,
    /// The connection while it is not a WebSocket (the upgrade was not answered, or was
    /// answered wrongly): only the end of the connection can be awaited on it.
    raw: Option<Box<dyn Io>>,
    /// The socket, for `reset_tcp`.
    reset: Option<OwnedFd>,
    /// Pong frames read and not yet in the trace.
    pongs: std::cell::Cell<u32>,
    trace: SharedTrace,
    ctx: RenderCtx,
    start: Instant,
    step: Option<usize>,
    ended: bool,
}

type StepResult = Result<(), (String, String)>;

impl Session {
    fn record(&self, direction: Direction, text: String) {
        let at = self.start.elapsed();
        let mut trace = self.trace.lock().unwrap_or_else(|e| e.into_inner());
        // Pongs read since the last line (answers to `send_frame` pings), as one line.
        match self.pongs.take() {
            0 => {}
            1 => trace.push(
                at,
                self.step,
                Direction::FromClient,
                "pong frame".to_owned(),
            ),
            n => trace.push(
                at,
                self.step,
                Direction::FromClient,
                format!("pong frame x{n}"),
            ),
        }
        trace.push(at, self.step, direction, text);
    }

    fn fail(mut self, expected: &str, got: String) -> ScriptOutcome {
        let failure = StepFailure {
            step: self.step,
            expected: expected.to_owned(),
            got,
        };
        self.record(Direction::Event, format!("FAILED: {failure}"));
        // Drop the connection so the client ends promptly.
        self.ws = None;
        ScriptOutcome {
            result: Err(failure),
            idle: None,
        }
    }

    async fn upgrade(
        &mut self,
        mut io: Box<dyn Io>,
        options: &ServerOptions,
        bound: Duration,
    ) -> Result<(), String> {
        let head = match tokio::time::timeout(bound, read_request_head(&mut io)).await {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => return Err(format!("reading the upgrade request failed: {e}")),
            Err(_) => return Err("the upgrade request did not arrive".to_owned()),
        };
        let offered = subprotocol_of(&head);
        let fault = options.upgrade.clone().unwrap_or_default();
        if fault.status.is_some() || fault.accept.is_some() {
            return self
                .answer_faulty_upgrade(io, &fault, offered.as_deref())
                .await;
        }
        if !options.answer_upgrade {
            self.record(
                Direction::Event,
                "client connected; upgrade request read and never answered".to_owned(),
            );
            self.raw = Some(io);
            return Ok(());
        }
        let tcp = Prefixed::new(head, io);
        let mut builder = ServerBuilder::new();
        let echoed = match (&offered, &fault.subprotocol) {
            (_, Some(forced)) => {
                let value = HeaderValue::from_str(forced).map_err(|e| e.to_string())?;
                builder = builder
                    .add_header(HeaderName::from_static("sec-websocket-protocol"), value)
                    .map_err(|e| e.to_string())?;
                Some(forced.clone())
            }
            (Some(p), None) if options.echo_subprotocol => {
                let first = p.split(',').next().unwrap_or("").trim().to_owned();
                let value = HeaderValue::from_str(&first).map_err(|e| e.to_string())?;
                builder = builder
                    .add_header(HeaderName::from_static("sec-websocket-protocol"), value)
                    .map_err(|e| e.to_string())?;
                Some(first)
            }
            _ => None,
        };
        let (_request, mut ws) = match tokio::time::timeout(bound, builder.accept(tcp)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(format!("WebSocket upgrade failed: {e}")),
            Err(_) => return Err("the WebSocket upgrade did not finish".to_owned()),
        };
        let text = match (&offered, &echoed) {
            (Some(p), Some(e)) if fault.subprotocol.is_some() => format!(
                "client connected; upgrade offers Sec-WebSocket-Protocol {p:?}; answered {e:?}"
            ),
            (Some(p), Some(e)) => format!(
                "client connected; upgrade offers Sec-WebSocket-Protocol {p:?}; echoed {e:?}"
            ),
            (Some(p), None) => {
                format!("client connected; upgrade offers Sec-WebSocket-Protocol {p:?}; not echoed")
            }
            (None, Some(e)) => format!(
                "client connected; upgrade offers no Sec-WebSocket-Protocol; answered {e:?}"
            ),
            (None, None) => "client connected; upgrade offers no Sec-WebSocket-Protocol".to_owned(),
        };
        self.record(Direction::Event, text);
        if let Some(body) = &fault.body {
            // Bytes after a 101 are WebSocket frames to the client.
            self.record(
                Direction::ToClient,
                format!("{} bytes after the 101 response: {body:?}", body.len()),
            );
            write_raw(ws.get_mut(), &[body.as_bytes()])
                .await
                .map_err(|e| format!("writing the body failed: {e}"))?;
        }
        self.ws = Some(ws);
        Ok(())
    }

    /// Answers the upgrade request with a non-101 status or a wrong `Sec-WebSocket-Accept`
    /// (`server_options.upgrade`); the connection then stays raw: only its end can be
    /// awaited.
    async fn answer_faulty_upgrade(
        &mut self,
        mut io: Box<dyn Io>,
        fault: &UpgradeFault,
        offered: Option<&str>,
    ) -> Result<(), String> {
        let status = fault.status.unwrap_or(101);
        let reason = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Unknown");
        let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
        if status == 101 {
            head.push_str("Upgrade: websocket\r\nConnection: Upgrade\r\n");
        }
        // Any accept but the right one: the RFC 6455 example key's value, for another key.
        let accept = fault
            .accept
            .map(|AcceptFault::Wrong| "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        if let Some(a) = accept {
            head.push_str(&format!("Sec-WebSocket-Accept: {a}\r\n"));
        }
        if let Some(p) = fault.subprotocol.as_deref().or(offered) {
            head.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
        }
        let body = fault.body.clone().unwrap_or_default();
        if status != 101 {
            head.push_str(&format!(
                "Content-Type: text/plain\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        let first = head.lines().next().unwrap_or_default().to_owned();
        let mut text = format!("client connected; upgrade answered \"{first}\"");
        if let Some(a) = accept {
            text.push_str(&format!(" with Sec-WebSocket-Accept {a} (wrong)"));
        }
        if !body.is_empty() {
            text.push_str(&format!(" and a {}-byte body", body.len()));
        }
        self.record(Direction::Event, text);
        write_raw(&mut io, &[head.as_bytes(), body.as_bytes()])
            .await
            .map_err(|e| format!("writing the upgrade response failed: {e}"))?;
        self.raw = Some(io);
        Ok(())
    }

    /// Writes a raw frame (`send_frame`) under the WebSocket library, or on the raw
    /// connection.
    async fn send_frame(&mut self, spec: &FrameSpec) -> StepResult {
        let text = describe_frame(spec);
        let bytes = build_frame(spec);
        let times = usize::try_from(spec.times.unwrap_or(1)).unwrap_or(usize::MAX);
        // A flood is one trace line.
        self.record(
            Direction::ToClient,
            match times {
                1 => text.clone(),
                n => format!("{text} x{n}"),
            },
        );
        // A flood goes out as bursts of whole frames (at most FLOOD_BURST bytes, at least
        // one frame each), one write per burst: how the client's reads split it then does
        // not depend on how fast the mock and the client run (one write per frame let a
        // client read the flood in pieces or all at once, depending on timing).
        let per_burst = (FLOOD_BURST / bytes.len().max(1)).max(1);
        let mut left = times;
        while left > 0 {
            let n = left.min(per_burst);
            let burst = bytes.repeat(n);
            let written = match (self.ws.as_mut(), self.raw.as_mut()) {
                (Some(ws), _) => write_raw(ws.get_mut(), &[&burst]).await,
                (None, Some(raw)) => write_raw(raw, &[&burst]).await,
                (None, None) => Err(std::io::Error::other("the connection is already dropped")),
            };
            written.map_err(|e| (format!("to send {text}"), format!("send failed: {e}")))?;
            left -= n;
        }
        Ok(())
    }

    /// Reads the next message (skipping pings and pongs), records it and returns it.
    async fn recv(&mut self, bound: Duration, pattern: Option<&Pattern>) -> Incoming {
        if self.ws.is_none()
            && let Some(raw) = self.raw.as_mut()
            && !self.ended
        {
            let incoming = recv_raw_end(raw, bound).await;
            self.record_incoming(&incoming);
            return incoming;
        }
        let Some(ws) = self.ws.as_mut() else {
            return Incoming::Eof;
        };
        if self.ended {
            return Incoming::Eof;
        }
        let deadline = Instant::now() + bound;
        loop {
            let next = match tokio::time::timeout_at(deadline, ws.next()).await {
                Ok(n) => n,
                Err(_) => return Incoming::Timeout,
            };
            let incoming = match next {
                Some(Ok(msg)) if msg.is_binary() => {
                    Incoming::Binary(Bytes::from(msg.into_payload()))
                }
                Some(Ok(msg)) if msg.is_text() => {
                    Incoming::Text(msg.as_text().unwrap_or_default().to_owned())
                }
                Some(Ok(msg)) if msg.is_close() => {
                    let detail = match msg.as_close() {
                        Some((code, "")) => {
                            format!("code {}", u16::from(code))
                        }
                        Some((code, reason)) => format!("code {} {reason:?}", u16::from(code)),
                        None => "no code".to_owned(),
                    };
                    // Let the library send its close acknowledgement.
                    let _ = tokio::time::timeout(Duration::ZERO, ws.next()).await;
                    Incoming::Close(detail)
                }
                Some(Ok(msg)) if msg.is_pong() => {
                    self.pongs.set(self.pongs.get() + 1);
                    continue;
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => Incoming::Error(e.to_string()),
                None => Incoming::Eof,
            };
            self.record_incoming(&incoming);
            if let Incoming::Binary(b) = &incoming
                && pattern.is_none()
            {
                let text = self.ctx.describe(b, true, false);
                self.record(Direction::FromClient, text);
            }
            return incoming;
        }
    }

    /// Records what a read produced (binary messages are recorded by the caller, which
    /// knows how to decode them) and notes the end of the connection.
    fn record_incoming(&mut self, incoming: &Incoming) {
        match incoming {
            Incoming::Binary(_) => {}
            Incoming::Text(t) => self.record(Direction::FromClient, format!("TEXT frame {t:?}")),
            Incoming::Close(d) => {
                self.ended = true;
                self.record(
                    Direction::FromClient,
                    format!("WebSocket close frame ({d})"),
                );
            }
            Incoming::Eof => {
                self.ended = true;
                self.record(
                    Direction::Event,
                    "the client ended the connection (EOF, no close frame)".to_owned(),
                );
            }
            Incoming::Error(e) => {
                self.ended = true;
                self.record(Direction::Event, format!("WebSocket error: {e}"));
            }
            Incoming::Timeout => {}
        }
    }

    async fn send_message(&mut self, msg: Message) -> Result<(), String> {
        let Some(ws) = self.ws.as_mut() else {
            return Err("the connection is already dropped".to_owned());
        };
        ws.send(msg).await.map_err(|e| format!("send failed: {e}"))
    }

    async fn run_step(&mut self, step: &ServerStep, step_timeout: Duration) -> StepResult {
        match step {
            ServerStep::Send(spec) => {
                let built =
                    build(spec, &self.ctx.aliases).map_err(|e| ("to send".to_owned(), e))?;
                if let Some(c) = built.challenge.clone() {
                    self.ctx.challenge = Some(c);
                }
                let text = self.ctx.describe(&built.bytes, false, false);
                let times = spec.times.map_or(1, |t| t.count(0));
                for _ in 0..times {
                    self.record(Direction::ToClient, text.clone());
                    self.send_message(Message::binary(built.bytes.clone()))
                        .await
                        .map_err(|e| (format!("to send {text}"), e))?;
                }
                Ok(())
            }
            ServerStep::SendRaw(hex) => {
                let text = self.ctx.describe(&hex.0, false, true);
                self.record(Direction::ToClient, text.clone());
                self.send_message(Message::binary(hex.0.clone()))
                    .await
                    .map_err(|e| (format!("to send {text}"), e))
            }
            ServerStep::SendText(t) => {
                self.record(Direction::ToClient, format!("TEXT frame {t:?}"));
                self.send_message(Message::text(t.clone()))
                    .await
                    .map_err(|e| ("to send a text frame".to_owned(), e))
            }
            ServerStep::Expect(p) => self.expect(p, step_timeout).await,
            ServerStep::ExpectCloseWs => {
                let want = "the client's WebSocket close frame".to_owned();
                match self.recv(step_timeout, None).await {
                    Incoming::Close(_) => Ok(()),
                    other => Err((want, self.got(other, step_timeout))),
                }
            }
            ServerStep::ExpectEof => {
                let want = "the client to end the connection".to_owned();
                match self.recv(step_timeout, None).await {
                    Incoming::Close(_) | Incoming::Eof | Incoming::Error(_) => Ok(()),
                    other => Err((want, self.got(other, step_timeout))),
                }
            }
            ServerStep::ExpectNothing(d) => {
                let want = format!("nothing for {d}");
                match self.recv(d.0, None).await {
                    Incoming::Timeout => {
                        self.record(Direction::Event, format!("nothing arrived for {d}"));
                        Ok(())
                    }
                    other => Err((want, self.got(other, d.0))),
                }
            }
            ServerStep::CloseWs => {
                self.record(
                    Direction::ToClient,
                    "WebSocket close frame (code 1000)".to_owned(),
                );
                self.send_message(Message::close(Some(CloseCode::NORMAL_CLOSURE), ""))
                    .await
                    .map_err(|e| ("to send a close frame".to_owned(), e))
            }
            ServerStep::DropTcp => {
                self.record(
                    Direction::Event,
                    "the mock dropped the TCP connection (no close frame)".to_owned(),
                );
                self.ws = None;
                self.raw = None;
                self.ended = true;
                Ok(())
            }
            ServerStep::SendFrame(spec) => self.send_frame(spec).await,
            ServerStep::ResetTcp => {
                let Some(fd) = self.reset.take() else {
                    return Err((
                        "to reset the TCP connection".to_owned(),
                        "no socket handle (serve_with_reset was not given one)".to_owned(),
                    ));
                };
                socket2::SockRef::from(&fd)
                    .set_linger(Some(Duration::ZERO))
                    .map_err(|e| ("to reset the TCP connection".to_owned(), e.to_string()))?;
                self.record(
                    Direction::Event,
                    "the mock reset the TCP connection (RST)".to_owned(),
                );
                self.ws = None;
                self.raw = None;
                drop(fd);
                self.ended = true;
                Ok(())
            }
            ServerStep::Pause(d) => {
                self.record(Direction::Event, format!("pause {d}"));
                tokio::time::sleep(d.0).await;
                Ok(())
            }
            ServerStep::DrainUntilClosed => loop {
                match self.recv(step_timeout, None).await {
                    Incoming::Binary(_) | Incoming::Text(_) => continue,
                    Incoming::Close(_) | Incoming::Eof | Incoming::Error(_) => return Ok(()),
                    Incoming::Timeout => {
                        let got = self.got(Incoming::Timeout, step_timeout);
                        return Err(("the client to end the connection".to_owned(), got));
                    }
                }
            },
        }
    }

    async fn expect(&mut self, p: &Pattern, step_timeout: Duration) -> StepResult {
        let bound = p.timeout.map(|d| d.0).unwrap_or(step_timeout);
        let want = describe(p);
        // Show the client's password record in the layout this step checks.
        let checked_layout = match &p.one_of {
            Some(alts) => alts.iter().find_map(|a| a.password.as_ref()),
            None => p.password.as_ref(),
        };
        if let Some(check) = checked_layout {
            self.ctx.password_layout = check.layout;
        }
        let deadline = Instant::now() + bound;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let incoming = self.recv(left, Some(p)).await;
            if let Incoming::Binary(b) = &incoming
                && !p.skip.is_empty()
                && let Some(&t) = b.first()
                && p.skip.iter().any(|s| s.0.0 == t)
            {
                let text = self.ctx.describe(b, true, false);
                self.record(Direction::FromClient, format!("{text} (skipped)"));
                continue;
            }
            return self.judge_expected(p, incoming, &want, bound);
        }
    }

    fn judge_expected(
        &mut self,
        p: &Pattern,
        incoming: Incoming,
        want: &str,
        bound: Duration,
    ) -> StepResult {
        match incoming {
            Incoming::Binary(b) => {
                let result = match_pattern(p, &b, &self.ctx.aliases, self.ctx.challenge.as_ref());
                if let Ok(m) = &result {
                    for (alias, id) in &m.bindings {
                        self.ctx.aliases.insert(alias.clone(), *id);
                    }
                }
                let text = self.ctx.describe(&b, true, false);
                self.record(Direction::FromClient, text.clone());
                match result {
                    Ok(_) => Ok(()),
                    Err(why) => Err((
                        want.to_owned(),
                        format!("{text}{}: {}", raw_suffix(&b), why.join("; ")),
                    )),
                }
            }
            other => Err((want.to_owned(), self.got(other, bound))),
        }
    }

    fn got(&self, incoming: Incoming, bound: Duration) -> String {
        match incoming {
            Incoming::Binary(b) => {
                format!("{}{}", self.ctx.describe(&b, true, false), raw_suffix(&b))
            }
            Incoming::Text(t) => format!("a text frame {t:?}"),
            Incoming::Close(d) => format!("the client's WebSocket close frame ({d})"),
            Incoming::Eof => "the connection ended (EOF)".to_owned(),
            Incoming::Error(e) => format!("a WebSocket error: {e}"),
            Incoming::Timeout => {
                let text = format!("nothing within {}ms (timeout)", bound.as_millis());
                self.record(Direction::Event, format!("timeout: {text}"));
                text
            }
        }
    }

    /// Records what the client sends after the script, until it ends the connection.
    async fn idle(mut self) {
        while let Incoming::Binary(_) | Incoming::Text(_) | Incoming::Timeout =
            self.recv(Duration::from_secs(86_400), None).await
        {}
    }
}

/// ` (raw HEX)` for a failure message; INFO packets from the client are left out, since
/// they can carry a password.
fn raw_suffix(b: &Bytes) -> String {
    if b.first() == Some(&0x05) {
        String::new()
    } else {
        format!(" (raw {})", hex::encode(b))
    }
}

/// Writes `parts` under the WebSocket library (or on a raw connection) and flushes them.
async fn write_raw<W: AsyncWrite + Unpin + ?Sized>(
    io: &mut W,
    parts: &[&[u8]],
) -> std::io::Result<()> {
    for part in parts {
        io.write_all(part).await?;
    }
    io.flush().await
}

/// Waits for the end of a connection that is not a WebSocket (bytes are read and
/// dropped), within `bound`.
async fn recv_raw_end(io: &mut Box<dyn Io>, bound: Duration) -> Incoming {
    let deadline = Instant::now() + bound;
    let mut chunk = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, io.read(&mut chunk)).await {
            Err(_) => return Incoming::Timeout,
            Ok(Ok(0)) => return Incoming::Eof,
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => return Incoming::Error(e.to_string()),
        }
    }
}

/// Reads the HTTP upgrade request head (up to the blank line, at most 16 KiB). The
/// record proxy (`wisp_harness::record`) reads it the same way before it answers.
pub async fn read_request_head(io: &mut Box<dyn Io>) -> std::io::Result<Bytes> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(Bytes::from(buf));
        }
        if buf.len() > 16 * 1024 {
            return Err(std::io::Error::other("upgrade request headers too large"));
        }
    }
}

/// The `Sec-WebSocket-Protocol` value of a request (or response) head, if any.
pub fn subprotocol_of(head: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(head);
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("sec-websocket-protocol")
            .then(|| value.trim().to_owned())
    })
}

/// A stream that first replays the bytes already read (the request head), so a
/// WebSocket library can accept a connection whose head was inspected first.
pub struct Prefixed {
    prefix: Bytes,
    inner: Box<dyn Io>,
}

impl Prefixed {
    /// `inner`, preceded by `prefix`.
    pub fn new(prefix: Bytes, inner: Box<dyn Io>) -> Self {
        Self { prefix, inner }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let head = self.prefix.split_to(n);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
