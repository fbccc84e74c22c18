//! Record mode: a transparent, Wisp-aware WebSocket proxy that turns a real session into a
//! client-role case (`wisp-conformance record`).
//!
//! Point any client at the proxy ([`Recorder::bind`]); it forwards every message to the
//! upstream server unchanged (the `Sec-WebSocket-Protocol` offer and answer included) and
//! keeps the timeline ([`Session`]). When the client disconnects, the server ends the
//! connection, the bound passes or the caller says stop, [`render_case`] writes the
//! session as a case in the language of `cases/README.md`:
//!
//! - the `server:` script replays what the server sent (`send`, `send_raw`, `send_text`,
//!   `close_ws`) with an `expect` step for each packet the client sent, streams named by
//!   aliases (`s1`, `s2`, ... in CONNECT order), a `pause` where the server was silent for
//!   longer than [`RecordOptions::pause_min`], DATA above [`RecordOptions::large`] bytes as
//!   `repeat` (one byte repeated) or, in an `expect`, its length (with the SHA-256 in a
//!   comment);
//! - `client:` offers what the client's INFO answered and repeats what the client did
//!   (`open`, `send`, `close`, `close_mux`), reading what the server sent before each next
//!   client step;
//! - `expect:` is what happened: the handshake, the negotiated version and extensions, the
//!   MOTD, per stream the bytes read and who closed it;
//! - credentials seen on the wire (a password record, a certificate signature) are never
//!   written: the case uses placeholders (and the repository's test key), with a note.
//!
//! The rendered text goes through the normal loader ([`wisp_cases::load_case_str`]) before
//! it is written, so a file `record` writes always loads.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_websockets::{ClientBuilder, Message, ServerBuilder};
use wisp_cases::requirements::Requirements;
use wisp_cases::{Case, REQUIREMENTS_FILE, Role, load_case_str};
use wisp_client::proto::{
    CertAuthServerRecord, CloseReason, ExtensionId, InfoPacket, MotdServerRecord, Packet,
    PacketBody, PasswordServerRecord, StreamType,
};
use wisp_mock_server::replay::{Io, Prefixed, read_request_head, subprotocol_of};

/// The test key a recorded certificate authentication is replaced with (relative to
/// `cases/`), and its public half.
const PLACEHOLDER_KEY: (&str, &str) = ("keys/alice.pem", "keys/alice.pub.pem");
/// The username and password a recorded password record is replaced with.
const PLACEHOLDER_CREDENTIALS: (&str, &str) = ("recorded-user", "recorded-password");

/// How a recording is made and written.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    /// The server's WebSocket URL (`ws://HOST:PORT/PATH`).
    pub upstream: String,
    /// End the session after this long (None: only the client, the server or the caller
    /// ends it).
    pub bound: Option<Duration>,
    /// DATA payloads longer than this are written as a pattern (`repeat`, or `len` and a
    /// hash comment) instead of their bytes where the language allows it.
    pub large: usize,
    /// A server silence at least this long before it sends is kept as a `pause` step.
    pub pause_min: Duration,
    /// Bound on connecting to the upstream server and on each upgrade.
    pub connect_timeout: Duration,
}

impl RecordOptions {
    /// Defaults for `upstream`: no bound, 256-byte patterns, 200 ms pauses, 10 s connect.
    pub fn new(upstream: impl Into<String>) -> Self {
        Self {
            upstream: upstream.into(),
            bound: None,
            large: 256,
            pause_min: Duration::from_millis(200),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Who sent a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// The client (towards the server).
    Client,
    /// The server (towards the client).
    Server,
}

/// One WebSocket message the proxy forwarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// A binary message: one Wisp packet, or bytes that do not decode as one.
    Binary(Bytes),
    /// A text frame (Wisp does not use them).
    Text(String),
    /// A WebSocket close frame.
    Close,
}

/// One message, when and from whom.
#[derive(Clone, Debug)]
pub struct Event {
    /// Time since the session started.
    pub at: Duration,
    /// The sender.
    pub from: Sender,
    /// The message.
    pub msg: Msg,
}

/// Why the session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The client sent a close frame or ended the connection.
    ClientGone,
    /// The server sent a close frame or ended the connection.
    ServerGone,
    /// The caller said stop (Ctrl-C).
    Stopped,
    /// [`RecordOptions::bound`] passed.
    Bound,
    /// A WebSocket error on either side (the text says which).
    Error(String),
}

