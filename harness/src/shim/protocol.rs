//! The messages of the shim protocol (`harness/SHIM.md`), as Rust types: what the
//! harness asks a client under test to do ([`Request`], [`Plan`]) and what the client
//! reports back ([`Event`]). A process shim exchanges them as JSON lines; an in-process
//! [`super::ClientUnderTest`] exchanges the same values.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use wisp_cases::ClientCase;
use wisp_cases::actions::{Action, ReadUntil};
use wisp_cases::client::{ClientExtension, LayoutChoice, VersionSel};
use wisp_cases::values::{ErrorPayload, ErrorSet, ErrorSpec, extension_label};
use wisp_client::WispError;
use wisp_client::proto::{CloseReason, ExtensionId, PasswordLayout, StreamType};

/// The version of the shim protocol this harness speaks (`hello.protocol`).
pub const PROTOCOL_VERSION: u32 = 1;

/// What a client under test can do. A case that needs a capability the client does not
/// declare is UNSUPPORTED for it, never FAILED.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Speaks Wisp v1 when asked to (no subprotocol, no INFO).
    V1,
    /// Speaks Wisp v2 (INFO handshake).
    V2,
    /// Offers the UDP extension and opens UDP streams.
    Udp,
    /// Offers the password extension, writing the draft-6 record layout
    /// (`ulen u8 | username | password`).
    Password,
    /// Offers the password extension, writing the draft-5 record layout
    /// (`ulen u8 | plen u16 LE | username | password`).
    PasswordDraft5,
    /// Offers the password extension without a pinned layout and picks it from the
    /// server's handshake order (INFO first: draft 6; CONTINUE first: draft 5), the plan's
    /// `layout: "auto"`.
    PasswordAuto,
    /// Offers certificate authentication (Ed25519).
    CertAuth,
    /// Offers the MOTD extension and reports the MOTD.
    Motd,
    /// Offers stream-open confirmation.
    StreamConfirmation,
    /// Can require extensions in the server's INFO (`required`) or after the handshake
    /// (`required_after`).
    RequiredExtensions,
    /// Honours the plan's `options` (timeouts, payload size, first stream id, queue).
    Options,
    /// Closes a stream with a chosen reason (`close` with a reason other than 0x02).
    CloseReason,
    /// Closes the connection with CLOSE(0, reason) (`close_mux` with a reason).
    CloseMuxReason,
    /// Drops a stream (`drop`: the stream is released without an explicit close).
    Drop,
}

impl Capability {
    /// Every capability, in order.
    pub const ALL: [Capability; 14] = [
        Self::V1,
        Self::V2,
        Self::Udp,
        Self::Password,
        Self::PasswordDraft5,
        Self::PasswordAuto,
        Self::CertAuth,
        Self::Motd,
        Self::StreamConfirmation,
        Self::RequiredExtensions,
        Self::Options,
        Self::CloseReason,
        Self::CloseMuxReason,
        Self::Drop,
    ];

    /// The name the protocol uses (`password_draft5`).
    pub fn name(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
            Self::Udp => "udp",
            Self::Password => "password",
            Self::PasswordDraft5 => "password_draft5",
            Self::PasswordAuto => "password_auto",
            Self::CertAuth => "cert_auth",
            Self::Motd => "motd",
            Self::StreamConfirmation => "stream_confirmation",
            Self::RequiredExtensions => "required_extensions",
            Self::Options => "options",
            Self::CloseReason => "close_reason",
            Self::CloseMuxReason => "close_mux_reason",
            Self::Drop => "drop",
        }
    }

    /// The capabilities a client-role case needs.
    pub fn needed_by(case: &ClientCase) -> BTreeSet<Capability> {
        let spec = &case.client;
        let mut out = BTreeSet::new();
        out.insert(match spec.version {
            VersionSel::V1 => Self::V1,
            VersionSel::V2 => Self::V2,
        });
        for ext in &spec.extensions {
            out.insert(match ext {
                ClientExtension::Udp => Self::Udp,
                ClientExtension::Password(p) => match p.layout {
                    LayoutChoice::Pinned(PasswordLayout::Draft5) => Self::PasswordDraft5,
                    LayoutChoice::Pinned(_) => Self::Password,
                    LayoutChoice::Auto => Self::PasswordAuto,
                },
                ClientExtension::CertAuth(_) => Self::CertAuth,
                ClientExtension::Motd => Self::Motd,
                ClientExtension::StreamConfirmation => Self::StreamConfirmation,
            });
        }
        if !spec.required.is_empty() || !spec.required_after.is_empty() {
            out.insert(Self::RequiredExtensions);
        }
        if spec.options != wisp_client::MuxOptions::default() || spec.max_message_size.is_some() {
            out.insert(Self::Options);
        }
        for action in &spec.actions {
            match &action.value {
                Action::Open(o) if o.stream_type.0 == StreamType::UDP => {
                    out.insert(Self::Udp);
                }
                Action::Close(c) if c.reason.is_some_and(|r| r.0 != CloseReason::VOLUNTARY) => {
                    out.insert(Self::CloseReason);
                }
                Action::CloseMux(c) if c.reason.is_some() => {
                    out.insert(Self::CloseMuxReason);
                }
                Action::Drop(_) => {
                    out.insert(Self::Drop);
                }
                _ => {}
            }
        }
        out
    }
}

