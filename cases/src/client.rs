//! Client-role cases (`cases/<topic>/`): a client under test, the script the mock server
//! plays against it, and the outcome the spec requires.
//!
//! ```yaml
//! title: Draft-6 handshake completes with UDP and MOTD
//! spec: v2 draft 6 §handshake
//! level: must
//! description: ...
//! client: {version: v2, extensions: [udp, motd], actions: [...]}
//! server:
//!   - send: {type: INFO, version: "2.0", extensions: [udp, {motd: "welcome"}]}
//!   - expect: {type: INFO, version: "2.0", extensions: [udp, motd]}
//!   - send: {type: CONTINUE, stream: 0, credit: 128}
//! expect: {handshake: ok, motd: welcome}
//! ```

use serde::Deserialize;
use serde_saphyr::Spanned;
use wisp_proto::{MuxOptions, PasswordLayout};

pub use crate::ext::{ClientCertAuth, ClientExtension, ClientPassword, LayoutChoice};

use crate::Meta;
use crate::actions::{Actions, HandshakeOk, StreamExpects};
use crate::packet::{PacketSpec, Pattern, yes};
use crate::values::{Dur, ErrorSet, ExtName, Hex, OkOrError};
use crate::verdict::Verdict;

/// The Wisp version the client asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionSel {
    /// Wisp v1 (no subprotocol, no INFO).
    V1,
    /// Wisp v2 (subprotocol offered, INFO handshake, falls back to v1).
    #[default]
    V2,
}

/// The client under test.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// The version asked for.
    #[serde(default)]
    pub version: VersionSel,
    /// Extensions offered.
    #[serde(default)]
    pub extensions: Vec<ClientExtension>,
    /// Extensions the server's INFO must carry (checked before the client INFO is sent).
    #[serde(default)]
    pub required: Vec<ExtName>,
    /// Extensions that must be negotiated (`MuxResult::with_required_extensions`).
    #[serde(default)]
    pub required_after: Vec<ExtName>,
    /// Tunables: `MuxOptions` itself, in its serde form (durations with a unit, unknown
    /// fields rejected, missing ones defaulted).
    #[serde(default)]
    pub options: MuxOptions,
    /// The largest incoming WebSocket message the client accepts
    /// (`ConnectOptions::max_message_size`; default the WebSocket library's, 64 MiB).
    #[serde(default)]
    pub max_message_size: Option<usize>,
    /// Actions after the handshake.
    #[serde(default)]
    pub actions: Actions,
}

/// The mock server's options.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerOptions {
    /// Echo `Sec-WebSocket-Protocol` when the client offers one (default true).
    #[serde(default = "yes")]
    pub echo_subprotocol: bool,
    /// Bound on each waiting step (default 5s).
    #[serde(default = "default_step_timeout")]
    pub step_timeout: Dur,
    /// The layout used to show the client's password record in the trace (default: the
    /// layout of the matching `expect`, else draft6).
    #[serde(default)]
    pub password_layout: PasswordLayout,
    /// Answer the client's HTTP upgrade request (default true). `false` reads the request
    /// and never answers it: the client's connect timeout is what ends the case.
    #[serde(default = "yes")]
    pub answer_upgrade: bool,
    /// A faulty answer to the upgrade (default: a correct 101).
    #[serde(default)]
    pub upgrade: Option<UpgradeFault>,
}

/// `server_options.upgrade`: how the mock's answer to the HTTP upgrade deviates from
/// RFC 6455 §4.2.2. Any field may be combined with the others.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeFault {
    /// Answer with this status instead of 101 (e.g. 403, 200, 302).
    #[serde(default)]
    pub status: Option<u16>,
    /// `wrong`: a `Sec-WebSocket-Accept` that is not derived from the request's key.
    #[serde(default)]
    pub accept: Option<AcceptFault>,
    /// Put this `Sec-WebSocket-Protocol` in the response, whatever the client offered.
    #[serde(default)]
    pub subprotocol: Option<String>,
    /// Bytes after the response head: an HTTP body (with `Content-Length` unless the
    /// status is 101, after which they are read as WebSocket frames).
    #[serde(default)]
    pub body: Option<String>,
}

/// `accept:` in [`UpgradeFault`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AcceptFault {
    /// A well-formed value for another key.
    Wrong,
}

/// The opcode of a raw WebSocket frame (`send_frame`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opcode(pub u8);

impl Opcode {
    /// The RFC 6455 name of the opcode, if it has one.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x0 => "continuation",
            0x1 => "text",
            0x2 => "binary",
            0x8 => "close",
            0x9 => "ping",
            0xA => "pong",
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for Opcode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Opcode;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("continuation, text, binary, close, ping, pong or a number 0-15")
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<Opcode, E> {
                (0u8..16)
                    .map(Opcode)
                    .find(|o| o.name() == Some(v))
                    .ok_or_else(|| E::custom(format!("unknown opcode {v:?}")))
            }
            fn visit_u64<E: Error>(self, v: u64) -> Result<Opcode, E> {
                u8::try_from(v)
                    .ok()
                    .filter(|v| *v < 16)
                    .map(Opcode)
                    .ok_or_else(|| E::custom("an opcode is 0-15"))
            }
        }
        d.deserialize_any(V)
    }
}

