//! Targets for the streams that the servers open (on loopback unless an address is
//! given), and [`TcpService`], the accept loop they are built on.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

use crate::net::MAX_DATAGRAM;

/// Pause after a failed `accept` (for example when out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A TCP server on a given address (port 0) that runs `handle` on every connection it
/// accepts (with `TCP_NODELAY` set): the accept loop of every TCP target here, of the
/// in-process wisp-mux server and of the conformance harness's targets. It counts the
/// connections it accepted and those still open.
///
/// Must be started inside a tokio runtime; its tasks (the accept loop and all
/// connections) are aborted when it is dropped.
#[derive(Debug)]
pub struct TcpService {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    open: tokio::sync::watch::Receiver<usize>,
    task: JoinHandle<()>,
}

impl TcpService {
    /// Binds `(ip, 0)` and starts accepting.
    ///
    /// # Errors
    ///
    /// If binding fails.
    pub async fn bind<F, Fut>(ip: IpAddr, handle: F) -> std::io::Result<TcpService>
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::serve(TcpListener::bind((ip, 0)).await?, handle)
    }

    /// Starts accepting on a listener set up by the caller (socket options of its own:
    /// accepted connections inherit them).
    ///
    /// # Errors
    ///
    /// If the listener has no local address.
    pub fn serve<F, Fut>(listener: TcpListener, handle: F) -> std::io::Result<TcpService>
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let addr = listener.local_addr()?;
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        let (open_tx, open) = tokio::sync::watch::channel(0usize);
        let task = tokio::spawn(async move {
            // The connections die with the accept task (JoinSet aborts them on drop).
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            counter.fetch_add(1, Ordering::Relaxed);
                            conns.spawn(handle(stream));
                            open_tx.send_replace(conns.len());
                        }
                        Err(_) => tokio::time::sleep(ACCEPT_BACKOFF).await,
                    },
                    Some(_) = conns.join_next(), if !conns.is_empty() => {
                        open_tx.send_replace(conns.len());
                    }
                }
            }
        });
        Ok(TcpService {
            addr,
            connections,
            open,
            task,
        })
    }

    /// Where it listens.
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
    pub async fn wait_idle(&self, bound: Duration) -> bool {
        let mut open = self.open.clone();
        tokio::time::timeout(bound, open.wait_for(|&n| n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl Drop for TcpService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP server that echoes every byte it receives on every connection, and
/// half-closes its side once the peer has half-closed.
///
/// Must be started inside a tokio runtime; its tasks (the accept loop and all
/// connections) are aborted when it is dropped.
#[derive(Debug)]
pub struct TcpEcho(TcpService);

impl TcpEcho {
    /// Binds `127.0.0.1:0` and starts echoing.
    ///
    /// # Panics
    ///
    /// If binding a loopback port fails.
    pub async fn start() -> TcpEcho {
        TcpEcho::bind(Ipv4Addr::LOCALHOST.into())
            .await
            .expect("bind the TCP echo on 127.0.0.1:0")
    }

    /// Binds `(ip, 0)` and starts echoing.
    ///
    /// # Errors
    ///
    /// If binding fails.
    pub async fn bind(ip: IpAddr) -> std::io::Result<TcpEcho> {
        TcpService::bind(ip, echo_tcp).await.map(TcpEcho)
    }

    /// Where it listens (`127.0.0.1:P` from [`TcpEcho::start`]).
    pub fn addr(&self) -> SocketAddr {
        self.0.addr()
    }

    /// How many connections it has accepted so far.
    pub fn connections(&self) -> usize {
        self.0.connections()
    }

    /// How many connections are open now.
    pub fn open_connections(&self) -> usize {
        self.0.open_connections()
    }

    /// Waits until no connection is open, at most `bound`. Returns whether that happened.
    pub async fn wait_idle(&self, bound: Duration) -> bool {
        self.0.wait_idle(bound).await
    }
}

async fn echo_tcp(mut stream: TcpStream) {
    let (mut reader, mut writer) = stream.split();
    if tokio::io::copy(&mut reader, &mut writer).await.is_ok() {
        let _ = writer.shutdown().await;
    }
}

/// A UDP socket that sends every datagram it receives back to its sender: one datagram in, one identical datagram out.
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
        UdpEcho::bind(Ipv4Addr::LOCALHOST.into())
            .await
            .expect("bind the UDP echo on 127.0.0.1:0")
    }

    /// Binds `(ip, 0)` and starts echoing.
    ///
    /// # Errors
    ///
    /// If binding fails.
    pub async fn bind(ip: IpAddr) -> std::io::Result<UdpEcho> {
        let socket = UdpSocket::bind((ip, 0)).await?;
        let addr = socket.local_addr()?;
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
        Ok(UdpEcho {
            addr,
            datagrams,
            task,
        })
    }

    /// Where it listens (`127.0.0.1:P` from [`UdpEcho::start`]).
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

/// A TCP server that accepts connections and never reads from them (nor writes,
/// nor closes them while it lives), so that a sender fills the socket buffers: a
/// target for back-pressure tests.
///
/// Must be started inside a tokio runtime; its task is aborted, and the
/// accepted connections closed, when it is dropped.
#[derive(Debug)]
pub struct TcpSink(TcpService);

impl TcpSink {
    /// Binds `127.0.0.1:0` and starts accepting.
    ///
    /// # Panics
    ///
    /// If binding a loopback port fails.
    pub async fn start() -> TcpSink {
        TcpSink::bind(Ipv4Addr::LOCALHOST.into())
            .await
            .expect("bind the TCP sink on 127.0.0.1:0")
    }

    /// Binds `(ip, 0)` and starts accepting.
    ///
    /// # Errors
    ///
    /// If binding fails.
    pub async fn bind(ip: IpAddr) -> std::io::Result<TcpSink> {
        let service = TcpService::bind(ip, |stream| async move {
            // Hold the connection open without reading until the sink stops.
            let _held = stream;
            std::future::pending::<()>().await;
        });
        service.await.map(TcpSink)
    }

    /// Where it listens (`127.0.0.1:P` from [`TcpSink::start`]).
    pub fn addr(&self) -> SocketAddr {
        self.0.addr()
    }

    /// How many connections it has accepted so far.
    pub fn connections(&self) -> usize {
        self.0.connections()
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
        match Self::bind(Ipv4Addr::LOCALHOST.into()).await {
            Ok(t) => t,
            Err(e) => panic!("the full-backlog target: {e}"),
        }
    }

    /// Binds `(ip, 0)` with backlog 0 and fills its accept queue (connecting from this
    /// host; an unspecified `ip` is filled through loopback).
    ///
    /// # Errors
    ///
    /// If binding fails, if a filling connect fails outright, or if the queue does not
    /// fill within 64 connections.
    pub async fn bind(ip: IpAddr) -> std::io::Result<FullBacklogTarget> {
        let socket = if ip.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.bind((ip, 0).into())?;
        let listener = socket.listen(0)?;
        let addr = listener.local_addr()?;
        let mut to = addr;
        if ip.is_unspecified() {
            to.set_ip(match ip {
                IpAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let mut held = Vec::new();
        loop {
            if held.len() >= BACKLOG_MAX_FILL {
                return Err(std::io::Error::other(format!(
                    "the accept queue of {addr} did not fill within {BACKLOG_MAX_FILL} connections"
                )));
            }
            match tokio::time::timeout(BACKLOG_PROBE, TcpStream::connect(to)).await {
                Ok(Ok(stream)) => held.push(stream),
                Ok(Err(e)) => {
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!("filling the accept queue of {addr}: {e}"),
                    ));
                }
                // This connect's SYN was dropped: the queue is full. The
                // pending connect is abandoned (its socket closed).
                Err(_) => break,
            }
        }
        Ok(FullBacklogTarget {
            addr,
            fillers: held.len(),
            _listener: listener,
            _held: held,
        })
    }

    /// Where it listens (`127.0.0.1:P` from [`FullBacklogTarget::start`]).
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
    refused_port_on(Ipv4Addr::LOCALHOST.into())
        .await
        .expect("bind 127.0.0.1:0")
}

/// A TCP port on `ip` with nothing listening on it a moment ago: connecting to
/// it is refused.
///
/// # Errors
///
/// If binding fails.
pub async fn refused_port_on(ip: IpAddr) -> std::io::Result<SocketAddr> {
    TcpListener::bind((ip, 0)).await?.local_addr()
}