/// A recorded session.
#[derive(Clone, Debug)]
pub struct Session {
    /// The upstream URL, without credentials or query.
    pub upstream: String,
    /// The client's `Sec-WebSocket-Protocol` offer.
    pub offered: Option<String>,
    /// The server's answer.
    pub answered: Option<String>,
    /// Every message, in the order the proxy saw them.
    pub events: Vec<Event>,
    /// How it ended.
    pub end: End,
}

/// What went wrong while recording.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Binding or accepting on the listen address.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Stopped (or the bound passed) before a client connected.
    #[error("stopped before a client connected")]
    NoClient,
    /// The client's upgrade request failed.
    #[error("the client's WebSocket upgrade failed: {0}")]
    ClientUpgrade(String),
    /// The upstream URL is not a `ws://` URL.
    #[error("--upstream {url:?}: {why}")]
    BadUpstream {
        /// The URL.
        url: String,
        /// Why.
        why: String,
    },
    /// Connecting to the upstream server failed.
    #[error("connecting to {url}: {why}")]
    Upstream {
        /// The URL (without credentials).
        url: String,
        /// Why.
        why: String,
    },
    /// The session does not make a case (e.g. nothing was exchanged).
    #[error("the session cannot be written as a case: {0}")]
    Render(String),
    /// Writing the case file.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The listening proxy, before a client connects.
#[derive(Debug)]
pub struct Recorder {
    listener: TcpListener,
}

impl Recorder {
    /// Listens on `addr` (port 0 picks a free port: see [`Recorder::local_addr`]).
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub async fn bind(addr: SocketAddr) -> Result<Self, RecordError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| RecordError::Listen {
                addr: addr.to_string(),
                source,
            })?;
        Ok(Self { listener })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts one client, connects it to the upstream server and forwards both ways
    /// until the client or the server ends the connection, `stop` resolves or the bound
    /// passes. Returns the session (also when it ended on a WebSocket error).
    ///
    /// # Errors
    ///
    /// No client came before `stop`, the client's upgrade failed, or the upstream server
    /// could not be reached (the client's connection is then dropped).
    pub async fn record(
        self,
        options: &RecordOptions,
        stop: impl Future<Output = ()>,
    ) -> Result<Session, RecordError> {
        let (uri, shown) = upstream_uri(&options.upstream)?;
        let mut stop = std::pin::pin!(stop);
        let deadline = options.bound.map(|b| Instant::now() + b);
        let until_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let accepted = tokio::select! {
            a = self.listener.accept() => a,
            () = &mut stop => return Err(RecordError::NoClient),
            () = until_deadline => return Err(RecordError::NoClient),
        };
        let (tcp, _) = accepted.map_err(|source| RecordError::Listen {
            addr: self.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            source,
        })?;
        let _ = tcp.set_nodelay(true);
        let bound = options.connect_timeout;
        let mut io: Box<dyn Io> = Box::new(tcp);
        let head = tokio::time::timeout(bound, read_request_head(&mut io))
            .await
            .map_err(|_| RecordError::ClientUpgrade("the upgrade request did not arrive".into()))?
            .map_err(|e| RecordError::ClientUpgrade(e.to_string()))?;
        let offered = subprotocol_of(&head);

        // Upstream first: the client gets the server's answer to its offer.
        let upstream_err = |why: String| RecordError::Upstream {
            url: shown.clone(),
            why,
        };
        let authority = uri
            .authority()
            .ok_or_else(|| upstream_err("no host".into()))?;
        let port = authority.port_u16().unwrap_or(80);
        let host = authority.host().trim_matches(['[', ']']).to_owned();
        let tcp = tokio::time::timeout(bound, TcpStream::connect((host.as_str(), port)))
            .await
            .map_err(|_| upstream_err(format!("no connection within {}s", bound.as_secs())))?
            .map_err(|e| upstream_err(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let mut builder = ClientBuilder::from_uri(uri.clone());
        if let Some(p) = &offered {
            let value = HeaderValue::from_str(p).map_err(|e| upstream_err(e.to_string()))?;
            builder = builder
                .add_header(HeaderName::from_static("sec-websocket-protocol"), value)
                .map_err(|e| upstream_err(e.to_string()))?;
        }
        let (mut server, response) = tokio::time::timeout(bound, builder.connect_on(tcp))
            .await
            .map_err(|_| upstream_err("the WebSocket upgrade did not finish".into()))?
            .map_err(|e| upstream_err(format!("WebSocket upgrade: {e}")))?;
        let answered = response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);

        let mut accept = ServerBuilder::new();
        if let Some(a) = &answered {
            let value = HeaderValue::from_str(a)
                .map_err(|e| RecordError::ClientUpgrade(format!("the server's answer: {e}")))?;
            accept = accept
                .add_header(HeaderName::from_static("sec-websocket-protocol"), value)
                .map_err(|e| RecordError::ClientUpgrade(e.to_string()))?;
        }
        let (_request, mut client) =
            tokio::time::timeout(bound, accept.accept(Prefixed::new(head, io)))
                .await
                .map_err(|_| RecordError::ClientUpgrade("the upgrade did not finish".into()))?
                .map_err(|e| RecordError::ClientUpgrade(e.to_string()))?;

        let start = Instant::now();
        let mut events = Vec::new();
        let until_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let mut until_deadline = std::pin::pin!(until_deadline);
        let end = loop {
            let (from, next) = tokio::select! {
                () = &mut stop => break End::Stopped,
                () = &mut until_deadline => break End::Bound,
                m = client.next() => (Sender::Client, m),
                m = server.next() => (Sender::Server, m),
            };
            let gone = match from {
                Sender::Client => End::ClientGone,
                Sender::Server => End::ServerGone,
            };
            let msg = match next {
                None => break gone,
                Some(Err(e)) => break End::Error(format!("{from:?}: {e}")),
                Some(Ok(m)) => m,
            };
            if msg.is_ping() || msg.is_pong() {
                // tokio-websockets answers pings itself, on each side.
                continue;
            }
            let (recorded, forward) = if msg.is_close() {
                (Msg::Close, msg)
            } else if let Some(t) = msg.as_text() {
                (Msg::Text(t.to_owned()), Message::text(t.to_owned()))
            } else {
                let bytes = Bytes::from(msg.into_payload());
                (Msg::Binary(bytes.clone()), Message::binary(bytes))
            };
            let close = recorded == Msg::Close;
            events.push(Event {
                at: start.elapsed(),
                from,
                msg: recorded,
            });
            let sent = match from {
                Sender::Client => tokio::time::timeout(bound, server.send(forward)).await,
                Sender::Server => tokio::time::timeout(bound, client.send(forward)).await,
            };
            if close {
                break gone;
            }
            match sent {
                Ok(Ok(())) => {}
                Ok(Err(e)) => break End::Error(format!("forwarding from {from:?}: {e}")),
                Err(_) => break End::Error(format!("forwarding from {from:?}: timed out")),
            }
        };
        // Both sides end now; bounded, best effort.
        let _ = tokio::time::timeout(Duration::from_secs(1), client.close()).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), server.close()).await;
        Ok(Session {
            upstream: shown,
            offered,
            answered,
            events,
            end,
        })
    }
}

