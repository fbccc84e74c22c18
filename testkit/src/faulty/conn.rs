//! One client connection of a [`FaultyServer`](super::FaultyServer): the
//! WebSocket upgrade, the handshake in the configured order, authentication,
//! and the packet loop that opens, feeds and closes streams.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_websockets::{Message, ServerBuilder, WebSocketStream};
use wisp_client::proto::{
    CloseReason, ConnectPacket, ExtensionId, ExtensionRecord, HEADER_LEN, InfoPacket, Packet,
    PacketBody, PacketType, PasswordClientRecord, PasswordLayout, PasswordServerRecord, StreamType,
    WispVersion, encode_data,
};

use super::config::{Handshake, hex};
use super::stream::{self, Inbox};
use super::{Shared, halt};
use crate::upgrade::{self, Prefixed};

/// Time a client gets to send its complete upgrade request.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client gets to finish the handshake (send its INFO, or a first
/// packet) once the WebSocket is open.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time the last packets and the WebSocket close get to leave when a
/// connection ends.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Packets waiting for the WebSocket writer; senders wait beyond it.
const OUT_QUEUE: usize = 256;
/// Bytes of a packet shown in the log.
const LOGGED_BYTES: usize = 24;

type Ws = WebSocketStream<Prefixed<TcpStream>>;

/// Serves one TCP connection from upgrade to end.
pub(super) async fn serve_connection(
    mut tcp: TcpStream,
    peer: SocketAddr,
    id: u64,
    shared: Arc<Shared>,
) {
    let _ = tcp.set_nodelay(true);
    let tag = format!("conn {id}");
    let (request, leftover) = match timeout(UPGRADE_TIMEOUT, upgrade::read_request(&mut tcp)).await
    {
        Ok(Ok(read)) => read,
        Ok(Err(e)) => {
            shared.log(format!("{tag} from {peer}: no upgrade: {e}"));
            return;
        }
        Err(_) => {
            shared.log(format!(
                "{tag} from {peer}: no upgrade request within {UPGRADE_TIMEOUT:?}"
            ));
            return;
        }
    };
    let config = &shared.config;
    let offered = request.protocol.clone();
    let speaks = match (&offered, config.subprotocol_lie) {
        (Some(_), false) => config.effective_handshake(),
        _ => Handshake::V1,
    };
    let echoed = offered
        .as_deref()
        .filter(|_| config.subprotocol_lie || config.effective_handshake() != Handshake::V1);
    if let Err(e) = upgrade::accept(&mut tcp, &request, echoed).await {
        shared.log(format!("{tag} from {peer}: {e}"));
        return;
    }
    let lie = if config.subprotocol_lie && echoed.is_some() {
        " (subprotocol-lie: echoed, but speaking v1)"
    } else {
        ""
    };
    shared.log(format!(
        "{tag} from {peer}: upgraded; offered {offered:?}, echoed {echoed:?}; speaking {speaks}{lie}"
    ));

    let ws = ServerBuilder::new().serve(Prefixed::new(leftover, tcp));
    let (sink, mut incoming) = ws.split();
    let (tx, rx) = mpsc::channel(OUT_QUEUE);
    let writer_shared = Arc::clone(&shared);
    let mut writer = tokio::spawn(async move {
        let inner = Arc::clone(&writer_shared);
        inner.until_frozen(write_loop(sink, rx)).await;
    });
    let wire = Wire {
        tx,
        pad_close: config.pad_close,
        pad_continue: config.pad_continue,
    };
    let mut conn = Connection {
        shared: Arc::clone(&shared),
        tag,
        wire,
        phase: Phase::Open,
        streams: HashMap::new(),
        tasks: JoinSet::new(),
        next_generation: 0,
    };
    conn.run(speaks, &mut incoming).await;
    let tag = conn.tag.clone();
    // Dropping the connection aborts its streams and drops every sender, so
    // the writer ends once it has sent what is queued.
    drop(conn);
    if timeout(CLOSE_FLUSH_TIMEOUT, &mut writer).await.is_err() {
        writer.abort();
    }
    shared.log(format!("{tag}: ended"));
}

/// What the writer task sends.
#[derive(Debug)]
enum Out {
    /// One WebSocket binary message (one packet).
    Message(Bytes),
    /// A WebSocket close frame, after which the writer stops.
    CloseWebSocket,
}

