//! The core's error: what went wrong, grouped by who is to blame, and [`close_reason_for`],
//! the one place that decides which CLOSE the client sends because of an error.
//!
//! | who | variant |
//! |---|---|
//! | the server's bytes do not decode | [`Error::Malformed`] |
//! | the server broke the protocol | [`Error::PeerMisbehaved`] |
//! | the server is well-behaved but cannot serve this client | [`Error::PeerIncompatible`] |
//! | the server said no, with a CLOSE reason | [`Error::Rejected`] |
//! | nobody answered in time | [`Error::TimedOut`] |
//! | the caller asked for something impossible | [`Error::Misuse`] |
//! | the transport under the connection ended | [`Error::Transport`] |
//! | the caller closed the connection | [`Error::ClosedLocally`] |
//!
//! The enums are deliberately exhaustive: whoever maps them (`wisp-client`'s `WispError`,
//! [`close_reason_for`]) matches every variant, so a new failure cannot slip through a
//! wildcard arm unnoticed.

use std::fmt;
use std::sync::Arc;

use crate::codec::{CloseReason, DecodeError, PacketType};
use crate::ext::ExtensionId;
use crate::info::{ExtensionDecodeError, WispVersion};

/// Why a connection (or one stream open) failed. Cheap to clone, so every stream of a failed
/// connection can see why it ended.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// The server sent bytes that do not decode.
    #[error(transparent)]
    Malformed(Malformed),
    /// The server sent a well-formed packet the protocol does not allow at this point.
    #[error(transparent)]
    PeerMisbehaved(PeerMisbehaved),
    /// The server follows the protocol but cannot give this client what it needs.
    #[error(transparent)]
    PeerIncompatible(PeerIncompatible),
    /// The server refused the handshake or a stream, or ended the connection, with a CLOSE.
    #[error(transparent)]
    Rejected(Rejection),
    /// Nothing arrived in time for this wait.
    #[error("timed out waiting for {0}")]
    TimedOut(Wait),
    /// The caller asked for something the connection cannot do.
    #[error(transparent)]
    Misuse(Misuse),
    /// The transport under the connection ended.
    #[error(transparent)]
    Transport(TransportError),
    /// The caller closed the connection.
    #[error("the connection was closed locally")]
    ClosedLocally,
}

/// Bytes from the server that do not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// A packet is truncated or carries bad UTF-8.
    #[error("malformed packet from the server: {0}")]
    Packet(#[source] DecodeError),
    /// An extension record of the server's INFO is malformed.
    #[error("{0}")]
    Extension(#[source] ExtensionDecodeError),
}

/// A well-formed packet the protocol does not allow where it came.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerMisbehaved {
    /// DATA, CONTINUE or CLOSE on a stream other than 0, or DATA on stream 0, before the
    /// handshake finished.
    #[error("unexpected {packet_type} packet on stream {stream_id} during the handshake")]
    UnexpectedHandshakePacket {
        /// The packet type.
        packet_type: PacketType,
        /// Its stream id.
        stream_id: u32,
    },
}

/// A server that follows the protocol but cannot serve this client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerIncompatible {
    /// The server speaks a version this client does not: its INFO carries another major
    /// version, or (to a client speaking v1, which offered no subprotocol) it sent INFO and no
    /// CONTINUE(0), that is, it demands v2.
    #[error("incompatible protocol version {found} (this client speaks {speaks})")]
    Version {
        /// The version the server's INFO carries.
        found: WispVersion,
        /// The version this client speaks on this connection.
        speaks: WispVersion,
    },
    /// Extensions the client requires are missing (from the server's INFO, or from what was
    /// negotiated).
    #[error("extensions not supported by the server: {0:?}")]
    MissingExtensions(Vec<ExtensionId>),
    /// The certificate-auth record offers no algorithm this client has (Ed25519); the mask
    /// the server sent.
    #[error("the server accepts no certificate algorithm this client has (mask {0:#04x})")]
    NoCertAlgorithm(u8),
}

/// A CLOSE from the server that refused or ended something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// CLOSE(0, 0xC0) in the handshake: wrong username or password.
    #[error("the server rejected the username or password (CLOSE 0xc0)")]
    PasswordInvalid,
    /// CLOSE(0, 0xC1) in the handshake: bad certificate signature.
    #[error("the server rejected the certificate signature (CLOSE 0xc1)")]
    CertSignatureInvalid,
    /// The server requires authentication the client did not give: 0xC2, or 0x04 from
    /// servers that predate 0xC2 (when an auth extension's `required` went unanswered).
    #[error("the server requires authentication ({0})")]
    AuthRequired(CloseReason),
    /// CLOSE(0, 0x04) in the handshake: the negotiated extensions are incompatible.
    #[error("the server rejected the negotiated extensions (CLOSE 0x04)")]
    ExtensionsIncompatible,
    /// CLOSE(0) in the handshake with any other reason.
    #[error("the server rejected the handshake ({0})")]
    Handshake(CloseReason),
    /// CLOSE(0) after the handshake: the server ended the connection.
    #[error("the server closed the connection ({0})")]
    Connection(CloseReason),
    /// CLOSE on a stream waiting for its open confirmation: the server refused it.
    #[error("the server refused to open the stream ({0})")]
    StreamOpen(CloseReason),
}

