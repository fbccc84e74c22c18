//! Crash and freeze attribution: after a case that ends abnormally (a failure, a
//! connection error, its deadline), the harness checks that the server still serves (a
//! fresh TCP connect, WebSocket upgrade, handshake and one echo, each bounded by the step
//! timeout). When it does not, that case took the server down: it is FAILED with "the
//! server crashed (connection refused after this case)" or "the server froze (no upgrade
//! within N s after this case)", whatever its level.
//!
//! Then, without `--spawn`, every later case is NOT RUN ("not run: the server is down
//! since `<case>`"), and so is a case that was running beside the culprit (`-j` > 1; the
//! culprit's reason names them, since any of them may have done it). With `--spawn`
//! ([`super::spawn`]) the harness restarts the server (same port), adds the tail of its
//! stderr to the culprit's report, and goes on. When several cases were running at the
//! crash, the harness does not guess: it restarts the server and runs the rest of the
//! suite one case at a time, those cases first, so the one that takes the server down
//! again alone is named.
//!
//! A server that was never reachable (the probe and every liveness check failed) is not
//! "down since" anything: its cases stay connection errors (exit code 2).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use wisp_cases::client::VersionSel;
use wisp_client::ClientMux;
use wisp_client::proto::StreamType;
use wisp_client::transport::{TokioWebsocketsTransport, TransportExt};

use super::spawn::{STDERR_TAIL, Spawned};
use super::{Endpoint, RunMode, ServerConfig, offer, session};
use crate::engine::ours::{open_mux, v2_handshake};

/// What the echo of a liveness check carries.
const PING: &[u8] = b"wisp-conformance liveness check";

/// How a server stopped serving.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Dead {
    /// It no longer accepts connections (refused, reset), or its process exited.
    Crashed(String),
    /// It accepts TCP but does not complete an upgrade, a handshake or an echo in time.
    Froze(String),
}

impl Dead {
    /// `the server crashed (connection refused after this case)`.
    pub(crate) fn after(&self, when: &str) -> String {
        match self {
            Self::Crashed(how) => format!("the server crashed ({how} {when})"),
            Self::Froze(how) => format!("the server froze ({how} {when})"),
        }
    }
}

/// Checks that the server at `config.url` serves: TCP connect, WebSocket upgrade, the
/// run's handshake (with the run's credentials), and one echo through `tcp_echo`, each
/// bounded by the step timeout.
pub(crate) async fn check_alive(config: &ServerConfig, tcp_echo: &Endpoint) -> Result<(), Dead> {
    let bound = config.step_timeout;
    let secs = format!("{:.1} s", bound.as_secs_f64());
    let uri = session::check_url(&config.url).map_err(Dead::Crashed)?;
    let (host, port) = session::host_port(&uri);
    match tokio::time::timeout(bound, TcpStream::connect((host.as_str(), port))).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(Dead::Crashed("connection refused".to_owned()));
        }
        Ok(Err(e)) => return Err(Dead::Crashed(format!("cannot connect: {e}"))),
        Err(_) => return Err(Dead::Froze(format!("no TCP connection within {secs}"))),
    }
    let subprotocol = match config.mode {
        RunMode::V1 => None,
        RunMode::V2 => Some(wisp_client::transport::WISP_V2_SUBPROTOCOL),
    };
    let opened = session::open(&config.url, subprotocol, bound, config.insecure)
        .await
        .map_err(|e| {
            if e.contains("did not complete within") {
                Dead::Froze(format!("no upgrade within {secs}"))
            } else {
                Dead::Crashed(e)
            }
        })?;
    let (rx, tx) = TokioWebsocketsTransport(opened.ws).split_fast();
    let options = session::mux_options(bound);
    let version = match config.mode {
        RunMode::V1 => VersionSel::V1,
        RunMode::V2 => VersionSel::V2,
    };
    let password = config
        .credentials
        .clone()
        .map(|(user, pass)| (user, pass, config.password_layout));
    let handshake = v2_handshake(version, &offer(password.as_ref(), config.key.as_ref()), &[]);
    let (mux, driver) = open_mux(rx, tx, handshake, options, &[])
        .await
        .map_err(|e| Dead::Froze(format!("no Wisp handshake within {secs}: {e}")))?;
    let driver = tokio::spawn(driver);
    let echoed = echo_once(&mux, tcp_echo, bound).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), mux.close()).await;
    driver.abort();
    echoed.map_err(|e| Dead::Froze(format!("no echo within {secs}: {e}")))
}

