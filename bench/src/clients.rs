//! The three clients under test, each driven the way its users would drive it for bulk
//! traffic, over loopback TCP with `TCP_NODELAY`:
//!
//! - [`Kind::Ours`]: `wisp_client::ClientMux` over tokio-websockets, one task per stream
//!   writing through the stream's tokio `AsyncWrite` (`write_all` of a reused buffer: one
//!   copy into the DATA packet, like the other two).
//! - [`Kind::WispMux`]: the published `wisp-mux` 5.1.0 client in v1 mode over fastwebsockets
//!   0.8 (its only transport), one task per stream calling `MuxStream::write(&buf)`.
//! - [`Kind::RawBest`]: the real limit. One sender on one tokio-websockets connection sending
//!   the same Wisp bytes as ours (a CONNECT, then DATA packets of one stream within the
//!   server's credit) with the least work the wire allows: masked frames encoded straight
//!   into one reused buffer (by ours' own encoder, `wisp_client::proto::FrameBuf`: one pass
//!   over each payload, no allocation per message) and written with one `write` each time
//!   the buffer reaches ours' flush threshold.
//! - [`Kind::Raw`]: one tokio-websockets connection and one sender feeding binary messages
//!   through its `Sink`, no multiplexing and no Wisp framing, with the transport settings
//!   ours uses. [`Kind::RawDefault`] is the same with tokio-websockets' default settings
//!   (the 8 KiB flush threshold).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_websockets::{ClientBuilder, Limits, Message, WebSocketStream};

use crate::server::{MAX_MESSAGE, PROBE_HOST, stamp_payload};
use crate::wire::{self, Incoming};
use wisp_client::proto::{FrameBuf, MaskKeys};

/// Which client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// This workspace's `wisp_client::ClientMux`.
    Ours,
    /// crates.io `wisp-mux` 5.1.0.
    WispMux,
    /// One sender, Wisp DATA framing, frames encoded into one reused buffer: the least
    /// work the wire allows ([`RawBest`]).
    RawBest,
    /// Raw tokio-websockets, one sender, no multiplexing, with the same transport settings
    /// as ours (`wisp_client::transport::FLUSH_THRESHOLD`).
    Raw,
    /// Raw tokio-websockets with the library's default settings (8 KiB flush threshold).
    RawDefault,
}

impl Kind {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::WispMux => "wisp-mux",
            Kind::RawBest => "raw-best",
            Kind::Raw => "raw",
            Kind::RawDefault => "raw-default",
        }
    }

    /// Parses a name from [`Kind::name`].
    pub fn parse(s: &str) -> Option<Self> {
        [
            Kind::Ours,
            Kind::WispMux,
            Kind::RawBest,
            Kind::Raw,
            Kind::RawDefault,
        ]
        .into_iter()
        .find(|k| k.name() == s)
    }

    /// Whether the client multiplexes streams.
    pub fn is_mux(self) -> bool {
        matches!(self, Kind::Ours | Kind::WispMux)
    }
}

/// A stop signal shared by the orchestrator, the session and its writers.
#[derive(Debug, Default)]
pub struct Stop {
    flag: AtomicBool,
    notify: Notify,
    parked: Notify,
}

impl Stop {
    /// Tells every writer to finish its current payload and stop.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::Release);
        self.notify.notify_one();
        self.parked.notify_waiters();
    }

    /// Waits until stopped, without a timer.
    async fn stopped(&self) {
        loop {
            let notified = self.parked.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
    }

    fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }
}

/// A request to open a probe stream; answered with its id, when the open call began and
/// when it returned.
pub type ProbeRequest = oneshot::Sender<Result<(u32, Instant, Instant), String>>;

/// Payloads each stream's writer completed, by stream id (probe streams included).
pub type Sent = Vec<(u32, u64)>;

/// The session's side of the end of a run: it reports what its writers sent, then keeps
/// the connection open until the bench has checked that all of it arrived.
#[derive(Debug)]
struct Drain {
    sent: oneshot::Sender<Sent>,
    release: oneshot::Receiver<()>,
}

impl Drain {
    async fn report(self, sent: Sent) {
        let _ = self.sent.send(sent);
        let _ = tokio::time::timeout(Duration::from_secs(120), self.release).await;
    }
}

