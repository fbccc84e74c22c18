//! What a [`FaultyServer`](super::FaultyServer) does: its correct behaviour
//! ([`Handshake`], password, MOTD, buffer size) and the faults switched on
//! ([`FaultConfig`]), with the packet predicate the crash and freeze faults
//! use ([`PacketMatch`]).

use std::fmt;
use std::str::FromStr;

use wisp_client::proto::{HEADER_LEN, PacketType};

/// The handshake a [`FaultyServer`](super::FaultyServer) speaks.
///
/// In both v2 orders the server speaks v2 only to a client that sent
/// `Sec-WebSocket-Protocol` (draft 5+ gate) and echoes the first value it
/// offered; a client without the header gets plain v1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Handshake {
    /// Wisp v1.2 only: CONTINUE(0) first, no INFO, no subprotocol echoed
    /// (what wisp-server-python does).
    V1,
    /// v2 draft 6: INFO first, then wait for the client's INFO, judge it
    /// (password), then CONTINUE(0) — or CLOSE(0, 0xC0/0xC2) and the end of
    /// the WebSocket. A first client packet other than INFO is served as v1
    /// (after CONTINUE(0)), unless a password is required (CLOSE(0, 0xC2)).
    #[default]
    Draft6,
    /// The older order of v2 drafts 1–3 and wisp-mux 5.x (epoxy-server G1):
    /// CONTINUE(0), then INFO, then the client's INFO is judged when it
    /// arrives (a rejection comes after the client already saw CONTINUE).
    ContinueFirst,
}

impl Handshake {
    /// The command-line spelling: `v1`, `draft6`, `continue-first`.
    pub fn as_str(self) -> &'static str {
        match self {
            Handshake::V1 => "v1",
            Handshake::Draft6 => "draft6",
            Handshake::ContinueFirst => "continue-first",
        }
    }
}

impl fmt::Display for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Handshake {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "v1" => Ok(Handshake::V1),
            "draft6" | "v2" => Ok(Handshake::Draft6),
            "continue-first" | "legacy" => Ok(Handshake::ContinueFirst),
            other => Err(ParseError(format!(
                "unknown handshake {other:?} (expected v1, draft6 or continue-first)"
            ))),
        }
    }
}

/// A command-line value that could not be parsed (a [`PacketMatch`] or a
/// [`Handshake`]); the text says what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

/// A predicate on one WebSocket binary message received from a client,
/// looked at as raw bytes before any decoding (so a truncated or malformed
/// packet can match too). Every field that is set must match; the default
/// matches every packet.
///
/// As text (the `--crash-on` / `--freeze-on` flags, [`FromStr`] and
/// [`Display`](fmt::Display)): `any`, or comma-separated `key=value` items:
/// `type=DATA` (a name or a number such as `0x04`), `stream=1`,
/// `port=8080` (a CONNECT to that port), `prefix=0504` (hex of the payload's
/// first bytes, after the 5-byte header), `text=CRASH` (the same, as UTF-8)
/// and `len=5` (the whole message's length in bytes). Examples:
/// `type=CLOSE,prefix=05` (a CLOSE with reason 0x05), `type=CLOSE,len=5` (a
/// CLOSE without its reason byte, which crashes wisp-server-python).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PacketMatch {
    /// The packet type byte (offset 0).
    pub packet_type: Option<PacketType>,
    /// The stream id (offsets 1–4, little-endian); a message shorter than the
    /// header never matches it.
    pub stream_id: Option<u32>,
    /// A CONNECT (of any stream type) to this destination port.
    pub connect_port: Option<u16>,
    /// The payload (the bytes after the 5-byte header) starts with these
    /// bytes. Empty: no condition.
    pub payload_prefix: Vec<u8>,
    /// The whole message (header included) is exactly this many bytes long.
    pub message_len: Option<usize>,
}

impl PacketMatch {
    /// Matches every packet.
    pub fn any() -> Self {
        Self::default()
    }

