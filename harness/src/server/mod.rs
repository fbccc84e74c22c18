//! Server-role conformance: the `cases/server/` suite run against a live Wisp server.
//!
//! The harness starts its own loopback targets (TCP echo, UDP echo, a refused port, a TCP
//! sink, a discard and a banner), probes what the server advertises, then runs every case
//! that applies to the run's mode, a few at a time. Each case opens its own WebSocket and
//! plays either its `script` (raw packets) or its `actions` (through the client library);
//! every wait is bounded, and each case has an overall deadline, so a server that crashes,
//! stalls or drops connections is reported case by case and the run always ends.
//!
//! Each case gets two verdicts (Autobahn's columns): the behaviour (OK, NON-STRICT,
//! INFORMATIONAL, UNSUPPORTED, FAILED, from the case's level) and, when the case has a
//! `close` judge, the CLOSE reason the server chose. A case that could not connect at all
//! is a connection error (`ERROR`), which makes the run exit with 2.
//!
//! ```no_run
//! use wisp_harness::server::{RunMode, SuiteConfig, run_suite_blocking};
//! use wisp_harness::{default_cases_dir, load_dir};
//!
//! let (cases, _errors) = load_dir(&default_cases_dir());
//! let server_cases: Vec<_> = cases.iter().filter_map(|c| c.as_server()).cloned().collect();
//! let config = SuiteConfig::new("ws://127.0.0.1:6001/", RunMode::V1);
//! let report = run_suite_blocking(&server_cases, config, &mut |done, total, case| {
//!     eprintln!("[{done}/{total}] {} {}", case.id, case.label());
//! })
//! .expect("the suite ran");
//! println!("{}", wisp_harness::server::report::table(&report, false));
//! ```

mod actions;
pub mod baseline;
mod probe;
pub mod report;
mod script;
mod session;
mod targets;

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use futures::FutureExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use wisp_cases::server::{
    CloseJudge, KeyChoice, Mode, Secret, SubprotocolChoice, SubprotocolExpect, VersionChoice,
};
use wisp_cases::values::StreamRef;
use wisp_cases::{Level, ServerCase as Case, Verdict, load_case_str_with};
use wisp_client::proto::{CloseReason, PasswordLayout};

pub use probe::Probe;
pub use targets::{BANNER, Targets};

use probe::CapCheck;
use session::{Recorder, SeenClose};

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

/// How to run the suite against one server.
#[derive(Clone, Debug)]
pub struct SuiteConfig {
    /// The server's WebSocket URL (`ws://HOST:PORT/PATH/`).
    pub url: String,
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
    /// Cases run at once (default 4).
    pub jobs: usize,
    /// The address the loopback targets bind (default 127.0.0.1).
    pub bind: IpAddr,
    /// The cases directory (the file paths of the cases are under it).
    pub cases_dir: PathBuf,
}

impl SuiteConfig {
    /// Defaults for `url` in `mode`.
    pub fn new(url: impl Into<String>, mode: RunMode) -> Self {
        Self {
            url: url.into(),
            mode,
            credentials: None,
            password_layout: PasswordLayout::Draft6,
            key: None,
            blocked: None,
            step_timeout: Duration::from_secs(5),
            jobs: 4,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            cases_dir: crate::default_cases_dir(),
        }
    }
}

/// The CLOSE-reason column of one case.
#[derive(Clone, Debug)]
pub struct CloseColumn {
    /// The verdict.
    pub verdict: Verdict,
    /// The stream judged (`s1(#1)`, `0`).
    pub stream: String,
    /// The preferred reasons.
    pub preferred: Vec<CloseReason>,
    /// The acceptable ones.
    pub acceptable: Vec<CloseReason>,
    /// The reason the server sent, if it sent a CLOSE.
    pub got: Option<CloseReason>,
    /// The CLOSE packet (decoded, with its bytes).
    pub packet: Option<String>,
    /// Why the verdict.
    pub note: String,
}

/// The result of one case.
#[derive(Clone, Debug)]
pub struct ServerCaseReport {
    /// The case ID.
    pub id: String,
    /// The family (`handshake`, `tcp`, ...).
    pub family: String,
    /// The title.
    pub title: String,
    /// The spec section.
    pub spec: String,
    /// must / should / may.
    pub level: Level,
    /// The behaviour verdict (meaningless when `error` is set).
    pub verdict: Verdict,
    /// The CLOSE-reason verdict, for cases with a `close` judge that ran.
    pub close: Option<CloseColumn>,
    /// Why the verdict is not OK (or why UNSUPPORTED).
    pub reasons: Vec<String>,
    /// A harness or connection error: the case could not run.
    pub error: Option<String>,
    /// The decoded wire log.
    pub trace: Vec<String>,
    /// Wall-clock time.
    pub duration: Duration,
}

impl ServerCaseReport {
    /// `ERROR` for a harness or connection error, else the verdict.
    pub fn label(&self) -> String {
        match &self.error {
            Some(_) => "ERROR".to_owned(),
            None => self.verdict.to_string(),
        }
    }

