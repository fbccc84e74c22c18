//! An in-process Wisp server built on the published crates.io `wisp-mux`
//! 5.1.0 `ServerMux`: see [`WispMuxServer`].

use std::collections::HashMap;
use std::io::{self, Cursor};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use fastwebsockets::FragmentCollectorRead;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::timeout;
use wisp_mux::extensions::ProtocolExtensionBuilder;
use wisp_mux::extensions::password::{PasswordProtocolExtension, PasswordProtocolExtensionBuilder};
use wisp_mux::extensions::udp::UdpProtocolExtensionBuilder;
use wisp_mux::{CloseReason, ConnectPacket, MuxStream, ServerMux, StreamType};

use crate::net::{MAX_DATAGRAM, connected_udp};
use crate::targets::TcpService;
use crate::upgrade;

/// Time a client gets to send its complete upgrade request.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound for resolving and connecting one upstream socket; a timeout
/// is reported like any other connect failure (0x42).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes read from an upstream TCP socket per DATA packet at most (the
/// capacity of tokio's `BufReader`, which epoxy-server reads through).
const TCP_READ_CHUNK: usize = 8 * 1024;

/// The extension builders handed to [`ServerMux::create`].
type Builders = Vec<Box<dyn ProtocolExtensionBuilder + Send + Sync>>;

/// How a [`WispMuxServer`] configures each connection's [`ServerMux`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WispMuxConfig {
    /// `true`: pass extension builders to `ServerMux::create` (UDP, plus the
    /// password extension when [`password`](Self::password) is set), which
    /// makes wisp-mux 5.1.0 run its old-draft v2 handshake with every client:
    /// CONTINUE(0), then INFO, then up to 5 s of waiting for the client's INFO
    /// (any other first packet, or the timeout, downgrades to v1 and the
    /// packet is processed normally).
    /// `false`: pass `None`, plain Wisp v1 (only CONTINUE(0)); UDP streams are
    /// still served, as v1.2 makes them mandatory.
    pub v2: bool,
    /// `Some((username, password))`: also offer wisp-mux 5.1.0's
    /// `PasswordProtocolExtensionBuilder::new_server` with this single user,
    /// and require the extension (`with_required_extensions(&[0x02])`): a
    /// client whose INFO lacks a password record gets CLOSE(0, 0x04). Faithful
    /// to 5.1.0, the credentials themselves are never compared, so any
    /// username and password are accepted. Needs [`v2`](Self::v2).
    pub password: Option<(String, String)>,
    /// Per-stream buffer in packets: the credit of the initial CONTINUE(0)
    /// and the capacity of each stream's queue (DATA beyond it is dropped by
    /// wisp-mux). Default 128.
    pub buffer_size: u32,
}

impl Default for WispMuxConfig {
    /// v1, no password, a buffer of 128 packets.
    fn default() -> Self {
        Self {
            v2: false,
            password: None,
            buffer_size: 128,
        }
    }
}

