//! The server-role part of the case language (`role: server`): the harness plays a scripted
//! client against a real server and judges what the server does.
//!
//! A server-role case says how to connect ([`ConnectSpec`]), which optional features it
//! needs ([`Capability`], UNSUPPORTED when the server does not advertise them), and then
//! either a list of `actions` (ordinary traffic through `wisp_client::ClientMux`) or a
//! `script` of [`ClientStep`]s (raw packets, for malformed input and exact wire checks). The
//! server's CLOSE reason is judged on its own by a [`CloseJudge`] (the second verdict
//! column). Addresses of the loopback targets the harness starts are written as
//! placeholders (`${tcp_echo.port}`), filled in by [`Placeholders`] before parsing.
//!
//! The language is documented in `cases/README.md`.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::scenario::{Level, PacketSpec, Pattern, RawExtension};
use crate::values::{Dur, ExtName, Hex, ReasonSet, StreamRef};

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

/// A password record in a client INFO the script sends.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientPasswordRecord {
    /// Which credentials (default `run`; `none` is not allowed here).
    #[serde(default)]
    pub credentials: Secret,
}

/// A certificate record in a client INFO the script sends: a signature over the challenge
/// of the last server INFO.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertRecord {
    /// Which key signs (default `run`; `none` is not allowed here).
    #[serde(default)]
    pub key: KeyChoice,
}

/// An extension record in a client INFO the script sends.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientInfoRecord {
    /// UDP (empty metadata).
    Udp,
    /// MOTD (empty metadata on the client side).
    Motd,
    /// Stream-open confirmation (empty metadata).
    StreamConfirmation,
    /// Password credentials.
    Password(ClientPasswordRecord),
    /// A certificate signature.
    CertAuth(ClientCertRecord),
    /// Any id with any bytes (`len` overrides the length in the record header).
    Raw(RawExtension),
}

/// `send_info`: a client INFO packet on stream 0.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientInfoSpec {
    /// Answer the server's INFO the way the `handshake` step does (its extensions that the
    /// harness supports, with the connection's credentials), instead of giving `version`
    /// and `extensions`.
    #[serde(default)]
    pub answer: bool,
    /// With `answer`: extensions to leave out of the answer.
    #[serde(default)]
    pub omit: Vec<ExtName>,
    /// The version (default `"2.0"`).
    #[serde(default)]
    pub version: Option<String>,
    /// The extension records, in order.
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
    /// The server ends the connection (close frame, EOF or reset); packets before that are
    /// recorded.
    ExpectEof,
    /// The connection still works: a new TCP stream to the echo target echoes a probe.
    Alive,
    /// Wait.
    Pause(Dur),
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

/// `times:` on a sent packet: a number, or an expression of the stream credit the server
/// granted in the handshake: `credit`, `2*credit`, `credit+1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Times {
    /// Multiplier of the credit (0: a plain number).
    pub credit_mul: u32,
    /// Added to it.
    pub add: u32,
}

impl Times {
    /// Parses `7`, `credit`, `2*credit`, `credit+1`, `2*credit+3`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "times {text:?}: write a number, `credit`, `N*credit` or `credit+N` (N a number)"
            )
        };
        let t: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let (mul_part, add) = match t.split_once('+') {
            Some((a, b)) => (a.to_owned(), b.parse::<u32>().map_err(|_| bad())?),
            None => (t.clone(), 0),
        };
        if let Ok(n) = mul_part.parse::<u32>() {
            return Ok(Self {
                credit_mul: 0,
                add: n.checked_add(add).ok_or_else(bad)?,
            });
        }
        let mul = match mul_part.strip_suffix("credit") {
            Some("") => 1,
            Some(m) => m
                .strip_suffix('*')
                .and_then(|m| m.parse::<u32>().ok())
                .ok_or_else(bad)?,
            None => return Err(bad()),
        };
        Ok(Self {
            credit_mul: mul,
            add,
        })
    }

    /// How many, given the handshake credit.
    pub fn count(self, credit: u32) -> u64 {
        u64::from(self.credit_mul) * u64::from(credit) + u64::from(self.add)
    }

    /// Whether the expression uses the credit.
    pub fn uses_credit(self) -> bool {
        self.credit_mul > 0
    }
}

