//! The error type of the crate.

use std::sync::Arc;

use crate::proto::{CloseReason, DecodeError, ExtensionDecodeError, ExtensionId, WispVersion};

/// Everything that can go wrong in a Wisp client.
///
/// Every variant has a stable name ([`WispError::name`]) that test cases can match on.
/// The error is cheap to clone, so every stream of a failed connection can see why it ended.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WispError {
    // ---- transport ----
    /// The WebSocket closed (EOF or close frame) where the protocol expected more.
    #[error("the WebSocket was closed")]
    WsImplSocketClosed,
    /// The WebSocket library reported an error.
    #[error("WebSocket error: {0}")]
    WsImplError(Arc<dyn std::error::Error + Send + Sync>),

    // ---- what the server sent ----
    /// A packet from the server is structurally malformed (truncated or bad UTF-8).
    #[error("malformed packet from the server: {0}")]
    MalformedPacket(DecodeError),
    /// An extension record in the server's INFO is malformed.
    #[error("{0}")]
    MalformedExtension(ExtensionDecodeError),
    /// The server sent a packet the handshake does not allow at this point.
    #[error("unexpected {packet_type:#04x} packet on stream {stream_id} during the handshake")]
    UnexpectedHandshakePacket {
        /// The packet type byte.
        packet_type: u8,
        /// Its stream id.
        stream_id: u32,
    },
    /// The server's INFO carries a major version this client cannot speak (found, needed).
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
    /// The multiplexor's driver task has ended (the connection is over).
    #[error("the multiplexor task has ended")]
    MuxTaskEnded,
    /// A request could not be handed to the multiplexor (it was closing or closed).
    #[error("failed to send a message to the multiplexor")]
    MuxMessageFailedToSend,
    /// The multiplexor went away before answering a request.
    #[error("failed to receive a reply from the multiplexor")]
    MuxMessageFailedToRecv,
    /// The connection was closed locally with `close()` or `close_with_reason()`.
    #[error("the connection was closed locally")]
    ClosedLocally,
    /// An invalid argument or configuration (for example a username over 255 bytes).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl WispError {
    /// The stable name of the variant, as used in test case files
    /// (for example `"ExtensionsNotSupported"`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::WsImplSocketClosed => "WsImplSocketClosed",
            Self::WsImplError(_) => "WsImplError",
            Self::MalformedPacket(_) => "MalformedPacket",
            Self::MalformedExtension(_) => "MalformedExtension",
            Self::UnexpectedHandshakePacket { .. } => "UnexpectedHandshakePacket",
            Self::IncompatibleProtocolVersion(..) => "IncompatibleProtocolVersion",
            Self::ExtensionsNotSupported(_) => "ExtensionsNotSupported",
            Self::ExtensionsIncompatible => "ExtensionsIncompatible",
            Self::PasswordExtensionCredsInvalid => "PasswordExtensionCredsInvalid",
            Self::CertAuthExtensionSigInvalid => "CertAuthExtensionSigInvalid",
            Self::CertAuthExtensionCertTypeInvalid(_) => "CertAuthExtensionCertTypeInvalid",
            Self::AuthRequired(_) => "AuthRequired",
            Self::HandshakeRejected(_) => "HandshakeRejected",
            Self::HandshakeTimedOut => "HandshakeTimedOut",
            Self::ClosedByServer(_) => "ClosedByServer",
            Self::MaxStreamCountReached => "MaxStreamCountReached",
            Self::StreamAlreadyClosed => "StreamAlreadyClosed",
            Self::StreamRefused(_) => "StreamRefused",
            Self::StreamOpenTimedOut => "StreamOpenTimedOut",
            Self::MuxTaskEnded => "MuxTaskEnded",
            Self::MuxMessageFailedToSend => "MuxMessageFailedToSend",
            Self::MuxMessageFailedToRecv => "MuxMessageFailedToRecv",
            Self::ClosedLocally => "ClosedLocally",
            Self::InvalidArgument(_) => "InvalidArgument",
        }
    }

    /// Every variant name [`WispError::name`] can return, for validating case files.
    pub const NAMES: &'static [&'static str] = &[
        "WsImplSocketClosed",
        "WsImplError",
        "MalformedPacket",
        "MalformedExtension",
        "UnexpectedHandshakePacket",
        "IncompatibleProtocolVersion",
        "ExtensionsNotSupported",
        "ExtensionsIncompatible",
        "PasswordExtensionCredsInvalid",
        "CertAuthExtensionSigInvalid",
        "CertAuthExtensionCertTypeInvalid",
        "AuthRequired",
        "HandshakeRejected",
        "HandshakeTimedOut",
        "ClosedByServer",
        "MaxStreamCountReached",
        "StreamAlreadyClosed",
        "StreamRefused",
        "StreamOpenTimedOut",
        "MuxTaskEnded",
        "MuxMessageFailedToSend",
        "MuxMessageFailedToRecv",
        "ClosedLocally",
        "InvalidArgument",
    ];

    /// The close reason the variant carries, if any.
    pub fn close_reason(&self) -> Option<CloseReason> {
        match self {
            Self::AuthRequired(r)
            | Self::HandshakeRejected(r)
            | Self::ClosedByServer(r)
            | Self::StreamRefused(r) => Some(*r),
            Self::PasswordExtensionCredsInvalid => Some(CloseReason::PASSWORD_AUTH_FAILED),
            Self::CertAuthExtensionSigInvalid => Some(CloseReason::CERT_AUTH_FAILED),
            Self::ExtensionsIncompatible => Some(CloseReason::EXTENSIONS_INCOMPATIBLE),
            _ => None,
        }
    }

    /// Whether the peer (the server) is at fault: it sent something malformed, unexpected
    /// or unsupported, or rejected the client.
    pub fn is_remote(&self) -> bool {
        matches!(
            self,
            Self::MalformedPacket(_)
                | Self::MalformedExtension(_)
                | Self::UnexpectedHandshakePacket { .. }
                | Self::IncompatibleProtocolVersion(..)
                | Self::ExtensionsNotSupported(_)
                | Self::ExtensionsIncompatible
                | Self::PasswordExtensionCredsInvalid
                | Self::CertAuthExtensionSigInvalid
                | Self::CertAuthExtensionCertTypeInvalid(_)
                | Self::AuthRequired(_)
                | Self::HandshakeRejected(_)
                | Self::ClosedByServer(_)
                | Self::StreamRefused(_)
        )
    }

    pub(crate) fn ws(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::WsImplError(Arc::new(err))
    }

    pub(crate) fn missing(ids: impl IntoIterator<Item = ExtensionId>) -> Self {
        Self::ExtensionsNotSupported(ids.into_iter().map(|id| id.0).collect())
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

/// Compile-time check that every name listed in [`WispError::NAMES`] is what `name()` returns.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_listed() {
        let samples = [
            WispError::WsImplSocketClosed,
            WispError::ExtensionsNotSupported(vec![1]),
            WispError::AuthRequired(CloseReason::AUTH_REQUIRED),
            WispError::InvalidArgument(String::new()),
        ];
        for s in samples {
            assert!(WispError::NAMES.contains(&s.name()), "{}", s.name());
        }
    }
}
