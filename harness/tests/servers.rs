//! The server suite against real servers, one trial per server × mode, each compared
//! with its committed baseline (`harness/baselines/<server>-<mode>.yaml`).
//!
//! ```text
//! cargo test -p wisp-harness --test servers                 # every server × mode
//! cargo test -p wisp-harness --test servers wisp-js         # the wisp-js runs
//! WISP_BASELINES=write cargo test -p wisp-harness --test servers
//!     # also write harness/baselines/<name>.yaml.new from the run, for review
//! WISP_SERVERS_VERBOSE=1 cargo test -p wisp-harness --test servers wisp-mux
//!     # print every run's table with the wire log of each case that is not OK
//! ```
//!
//! A trial fails when a verdict differs from the baseline (an unexpected pass as much as
//! an unexpected fail), when a case could not connect, when a baseline entry that is not
//! OK has no comment saying why, or when the run's JUnit report does not validate against
//! `harness/junit/surefire-testsuite.xsd` (`tests/conformance.rs` validates the client
//! suite's). The servers are installed on first use by
//! `wisp_testkit::ensure_installed` (pinned wisp-python 0.9.0 and wisp-js 0.5.0); the
//! wisp-mux 5.1.0 server runs in this process. Nothing is skipped.
//!
//! Each run also writes its JSON report (`<server>-<mode>.json`) and the HTML matrix of
//! every run so far (`index.html`) into `target/tmp/servers-report/`; the directory is
//! emptied at start, so it holds the runs of the last invocation.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use wisp_harness::report::{html, json, junit, table};
use wisp_harness::server::baseline::{self, Baseline, family_matrix};
use wisp_harness::server::{RunMode, ServerConfig};
use wisp_harness::{
    Case, Gate, Role, Subject, SuiteOptions, default_cases_dir, load_dir, run_suite,
};
use wisp_testkit::{RealServer, ServerKind, WispMuxConfig, WispMuxServer};

/// The MOTD wisp-js is started with (so the MOTD cases run).
const MOTD: &str = "wisp-conformance MOTD";
/// The credentials the password-protected wisp-mux server is given.
const CREDENTIALS: (&str, &str) = ("wisp", "conformance");
/// A destination both wisp-python and wisp-js block by default (private addresses).
const BLOCKED: (&str, u16) = ("10.0.0.1", 80);

#[derive(Clone, Copy, Debug)]
enum Target {
    PythonV1,
    JsV1,
    JsV2,
    MuxV1,
    MuxV2,
}

impl Target {
    const ALL: [Target; 5] = [
        Target::PythonV1,
        Target::JsV1,
        Target::JsV2,
        Target::MuxV1,
        Target::MuxV2,
    ];

    fn name(self) -> &'static str {
        match self {
            Target::PythonV1 => "wisp-python-0.9.0-v1",
            Target::JsV1 => "wisp-js-0.5.0-v1",
            Target::JsV2 => "wisp-js-0.5.0-v2",
            Target::MuxV1 => "wisp-mux-5.1.0-v1",
            Target::MuxV2 => "wisp-mux-5.1.0-v2",
        }
    }

    fn server_name(self) -> &'static str {
        match self {
            Target::PythonV1 => "wisp-python 0.9.0 (--allow-loopback --threads 1)",
            Target::JsV1 | Target::JsV2 => "wisp-js 0.5.0 (allow_loopback_ips, wisp_motd)",
            Target::MuxV1 => "wisp-mux 5.1.0 ServerMux (v1, buffer 128)",
            Target::MuxV2 => {
                "wisp-mux 5.1.0 ServerMux (v2, UDP, password wisp:conformance, buffer 128)"
            }
        }
    }

    fn mode(self) -> RunMode {
        match self {
            Target::PythonV1 | Target::JsV1 | Target::MuxV1 => RunMode::V1,
            Target::JsV2 | Target::MuxV2 => RunMode::V2,
        }
    }
}

/// Keeps a server alive for the run.
#[allow(dead_code)]
enum Running {
    Real(RealServer),
    Mux(WispMuxServer),
}

