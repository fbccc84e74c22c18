//! The published wisp-mux 5.1.0 client (epoxy-tls's multiplexor, crates.io) as a
//! [`ClientUnderTest`], over fastwebsockets as its users run it.
//!
//! What wisp-mux 5.1.0 has, and so what this shim declares: Wisp v1 and its v2 (the
//! pre-draft order: CONTINUE, then INFO within 5 s, then the client's INFO), the UDP and
//! password extensions (the password record in the draft-5 layout), required extensions
//! (checked once the handshake is done), stream close with a reason, and dropping a
//! stream. It has no MOTD, certificate auth, stream-open confirmation or tunables.
//!
//! Its errors map onto the suite's names: the ones wisp-mux shares keep their name
//! (`WsImplSocketClosed`, `ExtensionsNotSupported`, `StreamAlreadyClosed`,
//! `MaxStreamCountReached`, `IncompatibleProtocolVersion`, `MuxTaskEnded`, ...), decode
//! errors are `MalformedPacket`, the rest `Other(text)`. A stream's end is seen through
//! `read()` returning `None` and `get_close_reason()`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use wisp_harness::shim::protocol::EndWord;
use wisp_harness::shim::{
    BoxFuture, Capability, ClientUnderTest, EndedBy, Event, EventSink, Finish, Hello, MuxState,
    Plan, PlanAction, PlanExtension, PlanUntil, ReportedError, StreamEnding,
};
use wisp_mux::extensions::ProtocolExtensionBuilder;
use wisp_mux::extensions::password::PasswordProtocolExtensionBuilder;
use wisp_mux::extensions::udp::UdpProtocolExtensionBuilder;
use wisp_mux::{ClientMux, CloseReason, MuxStream, StreamType, WispError};

/// The wisp-mux 5.1.0 client, driven through the shim protocol.
#[derive(Clone, Copy, Debug, Default)]
pub struct WispMuxClient;

impl ClientUnderTest for WispMuxClient {
    fn hello(&self) -> BoxFuture<'_, Result<Hello, String>> {
        Box::pin(async {
            Ok(Hello {
                name: "wisp-mux".to_owned(),
                version: "5.1.0".to_owned(),
                capabilities: [
                    Capability::V1,
                    Capability::V2,
                    Capability::Udp,
                    Capability::PasswordDraft5,
                    Capability::RequiredExtensions,
                    Capability::CloseReason,
                    Capability::Drop,
                ]
                .into_iter()
                .collect(),
                protocol: wisp_harness::shim::protocol::PROTOCOL_VERSION,
            })
        })
    }

    fn run<'a>(
        &'a self,
        plan: Plan,
        events: EventSink,
        finish: Finish,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(run(plan, events, finish))
    }
}

/// A wisp-mux error under the suite's names.
pub fn reported(e: &WispError) -> ReportedError {
    let name = match e {
        WispError::WsImplSocketClosed => "WsImplSocketClosed",
        WispError::WsImplError(_)
        | WispError::WsFrameInvalidType
        | WispError::WsFrameNotFinished => "WsImplError",
        WispError::MaxStreamCountReached => "MaxStreamCountReached",
        WispError::IncompatibleProtocolVersion => "IncompatibleProtocolVersion",
        WispError::StreamAlreadyClosed => "StreamAlreadyClosed",
        WispError::ExtensionsNotSupported(_) => "ExtensionsNotSupported",
        WispError::MuxMessageFailedToSend => "MuxMessageFailedToSend",
        WispError::MuxMessageFailedToRecv => "MuxMessageFailedToRecv",
        WispError::MuxTaskEnded => "MuxTaskEnded",
        WispError::PacketTooSmall
        | WispError::InvalidCloseReason
        | WispError::Utf8Error(_)
        | WispError::TryFromIntError(_) => "MalformedPacket",
        _ => return ReportedError::other(format!("{e:?}: {e}")),
    };
    ReportedError {
        name: name.to_owned(),
        ids: match e {
            WispError::ExtensionsNotSupported(ids) => Some(ids.clone()),
            _ => None,
        },
        message: e.to_string(),
        ..ReportedError::default()
    }
}

