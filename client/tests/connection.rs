//! The sans-IO state machine, driven directly: bytes and time in, packets and events out.
//! Deterministic, no sockets, no runtime.

use std::time::{Duration, Instant};

use bytes::Bytes;
use ed25519_dalek::{Signature, SigningKey, Verifier};
use rstest::rstest;
use sha2::{Digest, Sha256};
use wisp_client::WispError;
use wisp_client::proto::{
    CertAuthClientRecord, CertAuthServerRecord, ClientConnection, CloseReason, ConnectionConfig,
    Event, ExtensionId, ExtensionRecord, InfoPacket, Initiator, NegotiatedExtension, Packet,
    PacketBody, PasswordClientRecord, PasswordLayout, PasswordOffer, StreamType, V2Config,
    WispVersion,
};

fn v1() -> ConnectionConfig {
    ConnectionConfig::default()
}

fn v2(config: V2Config) -> ConnectionConfig {
    ConnectionConfig {
        v2: Some(config),
        ..ConnectionConfig::default()
    }
}

fn offer_all() -> V2Config {
    V2Config {
        udp: true,
        motd: true,
        stream_confirmation: false,
        ..V2Config::default()
    }
}

fn server_info(records: Vec<(ExtensionId, Bytes)>) -> Bytes {
    server_info_version(WispVersion::V2, records)
}

fn server_info_version(version: WispVersion, records: Vec<(ExtensionId, Bytes)>) -> Bytes {
    Packet::info(InfoPacket::new(
        version,
        records
            .into_iter()
            .map(|(id, data)| ExtensionRecord { id, data })
            .collect(),
    ))
    .to_bytes()
}

fn cont(id: u32, credit: u32) -> Bytes {
    Packet::continue_(id, credit).to_bytes()
}

fn transmitted(conn: &mut ClientConnection) -> Vec<Packet> {
    std::iter::from_fn(|| conn.poll_transmit())
        .map(|b| Packet::decode(b).expect("the client sends well-formed packets"))
        .collect()
}

fn events(conn: &mut ClientConnection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

fn client_info(packets: &[Packet]) -> &InfoPacket {
    match packets.iter().find_map(|p| match &p.body {
        PacketBody::Info(i) => Some(i),
        _ => None,
    }) {
        Some(i) => i,
        None => panic!("no client INFO in {packets:?}"),
    }
}

/// An established v1 connection with `credit`.
fn established_v1(credit: u32, now: Instant) -> ClientConnection {
    let mut conn = ClientConnection::new(v1(), now);
    conn.handle_message(cont(0, credit), now);
    assert!(conn.is_established());
    conn
}

#[test]
fn v1_handshake_takes_the_credit_from_continue_zero() {
    let now = Instant::now();
    let mut conn = ClientConnection::new(v1(), now);
    assert!(conn.is_handshaking());
    conn.handle_message(cont(0, 128), now);
    let n = conn.negotiated().unwrap();
    assert_eq!(n.version, WispVersion::V1);
    assert!(!n.downgraded);
    assert_eq!(n.initial_credit, 128);
    assert_eq!(n.extensions, vec![NegotiatedExtension::Udp]);
    assert!(
        transmitted(&mut conn).is_empty(),
        "a v1 client sends nothing in the handshake"
    );
}

#[test]
fn v1_client_ignores_info() {
    let now = Instant::now();
    let mut conn = ClientConnection::new(v1(), now);
    conn.handle_message(server_info(vec![]), now);
    assert!(conn.is_handshaking());
    conn.handle_message(cont(0, 16), now);
    assert!(conn.is_established());
    conn.handle_message(server_info(vec![]), now);
    assert!(
        conn.is_established(),
        "a late INFO on a v1 connection is ignored"
    );
    assert!(transmitted(&mut conn).is_empty());
    assert_eq!(conn.ignored_packets(), 2);
}

#[test]
fn draft6_client_info_lists_only_extensions_both_sides_have() {
    let now = Instant::now();
    let mut conn = ClientConnection::new(v2(offer_all()), now);
    conn.handle_message(
        server_info(vec![
            (ExtensionId(0xf3), Bytes::from_static(b"unknown")),
            (ExtensionId::UDP, Bytes::new()),
            (ExtensionId::MOTD, Bytes::from_static(b"hi")),
            (ExtensionId::STREAM_CONFIRMATION, Bytes::new()),
        ]),
        now,
    );
    let sent = transmitted(&mut conn);
    assert_eq!(sent.len(), 1, "the client INFO goes out at once");
    let info = client_info(&sent);
    assert_eq!(info.version, WispVersion::V2);
    let ids: Vec<_> = info.extensions.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![ExtensionId::UDP, ExtensionId::MOTD]);
    assert!(info.extensions.iter().all(|r| r.data.is_empty()));
    assert!(!conn.is_established(), "draft 6: wait for CONTINUE(0)");
    conn.handle_message(cont(0, 64), now);
    let n = conn.negotiated().unwrap();
    assert_eq!(n.initial_credit, 64);
    assert_eq!(n.motd(), Some("hi"));
    assert!(!n.downgraded);
}

