//! Server-role cases (`cases/server/<family>/`, `role: server`): the harness plays a
//! scripted client against a live server and judges what the server does.
//!
//! A server-role case says how to connect ([`ConnectSpec`]), which optional features it
//! needs ([`Capability`], UNSUPPORTED when the server does not advertise them), and then
//! either a list of `actions` (ordinary traffic through `wisp_client::ClientMux`) or a
//! `script` of [`ClientStep`]s (raw packets, for malformed input and exact wire checks). The
//! server's CLOSE reason is judged on its own by a [`CloseJudge`] (the second verdict
//! column). Addresses of the loopback targets the harness starts are written as
//! placeholders (`${tcp_echo.port}`), filled in by [`crate::Placeholders`] before parsing.
//!
//! The language is documented in `cases/README.md`.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_saphyr::Spanned;

pub use crate::ext::{ClientCertRecord, ClientInfoRecord, ClientPasswordRecord};

use crate::Meta;
use crate::actions::{Actions, HandshakeOk, StreamExpects};
use crate::packet::{PacketSpec, Pattern};
use crate::values::{Dur, ErrorSet, ExtName, Hex, ReasonSet, StreamRef};
use crate::verdict::Level;

/// Which runs of the suite a case belongs to (`mode:`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only runs in v1 mode (`--v1`: no `Sec-WebSocket-Protocol` offered).
    V1,
    /// Only runs in v2 mode (`--v2`: `Sec-WebSocket-Protocol: wisp-v2` offered).
    V2,
    /// Every run (the default).
    #[default]
    Any,
}

/// An optional feature a case needs. When the server (or the run's configuration) lacks
/// it, the case is UNSUPPORTED and does not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// The server answered the v2 upgrade with an INFO packet.
    V2,
    /// UDP streams: mandatory in v1.2 (and on a downgraded connection), listed in the
    /// server's INFO (0x01) in v2.
    Udp,
    /// The server's INFO offers password authentication (0x02).
    Password,
    /// ... and marks it required.
    PasswordRequired,
    /// ... and marks it optional.
    PasswordOptional,
    /// The server's INFO offers certificate authentication (0x03).
    CertAuth,
    /// ... and marks it required.
    CertAuthRequired,
    /// The server's INFO carries a MOTD (0x04).
    Motd,
    /// The server's INFO lists stream-open confirmation (0x05).
    StreamConfirmation,
    /// Credentials were configured (`--password user:pass`).
    Credentials,
    /// A private key was configured (`--key FILE`).
    Key,
    /// A destination the server blocks by policy was configured (`--blocked HOST:PORT`).
    Blocked,
}

impl Capability {
    /// The name used in case files.
    pub fn name(self) -> &'static str {
        match self {
            Self::V2 => "v2",
            Self::Udp => "udp",
            Self::Password => "password",
            Self::PasswordRequired => "password_required",
            Self::PasswordOptional => "password_optional",
            Self::CertAuth => "cert_auth",
            Self::CertAuthRequired => "cert_auth_required",
            Self::Motd => "motd",
            Self::StreamConfirmation => "stream_confirmation",
            Self::Credentials => "credentials",
            Self::Key => "key",
            Self::Blocked => "blocked",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which Wisp version the harness asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionChoice {
    /// The run's mode (`--v1` or `--v2`).
    #[default]
    Run,
    /// v1: no subprotocol, no INFO.
    V1,
    /// v2: the subprotocol is offered and the INFO handshake is expected.
    V2,
}

/// Which password credentials the harness presents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Secret {
    /// The configured credentials (`--password`), draft 6 layout, when the server offers
    /// password authentication; nothing otherwise.
    #[default]
    Run,
    /// The configured credentials in the draft 5 layout (`ulen u8 | plen u16 LE | ...`).
    Draft5,
    /// The configured username (or `wisp-conformance`) with a password that is certainly
    /// wrong.
    Wrong,
    /// No password record at all.
    None,
}

/// Which key signs the certificate-authentication challenge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyChoice {
    /// The configured key (`--key`), when the server offers certificate authentication.
    #[default]
    Run,
    /// A fresh random Ed25519 key the server cannot know.
    Wrong,
    /// No certificate record at all.
    None,
}

/// The `Sec-WebSocket-Protocol` value offered, or `none`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubprotocolChoice {
    /// Offer no header.
    None,
    /// Offer this value.
    Value(String),
}

