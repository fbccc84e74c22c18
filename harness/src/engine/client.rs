//! The client role with any client as the subject ([`crate::shim::ClientUnderTest`]): the
//! mock server plays the case's script on a real loopback socket and the real clock, the
//! client runs the case's plan and reports what happened, and the case is judged by the
//! same judges as our client in process ([`super::judge`]): the wire trace by the script,
//! the API outcome from the reported error names.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::oneshot;
use tokio::time::Instant;
use wisp_cases::ClientCase;
use wisp_cases::actions::Action;
use wisp_cases::values::OkOrError;
use wisp_mock_server::replay::{Script, ScriptOutcome, accept_client, serve_with_reset};
use wisp_mock_server::trace::{SharedTrace, Trace, payload_summary};

use super::CaseRun;
use super::judge::{
    ApiError, EndView, Negotiated, Seen, Wording, check_expected, check_stream, judge_handshake,
    judge_negotiated,
};
use super::mock::CLIENT_WORDING;
use crate::shim::process::with_tail;
use crate::shim::{
    Capability, ClientUnderTest, EndedBy, Event, EventSink, Finish, FinishInfo, Hello, MuxState,
    Plan, ReportedError, StreamEnding,
};

/// How long a client has to report its final state after `finish`.
const FINISH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client (a shim process starting) may take to connect, on top of the case's
/// bound.
const STARTUP: Duration = Duration::from_secs(20);
/// How long the client gets to take in the script's last packets before `finish`.
const SETTLE: Duration = Duration::from_millis(50);

/// A client, prepared for a run: what it declared.
pub(crate) struct ClientRun {
    pub(crate) client: Arc<dyn ClientUnderTest>,
    pub(crate) hello: Hello,
    /// The bound on a case (the case's own `timeout:` when shorter).
    pub(crate) cap: Duration,
}

/// What the client reported, as it arrived.
#[derive(Default)]
struct Collected {
    handshake: Option<Result<Negotiated, ReportedError>>,
    actions: BTreeMap<usize, Event>,
    finals: BTreeMap<String, Option<StreamEnding>>,
    mux: Option<MuxState>,
    logs: Vec<String>,
    actions_done: bool,
    done: bool,
}

impl Collected {
    fn take(&mut self, event: Event) {
        match event {
            Event::Handshake { error: Some(e), .. } => self.handshake = Some(Err(e)),
            Event::Handshake {
                error: None,
                version,
                downgraded,
                extensions,
                motd,
            } => {
                self.handshake = Some(Ok(Negotiated {
                    version: version.unwrap_or_default(),
                    downgraded,
                    extensions,
                    motd,
                }));
            }
            Event::Action { index, .. } => {
                self.actions.insert(index, event);
            }
            Event::ActionsDone => self.actions_done = true,
            Event::Stream { stream, end } => {
                self.finals.insert(stream, end);
            }
            Event::Mux { state } => self.mux = Some(state),
            Event::Done => self.done = true,
            Event::Log { text } => self.logs.push(text),
            Event::Hello(_) => {}
        }
    }
}

/// Why collecting stopped.
enum Stop {
    /// The awaited event arrived.
    Reached,
    /// The deadline passed.
    Deadline,
    /// The client is gone (its run returned, or it failed).
    Closed,
}

async fn collect(
    rx: &mut UnboundedReceiver<Event>,
    got: &mut Collected,
    deadline: Instant,
    reached: fn(&Collected) -> bool,
) -> Stop {
    loop {
        if reached(got) {
            return Stop::Reached;
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(event)) => got.take(event),
            Ok(None) => return Stop::Closed,
            Err(_) => return Stop::Deadline,
        }
    }
}

impl ClientRun {
    /// Runs `case` against the client.
    pub(crate) async fn run(&self, case: &ClientCase) -> CaseRun {
        let needed = Capability::needed_by(case);
        let missing: Vec<&str> = needed
            .difference(&self.hello.capabilities)
            .map(|c| c.name())
            .collect();
        if !missing.is_empty() {
            return CaseRun {
                unsupported: Some(format!(
                    "the client does not declare {}",
                    missing.join(", ")
                )),
                ..CaseRun::default()
            };
        }
        match self.run_supported(case).await {
            Ok(run) => run,
            Err(e) => CaseRun::error(e),
        }
    }

