//! Codec golden vectors: the worked encodings of the protocol reference (§1.4) and frames
//! captured from real servers (§8), decoded and re-encoded byte for byte.

use bytes::Bytes;
use rstest::rstest;
use wisp_proto::{
    CertAuthClientRecord, CertAuthServerRecord, CloseReason, DecodeErrorKind, ExtensionId,
    ExtensionRecord, InfoPacket, Packet, PacketBody, PacketType, PasswordClientRecord,
    PasswordLayout, PasswordServerRecord, StreamType, WispVersion,
};

fn unhex(s: &str) -> Bytes {
    let clean: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '|')
        .collect();
    Bytes::from(hex::decode(clean).expect("valid hex in the test vector"))
}

fn info(extensions: Vec<(u8, &[u8])>) -> Packet {
    Packet::info(InfoPacket::new(
        WispVersion::V2,
        extensions
            .into_iter()
            .map(|(id, data)| ExtensionRecord {
                id: ExtensionId(id),
                data: Bytes::copy_from_slice(data),
            })
            .collect(),
    ))
}

#[rstest]
// wisp-protocol.md §1.4
#[case::connect_example_com(
    "01 01 00 00 00 | 01 | bb 01 | 65 78 61 6d 70 6c 65 2e 63 6f 6d",
    Packet::connect(1, StreamType::TCP, "example.com", 443)
)]
#[case::data_hi("02 01 00 00 00 | 68 69", Packet::data(1, &b"hi"[..]))]
#[case::continue_128("03 00 00 00 00 | 80 00 00 00", Packet::continue_(0, 128))]
#[case::close_voluntary("04 01 00 00 00 | 02", Packet::close(1, CloseReason::VOLUNTARY))]
#[case::info_udp_motd(
    "05 00 00 00 00 | 02 00 | 01 00 00 00 00 | 04 02 00 00 00 68 69",
    info(vec![(1, b""), (4, b"hi")])
)]
// wisp-protocol.md §8, first frames of real servers
#[case::python_first_continue("03 00000000 80000000", Packet::continue_(0, 128))]
#[case::wisp_js_v2_info("05 00000000 0200 01 00000000", info(vec![(1, b"")]))]
#[case::wisp_js_motd_hello(
    "05 00000000 0200 01 00000000 04 05000000 68656c6c6f",
    info(vec![(1, b""), (4, b"hello")])
)]
#[case::wisp_mux_password_required(
    "05 00000000 0200 01 00000000 02 01000000 01",
    info(vec![(1, b""), (2, &[1])])
)]
#[case::empty_data("02 07 00 00 00", Packet::data(7, Bytes::new()))]
#[case::unassigned_close_reason("04 02 00 00 00 | 45", Packet::close(2, CloseReason(0x45)))]
#[case::udp_connect(
    "01 03 00 00 00 | 02 | 35 00 | 31 2e 31 2e 31 2e 31",
    Packet::connect(3, StreamType::UDP, "1.1.1.1", 53)
)]
fn golden_vectors_round_trip(#[case] wire: &str, #[case] packet: Packet) {
    let wire = unhex(wire);
    assert_eq!(Packet::decode(wire.clone()).unwrap(), packet);
    assert_eq!(packet.to_bytes(), wire);
    assert_eq!(packet.encoded_len(), wire.len());
}

#[rstest]
#[case::empty("", None, "header", 5, 0)]
#[case::four_bytes("02 01 00 00", None, "header", 5, 4)]
#[case::short_connect(
    "01 01 00 00 00 01 50",
    Some(PacketType::CONNECT),
    "CONNECT stream type and port",
    3,
    2
)]
#[case::short_continue(
    "03 01 00 00 00 80 00",
    Some(PacketType::CONTINUE),
    "CONTINUE buffer_remaining",
    4,
    2
)]
#[case::empty_close("04 01 00 00 00", Some(PacketType::CLOSE), "CLOSE reason", 1, 0)]
#[case::info_without_version("05 00 00 00 00 02", Some(PacketType::INFO), "INFO version", 2, 1)]
#[case::info_length_overrun(
    "05 00 00 00 00 02 00 04 ff 00 00 00 68 69",
    Some(PacketType::INFO),
    "INFO extension metadata",
    255,
    2
)]
fn truncated_packets_name_the_field(
    #[case] wire: &str,
    #[case] packet_type: Option<PacketType>,
    #[case] field: &str,
    #[case] needed: usize,
    #[case] available: usize,
) {
    let err = Packet::decode(unhex(wire)).unwrap_err();
    assert_eq!(err.packet_type, packet_type);
    assert_eq!(err.field, field);
    assert_eq!(err.kind, DecodeErrorKind::Truncated { needed, available });
}

