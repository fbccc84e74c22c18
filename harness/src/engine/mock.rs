//! The client role with our client as the subject: `wisp_client::ClientMux` against the
//! mock server over a real loopback WebSocket, in a current-thread runtime with the clock
//! paused, so a case never waits on the wall clock and its transcript is deterministic.

use std::fmt::Write as _;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use wisp_cases::ClientCase;
use wisp_cases::values::OkOrError;
use wisp_client::transport::{
    BatchedStream, ConnectOptions, DeferWriteErrors, TokioWebsocketsTransport, upgrade,
};
use wisp_client::{ClientMux, WispError};
use wisp_mock_server::replay::{Script, ScriptOutcome, serve_with_reset};
use wisp_mock_server::trace::{SharedTrace, Trace, payload_summary};
use wisp_testkit::vtime::{Tracked, tracked_pair};

use super::CaseRun;
use super::actions::{ActionState, Policy, Unobserved, run_actions};
use super::judge::{
    Negotiated, Wording, check_stream, describe_end, error_text, judge_handshake, judge_negotiated,
};
use super::ours::{open_mux_websocket, v2_handshake};

/// How the client role words the stream checks' failures.
pub(crate) const CLIENT_WORDING: Wording = Wording {
    reason: "close reason is",
    error: "error is",
    open_sep: ": ",
    closed_by: |got, _, want| {
        format!(
            "ended by {}, expected {want:?}",
            got.map(|c| format!("{c:?}"))
                .unwrap_or_else(|| "nobody (still open)".to_owned())
        )
    },
};

/// Runs `case` on a paused-clock runtime of its own (the real clock with
/// `WISP_REAL_TIME=1`, for debugging a suspected virtual-time effect).
pub(crate) fn run(case: &ClientCase) -> CaseRun {
    // `repeat: N`: every run must pass; the report is the first failing run's, else the
    // first run's.
    let mut first = None;
    for i in 0..case.runs() {
        let mut run = run_once(case);
        if run.error.is_some() || !run.failures.is_empty() {
            if i > 0 {
                run.failures
                    .insert(0, format!("run {} of {} failed", i + 1, case.runs()));
            }
            return run;
        }
        first.get_or_insert(run);
    }
    first.unwrap_or_default()
}

fn run_once(case: &ClientCase) -> CaseRun {
    let paused = std::env::var_os("WISP_REAL_TIME").is_none_or(|v| v.is_empty() || v == "0");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(paused)
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => return CaseRun::error(format!("cannot start a runtime: {e}")),
    };
    let (result, virtual_time) = runtime.block_on(async {
        let start = Instant::now();
        let r = run_in_runtime(case, start).await;
        (r, start.elapsed())
    });
    drop(runtime);
    let mut run = match result {
        Ok((failures, transcript)) => CaseRun {
            failures,
            transcript,
            ..CaseRun::default()
        },
        Err(e) => CaseRun::error(e),
    };
    run.virtual_time = Some(virtual_time);
    run
}

/// What the client side did.
#[derive(Default)]
struct ClientState {
    handshake: Option<Result<(), WispError>>,
    mux: Option<ClientMux>,
    actor: Option<JoinHandle<Result<(), WispError>>>,
    /// When the actor future ended (virtual time).
    actor_ended: Arc<OnceLock<Instant>>,
    /// When the server script ended (virtual time).
    script_ended: Option<Instant>,
    /// The streams, the transcript's client lines and the failures of the actions.
    actions: ActionState,
}

/// Opens the client's WebSocket with the client's own upgrade
/// (`wisp_client::transport::upgrade`, the step `connect` runs after the TCP connect: the
/// same headers, limits, transport and `connect_timeout` bound), on a given loopback socket:
/// a `wisp_testkit::vtime::Tracked` one with `TCP_NODELAY`, whose bytes in flight hold the
/// paused clock still (see that module), so virtual time only moves when the kernel buffers
/// are empty too.
async fn open_websocket(
    url: &str,
    io: Tracked<TcpStream>,
    v2: bool,
    spec: &wisp_cases::client::ClientSpec,
) -> Result<TokioWebsocketsTransport<BatchedStream<DeferWriteErrors<Tracked<TcpStream>>>>, WispError>
{
    let connect = if v2 {
        ConnectOptions::v2()
    } else {
        ConnectOptions::v1()
    };
    let mut connect = connect.timeout(spec.options.connect_timeout);
    if let Some(size) = spec.max_message_size {
        connect = connect.max_message_size(size);
    }
    Ok(upgrade(url, io, &connect).await?.0)
}

