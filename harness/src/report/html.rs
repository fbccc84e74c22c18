//! The HTML report: a self-contained static site (inline CSS, no script, opens from a
//! `file://` path) with a matrix of cases × runs and one page per case and run.
//!
//! Its input is the JSON report ([`super::json`]): a run's own report is turned into
//! its JSON value and read back as a [`Run`], and `wisp-conformance report` reads several
//! JSON files the same way, so a merged matrix and a single run's site are the same
//! thing. Every value is interpolated through `maud`, which escapes it: a hostile server's
//! bytes end up in traces and reasons, and must stay text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;

use super::{Gate, SuiteReport};
use crate::server::baseline::Baseline;

/// One run as the JSON report describes it: what was judged and every case's result.
#[derive(Clone, Debug, Deserialize)]
pub struct Run {
    /// The column's name, when the report carries one (`wisp-conformance report` sets it
    /// from `NAME=FILE`); otherwise [`Run::label`] derives one.
    #[serde(default)]
    pub name: Option<String>,
    /// The tool and its version.
    #[serde(default)]
    pub tool: String,
    /// One line: what was judged.
    pub subject: String,
    /// `client` or `server`.
    pub role: String,
    /// The server URL (server role).
    #[serde(default)]
    pub url: Option<String>,
    /// `v1` or `v2` (server role).
    #[serde(default)]
    pub mode: Option<String>,
    /// The gate's outcome.
    #[serde(default)]
    pub gate: RunGate,
    /// Every case that applied, in suite order.
    pub cases: Vec<RunCase>,
}

/// The gate of a [`Run`].
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RunGate {
    /// 0 passed, 1 failures, 2 errors.
    #[serde(default)]
    pub exit_code: u8,
    /// One line.
    #[serde(default)]
    pub summary: String,
}

/// One case of a [`Run`].
#[derive(Clone, Debug, Deserialize)]
pub struct RunCase {
    /// The case ID.
    pub id: String,
    /// The folder part of the ID (older reports: absent, the family stands in).
    #[serde(default)]
    pub group: Option<String>,
    /// The last segment of the group.
    #[serde(default)]
    pub family: String,
    /// The title.
    pub title: String,
    /// The spec section.
    #[serde(default)]
    pub spec: String,
    /// must / should / may.
    #[serde(default)]
    pub level: String,
    /// Why the case exists.
    #[serde(default)]
    pub description: String,
    /// The case's `expect:` / `close:` sections.
    #[serde(default)]
    pub expectation: String,
    /// The behaviour column's label (`OK`, `FAILED`, `ERROR`, `IGNORED`, ...).
    pub verdict: String,
    /// The verdict the case expects (client role).
    #[serde(default)]
    pub expected: Option<String>,
    /// The verdict a baseline expects.
    #[serde(default)]
    pub baseline: Option<String>,
    /// The CLOSE-reason column.
    #[serde(default)]
    pub close: Option<RunClose>,
    /// Whether the case fails the run's gate.
    #[serde(default)]
    pub gate_fails: bool,
    /// Why the verdict.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// A harness or connection error.
    #[serde(default)]
    pub error: Option<String>,
    /// Why the case was not run.
    #[serde(default)]
    pub ignored: Option<String>,
    /// Why the case was not run: the server was down.
    #[serde(default)]
    pub not_run: Option<String>,
    /// Wall-clock time.
    #[serde(default)]
    pub duration_ms: u64,
    /// The wire trace, one line each (secrets already redacted by the trace writers).
    #[serde(default)]
    pub trace: Vec<String>,
}

/// The CLOSE-reason column of a [`RunCase`].
#[derive(Clone, Debug, Deserialize)]
pub struct RunClose {
    /// The verdict.
    pub verdict: String,
    /// The stream judged.
    #[serde(default)]
    pub stream: String,
    /// The preferred reasons (`0x48`).
    #[serde(default)]
    pub preferred: Vec<String>,
    /// The acceptable ones.
    #[serde(default)]
    pub acceptable: Vec<String>,
    /// The reason the server sent.
    #[serde(default)]
    pub got: Option<String>,
    /// The CLOSE packet.
    #[serde(default)]
    pub packet: Option<String>,
    /// Why the verdict.
    #[serde(default)]
    pub note: String,
}