    async fn run_supported(&self, case: &ClientCase) -> Result<CaseRun, String> {
        let script = Script::from_case(case);
        let step_timeout = script.options.step_timeout.0;
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| format!("cannot bind a loopback port: {e}"))?;
        let url = format!(
            "ws://{}/",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        let trace: SharedTrace = Arc::new(Mutex::new(Trace::default()));
        let timeout = case.timeout().min(self.cap);
        let plan = Plan::from_case(
            case,
            &url,
            u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        )?;
        // The case's clock starts when the client connects: how long a shim process takes
        // to start (a loaded machine, a slow runtime) is not the client's behaviour.
        let launched = Instant::now();
        let (connected_tx, connected_rx) = oneshot::channel::<Instant>();
        let mut mock = tokio::spawn({
            let trace = trace.clone();
            async move {
                // The client is the first connection that sends a byte: a probe that
                // closes first (a liveness check aimed at this port's previous owner) is not.
                let accepted =
                    tokio::time::timeout(STARTUP + timeout, accept_client(&listener)).await;
                let Ok(Ok((tcp, _))) = accepted else {
                    return None;
                };
                // One connection per case: a client that reconnects is refused.
                drop(listener);
                let _ = tcp.set_nodelay(true);
                let start = Instant::now();
                let _ = connected_tx.send(start);
                // A duplicate of the socket's descriptor, for `reset_tcp`.
                let reset = tcp.as_fd().try_clone_to_owned().ok();
                Some(serve_with_reset(tcp, reset, &script, trace, start).await)
            }
        });

        let (sink, mut rx) = EventSink::new();
        let tail = sink.tail();
        let (fire, finish) = Finish::new();
        let client = self.client.clone();
        let mut task = tokio::spawn(async move { client.run(plan, sink, finish).await });
        let error_of = |e: String| with_tail(e, &tail.lines());

        let mut got = Collected::default();
        let mut failures = Vec::new();
        let mut notes = Vec::new();
        let mut deadline = launched + STARTUP + timeout;
        let mut connected = Some(connected_rx);
        let mut ended: Option<String> = None;
        let stop = loop {
            if got.actions_done || got.done {
                break Stop::Reached;
            }
            tokio::select! {
                event = rx.recv() => match event {
                    Some(e) => got.take(e),
                    None => break Stop::Closed,
                },
                // A run that returned (tasks it left may still hold the sink).
                result = &mut task, if ended.is_none() => {
                    ended = Some(run_error(result));
                    while let Ok(e) = rx.try_recv() {
                        got.take(e);
                    }
                    if !(got.actions_done || got.done) {
                        break Stop::Closed;
                    }
                }
                at = async {
                    match connected.as_mut() {
                        Some(rx) => rx.await,
                        None => std::future::pending().await,
                    }
                }, if connected.is_some() => {
                    connected = None;
                    if let Ok(at) = at {
                        deadline = at + timeout;
                    }
                }
                () = tokio::time::sleep_until(deadline) => break Stop::Deadline,
            }
        };
        match stop {
            Stop::Reached => {}
            Stop::Deadline => {
                notes.push(format!(
                    "case timeout: the client actions did not finish within {}ms",
                    timeout.as_millis()
                ));
                failures.push(format!(
                    "the client actions did not finish within the case timeout ({}ms)",
                    timeout.as_millis()
                ));
            }
            Stop::Closed => {
                let why = match ended {
                    Some(why) => why,
                    None => match tokio::time::timeout(FINISH_TIMEOUT, &mut task).await {
                        Ok(result) => run_error(result),
                        Err(_) => "the client stopped reporting".to_owned(),
                    },
                };
                task.abort();
                mock.abort();
                return Ok(self.errored(error_of(why), &trace, &got));
            }
        }

        let outcome: Option<ScriptOutcome> =
            match tokio::time::timeout_at(deadline + step_timeout, &mut mock).await {
                Ok(Ok(Some(o))) => Some(o),
                Ok(Ok(None)) => {
                    failures.push("the client did not connect to the mock server".to_owned());
                    None
                }
                Ok(Err(e)) => {
                    task.abort();
                    return Err(format!("the mock server task failed: {e}"));
                }
                Err(_) => {
                    mock.abort();
                    failures.push(
                        "the server script did not finish within the case timeout".to_owned(),
                    );
                    None
                }
            };
        tokio::time::sleep(SETTLE).await;
        let mux_wait = if case.expect.mux_result.is_some() {
            step_timeout
        } else {
            Duration::ZERO
        };
        let _ = fire.send(FinishInfo {
            mux_wait_ms: u64::try_from(mux_wait.as_millis()).unwrap_or(u64::MAX),
        });
        let stop = if ended.is_some() {
            // The run is over: whatever it reported is in.
            if got.done {
                Stop::Reached
            } else {
                Stop::Closed
            }
        } else {
            collect(
                &mut rx,
                &mut got,
                Instant::now() + FINISH_TIMEOUT + mux_wait,
                |g| g.done,
            )
            .await
        };
        let ended = match stop {
            Stop::Reached => Ok(()),
            Stop::Deadline => Err(format!(
                "the client did not answer `finish` within {}s",
                FINISH_TIMEOUT.as_secs()
            )),
            Stop::Closed => Err(match ended {
                Some(why) => why,
                None => match tokio::time::timeout(FINISH_TIMEOUT, &mut task).await {
                    Ok(result) => run_error(result),
                    Err(_) => "the client stopped reporting before `done`".to_owned(),
                },
            }),
        };
        // Stop recording before the client goes: its end is not part of the case.
        if let Some(o) = &outcome
            && let Some(idle) = &o.idle
        {
            idle.abort();
        }
        task.abort();
        if let Err(e) = ended {
            return Ok(self.errored(error_of(e), &trace, &got));
        }

        if let Some(o) = &outcome
            && let Err(f) = &o.result
        {
            failures.insert(0, f.to_string());
        }
        let mut log = Vec::new();
        judge(case, &got, &mut log, &mut failures);
        log.extend(notes);
        Ok(CaseRun {
            failures,
            transcript: self.transcript(&trace, &got, log),
            ..CaseRun::default()
        })
    }

