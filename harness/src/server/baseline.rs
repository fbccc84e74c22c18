//! Baselines: the expected verdicts of one server in one mode (`harness/baselines/*.yaml`),
//! so an unexpected pass or fail is visible and CI can gate on changes.
//!
//! ```yaml
//! # wisp-python 0.9.0, v1 run.
//! server: wisp-python 0.9.0
//! mode: v1
//! cases:
//!   server.tcp.echo: OK
//!   server.close.refused: OK / NON-STRICT   # answers 0x42 for every failed connect
//!   server.udp.no-continue: FAILED          # sends CONTINUE on UDP streams every 32 packets
//! ```
//!
//! A value is the behaviour verdict, and ` / ` plus the CLOSE-reason verdict for cases
//! with a close judge. Every entry that is not plain `OK` carries a comment saying which
//! server behaviour makes it so ([`Baseline::uncommented`] finds those that do not).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use wisp_cases::{Role, Verdict};

use super::RunMode;
use crate::report::{CaseReport, LABELS, SuiteReport};

/// The expected outcome of one case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// The behaviour verdict.
    pub verdict: Verdict,
    /// The CLOSE-reason verdict, for cases with a close judge.
    pub close: Option<Verdict>,
    /// Other outcomes the run may give instead (`FAILED | OK`): for a subject whose
    /// behaviour depends on timing (a client that loses data in a race), each one
    /// explained in the entry's comment. Empty for a deterministic subject.
    pub or: Vec<Expected>,
}

impl Expected {
    /// Parses `OK`, `OK / NON-STRICT`, or alternatives separated by `|`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut alternatives = text.split('|');
        let mut first = Self::parse_one(alternatives.next().unwrap_or_default())?;
        for other in alternatives {
            first.or.push(Self::parse_one(other)?);
        }
        Ok(first)
    }

    fn parse_one(text: &str) -> Result<Self, String> {
        let bad = |v: &str| {
            format!(
                "{v:?} is not a verdict: use OK, NON-STRICT, INFORMATIONAL, UNSUPPORTED or FAILED (ERROR cannot be expected)"
            )
        };
        let (a, b) = match text.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (text, None),
        };
        let verdict = Verdict::parse(a).ok_or_else(|| bad(a))?;
        let close = match b {
            Some(b) => Some(Verdict::parse(b).ok_or_else(|| bad(b))?),
            None => None,
        };
        Ok(Self {
            verdict,
            close,
            or: Vec::new(),
        })
    }

    /// The first outcome alone (`OK / NON-STRICT`), without the alternatives.
    pub fn primary(&self) -> String {
        match self.close {
            Some(c) => format!("{} / {c}", self.verdict),
            None => format!("{}", self.verdict),
        }
    }

    /// Whether a run's outcome (`CaseReport::outcome`) is this one or an alternative.
    pub fn accepts(&self, outcome: &str) -> bool {
        self.primary() == outcome || self.or.iter().any(|o| o.primary() == outcome)
    }
}

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.primary())?;
        for o in &self.or {
            write!(f, " | {}", o.primary())?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BaselineFile {
    /// A server baseline names the server (and has a mode)...
    #[serde(default)]
    server: Option<String>,
    #[serde(default)]
    mode: Option<String>,
    /// ... a client baseline (`wisp-conformance client --shim`) names the client.
    #[serde(default)]
    client: Option<String>,
    cases: BTreeMap<String, String>,
}

/// A loaded baseline.
#[derive(Clone, Debug)]
pub struct Baseline {
    /// The file.
    pub path: PathBuf,
    /// The server it describes (`wisp-python 0.9.0`), or the client of a client baseline.
    pub server: String,
    /// The side it describes: a server baseline (`server:`, `mode:`) or a client one
    /// (`client:`).
    pub role: Role,
    /// The mode of the run it describes (a client baseline has none: v2).
    pub mode: RunMode,
    /// Expected outcome per case ID.
    pub cases: BTreeMap<String, Expected>,
    source: String,
}

/// A difference between a run and its baseline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The case ID.
    pub id: String,
    /// What the baseline expects (`None`: the case is not in the baseline).
    pub expected: Option<String>,
    /// What the run got (`None`: the run did not have the case).
    pub got: Option<String>,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.expected, &self.got) {
            (Some(e), Some(g)) => write!(f, "{}: expected {e}, got {g}", self.id),
            (None, Some(g)) => write!(
                f,
                "{}: got {g}, but the baseline does not list the case (add it)",
                self.id
            ),
            (Some(e), None) => write!(
                f,
                "{}: the baseline expects {e}, but the run has no such case (renamed or removed?)",
                self.id
            ),
            (None, None) => write!(f, "{}", self.id),
        }
    }
}