/// Handles to a running throughput session.
#[derive(Debug)]
pub struct Session {
    /// Stops the writers.
    pub stop: Arc<Stop>,
    /// Asks for a probe stream.
    pub probes: mpsc::UnboundedSender<ProbeRequest>,
    /// The ids of the bulk streams, once all are open.
    pub ready: oneshot::Receiver<Vec<u32>>,
    /// What the writers sent, after stop.
    pub sent: oneshot::Receiver<Sent>,
    /// Lets the session close its connection (after the loss check).
    pub release: oneshot::Sender<()>,
    /// The session's end (its error, if it failed).
    pub done: JoinHandle<Result<(), String>>,
}

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct Target {
    /// The server address.
    pub addr: SocketAddr,
    /// The connection token (for the server's registry).
    pub token: String,
    /// The payload length every write uses.
    pub payload_len: usize,
    /// Ask the server to acknowledge every this many payloads of a stream (0: never); see
    /// [`crate::server`].
    pub ack_every: u64,
}

impl Target {
    fn path(&self, mode: &str) -> String {
        let mut p = format!("/{mode}/{}/{}", self.token, self.payload_len);
        if self.ack_every > 0 {
            p.push_str(&format!("/{}", self.ack_every));
        }
        p
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

async fn tcp(addr: SocketAddr) -> Result<TcpStream, String> {
    let tcp = TcpStream::connect(addr).await.map_err(err)?;
    tcp.set_nodelay(true).map_err(err)?;
    Ok(tcp)
}

/// A raw tokio-websockets client connection over a `TCP_NODELAY` socket: `tuned` uses the
/// flush threshold `wisp_client::transport::connect` configures, otherwise the library's
/// defaults.
pub async fn tokio_ws(
    target: &Target,
    mode: &str,
    tuned: bool,
) -> Result<WebSocketStream<TcpStream>, String> {
    let uri = format!("ws://{}{}", target.addr, target.path(mode));
    let config = if tuned {
        tokio_websockets::Config::default().flush_threshold(wisp_client::transport::FLUSH_THRESHOLD)
    } else {
        tokio_websockets::Config::default()
    };
    let (ws, _) = ClientBuilder::new()
        .uri(&uri)
        .map_err(err)?
        .config(config)
        .limits(Limits::default().max_payload_len(Some(MAX_MESSAGE)))
        .connect_on(tcp(target.addr).await?)
        .await
        .map_err(err)?;
    Ok(ws)
}

/// Connects a `wisp_client::ClientMux` the way its users do (`ClientMux::connect`: its own
/// socket with `TCP_NODELAY` and its transport settings) and spawns its driver.
pub async fn connect_ours(
    target: &Target,
) -> Result<(wisp_client::ClientMux, JoinHandle<()>), String> {
    let url = format!("ws://{}{}", target.addr, target.path("wisp"));
    let mut options = wisp_client::MuxOptions::default();
    if let Some(q) = std::env::var("WISP_BENCH_MAXQ")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        options = options.max_queued_bytes(q);
    }
    let (mux, driver) = wisp_client::ClientMux::connect(&url, None, options)
        .await
        .map_err(err)?
        .with_no_required_extensions();
    let driver = tokio::spawn(async move {
        let _ = driver.await;
    });
    Ok((mux, driver))
}

/// Performs the HTTP upgrade by hand (fastwebsockets' own client handshake needs hyper),
/// reading the response byte by byte so no WebSocket frame is consumed.
async fn fastwebsockets_upgrade(target: &Target) -> Result<TcpStream, String> {
    let mut tcp = tcp(target.addr).await?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        target.path("wisp"),
        target.addr
    );
    tcp.write_all(request.as_bytes()).await.map_err(err)?;
    let mut response = Vec::new();
    while !response.ends_with(b"\r\n\r\n") {
        let b = tcp.read_u8().await.map_err(err)?;
        response.push(b);
        if response.len() > 8192 {
            return Err("upgrade response too long".into());
        }
    }
    if !response.starts_with(b"HTTP/1.1 101") {
        return Err(format!(
            "upgrade refused: {}",
            String::from_utf8_lossy(&response)
        ));
    }
    Ok(tcp)
}

/// Connects a `wisp-mux` 5.1.0 client (v1) over fastwebsockets and spawns its actor.
pub async fn connect_wisp_mux(
    target: &Target,
) -> Result<(wisp_mux::ClientMux, JoinHandle<()>), String> {
    let tcp = fastwebsockets_upgrade(target).await?;
    let ws = fastwebsockets::WebSocket::after_handshake(tcp, fastwebsockets::Role::Client);
    let (read, write) = ws.split(|s| s.into_split());
    let (mux, actor) = wisp_mux::ClientMux::create(read, write, None)
        .await
        .map_err(err)?
        .with_no_required_extensions();
    let actor = tokio::spawn(async move {
        let _ = actor.await;
    });
    Ok((mux, actor))
}

