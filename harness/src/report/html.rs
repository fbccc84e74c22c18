//! The HTML report: a self-contained static site (inline CSS, no script, opens from a
//! `file://` path) with a matrix of cases × runs and one page per case and run.
//!
//! Its input is the JSON report ([`super::json`]): a run's own report is turned into
//! its JSON value and read back as a [`Run`], and `wisp-conformance report` reads several
//! JSON files the same way, so a merged matrix and a single run's site are the same
//! thing. Every value is interpolated through `maud`, which escapes it: a hostile server's
//! bytes end up in traces and reasons, and must stay text.
//!
//! [`write_site`] adds the spec coverage map as a page ([`COVERAGE_PAGE`], built from the
//! cases directory's requirements file, see [`super::coverage`]): per requirement its
//! quoted sentence, section, role and level, and the cases of each role that check it,
//! linked to their pages in the runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;

use super::coverage::{self, Coverage, RequirementCoverage, Status};
use super::{Gate, SuiteReport};
use crate::server::baseline::Baseline;
use wisp_cases::{REQUIREMENTS_FILE, Role};

/// The coverage page's file, beside `index.html`.
pub const COVERAGE_PAGE: &str = "coverage.html";

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
/// and run under `runs/N/`. Returns the index's path. No coverage page: see
/// [`write_site`].
pub fn write(runs: &[Run], dir: &Path) -> Result<PathBuf, String> {
    write_pages(runs, None, dir)
}

/// [`write()`], plus the spec coverage page ([`COVERAGE_PAGE`]) of the cases directory
/// `cases`, linked from the index, when that directory has a requirements file. When the
/// requirements file or a case does not load, the page lists the load errors instead of
/// the map (the run's own report still gets written).
pub fn write_site(runs: &[Run], cases: &Path, dir: &Path) -> Result<PathBuf, String> {
    if !cases.join(REQUIREMENTS_FILE).is_file() {
        return write_pages(runs, None, dir);
    }
    let page = match coverage::load(cases) {
        Ok((requirements, all)) => match requirements.coverage_of(&all) {
            Ok(map) => coverage_page(&map, runs),
            Err(e) => unavailable_page(&[e.to_string()]),
        },
        Err(errors) => {
            unavailable_page(&errors.iter().map(ToString::to_string).collect::<Vec<_>>())
        }
    };
    write_pages(runs, Some(page), dir)
}

/// Writes the coverage page alone into `dir` (created if missing): the
/// `wisp-conformance coverage --html DIR` site, with no run to link cases to. Returns the
/// page's path.
pub fn write_coverage(map: &Coverage<'_>, dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("--html {}: {e}", dir.display()))?;
    let path = dir.join(COVERAGE_PAGE);
    std::fs::write(&path, coverage_page(map, &[]).into_string())
        .map_err(|e| format!("--html {}: {e}", path.display()))?;
    Ok(path)
}

