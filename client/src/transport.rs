//! The WebSocket side: the transport traits the multiplexor is driven over, the
//! tokio-websockets adapter, [`BatchedStream`] (the socket under it, which also carries the
//! multiplexor's own encoded frames), [`DeferWriteErrors`], and [`connect`].
//!
//! A transport carries one Wisp packet per binary WebSocket message. The read half yields
//! whole binary messages; text, ping and pong frames are skipped (the protocol does not
//! define text frames, and deployed servers ignore them); a close frame ends the stream.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{SplitSink, SplitStream};
use futures::{Sink, Stream, StreamExt};
use http::{HeaderName, HeaderValue, Uri};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_websockets::{
    ClientBuilder, Connector, Limits, MaybeTlsStream, Message, WebSocketStream,
};

use crate::WispError;
use crate::proto::Batch;

/// The read half of a transport: one item per binary WebSocket message.
pub trait TransportRead: Stream<Item = Result<Bytes, WispError>> + Send + Unpin + 'static {}

impl<T> TransportRead for T where T: Stream<Item = Result<Bytes, WispError>> + Send + Unpin + 'static
{}

/// The write half of a transport: every item is sent as one binary WebSocket message;
/// `poll_close` closes the WebSocket.
pub trait TransportWrite: Sink<Bytes, Error = WispError> + Send + Unpin + 'static {}

impl<T> TransportWrite for T where T: Sink<Bytes, Error = WispError> + Send + Unpin + 'static {}

/// Splitting a duplex transport into the halves [`crate::ClientMux::new`] takes.
pub trait TransportExt: TransportRead + TransportWrite + Sized {
    /// Splits the transport. Both halves share the transport through a lock-free
    /// two-party lock; the multiplexor polls them from one task, so they never contend.
    fn split_fast(self) -> (SplitStream<Self>, SplitSink<Self, Bytes>) {
        let (tx, rx) = StreamExt::split(self);
        (rx, tx)
    }
}

impl<T: TransportRead + TransportWrite> TransportExt for T {}

/// A tokio-websockets [`WebSocketStream`] as a Wisp transport.
#[derive(Debug)]
pub struct TokioWebsocketsTransport<S>(pub WebSocketStream<S>);