#[test]
fn draft4_info_then_immediate_continue() {
    let now = Instant::now();
    let mut conn = ClientConnection::new(v2(offer_all()), now);
    // Both arrive before the client had a chance to answer; the order still works.
    conn.handle_message(server_info(vec![(ExtensionId::UDP, Bytes::new())]), now);
    conn.handle_message(cont(0, 32), now);
    assert!(conn.is_established());
    assert_eq!(client_info(&transmitted(&mut conn)).extensions.len(), 1);
}

#[test]
fn old_draft_continue_then_info_negotiates_v2() {
    let now = Instant::now();
    let mut conn = ClientConnection::new(v2(offer_all()), now);
    conn.handle_message(cont(0, 10), now);
    assert!(conn.is_handshaking(), "waits briefly for a drafts 1-3 INFO");
    conn.handle_message(server_info(vec![(ExtensionId::UDP, Bytes::new())]), now);
    assert!(conn.is_established());
    let n = conn.negotiated().unwrap();
    assert!(!n.downgraded);
    assert_eq!(n.initial_credit, 10);
    assert_eq!(n.extensions, vec![NegotiatedExtension::Udp]);
    assert_eq!(client_info(&transmitted(&mut conn)).extensions.len(), 1);
}

#[test]
fn continue_first_without_info_downgrades_after_the_wait() {
    let now = Instant::now();
    let mut conn = ClientConnection::new(v2(offer_all()), now);
    conn.handle_message(cont(0, 128), now);
    let deadline = conn.poll_timeout().unwrap();
    assert_eq!(deadline, now + ConnectionConfig::default().legacy_info_wait);
    conn.handle_timeout(deadline - Duration::from_millis(1));
    assert!(conn.is_handshaking());
    conn.handle_timeout(deadline);
    let n = conn.negotiated().unwrap();
    assert!(n.downgraded);
    assert_eq!(n.version, WispVersion::V1);
    assert!(
        transmitted(&mut conn).is_empty(),
        "a downgraded client sends no INFO"
    );
}

#[rstest]
#[case::v1(None)]
#[case::v2(Some(V2Config::default()))]
fn a_silent_server_times_the_handshake_out(#[case] config: Option<V2Config>) {
    let now = Instant::now();
    let mut conn = ClientConnection::new(
        ConnectionConfig {
            v2: config,
            handshake_timeout: Some(Duration::from_secs(3)),
            ..ConnectionConfig::default()
        },
        now,
    );
    assert_eq!(conn.poll_timeout(), Some(now + Duration::from_secs(3)));
    conn.handle_timeout(now + Duration::from_secs(3));
    assert!(matches!(conn.error(), Some(WispError::HandshakeTimedOut)));
    assert!(matches!(
        events(&mut conn)[..],
        [Event::ConnectionClosed(WispError::HandshakeTimedOut)]
    ));
}

