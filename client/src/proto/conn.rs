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
//!      │  v2 wanted: INFO(0) ─▶ send client INFO ─▶ AwaitContinue ──┘    │ timeout
//!      │  v2 wanted: CONTINUE(0) ─▶ AwaitLateInfo ─ INFO(0): send INFO ──┘ (downgraded)
//!      └─ CLOSE(0) / timeout / malformed ─▶ Closed(error)
//! ```
//!
//! After a call that feeds input or issues a command, the driver must drain
//! [`ClientConnection::poll_transmit`] and [`ClientConnection::poll_event`] and re-arm its
//! timer from [`ClientConnection::poll_timeout`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

use super::codec::{CloseReason, Packet, PacketBody, PacketType, StreamType, encode_data};
use super::idmap::IdMap;
use super::info::{
    CERT_ALGORITHM_ED25519, CertAuthClientRecord, CertAuthServerRecord, ExtensionId,
    ExtensionRecord, InfoPacket, PasswordClientRecord, PasswordLayout, PasswordServerRecord,
    WispVersion,
};
use super::sendq::SendQueue;
use crate::error::WispError;

/// Credentials and layout for the password extension.
#[derive(Clone)]
pub struct PasswordOffer {
    /// Username and password; `None` offers the extension without credentials (the
    /// server's `required` flag is still learnt).
    pub credentials: Option<(String, String)>,
    /// The record layout to send.
    pub layout: PasswordLayout,
}

impl std::fmt::Debug for PasswordOffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordOffer")
            .field("username", &self.credentials.as_ref().map(|c| &c.0))
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

/// What the client offers in a v2 handshake.
#[derive(Clone, Debug, Default)]
pub struct V2Config {
    /// Offer UDP streams (0x01).
    pub udp: bool,
    /// Offer password authentication (0x02).
    pub password: Option<PasswordOffer>,
    /// Offer certificate authentication (0x03) with this key (`Some(None)`: offered without
    /// a key).
    pub cert_auth: Option<Option<SigningKey>>,
    /// Offer the MOTD extension (0x04).
    pub motd: bool,
    /// Offer stream-open confirmation (0x05).
    pub stream_confirmation: bool,
    /// Extensions the server must advertise; checked from its INFO before the client INFO
    /// is sent.
    pub required: Vec<ExtensionId>,
}

/// Tunables of a client connection.
#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    /// `None` speaks Wisp v1; `Some` asks for v2 with these extensions.
    pub v2: Option<V2Config>,
    /// Bound on the whole handshake (`None`: no bound).
    pub handshake_timeout: Option<Duration>,
    /// After a CONTINUE(0) arrives first in a v2 handshake, how long to wait for the INFO
    /// that draft 1–3 servers (wisp-mux 5.x) send next before settling on v1.
    pub legacy_info_wait: Duration,
    /// Largest DATA payload this client sends; longer writes are split.
    pub max_payload_len: usize,
    /// The first stream id to allocate (ids then increase by one and are never reused).
    pub first_stream_id: u32,
    /// Bound on waiting for a stream-open confirmation.
    pub stream_open_timeout: Option<Duration>,
    /// Writes block once this many bytes are queued for the transport (except the first
    /// packet of a stream with nothing queued; see [`ClientConnection::poll_transmit`]).
    pub max_queued_bytes: usize,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            v2: None,
            handshake_timeout: Some(Duration::from_secs(10)),
            legacy_info_wait: Duration::from_millis(200),
            max_payload_len: 64 * 1024 - 5,
            first_stream_id: 1,
            stream_open_timeout: Some(Duration::from_secs(30)),
            max_queued_bytes: 256 * 1024,
        }
    }
}

