//! The v2 INFO packet and the per-extension metadata records it carries.
//!
//! INFO payload: `major u8 | minor u8 | records…`, each record `id u8 | len u32 LE | len bytes`.
//! This module frames records; what a record's bytes mean belongs to its extension's module
//! in [`crate::ext`] (the same id carries different metadata from the server and from the
//! client).

use std::fmt;

use bytes::{Buf, BufMut, Bytes};

use crate::codec::{DecodeError, DecodeErrorKind, PacketType, need};
use crate::ext::ExtensionId;

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

impl WispVersion {
    /// Appends `major | minor`, as INFO carries them.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(self.major);
        out.put_u8(self.minor);
    }
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

/// One extension record of an INFO packet, metadata undecoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionRecord {
    /// The extension id.
    pub id: ExtensionId,
    /// The raw metadata.
    pub data: Bytes,
}

impl ExtensionRecord {
    /// A record for `id` carrying `data`.
    pub fn new(id: ExtensionId, data: impl Into<Bytes>) -> Self {
        Self {
            id,
            data: data.into(),
        }
    }

    /// Appends `id | len | data`.
    pub fn encode(&self, out: &mut impl BufMut) {
        encode_record(self.id, &self.data, None, out);
    }
}

/// Appends one INFO record, `id | len u32 LE | data`. `declared_len` replaces the true length
/// in the header: a test peer uses it to send a record whose length lies; everyone else
/// passes `None`.
pub fn encode_record(
    id: ExtensionId,
    data: &[u8],
    declared_len: Option<u32>,
    out: &mut impl BufMut,
) {
    // Metadata longer than u32::MAX cannot exist in one WebSocket message we build.
    let len = declared_len.unwrap_or_else(|| u32::try_from(data.len()).unwrap_or(u32::MAX));
    out.put_u8(id.0);
    out.put_u32_le(len);
    out.put_slice(data);
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
        self.version.encode(out);
        for record in &self.extensions {
            record.encode(out);
        }
    }
}

/// A malformed extension record (or, from an encoder, a value its record cannot carry).
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
