//! The server role's subject: a live Wisp server, judged by the `cases/server/` suite.
//!
//! A run starts the harness's own loopback targets (TCP echo, UDP echo, a refused port, a
//! TCP sink, a discard and a banner) and probes what the server advertises
//! (`ServerRun::start`); then the engine ([`crate::engine`]) runs every case that
//! applies to the run's mode, a few at a time. Each case opens its own WebSocket and plays
//! either its `script` (raw packets, `script.rs`) or its `actions` (through our client, by
//! the engine's one action interpreter); every wait is bounded, and each case has an
//! overall deadline, so a server that crashes, stalls or drops connections is reported
//! case by case and the run always ends.
//!
//! Each case gets two verdicts (Autobahn's columns): the behaviour (OK, NON-STRICT,
//! INFORMATIONAL, UNSUPPORTED, FAILED, from the case's level) and, when the case has a
//! `close` judge, the CLOSE reason the server chose. A case that could not connect at all
//! is a connection error (`ERROR`), which makes the run exit with 2.
//!
//! ```no_run
//! use wisp_harness::engine::{Subject, SuiteOptions, run_suite_blocking};
//! use wisp_harness::server::{RunMode, ServerConfig};
//! use wisp_harness::{default_cases_dir, load_dir};
//!
//! let (cases, _errors) = load_dir(&default_cases_dir());
//! let server_cases: Vec<_> = cases.into_iter().filter(|c| c.as_server().is_some()).collect();
//! let config = ServerConfig::new("ws://127.0.0.1:6001/", RunMode::V1);
//! let options = SuiteOptions { jobs: 4, ..SuiteOptions::default() };
//! let subject = Subject::Server(Box::new(config));
//! let report = run_suite_blocking(&server_cases, subject, &options, &mut |done, total, case| {
//!     eprintln!("[{done}/{total}] {} {}", case.id, case.label());
//! })
//! .expect("the suite ran");
//! println!("{}", wisp_harness::report::table::table(&report, false));
//! ```

pub mod baseline;
pub mod checks;
mod health;
mod library;
mod probe;
mod script;
mod session;
mod spawn;
mod targets;
mod tls;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use wisp_cases::client::{ClientCertAuth, ClientExtension, ClientPassword};
use wisp_cases::server::{
    KeyChoice, Mode, Secret, SubprotocolChoice, SubprotocolExpect, VersionChoice,
};
use wisp_cases::values::StreamRef;
use wisp_cases::{Case, ServerCase, load_case_str_with};
use wisp_client::proto::PasswordLayout;

pub use probe::Probe;
pub use spawn::PORT_PLACEHOLDER;
pub use targets::{BANNER, Targets};

use crate::engine::CaseRun;
use crate::engine::judge::judge_close;
use crate::report::ServerInfo;
use checks::RunChecks;
use health::{AfterCase, Before, Health};
use probe::CapCheck;
use session::Recorder;

/// Which Wisp version the harness speaks in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunMode {
    /// v1: no `Sec-WebSocket-Protocol` offered; the server must send CONTINUE(0) first.
    V1,
    /// v2: `Sec-WebSocket-Protocol: wisp-v2` offered; the INFO handshake is expected (a
    /// server that answers as v1 makes the v2-only cases UNSUPPORTED).
    V2,
}

impl fmt::Display for RunMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        })
    }
}