/// Opens the WebSocket by hand (fastwebsockets' own client handshake needs hyper), reading
/// the response byte by byte so no frame is consumed. Offers `wisp-v2` for a v2 client.
async fn upgrade(url: &str, v2: bool) -> Result<TcpStream, ReportedError> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| ReportedError::other(format!("not a ws:// URL: {url}")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let io = |e: std::io::Error| ReportedError {
        name: "WsImplError".to_owned(),
        message: e.to_string(),
        ..ReportedError::default()
    };
    let mut tcp = TcpStream::connect(authority).await.map_err(io)?;
    let _ = tcp.set_nodelay(true);
    let protocol = if v2 {
        "Sec-WebSocket-Protocol: wisp-v2\r\n"
    } else {
        ""
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{protocol}\r\n"
    );
    tcp.write_all(request.as_bytes()).await.map_err(io)?;
    let mut response = Vec::new();
    while !response.ends_with(b"\r\n\r\n") {
        response.push(tcp.read_u8().await.map_err(io)?);
        if response.len() > 8192 {
            return Err(ReportedError::other("upgrade response too long"));
        }
    }
    if !response.starts_with(b"HTTP/1.1 101") {
        return Err(ReportedError {
            name: "WsImplError".to_owned(),
            message: format!("upgrade refused: {}", String::from_utf8_lossy(&response)),
            ..ReportedError::default()
        });
    }
    Ok(tcp)
}

#[derive(Default)]
struct Slot {
    stream: Option<Arc<MuxStream>>,
    read: usize,
    /// Closed by the client (the reason).
    closed_by_us: Option<u8>,
    /// A read saw the end.
    ended: bool,
    /// The end it had when dropped.
    dropped: Option<Option<StreamEnding>>,
}

#[derive(Default)]
struct State {
    actor: Option<JoinHandle<Result<(), WispError>>>,
    /// The mux future ended.
    exited: Arc<AtomicBool>,
    streams: BTreeMap<String, Slot>,
    /// The handshake's outcome was reported.
    handshake_reported: bool,
}

impl Slot {
    /// The stream's end as far as wisp-mux tells.
    fn end(&self, exited: bool) -> Option<StreamEnding> {
        if let Some(end) = &self.dropped {
            return end.clone();
        }
        if let Some(reason) = self.closed_by_us {
            return Some(StreamEnding {
                by: EndedBy::Client,
                reason: Some(reason),
                error: None,
            });
        }
        let reason = self
            .stream
            .as_ref()
            .and_then(|s| s.get_close_handle().get_close_reason())
            .map(|r| r as u8);
        match (reason, self.ended || exited) {
            (Some(r), _) if !exited => Some(StreamEnding {
                by: EndedBy::Server,
                reason: Some(r),
                error: None,
            }),
            (reason, true) if exited => Some(StreamEnding {
                by: EndedBy::Connection,
                reason,
                error: Some(ReportedError {
                    name: "WsImplSocketClosed".to_owned(),
                    ..ReportedError::default()
                }),
            }),
            (reason, true) => Some(StreamEnding {
                by: EndedBy::Server,
                reason,
                error: None,
            }),
            _ => None,
        }
    }
}