/// Starts a throughput session of `kind` with `streams` bulk streams on the current runtime.
pub fn start(kind: Kind, target: Target, streams: usize) -> Session {
    let stop = Arc::new(Stop::default());
    let (probe_tx, probe_rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = oneshot::channel();
    let (sent_tx, sent_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel();
    let drain = Drain {
        sent: sent_tx,
        release: release_rx,
    };
    let s = stop.clone();
    let done = tokio::spawn(async move {
        match kind {
            Kind::Ours => run_ours(target, streams, s, probe_rx, ready_tx, drain).await,
            Kind::WispMux => run_wisp_mux(target, streams, s, probe_rx, ready_tx, drain).await,
            Kind::RawBest => run_raw_best(target, s, ready_tx, drain).await,
            Kind::Raw => run_raw(target, s, ready_tx, drain, true).await,
            Kind::RawDefault => run_raw(target, s, ready_tx, drain, false).await,
        }
    });
    Session {
        stop,
        probes: probe_tx,
        ready: ready_rx,
        sent: sent_rx,
        release: release_tx,
        done,
    }
}

type Writer<T> = JoinHandle<Result<(u32, u64, T), String>>;

async fn join_writers<T>(writers: Vec<Writer<T>>) -> Result<(Vec<(u32, u64)>, Vec<T>), String> {
    let mut sent = Vec::new();
    let mut keep = Vec::new();
    for w in writers {
        let (id, n, handle) = w.await.map_err(err)??;
        sent.push((id, n));
        keep.push(handle);
    }
    Ok((sent, keep))
}

async fn run_ours(
    target: Target,
    streams: usize,
    stop: Arc<Stop>,
    mut probes: mpsc::UnboundedReceiver<ProbeRequest>,
    ready: oneshot::Sender<Vec<u32>>,
    drain: Drain,
) -> Result<(), String> {
    use wisp_client::proto::StreamType;
    let len = target.payload_len;
    let (mux, driver) = connect_ours(&target).await?;
    let mut writers = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..streams {
        let stream = mux
            .new_stream(StreamType::TCP, "bench.invalid", 9)
            .await
            .map_err(err)?;
        ids.push(stream.get_stream_id());
        writers.push(tokio::spawn(write_ours(stream, stop.clone(), len, None)));
    }
    let _ = ready.send(ids);
    loop {
        tokio::select! {
            req = probes.recv() => {
                let Some(req) = req else { continue };
                let t = Instant::now();
                match mux.new_stream(StreamType::TCP, PROBE_HOST, 9).await {
                    Ok(stream) => {
                        let _ = req.send(Ok((stream.get_stream_id(), t, Instant::now())));
                        writers.push(tokio::spawn(write_ours(stream, stop.clone(), len, Some(1))));
                    }
                    Err(e) => { let _ = req.send(Err(err(e))); }
                }
            }
            _ = stop.notify.notified() => break,
        }
    }
    let (sent, streams) = join_writers(writers).await?;
    drain.report(sent).await;
    drop(streams);
    let _ = mux.close().await;
    drop(mux);
    let t = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(10), driver).await;
    if std::env::var_os("WISP_BENCH_DEBUG").is_some() {
        eprintln!("ours: driver ended after {:?}: {closed:?}", t.elapsed());
    }
    Ok(())
}

/// Writes payloads until stopped (or `limit` payloads), then parks until stopped. Returns the
/// stream so it stays open until the session closes it.
async fn write_ours(
    stream: wisp_client::MuxStream,
    stop: Arc<Stop>,
    len: usize,
    limit: Option<u64>,
) -> Result<(u32, u64, wisp_client::MuxStreamTokioIo), String> {
    let id = stream.get_stream_id();
    let mut io = stream.into_tokio_io();
    let mut buf = vec![0x5a; len];
    let seq = write_payloads(&mut io, &mut buf, 0, |seq| {
        !stop.is_stopped() && limit.is_none_or(|l| seq < l)
    })
    .await?;
    stop.stopped().await;
    Ok((id, seq, io))
}

/// Writes payloads numbered `seq`, `seq + 1`, … through `io` (each `buf`, stamped with its
/// number, written with `write_all`) for as long as `more(next number)` holds; returns the
/// next number.
pub async fn write_payloads(
    io: &mut (impl tokio::io::AsyncWrite + Unpin),
    buf: &mut [u8],
    mut seq: u64,
    mut more: impl FnMut(u64) -> bool,
) -> Result<u64, String> {
    while more(seq) {
        stamp_payload(buf, seq);
        io.write_all(buf).await.map_err(err)?;
        seq += 1;
    }
    Ok(seq)
}

async fn run_wisp_mux(
    target: Target,
    streams: usize,
    stop: Arc<Stop>,
    mut probes: mpsc::UnboundedReceiver<ProbeRequest>,
    ready: oneshot::Sender<Vec<u32>>,
    drain: Drain,
) -> Result<(), String> {
    use wisp_mux::StreamType;
    let len = target.payload_len;
    let (mux, actor) = connect_wisp_mux(&target).await?;
    let mut writers = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..streams {
        let stream = mux
            .client_new_stream(StreamType::Tcp, "bench.invalid".into(), 9)
            .await
            .map_err(err)?;
        ids.push(stream.stream_id);
        writers.push(tokio::spawn(write_wisp_mux(
            stream,
            stop.clone(),
            len,
            None,
        )));
    }
    let _ = ready.send(ids);
    loop {
        tokio::select! {
            req = probes.recv() => {
                let Some(req) = req else { continue };
                let t = Instant::now();
                match mux.client_new_stream(StreamType::Tcp, PROBE_HOST.into(), 9).await {
                    Ok(stream) => {
                        let _ = req.send(Ok((stream.stream_id, t, Instant::now())));
                        writers.push(tokio::spawn(write_wisp_mux(stream, stop.clone(), len, Some(1))));
                    }
                    Err(e) => { let _ = req.send(Err(err(e))); }
                }
            }
            _ = stop.notify.notified() => break,
        }
    }
    let (sent, streams) = join_writers(writers).await?;
    drain.report(sent).await;
    drop(streams);
    let _ = mux.close().await;
    drop(mux);
    let _ = tokio::time::timeout(Duration::from_secs(10), actor).await;
    Ok(())
}

async fn write_wisp_mux(
    stream: wisp_mux::MuxStream,
    stop: Arc<Stop>,
    len: usize,
    limit: Option<u64>,
) -> Result<(u32, u64, wisp_mux::MuxStream), String> {
    let id = stream.stream_id;
    let mut buf = vec![0x5a; len];
    let mut seq = 0;
    while !stop.is_stopped() && limit.is_none_or(|l| seq < l) {
        stamp_payload(&mut buf, seq);
        stream.write(&buf[..]).await.map_err(err)?;
        seq += 1;
    }
    stop.stopped().await;
    Ok((id, seq, stream))
}

async fn run_raw(
    target: Target,
    stop: Arc<Stop>,
    ready: oneshot::Sender<Vec<u32>>,
    drain: Drain,
    tuned: bool,
) -> Result<(), String> {
    let len = target.payload_len;
    let mut ws = tokio_ws(&target, "raw", tuned).await?;
    let _ = ready.send(vec![0]);
    let filler = vec![0x5a; len];
    let mut seq = 0;
    while !stop.is_stopped() {
        let mut buf = BytesMut::with_capacity(len);
        buf.extend_from_slice(&filler);
        stamp_payload(&mut buf, seq);
        ws.feed(Message::binary(buf.freeze())).await.map_err(err)?;
        seq += 1;
    }
    ws.flush().await.map_err(err)?;
    drain.report(vec![(0, seq)]).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), ws.close()).await;
    Ok(())
}