impl RunCase {
    /// The topic the index groups the case under.
    pub fn topic(&self) -> &str {
        self.group.as_deref().unwrap_or(&self.family)
    }
}

impl Run {
    /// A run's own report, as its JSON report gives it.
    pub fn from_report(
        report: &SuiteReport,
        gate: &Gate,
        baseline: Option<&Baseline>,
    ) -> Result<Self, String> {
        Self::from_json(super::json::json(report, gate, baseline))
    }

    /// Reads a JSON report's value.
    pub fn from_json(value: serde_json::Value) -> Result<Self, String> {
        serde_json::from_value(value)
            .map_err(|e| format!("not a wisp-conformance JSON report: {e}"))
    }

    /// Reads a JSON report file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_json(value).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The column header: the name, else the server URL and mode, else `client`.
    pub fn label(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        match (&self.url, &self.mode) {
            (Some(u), Some(m)) => format!("{u} ({m})"),
            (Some(u), None) => u.clone(),
            _ => format!("{} suite", self.role),
        }
    }

    fn case(&self, id: &str) -> Option<&RunCase> {
        self.cases.iter().find(|c| c.id == id)
    }
}

/// The page of case `id` in run number `run`, relative to the site's root.
pub fn case_path(run: usize, id: &str) -> String {
    let file: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("runs/{run}/{file}.html")
}

/// Writes the site into `dir` (created if missing): `index.html` and one page per case
/// and run under `runs/N/`. Returns the index's path.
pub fn write(runs: &[Run], dir: &Path) -> Result<PathBuf, String> {
    let io = |p: &Path, e: std::io::Error| format!("--html {}: {e}", p.display());
    for (i, run) in runs.iter().enumerate() {
        let run_dir = dir.join("runs").join(i.to_string());
        std::fs::create_dir_all(&run_dir).map_err(|e| io(&run_dir, e))?;
        for case in &run.cases {
            let path = dir.join(case_path(i, &case.id));
            std::fs::write(&path, case_page(run, case).into_string()).map_err(|e| io(&path, e))?;
        }
    }
    let index = dir.join("index.html");
    std::fs::write(&index, index_page(runs).into_string()).map_err(|e| io(&index, e))?;
    Ok(index)
}