async fn run(plan: Plan, events: EventSink, finish: Finish) -> Result<(), String> {
    let mut state = State::default();
    let mut mux_holder = None;
    let finish = finish.wait();
    tokio::pin!(finish);
    // wisp-mux panics on some malformed input: report it as what the client did.
    let acted = std::panic::AssertUnwindSafe(act(&plan, &events, &mut state, &mut mux_holder))
        .catch_unwind();
    let info = tokio::select! {
        result = acted => {
            if let Err(panic) = result {
                let text = panic
                    .downcast_ref::<&str>()
                    .map(ToString::to_string)
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let error = ReportedError::other(format!("wisp-mux panicked: {text}"));
                events.send(Event::Log { text: format!("wisp-mux panicked: {text}") });
                if !state.handshake_reported {
                    handshake_failed(&events, error);
                }
            }
            events.send(Event::ActionsDone);
            finish.await
        }
        info = &mut finish => info,
    };
    let exited = state.exited.load(Ordering::Acquire)
        || state.actor.as_ref().is_some_and(JoinHandle::is_finished);
    for (alias, slot) in &state.streams {
        events.send(Event::Stream {
            stream: alias.clone(),
            end: slot.end(exited),
        });
    }
    let mux = match state.actor.as_mut() {
        Some(actor) => {
            match tokio::time::timeout(Duration::from_millis(info.mux_wait_ms), actor).await {
                Ok(Ok(Ok(()))) => MuxState::Ok,
                Ok(Ok(Err(e))) => MuxState::Error(reported(&e)),
                Ok(Err(e)) => {
                    MuxState::Error(ReportedError::other(format!("the mux task failed: {e}")))
                }
                Err(_) => MuxState::Running,
            }
        }
        None => MuxState::Running,
    };
    events.send(Event::Mux { state: mux });
    events.send(Event::Done);
    drop(mux_holder);
    Ok(())
}

fn handshake_failed(events: &EventSink, error: ReportedError) {
    events.send(Event::Handshake {
        error: Some(error),
        version: None,
        downgraded: false,
        extensions: Vec::new(),
        motd: None,
    });
}

async fn act(plan: &Plan, events: &EventSink, state: &mut State, holder: &mut Option<ClientMux>) {
    let tcp = match upgrade(&plan.url, plan.version == 2).await {
        Ok(t) => t,
        Err(e) => return handshake_failed(events, e),
    };
    let ws = fastwebsockets::WebSocket::after_handshake(tcp, fastwebsockets::Role::Client);
    let (read, write) = ws.split(|s| s.into_split());
    let mut builders: Vec<Box<dyn ProtocolExtensionBuilder + Send + Sync>> = Vec::new();
    for ext in &plan.extensions {
        match ext {
            PlanExtension::Udp => builders.push(Box::new(UdpProtocolExtensionBuilder)),
            PlanExtension::Password {
                username, password, ..
            } => builders.push(Box::new(PasswordProtocolExtensionBuilder::new_client(
                username.clone().unwrap_or_default(),
                password.clone().unwrap_or_default(),
            ))),
            // Not declared: the harness never sends them.
            _ => {}
        }
    }
    let v2 = (plan.version == 2).then_some(builders.as_slice());
    let created = match ClientMux::create(read, write, v2).await {
        Ok(r) => r,
        Err(e) => return handshake_failed(events, reported(&e)),
    };
    let mut required: Vec<u8> = plan.required.clone();
    required.extend(&plan.required_after);
    let opened = if required.is_empty() {
        Ok(created.with_no_required_extensions())
    } else {
        created.with_required_extensions(&required).await
    };
    let (mux, actor) = match opened {
        Ok(p) => p,
        Err(e) => return handshake_failed(events, reported(&e)),
    };
    events.send(Event::Handshake {
        error: None,
        version: Some(if mux.downgraded || plan.version == 1 {
            "1.2".to_owned()
        } else {
            "2.0".to_owned()
        }),
        downgraded: plan.version == 2 && mux.downgraded,
        extensions: mux.supported_extension_ids.clone(),
        motd: None,
    });
    state.handshake_reported = true;
    let exited = state.exited.clone();
    state.actor = Some(tokio::spawn(async move {
        let r = actor.await;
        exited.store(true, Ordering::Release);
        r
    }));
    for (index, action) in plan.actions.iter().enumerate() {
        let event = one_action(index, action, &mux, state).await;
        events.send(event);
    }
    *holder = Some(mux);
}

fn usable<'a>(state: &'a State, alias: &str) -> Option<&'a Arc<MuxStream>> {
    state.streams.get(alias).and_then(|s| s.stream.as_ref())
}