    /// Matches every packet of this type.
    pub fn of_type(packet_type: PacketType) -> Self {
        Self {
            packet_type: Some(packet_type),
            ..Self::default()
        }
    }

    /// Matches a CONNECT to `port` (any host, any stream type).
    pub fn connect_to_port(port: u16) -> Self {
        Self {
            packet_type: Some(PacketType::CONNECT),
            connect_port: Some(port),
            ..Self::default()
        }
    }

    /// Matches a DATA packet whose payload starts with `prefix`.
    pub fn data_starting_with(prefix: impl Into<Vec<u8>>) -> Self {
        Self::of_type(PacketType::DATA).with_payload_prefix(prefix)
    }

    /// Also requires the payload to start with `prefix`.
    pub fn with_payload_prefix(mut self, prefix: impl Into<Vec<u8>>) -> Self {
        self.payload_prefix = prefix.into();
        self
    }

    /// Also requires this stream id.
    pub fn with_stream_id(mut self, stream_id: u32) -> Self {
        self.stream_id = Some(stream_id);
        self
    }

    /// Also requires the whole message to be exactly `len` bytes long.
    pub fn with_message_len(mut self, len: usize) -> Self {
        self.message_len = Some(len);
        self
    }

    /// Whether the raw message `msg` matches.
    pub fn matches(&self, msg: &[u8]) -> bool {
        if let Some(ty) = self.packet_type
            && msg.first() != Some(&ty.0)
        {
            return false;
        }
        if let Some(id) = self.stream_id {
            match msg.get(1..HEADER_LEN) {
                Some(b) if u32::from_le_bytes([b[0], b[1], b[2], b[3]]) == id => {}
                _ => return false,
            }
        }
        if let Some(port) = self.connect_port {
            let is_connect = msg.first() == Some(&PacketType::CONNECT.0);
            match msg.get(HEADER_LEN + 1..HEADER_LEN + 3) {
                Some(b) if is_connect && u16::from_le_bytes([b[0], b[1]]) == port => {}
                _ => return false,
            }
        }
        if self.message_len.is_some_and(|len| len != msg.len()) {
            return false;
        }
        if !self.payload_prefix.is_empty() {
            match msg.get(HEADER_LEN..) {
                Some(payload) if payload.starts_with(&self.payload_prefix) => {}
                _ => return false,
            }
        }
        true
    }
}

impl fmt::Display for PacketMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut items = Vec::new();
        if let Some(ty) = self.packet_type {
            items.push(match ty.name() {
                Some(name) => format!("type={name}"),
                None => format!("type=0x{:02x}", ty.0),
            });
        }
        if let Some(id) = self.stream_id {
            items.push(format!("stream={id}"));
        }
        if let Some(port) = self.connect_port {
            items.push(format!("port={port}"));
        }
        if !self.payload_prefix.is_empty() {
            items.push(format!("prefix={}", hex(&self.payload_prefix)));
        }
        if let Some(len) = self.message_len {
            items.push(format!("len={len}"));
        }
        if items.is_empty() {
            f.write_str("any")
        } else {
            f.write_str(&items.join(","))
        }
    }
}