async fn drive_client(
    case: &ClientCase,
    url: &str,
    io: Tracked<TcpStream>,
    state: &mut ClientState,
) {
    let spec = &case.client;
    let handshake = v2_handshake(spec.version, &spec.extensions, &spec.required);
    let log = &mut state.actions.log;
    let ws = match open_websocket(url, io, handshake.is_some(), spec).await {
        Ok(t) => t,
        Err(e) => {
            log.push(format!("connect: error {}", error_text(&e)));
            state.handshake = Some(Err(e));
            return;
        }
    };
    // The way `ClientMux::connect` does: the driver owns the whole WebSocket.
    let opened =
        open_mux_websocket(ws, handshake, spec.options.clone(), &spec.required_after).await;
    let (mux, actor) = match opened {
        Ok(p) => p,
        Err(e) => {
            log.push(format!("handshake: error {}", error_text(&e)));
            state.handshake = Some(Err(e));
            if !spec.actions.is_empty() {
                log.push("actions: skipped (the handshake failed)".to_owned());
            }
            return;
        }
    };
    let exts: Vec<String> = mux
        .get_extensions()
        .iter()
        .map(ToString::to_string)
        .collect();
    log.push(format!(
        "handshake: ok version={} downgraded={} extensions=[{}]",
        mux.version(),
        mux.was_downgraded(),
        exts.join(", ")
    ));
    state.handshake = Some(Ok(()));
    let ended = state.actor_ended.clone();
    state.actor = Some(tokio::spawn(async move {
        let result = actor.await;
        let _ = ended.set(Instant::now());
        result
    }));
    state.mux = Some(mux.clone());
    run_actions(
        &mux,
        &spec.actions,
        Policy::Record,
        &Unobserved,
        &mut state.actions,
    )
    .await;
}

async fn run_in_runtime(
    case: &ClientCase,
    start: Instant,
) -> Result<(Vec<String>, String), String> {
    let script = Script::from_case(case);
    let step_timeout = script.options.step_timeout.0;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot bind a loopback port: {e}"))?;
    let url = format!(
        "ws://{}/",
        listener.local_addr().map_err(|e| format!("{e}"))?
    );
    let (client_io, server_io) = tracked_pair(&listener)
        .await
        .map_err(|e| format!("cannot connect over loopback: {e}"))?;
    let trace: SharedTrace = Arc::new(Mutex::new(Trace::default()));
    let mock = tokio::spawn({
        let trace = trace.clone();
        // A duplicate of the socket's descriptor, for `reset_tcp`.
        let reset = server_io.get_ref().as_fd().try_clone_to_owned().ok();
        async move { serve_with_reset(server_io, reset, &script, trace, start).await }
    });

    let mut state = ClientState::default();
    let case_timeout = case.timeout();
    let client_done = tokio::time::timeout(
        case_timeout,
        drive_client(case, &url, client_io, &mut state),
    )
    .await
    .is_ok();
    if !client_done {
        state.actions.log.push(format!(
            "case timeout: the client actions did not finish within {}ms",
            case_timeout.as_millis()
        ));
        state.actions.failures.push(format!(
            "the client actions did not finish within the case timeout ({}ms virtual)",
            case_timeout.as_millis()
        ));
    }
    let mock_deadline = start + case_timeout + step_timeout;
    let outcome: Option<ScriptOutcome> = match tokio::time::timeout_at(mock_deadline, mock).await {
        Ok(Ok(o)) => Some(o),
        Ok(Err(e)) => return Err(format!("the mock server task failed: {e}")),
        Err(_) => None,
    };
    state.script_ended = Some(Instant::now());
    // Let the client process whatever the script's last steps sent (auto-advance happens
    // only once every task is idle).
    tokio::time::sleep(Duration::from_millis(1)).await;

    let mut failures = Vec::new();
    match &outcome {
        Some(o) => {
            if let Err(f) = &o.result {
                failures.push(f.to_string());
            }
        }
        None => {
            failures.push("the server script did not finish within the case timeout".to_owned())
        }
    }
    failures.append(&mut state.actions.failures);
    check_outcome(case, &mut state, &mut failures).await;

    if let Some(o) = outcome
        && let Some(idle) = o.idle
    {
        idle.abort();
    }
    let wire = trace.lock().map(|t| t.render()).unwrap_or_default();
    let mut transcript = String::new();
    let _ = writeln!(transcript, "== wire (mock server) ==");
    transcript.push_str(&wire);
    let _ = writeln!(transcript, "== client ==");
    for line in &state.actions.log {
        let _ = writeln!(transcript, "{line}");
    }
    if let Some(actor) = state.actor.take() {
        actor.abort();
    }
    drop(state);
    Ok((failures, transcript))
}

