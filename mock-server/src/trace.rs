//! The recorded conversation: every message both ways and the mock's own events, rendered as
//! a deterministic protocol log.
//!
//! Rendering masks what varies between runs or must stay secret: random challenges,
//! signatures and key hashes are summarised (with the verification result), passwords are
//! shown only as their length. Stream ids are shown with the alias the script bound.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};
use wisp_client::proto::ext::cert_auth::key_hash;
use wisp_client::proto::{
    CertAuthClientRecord, CertAuthServerRecord, ExtensionId, ExtensionRecord, Packet, PacketBody,
    PasswordClientRecord, PasswordLayout, StreamType,
};

use crate::frames::SentChallenge;

/// Who produced a trace entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The mock sent it to the client.
    ToClient,
    /// The mock received it from the client.
    FromClient,
    /// An event of the mock (timeouts, closes, failures).
    Event,
}

/// One line of the trace.
#[derive(Clone, Debug)]
pub struct TraceEntry {
    /// Virtual time since the case started.
    pub at: Duration,
    /// The script step that produced it (`None` after the script ended).
    pub step: Option<usize>,
    /// Direction.
    pub direction: Direction,
    /// The decoded description.
    pub text: String,
}

/// The trace of one connection.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// The entries in order.
    pub entries: Vec<TraceEntry>,
}

/// A trace shared between the mock task and whoever reads it afterwards.
pub type SharedTrace = Arc<Mutex<Trace>>;

impl Trace {
    /// Appends an entry.
    pub fn push(&mut self, at: Duration, step: Option<usize>, direction: Direction, text: String) {
        self.entries.push(TraceEntry {
            at,
            step,
            direction,
            text,
        });
    }

    /// Renders the trace, one entry per line:
    /// `[time] step dir text`, e.g. `[    0ms] #2  S->C  CONTINUE 0 credit=128`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for e in &self.entries {
            let step = match e.step {
                Some(i) => format!("#{i}"),
                None => "--".to_owned(),
            };
            let dir = match e.direction {
                Direction::ToClient => "S->C",
                Direction::FromClient => "C->S",
                Direction::Event => "****",
            };
            let _ = writeln!(
                out,
                "[{:>6}ms] {step:<4} {dir}  {}",
                e.at.as_millis(),
                e.text
            );
        }
        out
    }
}

/// What the renderer knows about the conversation so far.
#[derive(Clone, Debug, Default)]
pub struct RenderCtx {
    /// Aliases bound by expected CONNECTs.
    pub aliases: HashMap<String, u32>,
    /// The last certificate challenge the mock sent.
    pub challenge: Option<SentChallenge>,
    /// Public keys named by the scenario (name, key).
    pub keys: Vec<(String, VerifyingKey)>,
    /// The layout used to decode the client's password record.
    pub password_layout: PasswordLayout,
}

/// A short, deterministic description of a payload: its length and a head.
pub fn payload_summary(data: &[u8]) -> String {
    if data.is_empty() {
        return "len=0".to_owned();
    }
    let printable = data.iter().all(|b| (0x20..0x7f).contains(b));
    if data.len() <= 48 {
        if printable {
            format!("len={} {:?}", data.len(), String::from_utf8_lossy(data))
        } else {
            format!("len={} hex={}", data.len(), hex::encode(data))
        }
    } else {
        let digest = Sha256::digest(data);
        let head = &data[..16];
        let head = if printable {
            format!("{:?}", String::from_utf8_lossy(head))
        } else {
            hex::encode(head)
        };
        format!(
            "len={} head={head}... sha256={}",
            data.len(),
            hex::encode(&digest[..6])
        )
    }
}

impl RenderCtx {
    /// The label of a stream id: `0`, `s1(#1)` for a bound alias, `#7` otherwise.
    pub fn stream_label(&self, id: u32) -> String {
        if id == 0 {
            return "0".to_owned();
        }
        let mut names: Vec<&String> = self
            .aliases
            .iter()
            .filter(|(_, v)| **v == id)
            .map(|(k, _)| k)
            .collect();
        names.sort();
        match names.first() {
            Some(n) => format!("{n}(#{id})"),
            None => format!("#{id}"),
        }
    }

