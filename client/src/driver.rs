//! The driver: the one future that owns the WebSocket and moves bytes between it and the
//! sans-IO [`ClientConnection`](crate::proto::ClientConnection), from the first handshake
//! message to the close. [`crate::ClientMux::new`] polls it through the handshake, then hands
//! it to the caller to spawn.
//!
//! Each poll: read what the transport has ready and feed it in, service the timer, move
//! queued packets to the transport and flush, route the connection's events. When the
//! connection has ended, flush what is left (a CLOSE), close the WebSocket, bounded by
//! [`MuxOptions::close_timeout`](crate::MuxOptions::close_timeout), and resolve.
//!
//! A failed write does not end the connection by itself: a server that rejects the client
//! sends CLOSE(0, reason) and closes the WebSocket, and a write racing that close fails
//! (broken pipe, reset) while the server's CLOSE already waits to be read. So after a write
//! error the driver writes nothing more and reads on, bounded by the close timeout: a
//! CLOSE(0) found there ends the connection with the server's reason; otherwise the write
//! error does, when the read side ends or the bound passes. Nothing queued is flushed after
//! a write error (it can never be sent), so the driver ends as soon as the transport is
//! gone. (A transport must keep what it received readable after a write error for this to
//! help; [`crate::transport::DeferWriteErrors`] makes a tokio-websockets stream do so, and
//! [`crate::transport::connect`] uses it.)
//!
//! The transport is one of two [`Io`]s: [`MessageIo`], a read half and a write half that
//! carry one Wisp packet per message (any [`TransportRead`]/[`TransportWrite`]), or
//! [`FrameIo`], a whole tokio-websockets WebSocket the driver owns alone, to which it hands
//! the connection's batches of finished frames (see
//! [`BatchedStream`](crate::transport::BatchedStream)).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{Sink, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::WispError;
use crate::proto::{self, TransportError};
use crate::shared::{Shared, now};
use crate::transport::{
    BatchedStream, TokioWebsocketsTransport, TransportRead, TransportWrite, map_ws_error,
};

/// The future that drives a multiplexor. The caller must spawn (or otherwise poll) it:
/// nothing moves until it runs. It resolves when the connection ends: `Ok(())` after a local
/// close, otherwise the error that ended it.
pub type MultiplexorActorFuture = Pin<Box<dyn Future<Output = Result<(), WispError>> + Send>>;

/// How many messages the driver handles per poll before yielding to the runtime.
const DRIVER_BUDGET: usize = 128;

/// How many batches [`FrameIo`] writes per poll before yielding to the runtime.
const BATCH_BUDGET: usize = 16;

/// Whether the driver may take packets from the connection now, or should first let the
/// tasks the runtime has already queued run (`yielded` says whether it just did).
///
/// A batch is shared fairly among the streams that write into it before the driver takes
/// it. The runtime runs a task woken by the running one next (tokio's LIFO slot): the
/// writer whose packet woke the driver is followed at once by the driver, and the writer
/// the driver wakes when it takes the batch is followed by that writer, so without this
/// yield the two ping-pong and every batch holds one stream's packets while the other
/// writers wait in the run queue. Yielding once before each take puts the driver behind
/// them: every writer that is ready adds its share first. The cost is one more poll of
/// the driver per batch; with nothing queued there is nothing to take and no yield.
///
/// With nothing queued but writers waiting for their turn, the driver yields too: the
/// writers granted the next turns when the last batch was taken run first and queue. If
/// after that yield nothing is queued still, those writers did not write (their futures
/// were dropped, say), and every waiting writer is woken, so that none waits on them.
fn ready_to_take(yielded: &mut bool, shared: &Shared) -> Option<bool> {
    let mut state = shared.lock();
    let queued = state.conn.queued_bytes() > 0;
    if std::mem::take(yielded) {
        if !queued && state.conn.has_waiting_writers() {
            state.conn.wake_waiting_writers();
            state.process_events();
        }
        return Some(queued);
    }
    if !queued && !state.conn.has_waiting_writers() {
        return Some(false);
    }
    *yielded = true;
    None
}

