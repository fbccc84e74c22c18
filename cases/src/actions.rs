//! The action language both roles share: what a client does through its API after the
//! handshake (`open`, `send`, `close`, `read`, `wait_closed`, `drop`, `close_mux`,
//! `sleep`, and the server role's bulk `echo`), and what each opened stream must have
//! seen at the end ([`StreamExpect`]).
//!
//! Client-role cases give the actions of the client under test (`client.actions`);
//! server-role cases give the traffic the harness sends through its own client
//! (`actions`). The harness interprets both with one interpreter.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_saphyr::Spanned;
use wisp_proto::StreamType;

use crate::values::{Dur, ErrorSet, Hex, ReasonSpec, StreamTypeSpec};

/// `open`: the client opens a stream.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAction {
    /// The alias the stream gets (`s1`).
    pub stream: String,
    /// The stream type.
    #[serde(rename = "type", default = "default_stream_type")]
    pub stream_type: StreamTypeSpec,
    /// Destination host.
    #[serde(default = "default_host")]
    pub host: String,
    /// Destination port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// The open must fail with this error (client role).
    #[serde(default)]
    pub expect_error: Option<ErrorSet>,
}

fn default_stream_type() -> StreamTypeSpec {
    StreamTypeSpec(StreamType::TCP)
}
fn default_host() -> String {
    "example.com".to_owned()
}
fn default_port() -> u16 {
    80
}

/// `repeat: {byte, count}`: a payload of one byte repeated.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repeat {
    /// The byte.
    pub byte: u8,
    /// How many times.
    pub count: usize,
}

/// `send`: the client writes a payload to a stream.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendAction {
    /// The stream alias.
    pub stream: String,
    /// UTF-8 text payload.
    #[serde(default)]
    pub text: Option<String>,
    /// Hex payload.
    #[serde(default)]
    pub hex: Option<Hex>,
    /// A repeated byte.
    #[serde(default)]
    pub repeat: Option<Repeat>,
    /// Send the payload this many times, one write each (default 1).
    #[serde(default)]
    pub times: Option<usize>,
    /// The write must fail with this error.
    #[serde(default)]
    pub expect_error: Option<ErrorSet>,
}

impl SendAction {
    /// The payload bytes.
    pub fn payload(&self) -> Vec<u8> {
        if let Some(t) = &self.text {
            t.as_bytes().to_vec()
        } else if let Some(h) = &self.hex {
            h.0.to_vec()
        } else if let Some(r) = &self.repeat {
            vec![r.byte; r.count]
        } else {
            Vec::new()
        }
    }
}

/// `close`: the client closes a stream.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseAction {
    /// The stream alias.
    pub stream: String,
    /// The reason (default 0x02).
    #[serde(default)]
    pub reason: Option<ReasonSpec>,
    /// The close must fail with this error.
    #[serde(default)]
    pub expect_error: Option<ErrorSet>,
}

/// How far a `read` goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadUntil {
    /// Until at least this many bytes arrived.
    Bytes(usize),
    /// Until the stream ends.
    End,
}

impl fmt::Display for ReadUntil {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bytes(n) => write!(f, "{n} bytes"),
            Self::End => f.write_str("the end"),
        }
    }
}

impl<'de> Deserialize<'de> for ReadUntil {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ReadUntil;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`end` or a number of bytes")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ReadUntil, E> {
                if v == "end" {
                    Ok(ReadUntil::End)
                } else {
                    Err(E::custom(format!(
                        "read until {v:?}: use `end` or a byte count"
                    )))
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ReadUntil, E> {
                usize::try_from(v)
                    .map(ReadUntil::Bytes)
                    .map_err(|_| E::custom("byte count too large"))
            }
        }
        d.deserialize_any(V)
    }
}

/// `read`: the client reads from a stream, collecting the data.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadAction {
    /// The stream alias.
    pub stream: String,
    /// How far to read.
    pub until: ReadUntil,
}

/// `close_mux`: the client closes the whole connection.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseMuxAction {
    /// With a reason, CLOSE(0, reason) is sent first.
    #[serde(default)]
    pub reason: Option<ReasonSpec>,
}

/// `echo`: bulk, byte-exact echo through one or many concurrent TCP streams (server
/// role).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EchoAction {
    /// How many streams, all at once (default 1).
    #[serde(default = "one_usize")]
    pub streams: usize,
    /// Bytes sent (and expected back) per stream.
    pub len: usize,
    /// Bytes per write (default 32768).
    #[serde(default = "default_chunk")]
    pub chunk: usize,
    /// At most this many bytes sent but not yet echoed per stream (default: no limit).
    /// Keeps the DATA in flight within the server's buffer, so a bulk case does not also
    /// test what happens when in-flight packets overshoot an absolute CONTINUE.
    #[serde(default)]
    pub window: Option<usize>,
    /// The echo target's host.
    pub host: String,
    /// The echo target's port.
    pub port: u16,
}

fn one_usize() -> usize {
    1
}
fn default_chunk() -> usize {
    32 * 1024
}

/// One client action, run in order after the handshake.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Open a stream.
    Open(OpenAction),
    /// Write to a stream.
    Send(SendAction),
    /// Close a stream with a reason.
    Close(CloseAction),
    /// Read from a stream.
    Read(ReadAction),
    /// Read until the stream ends (data is collected).
    WaitClosed(String),
    /// Drop both halves of a stream (the client sends CLOSE 0x02).
    Drop(String),
    /// Close the connection.
    CloseMux(CloseMuxAction),
    /// Sleep (virtual time in client-role cases).
    Sleep(Dur),
    /// Server role only: open TCP streams to an echo target, send generated bytes on each
    /// (all streams at once) and check that exactly those bytes come back.
    Echo(EchoAction),
}

impl Action {
    /// The stream alias the action names, if any.
    pub fn alias(&self) -> Option<&str> {
        match self {
            Self::Open(a) => Some(&a.stream),
            Self::Send(a) => Some(&a.stream),
            Self::Close(a) => Some(&a.stream),
            Self::Read(a) => Some(&a.stream),
            Self::WaitClosed(a) | Self::Drop(a) => Some(a),
            Self::CloseMux(_) | Self::Sleep(_) | Self::Echo(_) => None,
        }
    }
}

/// The actions of a case, each with its place in the file.
pub type Actions = Vec<Spanned<Action>>;

/// Per-stream expectations at the end of a case.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamExpect {
    /// The data read, as text.
    #[serde(default)]
    pub data_text: Option<String>,
    /// The data read, as hex.
    #[serde(default)]
    pub data_hex: Option<Hex>,
    /// The number of bytes read.
    #[serde(default)]
    pub data_len: Option<usize>,
    /// Who ended the stream.
    #[serde(default)]
    pub closed_by: Option<ClosedBy>,
    /// The close reason.
    #[serde(default)]
    pub reason: Option<ReasonSpec>,
    /// The error the stream reported.
    #[serde(default)]
    pub error: Option<ErrorSet>,
    /// Whether the stream is still open (`false` = ended).
    #[serde(default)]
    pub open: Option<bool>,
}

/// The per-stream expectations of a case, by alias.
pub type StreamExpects = BTreeMap<String, StreamExpect>;

/// Who ended a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClosedBy {
    /// A CLOSE from the server.
    Server,
    /// The client (close, drop).
    Client,
    /// The whole connection ended.
    Connection,
}

/// The literal `ok` (`expect: {handshake: ok}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HandshakeOk {
    /// The handshake succeeds.
    Ok,
}
