//! The error type of the crate.
//!
//! [`WispError`] keeps the variant names of the seed API; each variant means one situation,
//! and [`WispError::name`] (generated from the type, like [`WispError::NAMES`]) is what test
//! cases match on. Protocol failures come from the sans-IO core's [`proto::Error`], which
//! groups them by blame; `From<proto::Error>` is the one mapping between the two.

use std::sync::Arc;

use strum::VariantNames;

use crate::proto::{
    self, CloseReason, DecodeError, ExtensionDecodeError, Malformed, Misuse, PeerIncompatible,
    PeerMisbehaved, Rejection, TransportError, Wait, WispVersion,
};
use crate::transport::ConnectStep;

/// Everything that can go wrong in a Wisp client.
///
/// Every variant has a stable name ([`WispError::name`]) that test cases can match on.
/// The error is cheap to clone, so every stream of a failed connection can see why it ended.
/// [`WispError::is_remote`] tells whether the server is to blame.
#[derive(Clone, Debug, thiserror::Error, strum::IntoStaticStr, strum::VariantNames)]
#[non_exhaustive]
pub enum WispError {
    // ---- transport ----
    /// The WebSocket closed (EOF or close frame) where the protocol expected more.
    #[error("the WebSocket was closed")]
    WsImplSocketClosed,
    /// The WebSocket library reported an error.
    #[error("WebSocket error: {0}")]
    WsImplError(#[source] Arc<dyn std::error::Error + Send + Sync>),

    // ---- what the server sent ----
    /// A packet from the server is structurally malformed (truncated or bad UTF-8).
    #[error("malformed packet from the server: {0}")]
    MalformedPacket(#[source] DecodeError),
    /// An extension record in the server's INFO is malformed.
    #[error("{0}")]
    MalformedExtension(#[source] ExtensionDecodeError),
    /// The server sent a packet the handshake does not allow at this point.
    #[error("unexpected {packet_type:#04x} packet on stream {stream_id} during the handshake")]
    UnexpectedHandshakePacket {
        /// The packet type byte.
        packet_type: u8,
        /// Its stream id.
        stream_id: u32,
    },
    /// The server speaks a version this client cannot (found, spoken by this client): its
    /// INFO carries another major version, or a v1 client got an INFO and no CONTINUE(0)
    /// (the server demands v2).
    #[error("incompatible protocol version {0} (this client speaks {1})")]
    IncompatibleProtocolVersion(WispVersion, WispVersion),
    /// Required extensions are missing: from the server's INFO, or (for UDP streams) from the
    /// negotiated set.
    #[error("extensions not supported by the server: {0:02x?}")]
    ExtensionsNotSupported(Vec<u8>),
    /// The server rejected the handshake with CLOSE(0, 0x04) (incompatible extensions).
    #[error("the server rejected the negotiated extensions (CLOSE 0x04)")]
    ExtensionsIncompatible,
    /// The server rejected the password (CLOSE(0, 0xC0)).
    #[error("the server rejected the username or password (CLOSE 0xc0)")]
    PasswordExtensionCredsInvalid,
    /// The server rejected the certificate signature (CLOSE(0, 0xC1)).
    #[error("the server rejected the certificate signature (CLOSE 0xc1)")]
    CertAuthExtensionSigInvalid,
    /// The server's certificate-auth record offers no algorithm this client has (Ed25519).
    #[error("the server accepts no certificate algorithm this client has (mask {0:#04x})")]
    CertAuthExtensionCertTypeInvalid(u8),
    /// The server requires authentication and the client had no credentials it accepts.
    /// Carries the reason the server sent: 0xC2, or 0x04 from servers that predate 0xC2.
    #[error("the server requires authentication ({0})")]
    AuthRequired(CloseReason),
    /// The server rejected the handshake with another CLOSE(0) reason.
    #[error("the server rejected the handshake ({0})")]
    HandshakeRejected(CloseReason),
    /// The handshake did not finish within the configured timeout.
    #[error("the handshake timed out")]
    HandshakeTimedOut,
    /// Opening the WebSocket did not finish within
    /// [`MuxOptions::connect_timeout`](crate::MuxOptions::connect_timeout); the step that was
    /// still running.
    #[error("{0} timed out")]
    ConnectTimedOut(ConnectStep),
    /// The server ended the connection with CLOSE on stream 0 after the handshake.
    #[error("the server closed the connection ({0})")]
    ClosedByServer(CloseReason),

    // ---- streams ----
    /// Stream ids are exhausted: the next id would overflow a u32.
    #[error("stream ids are exhausted")]
    MaxStreamCountReached,
    /// The stream is already closed (by either side).
    #[error("the stream is already closed")]
    StreamAlreadyClosed,
    /// With stream-open confirmation, the server refused the stream with this reason.
    #[error("the server refused to open the stream ({0})")]
    StreamRefused(CloseReason),
    /// With stream-open confirmation, the server neither confirmed nor refused in time.
    #[error("the stream open was neither confirmed nor refused in time")]
    StreamOpenTimedOut,

    // ---- the multiplexor itself ----
    /// The connection is over: its driver has ended (or was dropped), so nothing can be sent
    /// or opened on it any more.
    #[error("the multiplexor task has ended")]
    MuxTaskEnded,
    /// A request could not be handed to the multiplexor. This client hands requests over
    /// under a lock and never fails to; the name stays for code written against the seed
    /// API.
    #[error("failed to send a message to the multiplexor")]
    MuxMessageFailedToSend,
    /// The multiplexor went away before answering a request (a stream open whose answer was
    /// dropped unanswered). This client never returns it: a stream open that waits for its
    /// confirmation is answered by the one place that removes its waiter (the server's
    /// confirmation or refusal, or the end of the connection, which also runs when the driver
    /// is dropped), and the waiting call itself keeps that state alive. The name stays for
    /// code written against the seed API.
    #[error("failed to receive a reply from the multiplexor")]
    MuxMessageFailedToRecv,
    /// The task running the multiplexor's driver failed (panicked or was cancelled). The
    /// runtime's error is the source; for a caller that spawns the driver itself and
    /// reports the task's end (the conformance harness).
    #[error("the multiplexor task failed: {0}")]
    MuxTaskFailed(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// The connection was closed locally with `close()` or `close_with_reason()`.
    #[error("the connection was closed locally")]
    ClosedLocally,
    /// An invalid argument or configuration (for example a username over 255 bytes).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl WispError {
    /// Every variant name [`WispError::name`] can return, for validating case files.
    /// Generated from the enum.
    pub const NAMES: &'static [&'static str] = <Self as VariantNames>::VARIANTS;

    /// The stable name of the variant, as used in test case files
    /// (for example `"ExtensionsNotSupported"`).
    pub fn name(&self) -> &'static str {
        self.into()
    }

    /// The close reason the variant carries, if any: the one the server sent (not the one
    /// this client sent, which [`crate::proto::close_reason_for`] decides).
    pub fn close_reason(&self) -> Option<CloseReason> {
        match self {
            Self::AuthRequired(r)
            | Self::HandshakeRejected(r)
            | Self::ClosedByServer(r)
            | Self::StreamRefused(r) => Some(*r),
            Self::PasswordExtensionCredsInvalid => Some(CloseReason::PASSWORD_AUTH_FAILED),
            Self::CertAuthExtensionSigInvalid => Some(CloseReason::CERT_AUTH_FAILED),
            Self::ExtensionsIncompatible => Some(CloseReason::EXTENSIONS_INCOMPATIBLE),
            Self::WsImplSocketClosed
            | Self::WsImplError(_)
            | Self::MalformedPacket(_)
            | Self::MalformedExtension(_)
            | Self::UnexpectedHandshakePacket { .. }
            | Self::IncompatibleProtocolVersion(..)
            | Self::ExtensionsNotSupported(_)
            | Self::CertAuthExtensionCertTypeInvalid(_)
            | Self::HandshakeTimedOut
            | Self::ConnectTimedOut(_)
            | Self::MaxStreamCountReached
            | Self::StreamAlreadyClosed
            | Self::StreamOpenTimedOut
            | Self::MuxTaskEnded
            | Self::MuxMessageFailedToSend
            | Self::MuxMessageFailedToRecv
            | Self::MuxTaskFailed(_)
            | Self::ClosedLocally
            | Self::InvalidArgument(_) => None,
        }
    }

    /// Whether the peer (the server) is at fault: it sent something malformed, unexpected
    /// or unsupported, or rejected the client.
    pub fn is_remote(&self) -> bool {
        match self {
            Self::MalformedPacket(_)
            | Self::MalformedExtension(_)
            | Self::UnexpectedHandshakePacket { .. }
            | Self::IncompatibleProtocolVersion(..)
            | Self::ExtensionsIncompatible
            | Self::PasswordExtensionCredsInvalid
            | Self::CertAuthExtensionSigInvalid
            | Self::CertAuthExtensionCertTypeInvalid(_)
            | Self::AuthRequired(_)
            | Self::HandshakeRejected(_)
            | Self::ClosedByServer(_)
            | Self::StreamRefused(_) => true,
            // The server lacks an extension the client requires (or the client opened a
            // UDP stream on a connection without UDP: the server did not offer it).
            Self::ExtensionsNotSupported(_) => true,
            Self::WsImplSocketClosed
            | Self::WsImplError(_)
            | Self::HandshakeTimedOut
            | Self::ConnectTimedOut(_)
            | Self::MaxStreamCountReached
            | Self::StreamAlreadyClosed
            | Self::StreamOpenTimedOut
            | Self::MuxTaskEnded
            | Self::MuxMessageFailedToSend
            | Self::MuxMessageFailedToRecv
            | Self::MuxTaskFailed(_)
            | Self::ClosedLocally
            | Self::InvalidArgument(_) => false,
        }
    }

    /// A WebSocket library error.
    pub(crate) fn ws(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::WsImplError(Arc::new(err))
    }

    /// The core's view of a transport failure: EOF stays EOF, anything else is carried
    /// whole (and comes back unchanged through `From<proto::Error>`).
    pub(crate) fn into_transport(self) -> TransportError {
        match self {
            Self::WsImplSocketClosed => TransportError::Closed,
            other => TransportError::Failed(Arc::new(other)),
        }
    }
}

/// The one mapping from the core's blame-grouped error to the seed API's names.
impl From<proto::Error> for WispError {
    fn from(e: proto::Error) -> Self {
        match e {
            proto::Error::Malformed(Malformed::Packet(e)) => Self::MalformedPacket(e),
            proto::Error::Malformed(Malformed::Extension(e)) => Self::MalformedExtension(e),
            proto::Error::PeerMisbehaved(PeerMisbehaved::UnexpectedHandshakePacket {
                packet_type,
                stream_id,
            }) => Self::UnexpectedHandshakePacket {
                packet_type: packet_type.0,
                stream_id,
            },
            proto::Error::PeerIncompatible(PeerIncompatible::Version { found, speaks }) => {
                Self::IncompatibleProtocolVersion(found, speaks)
            }
            proto::Error::PeerIncompatible(PeerIncompatible::MissingExtensions(ids)) => {
                Self::ExtensionsNotSupported(ids.into_iter().map(|id| id.0).collect())
            }
            proto::Error::PeerIncompatible(PeerIncompatible::NoCertAlgorithm(mask)) => {
                Self::CertAuthExtensionCertTypeInvalid(mask)
            }
            proto::Error::Rejected(r) => match r {
                Rejection::PasswordInvalid => Self::PasswordExtensionCredsInvalid,
                Rejection::CertSignatureInvalid => Self::CertAuthExtensionSigInvalid,
                Rejection::AuthRequired(reason) => Self::AuthRequired(reason),
                Rejection::ExtensionsIncompatible => Self::ExtensionsIncompatible,
                Rejection::Handshake(reason) => Self::HandshakeRejected(reason),
                Rejection::Connection(reason) => Self::ClosedByServer(reason),
                Rejection::StreamOpen(reason) => Self::StreamRefused(reason),
            },
            proto::Error::TimedOut(Wait::Handshake) => Self::HandshakeTimedOut,
            proto::Error::TimedOut(Wait::StreamOpen) => Self::StreamOpenTimedOut,
            proto::Error::Misuse(m) => match m {
                Misuse::Handshaking | Misuse::ConnectionEnded => Self::MuxTaskEnded,
                Misuse::StreamClosed => Self::StreamAlreadyClosed,
                Misuse::StreamIdsExhausted => Self::MaxStreamCountReached,
                Misuse::NotNegotiated(id) => Self::ExtensionsNotSupported(vec![id.0]),
                Misuse::InvalidArgument(text) => Self::InvalidArgument(text),
            },
            proto::Error::Transport(t) => match t {
                TransportError::Closed => Self::WsImplSocketClosed,
                TransportError::Failed(e) => match e.downcast_ref::<WispError>() {
                    Some(original) => original.clone(),
                    None => Self::WsImplError(e),
                },
                TransportError::Abandoned => Self::MuxTaskEnded,
            },
            proto::Error::ClosedLocally => Self::ClosedLocally,
        }
    }
}

impl From<DecodeError> for WispError {
    fn from(e: DecodeError) -> Self {
        Self::MalformedPacket(e)
    }
}

impl From<ExtensionDecodeError> for WispError {
    fn from(e: ExtensionDecodeError) -> Self {
        Self::MalformedExtension(e)
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::proto::Packet;

    #[test]
    fn names_come_from_the_variants() {
        assert_eq!(WispError::NAMES.len(), 26);
        for (error, name) in [
            (WispError::WsImplSocketClosed, "WsImplSocketClosed"),
            (
                WispError::ExtensionsNotSupported(vec![1]),
                "ExtensionsNotSupported",
            ),
            (
                WispError::AuthRequired(CloseReason::AUTH_REQUIRED),
                "AuthRequired",
            ),
            (WispError::InvalidArgument(String::new()), "InvalidArgument"),
        ] {
            assert_eq!(error.name(), name);
            assert!(WispError::NAMES.contains(&name));
        }
    }

    #[test]
    fn a_transport_error_comes_back_unchanged_from_the_core() {
        let original = WispError::InvalidArgument("custom transport".into());
        let core = proto::Error::Transport(original.clone().into_transport());
        let back = WispError::from(core);
        assert_eq!(back.to_string(), original.to_string());
        assert_eq!(
            WispError::from(proto::Error::Transport(
                WispError::WsImplSocketClosed.into_transport()
            ))
            .name(),
            "WsImplSocketClosed"
        );
    }

    #[test]
    fn malformed_packets_chain_their_decode_error() {
        let decode = Packet::decode(bytes::Bytes::from_static(&[4, 1, 0]))
            .expect_err("a 3-byte packet is truncated");
        let error = WispError::from(proto::Error::from(decode.clone()));
        assert_eq!(error.name(), "MalformedPacket");
        assert_eq!(
            error.source().map(|s| s.to_string()),
            Some(decode.to_string())
        );
    }
}