#[test]
fn missing_required_extensions_are_refused_before_the_client_info() {
    let now = Instant::now();
    let mut config = offer_all();
    config.required = vec![ExtensionId::UDP, ExtensionId::PASSWORD, ExtensionId::MOTD];
    let mut conn = ClientConnection::new(v2(config), now);
    conn.handle_message(server_info(vec![(ExtensionId::UDP, Bytes::new())]), now);
    match conn.error() {
        Some(WispError::ExtensionsNotSupported(ids)) => assert_eq!(ids, &vec![2, 4]),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        transmitted(&mut conn),
        vec![Packet::close(0, CloseReason::EXTENSIONS_INCOMPATIBLE)],
        "CLOSE(0, 0x04) and no client INFO"
    );
}

#[rstest]
#[case::major_1(1)]
#[case::major_3(3)]
fn other_major_versions_are_incompatible(#[case] major: u8) {
    let now = Instant::now();
    let mut conn = ClientConnection::new(v2(offer_all()), now);
    conn.handle_message(
        server_info_version(WispVersion { major, minor: 0 }, vec![]),
        now,
    );
    assert!(matches!(
        conn.error(),
        Some(WispError::IncompatibleProtocolVersion(found, WispVersion::V2)) if found.major == major
    ));
    assert_eq!(
        transmitted(&mut conn),
        vec![Packet::close(0, CloseReason::EXTENSIONS_INCOMPATIBLE)]
    );
}

fn password_config(layout: PasswordLayout, creds: bool) -> V2Config {
    V2Config {
        password: Some(PasswordOffer {
            credentials: creds.then(|| ("alice".to_owned(), "s3cret".to_owned())),
            layout,
        }),
        ..V2Config::default()
    }
}

#[rstest]
#[case::draft6(PasswordLayout::Draft6)]
#[case::draft5(PasswordLayout::Draft5)]
fn password_record_uses_the_chosen_layout(#[case] layout: PasswordLayout) {
    let now = Instant::now();
    let mut conn = ClientConnection::new(v2(password_config(layout, true)), now);
    conn.handle_message(
        server_info(vec![(ExtensionId::PASSWORD, Bytes::from_static(&[1]))]),
        now,
    );
    let sent = transmitted(&mut conn);
    let record = &client_info(&sent).extensions[0];
    assert_eq!(record.id, ExtensionId::PASSWORD);
    let creds = PasswordClientRecord::decode(&record.data, layout).unwrap();
    assert_eq!(
        (creds.username.as_str(), creds.password.as_str()),
        ("alice", "s3cret")
    );
}

#[rstest]
#[case::c0(0xc0, "PasswordExtensionCredsInvalid", true)]
#[case::c1(0xc1, "CertAuthExtensionSigInvalid", true)]
#[case::c2(0xc2, "AuthRequired", false)]
#[case::deployed_04_when_auth_unanswered(0x04, "AuthRequired", false)]
#[case::plain_04(0x04, "ExtensionsIncompatible", true)]
#[case::unassigned(0x99, "HandshakeRejected", true)]
fn handshake_close_reasons_become_typed_errors(
    #[case] reason: u8,
    #[case] name: &str,
    #[case] with_creds: bool,
) {
    let now = Instant::now();
    let mut conn =
        ClientConnection::new(v2(password_config(PasswordLayout::Draft6, with_creds)), now);
    conn.handle_message(
        server_info(vec![(ExtensionId::PASSWORD, Bytes::from_static(&[1]))]),
        now,
    );
    conn.handle_message(Packet::close(0, CloseReason(reason)).to_bytes(), now);
    let err = conn.error().expect("the handshake failed");
    assert_eq!(err.name(), name);
    if name == "AuthRequired" || name == "HandshakeRejected" {
        assert_eq!(err.close_reason(), Some(CloseReason(reason)));
    }
}

