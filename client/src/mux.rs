//! [`ClientMux`], the handle applications hold, and the driver task that moves bytes between
//! the WebSocket and the sans-IO [`ClientConnection`].
//!
//! All protocol state lives in one [`ClientConnection`] behind one mutex, shared by the driver
//! and every stream handle (the quinn pattern). A stream write takes the lock, asks the
//! connection to queue a DATA packet (which checks credit), and wakes the driver; the driver
//! takes the lock, moves queued packets to the WebSocket in batches and feeds received
//! messages in. Because credit checks and waker registration happen under the same lock as
//! credit updates, no wake-up can be lost.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::sync::oneshot;

use crate::WispError;
use crate::extensions::WispV2Handshake;
use crate::proto::idmap::IdMap;
use crate::proto::{
    ClientConnection, CloseReason, ConnectionConfig, Event, ExtensionId, Initiator, Negotiated,
    NegotiatedExtension, StreamType, WispVersion,
};
use crate::stream::{MuxStream, StreamEnd};
use crate::transport::{ConnectOptions, TransportExt, TransportRead, TransportWrite, connect};

/// The future that drives a multiplexor. The caller must spawn (or otherwise poll) it:
/// nothing moves until it runs. It resolves when the connection ends: `Ok(())` after a local
/// close, otherwise the error that ended it.
pub type MultiplexorActorFuture = Pin<Box<dyn Future<Output = Result<(), WispError>> + Send>>;

/// Tunables of a [`ClientMux`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MuxOptions {
    /// Bound on the whole handshake (`None`: wait forever). Default 10 s.
    pub handshake_timeout: Option<Duration>,
    /// When a v2 handshake receives CONTINUE(0) first, how long to wait for the INFO that
    /// drafts 1–3 servers (wisp-mux 5.x) send next before settling on v1. Default 200 ms.
    pub legacy_info_wait: Duration,
    /// Largest DATA payload sent; longer writes are split (each part takes one credit).
    /// Default 65531 bytes, so a packet fits a 64 KiB server message limit.
    pub max_payload_len: usize,
    /// The first stream id (ids increase by one and are never reused). Default 1.
    pub first_stream_id: u32,
    /// Bound on waiting for a stream-open confirmation. Default 30 s.
    pub stream_open_timeout: Option<Duration>,
    /// Writers block once this many bytes wait for the WebSocket; a stream with nothing
    /// queued may still queue one packet, so every busy stream keeps its turn (queued
    /// streams send one packet each in turn). Default 256 KiB: the kernel's socket buffer
    /// holds the bulk, and a queue that fits the CPU cache is still cache-hot when the
    /// WebSocket layer masks and sends it (with 4 MiB, masking alone took 30 % of the
    /// client's CPU for 64 streams of 1 KiB writes).
    pub max_queued_bytes: usize,
    /// Bound on flushing and closing the WebSocket when the connection ends. Default 5 s.
    pub close_timeout: Duration,
}

impl Default for MuxOptions {
    fn default() -> Self {
        let core = ConnectionConfig::default();
        Self {
            handshake_timeout: core.handshake_timeout,
            legacy_info_wait: core.legacy_info_wait,
            max_payload_len: core.max_payload_len,
            first_stream_id: core.first_stream_id,
            stream_open_timeout: core.stream_open_timeout,
            max_queued_bytes: core.max_queued_bytes,
            close_timeout: Duration::from_secs(5),
        }
    }
}

impl MuxOptions {
    /// Sets [`MuxOptions::handshake_timeout`].
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets [`MuxOptions::legacy_info_wait`].
    pub fn legacy_info_wait(mut self, wait: Duration) -> Self {
        self.legacy_info_wait = wait;
        self
    }

    /// Sets [`MuxOptions::max_payload_len`] (at least 1).
    pub fn max_payload_len(mut self, len: usize) -> Self {
        self.max_payload_len = len.max(1);
        self
    }

    /// Sets [`MuxOptions::first_stream_id`] (0 means 1).
    pub fn first_stream_id(mut self, id: u32) -> Self {
        self.first_stream_id = id;
        self
    }

