//! The one report model of every suite run, whatever the role and the subject: a
//! [`CaseReport`] per case (behaviour verdict, optional CLOSE-reason column, reasons,
//! transcript), the [`SuiteReport`] of a run, and the [`Gate`] that turns it into an exit
//! code. The reporters write it as a table ([`table`]), JSON ([`json`]), JUnit XML
//! ([`junit`]) and a static HTML site ([`html`]). Beside the runs, [`coverage`] reports the
//! spec coverage map: which requirements the cases check.

pub mod coverage;
pub mod files;
pub mod html;
pub mod json;
pub mod junit;
pub mod table;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use wisp_cases::{Level, Meta, Role, Verdict};
use wisp_client::proto::CloseReason;

use crate::server::baseline::{Baseline, Mismatch};
use crate::server::{Probe, RunMode};

/// The labels a case row can show, in the order summaries list them.
pub const LABELS: [&str; 8] = [
    "OK",
    "NON-STRICT",
    "INFORMATIONAL",
    "UNSUPPORTED",
    "FAILED",
    "ERROR",
    "IGNORED",
    "NOT RUN",
];

/// The CLOSE-reason column of one case: the reason the server chose on the judged
/// stream (server-role cases with a `close:` judge).
#[derive(Clone, Debug)]
pub struct CloseColumn {
    /// The verdict.
    pub verdict: Verdict,
    /// The stream judged (`s1(#1)`, `0`).
    pub stream: String,
    /// The preferred reasons.
    pub preferred: Vec<CloseReason>,
    /// The acceptable ones.
    pub acceptable: Vec<CloseReason>,
    /// The reason the server sent, if it sent a CLOSE.
    pub got: Option<CloseReason>,
    /// The CLOSE packet (decoded, with its bytes).
    pub packet: Option<String>,
    /// Why the verdict.
    pub note: String,
}

impl CloseColumn {
    /// `close on s1(#1): reason 0x42; 0x44 is preferred (CLOSE s1(#1) ... (raw ...))`.
    pub fn evidence(&self) -> String {
        format!(
            "close on {}: {} ({})",
            self.stream,
            self.note,
            self.packet.as_deref().unwrap_or("no packet")
        )
    }
}

/// The result of one case, of either role.
#[derive(Clone, Debug)]
pub struct CaseReport {
    /// The case ID.
    pub id: String,
    /// The folder part of the ID (`auth`, `server.close`): the JUnit class name.
    pub group: String,
    /// The title.
    pub title: String,
    /// The spec section.
    pub spec: String,
    /// must / should / may.
    pub level: Level,
    /// Why the case exists, what a failure means (the case's `description`).
    pub description: String,
    /// What the case expects, as its file states it: the top-level `expect:` and `close:`
    /// sections (empty when it has neither).
    pub expectation: String,
    /// The side under test.
    pub role: Role,
    /// The behaviour verdict (meaningless when `error` is set or the case was ignored).
    pub verdict: Verdict,
    /// The verdict the case itself expects (client role: `expect.verdict`, default OK);
    /// `None` when only a baseline can say (server role).
    pub expected: Option<Verdict>,
    /// The CLOSE-reason verdict, for cases with a `close` judge that ran.
    pub close: Option<CloseColumn>,
    /// Why the verdict is not OK (or why UNSUPPORTED).
    pub reasons: Vec<String>,
    /// A harness or connection error: the case could not run.
    pub error: Option<String>,
    /// The case was not run: it is marked `ignore`, for this reason.
    pub ignored: Option<String>,
    /// The case was not run because the server under test was down (`not run: the server
    /// is down since <case>`): the case that took it down is FAILED, this one has no
    /// verdict.
    pub not_run: Option<String>,
    /// What happened: the client role's deterministic transcript (wire trace, client
    /// log, verdict), the server role's decoded wire log.
    pub transcript: String,
    /// Wall-clock time.
    pub duration: Duration,
    /// Virtual time, for cases run on a paused clock (client role).
    pub virtual_time: Option<Duration>,
}