/// What a client under test says about itself (the answer to `describe`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The client's name (`wisp-js`).
    pub name: String,
    /// Its version (`0.5.0`).
    pub version: String,
    /// What it can do.
    pub capabilities: BTreeSet<Capability>,
    /// The shim protocol version it speaks (1).
    #[serde(default = "protocol_version")]
    pub protocol: u32,
}

fn protocol_version() -> u32 {
    PROTOCOL_VERSION
}

/// A message from the harness to a shim: one JSON line on its stdin.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Say who you are: answer with one `hello` line, then exit.
    Describe,
    /// Run one case.
    Run(Box<Plan>),
    /// The mock server's script is over: report the final state (`stream` lines, `mux`),
    /// then `done`, then exit.
    Finish(FinishInfo),
}

/// What comes with `finish`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishInfo {
    /// How long to wait for the connection to end before reporting it `running` (the case
    /// expects the connection's result; 0: report at once).
    #[serde(default)]
    pub mux_wait_ms: u64,
}

/// An extension the client offers, with what it needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum PlanExtension {
    /// UDP (0x01).
    Udp,
    /// Password (0x02): credentials when the case gives them, in this record layout.
    Password {
        /// The username.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        /// The password.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
        /// `draft6` (`ulen u8 | username | password`), `draft5` (with `plen u16 LE`) or
        /// `auto` (the client picks it from the server's handshake order).
        layout: String,
    },
    /// Certificate authentication (0x03), with the Ed25519 key when the case gives one.
    CertAuth {
        /// The 32-byte Ed25519 secret key (seed), hex.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_hex: Option<String>,
        /// The same key as a PKCS#8 PEM file's text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_pem: Option<String>,
    },
    /// MOTD (0x04).
    Motd,
    /// Stream-open confirmation (0x05).
    StreamConfirmation,
}

/// The client's tunables (a case's `client.options`, `MuxOptions` in milliseconds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanOptions {
    /// Bound on the Wisp handshake (`null`: none).
    pub handshake_timeout_ms: Option<u64>,
    /// How long a v2 client waits for an INFO after a first CONTINUE(0) (legacy order).
    pub legacy_info_wait_ms: u64,
    /// The largest DATA payload the client sends; larger writes are split.
    pub max_payload_len: usize,
    /// The first stream id.
    pub first_stream_id: u32,
    /// Bound on a stream open with stream-open confirmation (`null`: none).
    pub stream_open_timeout_ms: Option<u64>,
    /// Bytes queued per stream before writes wait.
    pub max_queued_bytes: usize,
    /// How long closing the connection waits for the server.
    pub close_timeout_ms: u64,
    /// Bound on opening the WebSocket (`null`: none).
    pub connect_timeout_ms: Option<u64>,
}

impl From<&wisp_client::MuxOptions> for PlanOptions {
    fn from(o: &wisp_client::MuxOptions) -> Self {
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            handshake_timeout_ms: o.handshake_timeout.map(ms),
            legacy_info_wait_ms: ms(o.legacy_info_wait),
            max_payload_len: o.max_payload_len,
            first_stream_id: o.first_stream_id,
            stream_open_timeout_ms: o.stream_open_timeout.map(ms),
            max_queued_bytes: o.max_queued_bytes,
            close_timeout_ms: ms(o.close_timeout),
            connect_timeout_ms: o.connect_timeout.map(ms),
        }
    }
}

