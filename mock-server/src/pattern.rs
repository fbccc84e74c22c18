//! Matching a message from the client against an `expect` pattern.

use std::collections::HashMap;
use std::fmt::Write as _;

use bytes::Bytes;
use wisp_cases::packet::{Pattern, SignatureCheck, parse_version};
use wisp_cases::values::{StreamRef, extension_label};
use wisp_client::proto::ext::check_server_record;
use wisp_client::proto::{
    CertAuthClientRecord, ExtensionId, InfoPacket, Packet, PacketBody, PasswordClientRecord,
};

use crate::frames::SentChallenge;

/// A successful match: aliases to bind.
#[derive(Clone, Debug, Default)]
pub struct Matched {
    /// `(alias, stream id)` pairs bound by this match.
    pub bindings: Vec<(String, u32)>,
}

/// Describes a pattern for failure messages, e.g. `CLOSE stream=0 reason=[0x04]`.
pub fn describe(p: &Pattern) -> String {
    if let Some(alts) = &p.one_of {
        let inner: Vec<String> = alts.iter().map(describe).collect();
        return format!("one of: {}", inner.join(" | "));
    }
    let mut s = String::new();
    if let Some(t) = p.packet_type {
        match t.0.name() {
            Some(n) => s.push_str(n),
            None => {
                let _ = write!(s, "type=0x{:02x}", t.0.0);
            }
        }
    }
    if let Some(st) = &p.stream {
        let _ = write!(s, " stream={st}");
    }
    if let Some(t) = p.stream_type {
        let _ = write!(s, " stream_type={}", t.0);
    }
    if let Some(h) = &p.host {
        let _ = write!(s, " host={h}");
    }
    if let Some(port) = p.port {
        let _ = write!(s, " port={port}");
    }
    if let Some(t) = &p.text {
        let _ = write!(s, " text={t:?}");
    }
    if let Some(h) = &p.hex {
        let _ = write!(s, " hex={}", hex::encode(&h.0));
    }
    if let Some(l) = p.len {
        let _ = write!(s, " len={l}");
    }
    if let Some(c) = p.credit {
        let _ = write!(s, " credit={c}");
    }
    if let Some(c) = p.credit_min {
        let _ = write!(s, " credit>={c}");
    }
    if let Some(r) = &p.reason {
        let rs: Vec<String> = r.0.iter().map(|r| format!("0x{:02x}", r.0)).collect();
        let _ = write!(s, " reason=[{}]", rs.join(", "));
    }
    if let Some(v) = &p.version {
        let _ = write!(s, " version={v}");
    }
    if let Some(e) = &p.extensions {
        let names: Vec<String> = e.iter().map(|x| extension_label(x.0)).collect();
        let _ = write!(s, " extensions=[{}]", names.join(", "));
    }
    if p.password.is_some() {
        s.push_str(" password=<checked>");
    }
    if let Some(c) = &p.cert_auth {
        let _ = write!(s, " cert_auth.signature={:?}", c.signature);
    }
    if let Some(r) = &p.raw_hex {
        let _ = write!(s, " raw={}", hex::encode(&r.0));
    }
    if p.well_formed {
        s.push_str(" well-formed");
    }
    s.trim().to_owned()
}