impl CaseReport {
    /// An OK report for the case described by `meta`, before anything ran.
    pub fn new(meta: &Meta, role: Role) -> Self {
        Self {
            id: meta.id.clone(),
            group: meta.group.clone(),
            title: meta.title.clone(),
            spec: meta.spec.clone(),
            level: meta.level,
            description: meta.description.trim().to_owned(),
            expectation: expectation(&meta.source),
            role,
            verdict: Verdict::Ok,
            expected: None,
            close: None,
            reasons: Vec::new(),
            error: None,
            ignored: None,
            not_run: None,
            transcript: String::new(),
            duration: Duration::ZERO,
            virtual_time: None,
        }
    }

    /// The last segment of the group (`close` for `server.close`, `auth` for `auth`).
    pub fn family(&self) -> &str {
        self.group.rsplit('.').next().unwrap_or("")
    }

    /// `ERROR` for a harness or connection error, `IGNORED` for an ignored case, `NOT RUN`
    /// for a case not run because the server was down, else the verdict.
    pub fn label(&self) -> String {
        match (&self.error, &self.ignored, &self.not_run) {
            (Some(_), _, _) => "ERROR".to_owned(),
            (None, Some(_), _) => "IGNORED".to_owned(),
            (None, None, Some(_)) => "NOT RUN".to_owned(),
            (None, None, None) => self.verdict.to_string(),
        }
    }

    /// Why the case did not run (ignored, or the server was down), if it did not.
    pub fn skipped(&self) -> Option<&str> {
        self.ignored.as_deref().or(self.not_run.as_deref())
    }

    /// Whether the case ran and has a verdict (no error, not ignored, not left out
    /// because the server was down).
    pub fn judged(&self) -> bool {
        self.error.is_none() && self.ignored.is_none() && self.not_run.is_none()
    }

    /// The close column's verdict, or `-`.
    pub fn close_label(&self) -> String {
        match &self.close {
            Some(c) if self.judged() => c.verdict.to_string(),
            _ => "-".to_owned(),
        }
    }

    /// Both columns as one value: `OK`, or `OK / NON-STRICT` with a close column (the form
    /// baselines use).
    pub fn outcome(&self) -> String {
        match &self.close {
            Some(c) if self.judged() => format!("{} / {}", self.verdict, c.verdict),
            _ => self.label(),
        }
    }

    /// The worse of the two columns.
    pub fn worst(&self) -> Verdict {
        match &self.close {
            Some(c) if c.verdict.severity() > self.verdict.severity() => c.verdict,
            _ => self.verdict,
        }
    }

    /// Whether the verdict differs from the one the case expects (never, without an
    /// expectation of its own).
    pub fn unexpected(&self) -> bool {
        self.judged() && self.expected.is_some_and(|e| e != self.verdict)
    }

    /// Whether the case passed on its own terms: it ran, and its verdict is the expected
    /// one (client role) or not FAILED in either column (server role).
    pub fn passed(&self) -> bool {
        self.judged()
            && match self.expected {
                Some(e) => e == self.verdict,
                None => self.worst() != Verdict::Failed,
            }
    }

    /// Whether a reader wants the details: an error, an unexpected verdict, or any column
    /// that is not OK where the case expects nothing else.
    pub fn interesting(&self) -> bool {
        if self.skipped().is_some() {
            return false;
        }
        self.error.is_some()
            || self
                .expected
                .map_or(self.verdict != Verdict::Ok, |e| e != self.verdict)
            || self
                .close
                .as_ref()
                .is_some_and(|c| c.verdict != Verdict::Ok)
    }
}

