//! One stream of a [`FaultyServer`](super::FaultyServer) connection: the
//! upstream TCP or UDP socket, the queue of the client's DATA with its credit
//! accounting, and the copy loops both ways.

use std::future::Future;
use std::io;
use std::net::ToSocketAddrs;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until, timeout};
use wisp_client::proto::{CloseReason, ConnectPacket, StreamType};

use super::Shared;
use super::conn::Wire;
use crate::net::{MAX_DATAGRAM, connected_udp};

/// Upper bound for resolving and connecting one upstream socket
/// asynchronously; a timeout is reported as 0x43.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound of a blocking connect ([`super::FaultConfig::connect_blocking`]).
const BLOCKING_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes read from an upstream TCP socket per DATA packet at most, without
/// coalescing.
const TCP_READ_CHUNK: usize = 16 * 1024;
/// With coalescing: a DATA is sent once the target has been silent this long.
const COALESCE_IDLE: Duration = Duration::from_millis(20);
/// With `merge_udp`: datagrams keep being merged while the next one arrives
/// within this window.
const MERGE_WINDOW: Duration = Duration::from_millis(10);
/// With `merge_udp`: the largest merged DATA payload.
const MERGE_LIMIT: usize = 60_000;
/// With `ignore_in_flight_credit`: how often the queue is forwarded upstream.
const SLOW_CONSUMER_TICK: Duration = Duration::from_millis(50);
/// With `ignore_in_flight_credit`: the queue is first forwarded once it has overflowed
/// (a DATA was dropped) or once the client has sent nothing for this long.
const SLOW_CONSUMER_STALL: Duration = Duration::from_secs(1);

/// A stream task, boxed so the connection can spawn either kind.
type StreamTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where the connection loop puts the client's DATA for one stream.
#[derive(Debug)]
pub(super) enum Inbox {
    /// A TCP stream: a queue with credit accounting.
    Tcp(Arc<TcpInbox>),
    /// A UDP stream: no flow control.
    Udp(mpsc::UnboundedSender<Bytes>),
}

impl Inbox {
    /// Takes one DATA payload from the client (sending a CONTINUE when one is
    /// due).
    pub(super) async fn push(&self, data: Bytes, wire: &Wire, shared: &Shared) {
        match self {
            Inbox::Tcp(inbox) => inbox.push(data, wire, shared).await,
            Inbox::Udp(tx) => {
                let _ = tx.send(data);
            }
        }
    }
}

/// Creates the stream's inbox and its task (not yet spawned).
pub(super) fn open(
    id: u32,
    connect: ConnectPacket,
    tag: String,
    wire: Wire,
    shared: Arc<Shared>,
) -> (Inbox, StreamTask) {
    let (tx, rx) = mpsc::unbounded_channel();
    if connect.stream_type == StreamType::UDP {
        let task = udp_stream(id, connect, rx, tag, wire, shared);
        return (Inbox::Udp(tx), Box::pin(task));
    }
    let inbox = Arc::new(TcpInbox {
        id,
        tag: tag.clone(),
        faulty: shared.config.ignore_in_flight_credit,
        credit: Mutex::new(Credit::new(shared.config.buffer_size)),
        arrived: Notify::new(),
        tx,
    });
    let task = tcp_stream(id, connect, Arc::clone(&inbox), rx, tag, wire, shared);
    (Inbox::Tcp(inbox), Box::pin(task))
}

/// Flow-control bookkeeping of one TCP stream, in packets.
#[derive(Debug)]
struct Credit {
    /// The buffer size: the initial credit and the queue's capacity.
    buffer: u32,
    /// DATA received from the client.
    received: u64,
    /// DATA forwarded upstream.
    consumed: u64,
    /// DATA in the queue.
    queued: u64,
    /// The total DATA count the client may reach with the credit granted so
    /// far (exact: a CONTINUE is only sent when `received == limit`).
    limit: u64,
    /// DATA dropped (only with `ignore_in_flight_credit`).
    dropped: u64,
    /// Whether a client exceeding its credit was logged already.
    overshoot_logged: bool,
}

impl Credit {
    fn new(buffer: u32) -> Self {
        Self {
            buffer,
            received: 0,
            consumed: 0,
            queued: 0,
            limit: u64::from(buffer),
            dropped: 0,
            overshoot_logged: false,
        }
    }