impl Baseline {
    /// Loads a baseline file.
    ///
    /// # Errors
    ///
    /// The file cannot be read, is not valid YAML of this shape, or has a bad verdict.
    pub fn load(path: &Path) -> Result<Self, String> {
        let source = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the baseline {}: {e}", path.display()))?;
        Self::parse(path, &source)
    }

    /// Parses baseline text (`path` names it in messages).
    ///
    /// # Errors
    ///
    /// As [`Baseline::load`].
    pub fn parse(path: &Path, source: &str) -> Result<Self, String> {
        let file: BaselineFile = serde_saphyr::from_str(source).map_err(|e| {
            format!(
                "{}: {}",
                path.display(),
                e.to_string().lines().next().unwrap_or("invalid YAML")
            )
        })?;
        let (server, role, mode) = match (file.server, file.client, file.mode.as_deref()) {
            (Some(server), None, Some(mode)) => {
                let mode = match mode {
                    "v1" => RunMode::V1,
                    "v2" => RunMode::V2,
                    other => {
                        return Err(format!("{}: mode {other:?}: use v1 or v2", path.display()));
                    }
                };
                (server, Role::Server, mode)
            }
            (None, Some(client), None) => (client, Role::Client, RunMode::V2),
            _ => {
                return Err(format!(
                    "{}: give `server:` and `mode:` (a server baseline) or `client:` (a client baseline)",
                    path.display()
                ));
            }
        };
        let mut cases = BTreeMap::new();
        for (id, value) in file.cases {
            let expected =
                Expected::parse(&value).map_err(|e| format!("{}: {id}: {e}", path.display()))?;
            cases.insert(id, expected);
        }
        Ok(Self {
            path: path.to_owned(),
            server,
            role,
            mode,
            cases,
            source: source.to_owned(),
        })
    }

    /// Compares a run with the baseline. With `complete` (the run was not filtered), a
    /// baseline entry the run does not have is a mismatch too, and so is a run-level check
    /// row (`server.run.*`) the baseline does not list (a filtered run's checks saw only
    /// part of the suite).
    pub fn compare(&self, report: &SuiteReport, complete: bool) -> Vec<Mismatch> {
        let mut out = Vec::new();
        for case in &report.cases {
            let got = case.outcome();
            match self.cases.get(&case.id) {
                Some(e) if e.accepts(&got) => {}
                Some(e) => out.push(Mismatch {
                    id: case.id.clone(),
                    expected: Some(e.to_string()),
                    got: Some(got),
                }),
                // A filtered run sees only part of the run-level checks: they count
                // unlisted only in a complete run.
                None if !complete && case.id.starts_with(super::checks::PREFIX) => {}
                None => out.push(Mismatch {
                    id: case.id.clone(),
                    expected: None,
                    got: Some(got),
                }),
            }
        }
        if complete {
            for (id, e) in &self.cases {
                if !report.cases.iter().any(|c| &c.id == id) {
                    out.push(Mismatch {
                        id: id.clone(),
                        expected: Some(e.to_string()),
                        got: None,
                    });
                }
            }
        }
        out
    }

    /// The expected outcomes grouped by family (the second ID segment), for interop
    /// tables ([`family_matrix`]).
    pub fn by_family(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (id, e) in &self.cases {
            let family = id.split('.').nth(1).unwrap_or("").to_owned();
            out.entry(family).or_default().push(e.primary());
        }
        out
    }