impl FromStr for PacketMatch {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let mut m = PacketMatch::any();
        if s.eq_ignore_ascii_case("any") {
            return Ok(m);
        }
        for item in s.split(',') {
            let Some((key, value)) = item.split_once('=') else {
                return Err(ParseError(format!(
                    "{item:?} is not key=value (keys: type, stream, port, prefix, text, len; or `any`)"
                )));
            };
            let (key, value) = (key.trim(), value.trim());
            let bad = |what: &str| ParseError(format!("{key}={value}: {what}"));
            match key {
                "type" => m.packet_type = Some(parse_packet_type(value).ok_or_else(|| bad("expected a packet type name (CONNECT, DATA, CONTINUE, CLOSE, INFO) or a number"))?),
                "stream" => {
                    m.stream_id = Some(parse_number(value).and_then(|n| u32::try_from(n).ok()).ok_or_else(|| bad("expected a stream id (u32)"))?);
                }
                "port" => {
                    m.connect_port = Some(parse_number(value).and_then(|n| u16::try_from(n).ok()).ok_or_else(|| bad("expected a port (u16)"))?);
                    m.packet_type.get_or_insert(PacketType::CONNECT);
                }
                "prefix" => m.payload_prefix = parse_hex(value).ok_or_else(|| bad("expected hex bytes"))?,
                "text" => m.payload_prefix = value.as_bytes().to_vec(),
                "len" => {
                    m.message_len = Some(parse_number(value).and_then(|n| usize::try_from(n).ok()).ok_or_else(|| bad("expected a length in bytes"))?);
                }
                _ => return Err(bad("unknown key (keys: type, stream, port, prefix, text, len)")),
            }
        }
        Ok(m)
    }
}

/// A packet type by name (case-insensitive) or number.
fn parse_packet_type(s: &str) -> Option<PacketType> {
    let named = [
        PacketType::CONNECT,
        PacketType::DATA,
        PacketType::CONTINUE,
        PacketType::CLOSE,
        PacketType::INFO,
    ]
    .into_iter()
    .find(|t| t.name().is_some_and(|n| n.eq_ignore_ascii_case(s)));
    named.or_else(|| {
        parse_number(s)
            .and_then(|n| u8::try_from(n).ok())
            .map(PacketType)
    })
}

