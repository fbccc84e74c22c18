//! The case file model (one YAML file per case) and its loader.
//!
//! The language is documented in `cases/README.md`. Parsing is strict: every struct denies
//! unknown fields, every value has a typed parser, and every error names the file, line and
//! column. The loader never panics.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};
use wisp_client::proto::PasswordLayout;

use crate::client_script::{
    Capability, ClientInfoRecord, ClientStep, CloseJudge, ConnectSpec, KeyChoice, Mode,
    Placeholders, Secret, SubprotocolExpect, Times,
};
use crate::values::{
    Dur, ErrorSet, ExtName, Hex, OkOrError, ReasonSet, ReasonSpec, StreamRef, StreamTypeSpec,
    TypeSpec, check_alias,
};

/// How strongly the spec states the requirement a case checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// A MUST: a failure is FAILED.
    #[serde(alias = "MUST")]
    Must,
    /// A SHOULD: a failure is NON-STRICT.
    #[serde(alias = "SHOULD")]
    Should,
    /// A MAY or undefined behaviour: a failure is INFORMATIONAL.
    #[serde(alias = "MAY")]
    May,
}

/// Which side the harness tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The client library is under test; the mock server plays the script.
    #[default]
    Client,
    /// The server is under test: the harness plays a scripted client against a live server
    /// (see [`crate::client_script`]). Such cases live under `cases/server/`.
    Server,
}

/// The verdict of a case (Autobahn's model, bound to the case's level).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Verdict {
    /// Every expectation held.
    #[serde(rename = "ok", alias = "OK")]
    Ok,
    /// A SHOULD-level expectation did not hold.
    #[serde(rename = "non-strict", alias = "NON-STRICT")]
    NonStrict,
    /// A MAY-level (or unspecified behaviour) expectation did not hold.
    #[serde(rename = "informational", alias = "INFORMATIONAL")]
    Informational,
    /// An optional feature the case needs is not advertised by the server (server role
    /// only): the case did not run.
    #[serde(rename = "unsupported", alias = "UNSUPPORTED")]
    Unsupported,
    /// A MUST-level expectation did not hold.
    #[serde(rename = "failed", alias = "FAILED")]
    Failed,
}

impl Verdict {
    /// Every verdict, from best to worst.
    pub const ALL: [Verdict; 5] = [
        Verdict::Ok,
        Verdict::NonStrict,
        Verdict::Informational,
        Verdict::Unsupported,
        Verdict::Failed,
    ];

    /// The verdict a failed expectation of this level gets.
    pub fn of_failure(level: Level) -> Self {
        match level {
            Level::Must => Self::Failed,
            Level::Should => Self::NonStrict,
            Level::May => Self::Informational,
        }
    }

    /// Parses the display form (`OK`, `NON-STRICT`, `INFORMATIONAL`, `UNSUPPORTED`,
    /// `FAILED`), case-insensitively.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|v| v.to_string().eq_ignore_ascii_case(text.trim()))
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ok => "OK",
            Self::NonStrict => "NON-STRICT",
            Self::Informational => "INFORMATIONAL",
            Self::Unsupported => "UNSUPPORTED",
            Self::Failed => "FAILED",
        })
    }
}

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

/// The password record layout, as written in case files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayoutSpec {
    /// Draft 6: `ulen u8 | username | password…`.
    #[default]
    Draft6,
    /// Drafts ≤ 5: `ulen u8 | plen u16 LE | username | password`.
    Draft5,
}

impl LayoutSpec {
    /// The codec's layout.
    pub fn layout(self) -> PasswordLayout {
        match self {
            Self::Draft6 => PasswordLayout::Draft6,
            Self::Draft5 => PasswordLayout::Draft5,
        }
    }
}

/// The password extension offered by the client.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientPassword {
    /// The username (give both or neither).
    #[serde(default)]
    pub username: Option<String>,
    /// The password (give both or neither).
    #[serde(default)]
    pub password: Option<String>,
    /// The record layout.
    #[serde(default)]
    pub layout: LayoutSpec,
}

/// The certificate extension offered by the client.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertAuth {
    /// A PKCS#8 PEM private key, relative to `cases/` (none: offered without a key).
    #[serde(default)]
    pub key: Option<Spanned<String>>,
    /// The loaded key (filled by the loader).
    #[serde(skip)]
    pub signing_key: Option<SigningKey>,
}

/// An extension the client offers.
// Case files are small configuration values, read once; boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientExtension {
    /// UDP (0x01).
    Udp,
    /// Password (0x02).
    Password(ClientPassword),
    /// Certificate authentication (0x03).
    CertAuth(ClientCertAuth),
    /// MOTD (0x04).
    Motd,
    /// Stream-open confirmation (0x05).
    StreamConfirmation,
}

/// Client tunables (`MuxOptions`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientOptions {
    /// Bound on the handshake.
    #[serde(default)]
    pub handshake_timeout: Option<Dur>,
    /// Wait for a late INFO after CONTINUE(0).
    #[serde(default)]
    pub legacy_info_wait: Option<Dur>,
    /// Largest DATA payload.
    #[serde(default)]
    pub max_payload_len: Option<usize>,
    /// First stream id.
    #[serde(default)]
    pub first_stream_id: Option<u32>,
    /// Bound on stream-open confirmation.
    #[serde(default)]
    pub stream_open_timeout: Option<Dur>,
}

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
    /// The open must fail with this error.
    #[serde(default)]
    pub expect_error: Option<ErrorSet>,
}

fn default_stream_type() -> StreamTypeSpec {
    StreamTypeSpec(wisp_client::proto::StreamType::TCP)
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
    /// Sleep (virtual time).
    Sleep(Dur),
    /// Server role only: open TCP streams to an echo target, send generated bytes on each
    /// (all streams at once) and check that exactly those bytes come back.
    Echo(EchoAction),
}

/// `echo`: bulk, byte-exact echo through one or many concurrent TCP streams.
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
    /// Tunables.
    #[serde(default)]
    pub options: ClientOptions,
    /// Actions after the handshake.
    #[serde(default)]
    pub actions: Vec<Spanned<Action>>,
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
    pub password_layout: LayoutSpec,
}

fn yes() -> bool {
    true
}
fn default_step_timeout() -> Dur {
    Dur(std::time::Duration::from_secs(5))
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            echo_subprotocol: true,
            step_timeout: default_step_timeout(),
            password_layout: LayoutSpec::Draft6,
        }
    }
}

/// Server password metadata.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerPassword {
    /// Whether credentials are required.
    #[serde(default = "yes")]
    pub required: bool,
}