    /// The close column's verdict, or `-`.
    pub fn close_label(&self) -> String {
        match (&self.error, &self.close) {
            (None, Some(c)) => c.verdict.to_string(),
            _ => "-".to_owned(),
        }
    }

    /// Both columns as one value: `OK`, or `OK / NON-STRICT` with a close column (the form
    /// baselines use).
    pub fn outcome(&self) -> String {
        match (&self.error, &self.close) {
            (None, Some(c)) => format!("{} / {}", self.verdict, c.verdict),
            _ => self.label(),
        }
    }

    /// The worse of the two columns (for the gate).
    pub fn worst(&self) -> Verdict {
        let rank = |v: Verdict| match v {
            Verdict::Ok | Verdict::Unsupported => 0,
            Verdict::Informational => 1,
            Verdict::NonStrict => 2,
            Verdict::Failed => 3,
        };
        match &self.close {
            Some(c) if rank(c.verdict) > rank(self.verdict) => c.verdict,
            _ => self.verdict,
        }
    }
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct SuiteReport {
    /// The server URL.
    pub url: String,
    /// The mode.
    pub mode: RunMode,
    /// What the capability probe saw.
    pub probe: Probe,
    /// `(name, address)` of the targets.
    pub targets: Vec<(String, SocketAddr)>,
    /// The blocked destination, if configured.
    pub blocked: Option<String>,
    /// The cases that ran (or were UNSUPPORTED), in suite order.
    pub cases: Vec<ServerCaseReport>,
    /// IDs of selected cases that do not apply to this mode.
    pub not_applicable: Vec<String>,
    /// Wall-clock time of the run.
    pub duration: Duration,
}

/// Whether a server-role case runs in `mode`.
pub fn applies(case: &Case, mode: RunMode) -> bool {
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

/// Everything a case needs to know about its connection.
pub(crate) struct CaseCtx {
    pub(crate) config: Arc<SuiteConfig>,
    pub(crate) tcp_echo: SocketAddr,
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
    fn new(case: &Case, config: Arc<SuiteConfig>, tcp_echo: SocketAddr) -> Result<Self, String> {
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
}

struct Shared {
    config: Arc<SuiteConfig>,
    probe: Probe,
    tcp_echo: SocketAddr,
}

/// Runs `cases` (server-role cases, already selected) against the server of `config`.
/// `progress` is called as each case finishes with (finished, total, report).
///
/// # Errors
///
/// Only when the run cannot start: a URL the harness cannot use, or targets that cannot
/// bind. A server that cannot be reached is reported per case (connection errors).
pub async fn run_suite(
    cases: &[Case],
    config: SuiteConfig,
    progress: &mut dyn FnMut(usize, usize, &ServerCaseReport),
) -> Result<SuiteReport, String> {
    let started = Instant::now();
    session::check_url(&config.url)?;
    let targets = Targets::start(config.bind)
        .await
        .map_err(|e| format!("cannot start the loopback targets on {}: {e}", config.bind))?;
    let placeholders = targets.placeholders(config.blocked.as_ref());
    let probe = Probe::run(&config).await;
    let mode = config.mode;
    let jobs = config.jobs.max(1);
    let shared = Arc::new(Shared {
        config: Arc::new(config),
        probe,
        tcp_echo: targets.tcp_echo,
    });

    let mut not_applicable = Vec::new();
    let mut slots: Vec<Option<ServerCaseReport>> = Vec::new();
    let semaphore = Arc::new(Semaphore::new(jobs));
    let mut set = JoinSet::new();
    for case in cases {
        if !applies(case, mode) {
            not_applicable.push(case.meta.id.clone());
            continue;
        }
        let index = slots.len();
        slots.push(None);
        let loaded = load_case_str_with(
            &shared.config.cases_dir,
            &case.meta.path,
            &case.meta.source,
            &placeholders,
        )
        .and_then(|c| match c {
            wisp_cases::Case::Server(s) => Ok(s),
            wisp_cases::Case::Client(_) => Err(wisp_cases::LoadError {
                path: case.meta.path.clone(),
                line: 0,
                column: 0,
                message: "not a server-role case".to_owned(),
                snippet: None,
            }),
        });
        let shared = shared.clone();
        let semaphore = semaphore.clone();
        let fallback = case.clone();
        set.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            let started = Instant::now();
            let report = match loaded {
                Ok(case) => {
                    match std::panic::AssertUnwindSafe(run_one(&case, &shared))
                        .catch_unwind()
                        .await
                    {
                        Ok(r) => r,
                        Err(_) => errored(&case, "the harness panicked while running the case"),
                    }
                }
                Err(e) => errored(
                    &fallback,
                    &format!("the case does not load with the run's targets: {e}"),
                ),
            };
            let mut report = report;
            report.duration = started.elapsed();
            (index, report)
        });
    }
    let total = slots.len();
    let mut done = 0;
    while let Some(joined) = set.join_next().await {
        // Tasks catch their own panics; a join error means the run was cancelled.
        let Ok((index, report)) = joined else {
            continue;
        };
        done += 1;
        progress(done, total, &report);
        slots[index] = Some(report);
    }
    let target_list = targets
        .list()
        .iter()
        .map(|(n, a)| ((*n).to_owned(), *a))
        .collect();
    drop(targets);
    let config = &shared.config;
    Ok(SuiteReport {
        url: config.url.clone(),
        mode,
        probe: shared.probe.clone(),
        targets: target_list,
        blocked: config.blocked.as_ref().map(|(h, p)| format!("{h}:{p}")),
        cases: slots.into_iter().flatten().collect(),
        not_applicable,
        duration: started.elapsed(),
    })
}

/// [`run_suite`] on a runtime of its own (do not call it from inside a tokio runtime).
///
/// # Errors
///
/// As [`run_suite`], or when the runtime cannot start.
pub fn run_suite_blocking(
    cases: &[Case],
    config: SuiteConfig,
    progress: &mut dyn FnMut(usize, usize, &ServerCaseReport),
) -> Result<SuiteReport, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    runtime.block_on(run_suite(cases, config, progress))
}

