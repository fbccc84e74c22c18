//! The v2 INFO packet and the per-extension metadata records it carries.
//!
//! INFO payload: `major u8 | minor u8 | records…`, each record `id u8 | len u32 LE | len bytes`.
//! The same extension id carries different metadata in the server's INFO and in the client's,
//! so each extension has a server-side and a client-side record type here.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::codec::{DecodeError, DecodeErrorKind, PacketType, need};

/// A protocol version as carried by INFO.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WispVersion {
    /// Major version; 2 for every v2 draft.
    pub major: u8,
    /// Minor version.
    pub minor: u8,
}

impl WispVersion {
    /// Wisp v1 (no INFO on the wire; reported for v1 and downgraded connections).
    pub const V1: Self = Self { major: 1, minor: 2 };
    /// Wisp v2.0, the version this crate speaks in its INFO.
    pub const V2: Self = Self { major: 2, minor: 0 };
}

impl fmt::Debug for WispVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl fmt::Display for WispVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

open_u8_code! {
    /// A v2 protocol extension id.
    ExtensionId {
        /// 0x01: UDP streams.
        UDP = 0x01 => "UDP",
        /// 0x02: password authentication.
        PASSWORD = 0x02 => "PASSWORD",
        /// 0x03: public-key (certificate) authentication.
        CERT_AUTH = 0x03 => "CERT_AUTH",
        /// 0x04: server message of the day.
        MOTD = 0x04 => "MOTD",
        /// 0x05: stream open confirmation.
        STREAM_CONFIRMATION = 0x05 => "STREAM_CONFIRMATION",
    }
}

/// One extension record of an INFO packet, metadata undecoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionRecord {
    /// The extension id.
    pub id: ExtensionId,
    /// The raw metadata.
    pub data: Bytes,
}

/// An INFO packet payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InfoPacket {
    /// The sender's protocol version.
    pub version: WispVersion,
    /// The extension records in wire order.
    pub extensions: Vec<ExtensionRecord>,
    /// Bytes left after the last record that were too few (1–4) to form another record
    /// header. They are ignored, as deployed implementations do; kept for diagnostics.
    pub trailing: usize,
}

impl InfoPacket {
    /// An INFO for `version` with `extensions`.
    pub fn new(version: WispVersion, extensions: Vec<ExtensionRecord>) -> Self {
        Self {
            version,
            extensions,
            trailing: 0,
        }
    }

    /// The record for `id`, if present (the first one when an id repeats).
    pub fn extension(&self, id: ExtensionId) -> Option<&ExtensionRecord> {
        self.extensions.iter().find(|r| r.id == id)
    }

    /// Decodes an INFO payload (after the 5-byte header).
    pub fn decode(mut msg: Bytes) -> Result<Self, DecodeError> {
        let ty = Some(PacketType::INFO);
        need(&msg, 2, ty, "INFO version")?;
        let version = WispVersion {
            major: msg.get_u8(),
            minor: msg.get_u8(),
        };
        let mut extensions = Vec::new();
        while msg.len() >= 5 {
            let id = ExtensionId(msg.get_u8());
            let len = msg.get_u32_le() as usize;
            if len > msg.len() {
                return Err(DecodeError {
                    packet_type: ty,
                    field: "INFO extension metadata",
                    kind: DecodeErrorKind::Truncated {
                        needed: len,
                        available: msg.len(),
                    },
                });
            }
            let data = msg.split_to(len);
            extensions.push(ExtensionRecord { id, data });
        }
        Ok(Self {
            version,
            extensions,
            trailing: msg.len(),
        })
    }

    /// The number of bytes [`InfoPacket::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        2 + self
            .extensions
            .iter()
            .map(|r| 5 + r.data.len())
            .sum::<usize>()
    }

    /// Appends the INFO payload (without the packet header) to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(self.version.major);
        out.put_u8(self.version.minor);
        for record in &self.extensions {
            out.put_u8(record.id.0);
            // Metadata longer than u32::MAX cannot exist in one WebSocket message we build.
            out.put_u32_le(u32::try_from(record.data.len()).unwrap_or(u32::MAX));
            out.put_slice(&record.data);
        }
    }
}

/// A malformed extension record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionDecodeError {
    /// Which extension's record.
    pub id: ExtensionId,
    /// What was wrong.
    pub reason: &'static str,
}

impl fmt::Display for ExtensionDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed {} extension record: {}", self.id, self.reason)
    }
}

impl std::error::Error for ExtensionDecodeError {}

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
}

/// How the client lays out its password record. The two layouts do not interoperate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PasswordLayout {
    /// Draft 6: `ulen u8 | username | password…` (the password runs to the end).
    #[default]
    Draft6,
    /// Drafts 1–5 and every deployed server (wisp-mux 5.x, wisp-js):
    /// `ulen u8 | plen u16 LE | username | password`.
    Draft5,
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

/// Bit 0 of the certificate-auth algorithm mask: Ed25519.
pub const CERT_ALGORITHM_ED25519: u8 = 0b0000_0001;

/// The certificate-auth extension's server metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertAuthServerRecord {
    /// Whether the server requires a signature.
    pub required: bool,
    /// The bitmask of accepted algorithms ([`CERT_ALGORITHM_ED25519`]).
    pub algorithms: u8,
    /// The random challenge to sign.
    pub challenge: Bytes,
}

impl CertAuthServerRecord {
    /// Decodes the server metadata (`required u8 | algorithms u8 | challenge…`).
    pub fn decode(data: &Bytes) -> Result<Self, ExtensionDecodeError> {
        if data.len() < 2 {
            return Err(ExtensionDecodeError {
                id: ExtensionId::CERT_AUTH,
                reason: "server record shorter than 2 bytes",
            });
        }
        Ok(Self {
            required: data[0] != 0,
            algorithms: data[1],
            challenge: data.slice(2..),
        })
    }

    /// Encodes the server metadata.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(2 + self.challenge.len());
        out.put_u8(u8::from(self.required));
        out.put_u8(self.algorithms);
        out.put_slice(&self.challenge);
        out.freeze()
    }
}

/// The certificate-auth extension's client metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertAuthClientRecord {
    /// The chosen algorithm (one bit of the server's mask).
    pub algorithm: u8,
    /// SHA-256 of the raw public key.
    pub key_hash: [u8; 32],
    /// The signature over the raw challenge bytes.
    pub signature: Bytes,
}

impl CertAuthClientRecord {
    /// Decodes the client metadata (`algorithm u8 | key_hash[32] | signature…`).
    pub fn decode(data: &Bytes) -> Result<Self, ExtensionDecodeError> {
        if data.len() < 33 {
            return Err(ExtensionDecodeError {
                id: ExtensionId::CERT_AUTH,
                reason: "client record shorter than 33 bytes",
            });
        }
        let mut key_hash = [0; 32];
        key_hash.copy_from_slice(&data[1..33]);
        Ok(Self {
            algorithm: data[0],
            key_hash,
            signature: data.slice(33..),
        })
    }

    /// Encodes the client metadata.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(33 + self.signature.len());
        out.put_u8(self.algorithm);
        out.put_slice(&self.key_hash);
        out.put_slice(&self.signature);
        out.freeze()
    }
}
