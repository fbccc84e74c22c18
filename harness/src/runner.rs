//! Runs one case: the client under test (`wisp_client::ClientMux`) against the mock server
//! over a real loopback WebSocket, in a current-thread runtime with the clock paused, so a
//! case never waits on the wall clock and its trace is deterministic.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use std::sync::{Arc, Mutex};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use wisp_client::extensions::{
    AnyExtensionBuilder, CertAuthExtensionBuilder, MotdExtensionBuilder, PasswordExtensionBuilder,
    StreamConfirmationExtensionBuilder, UdpExtensionBuilder, WispV2Handshake,
};
use wisp_client::proto::{CloseReason, Initiator, NegotiatedExtension};
use wisp_client::transport::{TokioWebsocketsTransport, TransportExt, WISP_V2_SUBPROTOCOL};
use wisp_client::{ClientMux, MuxOptions, MuxStream, StreamEnd, WispError};

use tokio::net::TcpListener;
use wisp_cases::actions::{Action, ReadUntil};
use wisp_cases::client::{ClientExtension, ClientSpec, VersionSel};
use wisp_cases::packet::parse_version;
use wisp_cases::values::{ErrorSet, OkOrError, extension_label};
use wisp_cases::{ClientCase as Case, Level, Verdict};
use wisp_mock_server::replay::{Script, ScriptOutcome, serve};
use wisp_mock_server::trace::payload_summary;
use wisp_mock_server::trace::{SharedTrace, Trace};
use wisp_testkit::vtime::{Tracked, tracked_pair};

use crate::stream_check::{Seen, Wording, check_stream, error_text};

/// How the client suite words the stream checks' failures.
const CLIENT_WORDING: Wording = Wording {
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

/// The result of running one case.
#[derive(Clone, Debug)]
pub struct CaseReport {
    /// The case ID.
    pub id: String,
    /// The verdict reached.
    pub verdict: Verdict,
    /// The verdict the case expects (default OK).
    pub expected: Verdict,
    /// Why the verdict is not OK (empty when OK).
    pub failures: Vec<String>,
    /// A harness problem (the case could not run at all).
    pub harness_error: Option<String>,
    /// The readable transcript: wire trace, client log, verdict. Deterministic.
    pub transcript: String,
    /// Wall-clock time the case took.
    pub wall: Duration,
    /// Virtual time the case took.
    pub virtual_time: Duration,
}

impl CaseReport {
    /// Whether the case passed: no harness error and the verdict is the expected one.
    pub fn passed(&self) -> bool {
        self.harness_error.is_none() && self.verdict == self.expected
    }
}

/// Runs `case` in its own paused-clock runtime.
pub fn run_case(case: &Case) -> CaseReport {
    let wall = std::time::Instant::now();
    let expected = case.expected_verdict();
    // WISP_REAL_TIME=1 runs on the wall clock (for debugging a suspected virtual-time effect).
    let paused = std::env::var_os("WISP_REAL_TIME").is_none_or(|v| v.is_empty() || v == "0");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(paused)
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            return CaseReport {
                id: case.meta.id.clone(),
                verdict: Verdict::Failed,
                expected,
                failures: Vec::new(),
                harness_error: Some(format!("cannot start a runtime: {e}")),
                transcript: String::new(),
                wall: wall.elapsed(),
                virtual_time: Duration::ZERO,
            };
        }
    };
    let (result, virtual_time) = runtime.block_on(async {
        let start = Instant::now();
        let r = run_in_runtime(case, start).await;
        (r, start.elapsed())
    });
    drop(runtime);
    match result {
        Ok((failures, transcript)) => {
            let verdict = if failures.is_empty() {
                Verdict::Ok
            } else {
                match case.meta.level {
                    Level::Must => Verdict::Failed,
                    Level::Should => Verdict::NonStrict,
                    Level::May => Verdict::Informational,
                }
            };
            let mut transcript = transcript;
            let _ = writeln!(transcript, "== verdict ==\n{verdict}");
            for f in &failures {
                let _ = writeln!(transcript, "  - {f}");
            }
            CaseReport {
                id: case.meta.id.clone(),
                verdict,
                expected,
                failures,
                harness_error: None,
                transcript,
                wall: wall.elapsed(),
                virtual_time,
            }
        }
        Err(e) => CaseReport {
            id: case.meta.id.clone(),
            verdict: Verdict::Failed,
            expected,
            failures: Vec::new(),
            harness_error: Some(e),
            transcript: String::new(),
            wall: wall.elapsed(),
            virtual_time,
        },
    }
}