/// Sends every queued message in order, flushing when the queue is empty.
async fn write_loop(mut sink: SplitSink<Ws, Message>, mut rx: mpsc::Receiver<Out>) {
    while let Some(out) = rx.recv().await {
        match out {
            Out::Message(bytes) => {
                if sink.feed(Message::binary(bytes)).await.is_err() {
                    return;
                }
            }
            Out::CloseWebSocket => {
                let _ = sink.close().await;
                return;
            }
        }
        if rx.is_empty() && sink.flush().await.is_err() {
            return;
        }
    }
    let _ = sink.flush().await;
}

/// The sending side of a connection: encodes packets (padding CLOSE and
/// CONTINUE when configured) and queues them for the writer.
#[derive(Clone, Debug)]
pub(super) struct Wire {
    tx: mpsc::Sender<Out>,
    pad_close: usize,
    pad_continue: usize,
}

impl Wire {
    /// Queues `packet`; `false` once the connection is gone.
    pub(super) async fn send(&self, packet: &Packet) -> bool {
        let pad = match packet.packet_type() {
            PacketType::CLOSE => self.pad_close,
            PacketType::CONTINUE => self.pad_continue,
            _ => 0,
        };
        let mut out = BytesMut::with_capacity(packet.encoded_len() + pad);
        packet.encode(&mut out);
        out.put_bytes(0, pad);
        self.tx.send(Out::Message(out.freeze())).await.is_ok()
    }

    /// Queues a DATA packet; `false` once the connection is gone.
    pub(super) async fn data(&self, stream_id: u32, payload: &[u8]) -> bool {
        self.tx
            .send(Out::Message(encode_data(stream_id, payload)))
            .await
            .is_ok()
    }

    /// Queues a CONTINUE packet.
    pub(super) async fn continue_(&self, stream_id: u32, buffer_remaining: u32) -> bool {
        self.send(&Packet::continue_(stream_id, buffer_remaining))
            .await
    }

    /// Queues a CLOSE packet.
    pub(super) async fn close(&self, stream_id: u32, reason: CloseReason) -> bool {
        self.send(&Packet::close(stream_id, reason)).await
    }

    /// Queues the WebSocket close frame.
    async fn close_websocket(&self) {
        let _ = self.tx.send(Out::CloseWebSocket).await;
    }
}

/// Where the handshake stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Draft 6: the server's INFO is sent; CONTINUE(0) waits for the client's
    /// INFO.
    InfoBeforeContinue,
    /// CONTINUE(0) is sent (older order, or v1 with a password required); the
    /// first packet is judged: an INFO carries the credentials.
    FirstPacketAfterContinue,
    /// Serving streams.
    Open,
}

/// Whether the packet loop goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    End,
}

/// One stream as the connection loop sees it.
#[derive(Debug)]
struct StreamEntry {
    generation: u64,
    inbox: Inbox,
    task: AbortHandle,
}

/// The state of one connection's packet loop.
struct Connection {
    shared: Arc<Shared>,
    tag: String,
    wire: Wire,
    phase: Phase,
    streams: HashMap<u32, StreamEntry>,
    /// Stream tasks; each returns its id and generation when it ends.
    tasks: JoinSet<(u32, u64)>,
    next_generation: u64,
}