/// Parses the upstream URL (`ws://` only); returns it and the form written into cases
/// (no credentials, no query).
fn upstream_uri(url: &str) -> Result<(http::Uri, String), RecordError> {
    let bad = |why: &str| RecordError::BadUpstream {
        url: url.to_owned(),
        why: why.to_owned(),
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    if uri.scheme_str() != Some("ws") {
        return Err(bad(
            "only ws:// URLs (put a TLS terminator in front for wss://)",
        ));
    }
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    let host = authority.as_str().rsplit('@').next().unwrap_or_default();
    let shown = format!("ws://{host}{}", uri.path());
    Ok((uri, shown))
}

/// A YAML double-quoted scalar: every control character, DEL and non-ASCII C1 escaped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (0x80..0xa0).contains(&(c as u32)) || c == '\u{feff}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text a case can carry as `text:` (printable UTF-8, short lines), else None.
fn as_text(data: &[u8]) -> Option<&str> {
    let t = std::str::from_utf8(data).ok()?;
    let printable = t
        .chars()
        .all(|c| !c.is_control() || c == '\n' || c == '\t' || c == '\r');
    (printable && !t.is_empty()).then_some(t)
}

/// `text: "..."` or `hex: "..."` for a payload.
fn payload_field(data: &[u8]) -> String {
    match as_text(data) {
        Some(t) => format!("text: {}", quote(t)),
        None => format!("hex: \"{}\"", hex::encode(data)),
    }
}

/// `repeat: {byte, count}` when every byte is the same.
fn repeated(data: &[u8]) -> Option<String> {
    let (&first, rest) = data.split_first()?;
    rest.iter()
        .all(|b| *b == first)
        .then(|| format!("repeat: {{byte: {first}, count: {}}}", data.len()))
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn stream_type(t: StreamType) -> String {
    match t {
        StreamType::TCP => "tcp".to_owned(),
        StreamType::UDP => "udp".to_owned(),
        other => other.0.to_string(),
    }
}

fn reason(r: CloseReason) -> String {
    format!("0x{:02x}", r.0)
}

/// An extension as case files name it: its lower-case name, or its number.
fn ext_name(id: ExtensionId) -> String {
    id.lower_name().unwrap_or_else(|| id.0.to_string())
}

/// The per-stream bookkeeping of the renderer.
#[derive(Default)]
struct StreamLog {
    alias: String,
    /// Every byte the server sent on it.
    received: Vec<u8>,
    /// How many of those the client actions read so far.
    read: usize,
    closed_by_server: Option<CloseReason>,
    closed_by_client: bool,
    /// A `wait_closed` action already read it to its end.
    waited: bool,
}

impl StreamLog {
    /// The action that reads what the server sent and the client has not read yet: to
    /// the end when the server closed the stream, else up to the bytes sent so far.
    fn catch_up(&mut self) -> Option<String> {
        if self.closed_by_client || self.waited {
            return None;
        }
        if self.closed_by_server.is_some() {
            self.waited = true;
            self.read = self.received.len();
            return Some(format!("wait_closed: {}", self.alias));
        }
        if self.received.len() > self.read {
            self.read = self.received.len();
            return Some(format!(
                "read: {{stream: {}, until: {}}}",
                self.alias, self.read
            ));
        }
        None
    }
}

/// The three sections the renderer fills, and its notes.
#[derive(Default)]
struct Render {
    script: Vec<String>,
    actions: Vec<String>,
    notes: Vec<String>,
    streams: BTreeMap<u32, StreamLog>,
    /// Stream ids in CONNECT order.
    order: Vec<u32>,
    server_info: Option<InfoPacket>,
    client_info: Option<InfoPacket>,
    handshake_done: bool,
    /// The client already ended the connection (`close_mux`).
    mux_closed: bool,
    last_at: Duration,
    total_pause: Duration,
}

impl Render {
    fn alias(&self, id: u32) -> String {
        self.streams
            .get(&id)
            .map_or_else(|| id.to_string(), |s| s.alias.clone())
    }

    /// Read actions for what the server sent since the last client step.
    fn flush_reads(&mut self) {
        for id in &self.order {
            if let Some(action) = self.streams.get_mut(id).and_then(StreamLog::catch_up) {
                self.actions.push(action);
            }
        }
    }

    fn server_event(&mut self, at: Duration, msg: &Msg, options: &RecordOptions) {
        let gap = at.saturating_sub(self.last_at);
        if gap >= options.pause_min && !self.script.is_empty() {
            let ms = gap.as_millis();
            self.script.push(format!("pause: {ms}ms"));
            self.total_pause += gap;
        }
        match msg {
            Msg::Close => self.script.push("close_ws".to_owned()),
            Msg::Text(t) => self.script.push(format!("send_text: {}", quote(t))),
            Msg::Binary(b) => match Packet::decode(b.clone()) {
                Ok(p) => self.server_packet(b, p, options),
                Err(e) => {
                    self.notes.push(format!(
                        "the server sent a packet that does not decode: {e}"
                    ));
                    self.script
                        .push(format!("send_raw: \"{}\"", hex::encode(b)));
                }
            },
        }
    }

    fn server_packet(&mut self, raw: &Bytes, p: Packet, options: &RecordOptions) {
        let stream = self.alias(p.stream_id);
        let step = match p.body {
            PacketBody::Continue { buffer_remaining } => {
                if p.stream_id == 0 {
                    self.handshake_done = true;
                }
                format!("send: {{type: CONTINUE, stream: {stream}, credit: {buffer_remaining}}}")
            }
            PacketBody::Close { reason: r } => {
                if let Some(s) = self.streams.get_mut(&p.stream_id) {
                    s.closed_by_server.get_or_insert(r);
                }
                format!(
                    "send: {{type: CLOSE, stream: {stream}, reason: {}}}",
                    reason(r)
                )
            }
            PacketBody::Data(data) => {
                if let Some(s) = self.streams.get_mut(&p.stream_id) {
                    s.received.extend_from_slice(&data);
                }
                let payload = match repeated(&data) {
                    Some(r) if data.len() > options.large => r,
                    _ => payload_field(&data),
                };
                format!("send: {{type: DATA, stream: {stream}, {payload}}}")
            }
            PacketBody::Info(info) => {
                let step = self.server_info_step(&info);
                self.server_info = Some(info);
                step
            }
            PacketBody::Connect(c) => format!(
                "send: {{type: CONNECT, stream: {stream}, stream_type: {}, host: {}, port: {}}}",
                stream_type(c.stream_type),
                quote(&c.host),
                c.port
            ),
            _ => format!("send_raw: \"{}\"", hex::encode(raw)),
        };
        self.script.push(step);
    }

    fn server_info_step(&mut self, info: &InfoPacket) -> String {
        let mut exts = Vec::new();
        for r in &info.extensions {
            let entry = match r.id {
                ExtensionId::UDP if r.data.is_empty() => "udp".to_owned(),
                ExtensionId::STREAM_CONFIRMATION if r.data.is_empty() => {
                    "stream_confirmation".to_owned()
                }
                ExtensionId::MOTD => {
                    format!(
                        "{{motd: {}}}",
                        quote(&MotdServerRecord::decode(&r.data).text)
                    )
                }
                ExtensionId::PASSWORD if r.data.len() == 1 => format!(
                    "{{password: {{required: {}}}}}",
                    PasswordServerRecord::decode(&r.data).required
                ),
                ExtensionId::CERT_AUTH => match CertAuthServerRecord::decode(&r.data) {
                    Ok(c) => {
                        self.notes.push(format!(
                            "certificate authentication: the server's challenge is replayed as recorded; the client's key and signature are replaced by the test key {}",
                            PLACEHOLDER_KEY.0
                        ));
                        format!(
                            "{{cert_auth: {{required: {}, algorithms: {}, challenge: \"{}\", verify_key: {}}}}}",
                            c.required,
                            c.algorithms,
                            hex::encode(&c.challenge),
                            PLACEHOLDER_KEY.1
                        )
                    }
                    Err(_) => raw_record(r.id, &r.data),
                },
                _ => raw_record(r.id, &r.data),
            };
            exts.push(entry);
        }
        format!(
            "send: {{type: INFO, version: \"{}.{}\", extensions: [{}]}}",
            info.version.major,
            info.version.minor,
            exts.join(", ")
        )
    }

    fn client_event(&mut self, msg: &Msg, options: &RecordOptions) {
        match msg {
            Msg::Close => {
                if !self.mux_closed {
                    self.flush_reads();
                    self.actions.push("close_mux: {}".to_owned());
                    self.mux_closed = true;
                }
                self.script.push("expect_eof".to_owned());
            }
            Msg::Text(t) => self.notes.push(format!(
                "the client sent a text frame {} (not replayed: the built-in client never sends one)",
                quote(t)
            )),
            Msg::Binary(b) => match Packet::decode(b.clone()) {
                Ok(p) => self.client_packet(b, p, options),
                Err(e) => {
                    self.notes.push(format!(
                        "the client sent a packet that does not decode ({e}); its expect step will fail against the built-in client"
                    ));
                    self.script
                        .push(format!("expect: {{raw_hex: \"{}\"}}", hex::encode(b)));
                }
            },
        }
    }

    fn client_packet(&mut self, raw: &Bytes, p: Packet, options: &RecordOptions) {
        let id = p.stream_id;
        let packet_type = p.packet_type();
        match p.body {
            PacketBody::Connect(c) => {
                let alias = format!("s{}", self.order.len() + 1);
                self.streams.insert(
                    id,
                    StreamLog {
                        alias: alias.clone(),
                        ..StreamLog::default()
                    },
                );
                self.order.push(id);
                self.flush_reads();
                let t = stream_type(c.stream_type);
                let host = quote(&c.host);
                self.actions.push(format!(
                    "open: {{stream: {alias}, type: {t}, host: {host}, port: {}}}",
                    c.port
                ));
                self.script.push(format!(
                    "expect: {{type: CONNECT, stream: {alias}, stream_type: {t}, host: {host}, port: {}}}",
                    c.port
                ));
            }
            PacketBody::Data(data) => {
                let alias = self.alias(id);
                self.flush_reads();
                let send = match repeated(&data) {
                    Some(r) if data.len() > options.large => r,
                    _ => payload_field(&data),
                };
                self.actions
                    .push(format!("send: {{stream: {alias}, {send}}}"));
                let step = if data.len() > options.large {
                    format!(
                        "expect: {{type: DATA, stream: {alias}, len: {}}}  # sha256 {}",
                        data.len(),
                        sha256_hex(&data)
                    )
                } else {
                    format!(
                        "expect: {{type: DATA, stream: {alias}, {}}}",
                        payload_field(&data)
                    )
                };
                self.script.push(step);
            }
            PacketBody::Close { reason: r } if id == 0 => {
                self.flush_reads();
                self.actions
                    .push(format!("close_mux: {{reason: {}}}", reason(r)));
                self.mux_closed = true;
                self.script.push(format!(
                    "expect: {{type: CLOSE, stream: 0, reason: {}}}",
                    reason(r)
                ));
            }
            PacketBody::Close { reason: r } => {
                let alias = self.alias(id);
                if self
                    .streams
                    .get(&id)
                    .is_some_and(|s| s.closed_by_server.is_some())
                {
                    self.notes.push(format!(
                        "the client answered the server's CLOSE of {alias} with a CLOSE (not replayed: the built-in client does not)"
                    ));
                    return;
                }
                self.flush_reads();
                if let Some(s) = self.streams.get_mut(&id) {
                    s.closed_by_client = true;
                }
                self.actions
                    .push(format!("close: {{stream: {alias}, reason: {}}}", reason(r)));
                self.script.push(format!(
                    "expect: {{type: CLOSE, stream: {alias}, reason: {}}}",
                    reason(r)
                ));
            }
            PacketBody::Info(info) => {
                let exts: Vec<String> = info.extensions.iter().map(|r| ext_name(r.id)).collect();
                let mut step = format!(
                    "expect: {{type: INFO, version: \"{}.{}\", extensions: [{}]",
                    info.version.major,
                    info.version.minor,
                    exts.join(", ")
                );
                if info.extension(ExtensionId::PASSWORD).is_some() {
                    let _ = write!(
                        step,
                        ", password: {{username: {}, password: {}}}",
                        PLACEHOLDER_CREDENTIALS.0, PLACEHOLDER_CREDENTIALS.1
                    );
                    self.notes.push(format!(
                        "the client's credentials are not written: the case uses the placeholders {}:{}",
                        PLACEHOLDER_CREDENTIALS.0, PLACEHOLDER_CREDENTIALS.1
                    ));
                }
                if info.extension(ExtensionId::CERT_AUTH).is_some() {
                    step.push_str(", cert_auth: {signature: valid}");
                }
                step.push('}');
                self.script.push(step);
                self.client_info = Some(info);
            }
            PacketBody::Continue { .. } => {
                self.notes.push(
                    "the client sent a CONTINUE (not replayed: clients do not send them)".into(),
                );
                self.script
                    .push(format!("expect: {{raw_hex: \"{}\"}}", hex::encode(raw)));
            }
            _ => {
                self.notes.push(format!(
                    "the client sent a packet of type 0x{:02x}; its expect step will fail against the built-in client",
                    packet_type.0
                ));
                self.script
                    .push(format!("expect: {{raw_hex: \"{}\"}}", hex::encode(raw)));
            }
        }
    }

    /// Reads what is still unread at the end (nothing once the client closed the
    /// connection).
    fn final_reads(&mut self) {
        if !self.mux_closed {
            self.flush_reads();
        }
    }
}

fn raw_record(id: ExtensionId, data: &[u8]) -> String {
    format!("{{raw: {{id: {}, hex: \"{}\"}}}}", id.0, hex::encode(data))
}

/// Writes `session` as a client-role case (YAML text). `id` is the case ID the file will
/// have (its path under `cases/`), used in the header comment.
///
/// # Errors
///
/// The session has no Wisp traffic at all.
pub fn render_case(
    session: &Session,
    id: &str,
    options: &RecordOptions,
) -> Result<String, RecordError> {
    if session.events.is_empty() {
        return Err(RecordError::Render("no message was exchanged".to_owned()));
    }
    let v2 = session
        .offered
        .as_deref()
        .is_some_and(|p| p.split(',').any(|x| x.trim() == "wisp-v2"));
    let mut r = Render::default();
    for e in &session.events {
        match e.from {
            Sender::Server => r.server_event(e.at, &e.msg, options),
            Sender::Client => r.client_event(&e.msg, options),
        }
        r.last_at = e.at;
    }
    r.final_reads();

    let mut out = String::new();
    let _ = writeln!(out, "# {id}: recorded by wisp-conformance record");
    let _ = writeln!(
        out,
        "# from a session against {} ({} messages, ended: {}).",
        session.upstream,
        session.events.len(),
        end_text(&session.end)
    );
    let _ = writeln!(
        out,
        "# Review it: write the description, the title, the level and the requirements it checks."
    );
    for n in &r.notes {
        let _ = writeln!(out, "# NOTE: {n}");
    }
    let _ = writeln!(
        out,
        "title: {}",
        quote(&format!("Recorded session against {}", session.upstream))
    );
    out.push_str("spec: \"recorded session (name the section it checks)\"\n");
    out.push_str("level: must\n");
    let mut covers = vec!["v1.packet.format"];
    if !r.order.is_empty() {
        covers.push("v1.connect.client-opens");
    }
    let _ = writeln!(out, "covers: [{}]", covers.join(", "));
    out.push_str("description: >\n  TODO: what this session shows, and what a failure means.\n");
    let timeout = Duration::from_secs(30) + r.total_pause;
    if timeout > Duration::from_secs(30) {
        let _ = writeln!(out, "timeout: {}ms", timeout.as_millis());
    }

    // client:
    out.push_str("client:\n");
    let _ = writeln!(out, "  version: {}", if v2 { "v2" } else { "v1" });
    let mut offered = Vec::new();
    if let Some(info) = &r.client_info {
        for rec in &info.extensions {
            let entry = match rec.id {
                // Pinned to the layout the script's `expect` decodes with (draft 6, its
                // default): an unpinned offer would follow the recorded handshake order.
                ExtensionId::PASSWORD => format!(
                    "{{password: {{username: {}, password: {}, layout: draft6}}}}",
                    PLACEHOLDER_CREDENTIALS.0, PLACEHOLDER_CREDENTIALS.1
                ),
                ExtensionId::CERT_AUTH => format!("{{cert_auth: {{key: {}}}}}", PLACEHOLDER_KEY.0),
                id if id.lower_name().is_some() => ext_name(id),
                id => {
                    r.notes.push(format!(
                        "the client answered an unknown extension {}: the built-in client cannot offer it",
                        id.0
                    ));
                    continue;
                }
            };
            offered.push(entry);
        }
    }
    if v2 {
        let _ = writeln!(out, "  extensions: [{}]", offered.join(", "));
    }
    if r.actions.is_empty() {
        out.push_str("  actions: []\n");
    } else {
        out.push_str("  actions:\n");
        for a in &r.actions {
            let _ = writeln!(out, "    - {a}");
        }
    }

    // server:
    out.push_str("server:\n");
    for s in &r.script {
        let _ = writeln!(out, "  - {s}");
    }

    // expect:
    out.push_str("expect:\n");
    if r.handshake_done {
        out.push_str("  handshake: ok\n");
        let downgraded = v2 && r.server_info.is_none();
        let _ = writeln!(out, "  downgraded: {downgraded}");
        match (&r.server_info, &r.client_info) {
            (Some(_), Some(client)) => {
                let _ = writeln!(
                    out,
                    "  version: \"{}.{}\"",
                    client.version.major, client.version.minor
                );
                let ids: Vec<String> = client
                    .extensions
                    .iter()
                    .filter(|e| e.id.lower_name().is_some())
                    .map(|e| ext_name(e.id))
                    .collect();
                let _ = writeln!(out, "  extensions: [{}]", ids.join(", "));
                let motd = r
                    .server_info
                    .as_ref()
                    .and_then(|s| s.extension(ExtensionId::MOTD))
                    .filter(|_| client.extension(ExtensionId::MOTD).is_some())
                    .map(|m| MotdServerRecord::decode(&m.data).text);
                if let Some(m) = motd {
                    let _ = writeln!(out, "  motd: {}", quote(&m));
                }
            }
            _ => out.push_str("  version: \"1.2\"\n"),
        }
        let mut lines = Vec::new();
        for id in &r.order {
            let Some(s) = r.streams.get(id) else { continue };
            let mut fields = Vec::new();
            let read = &s.received[..s.read];
            match as_text(read) {
                Some(t) if read.len() <= options.large => {
                    fields.push(format!("data_text: {}", quote(t)));
                }
                _ => fields.push(format!("data_len: {}", read.len())),
            }
            if s.closed_by_client {
                fields.push("closed_by: client".to_owned());
            } else if let Some(reason_) = s.closed_by_server {
                fields.push("closed_by: server".to_owned());
                fields.push(format!("reason: {}", reason(reason_)));
            }
            lines.push(format!("    {}: {{{}}}", s.alias, fields.join(", ")));
        }
        if !lines.is_empty() {
            out.push_str("  streams:\n");
            for l in lines {
                let _ = writeln!(out, "{l}");
            }
        }
    } else {
        out.push_str(
            "  # the handshake did not complete in the recording: name the error the client reported\n",
        );
        out.push_str("  error: [WsImplSocketClosed, WsImplError]\n");
    }
    Ok(out)
}

fn end_text(end: &End) -> String {
    match end {
        End::ClientGone => "the client disconnected".to_owned(),
        End::ServerGone => "the server disconnected".to_owned(),
        End::Stopped => "stopped".to_owned(),
        End::Bound => "the bound passed".to_owned(),
        End::Error(e) => format!("WebSocket error: {e}"),
    }
}

/// What [`run_blocking`] did.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The session.
    pub session: Session,
    /// The case ID of the written file.
    pub id: String,
    /// The case text written.
    pub text: String,
}

/// `wisp-conformance record`: listens on `listen`, records one session (until the client
/// or the server disconnects, the bound passes or Ctrl-C), writes it to `out` as a case
/// of the cases directory `cases`. `on_listen` is told the bound address once clients can
/// connect.
///
/// # Errors
///
/// As [`Recorder::record`] and [`write_case`]; a runtime that cannot start is a
/// [`RecordError::Listen`].
pub fn run_blocking(
    listen: SocketAddr,
    options: &RecordOptions,
    cases: &Path,
    out: &Path,
    on_listen: impl FnOnce(SocketAddr),
) -> Result<Recorded, RecordError> {
    upstream_uri(&options.upstream)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| RecordError::Listen {
            addr: listen.to_string(),
            source,
        })?;
    runtime.block_on(async {
        let recorder = Recorder::bind(listen).await?;
        on_listen(recorder.local_addr().unwrap_or(listen));
        let stop = async {
            if tokio::signal::ctrl_c().await.is_err() {
                // No signal handler: only the other ends apply.
                std::future::pending::<()>().await;
            }
        };
        let session = recorder.record(options, stop).await?;
        let text = write_case(&session, cases, out, options)?;
        Ok(Recorded {
            id: case_id_for(cases, out),
            session,
            text,
        })
    })
}

