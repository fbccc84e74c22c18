//! This workspace's client (`wisp_client::ClientMux`) as a [`ClientUnderTest`]: the
//! reference shim. It runs a [`Plan`] the way any shim does (connect to the mock's URL,
//! offer what the plan says, run the actions, report), on the real clock, so running the
//! suite through it (in process or as the `shim-wisp-client` program) must give the same
//! verdicts as the harness's own in-process run of our client.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::task::JoinHandle;
use wisp_client::extensions::WispV2Handshake;
use wisp_client::proto::{
    AnyExtensionBuilder, CertAuthExtensionBuilder, CloseReason, MotdExtensionBuilder,
    PasswordExtensionBuilder, PasswordLayout, StreamConfirmationExtensionBuilder, StreamType,
    UdpExtensionBuilder,
};
use wisp_client::transport::{ConnectOptions, connect};
use wisp_client::{ClientMux, MuxStream, StreamEnd, WispError};
use wisp_harness::shim::{
    BoxFuture, Capability, ClientUnderTest, Event, EventSink, Finish, Hello, MuxState, Plan,
    PlanAction, PlanExtension, PlanUntil, ReportedError, StreamEnding,
};

/// `wisp_client::ClientMux`, driven through the shim protocol.
#[derive(Clone, Copy, Debug, Default)]
pub struct OurClient;

