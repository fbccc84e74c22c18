//! `wisp-conformance`: runs the Wisp conformance cases. By default the client-role cases
//! (the client library against the embedded mock server); `server URL` runs the
//! server-role suite against a live Wisp server.
//!
//! Both suites run on the same engine and write the same reports: a table on stdout, and
//! with `--json FILE` / `--junit FILE` / `--html DIR` a JSON report, a JUnit XML report
//! and a static HTML site; `report --html DIR RUN.json...` merges JSON reports into one
//! HTML matrix.
//!
//! Exit codes: 0 the gate passed, 1 conformance failures (or, with `--expect`, verdicts
//! that differ from the baseline), 2 bad case files, a filter that matches nothing, a
//! harness error, or (server suite) a case that could not connect.
//!
//! `coverage` prints the spec coverage map instead: per requirement of
//! `cases/requirements.yaml`, the cases of each role that check it; exit 0 when every
//! requirement is covered or waived, 1 while some are not, 2 for bad files.
//!
//! ```text
//! wisp-conformance                          # run every client-role case under cases/
//! wisp-conformance --filter handshake       # only handshake.* (segment-aware, repeatable)
//! wisp-conformance list                     # IDs and titles
//! wisp-conformance --cases DIR -v           # another cases dir, with transcripts of failures
//! wisp-conformance --json out.json --junit out.xml
//! wisp-conformance server ws://127.0.0.1:6001/ --v1 --json out.json --junit out.xml
//! wisp-conformance server ws://127.0.0.1:6001/ --expect harness/baselines/mine-v2.yaml
//! wisp-conformance coverage --json coverage.json --html site/   # + site/coverage.html
//! wisp-conformance --html report/            # a static HTML site (index.html) of the run
//! wisp-conformance report --html matrix/ a=a.json b=b.json   # several runs in one matrix
//! wisp-conformance record --upstream ws://127.0.0.1:6001/ --listen 127.0.0.1:6080 \
//!     --out cases/streams/my-bug.yaml   # record a session as a case
//! wisp-conformance listen 127.0.0.1:6090 --json listen.json   # judge a client that connects
//! ```

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use wisp_client::proto::PasswordLayout;
use wisp_harness::report::{coverage, files, html, table};
use wisp_harness::server::baseline::{self, Baseline};
use wisp_harness::server::{RunMode, ServerConfig};
use wisp_harness::{
    Case, Filter, Gate, Role, Subject, SuiteOptions, SuiteReport, load_dir, run_suite_blocking,
};
// Without --cases, the cases built into the binary: it works away from the checkout.
use wisp_harness::installed_cases_dir as default_cases_dir;

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
    /// Run the server-role suite against a live Wisp server and judge it.
    #[command(long_about = SERVER_ABOUT)]
    Server(Box<ServerArgs>),
    /// Print which requirements of the spec the cases check (the spec coverage map).
    #[command(long_about = COVERAGE_ABOUT)]
    Coverage(CoverageArgs),
    /// Merge JSON reports (of either suite) into one HTML matrix.
    Report(ReportCmd),
    /// Run the client-role suite against any client, through a shim (harness/SHIM.md).
    #[command(long_about = wisp_harness::shim::cli::CLIENT_ABOUT)]
    Client(Box<wisp_harness::shim::cli::ClientArgs>),
    /// Record a real session through a Wisp-aware proxy and write it as a client-role case.
    #[command(long_about = RECORD_ABOUT)]
    Record(RecordCmd),
    /// Serve every client-role case at `ws://ADDR/<case-id>/` and judge the clients that
    /// connect, on the wire.
    #[command(long_about = LISTEN_ABOUT)]
    Listen(ListenCmd),
}

const LISTEN_ABOUT: &str = "\
Judge a Wisp client the harness cannot drive (a browser page, a closed app): every \
client-role case is served at its own URL, ws://ADDR/<case-id>/ (GET / lists them). \
Make the client connect to a case's URL and do what the case's client section \
describes; the mock server plays the case's script and judges what the client puts on \
the wire (the packets it must send, the CLOSE reasons, how and when it ends the \
connection). What only the client's API shows (the errors it reports, the data it read) \
is not judged here: each row lists it, and cases judged only by it are UNSUPPORTED, \
\"needs a shim\". Cases no client connected to are IGNORED; the last attempt counts.