    /// The wire trace, then what the client reported.
    fn transcript(&self, trace: &SharedTrace, got: &Collected, log: Vec<String>) -> String {
        let wire = trace.lock().map(|t| t.render()).unwrap_or_default();
        let mut transcript = String::new();
        let _ = writeln!(transcript, "== wire (mock server) ==");
        transcript.push_str(&wire);
        let _ = writeln!(
            transcript,
            "== client ({} {}) ==",
            self.hello.name, self.hello.version
        );
        for line in got.logs.iter().map(|l| format!("log: {l}")).chain(log) {
            let _ = writeln!(transcript, "{line}");
        }
        transcript
    }

    /// A case the client could not run to the end (ERROR), with what happened so far.
    fn errored(&self, error: String, trace: &SharedTrace, got: &Collected) -> CaseRun {
        let mut log = vec![handshake_line(got)];
        log.extend(got.actions.values().filter_map(|a| match a {
            Event::Action { index, error, .. } => Some(match error {
                Some(e) => format!("#{index} -> error {}", e.text()),
                None => format!("#{index} -> ok"),
            }),
            _ => None,
        }));
        log.push(format!("ERROR: {error}"));
        CaseRun {
            transcript: self.transcript(trace, got, log),
            ..CaseRun::error(error)
        }
    }
}

/// Why a client's run ended without `done`.
fn run_error(result: Result<Result<(), String>, tokio::task::JoinError>) -> String {
    match result {
        Ok(Err(e)) => e,
        Ok(Ok(())) => "the client's run returned before `done`".to_owned(),
        Err(_) => "the client's run panicked".to_owned(),
    }
}

/// One stream as the reports describe it.
#[derive(Default)]
struct Slot {
    id: Option<u32>,
    opened: bool,
    data: Vec<u8>,
    open_error: Option<ReportedError>,
    read_error: Option<ReportedError>,
    dropped: bool,
}

impl Slot {
    /// Whether actions can use the stream (opened, not dropped).
    fn usable(&self) -> bool {
        self.opened && !self.dropped
    }
}

fn end_view(end: &StreamEnding) -> EndView<'_, ReportedError> {
    EndView {
        by: match end.by {
            EndedBy::Server => Some(wisp_cases::actions::ClosedBy::Server),
            EndedBy::Client => Some(wisp_cases::actions::ClosedBy::Client),
            EndedBy::Connection => Some(wisp_cases::actions::ClosedBy::Connection),
            EndedBy::OpenFailed => None,
        },
        reason: end.reason.map(wisp_client::proto::CloseReason),
        error: end.error.as_ref(),
        text: end.to_string(),
    }
}

/// The transcript's handshake line.
fn handshake_line(got: &Collected) -> String {
    match &got.handshake {
        Some(Ok(n)) => format!(
            "handshake: ok version={} downgraded={} extensions=[{}]{}",
            n.version,
            n.downgraded,
            n.labels().join(", "),
            n.motd
                .as_ref()
                .map(|m| format!(" motd={m:?}"))
                .unwrap_or_default()
        ),
        Some(Err(e)) => format!("handshake: error {}", e.text()),
        None => "handshake: no result".to_owned(),
    }
}