impl Connection {
    /// Sends the opening packets for `speaks`, then reads until the end.
    async fn run(&mut self, speaks: Handshake, incoming: &mut SplitStream<Ws>) {
        let buffer = self.shared.config.buffer_size;
        let password = self.shared.config.password.is_some();
        self.phase = match speaks {
            Handshake::V1 => {
                self.wire.continue_(0, buffer).await;
                if password {
                    Phase::FirstPacketAfterContinue
                } else {
                    Phase::Open
                }
            }
            Handshake::Draft6 => {
                self.wire.send(&Packet::info(self.server_info())).await;
                Phase::InfoBeforeContinue
            }
            Handshake::ContinueFirst => {
                self.wire.continue_(0, buffer).await;
                self.wire.send(&Packet::info(self.server_info())).await;
                Phase::FirstPacketAfterContinue
            }
        };
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        loop {
            tokio::select! {
                message = incoming.next() => {
                    let message = match message {
                        None => {
                            self.log("the client closed the TCP connection");
                            return;
                        }
                        Some(Err(e)) => {
                            self.log(format!("WebSocket error: {e}"));
                            return;
                        }
                        Some(Ok(message)) => message,
                    };
                    if message.is_binary() {
                        if self.on_message(Bytes::from(message.into_payload())).await == Flow::End {
                            return;
                        }
                    } else if message.is_close() {
                        self.log("the client closed the WebSocket");
                        return;
                    } else if message.is_text() {
                        self.log("ignored a text frame");
                    }
                }
                Some(ended) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Ok((id, generation)) = ended
                        && self.streams.get(&id).is_some_and(|s| s.generation == generation)
                    {
                        self.streams.remove(&id);
                    }
                }
                () = sleep_until(deadline), if self.phase != Phase::Open => {
                    self.log(format!("no handshake within {HANDSHAKE_TIMEOUT:?}: closing"));
                    self.wire.close_websocket().await;
                    return;
                }
            }
        }
    }

    /// The server's INFO: v2.0, UDP, the password record (required) and the
    /// MOTD when configured.
    fn server_info(&self) -> InfoPacket {
        let config = &self.shared.config;
        let mut records = vec![ExtensionRecord {
            id: ExtensionId::UDP,
            data: Bytes::new(),
        }];
        if config.password.is_some() {
            records.push(ExtensionRecord {
                id: ExtensionId::PASSWORD,
                data: PasswordServerRecord { required: true }.encode(),
            });
        }
        if let Some(motd) = &config.motd {
            records.push(ExtensionRecord {
                id: ExtensionId::MOTD,
                data: Bytes::from(motd.clone().into_bytes()),
            });
        }
        InfoPacket::new(WispVersion::V2, records)
    }

    /// One binary message: the crash and freeze faults first, then decoding
    /// and the handshake phase.
    async fn on_message(&mut self, raw: Bytes) -> Flow {
        let config = &self.shared.config;
        if config.crash_on.as_ref().is_some_and(|m| m.matches(&raw)) {
            self.shared
                .crash(format!("{}: crash-on matched {}", self.tag, describe(&raw)));
            halt().await;
        }
        if config.freeze_on.as_ref().is_some_and(|m| m.matches(&raw)) {
            self.shared.freeze(format!(
                "{}: freeze-on matched {}",
                self.tag,
                describe(&raw)
            ));
            halt().await;
        }
        let packet = match Packet::decode(raw.clone()) {
            Ok(packet) => packet,
            Err(e) => {
                self.log(format!(
                    "malformed packet {}: {e}; closing the WebSocket",
                    describe(&raw)
                ));
                self.wire.close_websocket().await;
                return Flow::End;
            }
        };
        match (self.phase, packet.body) {
            (Phase::Open, body) => {
                self.on_packet(Packet {
                    stream_id: packet.stream_id,
                    body,
                })
                .await
            }
            (Phase::InfoBeforeContinue, PacketBody::Info(info)) => match self.judge(&info) {
                Ok(()) => {
                    self.wire.continue_(0, self.shared.config.buffer_size).await;
                    self.phase = Phase::Open;
                    Flow::Continue
                }
                Err(reason) => self.reject(reason).await,
            },
            (Phase::FirstPacketAfterContinue, PacketBody::Info(info)) => match self.judge(&info) {
                Ok(()) => {
                    self.phase = Phase::Open;
                    Flow::Continue
                }
                Err(reason) => self.reject(reason).await,
            },
            (phase, body) => {
                if self.shared.config.password.is_some() {
                    self.log("first packet is not an INFO, but a password is required");
                    return self.reject(self.missing_password_reason()).await;
                }
                if phase == Phase::InfoBeforeContinue {
                    self.log("first packet is not an INFO: serving it as v1");
                    self.wire.continue_(0, self.shared.config.buffer_size).await;
                }
                self.phase = Phase::Open;
                self.on_packet(Packet {
                    stream_id: packet.stream_id,
                    body,
                })
                .await
            }
        }
    }

    /// The reason for a missing password: 0xC2, or 0xC0 with
    /// `late_auth_reject`.
    fn missing_password_reason(&self) -> CloseReason {
        if self.shared.config.late_auth_reject {
            CloseReason::PASSWORD_AUTH_FAILED
        } else {
            CloseReason::AUTH_REQUIRED
        }
    }

    /// Checks the client's INFO against the required password.
    fn judge(&self, info: &InfoPacket) -> Result<(), CloseReason> {
        let Some((username, password)) = &self.shared.config.password else {
            self.log(format!("client INFO {}: accepted", info.version));
            return Ok(());
        };
        let record = match info.extension(ExtensionId::PASSWORD) {
            Some(record) if !record.data.is_empty() => record,
            _ => {
                self.log("client INFO has no password record");
                return Err(self.missing_password_reason());
            }
        };
        let layout = [PasswordLayout::Draft6, PasswordLayout::Draft5]
            .into_iter()
            .find(|layout| {
                PasswordClientRecord::decode(&record.data, *layout)
                    .is_ok_and(|c| &c.username == username && &c.password == password)
            });
        match layout {
            Some(layout) => {
                self.log(format!("password accepted ({layout:?} layout)"));
                Ok(())
            }
            None => {
                self.log("wrong password");
                Err(CloseReason::PASSWORD_AUTH_FAILED)
            }
        }
    }

    /// CLOSE(0, reason), then the WebSocket close.
    async fn reject(&mut self, reason: CloseReason) -> Flow {
        self.log(format!("rejecting the client: CLOSE(0, {reason})"));
        self.wire.close(0, reason).await;
        self.wire.close_websocket().await;
        Flow::End
    }

    /// A packet after the handshake.
    async fn on_packet(&mut self, packet: Packet) -> Flow {
        let id = packet.stream_id;
        match packet.body {
            PacketBody::Connect(connect) => self.open_stream(id, connect).await,
            PacketBody::Data(data) => {
                if let Some(entry) = self.streams.get(&id) {
                    entry.inbox.push(data, &self.wire, &self.shared).await;
                }
            }
            PacketBody::Close { reason } if id == 0 => {
                self.log(format!(
                    "the client closed the connection: CLOSE(0, {reason})"
                ));
                return Flow::End;
            }
            PacketBody::Close { reason } => {
                if let Some(entry) = self.streams.remove(&id) {
                    entry.task.abort();
                    self.log(format!("stream {id}: closed by the client ({reason})"));
                }
            }
            PacketBody::Continue { .. } => self.log("ignored a CONTINUE from the client"),
            PacketBody::Info(_) => self.log("ignored an INFO after the handshake"),
            other => self.log(format!("ignored {other:?}")),
        }
        Flow::Continue
    }

    /// CONNECT: validates it and starts the stream's task.
    async fn open_stream(&mut self, id: u32, connect: ConnectPacket) {
        if id == 0 {
            self.log("ignored a CONNECT on stream 0");
            return;
        }
        if let Some(old) = self.streams.remove(&id) {
            old.task.abort();
            self.log(format!(
                "stream {id}: CONNECT reuses a live id: the old stream is dropped"
            ));
        }
        let kind = connect.stream_type;
        if !(kind == StreamType::TCP || kind == StreamType::UDP)
            || connect.host.is_empty()
            || connect.port == 0
        {
            self.log(format!(
                "stream {id}: invalid CONNECT {kind} {}:{}: CLOSE 0x41",
                connect.host, connect.port
            ));
            self.wire
                .close(id, CloseReason::SERVER_STREAM_INVALID_INFO)
                .await;
            return;
        }
        let kind = if kind == StreamType::UDP {
            "UDP"
        } else {
            "TCP"
        };
        self.log(format!(
            "stream {id}: CONNECT {kind} {}:{}",
            connect.host, connect.port
        ));
        let generation = self.next_generation;
        self.next_generation += 1;
        let (inbox, task) = stream::open(
            id,
            connect,
            format!("{} stream {id}", self.tag),
            self.wire.clone(),
            Arc::clone(&self.shared),
        );
        let shared = Arc::clone(&self.shared);
        let task = self.tasks.spawn(async move {
            let guard = Arc::clone(&shared);
            guard.until_frozen(task).await;
            (id, generation)
        });
        self.streams.insert(
            id,
            StreamEntry {
                generation,
                inbox,
                task,
            },
        );
    }

    fn log(&self, line: impl AsRef<str>) {
        self.shared.log(format!("{}: {}", self.tag, line.as_ref()));
    }
}

/// A packet for the log: type, stream, length and the first bytes in hex.
fn describe(raw: &[u8]) -> String {
    let ty = raw.first().map_or_else(
        || "empty message".to_owned(),
        |t| match PacketType(*t).name() {
            Some(name) => name.to_owned(),
            None => format!("packet type 0x{t:02x}"),
        },
    );
    let stream = raw
        .get(1..HEADER_LEN)
        .map(|b| {
            format!(
                " on stream {}",
                u32::from_le_bytes([b[0], b[1], b[2], b[3]])
            )
        })
        .unwrap_or_default();
    let shown = &raw[..raw.len().min(LOGGED_BYTES)];
    let more = if raw.len() > LOGGED_BYTES { "…" } else { "" };
    format!("{ty}{stream} ({} bytes: {}{more})", raw.len(), hex(shown))
}
