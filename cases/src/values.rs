//! Small value types of the scenario language, each with a strict, located YAML parser:
//! durations (`150ms`, `2s`), hex strings (`"04 01 00 00 00"`), packet types, stream
//! references (`0`, `s1`), extension names, close reasons and expected errors.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use wisp_client::WispError;
use wisp_proto::{CloseReason, ExtensionId, PacketType, StreamType};

/// A duration written with a unit: `150ms`, `2s`, `1.5s`, `1m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl Dur {
    /// Parses `150ms`, `2s`, `1.5s`, `1m` or `0s` ([`wisp_proto::parse_duration`], the
    /// format `MuxOptions` reads too).
    pub fn parse(text: &str) -> Result<Self, String> {
        wisp_proto::parse_duration(text).map(Self)
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms >= 1000 && ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        wisp_proto::serde_duration::required::deserialize(d).map(Self)
    }
}

/// Bytes written as hex; whitespace between digits is allowed (`"04 01 00 00 00 02"`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Hex(pub Bytes);

impl Hex {
    /// Parses hex digits, ignoring whitespace.
    pub fn parse(text: &str) -> Result<Self, String> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        hex::decode(&compact)
            .map(|v| Self(Bytes::from(v)))
            .map_err(|e| format!("bad hex {text:?}: {e}"))
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Hex;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string of hex digits, e.g. \"04 01 00 00 00 02\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Hex, E> {
                Hex::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Hex, E> {
                Hex::parse(&v.to_string()).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A packet type: a name (`CONNECT`, `DATA`, `CONTINUE`, `CLOSE`, `INFO`) or a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeSpec(pub PacketType);

impl<'de> Deserialize<'de> for TypeSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TypeSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a packet type: CONNECT, DATA, CONTINUE, CLOSE, INFO or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TypeSpec, E> {
                (1..=5u8)
                    .map(PacketType)
                    .find(|t| t.name().is_some_and(|n| n.eq_ignore_ascii_case(v)))
                    .map(TypeSpec)
                    .ok_or_else(|| {
                        E::custom(format!(
                            "unknown packet type {v:?}: use CONNECT, DATA, CONTINUE, CLOSE, INFO or a number (e.g. 0x07)"
                        ))
                    })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TypeSpec, E> {
                u8::try_from(v)
                    .map(|b| TypeSpec(PacketType(b)))
                    .map_err(|_| E::custom(format!("packet type {v} does not fit in a byte")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A stream type: `tcp`, `udp`, `twisp` or a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamTypeSpec(pub StreamType);

impl<'de> Deserialize<'de> for StreamTypeSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = StreamTypeSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a stream type: tcp, udp or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StreamTypeSpec, E> {
                match v.to_ascii_lowercase().as_str() {
                    "tcp" => Ok(StreamTypeSpec(StreamType::TCP)),
                    "udp" => Ok(StreamTypeSpec(StreamType::UDP)),
                    "twisp" => Ok(StreamTypeSpec(StreamType::TWISP)),
                    _ => Err(E::custom(format!(
                        "unknown stream type {v:?}: use tcp, udp or a number"
                    ))),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StreamTypeSpec, E> {
                u8::try_from(v)
                    .map(|b| StreamTypeSpec(StreamType(b)))
                    .map_err(|_| E::custom(format!("stream type {v} does not fit in a byte")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A stream: a literal id (`0`, `7`) or an alias (`s1`) bound by an expected CONNECT
/// (server script) or an `open` action (client).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StreamRef {
    /// A literal stream id.
    Id(u32),
    /// An alias.
    Alias(String),
}

impl Default for StreamRef {
    fn default() -> Self {
        Self::Id(0)
    }
}

impl fmt::Display for StreamRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Alias(a) => f.write_str(a),
        }
    }
}

/// Checks an alias: a letter, then letters, digits, `_` or `-`.
pub fn check_alias(v: &str) -> Result<(), String> {
    let mut chars = v.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bad stream alias {v:?}: start with a letter, then letters, digits, `_` or `-`"
        ))
    }
}

impl<'de> Deserialize<'de> for StreamRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = StreamRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a stream id (number) or alias (like s1)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StreamRef, E> {
                check_alias(v).map_err(E::custom)?;
                Ok(StreamRef::Alias(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StreamRef, E> {
                u32::try_from(v)
                    .map(StreamRef::Id)
                    .map_err(|_| E::custom(format!("stream id {v} does not fit in a u32")))
            }
        }
        d.deserialize_any(V)
    }
}

/// The case-language names of every known extension, in id order: their
/// [`ExtensionId`] names in lower case (`udp`, `cert_auth`), so a new extension id is a new
/// name with no table to update here.
fn extension_names() -> Vec<String> {
    (0..=u8::MAX)
        .filter_map(|b| ExtensionId(b).lower_name())
        .collect()
}

/// The case-language name of an extension id (`udp`, ...), or its number in hex.
pub fn extension_label(id: ExtensionId) -> String {
    id.lower_name().unwrap_or_else(|| format!("0x{:02x}", id.0))
}

/// An extension: `udp`, `password`, `cert_auth`, `motd`, `stream_confirmation` or a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExtName(pub ExtensionId);

impl<'de> Deserialize<'de> for ExtName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ExtName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "an extension: {} or a number",
                    extension_names().join(", ")
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ExtName, E> {
                (0..=u8::MAX)
                    .map(ExtensionId)
                    .find(|id| id.lower_name().as_deref() == Some(v))
                    .map(ExtName)
                    .ok_or_else(|| {
                        E::custom(format!(
                            "unknown extension {v:?}: use {} or a number",
                            extension_names().join(", ")
                        ))
                    })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ExtName, E> {
                u8::try_from(v)
                    .map(|b| ExtName(ExtensionId(b)))
                    .map_err(|_| E::custom(format!("extension id {v} does not fit in a byte")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A close reason: a number (`0x02`) or a name (`VOLUNTARY`, `SERVER_STREAM_THROTTLED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReasonSpec(pub CloseReason);

fn reason_from_str(v: &str) -> Option<CloseReason> {
    (0..=255u8)
        .map(CloseReason)
        .find(|r| r.name().is_some_and(|n| n.eq_ignore_ascii_case(v)))
}

impl<'de> Deserialize<'de> for ReasonSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ReasonSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a close reason: a number like 0x02 or a name like VOLUNTARY")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ReasonSpec, E> {
                reason_from_str(v)
                    .map(ReasonSpec)
                    .ok_or_else(|| E::custom(format!("unknown close reason {v:?}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ReasonSpec, E> {
                u8::try_from(v)
                    .map(|b| ReasonSpec(CloseReason(b)))
                    .map_err(|_| E::custom(format!("close reason {v} does not fit in a byte")))
            }
        }
        d.deserialize_any(V)
    }
}

/// One close reason or a set of acceptable ones (`reason: [0x01, 0x02]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReasonSet(pub Vec<CloseReason>);

impl<'de> Deserialize<'de> for ReasonSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ReasonSet;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a close reason or a list of acceptable close reasons")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ReasonSet, E> {
                reason_from_str(v)
                    .map(|r| ReasonSet(vec![r]))
                    .ok_or_else(|| E::custom(format!("unknown close reason {v:?}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ReasonSet, E> {
                u8::try_from(v)
                    .map(|b| ReasonSet(vec![CloseReason(b)]))
                    .map_err(|_| E::custom(format!("close reason {v} does not fit in a byte")))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ReasonSet, A::Error> {
                let mut out = Vec::new();
                while let Some(r) = seq.next_element::<ReasonSpec>()? {
                    out.push(r.0);
                }
                if out.is_empty() {
                    return Err(de::Error::custom("the list of close reasons is empty"));
                }
                Ok(ReasonSet(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// The payload of an expected error: a number, a list of numbers or a string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorPayload {
    /// A number (a close reason, a mask, a packet type).
    Int(u64),
    /// A list of numbers (missing extension ids).
    List(Vec<u64>),
    /// A string (a version like `"3.0"`, or text the error message must contain).
    Str(String),
}

impl fmt::Display for ErrorPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(v) => write!(f, "0x{v:02x}"),
            Self::List(v) => {
                let items: Vec<String> = v.iter().map(|x| x.to_string()).collect();
                write!(f, "[{}]", items.join(", "))
            }
            Self::Str(s) => write!(f, "{s:?}"),
        }
    }
}

impl<'de> Deserialize<'de> for ErrorPayload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ErrorPayload;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an error payload: a number, a list of numbers or a string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ErrorPayload, E> {
                Ok(ErrorPayload::Int(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ErrorPayload, E> {
                u64::try_from(v)
                    .map(ErrorPayload::Int)
                    .map_err(|_| E::custom("error payload numbers cannot be negative"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ErrorPayload, E> {
                Ok(ErrorPayload::Str(format!("{v:.1}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ErrorPayload, E> {
                Ok(ErrorPayload::Str(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ErrorPayload, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<u64>()? {
                    out.push(v);
                }
                Ok(ErrorPayload::List(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// What kind of payload an error variant takes in a case file.
fn payload_kind(name: &str) -> Option<&'static str> {
    Some(match name {
        "ExtensionsNotSupported" => "a list of extension ids, e.g. [1]",
        "AuthRequired" | "HandshakeRejected" | "ClosedByServer" | "StreamRefused" => {
            "a close reason, e.g. 0x04"
        }
        "CertAuthExtensionCertTypeInvalid" => "the server's algorithm mask, e.g. 0x02",
        "IncompatibleProtocolVersion" => "the server's version as a string, e.g. \"3.0\"",
        "UnexpectedHandshakePacket" => "the packet type, e.g. 0x02",
        "MalformedPacket" | "MalformedExtension" | "InvalidArgument" | "WsImplError" => {
            "text the error message contains"
        }
        _ => return None,
    })
}

/// An expected error: a `WispError` variant name, optionally with a payload
/// (`ExtensionsNotSupported`, `{ExtensionsNotSupported: [1]}`, `{AuthRequired: 0x04}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorSpec {
    /// The variant name, one of [`WispError::NAMES`].
    pub name: String,
    /// The payload to compare, if given.
    pub payload: Option<ErrorPayload>,
}

impl fmt::Display for ErrorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.payload {
            Some(p) => write!(f, "{}({p})", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl ErrorSpec {
    fn validate(name: &str, payload: &Option<ErrorPayload>) -> Result<(), String> {
        if !WispError::NAMES.contains(&name) {
            return Err(format!(
                "unknown error name {name:?}; known names: {}",
                WispError::NAMES.join(", ")
            ));
        }
        let Some(payload) = payload else {
            return Ok(());
        };
        let Some(kind) = payload_kind(name) else {
            return Err(format!(
                "error {name} carries no payload; write just `{name}`"
            ));
        };
        let ok = match (name, payload) {
            ("ExtensionsNotSupported", ErrorPayload::List(v)) => v.iter().all(|x| *x <= 255),
            ("ExtensionsNotSupported", ErrorPayload::Int(x)) => *x <= 255,
            (
                "AuthRequired"
                | "HandshakeRejected"
                | "ClosedByServer"
                | "StreamRefused"
                | "CertAuthExtensionCertTypeInvalid"
                | "UnexpectedHandshakePacket",
                ErrorPayload::Int(x),
            ) => *x <= 255,
            (
                "IncompatibleProtocolVersion"
                | "MalformedPacket"
                | "MalformedExtension"
                | "InvalidArgument"
                | "WsImplError",
                ErrorPayload::Str(_),
            ) => true,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "the payload of {name} must be {kind}, not {payload}"
            ))
        }
    }

    /// Whether `error` is this error (and carries this payload, when one is given).
    pub fn matches(&self, error: &WispError) -> bool {
        if error.name() != self.name {
            return false;
        }
        let Some(payload) = &self.payload else {
            return true;
        };
        match (error, payload) {
            (WispError::ExtensionsNotSupported(ids), ErrorPayload::List(want)) => {
                let mut got: Vec<u64> = ids.iter().map(|x| u64::from(*x)).collect();
                let mut want = want.clone();
                got.sort_unstable();
                want.sort_unstable();
                got == want
            }
            (WispError::ExtensionsNotSupported(ids), ErrorPayload::Int(want)) => {
                ids.len() == 1 && u64::from(ids[0]) == *want
            }
            (WispError::CertAuthExtensionCertTypeInvalid(mask), ErrorPayload::Int(want)) => {
                u64::from(*mask) == *want
            }
            (WispError::UnexpectedHandshakePacket { packet_type, .. }, ErrorPayload::Int(w)) => {
                u64::from(*packet_type) == *w
            }
            (WispError::IncompatibleProtocolVersion(found, _), ErrorPayload::Str(want)) => {
                found.to_string() == *want
            }
            (e, ErrorPayload::Int(want)) => {
                e.close_reason().is_some_and(|r| u64::from(r.0) == *want)
            }
            (e, ErrorPayload::Str(want)) => e.to_string().contains(want.as_str()),
            _ => false,
        }
    }
}

impl<'de> Deserialize<'de> for ErrorSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ErrorSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an error name like `HandshakeTimedOut`, or a one-entry map like `{AuthRequired: 0x04}`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ErrorSpec, E> {
                ErrorSpec::validate(v, &None).map_err(E::custom)?;
                Ok(ErrorSpec {
                    name: v.to_owned(),
                    payload: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ErrorSpec, A::Error> {
                let Some(name) = map.next_key::<String>()? else {
                    return Err(de::Error::custom(
                        "empty error map: write `{Name: payload}`",
                    ));
                };
                if !WispError::NAMES.contains(&name.as_str()) {
                    return Err(de::Error::custom(format!(
                        "unknown error name {name:?}; known names: {}",
                        WispError::NAMES.join(", ")
                    )));
                }
                let payload: ErrorPayload = map.next_value()?;
                let payload = Some(payload);
                ErrorSpec::validate(&name, &payload).map_err(de::Error::custom)?;
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::custom("an error map has exactly one entry"));
                }
                Ok(ErrorSpec { name, payload })
            }
        }
        d.deserialize_any(V)
    }
}

/// One expected error or a list of acceptable ones (`[WsImplSocketClosed, WsImplError]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorSet(pub Vec<ErrorSpec>);

impl ErrorSet {
    /// Whether `error` matches one of the alternatives.
    pub fn matches(&self, error: &WispError) -> bool {
        self.0.iter().any(|s| s.matches(error))
    }
}

impl fmt::Display for ErrorSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self.0.iter().map(|e| e.to_string()).collect();
        f.write_str(&items.join(" or "))
    }
}

impl<'de> Deserialize<'de> for ErrorSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ErrorSet;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "an error name, a one-entry map like `{AuthRequired: 0x04}`, or a list of them",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ErrorSet, E> {
                ErrorSpec::validate(v, &None).map_err(E::custom)?;
                Ok(ErrorSet(vec![ErrorSpec {
                    name: v.to_owned(),
                    payload: None,
                }]))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ErrorSet, A::Error> {
                let spec = ErrorSpec::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ErrorSet(vec![spec]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ErrorSet, A::Error> {
                let mut out = Vec::new();
                while let Some(e) = seq.next_element::<ErrorSpec>()? {
                    out.push(e);
                }
                if out.is_empty() {
                    return Err(de::Error::custom("the list of acceptable errors is empty"));
                }
                Ok(ErrorSet(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `ok`, or an expected error (or a list of acceptable ones).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OkOrError {
    /// Success.
    Ok,
    /// One of these errors.
    Error(ErrorSet),
}

impl fmt::Display for OkOrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok => f.write_str("ok"),
            Self::Error(e) => write!(f, "{e}"),
        }
    }
}

impl<'de> Deserialize<'de> for OkOrError {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OkOrError;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`ok` or an error like `ClosedByServer` / `{ClosedByServer: 0x02}`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OkOrError, E> {
                if v == "ok" {
                    return Ok(OkOrError::Ok);
                }
                ErrorSet::deserialize(de::value::StrDeserializer::<E>::new(v)).map(OkOrError::Error)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<OkOrError, A::Error> {
                let set = ErrorSet::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(OkOrError::Error(set))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<OkOrError, A::Error> {
                let set = ErrorSet::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(OkOrError::Error(set))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(Dur::parse("150ms").unwrap().0, Duration::from_millis(150));
        assert_eq!(Dur::parse("2s").unwrap().0, Duration::from_secs(2));
        assert_eq!(Dur::parse("1.5s").unwrap().0, Duration::from_millis(1500));
        assert_eq!(Dur::parse("1m").unwrap().0, Duration::from_secs(60));
        assert!(Dur::parse("15").is_err());
        assert!(Dur::parse("2h").is_err());
    }

    #[test]
    fn extension_names_are_the_lower_case_id_names() {
        let parse = |y: &str| serde_saphyr::from_str::<ExtName>(y);
        assert_eq!(
            parse("stream_confirmation").expect("known").0,
            ExtensionId::STREAM_CONFIRMATION
        );
        assert_eq!(parse("7").expect("a number").0, ExtensionId(7));
        let err = parse("UDP").expect_err("names are lower case").to_string();
        assert!(
            err.contains("use udp, password, cert_auth, motd, stream_confirmation or a number"),
            "{err}"
        );
        assert_eq!(extension_label(ExtensionId::CERT_AUTH), "cert_auth");
        assert_eq!(extension_label(ExtensionId(0x42)), "0x42");
    }

    #[test]
    fn hex_allows_spaces() {
        assert_eq!(Hex::parse("04 01 00").unwrap().0.as_ref(), &[4, 1, 0]);
        assert!(Hex::parse("0").is_err());
    }

    #[test]
    fn error_spec_payloads_match() {
        let spec = ErrorSpec {
            name: "ExtensionsNotSupported".into(),
            payload: Some(ErrorPayload::List(vec![1])),
        };
        assert!(spec.matches(&WispError::ExtensionsNotSupported(vec![1])));
        assert!(!spec.matches(&WispError::ExtensionsNotSupported(vec![2])));
        let spec = ErrorSpec {
            name: "AuthRequired".into(),
            payload: Some(ErrorPayload::Int(4)),
        };
        assert!(spec.matches(&WispError::AuthRequired(CloseReason(4))));
        assert!(!spec.matches(&WispError::AuthRequired(CloseReason(0xc2))));
    }
}
