//! The lossless in-process discard server every client in the comparison talks to.
//!
//! It speaks just enough Wisp v1 to be a real peer: CONTINUE(0, buffer) first, then for every
//! TCP stream a CONTINUE(id, buffer) each time half a buffer of DATA packets has been consumed
//! (what wisp-js does; wisp-server-python does it every quarter). It never drops a packet:
//! every payload is consumed at once, so the credit it grants is always honoured.
//!
//! Every payload carries a per-stream sequence number in its first and last 8 bytes (little
//! endian). The server checks, per stream, that sequence numbers arrive as 0, 1, 2, … with the
//! negotiated payload length, so a lost, duplicated, reordered, truncated or misrouted packet is
//! counted as an error ([`ConnStats::errors`]). The bench compares each writer's count of sent
//! payloads with the server's count of received ones after the run (the loss check).
//!
//! The path of the WebSocket request selects the mode and names the connection:
//! `/wisp/<token>/<payload_len>` or `/raw/<token>/<payload_len>`. In raw mode each binary
//! message is one payload of the single pseudo-stream 0 (no Wisp framing, no credit).
//! A Wisp path may end in `/<ack_every>`: the server then answers every `ack_every`-th
//! payload of a stream with a DATA packet on that stream carrying the connection's
//! integrity error count so far (8 bytes, little endian), so a client knows its payloads
//! arrived intact (the instruction-count benchmark ends its measurement on it).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_websockets::{Config, Limits, Message, ServerBuilder, WebSocketStream};

use crate::wire;

/// Streams with an id below this get per-stream byte and packet counters the bench can
/// sample while the connection runs (the fairness windows and the loss check).
pub const TRACKED_STREAMS: usize = 1024;

/// Largest WebSocket message either side accepts in the bench (well above the 60 KiB
/// payloads plus framing).
pub const MAX_MESSAGE: usize = 1 << 20;

/// Host name a client puts in the CONNECT of a latency probe stream.
pub const PROBE_HOST: &str = "probe.invalid";

/// What the server observed on one connection, shared with the bench while it runs.
#[derive(Debug)]
pub struct ConnStats {
    /// Payload bytes received (DATA payloads, or raw messages).
    pub bytes: AtomicU64,
    /// Payloads received.
    pub packets: AtomicU64,
    /// CONNECT packets received.
    pub connects: AtomicU64,
    /// CLOSE packets received.
    pub closes: AtomicU64,
    /// CONTINUE packets sent after the handshake.
    pub continues: AtomicU64,
    /// Payload bytes per tracked stream id.
    pub stream_bytes: Box<[AtomicU64]>,
    /// Payloads per tracked stream id (equal to the next expected sequence number).
    pub stream_packets: Box<[AtomicU64]>,
    /// Protocol or integrity violations (sequence gaps, reordering, bad lengths, DATA for an
    /// unknown stream, malformed packets).
    pub errors: AtomicU64,
    /// The first few violations, for the report.
    pub error_log: Mutex<Vec<String>>,
    /// The transport error that ended the connection, if it did not end cleanly.
    pub transport_error: Mutex<Option<String>>,
    /// Whether the connection has ended.
    pub ended: AtomicBool,
}

impl ConnStats {
    fn new() -> Self {
        let counters = || (0..TRACKED_STREAMS).map(|_| AtomicU64::new(0)).collect();
        Self {
            bytes: AtomicU64::new(0),
            packets: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            closes: AtomicU64::new(0),
            continues: AtomicU64::new(0),
            stream_bytes: counters(),
            stream_packets: counters(),
            errors: AtomicU64::new(0),
            error_log: Mutex::new(Vec::new()),
            transport_error: Mutex::new(None),
            ended: AtomicBool::new(false),
        }
    }

    fn error(&self, msg: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut log = self.error_log.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() < 16 {
            log.push(msg);
        }
    }

