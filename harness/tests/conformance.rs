//! The conformance suite as `cargo test` trials: one trial per case file under `cases/`,
//! named by the case ID, found at run time (a new YAML file needs no rebuild).
//!
//! ```text
//! cargo test -p wisp-harness --test conformance                  # every case
//! cargo test -p wisp-harness --test conformance handshake.       # an ID prefix
//! cargo test -p wisp-harness --test conformance -- --list        # list the cases
//! cargo test -p wisp-harness --test conformance -- --ignored     # known client findings
//! ```
//!
//! A case passes when its verdict is the expected one and its transcript matches the insta
//! snapshot `harness/snapshots/<case id>.snap`. A case file that does not load becomes a
//! failing trial named `load-error::<path>`, and a snapshot that no client-role case owns
//! (a case renamed or removed) fails the trial `orphan-snapshots`. The trial
//! `junit-report-validates` runs the whole suite through the engine, as the CLI does, and
//! validates its JUnit report against `harness/junit/surefire-testsuite.xsd`.

use std::path::Path;

use insta::internals::Content;
use libtest_mimic::{Arguments, Failed, Trial};
use wisp_harness::report::junit;
use wisp_harness::{
    Case, ClientCase, Gate, Subject, SuiteOptions, default_cases_dir, load_dir, run_client_case,
    run_suite_blocking,
};

fn main() {
    let args = Arguments::from_args();
    // WISP_CASES_DIR points the suite at another cases directory.
    let dir = std::env::var_os("WISP_CASES_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(default_cases_dir);
    let (cases, errors) = load_dir(&dir);
    let mut trials = Vec::new();
    for error in errors {
        let rel = error
            .path
            .strip_prefix(&dir)
            .unwrap_or(&error.path)
            .to_string_lossy()
            .replace('\\', "/");
        let message = error.to_string();
        trials.push(
            Trial::test(format!("load-error::{rel}"), move || Err(message.into()))
                .with_kind("case-file"),
        );
    }
    // Server-role cases need a live server: `tests/servers.rs` runs them.
    let suite: Vec<Case> = cases
        .iter()
        .filter(|c| c.as_client().is_some())
        .cloned()
        .collect();
    trials.push(
        Trial::test("junit-report-validates", move || junit_report(&suite)).with_kind("report"),
    );
    let cases: Vec<ClientCase> = cases
        .iter()
        .filter_map(|c| c.as_client())
        .cloned()
        .collect();
    let ids: Vec<String> = cases.iter().map(|c| c.meta.id.clone()).collect();
    trials.push(Trial::test("orphan-snapshots", move || orphans(&ids)).with_kind("snapshots"));
    for case in cases {
        let ignored = case.ignore.is_some();
        trials.push(
            Trial::test(case.meta.id.clone(), move || run(&case))
                .with_kind("client")
                .with_ignored_flag(ignored),
        );
    }
    libtest_mimic::run(&args, trials).exit();
}

fn snapshots_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots")
}

/// Every snapshot belongs to a client-role case: its file name is the case ID.
fn orphans(ids: &[String]) -> Result<(), Failed> {
    let dir = snapshots_dir();
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut orphans = Vec::new();
    for entry in entries {
        let name = entry.map_err(|e| e.to_string())?.file_name();
        let name = name.to_string_lossy();
        // `.snap.new` files are insta's pending reviews, not accepted snapshots.
        if let Some(id) = name.strip_suffix(".snap")
            && !ids.iter().any(|i| i == id)
        {
            orphans.push(name.into_owned());
        }
    }
    orphans.sort();
    if orphans.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "snapshots that no case owns (the case was renamed or removed; delete them or rename them with the case): {}",
            orphans.join(", ")
        )
        .into())
    }
}

/// The suite through the engine, as `wisp-conformance --junit` runs it: its JUnit report
/// has a testcase per case and validates against the XSD.
fn junit_report(cases: &[Case]) -> Result<(), Failed> {
    let options = SuiteOptions {
        jobs: 1,
        ..SuiteOptions::default()
    };
    let report = run_suite_blocking(cases, Subject::OurClient, &options, &mut |_, _, _| {})?;
    let gate = Gate::decide(&report, false, None, true);
    let xml = junit::junit(&report, &gate)?;
    if !xml.contains(&format!(r#"tests="{}""#, cases.len())) {
        return Err(format!("the report does not count {} tests:\n{xml}", cases.len()).into());
    }
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("junit/surefire-testsuite.xsd");
    wisp_testkit::validate_xml(&xsd, &xml).map_err(|e| format!("the JUnit report: {e}").into())
}

fn run(case: &ClientCase) -> Result<(), Failed> {
    let report = run_client_case(case);
    if let Some(e) = &report.error {
        return Err(format!("harness error: {e}").into());
    }
    if !report.passed() {
        let mut msg = format!(
            "{}: verdict {} (expected {})\n",
            case.meta.rel_path,
            report.verdict,
            case.expected_verdict()
        );
        for f in &report.reasons {
            msg.push_str(&format!("  - {f}\n"));
        }
        if let Some(reason) = &case.ignore {
            msg.push_str(&format!("(ignored case: {reason})\n"));
        }
        msg.push('\n');
        msg.push_str(&report.transcript);
        return Err(msg.into());
    }
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(snapshots_dir());
    settings.set_prepend_module_to_snapshot(false);
    settings.set_input_file(&case.meta.path);
    settings.set_omit_expression(true);
    settings.set_description(case.meta.title.clone());
    settings.set_raw_info(&Content::Map(vec![
        (Content::from("id"), Content::from(case.meta.id.as_str())),
        (
            Content::from("spec"),
            Content::from(case.meta.spec.as_str()),
        ),
        (
            Content::from("level"),
            Content::from(case.meta.level.name()),
        ),
        (
            Content::from("verdict"),
            Content::from(report.verdict.to_string()),
        ),
    ]));
    // A mismatch panics inside insta; libtest-mimic reports the panic as a failure.
    settings.bind(|| insta::assert_snapshot!(case.meta.id.as_str(), report.transcript.as_str()));
    Ok(())
}