/// A Wisp server on `127.0.0.1` running the published crates.io `wisp-mux`
/// 5.1.0 [`ServerMux`] (epoxy-tls "G1") over fastwebsockets 0.8, in this
/// process.
///
/// It is a third real server target beside wisp-server-python and wisp-js:
/// the multiplexor is the unmodified library; this type only supplies what
/// epoxy-server puts around it — a loopback listener, the HTTP/1.1 WebSocket
/// upgrade (any path; the first offered `Sec-WebSocket-Protocol` value is
/// echoed), and the upstream sockets behind each stream (TCP and UDP, no
/// address filtering). Stream handling mirrors epoxy-server's
/// `handle_stream`: a failed resolve or connect (10 s bound) closes the
/// stream with 0x42, an unknown stream type with 0x41; when the upstream
/// ends the stream is closed with 0x02, on an I/O error with 0x03; a stream
/// the client closed gets no CLOSE back. UDP maps one DATA to one datagram
/// both ways.
///
/// Documented wisp-mux 5.1.0 behaviours are wrapped faithfully, not fixed:
///
/// * v2 is the old draft (CONTINUE(0) first, then INFO, then up to 5 s of
///   waiting for the client's INFO before falling back to v1), offered to
///   every client whether or not it sent `Sec-WebSocket-Protocol`. Its INFO
///   advertises UDP (`01 00000000`) and, with a password, a client-layout
///   password record with empty credentials (`02 03000000 000000`).
/// * The password extension accepts any credentials: only the presence of a
///   password record in the client's INFO is checked (a missing one gets
///   CLOSE(0, 0x04), never 0xC0/0xC2).
/// * DATA beyond a stream's queue (`buffer_size` packets) is silently
///   dropped; a CONTINUE is sent once more than 90 % of the buffer was read.
/// * Every DATA it sends is a fragmented WebSocket message: a 5-byte header
///   frame without FIN, then a continuation frame with the payload.
/// * A CLOSE whose reason byte is outside its table, a text frame, an unknown
///   packet type, a client CONTINUE or a packet shorter than 5 bytes ends the
///   whole connection. A packet of 1–4 bytes where the v2 handshake expects
///   the client's INFO makes wisp-mux panic (`Buf::get_u32_le` without a
///   length check); that ends the connection's task only, never the process.
///
/// Must be started inside a tokio runtime. Dropping it aborts the accept
/// loop, every connection (closing its WebSocket) and every stream (closing
/// its upstream socket).
///
/// ```no_run
/// # async fn demo() -> Result<(), String> {
/// use wisp_testkit::{WispMuxConfig, WispMuxServer};
///
/// let server = WispMuxServer::start(WispMuxConfig {
///     v2: true,
///     ..WispMuxConfig::default()
/// })
/// .await?;
/// println!("connect a Wisp client to {}", server.url());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct WispMuxServer {
    config: WispMuxConfig,
    /// The accept loop; dropping it aborts every connection.
    service: TcpService,
}

impl WispMuxServer {
    /// Binds `127.0.0.1:0` and starts accepting WebSocket connections.
    ///
    /// # Errors
    ///
    /// If [`WispMuxConfig::password`] is set without [`WispMuxConfig::v2`]
    /// (the password extension only exists in v2), or if binding fails.
    pub async fn start(config: WispMuxConfig) -> Result<WispMuxServer, String> {
        if config.password.is_some() && !config.v2 {
            return Err("WispMuxConfig: a password needs v2 (extensions are v2 only)".into());
        }
        let shared = Arc::new(config.clone());
        let service = TcpService::bind(Ipv4Addr::LOCALHOST.into(), move |stream| {
            serve_connection(stream, Arc::clone(&shared))
        })
        .await
        .map_err(|e| format!("bind 127.0.0.1:0 for the wisp-mux server: {e}"))?;
        Ok(WispMuxServer { config, service })
    }

    /// Where it listens (`127.0.0.1:P`).
    pub fn addr(&self) -> SocketAddr {
        self.service.addr()
    }

    /// The WebSocket URL of the Wisp endpoint: `ws://127.0.0.1:P/` (any path
    /// is accepted).
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr())
    }

    /// The configuration it was started with.
    pub fn config(&self) -> &WispMuxConfig {
        &self.config
    }

    /// How many TCP connections it has accepted so far (upgraded or not).
    pub fn connections(&self) -> usize {
        self.service.connections()
    }
}

