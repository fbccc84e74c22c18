//! Judging clients through the shim protocol (harness/SHIM.md):
//!
//! - shims that misbehave (crash, print garbage, never answer, exit early) give ERROR for
//!   their case within a bound, with their stderr tail, and the run goes on;
//! - a case that needs a capability the shim does not declare is UNSUPPORTED;
//! - wisp-js 0.5.0's client (`shims/wisp-js/shim.mjs`, the pinned package installed by
//!   scripts/install-servers.sh) matches its committed baseline,
//!   `harness/baselines/clients/wisp-js-0.5.0.yaml`;
//! - the README's client matrix is the one the client baselines give.
//!
//! The shims of our own client and of wisp-mux 5.1.0 are gated by their own crates' tests
//! (`shims/wisp-client/tests/`, `shims/wisp-mux/tests/`), which can run their binaries.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wisp_harness::report::CaseReport;
use wisp_harness::server::baseline::Baseline;
use wisp_harness::shim::{assert_client_baseline, topic_matrix};
use wisp_harness::{
    Case, ClientSubject, Filter, Role, Subject, SuiteOptions, SuiteReport, Verdict,
    default_cases_dir, load_dir, run_suite_blocking,
};

/// A few quick client-role cases: v1 and v2 handshakes.
fn some_cases() -> Vec<Case> {
    let (cases, errors) = load_dir(&default_cases_dir());
    assert!(errors.is_empty(), "{errors:?}");
    let cases: Vec<Case> = cases
        .into_iter()
        .filter(|c| c.role() == Role::Client)
        .collect();
    let filter = Filter::new([
        "handshake.v1.continue".to_owned(),
        "handshake.draft6.basic".to_owned(),
    ]);
    filter
        .apply(&cases)
        .expect("the filter matches")
        .into_iter()
        .cloned()
        .collect()
}

/// A fake shim: a shell script that answers `describe` properly, then runs `on_run`.
fn fake_shim(dir: &Path, name: &str, on_run: &str) -> String {
    let path = dir.join(format!("{name}.sh"));
    let script = format!(
        "read line\n\
         case \"$line\" in\n\
         *describe*) echo '{{\"type\":\"hello\",\"name\":\"{name}\",\"version\":\"0\",\"capabilities\":[\"v1\",\"v2\",\"udp\",\"motd\"]}}'; exit 0;;\n\
         esac\n\
         {on_run}\n"
    );
    std::fs::write(&path, script).expect("write the fake shim");
    format!("sh {}", path.display())
}

fn run_fake(command: &str, bound: Duration) -> SuiteReport {
    let mut subject = ClientSubject::shim(command);
    subject.case_timeout = Duration::from_secs(2);
    let options = SuiteOptions {
        jobs: 2,
        include_ignored: false,
    };
    let started = Instant::now();
    let report = run_suite_blocking(
        &some_cases(),
        Subject::Client(subject),
        &options,
        &mut |_, _, _| {},
    )
    .expect("the run starts");
    assert!(
        started.elapsed() < bound,
        "the run took {:?} (bound {bound:?})",
        started.elapsed()
    );
    assert_eq!(report.cases.len(), 2, "every case has a report");
    report
}

fn assert_error(c: &CaseReport, says: &str, stderr: Option<&str>) {
    let error = c.error.as_deref().unwrap_or_else(|| {
        panic!(
            "{}: expected ERROR, got {} ({:?})",
            c.id,
            c.label(),
            c.reasons
        )
    });
    assert_eq!(c.label(), "ERROR");
    assert!(error.contains(says), "{}: {error}", c.id);
    if let Some(tail) = stderr {
        assert!(error.contains(tail), "{}: no stderr tail in {error}", c.id);
    }
}

#[test]
fn a_crashing_shim_is_an_error_with_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = fake_shim(
        dir.path(),
        "crash",
        "echo 'segfault in the client' >&2; exit 3",
    );
    let report = run_fake(&cmd, Duration::from_secs(30));
    for c in &report.cases {
        assert_error(
            c,
            "exited (exit status: 3) before `done`",
            Some("segfault in the client"),
        );
    }
}