/// Matches `msg` against `p` (not a `one_of`). Returns the bindings, or why it does not
/// match.
pub fn match_one(
    p: &Pattern,
    msg: &Bytes,
    aliases: &HashMap<String, u32>,
    challenge: Option<&SentChallenge>,
) -> Result<Matched, Vec<String>> {
    let mut why = Vec::new();
    let mut matched = Matched::default();
    if let Some(raw) = &p.raw_hex
        && raw.0 != *msg
    {
        why.push(format!("bytes differ: expected {}", hex::encode(&raw.0)));
    }
    let needs_decode = p.packet_type.is_some() || p.stream.is_some();
    let packet = match Packet::decode(msg.clone()) {
        Ok(p) => Some(p),
        Err(e) => {
            if needs_decode {
                why.push(format!("the message is malformed: {e}"));
            }
            None
        }
    };
    let Some(packet) = packet else {
        return if why.is_empty() {
            Ok(matched)
        } else {
            Err(why)
        };
    };
    if let Some(t) = p.packet_type
        && packet.packet_type() != t.0
    {
        why.push(format!(
            "type is {}, expected {}",
            packet.packet_type(),
            t.0
        ));
        return Err(why);
    }
    match &p.stream {
        None => {}
        Some(StreamRef::Id(id)) if packet.stream_id != *id => {
            why.push(format!("stream is {}, expected {id}", packet.stream_id));
        }
        Some(StreamRef::Id(_)) => {}
        Some(StreamRef::Alias(a)) => match aliases.get(a) {
            Some(id) if *id == packet.stream_id => {}
            Some(id) => why.push(format!(
                "stream is {}, expected {a} (= {id})",
                packet.stream_id
            )),
            None if matches!(packet.body, PacketBody::Connect(_)) => {
                if aliases.values().any(|v| *v == packet.stream_id) {
                    why.push(format!(
                        "stream id {} is already bound to another alias",
                        packet.stream_id
                    ));
                } else {
                    matched.bindings.push((a.clone(), packet.stream_id));
                }
            }
            None => why.push(format!(
                "alias {a} is not bound yet (only an expected CONNECT binds an alias)"
            )),
        },
    }
    match &packet.body {
        PacketBody::Connect(c) => {
            if let Some(t) = p.stream_type
                && c.stream_type != t.0
            {
                why.push(format!(
                    "stream type is {}, expected {}",
                    c.stream_type, t.0
                ));
            }
            if let Some(h) = &p.host
                && c.host != *h
            {
                why.push(format!("host is {:?}, expected {h:?}", c.host));
            }
            if let Some(port) = p.port
                && c.port != port
            {
                why.push(format!("port is {}, expected {port}", c.port));
            }
        }
        PacketBody::Data(d) | PacketBody::Unknown { payload: d, .. } => {
            check_payload(p, d, &mut why);
        }
        PacketBody::Continue { buffer_remaining } => {
            if let Some(c) = p.credit
                && *buffer_remaining != c
            {
                why.push(format!("credit is {buffer_remaining}, expected {c}"));
            }
            if let Some(c) = p.credit_min
                && *buffer_remaining < c
            {
                why.push(format!(
                    "credit is {buffer_remaining}, expected at least {c}"
                ));
            }
        }
        PacketBody::Close { reason } => {
            if let Some(set) = &p.reason
                && !set.0.contains(reason)
            {
                let want: Vec<String> = set.0.iter().map(|r| r.to_string()).collect();
                why.push(format!(
                    "reason is {reason}, expected {}",
                    want.join(" or ")
                ));
            }
        }
        PacketBody::Info(info) => {
            check_info(p, info, challenge, &mut why);
            if p.well_formed {
                check_server_info_layout(info, &mut why);
            }
        }
        _ => {}
    }
    if why.is_empty() {
        Ok(matched)
    } else {
        Err(why)
    }
}

fn check_payload(p: &Pattern, d: &Bytes, why: &mut Vec<String>) {
    if let Some(t) = &p.text
        && d.as_ref() != t.as_bytes()
    {
        why.push(format!(
            "payload is {}, expected {t:?}",
            crate::trace::payload_summary(d)
        ));
    }
    if let Some(h) = &p.hex
        && *d != h.0
    {
        why.push(format!(
            "payload is {}, expected hex={}",
            crate::trace::payload_summary(d),
            hex::encode(&h.0)
        ));
    }
    if let Some(l) = p.len
        && d.len() != l
    {
        why.push(format!("payload length is {}, expected {l}", d.len()));
    }
}