    /// The correct rule: once the client has used all its credit (nothing of
    /// it can be in flight) and at least half the queue is free, grant the
    /// free slots.
    fn grant_if_due(&mut self) -> Option<u32> {
        if self.received < self.limit {
            return None;
        }
        let free = u64::from(self.buffer).saturating_sub(self.queued);
        if free < u64::from(self.buffer.div_ceil(2)) {
            return None;
        }
        self.limit = self.received + free;
        u32::try_from(free).ok()
    }
}

/// The DATA queue of one TCP stream and its credit accounting.
#[derive(Debug)]
pub(super) struct TcpInbox {
    id: u32,
    tag: String,
    /// `ignore_in_flight_credit`.
    faulty: bool,
    credit: Mutex<Credit>,
    /// Notified at each DATA from the client (the faulty consumer's start).
    arrived: Notify,
    tx: mpsc::UnboundedSender<Bytes>,
}

impl TcpInbox {
    async fn push(&self, data: Bytes, wire: &Wire, shared: &Shared) {
        let mut note = None;
        let grant = {
            let mut c = self.credit.lock().unwrap_or_else(PoisonError::into_inner);
            c.received += 1;
            if self.faulty {
                if c.queued >= u64::from(c.buffer) {
                    c.dropped += 1;
                    if c.dropped == 1 {
                        note = Some(format!(
                            "ignore-in-flight-credit: queue full ({} packets): dropping DATA #{}",
                            c.buffer, c.received
                        ));
                    }
                } else {
                    c.queued += 1;
                    let _ = self.tx.send(data);
                }
                let every = u64::from((c.buffer / 2).max(1));
                c.received.is_multiple_of(every).then_some(c.buffer)
            } else {
                c.queued += 1;
                let _ = self.tx.send(data);
                if c.received > c.limit && !c.overshoot_logged {
                    c.overshoot_logged = true;
                    note = Some(format!(
                        "the client exceeded its credit (DATA #{} > {} granted); queued anyway",
                        c.received, c.limit
                    ));
                }
                c.grant_if_due()
            }
        };
        self.arrived.notify_one();
        if let Some(note) = note {
            shared.log(format!("{}: {note}", self.tag));
        }
        if let Some(credit) = grant {
            wire.continue_(self.id, credit).await;
        }
    }

    /// One packet was forwarded upstream; the CONTINUE now due, if any.
    fn consumed(&self) -> Option<u32> {
        let mut c = self.credit.lock().unwrap_or_else(PoisonError::into_inner);
        c.consumed += 1;
        c.queued = c.queued.saturating_sub(1);
        if self.faulty { None } else { c.grant_if_due() }
    }

    /// DATA dropped so far.
    fn dropped(&self) -> u64 {
        self.credit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .dropped
    }
}

