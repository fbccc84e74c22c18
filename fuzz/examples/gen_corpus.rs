//! Regenerates the seed corpora under `fuzz/corpus/<target>/` from the codec golden
//! vectors (`client/proto/tests/codec.rs`) and the case files (`cases/**/*.yaml`).
//!
//! Run from `fuzz/`: `cargo run --example gen_corpus`. Files it wrote before (named
//! `golden-*` and `case-*`) are replaced; any other file (a finding's input, `crash-*`,
//! kept as a regression seed) is left alone. Output is deterministic: random certificate
//! challenges are replaced by a fixed one, and messages are cut at 4 KiB so the corpus
//! stays small.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::Signer;
use sha2::{Digest, Sha256};

// Import paths (the only lines to update when the crates move).
use wisp_cases::actions::Action;
use wisp_cases::client::{ClientExtension, ClientSpec, ServerStep, VersionSel};
use wisp_cases::packet::{Challenge, PacketSpec, ServerExtension};
use wisp_cases::server::ClientStep;
use wisp_cases::values::{Hex, StreamRef};
use wisp_cases::{Case, ClientCase, ServerCase, load_dir};
use wisp_fuzz::input::{put_chunk8, put_chunk16};
use wisp_mock_server::frames::build;
use wisp_proto::{ExtensionId, PacketType, PasswordLayout, StreamType};

/// Longest message kept in a seed.
const MAX_MSG: usize = 4096;
/// Most repetitions of a `times` packet kept in a seed.
const MAX_TIMES: u32 = 16;

const TARGETS: &[&str] = &[
    "codec",
    "info_records",
    "client_conn",
    "server_packets",
    "case_loader",
];

/// Seeds per target, by file name (deduplicated by content).
#[derive(Default)]
struct Corpus {
    files: BTreeMap<&'static str, BTreeMap<String, Vec<u8>>>,
    seen: HashSet<(&'static str, Vec<u8>)>,
}

impl Corpus {
    fn add(&mut self, target: &'static str, name: &str, data: Vec<u8>) {
        if data.is_empty() || !self.seen.insert((target, data.clone())) {
            return;
        }
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let files = self.files.entry(target).or_default();
        let mut unique = name.clone();
        let mut n = 1;
        while files.contains_key(&unique) {
            n += 1;
            unique = format!("{name}-{n}");
        }
        files.insert(unique, data);
    }

    /// A server message: to the codec, the suite's readers and (INFO payloads) the records.
    fn server_message(&mut self, name: &str, msg: &[u8]) {
        self.add("codec", name, msg.to_vec());
        let mut one = vec![0];
        put_chunk16(&mut one, msg);
        self.add("server_packets", name, one);
        if msg.first() == Some(&PacketType::INFO.0) && msg.len() > 5 {
            self.add("info_records", name, msg[5..].to_vec());
        }
    }
}

fn main() {
    let fuzz_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut corpus = Corpus::default();
    golden_vectors(
        &fuzz_dir.join("../client/proto/tests/codec.rs"),
        &mut corpus,
    );
    signed_records(&mut corpus);
    let (cases, errors) = load_dir(&wisp_fuzz::cases_dir());
    assert!(errors.is_empty(), "cases/ does not load: {errors:?}");
    for case in &cases {
        from_case(case, &mut corpus);
    }
    for target in TARGETS {
        let dir = fuzz_dir.join("corpus").join(target);
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        for entry in std::fs::read_dir(&dir)
            .expect("read the corpus directory")
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("golden-") || name.starts_with("case-") {
                std::fs::remove_file(entry.path()).expect("remove an old seed");
            }
        }
        let files = corpus.files.remove(target).unwrap_or_default();
        let bytes: usize = files.values().map(Vec::len).sum();
        for (name, data) in &files {
            std::fs::write(dir.join(name), data).expect("write a seed");
        }
        println!("{target}: {} seeds, {bytes} bytes", files.len());
    }
}