    /// Payloads received so far on tracked stream `id`.
    pub fn packets_of(&self, id: u32) -> u64 {
        self.stream_packets
            .get(id as usize)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// A snapshot of the per-stream byte counters of `ids`.
    pub fn bytes_of(&self, ids: &[u32]) -> Vec<u64> {
        ids.iter()
            .map(|&id| {
                self.stream_bytes
                    .get(id as usize)
                    .map_or(0, |c| c.load(Ordering::Relaxed))
            })
            .collect()
    }
}

/// The moment the server saw the first DATA of a probe stream.
#[derive(Clone, Copy, Debug)]
pub struct ProbeSeen {
    /// The probe's stream id.
    pub id: u32,
    /// When its CONNECT arrived.
    pub connect_at: Instant,
    /// When its first DATA arrived.
    pub data_at: Instant,
}

/// One registered connection: its counters and its probe notifications.
#[derive(Debug)]
pub struct Registered {
    /// The counters.
    pub stats: Arc<ConnStats>,
    /// First-DATA notifications of probe streams.
    pub probes: mpsc::UnboundedReceiver<ProbeSeen>,
}

#[derive(Default)]
struct Registry {
    waiting: HashMap<String, tokio::sync::oneshot::Sender<Registered>>,
}

/// A running discard server.
#[derive(Clone)]
pub struct Server {
    addr: SocketAddr,
    buffer: u32,
    registry: Arc<Mutex<Registry>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("buffer", &self.buffer)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds 127.0.0.1:0 and serves on the current runtime. `buffer` is the per-stream
    /// credit in packets (CONTINUE(0, buffer) in the handshake).
    pub async fn start(buffer: u32) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let server = Self {
            addr: listener.local_addr()?,
            buffer: buffer.max(2),
            registry: Arc::default(),
        };
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move { s.serve(tcp).await });
            }
        });
        Ok(server)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The per-stream credit the server grants.
    pub fn buffer(&self) -> u32 {
        self.buffer
    }

    /// Announces a connection that will use `token` in its path; the returned receiver
    /// yields its counters once the WebSocket handshake is done.
    pub fn expect(&self, token: &str) -> tokio::sync::oneshot::Receiver<Registered> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .waiting
            .insert(token.to_owned(), tx);
        rx
    }

    async fn serve(self, tcp: TcpStream) {
        let _ = tcp.set_nodelay(true);
        let builder = ServerBuilder::new()
            .limits(Limits::default().max_payload_len(Some(MAX_MESSAGE)))
            .config(Config::default());
        let Ok((request, ws)) = builder.accept(tcp).await else {
            return;
        };
        let path: Vec<String> = request
            .uri()
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let (mode, token, payload_len, ack_every) = match path.as_slice() {
            [mode, token, len] => (mode.clone(), token.clone(), len.parse().unwrap_or(0), 0),
            [mode, token, len, ack] => (
                mode.clone(),
                token.clone(),
                len.parse().unwrap_or(0),
                ack.parse().unwrap_or(0),
            ),
            _ => return,
        };
        let stats = Arc::new(ConnStats::new());
        let (probe_tx, probes) = mpsc::unbounded_channel();
        let waiter = self
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .waiting
            .remove(&token);
        if let Some(w) = waiter {
            let _ = w.send(Registered {
                stats: stats.clone(),
                probes,
            });
        }
        let conn = Conn {
            ws,
            stats: stats.clone(),
            payload_len,
            ack_every,
            buffer: self.buffer,
            streams: IdMap::default(),
            probe_tx,
            dirty: false,
            write_failed: false,
        };
        let result = if mode == "raw" {
            conn.run_raw().await
        } else {
            conn.run_wisp().await
        };
        if let Err(e) = result {
            *stats
                .transport_error
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
        }
        stats.ended.store(true, Ordering::Release);
    }
}

/// A cheap hasher for stream ids (one multiply), so the server's per-packet lookup costs
/// little next to the clients it measures.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type IdMap<V> = HashMap<u32, V, std::hash::BuildHasherDefault<IdHasher>>;

/// Per-stream state of the server.
struct StreamState {
    next_seq: u64,
    since_continue: u32,
    probe: Option<Instant>,
    last_data: Option<Instant>,
    max_gap: std::time::Duration,
    max_gap_at_seq: u64,
}

struct Conn {
    ws: WebSocketStream<TcpStream>,
    stats: Arc<ConnStats>,
    payload_len: usize,
    /// Answer every this many payloads of a stream with a DATA carrying the error count
    /// (0: never).
    ack_every: u64,
    buffer: u32,
    streams: IdMap<StreamState>,
    probe_tx: mpsc::UnboundedSender<ProbeSeen>,
    /// Whether frames were fed since the last flush.
    dirty: bool,
    /// Whether a write failed (the server then only reads).
    write_failed: bool,
}