impl PlanOptions {
    /// The options as `MuxOptions`.
    pub fn to_mux_options(&self) -> wisp_client::MuxOptions {
        let ms = std::time::Duration::from_millis;
        wisp_client::MuxOptions::default()
            .handshake_timeout(self.handshake_timeout_ms.map(ms))
            .legacy_info_wait(ms(self.legacy_info_wait_ms))
            .max_payload_len(self.max_payload_len)
            .first_stream_id(self.first_stream_id)
            .stream_open_timeout(self.stream_open_timeout_ms.map(ms))
            .max_queued_bytes(self.max_queued_bytes)
            .close_timeout(ms(self.close_timeout_ms))
            .connect_timeout(self.connect_timeout_ms.map(ms))
    }
}

/// How far a `read` goes: a byte count, or `"end"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PlanUntil {
    /// Until at least this many bytes arrived (in total on the stream).
    Bytes(usize),
    /// `"end"`: until the stream ends.
    End(EndWord),
}

/// The word `end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndWord {
    /// `end`.
    End,
}

/// One action of the plan, run in order after the handshake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PlanAction {
    /// Open a stream; later actions name it by `stream`.
    Open {
        /// The alias.
        stream: String,
        /// `tcp` or `udp` (or a number for another type).
        kind: String,
        /// Destination host.
        host: String,
        /// Destination port.
        port: u16,
    },
    /// Write `data` (hex) `times` times, one write each.
    Send {
        /// The alias.
        stream: String,
        /// The payload, hex.
        data: String,
        /// How many writes.
        times: usize,
    },
    /// Close the stream with `reason`.
    Close {
        /// The alias.
        stream: String,
        /// The CLOSE reason byte.
        reason: u8,
    },
    /// Read until `until` bytes arrived in total on the stream, or until it ends.
    Read {
        /// The alias.
        stream: String,
        /// How far.
        until: PlanUntil,
    },
    /// Read until the stream ends (the data counts as read).
    WaitClosed {
        /// The alias.
        stream: String,
    },
    /// Release the stream without closing it explicitly.
    Drop {
        /// The alias.
        stream: String,
    },
    /// Close the connection; with a reason, send CLOSE(0, reason) first.
    CloseMux {
        /// The reason, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<u8>,
    },
    /// Do nothing for this long.
    Sleep {
        /// Milliseconds.
        ms: u64,
    },
}

/// What the harness asks the client to do in one case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The case ID (for logs).
    pub case: String,
    /// The mock server's WebSocket URL (`ws://127.0.0.1:PORT/`).
    pub url: String,
    /// `1` or `2`: the Wisp version to ask for.
    pub version: u8,
    /// The extensions to offer (v2).
    pub extensions: Vec<PlanExtension>,
    /// Extension ids the server's INFO must carry (else the handshake fails with
    /// `ExtensionsNotSupported`).
    pub required: Vec<u8>,
    /// Extension ids that must be negotiated once the handshake is done (else
    /// `ExtensionsNotSupported`).
    pub required_after: Vec<u8>,
    /// The client's tunables.
    pub options: PlanOptions,
    /// The largest WebSocket message the client accepts (`null`: its library's default);
    /// a larger one must fail the connection. Needs the `options` capability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_size: Option<usize>,
    /// The actions, in order.
    pub actions: Vec<PlanAction>,
    /// The harness gives up on the case after this long.
    pub timeout_ms: u64,
}