async fn run_raw_best(
    target: Target,
    stop: Arc<Stop>,
    ready: oneshot::Sender<Vec<u32>>,
    drain: Drain,
) -> Result<(), String> {
    let mut sender = RawBest::connect(&target).await?;
    let _ = ready.send(vec![RAW_BEST_STREAM]);
    while !stop.is_stopped() {
        sender.send().await?;
    }
    sender.flush().await?;
    drain.report(vec![(RAW_BEST_STREAM, sender.sent())]).await;
    sender.close().await;
    Ok(())
}

/// The stream id `raw-best` opens.
pub const RAW_BEST_STREAM: u32 = 1;

/// The `raw-best` sender: one Wisp stream on one tokio-websockets connection, with the least
/// work the wire allows.
///
/// tokio-websockets performs the upgrade and reads what the server sends (CONTINUE, and
/// the acknowledgements of [`crate::server`]); the sender writes its own masked frames to
/// the socket (encoded by the encoder ours uses, `wisp_client::proto::FrameBuf`, into one
/// reused buffer; see [`crate::wire`] for why it bypasses the library's `Sink`). It waits for the server's initial CONTINUE, sends a CONNECT, then one DATA
/// packet per [`RawBest::send`] as long as it has credit. Each time the pending frames reach
/// ours' flush threshold (`wisp_client::transport::FLUSH_THRESHOLD`) it writes them with
/// one `write_all` and then takes whatever the server sent meanwhile without waiting; with
/// no credit left it writes what is pending and waits for a CONTINUE.
#[derive(Debug)]
pub struct RawBest {
    ws: WebSocketStream<TcpStream>,
    frames: FrameBuf,
    keys: MaskKeys,
    payload: Vec<u8>,
    credit: u32,
    sent: u64,
    acks: u64,
}

