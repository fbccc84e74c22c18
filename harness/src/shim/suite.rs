//! The suites as a library, for another project's `cargo test`: run the client suite
//! against a client and gate it on a committed client baseline
//! ([`assert_client_baseline`], see `harness/SHIM.md`), run the server suite against a
//! server ([`server_suite`], [`assert_server_baseline`]), and summarise client baselines
//! as a client × topic matrix ([`topic_matrix`]).

use std::collections::BTreeMap;
use std::path::Path;

use libtest_mimic::{Failed, Trial};

use wisp_cases::{Case, Role};

use crate::default_cases_dir;
use crate::engine::{ClientSubject, Subject, SuiteOptions, run_suite_blocking};
use crate::report::{Gate, SuiteReport, table};
use crate::server::ServerConfig;
use crate::server::baseline::{Baseline, Expected, family_matrix};

/// Every client-role case of `dir` (the workspace's `cases/` when `None`).
///
/// # Errors
///
/// A case file that does not load.
pub fn client_cases(dir: Option<&Path>) -> Result<Vec<Case>, String> {
    let dir = dir.map_or_else(default_cases_dir, Path::to_owned);
    crate::select::select_cases(&dir, Role::Client, &[], &[], "--filter").map(|(cases, _)| cases)
}

/// Runs every client-role case against `client`, `jobs` at a time, and compares the
/// verdicts with the client baseline at `baseline`: the report when every verdict matches
/// and every entry that is not OK says why; else an error listing the differences (and
/// the table of the run).
///
/// ```no_run
/// use std::sync::Arc;
/// use wisp_harness::ClientSubject;
/// use wisp_harness::shim::assert_client_baseline;
///
/// let subject = ClientSubject::shim("node shims/wisp-js/shim.mjs");
/// assert_client_baseline(subject, "harness/baselines/clients/wisp-js-0.5.0.yaml".as_ref(), 16)
///     .unwrap();
/// ```
///
/// # Errors
///
/// The baseline or the cases cannot be loaded, the client cannot say who it is, a case
/// ends in ERROR, or a verdict differs from the baseline.
pub fn assert_client_baseline(
    client: ClientSubject,
    baseline: &Path,
    jobs: usize,
) -> Result<SuiteReport, String> {
    let expected = Baseline::load(baseline)?;
    if expected.role != Role::Client {
        return Err(format!("{} is not a client baseline", baseline.display()));
    }
    let cases = client_cases(None)?;
    let options = SuiteOptions {
        jobs: jobs.max(1),
        include_ignored: false,
    };
    let report = run_suite_blocking(&cases, Subject::Client(client), &options, &mut |_, _, _| {})?;
    gate(report, &expected)
}

/// The client suite as libtest-mimic trials, one per client-role case, named by the case
/// ID: for a `harness = false` test target of a client's own crate, so `cargo test` there
/// runs every case against the client (`cargo test --test wisp -- handshake.` runs some).
/// With a baseline, a trial passes when the case's outcome is the one the baseline
/// expects; without, when the verdict is the one the case expects (OK, for most). A case
/// marked `ignore` is an ignored trial.
///
/// ```no_run
/// use std::sync::Arc;
/// use wisp_harness::ClientSubject;
/// use wisp_harness::shim::client_trials;
/// # struct MyClient;
/// # impl wisp_harness::shim::ClientUnderTest for MyClient {
/// #     fn hello(&self) -> wisp_harness::shim::BoxFuture<'_, Result<wisp_harness::shim::Hello, String>> { Box::pin(async { Err("a stand-in for a real client".to_owned()) }) }
/// #     fn run<'a>(&'a self, _: wisp_harness::shim::Plan, _: wisp_harness::shim::EventSink, _: wisp_harness::shim::Finish) -> wisp_harness::shim::BoxFuture<'a, Result<(), String>> { Box::pin(async { Err("a stand-in for a real client".to_owned()) }) }
/// # }
///
/// fn main() {
///     let subject = ClientSubject::new(Arc::new(MyClient), "in process");
///     let trials = client_trials(subject, Some("tests/wisp-baseline.yaml".as_ref())).unwrap();
///     libtest_mimic::run(&libtest_mimic::Arguments::from_args(), trials).exit();
/// }
/// ```
///
/// # Errors
///
/// The cases or the baseline cannot be loaded.
pub fn client_trials(
    subject: ClientSubject,
    baseline: Option<&Path>,
) -> Result<Vec<Trial>, String> {
    let baseline = baseline.map(Baseline::load).transpose()?;
    let mut trials = Vec::new();
    for case in client_cases(None)? {
        let expected = baseline.as_ref().map(|b| b.cases.get(case.id()).cloned());
        let ignored = case.as_client().is_some_and(|c| c.ignore.is_some());
        let subject = subject.clone();
        let name = case.id().to_owned();
        trials.push(
            Trial::test(name, move || run_trial(case, subject, expected))
                .with_kind("client")
                .with_ignored_flag(ignored),
        );
    }
    Ok(trials)
}