/// Transmit buffers larger than this in all are freed once the connection has had nothing
/// to send for [`RELEASE_AFTER`]: a burst grows them (up to the queue limit plus a packet
/// per busy stream), and they keep that size while traffic flows, so that refilling them
/// costs neither an allocation nor zeroing.
const KEEP_IDLE: usize = 64 * 1024;

/// See [`KEEP_IDLE`].
const RELEASE_AFTER: Duration = Duration::from_millis(250);

/// What the driver moves bytes through.
pub(crate) trait Io: Send + Unpin + 'static {
    /// The next message from the server.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, WispError>>>;

    /// Moves packets queued in `shared`'s connection to the transport and flushes. Returns
    /// whether the budget ran out (there may be more to send).
    fn poll_send(&mut self, cx: &mut Context<'_>, shared: &Shared) -> Result<bool, WispError>;

    /// Whether packets taken from the connection are not yet out (unsent or unflushed).
    fn is_pending(&self) -> bool;

    /// Bytes of memory the transport side's buffers hold.
    fn buffer_capacity(&self) -> usize {
        0
    }

    /// Frees the transport side's buffers while nothing is pending.
    fn release_buffers(&mut self) {}

    /// Forgets packets taken from the connection and not yet sent (the transport failed).
    fn discard(&mut self);

    /// Closes the WebSocket.
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WispError>>;
}

/// A read half and a write half that carry one Wisp packet per message.
pub(crate) struct MessageIo<R, W> {
    rx: R,
    tx: W,
    /// Packets taken from the connection but not yet accepted by the sink.
    outgoing: VecDeque<Bytes>,
    needs_flush: bool,
    /// See [`ready_to_take`].
    yielded: bool,
}

impl<R, W> MessageIo<R, W> {
    pub(crate) fn new(rx: R, tx: W) -> Self {
        Self {
            rx,
            tx,
            outgoing: VecDeque::new(),
            needs_flush: false,
            yielded: false,
        }
    }
}

impl<R: TransportRead, W: TransportWrite> Io for MessageIo<R, W> {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, WispError>>> {
        self.rx.poll_next_unpin(cx)
    }

    fn poll_send(&mut self, cx: &mut Context<'_>, shared: &Shared) -> Result<bool, WispError> {
        let mut budget_left = true;
        loop {
            if self.outgoing.is_empty() {
                match ready_to_take(&mut self.yielded, shared) {
                    Some(true) => {}
                    Some(false) => break,
                    None => {
                        budget_left = false;
                        break;
                    }
                }
                let mut state = shared.lock();
                while self.outgoing.len() < DRIVER_BUDGET {
                    match state.conn.poll_transmit() {
                        Some(msg) => self.outgoing.push_back(msg),
                        None => break,
                    }
                }
                // Writers whose queued packets have gone out may write again.
                state.process_events();
                if self.outgoing.is_empty() {
                    break;
                }
            }
            let mut sent = 0;
            while let Some(msg) = self.outgoing.pop_front() {
                match self.tx.poll_ready_unpin(cx) {
                    Poll::Ready(Ok(())) => {
                        self.tx.start_send_unpin(msg)?;
                        self.needs_flush = true;
                        sent += 1;
                    }
                    Poll::Ready(Err(e)) => return Err(e),
                    Poll::Pending => {
                        self.outgoing.push_front(msg);
                        break;
                    }
                }
            }
            if !self.outgoing.is_empty() || sent == 0 {
                break;
            }
            if sent >= DRIVER_BUDGET {
                budget_left = false;
                break;
            }
        }
        if self.needs_flush {
            match self.tx.poll_flush_unpin(cx) {
                Poll::Ready(Ok(())) => self.needs_flush = false,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {}
            }
        }
        Ok(!budget_left)
    }

    fn is_pending(&self) -> bool {
        !self.outgoing.is_empty() || self.needs_flush
    }