/// How the certificate challenge is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// 64 random bytes from the OS (masked in traces).
    Random,
    /// These bytes.
    Fixed(Hex),
}

impl<'de> Deserialize<'de> for Challenge {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "random" {
            Ok(Self::Random)
        } else {
            Hex::parse(&s)
                .map(Self::Fixed)
                .map_err(serde::de::Error::custom)
        }
    }
}

/// Server certificate-auth metadata.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerCertAuth {
    /// Whether a signature is required.
    #[serde(default = "yes")]
    pub required: bool,
    /// The algorithm mask (bit 0 = Ed25519).
    #[serde(default = "one")]
    pub algorithms: u8,
    /// `random` (64 bytes from getrandom) or hex.
    #[serde(default = "random")]
    pub challenge: Challenge,
    /// The public key (PEM, relative to `cases/`) a later `expect` verifies against.
    #[serde(default)]
    pub verify_key: Option<Spanned<String>>,
    /// The loaded key.
    #[serde(skip)]
    pub verifying_key: Option<(String, VerifyingKey)>,
}

fn one() -> u8 {
    1
}
fn random() -> Challenge {
    Challenge::Random
}

/// A record of unknown or deliberately malformed shape.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExtension {
    /// The extension id.
    pub id: u8,
    /// The metadata.
    #[serde(default)]
    pub hex: Hex,
    /// The length written in the record header (default: the metadata length); larger
    /// than the data makes an oversized record.
    #[serde(default)]
    pub len: Option<u32>,
}

/// An extension record in the server's INFO.
// Case files are small configuration values, read once; boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerExtension {
    /// UDP (empty metadata).
    Udp,
    /// Password (`required` byte).
    Password(ServerPassword),
    /// Certificate auth (`required`, `algorithms`, challenge).
    CertAuth(ServerCertAuth),
    /// MOTD text.
    Motd(String),
    /// Stream-open confirmation (empty metadata).
    StreamConfirmation,
    /// Any id with any bytes.
    Raw(RawExtension),
}

/// A structured packet the mock sends.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PacketSpec {
    /// The packet type.
    #[serde(rename = "type")]
    pub packet_type: TypeSpec,
    /// The stream (id or alias, default 0).
    #[serde(default)]
    pub stream: StreamRef,
    /// CONTINUE: the credit.
    #[serde(default)]
    pub credit: Option<u32>,
    /// CLOSE: the reason.
    #[serde(default)]
    pub reason: Option<ReasonSpec>,
    /// DATA (or unknown types): text payload.
    #[serde(default)]
    pub text: Option<String>,
    /// DATA (or unknown types): hex payload.
    #[serde(default)]
    pub hex: Option<Hex>,
    /// DATA (or unknown types): one byte repeated.
    #[serde(default)]
    pub repeat: Option<Repeat>,
    /// CONNECT: stream type.
    #[serde(default)]
    pub stream_type: Option<StreamTypeSpec>,
    /// CONNECT: host.
    #[serde(default)]
    pub host: Option<String>,
    /// CONNECT: port.
    #[serde(default)]
    pub port: Option<u16>,
    /// INFO: version (default "2.0").
    #[serde(default)]
    pub version: Option<String>,
    /// INFO: extension records.
    #[serde(default)]
    pub extensions: Vec<ServerExtension>,
    /// Bytes appended after the encoded packet.
    #[serde(default)]
    pub trailing_hex: Option<Hex>,
    /// Send the packet this many times (default 1). Server-role scripts may write it in
    /// terms of the handshake credit (`credit`, `2*credit`, `credit+1`).
    #[serde(default)]
    pub times: Option<Times>,
}

/// The client's password record, as checked by an `expect`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordCheck {
    /// Expected username.
    #[serde(default)]
    pub username: Option<String>,
    /// Expected password.
    #[serde(default)]
    pub password: Option<String>,
    /// The layout to decode with.
    #[serde(default)]
    pub layout: LayoutSpec,
}

/// `valid` or `invalid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureCheck {
    /// The key hash matches the key and the signature verifies over the challenge.
    Valid,
    /// It does not.
    Invalid,
}

/// The client's certificate record, as checked by an `expect`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertCheck {
    /// Whether the signature must verify.
    pub signature: SignatureCheck,
    /// The public key to verify with (default: the server INFO's `verify_key`).
    #[serde(default)]
    pub key: Option<Spanned<String>>,
    /// The selected algorithm (default 0x01).
    #[serde(default)]
    pub algorithm: Option<u8>,
    /// The loaded key.
    #[serde(skip)]
    pub verifying_key: Option<(String, VerifyingKey)>,
}

/// A pattern for one packet from the client: a type plus any subset of fields.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pattern {
    /// The packet type.
    #[serde(rename = "type", default)]
    pub packet_type: Option<TypeSpec>,
    /// The stream; an unbound alias in a CONNECT binds to the id the client chose.
    #[serde(default)]
    pub stream: Option<StreamRef>,
    /// CONNECT: stream type.
    #[serde(default)]
    pub stream_type: Option<StreamTypeSpec>,
    /// CONNECT: host.
    #[serde(default)]
    pub host: Option<String>,
    /// CONNECT: port.
    #[serde(default)]
    pub port: Option<u16>,
    /// DATA: exact text payload.
    #[serde(default)]
    pub text: Option<String>,
    /// DATA: exact hex payload.
    #[serde(default)]
    pub hex: Option<Hex>,
    /// DATA: payload length.
    #[serde(default)]
    pub len: Option<usize>,
    /// CONTINUE: credit.
    #[serde(default)]
    pub credit: Option<u32>,
    /// CONTINUE: the credit is at least this.
    #[serde(default)]
    pub credit_min: Option<u32>,
    /// CLOSE: the reason, or a set of acceptable reasons.
    #[serde(default)]
    pub reason: Option<ReasonSet>,
    /// INFO: version like "2.0".
    #[serde(default)]
    pub version: Option<String>,
    /// INFO: the exact set of extension ids.
    #[serde(default)]
    pub extensions: Option<Vec<ExtName>>,
    /// INFO: the password record.
    #[serde(default)]
    pub password: Option<PasswordCheck>,
    /// INFO: the certificate record.
    #[serde(default)]
    pub cert_auth: Option<CertCheck>,
    /// The whole message, exactly.
    #[serde(default)]
    pub raw_hex: Option<Hex>,
    /// INFO from a server: no trailing bytes, and every known extension record has the
    /// server-side layout the spec gives it.
    #[serde(default)]
    pub well_formed: bool,
    /// Packet types passed over (recorded, not matched) while waiting.
    #[serde(default)]
    pub skip: Vec<TypeSpec>,
    /// Acceptable alternatives (instead of the fields above).
    #[serde(default)]
    pub one_of: Option<Vec<Pattern>>,
    /// Bound on this wait (default: the server's `step_timeout`).
    #[serde(default)]
    pub timeout: Option<Dur>,
}