/// Connects upstream, then copies both ways until either side ends; sends
/// the CLOSE that says how it ended.
async fn tcp_stream(
    id: u32,
    connect: ConnectPacket,
    inbox: Arc<TcpInbox>,
    rx: mpsc::UnboundedReceiver<Bytes>,
    tag: String,
    wire: Wire,
    shared: Arc<Shared>,
) {
    let upstream = if shared.config.connect_blocking {
        shared.log(format!(
            "{tag}: blocking connect to {}:{} on the event loop (connect-blocking)",
            connect.host, connect.port
        ));
        connect_blocking(&connect.host, connect.port)
    } else {
        connect_async(&connect.host, connect.port).await
    };
    let upstream = match upstream {
        Ok(upstream) => upstream,
        Err((reason, why)) => {
            shared.log(format!(
                "{tag}: connect to {}:{} failed: {why}: CLOSE {reason}",
                connect.host, connect.port
            ));
            wire.close(id, reason).await;
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    shared.log(format!(
        "{tag}: connected to {}:{}",
        connect.host, connect.port
    ));
    let (upstream_read, upstream_write) = upstream.into_split();
    let coalesce = shared.config.coalesce_data;
    let result = tokio::select! {
        result = to_upstream(upstream_write, rx, &inbox, &wire) => result,
        result = to_client(id, upstream_read, coalesce, &wire) => result,
    };
    let (reason, why) = match result {
        Ok(End::Upstream) => (CloseReason::VOLUNTARY, "the target closed".to_owned()),
        Ok(End::Client) => return,
        Err(e) => (CloseReason::UNEXPECTED, format!("I/O error: {e}")),
    };
    let dropped = inbox.dropped();
    let dropped = if dropped > 0 {
        format!(" ({dropped} DATA dropped)")
    } else {
        String::new()
    };
    shared.log(format!("{tag}: {why}{dropped}: CLOSE {reason}"));
    wire.close(id, reason).await;
}

/// How a stream's copy loop ended without an error.
enum End {
    /// The target closed its side.
    Upstream,
    /// The client side is gone (the stream was closed or the connection
    /// ended): no CLOSE is due.
    Client,
}

/// Forwards the client's DATA to the target, sending CONTINUE as the queue
/// drains (or, with `ignore_in_flight_credit`, draining only every 50 ms).
async fn to_upstream(
    mut upstream: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    inbox: &TcpInbox,
    wire: &Wire,
) -> io::Result<End> {
    if inbox.faulty {
        // The busy server first lets its queue fill: a client that keeps the (wrongly
        // granted) credit in flight overflows it whatever the speed of either side, while
        // one that waits for each echo gets it after SLOW_CONSUMER_STALL.
        while inbox.dropped() == 0
            && timeout(SLOW_CONSUMER_STALL, inbox.arrived.notified())
                .await
                .is_ok()
        {}
        let mut tick = interval(SLOW_CONSUMER_TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            loop {
                match rx.try_recv() {
                    Ok(data) => {
                        upstream.write_all(&data).await?;
                        inbox.consumed();
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => return Ok(End::Client),
                }
            }
        }
    }
    while let Some(data) = rx.recv().await {
        upstream.write_all(&data).await?;
        if let Some(credit) = inbox.consumed()
            && !wire.continue_(inbox.id, credit).await
        {
            return Ok(End::Client);
        }
    }
    Ok(End::Client)
}

/// Forwards the target's bytes to the client: one DATA per read, or with
/// `coalesce` one DATA per buffer of up to that many bytes.
async fn to_client(
    id: u32,
    mut upstream: OwnedReadHalf,
    coalesce: Option<usize>,
    wire: &Wire,
) -> io::Result<End> {
    let capacity = coalesce.unwrap_or(TCP_READ_CHUNK).max(1);
    let mut buf = vec![0u8; capacity];
    loop {
        let mut filled = upstream.read(&mut buf).await?;
        if filled == 0 {
            return Ok(End::Upstream);
        }
        let mut eof = false;
        if coalesce.is_some() {
            while filled < capacity {
                match timeout(COALESCE_IDLE, upstream.read(&mut buf[filled..])).await {
                    Ok(Ok(0)) => {
                        eof = true;
                        break;
                    }
                    Ok(Ok(n)) => filled += n,
                    Ok(Err(e)) => return Err(e),
                    Err(_) => break,
                }
            }
        }
        if !wire.data(id, &buf[..filled]).await {
            return Ok(End::Client);
        }
        if eof {
            return Ok(End::Upstream);
        }
    }
}

/// Resolves and connects without blocking the event loop.
async fn connect_async(host: &str, port: u16) -> Result<TcpStream, (CloseReason, String)> {
    match timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port))).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err((reason_for(&e), e.to_string())),
        Err(_) => Err((
            CloseReason::SERVER_STREAM_CONNECTION_TIMED_OUT,
            format!("no connection within {CONNECT_TIMEOUT:?}"),
        )),
    }
}

/// Resolves and connects with blocking calls, stalling the whole event loop
/// (the `connect_blocking` fault).
fn connect_blocking(host: &str, port: u16) -> Result<TcpStream, (CloseReason, String)> {
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| (CloseReason::SERVER_STREAM_UNREACHABLE, e.to_string()))?;
    let mut last = (
        CloseReason::SERVER_STREAM_UNREACHABLE,
        "no address".to_owned(),
    );
    for addr in addrs {
        match std::net::TcpStream::connect_timeout(&addr, BLOCKING_CONNECT_TIMEOUT) {
            Ok(stream) => {
                let registered = stream
                    .set_nonblocking(true)
                    .and_then(|()| TcpStream::from_std(stream));
                return registered.map_err(|e| (CloseReason::UNEXPECTED, e.to_string()));
            }
            Err(e) => last = (reason_for(&e), e.to_string()),
        }
    }
    Err(last)
}

/// The CLOSE reason for a failed connect.
fn reason_for(e: &io::Error) -> CloseReason {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => CloseReason::SERVER_STREAM_CONNECTION_REFUSED,
        io::ErrorKind::TimedOut => CloseReason::SERVER_STREAM_CONNECTION_TIMED_OUT,
        _ => CloseReason::SERVER_STREAM_UNREACHABLE,
    }
}