/// A decimal or `0x` hexadecimal number.
fn parse_number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Hex digits (an even number of them, no separators) as bytes.
fn parse_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Lower-case hex of `bytes`.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Everything a [`FaultyServer`](super::FaultyServer) does.
///
/// The default is a small but correct Wisp server: the [draft 6
/// handshake](Handshake::Draft6) (v1 for clients that offer no
/// subprotocol), UDP advertised and served, no password, no MOTD, a buffer of
/// 128 packets per TCP stream with exact credit accounting, TCP and UDP
/// streams proxied to whatever destination the client names (without any
/// address filtering: it is a test server for loopback targets), one DATA per
/// upstream read (at most 16 KiB) and one DATA per datagram.
///
/// Each fault is one field, off by default; faults combine. The doc of each
/// field says what a real server doing this looks like and what a client or
/// a conformance suite sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultConfig {
    /// The handshake spoken with clients that offer `Sec-WebSocket-Protocol`.
    pub handshake: Handshake,
    /// `Some((username, password))`: the password extension (0x02) is
    /// advertised as required and the client's record is checked. Both record
    /// layouts are accepted: draft 6 (`ulen u8 | username | password[rest]`)
    /// and drafts ≤ 5 (`ulen u8 | plen u16 LE | username | password`). A
    /// wrong password gets CLOSE(0, 0xC0), a missing (or empty) record
    /// CLOSE(0, 0xC2), each followed by the end of the WebSocket. A client
    /// that offers no subprotocol (v1) gets CONTINUE(0), then CLOSE(0, 0xC2)
    /// at its first packet. Needs a v2 [`handshake`](Self::handshake).
    pub password: Option<(String, String)>,
    /// `Some(text)`: the MOTD extension (0x04) with this text in the server's
    /// INFO.
    pub motd: Option<String>,
    /// Packets buffered per TCP stream: the credit of CONTINUE(0). The
    /// correct server never drops DATA: it sends a CONTINUE only once the
    /// client has used up its credit (so no DATA is in flight), granting the
    /// free slots of its queue once at least half of it is free. Default 128;
    /// must not be 0.
    pub buffer_size: u32,

    /// Crash: when a received packet matches, the whole server stops at once,
    /// as a process that panics or segfaults would: the listener is closed
    /// (new connections are refused) and every WebSocket and upstream socket
    /// is dropped without a Wisp CLOSE or a WebSocket close frame. The
    /// `wisp-faulty-server` binary really exits, with
    /// [`CRASH_EXIT_CODE`](super::CRASH_EXIT_CODE). Real servers do this on
    /// malformed input (wisp-server-python on a short CLOSE, epoxy on a short
    /// password record).
    pub crash_on: Option<PacketMatch>,
    /// Freeze: when a received packet matches, the server stops answering
    /// anything on every connection (no DATA, no CONTINUE, no CLOSE, no
    /// WebSocket pong) and stops completing WebSocket upgrades, but keeps
    /// accepting TCP connections and keeps every socket open: a deadlocked or
    /// busy-looping server. A liveness check sees "no upgrade within N s".
    pub freeze_on: Option<PacketMatch>,
    /// Connect to TCP destinations synchronously on the server's only event
    /// loop thread (a blocking `std::net::TcpStream::connect_timeout` with a
    /// 30 s bound, and blocking name resolution), as a server that calls a
    /// blocking connect inside its async task does. A destination slow to
    /// connect (such as a [`FullBacklogTarget`](crate::FullBacklogTarget))
    /// then freezes every connection and every upgrade until the connect
    /// ends. Without it, connects run concurrently and fail with 0x43 after
    /// 10 s.
    pub connect_blocking: bool,
    /// Append this many zero bytes to the payload of every CLOSE the server
    /// sends (a CLOSE of `1 + pad_close` payload bytes), as a server that
    /// serialises a fixed-size struct would. Lenient clients ignore them; a
    /// client that checks lengths rejects the packet.
    pub pad_close: usize,
    /// Append this many zero bytes to the payload of every CONTINUE the
    /// server sends (including CONTINUE(0)).
    pub pad_continue: usize,
    /// Echo the client's `Sec-WebSocket-Protocol` (for example `wisp-v2`) but
    /// speak v1: CONTINUE(0) first and never an INFO. A client that trusts the
    /// header waits for an INFO that never comes; a client that looks at the
    /// first packet downgrades to v1.
    pub subprotocol_lie: bool,
    /// When several datagrams from a UDP target are readable at once, send
    /// them to the client as ONE DATA packet (their payloads concatenated,
    /// up to 60 000 bytes): after each datagram the server keeps reading for
    /// up to 10 ms before it sends. Datagram boundaries are lost in a burst;
    /// datagrams far apart still arrive one per DATA.
    pub merge_udp: bool,
    /// The older handshake order (CONTINUE(0), then INFO with a required
    /// password record) with the password judged only after the client's INFO
    /// arrives: a wrong *or missing* password is rejected with CLOSE(0, 0xC0)
    /// after the client has already seen CONTINUE(0) and may think the
    /// handshake is done. A client that offers no INFO at all gets
    /// CLOSE(0, 0xC0) at its first packet. Overrides
    /// [`handshake`](Self::handshake) for v2 clients; needs
    /// [`password`](Self::password).
    pub late_auth_reject: bool,
    /// Grant credit as if no DATA were in flight, and drop DATA that exceeds
    /// the real buffer. Every `buffer_size / 2` DATA packets received on a TCP
    /// stream (at least 1) the server sends CONTINUE(`buffer_size`), the full
    /// buffer, ignoring what is queued and what the client sent meanwhile;
    /// its queue really holds `buffer_size` packets and is forwarded upstream
    /// only every 50 ms (a busy server), the first time only once it has
    /// overflowed or the client has sent nothing for 1 s; DATA arriving while it
    /// is full is silently dropped, as epoxy-server's `try_send` on a full
    /// channel does. A client that keeps exactly the granted credit in flight
    /// loses data, however fast either side runs; a client that waits for each
    /// echo does not.
    pub ignore_in_flight_credit: bool,
    /// `Some(size)`: read target data into a buffer of `size` bytes before
    /// sending a DATA: the server keeps reading until the buffer is full, the
    /// target ends, or the target has been silent for 20 ms, so a bulk
    /// transfer arrives in frames of up to `size` bytes (`4 << 20` gives the
    /// 4 MiB frames seen in the wild, far over the 64 KiB many clients
    /// accept). Must not be 0.
    pub coalesce_data: Option<usize>,
}