/// Checks one payload against the expected sequence number and length.
pub fn check_payload(payload: &[u8], expected_seq: u64, expected_len: usize) -> Result<(), String> {
    if payload.len() != expected_len {
        return Err(format!(
            "payload of {} bytes, expected {expected_len}",
            payload.len()
        ));
    }
    if payload.len() < 16 {
        return Err(format!("payload of {} bytes is too short", payload.len()));
    }
    let head = u64::from_le_bytes(payload[..8].try_into().unwrap_or_default());
    let tail = u64::from_le_bytes(payload[payload.len() - 8..].try_into().unwrap_or_default());
    if head != expected_seq || tail != expected_seq {
        return Err(format!(
            "sequence {head}/{tail}, expected {expected_seq} (lost, reordered or corrupted)"
        ));
    }
    Ok(())
}

/// Fills `buf` (at least 16 bytes) as payload number `seq`.
pub fn stamp_payload(buf: &mut [u8], seq: u64) {
    let n = buf.len();
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    buf[n - 8..].copy_from_slice(&seq.to_le_bytes());
}

impl Conn {
    /// The next message: without waiting while one is ready, otherwise after flushing what
    /// was fed (so CONTINUEs of one read batch leave in one write).
    async fn next(&mut self) -> Option<Result<Message, tokio_websockets::Error>> {
        if let Some(msg) = self.ws.next().now_or_never() {
            return msg;
        }
        if self.dirty && !self.write_failed {
            if self.ws.flush().await.is_err() {
                self.write_failed = true;
            }
            self.dirty = false;
        }
        self.ws.next().await
    }

    async fn run_raw(mut self) -> Result<(), tokio_websockets::Error> {
        let mut seq = 0u64;
        let mut last = Instant::now();
        let mut gaps = Vec::new();
        while let Some(msg) = self.next().await {
            let msg = msg?;
            if !msg.is_binary() {
                continue;
            }
            if debug() {
                let now = Instant::now();
                if now - last > std::time::Duration::from_millis(5) {
                    gaps.push((seq, now - last));
                }
                last = now;
            }
            let payload = msg.as_payload();
            if let Err(e) = check_payload(payload, seq, self.payload_len) {
                self.stats.error(format!("raw stream: {e}"));
            }
            seq += 1;
            self.stats
                .bytes
                .fetch_add(payload.len() as u64, Ordering::Relaxed);
            self.stats.packets.fetch_add(1, Ordering::Relaxed);
            self.stats.stream_bytes[0].fetch_add(payload.len() as u64, Ordering::Relaxed);
            self.stats.stream_packets[0].fetch_add(1, Ordering::Relaxed);
        }
        if debug() {
            eprintln!("raw: {seq} packets, gaps over 5 ms: {gaps:?}");
        }
        Ok(())
    }

    async fn run_wisp(mut self) -> Result<(), tokio_websockets::Error> {
        self.ws
            .send(Message::binary(wire::continue_packet(0, self.buffer)))
            .await?;
        let mut last = Instant::now();
        let mut gaps = Vec::new();
        let mut n = 0u64;
        while let Some(msg) = self.next().await {
            let msg = msg?;
            if !msg.is_binary() {
                continue;
            }
            if debug() {
                n += 1;
                let now = Instant::now();
                if now - last > std::time::Duration::from_millis(5) {
                    gaps.push((n, now - last));
                }
                last = now;
            }
            let packet = msg.as_payload();
            if packet.len() < 5 {
                self.stats
                    .error(format!("packet of {} bytes has no header", packet.len()));
                continue;
            }
            let id = u32::from_le_bytes([packet[1], packet[2], packet[3], packet[4]]);
            let body = &packet[5..];
            match packet[0] {
                wire::CONNECT => self.on_connect(id, body),
                wire::DATA => self.on_data(id, body).await?,
                wire::CLOSE => {
                    self.stats.closes.fetch_add(1, Ordering::Relaxed);
                    if id == 0 {
                        break;
                    }
                    if debug() && !gaps.is_empty() {
                        eprintln!("wisp: {n} packets, gaps over 5 ms: {gaps:?}");
                        gaps.clear();
                    }
                    match self.streams.remove(&id) {
                        None => self.stats.error(format!("CLOSE for unknown stream {id}")),
                        Some(s) if debug() => eprintln!(
                            "stream {id}: {} packets, longest gap {:?} before seq {}",
                            s.next_seq, s.max_gap, s.max_gap_at_seq
                        ),
                        Some(_) => {}
                    }
                }
                other => self.stats.error(format!(
                    "unexpected packet type {other:#04x} on stream {id}"
                )),
            }
        }
        Ok(())
    }