const CSS: &str = "
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em;color:#1b1f24;background:#fff}
h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.2em 0 .4em}
table{border-collapse:collapse}th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:left;vertical-align:top}
thead th{background:#f3f5f7;position:sticky;top:0}
tr.topic th{background:#e8ecf0;font-size:1.05em;padding-top:6px}
td.id{font-family:ui-monospace,monospace;white-space:nowrap}td.spec{color:#424a53;min-width:16em;max-width:28em;font-size:.92em}
div.title{font-family:system-ui,sans-serif;font-size:.85em;color:#57606a;white-space:normal;max-width:32em}
td.cell{text-align:center;white-space:nowrap;font-weight:600}
td.cell a{color:inherit;text-decoration:none;display:block}
.v-ok{background:#c9f0cf;color:#0f5323}.v-non-strict{background:#fff1b8;color:#6b4c00}
.v-informational{background:#d6e8ff;color:#0b3d7a}.v-unsupported{background:#e6e6e6;color:#444}
.v-failed{background:#ffc9c9;color:#8a0b0b}.v-error{background:#d9b3ff;color:#3f0a6b}
.v-ignored,.v-not-run{background:#f6f6f6;color:#888}.v-none{background:#fff;color:#aaa}
td.gate{outline:2px solid #8a0b0b;outline-offset:-3px}
span.close{display:inline-block;margin-left:.4em;padding:0 .3em;border-radius:3px;font-size:.8em;font-weight:600;border:1px solid rgba(0,0,0,.2)}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 1em}dt{font-weight:600}dd{margin:0}
pre{background:#f6f8fa;border:1px solid #d0d7de;padding:8px;overflow:auto;font-size:12.5px}
p.verdict{display:inline-block;padding:2px 10px;border-radius:4px;font-weight:700}
.legend span{display:inline-block;padding:1px 6px;margin-right:4px;border-radius:3px}
";

/// The CSS class of a verdict label (`NON-STRICT` → `v-non-strict`).
fn class(label: &str) -> String {
    format!("v-{}", label.to_ascii_lowercase().replace(' ', "-"))
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) }
            style { (PreEscaped(CSS)) }
        }
    }
}

/// Counts of each behaviour label in a run, in first-seen order of [`super::LABELS`].
fn counts(run: &Run) -> String {
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &run.cases {
        *by.entry(c.verdict.as_str()).or_insert(0) += 1;
    }
    let mut out = String::new();
    for label in super::LABELS {
        if let Some(n) = by.get(label) {
            let _ = write!(out, "{}{n} {label}", if out.is_empty() { "" } else { ", " });
        }
    }
    out
}

/// The index: one row per case grouped by topic, one column per run.
pub fn index_page(runs: &[Run]) -> Markup {
    // Topics and cases in first-seen order across the runs.
    let mut topics: Vec<(String, Vec<&RunCase>)> = Vec::new();
    for run in runs {
        for case in &run.cases {
            if topics
                .iter()
                .any(|(_, cs)| cs.iter().any(|c| c.id == case.id))
            {
                continue;
            }
            match topics.iter_mut().find(|(t, _)| t == case.topic()) {
                Some((_, cs)) => cs.push(case),
                None => topics.push((case.topic().to_owned(), vec![case])),
            }
        }
    }
    let total: usize = topics.iter().map(|(_, cs)| cs.len()).sum();
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Wisp conformance report"))
            body {
                h1 { "Wisp conformance report" }
                p { (total) " cases, " (runs.len()) " run(s). Each cell links to the case's page "
                    "(expectation, verdict reasons, wire trace); the small second mark is the "
                    "CLOSE-reason verdict; an outlined cell fails its run's gate." }
                p.legend {
                    @for label in super::LABELS { span class=(class(label)) { (label) } }
                }
                h2 { "Runs" }
                table.runs {
                    thead { tr { th { "#" } th { "Run" } th { "Subject" } th { "Verdicts" } th { "Gate" } } }
                    tbody {
                        @for (i, run) in runs.iter().enumerate() {
                            tr {
                                td { (i + 1) }
                                td { (run.label()) }
                                td { (run.subject) }
                                td { (counts(run)) }
                                td { (run.gate.summary) }
                            }
                        }
                    }
                }
                h2 { "Matrix" }
                table.matrix {
                    thead {
                        tr {
                            th { "Case" } th { "Level" } th { "Spec" }
                            @for run in runs { th.run { (run.label()) } }
                        }
                    }
                    tbody {
                        @for (topic, cases) in &topics {
                            tr.topic { th colspan=(3 + runs.len()) { (topic) } }
                            @for case in cases {
                                tr.case id=(case.id) {
                                    td.id { (case.id) div.title { (case.title) } }
                                    td.level { (case.level) }
                                    td.spec { (case.spec) }
                                    @for (i, run) in runs.iter().enumerate() {
                                        (cell(i, run.case(&case.id)))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn cell(run: usize, case: Option<&RunCase>) -> Markup {
    let Some(case) = case else {
        return html! { td.cell.v-none title="not run in this run" { "–" } };
    };
    let mut classes = format!("cell {}", class(&case.verdict));
    if case.gate_fails {
        classes.push_str(" gate");
    }
    let tip = case
        .error
        .iter()
        .chain(case.ignored.iter())
        .chain(case.not_run.iter())
        .chain(case.reasons.iter())
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    html! {
        td class=(classes) title=(tip) {
            a href=(case_path(run, &case.id)) {
                (case.verdict)
                @if let Some(close) = &case.close {
                    span class={ "close " (class(&close.verdict)) } title={ "CLOSE reason: " (close.verdict) } {
                        (close.verdict)
                    }
                }
            }
        }
    }
}

/// The page of one case in one run.
pub fn case_page(run: &Run, case: &RunCase) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(&format!("{} — {}", case.id, run.label())))
            body {
                p { a href="../../index.html" { "← matrix" } }
                h1 { (case.title) }
                dl {
                    dt { "Case" } dd.id { (case.id) }
                    dt { "Run" } dd { (run.label()) " — " (run.subject) }
                    dt { "Spec" } dd { (case.spec) }
                    dt { "Level" } dd { (case.level) }
                    dt { "Duration" } dd { (case.duration_ms) " ms" }
                }
                p class={ "verdict " (class(&case.verdict)) } id="verdict" { (case.verdict) }
                @if let Some(e) = &case.expected { " expected " (e) }
                @if let Some(b) = &case.baseline { " — baseline " (b) }
                @if case.gate_fails { " — fails the gate" }
                @if !case.description.is_empty() {
                    h2 { "Description" }
                    p.description { (case.description) }
                }
                @if !case.expectation.is_empty() {
                    h2 { "Expectation" }
                    pre.expectation { (case.expectation) }
                }
                @if case.error.is_some() || case.ignored.is_some() || case.not_run.is_some() || !case.reasons.is_empty() {
                    h2 { "Why" }
                    ul.reasons {
                        @if let Some(e) = &case.error { li { "error: " (e) } }
                        @if let Some(i) = &case.ignored { li { "ignored: " (i) } }
                        @if let Some(n) = &case.not_run { li { (n) } }
                        @for r in &case.reasons { li { (r) } }
                    }
                }
                @if let Some(close) = &case.close {
                    h2 { "CLOSE reason" }
                    p class={ "verdict " (class(&close.verdict)) } { (close.verdict) }
                    dl {
                        dt { "Stream" } dd { (close.stream) }
                        dt { "Preferred" } dd { (close.preferred.join(", ")) }
                        dt { "Acceptable" } dd { (close.acceptable.join(", ")) }
                        dt { "Got" } dd { (close.got.as_deref().unwrap_or("no CLOSE")) }
                        dt { "Packet" } dd { (close.packet.as_deref().unwrap_or("-")) }
                        dt { "Note" } dd { (close.note) }
                    }
                }
                h2 { "Wire trace" }
                pre.trace {
                    @for line in &case.trace { (line) "\n" }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hostile_run() -> Run {
        Run::from_json(serde_json::json!({
            "subject": "server ws://x/ <i>",
            "role": "server",
            "url": "ws://127.0.0.1:1/\"><script>",
            "mode": "v2",
            "cases": [{
                "id": "a/../b<x>",
                "title": "t</title><script>alert(1)</script>",
                "verdict": "FAILED",
                "close": {"verdict": "NON-STRICT", "packet": "CLOSE <b>", "note": "&amp;"},
                "reasons": ["got \"<img src=x onerror=alert(1)>\""],
                "trace": ["DATA s1 \"</pre><script>x</script>\""],
            }],
        }))
        .unwrap()
    }

    #[test]
    fn everything_from_a_report_is_escaped() {
        let run = hostile_run();
        let index = index_page(std::slice::from_ref(&run)).into_string();
        let page = case_page(&run, &run.cases[0]).into_string();
        for html in [&index, &page] {
            assert!(!html.contains("<script"), "{html}");
            assert!(!html.contains("<img"), "{html}");
            assert!(!html.contains("<b>"), "{html}");
            assert!(!html.contains("<i>"), "{html}");
        }
        assert!(page.contains("&lt;/pre&gt;&lt;script&gt;x&lt;/script&gt;"));
        assert!(page.contains("&amp;amp;"));
        assert!(index.contains("class=\"close v-non-strict\""));
    }

    #[test]
    fn case_pages_stay_in_their_run_directory() {
        assert_eq!(case_path(2, "a/../b<x>"), "runs/2/a_.._b_x_.html");
        assert_eq!(
            case_path(0, "server.close.blocked"),
            "runs/0/server.close.blocked.html"
        );
    }

    #[test]
    fn reports_without_the_new_fields_still_load() {
        let run = Run::from_json(serde_json::json!({
            "subject": "client",
            "role": "client",
            "cases": [{"id": "x.y", "family": "x", "title": "t", "verdict": "OK"}],
        }))
        .unwrap();
        assert_eq!(run.cases[0].topic(), "x");
        assert_eq!(run.label(), "client suite");
    }
}
