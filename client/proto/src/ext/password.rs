//! Password authentication (0x02). The server's record says whether a password is required;
//! the client's record carries the username and password, in one of two layouts that do not
//! interoperate ([`PasswordLayout`]). The server answers wrong credentials with
//! CLOSE(0, 0xC0).
//!
//! Unless the offer pins a layout ([`PasswordExtensionBuilder::layout`]), the client picks it
//! from the order the server opened the handshake in ([`PasswordLayout::for_order`]): a
//! server that sends CONTINUE(0) before its INFO follows drafts 1–3 and reads the draft-5
//! layout (wisp-mux 5.x, epoxy-server of 2024, the deployed servers that check passwords);
//! one that sends INFO first is taken for draft 6. Drafts 4–5 also send INFO first; a
//! client talking to such a server pins [`PasswordLayout::Draft5`].

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::{Extension, ExtensionId, HandshakeOrder, NegotiatedExtension, Reply};
use crate::error::{Error, Misuse};
use crate::info::{ExtensionDecodeError, ExtensionRecord};

/// The password extension's offer: credentials (or none) and the record layout.
#[derive(Clone, Default)]
pub struct PasswordExtensionBuilder {
    credentials: Option<(String, String)>,
    /// `None`: chosen from the server's handshake order.
    layout: Option<PasswordLayout>,
}

impl fmt::Debug for PasswordExtensionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordExtensionBuilder")
            .field("username", &self.credentials.as_ref().map(|c| &c.0))
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl PasswordExtensionBuilder {
    /// Offers these credentials.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self::new_client(Some((username.into(), password.into())))
    }

    /// Offers the extension with or without credentials (without, the client learns whether
    /// the server requires a password, and the server decides what to do).
    pub fn new_client(credentials: Option<(String, String)>) -> Self {
        Self {
            credentials,
            layout: None,
        }
    }

    /// Pins the record layout: [`PasswordLayout::Draft6`] (the current draft) or
    /// [`PasswordLayout::Draft5`] (what deployed servers read). Unpinned (the default), the
    /// layout follows the server's handshake order ([`PasswordLayout::for_order`]).
    pub fn layout(mut self, layout: PasswordLayout) -> Self {
        self.layout = Some(layout);
        self
    }

    /// The pinned layout (`None`: chosen from the server's handshake order).
    pub fn pinned_layout(&self) -> Option<PasswordLayout> {
        self.layout
    }
}

impl Extension for PasswordExtensionBuilder {
    const ID: ExtensionId = ExtensionId::PASSWORD;

    /// The server's `required` flag is learnt whether or not the client offered the
    /// extension. With credentials, the client answers with its record (in the pinned layout,
    /// or the one `order` points to) and the extension is agreed; a username or password the
    /// layout cannot carry is the caller's error.
    fn negotiate(
        offer: Option<&Self>,
        server: &Bytes,
        order: HandshakeOrder,
    ) -> Result<Reply, Error> {
        let required = PasswordServerRecord::decode(server).required;
        let Some((offer, (username, password))) =
            offer.and_then(|o| Some((o, o.credentials.as_ref()?)))
        else {
            return Ok(Reply::skip().with_auth(required, false));
        };
        let record = PasswordClientRecord {
            username: username.clone(),
            password: password.clone(),
        }
        .encode(offer.layout.unwrap_or(PasswordLayout::for_order(order)))
        .map_err(|e| Misuse::InvalidArgument(e.to_string()))?;
        Ok(
            Reply::agree(record, NegotiatedExtension::Password { required })
                .with_auth(required, true),
        )
    }

    /// The server's record is one byte, `required`.
    fn check_server_record(server: &Bytes) -> Result<(), String> {
        if server.len() == 1 {
            Ok(())
        } else {
            Err(format!(
                "the PASSWORD record carries {} bytes, expected 1 (`required`)",
                server.len()
            ))
        }
    }
}

/// The password extension's server metadata: whether a password is required.
///
/// Drafts 1–3 sent an empty record whose presence meant "required"; that decodes as
/// `required: true`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordServerRecord {
    /// Whether the server requires credentials.
    pub required: bool,
}

impl PasswordServerRecord {
    /// Decodes the server metadata.
    pub fn decode(data: &[u8]) -> Self {
        Self {
            required: data.first().is_none_or(|b| *b != 0),
        }
    }

