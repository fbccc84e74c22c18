//! Crash and freeze attribution, and `--spawn`, against `wisp_testkit::faulty`'s server
//! set to crash or freeze on one packet (type 0x07, which only
//! `server.robustness.unknown-packet-type` sends):
//!
//! - in process, without `--spawn`: that case is FAILED ("the server crashed (connection
//!   refused after this case)" / "the server froze (no upgrade within ...)"), every later
//!   case is NOT RUN ("not run: the server is down since <case>"), the gate exits 1;
//! - with `--spawn`: this test executable runs itself as `wisp-faulty-server` (`serve
//!   ARGS`); the harness restarts it after the crash, the culprit's report has the
//!   server's stderr tail, and the later cases run (and pass) on the restarted server;
//! - a server that cannot echo (its echo target is a closed port) is checked up to its
//!   handshake after a case, so its crash is attributed all the same;
//! - with `--spawn`, a crash while two cases ran that neither reproduces alone (the spawned
//!   server crashes only in its first life: `serve --once MARKER`) is a FAILED run-level
//!   row `server.run.unattributed-crash` naming both, and the gate exits 1.
//!
//! A plain `main` (`harness = false`), so the executable can be the spawned server too.

use std::process::ExitCode;
use std::time::Duration;

use wisp_harness::report::CaseReport;
use wisp_harness::server::{RunMode, ServerConfig};
use wisp_harness::{Gate, Subject, SuiteOptions, SuiteReport, Verdict, run_suite_blocking};
use wisp_testkit::faulty::{FaultConfig, FaultyServer, PacketMatch};

mod common;
use common::{by_id, server_cases};

const CULPRIT: &str = "server.robustness.unknown-packet-type";
/// The culprit, then cases that come after it in suite order.
const ONLY: [&str; 3] = [CULPRIT, "server.tcp.echo", "server.udp"];

fn run(config: ServerConfig, jobs: usize) -> SuiteReport {
    run_cases(&ONLY, config, jobs)
}

fn run_cases(only: &[&str], config: ServerConfig, jobs: usize) -> SuiteReport {
    let options = SuiteOptions {
        jobs,
        ..SuiteOptions::default()
    };
    run_suite_blocking(
        &server_cases(only),
        Subject::Server(Box::new(config)),
        &options,
        &mut |_, _, _| {},
    )
    .expect("the run starts")
}

fn after_culprit(report: &SuiteReport) -> Vec<&CaseReport> {
    let ids: Vec<&str> = report.cases.iter().map(|c| c.id.as_str()).collect();
    let at = ids
        .iter()
        .position(|id| *id == CULPRIT)
        .expect("the culprit ran");
    report.cases[at + 1..]
        .iter()
        .filter(|c| c.role == wisp_harness::Role::Server && c.group != "server.run")
        .collect()
}

fn fault(freeze: bool) -> FaultConfig {
    let packet: PacketMatch = "type=0x07".parse().expect("a packet match");
    if freeze {
        FaultConfig {
            freeze_on: Some(packet),
            ..FaultConfig::default()
        }
    } else {
        FaultConfig {
            crash_on: Some(packet),
            ..FaultConfig::default()
        }
    }
}