The run ends on Ctrl-C or after --bound; then the table and the reports (--json, \
--junit, --html) are written. Exit codes as for the suite: 0 no FAILED verdict, 1 \
failures, 2 bad options or case files.";

/// `listen`: options.
#[derive(Debug, Args)]
struct ListenCmd {
    /// Where to listen, e.g. 127.0.0.1:6090.
    addr: std::net::SocketAddr,
    #[command(flatten)]
    select: SelectArgs,
    /// End after this many seconds (default: on Ctrl-C only).
    #[arg(long, value_name = "S")]
    bound: Option<f64>,
    /// Print the reasons and wire trace of every case that is not OK.
    #[arg(long, short = 'v')]
    verbose: bool,
    #[command(flatten)]
    reports: ReportArgs,
}

const RECORD_ABOUT: &str = "\
Record a real session and write it as a client-role case: a transparent, Wisp-aware \
WebSocket proxy. Point any Wisp client at ws://LISTEN/ (it forwards to --upstream, the \
subprotocol offer and answer included), use it, then stop: the session ends when the \
client or the server disconnects, after --bound, or on Ctrl-C.

The case (--out) replays what the server sent as the mock server's script, with an \
`expect` step for every packet the client sent (streams as aliases, long server \
silences as `pause`, large payloads as `repeat` or a length and hash), repeats what the \
client did as its actions, and fills `expect:` from what happened. Credentials seen on \
the wire are never written: the case uses placeholders (and the test key), with a \
note. The file is checked with the normal loader before it is written; review it (the \
description, title, level and `covers:` are placeholders) and run it with --filter.";

/// `record`: options.
#[derive(Debug, Args)]
struct RecordCmd {
    /// The server to record, e.g. ws://127.0.0.1:6001/ (ws:// only).
    #[arg(long, value_name = "URL")]
    upstream: String,
    /// Where the proxy listens for the client.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:6080")]
    listen: std::net::SocketAddr,
    /// The case file to write, e.g. cases/streams/my-bug.yaml (its path under the cases
    /// directory is its ID).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The cases directory the case belongs to (default: the workspace's cases/).
    #[arg(long, value_name = "DIR")]
    cases: Option<PathBuf>,
    /// End the session after this many seconds.
    #[arg(long, value_name = "S")]
    bound: Option<f64>,
    /// DATA payloads longer than this many bytes are written as patterns.
    #[arg(long, value_name = "BYTES", default_value_t = 256)]
    large: usize,
    /// A server silence at least this many milliseconds long becomes a `pause` step.
    #[arg(long, value_name = "MS", default_value_t = 200)]
    pause_min: u64,
}

const COVERAGE_ABOUT: &str = "\
Print the spec coverage map: for every requirement of cases/requirements.yaml (the MUST, \
SHOULD and MAY statements of Wisp v1.2 and v2 draft 6, and de-facto rules), the cases of \
each role that check it (their `covers:` lists), or why it is waived; then the \
requirements no case checks, and the totals per role (covered / waived / total).

Exit codes: 0 every requirement is covered or waived for each role it binds; 1 some are \
not; 2 bad case files or requirements file.";

/// `coverage`: options.
#[derive(Debug, Args)]
struct CoverageArgs {
    /// The cases directory, with its requirements.yaml (default: the cases built into this
    /// binary).
    #[arg(long, value_name = "DIR")]
    cases: Option<PathBuf>,
    /// Write the map as JSON here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the map as an HTML page (coverage.html) into this directory.
    #[arg(long, value_name = "DIR")]
    html: Option<PathBuf>,
}

/// `report`: options.
#[derive(Debug, Args)]
struct ReportCmd {
    /// Write the site here (index.html and one page per case and run).
    #[arg(long, value_name = "DIR")]
    html: PathBuf,
    /// JSON reports written with --json, one column each, in this order; `NAME=FILE`
    /// names the column (default: the server URL and mode, or the suite).
    #[arg(value_name = "RUN.json", required = true)]
    runs: Vec<String>,
    /// The cases directory whose requirements.yaml the coverage page maps (default: the
    /// workspace's cases/).
    #[arg(long, value_name = "DIR")]
    cases: Option<PathBuf>,
}

