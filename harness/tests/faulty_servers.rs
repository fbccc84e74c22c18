//! The server suite against `wisp_testkit::faulty::FaultyServer`: a real Wisp server
//! configured to be wrong in exactly one way per test. Each test shows that the suite
//! names that defect (and, against the same server without the fault, does not).

use std::time::Duration;

use wisp_harness::report::CaseReport;
use wisp_harness::server::checks::PACKET_LENGTHS;
use wisp_harness::server::{RunMode, ServerConfig};
use wisp_harness::{Subject, SuiteOptions, SuiteReport, Verdict, run_suite};
use wisp_testkit::faulty::{FaultConfig, FaultyServer, Handshake};

mod common;
use common::{by_id, server_cases};

/// Runs the cases under `only` against a faulty server started with `fault`, 4 at a time.
async fn run_against(fault: FaultConfig, mode: RunMode, only: &[&str]) -> SuiteReport {
    run_with(fault, mode, only, |_| {}).await
}

/// [`run_against`], with the harness's configuration adjusted by `adjust`.
async fn run_with(
    fault: FaultConfig,
    mode: RunMode,
    only: &[&str],
    adjust: impl FnOnce(&mut ServerConfig),
) -> SuiteReport {
    let server = FaultyServer::start(fault).expect("the faulty server starts");
    let mut config = ServerConfig::new(server.url(), mode);
    config.step_timeout = Duration::from_secs(2);
    adjust(&mut config);
    let options = SuiteOptions {
        jobs: 4,
        ..SuiteOptions::default()
    };
    let report = run_suite(
        &server_cases(only),
        Subject::Server(Box::new(config)),
        &options,
        &mut |_, _, _| {},
    )
    .await
    .expect("the run starts");
    drop(server);
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn padded_close_is_non_strict_once_per_run() {
    let only = ["server.close", "server.tcp.echo"];
    let padded = run_against(
        FaultConfig {
            pad_close: 3,
            ..FaultConfig::default()
        },
        RunMode::V2,
        &only,
    )
    .await;
    let rows: Vec<&CaseReport> = padded
        .cases
        .iter()
        .filter(|c| c.id == PACKET_LENGTHS)
        .collect();
    assert_eq!(rows.len(), 1, "one row per run");
    let row = rows[0];
    assert_eq!(row.verdict, Verdict::NonStrict, "{row:?}");
    let reason = row.reasons.join("\n");
    assert!(
        reason.contains("a CLOSE with 4 payload bytes"),
        "the first example is named: {reason}"
    );
    assert!(row.transcript.contains("CLOSE"), "{}", row.transcript);

    let exact = run_against(FaultConfig::default(), RunMode::V2, &only).await;
    let row = by_id(&exact, PACKET_LENGTHS);
    assert_eq!(row.verdict, Verdict::Ok, "{row:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn padded_continue_is_non_strict() {
    let report = run_against(
        FaultConfig {
            pad_continue: 2,
            ..FaultConfig::default()
        },
        RunMode::V1,
        &["server.handshake.v1.continue-first"],
    )
    .await;
    let row = by_id(&report, PACKET_LENGTHS);
    assert_eq!(row.verdict, Verdict::NonStrict, "{row:?}");
    assert!(
        row.reasons
            .join("\n")
            .contains("a CONTINUE with 6 payload bytes"),
        "{row:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoing_wisp_v2_while_speaking_v1_is_not_ok() {
    let id = "server.handshake.subprotocol-echoed";
    let liar = run_against(
        FaultConfig {
            subprotocol_lie: true,
            ..FaultConfig::default()
        },
        RunMode::V2,
        &[id],
    )
    .await;
    let case = by_id(&liar, id);
    assert_eq!(case.verdict, Verdict::NonStrict, "{case:?}");
    assert!(
        case.reasons
            .join("\n")
            .contains("but the server then speaks v1"),
        "{case:?}"
    );
    // Both honest v2 orders keep it OK: INFO first, and CONTINUE(0) then INFO.
    for handshake in [Handshake::Draft6, Handshake::ContinueFirst] {
        let honest = run_against(
            FaultConfig {
                handshake,
                ..FaultConfig::default()
            },
            RunMode::V2,
            &[id],
        )
        .await;
        let case = by_id(&honest, id);
        assert_eq!(case.verdict, Verdict::Ok, "{handshake:?}: {case:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_rejected_after_the_handshake_in_the_older_order_is_judged() {
    let wrong = "server.auth.password.wrong";
    let missing = "server.auth.password.missing-when-required";
    let report = run_with(
        FaultConfig {
            password: Some(("wisp".to_owned(), "right".to_owned())),
            late_auth_reject: true,
            ..FaultConfig::default()
        },
        RunMode::V2,
        &[wrong, missing],
        |c| c.credentials = Some(("wisp".to_owned(), "right".to_owned())),
    )
    .await;
    for id in [wrong, missing] {
        let case = by_id(&report, id);
        assert!(case.judged(), "{case:?}");
        assert_eq!(case.verdict, Verdict::Ok, "{id}: {:?}", case.reasons);
        let close = case.close.as_ref().expect("a close column");
        assert_eq!(
            close.got,
            Some(wisp_client::proto::CloseReason::PASSWORD_AUTH_FAILED),
            "{id}: {close:?}"
        );
    }
    assert_eq!(by_id(&report, wrong).close_label(), "OK");
    assert_eq!(by_id(&report, missing).close_label(), "NON-STRICT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_data_frames_are_recorded_and_non_strict() {
    use wisp_harness::server::checks::{LARGEST_DATA, LARGEST_DATA_LIMIT};
    let only = ["server.tcp.large-16mib"];
    let coalescing = run_against(
        FaultConfig {
            coalesce_data: Some(4 << 20),
            ..FaultConfig::default()
        },
        RunMode::V2,
        &only,
    )
    .await;
    let row = by_id(&coalescing, LARGEST_DATA);
    assert_eq!(row.verdict, Verdict::NonStrict, "{row:?}");
    assert!(
        row.reasons.join("\n").contains("server.tcp.large-16mib"),
        "{row:?}"
    );
    let correct = run_against(FaultConfig::default(), RunMode::V2, &only).await;
    let row = by_id(&correct, LARGEST_DATA);
    assert_eq!(row.verdict, Verdict::Ok, "{row:?}");
    let size: usize = row
        .transcript
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .expect("the size is recorded");
    assert!(size > 0 && size <= LARGEST_DATA_LIMIT, "{}", row.transcript);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_wide_stall_during_an_isolation_case_is_failed() {
    let id = "server.flow.slow-connect-isolated";
    let blocking = run_against(
        FaultConfig {
            connect_blocking: true,
            ..FaultConfig::default()
        },
        RunMode::V2,
        &[id],
    )
    .await;
    let case = by_id(&blocking, id);
    assert_eq!(case.verdict, Verdict::Failed, "{case:?}");
    let reasons = case.reasons.join("\n");
    assert!(
        reasons.contains("the whole server stalled: another connection did not work"),
        "{reasons}"
    );
    let correct = run_against(FaultConfig::default(), RunMode::V2, &[id]).await;
    let case = by_id(&correct, id);
    assert_eq!(case.verdict, Verdict::Ok, "{case:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_udp_bursts_fail_the_burst_case() {
    let id = "server.udp.burst-boundaries";
    let merging = run_against(
        FaultConfig {
            merge_udp: true,
            ..FaultConfig::default()
        },
        RunMode::V2,
        &[id],
    )
    .await;
    let case = by_id(&merging, id);
    assert_eq!(case.verdict, Verdict::NonStrict, "{case:?}");
    let reasons = case.reasons.join("\n");
    assert!(
        reasons.contains("datagrams merged into one DATA"),
        "{reasons}"
    );
    let correct = run_against(FaultConfig::default(), RunMode::V2, &[id]).await;
    let case = by_id(&correct, id);
    assert_eq!(case.verdict, Verdict::Ok, "{case:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_lost_at_exact_credit_fails_the_case() {
    let id = "server.flow.exact-credit-no-loss";
    let lossy = run_against(
        FaultConfig {
            ignore_in_flight_credit: true,
            ..FaultConfig::default()
        },
        RunMode::V2,
        &[id],
    )
    .await;
    let case = by_id(&lossy, id);
    assert_eq!(case.verdict, Verdict::Failed, "{case:?}");
    let correct = run_against(FaultConfig::default(), RunMode::V2, &[id]).await;
    let case = by_id(&correct, id);
    assert_eq!(case.verdict, Verdict::Ok, "{case:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_targets_replace_the_harness_targets_and_missing_ones_are_unsupported() {
    // An echo of its own stands for a target "the server can reach"; the harness's
    // targets are bound but never given to the server.
    let echo = wisp_testkit::TcpEcho::start().await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("targets.yaml");
    std::fs::write(
        &file,
        format!("tcp_echo: localhost:{}\n", echo.addr().port()),
    )
    .expect("write");
    let external = wisp_harness::server::load_external_targets(&file).expect("the file loads");
    let report = run_with(
        FaultConfig::default(),
        RunMode::V2,
        &["server.tcp.echo", "server.udp.echo"],
        |c| {
            c.external_targets = Some(external);
            c.targets_host = Some("unused.invalid".to_owned());
        },
    )
    .await;
    let tcp = by_id(&report, "server.tcp.echo");
    assert_eq!(tcp.verdict, Verdict::Ok, "{tcp:?}");
    assert!(tcp.transcript.contains("localhost"), "{}", tcp.transcript);
    let udp = by_id(&report, "server.udp.echo");
    assert_eq!(udp.verdict, Verdict::Unsupported, "{udp:?}");
    assert!(
        udp.reasons[0].contains("needs the udp_echo target"),
        "{:?}",
        udp.reasons
    );
    assert!(echo.connections() > 0, "the external echo was used");

    std::fs::write(&file, "nonsense: localhost:1\n").expect("write");
    let err = wisp_harness::server::load_external_targets(&file).expect_err("unknown name");
    assert!(err.contains("unknown target"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_host_is_what_the_server_is_asked_to_reach() {
    let report = run_with(
        FaultConfig::default(),
        RunMode::V2,
        &["server.tcp.echo"],
        |c| c.targets_host = Some("localhost".to_owned()),
    )
    .await;
    let tcp = by_id(&report, "server.tcp.echo");
    assert_eq!(tcp.verdict, Verdict::Ok, "{tcp:?}");
    assert!(tcp.transcript.contains("localhost:"), "{}", tcp.transcript);
}