/// One step of the server script.
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
    /// Wait (virtual time).
    Pause(Dur),
    /// Record everything until the client ends the connection.
    DrainUntilClosed,
}

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

/// The expected outcome.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
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
    pub streams: BTreeMap<String, StreamExpect>,
    /// The actor future's result.
    #[serde(default)]
    pub mux_result: Option<OkOrError>,
    /// The expected verdict (default ok).
    #[serde(default)]
    pub verdict: Option<Verdict>,
    /// Server role: the `Sec-WebSocket-Protocol` of the upgrade response.
    #[serde(default)]
    pub subprotocol: Option<SubprotocolExpect>,
}

/// The literal `ok`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HandshakeOk {
    /// The handshake succeeds.
    Ok,
}

/// One case file, as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// Stable hierarchical ID, starting with the topic folder.
    pub id: Spanned<String>,
    /// One-line title.
    pub title: String,
    /// The spec section checked.
    pub spec: String,
    /// must / should / may.
    pub level: Level,
    /// Why the case exists.
    pub description: String,
    /// client (default) or server (reserved).
    #[serde(default)]
    pub role: Role,
    /// Marks the case ignored, with the reason (a reported finding).
    #[serde(default)]
    pub ignore: Option<String>,
    /// Overall bound on the case (client role: virtual time, default 30s; server role:
    /// wall-clock time, default 15s).
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// Client role: the client under test.
    #[serde(default)]
    pub client: ClientSpec,
    /// Client role: mock server options.
    #[serde(default)]
    pub server_options: ServerOptions,
    /// Client role: the server script.
    #[serde(default)]
    pub server: Vec<Spanned<ServerStep>>,
    /// The expected outcome.
    #[serde(default)]
    pub expect: Expectation,
    /// Server role: which runs the case belongs to (default any).
    #[serde(default)]
    pub mode: Mode,
    /// Server role: optional features the case needs (UNSUPPORTED without them).
    #[serde(default)]
    pub requires: Vec<Capability>,
    /// Server role: how the harness connects.
    #[serde(default)]
    pub connect: ConnectSpec,
    /// Server role: ordinary traffic through the client library.
    #[serde(default)]
    pub actions: Vec<Spanned<Action>>,
    /// Server role: the raw script the harness plays.
    #[serde(default)]
    pub script: Vec<Spanned<ClientStep>>,
    /// Server role: the CLOSE-reason column.
    #[serde(default)]
    pub close: Option<CloseJudge>,
}

/// A loaded, validated case.
#[derive(Clone, Debug)]
pub struct Case {
    /// The case file.
    pub path: PathBuf,
    /// The path relative to the cases directory (for display).
    pub rel_path: String,
    /// The case ID.
    pub id: String,
    /// The parsed content.
    pub file: CaseFile,
    /// The file's text as read (before placeholders were filled in), so a run can load it
    /// again with the addresses of its targets.
    pub source: String,
}

impl Case {
    /// The overall bound on the case (client role: virtual time, default 30s; server role:
    /// wall-clock time, default 15s).
    pub fn timeout(&self) -> std::time::Duration {
        let default = match self.file.role {
            Role::Client => 30,
            Role::Server => 15,
        };
        self.file
            .timeout
            .map(|d| d.0)
            .unwrap_or(std::time::Duration::from_secs(default))
    }

    /// Whether the harness plays the client against a live server.
    pub fn is_server_role(&self) -> bool {
        self.file.role == Role::Server
    }

    /// The family of a server-role case: the second segment of its ID
    /// (`server.close.refused` → `close`).
    pub fn family(&self) -> &str {
        self.id.split('.').nth(1).unwrap_or("")
    }
}