/// One stream the client opened, by alias.
#[derive(Default)]
struct Slot {
    stream: Option<MuxStream>,
    id: Option<u32>,
    data: Vec<u8>,
    open_error: Option<WispError>,
    read_error: Option<WispError>,
    /// How the stream had ended when the case dropped it.
    dropped: Option<Option<StreamEnd>>,
}

/// What the client side did.
#[derive(Default)]
struct ClientState {
    log: Vec<String>,
    failures: Vec<String>,
    handshake: Option<Result<(), WispError>>,
    mux: Option<ClientMux>,
    actor: Option<JoinHandle<Result<(), WispError>>>,
    streams: BTreeMap<String, Slot>,
}

impl ClientState {
    fn log(&mut self, start: Instant, line: String) {
        let _ = start;
        self.log.push(line);
    }
}

fn mux_options(spec: &ClientSpec) -> MuxOptions {
    let o = &spec.options;
    let mut opts = MuxOptions::default();
    if let Some(t) = o.handshake_timeout {
        opts = opts.handshake_timeout(Some(t.0));
    }
    if let Some(t) = o.legacy_info_wait {
        opts = opts.legacy_info_wait(t.0);
    }
    if let Some(n) = o.max_payload_len {
        opts = opts.max_payload_len(n);
    }
    if let Some(n) = o.first_stream_id {
        opts = opts.first_stream_id(n);
    }
    if let Some(t) = o.stream_open_timeout {
        opts = opts.stream_open_timeout(Some(t.0));
    }
    opts
}

fn v2_handshake(spec: &ClientSpec) -> Option<WispV2Handshake> {
    if spec.version == VersionSel::V1 {
        return None;
    }
    let builders: Vec<AnyExtensionBuilder> = spec
        .extensions
        .iter()
        .map(|e| match e {
            ClientExtension::Udp => UdpExtensionBuilder.into(),
            ClientExtension::Motd => MotdExtensionBuilder.into(),
            ClientExtension::StreamConfirmation => StreamConfirmationExtensionBuilder.into(),
            ClientExtension::Password(p) => {
                let creds = match (&p.username, &p.password) {
                    (Some(u), Some(pw)) => Some((u.clone(), pw.clone())),
                    _ => None,
                };
                PasswordExtensionBuilder::new_client(creds)
                    .layout(p.layout.layout())
                    .into()
            }
            ClientExtension::CertAuth(c) => {
                CertAuthExtensionBuilder::new_client(c.signing_key.clone()).into()
            }
        })
        .collect();
    let mut handshake = WispV2Handshake::new(builders);
    for id in &spec.required {
        handshake = handshake.with_required_extension(id.0);
    }
    Some(handshake)
}

fn describe_extension(e: &NegotiatedExtension) -> String {
    match e {
        NegotiatedExtension::Motd(m) => format!("motd {m:?}"),
        NegotiatedExtension::Password { required } => format!("password(required={required})"),
        NegotiatedExtension::CertAuth {
            required,
            algorithms,
        } => format!("cert_auth(required={required}, algorithms=0x{algorithms:02x})"),
        other => extension_label(other.id()),
    }
}