fn check_info(
    p: &Pattern,
    info: &InfoPacket,
    challenge: Option<&SentChallenge>,
    why: &mut Vec<String>,
) {
    if let Some(v) = &p.version
        && let Ok((major, minor)) = parse_version(v)
        && (info.version.major, info.version.minor) != (major, minor)
    {
        why.push(format!("version is {}, expected {v}", info.version));
    }
    if let Some(exts) = &p.extensions {
        let mut got: Vec<u8> = info.extensions.iter().map(|r| r.id.0).collect();
        let mut want: Vec<u8> = exts.iter().map(|e| e.0.0).collect();
        got.sort_unstable();
        want.sort_unstable();
        if got != want {
            let names = |v: &[u8]| -> String {
                v.iter()
                    .map(|id| extension_label(ExtensionId(*id)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            why.push(format!(
                "extensions are [{}], expected [{}]",
                names(&got),
                names(&want)
            ));
        }
    }
    if let Some(check) = &p.password {
        match info.extension(ExtensionId::PASSWORD) {
            None => why.push("no PASSWORD record".to_owned()),
            Some(r) => match PasswordClientRecord::decode(&r.data, check.layout) {
                Err(e) => why.push(format!(
                    "the PASSWORD record is not a {:?} record: {}",
                    check.layout, e.reason
                )),
                Ok(rec) => {
                    if let Some(u) = &check.username
                        && rec.username != *u
                    {
                        why.push(format!("username is {:?}, expected {u:?}", rec.username));
                    }
                    if let Some(pw) = &check.password
                        && rec.password != *pw
                    {
                        why.push(format!(
                            "password differs (got {} bytes, expected {} bytes)",
                            rec.password.len(),
                            pw.len()
                        ));
                    }
                }
            },
        }
    }
    if let Some(check) = &p.cert_auth {
        match info.extension(ExtensionId::CERT_AUTH) {
            None => why.push("no CERT_AUTH record".to_owned()),
            Some(r) => match CertAuthClientRecord::decode(&r.data) {
                Err(e) => why.push(format!("malformed CERT_AUTH record: {}", e.reason)),
                Ok(rec) => {
                    let want_alg = check.algorithm.unwrap_or(1);
                    if rec.algorithm != want_alg {
                        why.push(format!(
                            "selected algorithm is 0x{:02x}, expected 0x{want_alg:02x}",
                            rec.algorithm
                        ));
                    }
                    let valid = match (&check.verifying_key, challenge) {
                        (Some((_, key)), Some(c)) => rec.verify(key, &c.bytes),
                        _ => false,
                    };
                    let want_valid = check.signature == SignatureCheck::Valid;
                    if valid != want_valid {
                        let key = check
                            .verifying_key
                            .as_ref()
                            .map(|(n, _)| n.as_str())
                            .unwrap_or("?");
                        why.push(format!(
                            "the signature is {} for {key}, expected {}",
                            if valid { "valid" } else { "invalid" },
                            if want_valid { "valid" } else { "invalid" }
                        ));
                    }
                }
            },
        }
    }
}

/// Checks a server's INFO against the layouts the spec gives its records (v2 draft 6):
/// no trailing bytes, no id listed twice, and each record as its extension's module says
/// (`wisp_proto::ext::check_server_record`: UDP and stream confirmation empty, password one
/// `required` byte, certificate auth `required | algorithms (non-zero) | challenge (at
/// least 32 bytes)`, MOTD UTF-8).
pub fn check_server_info_layout(info: &InfoPacket, why: &mut Vec<String>) {
    if info.trailing > 0 {
        why.push(format!(
            "{} bytes after the last extension record do not form a record",
            info.trailing
        ));
    }
    let mut seen: Vec<u8> = Vec::new();
    for r in &info.extensions {
        if seen.contains(&r.id.0) {
            why.push(format!(
                "extension {} is listed twice",
                extension_label(r.id)
            ));
        }
        seen.push(r.id.0);
        if let Err(e) = check_server_record(r.id, &r.data) {
            why.push(e);
        }
    }
}

/// Matches against a pattern or its `one_of` alternatives; the first alternative that
/// matches wins.
pub fn match_pattern(
    p: &Pattern,
    msg: &Bytes,
    aliases: &HashMap<String, u32>,
    challenge: Option<&SentChallenge>,
) -> Result<Matched, Vec<String>> {
    match &p.one_of {
        None => match_one(p, msg, aliases, challenge),
        Some(alts) => {
            let mut why = Vec::new();
            for (i, alt) in alts.iter().enumerate() {
                match match_one(alt, msg, aliases, challenge) {
                    Ok(m) => return Ok(m),
                    Err(reasons) => why.push(format!(
                        "alternative {i} ({}): {}",
                        describe(alt),
                        reasons.join("; ")
                    )),
                }
            }
            Err(why)
        }
    }
}