    /// Describes one WebSocket message. `from_client` selects how INFO records are read;
    /// `raw` appends the bytes in hex (for scripted raw messages).
    pub fn describe(&self, msg: &Bytes, from_client: bool, raw: bool) -> String {
        let mut text = match Packet::decode(msg.clone()) {
            Err(e) => format!("MALFORMED ({e}) raw={}", hex::encode(msg)),
            Ok(p) => {
                let label = self.stream_label(p.stream_id);
                let fixed_len = p.encoded_len();
                let mut s = match &p.body {
                    PacketBody::Connect(c) => format!(
                        "CONNECT {label} {} {}:{}",
                        stream_type_name(c.stream_type),
                        c.host,
                        c.port
                    ),
                    PacketBody::Data(d) => format!("DATA {label} {}", payload_summary(d)),
                    PacketBody::Continue { buffer_remaining } => {
                        format!("CONTINUE {label} credit={buffer_remaining}")
                    }
                    PacketBody::Close { reason } => format!("CLOSE {label} reason={reason}"),
                    PacketBody::Info(info) => {
                        let records: Vec<String> = info
                            .extensions
                            .iter()
                            .map(|r| self.describe_record(r, from_client))
                            .collect();
                        let mut s =
                            format!("INFO {label} v{} [{}]", info.version, records.join(", "));
                        if info.trailing > 0 {
                            let _ = write!(s, " +{} trailing bytes", info.trailing);
                        }
                        s
                    }
                    PacketBody::Unknown {
                        packet_type,
                        payload,
                    } => format!(
                        "UNKNOWN type=0x{:02x} {label} payload={}",
                        packet_type.0,
                        payload_summary(payload)
                    ),
                    _ => format!("{:?}", p.body),
                };
                let fixed = matches!(
                    p.body,
                    PacketBody::Continue { .. } | PacketBody::Close { .. }
                );
                if fixed && msg.len() > fixed_len {
                    let _ = write!(
                        s,
                        " +{} trailing bytes ({})",
                        msg.len() - fixed_len,
                        hex::encode(&msg[fixed_len..])
                    );
                }
                s
            }
        };
        if raw && !text.contains("raw=") {
            let _ = write!(text, " raw={}", hex::encode(msg));
        }
        text
    }

    fn key_name_for_hash(&self, hash: &[u8]) -> Option<&(String, VerifyingKey)> {
        self.keys
            .iter()
            .find(|(_, k)| key_hash(k).as_slice() == hash)
    }

    fn describe_record(&self, r: &ExtensionRecord, from_client: bool) -> String {
        let name = match r.id.name() {
            Some(n) => n.to_owned(),
            None => format!("EXT(0x{:02x})", r.id.0),
        };
        match r.id {
            ExtensionId::MOTD if !from_client => {
                format!("MOTD {:?}", String::from_utf8_lossy(&r.data))
            }
            ExtensionId::PASSWORD if !from_client => match r.data.as_ref() {
                [b] => format!("PASSWORD required={}", *b != 0),
                [] => "PASSWORD (empty: required, drafts 1-3)".to_owned(),
                other => format!("PASSWORD hex={}", hex::encode(other)),
            },
            ExtensionId::PASSWORD => {
                let layout = match self.password_layout {
                    PasswordLayout::Draft5 => "draft5",
                    _ => "draft6",
                };
                match PasswordClientRecord::decode(&r.data, self.password_layout) {
                    Ok(rec) => format!(
                        "PASSWORD ({layout}) user={:?} password=<redacted, {} bytes>",
                        rec.username,
                        rec.password.len()
                    ),
                    Err(e) => format!(
                        "PASSWORD <{} bytes, not a {layout} record: {}>",
                        r.data.len(),
                        e.reason
                    ),
                }
            }
            ExtensionId::CERT_AUTH if !from_client => match CertAuthServerRecord::decode(&r.data) {
                Ok(rec) => {
                    let challenge = match &self.challenge {
                        Some(c) if c.random && c.bytes == rec.challenge => {
                            format!("<{} random bytes>", rec.challenge.len())
                        }
                        _ => hex::encode(&rec.challenge),
                    };
                    format!(
                        "CERT_AUTH required={} algorithms=0x{:02x} challenge={challenge}",
                        rec.required, rec.algorithms
                    )
                }
                Err(e) => format!(
                    "CERT_AUTH <malformed: {}> hex={}",
                    e.reason,
                    hex::encode(&r.data)
                ),
            },
            ExtensionId::CERT_AUTH => match CertAuthClientRecord::decode(&r.data) {
                Ok(rec) => {
                    let key = self.key_name_for_hash(&rec.key_hash);
                    let hash = match key {
                        Some((n, _)) => format!("sha256({n})"),
                        None => "<32 bytes, unknown key>".to_owned(),
                    };
                    let sig = match (key, &self.challenge) {
                        (Some((_, k)), Some(c)) => {
                            let valid = rec.verify(k, &c.bytes);
                            format!(
                                "<{} bytes, {}>",
                                rec.signature.len(),
                                if valid { "valid" } else { "invalid" }
                            )
                        }
                        _ => format!("<{} bytes>", rec.signature.len()),
                    };
                    format!(
                        "CERT_AUTH alg=0x{:02x} key_hash={hash} signature={sig}",
                        rec.algorithm
                    )
                }
                Err(e) => format!(
                    "CERT_AUTH <{} bytes, malformed: {}>",
                    r.data.len(),
                    e.reason
                ),
            },
            // A known extension's empty record (UDP, stream confirmation, the client's MOTD,
            // and any extension whose records carry nothing) is just its name.
            _ if r.data.is_empty() && r.id.is_known() => name,
            _ => format!("{name} len={} hex={}", r.data.len(), hex::encode(&r.data)),
        }
    }
}

fn stream_type_name(t: StreamType) -> String {
    match t.name() {
        Some(n) => n.to_owned(),
        None => format!("type=0x{:02x}", t.0),
    }
}