fn check_error(
    state: &mut ClientState,
    what: &str,
    expected: Option<&ErrorSet>,
    got: Result<(), &WispError>,
) {
    match (expected, got) {
        (None, Ok(())) => {}
        (Some(spec), Err(e)) if spec.matches(e) => {}
        (Some(spec), Ok(())) => state
            .failures
            .push(format!("{what}: expected error {spec}, but it succeeded")),
        (Some(spec), Err(e)) => state.failures.push(format!(
            "{what}: expected error {spec}, got {}",
            error_text(e)
        )),
        (None, Err(e)) => state
            .failures
            .push(format!("{what}: unexpected error {}", error_text(e))),
    }
}

/// Opens the client's WebSocket the way `wisp_client::transport::connect` does (the same
/// `TokioWebsocketsTransport`, `Sec-WebSocket-Protocol: wisp-v2` for v2), but on a given
/// loopback socket: a `wisp_testkit::vtime::Tracked` one with `TCP_NODELAY`, whose bytes in
/// flight hold the paused clock still (see that module), so virtual time only moves when
/// the kernel buffers are empty too.
async fn open_websocket(
    url: &str,
    io: Tracked<TcpStream>,
    v2: bool,
) -> Result<TokioWebsocketsTransport<Tracked<TcpStream>>, WispError> {
    let ws_err = |e: tokio_websockets::Error| WispError::WsImplError(std::sync::Arc::new(e));
    let uri: http::Uri = url
        .parse()
        .map_err(|e| WispError::InvalidArgument(format!("invalid URL {url:?}: {e}")))?;
    let mut builder = tokio_websockets::ClientBuilder::from_uri(uri);
    if v2 {
        builder = builder
            .add_header(
                http::HeaderName::from_static("sec-websocket-protocol"),
                http::HeaderValue::from_static(WISP_V2_SUBPROTOCOL),
            )
            .map_err(ws_err)?;
    }
    let (ws, _response) = builder.connect_on(io).await.map_err(ws_err)?;
    Ok(TokioWebsocketsTransport(ws))
}

async fn drive_client(
    case: &Case,
    url: &str,
    io: Tracked<TcpStream>,
    start: Instant,
    state: &mut ClientState,
) {
    let spec = &case.client;
    let v2 = v2_handshake(spec);
    let (rx, tx) = match open_websocket(url, io, v2.is_some()).await {
        Ok(t) => t.split_fast(),
        Err(e) => {
            state.log(start, format!("connect: error {}", error_text(&e)));
            state.handshake = Some(Err(e));
            return;
        }
    };
    let result = ClientMux::new_with_options(rx, tx, v2, mux_options(spec)).await;
    let pair = match result {
        Ok(res) if spec.required_after.is_empty() => Ok(res.with_no_required_extensions()),
        Ok(res) => {
            let ids: Vec<u8> = spec.required_after.iter().map(|e| e.0.0).collect();
            res.with_required_extensions(&ids).await
        }
        Err(e) => Err(e),
    };
    let (mux, actor) = match pair {
        Ok(p) => p,
        Err(e) => {
            state.log(start, format!("handshake: error {}", error_text(&e)));
            state.handshake = Some(Err(e));
            if !spec.actions.is_empty() {
                state.log(start, "actions: skipped (the handshake failed)".to_owned());
            }
            return;
        }
    };
    let exts: Vec<String> = mux
        .get_extensions()
        .iter()
        .map(describe_extension)
        .collect();
    state.log(
        start,
        format!(
            "handshake: ok version={} downgraded={} extensions=[{}]",
            mux.version(),
            mux.was_downgraded(),
            exts.join(", ")
        ),
    );
    state.handshake = Some(Ok(()));
    state.actor = Some(tokio::spawn(actor));
    state.mux = Some(mux);

    for (i, action) in spec.actions.iter().enumerate() {
        run_action(i, &action.value, state, start).await;
    }
}