impl ClientUnderTest for OurClient {
    fn hello(&self) -> BoxFuture<'_, Result<Hello, String>> {
        Box::pin(async {
            Ok(Hello {
                name: "wisp-client".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                capabilities: Capability::ALL.into_iter().collect(),
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

/// One stream by alias.
#[derive(Default)]
struct Slot {
    stream: Option<MuxStream>,
    /// Bytes read so far.
    read: usize,
    /// Its end when it was dropped.
    dropped: Option<Option<StreamEnd>>,
    opened: bool,
}

#[derive(Default)]
struct State {
    mux: Option<ClientMux>,
    actor: Option<JoinHandle<Result<(), WispError>>>,
    streams: BTreeMap<String, Slot>,
}

async fn run(plan: Plan, events: EventSink, finish: Finish) -> Result<(), String> {
    let mut state = State::default();
    let finish = finish.wait();
    tokio::pin!(finish);
    let info = tokio::select! {
        () = act(&plan, &events, &mut state) => {
            events.send(Event::ActionsDone);
            finish.await
        }
        info = &mut finish => info,
    };
    for (alias, slot) in &state.streams {
        if !slot.opened {
            continue;
        }
        let end = match &slot.dropped {
            Some(end) => end.clone(),
            None => slot.stream.as_ref().and_then(MuxStream::end),
        };
        events.send(Event::Stream {
            stream: alias.clone(),
            end: end.as_ref().map(StreamEnding::from_end),
        });
    }
    let state = match state.actor.as_mut() {
        Some(actor) => {
            let wait = Duration::from_millis(info.mux_wait_ms);
            match tokio::time::timeout(wait, actor).await {
                Ok(Ok(Ok(()))) => MuxState::Ok,
                Ok(Ok(Err(e))) => MuxState::Error(ReportedError::from_wisp(&e)),
                Ok(Err(e)) => {
                    MuxState::Error(ReportedError::other(format!("the driver task failed: {e}")))
                }
                Err(_) => MuxState::Running,
            }
        }
        None => MuxState::Running,
    };
    events.send(Event::Mux { state });
    events.send(Event::Done);
    Ok(())
}

/// The handshake the plan asks for (`None`: v1).
fn handshake(plan: &Plan) -> Result<Option<WispV2Handshake>, String> {
    if plan.version == 1 {
        return Ok(None);
    }
    let mut builders: Vec<AnyExtensionBuilder> = Vec::new();
    for ext in &plan.extensions {
        builders.push(match ext {
            PlanExtension::Udp => UdpExtensionBuilder.into(),
            PlanExtension::Motd => MotdExtensionBuilder.into(),
            PlanExtension::StreamConfirmation => StreamConfirmationExtensionBuilder.into(),
            PlanExtension::Password {
                username,
                password,
                layout,
            } => {
                let creds = match (username, password) {
                    (Some(u), Some(p)) => Some((u.clone(), p.clone())),
                    _ => None,
                };
                let builder = PasswordExtensionBuilder::new_client(creds);
                // `auto`: not pinned, the client picks it from the server's handshake order.
                match layout.as_str() {
                    "draft5" => builder.layout(PasswordLayout::Draft5),
                    "auto" => builder,
                    _ => builder.layout(PasswordLayout::Draft6),
                }
                .into()
            }
            PlanExtension::CertAuth { key_hex, .. } => {
                let key = match key_hex {
                    Some(h) => {
                        let bytes = hex::decode(h).map_err(|e| format!("key_hex: {e}"))?;
                        let seed: [u8; 32] = bytes
                            .try_into()
                            .map_err(|_| "key_hex: not 32 bytes".to_owned())?;
                        Some(ed25519_dalek::SigningKey::from_bytes(&seed))
                    }
                    None => None,
                };
                CertAuthExtensionBuilder::new_client(key).into()
            }
        });
    }
    let mut handshake = WispV2Handshake::new(builders);
    for id in &plan.required {
        handshake = handshake.with_required_extension(*id);
    }
    Ok(Some(handshake))
}

fn not_open(index: usize, alias: &str) -> Event {
    Event::action_failed(
        index,
        ReportedError::other(format!("stream {alias} is not open")),
    )
}

async fn act(plan: &Plan, events: &EventSink, state: &mut State) {
    let handshake = match handshake(plan) {
        Ok(h) => h,
        Err(e) => {
            events.send(Event::Handshake {
                error: Some(ReportedError::other(e)),
                version: None,
                downgraded: false,
                extensions: Vec::new(),
                motd: None,
            });
            return;
        }
    };
    let options = plan.options.to_mux_options();
    // `ClientMux::connect`, with the plan's WebSocket message limit.
    let mut connect_options = if handshake.is_some() {
        ConnectOptions::v2()
    } else {
        ConnectOptions::v1()
    }
    .timeout(options.connect_timeout);
    if let Some(size) = plan.max_message_size {
        connect_options = connect_options.max_message_size(size);
    }
    let connected = match connect(&plan.url, &connect_options).await {
        Ok(c) => ClientMux::new_websocket(c.transport, handshake, options).await,
        Err(e) => Err(e),
    };
    let opened = match connected {
        Ok(result) if plan.required_after.is_empty() => Ok(result.with_no_required_extensions()),
        Ok(result) => result.with_required_extensions(&plan.required_after).await,
        Err(e) => Err(e),
    };
    let (mux, actor) = match opened {
        Ok(p) => p,
        Err(e) => {
            events.send(Event::Handshake {
                error: Some(ReportedError::from_wisp(&e)),
                version: None,
                downgraded: false,
                extensions: Vec::new(),
                motd: None,
            });
            return;
        }
    };
    events.send(Event::Handshake {
        error: None,
        version: Some(mux.version().to_string()),
        downgraded: mux.was_downgraded(),
        extensions: mux.get_extension_ids(),
        motd: mux.motd().map(str::to_owned),
    });
    state.actor = Some(tokio::spawn(actor));
    state.mux = Some(mux.clone());
    for (index, action) in plan.actions.iter().enumerate() {
        let event = one_action(index, action, &mux, state).await;
        events.send(event);
    }
}

async fn one_action(
    index: usize,
    action: &PlanAction,
    mux: &ClientMux,
    state: &mut State,
) -> Event {
    match action {
        PlanAction::Open {
            stream,
            kind,
            host,
            port,
        } => {
            let stream_type = match kind.as_str() {
                "tcp" => StreamType::TCP,
                "udp" => StreamType::UDP,
                other => StreamType(other.parse().unwrap_or(0)),
            };
            let slot = state.streams.entry(stream.clone()).or_default();
            match mux.new_stream(stream_type, host, *port).await {
                Ok(s) => {
                    let mut event = Event::action_ok(index);
                    if let Event::Action { stream_id, .. } = &mut event {
                        *stream_id = Some(s.get_stream_id());
                    }
                    slot.stream = Some(s);
                    slot.opened = true;
                    event
                }
                Err(e) => Event::action_failed(index, ReportedError::from_wisp(&e)),
            }
        }
        PlanAction::Send {
            stream,
            data,
            times,
        } => {
            let Some(s) = open(state, stream) else {
                return not_open(index, stream);
            };
            let payload = Bytes::from(hex::decode(data).unwrap_or_default());
            for written in 0..*times {
                if let Err(e) = s.send(payload.clone()).await {
                    let mut event = Event::action_failed(index, ReportedError::from_wisp(&e));
                    if let Event::Action { sent, .. } = &mut event {
                        *sent = Some(written);
                    }
                    return event;
                }
            }
            Event::action_ok(index)
        }
        PlanAction::Close { stream, reason } => {
            let Some(s) = open(state, stream) else {
                return not_open(index, stream);
            };
            match MuxStream::close(s, CloseReason(*reason)).await {
                Ok(()) => Event::action_ok(index),
                Err(e) => Event::action_failed(index, ReportedError::from_wisp(&e)),
            }
        }
        PlanAction::Read { stream, until } => read(index, state, stream, *until).await,
        PlanAction::WaitClosed { stream } => {
            read(
                index,
                state,
                stream,
                PlanUntil::End(wisp_harness::shim::protocol::EndWord::End),
            )
            .await
        }
        PlanAction::Drop { stream } => {
            if let Some(slot) = state.streams.get_mut(stream)
                && let Some(s) = slot.stream.take()
            {
                slot.dropped = Some(s.end());
            }
            Event::action_ok(index)
        }
        PlanAction::CloseMux { reason } => {
            let closed = match reason {
                Some(r) => mux.close_with_reason(CloseReason(*r)).await,
                None => mux.close().await,
            };
            match closed {
                Ok(()) => Event::action_ok(index),
                Err(e) => Event::action_failed(index, ReportedError::from_wisp(&e)),
            }
        }
        PlanAction::Sleep { ms } => {
            tokio::time::sleep(Duration::from_millis(*ms)).await;
            Event::action_ok(index)
        }
    }
}

fn open<'a>(state: &'a mut State, alias: &str) -> Option<&'a mut MuxStream> {
    state.streams.get_mut(alias).and_then(|s| s.stream.as_mut())
}

async fn read(index: usize, state: &mut State, alias: &str, until: PlanUntil) -> Event {
    let Some(slot) = state.streams.get_mut(alias) else {
        return not_open(index, alias);
    };
    let Some(stream) = slot.stream.as_mut() else {
        return not_open(index, alias);
    };
    let mut data = Vec::new();
    let mut error = None;
    let mut eof = false;
    loop {
        if let PlanUntil::Bytes(n) = until
            && slot.read + data.len() >= n
        {
            break;
        }
        match stream.next().await {
            Some(Ok(chunk)) => data.extend_from_slice(&chunk),
            Some(Err(e)) => {
                error = Some(ReportedError::from_wisp(&e));
                break;
            }
            None => {
                eof = true;
                break;
            }
        }
    }
    slot.read += data.len();
    Event::Action {
        index,
        error,
        stream_id: None,
        data: Some(hex::encode(&data)),
        eof,
        sent: None,
    }
}
