//! What a run prints and writes: progress lines, the verdict table, the gate (exit code),
//! the JSON report and a JUnit XML report in the Maven Surefire format
//! (`harness/junit/surefire-testsuite.xsd` describes it; a test validates against it).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};
use wisp_cases::Verdict;

use super::baseline::{Baseline, Mismatch};
use super::{ServerCaseReport, SuiteReport};

/// The labels a case row can show, in the order summaries list them.
pub const LABELS: [&str; 6] = [
    "OK",
    "NON-STRICT",
    "INFORMATIONAL",
    "UNSUPPORTED",
    "FAILED",
    "ERROR",
];

/// The outcome of the CI gate.
#[derive(Clone, Debug)]
pub struct Gate {
    /// 0: passed; 1: conformance failures (or baseline mismatches); 2: harness or
    /// connection errors.
    pub exit_code: u8,
    /// Cases with a connection or harness error.
    pub errors: Vec<String>,
    /// Cases that fail the gate (without a baseline): FAILED in either column, or
    /// NON-STRICT with `strict`.
    pub failing: Vec<String>,
    /// Differences from the baseline (with one).
    pub mismatches: Vec<Mismatch>,
    /// Whether a baseline decided it.
    pub with_baseline: bool,
    /// Whether NON-STRICT fails the gate.
    pub strict: bool,
}

impl Gate {
    /// Decides the gate. With a baseline, the run must match it exactly (`complete`: the
    /// run was not filtered, so missing cases count too); without one, FAILED fails, and
    /// NON-STRICT too when `strict`. Connection errors always give exit code 2.
    pub fn decide(
        report: &SuiteReport,
        strict: bool,
        baseline: Option<&Baseline>,
        complete: bool,
    ) -> Gate {
        let errors: Vec<String> = report
            .cases
            .iter()
            .filter(|c| c.error.is_some())
            .map(|c| c.id.clone())
            .collect();
        let failing: Vec<String> = report
            .cases
            .iter()
            .filter(|c| c.error.is_none())
            .filter(|c| {
                let w = c.worst();
                w == Verdict::Failed || (strict && w == Verdict::NonStrict)
            })
            .map(|c| c.id.clone())
            .collect();
        let mismatches = baseline
            .map(|b| b.compare(report, complete))
            .unwrap_or_default();
        let exit_code = if !errors.is_empty() {
            2
        } else if baseline.is_some() {
            u8::from(!mismatches.is_empty())
        } else {
            u8::from(!failing.is_empty())
        };
        Gate {
            exit_code,
            errors,
            failing,
            mismatches,
            with_baseline: baseline.is_some(),
            strict,
        }
    }

    /// Whether the case fails the gate.
    pub fn fails(&self, id: &str) -> bool {
        if self.with_baseline {
            self.mismatches.iter().any(|m| m.id == id)
        } else {
            self.failing.iter().any(|f| f == id)
        }
    }

    /// One line: what decided the exit code.
    pub fn summary(&self) -> String {
        match self.exit_code {
            0 if self.with_baseline => "gate passed: every verdict matches the baseline".to_owned(),
            0 => format!(
                "gate passed: no FAILED verdict{}",
                if self.strict {
                    " and no NON-STRICT (strict)"
                } else {
                    ""
                }
            ),
            1 if self.with_baseline => format!(
                "gate failed: {} verdict(s) differ from the baseline",
                self.mismatches.len()
            ),
            1 => format!("gate failed: {} case(s) fail", self.failing.len()),
            _ => format!(
                "harness or connection errors in {} case(s): the run is incomplete",
                self.errors.len()
            ),
        }
    }
}

/// `[ 3/49] server.tcp.echo  OK  -  12ms`.
pub fn progress_line(done: usize, total: usize, case: &ServerCaseReport) -> String {
    let width = total.to_string().len();
    format!(
        "[{done:>width$}/{total}] {:<50} {:<13} {:<13} {:>6}ms",
        case.id,
        case.label(),
        case.close_label(),
        case.duration.as_millis()
    )
}

