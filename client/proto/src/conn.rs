//! The client connection state machine.
//!
//! [`ClientConnection`] holds every piece of protocol state of one Wisp connection: the
//! handshake, the negotiated extensions, each stream's phase and flow-control credit, and the
//! queue of packets to send. It does no I/O and reads no clock: bytes and time go in through
//! `handle_*`, packets and events come out through `poll_*`.
//!
//! ```text
//!            v1 wanted: CONTINUE(0)                         INFO ignored
//!   AwaitFirst ─────────────────────────────────────────▶ Established ◀──┐
//!      │  v2 wanted: INFO(0) ─▶ send client INFO ─▶ AwaitContinue ──┘    │ timeout, or any
//!      │  v2 wanted: CONTINUE(0) ─▶ AwaitLateInfo ─ INFO(0): send INFO ──┘ other packet
//!      │                                                                   (downgraded)
//!      │  v1 wanted: INFO(0) ─▶ AwaitV1Continue ─ CONTINUE(0) ─▶ Established (drafts 4–5)
//!      │                              └─ timeout ─▶ Closed(the server demands v2)
//!      └─ CLOSE(0) / timeout / malformed ─▶ Closed(error)
//! ```
//!
//! Waiting after CONTINUE(0) for a v2 INFO (`AwaitLateInfo`) and, on a v1 connection, after an
//! INFO for CONTINUE(0) (`AwaitV1Continue`) both last [`MuxOptions::legacy_info_wait`]. A v1
//! client never answers an INFO: the spec (draft 5+) lets a server speak v2 only to a client
//! that offered `Sec-WebSocket-Protocol`, so a server that sends INFO and then nothing to a
//! client that did not is refusing v1, and the client fails with
//! [`PeerIncompatible::Version`] (found 2.x, speaks 1.2) instead of waiting out the handshake
//! timeout.
//!
//! After a call that feeds input or issues a command, the driver must drain
//! [`ClientConnection::poll_transmit`] (or [`ClientConnection::poll_transmit_batch`], see
//! [`Framing`]) and [`ClientConnection::poll_event`] and re-arm its timer from
//! [`ClientConnection::poll_timeout`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::codec::{CloseReason, Packet, PacketBody, StreamType};
use crate::error::{
    Error, Misuse, PeerIncompatible, PeerMisbehaved, Rejection, TransportError, Wait,
    close_reason_for,
};
use crate::ext::{
    ExtensionId, HandshakeOrder, NegotiatedExtension, WispV2Handshake, confirm, motd,
};
use crate::frames::{Batch, Framing};
use crate::idmap::{StreamHandle, StreamTable};
use crate::info::{InfoPacket, WispVersion};
use crate::negotiate;
use crate::options::MuxOptions;
use crate::reclaim::Reclaim;
use crate::sendq::{SendQueue, StreamTx, clear_blocked};

/// The outcome of a successful handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The version spoken: 1.2 for v1 (requested or downgraded), the server's INFO version
    /// for v2.
    pub version: WispVersion,
    /// v2 was requested but the server answered as v1.
    pub downgraded: bool,
    /// The agreed extensions (on v1 connections: UDP, which v1.2 makes mandatory).
    pub extensions: Vec<NegotiatedExtension>,
    /// The per-stream credit from the handshake CONTINUE.
    pub initial_credit: u32,
}

impl Negotiated {
    /// Whether `id` was agreed.
    pub fn has(&self, id: ExtensionId) -> bool {
        self.extensions.iter().any(|e| e.id() == id)
    }

    /// The MOTD, if the extension was agreed.
    pub fn motd(&self) -> Option<&str> {
        motd::message(&self.extensions)
    }
}

/// Who ended a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Initiator {
    /// This client (a close call, a drop, or a timeout).
    Local,
    /// The server, with a CLOSE packet.
    Remote,
}

