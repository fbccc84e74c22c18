//! The destinations the server under test connects to on the harness's behalf: a TCP
//! echo, a UDP echo, a port that refuses, a TCP sink that never reads, a TCP discard
//! (reads and drops), a banner (writes one line, then closes), a reset (resets the
//! connection once data arrives), a watch (an echo that records when each connection
//! ends, [`WatchLog`]) and a full backlog (a listener whose accept queue is full: a
//! connect to it hangs in the kernel). They bind the address given (loopback by default) and live as long
//! as the [`Targets`] value.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use wisp_cases::Placeholders;
use wisp_testkit::{FullBacklogTarget, TcpEcho, TcpService, TcpSink, UdpEcho, refused_port_on};

/// What the banner target writes before it closes the connection.
pub const BANNER: &[u8] = b"wisp-conformance banner\n";

/// How many of the first bytes of each watch connection the log keeps.
const WATCH_PREFIX: usize = 256;

/// One connection the watch target accepted.
#[derive(Clone, Debug, Default)]
struct Watched {
    /// Its first bytes (up to [`WATCH_PREFIX`]).
    first: Vec<u8>,
    /// The peer closed (or reset) it.
    closed: bool,
}

/// What the watch target saw: each connection's first bytes and whether it has ended, so
/// a case can check that the server closed the connection that carried a stream's bytes.
#[derive(Clone, Debug, Default)]
pub struct WatchLog {
    conns: Arc<Mutex<Vec<Watched>>>,
    changed: Arc<Notify>,
}

/// Where the watch connection that carried some bytes stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchState {
    /// No connection started with those bytes.
    Unknown,
    /// More than one did: the bytes do not name one connection.
    Ambiguous,
    /// It is still open.
    Open,
    /// The server closed it.
    Closed,
}

impl WatchLog {
    fn update(&self, f: impl FnOnce(&mut Vec<Watched>)) {
        if let Ok(mut conns) = self.conns.lock() {
            f(&mut conns);
        }
        self.changed.notify_waiters();
    }

    /// The state of the connection whose first bytes are `first` (at most the first
    /// [`WATCH_PREFIX`] of them are compared).
    pub fn state(&self, first: &[u8]) -> WatchState {
        let want = &first[..first.len().min(WATCH_PREFIX)];
        let Ok(conns) = self.conns.lock() else {
            return WatchState::Unknown;
        };
        let mut found = conns.iter().filter(|c| c.first.starts_with(want));
        match (found.next(), found.next()) {
            (None, _) => WatchState::Unknown,
            (Some(_), Some(_)) => WatchState::Ambiguous,
            (Some(c), None) if c.closed => WatchState::Closed,
            (Some(_), None) => WatchState::Open,
        }
    }

    /// Waits until the connection that started with `first` is closed, or `bound` passes;
    /// returns its state then.
    pub async fn wait_closed(&self, first: &[u8], bound: Duration) -> WatchState {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let changed = self.changed.notified();
            let state = self.state(first);
            if matches!(state, WatchState::Closed | WatchState::Ambiguous) {
                return state;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.state(first);
            }
        }
    }
}

/// The running targets.
#[derive(Debug)]
pub struct Targets {
    /// Echoes every byte on every connection.
    pub tcp_echo: SocketAddr,
    /// Sends every datagram back to its sender.
    pub udp_echo: SocketAddr,
    /// Nothing listens here: a connect is refused.
    pub refused: SocketAddr,
    /// Accepts and never reads.
    pub sink: SocketAddr,
    /// Reads and drops everything.
    pub discard: SocketAddr,
    /// Writes [`BANNER`], then closes.
    pub banner: SocketAddr,
    /// Reads the first bytes that arrive, then resets the connection (an RST, no FIN): a
    /// network error in the middle of a stream.
    pub reset: SocketAddr,
    /// Echoes like `tcp_echo`, and logs when each connection ends ([`Targets::watch_log`]).
    pub watch: SocketAddr,
    /// What the watch target saw.
    pub watch_log: WatchLog,
    /// A listener whose accept queue is full and never drained: a connect to it hangs in
    /// the kernel (the destination slowest to connect).
    pub full_backlog: SocketAddr,
    /// Echoes at a bounded rate (2 KiB per millisecond) through
    /// small socket buffers, so the server's queue towards it fills and its flow control
    /// is what keeps the client's DATA from being lost.
    pub slow_echo: SocketAddr,
    /// The servers (`wisp_testkit`'s targets and five services of their own): dropping
    /// them stops every target.
    _running: (
        TcpEcho,
        UdpEcho,
        TcpSink,
        FullBacklogTarget,
        [TcpService; 5],
    ),
}

impl Targets {
    /// Binds every target on `ip` (port 0) and starts serving. Must run inside a tokio
    /// runtime.
    pub async fn start(ip: IpAddr) -> std::io::Result<Self> {
        let tcp_echo = TcpEcho::bind(ip).await?;
        let discard = TcpService::bind(ip, |mut s| async move {
            let mut buf = vec![0u8; 64 * 1024];
            while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
        })
        .await?;
        let banner = TcpService::bind(ip, |mut s| async move {
            let _ = s.write_all(BANNER).await;
            let _ = s.shutdown().await;
        })
        .await?;
        let reset = TcpService::bind(ip, |mut s| async move {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            // With a zero linger time, closing the socket sends an RST.
            let _ = s.set_zero_linger();
            drop(s);
        })
        .await?;
        let slow_echo = TcpService::serve(small_buffer_listener(ip)?, slow_echo_conn)?;
        let watch_log = WatchLog::default();
        let log = watch_log.clone();
        let watch = TcpService::bind(ip, move |s| watch_conn(s, log.clone())).await?;
        let sink = TcpSink::bind(ip).await?;
        let udp_echo = UdpEcho::bind(ip).await?;
        let full_backlog = FullBacklogTarget::bind(ip).await?;
        Ok(Self {
            tcp_echo: tcp_echo.addr(),
            udp_echo: udp_echo.addr(),
            refused: refused_port_on(ip).await?,
            sink: sink.addr(),
            discard: discard.addr(),
            banner: banner.addr(),
            reset: reset.addr(),
            watch: watch.addr(),
            watch_log,
            full_backlog: full_backlog.addr(),
            slow_echo: slow_echo.addr(),
            _running: (
                tcp_echo,
                udp_echo,
                sink,
                full_backlog,
                [discard, banner, reset, watch, slow_echo],
            ),
        })
    }