#[test]
fn a_shim_printing_garbage_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = fake_shim(
        dir.path(),
        "garbage",
        "echo 'hello, I am not JSON'; echo 'oops' >&2; sleep 30",
    );
    let report = run_fake(&cmd, Duration::from_secs(30));
    for c in &report.cases {
        assert_error(c, "not a protocol message", Some("oops"));
        assert!(c.error.as_deref().unwrap().contains("hello, I am not JSON"));
    }
}

#[test]
fn a_shim_that_never_answers_is_an_error_within_a_bound() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = fake_shim(
        dir.path(),
        "silent",
        "echo 'waiting forever' >&2; sleep 600",
    );
    // 2 s case bound + 20 s to connect... the shim never connects: the bound on the whole
    // case is the startup grace plus the case bound, then `finish` gets 10 s.
    let report = run_fake(&cmd, Duration::from_secs(90));
    for c in &report.cases {
        assert_error(c, "did not answer `finish`", Some("waiting forever"));
    }
}

#[test]
fn a_shim_that_exits_early_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = fake_shim(
        dir.path(),
        "early",
        "echo '{\"type\":\"handshake\",\"version\":\"1.2\"}'; exit 0",
    );
    let report = run_fake(&cmd, Duration::from_secs(30));
    for c in &report.cases {
        assert_error(c, "before `done`", None);
        // What the shim said before it went is kept.
        assert!(
            c.transcript.contains("handshake: ok version=1.2"),
            "{}",
            c.transcript
        );
    }
}

#[test]
fn a_shim_that_cannot_describe_itself_stops_the_run() {
    let err = run_suite_blocking(
        &some_cases(),
        Subject::Client(ClientSubject::shim("sh -c 'echo nonsense'")),
        &SuiteOptions::default(),
        &mut |_, _, _| {},
    )
    .expect_err("the run cannot start");
    assert!(err.contains("did not say who it is"), "{err}");
}

#[test]
fn missing_capabilities_make_a_case_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    // Declares v1 only (and never runs anything: an unsupported case starts no process).
    let path = dir.path().join("v1-only.sh");
    std::fs::write(
        &path,
        "read line\necho '{\"type\":\"hello\",\"name\":\"v1-only\",\"version\":\"0\",\"capabilities\":[\"v1\"]}'\n",
    )
    .unwrap();
    let (cases, _) = load_dir(&default_cases_dir());
    let cases: Vec<Case> = cases
        .into_iter()
        .filter(|c| c.id() == "handshake.draft6.basic")
        .collect();
    let report = run_suite_blocking(
        &cases,
        Subject::Client(ClientSubject::shim(&format!("sh {}", path.display()))),
        &SuiteOptions::default(),
        &mut |_, _, _| {},
    )
    .unwrap();
    let c = &report.cases[0];
    assert_eq!(c.verdict, Verdict::Unsupported, "{c:?}");
    assert!(
        c.reasons[0].contains("does not declare v2"),
        "{:?}",
        c.reasons
    );
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn client_baselines() -> Vec<Baseline> {
    let dir = repo().join("harness/baselines/clients");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("harness/baselines/clients")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| Baseline::load(p).expect("a client baseline"))
        .collect()
}

#[test]
fn wisp_js_matches_its_baseline() {
    wisp_testkit::ensure_installed().expect("the pinned wisp-js is installed");
    let shim = repo().join("shims/wisp-js/shim.mjs");
    let subject = ClientSubject::shim(&format!("node {}", shim.display()));
    let baseline = repo().join("harness/baselines/clients/wisp-js-0.5.0.yaml");
    if let Err(e) = assert_client_baseline(subject, &baseline, 24) {
        panic!("{e}");
    }
}

#[test]
fn readme_has_the_client_matrix() {
    let table = topic_matrix(&client_baselines());
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README");
    assert!(
        readme.contains(&table),
        "README.md lacks the client matrix (section \"Judge your own client\"); it should contain:\n{table}"
    );
}