const SERVER_ABOUT: &str = "\
Run the server-role suite (cases/server/) against a live Wisp server and judge it.

The harness starts its own targets on loopback (a TCP echo, a UDP echo, a port that \
refuses, a TCP sink that never reads, a discard and a banner) for the server to connect \
to, so the server must be able to reach --targets-bind (run it on the same machine, and \
allow loopback destinations). It probes what the server advertises, then runs each case \
on its own WebSocket, a few at a time, every wait bounded by --timeout.

Each case gets a verdict: OK, NON-STRICT (a should is not met), INFORMATIONAL (the spec \
leaves it open; what happened is recorded), UNSUPPORTED (an optional feature the server \
does not advertise), FAILED (a must is broken), ERROR (the case could not connect), or \
NOT RUN (the server was down). Cases with a close judge get a second verdict for the \
CLOSE reason the server chose.

After a case that ends abnormally the harness checks that the server still serves (a \
fresh upgrade, handshake and echo). If it does not, that case is FAILED: \"the server \
crashed (connection refused after this case)\" or \"the server froze (no upgrade within \
N s after this case)\". Later cases are NOT RUN (\"not run: the server is down since \
<case>\"); with --spawn the harness restarts the server instead and goes on.

Exit codes: 0 the gate passed; 1 conformance failures: a FAILED verdict (a crash or \
freeze too; NON-STRICT too with --strict), or with --expect any verdict that differs \
from the baseline; 2 harness or connection errors (the other cases still run; a server \
that was never reachable), bad options or case files, or a filter that matches \
nothing.";

/// How the password record is laid out.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum LayoutArg {
    /// `ulen u8 | username | password` (v2 draft 6).
    Draft6,
    /// `ulen u8 | plen u16 LE | username | password` (drafts up to 5, deployed servers).
    Draft5,
}

