//! Our client through the shim protocol gives the same verdict as the harness's own
//! in-process run, case for case, both as a process (`shim-wisp-client`) and in process
//! (`OurClient` as a `ClientUnderTest`); the process run matches the committed baseline
//! `harness/baselines/clients/wisp-client.yaml`.
//!
//! The in-process run is on a paused clock, a shim run on the real one: a case whose
//! outcome depends on real timing is listed in the baseline with its alternatives
//! (`OK | FAILED`, the comment says why), and there either outcome counts as equal.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use shim_wisp_client::OurClient;
use wisp_harness::server::baseline::Baseline;
use wisp_harness::shim::{assert_client_baseline, client_cases};
use wisp_harness::{ClientSubject, Subject, SuiteOptions, SuiteReport, run_suite_blocking};

fn verdicts(report: &SuiteReport) -> BTreeMap<String, String> {
    report
        .cases
        .iter()
        .map(|c| (c.id.clone(), c.outcome()))
        .collect()
}

fn differences(
    a: &BTreeMap<String, String>,
    b: &BTreeMap<String, String>,
    timing: &Baseline,
) -> Vec<String> {
    let mut out = Vec::new();
    for (id, v) in a {
        let timed = |w: &String| {
            timing
                .cases
                .get(id)
                .is_some_and(|e| !e.or.is_empty() && e.accepts(v) && e.accepts(w))
        };
        match b.get(id) {
            Some(w) if w == v || timed(w) => {}
            other => out.push(format!("{id}: in process {v}, through the shim {other:?}")),
        }
    }
    out.extend(
        b.keys()
            .filter(|id| !a.contains_key(*id))
            .map(|id| format!("{id}: only through the shim")),
    );
    out
}

#[test]
fn the_shim_gives_the_in_process_verdicts() {
    let cases = client_cases(None).expect("the cases load");
    let options = SuiteOptions {
        jobs: 8,
        include_ignored: false,
    };
    let ours = run_suite_blocking(&cases, Subject::OurClient, &options, &mut |_, _, _| {})
        .expect("the in-process run");
    let ours = verdicts(&ours);
    assert_eq!(ours.len(), cases.len());

    let baseline = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../harness/baselines/clients/wisp-client.yaml");
    let process = ClientSubject::shim(env!("CARGO_BIN_EXE_shim-wisp-client"));
    let report = match assert_client_baseline(process, &baseline, 16) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let timing = Baseline::load(&baseline).expect("the baseline loads");
    let diff = differences(&ours, &verdicts(&report), &timing);
    assert!(
        diff.is_empty(),
        "the process shim differs:\n{}",
        diff.join("\n")
    );

    let in_process = ClientSubject::new(Arc::new(OurClient), "in process");
    let report = run_suite_blocking(
        &cases,
        Subject::Client(in_process),
        &options,
        &mut |_, _, _| {},
    )
    .expect("the trait run");
    let diff = differences(&ours, &verdicts(&report), &timing);
    assert!(
        diff.is_empty(),
        "the in-process trait run differs:\n{}",
        diff.join("\n")
    );
}