/// An extension both sides agreed on, with what the server said about it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NegotiatedExtension {
    /// UDP streams are allowed.
    Udp,
    /// Password authentication was used.
    Password {
        /// Whether the server required it.
        required: bool,
    },
    /// Certificate authentication was used.
    CertAuth {
        /// Whether the server required it.
        required: bool,
        /// The server's algorithm mask.
        algorithms: u8,
    },
    /// The server's message of the day (non-UTF-8 bytes replaced).
    Motd(String),
    /// Stream-open confirmation is active.
    StreamConfirmation,
}

impl NegotiatedExtension {
    /// The extension id.
    pub fn id(&self) -> ExtensionId {
        match self {
            Self::Udp => ExtensionId::UDP,
            Self::Password { .. } => ExtensionId::PASSWORD,
            Self::CertAuth { .. } => ExtensionId::CERT_AUTH,
            Self::Motd(_) => ExtensionId::MOTD,
            Self::StreamConfirmation => ExtensionId::STREAM_CONFIRMATION,
        }
    }
}

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
        self.extensions.iter().find_map(|e| match e {
            NegotiatedExtension::Motd(m) => Some(m.as_str()),
            _ => None,
        })
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

/// Something the driver must pass on to the application.
#[derive(Clone, Debug)]
#[non_exhaustive]
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
        error: WispError,
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
    ConnectionClosed(WispError),
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
    Established,
    Closed(WispError),
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
}

/// The sans-IO Wisp client connection. See the module documentation.
#[derive(Debug)]
pub struct ClientConnection {
    config: ConnectionConfig,
    phase: Phase,
    handshake_deadline: Option<Instant>,
    negotiated: Option<Negotiated>,
    /// Whether the server's `required` flag for an auth extension went unanswered.
    auth_unanswered: bool,
    streams: IdMap<StreamState>,
    next_stream_id: Option<u32>,
    transmit: SendQueue,
    events: VecDeque<Event>,
    ignored_packets: u64,
}

