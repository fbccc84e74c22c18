//! Builders that turn a structured [`PacketSpec`] into the bytes of one WebSocket message.
//!
//! Standard packets are encoded with the protocol core's codec (as h2-support reuses h2's),
//! and INFO records by the case language's extension entries
//! ([`wisp_cases::packet::ServerExtension::record`]), which call the encoders of each
//! extension's module (`wisp_proto::ext`); only what the codec refuses to build is written
//! here: a record whose length lies, unknown packet types and trailing bytes. Golden
//! vectors from the protocol reference (§1.4, §4.4, §8) pin the output, so a bug shared by
//! the codec and the mock cannot pass unseen.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use wisp_cases::client::FrameSpec;
pub use wisp_cases::packet::SentChallenge;
use wisp_cases::packet::{PacketSpec, parse_version};
use wisp_cases::values::StreamRef;
use wisp_client::proto::{
    CloseReason, ConnectPacket, Packet, PacketBody, PacketType, StreamType, WispVersion,
    encode_header,
};

/// One built message.
#[derive(Clone, Debug)]
pub struct Built {
    /// The WebSocket message.
    pub bytes: Bytes,
    /// The challenge, when the packet is an INFO with a certificate-auth record.
    pub challenge: Option<SentChallenge>,
}

/// Resolves a stream reference against the aliases bound so far.
pub fn resolve_stream(stream: &StreamRef, aliases: &HashMap<String, u32>) -> Result<u32, String> {
    match stream {
        StreamRef::Id(id) => Ok(*id),
        StreamRef::Alias(a) => aliases.get(a).copied().ok_or_else(|| {
            format!(
                "stream alias {a:?} is not bound yet: an `expect` of the client's CONNECT binds it"
            )
        }),
    }
}

/// Fills `buf` with OS randomness.
pub fn random_bytes(len: usize) -> Result<Bytes, String> {
    let mut buf = vec![0u8; len];
    getrandom::fill(&mut buf).map_err(|e| format!("getrandom failed: {e}"))?;
    Ok(Bytes::from(buf))
}

/// Builds the message for `spec`.
pub fn build(spec: &PacketSpec, aliases: &HashMap<String, u32>) -> Result<Built, String> {
    let stream_id = resolve_stream(&spec.stream, aliases)?;
    let payload = || -> Bytes {
        if let Some(t) = &spec.text {
            Bytes::copy_from_slice(t.as_bytes())
        } else if let Some(h) = &spec.hex {
            h.0.clone()
        } else if let Some(r) = &spec.repeat {
            Bytes::from(vec![r.byte; r.count])
        } else {
            Bytes::new()
        }
    };
    let mut challenge = None;
    let mut out = BytesMut::new();
    match spec.packet_type.0 {
        PacketType::CONNECT => {
            let packet = Packet {
                stream_id,
                body: PacketBody::Connect(ConnectPacket {
                    stream_type: spec.stream_type.map(|s| s.0).unwrap_or(StreamType::TCP),
                    port: spec.port.unwrap_or(0),
                    host: spec.host.clone().unwrap_or_default(),
                }),
            };
            packet.encode(&mut out);
        }
        PacketType::DATA => Packet::data(stream_id, payload()).encode(&mut out),
        PacketType::CONTINUE => {
            Packet::continue_(stream_id, spec.credit.unwrap_or(0)).encode(&mut out)
        }
        PacketType::CLOSE => {
            let reason = spec.reason.map(|r| r.0).unwrap_or(CloseReason(0));
            Packet::close(stream_id, reason).encode(&mut out)
        }
        PacketType::INFO => {
            let (major, minor) = parse_version(spec.version.as_deref().unwrap_or("2.0"))?;
            encode_header(PacketType::INFO, stream_id, &mut out);
            WispVersion { major, minor }.encode(&mut out);
            for ext in &spec.extensions {
                let record = ext.record(random_bytes)?;
                if record.challenge.is_some() {
                    challenge = record.challenge.clone();
                }
                record.encode(&mut out);
            }
        }
        other => {
            encode_header(other, stream_id, &mut out);
            out.put_slice(&payload());
        }
    }
    if let Some(t) = &spec.trailing_hex {
        out.put_slice(&t.0);
    }
    Ok(Built {
        bytes: out.freeze(),
        challenge,
    })
}