    fn on_connect(&mut self, id: u32, body: &[u8]) {
        self.stats.connects.fetch_add(1, Ordering::Relaxed);
        if body.len() < 3 || body[0] != wire::STREAM_TCP {
            self.stats
                .error(format!("stream {id}: malformed or non-TCP CONNECT"));
        }
        let probe = (body.len() >= 3 && &body[3..] == PROBE_HOST.as_bytes()).then(Instant::now);
        let fresh = StreamState {
            next_seq: 0,
            since_continue: 0,
            probe,
            last_data: None,
            max_gap: std::time::Duration::ZERO,
            max_gap_at_seq: 0,
        };
        if id == 0 || self.streams.insert(id, fresh).is_some() {
            self.stats.error(format!("CONNECT reuses stream id {id}"));
        }
    }

    async fn on_data(&mut self, id: u32, body: &[u8]) -> Result<(), tokio_websockets::Error> {
        let Some(stream) = self.streams.get_mut(&id) else {
            self.stats.error(format!("DATA for unknown stream {id}"));
            return Ok(());
        };
        if let Err(e) = check_payload(body, stream.next_seq, self.payload_len) {
            self.stats.error(format!("stream {id}: {e}"));
        }
        if stream.next_seq == 0
            && let Some(connect_at) = stream.probe
        {
            let _ = self.probe_tx.send(ProbeSeen {
                id,
                connect_at,
                data_at: Instant::now(),
            });
        }
        if debug() {
            let now = Instant::now();
            if let Some(last) = stream.last_data
                && now - last > stream.max_gap
            {
                stream.max_gap = now - last;
                stream.max_gap_at_seq = stream.next_seq;
            }
            stream.last_data = Some(now);
        }
        stream.next_seq += 1;
        let len = body.len() as u64;
        self.stats.bytes.fetch_add(len, Ordering::Relaxed);
        self.stats.packets.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = self.stats.stream_bytes.get(id as usize) {
            c.fetch_add(len, Ordering::Relaxed);
            self.stats.stream_packets[id as usize].fetch_add(1, Ordering::Relaxed);
        }
        // The payload is consumed at once, so the whole buffer is free again.
        stream.since_continue += 1;
        let cont = stream.since_continue >= self.buffer / 2;
        if cont {
            stream.since_continue = 0;
            self.stats.continues.fetch_add(1, Ordering::Relaxed);
        }
        let ack = self.ack_every > 0 && stream.next_seq.is_multiple_of(self.ack_every);
        if cont {
            self.feed(wire::continue_packet(id, self.buffer)).await;
        }
        if ack {
            let errors = self.stats.errors.load(Ordering::Relaxed);
            self.feed(wire::data_packet(id, &errors.to_le_bytes()))
                .await;
        }
        Ok(())
    }

    /// Queues a packet for the client, flushed before the server next waits for input.
    async fn feed(&mut self, packet: bytes::Bytes) {
        if !self.write_failed {
            // A client that stops reading (or closes) must not stop the server from
            // reading what it already sent.
            match self.ws.feed(Message::binary(packet)).await {
                Ok(()) => self.dirty = true,
                Err(_) => self.write_failed = true,
            }
        }
    }
}

fn debug() -> bool {
    static DEBUG: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("WISP_BENCH_DEBUG").is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(seq: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0xa5; len];
        stamp_payload(&mut v, seq);
        v
    }

    #[test]
    fn in_order_payloads_pass() {
        for seq in 0..3 {
            assert_eq!(check_payload(&payload(seq, 1024), seq, 1024), Ok(()));
        }
    }

    #[test]
    fn a_gap_is_reported_as_loss_or_reordering() {
        let err = check_payload(&payload(2, 1024), 1, 1024).unwrap_err();
        assert!(err.contains("expected 1"), "{err}");
    }

    #[test]
    fn a_truncated_payload_is_reported() {
        let mut p = payload(0, 1024);
        p.truncate(1000);
        assert!(check_payload(&p, 0, 1024).is_err());
    }

    #[test]
    fn a_corrupted_tail_is_reported() {
        let mut p = payload(7, 64);
        let n = p.len();
        p[n - 1] ^= 1;
        assert!(check_payload(&p, 7, 64).is_err());
    }
}