/// The server subject: which server, how the harness talks to it, what it sets up.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The server's WebSocket URL (`ws://HOST:PORT/PATH/` or `wss://...`).
    pub url: String,
    /// `wss://`: accept any server certificate (`--insecure`, for self-signed test
    /// servers).
    pub insecure: bool,
    /// The mode of the run.
    pub mode: RunMode,
    /// Password credentials (`--password USER:PASS`).
    pub credentials: Option<(String, String)>,
    /// The layout of the password record the harness sends (default draft 6).
    pub password_layout: PasswordLayout,
    /// The Ed25519 key for certificate authentication (`--key`).
    pub key: Option<SigningKey>,
    /// A destination the server blocks by policy (`--blocked HOST:PORT`).
    pub blocked: Option<(String, u16)>,
    /// Bound on each wait of a case (default 5 s).
    pub step_timeout: Duration,
    /// The address the loopback targets bind (default 127.0.0.1).
    pub bind: IpAddr,
    /// The host name cases give the server for the harness's targets (`--targets-host`,
    /// for a server on another machine); default: the address they bound.
    pub targets_host: Option<String>,
    /// `--external-targets`: targets the server can reach, by name (`tcp_echo`,
    /// `udp_echo`, ...), used instead of the harness's own; a case that needs a target
    /// not listed is UNSUPPORTED.
    pub external_targets: Option<BTreeMap<String, (String, u16)>>,
    /// The cases directory (the file paths of the cases are under it).
    pub cases_dir: PathBuf,
    /// `--spawn`: the command that starts the server under test (run by `sh -c`;
    /// `{port}` in it and in `url` is replaced by a free port). The harness restarts it
    /// after a crash or a freeze.
    pub spawn: Option<String>,
}

impl ServerConfig {
    /// Defaults for `url` in `mode`.
    pub fn new(url: impl Into<String>, mode: RunMode) -> Self {
        Self {
            url: url.into(),
            insecure: false,
            mode,
            credentials: None,
            password_layout: PasswordLayout::Draft6,
            key: None,
            blocked: None,
            step_timeout: Duration::from_secs(5),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            targets_host: None,
            external_targets: None,
            cases_dir: crate::default_cases_dir(),
            spawn: None,
        }
    }
}