async fn check_outcome(case: &ClientCase, state: &mut ClientState, failures: &mut Vec<String>) {
    let expect = &case.expect;
    failures.extend(judge_handshake(
        expect.error.as_ref(),
        state.handshake.as_ref(),
    ));
    let negotiated = state.mux.as_ref().map(|mux| Negotiated {
        version: mux.version().to_string(),
        downgraded: mux.was_downgraded(),
        extensions: mux.get_extension_ids(),
        motd: mux.motd().map(str::to_owned),
    });
    judge_negotiated(expect, negotiated.as_ref(), failures);

    // Streams.
    let mut summary = Vec::new();
    for (alias, slot) in &state.actions.streams {
        let end = slot.end();
        let mut line = format!(
            "stream {alias}{}: read {}",
            slot.id.map(|id| format!(" (id {id})")).unwrap_or_default(),
            payload_summary(&slot.data)
        );
        match (&slot.open_error, &end, &slot.dropped) {
            (Some(e), _, _) => {
                let _ = write!(line, "; open failed: {}", error_text(e));
            }
            (None, Some(end), _) => {
                let _ = write!(line, "; {}", describe_end(end));
            }
            (None, None, Some(_)) => line.push_str("; dropped while open"),
            (None, None, None) => line.push_str("; still open"),
        }
        summary.push(line);

        let Some(want) = expect.streams.get(alias) else {
            continue;
        };
        check_stream(
            &format!("stream {alias}"),
            want,
            &slot.seen(end.as_ref()),
            &CLIENT_WORDING,
            failures,
        );
    }
    state.actions.log.extend(summary);

    // The actor future.
    let step_timeout = case.server_options.step_timeout.0;
    let actor_result = match state.actor.as_mut() {
        Some(actor)
            if expect.mux_result.is_some()
                || expect.mux_ended_within.is_some()
                || actor.is_finished() =>
        {
            match tokio::time::timeout(step_timeout, actor).await {
                Ok(Ok(r)) => Some(Some(r)),
                // The driver task panicked (or was cancelled): the runtime's error is the
                // source.
                Ok(Err(e)) => Some(Some(Err(WispError::MuxTaskFailed(Arc::new(e))))),
                Err(_) => Some(None),
            }
        }
        Some(_) => Some(None),
        None => None,
    };
    if matches!(actor_result, Some(Some(_))) {
        state.actor = None;
    }
    let mut line = match &actor_result {
        Some(Some(Ok(()))) => "mux: actor finished ok".to_owned(),
        Some(Some(Err(e))) => format!("mux: actor finished with {}", error_text(e)),
        Some(None) => "mux: actor still running".to_owned(),
        None => "mux: no actor (the handshake failed)".to_owned(),
    };
    if let Some(bound) = &expect.mux_ended_within {
        // From the script's last step to the end of the actor future, in virtual time.
        let after = match (state.actor_ended.get(), state.script_ended) {
            (Some(ended), Some(script)) => Some(ended.saturating_duration_since(script)),
            _ => None,
        };
        match after {
            Some(after) => {
                let _ = write!(
                    line,
                    " {}ms after the script's last step",
                    after.as_millis()
                );
                if after > bound.0 {
                    failures.push(format!(
                        "the actor ended {}ms after the script's last step, expected within {bound}",
                        after.as_millis()
                    ));
                }
            }
            None => failures.push(format!(
                "the actor did not end, expected within {bound} of the script's last step"
            )),
        }
    }
    state.actions.log.push(line);
    if let Some(want) = &expect.mux_result {
        let ok = match (want, &actor_result) {
            (OkOrError::Ok, Some(Some(Ok(())))) => true,
            (OkOrError::Error(spec), Some(Some(Err(e)))) => spec.matches(e),
            _ => false,
        };
        if !ok {
            let got = match &actor_result {
                Some(Some(Ok(()))) => "ok".to_owned(),
                Some(Some(Err(e))) => error_text(e),
                Some(None) => "still running".to_owned(),
                None => "no actor".to_owned(),
            };
            failures.push(format!("mux result is {got}, expected {want}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use wisp_cases::load_case_str;

    use wisp_cases::Verdict;

    use super::*;
    use crate::engine::run_client_case as run_case;

    fn case(level: &str, server: &str, expect: &str) -> ClientCase {
        let src = format!(
            "title: t\nspec: s\nlevel: {level}\ndescription: d\n\
             client:\n  version: v1\n  actions:\n    - open: {{stream: s1}}\n    - send: {{stream: s1, text: hi}}\n\
             server:\n  - send: {{type: CONTINUE, stream: 0, credit: 8}}\n  - expect: {{type: CONNECT, stream: s1}}\n{server}\
             expect:\n  handshake: ok\n{expect}"
        );
        match load_case_str(
            Path::new("/cases"),
            Path::new("/cases/selftest/case.yaml"),
            &src,
        ) {
            Ok(wisp_cases::Case::Client(c)) => c,
            Ok(other) => panic!("not a client-role case: {other:?}"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn matching_case_is_ok() {
        let report = run_case(&case(
            "must",
            "  - expect: {type: DATA, stream: s1, text: hi}\n",
            "",
        ));
        assert_eq!(report.verdict, Verdict::Ok, "{}", report.transcript);
        assert!(report.passed());
    }

    #[test]
    fn wrong_packet_fails_with_step_and_payload() {
        let report = run_case(&case(
            "must",
            "  - expect: {type: DATA, stream: s1, text: ho}\n",
            "",
        ));
        assert_eq!(report.verdict, Verdict::Failed);
        let first = &report.reasons[0];
        assert!(first.contains("server step #2"), "{first}");
        assert!(first.contains("\"hi\""), "{first}");
        assert!(!report.passed());
    }

    #[test]
    fn should_level_failure_is_non_strict() {
        let report = run_case(&case(
            "should",
            "  - expect: {type: CLOSE, stream: s1}\n",
            "",
        ));
        assert_eq!(report.verdict, Verdict::NonStrict);
    }

    #[test]
    fn timeout_is_a_failure_not_a_close_and_takes_no_wall_time() {
        let report = run_case(&case(
            "must",
            "  - expect: {type: DATA, stream: s1}\n  - expect: {type: DATA, stream: s1, timeout: 20s}\n",
            "",
        ));
        assert_eq!(report.verdict, Verdict::Failed);
        assert!(
            report.reasons[0].contains("timeout"),
            "{}",
            report.reasons[0]
        );
        assert!(report.virtual_time >= Some(Duration::from_secs(20)));
        assert!(
            report.duration < Duration::from_secs(10),
            "{:?}",
            report.duration
        );
    }

    #[test]
    fn wrong_client_expectation_fails() {
        let report = run_case(&case(
            "must",
            "  - expect: {type: DATA, stream: s1, text: hi}\n",
            "  streams:\n    s1: {closed_by: server}\n",
        ));
        assert_eq!(report.verdict, Verdict::Failed);
        assert!(
            report.reasons.iter().any(|f| f.contains("stream s1")),
            "{:?}",
            report.reasons
        );
    }

    #[test]
    fn transcript_is_deterministic() {
        let c = case(
            "must",
            "  - expect: {type: DATA, stream: s1, text: hi}\n  - expect_nothing: 1s\n",
            "",
        );
        let a = run_case(&c).transcript;
        let b = run_case(&c).transcript;
        assert_eq!(a, b);
    }
}
