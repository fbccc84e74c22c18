//! Target `server_packets`: how the server suite (`harness/src/server`) decodes and judges
//! what a server sends.
//!
//! The suite's own readers are private (`session::Recorder::received`, the run-level
//! `checks::length_problem`, the script's `expect` steps, `probe::Probe::check`); this
//! target drives the public functions they call, in the same order: `Packet::decode` and the facts the recorder keeps (first CLOSE
//! per stream, the handshake credit, the first INFO), `RenderCtx::describe` for the wire
//! log, the capability reads of the probe (`PasswordServerRecord`,
//! `CertAuthServerRecord`), `check_server_info_layout`, and `match_pattern` against the
//! patterns of every case under `cases/` (loaded and described once), binding aliases as
//! the script does.
//!
//! Input: repeated `[pattern selector u8][u16 LE length][message]`.

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;

// Import paths (the only lines to update when the crates move).
use wisp_cases::client::ServerStep;
use wisp_cases::packet::{Pattern, SentChallenge};
use wisp_cases::server::ClientStep;
use wisp_cases::{Case, load_dir};
use wisp_mock_server::pattern::{check_server_info_layout, describe, match_pattern};
use wisp_mock_server::trace::RenderCtx;
use wisp_proto::{
    CertAuthServerRecord, ExtensionId, InfoPacket, Packet, PacketBody, PasswordServerRecord,
};

use crate::input::Input;

/// Every `expect` pattern of the cases under `cases/`, server-role scripts first.
///
/// Loaded once, and each pattern's description (what the script's failure message and the
/// wire log print) rendered once here: the patterns are fixed, so describing one again per
/// message cost a fifth of every run and checked nothing new.
pub fn patterns() -> &'static [Pattern] {
    static PATTERNS: OnceLock<Vec<Pattern>> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let (cases, errors) = load_dir(&crate::cases_dir());
        assert!(errors.is_empty(), "cases/ does not load: {errors:?}");
        let mut server = Vec::new();
        let mut client = Vec::new();
        for case in &cases {
            match case {
                Case::Server(case) => {
                    for step in &case.script {
                        match &step.value {
                            ClientStep::Expect(p) => server.push(p.clone()),
                            ClientStep::ExpectNone(n) => server.push(n.pattern.clone()),
                            _ => {}
                        }
                    }
                }
                Case::Client(case) => {
                    for step in &case.server {
                        if let ServerStep::Expect(p) = &step.value {
                            client.push(p.clone());
                        }
                    }
                }
            }
        }
        server.extend(client);
        for pattern in &server {
            let _ = describe(pattern);
        }
        server
    })
}

/// The facts `Recorder::received` keeps.
#[derive(Default)]
struct Seen {
    closes: HashMap<u32, Bytes>,
    credit: Option<u32>,
    info: Option<InfoPacket>,
}

/// Runs the messages in `data` through the suite's readers.
pub fn run(data: &[u8]) {
    let patterns = patterns();
    let mut input = Input::new(data);
    let mut ctx = RenderCtx::default();
    let mut aliases: HashMap<String, u32> = HashMap::new();
    let mut seen = Seen::default();
    let challenge = SentChallenge {
        bytes: Bytes::from_static(&crate::info_records::CHALLENGE),
        random: false,
    };
    while !input.is_empty() {
        let selector = input.u8();
        let msg = Bytes::copy_from_slice(input.chunk16());
        record(&mut seen, &msg);
        let _ = ctx.describe(&msg, false, false);
        let pattern = &patterns[usize::from(selector) % patterns.len()];
        let sent = (selector & 0x80 != 0).then_some(&challenge);
        if let Ok(matched) = match_pattern(pattern, &msg, &aliases, sent) {
            for (alias, id) in matched.bindings {
                ctx.aliases.insert(alias.clone(), id);
                aliases.insert(alias, id);
            }
        }
    }
    if let Some(info) = &seen.info {
        probe_reads(info);
        let mut why = Vec::new();
        check_server_info_layout(info, &mut why);
    }
    let _ = (seen.credit, seen.closes.len());
}

fn record(seen: &mut Seen, msg: &Bytes) {
    let Ok(packet) = Packet::decode(msg.clone()) else {
        return;
    };
    match packet.body {
        PacketBody::Close { .. } => {
            seen.closes
                .entry(packet.stream_id)
                .or_insert_with(|| msg.clone());
        }
        PacketBody::Continue { buffer_remaining } if packet.stream_id == 0 => {
            seen.credit.get_or_insert(buffer_remaining);
        }
        PacketBody::Info(info) if seen.info.is_none() => seen.info = Some(info),
        _ => {}
    }
}

/// What the capability probe reads from the server's INFO.
fn probe_reads(info: &InfoPacket) {
    if let Some(r) = info.extension(ExtensionId::PASSWORD) {
        let _ = PasswordServerRecord::decode(&r.data).required;
    }
    if let Some(r) = info.extension(ExtensionId::CERT_AUTH) {
        let _ = CertAuthServerRecord::decode(&r.data).map(|rec| rec.required);
    }
}