impl Default for FaultConfig {
    /// A correct server: draft 6, no password, no MOTD, buffer 128, no fault.
    fn default() -> Self {
        Self {
            handshake: Handshake::Draft6,
            password: None,
            motd: None,
            buffer_size: 128,
            crash_on: None,
            freeze_on: None,
            connect_blocking: false,
            pad_close: 0,
            pad_continue: 0,
            subprotocol_lie: false,
            merge_udp: false,
            late_auth_reject: false,
            ignore_in_flight_credit: false,
            coalesce_data: None,
        }
    }
}

impl FaultConfig {
    /// Checks the combinations that cannot work.
    ///
    /// # Errors
    ///
    /// A zero buffer size or coalescing size, a password with the v1
    /// handshake, or [`late_auth_reject`](Self::late_auth_reject) without a
    /// password.
    pub fn validate(&self) -> Result<(), String> {
        if self.buffer_size == 0 {
            return Err(
                "buffer_size must be at least 1 (CONTINUE(0) would grant no credit)".into(),
            );
        }
        if self.coalesce_data == Some(0) {
            return Err("coalesce_data must be at least 1 byte".into());
        }
        if self.late_auth_reject && self.password.is_none() {
            return Err("late_auth_reject needs a password to reject".into());
        }
        if self.password.is_some() && self.effective_handshake() == Handshake::V1 {
            return Err("a password needs a v2 handshake (extensions are v2 only)".into());
        }
        Ok(())
    }

    /// The handshake actually spoken with a client that offers a subprotocol:
    /// [`late_auth_reject`](Self::late_auth_reject) forces the older order.
    pub(super) fn effective_handshake(&self) -> Handshake {
        if self.late_auth_reject {
            Handshake::ContinueFirst
        } else {
            self.handshake
        }
    }

