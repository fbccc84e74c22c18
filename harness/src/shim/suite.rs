//! The client suite as a library: run it against a client, gate the run on a committed
//! client baseline, and summarise baselines as a client × topic matrix. This is what
//! another project's `cargo test` calls to judge its own client (see `harness/SHIM.md`).

use std::collections::BTreeMap;
use std::path::Path;

use wisp_cases::{Case, Role};

use crate::engine::{ClientSubject, Subject, SuiteOptions, run_suite_blocking};
use crate::report::{Gate, SuiteReport, table};
use crate::server::baseline::{Baseline, family_matrix};
use crate::{default_cases_dir, load_dir};

/// Every client-role case of `dir` (the workspace's `cases/` when `None`).
///
/// # Errors
///
/// A case file that does not load.
pub fn client_cases(dir: Option<&Path>) -> Result<Vec<Case>, String> {
    let dir = dir.map_or_else(default_cases_dir, Path::to_owned);
    let (cases, errors) = load_dir(&dir);
    if !errors.is_empty() {
        let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
        return Err(format!("bad case files:\n{}", all.join("\n")));
    }
    Ok(cases
        .into_iter()
        .filter(|c| c.role() == Role::Client)
        .collect())
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
    let uncommented = expected.uncommented();
    if !uncommented.is_empty() {
        return Err(format!(
            "{}: entries that are not OK must say what the client does (a `# comment`): {}",
            baseline.display(),
            uncommented.join(", ")
        ));
    }
    let cases = client_cases(None)?;
    let options = SuiteOptions {
        jobs: jobs.max(1),
        include_ignored: false,
    };
    let report = run_suite_blocking(&cases, Subject::Client(client), &options, &mut |_, _, _| {})?;
    let gate = Gate::decide(&report, false, Some(&expected), true);
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