/// Counts of each label in the behaviour column and in the close column.
pub fn counts(report: &SuiteReport) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let mut behaviour = BTreeMap::new();
    let mut close = BTreeMap::new();
    for c in &report.cases {
        *behaviour.entry(c.label()).or_insert(0) += 1;
        if c.error.is_none()
            && let Some(col) = &c.close
        {
            *close.entry(col.verdict.to_string()).or_insert(0) += 1;
        }
    }
    (behaviour, close)
}

fn count_line(counts: &BTreeMap<String, usize>) -> String {
    LABELS
        .iter()
        .filter_map(|l| counts.get(*l).map(|n| format!("{n} {l}")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The readable table: the probe, one row per case (behaviour, close, time, first
/// reason), and the totals. `verbose` adds every reason, the CLOSE evidence and the wire
/// log of each case that is not OK.
pub fn table(report: &SuiteReport, verbose: bool) -> String {
    let mut out = String::new();
    let p = &report.probe;
    let _ = writeln!(out, "server {} ({} run)", report.url, report.mode);
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
    let width = report
        .cases
        .iter()
        .map(|c| c.id.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        out,
        "\n{:<width$}  {:<13}  {:<13}  {:>7}  note",
        "case", "verdict", "close", "time"
    );
    for c in &report.cases {
        let note = match (&c.error, c.reasons.first(), &c.close) {
            (Some(e), _, _) => e.clone(),
            (None, Some(r), _) => r.clone(),
            (None, None, Some(col)) if col.verdict != Verdict::Ok => format!("close: {}", col.note),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<width$}  {:<13}  {:<13}  {:>5}ms  {}",
            c.id,
            c.label(),
            c.close_label(),
            c.duration.as_millis(),
            one_line(&note, 160)
        );
        let interesting = c.error.is_some()
            || c.verdict != Verdict::Ok
            || c.close
                .as_ref()
                .is_some_and(|col| col.verdict != Verdict::Ok);
        if verbose && interesting {
            for r in &c.reasons {
                let _ = writeln!(out, "    - {r}");
            }
            if let Some(col) = &c.close {
                let _ = writeln!(
                    out,
                    "    - close on {}: {} ({})",
                    col.stream,
                    col.note,
                    col.packet.as_deref().unwrap_or("no packet")
                );
            }
            for line in &c.trace {
                let _ = writeln!(out, "    | {line}");
            }
        }
    }
    let (behaviour, close) = counts(report);
    let _ = writeln!(
        out,
        "\n{} cases: {}; close column: {}{} ({:.1}s)",
        report.cases.len(),
        count_line(&behaviour),
        if close.is_empty() {
            "-".to_owned()
        } else {
            count_line(&close)
        },
        if report.not_applicable.is_empty() {
            String::new()
        } else {
            format!(
                "; {} not applicable in a {} run",
                report.not_applicable.len(),
                report.mode
            )
        },
        report.duration.as_secs_f64()
    );
    out
}

fn one_line(text: &str, max: usize) -> String {
    let flat = text.replace('\n', " ");
    if flat.chars().count() > max {
        flat.chars().take(max - 3).collect::<String>() + "..."
    } else {
        flat
    }
}

/// The JSON report.
pub fn json(report: &SuiteReport, gate: &Gate, baseline: Option<&Baseline>) -> Value {
    let (behaviour, close) = counts(report);
    let cases: Vec<Value> = report
        .cases
        .iter()
        .map(|c| {
            let close = c.close.as_ref().filter(|_| c.error.is_none()).map(|col| {
                json!({
                    "verdict": col.verdict.to_string(),
                    "stream": col.stream,
                    "preferred": col.preferred.iter().map(|r| format!("0x{:02x}", r.0)).collect::<Vec<_>>(),
                    "acceptable": col.acceptable.iter().map(|r| format!("0x{:02x}", r.0)).collect::<Vec<_>>(),
                    "got": col.got.map(|r| format!("0x{:02x}", r.0)),
                    "packet": col.packet,
                    "note": col.note,
                })
            });
            let expected = baseline.and_then(|b| b.cases.get(&c.id)).map(|e| e.to_string());
            json!({
                "id": c.id,
                "family": c.family,
                "title": c.title,
                "spec": c.spec,
                "level": format!("{:?}", c.level).to_lowercase(),
                "verdict": c.label(),
                "close": close,
                "outcome": c.outcome(),
                "baseline": expected,
                "gate_fails": gate.fails(&c.id),
                "reasons": c.reasons,
                "error": c.error,
                "duration_ms": c.duration.as_millis() as u64,
                "trace": c.trace,
            })
        })
        .collect();
    json!({
        "tool": format!("wisp-conformance {}", env!("CARGO_PKG_VERSION")),
        "url": report.url,
        "mode": report.mode.to_string(),
        "probe": report.probe,
        "targets": report.targets.iter().map(|(n, a)| (n.clone(), Value::String(a.to_string()))).collect::<serde_json::Map<_, _>>(),
        "blocked": report.blocked,
        "duration_ms": report.duration.as_millis() as u64,
        "summary": {"verdict": behaviour, "close": close, "cases": report.cases.len(), "not_applicable": report.not_applicable},
        "gate": {
            "exit_code": gate.exit_code,
            "summary": gate.summary(),
            "strict": gate.strict,
            "baseline": baseline.map(|b| b.path.display().to_string()),
            "mismatches": gate.mismatches.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "failing": gate.failing,
            "errors": gate.errors,
        },
        "cases": cases,
    })
}

/// Escapes text for XML content and attribute values, dropping characters XML 1.0
/// cannot carry.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

fn secs(d: std::time::Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// The JUnit XML report (Maven Surefire format): one `testcase` per case, named by its ID,
/// `classname` = `server.<family>`. A case that fails the gate has a `failure`, a
/// connection error an `error`, an UNSUPPORTED case is `skipped`; verdicts, reasons and
/// the wire log are in `system-out`.
pub fn junit(report: &SuiteReport, gate: &Gate) -> String {
    let mut out = String::new();
    let failures = report
        .cases
        .iter()
        .filter(|c| c.error.is_none() && gate.fails(&c.id))
        .count();
    let errors = gate.errors.len();
    let skipped = report
        .cases
        .iter()
        .filter(|c| c.error.is_none() && !gate.fails(&c.id) && c.verdict == Verdict::Unsupported)
        .count();
    let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        out,
        r#"<testsuite name="{}" tests="{}" failures="{failures}" errors="{errors}" skipped="{skipped}" time="{}">"#,
        xml_escape(&format!(
            "wisp-conformance server {} ({})",
            report.url, report.mode
        )),
        report.cases.len(),
        secs(report.duration)
    );
    let _ = writeln!(out, "  <properties>");
    let mut props = vec![
        ("url".to_owned(), report.url.clone()),
        ("mode".to_owned(), report.mode.to_string()),
        ("gate".to_owned(), gate.summary()),
    ];
    if let Some(f) = &report.probe.first_packet {
        props.push(("probe.first_packet".to_owned(), f.clone()));
    }
    if let Some(e) = &report.probe.error {
        props.push(("probe.error".to_owned(), e.clone()));
    }
    for (name, value) in props {
        let _ = writeln!(
            out,
            r#"    <property name="{}" value="{}"/>"#,
            xml_escape(&name),
            xml_escape(&value)
        );
    }
    let _ = writeln!(out, "  </properties>");
    for c in &report.cases {
        let _ = write!(
            out,
            r#"  <testcase name="{}" classname="server.{}" time="{}">"#,
            xml_escape(&c.id),
            xml_escape(&c.family),
            secs(c.duration)
        );
        let mut detail = format!("verdict: {}\nclose: {}\n", c.label(), c.close_label());
        for r in &c.reasons {
            let _ = writeln!(detail, "- {r}");
        }
        if let Some(col) = &c.close {
            let _ = writeln!(
                detail,
                "- close on {}: {} ({})",
                col.stream,
                col.note,
                col.packet.as_deref().unwrap_or("no packet")
            );
        }
        let mismatch = gate.mismatches.iter().find(|m| m.id == c.id);
        if let Some(e) = &c.error {
            let _ = write!(
                out,
                "\n    <error type=\"ERROR\" message=\"{}\">{}</error>",
                xml_escape(e),
                xml_escape(&detail)
            );
        } else if gate.fails(&c.id) {
            let (kind, message) = match mismatch {
                Some(m) => ("BASELINE".to_owned(), m.to_string()),
                None => (
                    c.worst().to_string(),
                    c.reasons
                        .first()
                        .cloned()
                        .or_else(|| c.close.as_ref().map(|col| format!("close: {}", col.note)))
                        .unwrap_or_default(),
                ),
            };
            let _ = write!(
                out,
                "\n    <failure type=\"{}\" message=\"{}\">{}</failure>",
                xml_escape(&kind),
                xml_escape(&message),
                xml_escape(&detail)
            );
        } else if c.verdict == Verdict::Unsupported {
            let _ = write!(
                out,
                "\n    <skipped message=\"{}\"/>",
                xml_escape(c.reasons.first().map_or("unsupported", String::as_str))
            );
        }
        let _ = write!(
            out,
            "\n    <system-out>{}{}</system-out>\n  </testcase>\n",
            xml_escape(&detail),
            xml_escape(&c.trace.join("\n"))
        );
    }
    let _ = writeln!(out, "</testsuite>");
    out
}

/// A markdown table of verdict counts per family for several runs (rows: server × mode;
/// columns: families), e.g. for a README.
pub fn family_matrix(runs: &[(String, BTreeMap<String, Vec<String>>)]) -> String {
    let mut families: Vec<String> = runs.iter().flat_map(|(_, f)| f.keys().cloned()).collect();
    families.sort();
    families.dedup();
    let mut out = String::new();
    let _ = writeln!(out, "| server (mode) | {} |", families.join(" | "));
    let _ = writeln!(
        out,
        "|---|{}|",
        families.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for (name, per_family) in runs {
        let cells: Vec<String> = families
            .iter()
            .map(|f| {
                let outcomes = per_family.get(f).cloned().unwrap_or_default();
                summarise(&outcomes)
            })
            .collect();
        let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
    }
    out
}

/// `5 OK, 1 FAILED` from outcomes like `OK`, `FAILED / OK` (the worse column counts).
fn summarise(outcomes: &[String]) -> String {
    let abbrev = |l: &str| {
        match l {
            "NON-STRICT" => "NS",
            "INFORMATIONAL" => "INFO",
            "UNSUPPORTED" => "UNSUP",
            "FAILED" => "FAIL",
            other => other,
        }
        .to_owned()
    };
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    for o in outcomes {
        let worst = o
            .split('/')
            .map(str::trim)
            .max_by_key(|l| match *l {
                "OK" => 0,
                "UNSUPPORTED" => 1,
                "INFORMATIONAL" => 2,
                "NON-STRICT" => 3,
                "FAILED" => 4,
                _ => 5,
            })
            .unwrap_or("ERROR");
        let idx = LABELS.iter().position(|l| *l == worst).unwrap_or(5);
        *counts.entry(idx).or_insert(0) += 1;
    }
    if counts.is_empty() {
        return "–".to_owned();
    }
    counts
        .iter()
        .map(|(i, n)| format!("{n} {}", abbrev(LABELS[*i])))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escape_handles_markup_and_control_characters() {
        assert_eq!(xml_escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(xml_escape("x\u{1}y"), "x\\u{1}y");
        assert_eq!(xml_escape("tab\tnl\n"), "tab\tnl\n");
    }

    #[test]
    fn family_cells_count_the_worse_column() {
        let cell = summarise(&[
            "OK".to_owned(),
            "OK / NON-STRICT".to_owned(),
            "FAILED / OK".to_owned(),
            "UNSUPPORTED".to_owned(),
        ]);
        assert_eq!(cell, "1 OK, 1 NS, 1 UNSUP, 1 FAIL");
    }
}