impl fmt::Display for Times {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.credit_mul, self.add) {
            (0, n) => write!(f, "{n}"),
            (1, 0) => f.write_str("credit"),
            (m, 0) => write!(f, "{m}*credit"),
            (1, n) => write!(f, "credit+{n}"),
            (m, n) => write!(f, "{m}*credit+{n}"),
        }
    }
}

impl<'de> Deserialize<'de> for Times {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Times;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a count: a number, `credit`, `N*credit` or `credit+N`")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Times, E> {
                u32::try_from(v)
                    .map(|add| Times { credit_mul: 0, add })
                    .map_err(|_| E::custom("times is too large"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Times, E> {
                Times::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Values for the `${name.field}` placeholders of server-role cases: the addresses of the
/// loopback targets the harness starts (`tcp_echo`, `udp_echo`, `refused`, `sink`,
/// `discard`, `banner`) and of the configured `blocked` destination, each with `.host`
/// and `.port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placeholders {
    values: BTreeMap<String, String>,
}

/// The target names a placeholder may use.
pub const TARGET_NAMES: &[&str] = &[
    "tcp_echo", "udp_echo", "refused", "sink", "discard", "banner", "blocked",
];

impl Default for Placeholders {
    /// Stand-in values (`127.0.0.1`, port 9) that let a case load for `list` and
    /// validation; a run fills in the real ones.
    fn default() -> Self {
        let mut p = Self {
            values: BTreeMap::new(),
        };
        for name in TARGET_NAMES {
            p.set(name, "127.0.0.1", 9);
        }
        p
    }
}

impl Placeholders {
    /// Sets `${name.host}` and `${name.port}`.
    pub fn set(&mut self, name: &str, host: &str, port: u16) {
        self.values.insert(format!("{name}.host"), host.to_owned());
        self.values.insert(format!("{name}.port"), port.to_string());
    }

    /// The value of one placeholder (`tcp_echo.port`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Replaces every `${name.field}` in `source`. An unknown or unterminated placeholder
    /// is an error with its 1-based line and column.
    pub fn substitute(&self, source: &str) -> Result<String, (u64, u64, String)> {
        let mut out = String::with_capacity(source.len());
        for (line_no, line) in source.split_inclusive('\n').enumerate() {
            let mut rest = line;
            let mut col = 0usize;
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let at = (line_no as u64 + 1, (col + start) as u64 + 1);
                let after = &rest[start + 2..];
                let Some(end) = after.find('}') else {
                    return Err((at.0, at.1, "unterminated `${` placeholder".to_owned()));
                };
                let key = &after[..end];
                match self.values.get(key) {
                    Some(v) => out.push_str(v),
                    None => {
                        return Err((
                            at.0,
                            at.1,
                            format!(
                                "unknown placeholder ${{{key}}}: use ${{NAME.host}} or ${{NAME.port}} with NAME one of {}",
                                TARGET_NAMES.join(", ")
                            ),
                        ));
                    }
                }
                let consumed = start + 2 + end + 1;
                col += consumed;
                rest = &rest[consumed..];
            }
            out.push_str(rest);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse() {
        assert_eq!(Times::parse("7").unwrap().count(128), 7);
        assert_eq!(Times::parse("credit").unwrap().count(128), 128);
        assert_eq!(Times::parse("2*credit").unwrap().count(128), 256);
        assert_eq!(Times::parse("credit+1").unwrap().count(128), 129);
        assert_eq!(Times::parse("2 * credit + 3").unwrap().count(10), 23);
        assert!(Times::parse("credits").is_err());
        assert!(Times::parse("x*credit").is_err());
        assert!(Times::parse("").is_err());
        assert_eq!(
            Times::parse("2*credit+3").unwrap().to_string(),
            "2*credit+3"
        );
    }

    #[test]
    fn placeholders_substitute_and_locate_errors() {
        let mut p = Placeholders::default();
        p.set("tcp_echo", "127.0.0.1", 4242);
        let out = p
            .substitute("a: ${tcp_echo.host}:${tcp_echo.port}\nb: 1\n")
            .unwrap();
        assert_eq!(out, "a: 127.0.0.1:4242\nb: 1\n");
        let e = p.substitute("x: 1\ny: ${nope.port}\n").unwrap_err();
        assert_eq!((e.0, e.1), (2, 4));
        assert!(e.2.contains("unknown placeholder"), "{}", e.2);
        let e = p.substitute("y: ${tcp_echo.port\n").unwrap_err();
        assert!(e.2.contains("unterminated"), "{}", e.2);
    }
}