fn write_pages(runs: &[Run], coverage: Option<Markup>, dir: &Path) -> Result<PathBuf, String> {
    let io = |p: &Path, e: std::io::Error| format!("--html {}: {e}", p.display());
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    for (i, run) in runs.iter().enumerate() {
        let run_dir = dir.join("runs").join(i.to_string());
        std::fs::create_dir_all(&run_dir).map_err(|e| io(&run_dir, e))?;
        for case in &run.cases {
            let path = dir.join(case_path(i, &case.id));
            std::fs::write(&path, case_page(run, case).into_string()).map_err(|e| io(&path, e))?;
        }
    }
    let has_coverage = coverage.is_some();
    if let Some(page) = coverage {
        let path = dir.join(COVERAGE_PAGE);
        std::fs::write(&path, page.into_string()).map_err(|e| io(&path, e))?;
    }
    let index = dir.join("index.html");
    std::fs::write(&index, index_markup(runs, has_coverage).into_string())
        .map_err(|e| io(&index, e))?;
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
table.coverage td.text{max-width:36em}table.coverage td.cases{max-width:24em;font-family:ui-monospace,monospace;font-size:.88em}
table.coverage td.cases a,table.coverage td.cases span.case{display:block}
.s-covered{background:#e9f8ec}.s-waived{background:#f3f3f3;color:#444;font-style:italic}
.s-uncovered{background:#ffc9c9;color:#8a0b0b;font-weight:700}.s-n-a{background:#fafafa;color:#aaa}
tr.req.gap td.id{border-left:4px solid #8a0b0b}
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
    index_markup(runs, false)
}

/// [`index_page`], with a link to the coverage page when the site has one.
fn index_markup(runs: &[Run], coverage: bool) -> Markup {
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
                @if coverage {
                    p.nav { a id="coverage-link" href=(COVERAGE_PAGE) { "Spec coverage map" }
                        ": which requirements of the protocol the cases check" }
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

/// The CSS class of a coverage status (`n/a` → `s-n-a`).
fn status_class(status: Status) -> String {
    format!("s-{}", status.name().replace('/', "-"))
}

/// The page of each case ID in the runs: the first run that has it.
fn case_links(runs: &[Run]) -> BTreeMap<&str, String> {
    let mut links = BTreeMap::new();
    for (i, run) in runs.iter().enumerate() {
        for case in &run.cases {
            links
                .entry(case.id.as_str())
                .or_insert_with(|| case_path(i, &case.id));
        }
    }
    links
}

fn coverage_cell(
    e: &RequirementCoverage<'_>,
    role: Role,
    links: &BTreeMap<&str, String>,
) -> Markup {
    let status = e.status(role);
    let classes = format!("cases {} {}", role.name(), status_class(status));
    html! {
        td class=(classes) {
            @match status {
                Status::NotApplicable => { "n/a" }
                Status::Uncovered => { "UNCOVERED" }
                Status::Waived => { "waived: " (e.requirement.waived.as_deref().unwrap_or_default()) }
                Status::Covered => {
                    @for id in e.cases(role) {
                        @if let Some(href) = links.get(id.as_str()) {
                            a href=(href) { (id) }
                        } @else {
                            span.case { (id) }
                        }
                    }
                }
            }
        }
    }
}

/// The spec coverage map as a page: the totals per role, the gaps, then one row per
/// requirement (ID, quoted sentence, section, role, level, and per role the covering
/// cases linked to their pages in `runs`, the waiver, or UNCOVERED).
pub fn coverage_page(map: &Coverage<'_>, runs: &[Run]) -> Markup {
    const ROLES: [Role; 2] = [Role::Client, Role::Server];
    let links = case_links(runs);
    let gaps: Vec<&RequirementCoverage<'_>> = map
        .entries
        .iter()
        .filter(|e| ROLES.iter().any(|r| e.status(*r) == Status::Uncovered))
        .collect();
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Wisp spec coverage map"))
            body {
                @if !runs.is_empty() { p { a href="index.html" { "← matrix" } } }
                h1 { "Wisp spec coverage map" }
                p { (map.entries.len()) " requirements of " code { (map.requirements.display()) }
                    " (Wisp v1.2, v2 draft 6 and de-facto rules). Each row lists, for every "
                    "role the requirement binds, the cases that check it (their "
                    code { "covers:" } " lists), or why no case can check it." }
                table.totals {
                    thead { tr { th { "Role" } th { "Covered" } th { "Waived" } th { "Uncovered" } th { "Total" } } }
                    tbody {
                        @for role in ROLES {
                            @let t = map.totals(role);
                            tr id={ "totals-" (role.name()) } {
                                td { (role.name()) } td.s-covered { (t.covered) } td.s-waived { (t.waived) }
                                td class=(if t.uncovered > 0 { "s-uncovered" } else { "" }) { (t.uncovered) }
                                td { (t.total) }
                            }
                        }
                    }
                }
                h2 { "Uncovered" }
                @if gaps.is_empty() {
                    p id="gaps" { "None: every requirement is covered or waived for each role it binds." }
                } @else {
                    ul id="gaps" {
                        @for e in &gaps {
                            li.s-uncovered { a href={ "#" (e.requirement.id) } { (e.requirement.id) }
                                " — " (e.requirement.text) }
                        }
                    }
                }
                @if !map.cases_without_covers.is_empty() {
                    p { "Cases without covers: " (map.cases_without_covers.join(", ")) }
                }
                h2 { "Requirements" }
                table.coverage {
                    thead {
                        tr {
                            th { "ID" } th { "Requirement" } th { "Section" } th { "Role" }
                            th { "Level" } th { "Client cases" } th { "Server cases" }
                        }
                    }
                    tbody {
                        @for e in &map.entries {
                            @let r = e.requirement;
                            @let gap = ROLES.iter().any(|role| e.status(*role) == Status::Uncovered);
                            tr class=(if gap { "req gap" } else { "req" }) id=(r.id) {
                                td.id { (r.id) }
                                td.text {
                                    q { (r.text) }
                                    @if let Some(n) = &r.note { div.title { (n) } }
                                }
                                td.section { (r.spec.name()) ": " (r.section) }
                                td.role { (r.role.name()) }
                                td.level { (r.level.name()) }
                                @for role in ROLES { (coverage_cell(e, role, &links)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The coverage page when the cases directory does not load.
fn unavailable_page(errors: &[String]) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Wisp spec coverage map"))
            body {
                p { a href="index.html" { "← matrix" } }
                h1 { "Wisp spec coverage map" }
                p.s-uncovered id="unavailable" { "The map is unavailable: the cases directory does not load." }
                ul.reasons { @for e in errors { li { (e) } } }
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