async fn echo_once(mux: &ClientMux, to: &Endpoint, bound: Duration) -> Result<(), String> {
    let stream = tokio::time::timeout(bound, mux.new_stream(StreamType::TCP, &to.host, to.port))
        .await
        .map_err(|_| "no stream opened".to_owned())?
        .map_err(|e| e.to_string())?;
    let (mut read, mut write) = stream.into_split();
    tokio::time::timeout(bound, write.send(Bytes::from_static(PING)))
        .await
        .map_err(|_| "the write blocked".to_owned())?
        .map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    while got.len() < PING.len() {
        match tokio::time::timeout(bound, read.next()).await {
            Ok(Some(Ok(data))) => got.extend_from_slice(&data),
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(None) => return Err("the stream ended".to_owned()),
            Err(_) => return Err(format!("{} of {} bytes back", got.len(), PING.len())),
        }
    }
    if got != PING {
        return Err("the echo differs".to_owned());
    }
    Ok(())
}

/// What the health check after an abnormal case decided.
#[derive(Debug)]
pub(crate) enum AfterCase {
    /// The server still serves (or never did): the case keeps its own verdict.
    Alive,
    /// This case took the server down: FAILED for this reason; `transcript` adds the
    /// server's stderr tail (with `--spawn`).
    Culprit {
        /// The reason (`the server crashed (...)`).
        reason: String,
        /// What to add to the case's transcript.
        transcript: String,
    },
    /// The server went down while this case ran, because of another case (or of one of
    /// several running at once): with `--spawn` (it was restarted) run the case again;
    /// else it is NOT RUN for this reason.
    Casualty {
        /// `the server is down since <case>`.
        reason: String,
        /// The server was restarted: run the case again.
        rerun: bool,
    },
}

struct State {
    /// Incremented at each restart.
    generation: u64,
    /// The server is down (and not restarted), since this case (and why).
    down: Option<String>,
    /// A liveness check passed at least once (at the start, or after a case): only a
    /// server that served an echo can go down.
    ever_alive: bool,
    /// The case that ended last, for a server found down before a case could connect.
    last_finished: Option<String>,
    spawned: Option<Spawned>,
}

/// The run's view of the server's health; serialises the liveness checks and restarts.
pub(crate) struct Health {
    state: Mutex<State>,
    /// The cases running now.
    running: std::sync::Mutex<BTreeSet<String>>,
    /// After a crash among several running cases (with `--spawn`): cases run one at a
    /// time, each holding `serial`.
    one_at_a_time: AtomicBool,
    serial: Mutex<()>,
}

/// A case registered as running; unregisters it when dropped.
pub(crate) struct Running<'a> {
    health: &'a Health,
    case: String,
    _serial: Option<tokio::sync::MutexGuard<'a, ()>>,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut running = self
            .health
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        running.remove(&self.case);
    }
}

/// Where a case starts.
pub(crate) enum Before {
    /// Run it; pass this generation to [`Health::after_abnormal`].
    Run(u64),
    /// Do not: the server is down since a case.
    Down(String),
}

impl Health {
    /// The health of a run whose server served an echo at the start (`alive`), with the
    /// server process when the harness started it.
    pub(crate) fn new(alive: bool, spawned: Option<Spawned>) -> Self {
        Self {
            state: Mutex::new(State {
                generation: 0,
                down: None,
                ever_alive: alive,
                last_finished: None,
                spawned,
            }),
            running: std::sync::Mutex::new(BTreeSet::new()),
            one_at_a_time: AtomicBool::new(false),
            serial: Mutex::new(()),
        }
    }