    /// Sets [`MuxOptions::stream_open_timeout`].
    pub fn stream_open_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.stream_open_timeout = timeout;
        self
    }

    /// Sets [`MuxOptions::max_queued_bytes`].
    pub fn max_queued_bytes(mut self, bytes: usize) -> Self {
        self.max_queued_bytes = bytes;
        self
    }

    /// Sets [`MuxOptions::close_timeout`].
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    fn core_config(&self, v2: Option<WispV2Handshake>) -> ConnectionConfig {
        ConnectionConfig {
            v2: v2.map(WispV2Handshake::into_config),
            handshake_timeout: self.handshake_timeout,
            legacy_info_wait: self.legacy_info_wait,
            max_payload_len: self.max_payload_len,
            first_stream_id: self.first_stream_id,
            stream_open_timeout: self.stream_open_timeout,
            max_queued_bytes: self.max_queued_bytes,
        }
    }
}

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
    opening: IdMap<oneshot::Sender<Result<(), WispError>>>,
    driver_waker: Option<Waker>,
    /// `ClientMux` clones plus live stream slots: when none is left, the connection closes.
    user_refs: usize,
}

impl State {
    /// Routes the connection's events to the stream slots and waiters.
    pub(crate) fn process_events(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            match event {
                Event::StreamOpened { id } => {
                    if let Some(tx) = self.opening.remove(&id) {
                        let _ = tx.send(Ok(()));
                    }
                }
                Event::StreamOpenFailed { id, error } => {
                    if let Some(slot) = self.streams.get_mut(&id) {
                        slot.end = Some(StreamEnd::OpenFailed(error.clone()));
                    }
                    if let Some(tx) = self.opening.remove(&id) {
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
                    for slot in self.streams.values_mut() {
                        if slot.end.is_none() {
                            slot.end = Some(StreamEnd::ConnectionEnded(error.clone()));
                        }
                        slot.wake_all();
                    }
                    for (_, tx) in self.opening.drain() {
                        let _ = tx.send(Err(error.clone()));
                    }
                }
            }
        }
    }

    /// Wakes the driver if the connection has something for it to do.
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
        if open && self.conn.close_stream(id, CloseReason::VOLUNTARY).is_ok() {
            self.process_events();
            self.wake_driver();
        }
        self.release_user_ref();
    }

    fn release_user_ref(&mut self) {
        self.user_refs = self.user_refs.saturating_sub(1);
        if self.user_refs == 0 {
            self.conn.close(None);
            self.process_events();
            self.wake_driver();
        }
    }
}

impl StreamSlot {
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
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the protocol state half-updated in a
        // way that matters more than losing the connection, so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The result of [`ClientMux::new`]: the multiplexor and its driver future, plus the
/// familiar after-handshake extension check.
#[must_use = "the actor future must be spawned for the multiplexor to work"]
pub struct MuxResult {
    mux: ClientMux,
    actor: MultiplexorActorFuture,
}

impl std::fmt::Debug for MuxResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxResult")
            .field("mux", &self.mux)
            .finish_non_exhaustive()
    }
}

impl MuxResult {
    /// Accepts whatever was negotiated.
    pub fn with_no_required_extensions(self) -> (ClientMux, MultiplexorActorFuture) {
        (self.mux, self.actor)
    }

    /// Checks that every id in `extensions` was negotiated. If one is missing, sends
    /// CLOSE(0, 0x04), runs the driver to completion (so the CLOSE is flushed) and returns
    /// [`WispError::ExtensionsNotSupported`] with the missing ids.
    pub async fn with_required_extensions(
        self,
        extensions: &[u8],
    ) -> Result<(ClientMux, MultiplexorActorFuture), WispError> {
        let negotiated = self.mux.extension_ids();
        let missing: Vec<u8> = extensions
            .iter()
            .copied()
            .filter(|id| !negotiated.contains(id))
            .collect();
        if missing.is_empty() {
            return Ok((self.mux, self.actor));
        }
        self.mux
            .close_now(Some(CloseReason::EXTENSIONS_INCOMPATIBLE));
        let _ = self.actor.await;
        Err(WispError::ExtensionsNotSupported(missing))
    }

    /// Shorthand for requiring the UDP extension.
    pub async fn with_udp_extension_required(
        self,
    ) -> Result<(ClientMux, MultiplexorActorFuture), WispError> {
        self.with_required_extensions(&[ExtensionId::UDP.0]).await
    }
}