#[test]
fn connect_with_bad_utf8_host_is_an_error() {
    let err = Packet::decode(unhex("01 01 00 00 00 01 50 00 ff fe")).unwrap_err();
    assert_eq!(err.kind, DecodeErrorKind::InvalidUtf8);
    assert_eq!(err.field, "CONNECT hostname");
}

#[rstest]
#[case::close_with_extra_bytes("04 01 00 00 00 02 aa bb", Packet::close(1, CloseReason::VOLUNTARY))]
#[case::continue_with_extra_bytes("03 01 00 00 00 10 00 00 00 ff", Packet::continue_(1, 16))]
fn bytes_after_a_fixed_payload_are_tolerated(#[case] wire: &str, #[case] packet: Packet) {
    assert_eq!(Packet::decode(unhex(wire)).unwrap(), packet);
}

#[test]
fn unknown_packet_types_are_kept_whole() {
    let p = Packet::decode(unhex("07 09 00 00 00 de ad")).unwrap();
    assert_eq!(p.stream_id, 9);
    assert_eq!(
        p.body,
        PacketBody::Unknown {
            packet_type: PacketType(7),
            payload: unhex("de ad"),
        }
    );
    assert_eq!(p.to_bytes(), unhex("07 09 00 00 00 de ad"));
}

#[rstest]
#[case::one(1)]
#[case::four(4)]
fn info_trailing_bytes_are_ignored(#[case] n: usize) {
    let mut wire = unhex("05 00 00 00 00 02 00 01 00 00 00 00").to_vec();
    wire.extend(std::iter::repeat_n(0xee, n));
    let PacketBody::Info(info) = Packet::decode(Bytes::from(wire)).unwrap().body else {
        panic!("not INFO");
    };
    assert_eq!(info.extensions.len(), 1);
    assert_eq!(info.trailing, n);
}

#[test]
fn info_keeps_unknown_extension_ids_and_other_versions() {
    let wire = unhex("05 00 00 00 00 03 01 f3 02 00 00 00 aa bb 01 00 00 00 00");
    let PacketBody::Info(info) = Packet::decode(wire).unwrap().body else {
        panic!("not INFO");
    };
    assert_eq!(info.version, WispVersion { major: 3, minor: 1 });
    assert_eq!(info.extensions[0].id, ExtensionId(0xf3));
    assert_eq!(info.extension(ExtensionId::UDP).unwrap().data.len(), 0);
}

// wisp-protocol.md §4.4: bob/pw in both layouts.
#[rstest]
#[case::draft6(PasswordLayout::Draft6, "03 62 6f 62 70 77")]
#[case::draft5(PasswordLayout::Draft5, "03 02 00 62 6f 62 70 77")]
fn password_layouts(#[case] layout: PasswordLayout, #[case] wire: &str) {
    let record = PasswordClientRecord {
        username: "bob".into(),
        password: "pw".into(),
    };
    assert_eq!(record.encode(layout).unwrap(), unhex(wire));
    assert_eq!(
        PasswordClientRecord::decode(&unhex(wire), layout).unwrap(),
        record
    );
}

#[rstest]
#[case::empty("")]
#[case::username_overrun_draft6("05 62 6f")]
#[case::no_password_length_draft5("03")]
fn malformed_password_records_are_errors(#[case] wire: &str) {
    let layout = if wire == "03" {
        PasswordLayout::Draft5
    } else {
        PasswordLayout::Draft6
    };
    assert!(PasswordClientRecord::decode(&unhex(wire), layout).is_err());
}

#[test]
fn password_username_over_255_bytes_is_an_error_not_a_panic() {
    let record = PasswordClientRecord {
        username: "u".repeat(256),
        password: String::new(),
    };
    assert!(record.encode(PasswordLayout::Draft6).is_err());
}