/// Something the driver must pass on to the application. Exhaustive on purpose: a driver
/// handles every event.
#[derive(Clone, Debug)]
pub enum Event {
    /// The server confirmed a stream (stream-open confirmation).
    StreamOpened {
        /// The stream.
        id: u32,
    },
    /// A stream could not be opened (refused, or not confirmed in time).
    StreamOpenFailed {
        /// The stream.
        id: u32,
        /// Why.
        error: Error,
    },
    /// Data for a stream, in arrival order.
    StreamData {
        /// The stream.
        id: u32,
        /// The payload (possibly empty).
        data: Bytes,
    },
    /// A stream got credit after having none.
    StreamWritable {
        /// The stream.
        id: u32,
    },
    /// A stream ended; it is forgotten afterwards.
    StreamClosed {
        /// The stream.
        id: u32,
        /// The close reason (sent or received).
        reason: CloseReason,
        /// Who closed it.
        initiator: Initiator,
    },
    /// The connection ended; every stream still open ends with it.
    ConnectionClosed(Error),
}

/// The deadline `wait` after `now`; `None` when it lies beyond what an `Instant` can
/// represent (`Duration::MAX` and the like mean "never", not a panic).
fn deadline(now: Instant, wait: Duration) -> Option<Instant> {
    now.checked_add(wait)
}

/// The handshake or connection phase.
#[derive(Debug)]
enum Phase {
    AwaitFirst,
    AwaitContinue,
    AwaitLateInfo {
        credit: u32,
        deadline: Option<Instant>,
    },
    /// A v1 client got INFO first: CONTINUE(0) follows at once from a draft 4–5 server.
    AwaitV1Continue {
        found: WispVersion,
        deadline: Option<Instant>,
    },
    Established,
    Closed(Error),
}

#[derive(Debug)]
enum StreamPhase {
    Opening { deadline: Option<Instant> },
    Open,
}

#[derive(Debug)]
struct StreamState {
    stream_type: StreamType,
    credit: u32,
    phase: StreamPhase,
    /// Its part of the transmit queue's live batch.
    tx: StreamTx,
}

/// The sans-IO Wisp client connection. See the module documentation.
#[derive(Debug)]
pub struct ClientConnection {
    /// `None`: Wisp v1.
    handshake: Option<WispV2Handshake>,
    options: MuxOptions,
    /// [`MuxOptions::payload_limit`], read on every write.
    payload_limit: usize,
    phase: Phase,
    handshake_deadline: Option<Instant>,
    negotiated: Option<Negotiated>,
    /// Whether the server's `required` flag for an auth extension went unanswered.
    auth_unanswered: bool,
    streams: StreamTable<StreamState>,
    next_stream_id: Option<u32>,
    transmit: SendQueue,
    events: VecDeque<Event>,
    ignored_packets: u64,
}

impl ClientConnection {
    /// A connection that starts its handshake at `now` (the server speaks first). `None`
    /// speaks Wisp v1; `Some` asks for v2 with these extensions.
    pub fn new(handshake: Option<WispV2Handshake>, options: MuxOptions, now: Instant) -> Self {
        let first = options.first_stream_id.max(1);
        let transmit = SendQueue::new(Framing::Messages, options.max_queued_bytes);
        Self {
            handshake_deadline: options.handshake_timeout.and_then(|t| deadline(now, t)),
            handshake,
            payload_limit: options.payload_limit(),
            options,
            phase: Phase::AwaitFirst,
            negotiated: None,
            auth_unanswered: false,
            streams: StreamTable::default(),
            next_stream_id: Some(first),
            transmit,
            events: VecDeque::new(),
            ignored_packets: 0,
        }
    }

    /// Encodes every packet in `framing` from now on (the default is
    /// [`Framing::Messages`]). Call it before anything is queued: right after
    /// [`ClientConnection::new`] (the server speaks first, so nothing is queued before its
    /// first message is handled).
    pub fn with_framing(mut self, framing: Framing) -> Self {
        self.transmit.set_framing(framing);
        self
    }