/// A case file that could not be loaded: file, line, column and what is wrong.
#[derive(Clone, Debug)]
pub struct LoadError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line (0 when unknown).
    pub line: u64,
    /// 1-based column (0 when unknown).
    pub column: u64,
    /// The message.
    pub message: String,
    /// A source snippet, when available.
    pub snippet: Option<String>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )?;
        if let Some(s) = &self.snippet {
            write!(f, "\n{s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

impl LoadError {
    fn at(path: &Path, loc: Location, message: impl Into<String>, source: &str) -> Self {
        let line = loc.line();
        let column = loc.column();
        Self {
            path: path.to_owned(),
            line,
            column,
            message: message.into(),
            snippet: snippet(source, line, column),
        }
    }

    fn whole_file(path: &Path, message: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            line: 0,
            column: 0,
            message: message.into(),
            snippet: None,
        }
    }
}

fn snippet(source: &str, line: u64, column: u64) -> Option<String> {
    let idx = usize::try_from(line).ok()?.checked_sub(1)?;
    let text = source.lines().nth(idx)?;
    let pad = " ".repeat(usize::try_from(column).unwrap_or(1).saturating_sub(1));
    Some(format!("{line:>4} | {text}\n     | {pad}^"))
}

/// Loads every `*.yaml` under `dir` (recursively, sorted). Returns the good cases and the
/// errors; an ID used by two files is an error for the second. Placeholders get stand-in
/// values ([`Placeholders::default`]).
pub fn load_dir(dir: &Path) -> (Vec<Case>, Vec<LoadError>) {
    load_dir_with(dir, &Placeholders::default())
}

/// [`load_dir`] with these placeholder values.
pub fn load_dir_with(dir: &Path, placeholders: &Placeholders) -> (Vec<Case>, Vec<LoadError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    collect_yaml(dir, &mut files, &mut errors);
    files.sort();
    let mut cases: Vec<Case> = Vec::new();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for file in files {
        match load_case_with(dir, &file, placeholders) {
            Ok(case) => {
                if let Some(first) = seen.get(&case.id) {
                    let loc = case.file.id.referenced;
                    let source = std::fs::read_to_string(&file).unwrap_or_default();
                    errors.push(LoadError::at(
                        &file,
                        loc,
                        format!(
                            "duplicate case ID {:?}: already used by {}",
                            case.id,
                            first.display()
                        ),
                        &source,
                    ));
                    continue;
                }
                seen.insert(case.id.clone(), file.clone());
                cases.push(case);
            }
            Err(e) => errors.push(e),
        }
    }
    (cases, errors)
}

fn collect_yaml(dir: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<LoadError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(LoadError::whole_file(
                dir,
                format!("cannot read directory: {e}"),
            ));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_yaml(&path, files, errors);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
}

/// Loads and validates one case file. `cases_root` is the cases directory: the topic is
/// the first folder under it, and key paths are relative to it.
pub fn load_case(cases_root: &Path, path: &Path) -> Result<Case, LoadError> {
    load_case_with(cases_root, path, &Placeholders::default())
}

/// [`load_case`] with these placeholder values.
pub fn load_case_with(
    cases_root: &Path,
    path: &Path,
    placeholders: &Placeholders,
) -> Result<Case, LoadError> {
    let source = std::fs::read_to_string(path)
        .map_err(|e| LoadError::whole_file(path, format!("cannot read: {e}")))?;
    load_case_str_with(cases_root, path, &source, placeholders)
}

/// Like [`load_case`], from a string (the path is used for messages, the topic and keys).
pub fn load_case_str(cases_root: &Path, path: &Path, source: &str) -> Result<Case, LoadError> {
    load_case_str_with(cases_root, path, source, &Placeholders::default())
}

/// [`load_case_str`] with these placeholder values: every `${NAME.host}` / `${NAME.port}`
/// in the text is replaced before the YAML is parsed.
pub fn load_case_str_with(
    cases_root: &Path,
    path: &Path,
    original: &str,
    placeholders: &Placeholders,
) -> Result<Case, LoadError> {
    let substituted = placeholders
        .substitute(original)
        .map_err(|(line, column, message)| LoadError {
            path: path.to_owned(),
            line,
            column,
            message,
            snippet: snippet(original, line, column),
        })?;
    let source = substituted.as_str();
    let mut file: CaseFile = serde_saphyr::from_str(source).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        let rendered = e.to_string();
        let message = rendered
            .lines()
            .next()
            .unwrap_or("invalid YAML")
            .trim_start_matches("error: ")
            .to_owned();
        let message = match message.split_once(": ") {
            Some((head, rest)) if head.starts_with("line ") => rest.to_owned(),
            _ => message,
        };
        LoadError {
            path: path.to_owned(),
            line,
            column,
            message,
            snippet: snippet(source, line, column),
        }
    })?;
    let rel = path.strip_prefix(cases_root).unwrap_or(path);
    let rel_path = rel.to_string_lossy().replace('\\', "/");
    let err = |loc: Location, msg: String| LoadError::at(path, loc, msg, source);

    // The ID: dotted lowercase segments, starting with the topic folder.
    let id = file.id.value.clone();
    let id_loc = file.id.referenced;
    let segments_ok = !id.is_empty()
        && id.split('.').all(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        });
    if !segments_ok {
        return Err(err(
            id_loc,
            format!(
                "bad case ID {id:?}: use dotted lowercase segments like `handshake.downgrade.continue-first`"
            ),
        ));
    }
    let topic = rel
        .components()
        .next()
        .filter(|_| rel.components().count() > 1)
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    match &topic {
        Some(topic) if id.starts_with(&format!("{topic}.")) => {}
        Some(topic) => {
            return Err(err(
                id_loc,
                format!("case ID {id:?} must start with its topic folder: `{topic}.`"),
            ));
        }
        None => {
            return Err(LoadError::whole_file(
                path,
                "case files live in a topic folder: cases/<topic>/NAME.yaml",
            ));
        }
    }

    let in_server_topic = topic.as_deref() == Some(SERVER_TOPIC);
    match (file.role, in_server_topic) {
        (Role::Server, false) => {
            return Err(err(
                id_loc,
                format!("`role: server` cases live under cases/{SERVER_TOPIC}/<family>/"),
            ));
        }
        (Role::Client, true) => {
            return Err(err(
                id_loc,
                format!("cases under cases/{SERVER_TOPIC}/ need `role: server`"),
            ));
        }
        _ => {}
    }

    match file.role {
        Role::Client => {
            reject_server_role_fields(&file, &err, id_loc)?;
            validate_client(&mut file, cases_root, &err)?;
            validate_server(&mut file, cases_root, &err)?;
            validate_expect(&file, &err, id_loc)?;
        }
        Role::Server => validate_server_role(&file, &err, id_loc)?,
    }
    Ok(Case {
        path: path.to_owned(),
        rel_path,
        id,
        file,
        source: original.to_owned(),
    })
}

/// The topic folder of server-role cases (`cases/server/<family>/NAME.yaml`).
pub const SERVER_TOPIC: &str = "server";

fn reject_server_role_fields(
    file: &CaseFile,
    err: &ErrFn<'_>,
    id_loc: Location,
) -> Result<(), LoadError> {
    let present = [
        ("mode", file.mode != Mode::Any),
        ("requires", !file.requires.is_empty()),
        ("actions", !file.actions.is_empty()),
        ("script", !file.script.is_empty()),
        ("close", file.close.is_some()),
        ("expect.subprotocol", file.expect.subprotocol.is_some()),
    ];
    if let Some((name, _)) = present.iter().find(|(_, p)| *p) {
        return Err(err(
            id_loc,
            format!("`{name}` belongs to server-role cases (`role: server`)"),
        ));
    }
    let connect = &file.connect;
    if connect.subprotocol.is_some()
        || connect.version != Default::default()
        || connect.password != Secret::Run
        || connect.key != KeyChoice::Run
    {
        return Err(err(
            id_loc,
            "`connect` belongs to server-role cases (`role: server`)".to_owned(),
        ));
    }
    if file.server.is_empty() {
        return Err(err(
            id_loc,
            "a client-role case needs a `server` script".to_owned(),
        ));
    }
    for action in &file.client.actions {
        if matches!(action.value, Action::Echo(_)) {
            return Err(err(
                action.referenced,
                "the `echo` action is for server-role cases".to_owned(),
            ));
        }
    }
    for step in &file.server {
        if let ServerStep::Send(p) = &step.value
            && p.times.is_some_and(Times::uses_credit)
        {
            return Err(err(
                step.referenced,
                "`times` in terms of `credit` is for server-role scripts; give a number".to_owned(),
            ));
        }
    }
    Ok(())
}