/// Without --spawn: the culprit FAILED with `expected`, every later case NOT RUN.
fn down_for_good(freeze: bool, expected: &str) {
    let server = FaultyServer::start(fault(freeze)).expect("the faulty server starts");
    let mut config = ServerConfig::new(server.url(), RunMode::V2);
    config.step_timeout = Duration::from_secs(1);
    let report = run(config, 1);
    let culprit = by_id(&report, CULPRIT);
    assert_eq!(culprit.verdict, Verdict::Failed, "{culprit:?}");
    assert!(culprit.error.is_none(), "{culprit:?}");
    assert!(
        culprit.reasons[0].contains(expected),
        "{expected:?} in {:?}",
        culprit.reasons
    );
    let later = after_culprit(&report);
    assert!(later.len() >= 3, "{:?}", report.cases);
    for c in later {
        assert_eq!(c.label(), "NOT RUN", "{c:?}");
        assert_eq!(
            c.not_run.as_deref(),
            Some(format!("not run: the server is down since {CULPRIT}").as_str())
        );
    }
    let gate = Gate::decide(&report, false, None, true);
    assert_eq!(
        gate.exit_code, 1,
        "a crash is a conformance failure: {gate:?}"
    );
    // Without the fault, the same cases pass.
    let healthy = FaultyServer::start(FaultConfig::default()).expect("the server starts");
    let mut config = ServerConfig::new(healthy.url(), RunMode::V2);
    config.step_timeout = Duration::from_secs(1);
    let report = run(config, 1);
    assert!(report.cases.iter().all(|c| c.not_run.is_none()));
    assert_eq!(by_id(&report, CULPRIT).verdict, Verdict::Ok);
}

/// With --spawn: the harness restarts the server; later cases run on it.
fn spawned(jobs: usize) {
    let exe = std::env::current_exe().expect("the test executable");
    let mut config = ServerConfig::new("ws://127.0.0.1:{port}/", RunMode::V2);
    config.step_timeout = Duration::from_secs(2);
    config.spawn = Some(format!(
        "'{}' serve --port {{port}} --crash-on type=0x07",
        exe.display()
    ));
    let report = run(config, jobs);
    let culprit = by_id(&report, CULPRIT);
    let rows = common::rows_summary(&report.cases);
    assert_eq!(culprit.verdict, Verdict::Failed, "{rows:#?}\n{culprit:?}");
    assert!(
        culprit.reasons[0].contains(
            "the server crashed (the process exited with exit status: 101 after this case)"
        ),
        "{:?}",
        culprit.reasons
    );
    assert!(
        culprit.transcript.contains("wisp-faulty-server: crashed"),
        "the stderr tail is in the report: {}",
        culprit.transcript
    );
    assert!(culprit.transcript.contains("restarted the server"));
    let later = after_culprit(&report);
    assert!(later.len() >= 3, "{:?}", report.cases);
    for c in later {
        assert!(c.judged(), "{c:?}");
        assert_ne!(c.verdict, Verdict::Failed, "{c:?}");
    }
    // The cases that ran beside the culprit ran again on the restarted server.
    assert!(
        report.cases.iter().all(|c| c.not_run.is_none()),
        "{:?}",
        report.cases
    );
    let gate = Gate::decide(&report, false, None, true);
    assert_eq!(gate.exit_code, 1, "{gate:?}");
}

/// A server whose echo target is a closed port completes the handshake but never echoes:
/// the liveness check after the culprit goes as far as the handshake, and the crash is
/// attributed as for a server that echoes.
fn crash_without_echo() {
    let server = FaultyServer::start(fault(false)).expect("the faulty server starts");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut config = ServerConfig::new(server.url(), RunMode::V2);
    config.step_timeout = Duration::from_secs(1);
    config.external_targets = Some(
        [("tcp_echo".to_owned(), ("127.0.0.1".to_owned(), closed))]
            .into_iter()
            .collect(),
    );
    let report = run(config, 1);
    let culprit = by_id(&report, CULPRIT);
    assert_eq!(culprit.verdict, Verdict::Failed, "{culprit:?}");
    assert!(culprit.error.is_none(), "{culprit:?}");
    assert!(
        culprit.reasons[0].contains("the server crashed (connection refused after this case)"),
        "{:?}",
        culprit.reasons
    );
    assert!(
        culprit.transcript.contains(
            "the liveness check after this case: a TCP connection, a WebSocket upgrade and the Wisp handshake"
        ),
        "{}",
        culprit.transcript
    );
    let later = after_culprit(&report);
    assert!(!later.is_empty(), "{:?}", report.cases);
    for c in later {
        assert_eq!(c.label(), "NOT RUN", "{c:?}");
    }
    assert_eq!(Gate::decide(&report, false, None, true).exit_code, 1);
}