    fn discard(&mut self) {
        self.outgoing.clear();
        self.needs_flush = false;
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WispError>> {
        self.tx.poll_close_unpin(cx)
    }
}

/// A whole tokio-websockets WebSocket, owned by the driver alone: no lock between reading
/// and writing, and the connection's batches of finished frames go to the socket as they
/// are.
pub(crate) struct FrameIo<S> {
    ws: TokioWebsocketsTransport<BatchedStream<S>>,
    /// A batch (or a frame of tokio-websockets') was handed over and not yet flushed.
    needs_flush: bool,
    /// See [`ready_to_take`].
    yielded: bool,
}

impl<S> FrameIo<S> {
    pub(crate) fn new(ws: TokioWebsocketsTransport<BatchedStream<S>>) -> Self {
        Self {
            ws,
            needs_flush: false,
            yielded: false,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for FrameIo<S> {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, WispError>>> {
        self.ws.poll_next_unpin(cx)
    }

    fn poll_send(&mut self, cx: &mut Context<'_>, shared: &Shared) -> Result<bool, WispError> {
        for _ in 0..BATCH_BUDGET {
            // Writes the pending batch, then whatever tokio-websockets has queued itself
            // (a pong): only when all of that is out may the next batch start, so a frame
            // is never cut by another.
            match Pin::new(&mut self.ws.0).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.needs_flush = false,
                Poll::Ready(Err(e)) => return Err(map_ws_error(e)),
                Poll::Pending => return Ok(false),
            }
            match ready_to_take(&mut self.yielded, shared) {
                Some(true) => {}
                Some(false) => return Ok(false),
                None => return Ok(true),
            }
            let Some(batch) = self.ws.0.get_mut().next_batch() else {
                return Ok(false);
            };
            let mut state = shared.lock();
            let took = state.conn.poll_transmit_batch(batch);
            // Writers refused for lack of room may fill the next batch.
            state.process_events();
            drop(state);
            if !took {
                return Ok(false);
            }
            self.needs_flush = true;
        }
        Ok(true)
    }

    fn is_pending(&self) -> bool {
        self.needs_flush || self.ws.0.get_ref().is_pending()
    }

    fn buffer_capacity(&self) -> usize {
        self.ws.0.get_ref().buffer_capacity()
    }

    fn release_buffers(&mut self) {
        self.ws.0.get_mut().release_buffers();
    }

    fn discard(&mut self) {
        self.ws.0.get_mut().discard();
        self.needs_flush = false;
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WispError>> {
        Pin::new(&mut self.ws).poll_close(cx)
    }
}

/// The driver: the one task that owns the WebSocket.
pub(crate) struct Driver<T> {
    shared: Arc<Shared>,
    io: T,
    rx_done: bool,
    /// Seen the handshake end: read in batches from then on.
    established: bool,
    timer: Pin<Box<tokio::time::Sleep>>,
    timer_deadline: Option<std::time::Instant>,
    /// Set when closing began: when the close gives up (`None` inside: a close timeout too
    /// long for an `Instant`, no deadline).
    closing_deadline: Option<Option<tokio::time::Instant>>,
    /// When the release of large idle transmit buffers was timed (see [`KEEP_IDLE`]), and
    /// whether the connection has sent anything since (then the release waits for the next
    /// idle stretch: the timer is re-armed at most once per [`RELEASE_AFTER`], never per
    /// batch).
    idle_since: Option<std::time::Instant>,
    busy_since_idle: bool,
    close_timeout: Duration,
    /// The transport failed to write with this error: nothing more is written, and the
    /// connection ends with it unless the read side yields the server's CLOSE(0) first.
    write_error: Option<WispError>,
    /// How long the read side is given to say why the server went away.
    write_error_wait: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> Drop for Driver<T> {
    /// A driver dropped before the connection ended (the actor future was never spawned,
    /// or its task was aborted) can move nothing any more: end the connection, so every
    /// stream and pending call sees [`WispError::MuxTaskEnded`] instead of waiting forever.
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if state.conn.error().is_none() {
            state
                .conn
                .handle_transport_closed(TransportError::Abandoned);
            state.process_events();
        }
    }
}

impl<T: Io> Driver<T> {
    /// A driver for the connection in `shared`, over `io`.
    pub(crate) fn new(shared: Arc<Shared>, io: T, close_timeout: Duration) -> Self {
        Self {
            shared,
            io,
            rx_done: false,
            established: false,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            timer_deadline: None,
            closing_deadline: None,
            idle_since: None,
            busy_since_idle: false,
            close_timeout,
            write_error: None,
            write_error_wait: None,
        }
    }

    /// Polls the driver until the handshake is over and what it queued (the client INFO
    /// answering a drafts 1–3 server) has been flushed; the caller then owns the driver.
    /// If the connection ends first, the driver runs to its end (the CLOSE a rejection
    /// queued goes out, the WebSocket closes) and the error is returned.
    pub(crate) async fn handshake(&mut self) -> Result<(), WispError> {
        std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = Pin::new(&mut *self).poll(cx) {
                return Poll::Ready(Err(result.err().unwrap_or(WispError::ClosedLocally)));
            }
            let state = self.shared.lock();
            let flushed = !self.io.is_pending() && state.conn.queued_bytes() == 0;
            // A connection that failed is not done: the driver runs on to its end above.
            if state.conn.is_established() && flushed {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Reads what the transport has ready and feeds it to the connection. Returns whether
    /// the budget ran out.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> bool {
        if self.rx_done {
            return false;
        }
        // During the handshake, one message per poll: `handshake` returns as soon as it is
        // over, and what the server sent after it stays in the transport until the caller
        // runs the driver (by then, with its streams open).
        if !self.established {
            self.established = !self.shared.lock().conn.is_handshaking();
        }
        let budget = if self.established { DRIVER_BUDGET } else { 1 };
        let mut batch = Vec::new();
        let mut end = None;
        while batch.len() < budget {
            match self.io.poll_recv(cx) {
                Poll::Ready(Some(Ok(msg))) => batch.push(msg),
                Poll::Ready(Some(Err(e))) => {
                    end = Some(Some(e));
                    break;
                }
                Poll::Ready(None) => {
                    end = Some(None);
                    break;
                }
                Poll::Pending => break,
            }
        }
        let exhausted = batch.len() == budget;
        if batch.is_empty() && end.is_none() {
            return false;
        }
        let mut state = self.shared.lock();
        let t = now();
        for msg in batch {
            state.conn.handle_message(msg, t);
        }
        if let Some(error) = end {
            self.rx_done = true;
            // After a failed write the read side ends because of it: the write error is
            // the first failure, so it is the one reported (unless a CLOSE(0) came first).
            let error = match (&self.write_error, error) {
                (Some(write_error), _) => write_error.clone().into_transport(),
                (None, error) => error.map_or(TransportError::Closed, WispError::into_transport),
            };
            state.conn.handle_transport_closed(error);
        }
        state.process_events();
        exhausted
    }

    /// Moves queued packets to the transport and flushes. Returns `Err` on a transport
    /// error, otherwise whether the budget ran out.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<bool, WispError> {
        self.io.poll_send(cx, &self.shared)
    }

    /// The transport failed to write: write nothing more, and read on (now, and until the
    /// read side ends or the close timeout passes) for a CLOSE(0) that explains the failure.
    fn write_failed(&mut self, cx: &mut Context<'_>, error: WispError) -> bool {
        self.io.discard();
        self.write_error = Some(error);
        // A sleep of its own: `timer` follows the connection's deadlines.
        self.write_error_wait = Some(Box::pin(tokio::time::sleep(self.close_timeout)));
        self.poll_read(cx)
    }

    /// After a write error, ends the connection with it once the read side has had its
    /// chance: it ended, or the bound passed.
    fn settle_write_error(&mut self, cx: &mut Context<'_>) {
        let Some(error) = &self.write_error else {
            return;
        };
        let mut state = self.shared.lock();
        if state.conn.error().is_some() {
            return;
        }
        let waited_enough = self
            .write_error_wait
            .as_mut()
            .is_none_or(|wait| wait.as_mut().poll(cx).is_ready());
        if self.rx_done || waited_enough {
            state
                .conn
                .handle_transport_closed(error.clone().into_transport());
            state.process_events();
        }
    }

    fn poll_timer(&mut self, cx: &mut Context<'_>) {
        loop {
            let deadline = self.shared.lock().conn.poll_timeout();
            let release = self.idle_since.map(|t| t + RELEASE_AFTER);
            let deadline = match (deadline, release) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let Some(deadline) = deadline else {
                self.timer_deadline = None;
                return;
            };
            if self.timer_deadline != Some(deadline) {
                self.timer.as_mut().reset(deadline.into());
                self.timer_deadline = Some(deadline);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return;
            }
            let t = now();
            let mut state = self.shared.lock();
            if self
                .idle_since
                .is_some_and(|since| t >= since + RELEASE_AFTER)
            {
                self.idle_since = None;
                if !std::mem::take(&mut self.busy_since_idle) {
                    state.conn.release_transmit_buffers();
                    self.io.release_buffers();
                }
            }
            state.conn.handle_timeout(t);
            state.process_events();
            self.timer_deadline = None;
        }
    }
}

impl<T: Io> Future for Driver<T> {
    type Output = Result<(), WispError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut yield_now = this.poll_read(cx);
        this.poll_timer(cx);
        if this.write_error.is_none() {
            match this.poll_write(cx) {
                Ok(exhausted) => yield_now |= exhausted,
                Err(e) => yield_now |= this.write_failed(cx, e),
            }
        }
        this.settle_write_error(cx);
        let mut state = this.shared.lock();
        if let Some(error) = state.conn.error().cloned() {
            // Closing: flush what is left (CLOSE packets), then close the WebSocket, bounded.
            // After a write error nothing more can be sent: only the close is tried.
            let pending = this.write_error.is_none()
                && (this.io.is_pending() || state.conn.queued_bytes() > 0);
            state.driver_waker = Some(cx.waker().clone());
            drop(state);
            let deadline = *this
                .closing_deadline
                .get_or_insert_with(|| tokio::time::Instant::now().checked_add(this.close_timeout));
            let timed_out = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
            if !timed_out {
                if let Some(deadline) = deadline
                    && this.timer_deadline.is_none()
                {
                    this.timer.as_mut().reset(deadline);
                    this.timer_deadline = Some(deadline.into_std());
                    let _ = this.timer.as_mut().poll(cx);
                }
                if pending {
                    if yield_now {
                        cx.waker().wake_by_ref();
                    }
                    return Poll::Pending;
                }
                if this.io.poll_close(cx).is_pending() {
                    return Poll::Pending;
                }
            }
            return Poll::Ready(match error {
                proto::Error::ClosedLocally => Ok(()),
                other => Err(other.into()),
            });
        }
        state.driver_waker = Some(cx.waker().clone());
        // A writer on another worker thread may have queued a packet after `poll_write`
        // emptied the queue but before the waker above was stored: its `wake_driver` found
        // no waker. Unless the transport is what we wait for (packets taken and not yet
        // out) or has failed, look again rather than sleep on a non-empty queue.
        let queued_meanwhile =
            this.write_error.is_none() && !this.io.is_pending() && state.conn.queued_bytes() > 0;
        // Nothing to send: time the release of buffers a burst left large.
        let idle = !this.io.is_pending() && state.conn.queued_bytes() == 0;
        let large = state.conn.transmit_capacity() + this.io.buffer_capacity() > KEEP_IDLE;
        drop(state);
        if !idle {
            this.busy_since_idle = true;
        } else if large && this.idle_since.is_none() {
            this.idle_since = Some(now());
            this.busy_since_idle = false;
            this.poll_timer(cx);
        }
        if yield_now || queued_meanwhile {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}
