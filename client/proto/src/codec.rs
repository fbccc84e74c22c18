//! Wisp packet encoding and decoding.
//!
//! One Wisp packet is one binary WebSocket message: a one-byte packet type, a little-endian
//! `u32` stream id, then a type-specific payload that runs to the end of the message.
//!
//! Decoding is strict about structure (every length is checked before it is read, and a
//! [`DecodeError`] names the field that was short) and lenient about what the protocol leaves
//! open: unknown packet types, stream types and close reasons decode into their open newtypes,
//! and bytes after a fixed-size payload are ignored (deployed servers send them).

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::info::InfoPacket;

/// Length of the common header: packet type (1) and stream id (4).
pub const HEADER_LEN: usize = 5;

/// Defines an open `u8` code space: a newtype with one named constant per assigned value.
/// Unknown values stay representable and print as hex. An optional `seed_spellings` block
/// adds constants under the names of the epoxy `wisp-mux` enums users port from
/// (`StreamType::Tcp`), equal to the constants they alias.
macro_rules! open_u8_code {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$cmeta:meta])* $konst:ident = $value:literal => $text:literal, )*
        }
        $( seed_spellings {
            $( $alias:ident = $target:ident, )*
        } )?
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u8);

        impl $name {
            $( $(#[$cmeta])* pub const $konst: Self = Self($value); )*

            $($(
                #[doc = concat!("The epoxy `wisp-mux` spelling of [`", stringify!($name), "::", stringify!($target), "`].")]
                #[allow(non_upper_case_globals)]
                pub const $alias: Self = Self::$target;
            )*)?

            /// The name of an assigned value (`None` for an unassigned one).
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some($text), )*
                    _ => None,
                }
            }

            /// Whether this value is assigned a meaning by the protocol.
            pub const fn is_known(self) -> bool {
                self.name().is_some()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(name) => write!(f, "{name}(0x{:02x})", self.0),
                    None => write!(f, "{}(0x{:02x})", stringify!($name), self.0),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }

        impl From<u8> for $name {
            fn from(value: u8) -> Self {
                Self(value)
            }
        }

        impl From<$name> for u8 {
            fn from(value: $name) -> u8 {
                value.0
            }
        }
    };
}

open_u8_code! {
    /// The packet type byte (offset 0 of every packet).
    PacketType {
        /// CONNECT: the client opens a stream.
        CONNECT = 0x01 => "CONNECT",
        /// DATA: stream payload, either direction.
        DATA = 0x02 => "DATA",
        /// CONTINUE: the server grants flow-control credit.
        CONTINUE = 0x03 => "CONTINUE",
        /// CLOSE: a stream (or, on stream 0, the connection) ends.
        CLOSE = 0x04 => "CLOSE",
        /// INFO: the v2 handshake packet (stream 0 only).
        INFO = 0x05 => "INFO",
    }
}

open_u8_code! {
    /// The stream type carried by CONNECT.
    StreamType {
        /// A TCP stream (flow-controlled).
        TCP = 0x01 => "TCP",
        /// A UDP stream (one DATA is one datagram; never flow-controlled).
        UDP = 0x02 => "UDP",
        /// epoxy-server's non-standard terminal ("TWisp") stream.
        TWISP = 0x03 => "TWISP",
    }
    seed_spellings {
        Tcp = TCP,
        Udp = UDP,
    }
}

impl StreamType {
    /// Whether the client tracks flow-control credit for streams of this type (everything
    /// except UDP).
    pub const fn is_flow_controlled(self) -> bool {
        self.0 != Self::UDP.0
    }

    /// The epoxy `wisp-mux` spelling of a value without a name (`StreamType::Other(3)`): the
    /// same as `StreamType(value)`. A value, not a pattern: match on the constants, or on
    /// the byte.
    #[allow(non_snake_case)]
    pub const fn Other(value: u8) -> Self {
        Self(value)
    }
}

