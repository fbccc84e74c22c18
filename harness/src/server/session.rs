//! The WebSocket side of the scripted client: opening a connection to the server under test
//! (every wait bounded), and the [`Recorder`] that keeps the decoded wire log of a case and
//! the facts the judges read from it (CLOSE packets per stream, the handshake credit, the
//! server's INFO).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Sink, Stream};
use http::{HeaderName, HeaderValue, Uri};
use tokio::net::TcpStream;
use tokio_websockets::{ClientBuilder, MaybeTlsStream, WebSocketStream};
use wisp_client::WispError;
use wisp_client::proto::{InfoPacket, Packet, PacketBody};
use wisp_client::transport::TokioWebsocketsTransport;
use wisp_mock_server::trace::{Direction, RenderCtx, Trace};

use super::checks::RunChecks;
use crate::engine::judge::SeenClose;

/// The WebSocket to the server under test.
pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Most trace entries kept per case; later messages are counted, not recorded.
const TRACE_LIMIT: usize = 4000;

/// An open WebSocket and what the upgrade response said.
pub(crate) struct Opened {
    /// The WebSocket.
    pub(crate) ws: Ws,
    /// The `Sec-WebSocket-Protocol` of the response, if any.
    pub(crate) echoed: Option<String>,
}

/// Checks that `url` is a `ws://` or `wss://` URL the harness can reach.
pub(crate) fn check_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    match uri.scheme_str() {
        Some("ws" | "wss") => {}
        other => return Err(format!("URL scheme must be ws or wss, not {other:?}")),
    }
    if uri.host().is_none() {
        return Err(format!("URL {url:?} has no host"));
    }
    Ok(uri)
}

/// The host (without IPv6 brackets) and port of a checked URL (default 80, 443 for
/// `wss://`).
pub(crate) fn host_port(uri: &Uri) -> (String, u16) {
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let tls = uri.scheme_str() == Some("wss");
    (host, uri.port_u16().unwrap_or(if tls { 443 } else { 80 }))
}

/// The client library's options for a connection to the server under test: the
/// handshake bounded by `step`, a short wait for an INFO after CONTINUE(0) (the older
/// order), a short close.
pub(crate) fn mux_options(step: Duration) -> wisp_client::MuxOptions {
    wisp_client::MuxOptions::default()
        .handshake_timeout(Some(step))
        .legacy_info_wait(Duration::from_millis(500))
        .close_timeout(Duration::from_secs(1))
}

/// Opens a WebSocket to `url`, offering `subprotocol`. Every stage (TCP connect, TLS for
/// `wss://`, upgrade) is bounded by `bound`; `insecure` accepts any server certificate.
/// An error here means the case could not run: a connection error.
pub(crate) async fn open(
    url: &str,
    subprotocol: Option<&str>,
    bound: Duration,
    insecure: bool,
) -> Result<Opened, String> {
    let uri = check_url(url)?;
    let tls = uri.scheme_str() == Some("wss");
    let (host, port) = host_port(&uri);
    let tcp = match tokio::time::timeout(bound, TcpStream::connect((host.as_str(), port))).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(format!("cannot connect to {host}:{port}: {e}")),
        Err(_) => {
            return Err(format!(
                "cannot connect to {host}:{port}: no TCP connection within {}ms",
                bound.as_millis()
            ));
        }
    };
    // Wisp sends many small packets; Nagle's algorithm would hold them back.
    let _ = tcp.set_nodelay(true);
    let stream = if tls {
        let connector = super::tls::connector(insecure)?;
        match tokio::time::timeout(bound, connector.wrap(&host, tcp)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(format!("the TLS handshake with {host}:{port} failed: {e}")),
            Err(_) => {
                return Err(format!(
                    "the TLS handshake with {host}:{port} did not complete within {}ms",
                    bound.as_millis()
                ));
            }
        }
    } else {
        MaybeTlsStream::Plain(tcp)
    };
    let mut builder = ClientBuilder::from_uri(uri);
    if let Some(p) = subprotocol {
        let value = HeaderValue::from_str(p).map_err(|e| format!("subprotocol {p:?}: {e}"))?;
        builder = builder
            .add_header(HeaderName::from_static("sec-websocket-protocol"), value)
            .map_err(|e| format!("subprotocol {p:?}: {e}"))?;
    }
    let (ws, response) = match tokio::time::timeout(bound, builder.connect_on(stream)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(format!("the WebSocket upgrade failed: {e}")),
        Err(_) => {
            return Err(format!(
                "the WebSocket upgrade did not complete within {}ms",
                bound.as_millis()
            ));
        }
    };
    let echoed = response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    Ok(Opened { ws, echoed })
}