impl<'de> Deserialize<'de> for SubprotocolChoice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "none" {
            Ok(Self::None)
        } else if s.is_empty() || s.contains(['\r', '\n']) {
            Err(de::Error::custom(
                "a subprotocol value must be a non-empty header value (or `none`)",
            ))
        } else {
            Ok(Self::Value(s))
        }
    }
}

/// How the harness connects for this case (`connect:`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectSpec {
    /// The version asked for (default: the run's mode).
    #[serde(default)]
    pub version: VersionChoice,
    /// The subprotocol offered (default: `wisp-v2` for v2, none for v1).
    #[serde(default)]
    pub subprotocol: Option<SubprotocolChoice>,
    /// Password credentials (default `run`).
    #[serde(default)]
    pub password: Secret,
    /// Certificate key (default `run`).
    #[serde(default)]
    pub key: KeyChoice,
}

/// `send_info`: a client INFO packet on stream 0.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientInfoSpec {
    /// Answer the server's INFO the way the `handshake` step does (its extensions that the
    /// harness supports, with the connection's credentials), instead of giving `version`;
    /// `extensions` are then sent first, before the answer's records.
    #[serde(default)]
    pub answer: bool,
    /// With `answer`: extensions to leave out of the answer.
    #[serde(default)]
    pub omit: Vec<ExtName>,
    /// The version (default `"2.0"`).
    #[serde(default)]
    pub version: Option<String>,
    /// The extension records, in order (with `answer`: before the answer's own).
    #[serde(default)]
    pub extensions: Vec<ClientInfoRecord>,
}

/// `expect_none`: no packet matching `match` may arrive for `for` (others are recorded and
/// passed over).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectNone {
    /// The packets that must not arrive.
    #[serde(rename = "match")]
    pub pattern: Pattern,
    /// For how long.
    #[serde(rename = "for")]
    pub duration: Dur,
}

/// `expect_echo`: every byte sent so far on the stream comes back, in order, as DATA on
/// that stream (other packets are recorded and passed over).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectEcho {
    /// The stream.
    pub stream: StreamRef,
    /// Bound on the wait (default: the step timeout).
    #[serde(default)]
    pub timeout: Option<Dur>,
}

/// `expect_datagrams`: a burst of datagrams comes back one DATA each. Reads the DATA
/// packets of `stream` (other packets are passed over) until `count` arrived or the bound
/// passed: every one must be exactly `len` bytes (one datagram, not merged or split), and
/// at least half of them must arrive (UDP may lose a few, not the burst).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectDatagrams {
    /// The UDP stream.
    pub stream: StreamRef,
    /// How many datagrams were sent.
    pub count: usize,
    /// The length of each.
    pub len: usize,
    /// Bound on the wait (default: the step timeout).
    #[serde(default)]
    pub within: Option<Dur>,
}

/// One step of the script the harness plays as a client (`role: server`).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientStep {
    /// The run's handshake: v1 waits for CONTINUE(0); v2 answers the server's INFO with the
    /// client INFO (UDP, MOTD and the configured credentials) and waits for CONTINUE(0).
    /// Tolerates every deployed order, like the client library; a server that rejects the
    /// handshake fails the step.
    Handshake,
    /// Send a structured packet. A CONNECT naming an unbound alias binds it to the next
    /// free stream id.
    Send(PacketSpec),
    /// Send these bytes as one binary message (malformed input).
    SendRaw(Hex),
    /// Send a text frame.
    SendText(String),
    /// Send a client INFO.
    SendInfo(ClientInfoSpec),
    /// The next packet must match (packets of the `skip` types are passed over).
    Expect(Pattern),
    /// No matching packet for a while.
    ExpectNone(ExpectNone),
    /// Nothing at all may arrive for this long.
    ExpectNothing(Dur),
    /// Everything sent on a stream comes back.
    ExpectEcho(ExpectEcho),
    /// A burst of datagrams comes back one DATA per datagram.
    ExpectDatagrams(ExpectDatagrams),
    /// The server ends the connection (close frame, EOF or reset); packets before that are
    /// recorded.
    ExpectEof,
    /// The connection still works: a new TCP stream to the echo target echoes a probe.
    Alive,
    /// Another connection works while this one's state stands (a stalled stream, a
    /// pending CONNECT): a fresh WebSocket, the run's handshake and a stream to the echo
    /// target echo a probe within the step timeout. A server-wide stall fails the case
    /// outright (FAILED, whatever its level).
    AliveElsewhere,
    /// Wait.
    Pause(Dur),
    /// End the connection: a WebSocket close frame, then the TCP connection is closed.
    /// Later steps cannot use it (`expect_target_closed` does not need it).
    Disconnect,
    /// The server closes its connection to the `watch` target that carried this stream's
    /// bytes, within the bound.
    ExpectTargetClosed(ExpectTargetClosed),
}

