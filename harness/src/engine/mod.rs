//! The one engine every suite runs on: cases of either role, judged against a
//! [`Subject`], through one pool, into one report model ([`crate::report`]).
//!
//! ```text
//! cases ──► run_suite(cases, subject, options)
//!             │  subject prepared once (a server subject starts its targets, probes)
//!             │  pool: `jobs` cases at a time, each with its own deadline, panics caught
//!             ├─ Subject::OurClient  client role: our ClientMux against the mock server
//!             │                       on a paused clock ([`mock`], actions by [`actions`])
//!             ├─ Subject::Client     client role: any client through the shim protocol
//!             │                       ([`crate::shim`]), the mock on the real clock
//!             └─ Subject::Server     server role: the harness plays the client against a
//!                                     live server ([`crate::server`], actions by [`actions`])
//!           ──► CaseRun (failures, error, close column, transcript)
//!           ──► verdict from the level ──► CaseReport ──► SuiteReport
//! ```
//!
//! A subject is what is under test; the role of a case says which side that is. A
//! third-party client ([`Subject::Client`], driven through a shim process or in process)
//! is judged by the client role's expectations and the same judges (`judge.rs`), not
//! another engine.
//!
//! ```no_run
//! use wisp_harness::engine::{Subject, SuiteOptions, run_suite_blocking};
//! use wisp_harness::{default_cases_dir, load_dir};
//!
//! let (cases, _errors) = load_dir(&default_cases_dir());
//! let client_cases: Vec<_> = cases.into_iter().filter(|c| c.as_client().is_some()).collect();
//! let report = run_suite_blocking(
//!     &client_cases,
//!     Subject::OurClient,
//!     &SuiteOptions::default(),
//!     &mut |_, _, _| {},
//! )
//! .expect("the suite ran");
//! println!("{}", wisp_harness::report::table::table(&report, false));
//! ```

pub(crate) mod actions;
mod client;
mod echo;
pub(crate) mod judge;
mod mock;
pub(crate) mod ours;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use wisp_cases::{Case, ClientCase, Meta, Role, Verdict};

use crate::report::{CaseReport, ClientInfo, CloseColumn, SubjectInfo, SuiteReport};
use crate::server::{ServerConfig, ServerRun};
use crate::shim::{ClientUnderTest, ShimProcess};

/// What a suite run judges.
#[derive(Clone, Debug)]
pub enum Subject {
    /// This workspace's client (`wisp_client::ClientMux`) in process: each client-role
    /// case runs against the scripted mock server on a paused clock of its own.
    OurClient,
    /// Any client, through the shim protocol ([`crate::shim`]): client-role cases, the
    /// mock server on the real clock.
    Client(ClientSubject),
    /// A live Wisp server (server-role cases): the harness plays the client.
    Server(Box<ServerConfig>),
}

impl Subject {
    /// The side of the wire the subject is on: the role of the cases it runs.
    pub fn role(&self) -> Role {
        match self {
            Self::OurClient | Self::Client(_) => Role::Client,
            Self::Server(_) => Role::Server,
        }
    }
}

/// A client under test, as a subject.
#[derive(Clone)]
pub struct ClientSubject {
    /// The client (a [`crate::shim::ShimProcess`], or a Rust client in process).
    pub client: Arc<dyn ClientUnderTest>,
    /// The bound on each case, in real time (a case's own `timeout:` when shorter).
    /// Default 10 s.
    pub case_timeout: Duration,
    /// How reports name how the client was driven (`shim node shims/wisp-js/shim.mjs`).
    pub driver: String,
}

impl ClientSubject {
    /// `client`, with the default case bound; `driver` says how it is driven.
    pub fn new(client: Arc<dyn ClientUnderTest>, driver: impl Into<String>) -> Self {
        Self {
            client,
            case_timeout: Duration::from_secs(10),
            driver: driver.into(),
        }
    }

    /// A shim process started with the shell command line `command`.
    pub fn shim(command: &str) -> Self {
        Self::new(
            Arc::new(ShimProcess::new(command)),
            format!("shim `{command}`"),
        )
    }
}

impl std::fmt::Debug for ClientSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSubject")
            .field("driver", &self.driver)
            .field("case_timeout", &self.case_timeout)
            .finish_non_exhaustive()
    }
}

/// How long a client has to say who it is.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);

/// How a suite runs.
#[derive(Clone, Debug)]
pub struct SuiteOptions {
    /// Cases run at once (at least 1).
    pub jobs: usize,
    /// Also run client-role cases marked `ignore` (else they are reported as IGNORED).
    pub include_ignored: bool,
}