    /// The options.
    pub fn options(&self) -> &MuxOptions {
        &self.options
    }

    /// Whether the handshake has completed and the connection is usable.
    #[inline]
    pub fn is_established(&self) -> bool {
        matches!(self.phase, Phase::Established)
    }

    /// Whether the handshake is still running.
    #[inline]
    pub fn is_handshaking(&self) -> bool {
        matches!(
            self.phase,
            Phase::AwaitFirst
                | Phase::AwaitContinue
                | Phase::AwaitLateInfo { .. }
                | Phase::AwaitV1Continue { .. }
        )
    }

    /// The error that ended the connection, once it has ended.
    #[inline]
    pub fn error(&self) -> Option<&Error> {
        match &self.phase {
            Phase::Closed(e) => Some(e),
            _ => None,
        }
    }

    /// The handshake outcome, once established.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// Well-formed packets that were ignored (unknown types, unknown streams, late INFO, ...).
    pub fn ignored_packets(&self) -> u64 {
        self.ignored_packets
    }

    /// Number of open (or opening) streams.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// The current credit of a flow-controlled stream (`None`: unknown stream or UDP).
    pub fn credit(&self, id: u32) -> Option<u32> {
        self.streams
            .get(&id)
            .filter(|s| s.stream_type.is_flow_controlled())
            .map(|s| s.credit)
    }

    /// Bytes queued for the transport and not yet taken by `poll_transmit` or
    /// `poll_transmit_batch`.
    #[inline]
    pub fn queued_bytes(&self) -> usize {
        self.transmit.bytes()
    }