/// The top-level `expect:` and `close:` sections of a case file's text, as written
/// (comments and indentation kept), in file order.
fn expectation(source: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in source.lines() {
        let top_level = !line.is_empty() && !line.starts_with([' ', '\t', '#']);
        if top_level {
            inside = line.starts_with("expect:") || line.starts_with("close:");
        }
        if inside {
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out.trim_end().to_owned()
}

/// What ran the cases, as a report names it.
#[derive(Clone, Debug)]
pub enum SubjectInfo {
    /// This workspace's client in process, against the scripted mock server.
    OurClient,
    /// A client driven through the shim protocol ([`crate::shim`]).
    Client(ClientInfo),
    /// A live server.
    Server(ServerInfo),
    /// A client that connected by itself to the cases served at this URL pattern
    /// (`ws://ADDR/<case-id>/`, listen mode: [`crate::listen`]).
    Listen(String),
}

/// The client a client-role run judged through the shim protocol.
#[derive(Clone, Debug)]
pub struct ClientInfo {
    /// Its name, as it said.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The capabilities it declared.
    pub capabilities: Vec<&'static str>,
    /// How it was driven (`shim `node shims/wisp-js/shim.mjs``, `in process`).
    pub driver: String,
}

/// The server a server-role run judged, and what the run set up for it.
#[derive(Clone, Debug)]
pub struct ServerInfo {
    /// The server URL.
    pub url: String,
    /// The mode.
    pub mode: RunMode,
    /// What the capability probe saw.
    pub probe: Probe,
    /// `(name, address)` of the loopback targets.
    pub targets: Vec<(String, SocketAddr)>,
    /// The blocked destination, if configured.
    pub blocked: Option<String>,
}

impl SubjectInfo {
    /// One line: what was judged (`client wisp-client 0.1.0 in process`, `server URL (v1
    /// run)`).
    pub fn headline(&self) -> String {
        match self {
            Self::OurClient => format!(
                "client wisp-client {} in process, against the scripted mock server",
                env!("CARGO_PKG_VERSION")
            ),
            Self::Client(c) => format!(
                "client {} {} ({}), against the scripted mock server",
                c.name, c.version, c.driver
            ),
            Self::Server(s) => format!("server {} ({} run)", s.url, s.mode),
            Self::Listen(url) => {
                format!("client connecting to {url} (listen mode, wire-side judgement)")
            }
        }
    }
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct SuiteReport {
    /// What was judged.
    pub subject: SubjectInfo,
    /// Every selected case that applies (run, UNSUPPORTED or ignored), in suite order;
    /// a server run then adds the rows of its run-level checks
    /// ([`crate::server::checks`]).
    pub cases: Vec<CaseReport>,
    /// IDs of selected cases that do not apply to this run (another mode).
    pub not_applicable: Vec<String>,
    /// Wall-clock time of the run.
    pub duration: Duration,
}

impl SuiteReport {
    /// The server judged, for server-role runs.
    pub fn server(&self) -> Option<&ServerInfo> {
        match &self.subject {
            SubjectInfo::Server(s) => Some(s),
            SubjectInfo::OurClient | SubjectInfo::Client(_) | SubjectInfo::Listen(_) => None,
        }
    }

    /// Counts of each label in the behaviour column and in the close column.
    pub fn counts(&self) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
        let mut behaviour = BTreeMap::new();
        let mut close = BTreeMap::new();
        for c in &self.cases {
            *behaviour.entry(c.label()).or_insert(0) += 1;
            if c.judged()
                && let Some(col) = &c.close
            {
                *close.entry(col.verdict.to_string()).or_insert(0) += 1;
            }
        }
        (behaviour, close)
    }
}

/// The outcome of the CI gate.
#[derive(Clone, Debug)]
pub struct Gate {
    /// 0: passed; 1: conformance failures (or baseline mismatches); 2: harness or
    /// connection errors.
    pub exit_code: u8,
    /// Cases with a connection or harness error.
    pub errors: Vec<String>,
    /// Cases that fail the gate (without a baseline): a verdict other than the one the
    /// case expects, or (cases that expect nothing of their own) FAILED in either column,
    /// or NON-STRICT with `strict`.
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
    /// run was not filtered, so missing cases count too); without one, a case fails when
    /// its verdict is not the one it expects, or, when it expects none, when either column
    /// is FAILED (or NON-STRICT with `strict`). Harness and connection errors always give
    /// exit code 2. Ignored cases do not count.
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
            .filter(|c| c.judged())
            .filter(|c| match c.expected {
                Some(e) => e != c.verdict,
                None => {
                    let w = c.worst();
                    w == Verdict::Failed || (strict && w == Verdict::NonStrict)
                }
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
                "gate passed: no case fails{}",
                if self.strict {
                    " (NON-STRICT fails too, with --strict)"
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

#[cfg(test)]
mod tests {
    use super::expectation;

    #[test]
    fn expectation_is_the_expect_and_close_sections() {
        let source = "title: t\nexpect:\n  streams:\n    s1: {closed_by: server}\n\n# note\nclose:\n  stream: s1\nactions:\n  - x\nexpected: no\n";
        assert_eq!(
            expectation(source),
            "expect:\n  streams:\n    s1: {closed_by: server}\n\n# note\nclose:\n  stream: s1"
        );
        assert_eq!(expectation("title: t\n"), "");
    }
}
