//! Loopback targets for the streams that the servers open.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

use crate::net::MAX_DATAGRAM;

/// A TCP server on `127.0.0.1` that echoes every byte it receives on every
/// connection, and half-closes its side once the peer has half-closed.
///
/// Must be started inside a tokio runtime; its tasks (the accept loop and all
/// connections) are aborted when it is dropped.
#[derive(Debug)]
pub struct TcpEcho {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    open: tokio::sync::watch::Receiver<usize>,
    task: JoinHandle<()>,
}

impl TcpEcho {
    /// Binds `127.0.0.1:0` and starts echoing.
    ///
    /// # Panics
    ///
    /// If binding a loopback port fails.
    pub async fn start() -> TcpEcho {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind the TCP echo on 127.0.0.1:0");
        let addr = listener.local_addr().expect("TCP echo local address");
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        let (open_tx, open) = tokio::sync::watch::channel(0usize);
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        if let Ok((stream, _)) = accepted {
                            counter.fetch_add(1, Ordering::Relaxed);
                            conns.spawn(echo_tcp(stream));
                            open_tx.send_replace(conns.len());
                        }
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {
                        open_tx.send_replace(conns.len());
                    }
                }
            }
        });
        TcpEcho {
            addr,
            connections,
            open,
            task,
        }
    }

    /// Where it listens (`127.0.0.1:P`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections it has accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// How many connections are open now.
    pub fn open_connections(&self) -> usize {
        *self.open.borrow()
    }

    /// Waits until no connection is open, at most `bound`. Returns whether that happened.
    pub async fn wait_idle(&self, bound: std::time::Duration) -> bool {
        let mut open = self.open.clone();
        tokio::time::timeout(bound, open.wait_for(|&n| n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl Drop for TcpEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn echo_tcp(mut stream: TcpStream) {
    let (mut reader, mut writer) = stream.split();
    if tokio::io::copy(&mut reader, &mut writer).await.is_ok() {
        let _ = writer.shutdown().await;
    }
}

/// A UDP socket on `127.0.0.1` that sends every datagram it receives back to
/// its sender: one datagram in, one identical datagram out.
///
/// Must be started inside a tokio runtime; its task is aborted when it is
/// dropped.
#[derive(Debug)]
pub struct UdpEcho {
    addr: SocketAddr,
    datagrams: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl UdpEcho {
    /// Binds `127.0.0.1:0` and starts echoing.
    ///
    /// # Panics
    ///
    /// If binding a loopback port fails.
    pub async fn start() -> UdpEcho {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind the UDP echo on 127.0.0.1:0");
        let addr = socket.local_addr().expect("UDP echo local address");
        let datagrams = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&datagrams);
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            loop {
                // Errors (such as ICMP port unreachable reported on a later
                // receive) concern one peer only: keep serving.
                if let Ok((len, peer)) = socket.recv_from(&mut buf).await {
                    counter.fetch_add(1, Ordering::Relaxed);
                    let _ = socket.send_to(&buf[..len], peer).await;
                }
            }
        });
        UdpEcho {
            addr,
            datagrams,
            task,
        }
    }

    /// Where it listens (`127.0.0.1:P`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many datagrams it has received (and echoed) so far.
    pub fn datagrams(&self) -> usize {
        self.datagrams.load(Ordering::Relaxed)
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP server on `127.0.0.1` that accepts connections and never reads from
/// them (nor writes, nor closes them while it lives), so that a sender fills
/// the socket buffers: a target for back-pressure tests.
///
/// Must be started inside a tokio runtime; its task is aborted, and the
/// accepted connections closed, when it is dropped.
#[derive(Debug)]
pub struct TcpSink {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TcpSink {
    /// Binds `127.0.0.1:0` and starts accepting.
    ///
    /// # Panics
    ///
    /// If binding a loopback port fails.
    pub async fn start() -> TcpSink {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind the TCP sink on 127.0.0.1:0");
        let addr = listener.local_addr().expect("TCP sink local address");
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                if let Ok((stream, _)) = listener.accept().await {
                    held.push(stream);
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        TcpSink {
            addr,
            connections,
            task,
        }
    }

    /// Where it listens (`127.0.0.1:P`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections it has accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for TcpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How long a connect to a [`FullBacklogTarget`] being filled may take before
/// the queue counts as full (a loopback connect that is accepted by the
/// kernel completes in microseconds; one whose SYN is dropped waits a second
/// for the first retransmission).
const BACKLOG_PROBE: Duration = Duration::from_millis(500);
/// Connections made at most to fill a [`FullBacklogTarget`]'s accept queue.
const BACKLOG_MAX_FILL: usize = 64;

/// A TCP listener on `127.0.0.1` whose accept queue is full and never
/// drained: the destination that is slowest to connect.
///
/// It listens with a backlog of 0 and is never accepted from; it is filled
/// with connections (held open) until one more connect no longer completes.
/// From then on the kernel drops every SYN to it, so a connect hangs in the
/// kernel (SYN retransmissions) until the connector's own timeout: an
/// asynchronous server should answer other clients meanwhile and eventually
/// CLOSE the stream with 0x43, while a server that connects synchronously on
/// its event loop freezes for everyone.
///
/// Dropping it closes the listener and the fillers; a connect still waiting
/// then fails at its next SYN retransmission.
#[derive(Debug)]
pub struct FullBacklogTarget {
    addr: SocketAddr,
    fillers: usize,
    _listener: TcpListener,
    _held: Vec<TcpStream>,
}

impl FullBacklogTarget {
    /// Binds `127.0.0.1:0` with backlog 0 and fills its accept queue.
    ///
    /// # Panics
    ///
    /// If binding fails, if a filling connect fails outright, or if the queue
    /// does not fill within 64 connections.
    pub async fn start() -> FullBacklogTarget {
        let socket = TcpSocket::new_v4().expect("a TCP socket for the full-backlog target");
        socket
            .bind((Ipv4Addr::LOCALHOST, 0).into())
            .expect("bind the full-backlog target on 127.0.0.1:0");
        let listener = socket.listen(0).expect("listen with backlog 0");
        let addr = listener.local_addr().expect("full-backlog target address");
        let mut held = Vec::new();
        loop {
            assert!(
                held.len() < BACKLOG_MAX_FILL,
                "the accept queue of {addr} did not fill within {BACKLOG_MAX_FILL} connections"
            );
            match tokio::time::timeout(BACKLOG_PROBE, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => held.push(stream),
                Ok(Err(e)) => panic!("filling the accept queue of {addr}: {e}"),
                // This connect's SYN was dropped: the queue is full. The
                // pending connect is abandoned (its socket closed).
                Err(_) => break,
            }
        }
        FullBacklogTarget {
            addr,
            fillers: held.len(),
            _listener: listener,
            _held: held,
        }
    }

    /// Where it listens (`127.0.0.1:P`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections fill its accept queue.
    pub fn fillers(&self) -> usize {
        self.fillers
    }
}

/// A `127.0.0.1` TCP port with nothing listening on it a moment ago (bind
/// port 0, read the port, drop the listener): connecting to it is refused.
///
/// # Panics
///
/// If binding a loopback port fails.
pub async fn refused_port() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address")
}