async fn one_action(
    index: usize,
    action: &PlanAction,
    mux: &ClientMux,
    state: &mut State,
) -> Event {
    let not_open = |alias: &str| {
        Event::action_failed(index, ReportedError::other(format!("{alias} is not open")))
    };
    match action {
        PlanAction::Open {
            stream,
            kind,
            host,
            port,
        } => {
            let stream_type = match kind.as_str() {
                "tcp" => StreamType::Tcp,
                "udp" => StreamType::Udp,
                other => StreamType::Unknown(other.parse().unwrap_or(0)),
            };
            let slot = state.streams.entry(stream.clone()).or_default();
            match mux
                .client_new_stream(stream_type, host.clone(), *port)
                .await
            {
                Ok(s) => {
                    let id = s.stream_id;
                    slot.stream = Some(Arc::new(s));
                    Event::Action {
                        index,
                        error: None,
                        stream_id: Some(id),
                        data: None,
                        eof: false,
                        sent: None,
                    }
                }
                Err(e) => Event::action_failed(index, reported(&e)),
            }
        }
        PlanAction::Send {
            stream,
            data,
            times,
        } => {
            let Some(s) = usable(state, stream) else {
                return not_open(stream);
            };
            let payload = Bytes::from(hex::decode(data).unwrap_or_default());
            for written in 0..*times {
                if let Err(e) = s.write(&payload).await {
                    let mut event = Event::action_failed(index, reported(&e));
                    if let Event::Action { sent, .. } = &mut event {
                        *sent = Some(written);
                    }
                    return event;
                }
            }
            Event::action_ok(index)
        }
        PlanAction::Close { stream, reason } => {
            let Some(s) = usable(state, stream).cloned() else {
                return not_open(stream);
            };
            let Ok(r) = CloseReason::try_from(*reason) else {
                return Event::action_failed(
                    index,
                    ReportedError::other(format!("wisp-mux has no close reason {reason:#04x}")),
                );
            };
            match s.close(r).await {
                Ok(()) => {
                    if let Some(slot) = state.streams.get_mut(stream)
                        && slot.closed_by_us.is_none()
                        && !slot.ended
                    {
                        slot.closed_by_us = Some(*reason);
                    }
                    Event::action_ok(index)
                }
                Err(e) => Event::action_failed(index, reported(&e)),
            }
        }
        PlanAction::Read { stream, until } => read(index, state, stream, *until).await,
        PlanAction::WaitClosed { stream } => {
            read(index, state, stream, PlanUntil::End(EndWord::End)).await
        }
        PlanAction::Drop { stream } => {
            let exited = state.exited.load(Ordering::Acquire);
            if let Some(slot) = state.streams.get_mut(stream)
                && slot.stream.is_some()
            {
                let end = slot.end(exited);
                slot.stream = None;
                slot.dropped = Some(end);
            }
            Event::action_ok(index)
        }
        PlanAction::CloseMux { .. } => match mux.close().await {
            Ok(()) => Event::action_ok(index),
            Err(e) => Event::action_failed(index, reported(&e)),
        },
        PlanAction::Sleep { ms } => {
            tokio::time::sleep(Duration::from_millis(*ms)).await;
            Event::action_ok(index)
        }
    }
}

async fn read(index: usize, state: &mut State, alias: &str, until: PlanUntil) -> Event {
    let Some(slot) = state.streams.get_mut(alias) else {
        return Event::action_failed(index, ReportedError::other(format!("{alias} is not open")));
    };
    let Some(stream) = slot.stream.clone() else {
        return Event::action_failed(index, ReportedError::other(format!("{alias} is not open")));
    };
    let mut data = Vec::new();
    let mut eof = false;
    loop {
        if let PlanUntil::Bytes(n) = until
            && slot.read + data.len() >= n
        {
            break;
        }
        match stream.read().await {
            Some(chunk) => data.extend_from_slice(&chunk),
            None => {
                eof = true;
                slot.ended = true;
                break;
            }
        }
    }
    slot.read += data.len();
    Event::Action {
        index,
        error: None,
        stream_id: None,
        data: Some(hex::encode(&data)),
        eof,
        sent: None,
    }
}