pub(crate) fn map_ws_error(e: tokio_websockets::Error) -> WispError {
    match e {
        tokio_websockets::Error::AlreadyClosed => WispError::WsImplSocketClosed,
        other => WispError::ws(other),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for TokioWebsocketsTransport<S> {
    type Item = Result<Bytes, WispError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let msg = match Pin::new(&mut self.0).poll_next(cx) {
                Poll::Ready(Some(Ok(msg))) => msg,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(map_ws_error(e)))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            if msg.is_binary() {
                return Poll::Ready(Some(Ok(msg.into_payload().into())));
            }
            if msg.is_close() {
                return Poll::Ready(None);
            }
            if msg.is_text() {
                tracing::debug!("ignoring a text WebSocket frame");
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Bytes> for TokioWebsocketsTransport<S> {
    type Error = WispError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WispError>> {
        Pin::new(&mut self.0).poll_ready(cx).map_err(map_ws_error)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Bytes) -> Result<(), WispError> {
        Pin::new(&mut self.0)
            .start_send(Message::binary(item))
            .map_err(map_ws_error)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WispError>> {
        Pin::new(&mut self.0).poll_flush(cx).map_err(map_ws_error)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WispError>> {
        Pin::new(&mut self.0).poll_close(cx).map_err(map_ws_error)
    }
}

/// The socket under a tokio-websockets [`WebSocketStream`] that also carries the
/// multiplexor's own frames.
///
/// tokio-websockets' `Sink` cannot send a client message without an allocation per message
/// (in the client role it masks a payload in place only in a buffer it owns alone, and
/// frees it once written). So when the multiplexor's driver owns the whole WebSocket
/// ([`crate::ClientMux::connect`], [`crate::ClientMux::new_websocket`]), its writers encode
/// DATA as finished masked frames straight into a reused [`Batch`], and the driver hands
/// the batch to this stream to write as it is: one pass over each payload, no allocation,
/// one system call per batch. tokio-websockets still does the upgrade, the reading, the
/// answers to pings and the close; the bytes it writes while a batch is on its way out wait
/// behind the batch, so frames never interleave. With no batch pending, it writes straight
/// through.
#[derive(Debug)]
pub struct BatchedStream<S> {
    io: S,
    /// The batch being written, and how much of it is out.
    batch: Batch,
    written: usize,
    /// What tokio-websockets wrote while the batch was pending (whole frames), and how much
    /// of it is out.
    behind: Vec<u8>,
    behind_written: usize,
}

impl<S> BatchedStream<S> {
    /// Wraps a connected socket.
    pub fn new(io: S) -> Self {
        Self {
            io,
            batch: Batch::default(),
            written: 0,
            behind: Vec::new(),
            behind_written: 0,
        }
    }

    /// The socket.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// Whether bytes handed to this stream are still waiting for the socket.
    pub(crate) fn is_pending(&self) -> bool {
        self.written < self.batch.len() || self.behind_written < self.behind.len()
    }

    /// Bytes of memory the batch buffer holds.
    pub(crate) fn buffer_capacity(&self) -> usize {
        self.batch.capacity() + self.behind.capacity()
    }

    /// Frees the buffers while nothing is pending (they grow again on demand).
    pub(crate) fn release_buffers(&mut self) {
        if !self.is_pending() {
            self.batch = Batch::default();
            self.behind = Vec::new();
        }
    }

    /// Forgets what is pending (the socket failed).
    pub(crate) fn discard(&mut self) {
        self.batch.clear();
        self.written = 0;
        self.behind.clear();
        self.behind_written = 0;
    }

    /// The (empty) batch to fill next, while nothing is pending; whatever is put in it is
    /// pending from then on, written by the next flush.
    pub(crate) fn next_batch(&mut self) -> Option<&mut Batch> {
        (!self.is_pending()).then_some(&mut self.batch)
    }
}

impl<S: AsyncWrite + Unpin> BatchedStream<S> {
    /// Writes what is pending: the batch, then what queued behind it.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.batch.len() {
            let [control, data] = self.batch.parts();
            let n = if self.written < control.len() {
                let bufs = [IoSlice::new(&control[self.written..]), IoSlice::new(data)];
                ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &bufs))?
            } else {
                let rest = &data[self.written - control.len()..];
                ready!(Pin::new(&mut self.io).poll_write(cx, rest))?
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        if !self.batch.is_empty() {
            self.batch.clear();
            self.written = 0;
        }
        while self.behind_written < self.behind.len() {
            let rest = &self.behind[self.behind_written..];
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.behind_written += n;
        }
        self.behind.clear();
        self.behind_written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for BatchedStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for BatchedStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.is_pending() {
            self.behind.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.is_pending() {
            let mut n = 0;
            for b in bufs {
                self.behind.extend_from_slice(b);
                n += b.len();
            }
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
/// A byte stream whose write errors wait for its read side: once a write fails, later writes
/// are discarded, and reads go on returning what the peer sent before it went away (its
/// reset or EOF ends them, as it would have anyway); should nothing more become readable
/// within a bound ([`DeferWriteErrors::DEFAULT_READ_BOUND`]), reads fail with the write
/// error.
///
/// A server that rejects a client after the handshake sends CLOSE(0, reason), closes the
/// WebSocket and the TCP connection; a client writing at that moment gets a broken pipe or a
/// reset although the server's CLOSE is already in its receive buffer. tokio-websockets
/// stops reading for good after any write error, so that CLOSE would be lost; under a
/// `WebSocketStream` built on this wrapper the write error reaches the multiplexor through
/// the read side, after everything the server sent before it, and the server's reason wins.
/// [`connect`] builds its WebSocket on it; wrap a stream the same way when you build the
/// `WebSocketStream` yourself.
#[derive(Debug)]
pub struct DeferWriteErrors<S> {
    inner: S,
    /// The first write error; reads report it if nothing more arrives within `read_bound`.
    write_error: Option<(io::ErrorKind, String)>,
    read_bound: Duration,
    /// Started when the write failed.
    read_wait: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> DeferWriteErrors<S> {
    /// How long reads wait for more after a write failed, by default: the default
    /// [`crate::MuxOptions::close_timeout`]. A peer that reset the connection or closed it
    /// makes the socket readable at once, so this only bounds a pathological transport.
    pub const DEFAULT_READ_BOUND: Duration = Duration::from_secs(5);

    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            write_error: None,
            read_bound: Self::DEFAULT_READ_BOUND,
            read_wait: None,
        }
    }

    /// Sets how long reads wait for more after a write failed.
    pub fn with_read_bound(mut self, bound: Duration) -> Self {
        self.read_bound = bound;
        self
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped stream.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Whether a write has failed.
    pub fn write_failed(&self) -> bool {
        self.write_error.is_some()
    }

    /// Latches a write error, starts the read bound and wakes the reader (the task that
    /// drives both halves).
    fn latch(&mut self, cx: &mut Context<'_>, e: &io::Error) {
        if self.write_error.is_none() {
            self.write_error = Some((e.kind(), e.to_string()));
            self.read_wait = Some(Box::pin(tokio::time::sleep(self.read_bound)));
            cx.waker().wake_by_ref();
        }
    }

    fn deferred_error(&self) -> Option<io::Error> {
        self.write_error
            .as_ref()
            .map(|(kind, text)| io::Error::new(*kind, text.clone()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for DeferWriteErrors<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Pending => {
                // Pending does not mean "nothing received": the runtime may not have seen
                // the socket's readiness yet. Only the bound turns it into the error.
                let expired = self
                    .read_wait
                    .as_mut()
                    .is_some_and(|wait| wait.as_mut().poll(cx).is_ready());
                match self.deferred_error() {
                    Some(e) if expired => Poll::Ready(Err(e)),
                    _ => Poll::Pending,
                }
            }
            ready => ready,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for DeferWriteErrors<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.write_error.is_some() {
            return Poll::Ready(Ok(buf.len()));
        }
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(Err(e)) => {
                self.latch(cx, &e);
                Poll::Ready(Ok(buf.len()))
            }
            other => other,
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let all = |bufs: &[IoSlice<'_>]| bufs.iter().map(|b| b.len()).sum();
        if self.write_error.is_some() {
            return Poll::Ready(Ok(all(bufs)));
        }
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Err(e)) => {
                self.latch(cx, &e);
                Poll::Ready(Ok(all(bufs)))
            }
            other => other,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.write_error.is_some() {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(Err(e)) => {
                self.latch(cx, &e);
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.deferred_error() {
            // Nothing can be sent any more; the close ends here.
            Some(e) => Poll::Ready(Err(e)),
            None => Pin::new(&mut self.inner).poll_shutdown(cx),
        }
    }
}

/// The tokio-websockets flush threshold [`connect`] configures (its default is 8 KiB).
///
/// tokio-websockets writes queued frames out as soon as this many bytes are pending, so
/// with the default a batch of small Wisp packets (1 KiB DATA) leaves in one `writev` per
/// 8 frames; the multiplexor's driver flushes at the end of every batch anyway, so a larger
/// threshold costs no latency and lets one `writev` carry up to 32 frames (its 64-slice
/// limit). Use the same value when you build the `WebSocketStream` yourself:
/// `tokio_websockets::Config::default().flush_threshold(FLUSH_THRESHOLD)`.
pub const FLUSH_THRESHOLD: usize = 64 * 1024;

/// The subprotocol value offered when v2 is wanted (the value itself is not specified;
/// wisp-js sends this one).
pub const WISP_V2_SUBPROTOCOL: &str = "wisp-v2";

/// How [`connect`] opens the WebSocket.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// The `Sec-WebSocket-Protocol` value to offer. Draft 5+ servers speak v2 only when the
    /// header is present; `None` sends no header (a v1 connection).
    pub subprotocol: Option<String>,
    /// Extra request headers (for example `Authorization` or `Origin`).
    pub headers: Vec<(String, String)>,
    /// The largest incoming WebSocket message accepted (`None`: the library default, 64 MiB).
    pub max_message_size: Option<usize>,
    /// Bound on the whole of [`connect`]: resolving and connecting TCP, the TLS handshake
    /// and the WebSocket upgrade (`None`: wait forever). Default 10 s, as
    /// [`crate::MuxOptions::connect_timeout`].
    pub timeout: Option<Duration>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            subprotocol: None,
            headers: Vec::new(),
            max_message_size: None,
            timeout: crate::MuxOptions::default().connect_timeout,
        }
    }
}

/// The step of opening a WebSocket ([`connect`]) that did not finish in time
/// ([`WispError::ConnectTimedOut`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectStep {
    /// Resolving the host and connecting TCP.
    Tcp,
    /// The TLS handshake (`wss://`).
    Tls,
    /// The HTTP upgrade to a WebSocket.
    Upgrade,
}

impl std::fmt::Display for ConnectStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Tcp => "the TCP connect",
            Self::Tls => "the TLS handshake",
            Self::Upgrade => "the WebSocket upgrade",
        })
    }
}

impl ConnectOptions {
    /// Options for a v1 connection: no subprotocol offered.
    pub fn v1() -> Self {
        Self::default()
    }

    /// Options for a v2 connection: offers `Sec-WebSocket-Protocol: wisp-v2`.
    pub fn v2() -> Self {
        Self {
            subprotocol: Some(WISP_V2_SUBPROTOCOL.to_owned()),
            ..Self::default()
        }
    }

    /// Adds a request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the largest incoming WebSocket message accepted.
    pub fn max_message_size(mut self, size: usize) -> Self {
        self.max_message_size = Some(size);
        self
    }

    /// Sets [`ConnectOptions::timeout`].
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Runs one step of [`connect`] within what is left of its deadline.
async fn step<T>(
    deadline: Option<tokio::time::Instant>,
    step: ConnectStep,
    work: impl Future<Output = Result<T, WispError>>,
) -> Result<T, WispError> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, work)
            .await
            .map_err(|_| WispError::ConnectTimedOut(step))?,
        None => work.await,
    }
}

/// An open WebSocket to a Wisp server, ready for [`crate::ClientMux::new_websocket`] (or to
/// be split and handed to [`crate::ClientMux::new`]).
#[derive(Debug)]
pub struct Connection {
    /// The WebSocket as a transport: over a [`BatchedStream`] (which writes the
    /// multiplexor's batches of frames), over [`DeferWriteErrors`] (so a write racing the
    /// server's close does not hide the server's CLOSE).
    pub transport:
        TokioWebsocketsTransport<BatchedStream<DeferWriteErrors<MaybeTlsStream<TcpStream>>>>,
    /// The `Sec-WebSocket-Protocol` the server echoed, if any. The spec does not require
    /// the echo, so its absence is not an error.
    pub echoed_subprotocol: Option<String>,
}

/// Opens a WebSocket to a Wisp server URL (`ws://` or, with the `tls` feature, `wss://`).
///
/// The URL should end in `/`: Wisp servers use the trailing slash to tell Wisp from wsproxy
/// requests. The whole of it is bounded by [`ConnectOptions::timeout`]; a step still running
/// at the deadline fails with [`WispError::ConnectTimedOut`] naming it.
pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Connection, WispError> {
    let deadline = connect_deadline(options);
    let uri = parse_url(url)?;
    let stream = open_stream(&uri, deadline).await?;
    let (transport, echoed_subprotocol) = upgrade_until(uri, stream, options, deadline).await?;
    Ok(Connection {
        transport,
        echoed_subprotocol,
    })
}

/// The WebSocket upgrade of [`connect`] over a connection the caller opened (a test's
/// loopback socket, a proxy tunnel): the same request headers, limits and transport, bounded
/// by [`ConnectOptions::timeout`] ([`WispError::ConnectTimedOut`] with
/// [`ConnectStep::Upgrade`]). Returns the transport and the echoed subprotocol.
pub async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    url: &str,
    io: S,
    options: &ConnectOptions,
) -> Result<
    (
        TokioWebsocketsTransport<BatchedStream<DeferWriteErrors<S>>>,
        Option<String>,
    ),
    WispError,
> {
    let deadline = connect_deadline(options);
    upgrade_until(parse_url(url)?, io, options, deadline).await
}

/// The deadline of [`ConnectOptions::timeout`] from now; none for a bound too long for an
/// `Instant` (`Duration::MAX` means "never").
fn connect_deadline(options: &ConnectOptions) -> Option<tokio::time::Instant> {
    options
        .timeout
        .and_then(|t| tokio::time::Instant::now().checked_add(t))
}

fn parse_url(url: &str) -> Result<Uri, WispError> {
    url.parse()
        .map_err(|e| WispError::InvalidArgument(format!("invalid URL {url:?}: {e}")))
}

async fn upgrade_until<S: AsyncRead + AsyncWrite + Unpin>(
    uri: Uri,
    io: S,
    options: &ConnectOptions,
    deadline: Option<tokio::time::Instant>,
) -> Result<
    (
        TokioWebsocketsTransport<BatchedStream<DeferWriteErrors<S>>>,
        Option<String>,
    ),
    WispError,
> {
    let mut builder = ClientBuilder::from_uri(uri)
        .config(tokio_websockets::Config::default().flush_threshold(FLUSH_THRESHOLD));
    if let Some(size) = options.max_message_size {
        builder = builder.limits(Limits::default().max_payload_len(Some(size)));
    }
    let mut headers = Vec::new();
    if let Some(p) = &options.subprotocol {
        headers.push(("sec-websocket-protocol".to_owned(), p.clone()));
    }
    headers.extend(options.headers.iter().cloned());
    for (name, value) in headers {
        let name = HeaderName::try_from(name.as_str())
            .map_err(|e| WispError::InvalidArgument(format!("header name {name:?}: {e}")))?;
        let value = HeaderValue::try_from(value.as_str())
            .map_err(|e| WispError::InvalidArgument(format!("header value {value:?}: {e}")))?;
        builder = builder.add_header(name, value).map_err(map_ws_error)?;
    }
    let (ws, response) = step(deadline, ConnectStep::Upgrade, async {
        builder
            .connect_on(BatchedStream::new(DeferWriteErrors::new(io)))
            .await
            .map_err(map_ws_error)
    })
    .await?;
    let echoed_subprotocol = response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if let Some(chosen) = &echoed_subprotocol
        && !offered_subprotocols(options).any(|p| p == chosen.trim())
    {
        // RFC 6455 §4.1: a subprotocol the client did not offer fails the connection.
        return Err(WispError::ws(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the server chose the subprotocol {chosen:?}, which was not offered"),
        )));
    }
    Ok((TokioWebsocketsTransport(ws), echoed_subprotocol))
}