#[test]
fn cert_auth_signs_the_raw_challenge_with_the_key_hash() {
    let now = Instant::now();
    let key = SigningKey::from_bytes(&[42; 32]);
    let challenge = Bytes::from((0..64).collect::<Vec<u8>>());
    let config = V2Config {
        cert_auth: Some(Some(key.clone())),
        ..V2Config::default()
    };
    let mut conn = ClientConnection::new(v2(config), now);
    let server = CertAuthServerRecord {
        required: true,
        algorithms: 1,
        challenge: challenge.clone(),
    };
    conn.handle_message(
        server_info(vec![(ExtensionId::CERT_AUTH, server.encode())]),
        now,
    );
    let sent = transmitted(&mut conn);
    let record = CertAuthClientRecord::decode(&client_info(&sent).extensions[0].data).unwrap();
    assert_eq!(record.algorithm, 1);
    let expected_hash: [u8; 32] = Sha256::digest(key.verifying_key().as_bytes()).into();
    assert_eq!(record.key_hash, expected_hash);
    let signature = Signature::from_slice(&record.signature).unwrap();
    key.verifying_key()
        .verify(&challenge, &signature)
        .expect("the signature covers the raw challenge");
    conn.handle_message(cont(0, 8), now);
    assert!(conn.negotiated().unwrap().has(ExtensionId::CERT_AUTH));
}

#[test]
fn cert_auth_with_an_algorithm_the_client_lacks() {
    let now = Instant::now();
    let config = V2Config {
        cert_auth: Some(Some(SigningKey::from_bytes(&[1; 32]))),
        ..V2Config::default()
    };
    let mut conn = ClientConnection::new(v2(config), now);
    let server = CertAuthServerRecord {
        required: true,
        algorithms: 0b10,
        challenge: Bytes::from_static(&[0; 64]),
    };
    conn.handle_message(
        server_info(vec![(ExtensionId::CERT_AUTH, server.encode())]),
        now,
    );
    assert!(matches!(
        conn.error(),
        Some(WispError::CertAuthExtensionCertTypeInvalid(0b10))
    ));
    assert_eq!(
        transmitted(&mut conn),
        vec![Packet::close(0, CloseReason::EXTENSIONS_INCOMPATIBLE)]
    );
}

#[test]
fn credit_is_absolute_and_one_data_per_credit() {
    let now = Instant::now();
    let mut conn = established_v1(2, now);
    let id = conn
        .open_stream(StreamType::TCP, "example.com", 80, now)
        .unwrap();
    assert_eq!(conn.send_data(id, b"a").unwrap(), Some(1));
    assert_eq!(conn.send_data(id, b"b").unwrap(), Some(1));
    assert_eq!(conn.send_data(id, b"c").unwrap(), None, "no credit left");
    assert!(conn.is_blocked(id));
    let sent = transmitted(&mut conn);
    let data: Vec<_> = sent
        .iter()
        .filter(|p| matches!(p.body, PacketBody::Data(_)))
        .collect();
    assert_eq!(data.len(), 2);
    conn.handle_message(cont(id, 3), now);
    assert!(matches!(events(&mut conn)[..], [Event::StreamWritable { id: w }] if w == id));
    assert_eq!(conn.credit(id), Some(3));
    conn.handle_message(cont(id, 1), now);
    assert_eq!(
        conn.credit(id),
        Some(1),
        "CONTINUE replaces, it does not add"
    );
}