    /// Registers `case` as running (after waiting for its turn when cases run one at a
    /// time); keep the value while the case runs.
    pub(crate) async fn start(&self, case: &str) -> Running<'_> {
        let serial = if self.one_at_a_time.load(Ordering::SeqCst) {
            Some(self.serial.lock().await)
        } else {
            None
        };
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(case.to_owned());
        Running {
            health: self,
            case: case.to_owned(),
            _serial: serial,
        }
    }

    /// The other cases running now.
    fn others(&self, case: &str) -> Vec<String> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.iter().filter(|c| *c != case).cloned().collect()
    }

    /// Whether a case may start now.
    pub(crate) async fn before(&self) -> Before {
        let state = self.state.lock().await;
        match &state.down {
            Some(since) => Before::Down(format!("not run: the server is down since {since}")),
            None => Before::Run(state.generation),
        }
    }

    /// Notes that `case` ended normally.
    pub(crate) async fn finished(&self, case: &str) {
        let mut state = self.state.lock().await;
        state.last_finished = Some(case.to_owned());
    }

    /// After `case` (started at `generation`) ended abnormally: checks the server, and
    /// decides whether the case took it down. `connected`: the case's own connection
    /// opened (else the server was down before the case could start).
    pub(crate) async fn after_abnormal(
        &self,
        case: &str,
        generation: u64,
        connected: bool,
        config: &ServerConfig,
        tcp_echo: &Endpoint,
    ) -> AfterCase {
        let mut state = self.state.lock().await;
        if !state.ever_alive {
            // It never served an echo: there is nothing to attribute (and a stalling
            // server would cost a full timeout per check).
            return AfterCase::Alive;
        }
        if state.generation != generation || state.down.is_some() {
            // Another case found the server down (and maybe restarted it) meanwhile.
            let since = state
                .down
                .clone()
                .unwrap_or_else(|| "another case".to_owned());
            return AfterCase::Casualty {
                reason: format!(
                    "not run: the server went down during this case (down since {since})"
                ),
                rerun: state.down.is_none(),
            };
        }
        let mut dead = match check_alive(config, tcp_echo).await {
            Ok(()) => {
                state.last_finished = Some(case.to_owned());
                return AfterCase::Alive;
            }
            Err(dead) => dead,
        };
        let mut transcript = String::new();
        if let Some(spawned) = state.spawned.as_mut() {
            // A crashing process may need a moment to exit (and to write its last lines).
            let status = match spawned.exited() {
                Some(s) => Some(s),
                None if matches!(dead, Dead::Crashed(_)) => {
                    spawned.wait_exit(Duration::from_secs(1)).await
                }
                None => None,
            };
            if let Some(status) = status {
                dead = Dead::Crashed(format!("the process exited with {status}"));
                spawned.drain_stderr(Duration::from_secs(1)).await;
            }
            let tail = spawned.stderr_tail(STDERR_TAIL);
            let _ = writeln!(
                transcript,
                "== the server's stderr (last {} lines) ==",
                tail.len()
            );
            for line in tail {
                let _ = writeln!(transcript, "{line}");
            }
        }
        let others = self.others(case);
        let suspects = connected && !others.is_empty();
        let (reason, since) = if connected && others.is_empty() {
            (dead.after("after this case"), case.to_owned())
        } else if connected {
            let reason = dead.after(&format!(
                "after this case, while {} also ran",
                others.join(", ")
            ));
            (reason, case.to_owned())
        } else {
            let last = state
                .last_finished
                .clone()
                .unwrap_or_else(|| "the start".to_owned());
            let reason = dead.after(&format!(
                "before this case could connect; the last case to finish was {last}"
            ));
            (reason, format!("{case} (or {last})"))
        };
        state.down = Some(since.clone());
        if let Some(spawned) = state.spawned.as_mut() {
            let restarted = match spawned.restart().await {
                Ok(()) => wait_serving(spawned, config, tcp_echo).await,
                Err(e) => Err(e),
            };
            match restarted {
                Ok(()) => {
                    state.down = None;
                    state.generation += 1;
                    let _ = writeln!(transcript, "== wisp-conformance restarted the server ==");
                    // Not attributable to this case alone (several were running, or it
                    // could not even connect): from now on one case at a time, so the
                    // one that does it again alone is named.
                    let first = (suspects || !connected)
                        && !self.one_at_a_time.swap(true, Ordering::SeqCst);
                    if suspects && first {
                        return AfterCase::Casualty {
                            reason: format!("not run: {reason}"),
                            rerun: true,
                        };
                    }
                }
                Err(e) => {
                    state.down = Some(format!("{since} (the restart failed: {e})"));
                    let _ = writeln!(transcript, "== the restart failed: {e} ==");
                }
            }
        }
        if !connected {
            return AfterCase::Casualty {
                reason: format!("not run: {reason}"),
                rerun: state.down.is_none(),
            };
        }
        AfterCase::Culprit { reason, transcript }
    }
}

/// How long a started server has to begin serving.
const START_BOUND: Duration = Duration::from_secs(20);
/// Pause between two readiness checks of a starting server.
const START_POLL: Duration = Duration::from_millis(100);

/// Waits (bounded) until the started server serves: polls the liveness check while the
/// process runs.
pub(crate) async fn wait_serving(
    spawned: &mut Spawned,
    config: &ServerConfig,
    tcp_echo: &Endpoint,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + START_BOUND;
    let mut quick = config.clone();
    quick.step_timeout = config.step_timeout.min(Duration::from_secs(2));
    loop {
        if let Some(status) = spawned.exited() {
            let tail = spawned.stderr_tail(5).join(" | ");
            return Err(format!("the server exited with {status} at start ({tail})"));
        }
        let last = match check_alive(&quick, tcp_echo).await {
            Ok(()) => return Ok(()),
            Err(d) => d,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "the server did not serve within {}s: {}",
                START_BOUND.as_secs(),
                last.after("at start")
            ));
        }
        tokio::time::sleep(START_POLL).await;
    }
}