/// The key `send_frame: {mask: true}` masks with (fixed, so transcripts are stable).
pub const FRAME_MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The payload of a raw frame: the close code and reason for close frames that give
/// them, else `text`, `hex` or `repeat`.
fn frame_payload(spec: &FrameSpec) -> Vec<u8> {
    let mut payload = Vec::new();
    if let Some(code) = spec.code {
        payload.extend_from_slice(&code.to_be_bytes());
    }
    if let Some(reason) = &spec.reason {
        payload.extend_from_slice(reason.as_bytes());
    }
    if let Some(t) = &spec.text {
        payload.extend_from_slice(t.as_bytes());
    } else if let Some(h) = &spec.hex {
        payload.extend_from_slice(&h.0);
    } else if let Some(r) = &spec.repeat {
        payload.resize(payload.len() + r.count, r.byte);
    }
    payload
}

/// Encodes one raw WebSocket frame (RFC 6455 §5.2) for `spec`, cut to `truncate` bytes
/// when given.
pub fn build_frame(spec: &FrameSpec) -> Bytes {
    let payload = frame_payload(spec);
    let mut out = BytesMut::with_capacity(payload.len() + 14);
    out.put_u8(u8::from(spec.fin) << 7 | (spec.rsv & 0x7) << 4 | (spec.opcode.0 & 0xF));
    let mask_bit = u8::from(spec.mask) << 7;
    match payload.len() {
        n @ 0..=125 => out.put_u8(mask_bit | n as u8),
        n @ 126..=0xFFFF => {
            out.put_u8(mask_bit | 126);
            out.put_u16(n as u16);
        }
        n => {
            out.put_u8(mask_bit | 127);
            out.put_u64(n as u64);
        }
    }
    if spec.mask {
        out.put_slice(&FRAME_MASK);
        out.extend(
            payload
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ FRAME_MASK[i % 4]),
        );
    } else {
        out.put_slice(&payload);
    }
    if let Some(n) = spec.truncate {
        out.truncate(n);
    }
    out.freeze()
}