#[test]
fn password_debug_never_shows_the_password() {
    let record = PasswordClientRecord {
        username: "bob".into(),
        password: "hunter2".into(),
    };
    assert!(!format!("{record:?}").contains("hunter2"));
}

#[rstest]
#[case::required("01", true)]
#[case::optional("00", false)]
#[case::draft3_presence_means_required("", true)]
fn password_server_record(#[case] wire: &str, #[case] required: bool) {
    assert_eq!(
        PasswordServerRecord::decode(&unhex(wire)).required,
        required
    );
}

#[test]
fn cert_auth_records_round_trip() {
    let server = CertAuthServerRecord {
        required: true,
        algorithms: 1,
        challenge: Bytes::from(vec![7; 64]),
    };
    let wire = server.encode();
    assert_eq!(
        wire.len(),
        66,
        "server record length is 0x42 for a 64-byte challenge"
    );
    assert_eq!(CertAuthServerRecord::decode(&wire).unwrap(), server);
    assert!(CertAuthServerRecord::decode(&unhex("01")).is_err());

    let client = CertAuthClientRecord {
        algorithm: 1,
        key_hash: [9; 32],
        signature: Bytes::from(vec![3; 64]),
    };
    let wire = client.encode();
    assert_eq!(wire.len(), 97, "client record length is 0x61");
    assert_eq!(CertAuthClientRecord::decode(&wire).unwrap(), client);
    assert!(CertAuthClientRecord::decode(&Bytes::from(vec![1; 32])).is_err());
}

#[test]
fn open_codes_print_names_or_hex() {
    assert_eq!(
        format!("{}", CloseReason::SERVER_STREAM_THROTTLED),
        "SERVER_STREAM_THROTTLED(0x49)"
    );
    assert_eq!(format!("{}", CloseReason(0x45)), "CloseReason(0x45)");
    assert!(!CloseReason(0xff).is_known());
    assert_eq!(ExtensionId::MOTD.name(), Some("MOTD"));
    assert!(!StreamType::UDP.is_flow_controlled());
    assert!(StreamType(0x09).is_flow_controlled());
}

/// Arbitrary bytes never panic the decoder (a cheap, deterministic stand-in for fuzzing).
#[test]
fn decoder_never_panics_on_arbitrary_input() {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for len in 0..4096usize {
        let mut buf = Vec::with_capacity(len % 64);
        for _ in 0..len % 64 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            buf.push(seed as u8);
        }
        if let Some(first) = buf.first_mut() {
            *first %= 8;
        }
        if let Ok(p) = Packet::decode(Bytes::from(buf.clone())) {
            // Whatever decodes re-encodes to a prefix-compatible packet of the same type.
            assert_eq!(p.to_bytes()[0], buf[0]);
        }
    }
}

/// The epoxy `wisp-mux` spellings users port from compile and mean the same values; the code
/// space stays open (issue 11, item 4).
#[test]
fn seed_spellings_are_the_same_values() {
    use wisp_proto::{CloseReason, StreamType};
    assert_eq!(StreamType::Tcp, StreamType::TCP);
    assert_eq!(StreamType::Udp, StreamType::UDP);
    assert_eq!(StreamType::Other(0x07), StreamType(0x07));
    assert_eq!(CloseReason::Voluntary, CloseReason::VOLUNTARY);
    assert_eq!(CloseReason::ServerStreamThrottled, CloseReason(0x49));
    assert_eq!(CloseReason::ExtensionsPasswordAuthFailed, CloseReason(0xc0));
    assert_eq!(CloseReason::ExtensionsAuthRequired, CloseReason(0xc2));
    assert_eq!(CloseReason::Other(0x45), CloseReason(0x45));
    // The constants are patterns too.
    let kind = |t: StreamType| match t {
        StreamType::Tcp => "tcp",
        StreamType::Udp => "udp",
        _ => "other",
    };
    assert_eq!(
        [
            kind(StreamType::TCP),
            kind(StreamType(2)),
            kind(StreamType(9))
        ],
        ["tcp", "udp", "other"]
    );
    // Debug keeps the protocol's names.
    assert_eq!(format!("{:?}", StreamType::Tcp), "TCP(0x01)");
}