open_u8_code! {
    /// The reason byte of a CLOSE packet. The code space is open: extensions may define new
    /// values and an unknown value is never an error.
    CloseReason {
        /// 0x01: unknown or unspecified.
        UNKNOWN = 0x01 => "UNKNOWN",
        /// 0x02: voluntary close (normal end).
        VOLUNTARY = 0x02 => "VOLUNTARY",
        /// 0x03: unexpected close caused by a network error.
        UNEXPECTED = 0x03 => "UNEXPECTED",
        /// 0x04: incompatible extensions (handshake, stream 0).
        EXTENSIONS_INCOMPATIBLE = 0x04 => "EXTENSIONS_INCOMPATIBLE",
        /// 0x41: stream creation failed because of invalid information.
        SERVER_STREAM_INVALID_INFO = 0x41 => "SERVER_STREAM_INVALID_INFO",
        /// 0x42: the destination is unreachable.
        SERVER_STREAM_UNREACHABLE = 0x42 => "SERVER_STREAM_UNREACHABLE",
        /// 0x43: connecting to the destination timed out.
        SERVER_STREAM_CONNECTION_TIMED_OUT = 0x43 => "SERVER_STREAM_CONNECTION_TIMED_OUT",
        /// 0x44: the destination refused the connection.
        SERVER_STREAM_CONNECTION_REFUSED = 0x44 => "SERVER_STREAM_CONNECTION_REFUSED",
        /// 0x47: TCP data transfer timed out.
        SERVER_STREAM_TIMED_OUT = 0x47 => "SERVER_STREAM_TIMED_OUT",
        /// 0x48: the destination is blocked by the server.
        SERVER_STREAM_BLOCKED_ADDRESS = 0x48 => "SERVER_STREAM_BLOCKED_ADDRESS",
        /// 0x49: the server throttles this client.
        SERVER_STREAM_THROTTLED = 0x49 => "SERVER_STREAM_THROTTLED",
        /// 0x81: the client hit an unexpected error.
        CLIENT_UNEXPECTED = 0x81 => "CLIENT_UNEXPECTED",
        /// 0xC0: password authentication failed.
        PASSWORD_AUTH_FAILED = 0xc0 => "PASSWORD_AUTH_FAILED",
        /// 0xC1: certificate authentication failed (bad signature).
        CERT_AUTH_FAILED = 0xc1 => "CERT_AUTH_FAILED",
        /// 0xC2: authentication is required but the client sent no credentials.
        AUTH_REQUIRED = 0xc2 => "AUTH_REQUIRED",
    }
    seed_spellings {
        Unknown = UNKNOWN,
        Voluntary = VOLUNTARY,
        Unexpected = UNEXPECTED,
        ExtensionsIncompatible = EXTENSIONS_INCOMPATIBLE,
        ServerStreamInvalidInfo = SERVER_STREAM_INVALID_INFO,
        ServerStreamUnreachable = SERVER_STREAM_UNREACHABLE,
        ServerStreamConnectionTimedOut = SERVER_STREAM_CONNECTION_TIMED_OUT,
        ServerStreamConnectionRefused = SERVER_STREAM_CONNECTION_REFUSED,
        ServerStreamTimedOut = SERVER_STREAM_TIMED_OUT,
        ServerStreamBlockedAddress = SERVER_STREAM_BLOCKED_ADDRESS,
        ServerStreamThrottled = SERVER_STREAM_THROTTLED,
        ClientUnexpected = CLIENT_UNEXPECTED,
        ExtensionsPasswordAuthFailed = PASSWORD_AUTH_FAILED,
        ExtensionsCertAuthFailed = CERT_AUTH_FAILED,
        ExtensionsAuthRequired = AUTH_REQUIRED,
    }
}

impl CloseReason {
    /// The epoxy `wisp-mux` spelling of a value without a name (`CloseReason::Other(0x45)`):
    /// the same as `CloseReason(value)`. A value, not a pattern.
    #[allow(non_snake_case)]
    pub const fn Other(value: u8) -> Self {
        Self(value)
    }
}

