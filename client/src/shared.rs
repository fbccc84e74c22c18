//! The state shared by the driver, the mux handle and the streams: one [`ClientConnection`]
//! plus the application side of each stream (received data, wakers, how it ended), behind
//! one mutex (the quinn pattern).
//!
//! A stream write takes the lock, asks the connection to queue a DATA packet (which checks
//! credit), and wakes the driver; the driver takes the lock, moves queued packets to the
//! WebSocket in batches and feeds received messages in. Because credit checks and waker
//! registration happen under the same lock as credit updates, no wake-up can be lost.

use std::collections::VecDeque;
use std::task::Waker;

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use tokio::sync::oneshot;

use crate::WispError;
use crate::proto::idmap::IdMap;
use crate::proto::reclaim::Reclaim;
use crate::proto::{ClientConnection, CloseReason, Event};
use crate::stream::StreamEnd;

/// Per-stream state on the application side of the lock.
#[derive(Debug)]
pub(crate) struct StreamSlot {
    pub(crate) recv: VecDeque<Bytes>,
    pub(crate) read_waker: Option<Waker>,
    pub(crate) write_waker: Option<Waker>,
    pub(crate) end: Option<StreamEnd>,
    /// Live handles (read half + write half); the stream is closed when both are gone.
    pub(crate) handles: u8,
}

/// Everything behind the lock.
pub(crate) struct State {
    pub(crate) conn: ClientConnection,
    pub(crate) streams: IdMap<StreamSlot>,
    /// Streams waiting for their open confirmation, and who waits.
    pub(crate) opening: IdMap<oneshot::Sender<Result<(), WispError>>>,
    pub(crate) driver_waker: Option<Waker>,
    /// `ClientMux` clones plus live stream slots: when none is left, the connection closes.
    pub(crate) user_refs: usize,
}

impl State {
    /// Routes the connection's events to the stream slots and waiters.
    pub(crate) fn process_events(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            match event {
                Event::StreamOpened { id } => {
                    if let Some(tx) = self.take_opening(id) {
                        let _ = tx.send(Ok(()));
                    }
                }
                Event::StreamOpenFailed { id, error } => {
                    let error = WispError::from(error);
                    if let Some(slot) = self.streams.get_mut(&id) {
                        slot.end = Some(StreamEnd::OpenFailed(error.clone()));
                    }
                    if let Some(tx) = self.take_opening(id) {
                        let _ = tx.send(Err(error));
                    }
                }
                Event::StreamData { id, data } => {
                    if let Some(slot) = self.streams.get_mut(&id) {
                        slot.recv.push_back(data);
                        if let Some(w) = slot.read_waker.take() {
                            w.wake();
                        }
                    }
                }
                Event::StreamWritable { id } => {
                    if let Some(w) = self.streams.get_mut(&id).and_then(|s| s.write_waker.take()) {
                        w.wake();
                    }
                }
                Event::StreamClosed {
                    id,
                    reason,
                    initiator,
                } => {
                    if let Some(slot) = self.streams.get_mut(&id) {
                        slot.end = Some(StreamEnd::Closed { reason, initiator });
                        slot.wake_all();
                    }
                }
                Event::ConnectionClosed(error) => {
                    let error = WispError::from(error);
                    for slot in self.streams.values_mut() {
                        if slot.end.is_none() {
                            slot.end = Some(StreamEnd::ConnectionEnded(error.clone()));
                        }
                        slot.wake_all();
                    }
                    for (_, tx) in self.opening.drain() {
                        let _ = tx.send(Err(error.clone()));
                    }
                    self.opening.reclaim();
                }
            }
        }
    }

    /// The waiter for stream `id`'s open confirmation, removed from the map.
    fn take_opening(&mut self, id: u32) -> Option<oneshot::Sender<Result<(), WispError>>> {
        let tx = self.opening.remove(&id);
        self.opening.reclaim();
        tx
    }

    /// Wakes the driver if the connection has something for it to do.
    #[inline]
    pub(crate) fn wake_driver(&mut self) {
        if let Some(w) = self.driver_waker.take() {
            w.wake();
        }
    }

    /// Registers `waker` to be woken when a blocked write may proceed: the connection
    /// reports [`Event::StreamWritable`] when credit arrives or the stream's queued packets
    /// have gone out.
    pub(crate) fn park_writer(&mut self, id: u32, waker: &Waker) {
        if let Some(slot) = self.streams.get_mut(&id) {
            slot.write_waker = Some(waker.clone());
        }
    }

    /// Drops one handle of stream `id`; the last one closes it (CLOSE 0x02) and frees it.
    pub(crate) fn release_stream_handle(&mut self, id: u32) {
        let Some(slot) = self.streams.get_mut(&id) else {
            return;
        };
        slot.handles = slot.handles.saturating_sub(1);
        if slot.handles > 0 {
            return;
        }
        let open = slot.end.is_none();
        self.streams.remove(&id);
        // After a burst of streams the slots' capacity goes back.
        self.streams.reclaim();
        if open && self.conn.close_stream(id, CloseReason::VOLUNTARY).is_ok() {
            self.process_events();
            self.wake_driver();
        }
        self.release_user_ref();
    }

    /// Drops one user handle (a `ClientMux` clone or a stream); the last one closes the
    /// connection.
    pub(crate) fn release_user_ref(&mut self) {
        self.user_refs = self.user_refs.saturating_sub(1);
        if self.user_refs == 0 {
            self.conn.close(None);
            self.process_events();
            self.wake_driver();
        }
    }
}

impl StreamSlot {
    /// A slot for a stream just opened: both halves alive.
    pub(crate) fn new() -> Self {
        Self {
            recv: VecDeque::new(),
            read_waker: None,
            write_waker: None,
            end: None,
            handles: 2,
        }
    }

    fn wake_all(&mut self) {
        if let Some(w) = self.read_waker.take() {
            w.wake();
        }
        if let Some(w) = self.write_waker.take() {
            w.wake();
        }
    }
}

/// The state shared by the driver, the mux handle and the streams.
pub(crate) struct Shared {
    state: Mutex<State>,
}

impl Shared {
    /// The state, locked. Not poisoned by a panic while held (a parking_lot mutex): a
    /// panic cannot leave the protocol state half-updated in a way that matters more than
    /// losing the connection, and the per-packet write path does no poison bookkeeping.
    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }
}

impl Shared {
    /// Shares `conn` (no stream yet, one user handle: the `ClientMux`).
    pub(crate) fn new(conn: ClientConnection) -> Self {
        Self {
            state: Mutex::new(State {
                conn,
                streams: IdMap::default(),
                opening: IdMap::default(),
                driver_waker: None,
                user_refs: 1,
            }),
        }
    }
}

/// The time the core is fed: tokio's clock, so paused-time tests drive it too.
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