/// Replays the reported results against the case's actions and expectations.
fn judge(case: &ClientCase, got: &Collected, log: &mut Vec<String>, failures: &mut Vec<String>) {
    let expect = &case.expect;
    let handshake = got
        .handshake
        .as_ref()
        .map(|h| h.as_ref().map(|_| ()).map_err(Clone::clone));
    failures.extend(judge_handshake(expect.error.as_ref(), handshake.as_ref()));
    log.push(handshake_line(got));
    judge_negotiated(
        expect,
        got.handshake.as_ref().and_then(|h| h.as_ref().ok()),
        failures,
    );

    let mut slots: BTreeMap<String, Slot> = BTreeMap::new();
    if matches!(got.handshake, Some(Ok(_))) {
        for (i, action) in case.client.actions.iter().enumerate() {
            if !judge_action(i, &action.value, got, &mut slots, log, failures) {
                break;
            }
        }
    } else if !case.client.actions.is_empty() {
        log.push("actions: skipped (the handshake failed)".to_owned());
    }

    let mut seen_aliases: BTreeSet<&String> = BTreeSet::new();
    for (alias, slot) in &slots {
        seen_aliases.insert(alias);
        let end = got.finals.get(alias).cloned().flatten();
        let mut line = format!(
            "stream {alias}{}: read {}",
            slot.id.map(|id| format!(" (id {id})")).unwrap_or_default(),
            payload_summary(&slot.data)
        );
        match (&slot.open_error, &end, slot.dropped) {
            (Some(e), _, _) => {
                let _ = write!(line, "; open failed: {}", e.text());
            }
            (None, Some(end), _) => {
                let _ = write!(line, "; {end}");
            }
            (None, None, true) => line.push_str("; dropped while open"),
            (None, None, false) => line.push_str("; still open"),
        }
        log.push(line);
        let Some(want) = expect.streams.get(alias) else {
            continue;
        };
        let seen = Seen {
            opened: slot.opened,
            data: &slot.data,
            open_error: slot.open_error.as_ref(),
            read_error: slot.read_error.as_ref(),
            end: end.as_ref().map(end_view),
            dropped: slot.dropped,
        };
        check_stream(
            &format!("stream {alias}"),
            want,
            &seen,
            &CLIENT_WORDING as &Wording,
            failures,
        );
    }

    let mux_line = match &got.mux {
        Some(MuxState::Ok) => "mux: finished ok".to_owned(),
        Some(MuxState::Error(e)) => format!("mux: finished with {}", e.text()),
        Some(MuxState::Running) => "mux: still running".to_owned(),
        None => "mux: not reported".to_owned(),
    };
    log.push(mux_line);
    if let Some(want) = &expect.mux_result {
        let ok = match (want, &got.mux) {
            (OkOrError::Ok, Some(MuxState::Ok)) => true,
            (OkOrError::Error(spec), Some(MuxState::Error(e))) => e.is(spec),
            // The server closed the WebSocket: whether the multiplexor then finished ok or
            // with "socket closed" is the client's API wording, not a behaviour.
            (OkOrError::Error(spec), Some(MuxState::Ok)) => {
                spec.0.iter().any(|s| s.name == "WsImplSocketClosed")
            }
            _ => false,
        };
        if !ok {
            let got = match &got.mux {
                Some(MuxState::Ok) => "ok".to_owned(),
                Some(MuxState::Error(e)) => e.text(),
                Some(MuxState::Running) => "still running".to_owned(),
                None => "not reported".to_owned(),
            };
            failures.push(format!("mux result is {got}, expected {want}"));
        }
    }
}