/// `server URL`: options.
#[derive(Debug, Args)]
struct ServerArgs {
    /// The server's WebSocket URL, e.g. ws://127.0.0.1:6001/ or wss://wisp.example.org/
    /// (keep the trailing slash Wisp servers expect).
    url: String,
    /// With wss://: accept any server certificate (self-signed test servers).
    #[arg(long)]
    insecure: bool,
    /// Speak Wisp v1: no Sec-WebSocket-Protocol is offered and the v2-only cases do not
    /// apply.
    #[arg(long, conflicts_with = "v2")]
    v1: bool,
    /// Speak Wisp v2 (the default): offer Sec-WebSocket-Protocol: wisp-v2 and expect the
    /// INFO handshake; against a v1-only server the v2-only cases are UNSUPPORTED.
    #[arg(long)]
    v2: bool,
    /// Credentials for password authentication (enables the auth.password cases that need
    /// valid ones; the others run without). On the command line they land in shell history
    /// and process lists: prefer --password-file or the WISP_PASSWORD environment variable
    /// (USER:PASS), used when neither flag is given. Reports redact the password.
    #[arg(long, value_name = "USER:PASS", conflicts_with = "password_file")]
    password: Option<String>,
    /// Read the credentials (USER:PASS, one line) from this file.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// The layout of the password record the harness sends.
    #[arg(long, value_enum, value_name = "LAYOUT", default_value = "draft6")]
    password_layout: LayoutArg,
    /// An Ed25519 private key (PKCS#8 PEM) your server trusts, for certificate
    /// authentication.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// A destination your server refuses by policy (enables server.close.blocked), e.g.
    /// 10.0.0.1:80 for a server that blocks private addresses.
    #[arg(long, value_name = "HOST:PORT")]
    blocked: Option<String>,
    /// Run only cases whose ID is PREFIX or under it (segment-aware: `server.close`
    /// selects server.close.*; a trailing `*` matches any continuation). Repeatable; a
    /// prefix that matches nothing is an error.
    #[arg(long, value_name = "ID-PREFIX")]
    only: Vec<String>,
    /// Leave out cases whose ID is PREFIX or under it (same matching as --only).
    /// Repeatable.
    #[arg(long, value_name = "ID-PREFIX")]
    skip: Vec<String>,
    /// NON-STRICT verdicts fail the gate too (without --expect).
    #[arg(long)]
    strict: bool,
    /// Bound on every single wait of a case, in seconds; each case also has an overall
    /// deadline (its `timeout:`, at least twice this).
    #[arg(long, value_name = "S", default_value_t = 5.0)]
    timeout: f64,
    /// Cases run at once.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 4)]
    jobs: usize,
    #[command(flatten)]
    reports: ReportArgs,
    /// Compare the verdicts with this baseline file: any difference (an unexpected pass as
    /// much as an unexpected fail) exits 1.
    #[arg(long, value_name = "BASELINE")]
    expect: Option<PathBuf>,
    /// Write the run's verdicts as a baseline file (then explain each non-OK entry).
    #[arg(long, value_name = "FILE")]
    write_baseline: Option<PathBuf>,
    /// The server's name written into --write-baseline (default: the URL).
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
    /// The cases directory (default: the cases built into this binary).
    #[arg(long, value_name = "DIR")]
    cases: Option<PathBuf>,
    /// The address the targets bind, and that cases ask the server to reach (0.0.0.0 for
    /// a server on another host, with --targets-host).
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    targets_bind: IpAddr,
    /// The name or address of this machine as the server reaches it: cases give the server
    /// this host for the harness's targets (a server on another host).
    #[arg(long, value_name = "HOST")]
    targets_host: Option<String>,
    /// Targets the server can reach when the harness's own cannot be: a YAML file of
    /// `NAME: HOST:PORT` lines (tcp_echo, udp_echo, refused, sink, ...). Only those are used;
    /// cases that need another target are UNSUPPORTED.
    #[arg(long, value_name = "FILE")]
    external_targets: Option<PathBuf>,
    /// Start the server under test with this command (run by `sh -c`; `{port}` here and in
    /// URL becomes a free port), restart it after a crash or a freeze, and add the tail of
    /// its stderr to the report of the case that took it down.
    #[arg(long, value_name = "CMD")]
    spawn: Option<String>,
    /// List the selected cases (ID, level, needs, title) instead of running them.
    #[arg(long)]
    list: bool,
    /// Print the reasons, CLOSE evidence and wire log of every case that is not OK.
    #[arg(long, short = 'v')]
    verbose: bool,
    /// No progress lines on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// Which cases.
#[derive(Debug, Args, Clone)]
struct SelectArgs {
    /// The cases directory (default: the cases built into this binary).
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
    #[command(flatten)]
    reports: ReportArgs,
}

/// The report files a run writes (both suites).
#[derive(Debug, Args, Clone)]
struct ReportArgs {
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write a JUnit XML report (Maven Surefire format) here.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write a static HTML report into this directory (open its index.html; with the spec
    /// coverage page of the workspace's cases/).
    #[arg(long, value_name = "DIR")]
    html: Option<PathBuf>,
}

/// Prints a line on stdout. A reader that went away (`| head -2`, `| grep -q`) is not an
/// error: the rest of the output is dropped and the command still ends with its own exit
/// code. Any other write error is said once on stderr.
macro_rules! out {
    ($($arg:tt)*) => { emit(&mut std::io::stdout().lock(), format_args!("{}\n", format_args!($($arg)*))) };
}

/// [`out!`] without the newline.
macro_rules! out_raw {
    ($($arg:tt)*) => { emit(&mut std::io::stdout().lock(), format_args!($($arg)*)) };
}

/// Prints a line on stderr, dropping it if stderr is closed.
macro_rules! err {
    ($($arg:tt)*) => { emit(&mut std::io::stderr().lock(), format_args!("{}\n", format_args!($($arg)*))) };
}

/// Writes to `w` as `print!` would, without panicking when the stream is closed.
fn emit(w: &mut dyn std::io::Write, args: std::fmt::Arguments<'_>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static REPORTED: AtomicBool = AtomicBool::new(false);
    match w.write_fmt(args).and_then(|()| w.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            if !REPORTED.swap(true, Ordering::Relaxed) {
                let _ = writeln!(std::io::stderr(), "error: writing the output: {e}");
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::List(select)) => list(&select),
        Some(Command::Server(args)) => server(&args),
        Some(Command::Coverage(args)) => coverage_map(&args),
        Some(Command::Run(run)) => run_all(&run),
        Some(Command::Report(args)) => report(&args),
        Some(Command::Record(args)) => record(&args),
        Some(Command::Listen(args)) => listen(&args),
        Some(Command::Client(args)) => wisp_harness::shim::cli::client_command(&args),
        None => run_all(&cli.run),
    }
}

/// Loads the client-role cases under the selected directory and applies `--filter`.
/// Returns them and the number of files that did not load.
fn load(select: &SelectArgs) -> Result<(Vec<Case>, usize), ExitCode> {
    let dir = select.cases.clone().unwrap_or_else(default_cases_dir);
    let (cases, errors) = load_dir(&dir);
    for e in &errors {
        err!("error: {e}");
    }
    // Server-role cases run with `server URL`.
    let cases: Vec<Case> = cases
        .into_iter()
        .filter(|c| c.role() == Role::Client)
        .collect();
    let filter = Filter::new(select.filter.iter().cloned());
    match filter.apply(&cases) {
        Ok(selected) => Ok((selected.into_iter().cloned().collect(), errors.len())),
        Err(e) => {
            err!("error: {e}");
            Err(ExitCode::from(2))
        }
    }
}

fn list(select: &SelectArgs) -> ExitCode {
    let (cases, bad) = match load(select) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let width = cases.iter().map(|c| c.id().len()).max().unwrap_or(0);
    for c in cases.iter().filter_map(Case::as_client) {
        let ignored = if c.ignore.is_some() { " [ignored]" } else { "" };
        out!("{:<width$}  {}{ignored}", c.meta.id, c.meta.title);
    }
    out!("{} cases", cases.len());
    if bad > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// Writes the JSON and JUnit reports the run asked for.
fn write_reports(
    args: &ReportArgs,
    report: &SuiteReport,
    gate: &Gate,
    baseline: Option<&Baseline>,
) -> Result<(), String> {
    files::write_files(
        args.json.as_deref(),
        args.junit.as_deref(),
        args.html.as_deref(),
        report,
        gate,
        baseline,
    )
}

/// A client-role run's end: its reports, then its exit code (2 with bad case files).
fn write_reports_and_exit(
    reports: &ReportArgs,
    report: &SuiteReport,
    gate: &Gate,
    bad_files: usize,
) -> ExitCode {
    if let Err(e) = write_reports(reports, report, gate, None) {
        err!("error: {e}");
        return ExitCode::from(2);
    }
    if bad_files > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::from(gate.exit_code)
    }
}

/// `report --html DIR RUN.json...`: one matrix of several runs.
fn report(args: &ReportCmd) -> ExitCode {
    let mut runs = Vec::new();
    for arg in &args.runs {
        let (name, path) = match arg.split_once('=') {
            Some((n, p)) if !Path::new(arg).exists() => (Some(n.to_owned()), Path::new(p)),
            _ => (None, Path::new(arg.as_str())),
        };
        match html::Run::load(path) {
            Ok(mut run) => {
                run.name = name.or(run.name);
                runs.push(run);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let cases = args.cases.clone().unwrap_or_else(default_cases_dir);
    match html::write_site(&runs, &cases, &args.html) {
        Ok(index) => {
            println!("{}", index.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// `listen ADDR`: the cases served to clients that connect by themselves.
fn listen(args: &ListenCmd) -> ExitCode {
    use wisp_harness::listen::{ListenOptions, run_blocking};
    let (cases, bad) = match load(&args.select) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut options = ListenOptions::default();
    if let Some(b) = args.bound {
        if !(b.is_finite() && b > 0.0 && b <= 86_400.0) {
            err!("error: --bound takes seconds between 0 and 86400");
            return ExitCode::from(2);
        }
        options.bound = Some(Duration::from_secs_f64(b));
    }
    let cases: Vec<_> = cases.iter().filter_map(Case::as_client).cloned().collect();
    let n = cases.len();
    let on_listen = |addr| {
        err!(
            "serving {n} cases at ws://{addr}/<case-id>/ (GET http://{addr}/ lists them); Ctrl-C ends the run and writes the report"
        );
    };
    let report = match run_blocking(args.addr, cases, &options, on_listen) {
        Ok(r) => r,
        Err(e) => {
            err!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let gate = Gate::decide(&report, false, None, true);
    out_raw!("{}", table::table(&report, args.verbose));
    out!("{}", gate.summary());
    write_reports_and_exit(&args.reports, &report, &gate, bad)
}

/// `record`: one session through the proxy, written as a case.
fn record(args: &RecordCmd) -> ExitCode {
    use wisp_harness::record::{RecordOptions, run_blocking};
    let mut options = RecordOptions::new(&args.upstream);
    options.large = args.large;
    options.pause_min = Duration::from_millis(args.pause_min);
    if let Some(b) = args.bound {
        if !(b.is_finite() && b > 0.0 && b <= 86_400.0) {
            err!("error: --bound takes seconds between 0 and 86400");
            return ExitCode::from(2);
        }
        options.bound = Some(Duration::from_secs_f64(b));
    }
    let cases = args.cases.clone().unwrap_or_else(default_cases_dir);
    let out = std::path::absolute(&args.out).unwrap_or_else(|_| args.out.clone());
    let on_listen = |addr| {
        err!(
            "recording: point your client at ws://{addr}/ (forwarding to {}); Ctrl-C ends the session",
            args.upstream
        );
    };
    match run_blocking(args.listen, &options, &cases, &out, on_listen) {
        Ok(r) => {
            out!("{}", out.display());
            err!(
                "recorded {} messages as case {} ({}); run it: wisp-conformance --filter {}",
                r.session.events.len(),
                r.id,
                out.display(),
                r.id
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            err!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_all(args: &RunArgs) -> ExitCode {
    let (cases, bad) = match load(&args.select) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let options = SuiteOptions {
        jobs: args
            .jobs
            .unwrap_or_else(|| SuiteOptions::default().jobs)
            .max(1),
        include_ignored: args.include_ignored,
    };
    let report = match run_suite_blocking(&cases, Subject::OurClient, &options, &mut |_, _, _| {}) {
        Ok(r) => r,
        Err(e) => {
            err!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let gate = Gate::decide(&report, false, None, true);
    out_raw!("{}", table::table(&report, args.verbose));
    out!("{}", gate.summary());
    out!(
        "{}{}",
        table::closing_line(&report),
        if bad > 0 {
            format!("; {bad} bad case files")
        } else {
            String::new()
        }
    );
    write_reports_and_exit(&args.reports, &report, &gate, bad)
}

fn coverage_map(args: &CoverageArgs) -> ExitCode {
    let dir = args.cases.clone().unwrap_or_else(default_cases_dir);
    let (requirements, cases) = match coverage::load(&dir) {
        Ok(r) => r,
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            return ExitCode::from(2);
        }
    };
    let map = match requirements.coverage_of(&cases) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", coverage::text(&map));
    if let Some(path) = &args.json {
        let written = serde_json::to_string_pretty(&coverage::json(&map))
            .map_err(|e| e.to_string())
            .and_then(|t| std::fs::write(path, t).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("error: --json {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if let Some(dir) = &args.html
        && let Err(e) = html::write_coverage(&map, dir)
    {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    if map.complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn server(args: &ServerArgs) -> ExitCode {
    match server_inner(args) {
        Ok(code) => code,
        Err(e) => {
            err!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn select_server_cases(args: &ServerArgs, dir: &Path) -> Result<(Vec<Case>, bool), String> {
    wisp_harness::select::select_cases(dir, Role::Server, &args.only, &args.skip, "--only")
}

/// The environment variable the credentials are read from without `--password` or
/// `--password-file`.
const PASSWORD_ENV: &str = "WISP_PASSWORD";

/// The credentials of the run: `--password`, else `--password-file`, else `WISP_PASSWORD`
/// (each `USER:PASS`), else none.
fn credentials(args: &ServerArgs) -> Result<Option<(String, String)>, String> {
    let (text, from) = if let Some(p) = &args.password {
        (p.clone(), "--password".to_owned())
    } else if let Some(path) = &args.password_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--password-file {}: {e}", path.display()))?;
        let line = text.lines().next().unwrap_or_default().to_owned();
        (line, format!("--password-file {}", path.display()))
    } else {
        match std::env::var(PASSWORD_ENV) {
            Ok(v) if !v.is_empty() => (v, PASSWORD_ENV.to_owned()),
            Ok(_) | Err(std::env::VarError::NotPresent) => return Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(format!("{PASSWORD_ENV} is not valid UTF-8"));
            }
        }
    };
    let (user, pass) = text
        .split_once(':')
        .ok_or_else(|| format!("{from} takes USER:PASS"))?;
    Ok(Some((user.to_owned(), pass.to_owned())))
}

fn server_inner(args: &ServerArgs) -> Result<ExitCode, String> {
    let dir = args.cases.clone().unwrap_or_else(default_cases_dir);
    let (cases, complete) = select_server_cases(args, &dir)?;
    let mode = if args.v1 { RunMode::V1 } else { RunMode::V2 };
    if args.list {
        let width = cases.iter().map(|c| c.id().len()).max().unwrap_or(0);
        for c in cases.iter().filter_map(Case::as_server) {
            let needs: Vec<String> = c.requires.iter().map(ToString::to_string).collect();
            let applies = if wisp_harness::server::applies(c, mode) {
                ""
            } else {
                " [not in this mode]"
            };
            out!(
                "{:<width$}  {:<6}  {:<24}  {}{applies}",
                c.meta.id,
                c.meta.level.name(),
                needs.join(","),
                c.meta.title
            );
        }
        out!("{} cases", cases.len());
        return Ok(ExitCode::SUCCESS);
    }
    let mut config = ServerConfig::new(&args.url, mode);
    config.cases_dir = dir;
    config.bind = args.targets_bind;
    config.spawn = args.spawn.clone();
    config.insecure = args.insecure;
    config.targets_host = args.targets_host.clone();
    if let Some(path) = &args.external_targets {
        config.external_targets = Some(wisp_harness::server::load_external_targets(path)?);
    }
    if !(args.timeout.is_finite() && args.timeout > 0.0 && args.timeout <= 600.0) {
        return Err("--timeout takes seconds between 0 and 600".to_owned());
    }
    config.step_timeout = Duration::from_secs_f64(args.timeout);
    config.password_layout = match args.password_layout {
        LayoutArg::Draft6 => PasswordLayout::Draft6,
        LayoutArg::Draft5 => PasswordLayout::Draft5,
    };
    config.credentials = credentials(args)?;
    if let Some(path) = &args.key {
        let pem =
            std::fs::read_to_string(path).map_err(|e| format!("--key {}: {e}", path.display()))?;
        let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
            format!(
                "--key {}: not an Ed25519 PKCS#8 PEM private key: {e}",
                path.display()
            )
        })?;
        config.key = Some(key);
    }
    if let Some(b) = &args.blocked {
        let (host, port) = b
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            .ok_or("--blocked takes HOST:PORT")?;
        config.blocked = Some((host.trim_matches(['[', ']']).to_owned(), port));
    }
    let baseline = match &args.expect {
        Some(path) => {
            let b = Baseline::load(path)?;
            if b.mode != mode {
                return Err(format!(
                    "{} describes a {} run; this is a {mode} run (use --{})",
                    path.display(),
                    b.mode,
                    b.mode
                ));
            }
            Some(b)
        }
        None => None,
    };
    let quiet = args.quiet;
    let options = SuiteOptions {
        jobs: args.jobs.max(1),
        include_ignored: false,
    };
    let subject = Subject::Server(Box::new(config));
    let report = run_suite_blocking(&cases, subject, &options, &mut |done, total, case| {
        if !quiet {
            err!("{}", table::progress_line(done, total, case));
        }
    })?;
    let gate = Gate::decide(&report, args.strict, baseline.as_ref(), complete);
    out!("{}", table::table(&report, args.verbose));
    for m in &gate.mismatches {
        out!("baseline: {m}");
    }
    out!("{}", gate.summary());
    write_reports(&args.reports, &report, &gate, baseline.as_ref())?;
    if let Some(path) = &args.write_baseline {
        let name = args.server_name.clone().unwrap_or_else(|| args.url.clone());
        std::fs::write(path, baseline::render(&report, &name, mode))
            .map_err(|e| format!("--write-baseline {}: {e}", path.display()))?;
    }
    Ok(ExitCode::from(gate.exit_code))
}