    /// The faults switched on, for the log (`none` when there are none).
    pub fn describe_faults(&self) -> String {
        let mut faults = Vec::new();
        if let Some(m) = &self.crash_on {
            faults.push(format!("crash-on {m}"));
        }
        if let Some(m) = &self.freeze_on {
            faults.push(format!("freeze-on {m}"));
        }
        if self.connect_blocking {
            faults.push("connect-blocking".to_owned());
        }
        if self.pad_close > 0 {
            faults.push(format!("pad-close {}", self.pad_close));
        }
        if self.pad_continue > 0 {
            faults.push(format!("pad-continue {}", self.pad_continue));
        }
        if self.subprotocol_lie {
            faults.push("subprotocol-lie".to_owned());
        }
        if self.merge_udp {
            faults.push("merge-udp".to_owned());
        }
        if self.late_auth_reject {
            faults.push("late-auth-reject".to_owned());
        }
        if self.ignore_in_flight_credit {
            faults.push("ignore-in-flight-credit".to_owned());
        }
        if let Some(size) = self.coalesce_data {
            faults.push(format!("coalesce-data {size}"));
        }
        if faults.is_empty() {
            "none".to_owned()
        } else {
            faults.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_matches_everything_even_short_messages() {
        let m = PacketMatch::any();
        assert!(m.matches(&[]));
        assert!(m.matches(&[4, 1]));
        assert_eq!(m.to_string(), "any");
        assert_eq!("any".parse::<PacketMatch>().unwrap(), m);
    }

    #[test]
    fn type_and_prefix_match_the_raw_message() {
        let m: PacketMatch = "type=CLOSE,prefix=05".parse().unwrap();
        assert_eq!(
            m,
            PacketMatch::of_type(PacketType::CLOSE).with_payload_prefix([5])
        );
        assert!(m.matches(&[4, 1, 0, 0, 0, 5]));
        assert!(m.matches(&[4, 1, 0, 0, 0, 5, 0]));
        assert!(!m.matches(&[4, 1, 0, 0, 0, 2]));
        assert!(!m.matches(&[2, 1, 0, 0, 0, 5]));
        assert!(!m.matches(&[4, 1, 0]));
        assert_eq!(m.to_string(), "type=CLOSE,prefix=05");
    }

    #[test]
    fn a_type_alone_matches_a_truncated_packet() {
        let m: PacketMatch = "type=0x04".parse().unwrap();
        assert!(m.matches(&[4, 1, 0, 0, 0]));
        assert!(m.matches(&[4]));
    }

    #[test]
    fn len_selects_a_close_without_its_reason() {
        let m: PacketMatch = "type=CLOSE,len=5".parse().unwrap();
        assert_eq!(
            m,
            PacketMatch::of_type(PacketType::CLOSE).with_message_len(5)
        );
        assert!(m.matches(&[4, 1, 0, 0, 0]));
        assert!(!m.matches(&[4, 1, 0, 0, 0, 2]));
        assert_eq!(m.to_string(), "type=CLOSE,len=5");
        let short: PacketMatch = "len=3".parse().unwrap();
        assert!(short.matches(&[9, 9, 9]));
    }

    #[test]
    fn port_matches_a_connect_to_that_port() {
        let m: PacketMatch = "port=8080".parse().unwrap();
        assert_eq!(m, PacketMatch::connect_to_port(8080));
        let connect = [1, 1, 0, 0, 0, 1, 0x90, 0x1f, b'h'];
        assert!(m.matches(&connect));
        let mut other = connect;
        other[6] = 0x91;
        assert!(!m.matches(&other));
        let mut data = connect;
        data[0] = 2;
        assert!(!m.matches(&data));
        assert_eq!(m.to_string(), "type=CONNECT,port=8080");
        assert_eq!(m.to_string().parse::<PacketMatch>().unwrap(), m);
    }

    #[test]
    fn text_and_stream_select_a_data_packet() {
        let m: PacketMatch = "type=data,stream=3,text=CRASH".parse().unwrap();
        assert_eq!(
            m,
            PacketMatch::data_starting_with(&b"CRASH"[..]).with_stream_id(3)
        );
        assert!(m.matches(b"\x02\x03\x00\x00\x00CRASH now"));
        assert!(!m.matches(b"\x02\x01\x00\x00\x00CRASH now"));
        assert!(!m.matches(b"\x02\x03\x00\x00\x00CRAS"));
    }

    #[test]
    fn bad_text_is_a_parse_error() {
        for bad in [
            "",
            "type",
            "type=BOGUS",
            "port=70000",
            "prefix=abc",
            "prefix=zz",
            "colour=red",
        ] {
            assert!(bad.parse::<PacketMatch>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn handshake_names_round_trip() {
        for h in [Handshake::V1, Handshake::Draft6, Handshake::ContinueFirst] {
            assert_eq!(h.to_string().parse::<Handshake>().unwrap(), h);
        }
        assert!("v3".parse::<Handshake>().is_err());
    }

    #[test]
    fn impossible_configs_are_refused() {
        assert!(FaultConfig::default().validate().is_ok());
        let zero = FaultConfig {
            buffer_size: 0,
            ..FaultConfig::default()
        };
        assert!(zero.validate().is_err());
        let late = FaultConfig {
            late_auth_reject: true,
            ..FaultConfig::default()
        };
        assert!(late.validate().is_err());
        let v1_password = FaultConfig {
            handshake: Handshake::V1,
            password: Some(("u".into(), "p".into())),
            ..FaultConfig::default()
        };
        assert!(v1_password.validate().is_err());
    }
}
