//! A small Wisp server that misbehaves on request: [`FaultyServer`].
//!
//! The server suite judges real servers; its own tests need servers that are
//! wrong in exactly one known way. [`FaultyServer`] is a real, small Wisp
//! server (v1 and v2 over tokio-websockets, TCP and UDP streams proxied to
//! the destinations the client names, credit accounting, CLOSE handling,
//! password authentication, MOTD) whose [`FaultConfig`] switches on one
//! fault per field: crash or freeze on a given packet, connect synchronously
//! on the event loop, pad CLOSE or CONTINUE, echo `wisp-v2` while speaking
//! v1, merge UDP datagrams, reject a password late, lose DATA sent at exact
//! credit, coalesce target data into huge frames. With no fault it is a
//! correct server.
//!
//! It runs on its own thread with a single-threaded tokio runtime, as many
//! real servers (Node, Python asyncio) do: anything that blocks that thread
//! blocks everyone, and an in-process "crash" drops the runtime with every
//! socket in it. The `wisp-faulty-server` binary runs the same server as a
//! process (`--help` lists a flag per field), for suites that start and
//! restart the server under test themselves.
//!
//! ```no_run
//! use wisp_testkit::faulty::{FaultConfig, FaultyServer, PacketMatch};
//!
//! # fn demo() -> Result<(), wisp_testkit::faulty::StartError> {
//! let server = FaultyServer::start(FaultConfig {
//!     pad_close: 3,
//!     crash_on: Some(PacketMatch::data_starting_with(&b"CRASH"[..])),
//!     ..FaultConfig::default()
//! })?;
//! println!("connect a Wisp client to {}", server.url());
//! # Ok(())
//! # }
//! ```

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub mod cli;
mod config;
mod conn;
mod stream;

pub use config::{FaultConfig, Handshake, PacketMatch, ParseError};

/// The exit status of the `wisp-faulty-server` binary after
/// [`FaultConfig::crash_on`] matched (the status of a panicking Rust
/// program).
pub const CRASH_EXIT_CODE: i32 = 101;

/// Pause after a failed `accept` (for example when out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Log lines kept in memory (the oldest are forgotten).
const LOG_CAPACITY: usize = 2000;

/// Where a [`FaultyServer`] stands.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerState {
    /// Serving.
    Running,
    /// [`FaultConfig::freeze_on`] matched: nothing is answered any more.
    Frozen {
        /// The packet that froze it.
        by: String,
    },
    /// [`FaultConfig::crash_on`] matched: the listener and every connection
    /// are gone.
    Crashed {
        /// The packet that crashed it.
        by: String,
    },
    /// Stopped by its owner (the [`FaultyServer`] was dropped).
    Stopped,
}

/// Why a [`FaultyServer`] could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The [`FaultConfig`] asks for something impossible.
    #[error("invalid FaultConfig: {0}")]
    InvalidConfig(String),
    /// The listening socket could not be set up.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The error.
        source: io::Error,
    },
    /// The server's thread or runtime could not be created.
    #[error("cannot start the server thread: {0}")]
    Thread(io::Error),
}

/// A fault-injecting Wisp server on its own thread: see the [module
/// documentation](self) and [`FaultConfig`].
///
/// Dropping it stops the server (closing every socket) unless its thread is
/// stuck in a [blocking connect](FaultConfig::connect_blocking); the thread
/// is never joined on drop, so a drop never hangs.
#[derive(Debug)]
pub struct FaultyServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    state: watch::Receiver<ServerState>,
    thread: Option<thread::JoinHandle<()>>,
}

impl FaultyServer {
    /// Starts a server on `127.0.0.1:0` (a free port), logging to memory only
    /// (see [`FaultyServer::log`]).
    ///
    /// # Errors
    ///
    /// An invalid configuration ([`FaultConfig::validate`]), or a failure to
    /// bind or to start the thread.
    pub fn start(config: FaultConfig) -> Result<FaultyServer, StartError> {
        Self::start_on((Ipv4Addr::LOCALHOST, 0).into(), config, false)
    }