/// The subprotocols the upgrade request offers: [`ConnectOptions::subprotocol`] and any
/// `Sec-WebSocket-Protocol` among the extra headers, each a comma-separated list.
fn offered_subprotocols(options: &ConnectOptions) -> impl Iterator<Item = &str> {
    let extra = options
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-protocol"))
        .map(|(_, value)| value.as_str());
    options
        .subprotocol
        .as_deref()
        .into_iter()
        .chain(extra)
        .flat_map(|list| list.split(','))
        .map(str::trim)
}

/// Opens the TCP (and, for `wss://`, TLS) connection for `uri`, with `TCP_NODELAY` set:
/// Wisp sends many small packets (CONNECT then DATA, CONTINUE), which Nagle's algorithm
/// would hold back for the peer's delayed ACK.
async fn open_stream(
    uri: &Uri,
    deadline: Option<tokio::time::Instant>,
) -> Result<MaybeTlsStream<TcpStream>, WispError> {
    let tls = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        other => {
            return Err(WispError::InvalidArgument(format!(
                "URL scheme must be ws or wss, not {other:?}"
            )));
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| WispError::InvalidArgument("URL has no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let tcp = step(deadline, ConnectStep::Tcp, async {
        TcpStream::connect((host, port))
            .await
            .map_err(WispError::ws)
    })
    .await?;
    tcp.set_nodelay(true).map_err(WispError::ws)?;
    let connector = if tls {
        tls_connector()?
    } else {
        Connector::Plain
    };
    step(deadline, ConnectStep::Tls, async {
        connector.wrap(host, tcp).await.map_err(map_ws_error)
    })
    .await
}

/// A rustls connector with the webpki roots. rustls picks its crypto provider from the
/// process default; without one it would panic, so ring's is installed first (an error
/// means another provider is installed already, which is then used).
#[cfg(feature = "tls")]
fn tls_connector() -> Result<Connector, WispError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Connector::new().map_err(map_ws_error)
}

#[cfg(not(feature = "tls"))]
fn tls_connector() -> Result<Connector, WispError> {
    Err(WispError::InvalidArgument(
        "wss:// needs the `tls` feature of wisp-client".into(),
    ))
}