fn validate_server_role(
    file: &CaseFile,
    err: &ErrFn<'_>,
    id_loc: Location,
) -> Result<(), LoadError> {
    if !file.server.is_empty() || file.server_options != ServerOptions::default() {
        return Err(err(
            id_loc,
            "a server-role case plays the client: write `actions` or `script`, not `server`/`server_options`"
                .to_owned(),
        ));
    }
    let c = &file.client;
    if c.version != VersionSel::default()
        || !c.extensions.is_empty()
        || !c.required.is_empty()
        || !c.required_after.is_empty()
        || !c.actions.is_empty()
    {
        return Err(err(
            id_loc,
            "a server-role case has no `client` block: use `connect` and `actions`".to_owned(),
        ));
    }
    if !file.actions.is_empty() && !file.script.is_empty() {
        return Err(err(
            id_loc,
            "a server-role case has `actions` (client library) or a `script` (raw packets), not both"
                .to_owned(),
        ));
    }
    let e = &file.expect;
    if e.downgraded.is_some()
        || e.version.is_some()
        || e.extensions.is_some()
        || e.motd.is_some()
        || e.mux_result.is_some()
        || e.verdict.is_some()
    {
        return Err(err(
            id_loc,
            "server-role `expect` takes `handshake`, `error`, `streams` and `subprotocol` only"
                .to_owned(),
        ));
    }
    if e.handshake.is_some() && e.error.is_some() {
        return Err(err(
            id_loc,
            "`expect` takes at most one of `handshake: ok` and `error`".to_owned(),
        ));
    }
    if !file.script.is_empty()
        && (e.handshake.is_some() || e.error.is_some() || !e.streams.is_empty())
    {
        return Err(err(
            id_loc,
            "with a `script`, put expectations in the script (`expect` steps); `expect` takes only `subprotocol`"
                .to_owned(),
        ));
    }
    // Actions: aliases defined before use, payload shapes.
    let mut aliases: Vec<String> = Vec::new();
    for action in &file.actions {
        let loc = action.referenced;
        match &action.value {
            Action::Open(open) => {
                check_alias(&open.stream).map_err(|m| err(loc, m))?;
                if aliases.contains(&open.stream) {
                    return Err(err(
                        loc,
                        format!("stream alias {:?} is opened twice", open.stream),
                    ));
                }
                if open.expect_error.is_some() {
                    return Err(err(
                        loc,
                        "`expect_error` on `open` is for client-role cases; judge the server with `expect.streams` or `close`"
                            .to_owned(),
                    ));
                }
                aliases.push(open.stream.clone());
            }
            Action::Echo(echo) => {
                if echo.streams == 0 || echo.streams > 1024 || echo.chunk == 0 {
                    return Err(err(
                        loc,
                        "`echo` needs 1 to 1024 `streams` and a non-zero `chunk`".to_owned(),
                    ));
                }
                if echo.window.is_some_and(|w| w < echo.chunk) {
                    return Err(err(
                        loc,
                        "`echo.window` must be at least `chunk`".to_owned(),
                    ));
                }
            }
            Action::CloseMux(_) => {}
            other => {
                if let Some(alias) = other.alias()
                    && !aliases.iter().any(|a| a == alias)
                {
                    return Err(err(
                        loc,
                        format!(
                            "stream alias {alias:?} is used before an `open` action defines it"
                        ),
                    ));
                }
                if let Action::Send(send) = other {
                    let given = usize::from(send.text.is_some())
                        + usize::from(send.hex.is_some())
                        + usize::from(send.repeat.is_some());
                    if given != 1 {
                        return Err(err(
                            loc,
                            "`send` needs exactly one of `text`, `hex` or `repeat`".to_owned(),
                        ));
                    }
                }
            }
        }
    }
    for alias in e.streams.keys() {
        if !aliases.contains(alias) {
            return Err(err(
                id_loc,
                format!("`expect.streams.{alias}`: no `open` action defines stream {alias:?}"),
            ));
        }
    }
    // Script: packets well-formed, aliases bound by a sent CONNECT before use.
    let mut bound: Vec<String> = Vec::new();
    let check_ref = |stream: &StreamRef, bound: &[String], loc: Location| match stream {
        StreamRef::Alias(a) if !bound.contains(a) => Err(err(
            loc,
            format!("stream alias {a:?} is used before a sent CONNECT binds it"),
        )),
        _ => Ok(()),
    };
    for step in &file.script {
        let loc = step.referenced;
        match &step.value {
            ClientStep::Send(p) => {
                validate_packet(p).map_err(|m| err(loc, m))?;
                if !p.extensions.is_empty() {
                    return Err(err(
                        loc,
                        "a client INFO is sent with `send_info`, not `send: {type: INFO}`"
                            .to_owned(),
                    ));
                }
                match (&p.stream, p.packet_type.0) {
                    (StreamRef::Alias(a), wisp_client::proto::PacketType::CONNECT)
                        if !bound.contains(a) =>
                    {
                        check_alias(a).map_err(|m| err(loc, m))?;
                        bound.push(a.clone());
                    }
                    (s, _) => check_ref(s, &bound, loc)?,
                }
            }
            ClientStep::SendInfo(info) => {
                if !info.answer && !info.omit.is_empty() {
                    return Err(err(loc, "`omit` goes with `answer: true`".to_owned()));
                }
                if info.answer && (info.version.is_some() || !info.extensions.is_empty()) {
                    return Err(err(
                        loc,
                        "`answer: true` builds the INFO itself: drop `version` and `extensions`"
                            .to_owned(),
                    ));
                }
                if let Some(v) = &info.version {
                    parse_version(v).map_err(|m| err(loc, m))?;
                }
                for r in &info.extensions {
                    let bad = match r {
                        ClientInfoRecord::Password(p) => p.credentials == Secret::None,
                        ClientInfoRecord::CertAuth(c) => c.key == KeyChoice::None,
                        _ => false,
                    };
                    if bad {
                        return Err(err(
                            loc,
                            "`none` leaves a record out: drop the record instead".to_owned(),
                        ));
                    }
                }
            }
            ClientStep::Expect(p) => {
                validate_pattern(p, false).map_err(|m| err(loc, m))?;
                if p.password.is_some() || p.cert_auth.is_some() {
                    return Err(err(
                        loc,
                        "`password`/`cert_auth` checks read a client INFO; a server's INFO is checked with `extensions` and `well_formed`"
                            .to_owned(),
                    ));
                }
                pattern_refs(p, &mut |s| check_ref(s, &bound, loc))?;
            }
            ClientStep::ExpectNone(n) => {
                validate_pattern(&n.pattern, false).map_err(|m| err(loc, m))?;
                pattern_refs(&n.pattern, &mut |s| check_ref(s, &bound, loc))?;
            }
            ClientStep::ExpectEcho(e) => check_ref(&e.stream, &bound, loc)?,
            _ => {}
        }
    }
    if let Some(close) = &file.close
        && let StreamRef::Alias(a) = &close.stream
        && !bound.contains(a)
        && !aliases.contains(a)
    {
        return Err(err(
            id_loc,
            format!(
                "`close.stream`: stream alias {a:?} is not defined by an `open` action or a sent CONNECT"
            ),
        ));
    }
    Ok(())
}

