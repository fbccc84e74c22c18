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
//! The liveness check goes as deep as the server went at the start of the run
//! ([`Depth`]): a server that upgrades and completes the handshake but cannot echo (it
//! cannot reach the harness's echo target, or refuses loopback destinations) is checked
//! up to its handshake, so a crash or a freeze is still attributed. A server that never
//! completed a WebSocket upgrade (the probe and every liveness check failed) is not
//! "down since" anything: its cases stay connection errors (exit code 2).
//!
//! With `--spawn` and several cases running at a crash, each of them runs again alone; when
//! none of them takes the server down again, the crash is still a conformance failure: the
//! run gets a FAILED row `server.run.unattributed-crash` naming the cases that were running
//! ([`Health::reports`]).

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

use wisp_cases::{Level, Verdict};

use super::spawn::{STDERR_TAIL, Spawned};
use super::{Endpoint, RunMode, ServerConfig, checks, offer, session};
use crate::engine::ours::{open_mux, v2_handshake};
use crate::report::CaseReport;

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

/// How far a liveness check got: each step includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Depth {
    /// The TCP connection opened.
    Tcp,
    /// The WebSocket upgrade completed.
    Upgrade,
    /// The Wisp handshake (with the run's credentials) completed.
    Handshake,
    /// A stream to the echo target echoed.
    Echo,
}

impl Depth {
    fn describe(self) -> &'static str {
        match self {
            Self::Tcp => "a TCP connection",
            Self::Upgrade => "a TCP connection and a WebSocket upgrade",
            Self::Handshake => "a TCP connection, a WebSocket upgrade and the Wisp handshake",
            Self::Echo => "a TCP connection, a WebSocket upgrade, the Wisp handshake and an echo",
        }
    }
}

/// Checks that the server at `config.url` serves: TCP connect, WebSocket upgrade, the
/// run's handshake (with the run's credentials), and one echo through `tcp_echo`, each
/// bounded by the step timeout.
pub(crate) async fn check_alive(config: &ServerConfig, tcp_echo: &Endpoint) -> Result<(), Dead> {
    check_to(config, tcp_echo, Depth::Echo)
        .await
        .map_err(|(_, dead)| dead)
}

/// The deepest step of a liveness check the server completes now (`None`: not even a TCP
/// connection).
pub(crate) async fn serving_depth(config: &ServerConfig, tcp_echo: &Endpoint) -> Option<Depth> {
    match check_to(config, tcp_echo, Depth::Echo).await {
        Ok(()) => Some(Depth::Echo),
        Err((reached, _)) => reached,
    }
}

/// The liveness check's steps up to `upto`, each bounded by the step timeout. On failure:
/// the deepest step completed, and how the server failed the next one.
async fn check_to(
    config: &ServerConfig,
    tcp_echo: &Endpoint,
    upto: Depth,
) -> Result<(), (Option<Depth>, Dead)> {
    let bound = config.step_timeout;
    let secs = format!("{:.1} s", bound.as_secs_f64());
    let uri = session::check_url(&config.url).map_err(|e| (None, Dead::Crashed(e)))?;
    let (host, port) = session::host_port(&uri);
    match tokio::time::timeout(bound, TcpStream::connect((host.as_str(), port))).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err((None, Dead::Crashed("connection refused".to_owned())));
        }
        Ok(Err(e)) => return Err((None, Dead::Crashed(format!("cannot connect: {e}")))),
        Err(_) => {
            return Err((
                None,
                Dead::Froze(format!("no TCP connection within {secs}")),
            ));
        }
    }
    if upto == Depth::Tcp {
        return Ok(());
    }
    let subprotocol = match config.mode {
        RunMode::V1 => None,
        RunMode::V2 => Some(wisp_client::transport::WISP_V2_SUBPROTOCOL),
    };
    let opened = session::open(&config.url, subprotocol, bound, config.insecure)
        .await
        .map_err(|e| {
            let dead = if e.contains("did not complete within") {
                Dead::Froze(format!("no upgrade within {secs}"))
            } else {
                Dead::Crashed(e)
            };
            (Some(Depth::Tcp), dead)
        })?;
    if upto == Depth::Upgrade {
        return Ok(());
    }
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
        .map_err(|e| {
            let dead = Dead::Froze(format!("no Wisp handshake within {secs}: {e}"));
            (Some(Depth::Upgrade), dead)
        })?;
    let driver = tokio::spawn(driver);
    let echoed = match upto {
        Depth::Echo => echo_once(&mux, tcp_echo, bound).await,
        _ => Ok(()),
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), mux.close()).await;
    driver.abort();
    echoed.map_err(|e| {
        let dead = Dead::Froze(format!("no echo within {secs}: {e}"));
        (Some(Depth::Handshake), dead)
    })
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
    /// How deep the liveness check at the start got (at least a WebSocket upgrade): the
    /// check after a case goes as deep. `None`: the server never upgraded a connection,
    /// so it cannot go down.
    serves: Option<Depth>,
    /// The case that ended last, for a server found down before a case could connect.
    last_finished: Option<String>,
    spawned: Option<Spawned>,
}

