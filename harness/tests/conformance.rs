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
//! failing trial named `load-error::<path>`.

use std::path::Path;

use insta::internals::Content;
use libtest_mimic::{Arguments, Failed, Trial};
use wisp_harness::{Case, default_cases_dir, load_dir, run_case};

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
    for case in cases.into_iter().filter(|c| !c.is_server_role()) {
        let ignored = case.file.ignore.is_some();
        trials.push(
            Trial::test(case.id.clone(), move || run(&case))
                .with_kind("client")
                .with_ignored_flag(ignored),
        );
    }
    libtest_mimic::run(&args, trials).exit();
}

fn run(case: &Case) -> Result<(), Failed> {
    let report = run_case(case);
    if let Some(e) = &report.harness_error {
        return Err(format!("harness error: {e}").into());
    }
    if !report.passed() {
        let mut msg = format!(
            "{}: verdict {} (expected {})\n",
            case.rel_path, report.verdict, report.expected
        );
        for f in &report.failures {
            msg.push_str(&format!("  - {f}\n"));
        }
        if let Some(reason) = &case.file.ignore {
            msg.push_str(&format!("(ignored case: {reason})\n"));
        }
        msg.push('\n');
        msg.push_str(&report.transcript);
        return Err(msg.into());
    }
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_input_file(&case.path);
    settings.set_omit_expression(true);
    settings.set_description(case.file.title.clone());
    settings.set_raw_info(&Content::Map(vec![
        (Content::from("id"), Content::from(case.id.as_str())),
        (
            Content::from("spec"),
            Content::from(case.file.spec.as_str()),
        ),
        (
            Content::from("level"),
            Content::from(format!("{:?}", case.file.level).to_lowercase()),
        ),
        (
            Content::from("verdict"),
            Content::from(report.verdict.to_string()),
        ),
    ]));
    // A mismatch panics inside insta; libtest-mimic reports the panic as a failure.
    settings.bind(|| insta::assert_snapshot!(case.id.as_str(), report.transcript.as_str()));
    Ok(())
}