impl Plan {
    /// The plan of a client-role case, for a client connecting to `url`. Fails when the
    /// case names a key file that cannot be read.
    pub fn from_case(case: &ClientCase, url: &str, timeout_ms: u64) -> Result<Self, String> {
        let spec = &case.client;
        let mut extensions = Vec::new();
        for ext in &spec.extensions {
            extensions.push(match ext {
                ClientExtension::Udp => PlanExtension::Udp,
                ClientExtension::Motd => PlanExtension::Motd,
                ClientExtension::StreamConfirmation => PlanExtension::StreamConfirmation,
                ClientExtension::Password(p) => PlanExtension::Password {
                    username: p.username.clone(),
                    password: p.password.clone(),
                    layout: match p.layout {
                        LayoutChoice::Pinned(PasswordLayout::Draft5) => "draft5",
                        LayoutChoice::Pinned(_) => "draft6",
                        LayoutChoice::Auto => "auto",
                    }
                    .to_owned(),
                },
                ClientExtension::CertAuth(c) => {
                    let key_pem = match &c.key {
                        Some(rel) => {
                            let dir = cases_dir(case);
                            let path = dir.join(&rel.value);
                            Some(std::fs::read_to_string(&path).map_err(|e| {
                                format!("cannot read the key {}: {e}", path.display())
                            })?)
                        }
                        None => None,
                    };
                    PlanExtension::CertAuth {
                        key_hex: c.signing_key.as_ref().map(|k| hex::encode(k.to_bytes())),
                        key_pem,
                    }
                }
            });
        }
        let actions = spec
            .actions
            .iter()
            .map(|a| plan_action(&a.value))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            case: case.meta.id.clone(),
            url: url.to_owned(),
            version: match spec.version {
                VersionSel::V1 => 1,
                VersionSel::V2 => 2,
            },
            extensions,
            required: spec.required.iter().map(|e| e.0.0).collect(),
            required_after: spec.required_after.iter().map(|e| e.0.0).collect(),
            options: PlanOptions::from(&spec.options),
            max_message_size: spec.max_message_size,
            actions,
            timeout_ms,
        })
    }
}

/// The `cases/` directory a case was loaded from.
fn cases_dir(case: &ClientCase) -> std::path::PathBuf {
    let mut dir = case.meta.path.clone();
    for _ in case.meta.rel_path.split('/') {
        dir.pop();
    }
    dir
}

fn plan_action(action: &Action) -> Result<PlanAction, String> {
    Ok(match action {
        Action::Open(o) => PlanAction::Open {
            stream: o.stream.clone(),
            kind: stream_kind(o.stream_type.0),
            host: o.host.clone(),
            port: o.port,
        },
        Action::Send(s) => PlanAction::Send {
            stream: s.stream.clone(),
            data: hex::encode(s.payload()),
            times: s.times.unwrap_or(1).max(1),
        },
        Action::Close(c) => PlanAction::Close {
            stream: c.stream.clone(),
            reason: c.reason.map_or(CloseReason::VOLUNTARY, |r| r.0).0,
        },
        Action::Read(r) => PlanAction::Read {
            stream: r.stream.clone(),
            until: match r.until {
                ReadUntil::Bytes(n) => PlanUntil::Bytes(n),
                ReadUntil::End => PlanUntil::End(EndWord::End),
            },
        },
        Action::WaitClosed(a) => PlanAction::WaitClosed { stream: a.clone() },
        Action::Drop(a) => PlanAction::Drop { stream: a.clone() },
        Action::CloseMux(c) => PlanAction::CloseMux {
            reason: c.reason.map(|r| r.0.0),
        },
        Action::Sleep(d) => PlanAction::Sleep {
            ms: u64::try_from(d.0.as_millis()).unwrap_or(u64::MAX),
        },
        Action::Echo(_) => return Err("`echo` is a server-role action".to_owned()),
    })
}

/// `tcp`, `udp`, or the type byte in decimal.
fn stream_kind(t: StreamType) -> String {
    match t {
        StreamType::TCP => "tcp".to_owned(),
        StreamType::UDP => "udp".to_owned(),
        other => other.0.to_string(),
    }
}