    /// The comment of `id`'s entry as written (the text after its `#`, trimmed), if it
    /// has one.
    pub fn entry_comment(&self, id: &str) -> Option<&str> {
        let line = self.source.lines().find(|line| {
            line.trim_start()
                .split_once(':')
                .is_some_and(|(key, _)| key.trim() == id)
        })?;
        let comment = line.split_once('#')?.1.trim();
        (!comment.is_empty()).then_some(comment)
    }

    /// IDs of entries that are not plain `OK` and carry no `# comment` on their line.
    pub fn uncommented(&self) -> Vec<String> {
        self.source
            .lines()
            .filter_map(|line| {
                let (entry, comment) = match line.split_once('#') {
                    Some((e, c)) => (e, Some(c)),
                    None => (line, None),
                };
                let (id, value) = entry.trim().split_once(':')?;
                let id = id.trim();
                let value = value.trim();
                let is_case = self.cases.contains_key(id);
                let plain_ok = value.split(['/', '|']).all(|v| v.trim() == "OK");
                let has_comment = comment.is_some_and(|c| !c.trim().is_empty());
                (is_case && !plain_ok && !has_comment).then(|| id.to_owned())
            })
            .collect()
    }
}

/// Writes a baseline for `report`, a `mode` run: every case with its outcome, and for the
/// others than OK a comment with the first reason (to be replaced by a human
/// explanation).
pub fn render(report: &SuiteReport, server: &str, mode: RunMode) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Expected verdicts of the server suite: {server}, {mode} run.\n\
         # Written by `wisp-conformance server --write-baseline`; each non-OK entry says why."
    );
    let _ = writeln!(out, "server: {server}\nmode: {mode}\ncases:");
    entries(report, &mut out);
    out
}

/// The `cases:` entries of a baseline, one per case, with the first reason of each one
/// that is not OK as its comment.
fn entries(report: &SuiteReport, out: &mut String) {
    let width = key_width(report);
    for case in &report.cases {
        fresh_entry(out, width, case);
    }
}

/// Writes `case`'s entry from the run alone: its outcome, and the first reason as the
/// comment when it is not OK.
fn fresh_entry(out: &mut String, width: usize, case: &CaseReport) {
    let outcome = case.outcome();
    let why = (!outcome.split('/').all(|v| v.trim() == "OK")).then(|| first_reason(case));
    entry(out, width, &case.id, &outcome, why.as_deref());
}

/// The width of the `id:` column of a baseline written for `report`.
fn key_width(report: &SuiteReport) -> usize {
    report.cases.iter().map(|c| c.id.len()).max().unwrap_or(0) + 1
}

/// The first reason a case is not OK, on one line without `#`, at most 140 characters:
/// the comment a freshly written entry gets.
fn first_reason(case: &CaseReport) -> String {
    let why = case
        .error
        .clone()
        .or_else(|| case.reasons.first().cloned())
        .or_else(|| case.close.as_ref().map(|c| format!("close: {}", c.note)))
        .unwrap_or_default();
    let mut why: String = why.replace('\n', " ").replace('#', "");
    if why.chars().count() > 140 {
        why = why.chars().take(137).collect::<String>() + "...";
    }
    why
}

/// Writes one `cases:` entry: the `id:` column `width` wide, then the outcome, then (when
/// there is one) the comment in a column of its own.
fn entry(out: &mut String, width: usize, id: &str, outcome: &str, comment: Option<&str>) {
    let key = format!("{id}:");
    let _ = match comment {
        Some(why) => writeln!(out, "  {key:<width$} {outcome:<28} # {why}"),
        None => writeln!(out, "  {key:<width$} {outcome}"),
    };
}

