//! Helpers the server-suite test binaries share.

use wisp_harness::report::CaseReport;
use wisp_harness::{Case, Filter, Role, SuiteReport, default_cases_dir, load_dir};

/// The server-role cases under the workspace's cases/, filtered by the ID prefixes `only`.
pub(crate) fn server_cases(only: &[&str]) -> Vec<Case> {
    let (cases, errors) = load_dir(&default_cases_dir());
    assert!(errors.is_empty(), "{errors:?}");
    let cases: Vec<Case> = cases
        .into_iter()
        .filter(|c| c.role() == Role::Server)
        .collect();
    let filter = Filter::new(only.iter().map(|s| (*s).to_owned()));
    filter
        .apply(&cases)
        .expect("the filter matches")
        .into_iter()
        .cloned()
        .collect()
}

/// The report of `id` (panics when the run has none).
pub(crate) fn by_id<'a>(report: &'a SuiteReport, id: &str) -> &'a CaseReport {
    report
        .cases
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no report for {id}"))
}

/// One line per row (ID, label, first reason, not-run reason), for assertion messages.
#[allow(dead_code)]
pub(crate) fn rows_summary<'a>(
    rows: impl IntoIterator<Item = &'a wisp_harness::report::CaseReport>,
) -> Vec<String> {
    rows.into_iter()
        .map(|c| {
            format!(
                "{} {} {:?} {:?}",
                c.id,
                c.label(),
                c.reasons.first(),
                c.not_run
            )
        })
        .collect()
}
