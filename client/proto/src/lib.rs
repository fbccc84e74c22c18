//! The sans-IO core of a Wisp client: the packet codec, one module per v2 extension, and the
//! client connection state machine.
//!
//! Nothing here does I/O, spawns tasks or reads a clock: WebSocket messages and `Instant`s go
//! in, packets to send and events come out. The crate has no tokio dependency (a test checks
//! the dependency tree), so it can be driven by any runtime, fuzzed, and tested
//! deterministically. `wisp-client` is the tokio driver around it and re-exports it as
//! `wisp_client::proto`.
//!
//! ```
//! use std::time::Instant;
//! use wisp_proto::{ClientConnection, MuxOptions, Packet};
//!
//! let now = Instant::now();
//! // `None`: speak Wisp v1 (the server's CONTINUE(0) is the whole handshake).
//! let mut conn = ClientConnection::new(None, MuxOptions::default(), now);
//! conn.handle_message(Packet::continue_(0, 128).to_bytes(), now);
//! assert!(conn.is_established());
//! assert_eq!(conn.negotiated().map(|n| n.initial_credit), Some(128));
//! ```
//!
//! # Where things live
//!
//! - [`Packet`], [`DecodeError`] and the open `u8` code spaces ([`PacketType`],
//!   [`StreamType`], [`CloseReason`]): the codec.
//! - [`InfoPacket`] and [`encode_record`]: INFO and its record framing.
//! - [`ext`]: one module per extension (its id, both records, its negotiation rule and the
//!   value a connection exposes) and the registry that lists them; [`WispV2Handshake`] is
//!   what the client offers.
//! - [`ClientConnection`]: the handshake and stream state machine.
//! - [`frames`]: how queued packets are encoded for the transport ([`Framing`]: one
//!   message per packet, or masked client WebSocket frames a driver writes in [`Batch`]es).
//! - [`Error`]: what went wrong, by who is to blame, and [`close_reason_for`], the one place
//!   that decides which CLOSE the client sends for an error.
//! - [`MuxOptions`]: every tunable, once.
//! - [`idmap`] (maps keyed by stream id) and [`reclaim`] (collections that give memory back
//!   after a burst), shared with the driver.

#[macro_use]
mod codec;
mod conn;
mod error;
pub mod ext;
pub mod frames;
pub mod idmap;
mod info;
mod negotiate;
mod options;
pub mod reclaim;
mod sendq;

pub use codec::{
    CloseReason, ConnectPacket, DecodeError, DecodeErrorKind, HEADER_LEN, Packet, PacketBody,
    PacketType, StreamType, encode_data, encode_header,
};
pub use conn::{ClientConnection, Event, Initiator, Negotiated};
pub use error::{
    Error, Malformed, Misuse, PeerIncompatible, PeerMisbehaved, Rejection, TransportError, Wait,
    close_reason_for,
};
pub use ext::cert_auth::{
    CERT_ALGORITHM_ED25519, CertAuthClientRecord, CertAuthExtensionBuilder, CertAuthServerRecord,
};
pub use ext::confirm::StreamConfirmationExtensionBuilder;
pub use ext::motd::{MotdExtensionBuilder, MotdServerRecord};
pub use ext::password::{
    PasswordClientRecord, PasswordExtensionBuilder, PasswordLayout, PasswordServerRecord,
};
pub use ext::udp::UdpExtensionBuilder;
pub use ext::{
    AnyExtensionBuilder, ExtensionId, HandshakeOrder, NegotiatedExtension, WispV2Handshake,
};
pub use frames::{Batch, FrameBuf, Framing, MaskKeys};
pub use idmap::StreamHandle;
pub use info::{ExtensionDecodeError, ExtensionRecord, InfoPacket, WispVersion, encode_record};
#[cfg(feature = "serde")]
pub use options::serde_duration;
pub use options::{MuxOptions, parse_duration};