async fn run_action(i: usize, action: &Action, state: &mut ClientState, start: Instant) {
    let Some(mux) = state.mux.clone() else {
        return;
    };
    match action {
        Action::Open(open) => {
            let label = format!(
                "#{i} open {} {} {}:{}",
                open.stream, open.stream_type.0, open.host, open.port
            );
            let result = mux
                .new_stream(open.stream_type.0, &open.host, open.port)
                .await;
            let slot = state.streams.entry(open.stream.clone()).or_default();
            let (line, outcome) = match result {
                Ok(stream) => {
                    slot.id = Some(stream.get_stream_id());
                    let line = format!("{label} -> ok (stream id {})", stream.get_stream_id());
                    slot.stream = Some(stream);
                    (line, Ok(()))
                }
                Err(e) => {
                    let line = format!("{label} -> error {}", error_text(&e));
                    slot.open_error = Some(e);
                    (line, Err(()))
                }
            };
            state.log(start, line);
            let err = state
                .streams
                .get(&open.stream)
                .and_then(|s| s.open_error.clone());
            let got = match (&outcome, &err) {
                (Err(()), Some(e)) => Err(e),
                _ => Ok(()),
            };
            check_error(
                state,
                &format!("action #{i} (open {})", open.stream),
                open.expect_error.as_ref(),
                got,
            );
        }
        Action::Send(send) => {
            let payload = Bytes::from(send.payload());
            let times = send.times.unwrap_or(1).max(1);
            let label = format!(
                "#{i} send {} {}{}",
                send.stream,
                payload_summary(&payload),
                if times > 1 {
                    format!(" x{times}")
                } else {
                    String::new()
                }
            );
            let Some(stream) = state
                .streams
                .get_mut(&send.stream)
                .and_then(|s| s.stream.as_mut())
            else {
                state.log(start, format!("{label} -> skipped: the stream is not open"));
                state
                    .failures
                    .push(format!("action #{i}: stream {} is not open", send.stream));
                return;
            };
            let mut result = Ok(());
            let mut sent = 0;
            for _ in 0..times {
                match stream.send(payload.clone()).await {
                    Ok(()) => sent += 1,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            let line = match &result {
                Ok(()) => format!("{label} -> ok"),
                Err(e) => format!("{label} -> error {} after {sent} writes", error_text(e)),
            };
            state.log(start, line);
            check_error(
                state,
                &format!("action #{i} (send {})", send.stream),
                send.expect_error.as_ref(),
                result.as_ref().map(|_| ()),
            );
        }
        Action::Close(close) => {
            let reason = close.reason.map(|r| r.0).unwrap_or(CloseReason::VOLUNTARY);
            let label = format!("#{i} close {} reason={reason}", close.stream);
            let Some(stream) = state
                .streams
                .get(&close.stream)
                .and_then(|s| s.stream.as_ref())
            else {
                state.log(start, format!("{label} -> skipped: the stream is not open"));
                state
                    .failures
                    .push(format!("action #{i}: stream {} is not open", close.stream));
                return;
            };
            let result = stream.close(reason).await;
            let line = match &result {
                Ok(()) => format!("{label} -> ok"),
                Err(e) => format!("{label} -> error {}", error_text(e)),
            };
            state.log(start, line);
            check_error(
                state,
                &format!("action #{i} (close {})", close.stream),
                close.expect_error.as_ref(),
                result.as_ref().map(|_| ()),
            );
        }
        Action::Read(read) => {
            let until = match read.until {
                ReadUntil::Bytes(n) => format!("{n} bytes"),
                ReadUntil::End => "the end".to_owned(),
            };
            let line = read_stream(state, &read.stream, read.until).await;
            state.log(
                start,
                format!("#{i} read {} until {until} -> {line}", read.stream),
            );
        }
        Action::WaitClosed(alias) => {
            let line = read_stream(state, alias, ReadUntil::End).await;
            state.log(start, format!("#{i} wait_closed {alias} -> {line}"));
        }
        Action::Drop(alias) => {
            let Some(slot) = state.streams.get_mut(alias) else {
                return;
            };
            match slot.stream.take() {
                Some(stream) => {
                    slot.dropped = Some(stream.end());
                    drop(stream);
                    state.log(start, format!("#{i} drop {alias} -> dropped"));
                }
                None => state.log(start, format!("#{i} drop {alias} -> skipped: not open")),
            }
        }
        Action::CloseMux(c) => {
            let result = match c.reason {
                Some(r) => mux.close_with_reason(r.0).await,
                None => mux.close().await,
            };
            let label = match c.reason {
                Some(r) => format!("#{i} close_mux reason={}", r.0),
                None => format!("#{i} close_mux"),
            };
            let line = match result {
                Ok(()) => format!("{label} -> ok"),
                Err(e) => format!("{label} -> error {}", error_text(&e)),
            };
            state.log(start, line);
        }
        Action::Sleep(d) => {
            tokio::time::sleep(d.0).await;
            state.log(start, format!("#{i} sleep {d}"));
        }
        Action::Echo(_) => {
            // The loader rejects `echo` in client-role cases; keep the case honest anyway.
            state
                .failures
                .push(format!("action #{i}: `echo` is a server-role action"));
        }
    }
}

async fn read_stream(state: &mut ClientState, alias: &str, until: ReadUntil) -> String {
    let Some(slot) = state.streams.get_mut(alias) else {
        return "skipped: unknown stream".to_owned();
    };
    let Some(stream) = slot.stream.as_mut() else {
        return "skipped: the stream is not open".to_owned();
    };
    let before = slot.data.len();
    let mut ended = None;
    loop {
        if let ReadUntil::Bytes(n) = until
            && slot.data.len() >= n
        {
            break;
        }
        match stream.next().await {
            Some(Ok(chunk)) => slot.data.extend_from_slice(&chunk),
            Some(Err(e)) => {
                ended = Some(format!("error {}", error_text(&e)));
                slot.read_error = Some(e);
                break;
            }
            None => {
                ended = Some("end of stream".to_owned());
                break;
            }
        }
    }
    let got = payload_summary(&slot.data[before..]);
    match ended {
        Some(e) => format!("{got}, then {e}"),
        None => got,
    }
}

fn describe_end(end: &StreamEnd) -> String {
    match end {
        StreamEnd::Closed { reason, initiator } => format!(
            "closed by {} reason={reason}",
            match initiator {
                Initiator::Remote => "server",
                Initiator::Local => "client",
            }
        ),
        StreamEnd::OpenFailed(e) => format!("open failed: {}", error_text(e)),
        StreamEnd::ConnectionEnded(e) => format!("connection ended: {}", error_text(e)),
        other => format!("{other:?}"),
    }
}

async fn run_in_runtime(case: &Case, start: Instant) -> Result<(Vec<String>, String), String> {
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
        async move { serve(server_io, &script, trace, start).await }
    });

    let mut state = ClientState::default();
    let case_timeout = case.timeout();
    let client_done = tokio::time::timeout(
        case_timeout,
        drive_client(case, &url, client_io, start, &mut state),
    )
    .await
    .is_ok();
    if !client_done {
        state.log.push(format!(
            "case timeout: the client actions did not finish within {}ms",
            case_timeout.as_millis()
        ));
        state.failures.push(format!(
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
    failures.append(&mut state.failures);
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
    for line in &state.log {
        let _ = writeln!(transcript, "{line}");
    }
    if let Some(actor) = state.actor.take() {
        actor.abort();
    }
    drop(state);
    Ok((failures, transcript))
}

async fn check_outcome(case: &Case, state: &mut ClientState, failures: &mut Vec<String>) {
    let expect = &case.expect;
    match (&expect.error, &state.handshake) {
        (Some(spec), Some(Err(e))) if spec.matches(e) => {}
        (Some(spec), Some(Err(e))) => failures.push(format!(
            "handshake: expected error {spec}, got {}",
            error_text(e)
        )),
        (Some(spec), Some(Ok(()))) => failures.push(format!(
            "handshake: expected error {spec}, but it succeeded"
        )),
        (None, Some(Err(e))) => failures.push(format!(
            "handshake: expected ok, got error {}",
            error_text(e)
        )),
        (_, None) => failures.push("handshake: did not finish".to_owned()),
        (None, Some(Ok(()))) => {}
    }
    if let Some(mux) = state.mux.clone() {
        if let Some(d) = expect.downgraded
            && mux.was_downgraded() != d
        {
            failures.push(format!(
                "downgraded is {}, expected {d}",
                mux.was_downgraded()
            ));
        }
        if let Some(v) = &expect.version
            && let Ok((major, minor)) = parse_version(v)
            && (mux.version().major, mux.version().minor) != (major, minor)
        {
            failures.push(format!("version is {}, expected {v}", mux.version()));
        }
        if let Some(exts) = &expect.extensions {
            let mut got: Vec<u8> = mux.get_extension_ids();
            let mut want: Vec<u8> = exts.iter().map(|e| e.0.0).collect();
            got.sort_unstable();
            want.sort_unstable();
            if got != want {
                let names = |v: &[u8]| {
                    v.iter()
                        .map(|id| extension_label(wisp_client::proto::ExtensionId(*id)))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                failures.push(format!(
                    "negotiated extensions are [{}], expected [{}]",
                    names(&got),
                    names(&want)
                ));
            }
        }
        if let Some(m) = &expect.motd
            && mux.motd() != Some(m.as_str())
        {
            failures.push(format!("motd is {:?}, expected {m:?}", mux.motd()));
        }
    } else if expect.downgraded.is_some()
        || expect.version.is_some()
        || expect.extensions.is_some()
        || expect.motd.is_some()
    {
        failures.push("cannot check the negotiated outcome: the handshake failed".to_owned());
    }

    // Streams.
    let mut summary = Vec::new();
    for (alias, slot) in &state.streams {
        let end = match &slot.dropped {
            Some(end) => end.clone(),
            None => slot.stream.as_ref().and_then(|s| s.end()),
        };
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
        let seen = Seen {
            opened: slot.stream.is_some(),
            data: &slot.data,
            open_error: slot.open_error.as_ref(),
            read_error: slot.read_error.as_ref(),
            end: end.as_ref(),
            dropped: slot.dropped.is_some(),
        };
        check_stream(
            &format!("stream {alias}"),
            want,
            &seen,
            &CLIENT_WORDING,
            failures,
        );
    }
    state.log.extend(summary);

    // The actor future.
    let step_timeout = case.server_options.step_timeout.0;
    let actor_result = match state.actor.as_mut() {
        Some(actor) if expect.mux_result.is_some() || actor.is_finished() => {
            match tokio::time::timeout(step_timeout, actor).await {
                Ok(Ok(r)) => Some(Some(r)),
                Ok(Err(e)) => Some(Some(Err(WispError::InvalidArgument(format!(
                    "the actor task panicked: {e}"
                ))))),
                Err(_) => Some(None),
            }
        }
        Some(_) => Some(None),
        None => None,
    };
    if matches!(actor_result, Some(Some(_))) {
        state.actor = None;
    }
    let line = match &actor_result {
        Some(Some(Ok(()))) => "mux: actor finished ok".to_owned(),
        Some(Some(Err(e))) => format!("mux: actor finished with {}", error_text(e)),
        Some(None) => "mux: actor still running".to_owned(),
        None => "mux: no actor (the handshake failed)".to_owned(),
    };
    state.log.push(line);
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

    use super::*;

    fn case(level: &str, server: &str, expect: &str) -> Case {
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
        let first = &report.failures[0];
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
            report.failures[0].contains("timeout"),
            "{}",
            report.failures[0]
        );
        assert!(report.virtual_time >= Duration::from_secs(20));
        assert!(report.wall < Duration::from_secs(10), "{:?}", report.wall);
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
            report.failures.iter().any(|f| f.contains("stream s1")),
            "{:?}",
            report.failures
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