    /// Starts a server on `addr` (port 0: a free port), also writing every
    /// log line to stderr when `log_to_stderr` is set.
    ///
    /// # Errors
    ///
    /// As [`FaultyServer::start`].
    pub fn start_on(
        addr: SocketAddr,
        config: FaultConfig,
        log_to_stderr: bool,
    ) -> Result<FaultyServer, StartError> {
        config.validate().map_err(StartError::InvalidConfig)?;
        let bind_error = |source| StartError::Bind { addr, source };
        let listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        let (state_tx, state) = watch::channel(ServerState::Running);
        let shared = Arc::new(Shared {
            config,
            state: state_tx,
            log: Log::new(log_to_stderr),
        });
        let thread_shared = Arc::clone(&shared);
        // The runtime is built, used and dropped on its own thread only (a
        // runtime dropped inside the caller's async context would panic).
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = thread::Builder::new()
            .name(format!("faulty-wisp-{}", local.port()))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => serve(listener, thread_shared).await,
                        Err(e) => {
                            thread_shared.log(format!("cannot register the listener: {e}"));
                            thread_shared.stop();
                        }
                    }
                });
                // Dropping the runtime here drops every connection task and
                // with it every socket.
            })
            .map_err(StartError::Thread)?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(StartError::Thread(e)),
            Err(_) => {
                return Err(StartError::Thread(io::Error::other(
                    "the server thread ended before its runtime started",
                )));
            }
        }
        shared.log(format!(
            "listening on ws://{local}/ (handshake {}, buffer {}, faults: {})",
            shared.config.effective_handshake(),
            shared.config.buffer_size,
            shared.config.describe_faults()
        ));
        Ok(FaultyServer {
            addr: local,
            shared,
            state,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The WebSocket URL of the Wisp endpoint, `ws://ADDR/` (any path is
    /// accepted).
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &FaultConfig {
        &self.shared.config
    }

    /// Where it stands now.
    pub fn state(&self) -> ServerState {
        self.state.borrow().clone()
    }

    /// Waits up to `bound` for a state that satisfies `want`.
    ///
    /// # Errors
    ///
    /// The state at the end of `bound` when none satisfied `want`.
    pub async fn wait_for_state(
        &self,
        bound: Duration,
        want: impl FnMut(&ServerState) -> bool,
    ) -> Result<ServerState, ServerState> {
        let mut rx = self.state.clone();
        match tokio::time::timeout(bound, rx.wait_for(want)).await {
            Ok(Ok(state)) => Ok(state.clone()),
            Ok(Err(_)) | Err(_) => Err(self.state()),
        }
    }

    /// Every log line so far (the last 2000): connections, handshakes,
    /// streams, and each fault as it fires.
    pub fn log(&self) -> Vec<String> {
        self.shared.log.lines()
    }

    /// Waits up to `bound` for a log line containing `needle`; whether one
    /// appeared.
    pub async fn wait_for_log(&self, bound: Duration, needle: &str) -> bool {
        let mut rx = self.shared.log.written.subscribe();
        let search = async {
            loop {
                if self.shared.log.contains(needle) {
                    return true;
                }
                if rx.changed().await.is_err() {
                    return false;
                }
            }
        };
        tokio::time::timeout(bound, search).await.unwrap_or(false)
    }

    /// Blocks the calling thread until the server's thread ends (after a
    /// crash, or never while it serves or is frozen) and returns the final
    /// state. For `main` functions; never call it inside an async runtime.
    pub fn wait(mut self) -> ServerState {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.state()
    }
}

impl Drop for FaultyServer {
    fn drop(&mut self) {
        self.shared.stop();
    }
}

/// What every task of one server shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: FaultConfig,
    state: watch::Sender<ServerState>,
    log: Log,
}

impl Shared {
    /// Records one log line.
    pub(crate) fn log(&self, line: String) {
        self.log.push(line);
    }

    /// Freezes the whole server (from [`ServerState::Running`] only).
    pub(crate) fn freeze(&self, by: String) {
        self.log(format!("FREEZE: {by}: no more answers, no more upgrades"));
        self.state.send_if_modified(|state| {
            let running = *state == ServerState::Running;
            if running {
                *state = ServerState::Frozen { by };
            }
            running
        });
    }

    /// Crashes the whole server (unless it is already crashed or stopped).
    pub(crate) fn crash(&self, by: String) {
        self.log(format!(
            "CRASH: {by}: closing the listener and every connection"
        ));
        self.state.send_if_modified(|state| {
            let alive = matches!(state, ServerState::Running | ServerState::Frozen { .. });
            if alive {
                *state = ServerState::Crashed { by };
            }
            alive
        });
    }

    /// Stops the server (unless it already crashed).
    fn stop(&self) {
        self.state.send_if_modified(|state| {
            let alive = matches!(state, ServerState::Running | ServerState::Frozen { .. });
            if alive {
                *state = ServerState::Stopped;
            }
            alive
        });
    }

    /// Runs `task` until the server freezes; from then on `task` is kept
    /// alive (its sockets stay open) but never polled again.
    pub(crate) async fn until_frozen<F: Future>(&self, task: F) -> Option<F::Output> {
        let mut state = self.state.subscribe();
        let frozen = state.wait_for(|s| matches!(s, ServerState::Frozen { .. }));
        let task = std::pin::pin!(task);
        tokio::select! {
            biased;
            Ok(_) = frozen => {}
            output = task => return Some(output),
        }
        std::future::pending::<()>().await;
        None
    }
}

/// Stops processing for good after [`Shared::crash`] or [`Shared::freeze`]:
/// the runtime drops (crash) or never polls again (freeze) the caller.
pub(crate) async fn halt() -> ! {
    loop {
        std::future::pending::<()>().await;
    }
}

/// The accept loop: one task per connection, until a crash or a stop.
async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut state = shared.state.subscribe();
    let mut conns = JoinSet::new();
    let mut next_id: u64 = 1;
    loop {
        tokio::select! {
            ended = state.wait_for(|s| matches!(s, ServerState::Crashed { .. } | ServerState::Stopped)) => {
                // Close the listener before any connection, so that a client
                // that sees its connection end is refused on reconnect.
                drop(listener);
                if let Ok(ended) = ended {
                    shared.log(format!("ended: {:?}", *ended));
                }
                return;
            }
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let id = next_id;
                    next_id += 1;
                    conns.spawn(serve_guarded(tcp, peer, id, Arc::clone(&shared)));
                }
                Err(e) => {
                    shared.log(format!("accept failed: {e}"));
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// One connection, frozen with the server.
async fn serve_guarded(tcp: TcpStream, peer: SocketAddr, id: u64, shared: Arc<Shared>) {
    let shared2 = Arc::clone(&shared);
    shared2
        .until_frozen(conn::serve_connection(tcp, peer, id, shared))
        .await;
}

/// The in-memory log (and optional stderr copy).
#[derive(Debug)]
struct Log {
    lines: Mutex<VecDeque<String>>,
    stderr: bool,
    /// Bumped on every line, to wake [`FaultyServer::wait_for_log`].
    written: watch::Sender<u64>,
}

impl Log {
    fn new(stderr: bool) -> Self {
        Self {
            lines: Mutex::new(VecDeque::new()),
            stderr,
            written: watch::Sender::new(0),
        }
    }

    fn push(&self, line: String) {
        if self.stderr {
            eprintln!("wisp-faulty-server: {line}");
        }
        {
            let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
            if lines.len() == LOG_CAPACITY {
                lines.pop_front();
            }
            lines.push_back(line);
        }
        self.written.send_modify(|n| *n += 1);
    }

    fn lines(&self) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        lines.iter().cloned().collect()
    }

    fn contains(&self, needle: &str) -> bool {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        lines.iter().any(|line| line.contains(needle))
    }
}
