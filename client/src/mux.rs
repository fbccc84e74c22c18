//! [`ClientMux`], the handle applications hold, and [`MuxResult`], what the handshake
//! returns. The state they share is in `shared`, the task that moves bytes in `driver`.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

use crate::WispError;
use crate::alloc::keep_freed_packets_in_the_heap;
use crate::driver::{Driver, FrameIo, Io, MessageIo, MultiplexorActorFuture};
use crate::extensions::WispV2Handshake;
use crate::proto::{
    ClientConnection, CloseReason, ExtensionId, Framing, MaskKeys, MuxOptions, Negotiated,
    NegotiatedExtension, StreamType, WispVersion,
};
use crate::shared::{Shared, StreamSlot, now};
use crate::stream::MuxStream;
use crate::transport::{
    BatchedStream, ConnectOptions, TokioWebsocketsTransport, TransportRead, TransportWrite, connect,
};

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
        let required: Vec<ExtensionId> = extensions.iter().copied().map(ExtensionId).collect();
        let result = {
            let mut state = self.mux.shared.lock();
            let result = state.conn.require_extensions(&required);
            state.process_events();
            state.wake_driver();
            result
        };
        match result {
            Ok(()) => Ok((self.mux, self.actor)),
            Err(e) => {
                let _ = self.actor.await;
                Err(e.into())
            }
        }
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
        rx: R,
        tx: W,
        wisp_v2: Option<WispV2Handshake>,
        options: MuxOptions,
    ) -> Result<MuxResult, WispError> {
        // Every packet the sink takes is its own allocation: keep the heap from shrinking
        // and growing again around each burst.
        keep_freed_packets_in_the_heap(options.max_queued_bytes + 2 * options.max_payload_len);
        let conn = ClientConnection::new(wisp_v2, options, now());
        Self::start(conn, MessageIo::new(rx, tx)).await
    }

    /// Runs the handshake over a tokio-websockets WebSocket that the driver then owns
    /// whole: the fast path [`ClientMux::connect`] takes. Writers encode their DATA as
    /// finished masked frames into one reused batch, which the driver writes to the socket
    /// as it is (see [`BatchedStream`]): no allocation or lock per packet beyond the
    /// connection's own.
    ///
    /// Build the WebSocket over [`BatchedStream::new`] of the socket, with a client-role
    /// tokio-websockets builder; [`crate::transport::connect`] also puts
    /// [`DeferWriteErrors`](crate::transport::DeferWriteErrors) between the two, so a write
    /// racing the server's close does not hide the server's CLOSE.
    pub async fn new_websocket<S>(
        transport: TokioWebsocketsTransport<BatchedStream<S>>,
        wisp_v2: Option<WispV2Handshake>,
        options: MuxOptions,
    ) -> Result<MuxResult, WispError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let conn = ClientConnection::new(wisp_v2, options, now())
            .with_framing(Framing::WebSocketClient(MaskKeys::default()));
        Self::start(conn, FrameIo::new(transport)).await
    }

    /// Runs the handshake of `conn` over `io` and hands out the mux and its driver.
    async fn start(conn: ClientConnection, io: impl Io) -> Result<MuxResult, WispError> {
        let close_timeout = conn.options().close_timeout;
        let shared = Arc::new(Shared::new(conn));
        let mut driver = Driver::new(shared.clone(), io, close_timeout);
        driver.handshake().await?;
        let negotiated = shared.lock().conn.negotiated().cloned();
        let negotiated = Arc::new(negotiated.ok_or(WispError::MuxTaskEnded)?);
        Ok(MuxResult {
            mux: ClientMux { shared, negotiated },
            actor: Box::pin(driver),
        })
    }

    /// Opens a WebSocket to `url` (offering `Sec-WebSocket-Protocol: wisp-v2` when `wisp_v2`
    /// is `Some`) and runs the handshake over it ([`ClientMux::new_websocket`]). Opening the
    /// WebSocket is bounded by [`MuxOptions::connect_timeout`] ([`WispError::ConnectTimedOut`]
    /// names the step that was still running: TCP, TLS or the upgrade), the Wisp handshake
    /// after it by [`MuxOptions::handshake_timeout`].
    pub async fn connect(
        url: &str,
        wisp_v2: Option<WispV2Handshake>,
        options: MuxOptions,
    ) -> Result<MuxResult, WispError> {
        let connect_options = if wisp_v2.is_some() {
            ConnectOptions::v2()
        } else {
            ConnectOptions::v1()
        }
        .timeout(options.connect_timeout);
        let connection = connect(url, &connect_options).await?;
        Self::new_websocket(connection.transport, wisp_v2, options).await
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
        self.shared
            .lock()
            .conn
            .error()
            .cloned()
            .map(WispError::from)
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
            state.streams.insert(id, StreamSlot::new());
            state.user_refs += 1;
            let confirmation = if state.conn.is_opening(id) {
                let (tx, rx) = oneshot::channel();
                state.opening.insert(id, tx);
                Some(rx)
            } else {
                None
            };
            state.wake_driver();
            (id, confirmation, state.conn.options().payload_limit())
        };
        let stream = MuxStream::new(self.shared.clone(), id, stream_type, max_payload);
        if let Some(rx) = confirmation {
            rx.await.map_err(|_| WispError::MuxMessageFailedToRecv)??;
        }
        Ok(stream)
    }

    /// Closes the connection without a CLOSE packet: every stream ends, the WebSocket is
    /// closed, and the driver future completes. Closing a connection that is already over
    /// (closed by the server, by a failure, or by an earlier close) is `Ok` and changes
    /// nothing: why it ended stays in [`ClientMux::close_error`].
    pub async fn close(&self) -> Result<(), WispError> {
        self.close_inner(None)
    }

    /// Sends CLOSE(0, reason), then closes the connection like [`ClientMux::close`]. On a
    /// connection that is already over nothing is sent and the result is `Ok`.
    pub async fn close_with_reason(&self, reason: CloseReason) -> Result<(), WispError> {
        self.close_inner(Some(reason))
    }

    /// Closes the connection; one already over is left as it is.
    fn close_inner(&self, reason: Option<CloseReason>) -> Result<(), WispError> {
        let mut state = self.shared.lock();
        if state.conn.error().is_some() {
            return Ok(());
        }
        state.conn.close(reason);
        state.process_events();
        state.wake_driver();
        Ok(())
    }
}