struct RecState {
    trace: Trace,
    ctx: RenderCtx,
    dropped: usize,
    closes: HashMap<u32, SeenClose>,
    credit: Option<u32>,
    info: Option<InfoPacket>,
    /// The first server packet, described.
    first: Option<String>,
}

struct RecInner {
    state: Mutex<RecState>,
    start: Instant,
    /// The current step (`usize::MAX`: none).
    step: AtomicUsize,
    /// The run's checks and the case ID to note every server packet under.
    checks: (RunChecks, String),
}

/// The wire log of one case, shared by the script or the client library's transport, and
/// the facts read from it.
#[derive(Clone)]
pub(crate) struct Recorder(Arc<RecInner>);

impl Recorder {
    /// An empty log of the case `case`, time zero now, that also notes every server
    /// packet in the run's `checks`.
    pub(crate) fn new(checks: RunChecks, case: &str) -> Self {
        Self(Arc::new(RecInner {
            state: Mutex::new(RecState {
                trace: Trace::default(),
                ctx: RenderCtx::default(),
                dropped: 0,
                closes: HashMap::new(),
                credit: None,
                info: None,
                first: None,
            }),
            start: Instant::now(),
            step: AtomicUsize::new(usize::MAX),
            checks: (checks, case.to_owned()),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, RecState> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the step (script step or action index) later entries belong to.
    pub(crate) fn set_step(&self, step: Option<usize>) {
        self.0
            .step
            .store(step.unwrap_or(usize::MAX), Ordering::Relaxed);
    }

    fn push(&self, state: &mut RecState, direction: Direction, text: String) {
        if state.trace.entries.len() >= TRACE_LIMIT {
            state.dropped += 1;
            return;
        }
        let step = match self.0.step.load(Ordering::Relaxed) {
            usize::MAX => None,
            s => Some(s),
        };
        state
            .trace
            .push(self.0.start.elapsed(), step, direction, text);
    }

    /// Records a message the harness sent.
    pub(crate) fn sent(&self, msg: &[u8], raw: bool) {
        let mut state = self.lock();
        if state.trace.entries.len() >= TRACE_LIMIT {
            state.dropped += 1;
            return;
        }
        let text = state.ctx.describe(&Bytes::copy_from_slice(msg), true, raw);
        self.push(&mut state, Direction::FromClient, text);
    }

    /// Describes a message from the server, with its bytes (the head of them) unless it is
    /// an INFO: the evidence a report quotes.
    pub(crate) fn describe(&self, msg: &Bytes) -> String {
        let text = self.lock().ctx.describe(msg, false, false);
        if text.contains("raw=") || msg.first() == Some(&0x05) {
            text
        } else {
            format!("{text} (raw {})", hex::encode(&msg[..msg.len().min(64)]))
        }
    }

    /// Records a message from the server and notes what the judges need.
    pub(crate) fn received(&self, msg: &Bytes) {
        let (checks, case) = &self.0.checks;
        checks.packet(case, msg, || self.describe(msg));
        let decoded = Packet::decode(msg.clone()).ok();
        let is_close = matches!(
            decoded.as_ref().map(|p| &p.body),
            Some(PacketBody::Close { .. })
        );
        let room = self.lock().trace.entries.len() < TRACE_LIMIT;
        let evidence = if is_close {
            Some(self.describe(msg))
        } else {
            None
        };
        let mut state = self.lock();
        if let Some(packet) = decoded {
            match &packet.body {
                PacketBody::Close { reason } => {
                    state.closes.entry(packet.stream_id).or_insert(SeenClose {
                        reason: *reason,
                        packet: evidence.unwrap_or_default(),
                    });
                }
                PacketBody::Continue { buffer_remaining }
                    if packet.stream_id == 0 && state.credit.is_none() =>
                {
                    state.credit = Some(*buffer_remaining);
                }
                PacketBody::Info(info) if state.info.is_none() => {
                    state.info = Some(info.clone());
                }
                _ => {}
            }
        }
        if state.first.is_none() {
            state.first = Some(state.ctx.describe(msg, false, false));
        }
        if room {
            let text = state.ctx.describe(msg, false, false);
            self.push(&mut state, Direction::ToClient, text);
        } else {
            state.dropped += 1;
        }
    }

    /// Records a harness event (timeouts, closes, failures).
    pub(crate) fn event(&self, text: String) {
        let mut state = self.lock();
        self.push(&mut state, Direction::Event, text);
    }

    /// Shows `id` as `alias(#id)` in later entries.
    pub(crate) fn alias(&self, alias: &str, id: u32) {
        self.lock().ctx.aliases.insert(alias.to_owned(), id);
    }

    /// The first CLOSE the server sent on `stream`.
    pub(crate) fn close_on(&self, stream: u32) -> Option<SeenClose> {
        self.lock().closes.get(&stream).cloned()
    }

    /// The credit of the first CONTINUE on stream 0.
    pub(crate) fn credit(&self) -> Option<u32> {
        self.lock().credit
    }

    /// The server's first INFO.
    pub(crate) fn info(&self) -> Option<InfoPacket> {
        self.lock().info.clone()
    }

    /// The first packet the server sent, described.
    pub(crate) fn first_received(&self) -> Option<String> {
        self.lock().first.clone()
    }

    /// The rendered log, one line per entry.
    pub(crate) fn lines(&self) -> Vec<String> {
        let state = self.lock();
        let mut lines: Vec<String> = state.trace.render().lines().map(str::to_owned).collect();
        if state.dropped > 0 {
            lines.push(format!(
                "... {} more entries not recorded (limit {TRACE_LIMIT})",
                state.dropped
            ));
        }
        lines
    }
}

/// The client library's transport with every message recorded.
pub(crate) struct RecordingTransport {
    inner: TokioWebsocketsTransport<MaybeTlsStream<TcpStream>>,
    rec: Recorder,
    ended: bool,
}

impl RecordingTransport {
    /// Wraps an open WebSocket.
    pub(crate) fn new(ws: Ws, rec: Recorder) -> Self {
        Self {
            inner: TokioWebsocketsTransport(ws),
            rec,
            ended: false,
        }
    }
}

impl Stream for RecordingTransport {
    type Item = Result<Bytes, WispError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(msg))) => {
                self.rec.received(msg);
            }
            Poll::Ready(Some(Err(e))) if !self.ended => {
                self.ended = true;
                self.rec.event(format!("the WebSocket failed: {e}"));
            }
            Poll::Ready(None) if !self.ended => {
                self.ended = true;
                self.rec
                    .event("the server ended the WebSocket (close frame or EOF)".to_owned());
            }
            _ => {}
        }
        polled
    }
}

impl Sink<Bytes> for RecordingTransport {
    type Error = WispError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WispError>> {
        Pin::new(&mut self.inner).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Bytes) -> Result<(), WispError> {
        self.rec.sent(&item, false);
        Pin::new(&mut self.inner).start_send(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WispError>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WispError>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
