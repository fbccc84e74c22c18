//! The client-role case language's run-time features, through the engine: `repeat:`,
//! `expect.mux_ended_within`, `server_options.answer_upgrade` with the client's
//! `connect_timeout`, and a transport fault (`send_frame`).

use std::path::Path;

use wisp_harness::{ClientCase, Verdict, run_client_case};

fn case(body: &str) -> ClientCase {
    let src = format!("title: t\nspec: s\nlevel: must\ndescription: d\n{body}");
    match wisp_cases::load_case_str(
        Path::new("/cases"),
        Path::new("/cases/selftest/case.yaml"),
        &src,
    ) {
        Ok(wisp_cases::Case::Client(c)) => c,
        Ok(other) => panic!("not a client-role case: {other:?}"),
        Err(e) => panic!("{e}"),
    }
}

const V1_STREAM: &str = "client:\n  version: v1\n  actions:\n    - open: {stream: s1}\n";

#[test]
fn a_repeated_passing_case_reports_its_first_run() {
    let once = case(&format!(
        "{V1_STREAM}server:\n  - send: {{type: CONTINUE, stream: 0, credit: 8}}\n  - expect: {{type: CONNECT, stream: s1}}\nexpect:\n  handshake: ok\n"
    ));
    let mut thrice = once.clone();
    thrice.repeat = std::num::NonZeroU32::new(3);
    let (a, b) = (run_client_case(&once), run_client_case(&thrice));
    assert_eq!(b.verdict, Verdict::Ok, "{}", b.transcript);
    assert_eq!(a.transcript, b.transcript);
}

#[test]
fn an_actor_that_outlives_the_bound_fails_mux_ended_within() {
    // The connection stays up: the actor is still running after the script.
    let report = run_client_case(&case(&format!(
        "{V1_STREAM}server:\n  - send: {{type: CONTINUE, stream: 0, credit: 8}}\n  - expect: {{type: CONNECT, stream: s1}}\nexpect:\n  handshake: ok\n  mux_ended_within: 50ms\n"
    )));
    assert_eq!(report.verdict, Verdict::Failed, "{}", report.transcript);
    assert!(
        report.reasons.iter().any(|r| r.contains("did not end")),
        "{:?}",
        report.reasons
    );
}

#[test]
fn an_unanswered_upgrade_is_bounded_by_the_clients_connect_timeout() {
    let report = run_client_case(&case(
        "server_options: {answer_upgrade: false}\nclient:\n  version: v1\n  options: {connect_timeout: 750ms}\nserver:\n  - expect_eof\nexpect:\n  error: ConnectTimedOut\n",
    ));
    assert_eq!(report.verdict, Verdict::Ok, "{}", report.transcript);
    assert!(
        report
            .transcript
            .contains("[   750ms] #0   ****  the client ended the connection"),
        "{}",
        report.transcript
    );
}

#[test]
fn a_masked_frame_is_a_typed_failure_with_a_1002_close() {
    let report = run_client_case(&case(&format!(
        "{V1_STREAM}    - wait_closed: s1\nserver:\n  - send: {{type: CONTINUE, stream: 0, credit: 8}}\n  - expect: {{type: CONNECT, stream: s1}}\n  - send_frame: {{opcode: binary, mask: true, hex: \"02 01000000 6869\"}}\n  - expect_close_ws\nexpect:\n  handshake: ok\n  mux_result: {{WsImplError: masked}}\n"
    )));
    assert_eq!(report.verdict, Verdict::Ok, "{}", report.transcript);
    assert!(
        report.transcript.contains("code 1002"),
        "{}",
        report.transcript
    );
}