/// Calls `f` on every stream reference of a pattern (and its alternatives).
fn pattern_refs<E>(p: &Pattern, f: &mut dyn FnMut(&StreamRef) -> Result<(), E>) -> Result<(), E> {
    if let Some(s) = &p.stream {
        f(s)?;
    }
    for alt in p.one_of.iter().flatten() {
        pattern_refs(alt, f)?;
    }
    Ok(())
}

type ErrFn<'a> = dyn Fn(Location, String) -> LoadError + 'a;

fn read_key_file(
    root: &Path,
    spanned: &Spanned<String>,
    err: &ErrFn<'_>,
) -> Result<String, LoadError> {
    let path = root.join(&spanned.value);
    std::fs::read_to_string(&path).map_err(|e| {
        err(
            spanned.referenced,
            format!("cannot read key file {} : {e}", path.display()),
        )
    })
}

/// Loads a public key (PEM SubjectPublicKeyInfo) relative to the cases directory.
fn load_public_key(
    root: &Path,
    spanned: &Spanned<String>,
    err: &ErrFn<'_>,
) -> Result<(String, VerifyingKey), LoadError> {
    let pem = read_key_file(root, spanned, err)?;
    let key = VerifyingKey::from_public_key_pem(&pem).map_err(|e| {
        err(
            spanned.referenced,
            format!("{} is not an Ed25519 public key PEM: {e}", spanned.value),
        )
    })?;
    Ok((spanned.value.clone(), key))
}

fn validate_client(file: &mut CaseFile, root: &Path, err: &ErrFn<'_>) -> Result<(), LoadError> {
    let id_loc = file.id.referenced;
    let client = &mut file.client;
    if client.version == VersionSel::V1
        && (!client.extensions.is_empty()
            || !client.required.is_empty()
            || !client.required_after.is_empty())
    {
        return Err(err(
            id_loc,
            "a v1 client offers no extensions: remove `extensions`/`required`/`required_after` or use `version: v2`"
                .to_owned(),
        ));
    }
    for ext in &mut client.extensions {
        match ext {
            ClientExtension::Password(p) if p.username.is_some() != p.password.is_some() => {
                return Err(err(
                    id_loc,
                    "client password extension: give both `username` and `password`, or neither"
                        .to_owned(),
                ));
            }
            ClientExtension::CertAuth(c) => {
                if let Some(key) = &c.key {
                    let pem = read_key_file(root, key, err)?;
                    let sk = SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
                        err(
                            key.referenced,
                            format!(
                                "{} is not an Ed25519 PKCS#8 private key PEM: {e}",
                                key.value
                            ),
                        )
                    })?;
                    c.signing_key = Some(sk);
                }
            }
            _ => {}
        }
    }
    let mut aliases: Vec<String> = Vec::new();
    for action in &client.actions {
        let loc = action.referenced;
        if let Action::Open(open) = &action.value {
            check_alias(&open.stream).map_err(|m| err(loc, m))?;
            if aliases.contains(&open.stream) {
                return Err(err(
                    loc,
                    format!("stream alias {:?} is opened twice", open.stream),
                ));
            }
            aliases.push(open.stream.clone());
        } else if let Some(alias) = action.value.alias()
            && !aliases.iter().any(|a| a == alias)
        {
            return Err(err(
                loc,
                format!("stream alias {alias:?} is used before an `open` action defines it"),
            ));
        }
        if let Action::Send(send) = &action.value {
            let given = usize::from(send.text.is_some())
                + usize::from(send.hex.is_some())
                + usize::from(send.repeat.is_some());
            if given != 1 {
                return Err(err(
                    loc,
                    "`send` needs exactly one of `text`, `hex` or `repeat`".to_owned(),
                ));
            }
        }
    }
    Ok(())
}

fn validate_packet(p: &PacketSpec) -> Result<(), String> {
    use wisp_client::proto::PacketType as T;
    let t = p.packet_type.0;
    let mut allowed: Vec<&str> = vec!["type", "stream", "trailing_hex"];
    match t {
        T::CONNECT => allowed.extend(["stream_type", "host", "port"]),
        T::DATA => allowed.extend(["text", "hex", "repeat"]),
        T::CONTINUE => allowed.push("credit"),
        T::CLOSE => allowed.push("reason"),
        T::INFO => allowed.extend(["version", "extensions"]),
        _ => allowed.extend(["text", "hex", "repeat"]),
    }
    let present = [
        ("credit", p.credit.is_some()),
        ("reason", p.reason.is_some()),
        ("text", p.text.is_some()),
        ("hex", p.hex.is_some()),
        ("repeat", p.repeat.is_some()),
        ("stream_type", p.stream_type.is_some()),
        ("host", p.host.is_some()),
        ("port", p.port.is_some()),
        ("version", p.version.is_some()),
        ("extensions", !p.extensions.is_empty()),
    ];
    for (name, is) in present {
        if is && !allowed.contains(&name) {
            return Err(format!(
                "field `{name}` does not belong to a {} packet (allowed: {})",
                t,
                allowed.join(", ")
            ));
        }
    }
    if t == T::CONTINUE && p.credit.is_none() {
        return Err("a CONTINUE needs `credit` (use send_raw for a truncated one)".to_owned());
    }
    if t == T::CLOSE && p.reason.is_none() {
        return Err("a CLOSE needs `reason` (use send_raw for a truncated one)".to_owned());
    }
    if usize::from(p.text.is_some())
        + usize::from(p.hex.is_some())
        + usize::from(p.repeat.is_some())
        > 1
    {
        return Err("give one of `text`, `hex` and `repeat`".to_owned());
    }
    if let Some(v) = &p.version {
        parse_version(v)?;
    }
    Ok(())
}