/// Where a file at `out` sits under the cases directory `cases` (a file outside it is
/// treated as `recorded/<file name>`).
fn place(cases: &Path, out: &Path) -> PathBuf {
    match out.strip_prefix(cases) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.to_owned(),
        _ => Path::new("recorded").join(out.file_name().unwrap_or_default()),
    }
}

/// The case ID a file at `out` gets under the cases directory `cases`: its path under it,
/// `/` → `.`, without `.yaml` (see [`wisp_cases::case_id`]).
pub fn case_id_for(cases: &Path, out: &Path) -> String {
    let rel = place(cases, out);
    let s = rel.to_string_lossy().replace(['/', '\\'], ".");
    s.strip_suffix(".yaml").unwrap_or(&s).to_owned()
}

/// Renders `session`, checks that the text loads as a client-role case of the cases
/// directory `cases` (the normal loader, and its `covers:` against the requirements file
/// when there is one), and writes it to `out`. Returns the text.
///
/// # Errors
///
/// The session does not render, the rendered text does not load (a bug of the renderer:
/// the message says where), or the file cannot be written.
pub fn write_case(
    session: &Session,
    cases: &Path,
    out: &Path,
    options: &RecordOptions,
) -> Result<String, RecordError> {
    let id = case_id_for(cases, out);
    let text = render_case(session, &id, options)?;
    check_loads(cases, &cases.join(place(cases, out)), &text)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| RecordError::Write {
            path: dir.to_owned(),
            source,
        })?;
    }
    std::fs::write(out, &text).map_err(|source| RecordError::Write {
        path: out.to_owned(),
        source,
    })?;
    Ok(text)
}