/// Every hex string literal of the codec tests, named after the `#[case::NAME]` it belongs
/// to.
fn golden_vectors(path: &Path, corpus: &mut Corpus) {
    let text = std::fs::read_to_string(path).expect("read client/proto/tests/codec.rs");
    let mut name = String::from("literal");
    let mut messages = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.split("#[case::").nth(1) {
            name = rest
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()
                .unwrap_or("literal")
                .to_owned();
        }
        for literal in line.split('"').skip(1).step_by(2) {
            let clean: String = literal
                .chars()
                .filter(|c| !c.is_whitespace() && *c != '|')
                .collect();
            let Ok(bytes) = hex::decode(&clean) else {
                continue;
            };
            if bytes.is_empty() {
                continue;
            }
            let seed = format!("golden-{name}");
            corpus.add("info_records", &seed, bytes.clone());
            if bytes.len() >= 5 {
                corpus.server_message(&seed, &bytes);
                messages.push(bytes);
            } else {
                corpus.add("codec", &seed, bytes);
            }
        }
    }
    // All the vectors as one stream, for the suite's readers.
    let mut all = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        all.push(u8::try_from(i % 256).unwrap_or(0));
        put_chunk16(&mut all, m);
    }
    corpus.add("server_packets", "golden-all", all);
}

/// INFO payloads whose certificate records use the targets' key and challenge, so the
/// "known key, valid signature" paths of the renderers have a seed.
fn signed_records(corpus: &mut Corpus) {
    let key = wisp_fuzz::signing_key();
    let challenge = wisp_fuzz::info_records::CHALLENGE;
    let record = |id: u8, data: &[u8]| {
        let mut r = vec![id];
        r.extend_from_slice(&u32::try_from(data.len()).unwrap_or(0).to_le_bytes());
        r.extend_from_slice(data);
        r
    };
    let mut client = vec![1u8];
    client.extend_from_slice(&Sha256::digest(key.verifying_key().as_bytes()));
    client.extend_from_slice(&key.sign(&challenge).to_bytes());
    let mut payload = vec![2, 0];
    payload.extend(record(ExtensionId::CERT_AUTH.0, &client));
    payload.extend(record(ExtensionId::PASSWORD.0, b"\x03\x02\x00bobpw"));
    corpus.add("info_records", "golden-client-info-signed", payload);
    let mut server = vec![1u8, 1];
    server.extend_from_slice(&challenge);
    let mut payload = vec![2, 0];
    payload.extend(record(ExtensionId::CERT_AUTH.0, &server));
    payload.extend(record(ExtensionId::PASSWORD.0, &[1]));
    corpus.add("info_records", "golden-server-info-challenge", payload);
}

fn from_case(case: &Case, corpus: &mut Corpus) {
    let meta = case.meta();
    let folder = Path::new(&meta.rel_path)
        .parent()
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .unwrap_or_default();
    let seed = format!("case-{}", meta.id);
    if let Some(sel) = wisp_fuzz::case_loader::selector(&folder) {
        let mut data = vec![sel];
        data.extend_from_slice(meta.source.as_bytes());
        corpus.add("case_loader", &seed, data);
    }
    match case {
        Case::Server(case) => server_role(case, &seed, corpus),
        Case::Client(case) => client_role(case, &seed, corpus),
    }
}

