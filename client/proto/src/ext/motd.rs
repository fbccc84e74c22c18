//! MOTD (0x04): the server's message of the day. The server's record is the text (UTF-8;
//! other bytes are replaced when read); the client's record is empty.

use bytes::Bytes;

use super::{Extension, ExtensionId, HandshakeOrder, NegotiatedExtension, Reply};
use crate::error::Error;
use crate::info::ExtensionRecord;

/// The MOTD extension's offer.
#[derive(Clone, Copy, Debug, Default)]
pub struct MotdExtensionBuilder;

/// The MOTD extension's server metadata: the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MotdServerRecord {
    /// The message of the day.
    pub text: String,
}

impl MotdServerRecord {
    /// Decodes the server metadata; bytes that are not UTF-8 are replaced.
    pub fn decode(data: &[u8]) -> Self {
        Self {
            text: String::from_utf8_lossy(data).into_owned(),
        }
    }

    /// Encodes the server metadata.
    pub fn encode(&self) -> Bytes {
        Bytes::copy_from_slice(self.text.as_bytes())
    }

    /// The whole record.
    pub fn record(&self) -> ExtensionRecord {
        ExtensionRecord::new(ExtensionId::MOTD, self.encode())
    }
}

/// The record the client sends: empty.
pub fn client_record() -> ExtensionRecord {
    ExtensionRecord::new(ExtensionId::MOTD, Bytes::new())
}

/// The message of a connection that negotiated `extensions`, if MOTD was agreed.
pub fn message(extensions: &[NegotiatedExtension]) -> Option<&str> {
    extensions.iter().find_map(|e| match e {
        NegotiatedExtension::Motd(m) => Some(m.as_str()),
        _ => None,
    })
}

impl Extension for MotdExtensionBuilder {
    const ID: ExtensionId = ExtensionId::MOTD;

    /// Offered and advertised: agreed (the value is the message), answered with an empty
    /// record.
    fn negotiate(
        offer: Option<&Self>,
        server: &Bytes,
        _order: HandshakeOrder,
    ) -> Result<Reply, Error> {
        Ok(match offer {
            Some(_) => Reply::agree(
                Bytes::new(),
                NegotiatedExtension::Motd(MotdServerRecord::decode(server).text),
            ),
            None => Reply::skip(),
        })
    }

    /// The server's record is UTF-8 text.
    fn check_server_record(server: &Bytes) -> Result<(), String> {
        std::str::from_utf8(server)
            .map(drop)
            .map_err(|_| "the MOTD is not UTF-8".to_owned())
    }
}