/// One line for the trace: `frame BINARY fin=1 len=5 "hello"`, with the flags a case set
/// and the close code and reason of close frames.
pub fn describe_frame(spec: &FrameSpec) -> String {
    let name = spec
        .opcode
        .name()
        .map(str::to_uppercase)
        .unwrap_or_else(|| format!("opcode={:#x}", spec.opcode.0));
    let payload = frame_payload(spec);
    let mut text = format!("frame {name} fin={}", u8::from(spec.fin));
    if spec.rsv != 0 {
        text.push_str(&format!(" rsv={:#05b}", spec.rsv));
    }
    if spec.mask {
        text.push_str(" masked");
    }
    match (spec.code, &spec.reason) {
        (Some(code), Some(reason)) => text.push_str(&format!(" code={code} reason={reason:?}")),
        (Some(code), None) => text.push_str(&format!(" code={code}")),
        _ => text.push_str(&format!(" {}", crate::trace::payload_summary(&payload))),
    }
    if let Some(n) = spec.truncate {
        text.push_str(&format!(" (only the first {n} bytes of the frame)"));
    }
    text
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use wisp_client::proto::{PasswordClientRecord, PasswordLayout};

    use super::*;

    fn spec(yaml: &str) -> PacketSpec {
        match serde_saphyr::from_str(yaml) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    fn hex_of(text: &str) -> Vec<u8> {
        let compact: String = text.split_whitespace().collect();
        hex::decode(compact).expect("golden hex")
    }

    /// wisp-protocol.md §1.4 (worked encodings) and §8 (first frames of real servers).
    #[rstest]
    #[case::connect_1_4(
        "{type: CONNECT, stream: 1, stream_type: tcp, host: example.com, port: 443}",
        "01 01 00 00 00 | 01 | bb 01 | 65 78 61 6d 70 6c 65 2e 63 6f 6d"
    )]
    #[case::data_1_4("{type: DATA, stream: 1, text: hi}", "02 01 00 00 00 | 68 69")]
    #[case::continue_1_4(
        "{type: CONTINUE, stream: 0, credit: 128}",
        "03 00 00 00 00 | 80 00 00 00"
    )]
    #[case::close_1_4("{type: CLOSE, stream: 1, reason: 0x02}", "04 01 00 00 00 | 02")]
    #[case::close_by_name("{type: CLOSE, stream: 1, reason: VOLUNTARY}", "04 01 00 00 00 02")]
    #[case::info_1_4(
        "{type: INFO, version: \"2.0\", extensions: [udp, {motd: hi}]}",
        "05 00 00 00 00 | 02 00 | 01 00 00 00 00 | 04 02 00 00 00 68 69"
    )]
    #[case::wisp_js_info_8("{type: INFO, extensions: [udp]}", "05 00000000 0200 01 00000000")]
    #[case::wisp_js_motd_8(
        "{type: INFO, extensions: [udp, {motd: hello}]}",
        "05 00000000 0200 01 00000000 04 05000000 68656c6c6f"
    )]
    #[case::wisp_mux_password_8(
        "{type: INFO, extensions: [udp, {raw: {id: 2, hex: \"000000\"}}]}",
        "05 00000000 0200 01 00000000 02 03000000 000000"
    )]
    #[case::python_continue_8("{type: CONTINUE, credit: 128}", "03 00000000 80000000")]
    #[case::password_required(
        "{type: INFO, extensions: [{password: {required: true}}]}",
        "05 00000000 0200 02 01000000 01"
    )]
    #[case::cert_fixed_challenge(
        "{type: INFO, extensions: [{cert_auth: {required: true, algorithms: 1, challenge: \"aabb\"}}]}",
        "05 00000000 0200 03 04000000 01 01 aabb"
    )]
    #[case::oversized_record(
        "{type: INFO, extensions: [{raw: {id: 4, hex: \"68\", len: 100}}]}",
        "05 00000000 0200 04 64000000 68"
    )]
    #[case::unknown_type("{type: 0x07, stream: 3, hex: \"ff\"}", "07 03000000 ff")]
    #[case::close_trailing(
        "{type: CLOSE, stream: 1, reason: 2, trailing_hex: \"aa bb\"}",
        "04 01000000 02 aabb"
    )]
    fn builders_match_golden_bytes(#[case] yaml: &str, #[case] golden: &str) {
        let built = build(&spec(yaml), &HashMap::new()).expect("builds");
        assert_eq!(
            hex::encode(&built.bytes),
            hex::encode(hex_of(&golden.replace('|', " ")))
        );
    }

    #[test]
    fn random_challenge_is_64_bytes_and_record_is_66() {
        let built = build(
            &spec("{type: INFO, extensions: [{cert_auth: {}}]}"),
            &HashMap::new(),
        )
        .expect("builds");
        // 5 header + 2 version + 5 record header + 66 metadata (wisp-protocol.md §4.4).
        assert_eq!(built.bytes.len(), 5 + 2 + 5 + 66);
        assert_eq!(built.bytes[8..12], [0x42, 0, 0, 0]);
        let c = built.challenge.expect("challenge");
        assert!(c.random);
        assert_eq!(c.bytes.len(), 64);
    }

    /// §4.4: the client password records for bob/pw in both layouts.
    #[rstest]
    #[case::draft6(PasswordLayout::Draft6, "03 62 6f 62 70 77")]
    #[case::draft5(PasswordLayout::Draft5, "03 02 00 62 6f 62 70 77")]
    fn password_records_match_golden_bytes(#[case] layout: PasswordLayout, #[case] golden: &str) {
        let record = PasswordClientRecord::decode(&hex_of(golden), layout).expect("decodes");
        assert_eq!(record.username, "bob");
        assert_eq!(record.password, "pw");
    }

    /// RFC 6455 §5.2 and §5.7 (the unmasked "Hello" frame and the 126-byte length form).
    #[rstest]
    #[case::rfc_5_7_hello("{opcode: text, text: Hello}", "81 05 48656c6c6f")]
    #[case::binary_first_fragment("{opcode: binary, fin: false, hex: \"6869\"}", "02 02 6869")]
    #[case::continuation("{opcode: continuation, text: x}", "80 01 78")]
    #[case::close_code_reason("{opcode: close, code: 1000, reason: bye}", "88 05 03e8 627965")]
    #[case::close_empty("{opcode: close}", "88 00")]
    #[case::rsv_and_reserved_opcode("{opcode: 3, rsv: 4, hex: \"00\"}", "c3 01 00")]
    #[case::masked("{opcode: binary, mask: true, text: hi}", "82 82 37fa213d 5f93")]
    #[case::truncated("{opcode: binary, hex: \"010203\", truncate: 3}", "82 03 01")]
    fn frames_match_golden_bytes(#[case] yaml: &str, #[case] golden: &str) {
        let spec: FrameSpec = serde_saphyr::from_str(yaml).expect("frame spec");
        assert_eq!(hex::encode(build_frame(&spec)), hex::encode(hex_of(golden)));
    }

    #[test]
    fn long_frames_use_the_extended_lengths() {
        let spec: FrameSpec =
            serde_saphyr::from_str("{opcode: ping, repeat: {byte: 0x70, count: 126}}")
                .expect("spec");
        assert_eq!(build_frame(&spec)[..4], [0x89, 126, 0, 126]);
        let spec: FrameSpec =
            serde_saphyr::from_str("{opcode: binary, repeat: {byte: 0, count: 65536}}")
                .expect("spec");
        assert_eq!(
            build_frame(&spec)[..10],
            [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]
        );
    }

    #[test]
    fn unbound_alias_is_an_error() {
        let err = build(&spec("{type: DATA, stream: s1, text: x}"), &HashMap::new())
            .expect_err("unbound");
        assert!(err.contains("not bound"), "{err}");
    }
}
