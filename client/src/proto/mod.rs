//! The sans-IO protocol core: packet codec, INFO records and the client connection state
//! machine. Nothing here does I/O, spawns tasks or reads a clock, so it can be driven by any
//! runtime, fuzzed, and tested deterministically.

#[macro_use]
mod codec;
mod conn;
pub(crate) mod idmap;
mod info;
mod sendq;

pub use codec::{
    CloseReason, ConnectPacket, DecodeError, DecodeErrorKind, HEADER_LEN, Packet, PacketBody,
    PacketType, StreamType, encode_data,
};
pub use conn::{
    ClientConnection, ConnectionConfig, Event, Initiator, Negotiated, NegotiatedExtension,
    PasswordOffer, V2Config,
};
pub use info::{
    CERT_ALGORITHM_ED25519, CertAuthClientRecord, CertAuthServerRecord, ExtensionDecodeError,
    ExtensionId, ExtensionRecord, InfoPacket, PasswordClientRecord, PasswordLayout,
    PasswordServerRecord, WispVersion,
};