    /// The placeholder values for case files: each target's address, with `host` instead
    /// of the address it bound when given (a server on another machine reaches the
    /// harness by that name).
    pub fn placeholders(&self, host: Option<&str>) -> Placeholders {
        let mut p = Placeholders::default();
        for (name, addr) in self.list() {
            let h = host.map_or_else(|| addr.ip().to_string(), str::to_owned);
            p.set(name, &h, addr.port());
        }
        p
    }

    /// `(name, address)` of every target.
    pub fn list(&self) -> [(&'static str, SocketAddr); 10] {
        [
            ("tcp_echo", self.tcp_echo),
            ("udp_echo", self.udp_echo),
            ("refused", self.refused),
            ("sink", self.sink),
            ("discard", self.discard),
            ("banner", self.banner),
            ("reset", self.reset),
            ("watch", self.watch),
            ("full_backlog", self.full_backlog),
            ("slow_echo", self.slow_echo),
        ]
    }
}

/// Bytes the slow echo reads (and writes back) per tick.
const SLOW_ECHO_CHUNK: usize = 2048;
/// The slow echo's tick: 2 KiB per millisecond, about 2 MB/s per connection.
const SLOW_ECHO_TICK: Duration = Duration::from_millis(1);
/// The slow echo's socket receive buffer (the kernel doubles it; setting it turns off
/// autotuning, so the kernel does not absorb what the server forwards).
const SLOW_ECHO_RCVBUF: u32 = 8192;

/// A listener on `(ip, 0)` whose accepted connections have a small receive buffer.
fn small_buffer_listener(ip: IpAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if ip.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_recv_buffer_size(SLOW_ECHO_RCVBUF)?;
    socket.bind((ip, 0).into())?;
    socket.listen(128)
}

/// One connection of the slow echo: at most [`SLOW_ECHO_CHUNK`] bytes per
/// [`SLOW_ECHO_TICK`], echoed; half-closes after the peer's EOF.
async fn slow_echo_conn(mut s: TcpStream) {
    let mut buf = vec![0u8; SLOW_ECHO_CHUNK];
    let mut tick = tokio::time::interval(SLOW_ECHO_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if s.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    let _ = s.shutdown().await;
}

/// One connection of the watch target: echoes, logs its first bytes, and logs its end (EOF
/// or an error from the peer).
async fn watch_conn(mut s: TcpStream, log: WatchLog) {
    let index = {
        let mut i = 0;
        log.update(|conns| {
            i = conns.len();
            conns.push(Watched::default());
        });
        i
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        log.update(|conns| {
            let first = &mut conns[index].first;
            let room = WATCH_PREFIX.saturating_sub(first.len()).min(n);
            first.extend_from_slice(&buf[..room]);
        });
        if s.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    log.update(|conns| conns[index].closed = true);
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use tokio::net::{TcpStream, UdpSocket};

    use super::*;

    #[tokio::test]
    async fn targets_behave() {
        let t = Targets::start(IpAddr::V4(Ipv4Addr::LOCALHOST))
            .await
            .expect("targets start");
        let mut echo = TcpStream::connect(t.tcp_echo).await.expect("echo");
        echo.write_all(b"ping").await.expect("write");
        let mut buf = [0u8; 4];
        echo.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"ping");

        let mut banner = TcpStream::connect(t.banner).await.expect("banner");
        let mut got = Vec::new();
        banner.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, BANNER);

        let mut watched = TcpStream::connect(t.watch).await.expect("watch");
        watched.write_all(b"watch me").await.expect("write");
        let mut buf = [0u8; 8];
        watched.read_exact(&mut buf).await.expect("echo");
        assert_eq!(&buf, b"watch me");
        assert_eq!(t.watch_log.state(b"watch me"), WatchState::Open);
        assert_eq!(t.watch_log.state(b"other"), WatchState::Unknown);
        drop(watched);
        let state = t
            .watch_log
            .wait_closed(b"watch me", std::time::Duration::from_secs(5))
            .await;
        assert_eq!(state, WatchState::Closed);

        let mut reset = TcpStream::connect(t.reset).await.expect("reset");
        reset.write_all(b"x").await.expect("write");
        let err = reset.read_to_end(&mut got).await.expect_err("reset");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);

        let err = TcpStream::connect(t.refused).await.expect_err("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);

        let udp = UdpSocket::bind("127.0.0.1:0").await.expect("udp");
        udp.send_to(b"dgram", t.udp_echo).await.expect("send");
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), udp.recv(&mut buf))
            .await
            .expect("in time")
            .expect("recv");
        assert_eq!(&buf[..n], b"dgram");

        let p = t.placeholders(Some("harness.example"));
        assert_eq!(
            p.get("tcp_echo.port"),
            Some(t.tcp_echo.port().to_string().as_str())
        );
        assert_eq!(p.get("tcp_echo.host"), Some("harness.example"));
    }
}
