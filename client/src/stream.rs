//! [`MuxStream`]: one Wisp stream as a `Stream` of payloads and a `Sink` of payloads, its
//! split halves, and byte-oriented I/O adapters for futures-io and tokio.
//!
//! Every write path (the `Sink`, [`MuxStreamAsyncRW`] and [`MuxStreamTokioIo`]) goes through
//! the same credit check: one DATA packet per credit, payloads split at the configured
//! maximum. Dropping both halves of a stream that is still open sends CLOSE with reason
//! 0x02 (voluntary).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use futures::{Sink, Stream};

use crate::WispError;
use crate::proto::reclaim::Reclaim;
use crate::proto::{self, CloseReason, Initiator, StreamType};
use crate::shared::{Shared, State};

/// How a stream ended.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum StreamEnd {
    /// A CLOSE packet ended it.
    Closed {
        /// The reason carried by the CLOSE.
        reason: CloseReason,
        /// Who sent the CLOSE.
        initiator: Initiator,
    },
    /// The stream was never opened (stream-open confirmation refused or timed out).
    OpenFailed(WispError),
    /// The whole connection ended (CLOSE on stream 0, WebSocket EOF or error, local close).
    ConnectionEnded(WispError),
}

impl StreamEnd {
    /// The close reason: the CLOSE's reason, or the one the connection-level error carries.
    pub fn reason(&self) -> Option<CloseReason> {
        match self {
            StreamEnd::Closed { reason, .. } => Some(*reason),
            StreamEnd::OpenFailed(e) | StreamEnd::ConnectionEnded(e) => e.close_reason(),
        }
    }

    /// Who ended the stream, when a CLOSE ended it.
    pub fn initiator(&self) -> Option<Initiator> {
        match self {
            StreamEnd::Closed { initiator, .. } => Some(*initiator),
            _ => None,
        }
    }

    /// The error to report for this end, if it was not an orderly CLOSE.
    pub fn error(&self) -> Option<&WispError> {
        match self {
            StreamEnd::Closed { .. } => None,
            StreamEnd::OpenFailed(e) | StreamEnd::ConnectionEnded(e) => Some(e),
        }
    }
}

/// What both halves share about one stream.
#[derive(Clone)]
struct StreamRef {
    shared: Arc<Shared>,
    id: u32,
    stream_type: StreamType,
}

impl StreamRef {
    fn end(&self) -> Option<StreamEnd> {
        let state = self.shared.lock();
        state.streams.get(&self.id).and_then(|s| s.end.clone())
    }

    fn close(&self, reason: CloseReason) -> Result<(), WispError> {
        let mut state = self.shared.lock();
        if let Some(end) = state.streams.get(&self.id).and_then(|s| s.end.as_ref()) {
            return Err(match end {
                StreamEnd::ConnectionEnded(e) => e.clone(),
                _ => WispError::StreamAlreadyClosed,
            });
        }
        state.conn.close_stream(self.id, reason)?;
        state.process_events();
        state.wake_driver();
        Ok(())
    }

    fn release(&self) {
        self.shared.lock().release_stream_handle(self.id);
    }

    /// The error a write refused by the connection reports: how the stream ended, when it
    /// has (the connection forgets a stream once it ends), or the connection's refusal.
    #[cold]
    fn write_refused(&self, state: &State, e: proto::Error) -> WispError {
        match state.streams.get(&self.id).and_then(|s| s.end.as_ref()) {
            Some(end) => write_error(end),
            None => e.into(),
        }
    }
}

/// A Wisp stream: a `Stream` of received payloads and a `Sink` of payloads to send.
///
/// Reading yields the payloads in arrival order, then ends: `None` after a CLOSE (the
/// reason is in [`MuxStream::get_close_reason`]), or one `Err` with the connection's error
/// when the whole connection ended.
pub struct MuxStream {
    read: MuxStreamRead,
    write: MuxStreamWrite,
}

impl std::fmt::Debug for MuxStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxStream")
            .field("id", &self.read.stream.id)
            .field("stream_type", &self.read.stream.stream_type)
            .finish_non_exhaustive()
    }
}