/// A UDP stream: one DATA per datagram both ways (or, with `merge_udp`,
/// datagrams read together merged into one DATA).
async fn udp_stream(
    id: u32,
    connect: ConnectPacket,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    tag: String,
    wire: Wire,
    shared: Arc<Shared>,
) {
    let socket = match timeout(CONNECT_TIMEOUT, connected_udp(&connect.host, connect.port)).await {
        Ok(Ok(socket)) => socket,
        Ok(Err(e)) => {
            shared.log(format!("{tag}: UDP socket failed: {e}: CLOSE 0x42"));
            wire.close(id, CloseReason::SERVER_STREAM_UNREACHABLE).await;
            return;
        }
        Err(_) => {
            shared.log(format!("{tag}: resolving timed out: CLOSE 0x42"));
            wire.close(id, CloseReason::SERVER_STREAM_UNREACHABLE).await;
            return;
        }
    };
    shared.log(format!(
        "{tag}: UDP socket for {}:{}",
        connect.host, connect.port
    ));
    let merge = shared.config.merge_udp;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let result: io::Result<()> = async {
        loop {
            tokio::select! {
                data = rx.recv() => match data {
                    Some(data) => send_datagram(&socket, &data).await?,
                    None => return Ok(()),
                },
                received = socket.recv(&mut buf) => match received {
                    Ok(n) if merge => {
                        let merged = merge_burst(&socket, &mut buf, n, &mut rx).await?;
                        for (payload, count) in merged {
                            if count > 1 {
                                shared.log(format!(
                                    "{tag}: merge-udp: {count} datagrams sent as one DATA of {} bytes",
                                    payload.len()
                                ));
                            }
                            if !wire.data(id, &payload).await {
                                return Ok(());
                            }
                        }
                    }
                    Ok(n) => {
                        if !wire.data(id, &buf[..n]).await {
                            return Ok(());
                        }
                    }
                    // An ICMP port unreachable for an earlier datagram.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                    Err(e) => return Err(e),
                },
            }
        }
    }
    .await;
    if let Err(e) = result {
        shared.log(format!("{tag}: UDP error: {e}: CLOSE 0x03"));
        wire.close(id, CloseReason::UNEXPECTED).await;
    }
}

/// Sends one datagram; an ICMP error from an earlier one is not fatal.
async fn send_datagram(socket: &UdpSocket, data: &[u8]) -> io::Result<()> {
    match socket.send(data).await {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
        other => other.map(|_| ()),
    }
}

/// With `merge_udp`: after a first datagram of `first` bytes in `buf`, keeps
/// reading while datagrams arrive within [`MERGE_WINDOW`] (still forwarding
/// the client's datagrams meanwhile), and returns the merged payloads with
/// the number of datagrams in each.
async fn merge_burst(
    socket: &UdpSocket,
    buf: &mut [u8],
    first: usize,
    rx: &mut mpsc::UnboundedReceiver<Bytes>,
) -> io::Result<Vec<(Vec<u8>, usize)>> {
    let mut done = Vec::new();
    let mut merged = buf[..first].to_vec();
    let mut count = 1;
    let mut deadline = Instant::now() + MERGE_WINDOW;
    loop {
        tokio::select! {
            received = socket.recv(buf) => match received {
                Ok(n) => {
                    if merged.len() + n > MERGE_LIMIT {
                        done.push((std::mem::take(&mut merged), count));
                        count = 0;
                    }
                    merged.extend_from_slice(&buf[..n]);
                    count += 1;
                    deadline = Instant::now() + MERGE_WINDOW;
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e),
            },
            Some(data) = rx.recv() => send_datagram(socket, &data).await?,
            () = sleep_until(deadline) => break,
        }
    }
    done.push((merged, count));
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_is_granted_only_when_nothing_can_be_in_flight() {
        let mut c = Credit::new(4);
        // Two of four packets received and forwarded: the client still has
        // credit, so a CONTINUE now could race DATA in flight.
        c.received = 2;
        c.consumed = 2;
        assert_eq!(c.grant_if_due(), None);
        // All four received, three still queued: less than half free.
        c.received = 4;
        c.queued = 3;
        assert_eq!(c.grant_if_due(), None);
        c.queued = 2;
        assert_eq!(c.grant_if_due(), Some(2));
        assert_eq!(c.limit, 6);
        // The new credit is not used up yet.
        c.queued = 0;
        assert_eq!(c.grant_if_due(), None);
        c.received = 6;
        assert_eq!(c.grant_if_due(), Some(4));
        assert_eq!(c.limit, 10);
    }

    #[test]
    fn a_buffer_of_one_still_grants() {
        let mut c = Credit::new(1);
        c.received = 1;
        c.queued = 1;
        assert_eq!(c.grant_if_due(), None);
        c.queued = 0;
        assert_eq!(c.grant_if_due(), Some(1));
    }
}