/// A CONNECT packet payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectPacket {
    /// The stream type.
    pub stream_type: StreamType,
    /// The destination port.
    pub port: u16,
    /// The destination host name, as UTF-8.
    pub host: String,
}

/// The body of a decoded packet.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PacketBody {
    /// CONNECT (client to server).
    Connect(ConnectPacket),
    /// DATA; the payload may be empty.
    Data(Bytes),
    /// CONTINUE with the absolute number of packets the server can buffer for the stream.
    Continue {
        /// Packets the server can still buffer.
        buffer_remaining: u32,
    },
    /// CLOSE with its reason.
    Close {
        /// Why the stream ends.
        reason: CloseReason,
    },
    /// INFO (v2 handshake).
    Info(InfoPacket),
    /// A packet type this implementation does not know; kept whole.
    Unknown {
        /// The type byte.
        packet_type: PacketType,
        /// The payload after the header.
        payload: Bytes,
    },
}

/// A decoded Wisp packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// The stream id from the header.
    pub stream_id: u32,
    /// The type-specific body.
    pub body: PacketBody,
}

/// Why a packet could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The message ended before the field was complete.
    Truncated {
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A string field is not valid UTF-8.
    InvalidUtf8,
}

/// A structural decoding failure, naming the packet and field that was malformed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// The packet type, when the header could be read.
    pub packet_type: Option<PacketType>,
    /// The field that could not be read (for example `"header"`, `"CLOSE reason"`).
    pub field: &'static str,
    /// What was wrong with it.
    pub kind: DecodeErrorKind,
}