/// A server-role script: the packets the harness sends (client packets) are codec seeds;
/// the exact messages its patterns expect are server messages.
fn server_role(case: &ServerCase, seed: &str, corpus: &mut Corpus) {
    let mut aliases = HashMap::new();
    let mut next_id = 1;
    for (i, step) in case.script.iter().enumerate() {
        match &step.value {
            ClientStep::Send(spec) => {
                if let StreamRef::Alias(a) = &spec.stream
                    && !aliases.contains_key(a)
                {
                    aliases.insert(a.clone(), next_id);
                    next_id += 1;
                }
                if let Some(msg) = built(spec, &aliases) {
                    corpus.add("codec", &format!("{seed}-{i}"), msg);
                }
            }
            ClientStep::SendRaw(h) => corpus.add("codec", &format!("{seed}-{i}"), h.0.to_vec()),
            ClientStep::Expect(p) => {
                for alt in p.alternatives() {
                    if let Some(raw) = &alt.raw_hex {
                        corpus.server_message(&format!("{seed}-{i}"), &raw.0);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Builds a mock packet deterministically, cut at [`MAX_MSG`].
fn built(spec: &PacketSpec, aliases: &HashMap<String, u32>) -> Option<Vec<u8>> {
    let mut spec = spec.clone();
    for ext in &mut spec.extensions {
        if let ServerExtension::CertAuth(c) = ext
            && c.challenge == Challenge::Random
        {
            c.challenge = Challenge::Fixed(Hex(Bytes::from(vec![0x42; 64])));
        }
    }
    let mut msg = build(&spec, aliases).ok()?.bytes.to_vec();
    msg.truncate(MAX_MSG);
    Some(msg)
}

/// A client-role case: its server script's messages are server messages, and the whole
/// case becomes a `client_conn` program (see `wisp_fuzz::client_conn`).
fn client_role(case: &ClientCase, seed: &str, corpus: &mut Corpus) {
    let client = &case.client;
    let mut program = header(client);
    let first_id = client.options.first_stream_id.max(1);
    let mut actions: Vec<&Action> = client.actions.iter().map(|a| &a.value).collect();
    actions.reverse();
    let mut state = Program {
        ops: Vec::new(),
        server_aliases: HashMap::new(),
        client_streams: HashMap::new(),
        next_id: first_id,
    };
    let mut stream = Vec::new();
    for (i, step) in case.server.iter().enumerate() {
        match &step.value {
            ServerStep::Send(spec) => {
                let Some(msg) = built(spec, &state.server_aliases) else {
                    continue;
                };
                corpus.server_message(&format!("{seed}-{i}"), &msg);
                stream.push(u8::try_from(i % 256).unwrap_or(0));
                put_chunk16(&mut stream, &msg);
                let times = spec
                    .times
                    .map_or(1, |t| t.count(0))
                    .min(u64::from(MAX_TIMES));
                for _ in 0..times {
                    state.message(&msg);
                }
            }
            ServerStep::SendRaw(h) => {
                corpus.server_message(&format!("{seed}-{i}"), &h.0);
                stream.push(u8::try_from(i % 256).unwrap_or(0));
                put_chunk16(&mut stream, &h.0);
                state.message(&h.0);
            }
            ServerStep::Expect(p) => {
                let connect = p
                    .alternatives()
                    .iter()
                    .any(|a| a.packet_type.map(|t| t.0) == Some(PacketType::CONNECT));
                if connect {
                    // The client's actions up to its next `open` made this CONNECT.
                    while let Some(action) = actions.pop() {
                        let opened = matches!(action, Action::Open(_));
                        state.action(action);
                        if opened {
                            if let Some(StreamRef::Alias(a)) = &p.stream {
                                state.server_aliases.insert(a.clone(), state.next_id - 1);
                            }
                            break;
                        }
                    }
                } else if p.alternatives().iter().any(|a| {
                    matches!(
                        a.packet_type.map(|t| t.0),
                        Some(PacketType::DATA | PacketType::CLOSE)
                    ) && a.stream != Some(StreamRef::Id(0))
                }) && let Some(action) = actions.pop()
                {
                    state.action(action);
                }
            }
            ServerStep::Pause(d) | ServerStep::ExpectNothing(d) => state.advance(d.0),
            ServerStep::CloseWs | ServerStep::DropTcp | ServerStep::ResetTcp => {
                state.ops.extend([7, 0])
            }
            _ => {}
        }
    }
    while let Some(action) = actions.pop() {
        state.action(action);
    }
    // Let every timer fire.
    state.ops.extend([2, 2]);
    program.extend(state.ops);
    corpus.add("client_conn", seed, program);
    corpus.add("server_packets", seed, stream);
}

/// The configuration header of a `client_conn` program for `client` (see
/// `wisp_fuzz::client_conn`).
fn header(client: &ClientSpec) -> Vec<u8> {
    let mut flags = 0u8;
    let mut credentials = None;
    if client.version == VersionSel::V2 {
        flags |= 1;
        for ext in &client.extensions {
            match ext {
                ClientExtension::Udp => flags |= 2,
                ClientExtension::Motd => flags |= 4,
                ClientExtension::StreamConfirmation => flags |= 8,
                ClientExtension::Password(p) => match (&p.username, &p.password) {
                    // 0x30: credentials with a pinned layout; 0x20: unpinned (`layout: auto`).
                    (Some(u), Some(pw)) => {
                        let layout = p.layout.pinned();
                        flags |= if layout.is_some() { 0x30 } else { 0x20 };
                        credentials = Some((u.clone(), pw.clone(), layout));
                    }
                    _ => flags |= 0x10,
                },
                ClientExtension::CertAuth(c) => {
                    flags |= if c.key.is_some() { 0x80 } else { 0x40 };
                }
            }
        }
    }
    let mut required = 0u8;
    for ext in &client.required {
        match ext.0 {
            ExtensionId(id @ 1..=5) => required |= 1 << (id - 1),
            _ => required |= 0x20,
        }
    }
    let o = &client.options;
    let mut out = vec![
        flags,
        required,
        optional_byte(o.handshake_timeout),
        duration_byte(o.legacy_info_wait),
        optional_byte(o.stream_open_timeout),
    ];
    let max_payload = u16::try_from(o.max_payload_len).unwrap_or(u16::MAX);
    out.extend_from_slice(&max_payload.to_le_bytes());
    out.extend_from_slice(&o.first_stream_id.to_le_bytes());
    let queued = u16::try_from(o.max_queued_bytes / 16).unwrap_or(u16::MAX);
    out.extend_from_slice(&queued.to_le_bytes());
    if let Some((u, p, layout)) = credentials {
        put_chunk8(&mut out, u.as_bytes());
        put_chunk8(&mut out, p.as_bytes());
        if let Some(layout) = layout {
            out.push(u8::from(layout == PasswordLayout::Draft5));
        }
    }
    out
}

/// The smallest byte whose `client_conn::duration` is at least `d`.
fn duration_byte(d: Duration) -> u8 {
    (0..255u8)
        .find(|b| wisp_fuzz::client_conn::duration(*b) >= d)
        .unwrap_or(255)
}

fn optional_byte(d: Option<Duration>) -> u8 {
    d.map_or(0, |d| duration_byte(d).saturating_add(1))
}

/// A `client_conn` program being written.
struct Program {
    ops: Vec<u8>,
    server_aliases: HashMap<String, u32>,
    /// Client alias to index among the opened streams.
    client_streams: HashMap<String, u8>,
    next_id: u32,
}

impl Program {
    fn message(&mut self, msg: &[u8]) {
        self.ops.push(0);
        put_chunk16(&mut self.ops, msg);
    }

    fn advance(&mut self, d: Duration) {
        let mut ms = d.as_millis();
        loop {
            let step = u16::try_from(ms).unwrap_or(u16::MAX);
            self.ops.push(1);
            self.ops.extend_from_slice(&step.to_le_bytes());
            ms -= u128::from(step);
            if ms == 0 {
                break;
            }
        }
    }

    fn index(&self, alias: &str) -> u8 {
        self.client_streams.get(alias).copied().unwrap_or(u8::MAX)
    }

    fn action(&mut self, action: &Action) {
        match action {
            Action::Open(open) => {
                let index = u8::try_from(self.client_streams.len()).unwrap_or(u8::MAX);
                self.client_streams.insert(open.stream.clone(), index);
                self.next_id = self.next_id.wrapping_add(1);
                self.ops.push(3);
                self.ops.push(match open.stream_type.0 {
                    StreamType::TCP => 0,
                    StreamType::UDP => 1,
                    other => other.0.max(2),
                });
                put_chunk8(&mut self.ops, open.host.as_bytes());
                self.ops.extend_from_slice(&open.port.to_le_bytes());
            }
            Action::Send(send) => {
                let len = u16::try_from(send.payload().len().min(MAX_MSG)).unwrap_or(0);
                for _ in 0..send.times.unwrap_or(1).min(MAX_TIMES as usize) {
                    self.ops.extend([4, self.index(&send.stream)]);
                    self.ops.extend_from_slice(&len.to_le_bytes());
                }
            }
            Action::Close(close) => {
                let reason = close.reason.map_or(2, |r| r.0.0);
                self.ops.extend([5, self.index(&close.stream), reason]);
            }
            Action::Drop(alias) => self.ops.extend([5, self.index(alias), 2]),
            Action::CloseMux(c) => self.ops.extend([6, c.reason.map_or(0, |r| r.0.0)]),
            Action::Sleep(d) => self.advance(d.0),
            _ => {}
        }
    }
}