impl Default for SuiteOptions {
    /// As many jobs as CPUs; ignored cases are not run.
    fn default() -> Self {
        Self {
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            include_ignored: false,
        }
    }
}

/// What running one case against a subject produced, before the engine judges it.
#[derive(Debug, Default)]
pub(crate) struct CaseRun {
    /// Failed expectations.
    pub(crate) failures: Vec<String>,
    /// The case could not run (harness or connection error).
    pub(crate) error: Option<String>,
    /// The subject lacks a feature the case needs: UNSUPPORTED, for this reason.
    pub(crate) unsupported: Option<String>,
    /// The case fails whatever its level, for this reason (put first): the server under
    /// test crashed or froze during it.
    pub(crate) fatal: Option<String>,
    /// The case was not run (the server under test was down), for this reason.
    pub(crate) not_run: Option<String>,
    /// The CLOSE-reason column.
    pub(crate) close: Option<CloseColumn>,
    /// The transcript or wire log.
    pub(crate) transcript: String,
    /// Virtual time, on a paused clock.
    pub(crate) virtual_time: Option<Duration>,
}

impl CaseRun {
    /// A run that could not happen.
    pub(crate) fn error(why: impl Into<String>) -> Self {
        Self {
            error: Some(why.into()),
            ..Self::default()
        }
    }
}

/// Judges a run of the case described by `meta`: the verdict follows the case's level; a
/// client-role transcript ends with the verdict and its reasons (the snapshot shows them).
/// Listen mode ([`crate::listen`]) judges its wire-side runs with it too.
pub(crate) fn finish(
    meta: &Meta,
    role: Role,
    expected: Option<Verdict>,
    mut run: CaseRun,
    duration: Duration,
) -> CaseReport {
    let mut report = CaseReport::new(meta, role);
    report.expected = expected;
    report.duration = duration;
    report.virtual_time = run.virtual_time;
    report.close = run.close;
    report.transcript = run.transcript;
    if let Some(e) = run.error {
        report.verdict = Verdict::Failed;
        report.error = Some(e);
        return report;
    }
    if let Some(why) = run.not_run {
        report.not_run = Some(why);
        return report;
    }
    if let Some(why) = run.unsupported {
        report.verdict = Verdict::Unsupported;
        report.reasons = vec![why];
        return report;
    }
    report.verdict = match run.fatal.take() {
        Some(why) => {
            run.failures.insert(0, why);
            Verdict::Failed
        }
        None => Verdict::judge(meta.level, &run.failures),
    };
    if role == Role::Client {
        let t = &mut report.transcript;
        t.push_str(&format!("== verdict ==\n{}\n", report.verdict));
        for f in &run.failures {
            t.push_str(&format!("  - {f}\n"));
        }
    }
    report.reasons = run.failures;
    report
}

/// Runs one client-role case against our client, on the calling thread (a runtime of
/// its own): the `cargo test` trials' entry point.
pub fn run_client_case(case: &ClientCase) -> CaseReport {
    let started = Instant::now();
    let run = mock::run(case);
    let expected = Some(case.expected_verdict());
    finish(&case.meta, Role::Client, expected, run, started.elapsed())
}

/// A subject, prepared for a run.
enum Prepared {
    OurClient,
    Client(Box<client::ClientRun>, String),
    Server(Arc<ServerRun>),
}

impl Prepared {
    async fn start(subject: Subject) -> Result<Self, String> {
        Ok(match subject {
            Subject::OurClient => Self::OurClient,
            Subject::Client(s) => {
                let hello = tokio::time::timeout(HELLO_TIMEOUT, s.client.hello())
                    .await
                    .map_err(|_| {
                        format!(
                            "the client did not say who it is within {}s",
                            HELLO_TIMEOUT.as_secs()
                        )
                    })?
                    .map_err(|e| format!("the client did not say who it is: {e}"))?;
                Self::Client(
                    Box::new(client::ClientRun {
                        client: s.client,
                        hello,
                        cap: s.case_timeout,
                    }),
                    s.driver,
                )
            }
            Subject::Server(config) => Self::Server(Arc::new(ServerRun::start(*config).await?)),
        })
    }

    fn role(&self) -> Role {
        match self {
            Self::OurClient | Self::Client(..) => Role::Client,
            Self::Server(_) => Role::Server,
        }
    }

    fn applies(&self, case: &Case) -> bool {
        match (self, case) {
            (Self::Server(run), Case::Server(s)) => run.applies(s),
            _ => true,
        }
    }