impl ClientConnection {
    /// A connection that starts its handshake at `now` (the server speaks first).
    pub fn new(config: ConnectionConfig, now: Instant) -> Self {
        let first = config.first_stream_id.max(1);
        Self {
            handshake_deadline: config.handshake_timeout.and_then(|t| deadline(now, t)),
            config,
            phase: Phase::AwaitFirst,
            negotiated: None,
            auth_unanswered: false,
            streams: IdMap::default(),
            next_stream_id: Some(first),
            transmit: SendQueue::default(),
            events: VecDeque::new(),
            ignored_packets: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ConnectionConfig {
        &self.config
    }

    /// Whether the handshake has completed and the connection is usable.
    pub fn is_established(&self) -> bool {
        matches!(self.phase, Phase::Established)
    }

    /// Whether the handshake is still running.
    pub fn is_handshaking(&self) -> bool {
        matches!(
            self.phase,
            Phase::AwaitFirst | Phase::AwaitContinue | Phase::AwaitLateInfo { .. }
        )
    }

    /// The error that ended the connection, once it has ended.
    pub fn error(&self) -> Option<&WispError> {
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

    /// Bytes queued for the transport and not yet taken by `poll_transmit`.
    pub fn queued_bytes(&self) -> usize {
        self.transmit.bytes()
    }

    /// The next WebSocket binary message to send. Control packets come first; streams with
    /// queued DATA then take turns, one packet each; CLOSE(0) comes last.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        let msg = self.transmit.pop(self.config.max_queued_bytes)?;
        while let Some(id) = self.transmit.next_writable() {
            if self.streams.contains_key(&id) {
                self.events.push_back(Event::StreamWritable { id });
            }
        }
        Some(msg)
    }

    /// The next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`ClientConnection::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::AwaitFirst | Phase::AwaitContinue => self.handshake_deadline,
            Phase::AwaitLateInfo { deadline, .. } => match (self.handshake_deadline, *deadline) {
                (Some(h), Some(d)) => Some(h.min(d)),
                (h, d) => h.or(d),
            },
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
                    self.fail(WispError::HandshakeTimedOut);
                }
            }
            Phase::AwaitLateInfo { credit, deadline } => {
                let credit = *credit;
                if deadline.is_some_and(|d| now >= d) {
                    self.downgrade(credit);
                } else if self.handshake_deadline.is_some_and(|d| now >= d) {
                    self.fail(WispError::HandshakeTimedOut);
                }
            }
            Phase::Established => {
                let expired: Vec<u32> = self
                    .streams
                    .iter()
                    .filter(|(_, s)| {
                        matches!(s.phase, StreamPhase::Opening { deadline: Some(d) } if now >= d)
                    })
                    .map(|(id, _)| *id)
                    .collect();
                for id in expired {
                    self.streams.remove(&id);
                    self.transmit
                        .push_close(id, Packet::close(id, CloseReason::VOLUNTARY).to_bytes());
                    self.events.push_back(Event::StreamOpenFailed {
                        id,
                        error: WispError::StreamOpenTimedOut,
                    });
                }
            }
            Phase::Closed(_) => {}
        }
    }

    /// Handles the end of the transport: EOF (`None`) or a transport error.
    pub fn handle_transport_closed(&mut self, error: Option<WispError>) {
        if !matches!(self.phase, Phase::Closed(_)) {
            self.fail(error.unwrap_or(WispError::WsImplSocketClosed));
        }
    }

    /// Handles one binary WebSocket message from the server.
    pub fn handle_message(&mut self, msg: Bytes, now: Instant) {
        if matches!(self.phase, Phase::Closed(_)) {
            return;
        }
        let packet = match Packet::decode(msg) {
            Ok(p) => p,
            Err(e) => return self.fail(WispError::MalformedPacket(e)),
        };
        match self.phase {
            Phase::AwaitFirst | Phase::AwaitContinue | Phase::AwaitLateInfo { .. } => {
                self.handle_handshake_packet(packet, now)
            }
            Phase::Established => self.handle_established_packet(packet),
            Phase::Closed(_) => {}
        }
    }

    fn handle_handshake_packet(&mut self, packet: Packet, now: Instant) {
        let stream_id = packet.stream_id;
        match packet.body {
            PacketBody::Continue { buffer_remaining } if stream_id == 0 => match self.phase {
                Phase::AwaitFirst if self.config.v2.is_some() => {
                    // Drafts 1-3 (wisp-mux 5.x) send CONTINUE then INFO; a v1 server sends
                    // only CONTINUE. Wait briefly for an INFO before settling on v1.
                    self.phase = Phase::AwaitLateInfo {
                        credit: buffer_remaining,
                        deadline: deadline(now, self.config.legacy_info_wait),
                    };
                }
                Phase::AwaitFirst => self.establish_v1(buffer_remaining, false),
                Phase::AwaitContinue => {
                    let negotiated = self.negotiated.as_mut();
                    if let Some(n) = negotiated {
                        n.initial_credit = buffer_remaining;
                    }
                    self.phase = Phase::Established;
                }
                _ => self.ignored_packets += 1,
            },
            PacketBody::Info(info) if stream_id == 0 => match (&self.phase, &self.config.v2) {
                (Phase::AwaitFirst, Some(_)) => self.handle_server_info(info, None),
                (Phase::AwaitLateInfo { credit, .. }, Some(_)) => {
                    let credit = *credit;
                    self.handle_server_info(info, Some(credit))
                }
                // A v1 client ignores INFO; a repeated INFO is ignored too.
                _ => self.ignored_packets += 1,
            },
            PacketBody::Close { reason } if stream_id == 0 => {
                let error = self.handshake_close_error(reason);
                self.fail(error);
            }
            PacketBody::Data(_) | PacketBody::Continue { .. } | PacketBody::Close { .. } => {
                let packet_type = match packet.body {
                    PacketBody::Data(_) => PacketType::DATA,
                    PacketBody::Continue { .. } => PacketType::CONTINUE,
                    _ => PacketType::CLOSE,
                };
                self.fail(WispError::UnexpectedHandshakePacket {
                    packet_type: packet_type.0,
                    stream_id,
                });
            }
            _ => self.ignored_packets += 1,
        }
    }

    /// Maps a CLOSE(0) received during the handshake to the error the application sees.
    fn handshake_close_error(&self, reason: CloseReason) -> WispError {
        match reason {
            CloseReason::PASSWORD_AUTH_FAILED => WispError::PasswordExtensionCredsInvalid,
            CloseReason::CERT_AUTH_FAILED => WispError::CertAuthExtensionSigInvalid,
            CloseReason::AUTH_REQUIRED => WispError::AuthRequired(reason),
            // Deployed servers send 0x04 where the spec now has 0xC2.
            CloseReason::EXTENSIONS_INCOMPATIBLE if self.auth_unanswered => {
                WispError::AuthRequired(reason)
            }
            CloseReason::EXTENSIONS_INCOMPATIBLE => WispError::ExtensionsIncompatible,
            other => WispError::HandshakeRejected(other),
        }
    }

    /// Draft 6: check the server's INFO, answer with the client INFO at once. With
    /// `credit` (the server already sent CONTINUE(0), drafts 1–3) the connection is then
    /// established; otherwise the CONTINUE(0) or CLOSE(0) is awaited.
    fn handle_server_info(&mut self, info: InfoPacket, credit: Option<u32>) {
        let Some(v2) = self.config.v2.clone() else {
            return;
        };
        if info.version.major != WispVersion::V2.major {
            self.reject(CloseReason::EXTENSIONS_INCOMPATIBLE);
            return self.fail(WispError::IncompatibleProtocolVersion(
                info.version,
                WispVersion::V2,
            ));
        }
        let missing: Vec<ExtensionId> = v2
            .required
            .iter()
            .copied()
            .filter(|id| info.extension(*id).is_none())
            .collect();
        if !missing.is_empty() {
            self.reject(CloseReason::EXTENSIONS_INCOMPATIBLE);
            return self.fail(WispError::missing(missing));
        }

        let mut records = Vec::new();
        let mut agreed = Vec::new();
        let mut seen = Vec::new();
        let mut password_required = false;
        let mut password_answered = false;
        let mut cert_required = false;
        let mut cert_answered = false;
        let mut cert_unusable_mask = None;
        for record in &info.extensions {
            if seen.contains(&record.id) {
                continue;
            }
            seen.push(record.id);
            let empty = |id| ExtensionRecord {
                id,
                data: Bytes::new(),
            };
            match record.id {
                ExtensionId::UDP if v2.udp => {
                    records.push(empty(ExtensionId::UDP));
                    agreed.push(NegotiatedExtension::Udp);
                }
                ExtensionId::PASSWORD => {
                    let server = PasswordServerRecord::decode(&record.data);
                    password_required = server.required;
                    let Some(offer) = &v2.password else { continue };
                    let Some((username, password)) = &offer.credentials else {
                        continue;
                    };
                    let client = PasswordClientRecord {
                        username: username.clone(),
                        password: password.clone(),
                    };
                    match client.encode(offer.layout) {
                        Ok(data) => records.push(ExtensionRecord {
                            id: ExtensionId::PASSWORD,
                            data,
                        }),
                        Err(e) => return self.fail(WispError::InvalidArgument(e.to_string())),
                    }
                    password_answered = true;
                    agreed.push(NegotiatedExtension::Password {
                        required: server.required,
                    });
                }
                ExtensionId::CERT_AUTH => {
                    let Some(Some(key)) = &v2.cert_auth else {
                        // Not used by this client: only its `required` flag matters (to
                        // read a later CLOSE 0x04 as "authentication required").
                        cert_required = record.data.first().is_some_and(|b| *b != 0);
                        continue;
                    };
                    let server = match CertAuthServerRecord::decode(&record.data) {
                        Ok(s) => s,
                        Err(e) => {
                            self.reject(CloseReason::EXTENSIONS_INCOMPATIBLE);
                            return self.fail(e.into());
                        }
                    };
                    cert_required = server.required;
                    if server.algorithms & CERT_ALGORITHM_ED25519 == 0 {
                        cert_unusable_mask = Some(server.algorithms);
                        continue;
                    }
                    let signature = key.sign(&server.challenge);
                    let key_hash: [u8; 32] = Sha256::digest(key.verifying_key().as_bytes()).into();
                    let client = CertAuthClientRecord {
                        algorithm: CERT_ALGORITHM_ED25519,
                        key_hash,
                        signature: Bytes::copy_from_slice(&signature.to_bytes()),
                    };
                    records.push(ExtensionRecord {
                        id: ExtensionId::CERT_AUTH,
                        data: client.encode(),
                    });
                    cert_answered = true;
                    agreed.push(NegotiatedExtension::CertAuth {
                        required: server.required,
                        algorithms: server.algorithms,
                    });
                }
                ExtensionId::MOTD if v2.motd => {
                    records.push(empty(ExtensionId::MOTD));
                    agreed.push(NegotiatedExtension::Motd(
                        String::from_utf8_lossy(&record.data).into_owned(),
                    ));
                }
                ExtensionId::STREAM_CONFIRMATION if v2.stream_confirmation => {
                    records.push(empty(ExtensionId::STREAM_CONFIRMATION));
                    agreed.push(NegotiatedExtension::StreamConfirmation);
                }
                // Unknown ids and extensions this client did not offer are skipped.
                _ => {}
            }
        }
        let authenticated = password_answered || cert_answered;
        if let Some(mask) = cert_unusable_mask {
            let cert_demanded =
                v2.required.contains(&ExtensionId::CERT_AUTH) || (cert_required && !authenticated);
            if cert_demanded {
                self.reject(CloseReason::EXTENSIONS_INCOMPATIBLE);
                return self.fail(WispError::CertAuthExtensionCertTypeInvalid(mask));
            }
        }
        self.auth_unanswered = (password_required || cert_required) && !authenticated;

        self.transmit
            .push_control(Packet::info(InfoPacket::new(WispVersion::V2, records)).to_bytes());
        self.negotiated = Some(Negotiated {
            version: info.version,
            downgraded: false,
            extensions: agreed,
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
        let missing: Vec<ExtensionId> = self
            .config
            .v2
            .as_ref()
            .map(|v2| {
                v2.required
                    .iter()
                    .copied()
                    .filter(|id| *id != ExtensionId::UDP)
                    .collect()
            })
            .unwrap_or_default();
        if missing.is_empty() {
            self.establish_v1(credit, true);
        } else {
            self.reject(CloseReason::EXTENSIONS_INCOMPATIBLE);
            self.fail(WispError::missing(missing));
        }
    }

    fn establish_v1(&mut self, credit: u32, downgraded: bool) {
        self.negotiated = Some(Negotiated {
            version: WispVersion::V1,
            downgraded,
            // Wisp v1.2 makes UDP mandatory.
            extensions: vec![NegotiatedExtension::Udp],
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
                        let queued = self.transmit.queued_packets(id);
                        stream.credit = buffer_remaining
                            .saturating_sub(u32::try_from(queued).unwrap_or(u32::MAX));
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
                self.fail(WispError::ClosedByServer(reason));
            }
            PacketBody::Close { reason } => {
                let removed = self.streams.remove(&id);
                if removed.is_some() {
                    // The server reads no more of this stream: what is queued is moot.
                    self.transmit.drop_stream(id);
                }
                match removed {
                    Some(StreamState {
                        phase: StreamPhase::Opening { .. },
                        ..
                    }) => self.events.push_back(Event::StreamOpenFailed {
                        id,
                        error: WispError::StreamRefused(reason),
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
    ) -> Result<u32, WispError> {
        self.check_usable()?;
        let negotiated = self.negotiated.as_ref().ok_or(WispError::MuxTaskEnded)?;
        if stream_type == StreamType::UDP && !negotiated.has(ExtensionId::UDP) {
            return Err(WispError::missing([ExtensionId::UDP]));
        }
        let confirm =
            negotiated.has(ExtensionId::STREAM_CONFIRMATION) && stream_type.is_flow_controlled();
        let credit = negotiated.initial_credit;
        let id = self
            .next_stream_id
            .ok_or(WispError::MaxStreamCountReached)?;
        self.next_stream_id = id.checked_add(1);
        let phase = if confirm {
            StreamPhase::Opening {
                deadline: self
                    .config
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
            },
        );
        self.transmit
            .push_control(Packet::connect(id, stream_type, host, port).to_bytes());
        Ok(id)
    }

    /// Sends up to `max_payload_len` bytes of `data` as one DATA packet and returns how many
    /// bytes it took. `Ok(None)` means the stream cannot send now (no credit, not yet
    /// confirmed, or the transport queue is full); an event or a drained queue will say when
    /// to retry. An empty `data` sends an empty DATA packet.
    pub fn send_data(&mut self, id: u32, data: &[u8]) -> Result<Option<usize>, WispError> {
        self.check_usable()?;
        let stream = self
            .streams
            .get_mut(&id)
            .ok_or(WispError::StreamAlreadyClosed)?;
        if matches!(stream.phase, StreamPhase::Opening { .. }) {
            return Ok(None);
        }
        let flow = stream.stream_type.is_flow_controlled();
        if flow && stream.credit == 0 {
            return Ok(None);
        }
        if !self.transmit.admits(id, self.config.max_queued_bytes) {
            self.transmit.mark_blocked(id);
            return Ok(None);
        }
        if flow {
            stream.credit -= 1;
        }
        // A UDP DATA is one datagram: it is never split.
        let n = if flow {
            data.len().min(self.config.max_payload_len.max(1))
        } else {
            data.len()
        };
        self.transmit.push_stream(id, encode_data(id, &data[..n]));
        Ok(Some(n))
    }

    /// Whether `send_data` on `id` would currently be refused for lack of credit,
    /// confirmation or queue space.
    pub fn is_blocked(&self, id: u32) -> bool {
        match self.streams.get(&id) {
            Some(s) => {
                matches!(s.phase, StreamPhase::Opening { .. })
                    || (s.stream_type.is_flow_controlled() && s.credit == 0)
                    || !self.transmit.admits(id, self.config.max_queued_bytes)
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
    pub fn is_queue_full(&self) -> bool {
        self.transmit.bytes() >= self.config.max_queued_bytes
    }

    /// Closes a stream with `reason`: queues its CLOSE and forgets it.
    pub fn close_stream(&mut self, id: u32, reason: CloseReason) -> Result<(), WispError> {
        self.check_usable()?;
        if self.streams.remove(&id).is_none() {
            return Err(WispError::StreamAlreadyClosed);
        }
        self.transmit
            .push_close(id, Packet::close(id, reason).to_bytes());
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
        self.fail(WispError::ClosedLocally);
    }

    fn check_usable(&self) -> Result<(), WispError> {
        match &self.phase {
            Phase::Established => Ok(()),
            Phase::Closed(_) => Err(WispError::MuxTaskEnded),
            _ => Err(WispError::MuxTaskEnded),
        }
    }

    /// Queues CLOSE(0, reason): the client rejects the handshake.
    fn reject(&mut self, reason: CloseReason) {
        self.transmit.push_last(Packet::close(0, reason).to_bytes());
    }

    fn fail(&mut self, error: WispError) {
        self.streams.clear();
        self.events
            .push_back(Event::ConnectionClosed(error.clone()));
        self.phase = Phase::Closed(error);
    }
}