impl MuxStream {
    pub(crate) fn new(
        shared: Arc<Shared>,
        id: u32,
        stream_type: StreamType,
        max_payload_len: usize,
    ) -> Self {
        let stream = StreamRef {
            shared,
            id,
            stream_type,
        };
        Self {
            read: MuxStreamRead {
                stream: stream.clone(),
                error_reported: false,
            },
            write: MuxStreamWrite {
                handle: proto::StreamHandle::new(id),
                stream,
                pending: None,
                max_payload_len,
            },
        }
    }

    /// The stream id.
    pub fn get_stream_id(&self) -> u32 {
        self.read.stream.id
    }

    /// The stream type.
    pub fn stream_type(&self) -> StreamType {
        self.read.stream.stream_type
    }

    /// The close reason once the stream has ended (sent or received; for a connection-level
    /// end, the reason the connection's error carries).
    pub fn get_close_reason(&self) -> Option<CloseReason> {
        self.read.get_close_reason()
    }

    /// How the stream ended, once it has.
    pub fn end(&self) -> Option<StreamEnd> {
        self.read.stream.end()
    }

    /// Closes the stream with `reason` (CLOSE on the wire). Data already queued is sent
    /// first; data not yet received is discarded.
    pub async fn close(&self, reason: CloseReason) -> Result<(), WispError> {
        self.read.stream.close(reason)
    }

    /// Splits the stream into a read half and a write half. The stream is closed when both
    /// are dropped.
    pub fn into_split(self) -> (MuxStreamRead, MuxStreamWrite) {
        (self.read, self.write)
    }

    /// A futures-io `AsyncRead + AsyncBufRead + AsyncWrite` over this stream.
    pub fn into_async_rw(self) -> MuxStreamAsyncRW {
        MuxStreamAsyncRW {
            io: IoState::new(self),
        }
    }

    /// A tokio `AsyncRead + AsyncBufRead + AsyncWrite` over this stream.
    pub fn into_tokio_io(self) -> MuxStreamTokioIo {
        MuxStreamTokioIo {
            io: IoState::new(self),
        }
    }
}

impl Stream for MuxStream {
    type Item = Result<Bytes, WispError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.read).poll_next(cx)
    }
}

impl Sink<Bytes> for MuxStream {
    type Error = WispError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WispError>> {
        Pin::new(&mut self.write).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Bytes) -> Result<(), WispError> {
        Pin::new(&mut self.write).start_send(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WispError>> {
        Pin::new(&mut self.write).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WispError>> {
        Pin::new(&mut self.write).poll_close(cx)
    }
}

/// The read half of a [`MuxStream`].
pub struct MuxStreamRead {
    stream: StreamRef,
    error_reported: bool,
}

impl std::fmt::Debug for MuxStreamRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxStreamRead")
            .field("id", &self.stream.id)
            .finish_non_exhaustive()
    }
}

impl MuxStreamRead {
    /// The stream id.
    pub fn get_stream_id(&self) -> u32 {
        self.stream.id
    }

    /// The close reason once the stream has ended.
    pub fn get_close_reason(&self) -> Option<CloseReason> {
        self.stream.end().and_then(|e| e.reason())
    }

    /// How the stream ended, once it has.
    pub fn end(&self) -> Option<StreamEnd> {
        self.stream.end()
    }
}

impl Drop for MuxStreamRead {
    fn drop(&mut self) {
        self.stream.release();
    }
}

impl Stream for MuxStreamRead {
    type Item = Result<Bytes, WispError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let mut state = this.stream.shared.lock();
        let Some(slot) = state.streams.get_mut(&this.stream.id) else {
            return Poll::Ready(None);
        };
        if let Some(data) = slot.recv.pop_front() {
            // A reader that fell behind a flood gets the queue's memory back as it catches up.
            slot.recv.reclaim();
            return Poll::Ready(Some(Ok(data)));
        }
        match &slot.end {
            None => {
                slot.read_waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Some(StreamEnd::Closed { .. }) => Poll::Ready(None),
            Some(StreamEnd::OpenFailed(e) | StreamEnd::ConnectionEnded(e)) => {
                if this.error_reported || matches!(e, WispError::ClosedLocally) {
                    Poll::Ready(None)
                } else {
                    this.error_reported = true;
                    Poll::Ready(Some(Err(e.clone())))
                }
            }
        }
    }
}

/// The write half of a [`MuxStream`]: a `Sink` of payloads.
pub struct MuxStreamWrite {
    stream: StreamRef,
    /// The stream's place in the connection's stream table: each write finds it by index.
    handle: proto::StreamHandle,
    /// A payload accepted by `start_send` and not yet fully queued as DATA packets.
    pending: Option<Bytes>,
    max_payload_len: usize,
}

impl std::fmt::Debug for MuxStreamWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxStreamWrite")
            .field("id", &self.stream.id)
            .finish_non_exhaustive()
    }
}