/// Writes a client baseline for `report` (a run of the client suite through a shim):
/// every case with its verdict, and for the others than OK a comment with the first reason
/// (to be replaced by a one-line explanation of what the client does). With `previous`
/// (the baseline the run was compared with), an entry whose outcome the previous baseline
/// accepts keeps its expected outcome and comment, alternatives included, so regenerating
/// a baseline after new cases were added keeps every explanation. Every entry is written
/// in the same columns.
pub fn render_client(report: &SuiteReport, client: &str, previous: Option<&Baseline>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Expected verdicts of the client suite: {client}.\n\
         # Written by `wisp-conformance client --shim ... --write-baseline`; each non-OK entry says what the client does.\n\
         # `A | B`: the client's outcome depends on timing (the comment says why); either is expected."
    );
    let _ = writeln!(out, "client: {client}\ncases:");
    let width = key_width(report);
    for case in &report.cases {
        let outcome = case.outcome();
        let kept = previous.and_then(|b| {
            let expected = b.cases.get(&case.id).filter(|e| e.accepts(&outcome))?;
            Some((expected.to_string(), b.entry_comment(&case.id)))
        });
        match kept {
            Some((expected, comment)) => entry(&mut out, width, &case.id, &expected, comment),
            None => fresh_entry(&mut out, width, case),
        }
    }
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
    fn outcomes_parse_and_print() {
        let e = Expected::parse("OK / non-strict").unwrap();
        assert_eq!(e.verdict, Verdict::Ok);
        assert_eq!(e.close, Some(Verdict::NonStrict));
        assert_eq!(e.to_string(), "OK / NON-STRICT");
        assert_eq!(
            Expected::parse("UNSUPPORTED").unwrap().to_string(),
            "UNSUPPORTED"
        );
        assert!(Expected::parse("ERROR").is_err());
        let either = Expected::parse("FAILED | ok").unwrap();
        assert_eq!(either.to_string(), "FAILED | OK");
        assert!(either.accepts("OK") && either.accepts("FAILED") && !either.accepts("NON-STRICT"));
        assert!(Expected::parse("fine").is_err());
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

    fn client_case(id: &str, verdict: Verdict, reason: &str) -> CaseReport {
        let meta = wisp_cases::Meta::synthetic(id, "", "", wisp_cases::Level::Must);
        let mut case = CaseReport::new(&meta, Role::Client);
        case.verdict = verdict;
        case.reasons = vec![reason.to_owned()];
        case
    }

    #[test]
    fn a_rewritten_client_baseline_keeps_explanations_in_one_set_of_columns() {
        // The old file's columns were wider (a longer ID was removed since).
        let old = "client: x\ncases:\n  \
                   a.kept:        FAILED | OK   # loses the data in a race (timing)\n  \
                   a.changed:     OK\n";
        let old = Baseline::parse(Path::new("t.yaml"), old).unwrap();
        let report = SuiteReport {
            subject: crate::report::SubjectInfo::OurClient,
            cases: vec![
                client_case("a.kept", Verdict::Ok, "ignored"),
                client_case("a.changed", Verdict::Failed, "step 1: got nothing"),
                client_case("a.new-case", Verdict::Ok, "ignored"),
            ],
            not_applicable: Vec::new(),
            duration: std::time::Duration::ZERO,
        };
        let text = render_client(&report, "x", Some(&old));
        let entries: Vec<&str> = text
            .lines()
            .skip_while(|l| *l != "cases:")
            .skip(1)
            .collect();
        assert_eq!(
            entries,
            [
                "  a.kept:     FAILED | OK                  # loses the data in a race (timing)",
                "  a.changed:  FAILED                       # step 1: got nothing",
                "  a.new-case: OK",
            ],
            "{text}"
        );
        let again = Baseline::parse(Path::new("t.yaml"), &text).unwrap();
        assert!(again.compare(&report, true).is_empty());
        assert_eq!(again.uncommented(), Vec::<String>::new());
    }

    #[test]
    fn uncommented_non_ok_entries_are_found() {
        let src = "server: x\nmode: v1\ncases:\n  a.b: OK\n  a.c: FAILED   # why\n  a.d: OK / NON-STRICT\n";
        let b = Baseline::parse(Path::new("t.yaml"), src).unwrap();
        assert_eq!(b.uncommented(), vec!["a.d".to_owned()]);
        assert!(Baseline::parse(Path::new("t.yaml"), "server: x\nmode: v3\ncases: {}\n").is_err());
        assert!(
            Baseline::parse(
                Path::new("t.yaml"),
                "server: x\nmode: v1\ncases: {a: BAD}\n"
            )
            .is_err()
        );
    }
}