impl RawBest {
    /// Connects, waits for the server's CONTINUE(0) and queues the stream's CONNECT.
    pub async fn connect(target: &Target) -> Result<Self, String> {
        let ws = tokio_ws(target, "wisp", true).await?;
        let mut sender = Self {
            ws,
            frames: FrameBuf::default(),
            keys: MaskKeys::default(),
            payload: vec![0x5a; target.payload_len],
            credit: 0,
            sent: 0,
            acks: 0,
        };
        let first_continue = async {
            loop {
                let msg = message(sender.ws.next().await)?;
                if let Incoming::Continue(0, credit) = wire::parse(msg.as_payload()) {
                    return Ok::<_, String>(credit);
                }
            }
        };
        sender.credit = tokio::time::timeout(Duration::from_secs(10), first_continue)
            .await
            .map_err(|_| "no CONTINUE(0) from the server within 10 s".to_owned())??;
        let connect = wire::connect_packet(RAW_BEST_STREAM, "bench.invalid", 9);
        sender
            .frames
            .push_frame(sender.keys.next_key(), &connect, &[]);
        Ok(sender)
    }

    /// Payloads sent so far (each stamped with its sequence number).
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Acknowledgements received so far (with `Target::ack_every`).
    pub fn acks(&self) -> u64 {
        self.acks
    }

    /// Queues the next payload as one DATA frame, writing the pending frames when they
    /// reach the flush threshold, and waiting for credit when there is none.
    pub async fn send(&mut self) -> Result<(), String> {
        while self.credit == 0 {
            self.flush().await?;
            let msg = self.ws.next().await;
            self.on_message(msg)?;
        }
        stamp_payload(&mut self.payload, self.sent);
        self.frames
            .push_data_frame(self.keys.next_key(), RAW_BEST_STREAM, &self.payload);
        self.sent += 1;
        self.credit -= 1;
        if self.frames.len() >= wisp_client::transport::FLUSH_THRESHOLD {
            self.flush().await?;
            while let Some(msg) = self.ws.next().now_or_never() {
                self.on_message(msg)?;
            }
        }
        Ok(())
    }

    /// Writes the pending frames.
    pub async fn flush(&mut self) -> Result<(), String> {
        if !self.frames.is_empty() {
            self.ws
                .get_mut()
                .write_all(self.frames.as_slice())
                .await
                .map_err(err)?;
            self.frames.clear();
        }
        Ok(())
    }

    /// Writes the pending frames and waits until `n` acknowledgements in all have come.
    pub async fn wait_acks(&mut self, n: u64) -> Result<(), String> {
        self.flush().await?;
        while self.acks < n {
            let msg = self.ws.next().await;
            self.on_message(msg)?;
        }
        Ok(())
    }

    /// Closes the WebSocket (bounded).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.ws.close()).await;
    }

    fn on_message(
        &mut self,
        msg: Option<Result<Message, tokio_websockets::Error>>,
    ) -> Result<(), String> {
        let msg = message(msg)?;
        match wire::parse(msg.as_payload()) {
            Incoming::Continue(RAW_BEST_STREAM, credit) => self.credit = credit,
            Incoming::Data(RAW_BEST_STREAM, body) => {
                self.acks += 1;
                let errors = ack_errors(body)?;
                if errors > 0 {
                    return Err(format!("the server counted {errors} integrity errors"));
                }
            }
            Incoming::Close(id, reason) => {
                return Err(format!("the server closed stream {id} ({reason:#04x})"));
            }
            _ => {}
        }
        Ok(())
    }
}

/// A binary message from the server, or why there is none.
fn message(msg: Option<Result<Message, tokio_websockets::Error>>) -> Result<Message, String> {
    match msg {
        Some(Ok(m)) if m.is_binary() => Ok(m),
        Some(Ok(m)) if m.is_close() => Err("the server closed the connection".into()),
        Some(Ok(_)) => Err("unexpected non-binary message".into()),
        Some(Err(e)) => Err(err(e)),
        None => Err("the connection ended".into()),
    }
}

/// The integrity error count an acknowledgement of [`crate::server`] carries.
pub fn ack_errors(body: &[u8]) -> Result<u64, String> {
    let bytes: [u8; 8] = body
        .try_into()
        .map_err(|_| format!("acknowledgement of {} bytes, expected 8", body.len()))?;
    Ok(u64::from_le_bytes(bytes))
}