/// `send_frame`: one raw WebSocket frame, written byte for byte (RFC 6455 §5.2), for
/// transport faults the WebSocket library would never produce.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameSpec {
    /// The opcode.
    pub opcode: Opcode,
    /// The FIN bit (default true).
    #[serde(default = "yes")]
    pub fin: bool,
    /// The three RSV bits, as a number 0-7 (default 0).
    #[serde(default)]
    pub rsv: u8,
    /// Mask the payload (servers must not; default false).
    #[serde(default)]
    pub mask: bool,
    /// Text payload.
    #[serde(default)]
    pub text: Option<String>,
    /// Hex payload.
    #[serde(default)]
    pub hex: Option<Hex>,
    /// One byte repeated.
    #[serde(default)]
    pub repeat: Option<crate::actions::Repeat>,
    /// Close frames: the status code (the payload starts with it, big-endian).
    #[serde(default)]
    pub code: Option<u16>,
    /// Close frames: the reason text after the code.
    #[serde(default)]
    pub reason: Option<String>,
    /// Send the frame this many times (default 1).
    #[serde(default)]
    pub times: Option<u32>,
    /// Write only the first N bytes of the frame (a frame cut off mid-way).
    #[serde(default)]
    pub truncate: Option<usize>,
}
fn default_step_timeout() -> Dur {
    Dur(std::time::Duration::from_secs(5))
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            echo_subprotocol: true,
            step_timeout: default_step_timeout(),
            password_layout: PasswordLayout::Draft6,
            answer_upgrade: true,
            upgrade: None,
        }
    }
}

/// One step of the mock server's script.
// Case files are small configuration values, read once; boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerStep {
    /// Send a structured packet.
    Send(PacketSpec),
    /// Send these bytes as one binary message (malformed input).
    SendRaw(Hex),
    /// Send a text frame.
    SendText(String),
    /// Wait for a packet matching the pattern.
    Expect(Pattern),
    /// Wait for the client's WebSocket close frame.
    ExpectCloseWs,
    /// Wait for the client to end the connection (close frame, EOF or reset).
    ExpectEof,
    /// Nothing may arrive for this long.
    ExpectNothing(Dur),
    /// Send a WebSocket close frame.
    CloseWs,
    /// Drop the TCP connection without a close frame.
    DropTcp,
    /// Reset the TCP connection (RST: `SO_LINGER` 0, then close).
    ResetTcp,
    /// Send a raw WebSocket frame.
    SendFrame(FrameSpec),
    /// Wait (virtual time).
    Pause(Dur),
    /// Record everything until the client ends the connection.
    DrainUntilClosed,
}

/// The outcome a client-role case expects.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientExpect {
    /// `handshake: ok`.
    #[serde(default)]
    pub handshake: Option<HandshakeOk>,
    /// The handshake (or `required_after` check) fails with this error.
    #[serde(default)]
    pub error: Option<ErrorSet>,
    /// Whether the client was downgraded to v1.
    #[serde(default)]
    pub downgraded: Option<bool>,
    /// The version spoken ("1.2", "2.0").
    #[serde(default)]
    pub version: Option<String>,
    /// The exact set of negotiated extensions.
    #[serde(default)]
    pub extensions: Option<Vec<ExtName>>,
    /// The MOTD.
    #[serde(default)]
    pub motd: Option<String>,
    /// Per-stream expectations by alias.
    #[serde(default)]
    pub streams: StreamExpects,
    /// The actor future's result.
    #[serde(default)]
    pub mux_result: Option<OkOrError>,
    /// The actor future must have ended within this long (virtual time) after the server
    /// script's last step.
    #[serde(default)]
    pub mux_ended_within: Option<Dur>,
    /// The expected verdict (default ok).
    #[serde(default)]
    pub verdict: Option<Verdict>,
}

role_case! {
    /// A client-role case: the client under test against the mock server's script.
    ///
    /// Only client-role keys parse into it: a server-role key (`connect`, `script`, ...) is
    /// an unknown field, reported with its line and column.
    pub struct ClientCase {
        /// What every case has: ID, path, title, spec, level (filled by the loader).
        #[serde(skip, default = "Meta::unloaded")]
        pub meta: Meta,
        /// Marks the case ignored, with the reason (a reported client finding).
        #[serde(default)]
        pub ignore: Option<String>,
        /// The client under test.
        #[serde(default)]
        pub client: ClientSpec,
        /// The mock server's options.
        #[serde(default)]
        pub server_options: ServerOptions,
        /// The script the mock server plays.
        #[serde(default)]
        pub server: Vec<Spanned<ServerStep>>,
        /// The expected outcome.
        #[serde(default)]
        pub expect: ClientExpect,
        /// Run the case this many times (default 1); every run must pass. For races whose
        /// outcome depends on the kernel's timing.
        #[serde(default)]
        pub repeat: Option<std::num::NonZeroU32>,
    }
}

impl ClientCase {
    /// The bound on the whole case, in virtual time (`timeout:`, default 30 s).
    pub fn timeout(&self) -> std::time::Duration {
        self.meta.timeout_or(std::time::Duration::from_secs(30))
    }

    /// The verdict the case expects (`expect.verdict`, default OK).
    pub fn expected_verdict(&self) -> Verdict {
        self.expect.verdict.unwrap_or(Verdict::Ok)
    }

    /// How many times the case runs (`repeat:`, default 1).
    pub fn runs(&self) -> u32 {
        self.repeat.map_or(1, std::num::NonZeroU32::get)
    }
}