/// An error a client reports: a `WispError` variant name (the suite's vocabulary) with
/// what it carries, or `Other` with the library's own text where no name fits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedError {
    /// One of `WispError::NAMES`, or `Other`.
    pub name: String,
    /// A close reason (`AuthRequired`, `HandshakeRejected`, `ClosedByServer`,
    /// `StreamRefused`), an algorithm mask (`CertAuthExtensionCertTypeInvalid`) or a packet
    /// type (`UnexpectedHandshakePacket`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u8>,
    /// The missing extension ids (`ExtensionsNotSupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<u8>>,
    /// The server's version (`IncompatibleProtocolVersion`), e.g. `"3.0"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The library's message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl ReportedError {
    /// `Other(text)`: an error no `WispError` name describes.
    pub fn other(text: impl Into<String>) -> Self {
        Self {
            name: "Other".to_owned(),
            message: text.into(),
            ..Self::default()
        }
    }

    /// Our client's error, as a shim reports it.
    pub fn from_wisp(e: &WispError) -> Self {
        let mut out = Self {
            name: e.name().to_owned(),
            code: e.close_reason().map(|r| r.0),
            message: e.to_string(),
            ..Self::default()
        };
        match e {
            WispError::ExtensionsNotSupported(ids) => out.ids = Some(ids.clone()),
            WispError::CertAuthExtensionCertTypeInvalid(mask) => out.code = Some(*mask),
            WispError::UnexpectedHandshakePacket { packet_type, .. } => {
                out.code = Some(*packet_type);
            }
            WispError::IncompatibleProtocolVersion(found, _) => {
                out.version = Some(found.to_string());
            }
            _ => {}
        }
        out
    }

    /// Whether the error is `spec` (and carries its payload, when the spec gives one): the
    /// same rule as `ErrorSpec::matches` for our client's errors, except a text payload
    /// other than a version, which is our client's library's wording: only the name of a
    /// reported error is compared with it; and `WsImplError` and `WsImplSocketClosed` are
    /// one name, the two ways a WebSocket library words a connection it ended.
    pub fn matches(&self, spec: &ErrorSpec) -> bool {
        // Whether a connection that ended at the WebSocket level is a "WebSocket error" or
        // a "socket closed" is the wording of the client's WebSocket library (our client's
        // names pin it for our client); the wire shows what the client did either way.
        const WS_END: [&str; 2] = ["WsImplError", "WsImplSocketClosed"];
        let same_family =
            WS_END.contains(&self.name.as_str()) && WS_END.contains(&spec.name.as_str());
        if self.name != spec.name && !same_family {
            return false;
        }
        match &spec.payload {
            None => true,
            Some(ErrorPayload::List(want)) => self.ids.as_ref().is_some_and(|got| {
                let mut got: Vec<u64> = got.iter().map(|x| u64::from(*x)).collect();
                let mut want = want.clone();
                got.sort_unstable();
                want.sort_unstable();
                got == want
            }),
            Some(ErrorPayload::Int(want)) => match &self.ids {
                Some(ids) => ids.len() == 1 && u64::from(ids[0]) == *want,
                None => self.code.is_some_and(|c| u64::from(c) == *want),
            },
            Some(ErrorPayload::Str(want)) if self.name == "IncompatibleProtocolVersion" => {
                self.version.as_deref() == Some(want.as_str())
            }
            // Any other text is what our client's message must contain: the wording of its
            // WebSocket library (`status code 200`, `Sec-WebSocket-Accept`). A reported
            // message is the client's own wording, so only the name is judged.
            Some(ErrorPayload::Str(_)) => true,
        }
    }

    /// Whether the error is one of `set`.
    pub fn matches_set(&self, set: &ErrorSet) -> bool {
        set.0.iter().any(|s| self.matches(s))
    }
}

impl fmt::Display for ReportedError {
    /// `Name (message)`, like the reports show our client's errors; `Other(text)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name == "Other" {
            return write!(f, "Other({})", self.message);
        }
        f.write_str(&self.name)?;
        let mut details = Vec::new();
        if let Some(c) = self.code {
            details.push(format!("0x{c:02x}"));
        }
        if let Some(ids) = &self.ids {
            let labels: Vec<String> = ids
                .iter()
                .map(|i| extension_label(ExtensionId(*i)))
                .collect();
            details.push(format!("[{}]", labels.join(", ")));
        }
        if let Some(v) = &self.version {
            details.push(format!("version {v}"));
        }
        if !self.message.is_empty() {
            details.push(self.message.clone());
        }
        if !details.is_empty() {
            write!(f, " ({})", details.join("; "))?;
        }
        Ok(())
    }
}

/// How a stream ended, as a client reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndedBy {
    /// A CLOSE from the server.
    Server,
    /// The client closed it.
    Client,
    /// The whole connection ended.
    Connection,
    /// The open failed (stream-open confirmation refused or timed out).
    OpenFailed,
}

