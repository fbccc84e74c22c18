//! Stream-open confirmation (0x05): the server answers each TCP CONNECT with CONTINUE (opened,
//! with the stream's credit) or CLOSE (refused, with a reason), so `new_stream` can wait for
//! the upstream connection and report a refusal. Both records are empty.

use bytes::Bytes;

use super::{Extension, ExtensionId, HandshakeOrder, NegotiatedExtension, Reply, check_empty};
use crate::error::Error;
use crate::info::ExtensionRecord;

/// The stream-open confirmation extension's offer.
#[derive(Clone, Copy, Debug, Default)]
pub struct StreamConfirmationExtensionBuilder;

/// The record either side sends: empty.
pub fn record() -> ExtensionRecord {
    ExtensionRecord::new(ExtensionId::STREAM_CONFIRMATION, Bytes::new())
}

/// Whether streams of a connection that negotiated `extensions` wait for their confirmation:
/// flow-controlled (TCP) streams do, UDP streams never do.
pub fn confirms(extensions: &[NegotiatedExtension], flow_controlled: bool) -> bool {
    flow_controlled && extensions.contains(&NegotiatedExtension::StreamConfirmation)
}

impl Extension for StreamConfirmationExtensionBuilder {
    const ID: ExtensionId = ExtensionId::STREAM_CONFIRMATION;

    /// Offered and advertised: agreed, answered with an empty record.
    fn negotiate(
        offer: Option<&Self>,
        _server: &Bytes,
        _order: HandshakeOrder,
    ) -> Result<Reply, Error> {
        Ok(match offer {
            Some(_) => Reply::agree(Bytes::new(), NegotiatedExtension::StreamConfirmation),
            None => Reply::skip(),
        })
    }

    /// The server's record is empty.
    fn check_server_record(server: &Bytes) -> Result<(), String> {
        check_empty(Self::ID, server)
    }
}