/// One client connection: upgrade, multiplexor, then one task per stream.
/// Every task it spawns lives in a set owned by this future, so ending or
/// aborting it stops them all. (`TcpService` has set `TCP_NODELAY`.)
async fn serve_connection(mut tcp: TcpStream, config: Arc<WispMuxConfig>) {
    let leftover = match timeout(UPGRADE_TIMEOUT, upgrade(&mut tcp)).await {
        Ok(Ok(leftover)) => leftover,
        Ok(Err(_)) | Err(_) => return,
    };
    let (tcp_read, tcp_write) = tcp.into_split();
    // Bytes that arrived behind the request head are the first WebSocket
    // bytes: read them before the socket.
    let (ws_read, ws_write) = fastwebsockets::after_handshake_split(
        Cursor::new(leftover).chain(tcp_read),
        tcp_write,
        fastwebsockets::Role::Server,
    );
    let ws_read = FragmentCollectorRead::new(ws_read);

    let builders = config.v2.then(|| extension_builders(&config));
    let Ok(created) =
        ServerMux::create(ws_read, ws_write, config.buffer_size, builders.as_deref()).await
    else {
        return;
    };
    let (mux, fut) = if config.password.is_some() {
        // Sends CLOSE(0, 0x04) and ends the multiplexor when the client's
        // INFO had no password record (or there was no INFO at all).
        match created
            .with_required_extensions(&[PasswordProtocolExtension::ID])
            .await
        {
            Ok(parts) => parts,
            Err(_) => return,
        }
    } else {
        created.with_no_required_extensions()
    };

    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        // The error (if any) only says why the connection ended.
        let _ = fut.await;
    });
    loop {
        tokio::select! {
            next = mux.server_new_stream() => match next {
                Some((connect, stream)) => {
                    tasks.spawn(handle_stream(connect, stream));
                }
                // The multiplexor ended: the WebSocket is gone, and so is
                // every stream. Dropping `tasks` closes the upstream sockets.
                None => break,
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

/// UDP, and the password extension when configured, in that order.
fn extension_builders(config: &WispMuxConfig) -> Builders {
    let mut builders: Builders = vec![Box::new(UdpProtocolExtensionBuilder)];
    if let Some((username, password)) = &config.password {
        let users = HashMap::from([(username.clone(), password.clone())]);
        builders.push(Box::new(PasswordProtocolExtensionBuilder::new_server(
            users,
        )));
    }
    builders
}

/// Reads the HTTP/1.1 upgrade request and answers `101 Switching Protocols`,
/// echoing the first offered `Sec-WebSocket-Protocol` (or an error status,
/// returning `Err`). Returns the bytes read past the request head.
async fn upgrade(tcp: &mut TcpStream) -> Result<Vec<u8>, String> {
    let (request, leftover) = upgrade::read_request(tcp).await?;
    upgrade::accept(tcp, &request, request.protocol.as_deref()).await?;
    Ok(leftover)
}

/// Serves one stream the way epoxy-server does.
async fn handle_stream(connect: ConnectPacket, stream: MuxStream) {
    match connect.stream_type {
        StreamType::Tcp => tcp_stream(connect, stream).await,
        StreamType::Udp => udp_stream(connect, stream).await,
        StreamType::Unknown(_) => {
            let _ = stream.close(CloseReason::ServerStreamInvalidInfo).await;
        }
    }
}

/// Connects upstream and copies both ways until either direction ends.
async fn tcp_stream(connect: ConnectPacket, stream: MuxStream) {
    let target = (
        connect.destination_hostname.as_str(),
        connect.destination_port,
    );
    let upstream = match timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
        Ok(Ok(upstream)) => upstream,
        Ok(Err(_)) | Err(_) => {
            let _ = stream.close(CloseReason::ServerStreamUnreachable).await;
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let (mux_read, mux_write) = stream.into_split();
    let closer = mux_write.get_close_handle();

    let to_upstream = async {
        // `None`: the client closed the stream, or the connection ended.
        while let Some(data) = mux_read.read().await {
            upstream_write.write_all(&data).await?;
        }
        upstream_write.flush().await
    };
    let to_client = async {
        let mut buf = vec![0u8; TCP_READ_CHUNK];
        loop {
            let n = upstream_read.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            mux_write.write(&buf[..n]).await.map_err(io::Error::other)?;
        }
    };
    let result: io::Result<()> = tokio::select! {
        result = to_upstream => result,
        result = to_client => result,
    };
    // Already closed when the client closed it: that error is ignored.
    let reason = match result {
        Ok(()) => CloseReason::Voluntary,
        Err(_) => CloseReason::Unexpected,
    };
    let _ = closer.close(reason).await;
}

/// Binds a UDP socket connected to the target: one DATA ⇔ one datagram.
async fn udp_stream(connect: ConnectPacket, stream: MuxStream) {
    let (host, port) = (
        connect.destination_hostname.as_str(),
        connect.destination_port,
    );
    let socket = match timeout(CONNECT_TIMEOUT, connected_udp(host, port)).await {
        Ok(Ok(socket)) => socket,
        Ok(Err(_)) | Err(_) => {
            let _ = stream.close(CloseReason::ServerStreamUnreachable).await;
            return;
        }
    };
    let closer = stream.get_close_handle();
    let result: io::Result<()> = async {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            tokio::select! {
                received = socket.recv(&mut buf) => {
                    let n = received?;
                    stream.write(&buf[..n]).await.map_err(io::Error::other)?;
                }
                data = stream.read() => match data {
                    Some(data) => {
                        socket.send(&data).await?;
                    }
                    None => return Ok(()),
                },
            }
        }
    }
    .await;
    let reason = match result {
        Ok(()) => CloseReason::Voluntary,
        Err(_) => CloseReason::Unexpected,
    };
    let _ = closer.close(reason).await;
}