/// `expect_target_closed`: the server's connection to the `watch` target that carried the
/// bytes sent on `stream` ends (the server closes or resets it) within `within`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectTargetClosed {
    /// The stream, opened to the `watch` target, with some bytes sent (and echoed).
    pub stream: StreamRef,
    /// Bound on the wait (default: the step timeout).
    #[serde(default)]
    pub within: Option<Dur>,
}

/// How `expect.subprotocol` judges the upgrade response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubprotocolExpect {
    /// The offered value is echoed.
    Echoed,
    /// No `Sec-WebSocket-Protocol` in the response.
    None,
}

impl<'de> Deserialize<'de> for SubprotocolExpect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "echoed" => Ok(Self::Echoed),
            "none" => Ok(Self::None),
            other => Err(de::Error::custom(format!(
                "subprotocol {other:?}: use `echoed` or `none`"
            ))),
        }
    }
}

/// The second verdict column: the CLOSE reason the server puts on one stream (`close:`).
///
/// A reason in `reason` is OK; one in `acceptable` is NON-STRICT (a specific reason is
/// preferred); any other reason, or no CLOSE, gets the verdict of `level` (default must).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseJudge {
    /// The stream (an alias, or 0 for the connection-level CLOSE).
    pub stream: StreamRef,
    /// The preferred reasons.
    pub reason: ReasonSet,
    /// Reasons that are allowed but not preferred.
    #[serde(default)]
    pub acceptable: Option<ReasonSet>,
    /// How strongly a wrong or missing reason counts (default must).
    #[serde(default = "must")]
    pub level: Level,
    /// How long to keep waiting for the CLOSE after the script or actions (default 2s).
    #[serde(default)]
    pub within: Option<Dur>,
}

fn must() -> Level {
    Level::Must
}

/// The outcome a server-role case expects (besides its script's own `expect` steps).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerExpect {
    /// With `actions`: `handshake: ok` (the default).
    #[serde(default)]
    pub handshake: Option<HandshakeOk>,
    /// With `actions`: the handshake fails with this error.
    #[serde(default)]
    pub error: Option<ErrorSet>,
    /// With `actions`: per-stream expectations by alias.
    #[serde(default)]
    pub streams: StreamExpects,
    /// The `Sec-WebSocket-Protocol` of the upgrade response.
    #[serde(default)]
    pub subprotocol: Option<SubprotocolExpect>,
}

role_case! {
    /// A server-role case: how the harness connects, the traffic it sends (`actions`
    /// through the client library, or a raw `script`) and what the server must do.
    ///
    /// Only server-role keys parse into it: a client-role key (`client`, `server`, ...) is
    /// an unknown field, reported with its line and column.
    pub struct ServerCase {
        /// What every case has: ID, path, title, spec, level (filled by the loader).
        #[serde(skip, default = "Meta::unloaded")]
        pub meta: Meta,
        /// Which runs the case belongs to (default any).
        #[serde(default)]
        pub mode: Mode,
        /// Optional features the case needs (UNSUPPORTED without them).
        #[serde(default)]
        pub requires: Vec<Capability>,
        /// How the harness connects.
        #[serde(default)]
        pub connect: ConnectSpec,
        /// Ordinary traffic through the client library.
        #[serde(default)]
        pub actions: Actions,
        /// The raw script the harness plays (instead of `actions`).
        #[serde(default)]
        pub script: Vec<Spanned<ClientStep>>,
        /// The expected outcome.
        #[serde(default)]
        pub expect: ServerExpect,
        /// The CLOSE-reason column.
        #[serde(default)]
        pub close: Option<CloseJudge>,
    }
}

impl ServerCase {
    /// The case's wall-clock deadline (`timeout:`, default 15 s).
    pub fn timeout(&self) -> std::time::Duration {
        self.meta.timeout_or(std::time::Duration::from_secs(15))
    }

    /// The family: the second segment of the ID (`server.close.refused` → `close`).
    pub fn family(&self) -> &str {
        self.meta.id.split('.').nth(1).unwrap_or("")
    }

    /// Whether the harness plays a raw `script` (else `actions` through the client
    /// library).
    pub fn is_script(&self) -> bool {
        !self.script.is_empty()
    }
}