impl Rejection {
    /// The reason byte the server sent.
    pub fn reason(&self) -> CloseReason {
        match self {
            Self::PasswordInvalid => CloseReason::PASSWORD_AUTH_FAILED,
            Self::CertSignatureInvalid => CloseReason::CERT_AUTH_FAILED,
            Self::ExtensionsIncompatible => CloseReason::EXTENSIONS_INCOMPATIBLE,
            Self::AuthRequired(r)
            | Self::Handshake(r)
            | Self::Connection(r)
            | Self::StreamOpen(r) => *r,
        }
    }
}

/// What a timed-out wait was waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Wait {
    /// The end of the handshake ([`crate::MuxOptions::handshake_timeout`]).
    Handshake,
    /// A stream-open confirmation ([`crate::MuxOptions::stream_open_timeout`]).
    StreamOpen,
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Handshake => "the handshake",
            Self::StreamOpen => "a stream-open confirmation",
        })
    }
}

/// The caller asked for something the connection cannot do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Misuse {
    /// The handshake has not finished.
    #[error("the handshake has not finished")]
    Handshaking,
    /// The connection has ended.
    #[error("the connection has ended")]
    ConnectionEnded,
    /// The stream is closed (by either side) or was never opened.
    #[error("the stream is already closed")]
    StreamClosed,
    /// Stream ids are exhausted: the next id would overflow a u32.
    #[error("stream ids are exhausted")]
    StreamIdsExhausted,
    /// The operation needs an extension that was not negotiated (UDP streams need UDP).
    #[error("extension {0} was not negotiated")]
    NotNegotiated(ExtensionId),
    /// A value the protocol cannot carry, or an unusable key (for example a username over
    /// 255 bytes).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// How the transport under the connection ended.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TransportError {
    /// The WebSocket closed (EOF or a close frame) where the protocol expected more.
    #[error("the WebSocket was closed")]
    Closed,
    /// The transport failed with this error (the driver's own type; downcast to recover it).
    #[error("transport error: {0}")]
    Failed(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// The code that moved bytes between the transport and the connection stopped (the
    /// driver was dropped): nothing will move any more.
    #[error("the transport was abandoned")]
    Abandoned,
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Self::Malformed(Malformed::Packet(e))
    }
}

impl From<ExtensionDecodeError> for Error {
    fn from(e: ExtensionDecodeError) -> Self {
        Self::Malformed(Malformed::Extension(e))
    }
}

impl From<Misuse> for Error {
    fn from(e: Misuse) -> Self {
        Self::Misuse(e)
    }
}

impl From<PeerIncompatible> for Error {
    fn from(e: PeerIncompatible) -> Self {
        Self::PeerIncompatible(e)
    }
}

impl From<Rejection> for Error {
    fn from(e: Rejection) -> Self {
        Self::Rejected(e)
    }
}

/// The CLOSE reason the client sends because of `error`, if it sends one: on stream 0 for a
/// connection error, on the stream for a stream error ([`Wait::StreamOpen`]). This is the
/// only place that decides it.
///
/// The client answers an INFO it cannot work with (wrong version, a required extension
/// missing, a record it cannot read or answer) with CLOSE(0, 0x04), and gives up a stream
/// whose confirmation never came with CLOSE(0x02). It sends nothing when the server already
/// closed, when the bytes themselves are broken, or when the transport is gone.
pub fn close_reason_for(error: &Error) -> Option<CloseReason> {
    match error {
        Error::Malformed(Malformed::Extension(_)) | Error::PeerIncompatible(_) => {
            Some(CloseReason::EXTENSIONS_INCOMPATIBLE)
        }
        Error::TimedOut(Wait::StreamOpen) => Some(CloseReason::VOLUNTARY),
        Error::Malformed(Malformed::Packet(_))
        | Error::PeerMisbehaved(_)
        | Error::Rejected(_)
        | Error::TimedOut(Wait::Handshake)
        | Error::Misuse(_)
        | Error::Transport(_)
        | Error::ClosedLocally => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_chain_to_the_decode_error() {
        let decode = DecodeError::truncated(None, "header", 5, 1);
        let error = Error::from(decode.clone());
        let source = std::error::Error::source(&error).expect("a source");
        assert_eq!(source.to_string(), decode.to_string());
    }

    #[test]
    fn rejected_extensions_are_answered_with_close_0x04_and_server_closes_with_nothing() {
        let missing = Error::from(PeerIncompatible::MissingExtensions(vec![ExtensionId::UDP]));
        assert_eq!(
            close_reason_for(&missing),
            Some(CloseReason::EXTENSIONS_INCOMPATIBLE)
        );
        let rejected = Error::from(Rejection::PasswordInvalid);
        assert_eq!(close_reason_for(&rejected), None);
        assert_eq!(
            close_reason_for(&Error::TimedOut(Wait::StreamOpen)),
            Some(CloseReason::VOLUNTARY)
        );
    }
}