    /// The next WebSocket binary message to send ([`Framing::Messages`]; `None` in any
    /// other framing). Packets leave in batches: each batch's control packets (CONNECT,
    /// INFO, CLOSE) first, then its DATA in the order it was queued, where every busy
    /// stream had its share; CLOSE(0) comes last.
    #[must_use]
    #[inline]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if !matches!(self.transmit.framing(), Framing::Messages) {
            return None;
        }
        let msg = self.transmit.pop_message();
        self.report_writable();
        msg
    }

    /// Takes everything queued, encoded in the connection's [`Framing`], into `batch`
    /// (whose buffers the connection keeps for the next one): control packets first, then
    /// the DATA, or CLOSE(0) alone once nothing else is left. Write both
    /// [`Batch::parts`] in order. Returns whether anything was taken. Writers refused for
    /// lack of room get [`Event::StreamWritable`].
    #[inline]
    pub fn poll_transmit_batch(&mut self, batch: &mut Batch) -> bool {
        let took = self.transmit.take(batch);
        self.report_writable();
        took
    }

    /// Bytes of memory the transmit queue's buffers hold. They keep the size the busiest
    /// moment gave them, so that filling them again costs nothing; a driver that finds
    /// the connection idle for a while frees them with
    /// [`ClientConnection::release_transmit_buffers`].
    pub fn transmit_capacity(&self) -> usize {
        self.transmit.capacity()
    }

    /// Frees the transmit queue's buffers if nothing is queued (they grow again on
    /// demand).
    pub fn release_transmit_buffers(&mut self) {
        self.transmit.release_buffers();
    }

    /// Turns the streams the transmit queue reports writable into events.
    fn report_writable(&mut self) {
        while let Some(id) = self.transmit.next_writable() {
            if let Some(stream) = self.streams.get_mut(&id)
                && clear_blocked(&mut stream.tx)
            {
                self.events.push_back(Event::StreamWritable { id });
            }
        }
    }

    /// The next event for the application.
    #[must_use]
    #[inline]
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front();
        self.events.reclaim();
        event
    }

    /// When [`ClientConnection::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::AwaitFirst | Phase::AwaitContinue => self.handshake_deadline,
            Phase::AwaitLateInfo { deadline, .. } | Phase::AwaitV1Continue { deadline, .. } => {
                match (self.handshake_deadline, *deadline) {
                    (Some(h), Some(d)) => Some(h.min(d)),
                    (h, d) => h.or(d),
                }
            }
            Phase::Established => self
                .streams
                .values()
                .filter_map(|s| match s.phase {
                    StreamPhase::Opening { deadline } => deadline,
                    StreamPhase::Open => None,
                })
                .min(),
            Phase::Closed(_) => None,
        }
    }

    /// Handles the passing of time.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &self.phase {
            Phase::AwaitFirst | Phase::AwaitContinue => {
                if self.handshake_deadline.is_some_and(|d| now >= d) {
                    self.fail(Error::TimedOut(Wait::Handshake));
                }
            }
            Phase::AwaitLateInfo { credit, deadline } => {
                let credit = *credit;
                if deadline.is_some_and(|d| now >= d) {
                    self.downgrade(credit);
                } else if self.handshake_deadline.is_some_and(|d| now >= d) {
                    self.fail(Error::TimedOut(Wait::Handshake));
                }
            }
            Phase::AwaitV1Continue { found, deadline } => {
                let found = *found;
                if deadline.is_some_and(|d| now >= d) {
                    self.fail(
                        PeerIncompatible::Version {
                            found,
                            speaks: WispVersion::V1,
                        }
                        .into(),
                    );
                } else if self.handshake_deadline.is_some_and(|d| now >= d) {
                    self.fail(Error::TimedOut(Wait::Handshake));
                }
            }
            Phase::Established => {
                let expired: Vec<u32> = self
                    .streams
                    .iter()
                    .filter(|(_, s)| {
                        matches!(s.phase, StreamPhase::Opening { deadline: Some(d) } if now >= d)
                    })
                    .map(|(id, _)| id)
                    .collect();
                for id in expired {
                    self.forget_stream(id);
                    self.fail_stream_open(id, Error::TimedOut(Wait::StreamOpen));
                }
            }
            Phase::Closed(_) => {}
        }
    }

    /// Handles the end of the transport: EOF, a transport error, or the driver giving up.
    pub fn handle_transport_closed(&mut self, error: TransportError) {
        if !matches!(self.phase, Phase::Closed(_)) {
            self.fail(Error::Transport(error));
        }
    }

    /// Handles one binary WebSocket message from the server.
    pub fn handle_message(&mut self, msg: Bytes, now: Instant) {
        if matches!(self.phase, Phase::Closed(_)) {
            return;
        }
        let packet = match Packet::decode(msg) {
            Ok(p) => p,
            Err(e) => return self.fail(e.into()),
        };
        match self.phase {
            Phase::AwaitFirst
            | Phase::AwaitContinue
            | Phase::AwaitLateInfo { .. }
            | Phase::AwaitV1Continue { .. } => self.handle_handshake_packet(packet, now),
            Phase::Established => self.handle_established_packet(packet),
            Phase::Closed(_) => {}
        }
    }

    fn handle_handshake_packet(&mut self, packet: Packet, now: Instant) {
        let stream_id = packet.stream_id;
        if let Phase::AwaitLateInfo { credit, .. } = self.phase {
            // Waiting for a drafts 1–3 INFO after CONTINUE(0): any other packet means the
            // server is v1. Settle on v1 and handle the packet as a v1 connection would
            // (a packet for a stream nobody opened is ignored). CLOSE(0) still refuses the
            // handshake, below.
            let is_info = matches!(packet.body, PacketBody::Info(_)) && stream_id == 0;
            let is_close_zero = matches!(packet.body, PacketBody::Close { .. }) && stream_id == 0;
            if !is_info && !is_close_zero {
                self.downgrade(credit);
                if self.is_established() {
                    self.handle_established_packet(packet);
                }
                return;
            }
        }
        match packet.body {
            PacketBody::Continue { buffer_remaining } if stream_id == 0 => match self.phase {
                Phase::AwaitFirst if self.handshake.is_some() => {
                    // Drafts 1-3 (wisp-mux 5.x) send CONTINUE then INFO; a v1 server sends
                    // only CONTINUE. Wait briefly for an INFO before settling on v1.
                    self.phase = Phase::AwaitLateInfo {
                        credit: buffer_remaining,
                        deadline: deadline(now, self.options.legacy_info_wait),
                    };
                }
                Phase::AwaitFirst | Phase::AwaitV1Continue { .. } => {
                    self.establish_v1(buffer_remaining, false)
                }
                Phase::AwaitContinue => {
                    let negotiated = self.negotiated.as_mut();
                    if let Some(n) = negotiated {
                        n.initial_credit = buffer_remaining;
                    }
                    self.phase = Phase::Established;
                }
                _ => self.ignored_packets += 1,
            },
            PacketBody::Info(info) if stream_id == 0 => match (&self.phase, &self.handshake) {
                (Phase::AwaitFirst, Some(_)) => self.handle_server_info(info, None),
                (Phase::AwaitLateInfo { credit, .. }, Some(_)) => {
                    let credit = *credit;
                    self.handle_server_info(info, Some(credit))
                }
                // A v1 client ignores INFO, but a server that sends nothing after it wants
                // v2: wait briefly for the CONTINUE(0) of drafts 4–5.
                (Phase::AwaitFirst, None) => {
                    self.ignored_packets += 1;
                    self.phase = Phase::AwaitV1Continue {
                        found: info.version,
                        deadline: deadline(now, self.options.legacy_info_wait),
                    };
                }
                // A repeated INFO is ignored.
                _ => self.ignored_packets += 1,
            },
            PacketBody::Close { reason } if stream_id == 0 => {
                let error = self.handshake_close_error(reason);
                self.fail(error);
            }
            PacketBody::Data(_) | PacketBody::Continue { .. } | PacketBody::Close { .. } => {
                self.fail(Error::PeerMisbehaved(
                    PeerMisbehaved::UnexpectedHandshakePacket {
                        packet_type: packet.packet_type(),
                        stream_id,
                    },
                ));
            }
            _ => self.ignored_packets += 1,
        }
    }

    /// Maps a CLOSE(0) received during the handshake to the error the application sees.
    fn handshake_close_error(&self, reason: CloseReason) -> Error {
        Error::Rejected(match reason {
            CloseReason::PASSWORD_AUTH_FAILED => Rejection::PasswordInvalid,
            CloseReason::CERT_AUTH_FAILED => Rejection::CertSignatureInvalid,
            CloseReason::AUTH_REQUIRED => Rejection::AuthRequired(reason),
            // Deployed servers send 0x04 where the spec now has 0xC2.
            CloseReason::EXTENSIONS_INCOMPATIBLE if self.auth_unanswered => {
                Rejection::AuthRequired(reason)
            }
            CloseReason::EXTENSIONS_INCOMPATIBLE => Rejection::ExtensionsIncompatible,
            other => Rejection::Handshake(other),
        })
    }

    /// Draft 6: check the server's INFO, answer with the client INFO at once. With
    /// `credit` (the server already sent CONTINUE(0), drafts 1–3) the connection is then
    /// established; otherwise the CONTINUE(0) or CLOSE(0) is awaited.
    fn handle_server_info(&mut self, info: InfoPacket, credit: Option<u32>) {
        let Some(handshake) = &self.handshake else {
            return;
        };
        let order = match credit {
            Some(_) => HandshakeOrder::ContinueFirst,
            None => HandshakeOrder::InfoFirst,
        };
        let agreement = match negotiate::answer(handshake, &info, order) {
            Ok(a) => a,
            Err(e) => return self.fail(e),
        };
        self.auth_unanswered = agreement.auth_unanswered;
        self.transmit
            .push_control(&Packet::info(agreement.info).to_bytes());
        self.negotiated = Some(Negotiated {
            version: info.version,
            downgraded: false,
            extensions: agreement.agreed,
            initial_credit: credit.unwrap_or(0),
        });
        self.phase = match credit {
            Some(_) => Phase::Established,
            None => Phase::AwaitContinue,
        };
    }

    /// A v2 handshake answered as v1: settle on v1, unless the client requires an extension
    /// v1 cannot provide (everything but UDP, which v1.2 makes mandatory). A server that
    /// pretends to be v1 must not get around required authentication that way.
    fn downgrade(&mut self, credit: u32) {
        let missing = self
            .handshake
            .as_ref()
            .map(negotiate::missing_on_v1)
            .unwrap_or_default();
        if missing.is_empty() {
            self.establish_v1(credit, true);
        } else {
            self.fail(PeerIncompatible::MissingExtensions(missing).into());
        }
    }

    fn establish_v1(&mut self, credit: u32, downgraded: bool) {
        self.negotiated = Some(Negotiated {
            version: WispVersion::V1,
            downgraded,
            // Wisp v1.2 makes UDP mandatory.
            extensions: crate::ext::implied_by_v1(),
            initial_credit: credit,
        });
        self.phase = Phase::Established;
    }

    fn handle_established_packet(&mut self, packet: Packet) {
        let id = packet.stream_id;
        match packet.body {
            PacketBody::Data(data) => match self.streams.get(&id) {
                Some(_) => self.events.push_back(Event::StreamData { id, data }),
                None => self.ignored_packets += 1,
            },
            PacketBody::Continue { buffer_remaining } => {
                let Some(stream) = self.streams.get_mut(&id) else {
                    self.ignored_packets += 1;
                    return;
                };
                let was_blocked = stream.credit == 0;
                match stream.phase {
                    StreamPhase::Opening { .. } => {
                        stream.phase = StreamPhase::Open;
                        stream.credit = buffer_remaining;
                        self.events.push_back(Event::StreamOpened { id });
                    }
                    StreamPhase::Open if stream.stream_type.is_flow_controlled() => {
                        // CONTINUE replaces the credit; it does not add to it. Packets still
                        // in this client's queue were charged to the old credit but reach
                        // the server after this CONTINUE, so they count against the new one.
                        let queued = self.transmit.queued_packets(&stream.tx);
                        stream.credit = buffer_remaining.saturating_sub(queued);
                        if was_blocked && stream.credit > 0 {
                            self.events.push_back(Event::StreamWritable { id });
                        }
                    }
                    // CONTINUE for UDP is forbidden by the spec but sent by deployed
                    // servers; it carries no meaning.
                    StreamPhase::Open => self.ignored_packets += 1,
                }
            }
            PacketBody::Close { reason } if id == 0 => {
                self.fail(Rejection::Connection(reason).into());
            }
            PacketBody::Close { reason } => {
                // DATA of this stream already encoded into the transmit batch still goes out;
                // the server ignores DATA for a stream it closed.
                match self.forget_stream(id) {
                    Some(StreamState {
                        phase: StreamPhase::Opening { .. },
                        ..
                    }) => self.events.push_back(Event::StreamOpenFailed {
                        id,
                        error: Rejection::StreamOpen(reason).into(),
                    }),
                    Some(_) => self.events.push_back(Event::StreamClosed {
                        id,
                        reason,
                        initiator: Initiator::Remote,
                    }),
                    None => self.ignored_packets += 1,
                }
            }
            // INFO after the handshake, CONNECT from a server and unknown types are ignored.
            _ => self.ignored_packets += 1,
        }
    }

    /// Opens a stream: queues its CONNECT and returns its id. With stream-open
    /// confirmation negotiated (TCP streams), [`Event::StreamOpened`] or
    /// [`Event::StreamOpenFailed`] follows.
    pub fn open_stream(
        &mut self,
        stream_type: StreamType,
        host: &str,
        port: u16,
        now: Instant,
    ) -> Result<u32, Error> {
        self.check_usable()?;
        let negotiated = self.negotiated.as_ref().ok_or(Misuse::Handshaking)?;
        if stream_type == StreamType::UDP && !negotiated.has(ExtensionId::UDP) {
            return Err(Misuse::NotNegotiated(ExtensionId::UDP).into());
        }
        let confirm = confirm::confirms(&negotiated.extensions, stream_type.is_flow_controlled());
        let credit = negotiated.initial_credit;
        let id = self.next_stream_id.ok_or(Misuse::StreamIdsExhausted)?;
        self.next_stream_id = id.checked_add(1);
        let phase = if confirm {
            StreamPhase::Opening {
                deadline: self
                    .options
                    .stream_open_timeout
                    .and_then(|t| deadline(now, t)),
            }
        } else {
            StreamPhase::Open
        };
        self.streams.insert(
            id,
            StreamState {
                stream_type,
                credit: if confirm { 0 } else { credit },
                phase,
                tx: StreamTx::default(),
            },
        );
        self.transmit
            .push_control(&Packet::connect(id, stream_type, host, port).to_bytes());
        Ok(id)
    }

    /// Sends up to `max_payload_len` bytes of `data` as one DATA packet and returns how many
    /// bytes it took. `Ok(None)` means the stream cannot send now (no credit, not yet
    /// confirmed, or the transport queue is full); an event or a drained queue will say when
    /// to retry. An empty `data` sends an empty DATA packet.
    pub fn send_data(&mut self, id: u32, data: &[u8]) -> Result<Option<usize>, Error> {
        self.send_data_on(&mut StreamHandle::new(id), data)
    }

    /// [`ClientConnection::send_data`] on the stream `stream` names: a writer that keeps
    /// its [`StreamHandle`] finds its stream by index, not by hashing its id (the handle
    /// is refreshed when it was stale).
    #[inline(always)]
    pub fn send_data_on(
        &mut self,
        stream: &mut StreamHandle,
        data: &[u8],
    ) -> Result<Option<usize>, Error> {
        let id = stream.id();
        // A stream is known only while the connection is established (streams open on an
        // established connection, and the end of the connection forgets them all), so
        // finding it is the usability check; the error says why it was not found.
        let Some(stream) = self.streams.get_by_handle(stream) else {
            return Err(self.missing_stream_error());
        };
        if matches!(stream.phase, StreamPhase::Opening { .. }) {
            return Ok(None);
        }
        let flow = stream.stream_type.is_flow_controlled();
        if flow && stream.credit == 0 {
            return Ok(None);
        }
        // A UDP DATA is one datagram: it is never split.
        let n = if flow {
            data.len().min(self.payload_limit)
        } else {
            data.len()
        };
        if !self.transmit.admits(&stream.tx) {
            self.transmit.mark_blocked(id, &mut stream.tx);
            return Ok(None);
        }
        if flow {
            stream.credit -= 1;
        }
        self.transmit.push_data(id, &mut stream.tx, &data[..n]);
        Ok(Some(n))
    }

    /// Whether `send_data` on `id` would currently be refused for lack of credit,
    /// confirmation or queue space.
    #[inline]
    pub fn is_blocked(&self, id: u32) -> bool {
        match self.streams.get(&id) {
            Some(s) => {
                matches!(s.phase, StreamPhase::Opening { .. })
                    || (s.stream_type.is_flow_controlled() && s.credit == 0)
                    || !self.transmit.admits(&s.tx)
            }
            None => false,
        }
    }

    /// Whether stream `id` waits for its open confirmation.
    pub fn is_opening(&self, id: u32) -> bool {
        self.streams
            .get(&id)
            .is_some_and(|s| matches!(s.phase, StreamPhase::Opening { .. }))
    }

    /// Whether the transport queue is over its limit.
    #[inline]
    pub fn is_queue_full(&self) -> bool {
        self.transmit.is_full()
    }

    /// Closes a stream with `reason`: queues its CLOSE and forgets it.
    pub fn close_stream(&mut self, id: u32, reason: CloseReason) -> Result<(), Error> {
        self.check_usable()?;
        let Some(stream) = self.forget_stream(id) else {
            return Err(Misuse::StreamClosed.into());
        };
        self.transmit
            .push_close(Some(&stream.tx), &Packet::close(id, reason).to_bytes());
        self.events.push_back(Event::StreamClosed {
            id,
            reason,
            initiator: Initiator::Local,
        });
        Ok(())
    }

    /// Closes the whole connection; with a reason, CLOSE(0, reason) is queued first.
    pub fn close(&mut self, reason: Option<CloseReason>) {
        if matches!(self.phase, Phase::Closed(_)) {
            return;
        }
        if let Some(reason) = reason {
            // After the DATA already queued, like every other write before the close.
            self.transmit.push_last(Packet::close(0, reason).to_bytes());
        }
        self.fail(Error::ClosedLocally);
    }

    /// Fails the connection unless every id in `required` was negotiated: the client sends
    /// CLOSE(0, 0x04) and the connection ends with
    /// [`PeerIncompatible::MissingExtensions`], which is returned.
    pub fn require_extensions(&mut self, required: &[ExtensionId]) -> Result<(), Error> {
        let negotiated = self.negotiated.as_ref().ok_or(Misuse::Handshaking)?;
        let missing: Vec<ExtensionId> = required
            .iter()
            .copied()
            .filter(|id| !negotiated.has(*id))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let error = Error::from(PeerIncompatible::MissingExtensions(missing));
        self.fail(error.clone());
        Err(error)
    }

    /// The error for an operation on stream `id` that the connection does not know: the
    /// connection's state, or [`Misuse::StreamClosed`].
    #[cold]
    fn missing_stream_error(&self) -> Error {
        match self.check_usable() {
            Err(e) => e,
            Ok(()) => Misuse::StreamClosed.into(),
        }
    }

    fn check_usable(&self) -> Result<(), Error> {
        match &self.phase {
            Phase::Established => Ok(()),
            Phase::Closed(_) => Err(Misuse::ConnectionEnded.into()),
            Phase::AwaitFirst
            | Phase::AwaitContinue
            | Phase::AwaitLateInfo { .. }
            | Phase::AwaitV1Continue { .. } => Err(Misuse::Handshaking.into()),
        }
    }

    /// Removes stream `id` from the stream map, giving memory back after a burst.
    fn forget_stream(&mut self, id: u32) -> Option<StreamState> {
        let removed = self.streams.remove(&id);
        self.streams.reclaim();
        removed
    }

    /// Ends the open of stream `id` (already forgotten) with `error`, sending the CLOSE
    /// [`close_reason_for`] gives.
    fn fail_stream_open(&mut self, id: u32, error: Error) {
        if let Some(reason) = close_reason_for(&error) {
            // A stream still opening has queued no DATA.
            self.transmit
                .push_close(None, &Packet::close(id, reason).to_bytes());
        }
        self.events.push_back(Event::StreamOpenFailed { id, error });
    }

    /// Ends the connection with `error`, sending the CLOSE(0) [`close_reason_for`] gives
    /// (after everything already queued).
    fn fail(&mut self, error: Error) {
        if matches!(self.phase, Phase::Closed(_)) {
            return;
        }
        if let Some(reason) = close_reason_for(&error) {
            self.transmit.push_last(Packet::close(0, reason).to_bytes());
        }
        self.streams.clear();
        self.streams.reclaim();
        self.events
            .push_back(Event::ConnectionClosed(error.clone()));
        self.phase = Phase::Closed(error);
    }
}