/// A stream that writes faster than the link cannot crowd out the others: queued DATA
/// leaves one packet per stream in turn, and a full transmit queue still takes one packet
/// from a stream that has none queued.
#[test]
fn busy_streams_take_turns_on_the_wire() {
    let now = Instant::now();
    let mut conn = ClientConnection::new(
        ConnectionConfig {
            max_queued_bytes: 16,
            ..v1()
        },
        now,
    );
    conn.handle_message(cont(0, 16), now);
    let a = conn.open_stream(StreamType::TCP, "h", 1, now).unwrap();
    let b = conn.open_stream(StreamType::TCP, "h", 1, now).unwrap();
    let _ = transmitted(&mut conn);
    for payload in [&b"a0"[..], b"a1", b"a2"] {
        assert_eq!(conn.send_data(a, payload).unwrap(), Some(2));
    }
    assert_eq!(conn.send_data(a, b"a3").unwrap(), None, "queue full");
    assert!(conn.is_blocked(a));
    assert!(
        !conn.is_blocked(b),
        "a stream with nothing queued is never blocked"
    );
    assert_eq!(conn.send_data(b, b"b0").unwrap(), Some(2));
    let order: Vec<Vec<u8>> = transmitted(&mut conn)
        .into_iter()
        .map(|p| match p.body {
            PacketBody::Data(d) => d.to_vec(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(order, [&b"a0"[..], b"b0", b"a1", b"a2"]);
    assert!(
        matches!(events(&mut conn)[..], [Event::StreamWritable { id }] if id == a),
        "the refused stream is told when its queue has drained"
    );
}

#[test]
fn udp_streams_are_not_flow_controlled() {
    let now = Instant::now();
    let mut conn = established_v1(1, now);
    let id = conn
        .open_stream(StreamType::UDP, "1.1.1.1", 53, now)
        .unwrap();
    for _ in 0..10 {
        assert_eq!(conn.send_data(id, b"dgram").unwrap(), Some(5));
    }
    conn.handle_message(cont(id, 0), now);
    assert_eq!(
        conn.send_data(id, b"dgram").unwrap(),
        Some(5),
        "CONTINUE for UDP is ignored"
    );
}

#[test]
fn writes_are_split_at_the_maximum_payload() {
    let now = Instant::now();
    let mut conn = ClientConnection::new(
        ConnectionConfig {
            max_payload_len: 4,
            ..v1()
        },
        now,
    );
    conn.handle_message(cont(0, 10), now);
    let id = conn.open_stream(StreamType::TCP, "h", 1, now).unwrap();
    assert_eq!(conn.send_data(id, b"0123456789").unwrap(), Some(4));
}

#[test]
fn streams_ids_are_sequential_and_exhaust_at_u32_max() {
    let now = Instant::now();
    let mut conn = established_v1(1, now);
    let ids: Vec<u32> = (0..3)
        .map(|_| conn.open_stream(StreamType::TCP, "h", 1, now).unwrap())
        .collect();
    assert_eq!(ids, vec![1, 2, 3]);

    let mut conn = ClientConnection::new(
        ConnectionConfig {
            first_stream_id: u32::MAX,
            ..v1()
        },
        now,
    );
    conn.handle_message(cont(0, 1), now);
    assert_eq!(
        conn.open_stream(StreamType::TCP, "h", 1, now).unwrap(),
        u32::MAX
    );
    assert!(matches!(
        conn.open_stream(StreamType::TCP, "h", 1, now),
        Err(WispError::MaxStreamCountReached)
    ));
}

#[test]
fn udp_needs_the_negotiated_extension() {
    let now = Instant::now();
    let mut conn = ClientConnection::new(v2(V2Config::default()), now);
    conn.handle_message(server_info(vec![(ExtensionId::UDP, Bytes::new())]), now);
    conn.handle_message(cont(0, 1), now);
    assert!(matches!(
        conn.open_stream(StreamType::UDP, "h", 1, now),
        Err(WispError::ExtensionsNotSupported(ids)) if ids == vec![1]
    ));
}

#[test]
fn stream_close_in_both_directions() {
    let now = Instant::now();
    let mut conn = established_v1(4, now);
    let a = conn.open_stream(StreamType::TCP, "h", 1, now).unwrap();
    let b = conn.open_stream(StreamType::TCP, "h", 1, now).unwrap();
    let _ = transmitted(&mut conn);
    conn.close_stream(a, CloseReason::VOLUNTARY).unwrap();
    assert_eq!(
        transmitted(&mut conn),
        vec![Packet::close(a, CloseReason::VOLUNTARY)]
    );
    assert!(matches!(
        conn.close_stream(a, CloseReason::VOLUNTARY),
        Err(WispError::StreamAlreadyClosed)
    ));

    conn.handle_message(Packet::data(b, &b"last words"[..]).to_bytes(), now);
    conn.handle_message(Packet::close(b, CloseReason(0xff)).to_bytes(), now);
    let ev = events(&mut conn);
    assert!(
        matches!(&ev[1], Event::StreamData { id, data } if *id == b && &data[..] == b"last words")
    );
    assert!(matches!(
        ev[2],
        Event::StreamClosed { id, reason: CloseReason(0xff), initiator: Initiator::Remote } if id == b
    ));
    assert!(conn.is_established(), "an unassigned reason is not fatal");
    assert!(
        transmitted(&mut conn).is_empty(),
        "a received CLOSE is not answered"
    );
}

#[test]
fn close_on_stream_zero_ends_the_connection() {
    let now = Instant::now();
    let mut conn = established_v1(4, now);
    conn.open_stream(StreamType::TCP, "h", 1, now).unwrap();
    conn.handle_message(
        Packet::close(0, CloseReason::SERVER_STREAM_THROTTLED).to_bytes(),
        now,
    );
    assert!(matches!(
        events(&mut conn)[..],
        [Event::ConnectionClosed(WispError::ClosedByServer(
            CloseReason::SERVER_STREAM_THROTTLED
        ))]
    ));
    assert!(matches!(
        conn.open_stream(StreamType::TCP, "h", 1, now),
        Err(WispError::MuxTaskEnded)
    ));
}

#[rstest]
#[case::unknown_type("07 01 00 00 00 ff")]
#[case::data_for_unknown_stream("02 63 00 00 00 68 69")]
#[case::close_for_unknown_stream("04 63 00 00 00 02")]
#[case::continue_for_unknown_stream("03 63 00 00 00 01 00 00 00")]
#[case::info_after_handshake("05 00 00 00 00 02 00")]
#[case::connect_from_server("01 05 00 00 00 01 50 00 68")]
#[case::second_continue_zero("03 00 00 00 00 10 00 00 00")]
fn well_formed_but_meaningless_packets_are_ignored(#[case] wire: &str) {
    let now = Instant::now();
    let mut conn = established_v1(4, now);
    conn.handle_message(
        Bytes::from(hex::decode(wire.replace(' ', "")).unwrap()),
        now,
    );
    assert!(conn.is_established());
    assert_eq!(conn.ignored_packets(), 1);
}

#[rstest]
#[case::three_bytes("02 01 00")]
#[case::empty_close("04 01 00 00 00")]
#[case::short_continue("03 01 00 00 00 01")]
fn malformed_packets_end_the_connection(#[case] wire: &str) {
    let now = Instant::now();
    let mut conn = established_v1(4, now);
    conn.handle_message(
        Bytes::from(hex::decode(wire.replace(' ', "")).unwrap()),
        now,
    );
    assert!(matches!(conn.error(), Some(WispError::MalformedPacket(_))));
}

#[test]
fn data_for_a_stream_during_the_handshake_is_a_typed_error() {
    let now = Instant::now();
    let mut conn = ClientConnection::new(v1(), now);
    conn.handle_message(Packet::data(3, &b"x"[..]).to_bytes(), now);
    assert!(matches!(
        conn.error(),
        Some(WispError::UnexpectedHandshakePacket {
            packet_type: 2,
            stream_id: 3
        })
    ));
}

fn confirmed(now: Instant) -> ClientConnection {
    let config = V2Config {
        stream_confirmation: true,
        ..V2Config::default()
    };
    let mut conn = ClientConnection::new(
        ConnectionConfig {
            stream_open_timeout: Some(Duration::from_secs(2)),
            ..v2(config)
        },
        now,
    );
    conn.handle_message(
        server_info(vec![(ExtensionId::STREAM_CONFIRMATION, Bytes::new())]),
        now,
    );
    conn.handle_message(cont(0, 8), now);
    let _ = transmitted(&mut conn);
    conn
}

#[test]
fn stream_confirmation_opens_on_continue() {
    let now = Instant::now();
    let mut conn = confirmed(now);
    let id = conn.open_stream(StreamType::TCP, "h", 1, now).unwrap();
    assert_eq!(
        conn.send_data(id, b"early").unwrap(),
        None,
        "no DATA before confirmation"
    );
    conn.handle_message(cont(id, 5), now);
    assert!(matches!(events(&mut conn)[..], [Event::StreamOpened { id: o }] if o == id));
    assert_eq!(conn.send_data(id, b"now").unwrap(), Some(3));
}

#[test]
fn stream_confirmation_refusal_and_timeout() {
    let now = Instant::now();
    let mut conn = confirmed(now);
    let refused = conn.open_stream(StreamType::TCP, "h", 1, now).unwrap();
    conn.handle_message(
        Packet::close(refused, CloseReason::SERVER_STREAM_BLOCKED_ADDRESS).to_bytes(),
        now,
    );
    assert!(matches!(
        &events(&mut conn)[..],
        [Event::StreamOpenFailed {
            error: WispError::StreamRefused(CloseReason::SERVER_STREAM_BLOCKED_ADDRESS),
            ..
        }]
    ));
    let silent = conn.open_stream(StreamType::TCP, "h", 1, now).unwrap();
    let _ = transmitted(&mut conn);
    assert_eq!(conn.poll_timeout(), Some(now + Duration::from_secs(2)));
    conn.handle_timeout(now + Duration::from_secs(2));
    assert!(matches!(
        &events(&mut conn)[..],
        [Event::StreamOpenFailed { id, error: WispError::StreamOpenTimedOut }] if *id == silent
    ));
    assert_eq!(
        transmitted(&mut conn),
        vec![Packet::close(silent, CloseReason::VOLUNTARY)]
    );
}

#[test]
fn local_close_with_reason_queues_close_zero() {
    let now = Instant::now();
    let mut conn = established_v1(4, now);
    conn.close(Some(CloseReason::VOLUNTARY));
    assert_eq!(
        transmitted(&mut conn),
        vec![Packet::close(0, CloseReason::VOLUNTARY)]
    );
    assert!(matches!(conn.error(), Some(WispError::ClosedLocally)));
}

/// Random messages in every phase never panic the state machine.
#[test]
fn state_machine_never_panics_on_arbitrary_input() {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..300 {
        let now = Instant::now();
        let mut conn = ClientConnection::new(
            if round % 2 == 0 {
                v1()
            } else {
                v2(offer_all())
            },
            now,
        );
        for step in 0..40 {
            let len = (next() % 24) as usize;
            let mut msg: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(b) = msg.first_mut() {
                *b %= 7;
            }
            if step == 0 && round % 3 == 0 {
                msg = cont(0, 4).to_vec();
            }
            conn.handle_message(Bytes::from(msg), now);
            if conn.is_established()
                && next() % 4 == 0
                && let Ok(id) = conn.open_stream(StreamType::TCP, "h", 1, now)
            {
                let _ = conn.send_data(id, b"x");
            }
            let _ = transmitted(&mut conn);
            let _ = events(&mut conn);
        }
    }
}

#[test]
fn required_extensions_survive_a_downgrade() {
    let now = Instant::now();
    let mut config = offer_all();
    config.required = vec![ExtensionId::UDP, ExtensionId::MOTD];
    let mut conn = ClientConnection::new(v2(config), now);
    conn.handle_message(cont(0, 128), now);
    conn.handle_timeout(now + ConnectionConfig::default().legacy_info_wait);
    assert!(
        matches!(conn.error(), Some(WispError::ExtensionsNotSupported(ids)) if ids == &vec![4]),
        "UDP is implied by v1.2, MOTD is not: {:?}",
        conn.error()
    );
    assert_eq!(
        transmitted(&mut conn),
        vec![Packet::close(0, CloseReason::EXTENSIONS_INCOMPATIBLE)]
    );

    let mut config = offer_all();
    config.required = vec![ExtensionId::UDP];
    let mut conn = ClientConnection::new(v2(config), now);
    conn.handle_message(cont(0, 128), now);
    conn.handle_timeout(now + ConnectionConfig::default().legacy_info_wait);
    assert!(
        conn.negotiated().unwrap().downgraded,
        "requiring only UDP is met by v1"
    );
}

#[test]
fn a_malformed_record_of_an_extension_not_offered_is_skipped() {
    let now = Instant::now();
    let mut conn = ClientConnection::new(v2(offer_all()), now);
    conn.handle_message(
        server_info(vec![
            (ExtensionId::UDP, Bytes::new()),
            (ExtensionId::CERT_AUTH, Bytes::from_static(&[1])),
        ]),
        now,
    );
    conn.handle_message(cont(0, 8), now);
    assert!(conn.is_established());
    assert_eq!(
        conn.negotiated().unwrap().extensions,
        vec![NegotiatedExtension::Udp]
    );
}

#[test]
fn a_malformed_record_of_an_offered_extension_is_rejected_with_close_04() {
    let now = Instant::now();
    let config = V2Config {
        cert_auth: Some(Some(SigningKey::from_bytes(&[5; 32]))),
        ..V2Config::default()
    };
    let mut conn = ClientConnection::new(v2(config), now);
    conn.handle_message(
        server_info(vec![(ExtensionId::CERT_AUTH, Bytes::from_static(&[1]))]),
        now,
    );
    assert!(matches!(
        conn.error(),
        Some(WispError::MalformedExtension(_))
    ));
    assert_eq!(
        transmitted(&mut conn),
        vec![Packet::close(0, CloseReason::EXTENSIONS_INCOMPATIBLE)]
    );
}

#[test]
fn udp_datagrams_are_never_split() {
    let now = Instant::now();
    let mut conn = ClientConnection::new(
        ConnectionConfig {
            max_payload_len: 4,
            ..v1()
        },
        now,
    );
    conn.handle_message(cont(0, 10), now);
    let id = conn.open_stream(StreamType::UDP, "h", 53, now).unwrap();
    assert_eq!(conn.send_data(id, b"0123456789").unwrap(), Some(10));
}

#[test]
fn continue_counts_packets_still_queued_against_the_new_credit() {
    let now = Instant::now();
    let mut conn = established_v1(8, now);
    let id = conn.open_stream(StreamType::TCP, "h", 1, now).unwrap();
    for _ in 0..5 {
        assert_eq!(conn.send_data(id, b"x").unwrap(), Some(1));
    }
    // None of the five DATA packets has left the client when the server says it can take
    // 6 more: only 1 more may be queued, or the server would receive 10.
    conn.handle_message(cont(id, 6), now);
    assert_eq!(conn.credit(id), Some(1));
    let sent = transmitted(&mut conn);
    assert_eq!(sent.len(), 6, "CONNECT and five DATA");
    conn.handle_message(cont(id, 6), now);
    assert_eq!(
        conn.credit(id),
        Some(6),
        "with the queue drained the full value applies"
    );
}

/// Found by the `client_conn` fuzz target: a wait longer than an `Instant` can represent
/// (`Duration::MAX`, a natural "never") panicked with "overflow when adding duration to
/// instant". Such a wait has no deadline.
#[rstest]
#[case::handshake_timeout(ConnectionConfig {
    handshake_timeout: Some(Duration::MAX),
    ..v2(offer_all())
})]
#[case::legacy_info_wait(ConnectionConfig {
    handshake_timeout: None,
    legacy_info_wait: Duration::MAX,
    ..v2(offer_all())
})]
#[case::stream_open_timeout(ConnectionConfig {
    handshake_timeout: None,
    stream_open_timeout: Some(Duration::MAX),
    ..v2(V2Config {
        stream_confirmation: true,
        ..offer_all()
    })
})]
fn waits_too_long_for_an_instant_have_no_deadline(#[case] config: ConnectionConfig) {
    let now = Instant::now();
    let legacy_wait = config.legacy_info_wait == Duration::MAX;
    let mut conn = ClientConnection::new(config, now);
    if legacy_wait {
        conn.handle_message(cont(0, 8), now);
        assert_eq!(conn.poll_timeout(), None, "the INFO wait never ends");
        conn.handle_message(server_info(vec![(ExtensionId::UDP, Bytes::new())]), now);
    } else {
        assert_eq!(conn.poll_timeout(), None, "no handshake deadline");
        conn.handle_message(
            server_info(vec![(ExtensionId::STREAM_CONFIRMATION, Bytes::new())]),
            now,
        );
        conn.handle_message(cont(0, 8), now);
    }
    assert!(conn.is_established());
    let id = conn.open_stream(StreamType::TCP, "h", 1, now).unwrap();
    assert_eq!(conn.poll_timeout(), None, "no stream-open deadline");
    conn.handle_timeout(now + Duration::from_secs(1 << 40));
    assert!(conn.error().is_none());
    assert_eq!(
        conn.stream_count(),
        1,
        "stream {id} is still open or opening"
    );
}