/// Judges one action from its reported result; whether the actions went on after it.
fn judge_action(
    i: usize,
    action: &Action,
    got: &Collected,
    slots: &mut BTreeMap<String, Slot>,
    log: &mut Vec<String>,
    failures: &mut Vec<String>,
) -> bool {
    let result = got.actions.get(&i);
    let (error, stream_id, data, eof, sent) = match result {
        Some(Event::Action {
            error,
            stream_id,
            data,
            eof,
            sent,
            ..
        }) => (error.as_ref(), *stream_id, data.as_deref(), *eof, *sent),
        _ => (None, None, None, false, None),
    };
    let label = action_label(i, action);
    if let Some(alias) = action.alias()
        && !matches!(action, Action::Open(_) | Action::Drop(_))
        && !slots.get(alias).is_some_and(Slot::usable)
    {
        let not_open = matches!(action, Action::Send(_) | Action::Close(_));
        log.push(format!("{label} -> skipped: the stream is not open"));
        if not_open {
            failures.push(format!("action #{i}: stream {alias} is not open"));
        }
        return true;
    }
    if result.is_none() {
        log.push(format!(
            "{label} -> no result (the client did not report it)"
        ));
        return false;
    }
    match action {
        Action::Open(open) => {
            let what = format!("action #{i} (open {})", open.stream);
            let slot = slots.entry(open.stream.clone()).or_default();
            match error {
                Some(e) => {
                    log.push(format!("{label} -> error {}", e.text()));
                    slot.open_error = Some(e.clone());
                }
                None => {
                    slot.opened = true;
                    slot.id = stream_id;
                    log.push(format!(
                        "{label} -> ok{}",
                        stream_id
                            .map(|id| format!(" (stream id {id})"))
                            .unwrap_or_default()
                    ));
                }
            }
            failures.extend(check_expected(
                &what,
                open.expect_error.as_ref(),
                error.map_or(Ok(()), Err),
            ));
        }
        Action::Send(send) => {
            let what = format!("action #{i} (send {})", send.stream);
            match error {
                Some(e) => log.push(format!(
                    "{label} -> error {} after {} writes",
                    e.text(),
                    sent.unwrap_or(0)
                )),
                None => log.push(format!("{label} -> ok")),
            }
            failures.extend(check_expected(
                &what,
                send.expect_error.as_ref(),
                error.map_or(Ok(()), Err),
            ));
        }
        Action::Close(close) => {
            let what = format!("action #{i} (close {})", close.stream);
            match error {
                Some(e) => log.push(format!("{label} -> error {}", e.text())),
                None => log.push(format!("{label} -> ok")),
            }
            failures.extend(check_expected(
                &what,
                close.expect_error.as_ref(),
                error.map_or(Ok(()), Err),
            ));
        }
        Action::Read(_) | Action::WaitClosed(_) => {
            let alias = action.alias().unwrap_or_default();
            let slot = slots.entry(alias.to_owned()).or_default();
            let bytes = match data.map(hex::decode) {
                Some(Ok(b)) => b,
                Some(Err(e)) => {
                    failures.push(format!(
                        "action #{i}: the client reported data that is not hex: {e}"
                    ));
                    Vec::new()
                }
                None => Vec::new(),
            };
            slot.data.extend_from_slice(&bytes);
            let mut line = format!("{label} -> {}", payload_summary(&bytes));
            if let Some(e) = error {
                let _ = write!(line, ", then error {}", e.text());
                slot.read_error = Some(e.clone());
            } else if eof {
                line.push_str(", then end of stream");
            }
            log.push(line);
        }
        Action::Drop(alias) => match slots.get_mut(alias) {
            Some(slot) if slot.usable() => {
                slot.dropped = true;
                log.push(format!("{label} -> dropped"));
            }
            _ => log.push(format!("{label} -> skipped: not open")),
        },
        Action::CloseMux(_) => match error {
            Some(e) => log.push(format!("{label} -> error {}", e.text())),
            None => log.push(format!("{label} -> ok")),
        },
        Action::Sleep(_) => log.push(label),
        Action::Echo(_) => {
            failures.push(format!("action #{i}: `echo` is a server-role action"));
        }
    }
    true
}

/// The transcript's label of an action (as the in-process log writes it).
fn action_label(i: usize, action: &Action) -> String {
    match action {
        Action::Open(o) => format!(
            "#{i} open {} {} {}:{}",
            o.stream, o.stream_type.0, o.host, o.port
        ),
        Action::Send(s) => {
            let times = s.times.unwrap_or(1).max(1);
            format!(
                "#{i} send {} {}{}",
                s.stream,
                payload_summary(&s.payload()),
                if times > 1 {
                    format!(" x{times}")
                } else {
                    String::new()
                }
            )
        }
        Action::Close(c) => format!(
            "#{i} close {} reason={}",
            c.stream,
            c.reason
                .map_or(wisp_client::proto::CloseReason::VOLUNTARY, |r| r.0)
        ),
        Action::Read(r) => format!("#{i} read {} until {}", r.stream, r.until),
        Action::WaitClosed(a) => format!("#{i} wait_closed {a}"),
        Action::Drop(a) => format!("#{i} drop {a}"),
        Action::CloseMux(c) => match c.reason {
            Some(r) => format!("#{i} close_mux reason={}", r.0),
            None => format!("#{i} close_mux"),
        },
        Action::Sleep(d) => format!("#{i} sleep {d}"),
        Action::Echo(_) => format!("#{i} echo"),
    }
}
