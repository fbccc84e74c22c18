//! Packets on the wire, as scripts write them: a packet to send ([`PacketSpec`], with the
//! server's INFO records) and a pattern an arriving packet must match ([`Pattern`]). Both
//! roles' scripts use them: the mock server's `server:` steps (client role) and the
//! harness's `script:` steps (server role).

use std::fmt;

use ed25519_dalek::VerifyingKey;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_saphyr::Spanned;
use wisp_proto::PasswordLayout;

pub use crate::ext::{
    BuiltRecord, Challenge, RawExtension, SentChallenge, ServerCertAuth, ServerExtension,
    ServerPassword,
};

use crate::actions::Repeat;
use crate::values::{
    Dur, ExtName, Hex, ReasonSet, ReasonSpec, StreamRef, StreamTypeSpec, TypeSpec,
};

pub(crate) fn yes() -> bool {
    true
}

/// `times:` on a sent packet: a number, or (server role) an expression of the stream
/// credit the server granted in the handshake: `credit`, `2*credit`, `credit+1`,
/// `credit-1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Times {
    /// Multiplier of the credit (0: a plain number).
    pub credit_mul: u32,
    /// Added to it (negative only with the credit: `credit-1`).
    pub add: i64,
}

impl Times {
    /// Parses `7`, `credit`, `2*credit`, `credit+1`, `credit-1`, `2*credit+3`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "times {text:?}: write a number, `credit`, `N*credit`, `credit+N` or `credit-N` (N a number)"
            )
        };
        let t: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let (mul_part, add) = match t.split_once(['+', '-']) {
            Some((a, b)) => {
                let n = i64::from(b.parse::<u32>().map_err(|_| bad())?);
                let negative = t.as_bytes()[a.len()] == b'-';
                (a.to_owned(), if negative { -n } else { n })
            }
            None => (t.clone(), 0),
        };
        if let Ok(n) = mul_part.parse::<u32>() {
            let total = i64::from(n) + add;
            if add < 0 || total > i64::from(u32::MAX) {
                return Err(bad());
            }
            return Ok(Self {
                credit_mul: 0,
                add: total,
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

    /// How many, given the handshake credit (never below 0).
    pub fn count(self, credit: u32) -> u64 {
        let n = i128::from(self.credit_mul) * i128::from(credit) + i128::from(self.add);
        u64::try_from(n.max(0)).unwrap_or(u64::MAX)
    }

    /// Whether the expression uses the credit.
    pub fn uses_credit(self) -> bool {
        self.credit_mul > 0
    }
}

impl fmt::Display for Times {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.credit_mul {
            0 => return write!(f, "{}", self.add),
            1 => f.write_str("credit")?,
            m => write!(f, "{m}*credit")?,
        }
        match self.add {
            0 => Ok(()),
            n if n > 0 => write!(f, "+{n}"),
            n => write!(f, "{n}"),
        }
    }
}

impl<'de> Deserialize<'de> for Times {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Times;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a count: a number, `credit`, `N*credit`, `credit+N` or `credit-N`")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Times, E> {
                u32::try_from(v)
                    .map(|n| Times {
                        credit_mul: 0,
                        add: i64::from(n),
                    })
                    .map_err(|_| E::custom("times is too large"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Times, E> {
                Times::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A structured packet a script sends.
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
    pub layout: PasswordLayout,
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

/// A pattern for one arriving packet: a type plus any subset of fields.
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
    /// Bound on this wait (default: the step timeout).
    #[serde(default)]
    pub timeout: Option<Dur>,
}

impl Pattern {
    /// The pattern itself, or its alternatives.
    pub fn alternatives(&self) -> Vec<&Pattern> {
        match &self.one_of {
            Some(alts) => alts.iter().collect(),
            None => vec![self],
        }
    }
}

/// Parses `"2.0"` into (major, minor).
pub fn parse_version(v: &str) -> Result<(u8, u8), String> {
    let bad = || format!("bad version {v:?}: write \"major.minor\" like \"2.0\"");
    let (a, b) = v.split_once('.').ok_or_else(bad)?;
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
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
        assert_eq!(Times::parse("credit-1").unwrap().count(128), 127);
        assert_eq!(Times::parse("credit-200").unwrap().count(128), 0);
        assert_eq!(Times::parse("credit-1").unwrap().to_string(), "credit-1");
        assert_eq!(Times::parse("credit").unwrap().to_string(), "credit");
        assert_eq!(Times::parse("7").unwrap().to_string(), "7");
        assert!(Times::parse("7-1").is_err());
        assert!(Times::parse("-1").is_err());
        assert!(Times::parse("credits").is_err());
        assert!(Times::parse("x*credit").is_err());
        assert!(Times::parse("").is_err());
        assert_eq!(
            Times::parse("2*credit+3").unwrap().to_string(),
            "2*credit+3"
        );
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("2.0"), Ok((2, 0)));
        assert!(parse_version("2").is_err());
        assert!(parse_version("a.b").is_err());
    }
}