/// With --spawn: the server crashes (in its first life only) while the culprit and a long
/// case run; run again one at a time, neither takes it down: the run-level row says so.
fn spawn_unattributed_crash() {
    const BESIDE: &str = "server.tcp.large-16mib";
    let exe = std::env::current_exe().expect("the test executable");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let marker = dir.path().join("crashed-once");
    let mut config = ServerConfig::new("ws://127.0.0.1:{port}/", RunMode::V2);
    config.step_timeout = Duration::from_secs(5);
    config.spawn = Some(format!(
        "'{}' serve --once '{}' --port {{port}} --crash-on type=0x07",
        exe.display(),
        marker.display()
    ));
    let report = run_cases(&[CULPRIT, BESIDE], config, 2);
    let rows: Vec<String> = report
        .cases
        .iter()
        .map(|c| format!("{} {} {:?}", c.id, c.label(), c.reasons))
        .collect();
    let row = by_id(&report, "server.run.unattributed-crash");
    assert_eq!(row.verdict, Verdict::Failed, "{rows:#?}");
    assert!(
        row.reasons[0].contains("the server crashed")
            && row.reasons[0].contains(CULPRIT)
            && row.reasons[0].contains(BESIDE)
            && row.reasons[0].contains("none of them took the server down"),
        "{rows:#?}"
    );
    // Both ran again alone, on the restarted server, and passed.
    assert_eq!(by_id(&report, CULPRIT).verdict, Verdict::Ok, "{rows:#?}");
    assert_eq!(by_id(&report, BESIDE).verdict, Verdict::Ok, "{rows:#?}");
    let gate = Gate::decide(&report, false, None, true);
    assert_eq!(gate.exit_code, 1, "{gate:?}");
}

/// `serve [--once MARKER] ARGS`: the faulty server's command line; with `--once`, the
/// fault flags apply only while MARKER does not exist yet (the first start creates it).
fn serve(args: &[String]) -> ExitCode {
    let mut argv = vec!["wisp-faulty-server".to_owned()];
    let mut rest = args.iter();
    let mut healthy = false;
    while let Some(arg) = rest.next() {
        if arg == "--once" {
            let Some(marker) = rest.next() else {
                eprintln!("--once needs a path");
                return ExitCode::FAILURE;
            };
            healthy = std::path::Path::new(marker).exists();
            if !healthy && std::fs::write(marker, b"").is_err() {
                eprintln!("cannot create {marker}");
                return ExitCode::FAILURE;
            }
        } else if healthy && arg == "--crash-on" {
            rest.next();
        } else {
            argv.push(arg.clone());
        }
    }
    wisp_testkit::faulty::cli::main(argv)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        return serve(&args[2..]);
    }
    let tests: [(&str, fn()); 6] = [
        ("crash_is_attributed_and_later_cases_are_not_run", || {
            down_for_good(
                false,
                "the server crashed (connection refused after this case)",
            )
        }),
        ("freeze_is_attributed_and_later_cases_are_not_run", || {
            down_for_good(
                true,
                "the server froze (no upgrade within 1.0 s after this case)",
            )
        }),
        ("spawn_restarts_after_a_crash", || spawned(1)),
        ("spawn_reruns_the_cases_beside_the_culprit", || spawned(4)),
        ("crash_without_echo_is_attributed", crash_without_echo),
        (
            "spawn_reports_a_crash_no_case_reproduces_alone",
            spawn_unattributed_crash,
        ),
    ];
    let filter = args.iter().skip(1).find(|a| !a.starts_with('-'));
    for (name, test) in tests {
        if filter.is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        println!("test {name} ...");
        test();
        println!("test {name} ... ok");
    }
    ExitCode::SUCCESS
}