    async fn run(&self, case: &Case) -> CaseRun {
        match (self, case) {
            (Self::OurClient, Case::Client(c)) => {
                let c = c.clone();
                tokio::task::spawn_blocking(move || mock::run(&c))
                    .await
                    .unwrap_or_else(|_| {
                        CaseRun::error("the harness panicked while running the case")
                    })
            }
            (Self::Client(run, _), Case::Client(c)) => run.run(c).await,
            (Self::Server(run), Case::Server(s)) => run.run(s).await,
            (_, case) => CaseRun::error(format!(
                "a {}-role case cannot run against this subject",
                case.role().name()
            )),
        }
    }

    /// The rows of the run-level checks, after every case ran.
    fn check_reports(&self) -> Vec<CaseReport> {
        match self {
            Self::OurClient | Self::Client(..) => Vec::new(),
            Self::Server(run) => run.check_reports(),
        }
    }

    fn info(&self) -> SubjectInfo {
        match self {
            Self::OurClient => SubjectInfo::OurClient,
            Self::Client(run, driver) => SubjectInfo::Client(ClientInfo {
                name: run.hello.name.clone(),
                version: run.hello.version.clone(),
                capabilities: run.hello.capabilities.iter().map(|c| c.name()).collect(),
                driver: driver.clone(),
            }),
            Self::Server(run) => SubjectInfo::Server(run.info()),
        }
    }
}

/// Runs `cases` against `subject`, `options.jobs` at a time. `progress` is called as each
/// case finishes with (finished, total, report).
///
/// # Errors
///
/// Only when the run cannot start: a case of the other role, or a subject that cannot be
/// prepared (a URL the harness cannot use, targets that cannot bind). A server that
/// cannot be reached is reported per case (connection errors).
pub async fn run_suite(
    cases: &[Case],
    subject: Subject,
    options: &SuiteOptions,
    progress: &mut dyn FnMut(usize, usize, &CaseReport),
) -> Result<SuiteReport, String> {
    let started = Instant::now();
    let role = subject.role();
    if let Some(other) = cases.iter().find(|c| c.role() != role) {
        return Err(format!(
            "{} is a {}-role case; this run judges the {} role",
            other.id(),
            other.role().name(),
            role.name()
        ));
    }
    let prepared = Arc::new(Prepared::start(subject).await?);
    debug_assert_eq!(prepared.role(), role);
    let semaphore = Arc::new(Semaphore::new(options.jobs.max(1)));
    // Cases start in suite order (with `-j 1`, one after the other in that order): each
    // waits for its turn, then for a permit.
    let turn = Arc::new(tokio::sync::watch::Sender::new(0usize));
    let mut started_in_order = 0usize;
    let mut not_applicable = Vec::new();
    let mut slots: Vec<Option<CaseReport>> = Vec::new();
    let mut set = JoinSet::new();
    for case in cases {
        if !prepared.applies(case) {
            not_applicable.push(case.id().to_owned());
            continue;
        }
        let index = slots.len();
        if let Some(why) = case.as_client().and_then(|c| c.ignore.as_ref())
            && !options.include_ignored
        {
            let mut report = CaseReport::new(case.meta(), case.role());
            report.ignored = Some(why.clone());
            report.expected = case.as_client().map(ClientCase::expected_verdict);
            slots.push(Some(report));
            continue;
        }
        slots.push(None);
        let prepared = prepared.clone();
        let semaphore = semaphore.clone();
        let case = case.clone();
        let turn = turn.clone();
        let my_turn = started_in_order;
        started_in_order += 1;
        set.spawn(async move {
            let _ = turn.subscribe().wait_for(|t| *t >= my_turn).await;
            let _permit = semaphore.acquire_owned().await;
            turn.send_modify(|t| *t += 1);
            let started = Instant::now();
            let run = match std::panic::AssertUnwindSafe(prepared.run(&case))
                .catch_unwind()
                .await
            {
                Ok(run) => run,
                Err(_) => CaseRun::error("the harness panicked while running the case"),
            };
            let expected = case.as_client().map(ClientCase::expected_verdict);
            let report = finish(case.meta(), case.role(), expected, run, started.elapsed());
            (index, report)
        });
    }
    let total = slots.iter().filter(|s| s.is_none()).count();
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
    let mut cases: Vec<CaseReport> = slots.into_iter().flatten().collect();
    cases.extend(prepared.check_reports());
    let subject = prepared.info();
    // The subject's resources (a server run's loopback targets) end with the run.
    drop(prepared);
    Ok(SuiteReport {
        subject,
        cases,
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
    subject: Subject,
    options: &SuiteOptions,
    progress: &mut dyn FnMut(usize, usize, &CaseReport),
) -> Result<SuiteReport, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    runtime.block_on(run_suite(cases, subject, options, progress))
}
