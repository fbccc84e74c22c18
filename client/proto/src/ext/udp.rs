//! UDP (0x01): the client may open UDP streams. Both records are empty. Wisp v1.2 makes UDP
//! mandatory, so a v1 connection has it too.

use bytes::Bytes;

use super::{Extension, ExtensionId, HandshakeOrder, NegotiatedExtension, Reply, check_empty};
use crate::error::Error;
use crate::info::ExtensionRecord;

/// The UDP extension's offer: lets the client open UDP streams.
#[derive(Clone, Copy, Debug, Default)]
pub struct UdpExtensionBuilder;

/// The record either side sends: empty.
pub fn record() -> ExtensionRecord {
    ExtensionRecord::new(ExtensionId::UDP, Bytes::new())
}

impl Extension for UdpExtensionBuilder {
    const ID: ExtensionId = ExtensionId::UDP;

    /// Offered and advertised: agreed, answered with an empty record.
    fn negotiate(
        offer: Option<&Self>,
        _server: &Bytes,
        _order: HandshakeOrder,
    ) -> Result<Reply, Error> {
        Ok(match offer {
            Some(_) => Reply::agree(Bytes::new(), NegotiatedExtension::Udp),
            None => Reply::skip(),
        })
    }

    /// The server's record is empty.
    fn check_server_record(server: &Bytes) -> Result<(), String> {
        check_empty(Self::ID, server)
    }

    fn implied_by_v1() -> Option<NegotiatedExtension> {
        Some(NegotiatedExtension::Udp)
    }
}
