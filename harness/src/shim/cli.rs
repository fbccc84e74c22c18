//! `wisp-conformance client --shim "CMD ARGS"`: the client-role suite against any client,
//! through a shim process. The same verdicts, reports, baselines, filters and exit codes
//! as `server`; verbose mode adds, for each case that is not OK, the diff of the shim's
//! wire trace against the built-in client's snapshot.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use wisp_cases::{Case, Role};

use crate::default_cases_dir;
use crate::engine::{ClientSubject, Subject, SuiteOptions, run_suite_blocking};
use crate::report::{Gate, SuiteReport, files, table};
use crate::select::select_cases;
use crate::server::baseline::{self, Baseline};

/// `client --shim CMD`: options.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The shim: a shell command line that starts a program speaking the shim protocol
    /// (harness/SHIM.md), e.g. "node shims/wisp-js/shim.mjs". One process per case.
    #[arg(long, value_name = "CMD")]
    pub shim: String,
    /// The cases directory (default: the workspace's cases/).
    #[arg(long, value_name = "DIR")]
    pub cases: Option<PathBuf>,
    /// Only IDs equal to PREFIX or under it (`handshake` selects `handshake.*`; a trailing
    /// `*` matches any continuation). Repeatable. Matching nothing is an error.
    #[arg(long, value_name = "PREFIX")]
    pub filter: Vec<String>,
    /// Leave out cases whose ID is PREFIX or under it (same matching). Repeatable.
    #[arg(long, value_name = "PREFIX")]
    pub skip: Vec<String>,
    /// Cases run at once (each starts its own shim process).
    #[arg(long, short = 'j', value_name = "N", default_value_t = 8)]
    pub jobs: usize,
    /// The bound on each case in seconds, real time (a case's own `timeout:` when
    /// shorter). A client that hangs is FAILED once its case reaches the bound.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    pub timeout: f64,
    /// Also run cases marked `ignore`.
    #[arg(long)]
    pub include_ignored: bool,
    /// Compare the verdicts with this client baseline: any difference (an unexpected pass
    /// as much as an unexpected fail) exits 1.
    #[arg(long, value_name = "BASELINE")]
    pub expect: Option<PathBuf>,
    /// Write the run's verdicts as a client baseline file (then explain each non-OK entry).
    /// With --expect, entries whose outcome the old baseline accepts keep their line
    /// (comment included): `--expect B --write-baseline B` updates a baseline in place.
    #[arg(long, value_name = "FILE")]
    pub write_baseline: Option<PathBuf>,
    /// The client's name written into --write-baseline (default: what the shim says).
    #[arg(long, value_name = "NAME")]
    pub client_name: Option<String>,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write a JUnit XML report (Maven Surefire format) here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a static HTML report into this directory (open its index.html).
    #[arg(long, value_name = "DIR")]
    pub html: Option<PathBuf>,
    /// List the selected cases and what each needs of a client, instead of running them.
    #[arg(long)]
    pub list: bool,
    /// Print the reasons, the transcript and the wire diff against the built-in client's
    /// snapshot of every case that is not OK.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// No progress lines on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// The long help of `client`.
pub const CLIENT_ABOUT: &str = "\
Run the client-role suite (cases/<topic>/) against any Wisp client, through a shim: a \
small program that speaks the shim protocol (harness/SHIM.md) on its stdin/stdout and \
drives the client. The harness plays the server: for each case it starts the scripted \
mock server on loopback, starts the shim, tells it the mock's URL and what to do (the \
version, extensions and credentials to offer, the actions), and judges the wire trace \
and the outcomes the shim reports, exactly as for the built-in client.

Verdicts: OK, NON-STRICT, INFORMATIONAL, UNSUPPORTED (the case needs a capability the \
shim does not declare), FAILED, and ERROR (the shim crashed, printed garbage, exited \
early or never answered; its stderr tail is in the report).

Exit codes: 0 the gate passed; 1 conformance failures: a verdict other than the case \
expects (with --expect: any verdict that differs from the baseline); 2 shim or harness \
errors (the other cases still run), bad options or case files, or a filter that matches \
nothing.";