/// A crash or freeze seen while several cases ran (or before a case could connect), with
/// `--spawn`: the suspects run again one at a time.
#[derive(Debug)]
struct Suspected {
    /// What the liveness check found (`the server crashed (...)`).
    reason: String,
    /// The cases that may have done it.
    suspects: Vec<String>,
    /// One of them took the server down again when run alone.
    named: bool,
}

/// The run's view of the server's health; serialises the liveness checks and restarts.
pub(crate) struct Health {
    state: Mutex<State>,
    /// Crashes not yet attributed to one case.
    suspected: std::sync::Mutex<Vec<Suspected>>,
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
    /// The health of a run whose server completed the liveness check up to `depth` at the
    /// start, with the server process when the harness started it.
    pub(crate) fn new(depth: Option<Depth>, spawned: Option<Spawned>) -> Self {
        Self {
            state: Mutex::new(State {
                generation: 0,
                down: None,
                serves: depth.filter(|d| *d >= Depth::Upgrade),
                last_finished: None,
                spawned,
            }),
            suspected: std::sync::Mutex::new(Vec::new()),
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
        let Some(depth) = state.serves else {
            // It never upgraded a connection: there is nothing to attribute (and a
            // stalling server would cost a full timeout per check).
            return AfterCase::Alive;
        };
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
        let mut dead = match check_to(config, tcp_echo, depth).await {
            Ok(()) => {
                state.last_finished = Some(case.to_owned());
                return AfterCase::Alive;
            }
            Err((_, dead)) => dead,
        };
        let mut transcript = String::new();
        if depth < Depth::Echo {
            let _ = writeln!(
                transcript,
                "== the liveness check after this case: {} (as far as the server went at the start of the run) ==",
                depth.describe()
            );
        }
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
                Ok(()) => wait_serving(spawned, config, tcp_echo, depth).await,
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
                    if suspects || !connected {
                        let mut who = others.clone();
                        who.push(case.to_owned());
                        if !connected {
                            who.extend(state.last_finished.clone());
                        }
                        who.sort();
                        who.dedup();
                        self.suspected_lock().push(Suspected {
                            reason: reason.clone(),
                            suspects: who,
                            named: false,
                        });
                    }
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
        if !suspects {
            // Named alone: the crashes it was suspected of are attributed.
            for s in self.suspected_lock().iter_mut() {
                if s.suspects.iter().any(|c| c == case) {
                    s.named = true;
                }
            }
        }
        AfterCase::Culprit { reason, transcript }
    }

    fn suspected_lock(&self) -> std::sync::MutexGuard<'_, Vec<Suspected>> {
        self.suspected.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The run-level rows of the health checks, once every case ran: one FAILED row
    /// `server.run.unattributed-crash` when the server went down while several cases ran
    /// (or before a case could connect) and none of those cases took it down again when
    /// run alone. Nothing otherwise.
    pub(crate) fn reports(&self) -> Vec<CaseReport> {
        let suspected = self.suspected_lock();
        let open: Vec<&Suspected> = suspected.iter().filter(|s| !s.named).collect();
        if open.is_empty() {
            return Vec::new();
        }
        let mut row = checks::row(
            checks::UNATTRIBUTED_CRASH,
            "The server did not go down during the run (crashes no single case reproduces)",
            "server robustness: a server survives every case (no crash, no freeze)",
            Level::Must,
        );
        row.description = "With --spawn, when the server crashes or freezes while several \
            cases run at once (or before a case could connect), the harness restarts it and \
            runs those cases again one at a time. This row fails when none of them takes the \
            server down again alone: the server did go down, but the case that did it cannot \
            be named (a race between cases, or a fault that needs several connections)."
            .to_owned();
        row.expectation = "the server stays up during the whole run".to_owned();
        row.verdict = Verdict::Failed;
        row.reasons = open
            .iter()
            .map(|s| {
                format!(
                    "{} while {} ran; run again one at a time, none of them took the server down",
                    s.reason,
                    s.suspects.join(", ")
                )
            })
            .collect();
        row.transcript = row.reasons.join("\n");
        vec![row]
    }
}

/// How long a started server has to begin serving.
const START_BOUND: Duration = Duration::from_secs(20);
/// Pause between two readiness checks of a starting server.
const START_POLL: Duration = Duration::from_millis(100);

/// Waits (bounded) until the started server serves: polls the liveness check, up to
/// `depth`, while the process runs.
pub(crate) async fn wait_serving(
    spawned: &mut Spawned,
    config: &ServerConfig,
    tcp_echo: &Endpoint,
    depth: Depth,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + START_BOUND;
    let mut quick = config.clone();
    quick.step_timeout = config.step_timeout.min(Duration::from_secs(2));
    loop {
        if let Some(status) = spawned.exited() {
            let tail = spawned.stderr_tail(5).join(" | ");
            return Err(format!("the server exited with {status} at start ({tail})"));
        }
        let last = match check_to(&quick, tcp_echo, depth).await {
            Ok(()) => return Ok(()),
            Err((_, d)) => d,
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