/// One trial of [`client_trials`]: `expected` is `Some` with a baseline (`Some(None)`: the
/// baseline does not list the case).
fn run_trial(
    case: Case,
    subject: ClientSubject,
    expected: Option<Option<Expected>>,
) -> Result<(), Failed> {
    let options = SuiteOptions {
        jobs: 1,
        include_ignored: true,
    };
    let report = run_suite_blocking(
        &[case],
        Subject::Client(subject),
        &options,
        &mut |_, _, _| {},
    )?;
    let Some(c) = report.cases.first() else {
        return Err("the run has no report for the case".into());
    };
    if let Some(e) = &c.error {
        return Err(format!("ERROR: {e}\n{}", c.transcript).into());
    }
    let (ok, wanted) = match expected {
        Some(Some(e)) => (e.accepts(&c.outcome()), e.to_string()),
        Some(None) => (false, "an entry in the baseline".to_owned()),
        None => (
            c.passed(),
            c.expected.map_or("no FAILED".to_owned(), |v| v.to_string()),
        ),
    };
    if ok {
        return Ok(());
    }
    let mut message = format!("got {}, expected {wanted}\n", c.outcome());
    for r in &c.reasons {
        message.push_str(&format!("  - {r}\n"));
    }
    message.push_str(&c.transcript);
    Err(message.into())
}

/// Runs every server-role case against the server `config` describes (its URL, mode,
/// credentials, key...), `jobs` at a time: the report (a server that cannot be reached is
/// reported per case, as connection errors).
///
/// ```no_run
/// use wisp_harness::server::{RunMode, ServerConfig};
/// use wisp_harness::shim::server_suite;
///
/// let report = server_suite(ServerConfig::new("ws://127.0.0.1:6001/", RunMode::V2), 4).unwrap();
/// println!("{}", wisp_harness::report::table::table(&report, false));
/// ```
///
/// # Errors
///
/// The cases cannot be loaded, or the run cannot start (a URL it cannot use, targets that
/// cannot bind).
pub fn server_suite(config: ServerConfig, jobs: usize) -> Result<SuiteReport, String> {
    let dir = config.cases_dir.clone();
    let (cases, _) = crate::select::select_cases(&dir, Role::Server, &[], &[], "--only")?;
    let options = SuiteOptions {
        jobs: jobs.max(1),
        include_ignored: false,
    };
    run_suite_blocking(
        &cases,
        Subject::Server(Box::new(config)),
        &options,
        &mut |_, _, _| {},
    )
}

/// [`server_suite`], then the gate against the server baseline at `baseline`: the report
/// when every verdict matches (and every entry that is not OK says why), else an error
/// with the differences and the table of the run.
///
/// # Errors
///
/// As [`server_suite`], a baseline of another mode or role, a case that could not
/// connect, or a verdict that differs from the baseline.
pub fn assert_server_baseline(
    config: ServerConfig,
    baseline: &Path,
    jobs: usize,
) -> Result<SuiteReport, String> {
    let expected = Baseline::load(baseline)?;
    if expected.role != Role::Server || expected.mode != config.mode {
        return Err(format!(
            "{} is not a server baseline of a {} run",
            baseline.display(),
            config.mode
        ));
    }
    let report = server_suite(config, jobs)?;
    gate(report, &expected)
}

/// The report when it matches `expected`, else the differences.
fn gate(report: SuiteReport, expected: &Baseline) -> Result<SuiteReport, String> {
    let uncommented = expected.uncommented();
    if !uncommented.is_empty() {
        return Err(format!(
            "{}: entries that are not OK must say why (a `# comment`): {}",
            expected.path.display(),
            uncommented.join(", ")
        ));
    }
    let gate = Gate::decide(&report, false, Some(expected), true);
    if gate.exit_code == 0 {
        return Ok(report);
    }
    let mut message = format!("{}\n", table::table(&report, true));
    for m in &gate.mismatches {
        message.push_str(&format!("baseline: {m}\n"));
    }
    message.push_str(&gate.summary());
    Err(message)
}

/// A markdown table of verdict counts per topic (the first segment of a case ID) for
/// several client baselines, one row each, for the README.
pub fn topic_matrix(baselines: &[Baseline]) -> String {
    let runs: Vec<(String, BTreeMap<String, Vec<String>>)> = baselines
        .iter()
        .map(|b| {
            let mut by_topic: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (id, e) in &b.cases {
                let topic = id.split('.').next().unwrap_or("").to_owned();
                by_topic.entry(topic).or_default().push(e.primary());
            }
            (b.server.clone(), by_topic)
        })
        .collect();
    family_matrix(&runs).replacen("| server (mode) |", "| client |", 1)
}