impl DecodeError {
    pub(crate) fn truncated(
        packet_type: Option<PacketType>,
        field: &'static str,
        needed: usize,
        available: usize,
    ) -> Self {
        Self {
            packet_type,
            field,
            kind: DecodeErrorKind::Truncated { needed, available },
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ty) = self.packet_type {
            write!(f, "{ty} packet: ")?;
        }
        match &self.kind {
            DecodeErrorKind::Truncated { needed, available } => write!(
                f,
                "{} truncated (needs {needed} bytes, {available} left)",
                self.field
            ),
            DecodeErrorKind::InvalidUtf8 => write!(f, "{} is not valid UTF-8", self.field),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Checks that `buf` holds at least `needed` bytes for `field`.
pub(crate) fn need(
    buf: &Bytes,
    needed: usize,
    packet_type: Option<PacketType>,
    field: &'static str,
) -> Result<(), DecodeError> {
    if buf.len() < needed {
        Err(DecodeError::truncated(
            packet_type,
            field,
            needed,
            buf.len(),
        ))
    } else {
        Ok(())
    }
}

impl Packet {
    /// A CONNECT packet.
    pub fn connect(
        stream_id: u32,
        stream_type: StreamType,
        host: impl Into<String>,
        port: u16,
    ) -> Self {
        Self {
            stream_id,
            body: PacketBody::Connect(ConnectPacket {
                stream_type,
                port,
                host: host.into(),
            }),
        }
    }

    /// A DATA packet.
    pub fn data(stream_id: u32, payload: impl Into<Bytes>) -> Self {
        Self {
            stream_id,
            body: PacketBody::Data(payload.into()),
        }
    }

    /// A CONTINUE packet.
    pub fn continue_(stream_id: u32, buffer_remaining: u32) -> Self {
        Self {
            stream_id,
            body: PacketBody::Continue { buffer_remaining },
        }
    }

    /// A CLOSE packet.
    pub fn close(stream_id: u32, reason: CloseReason) -> Self {
        Self {
            stream_id,
            body: PacketBody::Close { reason },
        }
    }

    /// An INFO packet (always on stream 0).
    pub fn info(info: InfoPacket) -> Self {
        Self {
            stream_id: 0,
            body: PacketBody::Info(info),
        }
    }

    /// The packet type byte of this packet.
    pub fn packet_type(&self) -> PacketType {
        match &self.body {
            PacketBody::Connect(_) => PacketType::CONNECT,
            PacketBody::Data(_) => PacketType::DATA,
            PacketBody::Continue { .. } => PacketType::CONTINUE,
            PacketBody::Close { .. } => PacketType::CLOSE,
            PacketBody::Info(_) => PacketType::INFO,
            PacketBody::Unknown { packet_type, .. } => *packet_type,
        }
    }

    /// Decodes one packet from one whole WebSocket message. DATA payloads are zero-copy
    /// slices of `msg`.
    pub fn decode(mut msg: Bytes) -> Result<Self, DecodeError> {
        need(&msg, HEADER_LEN, None, "header")?;
        let packet_type = PacketType(msg.get_u8());
        let stream_id = msg.get_u32_le();
        let ty = Some(packet_type);
        let body = match packet_type {
            PacketType::CONNECT => {
                need(&msg, 3, ty, "CONNECT stream type and port")?;
                let stream_type = StreamType(msg.get_u8());
                let port = msg.get_u16_le();
                let host = String::from_utf8(msg.to_vec()).map_err(|_| DecodeError {
                    packet_type: ty,
                    field: "CONNECT hostname",
                    kind: DecodeErrorKind::InvalidUtf8,
                })?;
                PacketBody::Connect(ConnectPacket {
                    stream_type,
                    port,
                    host,
                })
            }
            PacketType::DATA => PacketBody::Data(msg),
            PacketType::CONTINUE => {
                need(&msg, 4, ty, "CONTINUE buffer_remaining")?;
                PacketBody::Continue {
                    buffer_remaining: msg.get_u32_le(),
                }
            }
            PacketType::CLOSE => {
                need(&msg, 1, ty, "CLOSE reason")?;
                PacketBody::Close {
                    reason: CloseReason(msg.get_u8()),
                }
            }
            PacketType::INFO => PacketBody::Info(InfoPacket::decode(msg)?),
            other => PacketBody::Unknown {
                packet_type: other,
                payload: msg,
            },
        };
        Ok(Self { stream_id, body })
    }

    /// The exact number of bytes [`Packet::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN
            + match &self.body {
                PacketBody::Connect(c) => 3 + c.host.len(),
                PacketBody::Data(d) => d.len(),
                PacketBody::Continue { .. } => 4,
                PacketBody::Close { .. } => 1,
                PacketBody::Info(info) => info.encoded_len(),
                PacketBody::Unknown { payload, .. } => payload.len(),
            }
    }

    /// Appends the encoding of this packet to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        encode_header(self.packet_type(), self.stream_id, out);
        match &self.body {
            PacketBody::Connect(c) => {
                out.put_u8(c.stream_type.0);
                out.put_u16_le(c.port);
                out.put_slice(c.host.as_bytes());
            }
            PacketBody::Data(d) => out.put_slice(d),
            PacketBody::Continue { buffer_remaining } => out.put_u32_le(*buffer_remaining),
            PacketBody::Close { reason } => out.put_u8(reason.0),
            PacketBody::Info(info) => info.encode(out),
            PacketBody::Unknown { payload, .. } => out.put_slice(payload),
        }
    }

    /// Encodes this packet into a new buffer of exactly the right size.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out.freeze()
    }
}

/// Encodes a DATA packet straight from a payload slice: one allocation, one copy.
#[inline]
pub fn encode_data(stream_id: u32, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + payload.len());
    encode_header(PacketType::DATA, stream_id, &mut out);
    out.put_slice(payload);
    out.freeze()
}

/// Appends the common header of every packet: the type byte and the little-endian stream id.
/// What follows is the type's payload; builders of deliberately malformed packets (a test
/// peer) write it themselves.
#[inline]
pub fn encode_header(packet_type: PacketType, stream_id: u32, out: &mut impl BufMut) {
    out.put_u8(packet_type.0);
    out.put_u32_le(stream_id);
}