/// Runs `client --shim`; the exit code.
pub fn client_command(args: &ClientArgs) -> ExitCode {
    match client_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn client_inner(args: &ClientArgs) -> Result<ExitCode, String> {
    let dir = args.cases.clone().unwrap_or_else(default_cases_dir);
    let (cases, complete) = select_cases(&dir, Role::Client, &args.filter, &args.skip, "--filter")?;
    if args.list {
        let width = cases.iter().map(|c| c.id().len()).max().unwrap_or(0);
        for c in cases.iter().filter_map(Case::as_client) {
            let needs: Vec<&str> = super::Capability::needed_by(c)
                .into_iter()
                .map(super::Capability::name)
                .collect();
            println!(
                "{:<width$}  {:<40}  {}",
                c.meta.id,
                needs.join(","),
                c.meta.title
            );
        }
        println!("{} cases", cases.len());
        return Ok(ExitCode::SUCCESS);
    }
    if !(args.timeout.is_finite() && args.timeout > 0.0 && args.timeout <= 600.0) {
        return Err("--timeout takes seconds between 0 and 600".to_owned());
    }
    let baseline = match &args.expect {
        Some(path) => {
            let b = Baseline::load(path)?;
            if b.role != Role::Client {
                return Err(format!(
                    "{} is a server baseline; `client` takes a client baseline (`client:` header)",
                    path.display()
                ));
            }
            Some(b)
        }
        None => None,
    };
    let mut subject = ClientSubject::shim(&args.shim);
    subject.case_timeout = Duration::from_secs_f64(args.timeout);
    let options = SuiteOptions {
        jobs: args.jobs.max(1),
        include_ignored: args.include_ignored,
    };
    let quiet = args.quiet;
    let report = run_suite_blocking(
        &cases,
        Subject::Client(subject),
        &options,
        &mut |done, total, case| {
            if !quiet {
                eprintln!("{}", table::progress_line(done, total, case));
            }
        },
    )?;
    let gate = Gate::decide(&report, false, baseline.as_ref(), complete);
    println!("{}", table::table(&report, args.verbose));
    if args.verbose {
        print!("{}", wire_diffs(&report));
    }
    for m in &gate.mismatches {
        println!("baseline: {m}");
    }
    println!("{}", gate.summary());
    println!("{}", table::closing_line(&report));
    files::write_files(
        args.json.as_deref(),
        args.junit.as_deref(),
        args.html.as_deref(),
        &report,
        &gate,
        baseline.as_ref(),
    )?;
    if let Some(path) = &args.write_baseline {
        let name = match (&args.client_name, &report.subject) {
            (Some(n), _) => n.clone(),
            (None, crate::report::SubjectInfo::Client(c)) => format!("{} {}", c.name, c.version),
            (None, _) => args.shim.clone(),
        };
        std::fs::write(
            path,
            baseline::render_client(&report, &name, baseline.as_ref()),
        )
        .map_err(|e| format!("--write-baseline {}: {e}", path.display()))?;
    }
    Ok(ExitCode::from(gate.exit_code))
}

/// The wire section of a client-role transcript, without the timestamps (a shim runs on
/// the real clock, the snapshots on a paused one).
fn wire_lines(transcript: &str) -> Vec<String> {
    transcript
        .lines()
        .skip_while(|l| *l != "== wire (mock server) ==")
        .skip(1)
        .take_while(|l| !l.starts_with("== "))
        .map(|l| match l.split_once("ms] ") {
            Some((_, rest)) if l.starts_with('[') => rest.to_owned(),
            _ => l.to_owned(),
        })
        .collect()
}

/// For each case that is not OK: the diff of its wire trace against the built-in
/// client's snapshot (`harness/snapshots/<id>.snap`), when there is one.
pub fn wire_diffs(report: &SuiteReport) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots");
    let mut out = String::new();
    for case in report.cases.iter().filter(|c| c.interesting()) {
        let Ok(snap) = std::fs::read_to_string(dir.join(format!("{}.snap", case.id))) else {
            continue;
        };
        let ours = wire_lines(&snap);
        let theirs = wire_lines(&case.transcript);
        if ours == theirs {
            out.push_str(&format!(
                "\n--- {}: the wire trace matches the built-in client's\n",
                case.id
            ));
            continue;
        }
        out.push_str(&format!(
            "\n--- {}: wire trace, built-in client (-) vs this client (+)\n",
            case.id
        ));
        out.push_str(&line_diff(&ours, &theirs));
    }
    out
}

/// A minimal line diff (longest common subsequence): ` ` kept, `-` only in `a`, `+` only
/// in `b`. Traces are short, so the quadratic table is fine.
fn line_diff(a: &[String], b: &[String]) -> String {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_lines_drop_timestamps_and_other_sections() {
        let t = "== wire (mock server) ==\n[    12ms] #0   S->C  CONTINUE 0 credit=8\n== client ==\nx\n";
        assert_eq!(wire_lines(t), vec!["#0   S->C  CONTINUE 0 credit=8"]);
    }

    #[test]
    fn line_diff_marks_changes() {
        let a: Vec<String> = ["x", "y", "z"].iter().map(|s| s.to_string()).collect();
        let b: Vec<String> = ["x", "q", "z"].iter().map(|s| s.to_string()).collect();
        assert_eq!(line_diff(&a, &b), "  x\n- y\n+ q\n  z\n");
    }
}
