//! `wisp-conformance`: runs the Wisp conformance cases against the embedded mock server
//! and prints one line per case (ID, verdict, time) and a summary.
//!
//! Exit codes: 0 every case passed, 1 conformance failures, 2 bad case files, a filter that
//! matches nothing, or a harness error.
//!
//! ```text
//! wisp-conformance                          # run every case under the workspace's cases/
//! wisp-conformance --filter handshake       # only handshake.* (segment-aware, repeatable)
//! wisp-conformance list                     # IDs and titles
//! wisp-conformance --cases DIR -v           # another cases dir, with transcripts of failures
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use wisp_harness::{Case, CaseReport, Filter, Verdict, default_cases_dir, load_dir, run_case};

/// Wisp conformance: the client library against scripted servers.
#[derive(Debug, Parser)]
#[command(
    name = "wisp-conformance",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the cases against the embedded mock server (the default).
    Run(RunArgs),
    /// List case IDs and titles.
    List(SelectArgs),
    // Reserved (issue 4): `server URL` will run server-role cases against a real server.
}

/// Which cases.
#[derive(Debug, Args, Clone)]
struct SelectArgs {
    /// The cases directory (default: the workspace's cases/).
    #[arg(long, value_name = "DIR")]
    cases: Option<PathBuf>,
    /// Only IDs equal to PREFIX or under it (`handshake` selects `handshake.*`; a trailing
    /// `*` matches any continuation). Repeatable. Matching nothing is an error.
    #[arg(long, value_name = "PREFIX")]
    filter: Vec<String>,
}

/// How to run them.
#[derive(Debug, Args, Clone)]
struct RunArgs {
    #[command(flatten)]
    select: SelectArgs,
    /// Cases run at once (default: the number of CPUs).
    #[arg(long, short = 'j')]
    jobs: Option<usize>,
    /// Print the transcript of every case that did not pass.
    #[arg(long, short = 'v')]
    verbose: bool,
    /// Also run cases marked `ignore`.
    #[arg(long)]
    include_ignored: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::List(select)) => list(&select),
        Some(Command::Run(run)) => run_all(&run),
        None => run_all(&cli.run),
    }
}

fn load(select: &SelectArgs) -> Result<(Vec<Case>, usize), ExitCode> {
    let dir = select.cases.clone().unwrap_or_else(default_cases_dir);
    let (cases, errors) = load_dir(&dir);
    for e in &errors {
        eprintln!("error: {e}");
    }
    let filter = Filter::new(select.filter.iter().cloned());
    match filter.apply(&cases) {
        Ok(selected) => {
            let selected: Vec<Case> = selected.into_iter().cloned().collect();
            Ok((selected, errors.len()))
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::from(2))
        }
    }
}

fn list(select: &SelectArgs) -> ExitCode {
    let (cases, bad) = match load(select) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let width = cases.iter().map(|c| c.id.len()).max().unwrap_or(0);
    for c in &cases {
        let ignored = if c.file.ignore.is_some() {
            " [ignored]"
        } else {
            ""
        };
        println!("{:<width$}  {}{ignored}", c.id, c.file.title);
    }
    println!("{} cases", cases.len());
    if bad > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

fn run_all(args: &RunArgs) -> ExitCode {
    let started = Instant::now();
    let (cases, bad) = match load(&args.select) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let (cases, skipped): (Vec<Case>, Vec<Case>) = cases
        .into_iter()
        .partition(|c| args.include_ignored || c.file.ignore.is_none());
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let next = AtomicUsize::new(0);
    let reports: Mutex<Vec<Option<CaseReport>>> = Mutex::new(vec![None; cases.len()]);
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(cases.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(case) = cases.get(i) else { break };
                    let report = run_case(case);
                    if let Ok(mut r) = reports.lock() {
                        r[i] = Some(report);
                    }
                }
            });
        }
    });
    let reports: Vec<CaseReport> = reports
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect();

    let width = cases.iter().map(|c| c.id.len()).max().unwrap_or(10).max(7);
    println!(
        "{:<width$}  {:<13}  {:>8}  {:>9}  note",
        "case", "verdict", "wall", "virtual"
    );
    let (mut passed, mut failed, mut harness_errors) = (0, 0, 0);
    for (case, report) in cases.iter().zip(&reports) {
        let note = if let Some(e) = &report.harness_error {
            harness_errors += 1;
            format!("harness error: {e}")
        } else if report.passed() {
            passed += 1;
            if report.expected == Verdict::Ok {
                String::new()
            } else {
                format!("expected {}", report.expected)
            }
        } else {
            failed += 1;
            format!(
                "expected {}: {}",
                report.expected,
                report.failures.first().cloned().unwrap_or_default()
            )
        };
        println!(
            "{:<width$}  {:<13}  {:>6}ms  {:>7}ms  {note}",
            case.id,
            report.verdict.to_string(),
            report.wall.as_millis(),
            report.virtual_time.as_millis()
        );
        if args.verbose && !report.passed() {
            for f in &report.failures {
                println!("    - {f}");
            }
            for line in report.transcript.lines() {
                println!("    | {line}");
            }
        }
    }
    for case in &skipped {
        println!(
            "{:<width$}  {:<13}  {:>8}  {:>9}  {}",
            case.id,
            "IGNORED",
            "-",
            "-",
            case.file.ignore.clone().unwrap_or_default()
        );
    }
    let elapsed: Duration = started.elapsed();
    println!(
        "\n{passed} passed, {failed} failed, {} ignored, {bad} bad case files, {harness_errors} harness errors ({:.2}s)",
        skipped.len(),
        elapsed.as_secs_f64()
    );
    if bad > 0 || harness_errors > 0 {
        ExitCode::from(2)
    } else if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