/// A Wisp client multiplexor: many TCP and UDP streams over one WebSocket.
///
/// Cheap to clone; the connection closes when the mux and every stream are dropped, or on
/// [`ClientMux::close`].
pub struct ClientMux {
    shared: Arc<Shared>,
    negotiated: Arc<Negotiated>,
}

impl std::fmt::Debug for ClientMux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientMux")
            .field("negotiated", &self.negotiated)
            .finish_non_exhaustive()
    }
}

impl Clone for ClientMux {
    fn clone(&self) -> Self {
        self.shared.lock().user_refs += 1;
        Self {
            shared: self.shared.clone(),
            negotiated: self.negotiated.clone(),
        }
    }
}

impl Drop for ClientMux {
    fn drop(&mut self) {
        self.shared.lock().release_user_ref();
    }
}

impl ClientMux {
    /// Runs the handshake over `rx`/`tx` with default [`MuxOptions`]. `None` speaks Wisp v1;
    /// `Some` asks for v2 and falls back to v1 when the server answers as v1 (see
    /// [`ClientMux::was_downgraded`]).
    ///
    /// For v2, the WebSocket must have been opened with a `Sec-WebSocket-Protocol` header
    /// (draft 5+ servers speak v2 only then); [`ClientMux::connect`] does that.
    #[allow(clippy::new_ret_no_self)] // the familiar wisp-mux signature
    pub async fn new<R: TransportRead, W: TransportWrite>(
        rx: R,
        tx: W,
        wisp_v2: Option<WispV2Handshake>,
    ) -> Result<MuxResult, WispError> {
        Self::new_with_options(rx, tx, wisp_v2, MuxOptions::default()).await
    }