impl Running {
    fn url(&self) -> String {
        match self {
            Running::Real(s) => s.url(),
            Running::Mux(s) => s.url(),
        }
    }

    fn log_tail(&self) -> String {
        match self {
            Running::Real(s) => s.log_tail(),
            Running::Mux(_) => "(in-process wisp-mux server: no log)".to_owned(),
        }
    }
}

/// The runs finished so far, by their index in [`Target::ALL`]: the HTML matrix.
static RUNS: Mutex<Vec<(usize, html::Run)>> = Mutex::new(Vec::new());

fn report_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("servers-report")
}

/// Writes the run's JSON report and the matrix of every run finished so far.
fn write_matrix(
    target: Target,
    report: &wisp_harness::SuiteReport,
    gate: &Gate,
    baseline: &Baseline,
) -> Result<(), String> {
    let dir = report_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut value = json::json(report, gate, Some(baseline));
    if let Some(map) = value.as_object_mut() {
        map.insert("name".to_owned(), target.name().into());
    }
    let path = dir.join(format!("{}.json", target.name()));
    let text = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    let run = html::Run::from_json(value)?;
    let order = Target::ALL
        .iter()
        .position(|t| t.name() == target.name())
        .unwrap_or(usize::MAX);
    let mut runs = RUNS
        .lock()
        .map_err(|_| "a run panicked while writing the matrix")?;
    runs.push((order, run));
    runs.sort_by_key(|(i, _)| *i);
    let all: Vec<html::Run> = runs.iter().map(|(_, r)| r.clone()).collect();
    html::write(&all, &dir).map(drop)
}

fn baselines_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("baselines")
}

fn main() {
    let args = Arguments::from_args();
    let _ = std::fs::remove_dir_all(report_dir());
    let (cases, errors) = load_dir(&default_cases_dir());
    let mut trials = Vec::new();
    if !errors.is_empty() {
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let text = text.join("\n");
        trials.push(Trial::test("case-files-load", move || Err(text.into())));
    }
    let cases: Vec<Case> = cases
        .into_iter()
        .filter(|c| c.role() == Role::Server)
        .collect();
    trials.push(Trial::test("junit-validator-rejects-invalid-reports", || {
        // The validator must be able to fail: a testcase without `name`, a bad time.
        let bad = r#"<?xml version="1.0"?><testsuite name="x" tests="1" failures="0" errors="0" skipped="0"><testcase time="1.5s"/></testsuite>"#;
        match validate_junit(bad) {
            Err(e) if e.contains("name") || e.contains("time") => Ok(()),
            Err(e) => Err(format!("rejected, but not for the missing name or bad time: {e}").into()),
            Ok(()) => Err("an invalid report validated".into()),
        }
    }));
    trials.push(Trial::test("readme-interop-table-matches-baselines", || {
        let runs: Vec<(String, _)> = Target::ALL
            .iter()
            .map(|t| {
                let path = baselines_dir().join(format!("{}.yaml", t.name()));
                Baseline::load(&path).map(|b| (t.name().to_owned(), b.by_family()))
            })
            .collect::<Result<_, _>>()?;
        let table = family_matrix(&runs);
        // Both the harness README and the top-level README carry the table.
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        for readme_path in [manifest_dir.join("README.md"), manifest_dir.join("../README.md")] {
            let readme = std::fs::read_to_string(&readme_path).map_err(|e| e.to_string())?;
            if !readme.contains(&table) {
                return Err(format!(
                    "{} does not contain the interop table the baselines give; replace it with:\n\n{table}",
                    readme_path.display()
                )
                .into());
            }
        }
        Ok(())
    }));
    for target in Target::ALL {
        let cases = cases.clone();
        trials.push(
            Trial::test(target.name(), move || run_target(target, &cases)).with_kind("server"),
        );
    }
    libtest_mimic::run(&args, trials).exit();
}