/// Loads `text` as the case file `at` of the cases directory `cases`.
fn check_loads(cases: &Path, at: &Path, text: &str) -> Result<(), RecordError> {
    let bad = |why: String| RecordError::Render(format!("the rendered case {why}:\n{text}"));
    let case = match load_case_str(cases, at, text) {
        Ok(Case::Client(c)) => c,
        Ok(_) => return Err(bad("is not a client-role case".into())),
        Err(e) => return Err(bad(format!("does not load ({e})"))),
    };
    let requirements = cases.join(REQUIREMENTS_FILE);
    if requirements.is_file() {
        let r = Requirements::load(&requirements).map_err(|e| {
            let all: Vec<String> = e.iter().map(ToString::to_string).collect();
            RecordError::Render(all.join("; "))
        })?;
        for id in case.meta.covered_ids() {
            r.claim(id, Role::Client)
                .map_err(|why| bad(format!("claims {id}: {why}")))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strings_read_back_unchanged() {
        for original in [
            "plain",
            "quote \" and backslash \\",
            "controls \u{0}\u{7}\u{1b}\u{7f}\u{85}\u{9f}\u{feff} and\nlines\t\r",
            "unicode ✓ ünï",
            "# not a comment: [ { * & ! %",
        ] {
            let yaml = format!("v: {}\n", quote(original));
            #[derive(serde::Deserialize)]
            struct V {
                v: String,
            }
            let back: V = serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
            assert_eq!(back.v, original, "{yaml}");
        }
    }

    #[test]
    fn upstream_credentials_are_not_shown() {
        let (_, shown) = upstream_uri("ws://user:secret@example.com:6001/wisp/?token=abc").unwrap();
        assert_eq!(shown, "ws://example.com:6001/wisp/");
        assert!(upstream_uri("wss://example.com/").is_err());
        assert!(upstream_uri("not a url").is_err());
    }
}