    /// Encodes the server metadata.
    pub fn encode(&self) -> Bytes {
        Bytes::copy_from_slice(&[u8::from(self.required)])
    }

    /// The whole record.
    pub fn record(&self) -> ExtensionRecord {
        ExtensionRecord::new(ExtensionId::PASSWORD, self.encode())
    }
}

/// How the client lays out its password record. The two layouts do not interoperate.
///
/// With the `serde` feature it deserializes from `draft6` or `draft5`, as case files write
/// it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum PasswordLayout {
    /// Draft 6: `ulen u8 | username | password…` (the password runs to the end).
    #[default]
    Draft6,
    /// Drafts 1–5 and every deployed server (wisp-mux 5.x, wisp-js):
    /// `ulen u8 | plen u16 LE | username | password`.
    Draft5,
}

impl PasswordLayout {
    /// The layout a server that opened the handshake in `order` reads: CONTINUE(0) first
    /// (drafts 1–3) reads [`PasswordLayout::Draft5`]; INFO first is taken for draft 6.
    pub const fn for_order(order: HandshakeOrder) -> Self {
        match order {
            HandshakeOrder::ContinueFirst => Self::Draft5,
            HandshakeOrder::InfoFirst => Self::Draft6,
        }
    }
}

/// The password extension's client metadata.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordClientRecord {
    /// The username.
    pub username: String,
    /// The password.
    pub password: String,
}

impl fmt::Debug for PasswordClientRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordClientRecord")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl PasswordClientRecord {
    /// Encodes the record in `layout`. Fails if the username exceeds 255 bytes (or, in the
    /// draft 5 layout, the password exceeds 65535 bytes).
    pub fn encode(&self, layout: PasswordLayout) -> Result<Bytes, ExtensionDecodeError> {
        let too_long = |reason| ExtensionDecodeError {
            id: ExtensionId::PASSWORD,
            reason,
        };
        let ulen = u8::try_from(self.username.len())
            .map_err(|_| too_long("username longer than 255 bytes"))?;
        let mut out = BytesMut::with_capacity(3 + self.username.len() + self.password.len());
        out.put_u8(ulen);
        if layout == PasswordLayout::Draft5 {
            let plen = u16::try_from(self.password.len())
                .map_err(|_| too_long("password longer than 65535 bytes"))?;
            out.put_u16_le(plen);
        }
        out.put_slice(self.username.as_bytes());
        out.put_slice(self.password.as_bytes());
        Ok(out.freeze())
    }

    /// The whole record in `layout`.
    pub fn record(&self, layout: PasswordLayout) -> Result<ExtensionRecord, ExtensionDecodeError> {
        Ok(ExtensionRecord::new(
            ExtensionId::PASSWORD,
            self.encode(layout)?,
        ))
    }

    /// Decodes a record in `layout`.
    pub fn decode(data: &[u8], layout: PasswordLayout) -> Result<Self, ExtensionDecodeError> {
        let err = |reason| ExtensionDecodeError {
            id: ExtensionId::PASSWORD,
            reason,
        };
        let (&ulen, rest) = data.split_first().ok_or(err("empty record"))?;
        let ulen = usize::from(ulen);
        let (username, password) = match layout {
            PasswordLayout::Draft6 => {
                if rest.len() < ulen {
                    return Err(err("username length overruns the record"));
                }
                rest.split_at(ulen)
            }
            PasswordLayout::Draft5 => {
                if rest.len() < 2 {
                    return Err(err("password length missing"));
                }
                let plen = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
                let rest = &rest[2..];
                if rest.len() < ulen + plen {
                    return Err(err("username and password lengths overrun the record"));
                }
                (&rest[..ulen], &rest[ulen..ulen + plen])
            }
        };
        let text = |b: &[u8]| {
            String::from_utf8(b.to_vec()).map_err(|_| err("username or password is not UTF-8"))
        };
        Ok(Self {
            username: text(username)?,
            password: text(password)?,
        })
    }
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use super::*;

    #[test]
    fn layouts_deserialize_by_draft() {
        let layouts: Vec<PasswordLayout> =
            serde_saphyr::from_str("[draft6, draft5]").expect("parses");
        assert_eq!(layouts, [PasswordLayout::Draft6, PasswordLayout::Draft5]);
        assert!(serde_saphyr::from_str::<PasswordLayout>("draft4").is_err());
    }
}