/// Reads an `--external-targets` file: one `NAME: HOST:PORT` per line (YAML), NAME one of
/// the target names (`tcp_echo`, `udp_echo`, `refused`, ...).
///
/// # Errors
///
/// A file that cannot be read, is not such a mapping, or names an unknown target.
pub fn load_external_targets(path: &Path) -> Result<BTreeMap<String, (String, u16)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--external-targets {}: {e}", path.display()))?;
    let raw: BTreeMap<String, String> = serde_saphyr::from_str(&text).map_err(|e| {
        format!(
            "--external-targets {}: expected NAME: HOST:PORT lines: {e}",
            path.display()
        )
    })?;
    let mut out = BTreeMap::new();
    for (name, value) in raw {
        if !wisp_cases::TARGET_NAMES.contains(&name.as_str()) || name == "blocked" {
            return Err(format!(
                "--external-targets {}: unknown target {name:?} (use one of {})",
                path.display(),
                wisp_cases::TARGET_NAMES
                    .iter()
                    .filter(|n| **n != "blocked")
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let (host, port) = value
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
            .ok_or_else(|| {
                format!(
                    "--external-targets {}: {name}: {value:?} is not HOST:PORT",
                    path.display()
                )
            })?;
        out.insert(name, (host.to_owned(), port));
    }
    Ok(out)
}

/// Whether a server-role case runs in `mode`.
pub fn applies(case: &ServerCase, mode: RunMode) -> bool {
    matches!(
        (case.mode, mode),
        (Mode::Any, _) | (Mode::V1, RunMode::V1) | (Mode::V2, RunMode::V2)
    )
}

/// What one case's script or actions produced.
#[derive(Debug, Default)]
pub(crate) struct Body {
    /// Failed expectations.
    pub(crate) failures: Vec<String>,
    /// The connection could not be opened.
    pub(crate) conn_error: Option<String>,
    /// Stream aliases and their ids.
    pub(crate) ids: HashMap<String, u32>,
    /// The subprotocol the server echoed.
    pub(crate) echoed: Option<String>,
    /// A failure that fails the case whatever its level (the whole server stalled).
    pub(crate) fatal: Option<String>,
}

impl Body {
    /// The id of a stream reference.
    pub(crate) fn stream_id(&self, s: &StreamRef) -> Option<u32> {
        match s {
            StreamRef::Id(id) => Some(*id),
            StreamRef::Alias(a) => self.ids.get(a).copied(),
        }
    }
}

/// A destination as the server is asked to reach it (a host name or an address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// Everything a case needs to know about its connection.
pub(crate) struct CaseCtx {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) tcp_echo: Endpoint,
    /// What the watch target saw (`expect_target_closed`).
    pub(crate) watch_log: targets::WatchLog,
    pub(crate) version: RunMode,
    pub(crate) subprotocol: Option<String>,
    /// The credentials presented in the handshake (`connect.password`).
    pub(crate) password: Option<(String, String, PasswordLayout)>,
    pub(crate) connect_password: Secret,
    /// The key presented in the handshake (`connect.key`).
    pub(crate) key: Option<SigningKey>,
    pub(crate) connect_key: KeyChoice,
    pub(crate) step_timeout: Duration,
    wrong_key: SigningKey,
    wrong_password: String,
}

impl CaseCtx {
    fn new(
        case: &ServerCase,
        config: Arc<ServerConfig>,
        tcp_echo: Endpoint,
        watch_log: targets::WatchLog,
    ) -> Result<Self, String> {
        let connect = &case.connect;
        let version = match connect.version {
            VersionChoice::Run => config.mode,
            VersionChoice::V1 => RunMode::V1,
            VersionChoice::V2 => RunMode::V2,
        };
        let subprotocol = match &connect.subprotocol {
            Some(SubprotocolChoice::None) => None,
            Some(SubprotocolChoice::Value(v)) => Some(v.clone()),
            None if version == RunMode::V2 => {
                Some(wisp_client::transport::WISP_V2_SUBPROTOCOL.to_owned())
            }
            None => None,
        };
        let mut seed = [0u8; 40];
        getrandom::fill(&mut seed).map_err(|e| format!("getrandom failed: {e}"))?;
        let mut key_bytes = [0u8; 32];
        key_bytes.copy_from_slice(&seed[..32]);
        let mut ctx = Self {
            step_timeout: config.step_timeout,
            tcp_echo,
            watch_log,
            version,
            subprotocol,
            password: None,
            connect_password: connect.password,
            key: None,
            connect_key: connect.key,
            wrong_key: SigningKey::from_bytes(&key_bytes),
            wrong_password: format!("not-the-password-{}", hex::encode(&seed[32..])),
            config,
        };
        ctx.password = ctx.password_for(connect.password);
        ctx.key = ctx.key_for(connect.key);
        Ok(ctx)
    }

    /// Opens the case's connection and records it, with the subprotocol the server echoed
    /// (`None`: it could not be opened, and `body.conn_error` says why).
    pub(crate) async fn connect(&self, rec: &Recorder, body: &mut Body) -> Option<session::Ws> {
        let opened = match session::open(
            &self.config.url,
            self.subprotocol.as_deref(),
            self.step_timeout,
            self.config.insecure,
        )
        .await
        {
            Ok(o) => o,
            Err(e) => {
                rec.event(format!("connection error: {e}"));
                body.conn_error = Some(e);
                return None;
            }
        };
        rec.event(match (&self.subprotocol, &opened.echoed) {
            (Some(p), e) => {
                format!("connected; offered Sec-WebSocket-Protocol {p:?}; echoed {e:?}")
            }
            (None, e) => {
                format!("connected; no Sec-WebSocket-Protocol offered; response has {e:?}")
            }
        });
        body.echoed = opened.echoed;
        Some(opened.ws)
    }

    /// The credentials a [`Secret`] stands for.
    pub(crate) fn password_for(&self, s: Secret) -> Option<(String, String, PasswordLayout)> {
        let configured = self.config.credentials.clone();
        match s {
            Secret::None => None,
            Secret::Run => configured.map(|(u, p)| (u, p, self.config.password_layout)),
            Secret::Draft5 => configured.map(|(u, p)| (u, p, PasswordLayout::Draft5)),
            Secret::Wrong => {
                let user = configured.map_or_else(|| "wisp-conformance".to_owned(), |(u, _)| u);
                Some((
                    user,
                    self.wrong_password.clone(),
                    self.config.password_layout,
                ))
            }
        }
    }

    /// The key a [`KeyChoice`] stands for.
    pub(crate) fn key_for(&self, k: KeyChoice) -> Option<SigningKey> {
        match k {
            KeyChoice::None => None,
            KeyChoice::Run => self.config.key.clone(),
            KeyChoice::Wrong => Some(self.wrong_key.clone()),
        }
    }

    /// The extensions our client offers in this case's v2 handshake: UDP and MOTD, and the
    /// credentials and key of `connect`, when there are some.
    pub(crate) fn offer(&self) -> Vec<ClientExtension> {
        offer(self.password.as_ref(), self.key.as_ref())
    }
}

/// The extensions our client offers in a v2 handshake: UDP and MOTD, and these
/// credentials and key, when there are some.
pub(crate) fn offer(
    password: Option<&(String, String, PasswordLayout)>,
    key: Option<&SigningKey>,
) -> Vec<ClientExtension> {
    let mut offer = vec![ClientExtension::Udp, ClientExtension::Motd];
    if let Some((user, pass, layout)) = password {
        offer.push(ClientExtension::Password(ClientPassword {
            username: Some(user.clone()),
            password: Some(pass.clone()),
            layout: wisp_cases::client::LayoutChoice::Pinned(*layout),
        }));
    }
    if let Some(key) = key {
        offer.push(ClientExtension::CertAuth(ClientCertAuth {
            key: None,
            signing_key: Some(key.clone()),
        }));
    }
    offer
}

/// The placeholder values of a run: the harness's own targets (under `--targets-host`
/// when given) or the `--external-targets`, and `blocked`.
fn run_placeholders(targets: &Targets, config: &ServerConfig) -> wisp_cases::Placeholders {
    let mut p = match &config.external_targets {
        Some(external) => {
            // Stand-ins for `blocked` only; the targets are the listed ones.
            let mut p = wisp_cases::Placeholders::default();
            for name in wisp_cases::TARGET_NAMES {
                if *name != "blocked" {
                    p.remove(name);
                }
            }
            for (name, (host, port)) in external {
                p.set(name, host, *port);
            }
            p
        }
        None => targets.placeholders(config.targets_host.as_deref()),
    };
    if let Some((host, port)) = &config.blocked {
        p.set("blocked", host, *port);
    }
    p
}

/// The first target a case's text names (`${NAME.host}`, `${NAME.port}`) that has no value
/// in this run.
fn missing_target(source: &str, placeholders: &wisp_cases::Placeholders) -> Option<String> {
    let mut rest = source;
    while let Some(at) = rest.find("${") {
        rest = &rest[at + 2..];
        let end = rest.find('}')?;
        let key = &rest[..end];
        if key != "blocked.host" && key != "blocked.port" && placeholders.get(key).is_none() {
            return Some(key.split('.').next().unwrap_or(key).to_owned());
        }
        rest = &rest[end..];
    }
    None
}

/// How many times a case runs again on a restarted server (`--spawn`) when the server
/// went down during it because of another case.
const MAX_RERUNS: usize = 3;

/// A server-role run, prepared: the configuration, the loopback targets (alive until the
/// run is dropped), their placeholder values and what the probe saw.
pub(crate) struct ServerRun {
    config: Arc<ServerConfig>,
    targets: Targets,
    placeholders: wisp_cases::Placeholders,
    /// The TCP echo as the server reaches it (liveness checks, `alive` steps).
    tcp_echo: Endpoint,
    probe: Probe,
    checks: RunChecks,
    health: Health,
}

impl ServerRun {
    /// Checks the URL, starts the targets and probes the server.
    ///
    /// # Errors
    ///
    /// A URL the harness cannot use, or targets that cannot bind.
    pub(crate) async fn start(mut config: ServerConfig) -> Result<Self, String> {
        let port = match &config.spawn {
            Some(_) => Some(spawn::free_port()?.to_string()),
            None => None,
        };
        if let Some(port) = &port {
            config.url = config.url.replace(PORT_PLACEHOLDER, port);
        }
        session::check_url(&config.url)?;
        let targets = Targets::start(config.bind)
            .await
            .map_err(|e| format!("cannot start the loopback targets on {}: {e}", config.bind))?;
        let placeholders = run_placeholders(&targets, &config);
        let tcp_echo = Endpoint {
            host: placeholders
                .get("tcp_echo.host")
                .map_or_else(|| targets.tcp_echo.ip().to_string(), str::to_owned),
            port: placeholders
                .get("tcp_echo.port")
                .and_then(|p| p.parse().ok())
                .unwrap_or(targets.tcp_echo.port()),
        };
        let spawned = match (&config.spawn, &port) {
            (Some(command), Some(port)) => {
                let command = command.replace(PORT_PLACEHOLDER, port);
                let mut spawned = spawn::Spawned::start(&command)?;
                health::wait_serving(&mut spawned, &config, &tcp_echo, health::Depth::Upgrade)
                    .await
                    .map_err(|e| format!("--spawn {command:?}: {e}"))?;
                Some(spawned)
            }
            _ => None,
        };
        // How far the server serves (an upgrade at least): only then can it go down later,
        // and the checks after a case go as far.
        let (probe, depth) = tokio::join!(
            Probe::run(&config),
            health::serving_depth(&config, &tcp_echo)
        );
        let health = Health::new(depth, spawned);
        Ok(Self {
            config: Arc::new(config),
            targets,
            placeholders,
            tcp_echo,
            probe,
            checks: RunChecks::default(),
            health,
        })
    }

    /// Whether the case runs in this run's mode.
    pub(crate) fn applies(&self, case: &ServerCase) -> bool {
        applies(case, self.config.mode)
    }

    /// The server and what the run set up, for reports.
    pub(crate) fn info(&self) -> ServerInfo {
        let config = &self.config;
        ServerInfo {
            url: config.url.clone(),
            mode: config.mode,
            probe: self.probe.clone(),
            targets: self
                .targets
                .list()
                .iter()
                .map(|(n, a)| ((*n).to_owned(), *a))
                .collect(),
            blocked: config.blocked.as_ref().map(|(h, p)| format!("{h}:{p}")),
        }
    }

    /// The rows of the run-level checks ([`checks`]), once every case has run.
    pub(crate) fn check_reports(&self) -> Vec<crate::report::CaseReport> {
        let mut rows = self.checks.reports();
        rows.extend(self.health.reports());
        rows
    }

    /// Runs one case, and attributes a crash or a freeze of the server to it
    /// ([`health`]): a case that ends abnormally is followed by a liveness check; one
    /// that took the server down is FAILED; cases after it are NOT RUN, or, with
    /// `--spawn`, run on the restarted server (a case that was running beside the
    /// culprit runs once more).
    pub(crate) async fn run(&self, case: &ServerCase) -> CaseRun {
        let mut reruns = 0;
        loop {
            let generation = match self.health.before().await {
                Before::Run(g) => g,
                Before::Down(why) => {
                    return CaseRun {
                        not_run: Some(why),
                        ..CaseRun::default()
                    };
                }
            };
            let running = self.health.start(&case.meta.id).await;
            let (mut run, connected) = self.run_once(case).await;
            if run.error.is_none() && run.failures.is_empty() && run.fatal.is_none() {
                drop(running);
                self.health.finished(&case.meta.id).await;
                return run;
            }
            let after = self
                .health
                .after_abnormal(
                    &case.meta.id,
                    generation,
                    connected,
                    &self.config,
                    &self.tcp_echo,
                )
                .await;
            drop(running);
            match after {
                AfterCase::Alive => return run,
                AfterCase::Culprit { reason, transcript } => {
                    run.error = None;
                    if let Some(stalled) = run.fatal.replace(reason) {
                        run.failures.insert(0, stalled);
                    }
                    if !run.transcript.is_empty() && !transcript.is_empty() {
                        run.transcript.push('\n');
                    }
                    run.transcript.push_str(transcript.trim_end());
                    return run;
                }
                // A case runs again after each restart it did not cause, a few times at
                // most.
                AfterCase::Casualty { rerun: true, .. } if reruns < MAX_RERUNS => reruns += 1,
                AfterCase::Casualty { reason, .. } => {
                    return CaseRun {
                        not_run: Some(reason),
                        transcript: run.transcript,
                        ..CaseRun::default()
                    };
                }
            }
        }
    }

    /// Runs one case: loads it again with the run's target addresses, checks the
    /// capabilities it needs, then plays it. Also says whether its connection opened.
    async fn run_once(&self, case: &ServerCase) -> (CaseRun, bool) {
        if let Some(name) = missing_target(&case.meta.source, &self.placeholders) {
            let run = CaseRun {
                unsupported: Some(format!(
                    "needs the {name} target, which --external-targets does not name"
                )),
                ..CaseRun::default()
            };
            return (run, true);
        }
        let loaded = load_case_str_with(
            &self.config.cases_dir,
            &case.meta.path,
            &case.meta.source,
            &self.placeholders,
        );
        match loaded {
            Ok(Case::Server(case)) => self.run_loaded(&case).await,
            Ok(Case::Client(_)) => (
                CaseRun::error("the case no longer loads as a server-role case"),
                true,
            ),
            Err(e) => (
                CaseRun::error(format!(
                    "the case does not load with the run's targets: {e}"
                )),
                true,
            ),
        }
    }

    async fn run_loaded(&self, case: &ServerCase) -> (CaseRun, bool) {
        let config = &self.config;
        for cap in &case.requires {
            match self.probe.check(*cap, config) {
                CapCheck::Present => {}
                CapCheck::Absent(why) => {
                    let run = CaseRun {
                        unsupported: Some(format!("needs {cap}: {why}")),
                        ..CaseRun::default()
                    };
                    return (run, true);
                }
                CapCheck::Unknown(why) => {
                    return (CaseRun::error(format!("needs {cap}: {why}")), true);
                }
            }
        }
        let ctx = match CaseCtx::new(
            case,
            config.clone(),
            self.tcp_echo.clone(),
            self.targets.watch_log.clone(),
        ) {
            Ok(c) => c,
            Err(e) => return (CaseRun::error(e), true),
        };
        let rec = Recorder::new(self.checks.clone(), &case.meta.id);
        let deadline = case.timeout().max(config.step_timeout * 2);
        let played = async {
            if case.is_script() {
                script::run_script(case, &ctx, &rec).await
            } else {
                library::run(case, &ctx, &rec).await
            }
        };
        let body = match tokio::time::timeout(deadline, played).await {
            Ok(body) => body,
            Err(_) => {
                rec.event(format!(
                    "case deadline: not finished within {}ms",
                    deadline.as_millis()
                ));
                Body {
                    failures: vec![format!(
                        "the case did not finish within its deadline ({}ms): the server stalled",
                        deadline.as_millis()
                    )],
                    ..Body::default()
                }
            }
        };
        let transcript = rec.lines().join("\n");
        if let Some(e) = body.conn_error {
            let run = CaseRun {
                transcript,
                ..CaseRun::error(format!("connection error: {e}"))
            };
            return (run, false);
        }
        let mut failures = body.failures.clone();
        if let Some(want) = &case.expect.subprotocol {
            let offered = ctx.subprotocol.as_deref();
            let echoed = body.echoed.as_deref();
            match want {
                SubprotocolExpect::Echoed if echoed.is_none() || echoed != offered => {
                    failures.push(format!(
                        "the upgrade response carries Sec-WebSocket-Protocol {echoed:?}; the client offered {offered:?}"
                    ));
                }
                // The echo is a promise: the selected wisp-v2 is spoken (an INFO came).
                SubprotocolExpect::Echoed
                    if echoed == Some(wisp_client::transport::WISP_V2_SUBPROTOCOL)
                        && rec.info().is_none() =>
                {
                    failures.push(format!(
                        "the upgrade response selects {echoed:?} but the server then speaks v1: no INFO within {}ms (first packet: {}); a client that trusts the header waits for an INFO that never comes",
                        config.step_timeout.as_millis(),
                        rec.first_received().unwrap_or_else(|| "none".to_owned())
                    ));
                }
                SubprotocolExpect::None if echoed.is_some() => failures.push(format!(
                    "the upgrade response carries Sec-WebSocket-Protocol {echoed:?}; expected none"
                )),
                _ => {}
            }
        }
        let close = case.close.as_ref().map(|judge| {
            let id = body.stream_id(&judge.stream);
            let seen = id.and_then(|id| rec.close_on(id));
            judge_close(judge, id, seen)
        });
        let run = CaseRun {
            failures,
            close,
            transcript,
            fatal: body.fatal,
            ..CaseRun::default()
        };
        (run, true)
    }
}
