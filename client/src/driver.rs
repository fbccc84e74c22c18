//! The driver: the one future that owns the WebSocket and moves bytes between it and the
//! sans-IO [`ClientConnection`](crate::proto::ClientConnection), from the first handshake
//! message to the close. [`crate::ClientMux::new`] polls it through the handshake, then hands
//! it to the caller to spawn.
//!
//! Each poll: read what the transport has ready and feed it in, service the timer, move
//! queued packets into the sink and flush, route the connection's events. When the
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

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};

use crate::WispError;
use crate::proto::{self, TransportError};
use crate::shared::{Shared, now};
use crate::transport::{TransportRead, TransportWrite};

/// The future that drives a multiplexor. The caller must spawn (or otherwise poll) it:
/// nothing moves until it runs. It resolves when the connection ends: `Ok(())` after a local
/// close, otherwise the error that ended it.
pub type MultiplexorActorFuture = Pin<Box<dyn Future<Output = Result<(), WispError>> + Send>>;

/// How many messages the driver handles per poll before yielding to the runtime.
const DRIVER_BUDGET: usize = 128;

/// The driver: the one task that owns the WebSocket.
pub(crate) struct Driver<R, W> {
    shared: Arc<Shared>,
    rx: R,
    tx: W,
    rx_done: bool,
    /// Seen the handshake end: read in batches from then on.
    established: bool,
    /// Packets taken from the connection but not yet accepted by the sink.
    outgoing: VecDeque<Bytes>,
    needs_flush: bool,
    timer: Pin<Box<tokio::time::Sleep>>,
    timer_deadline: Option<std::time::Instant>,
    closing_deadline: Option<tokio::time::Instant>,
    close_timeout: Duration,
    /// The sink failed with this error: nothing more is written, and the connection ends
    /// with it unless the read side yields the server's CLOSE(0) first.
    write_error: Option<WispError>,
    /// How long the read side is given to say why the server went away.
    write_error_wait: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<R, W> Drop for Driver<R, W> {
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

impl<R: TransportRead, W: TransportWrite> Driver<R, W> {
    /// A driver for the connection in `shared`, over `rx`/`tx`.
    pub(crate) fn new(shared: Arc<Shared>, rx: R, tx: W, close_timeout: Duration) -> Self {
        Self {
            shared,
            rx,
            tx,
            rx_done: false,
            established: false,
            outgoing: VecDeque::new(),
            needs_flush: false,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            timer_deadline: None,
            closing_deadline: None,
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
            let flushed =
                self.outgoing.is_empty() && !self.needs_flush && state.conn.queued_bytes() == 0;
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
            match self.rx.poll_next_unpin(cx) {
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

    /// Moves queued packets into the sink and flushes. Returns `Err` on a transport error.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<bool, WispError> {
        let mut budget_left = true;
        loop {
            if self.outgoing.is_empty() {
                let mut state = self.shared.lock();
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

    /// The sink failed: write nothing more, and read on (now, and until the read side ends
    /// or the close timeout passes) for a CLOSE(0) that explains the failure.
    fn write_failed(&mut self, cx: &mut Context<'_>, error: WispError) -> bool {
        self.outgoing.clear();
        self.needs_flush = false;
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
            let mut state = self.shared.lock();
            state.conn.handle_timeout(now());
            state.process_events();
            self.timer_deadline = None;
        }
    }
}

impl<R: TransportRead, W: TransportWrite> Future for Driver<R, W> {
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
                && (!this.outgoing.is_empty() || state.conn.queued_bytes() > 0);
            state.driver_waker = Some(cx.waker().clone());
            drop(state);
            let deadline = *this
                .closing_deadline
                .get_or_insert_with(|| tokio::time::Instant::now() + this.close_timeout);
            let timed_out = tokio::time::Instant::now() >= deadline;
            if !timed_out {
                if this.timer_deadline.is_none() {
                    this.timer.as_mut().reset(deadline);
                    this.timer_deadline = Some(deadline.into_std());
                    let _ = this.timer.as_mut().poll(cx);
                }
                if pending || this.needs_flush {
                    if yield_now {
                        cx.waker().wake_by_ref();
                    }
                    return Poll::Pending;
                }
                if this.tx.poll_close_unpin(cx).is_pending() {
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
        // no waker. Unless the sink is what we wait for (packets still in `outgoing`) or has
        // failed, look again rather than sleep on a non-empty queue.
        let queued_meanwhile =
            this.write_error.is_none() && this.outgoing.is_empty() && state.conn.queued_bytes() > 0;
        drop(state);
        if yield_now || queued_meanwhile {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}