fn base_report(case: &Case) -> ServerCaseReport {
    ServerCaseReport {
        id: case.meta.id.clone(),
        family: case.family().to_owned(),
        title: case.meta.title.clone(),
        spec: case.meta.spec.clone(),
        level: case.meta.level,
        verdict: Verdict::Ok,
        close: None,
        reasons: Vec::new(),
        error: None,
        trace: Vec::new(),
        duration: Duration::ZERO,
    }
}

fn errored(case: &Case, why: &str) -> ServerCaseReport {
    let mut r = base_report(case);
    r.verdict = Verdict::Failed;
    r.error = Some(why.to_owned());
    r
}

async fn run_one(case: &Case, shared: &Shared) -> ServerCaseReport {
    let mut report = base_report(case);
    let config = &shared.config;
    for cap in &case.requires {
        match shared.probe.check(*cap, config) {
            CapCheck::Present => {}
            CapCheck::Absent(why) => {
                report.verdict = Verdict::Unsupported;
                report.reasons.push(format!("needs {cap}: {why}"));
                return report;
            }
            CapCheck::Unknown(why) => {
                report.error = Some(format!("needs {cap}: {why}"));
                return report;
            }
        }
    }
    let ctx = match CaseCtx::new(case, config.clone(), shared.tcp_echo) {
        Ok(c) => c,
        Err(e) => {
            report.error = Some(e);
            return report;
        }
    };
    let rec = Recorder::new();
    let deadline = case.timeout().max(config.step_timeout * 2);
    let run = async {
        if case.script.is_empty() {
            actions::run_actions(case, &ctx, &rec).await
        } else {
            script::run_script(case, &ctx, &rec).await
        }
    };
    let body = match tokio::time::timeout(deadline, run).await {
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
    report.trace = rec.lines();
    if let Some(e) = body.conn_error {
        report.error = Some(format!("connection error: {e}"));
        return report;
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
            SubprotocolExpect::None if echoed.is_some() => failures.push(format!(
                "the upgrade response carries Sec-WebSocket-Protocol {echoed:?}; expected none"
            )),
            _ => {}
        }
    }
    if !failures.is_empty() {
        report.verdict = Verdict::of_failure(case.meta.level);
        report.reasons = failures;
    }
    if let Some(judge) = &case.close {
        let id = body.stream_id(&judge.stream);
        let seen = id.and_then(|id| rec.close_on(id));
        report.close = Some(judge_close(judge, id, seen));
    }
    report
}

/// The CLOSE-reason column.
fn judge_close(judge: &CloseJudge, id: Option<u32>, seen: Option<SeenClose>) -> CloseColumn {
    let preferred = judge.reason.0.clone();
    let acceptable = judge
        .acceptable
        .as_ref()
        .map(|a| a.0.clone())
        .unwrap_or_default();
    let names = |v: &[CloseReason]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" or ")
    };
    let stream = match (&judge.stream, id) {
        (StreamRef::Alias(a), Some(id)) => format!("{a}(#{id})"),
        (StreamRef::Alias(a), None) => a.clone(),
        (StreamRef::Id(id), _) => id.to_string(),
    };
    let (verdict, note) = match &seen {
        Some(c) if preferred.contains(&c.reason) => (Verdict::Ok, format!("reason {}", c.reason)),
        Some(c) if acceptable.contains(&c.reason) => (
            match judge.level {
                Level::May => Verdict::Informational,
                _ => Verdict::NonStrict,
            },
            format!("reason {}; {} is preferred", c.reason, names(&preferred)),
        ),
        Some(c) => (
            Verdict::of_failure(judge.level),
            format!(
                "reason {}; expected {}{}",
                c.reason,
                names(&preferred),
                if acceptable.is_empty() {
                    String::new()
                } else {
                    format!(" (or {})", names(&acceptable))
                }
            ),
        ),
        None => (
            Verdict::of_failure(judge.level),
            format!(
                "no CLOSE arrived on stream {stream}; expected {}",
                names(&preferred)
            ),
        ),
    };
    CloseColumn {
        verdict,
        stream,
        preferred,
        acceptable,
        got: seen.as_ref().map(|c| c.reason),
        packet: seen.map(|c| c.packet),
        note,
    }
}