async fn start(target: Target) -> Result<Running, String> {
    match target {
        Target::PythonV1 => RealServer::start(ServerKind::WispPython)
            .await
            .map(Running::Real),
        Target::JsV1 | Target::JsV2 => RealServer::start(ServerKind::WispJs {
            motd: Some(MOTD.to_owned()),
        })
        .await
        .map(Running::Real),
        Target::MuxV1 => WispMuxServer::start(WispMuxConfig::default())
            .await
            .map(Running::Mux),
        Target::MuxV2 => WispMuxServer::start(WispMuxConfig {
            v2: true,
            password: Some((CREDENTIALS.0.to_owned(), CREDENTIALS.1.to_owned())),
            ..WispMuxConfig::default()
        })
        .await
        .map(Running::Mux),
    }
}

fn run_target(target: Target, cases: &[Case]) -> Result<(), Failed> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let baseline_path = baselines_dir().join(format!("{}.yaml", target.name()));
    let baseline = Baseline::load(&baseline_path);
    let (report, log) = runtime.block_on(async {
        let server = start(target).await?;
        let mut config = ServerConfig::new(server.url(), target.mode());
        config.cases_dir = default_cases_dir();
        config.step_timeout = Duration::from_secs(5);
        match target {
            Target::PythonV1 | Target::JsV1 | Target::JsV2 => {
                config.blocked = Some((BLOCKED.0.to_owned(), BLOCKED.1));
            }
            Target::MuxV2 => {
                config.credentials = Some((CREDENTIALS.0.to_owned(), CREDENTIALS.1.to_owned()));
            }
            Target::MuxV1 => {}
        }
        let options = SuiteOptions {
            jobs: 8,
            ..SuiteOptions::default()
        };
        let subject = Subject::Server(Box::new(config));
        let report = run_suite(cases, subject, &options, &mut |_, _, _| {}).await?;
        Ok::<_, String>((report, server.log_tail()))
    })?;
    drop(runtime);

    if std::env::var_os("WISP_BASELINES").is_some_and(|v| v == "write") {
        let new = baseline_path.with_extension("yaml.new");
        std::fs::write(
            &new,
            baseline::render(&report, target.server_name(), target.mode()),
        )
        .map_err(|e| format!("writing {}: {e}", new.display()))?;
    }
    if std::env::var_os("WISP_SERVERS_VERBOSE").is_some_and(|v| v == "1") {
        eprintln!("{}", table::table(&report, true));
    }
    let baseline = baseline?;
    let mut problems = Vec::new();
    if baseline.mode != target.mode() {
        problems.push(format!(
            "{} describes a {} run, not {}",
            baseline_path.display(),
            baseline.mode,
            target.mode()
        ));
    }
    let gate = Gate::decide(&report, false, Some(&baseline), true);
    if let Err(e) = write_matrix(target, &report, &gate, &baseline) {
        problems.push(format!("the HTML matrix: {e}"));
    }
    for m in &gate.mismatches {
        problems.push(format!("verdict drift: {m}"));
    }
    for id in &gate.errors {
        problems.push(format!("{id}: connection or harness error"));
    }
    for id in baseline.uncommented() {
        problems.push(format!(
            "{}: {id} is not OK but has no `# why` comment",
            baseline_path.display()
        ));
    }
    if let Err(e) = junit::junit(&report, &gate).and_then(|xml| validate_junit(&xml)) {
        problems.push(format!("the JUnit report does not validate: {e}"));
    }
    if problems.is_empty() {
        eprintln!(
            "{}: {} cases match the baseline in {:.1}s",
            target.name(),
            report.cases.len(),
            report.duration.as_secs_f64()
        );
        return Ok(());
    }
    Err(format!(
        "{} against {}:\n  {}\n\n{}\nserver log tail:\n{log}",
        target.name(),
        baseline_path.display(),
        problems.join("\n  "),
        table::table(&report, true)
    )
    .into())
}

/// Validates a JUnit XML document against the shipped XSD.
fn validate_junit(xml: &str) -> Result<(), String> {
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("junit/surefire-testsuite.xsd");
    wisp_testkit::validate_xml(&xsd, xml)
}