/// A stream's end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEnding {
    /// Who or what ended it.
    pub by: EndedBy,
    /// The CLOSE reason, when one is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<u8>,
    /// The error the stream ended with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ReportedError>,
}

impl StreamEnding {
    /// Our client's stream end, as a shim reports it.
    pub fn from_end(end: &wisp_client::StreamEnd) -> Self {
        use wisp_client::StreamEnd;
        use wisp_client::proto::Initiator;
        match end {
            StreamEnd::Closed { reason, initiator } => Self {
                by: match initiator {
                    Initiator::Remote => EndedBy::Server,
                    Initiator::Local => EndedBy::Client,
                },
                reason: Some(reason.0),
                error: None,
            },
            StreamEnd::OpenFailed(e) => Self {
                by: EndedBy::OpenFailed,
                reason: e.close_reason().map(|r| r.0),
                error: Some(ReportedError::from_wisp(e)),
            },
            StreamEnd::ConnectionEnded(e) => Self {
                by: EndedBy::Connection,
                reason: e.close_reason().map(|r| r.0),
                error: Some(ReportedError::from_wisp(e)),
            },
            // A future kind of end: the connection's, as far as a report can tell.
            other => Self {
                by: EndedBy::Connection,
                reason: other.reason().map(|r| r.0),
                error: other.error().map(ReportedError::from_wisp),
            },
        }
    }
}

impl fmt::Display for StreamEnding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = self
            .reason
            .map(|r| format!(" reason={}", CloseReason(r)))
            .unwrap_or_default();
        match self.by {
            EndedBy::Server => write!(f, "closed by server{reason}"),
            EndedBy::Client => write!(f, "closed by client{reason}"),
            EndedBy::Connection | EndedBy::OpenFailed => {
                let what = if self.by == EndedBy::Connection {
                    "connection ended"
                } else {
                    "open failed"
                };
                write!(f, "{what}{reason}")?;
                match &self.error {
                    Some(e) => write!(f, ": {e}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// The mux's state at the end (`mux` line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MuxState {
    /// The connection is still up.
    Running,
    /// It ended cleanly.
    Ok,
    /// It ended with this error.
    Error(ReportedError),
}

/// A message from a client under test: one JSON line on a shim's stdout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The answer to `describe`.
    Hello(Hello),
    /// The handshake finished (or failed, with `error`).
    Handshake {
        /// The error, when the handshake (or the `required_after` check) failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<ReportedError>,
        /// The version spoken (`"2.0"`, `"1.0"`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        /// Whether a v2 client fell back to v1.
        #[serde(default)]
        downgraded: bool,
        /// The negotiated extension ids.
        #[serde(default)]
        extensions: Vec<u8>,
        /// The server's MOTD, if one was negotiated.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        motd: Option<String>,
    },
    /// One action finished.
    Action {
        /// Its index in the plan.
        index: usize,
        /// Why it failed (an open, send, close or close_mux that returned an error; a read
        /// that ended with an error).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<ReportedError>,
        /// The id an opened stream got.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stream_id: Option<u32>,
        /// The bytes a read got, hex.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<String>,
        /// A read reached the end of the stream.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        eof: bool,
        /// Writes done before a send failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sent: Option<usize>,
    },
    /// Every action ran (or the handshake failed): wait for `finish`.
    ActionsDone,
    /// The state of one stream at the end (after `finish`): `end` is `null` while open.
    Stream {
        /// The alias.
        stream: String,
        /// How it ended.
        #[serde(default)]
        end: Option<StreamEnding>,
    },
    /// The connection's state at the end (after `finish`).
    Mux {
        /// Running, ended ok, or ended with an error.
        state: MuxState,
    },
    /// The shim has reported everything.
    Done,
    /// Free text for the transcript (a shim's own diagnostics).
    Log {
        /// The line.
        text: String,
    },
}

impl Event {
    /// An action that succeeded with nothing to report.
    pub fn action_ok(index: usize) -> Self {
        Self::Action {
            index,
            error: None,
            stream_id: None,
            data: None,
            eof: false,
            sent: None,
        }
    }

    /// An action that failed with `error`.
    pub fn action_failed(index: usize, error: ReportedError) -> Self {
        Self::Action {
            index,
            error: Some(error),
            stream_id: None,
            data: None,
            eof: false,
            sent: None,
        }
    }
}