    /// [`ClientMux::new`] with explicit options.
    pub async fn new_with_options<R: TransportRead, W: TransportWrite>(
        mut rx: R,
        mut tx: W,
        wisp_v2: Option<WispV2Handshake>,
        options: MuxOptions,
    ) -> Result<MuxResult, WispError> {
        let mut conn = ClientConnection::new(options.core_config(wisp_v2), now());
        while conn.is_handshaking() {
            flush_transmit(&mut conn, &mut tx).await?;
            let next = match conn.poll_timeout() {
                Some(deadline) => match tokio::time::timeout_at(deadline.into(), rx.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        conn.handle_timeout(now());
                        continue;
                    }
                },
                None => rx.next().await,
            };
            match next {
                Some(Ok(msg)) => conn.handle_message(msg, now()),
                Some(Err(e)) => conn.handle_transport_closed(Some(e)),
                None => conn.handle_transport_closed(None),
            }
        }
        if let Some(error) = conn.error().cloned() {
            // Send what the rejection queued (CLOSE 0) and close the WebSocket, bounded.
            let _ = tokio::time::timeout(options.close_timeout, async {
                let _ = flush_transmit(&mut conn, &mut tx).await;
                let _ = tx.close().await;
            })
            .await;
            return Err(error);
        }
        // A client INFO answering a drafts 1-3 server goes out now, not when the driver starts.
        flush_transmit(&mut conn, &mut tx).await?;
        let negotiated = Arc::new(conn.negotiated().cloned().ok_or(WispError::MuxTaskEnded)?);
        while let Some(_event) = conn.poll_event() {}
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                conn,
                streams: IdMap::default(),
                opening: IdMap::default(),
                driver_waker: None,
                user_refs: 1,
            }),
        });
        keep_freed_packets_in_the_heap(options.max_queued_bytes + 2 * options.max_payload_len);
        let driver = Driver {
            shared: shared.clone(),
            rx,
            tx,
            rx_done: false,
            outgoing: VecDeque::new(),
            needs_flush: false,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            timer_deadline: None,
            closing_deadline: None,
            close_timeout: options.close_timeout,
        };
        Ok(MuxResult {
            mux: ClientMux { shared, negotiated },
            actor: Box::pin(driver),
        })
    }

    /// Opens a WebSocket to `url` (offering `Sec-WebSocket-Protocol: wisp-v2` when `wisp_v2`
    /// is `Some`) and runs the handshake.
    pub async fn connect(
        url: &str,
        wisp_v2: Option<WispV2Handshake>,
        options: MuxOptions,
    ) -> Result<MuxResult, WispError> {
        let connect_options = if wisp_v2.is_some() {
            ConnectOptions::v2()
        } else {
            ConnectOptions::v1()
        };
        let connection = connect(url, &connect_options).await?;
        let (rx, tx) = connection.transport.split_fast();
        Self::new_with_options(rx, tx, wisp_v2, options).await
    }

    /// Whether v2 was requested and the server answered as v1.
    pub fn was_downgraded(&self) -> bool {
        self.negotiated.downgraded
    }

    /// The protocol version spoken (1.2 on v1 and downgraded connections).
    pub fn version(&self) -> WispVersion {
        self.negotiated.version
    }

    /// The extensions both sides agreed on. v1 connections report UDP (mandatory in v1.2).
    pub fn get_extensions(&self) -> &[NegotiatedExtension] {
        &self.negotiated.extensions
    }

    /// The ids of the agreed extensions.
    pub fn get_extension_ids(&self) -> Vec<u8> {
        self.extension_ids()
    }

    fn extension_ids(&self) -> Vec<u8> {
        self.negotiated
            .extensions
            .iter()
            .map(|e| e.id().0)
            .collect()
    }

    /// The server's message of the day, when the MOTD extension was agreed.
    pub fn motd(&self) -> Option<&str> {
        self.negotiated.motd()
    }

    /// The per-stream credit the server granted in the handshake.
    pub fn initial_credit(&self) -> u32 {
        self.negotiated.initial_credit
    }

    /// The full handshake outcome.
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// How many streams the mux tracks (open, or opening and not yet confirmed). A stream
    /// leaves as soon as it is closed by either side, so this is 0 when none is in use.
    pub fn stream_count(&self) -> usize {
        self.shared.lock().conn.stream_count()
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().conn.error().is_some()
    }

    /// The error that ended the connection, once it has ended.
    pub fn close_error(&self) -> Option<WispError> {
        self.shared.lock().conn.error().cloned()
    }

    /// Opens a stream to `host:port`. UDP needs the UDP extension
    /// ([`WispError::ExtensionsNotSupported`] otherwise). With stream-open confirmation
    /// negotiated, waits for the server's CONTINUE (or CLOSE, as
    /// [`WispError::StreamRefused`]) before returning.
    pub async fn new_stream(
        &self,
        stream_type: StreamType,
        host: impl AsRef<str>,
        port: u16,
    ) -> Result<MuxStream, WispError> {
        let (id, confirmation, max_payload) = {
            let mut state = self.shared.lock();
            let id = state
                .conn
                .open_stream(stream_type, host.as_ref(), port, now())?;
            state.streams.insert(
                id,
                StreamSlot {
                    recv: VecDeque::new(),
                    read_waker: None,
                    write_waker: None,
                    end: None,
                    handles: 2,
                },
            );
            state.user_refs += 1;
            let confirmation = if state.conn.is_opening(id) {
                let (tx, rx) = oneshot::channel();
                state.opening.insert(id, tx);
                Some(rx)
            } else {
                None
            };
            state.wake_driver();
            (id, confirmation, state.conn.config().max_payload_len)
        };
        let stream = MuxStream::new(self.shared.clone(), id, stream_type, max_payload);
        if let Some(rx) = confirmation {
            rx.await.map_err(|_| WispError::MuxMessageFailedToRecv)??;
        }
        Ok(stream)
    }

    /// Closes the connection without a CLOSE packet: every stream ends, the WebSocket is
    /// closed, and the driver future completes.
    pub async fn close(&self) -> Result<(), WispError> {
        self.close_inner(None)
    }

    /// Sends CLOSE(0, reason), then closes the connection like [`ClientMux::close`].
    pub async fn close_with_reason(&self, reason: CloseReason) -> Result<(), WispError> {
        self.close_inner(Some(reason))
    }

    fn close_inner(&self, reason: Option<CloseReason>) -> Result<(), WispError> {
        let mut state = self.shared.lock();
        if state.conn.error().is_some() {
            return Err(WispError::MuxMessageFailedToSend);
        }
        state.conn.close(reason);
        state.process_events();
        state.wake_driver();
        Ok(())
    }

    fn close_now(&self, reason: Option<CloseReason>) {
        let _ = self.close_inner(reason);
    }
}