/// Parses `"2.0"` into (major, minor).
pub fn parse_version(v: &str) -> Result<(u8, u8), String> {
    let bad = || format!("bad version {v:?}: write \"major.minor\" like \"2.0\"");
    let (a, b) = v.split_once('.').ok_or_else(bad)?;
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

fn validate_pattern(p: &Pattern, nested: bool) -> Result<(), String> {
    if let Some(alts) = &p.one_of {
        if nested {
            return Err("`one_of` cannot be nested".to_owned());
        }
        let other = Pattern {
            one_of: None,
            timeout: None,
            ..p.clone()
        };
        if other.packet_type.is_some()
            || other.stream.is_some()
            || other.raw_hex.is_some()
            || other.reason.is_some()
        {
            return Err("with `one_of`, put every field inside the alternatives".to_owned());
        }
        if alts.is_empty() {
            return Err("`one_of` needs at least one alternative".to_owned());
        }
        for a in alts {
            if a.timeout.is_some() || !a.skip.is_empty() {
                return Err(
                    "put `timeout` and `skip` next to `one_of`, not inside an alternative"
                        .to_owned(),
                );
            }
            validate_pattern(a, true)?;
        }
        return Ok(());
    }
    if p.packet_type.is_none() && p.raw_hex.is_none() {
        return Err("an `expect` needs `type` (or `raw_hex`, or `one_of`)".to_owned());
    }
    if let Some(v) = &p.version {
        parse_version(v)?;
    }
    Ok(())
}

fn validate_server(file: &mut CaseFile, root: &Path, err: &ErrFn<'_>) -> Result<(), LoadError> {
    let mut default_key: Option<(String, VerifyingKey)> = None;
    for step in &mut file.server {
        let loc = step.referenced;
        match &mut step.value {
            ServerStep::Send(p) => {
                validate_packet(p).map_err(|m| err(loc, m))?;
                for ext in &mut p.extensions {
                    if let ServerExtension::CertAuth(c) = ext
                        && let Some(k) = &c.verify_key
                    {
                        let key = load_public_key(root, k, err)?;
                        default_key = Some(key.clone());
                        c.verifying_key = Some(key);
                    }
                }
            }
            ServerStep::Expect(p) => {
                validate_pattern(p, false).map_err(|m| err(loc, m))?;
                let all: Vec<&mut Pattern> = if p.one_of.is_some() {
                    p.one_of.iter_mut().flatten().collect()
                } else {
                    vec![p]
                };
                for pat in all {
                    if let Some(c) = &mut pat.cert_auth {
                        c.verifying_key = match &c.key {
                            Some(k) => Some(load_public_key(root, k, err)?),
                            None => default_key.clone(),
                        };
                        if c.verifying_key.is_none() {
                            return Err(err(
                                loc,
                                "`cert_auth` check needs `key:` (or `verify_key:` in the server's cert_auth INFO record)"
                                    .to_owned(),
                            ));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn validate_expect(file: &CaseFile, err: &ErrFn<'_>, id_loc: Location) -> Result<(), LoadError> {
    let e = &file.expect;
    if e.handshake.is_some() == e.error.is_some() {
        return Err(err(
            id_loc,
            "`expect` needs exactly one of `handshake: ok` or `error: NAME`".to_owned(),
        ));
    }
    let aliases: Vec<&str> = file
        .client
        .actions
        .iter()
        .filter_map(|a| match &a.value {
            Action::Open(o) => Some(o.stream.as_str()),
            _ => None,
        })
        .collect();
    for alias in e.streams.keys() {
        if !aliases.contains(&alias.as_str()) {
            return Err(err(
                id_loc,
                format!("`expect.streams.{alias}`: no `open` action defines stream {alias:?}"),
            ));
        }
    }
    if let Some(v) = &e.version {
        parse_version(v).map_err(|m| err(id_loc, m))?;
    }
    match (e.verdict, file.level) {
        (None | Some(Verdict::Ok), _)
        | (Some(Verdict::NonStrict), Level::Should)
        | (Some(Verdict::Informational), Level::May) => Ok(()),
        (Some(v), level) => Err(err(
            id_loc,
            format!(
                "`verdict: {v}` does not fit `level: {level:?}` (non-strict needs should, informational needs may; a MUST failure is reported, or the case marked `ignore`)"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
id: handshake.sample
title: t
spec: s
level: must
description: d
client:
  version: v2
  extensions: [udp]
server:
  - send: {type: CONTINUE, stream: 0, credit: 128}
expect:
  handshake: ok
";

    fn load(src: &str) -> Result<Case, LoadError> {
        load_case_str(
            Path::new("/cases"),
            Path::new("/cases/handshake/sample.yaml"),
            src,
        )
    }

    fn err_of(src: &str) -> LoadError {
        match load(src) {
            Ok(_) => panic!("expected a load error"),
            Err(e) => e,
        }
    }

    #[test]
    fn good_case_loads() {
        let case = load(GOOD).expect("loads");
        assert_eq!(case.id, "handshake.sample");
        assert_eq!(case.file.server.len(), 1);
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let e = err_of(&GOOD.replace("title: t\n", "title: t\nbogus: 1\n"));
        assert_eq!((e.line, e.column), (3, 1), "{e}");
        assert!(e.message.contains("unknown field `bogus`"), "{e}");
        assert!(
            e.to_string()
                .starts_with("/cases/handshake/sample.yaml:3:1:"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_names_line_and_column() {
        let e = err_of(&GOOD.replace("credit: 128", "credit: lots"));
        assert_eq!(e.line, 10, "{e}");
        assert!(e.column > 1, "{e}");
    }

    #[test]
    fn bad_hex_names_line_and_column() {
        let src = GOOD.replace(
            "  - send: {type: CONTINUE, stream: 0, credit: 128}",
            "  - send_raw: \"03 0z\"",
        );
        let e = err_of(&src);
        assert_eq!((e.line, e.column), (10, 15), "{e}");
        assert!(e.message.contains("bad hex"), "{e}");
    }

    #[test]
    fn unknown_error_name_names_line_and_column() {
        let src = GOOD.replace("  handshake: ok", "  error: NoSuchError");
        let e = err_of(&src);
        assert_eq!((e.line, e.column), (12, 10), "{e}");
        assert!(e.message.contains("unknown error name"), "{e}");
    }

    #[test]
    fn error_payload_of_wrong_shape_is_rejected() {
        let src = GOOD.replace("  handshake: ok", "  error: {HandshakeTimedOut: 3}");
        let e = err_of(&src);
        assert_eq!(e.line, 12, "{e}");
        assert!(e.message.contains("carries no payload"), "{e}");
    }

    #[test]
    fn unknown_extension_names_line_and_column() {
        let e = err_of(&GOOD.replace("extensions: [udp]", "extensions: [udp, bogus]"));
        assert_eq!(e.line, 8, "{e}");
        assert!(e.message.contains("bogus"), "{e}");
        let e = err_of(&GOOD.replace("  extensions: [udp]", "  required: [teleport]"));
        assert_eq!((e.line, e.column), (8, 14), "{e}");
        assert!(e.message.contains("unknown extension"), "{e}");
    }

    #[test]
    fn bad_duration_names_line_and_column() {
        let src = GOOD.replace(
            "  - send: {type: CONTINUE, stream: 0, credit: 128}",
            "  - pause: 15",
        );
        let e = err_of(&src);
        assert_eq!((e.line, e.column), (10, 12), "{e}");
        assert!(e.message.contains("needs a unit"), "{e}");
        let src = GOOD.replace(
            "  - send: {type: CONTINUE, stream: 0, credit: 128}",
            "  - expect_nothing: 2 hours",
        );
        let e = err_of(&src);
        assert_eq!(e.line, 10, "{e}");
    }

    #[test]
    fn id_must_start_with_topic() {
        let e = err_of(&GOOD.replace("id: handshake.sample", "id: streams.sample"));
        assert_eq!((e.line, e.column), (1, 5), "{e}");
        assert!(e.message.contains("topic folder"), "{e}");
    }

    #[test]
    fn field_of_another_packet_type_is_rejected() {
        let e = err_of(&GOOD.replace("credit: 128", "credit: 128, reason: 2"));
        assert_eq!(e.line, 10, "{e}");
        assert!(e.message.contains("does not belong"), "{e}");
    }

    #[test]
    fn alias_used_before_open_is_rejected() {
        let src = GOOD.replace(
            "  extensions: [udp]\n",
            "  extensions: [udp]\n  actions:\n    - send: {stream: s1, text: hi}\n",
        );
        let e = err_of(&src);
        assert_eq!(e.line, 10, "{e}");
        assert!(e.message.contains("before an `open`"), "{e}");
    }

    #[test]
    fn missing_key_file_is_reported() {
        let src = GOOD.replace(
            "extensions: [udp]",
            "extensions: [{cert_auth: {key: keys/nope.pem}}]",
        );
        let e = err_of(&src);
        assert_eq!(e.line, 8, "{e}");
        assert!(e.message.contains("cannot read key file"), "{e}");
    }

    #[test]
    fn duplicate_ids_across_files_are_reported() {
        let dir = std::env::temp_dir().join(format!("wisp-cases-dup-{}", std::process::id()));
        let topic = dir.join("handshake");
        std::fs::create_dir_all(&topic).expect("temp dir");
        std::fs::write(topic.join("a.yaml"), GOOD).expect("write");
        std::fs::write(topic.join("b.yaml"), GOOD).expect("write");
        let (cases, errors) = load_dir(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(cases.len(), 1);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].message.contains("duplicate case ID"),
            "{}",
            errors[0]
        );
        assert_eq!((errors[0].line, errors[0].column), (1, 5));
    }

    const SERVER_CASE: &str = "\
id: server.tcp.sample
role: server
title: t
spec: s
level: must
description: d
script:
  - handshake
  - send: {type: CONNECT, stream: s1, stream_type: tcp, host: \"${tcp_echo.host}\", port: ${tcp_echo.port}}
  - send: {type: DATA, stream: s1, text: x, times: 2*credit}
  - expect_echo: {stream: s1}
close: {stream: s1, reason: 0x44, acceptable: [0x42]}
";

    fn load_server(src: &str) -> Result<Case, LoadError> {
        load_case_str(
            Path::new("/cases"),
            Path::new("/cases/server/tcp/sample.yaml"),
            src,
        )
    }

    #[test]
    fn server_case_loads_with_placeholders_filled_in() {
        let case = load_server(SERVER_CASE).expect("loads");
        assert!(case.is_server_role());
        assert_eq!(case.family(), "tcp");
        assert_eq!(case.file.script.len(), 4);
        match &case.file.script[1].value {
            ClientStep::Send(p) => {
                assert_eq!(p.host.as_deref(), Some("127.0.0.1"));
                assert_eq!(p.port, Some(9));
            }
            other => panic!("{other:?}"),
        }
        let mut ph = Placeholders::default();
        ph.set("tcp_echo", "127.0.0.2", 4242);
        let real = load_case_str_with(
            Path::new("/cases"),
            Path::new("/cases/server/tcp/sample.yaml"),
            &case.source,
            &ph,
        )
        .expect("loads");
        match &real.file.script[1].value {
            ClientStep::Send(p) => assert_eq!(p.port, Some(4242)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn server_case_mistakes_are_load_errors() {
        let e = load_server(&SERVER_CASE.replace("${tcp_echo.port}", "${nowhere.port}"))
            .expect_err("unknown placeholder");
        assert!(e.message.contains("unknown placeholder"), "{e}");
        assert_eq!((e.line, e.column), (9, 89), "{e}");
        let e = load_server(&SERVER_CASE.replace("stream: s1, text: x", "stream: s2, text: x"))
            .expect_err("unbound alias");
        assert!(e.message.contains("before a sent CONNECT"), "{e}");
        let e = load_server(&format!("{SERVER_CASE}actions:\n  - sleep: 1ms\n")).expect_err("both");
        assert!(e.message.contains("not both"), "{e}");
        let e = load_server(&SERVER_CASE.replace("role: server\n", "")).expect_err("role");
        assert!(e.message.contains("need `role: server`"), "{e}");
        let e = load_case_str(
            Path::new("/cases"),
            Path::new("/cases/streams/sample.yaml"),
            &SERVER_CASE.replace("server.tcp.sample", "streams.sample"),
        )
        .expect_err("outside cases/server");
        assert!(e.message.contains("live under cases/server"), "{e}");
        let e = load_server(&SERVER_CASE.replace("times: 2*credit", "times: 2*credits"))
            .expect_err("bad times");
        assert!(e.message.contains("times"), "{e}");
    }

    #[test]
    fn server_role_keys_are_rejected_in_client_cases() {
        let e = err_of(&format!("{GOOD}requires: [udp]\n"));
        assert!(e.message.contains("server-role"), "{e}");
        let src = GOOD.replace("credit: 128}", "credit: 128, times: credit}");
        let e = err_of(&src);
        assert!(e.message.contains("credit"), "{e}");
    }

    #[test]
    fn broken_yaml_does_not_panic() {
        let e = err_of("id: [\n");
        assert!(e.line >= 1, "{e}");
        let e = err_of("");
        assert!(!e.message.is_empty());
    }
}
