//! The readable table: progress lines while a run goes, then one row per case and the
//! totals.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use wisp_cases::{Role, Verdict};

use super::{CaseReport, LABELS, SubjectInfo, SuiteReport};

/// `[ 3/49] server.tcp.echo  OK  -  12ms`.
pub fn progress_line(done: usize, total: usize, case: &CaseReport) -> String {
    let width = total.to_string().len();
    format!(
        "[{done:>width$}/{total}] {:<50} {:<13} {:<13} {:>6}ms",
        case.id,
        case.label(),
        case.close_label(),
        case.duration.as_millis()
    )
}

fn count_line(counts: &BTreeMap<String, usize>) -> String {
    LABELS
        .iter()
        .filter_map(|l| counts.get(*l).map(|n| format!("{n} {l}")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The note of a row: the error, the ignore reason, what differs from the expected
/// verdict, or the first reason.
fn note(c: &CaseReport) -> String {
    if let Some(e) = &c.error {
        return e.clone();
    }
    if let Some(why) = c.skipped() {
        return why.to_owned();
    }
    let first = c.reasons.first().cloned().or_else(|| {
        c.close
            .as_ref()
            .filter(|col| col.verdict != Verdict::Ok)
            .map(|col| format!("close: {}", col.note))
    });
    match c.expected {
        Some(e) if e != c.verdict => format!("expected {e}: {}", first.unwrap_or_default()),
        Some(e) if e != Verdict::Ok => format!("expected {e}"),
        _ => first.unwrap_or_default(),
    }
}

/// The readable table: what was judged, one row per case (behaviour, the close column
/// for server-role cases, time, virtual time for paused-clock runs, a note), and the
/// totals. `verbose` adds every reason, the CLOSE evidence and the transcript of each
/// case a reader wants to look at ([`CaseReport::interesting`]).
pub fn table(report: &SuiteReport, verbose: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", report.subject.headline());
    if let SubjectInfo::Server(s) = &report.subject {
        let p = &s.probe;
        match &p.error {
            Some(e) => {
                let _ = writeln!(out, "probe: FAILED: {e}");
            }
            None => {
                let info = p.info.as_ref().map_or("none".to_owned(), |i| {
                    let ids: Vec<String> = i
                        .extensions
                        .iter()
                        .map(|r| wisp_cases::values::extension_label(r.id))
                        .collect();
                    format!("v{} [{}]", i.version, ids.join(", "))
                });
                let _ = writeln!(
                    out,
                    "probe: first packet {}; INFO {info}; initial credit {}; echoed subprotocol {:?}",
                    p.first_packet.as_deref().unwrap_or("-"),
                    p.initial_credit.map_or("-".to_owned(), |c| c.to_string()),
                    p.echoed_subprotocol
                );
            }
        }
    }
    let close_column = report.cases.iter().any(|c| c.role == Role::Server);
    let virtual_column = report.cases.iter().any(|c| c.virtual_time.is_some());
    let width = report
        .cases
        .iter()
        .map(|c| c.id.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = write!(out, "\n{:<width$}  {:<13}  ", "case", "verdict");
    if close_column {
        let _ = write!(out, "{:<13}  ", "close");
    }
    let _ = write!(out, "{:>7}  ", "time");
    if virtual_column {
        let _ = write!(out, "{:>9}  ", "virtual");
    }
    let _ = writeln!(out, "note");
    for c in &report.cases {
        let _ = write!(out, "{:<width$}  {:<13}  ", c.id, c.label());
        if close_column {
            let _ = write!(out, "{:<13}  ", c.close_label());
        }
        match c.skipped() {
            Some(_) => {
                let _ = write!(out, "{:>7}  ", "-");
            }
            None => {
                let _ = write!(out, "{:>5}ms  ", c.duration.as_millis());
            }
        }
        if virtual_column {
            match c.virtual_time {
                Some(v) => {
                    let _ = write!(out, "{:>7}ms  ", v.as_millis());
                }
                None => {
                    let _ = write!(out, "{:>9}  ", "-");
                }
            }
        }
        let _ = writeln!(out, "{}", one_line(&note(c), 160).trim_end());
        if verbose && c.interesting() {
            for r in &c.reasons {
                let _ = writeln!(out, "    - {r}");
            }
            if let Some(col) = &c.close {
                let _ = writeln!(out, "    - {}", col.evidence());
            }
            for line in c.transcript.lines() {
                let _ = writeln!(out, "    | {line}");
            }
        }
    }
    let (behaviour, close) = report.counts();
    let mut extra = String::new();
    if close_column {
        let _ = write!(
            extra,
            "; close column: {}",
            if close.is_empty() {
                "-".to_owned()
            } else {
                count_line(&close)
            }
        );
    }
    if let Some(s) = report.server()
        && !report.not_applicable.is_empty()
    {
        let _ = write!(
            extra,
            "; {} not applicable in a {} run",
            report.not_applicable.len(),
            s.mode
        );
    }
    let _ = writeln!(
        out,
        "\n{} cases: {}{extra} ({:.1}s)",
        report.cases.len(),
        count_line(&behaviour),
        report.duration.as_secs_f64()
    );
    out
}

/// `N passed, N failed, N ignored, N errors (T s)`: the closing line test runners read
/// (`, N not run` after the errors when the server under test was down).
pub fn closing_line(report: &SuiteReport) -> String {
    let passed = report.cases.iter().filter(|c| c.passed()).count();
    let ignored = report.cases.iter().filter(|c| c.ignored.is_some()).count();
    let errors = report.cases.iter().filter(|c| c.error.is_some()).count();
    let not_run = report
        .cases
        .iter()
        .filter(|c| c.error.is_none() && c.ignored.is_none() && c.not_run.is_some())
        .count();
    let failed = report.cases.len() - passed - ignored - errors - not_run;
    let not_run = if not_run > 0 {
        format!(", {not_run} not run")
    } else {
        String::new()
    };
    format!(
        "{passed} passed, {failed} failed, {ignored} ignored, {errors} errors{not_run} ({:.2}s)",
        report.duration.as_secs_f64()
    )
}

fn one_line(text: &str, max: usize) -> String {
    let flat = text.replace('\n', " ");
    if flat.chars().count() > max {
        flat.chars().take(max - 3).collect::<String>() + "..."
    } else {
        flat
    }
}