/// Keeps glibc from handing the memory of sent packets back to the kernel after every burst.
///
/// Every queued DATA packet is its own allocation (the WebSocket layer masks it in place and
/// frees it once written), so a busy stream allocates and frees up to
/// [`MuxOptions::max_queued_bytes`] in waves. With glibc's default 128 KiB trim threshold,
/// each wave that drains the queue returns the top of the heap to the kernel (`madvise`)
/// and the next one faults it back in page by page: in wisp-bench that took 40 % of the
/// client's CPU and cut one stream of 60 KiB writes from ~6 GiB/s to ~1.6 GiB/s.
///
/// glibc raises its mmap threshold, and the trim threshold to twice that, when a block
/// above the current mmap threshold is freed (mallopt(3), "dynamic mmap threshold"). Freeing
/// one untouched block of the queue's size (at least 4 MiB) once per process therefore lets
/// the heap keep a queue's worth of freed packets for reuse (up to twice the block stays
/// mapped instead of being trimmed), without `unsafe` or a `mallopt` call. Other
/// allocators just allocate and free the block; nothing is written to it, so no page is
/// touched either way.
fn keep_freed_packets_in_the_heap(queue_bytes: usize) {
    /// glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: larger blocks do not move the threshold.
    const MAX: usize = 32 * 1024 * 1024;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // At least 4 MiB: besides the queue limit, every busy stream may have one packet
        // queued (64 streams of 60 KiB writes: 3.75 MiB).
        let block: Vec<u8> = Vec::with_capacity(queue_bytes.clamp(4 * 1024 * 1024, MAX - 4096));
        drop(std::hint::black_box(block));
    });
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Sends everything the connection queued, during the handshake.
async fn flush_transmit<W: TransportWrite>(
    conn: &mut ClientConnection,
    tx: &mut W,
) -> Result<(), WispError> {
    let mut sent = false;
    while let Some(msg) = conn.poll_transmit() {
        tx.feed(msg).await?;
        sent = true;
    }
    if sent {
        tx.flush().await?;
    }
    Ok(())
}

/// How many messages the driver handles per poll before yielding to the runtime.
const DRIVER_BUDGET: usize = 128;

/// The driver: the one task that owns the WebSocket.
struct Driver<R, W> {
    shared: Arc<Shared>,
    rx: R,
    tx: W,
    rx_done: bool,
    /// Packets taken from the connection but not yet accepted by the sink.
    outgoing: VecDeque<Bytes>,
    needs_flush: bool,
    timer: Pin<Box<tokio::time::Sleep>>,
    timer_deadline: Option<std::time::Instant>,
    closing_deadline: Option<tokio::time::Instant>,
    close_timeout: Duration,
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
                .handle_transport_closed(Some(WispError::MuxTaskEnded));
            state.process_events();
        }
    }
}

impl<R: TransportRead, W: TransportWrite> Driver<R, W> {
    /// Reads what the transport has ready and feeds it to the connection. Returns whether
    /// the budget ran out.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> bool {
        if self.rx_done {
            return false;
        }
        let mut batch = Vec::new();
        let mut end = None;
        while batch.len() < DRIVER_BUDGET {
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
        let exhausted = batch.len() == DRIVER_BUDGET;
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
        let write_result = this.poll_write(cx);
        let mut state = this.shared.lock();
        match write_result {
            Ok(exhausted) => yield_now |= exhausted,
            Err(e) => {
                state.conn.handle_transport_closed(Some(e));
                state.process_events();
                this.outgoing.clear();
            }
        }
        if let Some(error) = state.conn.error().cloned() {
            // Closing: flush what is left (CLOSE packets), then close the WebSocket, bounded.
            let pending = !this.outgoing.is_empty() || state.conn.queued_bytes() > 0;
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
                WispError::ClosedLocally => Ok(()),
                other => Err(other),
            });
        }
        state.driver_waker = Some(cx.waker().clone());
        // A writer on another worker thread may have queued a packet after `poll_write`
        // emptied the queue but before the waker above was stored: its `wake_driver` found
        // no waker. Unless the sink is what we wait for (packets still in `outgoing`), look
        // again rather than sleep on a non-empty queue.
        let queued_meanwhile = this.outgoing.is_empty() && state.conn.queued_bytes() > 0;
        drop(state);
        if yield_now || queued_meanwhile {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl StreamEnd {
    /// Whether the server ended the stream.
    pub fn initiator(&self) -> Option<Initiator> {
        match self {
            StreamEnd::Closed { initiator, .. } => Some(*initiator),
            _ => None,
        }
    }
}