impl Drop for MuxStreamWrite {
    fn drop(&mut self) {
        self.stream.release();
    }
}

impl MuxStreamWrite {
    /// The stream id.
    pub fn get_stream_id(&self) -> u32 {
        self.stream.id
    }

    /// The close reason once the stream has ended.
    pub fn get_close_reason(&self) -> Option<CloseReason> {
        self.stream.end().and_then(|e| e.reason())
    }

    /// The largest DATA payload this stream sends; longer writes are split.
    pub fn max_payload_len(&self) -> usize {
        self.max_payload_len
    }

    /// Closes the stream with `reason`.
    pub async fn close(&self, reason: CloseReason) -> Result<(), WispError> {
        self.stream.close(reason)
    }

    /// Sends one DATA packet with a prefix of `buf`, waiting for credit. Returns the bytes
    /// taken (always ≥ 1 for a non-empty `buf`).
    #[inline(always)]
    pub(crate) fn poll_write_slice(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<Result<usize, WispError>> {
        let mut state = self.stream.shared.lock();
        // One lookup on the way, by index: the connection knows the stream exactly while it
        // is open (the stream's slot learns how it ended under the same lock).
        match state.conn.send_data_on(&mut self.handle, buf) {
            Ok(Some(n)) => {
                state.wake_driver();
                Poll::Ready(Ok(n))
            }
            Ok(None) => {
                state.park_writer(self.stream.id, cx.waker());
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(self.stream.write_refused(&state, e))),
        }
    }

    /// Queues as much of the pending payload as credit allows.
    fn poll_send_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WispError>> {
        let Some(pending) = self.pending.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut state = self.stream.shared.lock();
        if let Some(end) = state
            .streams
            .get(&self.stream.id)
            .and_then(|s| s.end.as_ref())
        {
            let e = write_error(end);
            self.pending = None;
            return Poll::Ready(Err(e));
        }
        let mut sent_any = false;
        loop {
            match state.conn.send_data_on(&mut self.handle, pending) {
                Ok(Some(n)) => {
                    sent_any = true;
                    pending.advance(n);
                    if pending.is_empty() {
                        self.pending = None;
                        state.wake_driver();
                        return Poll::Ready(Ok(()));
                    }
                }
                Ok(None) => {
                    if sent_any {
                        state.wake_driver();
                    }
                    state.park_writer(self.stream.id, cx.waker());
                    return Poll::Pending;
                }
                Err(e) => {
                    self.pending = None;
                    return Poll::Ready(Err(e.into()));
                }
            }
        }
    }
}

fn write_error(end: &StreamEnd) -> WispError {
    match end {
        StreamEnd::ConnectionEnded(e) => e.clone(),
        _ => WispError::StreamAlreadyClosed,
    }
}

impl Sink<Bytes> for MuxStreamWrite {
    type Error = WispError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WispError>> {
        self.poll_send_pending(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Bytes) -> Result<(), WispError> {
        if self.pending.is_some() {
            return Err(WispError::InvalidArgument(
                "start_send called without poll_ready".into(),
            ));
        }
        self.pending = Some(item);
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WispError>> {
        self.poll_send_pending(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WispError>> {
        ready!(self.poll_send_pending(cx))?;
        match self.stream.close(CloseReason::VOLUNTARY) {
            Ok(()) | Err(WispError::StreamAlreadyClosed) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// The byte-stream state shared by both I/O adapters.
struct IoState {
    read: MuxStreamRead,
    write: MuxStreamWrite,
    chunk: Bytes,
}

impl IoState {
    fn new(stream: MuxStream) -> Self {
        Self {
            read: stream.read,
            write: stream.write,
            chunk: Bytes::new(),
        }
    }

    /// Fills `chunk` with the next non-empty payload; empty at EOF. Zero-length DATA
    /// packets are skipped so they never look like EOF.
    fn poll_fill_buf(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        while self.chunk.is_empty() {
            match ready!(Pin::new(&mut self.read).poll_next(cx)) {
                Some(Ok(data)) => self.chunk = data,
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
                None => break,
            }
        }
        Poll::Ready(Ok(&self.chunk))
    }

    fn consume(&mut self, amt: usize) {
        self.chunk.advance(amt.min(self.chunk.len()));
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let available = ready!(self.poll_fill_buf(cx))?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Poll::Ready(Ok(n))
    }

    /// The one write path of both adapters, inlined into each: a user's `write_all`
    /// calls it once per packet.
    #[inline(always)]
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        match self.write.poll_write_slice(cx, buf) {
            Poll::Ready(Ok(n)) => Poll::Ready(Ok(n)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(io_error(e))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_close(&mut self) -> Poll<io::Result<()>> {
        match self.write.stream.close(CloseReason::VOLUNTARY) {
            Ok(()) | Err(WispError::StreamAlreadyClosed) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(io::Error::other(e))),
        }
    }
}

/// The `io::Error` a byte-stream write reports for `e`.
#[cold]
fn io_error(e: WispError) -> io::Error {
    match e {
        WispError::StreamAlreadyClosed => io::Error::new(io::ErrorKind::BrokenPipe, e),
        other => io::Error::other(other),
    }
}

/// A futures-io byte stream over a [`MuxStream`] (`AsyncRead + AsyncBufRead + AsyncWrite`).
/// `poll_close` sends CLOSE (0x02).
pub struct MuxStreamAsyncRW {
    io: IoState,
}

impl std::fmt::Debug for MuxStreamAsyncRW {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxStreamAsyncRW")
            .field("id", &self.io.read.stream.id)
            .finish_non_exhaustive()
    }
}

impl MuxStreamAsyncRW {
    /// The stream id.
    pub fn get_stream_id(&self) -> u32 {
        self.io.read.stream.id
    }

    /// The close reason once the stream has ended.
    pub fn get_close_reason(&self) -> Option<CloseReason> {
        self.io.read.get_close_reason()
    }
}

impl futures::io::AsyncRead for MuxStreamAsyncRW {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_read(cx, buf)
    }
}

impl futures::io::AsyncBufRead for MuxStreamAsyncRW {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        self.get_mut().io.poll_fill_buf(cx)
    }

    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        self.io.consume(amt);
    }
}

impl futures::io::AsyncWrite for MuxStreamAsyncRW {
    #[inline]
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_close()
    }
}

/// A tokio byte stream over a [`MuxStream`] (`AsyncRead + AsyncBufRead + AsyncWrite`).
/// `poll_shutdown` sends CLOSE (0x02).
pub struct MuxStreamTokioIo {
    io: IoState,
}

impl std::fmt::Debug for MuxStreamTokioIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxStreamTokioIo")
            .field("id", &self.io.read.stream.id)
            .finish_non_exhaustive()
    }
}

impl MuxStreamTokioIo {
    /// The stream id.
    pub fn get_stream_id(&self) -> u32 {
        self.io.read.stream.id
    }

    /// The close reason once the stream has ended.
    pub fn get_close_reason(&self) -> Option<CloseReason> {
        self.io.read.get_close_reason()
    }
}

impl tokio::io::AsyncRead for MuxStreamTokioIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let available = ready!(self.io.poll_fill_buf(cx))?;
        let n = available.len().min(buf.remaining());
        buf.put_slice(&available[..n]);
        self.io.consume(n);
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncBufRead for MuxStreamTokioIo {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        self.get_mut().io.poll_fill_buf(cx)
    }

    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        self.io.consume(amt);
    }
}

impl tokio::io::AsyncWrite for MuxStreamTokioIo {
    #[inline]
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_close()
    }
}
